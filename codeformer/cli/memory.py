"""Whether an image fits in the free host memory, checked before the work that would not fit."""

from __future__ import annotations

import math

from ..geometry import target_size, working_size
from ..runtime import available_host_memory

# Peak host memory of restoring one whole image, per pixel of its output (or of its paste canvas, for sources with a
# short side under 512): numpy arrays measured with tracemalloc, 24.6 B for whole_02.png at -s 4; rounded up.
BYTES_PER_OUTPUT_PIXEL = 28


def too_large(size: tuple[int, int], upscale: float) -> str | None:
    """Why an image of ``size`` cannot be restored at ``upscale`` in the memory left (None if it can, or if the
    system does not say how much is left)."""
    available = available_host_memory()
    if available is None:
        return None
    pixels = max(h * w for h, w in (target_size(size, upscale), target_size(working_size(size), upscale)))
    need = pixels * BYTES_PER_OUTPUT_PIXEL
    if need <= available:
        return None
    largest = math.floor(upscale * math.sqrt(available / need) * 10) / 10
    fix = f"use --upscale {largest:g} or less" if largest >= 1 else "it does not fit even at --upscale 1"
    return (f"restoring it at --upscale {upscale:g} needs about {need / 1e9:.1f} GB of memory but "
            f"{available / 1e9:.1f} GB are free; {fix}")
