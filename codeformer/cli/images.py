"""Reading the input images: RGB uint8 as the official CLI reads them, and the alpha channel beside them.

A file from anywhere may be damaged or hostile: its declared size is read from the header first (PIL, without
decoding), what OpenCV will not decode or what does not fit in memory is refused by that size, and whatever a decoder
raises becomes an ``ImageReadError`` for that file alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

from . import native_stderr
from .errors import ImageReadError
from .inputs import not_a_file
from .memory import decode_too_large

log = logging.getLogger("codeformer")

UNREADABLE = ("not an image, damaged or cut short, or a variant OpenCV cannot decode (e.g. 32-bit float TIFF); "
              "save it as an 8- or 16-bit PNG or JPEG")
# OpenCV's largest width, height and pixel count it decodes (the defaults of its imgcodecs), each raised by the
# environment variable of that name.
OPENCV_LIMITS = {"OPENCV_IO_MAX_IMAGE_WIDTH": 1 << 20, "OPENCV_IO_MAX_IMAGE_HEIGHT": 1 << 20,
                 "OPENCV_IO_MAX_IMAGE_PIXELS": 1 << 30}

Refuse = Callable[[tuple[int, int]], "str | None"]


@dataclass(frozen=True)
class InputImage:
    """An input file as the pipeline sees it, plus what the official read leaves out."""

    rgb: np.ndarray  # (H, W, 3) uint8: the official ``cv2.IMREAD_COLOR`` read
    alpha: np.ndarray | None = None  # (H, W) uint8 where the file has transparency, else None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Header:
    """What PIL reads from a file's header without decoding its pixels."""

    size: tuple[int, int]  # (height, width) as declared
    frames: int = 1
    deep: bool = False  # more than 8 bits per channel
    alpha: bool = False  # an alpha channel or a transparent colour


def read_image(path: Path) -> np.ndarray:
    """Read as the official CLI does (``cv2.IMREAD_COLOR``: 8-bit, 3 channels, alpha dropped); returns RGB uint8."""
    return _decode(path, _header(path))  # _header opens nothing but regular files: a FIFO never blocks


def read_input(path: Path, refuse: Refuse | None = None) -> InputImage:
    """``read_image``, plus the transparency (carried to the output, not restored) and notes on what is left out:
    frames after the first, 16-bit depth. ``refuse(size)``, asked with the declared (height, width) before decoding,
    may give a reason not to read it (too large to restore, say)."""
    header = _header(path)
    rgb = _decode(path, header, refuse)
    if header is None:  # a file only OpenCV reads: nothing more to say
        return InputImage(rgb)
    notes: list[str] = []
    alpha = _read_alpha(path, notes) if header.alpha else None
    if alpha is not None and alpha.shape != rgb.shape[:2]:
        notes.append("its transparency is dropped: its alpha channel does not match the colour image in size")
        alpha = None
    if header.deep:
        notes.append("it has 16 bits per channel: it is restored and written with 8 (as the official code)")
    if header.frames > 1:
        notes.append(f"only the first of its {header.frames} frames is restored")
    return InputImage(rgb, alpha, tuple(notes))


def _header(path: Path) -> _Header | None:
    """The header's facts, or None where PIL cannot read it (OpenCV, the official reader, then decides) or where
    ``path`` is not a regular file (``_decode`` says so)."""
    if not_a_file(path):
        return None
    # PIL raises almost anything on hostile headers (OSError, SyntaxError, struct.error, EOFError, IndexError, ...)
    with contextlib.suppress(Exception), _decoding(path), _without_pil_size_limit(), Image.open(path) as info:
        size = (info.height, info.width)
        try:
            return _Header(size, getattr(info, "n_frames", 1), _bits_per_channel(info) > 8,
                           "transparency" in info.info or "A" in info.getbands())
        except Exception:  # noqa: BLE001 - the size is known; the rest is only for notes
            return _Header(size)
    return None


