"""The outputs: checking the output paths before any work, and writing images atomically, never over an input
(videos are written atomically by ``codeformer.video.VideoWriter``)."""

from __future__ import annotations

import errno
import glob
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np

from ..file_modes import give_usual_permissions
from .errors import CliError, OutputWriteError
from .inputs import IMAGE_EXTENSIONS, VIDEO_SUFFIXES, is_video, output_name

_FOLDER = "outputs are written as OUTDIR/<input name>.png (.mp4 for videos)"


def check_output_folder(output: Path) -> None:
    """``-o`` must be a folder (existing or new), not a file or a file name, and one that can be looked at."""
    with _looking_at(output):
        exists = output.exists()
    if exists and not output.is_dir():
        raise CliError(f"-o {output} is a file; -o takes a folder ({_FOLDER})")
    if not exists and output.suffix.lower() in IMAGE_EXTENSIONS + VIDEO_SUFFIXES:
        raise CliError(f"-o {output} looks like a file name; -o takes a folder ({_FOLDER})")


def check_outputs(inputs: Sequence[Path], output: Path, save_faces: bool, overwrite: bool) -> None:
    """Refuse before any work when an output would replace an input, a folder, or (unless ``overwrite``) a file."""
    originals = {i.resolve() for i in inputs}
    existing = []
    for path in inputs:
        target = output / output_name(path)
        if target.resolve() in originals:
            raise CliError(f"refusing to overwrite input file {path} with the output {target}; "
                           "choose another output folder (-o)")
        with _looking_at(output):
            if target.is_dir():
                raise CliError(f"the output {target} is a folder; rename it or choose another output folder (-o)")
            faces = sorted((output / "faces").glob(saved_faces(path))) if save_faces else []
            existing += [p for p in [target, *faces] if p.exists()]
    if existing and not overwrite:
        more = f" and {len(existing) - 3} more" if len(existing) > 3 else ""
        shown = ", ".join(str(p) for p in existing[:3]) + more
        raise CliError(f"{len(existing)} output file(s) already exist: {shown}; pass --overwrite to replace them, "
                       "or choose another output folder (-o)")


def saved_faces(path: Path) -> str:
    """The glob, under OUTDIR/faces, of the faces ``--save-faces`` writes for the input ``path``: ``<stem>_NN_*.png``
    for an image, ``<stem>/<frame>_NN_*.png`` for a video (NN: the face's number in the image, or its track)."""
    stem = glob.escape(path.stem)
    return f"{stem}/[0-9]*_[0-9][0-9]*_*.png" if is_video(path) else f"{stem}_[0-9][0-9]_*.png"


def make_output_folder(output: Path) -> bool:
    """Create ``output`` if missing and check that files can be written in it (before any model loads); returns
    whether it was created."""
    created = not output.exists()
    try:
        output.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".codeformer-write-test.", dir=output)
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise CliError(f"cannot write into the output folder {output}: {error.strerror or error}; "
                       f"{_fix(error)}") from error
    return created


@contextmanager
def _looking_at(output: Path) -> Iterator[None]:
    """Looking at what is in the output folder: a folder the user may not enter (Path.exists and is_dir raise
    PermissionError there) is one ``error:`` line naming it, not a traceback."""
    try:
        yield
    except OSError as error:
        raise CliError(f"cannot look into the output folder {output}: {error.strerror or error}; "
                       f"{_fix(error)}") from error


def _fix(error: OSError) -> str:
    """What to do about an OSError writing into the output folder."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return "free some disk space, or choose an output folder on another disk (-o)"
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "choose an output folder you can write to (-o)"
    return "check the output folder, or choose another one (-o)"


def write_output(image: np.ndarray, path: Path, inputs: Sequence[Path], alpha: np.ndarray | None = None) -> None:
    """Write uint8, or float 0..255 truncated like the official uint8 cast (clipped in place: ``image`` is spent,
    which saves a float copy of large outputs), with the source's ``alpha`` resized to it; never over an input."""
    if any(path.resolve() == i.resolve() for i in inputs):
        raise CliError(f"refusing to overwrite input file {path}; choose another output folder (-o)")
    image = to_uint8(image)
    if alpha is not None:
        image = np.dstack([image, alpha_for(alpha, image.shape[:2])])
    write_image(path, image)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """uint8 as is; float 0..255 clipped in place (``image`` is spent) and truncated like the official uint8 cast."""
    if image.dtype == np.uint8:
        return image
    return np.clip(image, 0, 255, out=image).astype(np.uint8)


def alpha_for(alpha: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``alpha`` resized (bilinear: smooth edges, no overshoot) to (height, width) ``size``."""
    if alpha.shape == tuple(size):
        return alpha
    return cv2.resize(alpha, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)


def write_image(path: Path, image: np.ndarray) -> None:
    """Write RGB or RGBA uint8 atomically (temporary file, then rename); the format follows the suffix. An OSError
    (disk full, no permission) becomes an ``OutputWriteError`` naming the file and the fix."""
    order = [2, 1, 0, 3][: image.shape[2]]  # RGB(A) -> OpenCV's BGR(A)
    ok, data = cv2.imencode(path.suffix or ".png", np.ascontiguousarray(image[:, :, order]))
    if not ok:
        raise RuntimeError(f"OpenCV could not encode {path} ({image.shape}, {image.dtype})")
    try:
        _replace_atomically(path, data.tobytes())
    except OSError as error:
        raise write_failed(path, error) from error


def write_failed(path: Path, error: OSError) -> OutputWriteError:
    """The one-line error of an output that could not be written (disk full, no permission)."""
    return OutputWriteError(f"cannot write {path}: {error.strerror or error}; {_fix(error)} (the images written "
                            "before it are complete)")


def _replace_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        give_usual_permissions(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


