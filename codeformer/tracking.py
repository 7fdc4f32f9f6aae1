"""Faces followed across consecutive video frames: tracks, missed detections filled, landmarks smoothed over time.

Why: restoring video frame by frame flickers, because RetinaFace's 5 landmarks jitter by a pixel or two between
frames and the aligned 512 px crop (a similarity transform fitted to them) moves with them. As in the reference
(KEEP, ECCV 2024), detections are linked into tracks, a short run of missed detections is filled by linear
interpolation, and each track's landmarks are smoothed over time before alignment.

It streams: ``FaceTracker.push`` takes one frame's detections and returns the frames that became final, each
``lookahead`` frames late, so memory stays bounded for clips of any length. Detected faces keep their raw box and
score (alignment reads only the landmarks); filled faces get interpolated boxes and score 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import cv2
import numpy as np

from .geometry import Box
from .motion import IDENTITY, apply, compose

if TYPE_CHECKING:
    from .detect import Detection

# Smoothing is a Gaussian-weighted local linear fit rather than a plain Gaussian mean: inside a full window the two
# are the same filter, but the fit has no lag at a track's first and last frames or next to a gap, where a
# truncated Gaussian drags the point toward the past (sigma 2.5, synthetic pan: 1.67 frames of lag at the ends
# against 0, RMS error on the first/last 2 frames 2.72 px against 1.37; bench/measured/landmark_smoothing.md).
# The window is cut at RADIUS_SIGMAS sigmas to keep the look-ahead small (radius 5 + max_gap 3 = 8 frames).
RADIUS_SIGMAS = 2.0
# Where the smoothed face sits further than this fraction of the eye distance from the raw (or filled) one, it is
# pulled back to that distance, so a fast head turn or an abrupt start neither lags nor ghosts for long (RMS on the
# frames around a sudden change of motion 4.54 -> 3.07 px), while detector jitter stays below it (flicker 0.14 ->
# 0.15 px; 0.05 would trigger on jitter: 0.50 px; bench/measured/landmark_smoothing.md).
GUARD_FRACTION = 0.1


@dataclass(frozen=True)
class TrackOptions:
    """How faces are followed over time. ``max_gap=0, landmark_sigma=0`` gives every frame's detections unchanged."""

    max_gap: int = 3  # frames a track may miss and still be filled by interpolation (0 = no filling)
    # Temporal smoothing strength in frames (0 = off). 2.5 with the guard (bench/measured/landmark_smoothing.md):
    # flicker 2.70 -> 0.15 px and still-face error 2.01 -> 0.75 px RMS; 1.5 flickers 0.25 px, 3.5 costs more on
    # fast motion (3.83 px against 3.07) for little less flicker.
    landmark_sigma: float = 2.5
    min_iou: float = 0.3  # overlap of a detection with a track's predicted box to continue that track

    def __post_init__(self) -> None:
        if self.max_gap < 0 or self.landmark_sigma < 0 or not 0 < self.min_iou <= 1:
            raise ValueError(f"invalid {self}: max_gap and landmark_sigma must be >= 0, min_iou in (0, 1]")


@dataclass(frozen=True)
class TrackedFace:
    """One face of one frame, with its track number."""

    frame: int  # frame number (0-based, counted over all push() calls)
    track: int  # 0, 1, 2... in order of first appearance; kept for the track's life
    box: Box
    score: float  # the detection's score; 0.0 for a filled face
    landmarks: np.ndarray = field(repr=False)  # (5, 2) float32, smoothed (raw when smoothing is off)
    detected: bool  # False where the face was filled by interpolation
    # The track's boxes and mean score over the smoothing window around this frame (filled faces count with score
    # 0; without smoothing this frame's own): what a clip's face selection ranks by, so that two faces of about the
    # same size or score are not chosen in turn from frame to frame.
    window_boxes: tuple[Box, ...]
    window_score: float


@dataclass(frozen=True)
class _Sample:
    box: Box
    score: float
    landmarks: np.ndarray
    order: int  # index among the frame's detections; -1 for a filled face


@dataclass
class _Track:
    number: int
    last: int  # frame of the last detection
    box: Box  # last detected box
    landmarks: np.ndarray  # last detected landmarks (kept apart: samples that old may already be forgotten)
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4))  # box change per frame
    samples: dict[int, _Sample] = field(default_factory=dict)  # frame -> face, only the frames still needed

    def predicted(self, frame: int) -> Box:
        # Moving the box by its recent velocity keeps a fast-moving face matched to its own track.
        x0, y0, x1, y1 = (np.asarray(self.box) + self.velocity * (frame - self.last)).tolist()
        return x0, y0, x1, y1


