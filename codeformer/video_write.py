"""Writing restored frames as H.264, with the input's timestamps and audio (see ``codeformer.video`` for the
choices). The file appears at its name only when complete."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np

from .errors import InputError
from .file_modes import discard_temporary, give_usual_permissions
from .video_read import VideoInfo, VideoReadError, open_video

# H.264 in the containers players take everywhere; .webm cannot hold H.264 and .avi loses B-frame timestamps.
OUTPUT_FORMATS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}
# The restored clip is the end product: CRF 17 is about visually lossless for x264 (18 is its usual "transparent"
# mark), and "medium" is x264's default trade-off; encoding costs little beside restoring every frame.
ENCODER_OPTIONS = {"crf": "17", "preset": "medium"}
# Audio codecs copied into .mp4: FFmpeg also muxes PCM and Vorbis there, but players (browsers, QuickTime, phones)
# do not play them in .mp4, so those are re-encoded to AAC; .mov and .mkv take what FFmpeg can mux into them.
MP4_AUDIO = frozenset({"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"})
_BT709 = 1  # AVCOL_PRI/TRC/SPC_BT709: the colour matrix frames are converted with, and tagged as, so players agree


class VideoWriteError(InputError):
    """The output cannot be written as asked (exists, would replace the input, unsupported suffix)."""


class VideoWriter:
    """Write (H, W, 3) RGB uint8 frames to ``path`` as H.264 yuv420p, keeping the input's rate and timestamps and
    copying its audio (``audio_from``). A context manager: the file is renamed to ``path`` only when the block ends
    without an exception; otherwise the temporary file is removed and nothing is left at ``path``.

    ``size`` is the (height, width) of the frames given to ``write``; an odd side is padded by one replicated pixel
    (yuv420p needs even sides). ``notes`` says what was changed (padding, audio re-encoded, timestamps moved)."""

    def __init__(self, path: Path, info: VideoInfo, size: tuple[int, int], *, audio_from: Path | None = None,
                 overwrite: bool = False) -> None:
        self.path = Path(path)
        self.info = info
        self.size = (int(size[0]), int(size[1]))
        self.audio_from = None if audio_from is None else Path(audio_from)
        self.overwrite = overwrite
        self.notes: list[str] = []
        self._check_output()
        h, w = self.size
        if h <= 0 or w <= 0:
            raise ValueError(f"VideoWriter: the frame size must be positive, got {self.size} (height, width)")
        self._coded = (h + h % 2, w + w % 2)
        if self._coded != self.size:
            self.notes.append(f"the {w}x{h} frames are padded to {self._coded[1]}x{self._coded[0]} by repeating the "
                              "last column/row (H.264 yuv420p needs even sizes; nothing is cropped)")
        self._tmp: Path | None = None
        self._output: av.container.OutputContainer | None = None
        self._video: av.video.stream.VideoStream | None = None
        self._audio: _AudioCopy | None = None
        self._count = 0
        self._last_pts: int | None = None

    def _check_output(self) -> None:
        path = self.path
        if path.suffix.lower() not in OUTPUT_FORMATS:
            raise VideoWriteError(f"cannot write H.264 video to {path}: name the output {' or '.join(OUTPUT_FORMATS)}")
        sources = {p.resolve() for p in (self.info.path, self.audio_from) if p is not None}
        if path.resolve() in sources:
            raise VideoWriteError(f"refusing to write the output {path} over its input; choose another output name")
        if path.is_dir():
            raise VideoWriteError(f"the output {path} is a folder; rename it or choose another output name")
        if path.exists() and not self.overwrite:
            raise VideoWriteError(f"the output {path} already exists; pass overwrite (--overwrite) to replace it, or "
                                  "choose another output name")

    def __enter__(self) -> VideoWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=".part", dir=self.path.parent)
        os.close(fd)
        self._tmp = Path(tmp)
        try:
            self._open()
        except BaseException:
            self._discard()
            raise
        return self

    def _open(self) -> None:
        if self._tmp is None:
            raise RuntimeError("VideoWriter._open outside its context")
        # the format by name: the temporary file's suffix is .part
        output = self._output = av.open(str(self._tmp), "w", format=OUTPUT_FORMATS[self.path.suffix.lower()])
        video = self._video = output.add_stream("libx264", rate=self.info.rate, options=dict(ENCODER_OPTIONS))
        video.height, video.width = self._coded
        video.pix_fmt = "yuv420p"
        video.time_base = self.info.time_base  # frames keep the input's timestamps in its own unit
        video.codec_context.time_base = self.info.time_base
        video.codec_context.color_primaries = video.codec_context.color_trc = _BT709
        video.codec_context.colorspace = _BT709
        if self.audio_from is not None:
            self._audio = _AudioCopy.open(self.audio_from, output, self.notes)

    def write(self, image: np.ndarray, pts: int | None) -> None:
        """Encode one frame shown at ``pts`` (in ``info.time_base`` units; None: at its place by the frame rate)."""
        if self._output is None or self._video is None:
            raise RuntimeError("VideoWriter.write outside its 'with' block")
        if image.shape != (*self.size, 3) or image.dtype != np.uint8:
            raise ValueError(f"VideoWriter.write takes {self.size + (3,)} uint8 frames (the size given), got "
                             f"{image.shape} {image.dtype}")
        pts = self._next_pts(pts)
        pad = (self._coded[0] - self.size[0], self._coded[1] - self.size[1])
        if any(pad):
            image = np.pad(image, ((0, pad[0]), (0, pad[1]), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame = frame.reformat(format="yuv420p", dst_colorspace=_BT709)
        frame.pts = pts
        frame.time_base = self.info.time_base
        for packet in self._video.encode(frame):
            self._output.mux(packet)
        self._count += 1
        if self._audio is not None:  # interleaved as it goes: no buffering of the whole track at the end
            self._audio.mux_until(pts * self.info.time_base)

    def _next_pts(self, pts: int | None) -> int:
        """``pts``, or the frame's place by the rate; moved on by one unit where it does not increase (the encoder
        refuses that; a damaged input's timestamps can)."""
        if pts is None:
            pts = round(Fraction(self._count) / self.info.rate / self.info.time_base)
        if self._last_pts is not None and pts <= self._last_pts:
            if not any(n.startswith("timestamps") for n in self.notes):
                self.notes.append("timestamps that did not increase were moved just after the frame before")
            pts = self._last_pts + 1
        self._last_pts = pts
        return pts

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if kind is not None:
            self._discard()
            return
        try:
            self._finish()
            self._publish()
        except BaseException:
            self._discard()
            raise

    def _finish(self) -> None:
        if self._output is None or self._video is None:
            return
        for packet in self._video.encode(None):
            self._output.mux(packet)
        if self._audio is not None:
            self._audio.mux_until(None)
            self._audio.close()
            self._audio = None
        self._output.close()
        self._output = None

    def _publish(self) -> None:
        """Give the complete file its name: never over a file that appeared meanwhile unless ``overwrite``."""
        if self._tmp is None:
            return
        give_usual_permissions(self._tmp)
        if self.overwrite:
            os.replace(self._tmp, self.path)
        else:
            try:
                os.link(self._tmp, self.path)  # fails if the name is taken: no race with another writer
            except FileExistsError as exists:
                raise VideoWriteError(f"the output {self.path} appeared while it was being written; it is left as "
                                      "it is: choose another output name") from exists
            except OSError:  # a file system without hard links: the check in __init__ must do
                os.replace(self._tmp, self.path)
        self._tmp.unlink(missing_ok=True)
        self._tmp = None

    def _discard(self) -> None:
        """Close everything and remove the temporary file, whatever state the writing stopped in."""
        if self._audio is not None:
            self._audio.close()
            self._audio = None
        discard_temporary(self._output, self._tmp)
        self._output = self._tmp = None


