"""Node definitions as the frontend sees them, folder registration, and the import boundary."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import folder_paths
import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE_TYPES = {"IMAGE", "MASK", "INT", "FLOAT", "STRING", "BOOLEAN", "UPSCALE_MODEL"}
PACK_TYPES = {"CODEFORMER_MODEL", "FACE_DETECTOR", "FACE_PARSER", "FACES"}
CATEGORIES = {"codeformer/loaders", "codeformer/faces", "codeformer/restore"}
EXPECTED = {
    "CodeFormerModelLoader", "CodeFormerFaceDetectorLoader", "CodeFormerFaceParserLoader", "CodeFormerFaceDetect",
    "CodeFormerRestore", "CodeFormerBackgroundUpsample", "CodeFormerPasteBack", "CodeFormerFaceRestore",
    "CodeFormerBestSettings",
}


def _inputs(cls) -> dict[str, tuple]:
    spec = cls.INPUT_TYPES()
    assert set(spec) <= {"required", "optional", "hidden"}
    return {**spec.get("required", {}), **spec.get("optional", {})}


def test_mappings(pack):
    assert set(pack.NODE_CLASS_MAPPINGS) == EXPECTED
    assert set(pack.NODE_DISPLAY_NAME_MAPPINGS) == EXPECTED
    assert all(name.startswith("CodeFormer") for name in pack.NODE_DISPLAY_NAME_MAPPINGS.values())
    # The entry point exposes only the two tables.
    assert pack.__all__ == ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]


@pytest.mark.parametrize("node_id", sorted(EXPECTED))
def test_metadata(nodes, node_id):
    cls = nodes[node_id]
    assert cls.CATEGORY in CATEGORIES
    sentences = re.findall(r"[.!?](?:\s|$)", cls.DESCRIPTION.strip())
    assert 1 <= len(sentences) <= 2, cls.DESCRIPTION
    assert len(cls.OUTPUT_TOOLTIPS) == len(cls.RETURN_TYPES) == len(cls.RETURN_NAMES)
    assert all(isinstance(t, str) and t for t in cls.OUTPUT_TOOLTIPS)
    for kind in cls.RETURN_TYPES:  # a list is a combo output (it links to a combo input with the same list)
        assert kind in CORE_TYPES | PACK_TYPES if isinstance(kind, str) else all(isinstance(v, str) for v in kind)
    function = getattr(cls, cls.FUNCTION)
    params = inspect.signature(function).parameters
    for name, entry in _inputs(cls).items():
        kind, options = entry
        assert options.get("tooltip"), f"{node_id}.{name} has no tooltip"
        assert name in params, f"{node_id}.{cls.FUNCTION} does not take {name}"
        if isinstance(kind, list):
            assert kind and all(isinstance(v, str) for v in kind)
            assert options.get("default", kind[0]) in kind
        else:
            assert kind in CORE_TYPES | PACK_TYPES, f"{node_id}.{name}: unknown type {kind}"
        if kind in ("INT", "FLOAT"):
            assert options["min"] <= options["default"] <= options["max"]
    optional = cls.INPUT_TYPES().get("optional", {})
    for name in optional:
        assert params[name].default is None, f"optional {name} needs a None default"


def test_requested_defaults(nodes):
    detect = _inputs(nodes["CodeFormerFaceDetect"])
    assert detect["confidence"][1]["default"] == 0.8 and detect["confidence"][1]["min"] == 0.05
    assert detect["selection"][1]["default"] == "all" and detect["max_faces"][1]["default"] == 0
    restore = _inputs(nodes["CodeFormerFaceRestore"])
    assert restore["fidelity"][1]["default"] == 0.5 and restore["upscale"][1]["default"] == 2.0
    assert restore["background_enhance"][1]["default"] is True
    assert restore["face_upsample"][0] == ["off", "auto", "always"] and restore["face_upsample"][1]["default"] == "auto"
    assert restore["auto_fidelity"][1]["default"] is False and restore["source"][1]["default"] == "ai_generated"
    assert restore["visibility"][1]["default"] == 1.0 and restore["feather"][1]["default"] == 1.0
    modular = _inputs(nodes["CodeFormerRestore"])
    assert modular["auto_fidelity"][1]["default"] is False and modular["source"][0] == ["ai_generated", "photo"]
    paste = _inputs(nodes["CodeFormerPasteBack"])
    assert paste["feather"][1]["min"] == 0.1 and paste["visibility"][1]["default"] == 1.0
    detector = _inputs(nodes["CodeFormerFaceDetectorLoader"])["model_name"]
    assert detector[1]["default"] == "retinaface_resnet50"


def test_best_settings_outputs_fit_the_one_node(nodes):
    advisor, restore = nodes["CodeFormerBestSettings"], _inputs(nodes["CodeFormerFaceRestore"])
    assert advisor.RETURN_NAMES == ("fidelity", "background_enhance", "face_upsample", "upscale", "reason")
    for name, kind in zip(advisor.RETURN_NAMES[:4], advisor.RETURN_TYPES):
        assert restore[name][0] == kind, name  # ComfyUI links equal types; a combo output must list the same options
    assert advisor.RETURN_TYPES[4] == "STRING"
    spec = advisor.INPUT_TYPES()
    assert set(spec["required"]) == {"image", "source"} and set(spec["optional"]) == {"detector", "faces", "video_frames"}


def test_folder_registration_keeps_user_paths(pack, comfy_models, user_facerestore_dir):
    paths, extensions = folder_paths.folder_names_and_paths["facerestore_models"]
    assert paths == [str(user_facerestore_dir), str(comfy_models / "facerestore_models")]
    assert extensions == folder_paths.supported_pt_extensions
    assert folder_paths.get_folder_paths("facedetection") == [str(comfy_models / "facedetection")]
    # core's key is left alone
    assert folder_paths.folder_names_and_paths["upscale_models"][0] == [str(comfy_models / "upscale_models")]


def test_folder_registration_is_idempotent(pack, monkeypatch, tmp_path):
    register = pack.nodes.folders.register_model_folders
    before = folder_paths.get_folder_paths("facerestore_models")
    register()
    assert folder_paths.get_folder_paths("facerestore_models") == before
    # a key nobody set yet is created with our folder only
    monkeypatch.delitem(folder_paths.folder_names_and_paths, "facedetection")
    register()
    paths, extensions = folder_paths.folder_names_and_paths["facedetection"]
    assert paths == [str(Path(folder_paths.models_dir) / "facedetection")]
    assert extensions == folder_paths.supported_pt_extensions


_HOST_IMPORT = re.compile(r"^\s*(?:import|from)\s+(comfy|comfy_api|folder_paths|nodes|server)\b", re.MULTILINE)


def test_only_nodes_import_comfyui():
    offenders = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "codeformer").rglob("*.py"))
                 if _HOST_IMPORT.search(p.read_text(encoding="utf-8"))]
    assert offenders == [], f"library modules import ComfyUI: {offenders}"
    users = {p.name for p in (ROOT / "nodes").glob("*.py") if _HOST_IMPORT.search(p.read_text(encoding="utf-8"))}
    assert users, "the nodes should be the ones talking to ComfyUI"
    entry = (ROOT / "__init__.py").read_text(encoding="utf-8")
    assert "from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS" in entry
