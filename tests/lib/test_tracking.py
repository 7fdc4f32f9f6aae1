"""Faces followed over video frames (codeformer.tracking): streaming, filling, smoothing, track identity."""

from __future__ import annotations

import numpy as np
import pytest

from codeformer import tracking
from codeformer.detect import Detection, FaceSelectionError, select_faces
from codeformer.faces import DetectOptions
from codeformer.temporal import TemporalOptions, clip_context, select_tracked
from codeformer.tracking import GUARD_FRACTION, FaceTracker, TrackedFace, TrackOptions, track_faces

# Landmarks of a face in box sizes around its centre: eyes, nose, mouth corners.
TEMPLATE = np.array([[-0.2, -0.1], [0.2, -0.1], [0.0, 0.05], [-0.15, 0.2], [0.15, 0.2]])
OFF = TrackOptions(max_gap=0, landmark_sigma=0)


def face(cx: float, cy: float, size: float = 100.0, jitter: np.ndarray | None = None, score: float = 0.99):
    points = np.array([cx, cy]) + size * TEMPLATE
    if jitter is not None:
        points = points + jitter
    half = size / 2
    return Detection((cx - half, cy - half, cx + half, cy + half), score, points.astype(np.float32))


def random_clip(rng: np.random.Generator, n: int = 120) -> list[list[Detection]]:
    """Three faces drifting, entering and leaving, with missed detections and shuffled detector order."""
    starts = [(0, n), (15, 80), (40, n - 5)]
    frames = []
    for t in range(n):
        dets = []
        for k, (first, last) in enumerate(starts):
            if first <= t < last and rng.random() > 0.15:
                dets.append(face(150 + 250 * k + 1.5 * t, 200 + 0.5 * t * k, jitter=rng.normal(0, 1.5, (5, 2)),
                                 score=float(rng.uniform(0.8, 1))))
        rng.shuffle(dets)  # type: ignore[arg-type]
        frames.append(dets)
    return frames


def same(a: list[list[TrackedFace]], b: list[list[TrackedFace]]) -> bool:
    return len(a) == len(b) and all(
        len(fa) == len(fb)
        and all(
            (x.frame, x.track, x.box, x.score, x.detected) == (y.frame, y.track, y.box, y.score, y.detected)
            and np.array_equal(x.landmarks, y.landmarks)
            for x, y in zip(fa, fb, strict=True)
        )
        for fa, fb in zip(a, b, strict=True)
    )


@pytest.mark.parametrize("options", [TrackOptions(), TrackOptions(max_gap=5, landmark_sigma=1.0), OFF])
def test_streaming_equals_whole_clip_and_frames_come_out_once_in_order(options: TrackOptions) -> None:
    rng = np.random.default_rng(1)
    clip = random_clip(rng)
    whole = track_faces(clip, options)
    assert [f[0].frame for f in whole if f] == [t for t, f in enumerate(whole) if f]
    assert len(whole) == len(clip)
    for _ in range(3):
        tracker = FaceTracker(options)
        out: list[list[TrackedFace]] = []
        t = 0
        while t < len(clip):
            for frame in clip[t : t + int(rng.integers(1, 12))]:
                out += tracker.push(frame)
                t += 1
                # Each frame is final exactly lookahead frames later.
                assert len(out) == max(0, t - tracker.lookahead)
        out += tracker.finish()
        assert same(out, whole)
    assert all(face.frame == t for t, frame in enumerate(whole) for face in frame)


def test_buffers_stay_bounded_over_a_long_clip() -> None:
    rng = np.random.default_rng(2)
    tracker = FaceTracker()
    sizes = []
    for _ in range(20):
        for frame in random_clip(rng, 100):
            tracker.push(frame)
            sizes.append((len(tracker._tracks), sum(len(k.samples) for k in tracker._tracks)))
    tracker.finish()
    tracks, samples = np.array(sizes).T
    # 3 faces at most: each keeps its smoothing window, its look-ahead and the frame itself.
    assert tracks.max() <= 6 and samples.max() <= 3 * (2 * tracker.lookahead + 2)
    assert samples[1000:].max() <= samples[:200].max() + 3
    assert len(tracker._tracks) == 0


def test_off_mode_gives_each_frames_detections_unchanged() -> None:
    clip = random_clip(np.random.default_rng(3))
    tracker = FaceTracker(OFF)
    assert tracker.lookahead == 0
    for t, frame in enumerate(clip):
        (out,) = tracker.push(frame)
        assert [(f.box, f.score, f.detected, f.frame) for f in out] == [(d.box, d.score, True, t) for d in frame]
        for f, d in zip(out, frame, strict=True):
            assert f.landmarks.dtype == np.float32 and f.landmarks.tobytes() == d.landmarks.tobytes()
    assert tracker.finish() == []


