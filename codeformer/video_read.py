"""Reading video files one frame at a time (see ``codeformer.video`` for the choices)."""

from __future__ import annotations

import contextlib
import stat
from collections.abc import Generator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from .errors import InputError

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi")

_REMUX = "re-encode it (e.g. ffmpeg -i IN -c:v libx264 OUT.mp4)"
_DAMAGED = "damaged or cut short; copy, download or export it again"


class VideoReadError(InputError):
    """A video file cannot be read: the message names the file, what is wrong and the fix."""


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a clip's first video stream; sizes are as displayed (rotation applied)."""

    path: Path
    width: int
    height: int
    frames: int  # frame count from the container (0 when unknown, as in most .mkv/.webm files)
    rate: Fraction  # average frame rate
    time_base: Fraction  # of the video stream: the unit of VideoFrame.pts
    has_audio: bool
    rotation: int = 0  # degrees counter-clockwise the file asks players to turn it; frames are read turned


@dataclass(frozen=True)
class VideoFrame:
    index: int
    image: np.ndarray  # (H, W, 3) RGB uint8, upright
    pts: int | None  # presentation timestamp in time_base units (kept for variable-frame-rate clips)


def probe_video(path: Path) -> VideoInfo:
    """The clip's size, frame count, rate and streams; ``VideoReadError`` when it cannot be opened or has no video.

    Decodes the first frame: the rotation is only seen on decoded frames in PyAV."""
    path = Path(path)
    with open_video(path) as container:
        stream = _video_stream(path, container)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate:
            raise VideoReadError(f"{path}: its video stream declares no frame rate; {_REMUX}")
        time_base = stream.time_base or 1 / Fraction(rate)
        width, height = stream.codec_context.width, stream.codec_context.height
        rotation = 0
        with contextlib.closing(_decoded(path, container, stream, _Damage())) as frames:
            frame = next(frames, None)
        if frame is not None:
            rotation, width, height = _rotation(frame), frame.width, frame.height
        if not width or not height:
            raise VideoReadError(f"{path}: its video stream has no frame size and no decodable frame: {_DAMAGED}")
        if rotation % 180:
            width, height = height, width
        has_audio = any(s.type == "audio" for s in container.streams)
        return VideoInfo(path, width, height, max(stream.frames, 0), Fraction(rate), Fraction(time_base), has_audio,
                         rotation)


def read_frames(path: Path, start: int = 0, start_pts: int | None = None) -> Generator[VideoFrame, None, None]:
    """The frames of the first video stream in display order, decoded one at a time (never the whole clip in memory),
    from frame number ``start`` on (numbered from the clip's first frame).

    ``start_pts`` (that frame's timestamp, from ``frame_timestamps``) lets the reader seek to the key frame before
    it instead of decoding every earlier frame; where the seek does not land on it (a stream without usable
    timestamps), the clip is decoded from its beginning.

    A damaged or truncated file yields the frames decoded before the damage, then raises ``VideoReadError``: the
    caller keeps what it has done so far and reports one line."""
    path = Path(path)
    if start > 0 and start_pts is not None:
        seeked = _read(path, start, start_pts)
        first = next(seeked, None)
        if first is not None:  # landed on the frame asked for: go on from there
            yield first
            yield from seeked
            return
    yield from _read(path, start, None)


