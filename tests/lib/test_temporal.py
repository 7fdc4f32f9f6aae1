"""Consecutive frames (``codeformer.temporal``): off = still images, tracks through the stream, bounded look-ahead.

The temporal path without smoothing is checked against still images with the tiny CodeFormer (``tiny_networks``:
the full-size network's split is checked in test_codes); the stream tests use flat frames, which skip the detector
network (``no_faces``) and never reach CodeFormer.
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np
import pytest
from helpers import fake_model, gradient, read_rgb
from test_tracking import in_turn
from tiny_networks import tiny_model

from codeformer import temporal
from codeformer.detect import FACE_LIMIT, FaceSelectionError
from codeformer.image import to_working
from codeformer.pipeline import DetectOptions, Networks, RestoreSettings, restore_images
from codeformer.temporal import TemporalOptions, find_clip_faces, restore_clip, track_frames
from codeformer.tracking import FaceTracker, TrackOptions

BEST = DetectOptions(selection="largest")  # whole_01 has 5 faces; the best-scored one changes between frames
NOT_SMOOTHED = TemporalOptions(TrackOptions(max_gap=0, landmark_sigma=0), code_window=1, face_window=1,
                               frames_per_chunk=1)


def shifted(photo: np.ndarray, count: int, step: float = 1.5) -> list[np.ndarray]:
    """``count`` frames of ``photo`` panned by ``step`` px a frame (sub-pixel: the landmarks move)."""
    h, w = photo.shape[:2]
    return [cv2.warpAffine(photo, np.float32([[1, 0, i * step], [0, 1, i * step / 2]]), (w, h),
                           borderMode=cv2.BORDER_REFLECT) for i in range(count)]


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return shifted(read_rgb("whole_01.jpg"), 2)


class Counted:
    """An endless stream of flat frames that records how many were taken."""

    def __init__(self) -> None:
        self.taken = 0

    def __iter__(self) -> Iterator[np.ndarray]:
        while True:
            self.taken += 1
            yield gradient(48, 64)


def test_off_is_each_frame_as_a_still_image(frames, detector):
    networks = Networks(fake_model(), detector)
    settings = RestoreSettings(upscale=1.5, detect=BEST)
    clip = list(restore_clip(iter(frames), networks, settings, None))
    still = restore_images(frames, networks, settings)
    assert [f.index for f in clip] == [0, 1]
    for frame, image in zip(clip, still.images, strict=True):
        np.testing.assert_array_equal(frame.image.image, image.image)
        assert frame.codes is None and all(face.track is None for face in frame.faces.faces)


def test_temporal_without_smoothing_equals_still_images(frames, detector):
    """Tracking with nothing filled or smoothed and a code window of 1: the frames of ``restore_images``."""
    networks = Networks(tiny_model(), detector)
    settings = RestoreSettings(fidelity=0.5, upscale=1.0, detect=BEST)
    clip = list(restore_clip(frames, networks, settings, NOT_SMOOTHED))
    still = restore_images(frames, networks, settings)
    assert len(still.faces) == 2
    np.testing.assert_array_equal(np.concatenate([f.crops for f in clip]), still.crops)
    np.testing.assert_array_equal(np.concatenate([f.restored for f in clip]), still.restored)
    for frame, image in zip(clip, still.images, strict=True):
        np.testing.assert_array_equal(frame.image.image, image.image)
        np.testing.assert_array_equal(frame.image.mask, image.mask)
    assert [face.track for f in clip for face in f.faces.faces] == [0, 0]
    assert all(f.codes is not None and f.codes.shape == (1, 256) for f in clip)


def test_tracks_fill_a_missed_frame(detector):
    photo = read_rgb("whole_01.jpg")
    frames = shifted(photo, 5)
    frames[2] = np.full_like(photo, 128)  # the face is gone for one frame
    found = find_clip_faces(detector, frames, BEST, TrackOptions(max_gap=2, landmark_sigma=0))
    per_frame = [[f for f in found.faces.faces if f.source_index == i] for i in range(5)]
    assert [len(faces) for faces in per_frame] == [1, 1, 1, 1, 1]
    filled = per_frame[2][0]
    assert filled.track == per_frame[0][0].track == per_frame[4][0].track
    assert filled.score == 0.0  # interpolated, not detected
    between = (per_frame[1][0].landmarks + per_frame[3][0].landmarks) / 2
    np.testing.assert_allclose(filled.landmarks, between, atol=1.0)
    assert found.crops.shape == (5, 512, 512, 3)


@pytest.fixture
def no_faces(monkeypatch):
    """Detection that finds nothing without running the network (the stream tests' frames are flat)."""
    monkeypatch.setattr(temporal, "detect_image", lambda detector, source, options, device: (to_working(source), []))


def test_detection_stream_waits_only_for_its_look_ahead(detector, no_faces):
    stream = Counted()
    tracking = TrackOptions()
    frames = track_frames(detector, stream, BEST, tracking)
    lookahead = FaceTracker(tracking).lookahead
    for expected in range(20):
        frame = next(frames)
        assert frame.index == expected
        assert stream.taken <= expected + 1 + lookahead


def test_restore_stream_holds_a_bounded_number_of_frames(detector, models, no_faces):
    stream = Counted()
    temporal = TemporalOptions(frames_per_chunk=4)
    frames = restore_clip(stream, Networks(models.codeformer, detector), RestoreSettings(upscale=1.0), temporal)
    ahead = []
    for expected in range(40):
        frame = next(frames)
        assert frame.index == expected and len(frame.faces) == 0
        np.testing.assert_array_equal(frame.image.image, gradient(48, 64).astype(np.float32))  # no face: unchanged
        ahead.append(stream.taken - expected)
    chunks = 2 + temporal.face_window // 2  # being restored, being read, and those the face blend waits for
    bound = FaceTracker(temporal.tracking).lookahead + chunks * temporal.frames_per_chunk + temporal.code_window
    assert max(ahead) <= bound  # does not grow with the clip
    assert max(ahead[20:]) == max(ahead[:20])


def test_a_clip_detects_every_face_and_chooses_among_the_tracks(monkeypatch):
    """The selection is made per track once every face is tracked (``select_tracked``): the detector is asked for
    every face, and of two faces that a per-frame ``largest`` takes in turn, the clip keeps one track."""
    clip = in_turn(12, "largest")
    asked: list[tuple[str, int]] = []

    def detect(detector, source, options, device):
        asked.append((options.selection, options.max_faces))
        return to_working(source), clip[len(asked) - 1]

    monkeypatch.setattr(temporal, "detect_image", detect)
    frames = [gradient(480, 640)] * len(clip)
    aligned = list(track_frames(None, frames, DetectOptions(selection="largest", max_faces=2), TrackOptions()))
    assert set(asked) == {("all", FACE_LIMIT)}
    assert [[face.track for face in frame.found.faces.faces] for frame in aligned] == [[0]] * len(clip)


def test_a_malformed_selection_fails_before_the_first_frame_is_read():
    stream = Counted()
    with pytest.raises(FaceSelectionError, match="biggest"):
        next(track_frames(None, iter(stream), DetectOptions(selection="biggest"), TrackOptions()))
    assert stream.taken == 0