def test_nearby_and_crossing_faces_keep_their_tracks() -> None:
    rng = np.random.default_rng(4)
    frames = []
    for t in range(100):
        side_by_side = [face(100, 100, jitter=rng.normal(0, 2, (5, 2))),
                        face(205, 100, jitter=rng.normal(0, 2, (5, 2)))]
        # Two faces crossing fast (45 px/frame each, a face is 100 px), 20 px apart vertically, passing each other
        # between frames 20 and 21: each lands nearer the other's last box than its own, so only the velocity
        # prediction keeps them apart.
        crossing = [face(300 + 45 * t, 400, jitter=rng.normal(0, 1, (5, 2))),
                    face(2140 - 45 * t, 420, jitter=rng.normal(0, 1, (5, 2)))]
        dets = side_by_side + crossing
        order = rng.permutation(4)
        frames.append([dets[i] for i in order])
    out = track_faces(frames)
    assert all(len(frame) == 4 and all(f.detected for f in frame) for frame in out)
    # The crossing faces: the one moving right keeps one number, the one moving left the other.
    right = {f.track for frame in out for f in frame if 390 < f.landmarks[2, 1] < 410}
    left = {f.track for frame in out for f in frame if f.landmarks[2, 1] > 410}
    top = [{f.track for frame in out for f in frame if f.landmarks[2, 1] < 300 and cond(f.landmarks[2, 0])}
           for cond in (lambda x: x < 152, lambda x: x >= 152)]
    assert len(right) == len(left) == 1 and right != left
    assert top[0] != top[1] and all(len(s) == 1 for s in top)
    assert {*right, *left, *top[0], *top[1]} == {0, 1, 2, 3}


def test_a_face_entering_mid_clip_starts_a_new_track() -> None:
    frames = [[face(100, 100)] + ([face(400, 100)] if t >= 10 else []) for t in range(20)]
    out = track_faces(frames)
    assert [[f.track for f in frame] for frame in out] == [[0]] * 10 + [[0, 1]] * 10


def moving(t: int) -> Detection:
    return face(100 + 3 * t, 100 + t)


def test_short_gap_is_filled_by_interpolation_long_gap_splits_the_track() -> None:
    options = TrackOptions(max_gap=3, landmark_sigma=0)
    frames = [[moving(t)] if not 10 <= t < 13 else [] for t in range(20)]
    out = track_faces(frames, options)
    for t in range(10, 13):
        (f,) = out[t]
        assert not f.detected and f.score == 0.0 and f.track == 0
        np.testing.assert_allclose(f.landmarks, moving(t).landmarks, atol=1e-4)
        np.testing.assert_allclose(f.box, moving(t).box, atol=1e-4)
    assert all(f.track == 0 for frame in out for f in frame)
    frames = [[moving(t)] if not 10 <= t < 14 else [] for t in range(20)]
    out = track_faces(frames, options)
    assert [len(frame) for frame in out] == [1] * 10 + [0] * 4 + [1] * 6
    assert [f.track for frame in out for f in frame] == [0] * 10 + [1] * 6


def test_no_filling_before_the_first_or_after_the_last_detection() -> None:
    frames = [[moving(t)] if 5 <= t < 10 else [] for t in range(20)]
    out = track_faces(frames)
    assert [len(frame) for frame in out] == [0] * 5 + [1] * 5 + [0] * 10


def test_filled_faces_come_after_the_detected_ones() -> None:
    frames = [[face(100, 100), face(400, 100)] if t != 5 else [face(400, 100)] for t in range(10)]
    out = track_faces(frames, TrackOptions(landmark_sigma=0))
    assert [(f.track, f.detected) for f in out[5]] == [(1, True), (0, False)]


def test_smoothing_reduces_the_jitter_of_a_still_face() -> None:
    rng = np.random.default_rng(5)
    frames = [[face(300, 300, jitter=rng.normal(0, 1.5, (5, 2)))] for _ in range(200)]
    raw = np.stack([frame[0].landmarks for frame in frames])
    smooth = np.stack([frame[0].landmarks for frame in track_faces(frames)])
    assert smooth.std(axis=0).mean() < 0.6 * raw.std(axis=0).mean()


