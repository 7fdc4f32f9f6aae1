"""Paste restored faces back into the (upscaled) background with the official masks.

Per face (official ``paste_faces_to_input_image``): warp the face with the inverse affine; a square mask is warped
the same way, eroded by ``int(2 s)`` px, eroded again and Gaussian-feathered by ``w_edge = sqrt(area) // 20``; with
a ParseNet mask the final mask is the minimum of both; ``out = mask * face + (1 - mask) * background``.
Only the region each face covers is warped and blended, which gives the whole-image result at a fraction of the cost.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from .geometry import PixelBox
from .types import FACE_SIZE

ROI_MARGIN = 4  # px around the face's footprint; the masks are zero there


@dataclass(frozen=True)
class FacePlacement:
    """A restored face and where it goes in the background."""

    face: np.ndarray = field(repr=False)  # (S, S, 3) RGB uint8; S = 512, or larger when face-upsampled
    inverse: np.ndarray = field(repr=False)  # (2, 3) 512-crop -> working-image pixels
    parse_mask: np.ndarray | None = field(default=None, repr=False)  # (512, 512) float 0..1, or None


def paste_faces(
    background: np.ndarray,
    placements: Sequence[FacePlacement],
    scale: float,
    *,
    scale_y: float | None = None,
    visibility: float = 1.0,
    feather: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Blend faces into ``background`` (working image x ``scale``, RGB uint8).

    ``scale_y``: the vertical scale when it differs from ``scale`` (a canvas whose rounded height is not exactly
    ``scale`` times the working image's). Returns the image as float32 0..255 (the official result before its uint8
    cast) and the mask (H, W) float32 0..1 of the pasted area.
    """
    out = background.astype(np.float32)
    total_mask = np.zeros(background.shape[:2], np.float32)
    for p in placements:
        _paste_one(out, total_mask, p, scale, scale_y, visibility, feather)
    return out, total_mask


def background_inverse(inverse: np.ndarray, scale: float, face_size: int, scale_y: float | None = None) -> np.ndarray:
    """Inverse affine from a ``face_size`` face to background pixels (official offsets), the rows scaled by
    ``scale`` (x) and ``scale_y`` (y, default ``scale``)."""
    scales = np.array([scale, scale if scale_y is None else scale_y])
    m = inverse * scales[:, None]
    if face_size != FACE_SIZE:  # face-upsampled: the face itself is already `scale` times larger
        m = m / scale
        m[:, 2] *= scale
    elif scale > 1:
        m[:, 2] += 0.5 * scales  # official half-pixel offset for more precise back alignment
    return m


def _paste_one(out: np.ndarray, total_mask: np.ndarray, p: FacePlacement, scale: float, scale_y: float | None,
               visibility: float, feather: float) -> None:
    size = p.face.shape[0]
    m = background_inverse(p.inverse, scale, size, scale_y)
    roi = footprint(m, (size, size), out.shape[:2])
    if roi is None:
        return
    x0, y0, x1, y1 = roi
    local = m.copy()
    local[:, 2] -= (x0, y0)
    dsize = (x1 - x0, y1 - y0)

    face = cv2.warpAffine(p.face, local, dsize)
    mask = cv2.warpAffine(np.ones((size, size), np.float32), local, dsize)
    k = int(2 * scale)
    mask = cv2.erode(mask, np.ones((k, k), np.uint8))
    pasted = mask[:, :, None] * face
    w_edge = int(int(np.sum(mask) ** 0.5) // 20 * feather)
    if w_edge > 0:
        mask = cv2.erode(mask, np.ones((w_edge * 2, w_edge * 2), np.uint8))
    soft = cv2.GaussianBlur(mask, (w_edge * 2 + 1, w_edge * 2 + 1), 0)
    if p.parse_mask is not None:
        parse = p.parse_mask if size == FACE_SIZE else cv2.resize(p.parse_mask, (size, size))
        parse = cv2.warpAffine(parse, local, dsize, flags=3)
        soft = np.minimum(parse, soft)
    soft = (soft * visibility).astype(np.float32)[:, :, None]
    region = out[y0:y1, x0:x1]
    region[:] = soft * pasted + (1 - soft) * region
    mask_region = total_mask[y0:y1, x0:x1]
    mask_region[:] = soft[:, :, 0] + (1 - soft[:, :, 0]) * mask_region


def footprint(m: np.ndarray, size: tuple[int, int], shape: tuple[int, int],
              margin: int = ROI_MARGIN) -> PixelBox | None:
    """Bounding box (x0, y0, x1, y1) in an image of ``shape`` (height, width) of a rectangle of ``size`` (height,
    width) mapped by the (2, 3) affine ``m`` (a warped face square in the background, or the canvas mapped back into
    a face), widened by ``margin`` px and clipped; None where nothing of it is inside."""
    rows, columns = size
    corners = np.array([[0, 0, 1], [columns, 0, 1], [0, rows, 1], [columns, rows, 1]], np.float64) @ m.T
    h, w = shape
    x0 = max(0, math.floor(corners[:, 0].min()) - margin)
    y0 = max(0, math.floor(corners[:, 1].min()) - margin)
    x1 = min(w, math.ceil(corners[:, 0].max()) + margin)
    y1 = min(h, math.ceil(corners[:, 1].max()) + margin)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1
