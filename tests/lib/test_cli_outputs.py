"""codeformer.cli.outputs: output paths checked before any work, atomic writes, transparency carried over."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import cli_args, gradient, locked_folder

from codeformer.cli import main, outputs
from codeformer.cli.images import read_image
from codeformer.cli.outputs import write_image


def test_write_image_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    write_image(target, np.zeros((4, 4, 3), np.uint8))
    before = target.read_bytes()

    def fail(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(outputs.os, "replace", fail)
    with pytest.raises(KeyboardInterrupt):
        write_image(target, np.full((4, 4, 3), 255, np.uint8))
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]  # no .part left behind


def test_cli_output_checks_before_models_load(models_dir, tmp_path, capsys, monkeypatch):
    """Existing outputs, -o naming a file, bad option values and devices are refused before any model loads."""
    from codeformer import models

    monkeypatch.setattr(models, "load_codeformer", lambda path: pytest.fail("models loaded"))
    write_image(tmp_path / "a.png", gradient(40, 50))
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").write_bytes(b"the user's own file")
    run = ["restore", str(tmp_path / "a.png"), "--models-dir", str(models_dir), "--offline"]
    assert main([*run, "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "1 output file(s) already exist" in err and str(out / "a.png") in err and "--overwrite" in err
    assert (out / "a.png").read_bytes() == b"the user's own file"
    for bad, message in (
        (["-o", str(out / "a.png")], "is a file; -o takes a folder"),
        (["-o", str(tmp_path / "new.png")], "looks like a file name"),
        (["-o", str(tmp_path / "o2"), "--device", "bogus"], "unknown device 'bogus'"),
    ):
        assert main([*run, *bad]) == 2
        assert message in capsys.readouterr().err
    for option in (["--batch-size", "0"], ["--tile", "-5"], ["--max-faces", "-1"]):
        with pytest.raises(SystemExit) as info:
            main([*run, "-o", str(tmp_path / "o3"), *option])
        assert info.value.code == 2 and "is below" in capsys.readouterr().err
    assert not (tmp_path / "new.png").exists() and not (tmp_path / "o2").exists()


def test_cli_output_folder_equal_to_input_folder(models_dir, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    write_image(folder / "a.png", gradient(40, 50))
    write_image(folder / "b.jpg", gradient(30, 20))
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    # a.png would be replaced by its own output: refused before any image is processed
    assert main(["restore", str(folder), *cli_args(models_dir, folder)]) == 2
    assert "refusing to overwrite input file" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # b.png was not written either
    # without a clash the folder may be its own output folder; the inputs stay as they were
    (folder / "a.png").unlink()
    assert main(["restore", str(folder), *cli_args(models_dir, folder), "--upscale", "1"]) == 0, capsys.readouterr().err
    assert (folder / "b.jpg").read_bytes() == before["b.jpg"]
    assert read_image(folder / "b.png").shape == (30, 20, 3)


def test_cli_keeps_transparency_and_restores_the_colours_as_without_it(models_dir, tmp_path):
    from PIL import Image

    rgb = gradient(40, 50)
    alpha = np.tile(np.linspace(0, 255, 50).astype(np.uint8), (40, 1))
    Image.fromarray(np.dstack([rgb, alpha])).save(tmp_path / "cutout.png")
    write_image(tmp_path / "opaque.png", rgb)
    assert main(["restore", str(tmp_path / "cutout.png"), str(tmp_path / "opaque.png"),
                 *cli_args(models_dir, tmp_path / "out")]) == 0
    out = cv2.imread(str(tmp_path / "out" / "cutout.png"), cv2.IMREAD_UNCHANGED)
    assert out.shape == (80, 100, 4)
    assert np.array_equal(out[:, :, :3], cv2.imread(str(tmp_path / "out" / "opaque.png")))  # colours: as without
    assert np.array_equal(out[:, :, 3], cv2.resize(alpha, (100, 80), interpolation=cv2.INTER_LINEAR))
    assert cv2.imread(str(tmp_path / "out" / "opaque.png"), cv2.IMREAD_UNCHANGED).shape == (80, 100, 3)


def _refuse_writes_in(folder, monkeypatch, error):
    """Make every temporary file in ``folder`` fail with ``error`` (root writes into read-only folders anyway)."""
    real = outputs.tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):  # noqa: A002 - tempfile's own name
        if dir is not None and folder in (Path(dir), *Path(dir).parents):
            raise error
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(outputs.tempfile, "mkstemp", mkstemp)


def test_a_read_only_output_folder_is_refused_before_models_load(models_dir, tmp_path, capsys, monkeypatch):
    from codeformer import models

    monkeypatch.setattr(models, "load_codeformer", lambda path: pytest.fail("models loaded"))
    write_image(tmp_path / "a.png", gradient(40, 50))
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    if os.access(folder, os.W_OK):  # running as root: refuse as a read-only disk would
        _refuse_writes_in(folder, monkeypatch, OSError(errno.EROFS, "Read-only file system", str(folder)))
    try:
        assert main(["restore", str(tmp_path / "a.png"), *cli_args(models_dir, folder)]) == 2
    finally:
        folder.chmod(0o755)
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot write into the output folder {folder}: ") and err.count("\n") == 1
    assert "choose an output folder you can write to (-o)" in err
    assert list(folder.iterdir()) == []


def test_a_write_failing_mid_run_stops_with_one_line(models_dir, tmp_path, capsys, monkeypatch):
    """A full disk: the images written before are complete, the failing one leaves no partial file, exit 1."""
    for name in ("a.png", "b.png", "c.png"):
        write_image(tmp_path / name, gradient(40, 50))
    real, calls = outputs.os.replace, []

    def replace(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(src, dst)

    monkeypatch.setattr(outputs.os, "replace", replace)
    out = tmp_path / "out"
    assert main(["restore", *(str(tmp_path / n) for n in ("a.png", "b.png", "c.png")), *cli_args(models_dir, out),
                 "--upscale", "1"]) == 1
    err = capsys.readouterr().err
    assert err == (f"error: cannot write {out / 'b.png'}: No space left on device; free some disk space, or choose "
                   "an output folder on another disk (-o) (the images written before it are complete)\n")
    assert sorted(p.name for p in out.iterdir()) == ["a.png"] and read_image(out / "a.png").shape == (40, 50, 3)


@pytest.mark.parametrize("inside", [False, True])
def test_an_output_folder_that_cannot_be_looked_into_is_one_line(models_dir, tmp_path, capsys, monkeypatch, inside):
    """``-o`` under a folder the user may not enter (Path.exists raises PermissionError there), or ``-o`` that folder
    itself: one error line naming it before any work, not a traceback."""
    from codeformer import models

    monkeypatch.setattr(models, "load_codeformer", lambda path: pytest.fail("models loaded"))
    write_image(tmp_path / "a.png", gradient(40, 50))
    locked = tmp_path / "locked"
    locked.mkdir()
    output = locked / "out" if inside else locked
    with locked_folder(locked, monkeypatch):
        assert main(["restore", str(tmp_path / "a.png"), *cli_args(models_dir, output)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot look into the output folder {output}: Permission denied; ")
    assert err.count("\n") == 1 and "choose an output folder you can write to (-o)" in err
    assert list(locked.iterdir()) == []
