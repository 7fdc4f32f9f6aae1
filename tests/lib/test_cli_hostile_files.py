"""Hostile and damaged input files never crash a batch (issue 18): each is one ``error:`` line and no output, the
good images are restored, exit code 2, nothing else on the terminal, bounded time per file.

The reader is fuzzed case by case (hundreds of cases, milliseconds each); the whole CLI runs a few times on folders of
such files beside one good image without faces (restoring real faces would cost seconds each).
"""

from __future__ import annotations

import functools
import io
import os
import socket
import struct
import threading
import time
import uuid
import warnings
import zlib
from pathlib import Path
from unittest import mock

import cv2
import numpy as np
import pytest
from helpers import cli_args, gradient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from tiny_networks import use_tiny_networks

from codeformer.cli import images, main, memory
from codeformer.cli.errors import ImageReadError
from codeformer.cli.images import read_input
from codeformer.cli.outputs import write_image

EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")
FREE = 256 * 2**20  # the free memory the runs here see: giant declared sizes are refused, not decoded
SECONDS_PER_FILE = 5.0


# ---------------------------------------------------------------------------------------------- real files


@functools.cache
def seeds() -> dict[str, tuple[bytes, str]]:
    """Small real files of every input format (and variants: alpha, 16 bits, animation, progressive): name ->
    (bytes, extension)."""
    rgb = np.clip(gradient(24, 32).astype(int) + np.random.default_rng(0).integers(-20, 20, (24, 32, 3)), 0, 255)
    image = Image.fromarray(rgb.astype(np.uint8))
    found = {}
    for name, ext, fmt, extra in (
        ("png", ".png", "PNG", {}), ("jpeg", ".jpg", "JPEG", {}), ("jpeg_progressive", ".jpg", "JPEG",
                                                                    {"progressive": True}),
        ("webp", ".webp", "WEBP", {}), ("webp_lossless", ".webp", "WEBP", {"lossless": True}),
        ("tiff", ".tif", "TIFF", {}), ("bmp", ".bmp", "BMP", {}), ("gif", ".gif", "GIF", {}),
    ):
        found[name] = (_encode(image, fmt, **extra), ext)
    found["png_rgba"] = (_encode(image.convert("RGBA"), "PNG"), ".png")
    found["gif_animated"] = (_encode(image, "GIF", save_all=True, append_images=[image.rotate(90)]), ".gif")
    found["png_16bit"] = (cv2.imencode(".png", rgb.astype(np.uint16) * 257)[1].tobytes(), ".png")
    return found


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header(width: int, height: int) -> bytes:
    """A PNG of a few dozen bytes whose header declares ``width`` x ``height``."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\0" * 10)) + \
        _chunk(b"IEND", b"")


def declare_size(name: str, data: bytearray, width: int, height: int) -> bytearray:
    """``data`` (the seed ``name``) with the width and height fields of its header set (to their field's width)."""
    if name.startswith("png"):
        data[16:24] = struct.pack(">II", width & 0xFFFFFFFF, height & 0xFFFFFFFF)
        data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))  # a valid CRC: the decoder sees the size
    elif name.startswith("jpeg"):
        at = max(data.find(b"\xff\xc0"), data.find(b"\xff\xc2"))
        data[at + 5:at + 9] = struct.pack(">HH", height & 0xFFFF, width & 0xFFFF)
    elif name == "bmp":
        data[18:26] = struct.pack("<ii", *(v - 2**32 if v & 0x80000000 else v for v in (width & 0xFFFFFFFF,
                                                                                     height & 0xFFFFFFFF)))
    elif name.startswith("gif"):
        data[6:10] = struct.pack("<HH", width & 0xFFFF, height & 0xFFFF)  # the screen; then the first frame
        at = _gif_first_frame(data)
        data[at + 5:at + 9] = struct.pack("<HH", width & 0xFFFF, height & 0xFFFF)
    elif name == "webp":
        at = data.find(b"\x9d\x01\x2a") + 3
        data[at:at + 4] = struct.pack("<HH", width & 0x3FFF, height & 0x3FFF)
    elif name == "webp_lossless":
        bits = struct.unpack("<I", data[21:25])[0] & ~0xFFFFFFF
        data[21:25] = struct.pack("<I", bits | ((width - 1) & 0x3FFF) | (((height - 1) & 0x3FFF) << 14))
    elif name == "tiff":
        _tiff_size(data, width, height)
    return data


