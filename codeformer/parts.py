"""Long batches (video frames, large image batches) restored or pasted a few images at a time.

A part's results are float32 until the caller converts them, so each part gets about ``PIXELS_PER_PART`` output
pixels: memory holds the caller's output and one part, not float32 results of the whole batch. Each generator
yields a ``Part`` and makes the next one only when asked, so a caller that converts a part before asking for the
next (and keeps no reference to it) never holds two.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from .canvas import PasteResult
from .geometry import target_size
from .pipeline import Networks, PasteOptions, RestoreSettings, check_paste_inputs, paste_back, restore_images
from .types import Faces, Progress

# Output pixels per part: about 1 GB of float32 image and mask results (16 B a pixel), at least one image.
PIXELS_PER_PART = 64 * 2**20


@dataclass(frozen=True)
class Part:
    """The results of images ``start``, ``start + 1``, ... of a long batch."""

    start: int
    images: list[PasteResult] = field(repr=False)
    faces: Faces  # the faces of these images (numbered from 0 within the part)


def images_per_part(size: tuple[int, int], upscale: float) -> int:
    """How many images of ``size`` (height, width) go in one part at ``upscale`` (see ``PIXELS_PER_PART``)."""
    h, w = target_size(size, upscale)
    return max(1, PIXELS_PER_PART // (h * w))


def restore_in_parts(
    images: Sequence[np.ndarray],
    networks: Networks,
    settings: RestoreSettings,
    *,
    on_progress: Progress | None = None,
    **compute,
) -> Iterator[Part]:
    """``restore_images`` over ``images`` (one size) part by part; ``on_progress`` covers the whole batch.
    ``compute`` are ``restore_images``' device, precision, tile, batch_size and check_interrupt."""
    per_part = images_per_part(images[0].shape[:2], settings.upscale) if images else 1
    for start in range(0, len(images), per_part):
        part = images[start : start + per_part]
        result = restore_images(part, networks, settings,
                                on_progress=_share(on_progress, start, len(part), len(images)), **compute)
        yield Part(start, result.images, result.faces)
        del result  # before the next part is made


def paste_in_parts(
    backgrounds: Sequence[np.ndarray],
    faces: Faces,
    restored: np.ndarray | Sequence[np.ndarray],
    options: PasteOptions,
    **paste_kwargs,
) -> Iterator[Part]:
    """``paste_back`` over ``backgrounds`` (one size) part by part; ``paste_kwargs`` as for ``paste_back``."""
    check_paste_inputs(len(backgrounds), faces, len(restored))  # the whole batch, before any work
    per_part = images_per_part(backgrounds[0].shape[:2], 1.0) if backgrounds else 1
    for start in range(0, len(backgrounds), per_part):
        part, positions = faces.of_images(start, start + per_part)
        results = paste_back(backgrounds[start : start + per_part], part, [restored[i] for i in positions], options,
                             **paste_kwargs)
        yield Part(start, results, part)
        del results  # before the next part is made


def _share(bar: Progress | None, start: int, size: int, total: int) -> Progress | None:
    """``on_progress`` of a part of ``size`` images from ``start`` of ``total``: its steps as its share of the bar
    (the bar itself when the part is the whole batch)."""
    if bar is None or size == total:
        return bar
    return lambda done, steps: bar(round(1000 * (start + size * done / steps) / total), 1000)


__all__ = ["PIXELS_PER_PART", "Part", "images_per_part", "paste_in_parts", "restore_in_parts"]
