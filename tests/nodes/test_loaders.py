"""Loader nodes: combo lists, .pth / .safetensors, user folders, downloads of missing known files, errors."""

from __future__ import annotations

import shutil

import comfy.utils
import folder_paths
import pytest
import torch


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