def _gif_first_frame(data: bytearray) -> int:
    """The offset of a GIF's first image descriptor (past the colour table and the extension blocks)."""
    at = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    while data[at] == 0x21:  # an extension: its label, then sub-blocks up to an empty one
        at += 2
        while data[at]:
            at += data[at] + 1
        at += 1
    assert data[at] == 0x2C
    return at


def _tiff_size(data: bytearray, width: int, height: int) -> None:
    """Set the ImageWidth and ImageLength tags of a little-endian TIFF's first directory (as LONGs)."""
    ifd = struct.unpack("<I", data[4:8])[0]
    for i in range(struct.unpack("<H", data[ifd:ifd + 2])[0]):
        at = ifd + 2 + 12 * i
        tag = struct.unpack("<H", data[at:at + 2])[0]
        if tag in (256, 257):
            data[at + 2:at + 12] = struct.pack("<HII", 4, 1, (width if tag == 256 else height) & 0xFFFFFFFF)


SIZES = st.one_of(st.sampled_from([0, 1, 2, 255, 16383, 30000, 65000, 65535, 100000, 2**20 + 1, 2**31 - 1,
                                   2**32 - 1]), st.integers(0, 2**32 - 1))


@st.composite
def hostile_file(draw: st.DrawFn) -> tuple[bytes, str]:
    """A damaged or hostile file and its extension: a real file cut short, bit-flipped, with header bytes or its
    declared size changed; random bytes; zero bytes; half the time under another format's extension."""
    kind = draw(st.sampled_from(["truncate", "bitflip", "overwrite", "size", "size", "random", "zeros"]))
    if kind == "random":
        return draw(st.binary(max_size=2048)), draw(st.sampled_from(EXTENSIONS))
    if kind == "zeros":
        return bytes(draw(st.integers(0, 2048))), draw(st.sampled_from(EXTENSIONS))
    name = draw(st.sampled_from(sorted(seeds())))
    raw, ext = seeds()[name]
    data = bytearray(raw)
    if kind == "truncate":
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif kind == "bitflip":
        for at, bit in draw(st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(0, 7)), min_size=1,
                                     max_size=8)):
            data[at] ^= 1 << bit
    elif kind == "overwrite":  # the header's fields: sizes, depths, colour types, offsets, counts
        at = draw(st.integers(0, min(len(data), 128) - 1))
        new = draw(st.binary(min_size=1, max_size=4))
        data[at:at + len(new)] = new
    else:
        data = declare_size(name, data, draw(SIZES), draw(SIZES))
    return bytes(data), draw(st.sampled_from(EXTENSIONS)) if draw(st.booleans()) else ext


def check_read(path: Path) -> bool:
    """Read ``path`` as the CLI does: an image, or an ImageReadError naming the file on one line; in bounded time.
    Returns whether it was read."""
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # none reaches the terminal either
            source = read_input(path)
    except ImageReadError as error:
        assert str(path) in str(error) and "\n" not in str(error), str(error)
        return False
    finally:
        assert time.perf_counter() - start < SECONDS_PER_FILE, path
    assert source.rgb.dtype == np.uint8 and source.rgb.ndim == 3 and source.rgb.shape[2] == 3
    assert source.alpha is None or source.alpha.shape == source.rgb.shape[:2]
    return True


# ---------------------------------------------------------------------------------------------- the reader


def test_the_seeds_are_read_and_their_size_fields_found(tmp_path):
    for name, (data, ext) in seeds().items():
        path = tmp_path / f"{name}{ext}"
        path.write_bytes(data)
        assert check_read(path), name
        path.write_bytes(bytes(declare_size(name, bytearray(data), 32, 24)))  # the same size again: still read
        assert check_read(path), name
        path.write_bytes(bytes(declare_size(name, bytearray(data), 7, 5)))
        header = images._header(path)
        assert header is not None and header.size == (5, 7), name


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=hostile_file())
def test_reader_never_raises_anything_but_its_own_error(tmp_path_factory, capfd, case):
    data, ext = case
    path = tmp_path_factory.getbasetemp() / f"fuzz{ext}"
    path.write_bytes(data)
    with mock.patch.object(memory, "available_host_memory", lambda: FREE):
        check_read(path)
    assert capfd.readouterr().err == ""  # what libpng, libjpeg, libtiff and OpenCV print stays off the terminal


