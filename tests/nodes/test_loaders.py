"""Loader nodes: combo lists, .pth / .safetensors, user folders, downloads of missing known files, errors."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import comfy.utils
import folder_paths
import pytest
import torch
import weights


def test_codeformer_pth_and_safetensors(nodes, lib):
    loader = nodes["CodeFormerModelLoader"]()
    choices = loader.INPUT_TYPES()["required"]["model_name"][0]
    assert choices[0] == "codeformer.pth"
    assert "codeformer.safetensors" in choices and "user_codeformer.safetensors" in choices
    assert not any("GFPGAN" in c for c in choices)
    (pth,) = loader.load("codeformer.pth")
    (st,) = loader.load("user_codeformer.safetensors")  # found in the user's extra folder
    assert isinstance(pth, lib.types.CodeFormerModel) and pth.descriptor.architecture.id == "CodeFormer"
    assert "user_facerestore" in str(st.path)
    a, b = pth.module.state_dict(), st.module.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_codeformer_precision_and_compile_options(nodes):
    loader = nodes["CodeFormerModelLoader"]()
    spec = loader.INPUT_TYPES()["required"]
    assert list(spec) == ["model_name", "compile_on_gpu", "precision"]  # new widgets last: old workflows still load
    assert spec["precision"][0] == ["auto", "fp32", "bf16"] and spec["precision"][1]["default"] == "auto"
    (model,) = loader.load("codeformer.pth", True, "fp32")
    assert model.precision == "fp32" and model.compile
    assert loader.load("codeformer.pth")[0].precision == "auto"
    with pytest.raises(ValueError, match="auto, fp32, bf16"):
        loader.load("codeformer.pth", False, "fp16")


def test_detector_and_parser_choices(nodes):
    det = nodes["CodeFormerFaceDetectorLoader"].INPUT_TYPES()["required"]["model_name"][0]
    assert det[:2] == ["retinaface_resnet50", "retinaface_mobile0.25"]
    assert not any(c.startswith("parsing_") or c.startswith("detection_") for c in det)
    par = nodes["CodeFormerFaceParserLoader"].INPUT_TYPES()["required"]["model_name"][0]
    assert par == ["parsing_parsenet.pth"]


def test_detector_and_parser_load(nodes, lib):
    (det,) = nodes["CodeFormerFaceDetectorLoader"]().load("retinaface_mobile0.25")
    assert isinstance(det, lib.types.FaceDetector) and det.name == "retinaface_mobile0.25"
    (by_file,) = nodes["CodeFormerFaceDetectorLoader"]().load("detection_mobilenet0.25_Final.pth")
    assert by_file.name == "retinaface_mobile0.25"  # kind read from the keys
    (parser,) = nodes["CodeFormerFaceParserLoader"]().load("parsing_parsenet.pth")
    assert isinstance(parser, lib.types.FaceParser)


def test_wrong_file_names_the_problem(nodes, lib):
    with pytest.raises(lib.models.ModelFileError, match="not a RetinaFace"):
        nodes["CodeFormerFaceDetectorLoader"]().load("parsing_parsenet.pth")
    with pytest.raises(lib.models.ModelFileError, match="facerestore_models"):
        nodes["CodeFormerModelLoader"]().load("missing.pth")


def test_missing_known_file_is_downloaded_into_first_folder(nodes, lib, monkeypatch, tmp_path, comfy_models):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir(), second.mkdir()
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "facedetection",
                        ([str(first), str(second)], folder_paths.supported_pt_extensions))
    calls = []

    def fake_download(known, dest_dir, *, offline=None, on_progress=None, timeout=30):
        calls.append((known.name, dest_dir))
        for done in (0, 1000, 1789735):
            on_progress(done, 1789735)
        target = dest_dir / known.name
        shutil.copyfile(comfy_models / "facedetection" / "detection_mobilenet0.25_Final.pth", target)
        return target

    monkeypatch.setattr(lib.models.download, "download_file", fake_download)
    (det,) = nodes["CodeFormerFaceDetectorLoader"]().load("retinaface_mobile0.25")
    assert calls == [("detection_mobilenet0.25_Final.pth", first)]
    assert det.path == first / "detection_mobilenet0.25_Final.pth"
    bars = comfy.utils.bars
    assert len(bars) == 1 and bars[0].history[-1] == (1789735, 1789735)


def test_download_failure_is_reported(nodes, lib, monkeypatch, tmp_path):
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "facedetection",
                        ([str(tmp_path)], folder_paths.supported_pt_extensions))
    monkeypatch.setenv("CODEFORMER_OFFLINE", "1")
    with pytest.raises(lib.models.ModelDownloadError, match="detection_Resnet50_Final.pth"):
        nodes["CodeFormerFaceDetectorLoader"]().load("retinaface_resnet50")
    assert list(tmp_path.iterdir()) == []


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('code ran')",))


@pytest.fixture()
def folders(monkeypatch, tmp_path):
    """Empty facerestore_models / facedetection folders registered for this test only."""
    made = {}
    for key in ("facerestore_models", "facedetection"):
        folder = tmp_path / key
        folder.mkdir()
        monkeypatch.setitem(folder_paths.folder_names_and_paths, key,
                            ([str(folder)], folder_paths.supported_pt_extensions))
        made[key] = folder
    return made


LOADER_NODES = [
    ("CodeFormerModelLoader", "facerestore_models", "bad.pth"),
    ("CodeFormerFaceDetectorLoader", "facedetection", "bad_detector.pth"),
    ("CodeFormerFaceParserLoader", "facedetection", "parsing_bad.pth"),
]


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
@pytest.mark.parametrize("kind", ["evil-zip", "evil-raw", "zero", "html"])
@pytest.mark.parametrize(("node", "key", "name"), LOADER_NODES)
def test_loader_nodes_refuse_broken_and_hostile_files(nodes, lib, folders, tmp_path, node, key, name, kind):
    marker = tmp_path / "marker"
    path = folders[key] / name
    if kind == "evil-zip":
        torch.save({"params_ema": {"w": torch.zeros(1)}, "x": _Evil(marker)}, path)
    elif kind == "evil-raw":
        path.write_bytes(pickle.dumps(_Evil(marker)))
    elif kind == "zero":
        path.write_bytes(b"")
    else:
        path.write_text("<html><body>Too many requests</body></html>")
    with pytest.raises(lib.models.ModelFileError) as info:
        nodes[node]().load(name)
    msg = str(info.value)
    assert name in msg and str(path) in msg
    if kind.startswith("evil"):
        assert "unsafe" in msg and "Nothing in it was executed" in msg
    else:
        assert "re-download" in msg
    assert not marker.exists()


def test_loader_nodes_refuse_other_architectures(nodes, lib, folders, comfy_models):
    (folders["facerestore_models"] / "looks_like_codeformer.pth").symlink_to(
        comfy_models / "upscale_models" / "RealESRGAN_x2plus.pth")
    with pytest.raises(lib.models.ModelFileError) as info:
        nodes["CodeFormerModelLoader"]().load("looks_like_codeformer.pth")
    msg = str(info.value)
    assert "looks_like_codeformer.pth" in msg and "not a CodeFormer checkpoint" in msg and "ESRGAN" in msg
    assert lib.models.KNOWN_FILES["codeformer.pth"].url in msg and "facerestore_models" in msg

    (folders["facedetection"] / "parsing_other.pth").symlink_to(weights.REAL_DETECTOR)
    with pytest.raises(lib.models.ModelFileError, match="parsing_other.pth.*RetinaFace face detector, not a "
                                                              "face parser.*parsing_parsenet.pth"):
        nodes["CodeFormerFaceParserLoader"]().load("parsing_other.pth")


def test_missing_model_names_folder_file_and_url(nodes, lib, folders, monkeypatch):
    monkeypatch.setenv("CODEFORMER_OFFLINE", "1")
    with pytest.raises(lib.models.ModelDownloadError) as info:
        nodes["CodeFormerModelLoader"]().load("codeformer.pth")
    msg = str(info.value)
    assert lib.models.KNOWN_FILES["codeformer.pth"].url in msg
    assert str(folders["facerestore_models"] / "codeformer.pth") in msg and "models/facerestore_models" in msg
    assert list(folders["facerestore_models"].iterdir()) == []


def test_model_loader_lists_and_loads_other_face_restorers(nodes, lib, user_facerestore_dir):
    """A GFPGAN file in facerestore_models is listed and loaded as GFPGAN (recognised from its keys), and the
    fidelity inputs say that only CodeFormer has one; saved widget values stay valid."""
    loader = nodes["CodeFormerModelLoader"]()
    path = weights.save_pth(weights.gfpgan_state_dict(), user_facerestore_dir / "GFPGANv1.4.pth", wrap="params_ema")
    try:
        choices = loader.INPUT_TYPES()["required"]["model_name"][0]
        assert choices[0] == "codeformer.pth" and "GFPGANv1.4.pth" in choices
        (model,) = loader.load("GFPGANv1.4.pth", False, "auto")
        assert model.descriptor.architecture.id == "GFPGAN"
        assert lib.restorers.restorer_of(model).has_fidelity is False
    finally:
        path.unlink()
    fidelity = nodes["CodeFormerRestore"].INPUT_TYPES()["required"]["fidelity"][1]
    assert fidelity["default"] == 0.5 and "CodeFormer only" in fidelity["tooltip"]
    assert "GFPGAN" in loader.DESCRIPTION
