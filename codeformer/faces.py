"""Finding the faces of a batch of images: detect -> select -> align, as the official pipeline does per image."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from .align import estimate_affine, invert_affine, warp_face
from .detect import CONFIDENCE, MIN_EYE_DISTANCE, NMS_THRESHOLD, detect_faces, select_faces
from .image import is_gray, to_working
from .types import FACE_SIZE, Face, FaceDetector, Faces, Interrupt

log = logging.getLogger(__name__)


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
    faces: list[Face] = []
    crops: list[np.ndarray] = []
    for index, source in enumerate(images):
        if check_interrupt is not None:
            check_interrupt()
        working = to_working(source)
        found = detect_faces(detector, working, confidence=options.confidence, nms_threshold=options.nms_threshold,
                             min_eye_distance=options.min_eye_distance, device=device)
        chosen = select_faces(found, working.shape[:2], options.selection, options.max_faces)
        gray = is_gray(source) if chosen else False  # official: measured on the source, before the enlargement
        for det in chosen:
            affine = estimate_affine(det.landmarks)
            crops.append(warp_face(working, affine))
            faces.append(Face(source_index=index, box=det.box, score=det.score, landmarks=det.landmarks,
                              affine=affine, inverse=invert_affine(affine), source_size=source.shape[:2],
                              is_gray=gray))
        log.info("image %d: %d face(s) found, %d kept", index, len(found), len(chosen))
    stacked = np.stack(crops) if crops else np.zeros((0, FACE_SIZE, FACE_SIZE, 3), np.uint8)
    return FoundFaces(Faces(tuple(faces), tuple(image.shape[:2] for image in images)), stacked)


__all__ = ["DetectOptions", "FoundFaces", "find_faces"]
