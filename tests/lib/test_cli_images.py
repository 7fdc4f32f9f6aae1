"""codeformer.cli.images: reading the inputs (the official colour read, transparency, notes), and skipping
the files that cannot be read."""

from __future__ import annotations

import cv2
import numpy as np
from helpers import cli_args, gradient
from PIL import Image

from codeformer.cli import main
from codeformer.cli.images import read_image, read_input
from codeformer.cli.outputs import write_image


def test_cli_unreadable_images_exit_2(models_dir, tmp_path, capsys):
    (tmp_path / "empty.png").write_bytes(b"")
    good = cv2.imencode(".png", gradient(40, 50))[1].tobytes()
    (tmp_path / "cut.png").write_bytes(good[: len(good) // 2])
    for name in ("empty.png", "cut.png"):
        assert main(["restore", str(tmp_path / name), *cli_args(models_dir, tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert name in err and "not a readable image" in err
    assert not (tmp_path / "out" / "empty.png").exists() and not (tmp_path / "out" / "cut.png").exists()


def test_cli_unreadable_file_in_a_folder_skips_only_that_file(models_dir, tmp_path, capsys):
    """One broken file (or a macOS ._ file) does not stop a folder: the others are written, the exit code is 2."""
    folder = tmp_path / "photos"
    folder.mkdir()
    write_image(folder / "a.png", gradient(40, 50))
    (folder / "b.png").write_text("not an image")
    (folder / "._a.png").write_bytes(b"\x00\x05\x16\x07")  # AppleDouble: hidden, not an input
    write_image(folder / "c.png", gradient(30, 20))
    assert main(["restore", str(folder), *cli_args(models_dir, tmp_path / "out"), "--upscale", "1"]) == 2
    err = capsys.readouterr().err
    assert "b.png is not a readable image" in err and "1 of 3 input(s) were skipped" in err and "._a" not in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "c.png"]


def test_cli_notes_what_it_leaves_out(tmp_path):
    frames = [Image.new("RGB", (16, 16), (i * 60, 0, 0)) for i in range(3)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    source = read_input(tmp_path / "anim.gif")
    assert source.rgb.shape == (16, 16, 3) and source.notes == ("only the first of its 3 frames is restored",)
    deep = (np.arange(20 * 30 * 3).reshape(20, 30, 3) * 70 % 65536).astype(np.uint16)
    for name in ("deep.png", "deep.tif"):
        cv2.imwrite(str(tmp_path / name), deep)
        source = read_input(tmp_path / name)
        assert source.notes == ("it has 16 bits per channel: it is restored and written with 8 (as the official code)",)
        assert np.array_equal(source.rgb, read_image(tmp_path / name))  # the official read
    write_image(tmp_path / "plain.png", gradient(10, 10))
    plain = read_input(tmp_path / "plain.png")
    assert plain.alpha is None and plain.notes == ()


def test_transparency_is_read_beside_the_official_colour_read(tmp_path):
    rgba = np.dstack([gradient(20, 30), np.tile(np.arange(30, dtype=np.uint8) * 8, (20, 1))])
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    source = read_input(tmp_path / "rgba.png")
    assert np.array_equal(source.alpha, rgba[:, :, 3]) and source.notes == ()
    assert np.array_equal(source.rgb, read_image(tmp_path / "rgba.png"))
    Image.fromarray(np.full((8, 8, 4), 255, np.uint8)).save(tmp_path / "opaque.png")  # alpha channel, all opaque
    assert read_input(tmp_path / "opaque.png").alpha is None
    palette = Image.fromarray(gradient(8, 8)).convert("P")  # palette image with one transparent colour
    palette.save(tmp_path / "palette.png", transparency=palette.getpixel((0, 0)))
    alpha = read_input(tmp_path / "palette.png").alpha
    assert alpha is not None and alpha[0, 0] == 0 and alpha.max() == 255
    rotated = Image.fromarray(rgba)  # EXIF orientation 6 (90 degrees): OpenCV turns the colours, the alpha follows
    exif = rotated.getexif()
    exif[0x0112] = 6
    rotated.save(tmp_path / "rotated.png", exif=exif.tobytes())
    source = read_input(tmp_path / "rotated.png")
    assert source.rgb.shape == (30, 20, 3) and np.array_equal(source.alpha, np.rot90(rgba[:, :, 3], -1))


def test_large_images_are_read_past_pils_size_limit(tmp_path, monkeypatch):
    import warnings

    Image.fromarray(np.dstack([gradient(20, 30), np.full((20, 30), 100, np.uint8)])).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # as if 20x30 were a 200 MP panorama: PIL would refuse it
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        source = read_input(tmp_path / "big.png")
    assert source.rgb.shape == (20, 30, 3) and source.alpha is not None and source.alpha.max() == 100
    assert Image.MAX_IMAGE_PIXELS == 100  # the limit is back for everything else
