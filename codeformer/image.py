"""Small image operations shared by the pipeline steps. Images are (H, W, 3) RGB uint8 unless stated."""

from __future__ import annotations

import cv2
import numpy as np

from .geometry import working_scale

GRAY_THRESHOLD = 10.0


def is_gray(image: np.ndarray, threshold: float = GRAY_THRESHOLD) -> bool:
    """Official ``is_gray``: mean variance of the channel differences is at most ``threshold``."""
    if image.ndim == 2 or image.shape[2] == 1:
        return True
    c = image[:, :, :3].astype(np.int16)
    diffs = [(c[:, :, 0] - c[:, :, 1]).var(), (c[:, :, 1] - c[:, :, 2]).var(), (c[:, :, 2] - c[:, :, 0]).var()]
    return float(sum(diffs) / 3.0) <= threshold


def to_gray3(image: np.ndarray) -> np.ndarray:
    """Luma with the official weights (0.2989 R + 0.5870 G + 0.1140 B), repeated on 3 channels, float64."""
    rgb = image.astype(np.float64)
    gray = 0.2989 * rgb[:, :, 0] + 0.5870 * rgb[:, :, 1] + 0.1140 * rgb[:, :, 2]
    return np.repeat(gray[:, :, None], 3, axis=2)


def match_color(content: np.ndarray, style: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """Official ``adain_npy``: give ``content`` the per-channel mean and std of ``style`` (float64)."""
    c = content.reshape(-1, content.shape[2]).astype(np.float64)
    s = style.reshape(-1, style.shape[2]).astype(np.float64)
    c_mean, c_std = c.mean(0), np.sqrt(c.var(0) + eps)
    s_mean, s_std = s.mean(0), np.sqrt(s.var(0) + eps)
    return ((c - c_mean) / c_std * s_std + s_mean).reshape(content.shape)


def to_working(image: np.ndarray) -> np.ndarray:
    """Enlarge (bilinear) by :func:`~codeformer.geometry.working_scale`: short side to 512 as the official
    ``read_image`` does, long side capped at 4096."""
    f = working_scale(image.shape[:2])
    if f == 1.0:
        return image
    # fx/fy (not an explicit size): the official call, whose sampling grid differs slightly from a sized resize
    return cv2.resize(image, (0, 0), fx=f, fy=f, interpolation=cv2.INTER_LINEAR)


def resize(image: np.ndarray, size: tuple[int, int], interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Resize to (height, width); returns the input unchanged when it already has that size."""
    h, w = size
    if image.shape[:2] == (h, w):
        return image
    return cv2.resize(image, (w, h), interpolation=interpolation)


def float_to_uint8(image: np.ndarray) -> np.ndarray:
    """0..1 floats to uint8 with rounding (exact for images that came from uint8)."""
    return (np.clip(np.nan_to_num(image, nan=0.0), 0.0, 1.0) * 255.0).round().astype(np.uint8)
