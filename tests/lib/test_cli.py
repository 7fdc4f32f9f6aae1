"""The command line (``codeformer.cli.main`` and its runs): aligned and whole-image modes, exit codes, which errors
are one line and which keep their traceback, never overwriting inputs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from helpers import cli_args
from tiny_networks import use_tiny_networks
from weights import IMAGES

from codeformer import cli
from codeformer.cli import main, run
from codeformer.cli.images import read_image
from codeformer.cli.outputs import write_image
from codeformer.errors import InputError, OutOfMemory
from codeformer.pipeline import PasteResult, RestoreResult
from codeformer.types import Faces


def test_aligned_mode(models_dir, tmp_path, capsys, monkeypatch):
    use_tiny_networks(monkeypatch)  # the full-size networks through --aligned: test_restorers (GFPGAN, RestoreFormer)
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(IMAGES / "aligned_0240.png", src / "face.png")
    code = main(["restore", str(src), "-o", str(tmp_path / "out"), "--aligned", "--fidelity", "0.7",
                 "--models-dir", str(models_dir), "--offline", "--device", "cpu", "--precision", "fp32"])
    assert code == 0, capsys.readouterr().err
    out = read_image(tmp_path / "out" / "face.png")
    assert out.shape == (512, 512, 3)


def test_whole_image_mode(models_dir, tmp_path, capsys, monkeypatch):
    use_tiny_networks(monkeypatch)  # the full-size networks through the CLI: the Ray tests' single run
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


def recording_restore(record: Callable[[np.ndarray, dict], None]) -> Callable[..., RestoreResult]:
    """A stand-in for ``restore_images`` that records what the CLI asked for (flattened) and returns the image."""

    def fake_restore_images(images, networks, settings, **kwargs):
        record(images[0], dict(kwargs, codeformer=networks.restorer, upscaler=networks.upscaler,
                               fidelity=settings.fidelity, upscale=settings.upscale,
                               background_enhance=settings.background_enhance,
                               face_upsample=settings.paste.face_upsample))
        none = np.zeros((0, 512, 512, 3), np.uint8)
        return RestoreResult([PasteResult(images[0].astype(np.float32), np.zeros(images[0].shape[:2]))],
                             Faces((), (images[0].shape[:2],)), none, none)

    return fake_restore_images


def test_precision_and_batch_size_reach_the_pipeline(models_dir, tmp_path, monkeypatch):
    use_tiny_networks(monkeypatch)  # four runs: loading the full-size files would cost seconds each
    seen = {}
    monkeypatch.setattr(run, "restore_images", recording_restore(lambda image, asked: seen.update(asked)))
    write_image(tmp_path / "flat.png", np.full((64, 80, 3), 128, np.uint8))
    code = main(["restore", str(tmp_path / "flat.png"), "-o", str(tmp_path / "out"), "--precision", "bf16",
                 "--batch-size", "3", "--detector", "retinaface_mobile0.25", "--models-dir", str(models_dir),
                 "--offline", "--device", "cpu"])
    assert code == 0
    assert seen["precision"] == "bf16" and seen["codeformer"].precision == "bf16" and seen["batch_size"] == 3
    assert seen["face_upsample"] == "off" and seen["upscaler"] is None
    assert (seen["fidelity"], seen["upscale"], seen["background_enhance"]) == (0.5, 2.0, False)  # official defaults
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
    assert "not a readable image" in err and "1 of 1 input(s) were skipped (see the errors above); nothing was" in err


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


def test_best_settings_choose_each_images_settings(models, models_dir, tmp_path, monkeypatch, capsys):
    from codeformer.advisor import advise_image, face_upsample_mode

    seen = {}
    monkeypatch.setattr(run, "restore_images",
                        recording_restore(lambda image, asked: seen.__setitem__(image.shape, asked)))
    close_up = read_image(IMAGES / "aligned_0240.png")  # one face filling the frame
    group = read_image(IMAGES / "whole_02.png")  # 4 faces: a wide shot
    write_image(tmp_path / "close_up.png", close_up)
    write_image(tmp_path / "group.png", group)
    write_image(tmp_path / "large.png", np.full((100, 2100, 3), 128, np.uint8))  # no face, long side >= 2048
    args = ["restore", str(tmp_path / "close_up.png"), str(tmp_path / "group.png"), str(tmp_path / "large.png"),
            "-o", str(tmp_path / "out"), "--detector", "retinaface_mobile0.25", "--models-dir", str(models_dir),
            "--offline", "--device", "cpu"]
    assert main([*args, "--best-settings", "photo"]) == 0
    printed = capsys.readouterr().out.splitlines()
    for image, line in zip((close_up, group, np.full((100, 2100, 3), 128, np.uint8)), printed, strict=True):
        advice = advise_image(image, models.detector, "photo")
        used = seen[image.shape]
        assert (used["fidelity"], used["upscale"], used["background_enhance"], used["face_upsample"]) == \
            (advice.fidelity, advice.upscale, advice.background_enhance, face_upsample_mode(advice, "photo"))
        assert used["upscaler"] is not None  # face upsample is on for photos: the upscaler was loaded
        assert advice.reason in line
    assert seen[close_up.shape]["fidelity"] == 1.0 and not seen[close_up.shape]["background_enhance"]
    assert seen[group.shape]["fidelity"] == 0.7 and seen[group.shape]["background_enhance"]
    assert seen[(100, 2100, 3)]["upscale"] == 1.0
    assert "close_up.png: fidelity 1, background enhance off, face upsample always, upscale 2 (" in printed[0]


def test_best_settings_refuse_settings_given_by_hand(models_dir, tmp_path, capsys):
    write_image(tmp_path / "flat.png", np.full((64, 80, 3), 128, np.uint8))
    run = ["restore", str(tmp_path / "flat.png"), "-o", str(tmp_path / "out"), "--best-settings", "ai_generated"]
    assert main([*run, "-w", "0.7", "--face-upsample-mode", "auto"]) == 2
    assert "--best-settings chooses the settings itself: drop --fidelity, --face-upsample" in capsys.readouterr().err
    assert main([*run, "--aligned"]) == 2
    assert "aligned faces have no shot to judge" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cli_out_of_memory_exit_1(models_dir, tmp_path, capsys, monkeypatch):
    def oom(*args, **kwargs):
        raise OutOfMemory("out of memory running CodeFormer on a single input; free memory, or run on the CPU")

    monkeypatch.setattr(run, "restore_faces", oom)
    shutil.copy(IMAGES / "aligned_0240.png", tmp_path / "face.png")
    assert main(["restore", str(tmp_path / "face.png"), "--aligned", *cli_args(models_dir, tmp_path / "out")]) == 1
    assert "error: out of memory" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # made by the run, left empty: removed


def test_cli_interrupt_exit_130_leaves_no_partial_file(models_dir, tmp_path, capsys, monkeypatch):
    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(run, "read_input", interrupted)
    shutil.copy(IMAGES / "aligned_0240.png", tmp_path / "face.png")
    assert main(["restore", str(tmp_path / "face.png"), "--aligned", *cli_args(models_dir, tmp_path / "out")]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing written: the folder the run made is gone too


def _aligned_run(models_dir, tmp_path) -> list[str]:
    shutil.copy(IMAGES / "aligned_0240.png", tmp_path / "face.png")
    return ["restore", str(tmp_path / "face.png"), "--aligned", *cli_args(models_dir, tmp_path / "out")]


@pytest.mark.parametrize("error", [KeyError("settings"), ValueError("a bug, not a user error"), OSError(5, "EIO")])
def test_unexpected_exceptions_keep_their_traceback(models_dir, tmp_path, monkeypatch, error):
    """Only the project's own errors become one line: anything else is a bug and reaches the caller as it is."""
    def broken(*args, **kwargs):
        raise error

    monkeypatch.setattr(run, "restore_faces", broken)
    with pytest.raises(type(error)) as info:
        main(_aligned_run(models_dir, tmp_path))
    assert info.value is error
    assert not (tmp_path / "out").exists()  # the folder the run made is still removed