def _decode(path: Path, header: _Header | None, refuse: Refuse | None = None) -> np.ndarray:
    """OpenCV's colour read of ``path`` as RGB, after the checks that need no decoding; ImageReadError if refused or
    unreadable."""
    why = not_a_file(path)
    if why:
        raise ImageReadError(f"{path} {why}")
    h, w = header.size if header is not None else (0, 0)
    why = _beyond_opencv((h, w)) or decode_too_large(h * w, path.stat().st_size)
    if why:
        raise ImageReadError(f"{path}: its header declares {w}x{h} pixels: {why}" if h * w else f"{path}: {why}")
    if header is not None and refuse is not None and (why := refuse(header.size)):
        raise ImageReadError(f"{path}: {why}")
    try:
        data = np.fromfile(str(path), dtype=np.uint8)  # works with non-ASCII paths, unlike cv2.imread on Windows
        with _decoding(path):
            image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        rgb = None if image is None else np.ascontiguousarray(image[:, :, ::-1])
    except OSError as error:
        raise ImageReadError(f"cannot read {path}: {error.strerror or error}") from error
    except MemoryError as error:
        raise ImageReadError(f"{path}: not enough free memory to read it ({error})") from error
    except Exception as error:  # noqa: BLE001 - cv2.error (its limits, allocations) or what a decoder raises
        said = getattr(error, "err", None) or (str(error).strip().splitlines() or [type(error).__name__])[-1]
        raise ImageReadError(f"{path} is not a readable image (OpenCV: {said}): {UNREADABLE}") from error
    if rgb is None:
        raise ImageReadError(f"{path} is not a readable image: {UNREADABLE}")
    return rgb


def _beyond_opencv(size: tuple[int, int]) -> str | None:
    """Why OpenCV would refuse to decode an image of (height, width) ``size`` (None if it decodes it)."""
    h, w = size
    for (name, default), value in zip(OPENCV_LIMITS.items(), (w, h, h * w), strict=True):
        limit = _env_int(name, default)
        if value > limit:
            if name.endswith("PIXELS"):
                what = f"{value / 1e6:.0f} megapixels, more than the {limit / 1e6:.0f} megapixels"
            else:
                what = f"more than the {limit} px {'wide' if name.endswith('WIDTH') else 'high'}"
            return f"{what} OpenCV decodes ({name} raises that); a damaged file, or an image to scale down first"
    return None


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:  # a value with units OpenCV reads itself; its own check (a cv2.error) still applies
        return default


@contextlib.contextmanager
def _decoding(path: Path) -> Iterator[None]:
    """Keep what the C libraries print and the warnings PIL gives while decoding ``path`` off the terminal (the CLI
    says what went wrong in one line); shown with ``-v``."""
    said: list[str] = []
    warned: list[warnings.WarningMessage] = []
    try:
        with native_stderr.captured() as said, warnings.catch_warnings(record=True) as warned:
            warnings.simplefilter("always")
            yield
    finally:
        said += [str(w.message) for w in warned]
        if said:
            log.info("%s: the decoder said: %s", path, " | ".join(said))


def _read_alpha(path: Path, notes: list[str]) -> np.ndarray | None:
    """The alpha channel of ``path`` (None if fully opaque, or if PIL cannot decode what OpenCV could)."""
    try:
        with _decoding(path), _without_pil_size_limit(), Image.open(path) as info:
            return _alpha(info)
    except Exception as error:  # noqa: BLE001 - PIL on a damaged file: the colours are read, the alpha is not
        said = (str(error).splitlines() or [""])[0]
        notes.append(f"its transparency could not be read ({type(error).__name__}: {said}); written without it")
        return None


@contextlib.contextmanager
def _without_pil_size_limit() -> Iterator[None]:
    """PIL's decompression-bomb limit off (it refuses images over 179 MP with an error of its own): the declared
    size is checked against OpenCV's limit and the free memory instead."""
    limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def _alpha(info: Image.Image) -> np.ndarray | None:
    """The alpha channel (uint8, turned by the EXIF orientation as OpenCV turns the colours); None if fully opaque."""
    alpha = ImageOps.exif_transpose(info.convert("RGBA")).getchannel("A")
    return None if alpha.getextrema()[0] == 255 else np.asarray(alpha, np.uint8)


def _bits_per_channel(info: Image.Image) -> int:
    """8, or 16 for 16-bit PNG and TIFF files (PIL opens most of them as 8-bit modes, so ask the header)."""
    raw = getattr(getattr(info, "png", None), "im_rawmode", "") or info.mode
    if ";16" in raw or raw.startswith("I;16"):
        return 16
    bits = getattr(info, "tag_v2", {}).get(258)  # TIFF BitsPerSample
    return max(bits) if isinstance(bits, tuple) and bits else int(bits or 8)
