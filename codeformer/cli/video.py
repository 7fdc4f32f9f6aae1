"""The CLI's video inputs: each clip streamed through ``restore_clip`` into ``OUTDIR/<stem>.mp4``.

Frames are decoded one at a time, restored as they come and encoded at once, so a clip never sits in memory whole.
The ``VideoWriter`` writes to a temporary name and renames it when its ``with`` block ends cleanly: every exception
(a damaged clip, Ctrl+C, running out of memory) is raised inside that block, so no half clip ever has the final name.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, replace
from itertools import islice
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..clip_advisor import ClipAdvice, advise_clip, sample_indices
from ..faces import DetectOptions
from ..geometry import target_size
from ..pipeline import RestoreSettings
from ..temporal import ClipFrame, TemporalOptions, restore_clip
from ..types import FaceDetector
from ..video import VideoInfo, VideoReadError, VideoWriteError, VideoWriter, probe_video, read_frames
from ..video_parts import PartWriter, part_faces, read_part
from .memory import too_large
from .outputs import to_uint8, write_failed, write_output
from .session import Models, advised_settings, detect_options, given_settings, skip

log = logging.getLogger("codeformer")

# Frames sampled for --best-settings / advise when the container does not say how many a clip has (most .mkv and
# .webm files): the first second or so, read without decoding the whole clip twice.
FEW_FRAMES = 24


@dataclass(frozen=True)
class VideoJob:
    """What every clip of a ``restore`` run shares."""

    output: Path
    models: Models
    device: torch.device
    detect: DetectOptions
    settings: RestoreSettings | str  # the command line's, or the --best-settings SOURCE to advise each clip with
    temporal: bool | None  # --temporal / --no-temporal; None: on, or as the advice says
    save_faces: bool
    overwrite: bool
    compute: dict  # tile, batch_size, precision for restore_clip
    inputs: Sequence[Path]  # every input file: none is ever overwritten
    on_frame: Callable[[int], None] | None = None  # told the frames of the clip (or part) done so far

    @classmethod
    def from_args(cls, args: argparse.Namespace, models: Models, device: torch.device, inputs: Sequence[Path],
                  on_frame: Callable[[int], None] | None = None) -> VideoJob:
        compute = {"tile": args.tile, "batch_size": args.batch_size, "precision": args.precision}
        return cls(args.output, models, device, detect_options(args), given_settings(args) or args.best_settings,
                   args.temporal, args.save_faces, args.overwrite, compute, inputs, on_frame)


@dataclass(frozen=True)
class VideoPart:
    """Frames ``first`` to ``stop`` of a clip restored on their own (``--ray``) into a part file under ``folder``,
    reading from frame ``read_from`` to ``read_to`` (the context the temporal smoothing needs, ``clip_context``)."""

    folder: Path
    first: int
    stop: int | None  # exclusive; None: to the end of the clip
    read_from: int
    read_from_pts: int | None  # its timestamp, to seek to it (None: decode from the beginning)
    read_to: int | None  # exclusive; None: to the end of the clip


def restore_video(path: Path, job: VideoJob, failed: list[Path], part: VideoPart | None = None) -> None:
    """Restore the clip ``path`` into ``OUTDIR/<stem>.mp4`` (or the frames of ``part`` into its part file); a clip
    that cannot be read (or is too large for the memory) is reported as skipped and added to ``failed``, leaving
    nothing at the output's name."""
    out = job.output / f"{path.stem}.mp4" if part is None else part.folder
    try:
        info = probe_video(path)
        settings, temporal = _settings(path, info, job)
        why = too_large((info.height, info.width), settings.upscale)
        if why:
            skip(failed, path, f"{path}: its frames are too large: {why}")
            return
        if part is None:
            notes = _write(path, out, info, settings, temporal, job)
        else:
            notes = _write_part(path, part, settings, temporal, job)
    except (VideoReadError, VideoWriteError) as error:
        skip(failed, path, str(error))
        return
    except OSError as error:  # the writer's: disk full, no permission (the reader's are VideoReadErrors)
        raise write_failed(out, error) from error
    for note in notes:
        log.warning("%s: %s", out, note)


def _settings(path: Path, info: VideoInfo, job: VideoJob) -> tuple[RestoreSettings, TemporalOptions | None]:
    """The clip's settings and temporal options: the command line's, or the best-settings rules' on sampled
    frames (printed like an image's); an explicit --temporal / --no-temporal wins over the advice."""
    if isinstance(job.settings, RestoreSettings):
        return job.settings, None if job.temporal is False else TemporalOptions()
    clip = _advise(path, info, job.models.face_detector(), job.settings, job.device)
    temporal = clip.temporal if job.temporal is None else job.temporal
    settings = advised_settings(path, clip.advice, job.settings, job.detect,
                                f", temporal {'on' if temporal else 'off'}")
    return settings, TemporalOptions(code_window=clip.code_window) if temporal else None


def _write(path: Path, out: Path, info: VideoInfo, settings: RestoreSettings, temporal: TemporalOptions | None,
           job: VideoJob) -> list[str]:
    """Stream the clip through ``restore_clip`` into the writer; returns the writer's notes."""
    size = target_size((info.height, info.width), settings.upscale)
    frames = faces = 0
    with (VideoWriter(out, info, size, audio_from=path, overwrite=job.overwrite) as writer,
          tqdm(desc=path.name, total=info.frames or None, unit="frame", disable=None, leave=False,
               file=sys.stderr) as bar):
        for frame, pts in _restored(path, settings, temporal, job):
            writer.write(to_uint8(frame.image.image), pts)
            if job.save_faces:
                _save_faces(path, frame, temporal is not None, job)
            frames, faces = frames + 1, faces + len(frame.faces.faces)
            bar.update(1)
    log.info("%s: %d frame(s), %d face(s) restored", path.name, frames, faces)
    return writer.notes


