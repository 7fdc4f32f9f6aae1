"""Consecutive frames (a video clip, or an IMAGE batch that is one) restored steadily, frame by frame in a stream.

Restored one by one, video faces flicker: the detector's landmarks jitter by a few pixels, so the aligned crop
shifts and CodeFormer's codebook picks flip. Here the faces are tracked across frames, a face the detector misses
for a few frames is filled in, each track's landmarks are smoothed over time before alignment (``tracking``), and
the code logits of each track are averaged over a few frames before the codebook lookup (``codes``), and each
restored face is blended with its track's neighbours where their input faces agree (``face_blend``). The rest is
the whole-image pipeline: canvases, paste-back.

Frames stream through: a frame is restored once the look-ahead its smoothing needs has been detected, and memory
holds about ``frames_per_chunk`` + look-ahead frames whatever the clip's length. On the device path (CUDA:
``device_path.use_device_path``) the frames go to the device ``frames_per_chunk`` at a time and stay there from
detection to paste; tracking, smoothing and the camera's motion work on the host from the detections. Without
temporal options every frame is restored exactly as a still image (``restore_images``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from itertools import groupby, islice
from typing import Any

import numpy as np
import torch

from .canvas import PasteResult
from .codes import check_window, restore_blended_chunks
from .detect import FACE_LIMIT, Detection, centre_distance, check_selection, choose_faces, visible_area
from .device_path import DeviceFrames, align_on_device, detect_on_device, to_device, use_device_path
from .errors import InputError
from .faces import DetectOptions, FoundFaces, align_faces, detect_image, join_found
from .geometry import Box, working_size
from .image import to_working
from .motion import MotionEstimator
from .pipeline import Networks, RestoreSettings, paste_restored, restore_images
from .tracking import FaceTracker, TrackedFace, TrackOptions
from .types import Face, FaceDetector, Faces, Interrupt
from .upsample import AUTO_TILE


@dataclass(frozen=True)
class TemporalOptions:
    """How consecutive frames are steadied."""

    tracking: TrackOptions = TrackOptions()  # tracks, filled misses, landmark smoothing
    code_window: int = 3  # frames whose code logits are averaged per track (odd; 1 = off)
    face_window: int = 3  # frames whose restored faces are blended per track, where their inputs agree (odd; 1 = off)
    frames_per_chunk: int = 8  # frames restored together: the batch of the network calls

    def __post_init__(self) -> None:
        check_window(self.code_window)
        check_window(self.face_window, "face window")
        if self.frames_per_chunk < 1:
            raise InputError(f"frames_per_chunk must be at least 1, got {self.frames_per_chunk}")


@dataclass(frozen=True)
class AlignedFrame:
    """A frame whose faces are final: its source image and its aligned faces (numbered by the frame's index)."""

    index: int
    source: np.ndarray = field(repr=False)
    found: FoundFaces
    on_device: DeviceFrames | None = field(default=None, repr=False)  # the frame on the device (device path)


@dataclass(frozen=True)
class _Detected:
    """A frame detected, waiting for its look-ahead before its faces are final."""

    index: int
    source: np.ndarray = field(repr=False)
    working: np.ndarray | None = field(repr=False)  # the host working image (None on the device path)
    found: list[Detection]  # every face (the selection is made per track, once tracked)
    on_device: DeviceFrames | None = field(default=None, repr=False)

    def host_working(self) -> np.ndarray:
        return to_working(self.source) if self.working is None else self.working


@dataclass(frozen=True)
class ClipFrame:
    """One restored frame of a clip."""

    index: int
    image: PasteResult = field(repr=False)  # the frame x upscale
    faces: Faces  # this frame's faces (a batch of one image), with their tracks when temporal
    crops: np.ndarray = field(repr=False)  # [n, 512, 512, 3] aligned crops
    restored: np.ndarray = field(repr=False)  # [n, 512, 512, 3] restored crops
    codes: np.ndarray | None = field(default=None, repr=False)  # [n, 256] codebook indices used (temporal only)


def track_frames(
    detector: FaceDetector,
    frames: Iterable[np.ndarray],
    options: DetectOptions,
    tracking: TrackOptions,
    *,
    device: torch.device | str = "cpu",
    check_interrupt: Interrupt | None = None,
    detect_frames: int = 8,
) -> Iterator[AlignedFrame]:
    """Detect -> track -> fill -> smooth (relative to the camera's motion) -> select -> align, frame by frame: each
    frame once its look-ahead is detected. On the device path (``device_path.use_device_path``) ``detect_frames``
    frames at a time go to the device in one copy and are detected together; they stay there for the paste.

    Every face is tracked; ``options``' selection and ``max_faces`` then choose among the tracked faces of each
    frame (``select_tracked``)."""
    check_selection(options.selection)  # a malformed selection fails before the first frame
    tracker = FaceTracker(tracking)
    camera = MotionEstimator() if tracking.landmark_sigma > 0 else None  # only smoothing needs the camera's motion
    waiting: deque[_Detected] = deque()  # not yet final

    def aligned(every: list[TrackedFace]) -> AlignedFrame:
        frame = waiting.popleft()
        tracked = select_tracked(every, working_size(frame.source.shape[:2]), options)
        tracks = [t.track for t in tracked]
        if frame.on_device is None:
            found = align_faces(frame.source, frame.host_working(), frame.index, tracked, tracks)
        else:
            found = align_on_device(frame.on_device, frame.index, tracked, tracks)
        return AlignedFrame(frame.index, frame.source, found, frame.on_device)

    detect = _detect_on_device if use_device_path(device) else _detect_each
    # Every face up to the limit (the selection's own when larger): which ones are kept is decided per track.
    every_face = replace(options, selection="all", max_faces=max(options.max_faces, FACE_LIMIT))
    for frame in detect(detector, frames, every_face, device, check_interrupt, detect_frames):
        waiting.append(frame)
        motion = None if camera is None else camera.step(frame.host_working())
        for tracked in tracker.push(frame.found, motion):
            yield aligned(tracked)
    for tracked in tracker.finish():
        yield aligned(tracked)


def select_tracked(faces: Sequence[TrackedFace], image_size: tuple[int, int],
                   options: DetectOptions) -> list[TrackedFace]:
    """The tracked faces of one frame that ``options``' selection and ``max_faces`` keep, in the tracker's order
    (the paste order).

    As for a still image (``detect.select_faces``), but by each track's means over the smoothing window: its score
    (the rank), its visible area (``largest``) and its distance to the centre (``center``). Two faces of about the
    same size or score are then not chosen in turn from frame to frame by the detector's jitter, and the choice
    depends only on frames within the look-ahead (a part of a clip still restores as in the whole run). Indices
    count the frame's faces by that mean score; a frame with fewer faces keeps those it has.
    """
    ranked = sorted(faces, key=lambda face: -face.window_score)  # stable: ties keep the tracker's order

    def mean_of(measure: Callable[[Box, tuple[int, int]], float]) -> Callable[[int], float]:
        return lambda i: float(np.mean([measure(box, image_size) for box in ranked[i].window_boxes]))

    kept = choose_faces(len(ranked), options.selection, options.max_faces, area=mean_of(visible_area),
                        distance=mean_of(centre_distance), missing_ok=True)
    tracks = {ranked[i].track for i in kept}
    return [face for face in faces if face.track in tracks]


def _detect_each(detector: FaceDetector, frames: Iterable[np.ndarray], options: DetectOptions,
                 device: torch.device | str, check_interrupt: Interrupt | None, _batch: int) -> Iterator[_Detected]:
    """Frame by frame, detection on the host's working image (the OpenCV path)."""
    for index, source in enumerate(frames):
        if check_interrupt is not None:
            check_interrupt()
        working, found = detect_image(detector, source, options, device=device)
        yield _Detected(index, source, working, found)


def _detect_on_device(detector: FaceDetector, frames: Iterable[np.ndarray], options: DetectOptions,
                      device: torch.device | str, check_interrupt: Interrupt | None,
                      batch: int) -> Iterator[_Detected]:
    """``batch`` frames at a time copied to the device and detected there (a new frame size starts a new batch)."""
    iterator = iter(frames)
    start = 0
    while sources := list(islice(iterator, batch)):
        if check_interrupt is not None:
            check_interrupt()
        for _, run in groupby(sources, key=lambda image: image.shape):
            same = list(run)
            on_device = to_device(same, torch.device(device))
            working, per_frame = detect_on_device(detector, on_device, options, check_interrupt=check_interrupt)
            frames_on = DeviceFrames(on_device, working)
            for offset, (source, found) in enumerate(zip(same, per_frame, strict=True)):
                yield _Detected(start + offset, source, None, found, frames_on[offset])
            start += len(same)


def find_clip_faces(detector: FaceDetector, frames: Sequence[np.ndarray], options: DetectOptions | None = None,
                    tracking: TrackOptions | None = None, **kwargs) -> FoundFaces:
    """``faces.find_faces`` for a batch of consecutive frames: the faces tracked, filled and smoothed. ``kwargs``
    are ``track_frames``' device and check_interrupt."""
    found = track_frames(detector, frames, options or DetectOptions(), tracking or TrackOptions(), **kwargs)
    return join_found([frame.found for frame in found], [frame.shape[:2] for frame in frames])


def restore_clip(
    frames: Iterable[np.ndarray],
    networks: Networks,
    settings: RestoreSettings,
    temporal: TemporalOptions | None = TemporalOptions(),
    *,
    device: torch.device | str = "cpu",
    precision: str | None = None,
    tile: int = AUTO_TILE,
    batch_size: int | None = None,
    check_interrupt: Interrupt | None = None,
    only: range | None = None,
) -> Iterator[ClipFrame]:
    """Restore consecutive frames (``(H, W, 3)`` RGB uint8, one size), yielding each restored frame in order.

    ``temporal=None``: every frame exactly as ``restore_images`` restores a still image.
    ``only``: restore and yield only these frames (numbered from the first given); the others are still read,
    detected and tracked, as context. A part of a clip given with the ``clip_context`` frames around it comes out
    as it does in a run over the whole clip.
    """
    precision = networks.restorer.precision if precision is None else precision
    compute: dict[str, Any] = {"tile": tile, "device": device, "precision": precision,
                               "check_interrupt": check_interrupt}
    if temporal is None:
        frames = frames if only is None else (f for i, f in enumerate(frames) if i in only)
        start = 0 if only is None else only.start
        yield from _frame_by_frame(frames, networks, settings, batch_size=batch_size, start=start, **compute)
        return
    aligned: Iterable[AlignedFrame] = track_frames(networks.detector, frames, settings.detect, temporal.tracking,
                                                   device=device, check_interrupt=check_interrupt,
                                                   detect_frames=temporal.frames_per_chunk)
    if only is not None:  # the frames next to the part are restored too: their faces and code logits smooth its ends
        reach = temporal.code_window // 2 + temporal.face_window // 2
        restored = range(only.start - reach, only.stop + reach)
        aligned = (frame for frame in aligned if frame.index in restored)
    Chunk = tuple[list[AlignedFrame], tuple[Face, ...], np.ndarray]

    def restorer_input() -> Iterator[tuple[Chunk, tuple[Face, ...], np.ndarray]]:
        """Each chunk (its frames, their faces numbered by frame in the clip as the smoothing needs them, their
        crops) as the key it comes back with, and its faces and crops."""
        while chunk := list(islice(aligned, temporal.frames_per_chunk)):
            faces = tuple(face for frame in chunk for face in frame.found.faces.faces)
            crops = np.concatenate([frame.found.crops for frame in chunk])
            yield (chunk, faces, crops), faces, crops

    for (chunk, clip_faces, crops), blended, codes in restore_blended_chunks(
            networks.restorer, restorer_input(), settings.fidelity, window=temporal.code_window,
            face_window=temporal.face_window, device=device, batch_size=batch_size, precision=precision,
            check_interrupt=check_interrupt):
        start = chunk[0].index
        faces = Faces(tuple(replace(face, source_index=face.source_index - start) for face in clip_faces),
                      tuple(frame.source.shape[:2] for frame in chunk))
        sources = [frame.source for frame in chunk]
        pasted = paste_restored(sources, faces, blended, networks, settings, on_device=_on_device(chunk), **compute)
        for frame in _clip_frames([frame.index for frame in chunk], pasted, faces, crops, blended, codes):
            if only is None or frame.index in only:
                yield frame


def clip_context(temporal: TemporalOptions | None) -> tuple[int, int]:
    """Frames (before, after) a part of a clip that ``restore_clip`` must also be given (with ``only`` = the part)
    for the part to come out exactly as in a run over the whole clip.

    A frame's result depends on the restored faces of the frames ``face_window // 2`` around it, theirs on the code
    logits of the frames ``code_window // 2`` around each, those on the smoothed landmarks ``lookahead`` frames
    around each (the smoothing radius, and a gap filled once its face reappears up to ``max_gap`` frames later);
    before that, the tracks must be the whole run's: ``max_gap + 2`` frames after a start, a track's velocity and
    any gap it was in are the same again. The frames before are rounded up to whole restore chunks. Without
    temporal options frames are independent: (0, 0).
    """
    if temporal is None:
        return 0, 0
    smoothing = temporal.face_window // 2 + temporal.code_window // 2
    reach = FaceTracker(temporal.tracking).lookahead
    before = temporal.tracking.max_gap + 2 + reach + smoothing
    chunk = temporal.frames_per_chunk
    return -(-before // chunk) * chunk, reach + smoothing


def _on_device(chunk: Sequence[AlignedFrame]) -> DeviceFrames | None:
    """The chunk's frames on the device, where they all are there and have one size (else the OpenCV paste)."""
    parts = [frame.on_device for frame in chunk]
    if any(part is None for part in parts) or len({frame.source.shape for frame in chunk}) > 1:
        return None
    return DeviceFrames.cat([part for part in parts if part is not None])


def _frame_by_frame(frames: Iterable[np.ndarray], networks: Networks, settings: RestoreSettings, *, start: int = 0,
                    frames_per_chunk: int = TemporalOptions.frames_per_chunk, **compute) -> Iterator[ClipFrame]:
    """Each frame as a still image, a few frames per ``restore_images`` call (numbered from ``start``)."""
    iterator = iter(frames)
    while chunk := list(islice(iterator, frames_per_chunk)):
        result = restore_images(chunk, networks, settings, **compute)
        yield from _clip_frames(list(range(start, start + len(chunk))), result.images, result.faces, result.crops,
                                result.restored, None)
        start += len(chunk)


def _clip_frames(indices: list[int], images: list[PasteResult], faces: Faces, crops: np.ndarray,
                 restored: np.ndarray, codes: np.ndarray | None) -> Iterator[ClipFrame]:
    """A chunk's results split into one ClipFrame per frame (faces numbered as a batch of one image)."""
    for local, (index, image, members) in enumerate(zip(indices, images, faces.by_image(), strict=True)):
        positions = [p for p, _ in members]
        own = Faces(tuple(replace(face, source_index=0) for _, face in members), (faces.source_sizes[local],))
        yield ClipFrame(index, image, own, crops[positions], restored[positions],
                        None if codes is None else codes[positions])


__all__ = ["AlignedFrame", "ClipFrame", "TemporalOptions", "clip_context", "find_clip_faces", "restore_clip",
           "select_tracked", "track_frames"]
