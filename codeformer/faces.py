"""Finding the faces of a batch of images: detect -> select -> align, as the official pipeline does per image."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from .align import estimate_affine, invert_affine, warp_face
from .detect import CONFIDENCE, MIN_EYE_DISTANCE, NMS_THRESHOLD, Detection, detect_faces, select_faces
from .geometry import Box
from .image import is_gray, to_working
from .types import FACE_SIZE, Face, FaceDetector, Faces, Interrupt

log = logging.getLogger(__name__)


class Located(Protocol):
    """Where a face is in the working image: a detection, or a tracked face with smoothed landmarks."""

    @property
    def box(self) -> Box: ...
    @property
    def score(self) -> float: ...
    @property
    def landmarks(self) -> np.ndarray: ...


@dataclass(frozen=True)
class DetectOptions:
    """How faces are found and which are kept."""

    confidence: float = CONFIDENCE
    nms_threshold: float = NMS_THRESHOLD
    min_eye_distance: float = MIN_EYE_DISTANCE
    selection: str = "all"  # all | largest | center | index list "0,2"
    max_faces: int = 0  # 0 = no limit


@dataclass(frozen=True)
class FoundFaces:
    """The faces of a batch and their aligned crops, in the same order."""

    faces: Faces
    crops: np.ndarray = field(repr=False)  # [N, 512, 512, 3] RGB uint8


def find_faces(
    detector: FaceDetector,
    images: Sequence[np.ndarray],
    options: DetectOptions = DetectOptions(),
    *,
    device: torch.device | str = "cpu",
    check_interrupt: Interrupt | None = None,
) -> FoundFaces:
    """Detect, select and align the faces of every ``(H, W, 3)`` RGB uint8 image."""
    parts = []
    for index, source in enumerate(images):
        if check_interrupt is not None:
            check_interrupt()
        working, chosen = detect_image(detector, source, options, device=device)
        parts.append(align_faces(source, working, index, chosen))
        log.info("image %d: %d face(s) kept", index, len(chosen))
    return join_found(parts, [image.shape[:2] for image in images])


def join_found(parts: Sequence[FoundFaces], source_sizes: Sequence[tuple[int, int]]) -> FoundFaces:
    """The faces of single images (each numbered by its place in the batch, as ``align_faces`` gives them) as the
    one batch of images of ``source_sizes``."""
    faces = tuple(face for part in parts for face in part.faces.faces)
    crops = np.concatenate([part.crops for part in parts]) if parts else np.zeros((0, FACE_SIZE, FACE_SIZE, 3),
                                                                                   np.uint8)
    return FoundFaces(Faces(faces, tuple(source_sizes)), crops)


def detect_image(detector: FaceDetector, source: np.ndarray, options: DetectOptions = DetectOptions(), *,
                 device: torch.device | str = "cpu") -> tuple[np.ndarray, list[Detection]]:
    """The working image of ``source`` and its selected detections (working-image pixels)."""
    working = to_working(source)
    found = detect_faces(detector, working, confidence=options.confidence, nms_threshold=options.nms_threshold,
                         min_eye_distance=options.min_eye_distance, device=device)
    chosen = select_faces(found, working.shape[:2], options.selection, options.max_faces)
    log.debug("%d face(s) found, %d kept", len(found), len(chosen))
    return working, chosen


def align_faces(source: np.ndarray, working: np.ndarray, index: int, detections: Sequence[Located],
                tracks: Sequence[int | None] | None = None) -> FoundFaces:
    """The faces of one image (number ``index`` of its batch) at ``detections``, aligned from their landmarks:
    a batch of one image, its faces numbered ``index``."""
    gray = is_gray(source) if detections else False  # official: measured on the source, before the enlargement
    faces = faces_at(detections, index, source.shape[:2], gray, tracks)
    crops = [warp_face(working, face.affine) for face in faces]
    stacked = np.stack(crops) if crops else np.zeros((0, FACE_SIZE, FACE_SIZE, 3), np.uint8)
    return FoundFaces(Faces(tuple(faces), (source.shape[:2],)), stacked)


def faces_at(detections: Sequence[Located], index: int, source_size: tuple[int, int], gray: bool,
             tracks: Sequence[int | None] | None = None) -> list[Face]:
    """The faces of image ``index`` at ``detections`` (working-image pixels), each with its alignment affine."""
    faces = []
    for det, track in zip(detections, tracks or [None] * len(detections), strict=True):
        affine = estimate_affine(det.landmarks)
        faces.append(Face(source_index=index, box=det.box, score=det.score, landmarks=det.landmarks, affine=affine,
                          inverse=invert_affine(affine), source_size=source_size, is_gray=gray, track=track))
    return faces


__all__ = ["DetectOptions", "FoundFaces", "Located", "align_faces", "detect_image", "faces_at", "find_faces"]
