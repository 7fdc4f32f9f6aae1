"""Finding, downloading (verified) and loading the model files: CodeFormer, RetinaFace, ParseNet, upscalers.

Architectures come from spandrel / spandrel_extra_arches and facexlib and are chosen by the checkpoint's
keys, never by its file name. Nothing here downloads unless :func:`download_file` is called, and facexlib's
``init_*_model`` factories (which download on their own) are never used. Known files are verified by size
and SHA-256 when downloaded; files the user placed are loaded without a hash check.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import logging
import os
import pickle
import pickletools
import sys
import urllib.error
import urllib.request
import warnings
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

import spandrel
import torch

from .types import CodeFormerModel, FaceDetector, FaceParser

logger = logging.getLogger(__name__)

__all__ = [
    "FOLDERS",
    "KNOWN_FILES",
    "KnownFile",
    "ModelDownloadError",
    "ModelFileError",
    "default_models_dir",
    "download_file",
    "find_model_file",
    "is_offline",
    "load_codeformer",
    "load_detector",
    "load_parser",
    "load_state_dict",
    "load_upscaler",
    "resolve_model_file",
]


class ModelFileError(Exception):
    """A model file is missing, unreadable or of the wrong architecture (the message names file, problem and fix)."""


class ModelDownloadError(ModelFileError):
    """A download failed or did not verify (the message names the URL and where to place the file by hand)."""


@dataclass(frozen=True)
class KnownFile:
    """An official model file: its name, ComfyUI ``models/`` subfolder, release URL, SHA-256 and size (if known)."""

    name: str
    folder: str
    url: str
    sha256: str
    size: int | None


FOLDERS = ("facerestore_models", "facedetection", "upscale_models")

KNOWN_FILES: dict[str, KnownFile] = {
    f.name: f
    for f in (
        KnownFile(
            "codeformer.pth",
            "facerestore_models",
            "https://github.com/sczhou/CodeFormer/releases/download/v0.1.0/codeformer.pth",
            "1009e537e0c2a07d4cabce6355f53cb66767cd4b4297ec7a4a64ca4b8a5684b7",
            376637898,
        ),
        KnownFile(
            "detection_Resnet50_Final.pth",
            "facedetection",
            "https://github.com/xinntao/facexlib/releases/download/v0.1.0/detection_Resnet50_Final.pth",
            "6d1de9c2944f2ccddca5f5e010ea5ae64a39845a86311af6fdf30841b0a5a16d",
            109497761,
        ),
        KnownFile(
            "detection_mobilenet0.25_Final.pth",
            "facedetection",
            "https://github.com/xinntao/facexlib/releases/download/v0.1.0/detection_mobilenet0.25_Final.pth",
            "2979b33ffafda5d74b6948cd7a5b9a7a62f62b949cef24e95fd15d2883a65220",
            1789735,
        ),
        KnownFile(
            "parsing_parsenet.pth",
            "facedetection",
            "https://github.com/xinntao/facexlib/releases/download/v0.2.2/parsing_parsenet.pth",
            "3d558d8d0e42c20224f13cf5a29c79eba2d59913419f945545d8cf7b72920de2",
            85331193,
        ),
        KnownFile(
            "parsing_bisenet.pth",
            "facedetection",
            "https://github.com/xinntao/facexlib/releases/download/v0.2.0/parsing_bisenet.pth",
            "468e13ca13a9b43cc0881a9f99083a430e9c0a38abd935431d1c28ee94b26567",
            None,
        ),
        KnownFile(
            "RealESRGAN_x2plus.pth",
            "upscale_models",
            "https://github.com/xinntao/Real-ESRGAN/releases/download/v0.2.1/RealESRGAN_x2plus.pth",
            "49fafd45f8fd7aa8d31ab2a22d14d91b536c34494a5cfe31eb5d89c2fa266abb",
            67061725,
        ),
        KnownFile(
            "RealESRGAN_x4plus.pth",
            "upscale_models",
            "https://github.com/xinntao/Real-ESRGAN/releases/download/v0.1.0/RealESRGAN_x4plus.pth",
            "4fa0d38905f75ac06eb49a7951b426670021be3018265fd191d2125df9d682f1",
            None,
        ),
        KnownFile(
            "GFPGANv1.4.pth",
            "facerestore_models",
            "https://github.com/TencentARC/GFPGAN/releases/download/v1.3.0/GFPGANv1.4.pth",
            "e2cd4703ab14f4d01fd1383a8a8b266f9a5833dacee8e6a79d3bf21a1b6be5ad",
            348632874,
        ),
    )
}

_OFFLINE_ENV = "CODEFORMER_OFFLINE"
_MODELS_DIR_ENV = "CODEFORMER_MODELS_DIR"
_CHUNK = 1 << 20
_USER_AGENT = "comfyui-codeformer (python urllib)"
_DETECTOR_NETWORKS = {"retinaface_resnet50": "resnet50", "retinaface_mobile0.25": "mobile0.25"}
_DETECTOR_FILES = {"retinaface_resnet50": "detection_Resnet50_Final.pth", "retinaface_mobile0.25": "detection_mobilenet0.25_Final.pth"}


# ---------------------------------------------------------------------------------------------- locations


def default_models_dir() -> Path:
    """Models root: ``$CODEFORMER_MODELS_DIR``, else the per-user cache dir + ``codeformer/models``."""
    env = os.environ.get(_MODELS_DIR_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    if os.name == "nt":
        local = os.environ.get("LOCALAPPDATA", "").strip()
        base = Path(local) if local else Path.home() / "AppData" / "Local"
    else:
        xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
        # The XDG spec says relative values are invalid and must be ignored.
        base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "codeformer" / "models"


def is_offline(offline: bool | None = None) -> bool:
    """True when downloads are off: the explicit flag if given, else env ``CODEFORMER_OFFLINE`` in {1, true, yes}."""
    if offline is not None:
        return bool(offline)
    return os.environ.get(_OFFLINE_ENV, "").strip().lower() in {"1", "true", "yes"}


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


# ---------------------------------------------------------------------------------------------- download


def _place_by_hand(known: KnownFile, final: Path) -> str:
    """The "how to fix it yourself" sentence of a download error."""
    size = f"{known.size} bytes, " if known.size is not None else ""
    return (
        f"Download {known.url} yourself ({size}sha256 {known.sha256}) and place it at exactly {final} "
        "(or in a ComfyUI models/" + known.folder + " folder)."
    )


def download_file(
    known: KnownFile,
    dest_dir: Path,
    *,
    offline: bool | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    timeout: float = 30,
) -> Path:
    """Download ``known.url`` to ``dest_dir/known.name`` via ``.part``, verifying size and SHA-256; return the path."""
    dest_dir = Path(dest_dir)
    final = dest_dir / known.name
    part = dest_dir / (known.name + ".part")
    if is_offline(offline):
        raise ModelDownloadError(
            f"`{known.name}` is missing and downloads are off (offline mode: the offline option or "
            f"{_OFFLINE_ENV}=1), so it was not fetched from {known.url}. " + _place_by_hand(known, final)
        )
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelDownloadError(
            f"Cannot create the folder {dest_dir} to download {known.url} into ({exc}). " + _place_by_hand(known, final)
        ) from exc

    logger.info("downloading %s -> %s", known.url, final)
    ok = False
    try:
        try:
            _fetch_to(known, part, on_progress, timeout)
        except _ShortTransferError as exc:
            raise ModelDownloadError(f"Downloading {known.url} failed: {exc}. " + _place_by_hand(known, final)) from exc
        except urllib.error.HTTPError as exc:
            raise ModelDownloadError(
                f"Downloading {known.url} failed: HTTP {exc.code} {exc.reason}. " + _place_by_hand(known, final)
            ) from exc
        except urllib.error.URLError as exc:
            raise ModelDownloadError(
                f"Downloading {known.url} failed: cannot connect ({exc.reason}). " + _place_by_hand(known, final)
            ) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise ModelDownloadError(
                f"Downloading {known.url} failed: {type(exc).__name__}: {exc}. " + _place_by_hand(known, final)
            ) from exc

        got_size = part.stat().st_size
        if known.size is not None and got_size != known.size:
            raise ModelDownloadError(
                f"Downloading {known.url} gave {got_size} bytes, expected {known.size}; the file was discarded. "
                + _place_by_hand(known, final)
            )
        digest = _sha256(part)
        if digest != known.sha256.lower():
            raise ModelDownloadError(
                f"Downloading {known.url} gave a file with sha256 {digest}, expected {known.sha256} "
                "(corrupted or changed upstream); the file was discarded. " + _place_by_hand(known, final)
            )
        try:
            os.replace(part, final)
        except OSError as exc:
            raise ModelDownloadError(
                f"Downloaded {known.url} but could not move it to {final} ({exc}). " + _place_by_hand(known, final)
            ) from exc
        ok = True
    finally:
        # Also on interrupts raised from on_progress: never leave a .part behind.
        if not ok:
            try:
                part.unlink(missing_ok=True)
            except OSError:
                logger.warning("could not delete the partial download %s", part, exc_info=True)
    logger.info("downloaded and verified %s", final)
    return final


class _ShortTransferError(OSError):
    """The server sent fewer bytes than it announced."""


def _fetch_to(known: KnownFile, part: Path, on_progress: Callable[[int, int], None] | None, timeout: float) -> None:
    """Stream ``known.url`` into ``part``; raise OSError/HTTPException on any transfer failure or short body."""
    from tqdm import tqdm

    request = urllib.request.Request(known.url, headers={"User-Agent": _USER_AGENT})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (https URLs from KNOWN_FILES)
        header = response.headers.get("Content-Length")
        expected = int(header) if header and header.isdigit() else None
        total = expected if expected is not None else (known.size or 0)
        done = 0
        with open(part, "wb") as out, tqdm(
            total=total or None, unit="B", unit_scale=True, unit_divisor=1024, desc=known.name, file=sys.stderr, leave=False
        ) as bar:
            if on_progress is not None:
                on_progress(0, total)
            while True:
                chunk = response.read(_CHUNK)
                if not chunk:
                    break
                out.write(chunk)
                done += len(chunk)
                bar.update(len(chunk))
                if on_progress is not None:
                    on_progress(done, total)
    # http.client returns a short body without raising when the server closes early: check it here.
    if expected is not None and done != expected:
        raise _ShortTransferError(f"the connection closed after {done} of {expected} bytes (interrupted download)")


def _sha256(path: Path) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def find_renamed_copy(known: KnownFile, search_dirs: Sequence[Path]) -> Path | None:
    """A file in ``search_dirs`` (not their subfolders) with ``known``'s size and SHA-256, under any name."""
    if known.size is None:
        return None
    for d in search_dirs:
        if not Path(d).is_dir():
            continue
        for candidate in sorted(Path(d).iterdir()):
            if candidate.is_file() and candidate.stat().st_size == known.size and _sha256(candidate) == known.sha256:
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
    copy = find_renamed_copy(known, search_dirs) if known is not None else None
    if copy is not None:
        logger.info("using %s for %s: the same file (SHA-256 %s)", copy, name, known.sha256[:12])
        return copy
    if known is not None and download_dir is not None:
        if known.folder != folder:
            logger.warning("%s belongs in models/%s, not models/%s; downloading it anyway", name, known.folder, folder)
        return download_file(known, Path(download_dir), offline=offline, on_progress=on_progress)
    searched = ", ".join(str(d) for d in search_dirs) or "(no folders)"
    msg = f"Model file `{name}` was not found in models/{folder} (searched: {searched})."
    if known is not None:
        msg += f" Download it from {known.url} (sha256 {known.sha256}) and place it in one of those folders."
    else:
        msg += " Place the file in one of those folders, or pick a file that exists."
    raise ModelFileError(msg)


