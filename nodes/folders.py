"""Model folders: registering ``facerestore_models`` / ``facedetection`` and turning a combo value into a file path.

Files missing from the folders but known to ``models.KNOWN_FILES`` are downloaded (verified) into the first
folder of their key, with a ComfyUI progress bar.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import folder_paths

from ..codeformer import models
from .device import progress_callback

log = logging.getLogger(__name__)

FACERESTORE_MODELS = "facerestore_models"
FACEDETECTION = "facedetection"
PACK_FOLDERS = (FACERESTORE_MODELS, FACEDETECTION)


def register_model_folders() -> None:
    """Add ``models/<key>`` for our keys, keeping paths set earlier (extra_model_paths.yaml, other packs)."""
    for key in PACK_FOLDERS:
        ours = os.path.join(folder_paths.models_dir, key)
        existing = folder_paths.folder_names_and_paths.get(key)
        paths = list(existing[0]) if existing is not None else []
        if ours not in paths:
            paths.append(ours)
        # An entry created by extra_model_paths.yaml has an empty extension set (= every file): set ours.
        folder_paths.folder_names_and_paths[key] = (paths, set(folder_paths.supported_pt_extensions))
        log.debug("model folder %s: %s", key, paths)


def list_models(folder: str) -> list[str]:
    """File names (relative, sorted) in every folder registered for ``folder``; empty if the key is unknown."""
    try:
        return list(folder_paths.get_filename_list(folder))
    except KeyError:
        return []


def model_path(folder: str, name: str) -> Path:
    """Path of ``name`` in ``folder``; a known file that is missing is downloaded into the first ``folder`` path."""
    found = folder_paths.get_full_path(folder, name)
    if found is not None:
        return Path(found)
    search_dirs = [Path(p) for p in folder_paths.get_folder_paths(folder)]
    download_dir = search_dirs[0] if search_dirs else None
    return models.resolve_model_file(name, folder, search_dirs, download_dir, on_progress=progress_callback())
