"""Finding the input images: the files named, and the images inside the folders named."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .errors import CliError, ImageReadError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")


def collect_inputs(paths: Sequence[Path]) -> list[Path]:
    """Image files named directly, plus the images inside named folders (sorted, not recursive; hidden files such
    as macOS's ``._name.jpg`` are not images)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            images = sorted(p for p in path.iterdir()
                            if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."))
            if not images:
                raise ImageReadError(f"folder {path} has no images ({', '.join(IMAGE_EXTENSIONS)})")
            found.extend(images)
        elif path.is_file():
            found.append(path)
        else:
            raise ImageReadError(f"input {path} does not exist")
    return found


def find_inputs(items: Sequence[str]) -> list[Path]:
    """The input images (a file named twice counts once); refuses two inputs with the same output name."""
    try:
        found = collect_inputs([Path(i) for i in items])
    except ImageReadError as error:
        raise CliError(str(error)) from error
    first: dict[Path, Path] = {}
    for path in found:
        first.setdefault(path.resolve(), path)
    inputs = list(first.values())  # in order, each file once
    stems: dict[str, Path] = {}
    for path in inputs:
        if path.stem in stems:
            raise CliError(f"inputs {stems[path.stem]} and {path} would both be written as {path.stem}.png; "
                           "restore them into different output folders")
        stems[path.stem] = path
    return inputs