# ---------------------------------------------------------------------------------------------- state dicts


def _redownload_hint(path: Path) -> str:
    """Where to get the official file again, when ``path`` is one of the known names."""
    known = KNOWN_FILES.get(path.name)
    return f" from {known.url}" if known is not None else ""


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
            if op.name == "STOP":
                return imports, start + pos + 1
    except (ValueError, EOFError, pickle.UnpicklingError, UnicodeDecodeError):
        return None
    return None


_SAFE_PREFIXES = ("torch.", "collections.OrderedDict", "_codecs.encode", "builtins.set", "numpy.")


def _unsafe_pickle_error(path: Path, exc: Exception) -> ModelFileError:
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
        f"re-download the official file{_redownload_hint(path)}."
    )


def _head(path: Path) -> str:
    """The first bytes of a file, for error messages (an HTML error page is recognisable this way)."""
    try:
        with open(path, "rb") as f:
            return repr(f.read(24))
    except OSError:
        return "unreadable bytes"


def _not_a_checkpoint(path: Path, problem: str) -> ModelFileError:
    """ModelFileError for a truncated / empty / foreign file."""
    return ModelFileError(
        f"`{path.name}` ({path}) cannot be read: {problem}. The file is probably incomplete or corrupted; "
        f"delete it and re-download it{_redownload_hint(path)}."
    )


