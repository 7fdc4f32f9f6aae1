"""The camera's motion between frames (``codeformer.motion``): measured to a small fraction of a pixel."""

from __future__ import annotations

import numpy as np

from bench.clips import load_photo, shake_clip
from codeformer.motion import IDENTITY, MotionEstimator, apply, compose


def truth(clip, frame: int) -> np.ndarray:
    """The clip's own motion from frame - 1 to frame."""
    a, b = (np.vstack([clip.transforms[i], [0, 0, 1]]) for i in (frame - 1, frame))
    return (b @ np.linalg.inv(a))[:2]


def test_shake_zoom_and_pan_are_measured_within_a_tenth_of_a_pixel():
    clip = shake_clip(load_photo("whole_02.png"), 8, shake_px=3.0, zoom=0.15, seed=3)
    camera = MotionEstimator()
    np.testing.assert_array_equal(camera.step(clip.frames[0]), IDENTITY)
    corners = np.array([[0, 0], [clip.size[1], 0], [0, clip.size[0]], [clip.size[1], clip.size[0]]], np.float64)
    for frame in range(1, len(clip.frames)):
        got = apply(camera.step(clip.frames[frame]), corners)
        assert np.abs(got - apply(truth(clip, frame), corners)).max() < 0.1


def test_flat_frames_and_a_new_size_count_as_still():
    camera = MotionEstimator()
    flat = np.full((120, 160, 3), 90, np.uint8)
    for frame in (flat, flat, np.full((100, 160, 3), 90, np.uint8)):
        np.testing.assert_array_equal(camera.step(frame), IDENTITY)


def test_compose_applies_first_then_then():
    first = np.array([[0.9, -0.1, 4.0], [0.1, 0.9, -2.0]])
    then = np.array([[1.1, 0.2, -1.0], [-0.2, 1.1, 3.0]])
    points = np.array([[10.0, 20.0], [-5.0, 7.0]])
    np.testing.assert_allclose(apply(compose(first, then), points), apply(then, apply(first, points)))
