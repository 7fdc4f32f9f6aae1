"""Flicker metrics of one face track over a clip (numpy), for the temporal benchmark.

Each takes the per-frame values of one track in frame order; a track too short to have the differences measured
(fewer than 3 frames for the jitter, 2 for the others) raises ValueError: the caller skips such tracks.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def landmark_jitter(landmarks: np.ndarray) -> float:
    """The high-frequency part of the landmark motion: the mean length (px) of the second difference
    ``p[t+1] - 2 p[t] + p[t-1]`` over every frame and point of a ``[T, 5, 2]`` track. Smooth motion (constant or
    steady drift) gives 0; a point alternating by +-a gives 4a."""
    points = _track(landmarks, 3, "landmark_jitter")
    second = points[2:] - 2 * points[1:-1] + points[:-2]
    return float(np.linalg.norm(second, axis=-1).mean())


def landmark_error(landmarks: np.ndarray, truth: np.ndarray) -> float:
    """RMS distance (px) between the ``[T, 5, 2]`` landmarks and the ground truth of the same shape."""
    points, truth = np.asarray(landmarks, np.float64), np.asarray(truth, np.float64)
    if points.shape != truth.shape or points.ndim != 3 or points.shape[-1] != 2:
        raise ValueError(f"landmark_error needs two [T, 5, 2] arrays of one shape: {points.shape}, {truth.shape}")
    return float(np.sqrt(((points - truth) ** 2).sum(-1).mean()))


def crop_change(crops: np.ndarray) -> float:
    """Mean absolute change between consecutive aligned crops ``[T, 512, 512, 3]`` (0..255 units)."""
    crops = np.asarray(crops)
    _count(len(crops), 2, "crop_change")
    total = sum(float(np.abs(crops[t].astype(np.float32) - crops[t - 1].astype(np.float32)).mean())
                for t in range(1, len(crops)))
    return total / (len(crops) - 1)


def code_flip_rate(codes: np.ndarray) -> float:
    """The share of the codebook tokens (``[T, 256]`` indices) that change between consecutive frames."""
    codes = np.asarray(codes)
    _count(len(codes), 2, "code_flip_rate")
    return float((codes[1:] != codes[:-1]).mean())


def region_flicker(frames: Sequence[np.ndarray], masks: Sequence[np.ndarray]) -> float:
    """Mean absolute change between consecutive output frames ``(H, W, C)`` (0..255 units) over the pixels where
    either frame's paste mask ``(H, W)`` (0..1) is above 0.5, pooled over all frame pairs (larger faces weigh
    more). Raises ValueError when no pixel of any pair is in a mask."""
    if len(frames) != len(masks):
        raise ValueError(f"region_flicker needs a mask per frame, got {len(frames)} frames and {len(masks)} masks")
    _count(len(frames), 2, "region_flicker")
    total, count = 0.0, 0
    for t in range(1, len(frames)):
        region = (_plane(masks[t]) > 0.5) | (_plane(masks[t - 1]) > 0.5)
        diff = np.abs(np.asarray(frames[t], np.float32) - np.asarray(frames[t - 1], np.float32))
        picked = diff[region]  # (pixels, C)
        total += float(picked.sum(dtype=np.float64))
        count += picked.size
    if count == 0:
        raise ValueError("region_flicker: no pixel is inside a paste mask")
    return total / count


def truth_landmarks(landmarks0: np.ndarray, transforms: Sequence[np.ndarray]) -> np.ndarray:
    """Ground-truth landmarks ``[T, 5, 2]``: the photo's landmarks ``(5, 2)`` moved by each frame's ``(2, 3)``
    affine (source-photo pixels -> frame pixels, ``Clip.transforms``)."""
    points = np.asarray(landmarks0, np.float64).reshape(-1, 2)
    return np.stack([points @ np.asarray(a, np.float64)[:, :2].T + np.asarray(a, np.float64)[:, 2]
                     for a in transforms])


def _track(landmarks: np.ndarray, least: int, name: str) -> np.ndarray:
    points = np.asarray(landmarks, np.float64)
    if points.ndim != 3 or points.shape[-1] != 2:
        raise ValueError(f"{name} needs [T, 5, 2] landmarks, got shape {points.shape}")
    _count(len(points), least, name)
    return points


def _count(frames: int, least: int, name: str) -> None:
    if frames < least:
        raise ValueError(f"{name} needs at least {least} frames, got {frames}")


def _plane(mask: np.ndarray) -> np.ndarray:
    """A mask as (H, W): a trailing channel axis of 1 dropped."""
    mask = np.asarray(mask)
    return mask[..., 0] if mask.ndim == 3 else mask