def _unwrap(obj: object) -> object:
    """Take the state dict out of a training checkpoint: ``params_ema``, else ``params``, else ``state_dict``."""
    if isinstance(obj, Mapping):
        for key in ("params_ema", "params", "state_dict"):
            inner = obj.get(key)
            if isinstance(inner, Mapping):
                return inner
    return obj


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint (.pth/.pt/.ckpt weights-only, or .safetensors/.sft) into a CPU ``{key: Tensor}`` dict."""
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
            raise _unsafe_pickle_error(path, exc) from exc
        except Exception as exc:  # noqa: BLE001 (torch's unpickler fails on foreign bytes with any error type)
            detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            raise _not_a_checkpoint(
                path, f"it is not a complete PyTorch checkpoint ({detail}; it starts with {_head(path)})"
            ) from exc
    obj = _unwrap(obj)
    if not isinstance(obj, Mapping):
        raise _not_a_checkpoint(path, f"it holds a {type(obj).__name__}, not a state dict of tensors")
    result: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise _not_a_checkpoint(
                path, f"entry {key!r} is a {type(value).__name__}, not a tensor (expected a state dict of tensors)"
            )
        result[key.removeprefix("module.")] = value
    if not result:
        raise _not_a_checkpoint(path, "it holds no tensors")
    return result


# ---------------------------------------------------------------------------------------------- networks


@functools.lru_cache(maxsize=1)
def _registry() -> spandrel.ArchRegistry:
    """A private spandrel registry with the main and extra architectures (the global one is never modified)."""
    with warnings.catch_warnings():  # its CodeFormer module uses torch.jit.script, which recent torch warns about
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
        import spandrel_extra_arches

    reg = spandrel.ArchRegistry()
    reg.add(*spandrel.MAIN_REGISTRY)
    # ComfyUI may already have put the extra arches into MAIN_REGISTRY: skip those instead of raising.
    reg.add(*spandrel_extra_arches.EXTRA_REGISTRY, ignore_duplicates=True)
    return reg


def _spandrel_load(path: Path, sd: dict[str, torch.Tensor]) -> spandrel.ModelDescriptor | None:
    """Detect and build the spandrel descriptor for ``sd``; None when no architecture matches."""
    try:
        return _registry().load(sd)
    except spandrel.UnsupportedModelError:
        return None
    except (KeyError, RuntimeError, ValueError, IndexError, AttributeError) as exc:
        # torch lists every mismatched tensor (hundreds of lines): keep the first two, the message stays readable
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()] or [type(exc).__name__]
        detail = " ".join(lines[:2]) + (f" (+{len(lines) - 2} more)" if len(lines) > 2 else "")
        raise ModelFileError(
            f"`{path.name}` ({path}) looks like a known architecture but its weights do not fit it ({detail}); "
            f"the file may be damaged or modified: re-download it{_redownload_hint(path)}."
        ) from exc


def _freeze(module: torch.nn.Module) -> torch.nn.Module:
    """eval() and requires_grad False: these networks are only used for inference."""
    module.eval()
    module.requires_grad_(False)
    return module


def load_codeformer(path: Path) -> CodeFormerModel:
    """Load a CodeFormer checkpoint (.pth or .safetensors) as an eval-mode spandrel descriptor on the CPU."""
    path = Path(path)
    sd = load_state_dict(path)
    descriptor = _spandrel_load(path, sd)
    arch_id = descriptor.architecture.id if descriptor is not None else None
    if descriptor is None or arch_id != "CodeFormer":
        article = "an" if arch_id and arch_id[0].upper() in "AEIOU" else "a"
        what = f"{article} {arch_id} model" if arch_id else "unknown: no position_emb key" if "position_emb" not in sd else "unknown"
        url = KNOWN_FILES["codeformer.pth"].url
        raise ModelFileError(
            f"`{path.name}` ({path}) is not a CodeFormer checkpoint (it is {what}); "
            f"expected codeformer.pth v0.1.0 from {url}, in models/facerestore_models."
        )
    _freeze(descriptor.model)
    logger.info("loaded CodeFormer from %s", path)
    return CodeFormerModel(descriptor=descriptor, path=path)


def load_upscaler(path: Path) -> spandrel.ImageModelDescriptor:
    """Load any spandrel image-to-image upscaler/restorer (not a face model) as an eval-mode ImageModelDescriptor."""
    path = Path(path)
    sd = load_state_dict(path)
    descriptor = _spandrel_load(path, sd)
    example = KNOWN_FILES["RealESRGAN_x2plus.pth"]
    fix = f"put an image upscaler such as {example.name} ({example.url}) in models/upscale_models."
    if descriptor is None:
        raise ModelFileError(f"`{path.name}` ({path}) is not a supported upscale model (unknown architecture); {fix}")
    arch_id = descriptor.architecture.id
    if not isinstance(descriptor, spandrel.ImageModelDescriptor):
        raise ModelFileError(
            f"`{path.name}` ({path}) is a {arch_id} {descriptor.purpose} model, not an image upscaler; {fix}"
        )
    if arch_id == "CodeFormer" or descriptor.purpose == "FaceSR":
        raise ModelFileError(
            f"`{path.name}` ({path}) is a {arch_id} face-restoration model, not a background upscaler; {fix} "
            "Face models belong in models/facerestore_models."
        )
    _freeze(descriptor.model)
    logger.info("loaded %s upscaler (x%s) from %s", arch_id, descriptor.scale, path)
    return descriptor


def _strict_load(net: torch.nn.Module, sd: Mapping[str, torch.Tensor]) -> str | None:
    """Load ``sd`` into ``net`` strictly; None on success, else a short description of the mismatch."""
    own = net.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shapes = [k for k in own if k in sd and own[k].shape != sd[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys, e.g. {missing[0]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys, e.g. {unexpected[0]}")
        if shapes:
            k = shapes[0]
            parts.append(f"{len(shapes)} wrong shapes, e.g. {k} {tuple(sd[k].shape)} instead of {tuple(own[k].shape)}")
        return "; ".join(parts)
    try:
        net.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        return str(exc).strip().splitlines()[-1][:200]
    return None


def _detector_kind(sd: Mapping[str, torch.Tensor]) -> str | None:
    """``retinaface_mobile0.25`` / ``retinaface_resnet50`` from the backbone keys, None when neither."""
    if any(k.startswith("body.stage1") for k in sd):
        return "retinaface_mobile0.25"
    if any(k.startswith("body.layer1") for k in sd):
        return "retinaface_resnet50"
    return None


def _detector_fix() -> str:
    """Which files a detector should be."""
    r50 = KNOWN_FILES["detection_Resnet50_Final.pth"]
    mnet = KNOWN_FILES["detection_mobilenet0.25_Final.pth"]
    return f"expected {r50.name} ({r50.url}) or {mnet.name} ({mnet.url}) in models/facedetection."


def load_detector(path: Path, name: str | None = None) -> FaceDetector:
    """Load a facexlib RetinaFace detector on the CPU, choosing resnet50 / mobilenet0.25 from the keys."""
    from facexlib.detection.retinaface import RetinaFace

    path = Path(path)
    if name is not None and name not in _DETECTOR_NETWORKS:
        raise ValueError(f"Unknown detector name {name!r}; use one of {sorted(_DETECTOR_NETWORKS)}.")
    sd = load_state_dict(path)
    kind = _detector_kind(sd)
    if kind is None:
        raise ModelFileError(
            f"`{path.name}` ({path}) is not a RetinaFace face detector (no body.stage1 / body.layer1 backbone keys); "
            + _detector_fix()
        )
    if name is not None and name != kind:
        raise ModelFileError(
            f"`{path.name}` ({path}) is a {kind} detector, but {name} was asked for; "
            f"choose {kind}, or use {_DETECTOR_FILES[name]} in models/facedetection."
        )
    with warnings.catch_warnings():
        # facexlib builds resnet50 with the deprecated ``pretrained=False`` (no download happens).
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torchvision\.models")
        net = RetinaFace(network_name=_DETECTOR_NETWORKS[kind], half=False, device=torch.device("cpu"))
    problem = _strict_load(net, sd)
    if problem is not None:
        raise ModelFileError(
            f"`{path.name}` ({path}) looks like a {kind} detector but does not match its layers ({problem}); "
            + _detector_fix()
        )
    _freeze(net)
    logger.info("loaded %s from %s", kind, path)
    return FaceDetector(name=kind, module=net, path=path)


def load_parser(path: Path) -> FaceParser:
    """Load facexlib's ParseNet face parser (512x512, 19 classes) on the CPU."""
    from facexlib.parsing.parsenet import ParseNet

    path = Path(path)
    known = KNOWN_FILES["parsing_parsenet.pth"]
    sd = load_state_dict(path)
    net = ParseNet(in_size=512, out_size=512, parsing_ch=19)
    problem = _strict_load(net, sd)
    if problem is not None:
        what = "not a ParseNet face parser"
        if any(k.startswith("cp.") for k in sd):
            what = "a BiSeNet face parser, which is not supported"
        elif _detector_kind(sd) is not None:
            what = "a RetinaFace face detector, not a face parser"
        raise ModelFileError(
            f"`{path.name}` ({path}) is {what} ({problem}); "
            f"expected parsing_parsenet.pth ({known.url}) in models/facedetection."
        )
    _freeze(net)
    logger.info("loaded ParseNet from %s", path)
    return FaceParser(module=net, path=path)
