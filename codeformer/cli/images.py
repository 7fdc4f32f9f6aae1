"""Reading the input images: RGB uint8 as the official CLI reads them, and the alpha channel beside them."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
from PIL import Image, ImageOps

from .errors import ImageReadError


def read_image(path: Path) -> np.ndarray:
    """Read as the official CLI does (``cv2.IMREAD_COLOR``: 8-bit, 3 channels, alpha dropped); returns RGB uint8."""
    try:
        data = np.fromfile(str(path), dtype=np.uint8)  # works with non-ASCII paths, unlike cv2.imread on Windows
    except OSError as error:
        raise ImageReadError(f"cannot read {path}: {error.strerror or error}") from error
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise ImageReadError(f"{path} is not a readable image: not an image, damaged or cut short, or a variant "
                             "OpenCV cannot decode (e.g. 32-bit float TIFF); save it as an 8- or 16-bit PNG or JPEG")
    return np.ascontiguousarray(image[:, :, ::-1])


@dataclass(frozen=True)
class InputImage:
    """An input file as the pipeline sees it, plus what the official read leaves out."""

    rgb: np.ndarray  # (H, W, 3) uint8: the official ``cv2.IMREAD_COLOR`` read
    alpha: np.ndarray | None = None  # (H, W) uint8 where the file has transparency, else None
    notes: tuple[str, ...] = ()


def read_input(path: Path) -> InputImage:
    """``read_image``, plus the transparency (carried to the output, not restored) and notes on what is left out:
    frames after the first, 16-bit depth."""
    rgb = read_image(path)
    notes = []
    alpha = None
    try:
        with _without_pil_size_limit(), Image.open(path) as info:
            frames = getattr(info, "n_frames", 1)
            deep = _bits_per_channel(info) > 8
            if "transparency" in info.info or "A" in info.getbands():
                alpha = _alpha(info)
    except (OSError, ValueError):  # a format only OpenCV reads: nothing more to say
        return InputImage(rgb)
    if alpha is not None and alpha.shape != rgb.shape[:2]:
        notes.append("its transparency is dropped: its alpha channel does not match the colour image in size")
        alpha = None
    if deep:
        notes.append("it has 16 bits per channel: it is restored and written with 8 (as the official code)")
    if frames > 1:
        notes.append(f"only the first of its {frames} frames is restored")
    return InputImage(rgb, alpha, tuple(notes))


@contextlib.contextmanager
def _without_pil_size_limit() -> Iterator[None]:
    """PIL's decompression-bomb limit off (it refuses images over 179 MP with an error of its own): OpenCV has
    decoded the file already, within its own limit, so the size is known to be real."""
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
