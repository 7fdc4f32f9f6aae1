"""Finding the inputs: the files named, and the images and videos inside the folders named; what is in the way (a
FIFO, a device, a socket, a broken link) is listed as skipped, never opened."""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..video import VIDEO_SUFFIXES
from .errors import CliError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")

_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder"))


@dataclass(frozen=True)
class Inputs:
    """The input images and videos, each once and in order, and the entries skipped (path, why) before any is
    read."""

    images: tuple[Path, ...]
    skipped: tuple[tuple[Path, str], ...] = ()
    videos: tuple[Path, ...] = ()

    @property
    def total(self) -> int:
        return len(self.images) + len(self.videos) + len(self.skipped)

    @property
    def files(self) -> tuple[Path, ...]:
        """Every input file, images then videos: what no output may replace."""
        return self.images + self.videos


def is_video(path: Path) -> bool:
    """Whether ``path`` is read as a video (by its suffix; any other file named is read as an image)."""
    return path.suffix.lower() in VIDEO_SUFFIXES


def output_name(path: Path) -> str:
    """The name of the output of ``path`` in OUTDIR: ``<stem>.png`` for an image, ``<stem>.mp4`` for a video."""
    return f"{path.stem}{'.mp4' if is_video(path) else '.png'}"


def not_a_file(path: Path) -> str | None:
    """Why ``path`` is not a regular file (None if it is one, or a link to one); only ``stat``: nothing is opened, so
    a FIFO never blocks."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return f"is a broken link (to {os.readlink(path)})" if path.is_symlink() else "does not exist"
    except OSError as error:  # a link loop, a name too long, no permission to look
        return f"cannot be looked at ({error.strerror or error})"
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    return f"is {kind}, not an image file"


def collect_inputs(paths: Sequence[Path]) -> Inputs:
    """Files named directly, plus the images and videos inside named folders (sorted, not recursive; hidden files
    such as macOS's ``._name.jpg`` are not inputs, nor are files with other extensions). Entries that are not regular
    files are skipped, with the reason; a named path that does not exist stops the run (a typo)."""
    images: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    for path in paths:
        if _is_folder(path):
            found, odd = _folder(path)
            if not found and not odd:
                known = ", ".join(IMAGE_EXTENSIONS + VIDEO_SUFFIXES)
                raise CliError(f"folder {path} has no images or videos ({known})")
            images += found
            skipped += odd
            continue
        if not _named(path):
            raise CliError(f"input {path} does not exist")
        why = not_a_file(path)
        if why:
            skipped.append((path, why))
        else:
            images.append(path)
    first: dict[Path, Path] = {}
    for path in images:
        first.setdefault(path.resolve(), path)
    files = tuple(first.values())
    return Inputs(tuple(p for p in files if not is_video(p)), tuple(dict(skipped).items()),
                  tuple(p for p in files if is_video(p)))


def _folder(folder: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The images and videos of ``folder`` and its entries that are not regular files (sub-folders aside), sorted."""
    try:
        entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    except OSError as error:
        raise CliError(f"cannot list the folder {folder}: {error.strerror or error}") from error
    images, skipped = [], []
    for entry in entries:
        if _is_folder(entry):
            continue
        why = not_a_file(entry)
        if why:
            skipped.append((entry, why))
        elif entry.suffix.lower() in IMAGE_EXTENSIONS + VIDEO_SUFFIXES:
            images.append(entry)
    return images, skipped


def _is_folder(path: Path) -> bool:
    """Whether ``path`` is a folder (or a link to one); False where it cannot be looked at (``not_a_file`` then says
    why), where ``Path.is_dir`` raises PermissionError (a path under a folder the user may not enter)."""
    try:
        return path.is_dir()
    except OSError:
        return False


def _named(path: Path) -> bool:
    """Whether something is at ``path`` (a broken link counts; so does a path that cannot be looked at, which is
    then skipped with the reason): only a path that is not there at all is a typo."""
    try:
        path.lstat()
    except FileNotFoundError:
        return False
    except OSError:  # there, but not to be looked at
        pass
    return True


def find_inputs(items: Sequence[str]) -> Inputs:
    """The inputs named on the command line; refuses two inputs with the same output name (an image ``a.png`` and a
    video ``a.mp4`` do not clash: ``a.png`` and ``a.mp4``)."""
    inputs = collect_inputs([Path(i) for i in items])
    names: dict[str, Path] = {}
    for path in inputs.files:
        name = output_name(path)
        if name in names:
            raise CliError(f"inputs {names[name]} and {path} would both be written as {name}; "
                           "restore them into different output folders")
        names[name] = path
    return inputs
