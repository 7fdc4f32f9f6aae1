"""Example workflows (UI format): every node type exists, widget values fit the inputs, links join matching types.

Our nodes are checked against the pack's own definitions; core nodes against ``data/core_object_info.json``, the
``/object_info`` entries of the core nodes the workflows use, captured once from a real ComfyUI 0.3.64 server.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW_DIR = ROOT / "example_workflows"
WORKFLOWS = sorted(WORKFLOW_DIR.glob("*.json"))
CORE_OBJECT_INFO = Path(__file__).parent / "data" / "core_object_info.json"
FRONTEND_ONLY = {"Note", "MarkdownNote"}  # drawn by the frontend, never sent to the server
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
# Combos listing files on the user's machine: any name is allowed (a missing file is for the user to fetch).
FILE_COMBOS = {
    ("LoadImage", "image"), ("UpscaleModelLoader", "model_name"), ("CheckpointLoaderSimple", "ckpt_name"),
    ("CodeFormerModelLoader", "model_name"), ("CodeFormerFaceDetectorLoader", "model_name"),
    ("CodeFormerFaceParserLoader", "model_name"), ("LoadVideo", "file"),
}
CONTROL_VALUES = {"fixed", "increment", "decrement", "randomize"}


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def definitions(nodes) -> dict[str, dict]:
    """node type -> {"inputs": [(name, spec)] in widget order, "optional": {names}, "outputs": [type]}.

    Ours come from the pack's classes, core ones from the captured ``/object_info``.
    """
    defs = {}
    for node_id, info in _load(CORE_OBJECT_INFO).items():
        order = info.get("input_order", {})
        inputs = [(name, info["input"][section][name])
                  for section in ("required", "optional") for name in order.get(section, [])]
        defs[node_id] = {"inputs": inputs, "optional": set(order.get("optional", [])),
                         "outputs": list(info["output"])}
    for node_id, cls in nodes.items():
        spec = cls.INPUT_TYPES()
        inputs = [(name, entry) for section in ("required", "optional")
                  for name, entry in spec.get(section, {}).items()]
        defs[node_id] = {"inputs": inputs, "optional": set(spec.get("optional", {})),
                         "outputs": list(cls.RETURN_TYPES)}
    return defs


def _kind(spec) -> str | list:
    return spec[0]


def _options(spec) -> dict:
    return spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}


def _combo_values(spec) -> list | None:
    kind = _kind(spec)
    if isinstance(kind, list):
        return kind
    if kind == "COMBO":
        return _options(spec).get("options", [])
    return None


def _is_widget(spec) -> bool:
    kind = _kind(spec)
    return (isinstance(kind, list) or kind in WIDGET_TYPES) and not _options(spec).get("forceInput")


def _ui_type(kind) -> str:
    """The type the frontend gives a slot: a list (combo) becomes COMBO."""
    return "COMBO" if isinstance(kind, list) else kind


def _widget_slots(definition: dict) -> list[tuple[str, object]]:
    """(input name, spec) per widgets_values entry, with the UI-only widgets the frontend adds (spec None)."""
    slots = []
    for name, spec in definition["inputs"]:
        if not _is_widget(spec):
            continue
        slots.append((name, spec))
        opts = _options(spec)
        if _kind(spec) == "INT" and opts.get("control_after_generate"):
            slots.append((f"{name}:control_after_generate", None))
        if opts.get("image_upload") or opts.get("video_upload"):
            slots.append((f"{name}:upload", None))
    return slots


def _check_value(node_type: str, name: str, spec, value) -> None:
    where = f"{node_type}.{name} = {value!r}"
    kind, opts = _kind(spec), _options(spec)
    combo = _combo_values(spec)
    if combo is not None:
        assert isinstance(value, str) and value, where
        if (node_type, name) not in FILE_COMBOS:
            assert value in combo, f"{where} is not one of {combo}"
    elif kind == "BOOLEAN":
        assert isinstance(value, bool), where
    elif kind == "STRING":
        assert isinstance(value, str), where
    elif kind in ("INT", "FLOAT"):
        assert isinstance(value, (int, float)) and not isinstance(value, bool), where
        if kind == "INT":
            assert float(value).is_integer(), where
        assert opts.get("min", float("-inf")) <= value <= opts.get("max", float("inf")), \
            f"{where} outside {opts.get('min')}..{opts.get('max')}"
    else:
        raise AssertionError(f"{where}: {kind} is not a widget type")


def _used_types() -> set[str]:
    return {n["type"] for wf in WORKFLOWS for n in _load(wf)["nodes"]}


def test_workflows_and_thumbnails_exist():
    names = {wf.stem for wf in WORKFLOWS}
    assert {"modular_restore", "restore_aligned_faces", "one_node_restore", "sd_txt2img_restore",
            "best_settings_restore", "video_restore"} <= names
    for wf in WORKFLOWS:
        assert wf.with_suffix(".jpg").is_file(), f"{wf.name} has no thumbnail {wf.stem}.jpg"
        assert _load(wf)["version"] == 0.4


def test_core_fixture_holds_exactly_the_core_nodes_used(nodes):
    core = set(_load(CORE_OBJECT_INFO))
    assert core == _used_types() - set(nodes) - FRONTEND_ONLY


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_node_types_exist(path, definitions):
    unknown = {n["type"] for n in _load(path)["nodes"]} - set(definitions) - FRONTEND_ONLY
    assert not unknown, f"{path.name}: unknown node types {unknown}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_widget_values_fit_the_inputs(path, definitions):
    for node in _load(path)["nodes"]:
        if node["type"] in FRONTEND_ONLY:
            assert [type(v) for v in node["widgets_values"]] == [str]
            continue
        slots = _widget_slots(definitions[node["type"]])
        values = node.get("widgets_values", [])
        assert len(values) == len(slots), \
            f"{path.name} node {node['id']} {node['type']}: {len(values)} widget values for {[s for s, _ in slots]}"
        for (name, spec), value in zip(slots, values):
            if spec is None:  # UI-only widget
                if name.endswith(":control_after_generate"):
                    assert value in CONTROL_VALUES, f"{node['type']}.{name} = {value!r}"
                continue
            _check_value(node["type"], name, spec, value)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_links_connect_matching_types(path, definitions):
    wf = _load(path)
    by_id = {n["id"]: n for n in wf["nodes"]}
    linked = set()
    for link_id, src, src_slot, dst, dst_slot, link_type in wf["links"]:
        source, target = by_id[src], by_id[dst]
        out_type = definitions[source["type"]]["outputs"][src_slot]
        slot = target["inputs"][dst_slot]
        inputs = dict(definitions[target["type"]]["inputs"])
        assert slot["name"] in inputs, f"{target['type']} has no input {slot['name']}"
        in_type = _kind(inputs[slot["name"]])
        where = f"{path.name} link {link_id}: {source['type']}[{src_slot}] -> {target['type']}.{slot['name']}"
        # As ComfyUI's validation: equal types (a combo output must list the same options), or "*".
        assert out_type == in_type or "*" in (out_type, in_type), f"{where}: {out_type} vs {in_type}"
        assert link_type == _ui_type(out_type), f"{where}: link says {link_type}"
        assert slot["type"] in (_ui_type(in_type), "*"), f"{where}: slot says {slot['type']}"
        assert slot["link"] == link_id and link_id in source["outputs"][src_slot]["links"], where
        if _is_widget(inputs[slot["name"]]):
            assert slot.get("widget") == {"name": slot["name"]}, f"{where}: a linked widget needs 'widget'"
        linked.add((dst, slot["name"]))
    for node in wf["nodes"]:
        if node["type"] in FRONTEND_ONLY:
            continue
        definition = definitions[node["type"]]
        required = [name for name, spec in definition["inputs"]
                    if not _is_widget(spec) and name not in definition["optional"]]
        missing = [name for name in required if (node["id"], name) not in linked]
        assert not missing, f"{path.name} node {node['id']} {node['type']}: required inputs not connected {missing}"
        for slot in node.get("inputs", []):
            assert slot["link"] is None or any(link[0] == slot["link"] for link in wf["links"]), slot