class FaceTracker:
    """Streaming tracker: ``push`` each frame's detections, then ``finish``; every frame comes out once, in order."""

    def __init__(self, options: TrackOptions = TrackOptions()) -> None:
        self.options = options
        self._radius = math.ceil(RADIUS_SIGMAS * options.landmark_sigma)
        self._tracks: list[_Track] = []  # in track-number order; dead ones leave once their samples are forgotten
        self._pushed = 0
        self._emitted = 0
        self._numbers = 0
        self._motions: dict[int, np.ndarray] = {}  # frame -> camera motion from the frame before (absent: none)

    @property
    def lookahead(self) -> int:
        # A frame's smoothing window reaches radius frames ahead, and a face there may still be filled once its
        # track reappears up to max_gap frames later.
        return self._radius + self.options.max_gap

    def push(self, detections: Sequence[Detection], motion: np.ndarray | None = None) -> list[list[TrackedFace]]:
        """Add the next frame's detections, and optionally the camera's motion since the previous frame (a (2, 3)
        affine from ``motion.MotionEstimator``: the landmarks are then smoothed relative to it); return the frames
        that became final (in order, possibly none), each as the list of its faces."""
        if motion is not None:
            self._motions[self._pushed] = np.asarray(motion, dtype=np.float64)
        self._match(self._pushed, detections)
        self._pushed += 1
        return self._emit(self._pushed - 1 - self.lookahead)

    def finish(self) -> list[list[TrackedFace]]:
        """End of clip: the remaining frames."""
        frames = self._emit(self._pushed - 1)
        self._tracks = []  # no track continues past the end of its clip
        self._motions = {}
        return frames

    def _match(self, frame: int, detections: Sequence[Detection]) -> None:
        live = [k for k in self._tracks if frame - 1 - k.last <= self.options.max_gap]
        overlaps = _iou_matrix([candidate.predicted(frame) for candidate in live], [det.box for det in detections])
        tracks, faces = np.nonzero(overlaps >= self.options.min_iou)
        pairs = sorted(zip((-overlaps[tracks, faces]).tolist(), tracks.tolist(), faces.tolist(), strict=True))
        # greedy by best overlap; ties go to the older track and the earlier detection
        matched: dict[int, _Track] = {}
        used: set[int] = set()
        for _, j, i in pairs:
            if i not in matched and j not in used:
                matched[i] = live[j]
                used.add(j)
        for i, det in enumerate(detections):
            landmarks = np.asarray(det.landmarks, dtype=np.float32)
            track = matched.get(i)
            if track is not None:
                self._fill(track, frame, det.box, landmarks)
            else:
                track = _Track(self._numbers, frame, det.box, landmarks)
                self._numbers += 1
                self._tracks.append(track)
            track.samples[frame] = _Sample(det.box, det.score, landmarks, i)

    def _fill(self, track: _Track, frame: int, box: Box, landmarks: np.ndarray) -> None:
        span = frame - track.last
        start, end = np.asarray(track.box, dtype=np.float64), np.asarray(box, dtype=np.float64)
        for step in range(1, span):
            a = step / span
            x0, y0, x1, y1 = ((1 - a) * start + a * end).tolist()
            points = (1 - a) * track.landmarks.astype(np.float64) + a * landmarks
            track.samples[track.last + step] = _Sample((x0, y0, x1, y1), 0.0, points.astype(np.float32), -1)
        track.velocity = (end - start) / span
        track.last, track.box, track.landmarks = frame, box, landmarks

    def _emit(self, last: int) -> list[list[TrackedFace]]:
        frames = []
        while self._emitted <= last:
            frames.append(self._frame(self._emitted))
            self._emitted += 1
        # Keep only what later frames can still use: samples inside their smoothing windows, tracks that may match.
        keep_from = self._emitted - self._radius
        for track in self._tracks:
            for old in [f for f in track.samples if f < keep_from]:
                del track.samples[old]
        for old in [f for f in self._motions if f <= keep_from]:
            del self._motions[old]
        self._tracks = [
            k for k in self._tracks if k.samples or self._pushed - 1 - k.last <= self.options.max_gap
        ]
        return frames

    def _frame(self, frame: int) -> list[TrackedFace]:
        detected: list[tuple[int, TrackedFace]] = []
        filled: list[TrackedFace] = []
        to_frame: dict[int, np.ndarray] = {}  # the camera's motion from a window frame to this one, for every track
        for track in self._tracks:
            sample = track.samples.get(frame)
            if sample is None:
                continue
            frames = self._window(track, frame)
            window = [track.samples[f] for f in frames]
            face = TrackedFace(frame, track.number, sample.box, sample.score,
                               self._smoothed(track, frame, frames, to_frame),
                               sample.order >= 0, tuple(near.box for near in window),
                               float(np.mean([near.score for near in window])))
            if face.detected:
                detected.append((sample.order, face))
            else:
                filled.append(face)
        detected.sort(key=lambda pair: pair[0])
        # filled faces by position, not by track number: a run over part of a clip numbers its tracks differently
        # but must paste them in the same order (overlapping faces: the later one is on top)
        filled.sort(key=lambda face: face.box[:2])
        return [face for _, face in detected] + filled

    def _smoothed(self, track: _Track, frame: int, frames: list[int], to_frame: dict[int, np.ndarray]) -> np.ndarray:
        """The track's landmarks at ``frame`` smoothed over its window ``frames`` (``_window``); ``to_frame`` keeps
        the camera motions from the window's frames to ``frame`` (made once a frame, not once a face: a crowd has
        many faces)."""
        sample = track.samples[frame]
        if self._radius == 0:
            return sample.landmarks
        weights = fit_weights(np.asarray(frames, dtype=np.float64) - frame, self.options.landmark_sigma)
        for f in frames:
            if f not in to_frame:
                to_frame[f] = self._between(f, frame)
        points = np.stack([apply(to_frame[f], track.samples[f].landmarks.astype(np.float64)) for f in frames])
        return guard(np.tensordot(weights, points, axes=1), sample.landmarks).astype(np.float32)

    def _window(self, track: _Track, frame: int) -> list[int]:
        """The frames of ``track`` within the smoothing radius of ``frame`` (``frame`` itself included)."""
        return [f for f in range(frame - self._radius, frame + self._radius + 1) if f in track.samples]

    def _between(self, start: int, end: int) -> np.ndarray:
        """The camera motion taking frame ``start``'s pixels to frame ``end``'s (the identity without motions)."""
        if start > end:
            return cv2.invertAffineTransform(self._between(end, start))
        total = IDENTITY
        for frame in range(start + 1, end + 1):
            if frame in self._motions:
                total = compose(total, self._motions[frame])
        return total