@pytest.mark.parametrize(("data", "message"), [
    (png_header(100000, 100000), "100000x100000 pixels: 10000 megapixels, more than the 1074 megapixels OpenCV "
                                 "decodes (OPENCV_IO_MAX_IMAGE_PIXELS raises that)"),
    (bytes(declare_size("jpeg", bytearray(seeds()["jpeg"][0]), 65000, 65000)), "65000x65000 pixels: 4225 megapixels"),
    (png_header(2**20 + 1, 4), "1048577x4 pixels: more than the 1048576 px wide OpenCV decodes"),
    (png_header(4, 2**20 + 1), "4x1048577 pixels: more than the 1048576 px high OpenCV decodes"),
    (bytes(declare_size("jpeg", bytearray(seeds()["jpeg"][0]), 30000, 30000)),  # OpenCV would decode it (9 s)
     "30000x30000 pixels: reading it needs about 14.4 GB of memory but 0.3 GB are free; a damaged file, or an "
     "image to scale down first (or free memory)"),
])
def test_declared_sizes_beyond_opencv_or_memory_are_refused_before_decoding(tmp_path, monkeypatch, data, message):
    monkeypatch.setattr(memory, "available_host_memory", lambda: FREE)
    monkeypatch.setattr(images.cv2, "imdecode", lambda *args: pytest.fail("decoded"))
    (tmp_path / "x.img").write_bytes(data)
    with pytest.raises(ImageReadError) as info:
        read_input(tmp_path / "x.img")
    assert str(info.value).startswith(f"{tmp_path / 'x.img'}: its header declares ") and message in str(info.value)


def test_every_exception_of_a_decoder_is_that_files_error(tmp_path, monkeypatch):
    def broken(*args):
        raise ZeroDivisionError("division by zero")

    write_image(tmp_path / "a.png", gradient(8, 8))
    monkeypatch.setattr(images.cv2, "imdecode", broken)
    with pytest.raises(ImageReadError, match=r"a.png is not a readable image \(OpenCV: division by zero\)"):
        read_input(tmp_path / "a.png")
    monkeypatch.setattr(images.cv2, "imdecode", lambda *args: (_ for _ in ()).throw(MemoryError()))
    with pytest.raises(ImageReadError, match="a.png: not enough free memory to read it"):
        read_input(tmp_path / "a.png")


