"""Whether an image fits in the free host memory, checked before the work that would not fit."""

from __future__ import annotations

import ctypes
import ctypes.util
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


# glibc's mallopt option for the size from which allocations are mapped on their own (and returned on free).
M_MMAP_THRESHOLD = -3
# Large buffers (frames, network activations: megabytes each) mapped on their own: a long clip then runs in memory
# that stays flat. With glibc's default, a threshold that grows with the first large frees, they come from the heap,
# which fragments and creeps up: restore_clip on 1080p frames (bench/clip_rss.py), RSS ~2150 MB and a peak rising
# 2569 -> 2682 MB from frame 50 to 150, against RSS 1662-1666 MB and a peak of 2263-2312 MB with a 1 MB threshold.
MMAP_THRESHOLD_BYTES = 1 << 20


def map_large_buffers() -> bool:
    """Have glibc map every allocation of ``MMAP_THRESHOLD_BYTES`` or more on its own (the CLI's process only: a
    library must not change its host's allocator). False where the C library has no ``mallopt`` (not glibc)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    except (OSError, AttributeError):
        return False