def test_unexpected_exception_prints_a_traceback(models_dir, tmp_path):
    """As a user sees it: ``python -m codeformer`` ends with the traceback of the bug (Python's exit code 1)."""
    shutil.copy(IMAGES / "aligned_0240.png", tmp_path / "face.png")
    script = ("import sys, codeformer.cli.run as run\n"
              "run.read_input = lambda *args: {}['no such key']\n"
              "from codeformer.cli import main\n"
              f"sys.exit(main({_aligned_run(models_dir, tmp_path)!r}))\n")
    root = Path(cli.__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=root)
    assert done.returncode == 1
    assert "Traceback (most recent call last)" in done.stderr and "KeyError: 'no such key'" in done.stderr
    assert "error:" not in done.stderr


def test_a_reader_gone_from_stdout_stops_the_run_quietly(models_dir, tmp_path):
    """``advise ... | head``: when the reader of the JSON lines has gone, the run stops with exit 141 (as a shell tool
    stopped by SIGPIPE) and says nothing on stderr: no traceback, no "Exception ignored" at exit."""
    shutil.copy(IMAGES / "whole_00.jpg", tmp_path / "photo.jpg")
    root = Path(cli.__file__).resolve().parents[2]
    child = subprocess.Popen(
        [sys.executable, "-m", "codeformer", "advise", str(tmp_path / "photo.jpg"), "--models-dir", str(models_dir),
         "--offline", "--device", "cpu", "--detector", "retinaface_mobile0.25"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=root)
    child.stdout.close()  # gone before the line is written
    stderr = child.stderr.read().decode()
    assert child.wait(timeout=300) == 141
    assert stderr == ""


@pytest.mark.parametrize(("error", "code"), [
    (InputError("fidelity 2 is outside 0..1; use 0 for quality, 1 for fidelity to the input"), 2),
    (MemoryError("Unable to allocate 2.68 GiB for an array with shape (30000, 30000, 3) and data type uint8"), 1),
])
def test_project_errors_and_out_of_memory_are_one_line(models_dir, tmp_path, capsys, monkeypatch, error, code):
    def failing(*args, **kwargs):
        raise error

    monkeypatch.setattr(run, "restore_faces", failing)
    assert main(_aligned_run(models_dir, tmp_path)) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err
    assert ("2.68 GiB" if isinstance(error, MemoryError) else str(error)) in err