def test_smoothing_does_not_lag_on_constant_velocity_even_at_the_ends() -> None:
    out = track_faces([[moving(t)] for t in range(40)])
    for t, frame in enumerate(out):
        np.testing.assert_allclose(frame[0].landmarks, moving(t).landmarks, atol=1e-3)
    rng = np.random.default_rng(6)
    truth = [moving(t) for t in range(40)]
    noisy = [[face(100 + 3 * t, 100 + t, jitter=rng.normal(0, 1, (5, 2)))] for t in range(40)]
    err = np.stack([f[0].landmarks - d.landmarks for f, d in zip(track_faces(noisy), truth, strict=True)])
    assert np.abs(err.mean(axis=(0, 1))).max() < 0.3  # no systematic lag
    assert np.sqrt((err[[0, 1, -2, -1]] ** 2).sum(axis=2).mean()) < 2.0


def test_smoothing_follows_the_camera_motion_it_is_given() -> None:
    """A hand-held camera shakes the face by ~3 px a frame: real motion, which smoothing alone would damp (the
    restored face would lag behind the face in the frame); given the camera's motion, only the jitter goes."""
    rng = np.random.default_rng(7)
    shake = rng.normal(0, 3, (60, 2))
    truth = [face(300 + x, 300 + y) for x, y in shake]
    frames = [[face(300 + x, 300 + y, jitter=rng.normal(0, 1.5, (5, 2)))] for x, y in shake]
    moves = [np.array([[1.0, 0, 0], [0, 1.0, 0]])] + [
        np.array([[1.0, 0, dx], [0, 1.0, dy]]) for dx, dy in np.diff(shake, axis=0)]

    def error(out: list[list[TrackedFace]]) -> float:
        diff = np.stack([f[0].landmarks - t.landmarks for f, t in zip(out, truth, strict=True)])
        return float(np.sqrt((diff**2).sum(axis=2).mean()))

    tracker = FaceTracker()
    followed = [face for frame, move in zip(frames, moves, strict=True) for face in tracker.push(frame, move)]
    followed += tracker.finish()
    raw = error([[det] for frame in frames for det in frame])  # type: ignore[misc]
    assert error(followed) < 0.6 * raw < error(track_faces(frames))
    assert len(tracker._motions) == 0  # forgotten with their frames


def test_smoothed_points_stay_near_the_raw_ones_on_a_sudden_jump() -> None:
    frames = [[face(100 + (30 if t >= 10 else 0), 100)] for t in range(20)]
    out = track_faces(frames)
    assert all(f.track == 0 for frame in out for f in frame)
    for frame, dets in zip(out, frames, strict=True):
        eye = np.linalg.norm(dets[0].landmarks[0] - dets[0].landmarks[1])
        away = np.linalg.norm(frame[0].landmarks - dets[0].landmarks, axis=1).max()
        assert away <= GUARD_FRACTION * eye + 1e-3


def test_empty_clip_and_frames_without_faces() -> None:
    assert track_faces([]) == []
    assert FaceTracker().finish() == []
    assert track_faces([[]] * 7) == [[]] * 7
    frames = [[], [face(100, 100)], [], [], [], [], [], [face(100, 100)], []]
    out = track_faces(frames)
    assert [len(f) for f in out] == [0, 1, 0, 0, 0, 0, 0, 1, 0]
    assert [f.track for frame in out for f in frame] == [0, 1]


