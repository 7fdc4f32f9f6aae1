"""The command line: aligned and whole-image modes, exit codes, never overwriting inputs."""

from __future__ import annotations

import shutil

import numpy as np

from codeformer.cli import main
from codeformer.image_io import read_image, write_image
from weights import IMAGES


def test_aligned_mode(models_dir, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(IMAGES / "aligned_0240.png", src / "face.png")
    code = main(["restore", str(src), "-o", str(tmp_path / "out"), "--aligned", "--fidelity", "0.7",
                 "--models-dir", str(models_dir), "--offline", "--device", "cpu", "--precision", "fp32"])
    assert code == 0, capsys.readouterr().err
    out = read_image(tmp_path / "out" / "face.png")
    assert out.shape == (512, 512, 3)


def test_whole_image_mode(models_dir, tmp_path, capsys):
    image = read_image(IMAGES / "whole_02.png")[100:400, 300:700]  # 400x300 crop with a face
    write_image(tmp_path / "small.png", image)
    code = main(["restore", str(tmp_path / "small.png"), "-o", str(tmp_path / "out"), "--upscale", "2",
                 "--detector", "retinaface_mobile0.25", "--max-faces", "1", "--save-faces",
                 "--models-dir", str(models_dir), "--offline", "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    out = read_image(tmp_path / "out" / "small.png")
    assert out.shape == (600, 800, 3)  # input x upscale, although the short side < 512 is processed at 512
    assert (tmp_path / "out" / "faces" / "small_00_crop.png").exists()
    assert (tmp_path / "out" / "faces" / "small_00_restored.png").exists()


def test_precision_and_batch_size_reach_the_pipeline(models_dir, tmp_path, monkeypatch):
    from codeformer import pipeline

    seen = {}

    def fake_restore_images(images, **kwargs):
        seen.update(kwargs)
        return [pipeline.PasteResult(images[0].astype(np.float32), np.zeros(images[0].shape[:2]))], [], None, None

    monkeypatch.setattr(pipeline, "restore_images", fake_restore_images)
    write_image(tmp_path / "flat.png", np.full((64, 80, 3), 128, np.uint8))
    code = main(["restore", str(tmp_path / "flat.png"), "-o", str(tmp_path / "out"), "--precision", "bf16",
                 "--batch-size", "3", "--detector", "retinaface_mobile0.25", "--models-dir", str(models_dir),
                 "--offline", "--device", "cpu"])
    assert code == 0
    assert seen["precision"] == "bf16" and seen["codeformer"].precision == "bf16" and seen["batch_size"] == 3
    assert seen["face_upsample"] == "off"
    common = [str(tmp_path / "flat.png"), "--detector", "retinaface_mobile0.25", "--models-dir", str(models_dir),
              "--offline", "--device", "cpu", "--overwrite"]
    for flags, mode in ((["--face-upsample"], "always"), (["--face-upsample-mode", "auto"], "auto"),
                        (["--face-upsample", "--face-upsample-mode", "auto"], "auto")):
        assert main(["restore", *common, "-o", str(tmp_path / "out"), *flags]) == 0
        assert seen["face_upsample"] == mode and seen["upscaler"] is not None


def test_no_face_image_is_only_resized(models_dir, tmp_path):
    flat = np.full((64, 80, 3), 128, np.uint8)
    write_image(tmp_path / "flat.png", flat)
    code = main(["restore", str(tmp_path / "flat.png"), "-o", str(tmp_path / "out"), "--upscale", "1",
                 "--detector", "retinaface_mobile0.25", "--models-dir", str(models_dir), "--offline"])
    assert code == 0
    np.testing.assert_array_equal(read_image(tmp_path / "out" / "flat.png"), flat)


def test_bad_inputs(models_dir, tmp_path, capsys):
    args = ["-o", str(tmp_path / "out"), "--models-dir", str(models_dir), "--offline"]
    assert main(["restore", str(tmp_path / "missing.png"), *args]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["restore", str(tmp_path / "empty"), *args]) == 2
    assert "has no images" in capsys.readouterr().err
    (tmp_path / "junk.png").write_bytes(b"not an image")
    assert main(["restore", str(tmp_path / "junk.png"), *args, "--aligned"]) == 2
    err = capsys.readouterr().err
    assert "not a readable image" in err and "1 of 1 input(s) were skipped (see above); nothing was" in err


def test_never_overwrites_inputs(models_dir, tmp_path, capsys):
    shutil.copy(IMAGES / "aligned_0240.png", tmp_path / "face.png")
    before = (tmp_path / "face.png").read_bytes()
    code = main(["restore", str(tmp_path / "face.png"), "-o", str(tmp_path), "--aligned",
                 "--models-dir", str(models_dir), "--offline"])
    assert code == 2 and "refusing to overwrite" in capsys.readouterr().err
    assert (tmp_path / "face.png").read_bytes() == before


def test_offline_missing_model_names_url_and_path(tmp_path, capsys):
    shutil.copy(IMAGES / "aligned_0240.png", tmp_path / "face.png")
    code = main(["restore", str(tmp_path / "face.png"), "-o", str(tmp_path / "out"), "--aligned",
                 "--models-dir", str(tmp_path / "models"), "--offline"])
    err = capsys.readouterr().err
    assert code == 1
    assert "https://github.com/sczhou/CodeFormer/releases/download/v0.1.0/codeformer.pth" in err
    assert str(tmp_path / "models" / "facerestore_models" / "codeformer.pth") in err
