"""Model files: which official files exist, finding them, downloading them (verified), reading checkpoints safely and
building the networks (face restorers, upscalers, RetinaFace, ParseNet).

One module per job: :mod:`.catalog` (the official files and detector names), :mod:`.files` (finding a file),
:mod:`.download` (verified downloads), :mod:`.checkpoint` (reading a checkpoint into a state dict) and
:mod:`.loaders` (building the networks). Callers use this package: ``from codeformer import models``.
"""

from .catalog import DETECTORS, FOLDERS, KNOWN_FILES, DetectorKind, KnownFile
from .checkpoint import load_state_dict
from .download import download_file, is_offline
from .errors import ModelDownloadError, ModelFileError, NotAnUpscalerError
from .files import default_models_dir, find_model_file, find_renamed_copy, resolve_model_file
from .loaders import check_upscaler, load_codeformer, load_detector, load_parser, load_upscaler

__all__ = [
    "DETECTORS",
    "FOLDERS",
    "KNOWN_FILES",
    "DetectorKind",
    "KnownFile",
    "ModelDownloadError",
    "ModelFileError",
    "NotAnUpscalerError",
    "check_upscaler",
    "default_models_dir",
    "download_file",
    "find_model_file",
    "find_renamed_copy",
    "is_offline",
    "load_codeformer",
    "load_detector",
    "load_parser",
    "load_state_dict",
    "load_upscaler",
    "resolve_model_file",
]
