"""codeformer.cli.inputs: which files of the paths named are inputs."""

from __future__ import annotations

from helpers import cli_args, gradient

from codeformer.cli import main
from codeformer.cli.inputs import find_inputs
from codeformer.cli.outputs import write_image


def test_cli_inputs_in_order_each_once(tmp_path):
    for name in ("b.png", "a.png"):
        write_image(tmp_path / name, gradient(8, 8))
    named = [str(tmp_path / "b.png"), str(tmp_path), str(tmp_path / "b.png")]  # b, then the folder (a, b), b again
    assert find_inputs(named) == [tmp_path / "b.png", tmp_path / "a.png"]


def test_cli_folder_without_images_exit_2(models_dir, tmp_path, capsys):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("no images here")
    assert main(["restore", str(tmp_path / "docs"), *cli_args(models_dir, tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "docs" in err and "has no images" in err and ".png" in err
