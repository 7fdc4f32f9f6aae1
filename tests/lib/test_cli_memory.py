"""codeformer.cli.memory: images too large for the free memory are skipped before the work."""

from __future__ import annotations

from helpers import cli_args, gradient

from codeformer.cli import main, memory
from codeformer.cli.outputs import write_image


def test_cli_skips_an_image_too_large_for_the_free_memory(models_dir, tmp_path, capsys, monkeypatch):
    write_image(tmp_path / "big.png", gradient(600, 800))
    write_image(tmp_path / "small.png", gradient(60, 80))
    free = memory.BYTES_PER_OUTPUT_PIXEL * 1200 * 1600 - 1  # big.png at -s 2 needs one byte more
    monkeypatch.setattr(memory, "available_host_memory", lambda: free)
    assert main(["restore", str(tmp_path / "big.png"), str(tmp_path / "small.png"),
                 *cli_args(models_dir, tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'big.png'}: restoring its 800x600 pixels at --upscale 2 needs about 0.1 GB" in err
    assert "use --upscale 1.9 or less; skipped" in err and "1 of 2 input(s) were skipped" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["small.png"]
    assert main(["restore", str(tmp_path / "big.png"), *cli_args(models_dir, tmp_path / "out"), "-s", "1.9"]) == 0
    monkeypatch.setattr(memory, "available_host_memory", lambda: 1_000_000)  # read, but not restored
    assert main(["restore", str(tmp_path / "small.png"), *cli_args(models_dir, tmp_path / "o2"), "-s", "1"]) == 2
    assert "it does not fit even at --upscale 1" in capsys.readouterr().err
    monkeypatch.setattr(memory, "available_host_memory", lambda: 1000)  # not even read
    assert main(["restore", str(tmp_path / "small.png"), *cli_args(models_dir, tmp_path / "o2"), "-s", "1"]) == 2
    assert "small.png: its header declares 80x60 pixels: reading it needs about 0.0 GB" in capsys.readouterr().err
    monkeypatch.setattr(memory, "available_host_memory", lambda: None)  # the system does not say: no check
    assert main(["restore", str(tmp_path / "small.png"), *cli_args(models_dir, tmp_path / "o3"), "-s", "8"]) == 0


def test_cli_counts_the_paste_canvas_of_small_sources(monkeypatch):
    # a 100 px source is pasted on its 512 px working image x the scale: 1024 px at -s 2, not its 200 px output
    monkeypatch.setattr(memory, "available_host_memory", lambda: memory.BYTES_PER_OUTPUT_PIXEL * 1024 * 1024)
    assert memory.too_large((100, 100), 2.0) is None
    assert "needs about" in memory.too_large((100, 100), 2.1)


def test_large_buffers_are_mapped_on_their_own_under_glibc():
    """The CLI sets glibc's mmap threshold (flat memory over a long clip); elsewhere it says it could not."""
    import platform

    from codeformer.cli.memory import map_large_buffers

    assert map_large_buffers() == (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")