def test_invalid_options_are_refused() -> None:
    for bad in (dict(max_gap=-1), dict(landmark_sigma=-1.0), dict(min_iou=0.0)):
        with pytest.raises(ValueError):
            TrackOptions(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("options", [TrackOptions(), TrackOptions(max_gap=5, landmark_sigma=1.0), OFF])
def test_a_part_tracked_with_its_context_equals_the_whole_clip(options: TrackOptions) -> None:
    """``restore --ray`` cuts long clips into parts, each tracked alone from ``clip_context`` frames before it:
    inside the part, the faces (landmarks, boxes, order) must be the whole clip's, and the tracks group them the
    same way (numbered differently)."""
    before, after = clip_context(TemporalOptions(options, code_window=1, face_window=1, frames_per_chunk=1))
    clip = random_clip(np.random.default_rng(2), 160)
    whole = track_faces(clip, options)
    for first in range(before, len(clip) - after, 9):
        stop = first + 20
        start, end = first - before, min(len(clip), stop + after)
        part = track_faces(clip[start:end], options)[first - start : stop - start]
        numbers: dict[int, int] = {}  # part's track -> whole's
        for a, b in zip(whole[first:stop], part, strict=True):
            assert len(a) == len(b)
            for x, y in zip(a, b, strict=True):
                assert (x.frame, x.box, x.score, x.detected) == (y.frame + start, y.box, y.score, y.detected)
                assert (x.window_boxes, x.window_score) == (y.window_boxes, y.window_score)  # what selection ranks by
                np.testing.assert_array_equal(x.landmarks, y.landmarks)
                assert numbers.setdefault(y.track, x.track) == x.track
        assert len(set(numbers.values())) == len(numbers)


SIZE = (480, 640)  # the frames' working size: (height, width)


def in_turn(n: int, kind: str) -> list[list[Detection]]:
    """Two still faces, left and right, that a per-frame choice takes in turn: a wobble of their size (``largest``),
    distance to the centre (``center``) or score (``max_faces``) lets the left one win on even frames and the right
    one on odd frames; on average over a few frames the left one wins."""
    frames = []
    for t in range(n):
        w = 3.0 if t % 2 == 0 else -3.0
        left = face(320 - (119 - w) if kind == "center" else 200, 240, 101 + w if kind == "largest" else 100,
                    score=0.91 + w / 100 if kind == "max_faces" else 0.99)
        right = face(320 + (121 + w) if kind == "center" else 440, 240, 99 - w if kind == "largest" else 100,
                     score=0.89 - w / 100 if kind == "max_faces" else 0.99)
        frames.append(sorted([left, right], key=lambda d: -d.score))  # the detector's order: best score first
    return frames


@pytest.mark.parametrize(("kind", "options"), [("largest", DetectOptions(selection="largest")),
                                               ("center", DetectOptions(selection="center")),
                                               ("max_faces", DetectOptions(max_faces=1))])
def test_a_clip_keeps_choosing_the_same_face_where_a_per_frame_choice_flips(kind: str, options: DetectOptions) -> None:
    clip = in_turn(30, kind)
    per_frame = [select_faces(dets, SIZE, options.selection, options.max_faces)[0].box[0] < 320 for dets in clip]
    assert all(per_frame[0::2]) and not any(per_frame[1::2])  # the still-image choice flips every frame
    chosen = [select_tracked(faces, SIZE, options) for faces in track_faces(clip, TrackOptions())]
    assert all(len(faces) == 1 for faces in chosen)
    assert {faces[0].track for faces in chosen} == {0} and all(faces[0].box[0] < 320 for faces in chosen)


def test_without_smoothing_a_clip_chooses_as_a_still_image_does() -> None:
    clip = in_turn(6, "largest")
    for dets, faces in zip(clip, track_faces(clip, OFF), strict=True):
        assert [f.box for f in select_tracked(faces, SIZE, DetectOptions(selection="largest"))] == \
            [d.box for d in select_faces(dets, SIZE, "largest")]


def test_indices_past_a_frames_faces_keep_the_faces_it_has() -> None:
    """A still image asking for a face it does not have is an error; a clip's frame keeps what it has (one face left
    the picture), and indices rank the faces by their mean score over the window."""
    clip = [[face(200, 240, score=0.95), face(440, 240, score=0.9)] for _ in range(10)]
    clip += [[face(200, 240, score=0.95)] for _ in range(10)]  # the second face has left
    with pytest.raises(FaceSelectionError):
        select_faces(clip[-1], SIZE, "1")
    chosen = [select_tracked(faces, SIZE, DetectOptions(selection="1, 0")) for faces in track_faces(clip, OFF)]
    assert [len(faces) for faces in chosen] == [2] * 10 + [1] * 10
    assert all(faces[0].track == 0 for faces in chosen[10:])
    second = [select_tracked(faces, SIZE, DetectOptions(selection="1")) for faces in track_faces(clip, OFF)]
    assert [[f.track for f in faces] for faces in second] == [[1]] * 10 + [[]] * 10


def test_iou_matrix():
    """Every track's predicted box against every detection in one array: the overlap, 0 where boxes only touch or
    do not meet, and no division by a zero union (degenerate boxes)."""
    tracks = [(0.0, 0.0, 10.0, 10.0), (5.0, 5.0, 15.0, 15.0), (3.0, 3.0, 3.0, 3.0)]
    found = [(0.0, 0.0, 10.0, 10.0), (10.0, 0.0, 20.0, 10.0), (5.0, 0.0, 15.0, 10.0), (3.0, 3.0, 3.0, 3.0)]
    expected = np.array([[1.0, 0.0, 50 / 150, 0.0],
                         [25 / 175, 25 / 175, 50 / 150, 0.0],
                         [0.0, 0.0, 0.0, 0.0]])
    assert np.allclose(tracking._iou_matrix(tracks, found), expected, rtol=0, atol=1e-15)
    assert tracking._iou_matrix([], found).shape == (0, 4) and tracking._iou_matrix(tracks, []).shape == (3, 0)
