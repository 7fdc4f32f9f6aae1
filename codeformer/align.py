"""Alignment of detected faces to the FFHQ 5-point template (the official CodeFormer warp)."""

from __future__ import annotations

import cv2
import numpy as np

from .errors import InputError
from .types import FACE_SIZE

# FFHQ template for 512x512 faces: left eye, right eye, nose, left and right mouth corners (x, y).
FFHQ_TEMPLATE_512 = np.array(
    [
        [192.98138, 239.94708],
        [318.90277, 240.1936],
        [256.63416, 314.01935],
        [201.26117, 371.41043],
        [313.08905, 371.15118],
    ]
)
# The official border colour is BGR (135, 133, 132): a neutral grey.
BORDER_RGB = (132, 133, 135)


def estimate_affine(landmarks: np.ndarray) -> np.ndarray:
    """Similarity transform (2, 3) mapping the 5 landmarks onto the template (official: LMEDS)."""
    affine = cv2.estimateAffinePartial2D(landmarks, FFHQ_TEMPLATE_512, method=cv2.LMEDS)[0]
    if affine is None:  # degenerate landmarks (all on one point): fall back to least squares
        affine = cv2.estimateAffinePartial2D(landmarks, FFHQ_TEMPLATE_512, method=0)[0]
    if affine is None:
        raise InputError("could not align a face: its 5 landmarks are degenerate (all on one point); the detector "
                         "file may be damaged, or raise the detection confidence")
    return affine


def warp_face(image: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Crop the aligned 512x512 face from ``image`` (H, W, 3) with bilinear warp and the official grey border."""
    return cv2.warpAffine(image, affine, (FACE_SIZE, FACE_SIZE), borderMode=cv2.BORDER_CONSTANT, borderValue=BORDER_RGB)


def invert_affine(affine: np.ndarray) -> np.ndarray:
    """Inverse of a (2, 3) affine transform."""
    return cv2.invertAffineTransform(affine)
