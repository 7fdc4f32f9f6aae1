"""Finding the input images: the files named, and the images inside the folders named; what is in the way (a FIFO,
a device, a socket, a broken link) is listed as skipped, never opened."""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import CliError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")

_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder"))


@dataclass(frozen=True)
class Inputs:
    """The input images, each once and in order, and the entries skipped (path, why) before any is read."""

    images: tuple[Path, ...]
    skipped: tuple[tuple[Path, str], ...] = ()

    @property
    def total(self) -> int:
        return len(self.images) + len(self.skipped)


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
    """Image files named directly, plus the images inside named folders (sorted, not recursive; hidden files such
    as macOS's ``._name.jpg`` are not images, nor are files with other extensions). Entries that are not regular
    files are skipped, with the reason; a named path that does not exist stops the run (a typo)."""
    images: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    for path in paths:
        if path.is_dir():
            found, odd = _folder(path)
            if not found and not odd:
                raise CliError(f"folder {path} has no images ({', '.join(IMAGE_EXTENSIONS)})")
            images += found
            skipped += odd
            continue
        if not path.exists() and not path.is_symlink():
            raise CliError(f"input {path} does not exist")
        why = not_a_file(path)
        if why:
            skipped.append((path, why))
        else:
            images.append(path)
    first: dict[Path, Path] = {}
    for path in images:
        first.setdefault(path.resolve(), path)
    return Inputs(tuple(first.values()), tuple(dict(skipped).items()))


def _folder(folder: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The images of ``folder`` and its entries that are not regular files (sub-folders aside), sorted."""
    try:
        entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    except OSError as error:
        raise CliError(f"cannot list the folder {folder}: {error.strerror or error}") from error
    images, skipped = [], []
    for entry in entries:
        if entry.is_dir():
            continue
        why = not_a_file(entry)
        if why:
            skipped.append((entry, why))
        elif entry.suffix.lower() in IMAGE_EXTENSIONS:
            images.append(entry)
    return images, skipped


def find_inputs(items: Sequence[str]) -> Inputs:
    """The inputs named on the command line; refuses two inputs with the same output name."""
    inputs = collect_inputs([Path(i) for i in items])
    stems: dict[str, Path] = {}
    for path in inputs.images:
        if path.stem in stems:
            raise CliError(f"inputs {stems[path.stem]} and {path} would both be written as {path.stem}.png; "
                           "restore them into different output folders")
        stems[path.stem] = path
    return inputs
