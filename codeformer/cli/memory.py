"""Whether an image fits in the free host memory, checked before the work that would not fit."""

from __future__ import annotations

import math

from ..geometry import canvas_size, target_size
from ..runtime import available_host_memory

# Peak host memory of restoring one whole image, per pixel of its output (or of its paste canvas, for sources with a
# short side under 512), rounded up from a measurement (bench/measured/README.md).
BYTES_PER_OUTPUT_PIXEL = 28
# Peak host memory of reading one image, per pixel, beside the file's bytes: OpenCV's BGR decode and our RGB copy,
# and for files with transparency PIL's RGBA decode, its copies and the alpha plane; rounded up from a measurement.
DECODE_BYTES_PER_PIXEL = 16


def too_large(size: tuple[int, int], upscale: float) -> str | None:
    """Why an image of (height, width) ``size`` cannot be restored at ``upscale`` in the memory left (None if it can,
    or if the system does not say how much is left)."""
    available = available_host_memory()
    if available is None:
        return None
    output = target_size(size, upscale)
    pixels = max(h * w for h, w in (output, canvas_size(size, output)))  # a small source is pasted on a larger canvas
    need = pixels * BYTES_PER_OUTPUT_PIXEL
    if need <= available:
        return None
    largest = math.floor(upscale * math.sqrt(available / need) * 10) / 10
    fix = f"use --upscale {largest:g} or less" if largest >= 1 else "it does not fit even at --upscale 1"
    return (f"restoring its {size[1]}x{size[0]} pixels at --upscale {upscale:g} needs about {need / 1e9:.1f} GB of "
            f"memory but {available / 1e9:.1f} GB are free; {fix}")


def decode_too_large(pixels: int, file_bytes: int) -> str | None:
    """Why a file of ``file_bytes`` declaring ``pixels`` cannot be read in the memory left (None if it can, or if
    the system does not say)."""
    available = available_host_memory()
    need = file_bytes + pixels * DECODE_BYTES_PER_PIXEL
    if available is None or need <= available:
        return None
    return (f"reading it needs about {need / 1e9:.1f} GB of memory but {available / 1e9:.1f} GB are free; a damaged "
            "file, or an image to scale down first (or free memory)")
