"""Parts of a restored clip, kept losslessly until they are joined into one video (``--ray`` restores the parts of a
long clip on different workers).

A part is FFV1 in Matroska (lossless RGB: the frames read back are the frames written, bit for bit, so the joined
H.264 is the one a single run would encode) plus a JSON file with each frame's number and timestamp. Both are written
under temporary names and renamed, the JSON last: a part whose JSON exists is complete.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np

from .file_modes import discard_temporary, give_usual_permissions

# Matroska's time base is 1 ms: the frames' own timestamps travel in the JSON file, the container only orders them.
_RATE = Fraction(1000)


@dataclass
class PartInfo:
    """What a part holds besides its pictures."""

    first: int  # the clip's frame number of the part's first frame
    timestamps: list[int | None] = field(default_factory=list)  # per frame, in the clip's time base
    faces: int = 0  # faces restored
    notes: list[str] = field(default_factory=list)

    @property
    def frames(self) -> int:
        return len(self.timestamps)


def part_files(folder: Path, first: int) -> tuple[Path, Path]:
    """The (pictures, description) files of the part starting at frame ``first``."""
    stem = folder / f"{first:09d}"
    return stem.with_suffix(".mkv"), stem.with_suffix(".json")


def part_done(folder: Path, first: int) -> PartInfo | None:
    """The part starting at ``first`` if it was written completely, else None."""
    pictures, description = part_files(folder, first)
    try:
        said = json.loads(description.read_text())
    except (OSError, ValueError):
        return None
    if not pictures.is_file():
        return None
    return PartInfo(int(said["first"]), list(said["timestamps"]), int(said["faces"]), list(said["notes"]))


def part_faces(folder: Path, first: int) -> int:
    """The faces restored in a complete part."""
    info = part_done(folder, first)
    return 0 if info is None else info.faces


class PartWriter:
    """Write a part's frames (``write``) losslessly; a context manager that gives the files their names only when
    the block ends without an exception (nothing is left otherwise)."""

    def __init__(self, folder: Path, first: int) -> None:
        self.folder = Path(folder)
        self.info = PartInfo(first)
        self._tmp: Path | None = None
        self._output: av.container.OutputContainer | None = None
        self._stream: av.video.stream.VideoStream | None = None

    def __enter__(self) -> PartWriter:
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".part.", suffix=".mkv", dir=self.folder)
        os.close(fd)
        self._tmp = Path(tmp)
        return self

    def write(self, image: np.ndarray, pts: int | None, faces: int = 0) -> None:
        """Add one (H, W, 3) RGB uint8 frame shown at ``pts`` with ``faces`` restored faces."""
        if self._tmp is None:
            raise RuntimeError("PartWriter.write outside its 'with' block")
        if self._output is None or self._stream is None:
            self._output = av.open(str(self._tmp), "w", format="matroska")
            self._stream = self._output.add_stream("ffv1", rate=_RATE)
            self._stream.height, self._stream.width = image.shape[:2]
            self._stream.pix_fmt = "bgr0"  # RGB without chroma subsampling: lossless, any size
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24").reformat(format="bgr0")
        frame.pts = self.info.frames
        frame.time_base = 1 / _RATE
        self._output.mux(self._stream.encode(frame))
        self.info.timestamps.append(pts)
        self.info.faces += faces

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        try:
            if kind is None:
                self._close()
                pictures, description = part_files(self.folder, self.info.first)
                if self._tmp is not None:
                    give_usual_permissions(self._tmp)
                    os.replace(self._tmp, pictures)
                    self._tmp = None
                _write_json(description, {"first": self.info.first, "timestamps": self.info.timestamps,
                                          "faces": self.info.faces, "notes": self.info.notes})
        finally:
            discard_temporary(self._output, self._tmp)  # both None when the part was complete
            self._output = self._tmp = None

    def _close(self) -> None:
        if self._output is not None and self._stream is not None:
            self._output.mux(self._stream.encode(None))
            self._output.close()
            self._output = None


def read_part(folder: Path, first: int) -> Iterator[tuple[np.ndarray, int | None]]:
    """The frames of a complete part with their timestamps, one at a time."""
    info = part_done(folder, first)
    if info is None:
        raise FileNotFoundError(f"the part of frame {first} in {folder} is missing or incomplete")
    if not info.frames:
        return
    pictures, _ = part_files(folder, first)
    with av.open(str(pictures), "r") as container:
        frames = container.decode(video=0)
        for pts, frame in zip(info.timestamps, frames, strict=True):
            yield frame.to_ndarray(format="rgb24"), pts


def _write_json(path: Path, data: dict) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".part.", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        give_usual_permissions(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


__all__ = ["PartInfo", "PartWriter", "part_done", "part_faces", "part_files", "read_part"]
