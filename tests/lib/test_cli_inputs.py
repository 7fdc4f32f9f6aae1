"""codeformer.cli.inputs: which files of the paths named are inputs."""

from __future__ import annotations

import os
import socket

import pytest

from helpers import cli_args, gradient, locked_folder

from codeformer.cli import main
from codeformer.cli.inputs import Inputs, find_inputs
from codeformer.cli.outputs import write_image


def test_cli_inputs_in_order_each_once(tmp_path):
    for name in ("b.png", "a.png"):
        write_image(tmp_path / name, gradient(8, 8))
    named = [str(tmp_path / "b.png"), str(tmp_path), str(tmp_path / "b.png")]  # b, then the folder (a, b), b again
    assert find_inputs(named) == Inputs((tmp_path / "b.png", tmp_path / "a.png"))


def test_cli_folder_without_images_exit_2(models_dir, tmp_path, capsys):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("no images here")
    assert main(["restore", str(tmp_path / "docs"), *cli_args(models_dir, tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "docs" in err and "has no images" in err and ".png" in err


def _odd_entries(folder) -> dict[str, str]:
    """A FIFO, a socket, a link to a character device, a broken link and a link loop in ``folder``: name -> kind."""
    os.mkfifo(folder / "pipe.png")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(folder / "sock"))  # any name: not an image either way, but not passed over in silence
    os.symlink("/dev/null", folder / "null.jpg")
    os.symlink(folder / "gone.png", folder / "dangling.png")
    os.symlink(folder / "loop.png", folder / "loop.png")
    return {"pipe.png": "is a FIFO (named pipe), not an image file", "sock": "is a socket, not an image file",
            "null.jpg": "is a character device, not an image file",
            "dangling.png": f"is a broken link (to {folder / 'gone.png'})",
            "loop.png": "cannot be looked at (Too many levels of symbolic links)"}


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX file kinds")
def test_entries_that_are_not_files_are_skipped_by_name_never_opened(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    odd = _odd_entries(folder)
    write_image(folder / "good.png", gradient(8, 8))
    (folder / "notes.txt").write_text("not an image")  # other files: not inputs, as before
    (folder / "sub").mkdir()  # folders are not entered (not recursive) and not reported
    (folder / ".hidden.png").write_bytes(b"")
    inputs = find_inputs([str(folder), str(folder / "pipe.png")])  # a FIFO named directly: skipped once
    assert inputs.images == (folder / "good.png",)
    assert dict(inputs.skipped) == {folder / name: why for name, why in odd.items()}
    assert inputs.total == 1 + len(odd)
    only_odd = tmp_path / "odd"
    only_odd.mkdir()
    os.mkfifo(only_odd / "pipe.png")
    assert find_inputs([str(only_odd)]) == Inputs((), ((only_odd / "pipe.png", odd["pipe.png"]),))


def test_an_input_in_a_folder_that_cannot_be_entered_is_skipped_with_the_reason(models_dir, tmp_path, capsys,
                                                                                 monkeypatch):
    """A file named under a folder without permission to enter: skipped with its own error line (exit 2), the others
    restored; not a PermissionError traceback (Path.is_dir and exists raise it there)."""
    write_image(tmp_path / "good.png", gradient(40, 50))
    locked = tmp_path / "locked"
    locked.mkdir()
    write_image(locked / "hidden.png", gradient(40, 50))
    with locked_folder(locked, monkeypatch):
        code = main(["restore", str(locked / "hidden.png"), str(tmp_path / "good.png"),
                     *cli_args(models_dir, tmp_path / "out")])
    assert code == 2
    err = capsys.readouterr().err
    assert f"error: {locked / 'hidden.png'} cannot be looked at (Permission denied); skipped" in err
    assert "Traceback" not in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.png"]