class _AudioCopy:
    """The first audio stream of a source file, copied packet by packet into the output (re-encoded to AAC only
    where the output container cannot hold its codec, e.g. PCM from a .mov into .mp4)."""

    def __init__(self, source: av.container.InputContainer, stream: av.audio.stream.AudioStream,
                 output: av.container.OutputContainer, notes: list[str]) -> None:
        self.source, self.stream, self.output = source, stream, output
        name = stream.codec_context.name
        fits = MP4_AUDIO if output.format.name == "mp4" else output.supported_codecs
        self.copy = name in fits and name in output.supported_codecs
        if self.copy:
            self.out = output.add_stream_from_template(stream)
        else:
            self.out = output.add_stream("aac", rate=stream.rate, options={"b": "192k"})
            self.out.layout = stream.layout
            notes.append(f"the audio ({name}) does not play in .{output.format.name} files: it is re-encoded to AAC "
                         "192 kb/s")
        self.packets: Iterator[av.Packet] | None = self._demux(source.name)
        self.pending: av.Packet | None = None

    @classmethod
    def open(cls, path: Path, output: av.container.OutputContainer, notes: list[str]) -> _AudioCopy | None:
        source = open_video(path)
        if not source.streams.audio:
            source.close()
            return None
        return cls(source, source.streams.audio[0], output, notes)

    def _demux(self, name: str) -> Iterator[av.Packet]:
        try:
            yield from self.source.demux(self.stream)
        except av.FFmpegError as error:
            raise VideoReadError(f"{name}: its audio cannot be read ({error}): it is damaged or cut short; "
                                 "re-export it") from error

    def mux_until(self, until: Fraction | None) -> None:
        """Mux the packets that start up to ``until`` seconds (all of them if None)."""
        while self.packets is not None:
            if self.pending is None:
                self.pending = next(self.packets, None)
                if self.pending is None:
                    self.packets = None
                    self._flush()
                    return
            packet = self.pending
            if until is not None and packet.pts is not None and packet.time_base is not None \
                    and packet.pts * packet.time_base > until:
                return
            self.pending = None
            self._put(packet)

    def _put(self, packet: av.Packet) -> None:
        if self.copy:
            if packet.dts is None or packet.is_corrupt:  # the demuxer's end-of-stream marker; a cut-short packet
                return
            packet.stream = self.out
            self.output.mux(packet)
            return
        for frame in packet.decode():
            for out in self.out.encode(frame):  # type: ignore[arg-type]
                self.output.mux(out)

    def _flush(self) -> None:
        if not self.copy:
            for out in self.out.encode(None):
                self.output.mux(out)

    def close(self) -> None:
        self.packets = None
        self.source.close()


__all__ = ["ENCODER_OPTIONS", "MP4_AUDIO", "OUTPUT_FORMATS", "VideoWriteError", "VideoWriter"]
