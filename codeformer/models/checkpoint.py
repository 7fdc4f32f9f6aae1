"""Reading a checkpoint into a CPU state dict, safely: ``.pth`` only with ``weights_only=True``, or ``.safetensors``.

A refused or unreadable file gets a message that says what it is: a pickle that would import code (read with
pickletools, nothing executed), a Git LFS pointer, an HTML page, a truncated download.
"""

from __future__ import annotations

import pickle
import pickletools
import zipfile
from collections.abc import Mapping
from pathlib import Path

import spandrel
import torch

from .catalog import redownload_hint
from .errors import ModelFileError

_KEYS_NOT_NAMES = "its keys are not all strings (expected a state dict of tensors)"


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint (.pth/.pt/.ckpt weights-only, or .safetensors/.sft) into a CPU ``{key: Tensor}`` dict.

    Training checkpoints are unwrapped (``params_ema``, ``params``, ``state_dict``, ...) and a prefix that every key
    has (``module.``) is removed, by ``spandrel.canonicalize_state_dict``.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"Model file {path} does not exist; place the file there or pick another one.")
    if path.stat().st_size == 0:
        raise _not_a_checkpoint(path, "it is empty (0 bytes)")
    obj: object
    if path.suffix.lower() in (".safetensors", ".sft"):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            obj = load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise _not_a_checkpoint(path, f"it is not a valid .safetensors file ({exc})") from exc
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            raise _unsafe_pickle_error(path) from exc
        except Exception as exc:  # torch's unpickler fails on foreign bytes with any error type
            detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            raise _not_a_checkpoint(
                path, f"it is not a complete PyTorch checkpoint ({detail}; it starts with {_head(path)})"
            ) from exc
    if not isinstance(obj, Mapping):
        raise _not_a_checkpoint(path, f"it holds a {type(obj).__name__}, not a state dict of tensors")
    try:
        # spandrel's rule, so that our facexlib loaders see the keys spandrel's detection sees (it canonicalizes too)
        obj = spandrel.canonicalize_state_dict(dict(obj))
    except AttributeError as exc:  # its prefix check calls str.startswith on the keys
        raise _not_a_checkpoint(path, _KEYS_NOT_NAMES) from exc
    result: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        if not isinstance(key, str):
            raise _not_a_checkpoint(path, _KEYS_NOT_NAMES)
        if not isinstance(value, torch.Tensor):
            raise _not_a_checkpoint(
                path, f"entry {key!r} is a {type(value).__name__}, not a tensor (expected a state dict of tensors)"
            )
        result[key] = value
    if not result:
        raise _not_a_checkpoint(path, "it holds no tensors")
    return result


def _not_a_checkpoint(path: Path, problem: str) -> ModelFileError:
    """ModelFileError for a truncated / empty / foreign file."""
    return ModelFileError(
        f"`{path.name}` ({path}) cannot be read: {problem}. The file is probably incomplete or corrupted; "
        f"delete it and re-download it{redownload_hint(path.name)}."
    )


def _head(path: Path) -> str:
    """The first bytes of a file, for error messages (an HTML error page is recognisable this way)."""
    try:
        with open(path, "rb") as f:
            return repr(f.read(24))
    except OSError:
        return "unreadable bytes"


# ---------------------------------------------------------------------------------------------- pickle inspection

_SAFE_PREFIXES = ("torch.", "collections.OrderedDict", "_codecs.encode", "builtins.set", "numpy.")


def _unsafe_pickle_error(path: Path) -> ModelFileError:
    """Classify a weights-only refusal: a pickle that imports code, or simply not a checkpoint."""
    data = _pickle_stream(path)
    imports = _pickle_imports(data) if data is not None else None
    if imports is None:
        if _head(path).startswith("b'version https://git-lfs"):
            return _not_a_checkpoint(path, "it is a Git LFS pointer (a small text file), not the model itself")
        return _not_a_checkpoint(path, f"it is not a PyTorch checkpoint (it starts with {_head(path)})")
    unsafe = sorted({i for i in imports if not i.startswith(_SAFE_PREFIXES)})
    what = f" (it would import {', '.join(unsafe[:5])})" if unsafe else ""
    return ModelFileError(
        f"`{path.name}` ({path}) was refused as unsafe: it is a pickle that can run code when loaded{what}. "
        "Nothing in it was executed. Use a checkpoint from a trusted source (or a .safetensors file); "
        f"re-download the official file{redownload_hint(path.name)}."
    )


def _pickle_stream(path: Path) -> bytes | None:
    """The pickle bytes of a torch checkpoint (``data.pkl`` inside a zip, else the raw file), or None."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                names = [n for n in zf.namelist() if n.endswith("data.pkl")]
                return zf.read(names[0]) if names else None
        return path.read_bytes()
    except (OSError, zipfile.BadZipFile, KeyError):
        return None


def _pickle_imports(data: bytes) -> list[str] | None:
    """Globals a pickle would import, read with pickletools (nothing is executed); None if it is not a pickle.

    The legacy (pre-zip) torch format is several pickles in a row: the following ones are read too.
    """
    imports: list[str] = []
    start, count = 0, 0
    while count < 8:  # legacy files: magic number, protocol, sys info, the object, storage keys, then raw bytes
        found = _one_pickle_imports(data, start)
        if found is None:
            return imports if count else None
        more, start = found
        imports.extend(more)
        count += 1
    return imports


def _one_pickle_imports(data: bytes, start: int) -> tuple[list[str], int] | None:
    """Globals imported by the pickle at ``data[start:]`` and where it ends; None if there is no complete pickle."""
    imports: list[str] = []
    strings: list[str] = []
    try:
        for op, arg, pos in pickletools.genops(data[start:]):
            if op.name in ("GLOBAL", "INST") and isinstance(arg, str):
                imports.append(arg.replace(" ", "."))
            elif op.name == "STACK_GLOBAL":
                imports.append(".".join(strings[-2:]) if len(strings) >= 2 else "?")
            elif isinstance(arg, str):
                strings.append(arg)
            if op.name == "STOP" and pos is not None:  # pos is None only for streams without tell(), not bytes
                return imports, start + pos + 1
    except (ValueError, EOFError, pickle.UnpicklingError, UnicodeDecodeError):
        return None
    return None


__all__ = ["load_state_dict"]