def _read(path: Path, start: int, start_pts: int | None) -> Generator[VideoFrame, None, None]:
    """``read_frames`` by seeking to ``start_pts`` (yielding nothing when the seek misses it), or without it by
    decoding from the beginning and skipping ``start`` frames."""
    with open_video(path) as container:
        stream = _video_stream(path, container)
        declared = max(stream.frames, 0)
        index = 0
        if start_pts is not None:
            try:
                container.seek(start_pts, stream=stream, backward=True, any_frame=False)
            except av.FFmpegError:
                return
            index = start
        damage = _Damage()
        for frame in _decoded(path, container, stream, damage):
            if start_pts is not None and index == start:  # the first frame kept after a seek must be the one asked
                if frame.pts is None or frame.pts > start_pts:
                    return
                if frame.pts < start_pts:  # decoded from the key frame before it
                    continue
            if index < start:
                index += 1
                continue
            # converted with the colour matrix the frame is tagged with (BT.601 or 709)
            image: np.ndarray = frame.to_ndarray(format="rgb24")
            turns = round(_rotation(frame) / 90) % 4
            if turns:
                image = np.ascontiguousarray(np.rot90(image, turns))
            yield VideoFrame(index, image, frame.pts)
            index += 1
        if damage.corrupt and index < declared:
            raise VideoReadError(f"{path}: only {index} of its {declared} frames could be read: it is {_DAMAGED}")


def frame_timestamps(path: Path) -> list[int] | None:
    """Every frame's timestamp in display order, read from the packets without decoding (fast); None when some
    packet has none (then only decoding can number the frames)."""
    path = Path(path)
    with open_video(path) as container:
        stream = _video_stream(path, container)
        stamps: list[int] = []
        try:
            for packet in container.demux(stream):
                if packet.size == 0:  # the demuxer's end-of-stream flush packet
                    continue
                if packet.pts is None:
                    return None
                stamps.append(int(packet.pts))
        except av.FFmpegError as error:
            raise VideoReadError(f"{path}: cannot be read ({_said(error)}): it is {_DAMAGED}") from error
    return sorted(stamps)


@dataclass
class _Damage:
    """Whether the demuxer flagged a packet as cut short (what a truncated file shows: FFmpeg then ends quietly)."""

    corrupt: bool = False


def open_video(path: Path) -> av.container.InputContainer:
    """Open ``path`` for reading; a missing or non-regular file (a FIFO would block) and what FFmpeg refuses become a
    one-line ``VideoReadError``."""
    try:
        mode = path.stat().st_mode
    except OSError as error:
        raise VideoReadError(f"{path}: cannot be read ({error.strerror or error}); check the path") from error
    if not stat.S_ISREG(mode):
        raise VideoReadError(f"{path} is not a regular file; give a video file ({', '.join(VIDEO_SUFFIXES)})")
    try:
        container = av.open(str(path), "r")
    except av.FFmpegError as error:
        raise VideoReadError(f"{path} is not a readable video ({_said(error)}): it is not a video, or it is "
                             f"{_DAMAGED}") from error
    return container


def _video_stream(path: Path, container: av.container.InputContainer) -> av.video.stream.VideoStream:
    if not container.streams.video:
        raise VideoReadError(f"{path} has no video stream (audio only, or not a video); give a video file")
    return container.streams.video[0]


def _decoded(path: Path, container: av.container.InputContainer, stream: av.video.stream.VideoStream,
             damage: _Damage) -> Generator[av.VideoFrame, None, None]:
    """Decode ``stream``; every stream is demuxed so that a truncated packet of any of them (the mark of a file cut
    short, which FFmpeg otherwise ends silently) is seen. FFmpeg's errors become ``VideoReadError``."""
    try:
        for packet in container.demux():
            if packet.is_corrupt:
                damage.corrupt = True
            if packet.stream is stream:
                yield from packet.decode()  # type: ignore[misc]
    except av.FFmpegError as error:
        raise VideoReadError(f"{path}: cannot be decoded ({_said(error)}): it is {_DAMAGED}") from error


def _rotation(frame: av.VideoFrame) -> int:
    """The display rotation in degrees counter-clockwise, a multiple of 90 (other angles and flips are ignored)."""
    return int(round((frame.rotation or 0) / 90)) * 90 % 360


def _said(error: av.FFmpegError) -> str:
    return getattr(error, "strerror", None) or str(error).splitlines()[0]


__all__ = ["VIDEO_SUFFIXES", "VideoFrame", "VideoInfo", "VideoReadError", "frame_timestamps", "open_video",
           "probe_video", "read_frames"]