def fit_weights(offsets: np.ndarray, sigma: float) -> np.ndarray:
    """Weights whose dot product with the samples at ``offsets`` (frames from the one smoothed) is the value at 0
    of a Gaussian-weighted straight-line fit; a lone sample keeps its value."""
    w = np.exp(-0.5 * (offsets / sigma) ** 2)
    s0, s1, s2 = w.sum(), (w * offsets).sum(), (w * offsets**2).sum()
    det = s0 * s2 - s1 * s1
    if det <= 1e-9 * s0 * s0:
        return w / s0
    return w * (s2 - s1 * offsets) / det


def guard(smoothed: np.ndarray, raw: np.ndarray, fraction: float = GUARD_FRACTION) -> np.ndarray:
    """``smoothed`` pulled toward ``raw`` (both (5, 2)) so that no point is further than ``fraction`` of the raw
    eye distance from its raw position."""
    raw64 = raw.astype(np.float64)
    limit = fraction * float(np.linalg.norm(raw64[0] - raw64[1]))
    away = float(np.linalg.norm(smoothed - raw64, axis=1).max())
    if away <= limit:
        return smoothed
    return raw64 + (smoothed - raw64) * (limit / away)


def _iou_matrix(a: Sequence[Box], b: Sequence[Box]) -> np.ndarray:
    """The overlap (intersection over union) of every box of ``a`` with every box of ``b``: (len(a), len(b)); 0
    where they do not overlap. One array operation instead of a Python call per pair (a crowd: 85 x 85 a frame)."""
    if not a or not b:
        return np.zeros((len(a), len(b)))
    p, q = np.asarray(a, dtype=np.float64)[:, None, :], np.asarray(b, dtype=np.float64)[None, :, :]
    w = np.minimum(p[..., 2], q[..., 2]) - np.maximum(p[..., 0], q[..., 0])
    h = np.minimum(p[..., 3], q[..., 3]) - np.maximum(p[..., 1], q[..., 1])
    inter = w * h
    area_p = (p[..., 2] - p[..., 0]) * (p[..., 3] - p[..., 1])
    area_q = (q[..., 2] - q[..., 0]) * (q[..., 3] - q[..., 1])
    union = area_p + area_q - inter
    overlapping = (w > 0) & (h > 0) & (union > 0)
    return np.where(overlapping, inter / np.where(overlapping, union, 1.0), 0.0)


def track_faces(
    frames: Sequence[Sequence[Detection]], options: TrackOptions = TrackOptions()
) -> list[list[TrackedFace]]:
    """The whole clip at once (push every frame, then finish)."""
    tracker = FaceTracker(options)
    out = [face for frame in frames for face in tracker.push(frame)]
    return out + tracker.finish()