def join_parts(path: Path, out: Path, upscale: float, overwrite: bool, folder: Path, firsts: Sequence[int]) -> None:
    """Join the parts of the clip ``path`` restored at ``upscale`` (their first frames ``firsts``, in order, under
    ``folder``) into ``out``, encoded as ``restore_video`` encodes a whole clip."""
    info = probe_video(path)
    size = target_size((info.height, info.width), upscale)
    frames = faces = 0
    try:
        with VideoWriter(out, info, size, audio_from=path, overwrite=overwrite) as writer:
            for first in firsts:
                for image, pts in read_part(folder, first):
                    writer.write(image, pts)
                    frames += 1
                faces += part_faces(folder, first)
    except OSError as error:
        raise write_failed(out, error) from error
    log.info("%s: %d frame(s), %d face(s) restored", path.name, frames, faces)
    for note in writer.notes:
        log.warning("%s: %s", out, note)


def _write_part(path: Path, part: VideoPart, settings: RestoreSettings, temporal: TemporalOptions | None,
                job: VideoJob) -> list[str]:
    """Restore the frames of ``part`` into its lossless part file (``video_parts``), for the join."""
    with PartWriter(part.folder, part.first) as writer:
        for frame, pts in _restored(path, settings, temporal, job, part):
            writer.write(to_uint8(frame.image.image), pts, len(frame.faces.faces))
    return []


def _restored(path: Path, settings: RestoreSettings, temporal: TemporalOptions | None, job: VideoJob,
              part: VideoPart | None = None) -> Iterator[tuple[ClipFrame, int | None]]:
    """The clip's restored frames (numbered in the clip) with their timestamps: all of them, or those of ``part``
    (reading its context frames too)."""
    networks = job.models.networks(settings)  # loads the upscaler first where these settings need it
    timestamps: dict[int, int | None] = {}  # pts of the frames read and not yet restored (a chunk's worth)
    start, only, count = 0, None, None
    if part is not None:
        start = part.read_from
        only = range(part.first - start, sys.maxsize if part.stop is None else part.stop - start)
        count = None if part.read_to is None else part.read_to - start
    frames = _images(path, timestamps, start, None if part is None else part.read_from_pts)
    with contextlib.closing(frames):
        for done, frame in enumerate(restore_clip(islice(frames, count), networks, settings, temporal,
                                                  device=job.device, only=only, **job.compute)):
            index = frame.index + start
            for older in [i for i in timestamps if i < index]:  # context frames, not restored
                del timestamps[older]
            yield replace(frame, index=index), timestamps.pop(index)
            if job.on_frame is not None:
                job.on_frame(done + 1)


def _images(path: Path, timestamps: dict[int, int | None], start: int = 0,
            start_pts: int | None = None) -> Generator[np.ndarray, None, None]:
    """The clip's frames from frame ``start``, lazily, noting each one's timestamp for the writer (variable frame
    rates keep theirs)."""
    with contextlib.closing(read_frames(path, start, start_pts)) as frames:
        for frame in frames:
            timestamps[frame.index] = frame.pts
            yield frame.image


def _save_faces(path: Path, frame: ClipFrame, tracked: bool, job: VideoJob) -> None:
    """``OUTDIR/faces/<stem>/<frame>_<NN>_crop|restored.png``: NN is the face's track (its index in the frame
    without tracking)."""
    folder = job.output / "faces" / path.stem
    for i, (face, crop, restored) in enumerate(zip(frame.faces.faces, frame.crops, frame.restored, strict=True)):
        number = face.track if tracked and face.track is not None else i
        name = f"{frame.index:06d}_{number:02d}"
        write_output(crop, folder / f"{name}_crop.png", job.inputs)
        write_output(restored, folder / f"{name}_restored.png", job.inputs)


def sample_frames(path: Path, info: VideoInfo) -> list[np.ndarray]:
    """The frames ``clip_advisor.sample_indices`` picks, read in one streaming pass that keeps only those."""
    wanted = set(sample_indices(info.frames or FEW_FRAMES))
    kept: list[np.ndarray] = []
    with contextlib.closing(read_frames(path)) as frames:
        for frame in frames:
            if frame.index in wanted:
                kept.append(frame.image)
            if frame.index >= max(wanted):
                break
    if not kept:
        raise VideoReadError(f"{path}: no frame could be decoded; copy, download or export it again")
    return kept


def _advise(path: Path, info: VideoInfo, detector: FaceDetector, source: str, device: torch.device) -> ClipAdvice:
    return advise_clip(sample_frames(path, info), detector, source, device)


def advise_video(path: Path, detector: FaceDetector, source: str, device: torch.device,
                 failed: list[Path]) -> ClipAdvice | None:
    """``advise`` for a clip, or None after reporting why it cannot be read (``path`` is added to ``failed``)."""
    try:
        return _advise(path, probe_video(path), detector, source, device)
    except VideoReadError as error:
        skip(failed, path, str(error))
        return None
