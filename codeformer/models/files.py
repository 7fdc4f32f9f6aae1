"""Finding model files: the default models folder, a name in a list of folders, an official file under another name.

:func:`resolve_model_file` is the one entry point: the file if it is there, else the same official file under another
name, else a verified download (see :mod:`.download`), else an error naming the folders searched.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath

from ..user_cache import user_cache_dir
from . import download
from .catalog import KNOWN_FILES, KnownFile
from .errors import ModelFileError

logger = logging.getLogger(__name__)

MODELS_DIR_ENV = "CODEFORMER_MODELS_DIR"


def default_models_dir() -> Path:
    """Models root: ``$CODEFORMER_MODELS_DIR``, else the per-user cache dir + ``codeformer/models``."""
    env = os.environ.get(MODELS_DIR_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    return user_cache_dir() / "models"


def _check_relative_name(name: str) -> None:
    """Raise ModelFileError when ``name`` is empty, absolute or climbs out of its folder with ``..``."""
    if not name or not name.strip():
        raise ModelFileError("Empty model file name; choose a file from the list.")
    for pure in (PurePosixPath(name), PureWindowsPath(name)):
        if pure.is_absolute() or pure.anchor or ".." in pure.parts:
            raise ModelFileError(
                f"Model file name `{name}` is not allowed: it must be a path relative to a models folder "
                "(no absolute path, no drive, no `..`). Put the file inside the models folder and pick it by name."
            )


def find_model_file(name: str, search_dirs: Sequence[Path]) -> Path | None:
    """First existing ``dir/name`` over ``search_dirs`` (``name`` may contain subfolders), else None."""
    _check_relative_name(name)
    for d in search_dirs:
        candidate = Path(d) / name
        if candidate.is_file():
            logger.debug("found %s at %s", name, candidate)
            return candidate
    return None


def find_renamed_copy(known: KnownFile, search_dirs: Sequence[Path]) -> Path | None:
    """A file in ``search_dirs`` (not their subfolders) with ``known``'s size and SHA-256, under any name."""
    if known.size is None:
        return None
    for d in search_dirs:
        if not Path(d).is_dir():
            continue
        for candidate in sorted(Path(d).iterdir()):
            if (candidate.is_file() and candidate.stat().st_size == known.size
                    and download.file_sha256(candidate) == known.sha256):
                return candidate
    return None


def resolve_model_file(
    name: str,
    folder: str,
    search_dirs: Sequence[Path],
    download_dir: Path | None,
    *,
    offline: bool | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Find ``name`` in ``search_dirs``; else, for a known file, the same file under another name there (other packs
    save codeformer.pth as codeformer-v0.1.0.pth), or download it into ``download_dir``; else raise."""
    found = find_model_file(name, search_dirs)
    if found is not None:
        return found
    known = KNOWN_FILES.get(name)
    if known is not None:
        copy = find_renamed_copy(known, search_dirs)
        if copy is not None:
            logger.info("using %s for %s: the same file (SHA-256 %s)", copy, name, known.sha256[:12])
            return copy
        if download_dir is not None:
            if known.folder != folder:
                logger.warning("%s belongs in models/%s, not models/%s; downloading it anyway", name, known.folder,
                               folder)
            return download.download_file(known, Path(download_dir), offline=offline, on_progress=on_progress)
    searched = ", ".join(str(d) for d in search_dirs) or "(no folders)"
    msg = f"Model file `{name}` was not found in models/{folder} (searched: {searched})."
    if known is not None:
        msg += f" Download it from {known.url} (sha256 {known.sha256}) and place it in one of those folders."
    else:
        msg += " Place the file in one of those folders, or pick a file that exists."
    raise ModelFileError(msg)


__all__ = ["MODELS_DIR_ENV", "default_models_dir", "find_model_file", "find_renamed_copy", "resolve_model_file"]
