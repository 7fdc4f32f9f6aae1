"""Reading and writing image files for the CLI (RGB uint8 arrays)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
from PIL import Image

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")


class ImageReadError(ValueError):
    """An input path is missing, not an image, or a folder without images."""


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


def read_image(path: Path) -> np.ndarray:
    """Read as the official CLI does (``cv2.IMREAD_COLOR``: 8-bit, 3 channels, alpha dropped); returns RGB uint8."""
    try:
        data = np.fromfile(str(path), dtype=np.uint8)  # works with non-ASCII paths, unlike cv2.imread on Windows
    except OSError as error:
        raise ImageReadError(f"cannot read {path}: {error.strerror or error}") from error
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise ImageReadError(f"{path} is not a readable image: not an image, damaged or cut short, or a variant "
                             "OpenCV cannot decode (e.g. 32-bit float TIFF); save it as an 8- or 16-bit PNG or JPEG")
    return np.ascontiguousarray(image[:, :, ::-1])


def read_image_with_notes(path: Path) -> tuple[np.ndarray, list[str]]:
    """``read_image``, plus what it leaves out: transparency, frames after the first."""
    image = read_image(path)
    notes = []
    try:
        with Image.open(path) as info:
            frames = getattr(info, "n_frames", 1)
            alpha = "transparency" in info.info or (  # an alpha channel that is not fully opaque
                info.mode in ("RGBA", "LA", "PA") and info.getchannel("A").getextrema()[0] < 255)
    except (OSError, ValueError):  # a format only OpenCV reads: nothing more to say
        return image, notes
    if alpha:
        notes.append("its transparency is dropped (as the official code): the output is opaque")
    if frames > 1:
        notes.append(f"only the first of its {frames} frames is restored")
    return image, notes


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_image(path: Path, image: np.ndarray) -> None:
    """Write RGB uint8 atomically (temporary file, then rename); the format follows the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(path.suffix or ".png", np.ascontiguousarray(image[:, :, ::-1]))
    if not ok:
        raise OSError(f"could not encode {path}")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.tobytes())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; outputs get the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