def test_what_the_decoders_print_is_kept_for_verbose(tmp_path, capfd, caplog):
    data, _ = seeds()["tiff"]
    (tmp_path / "cut.tif").write_bytes(data[: len(data) // 2])
    with caplog.at_level("INFO", logger="codeformer"), pytest.raises(ImageReadError):
        read_input(tmp_path / "cut.tif")
    assert capfd.readouterr().err == ""
    assert "cut.tif: the decoder said: " in caplog.text and "TIFF" in caplog.text


# ---------------------------------------------------------------------------------------------- the CLI


def _run(models_dir: Path, folder: Path, out: Path) -> int:
    """``restore folder`` in a thread that must end within a minute (a FIFO opened for reading would block)."""
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(
        main(["restore", str(folder), *cli_args(models_dir, out), "--upscale", "1"])), daemon=True)
    with mock.patch.object(memory, "available_host_memory", lambda: FREE):
        thread.start()
        thread.join(120)
    assert not thread.is_alive(), "the run hangs"
    assert result and isinstance(result[0], int), result
    return result[0]


def _check_run(code: int, err: str, folder: Path, out: Path, bad: list[Path]) -> None:
    """One ``error:`` line naming each bad file and no output for it; the good image restored; nothing else said
    but the count of skipped files."""
    assert "Traceback" not in err
    lines = err.splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    for path in bad:
        assert sum(str(path) in line for line in errors) == 1, (path, errors)
        assert not (out / f"{path.stem}.png").exists(), path
    assert len(errors) == len(bad) and (out / "good.png").exists()
    total = len(list(folder.iterdir()))
    summary = f"{len(bad)} of {total} input(s) were skipped (see the errors above); the others were processed"
    assert [line for line in lines if not line.startswith(("error: ", "WARNING: "))] == ([summary] if bad else [])
    assert code == (2 if bad else 0)


def _hostile_folder(folder: Path) -> list[Path]:
    """The files of issue 18 beside one good image; returns the bad ones."""
    folder.mkdir()
    write_image(folder / "good.png", gradient(40, 50))
    files = {f"cut_{name}{ext}": data[: len(data) // 2] for name, (data, ext) in seeds().items()}
    flipped = bytearray(seeds()["png"][0])
    flipped[20] ^= 0x40  # in the IHDR: its CRC fails
    files.update({
        "random.jpg": np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8).tobytes(),
        "empty.png": b"", "zeros.webp": bytes(500), "bitflip.png": bytes(flipped),
        "giant_74_bytes.png": png_header(100000, 100000), "header_30000.png": png_header(30000, 30000),
        "sof_65000.jpg": bytes(declare_size("jpeg", bytearray(seeds()["jpeg"][0]), 65000, 65000)),
        "sof_30000.jpeg": bytes(declare_size("jpeg", bytearray(seeds()["jpeg"][0]), 30000, 30000)),
    })
    for name, data in files.items():
        (folder / name).write_bytes(data)
    os.symlink("/dev/zero", folder / "zero.png")
    os.symlink(folder / "gone.png", folder / "dangling.png")
    os.mkfifo(folder / "pipe.png")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(folder / "sock"))
    return sorted(p for p in folder.iterdir() if p.name != "good.png")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX file kinds")
def test_a_folder_of_hostile_files_gives_one_line_each_and_the_good_image(models_dir, tmp_path, capfd, monkeypatch):
    decoded = []
    real = images.cv2.imdecode
    monkeypatch.setattr(images.cv2, "imdecode", lambda data, flags: decoded.append(data.tobytes()) or real(data, flags))
    folder, out = tmp_path / "from the internet", tmp_path / "out"
    bad = _hostile_folder(folder)
    code = _run(models_dir, folder, out)
    err = capfd.readouterr().err
    _check_run(code, err, folder, out, bad)
    assert sorted(p.name for p in out.iterdir()) == ["good.png"]
    assert "[ERROR" not in err and "libpng" not in err and "TIFF_Error" not in err and "Corrupt JPEG" not in err
    for name, said in (("pipe.png", " is a FIFO (named pipe), not an image file; skipped"),
                       ("zero.png", " is a character device, not an image file; skipped"),
                       ("sock", " is a socket, not an image file; skipped"),
                       ("giant_74_bytes.png", ": its header declares 100000x100000 pixels: 10000 megapixels"),
                       ("sof_65000.jpg", ": its header declares 65000x65000 pixels: 4225 megapixels"),
                       ("sof_30000.jpeg", ": its header declares 30000x30000 pixels: reading it needs about")):
        assert f"error: {folder / name}{said}" in err
    for name in ("giant_74_bytes.png", "header_30000.png", "sof_65000.jpg", "sof_30000.jpeg"):
        assert (folder / name).read_bytes() not in decoded, name  # refused by the declared size, not decoded


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cases=st.lists(hostile_file(), min_size=1, max_size=12))
def test_the_cli_on_folders_of_fuzzed_files(models_dir, tmp_path_factory, capfd, monkeypatch, cases):
    use_tiny_networks(monkeypatch)  # each example is a CLI run: loading the full-size files costs seconds
    folder = tmp_path_factory.getbasetemp() / f"fuzz-{uuid.uuid4().hex}"
    out = folder.with_name(folder.name + "-out")
    folder.mkdir()
    write_image(folder / "good.png", gradient(40, 50))
    for i, (data, ext) in enumerate(cases):
        (folder / f"h{i:02d}{ext}").write_bytes(data)
    capfd.readouterr()
    code = _run(models_dir, folder, out)
    err = capfd.readouterr().err
    bad = [p for p in sorted(folder.iterdir()) if p.name != "good.png" and not (out / f"{p.stem}.png").exists()]
    _check_run(code, err, folder, out, bad)
