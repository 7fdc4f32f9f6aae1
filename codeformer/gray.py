"""The official handling of grayscale inputs: which faces are gray, and how a restored face is made gray again."""

from __future__ import annotations

import numpy as np
import torch

from .image import GRAY_THRESHOLD, match_color, to_gray3


def restore_gray(restored: np.ndarray, crop: np.ndarray) -> np.ndarray:
    """Official gray handling: luma of the restored face, colour statistics of the uint8 input crop, clipped (#222)."""
    face = match_color(to_gray3(restored), crop.astype(np.float64))
    return np.clip(face, 0, 255).round().astype(np.uint8)


def batch_is_gray(x: torch.Tensor, step: int = 16) -> list[bool]:
    """Official ``is_gray`` of each image of ``[B, 3, H, W]`` (uint8 or 0..1 floats), ``step`` of them at a time
    in float64."""
    flags = []
    for part in x.split(step):
        c = (part.to(torch.float64) * 255.0).round() if part.is_floating_point() else part.to(torch.float64)
        pairs = ((0, 1), (1, 2), (2, 0))
        spread = sum((c[:, a] - c[:, b]).var(dim=(1, 2), unbiased=False) for a, b in pairs) / 3.0
        flags += [bool(v) for v in (spread <= GRAY_THRESHOLD).cpu()]
    return flags


__all__ = ["batch_is_gray", "restore_gray"]
