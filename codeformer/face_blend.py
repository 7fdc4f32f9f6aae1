"""Restored faces blended along their track over neighbouring frames, where the frames' input faces agree.

Code smoothing (``codes``) makes a track's codebook picks agree, but the generator still fuses each frame's own
noisy encoder features, and the picks that do flip change a whole 32 px patch: a still face keeps changing from
frame to frame. So each restored crop (aligned 512 space, where the track's face stands still) is averaged with
the same track's restored crops at the ``window // 2`` frames around it, weighted per pixel by how alike the
INPUT crops are there: ``exp(-(d / GUIDE_LEVELS)^2)`` with ``d`` the difference of the two aligned input crops
(0..255, mean over RGB), Gaussian-blurred over ``GUIDE_SIGMA`` px before its absolute value is taken, so that fresh
noise averages out and does not count. Where the face really changes (a blink, a spoken word, a cut) the inputs
differ and the frame keeps its own restoration (no ghosts); where only noise differs, the restorations are
averaged. The frame's own crop has weight 1.
``bench/temporal.py`` measures it (temporal on against off, and ``--face-window 1``).
On the device path (``device_path.use_device_path``) the same arithmetic runs in torch on the device
(``blend_face_torch``): on the host it costs ~38 ms a face with two neighbours on 2 CPU cores, more than a GPU
spends on the rest of a face.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from .device_filters import gaussian_blur
from .types import Face

GUIDE_SIGMA = 2.0  # px (512 crop): the input difference is blurred so that per-pixel noise and JPEG do not count
GUIDE_LEVELS = 8.0  # 0..255: input crops this different (after the blur) weigh exp(-1) = 0.37
GUIDE_KERNEL = round(GUIDE_SIGMA * 8 + 1) | 1  # the size cv2.GaussianBlur picks for float images and ksize (0, 0)


def guide_weight(crop: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Weight ``(512, 512, 1)`` float32 in (0, 1] of ``other``'s restoration when blended into ``crop``'s: 1 where
    the two aligned input crops (RGB uint8) agree, falling off with their blurred difference (mean over RGB)."""
    diff = cv2.GaussianBlur(crop.astype(np.float32) - other.astype(np.float32), (0, 0), GUIDE_SIGMA)
    return np.exp(-np.square(np.abs(diff).mean(axis=2) / GUIDE_LEVELS))[:, :, None]


def blend_face(crop: np.ndarray, restored: np.ndarray,
               neighbours: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """``restored`` (uint8) averaged with the neighbours' restorations ``(input crop, restored)``, each weighted by
    ``guide_weight``; without neighbours ``restored`` itself (the same array)."""
    if not neighbours:
        return restored
    total = restored.astype(np.float32)
    weights = np.ones(restored.shape[:2] + (1,), np.float32)
    for other_crop, other_restored in neighbours:
        w = guide_weight(crop, other_crop)
        total += w * other_restored.astype(np.float32)
        weights += w
    return np.clip(np.rint(total / weights), 0, 255).astype(np.uint8)


def blend_face_torch(crop: np.ndarray, restored: np.ndarray, neighbours: Sequence[tuple[np.ndarray, np.ndarray]],
                     device: torch.device | str) -> np.ndarray:
    """``blend_face`` on ``device``, in the same order of operations: the crops go up in one copy, the blended face
    comes back in one (within one level of ``blend_face`` where float rounding differs)."""
    if not neighbours:
        return restored
    stacked = np.stack([crop, restored, *[image for pair in neighbours for image in pair]])
    up = torch.from_numpy(stacked).to(device).permute(0, 3, 1, 2).float()
    total = up[1].clone()
    weights = torch.ones_like(up[1, :1])
    for k in range(len(neighbours)):
        diff = gaussian_blur(up[0] - up[2 + 2 * k], GUIDE_KERNEL, GUIDE_SIGMA)
        w = torch.exp(-torch.square(diff.abs().mean(0, keepdim=True) / GUIDE_LEVELS))
        total += w * up[3 + 2 * k]
        weights += w
    return (total / weights).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()


@dataclass(frozen=True)
class FaceChunk:
    """The faces of some consecutive frames (``source_index`` = frame number in the clip), their aligned input crops
    and their restored crops (``[n, 512, 512, 3]`` uint8 each)."""

    faces: Sequence[Face]
    crops: np.ndarray = field(repr=False)
    restored: np.ndarray = field(repr=False)


def blend_clip_faces(chunks: Iterable[FaceChunk], window: int,
                     device: torch.device | str | None = None) -> Iterator[np.ndarray]:
    """Each chunk's restored crops ``[n, 512, 512, 3]`` blended (``blend_face``; ``blend_face_torch`` on
    ``device`` when given) with those of the same track at most ``window // 2`` frames away, yielded in order once
    the ``window // 2`` chunks after it have come (frames never span chunks, so they hold every frame it needs).
    Untracked faces, and ``window=1``, keep their restoration as it is.
    Memory: ``window`` chunks."""
    reach = window // 2
    held: deque[FaceChunk] = deque()  # the chunks a waiting chunk may blend with: reach before it, reach after
    waiting = 0  # position in ``held`` of the first chunk not yet yielded
    for chunk in chunks:
        held.append(chunk)
        while len(held) - 1 - waiting >= reach:
            yield _blended(held, waiting, reach, device)
            waiting += 1
            if waiting > reach:
                held.popleft()
                waiting -= 1
    while waiting < len(held):
        yield _blended(held, waiting, reach, device)
        waiting += 1


def _blended(held: Sequence[FaceChunk], position: int, reach: int, device: torch.device | str | None) -> np.ndarray:
    chunk = held[position]
    if reach == 0 or all(face.track is None for face in chunk.faces):
        return chunk.restored
    tracked = [(face, c.crops[i], c.restored[i]) for c in held for i, face in enumerate(c.faces)
               if face.track is not None]
    out = chunk.restored.copy()
    for i, face in enumerate(chunk.faces):
        if face.track is not None:
            neighbours = [(crop, restored) for other, crop, restored in tracked if other.track == face.track
                          and 0 < abs(other.source_index - face.source_index) <= reach]
            out[i] = (blend_face(chunk.crops[i], chunk.restored[i], neighbours) if device is None
                      else blend_face_torch(chunk.crops[i], chunk.restored[i], neighbours, device))
    return out


__all__ = ["GUIDE_KERNEL", "GUIDE_LEVELS", "GUIDE_SIGMA", "FaceChunk", "blend_clip_faces", "blend_face",
           "blend_face_torch", "guide_weight"]
