"""The camera's motion between consecutive frames, so landmark smoothing removes detector jitter and not real motion.

A hand-held camera moves the whole picture by a few pixels from frame to frame. The face really moves with it, so
smoothing its landmarks over time would make the restored face lag behind the face in the frame (on the synthetic
shake clip of ``bench/temporal.py``: aligned-crop change 1.08x of per-frame alignment instead of below it). The
frame-to-frame motion of the picture's content (sparse optical flow, a similarity transform fitted with RANSAC, so
the dominant motion wins: the background's for a wide shot, the face's own in a close-up) is measured here;
``tracking`` smooths the landmarks in the coordinates of the frame being smoothed, each neighbour brought there by
that motion.
"""

from __future__ import annotations

import cv2
import numpy as np

ANALYSIS_SIDE = 360  # px of the short side the motion is measured at: a few ms per frame, sub-pixel after scaling
MIN_POINTS = 12  # fewer tracked corners than this: no reliable motion, the frame counts as still
IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


class MotionEstimator:
    """Frame by frame: ``step(frame)`` gives the (2, 3) similarity taking the previous frame's pixels to this one's
    (the identity for the first frame, a new size, or where the motion cannot be measured)."""

    def __init__(self) -> None:
        self._previous: np.ndarray | None = None

    def step(self, frame: np.ndarray) -> np.ndarray:
        factor = min(1.0, ANALYSIS_SIDE / min(frame.shape[:2]))
        size = (max(1, round(frame.shape[1] * factor)), max(1, round(frame.shape[0] * factor)))
        gray = cv2.cvtColor(cv2.resize(frame, size, interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
        previous, self._previous = self._previous, gray
        if previous is None or previous.shape != gray.shape:
            return IDENTITY.copy()
        motion = _similarity(previous, gray)
        if motion is None:
            return IDENTITY.copy()
        motion[:, 2] /= factor  # measured on the reduced frame: the translation in full-size pixels
        return motion


def _similarity(previous: np.ndarray, current: np.ndarray) -> np.ndarray | None:
    corners = cv2.goodFeaturesToTrack(previous, maxCorners=400, qualityLevel=0.01, minDistance=8)
    if corners is None or len(corners) < MIN_POINTS:
        return None
    moved, status, _ = cv2.calcOpticalFlowPyrLK(previous, current, corners, None, winSize=(21, 21), maxLevel=3)
    found = status.ravel() == 1
    if found.sum() < MIN_POINTS:
        return None
    motion, inliers = cv2.estimateAffinePartial2D(corners[found], moved[found], method=cv2.RANSAC,
                                                  ransacReprojThreshold=1.0)
    if motion is None or inliers is None or inliers.sum() < MIN_POINTS:
        return None
    return motion.astype(np.float64)


def compose(first: np.ndarray, then: np.ndarray) -> np.ndarray:
    """The (2, 3) affine applying ``first``, then ``then``."""
    linear = then[:, :2] @ first[:, :2]
    shift = then[:, :2] @ first[:, 2] + then[:, 2]
    return np.hstack([linear, shift[:, None]])


def apply(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N, 2) points mapped by a (2, 3) affine."""
    return points @ affine[:, :2].T + affine[:, 2]


__all__ = ["ANALYSIS_SIDE", "IDENTITY", "MotionEstimator", "apply", "compose"]
