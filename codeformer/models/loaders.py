"""Building networks from checkpoints: face restorers (CodeFormer, GFPGAN, RestoreFormer) and upscalers with
spandrel, RetinaFace and ParseNet with facexlib.

Architectures are chosen by the checkpoint's keys, never by its file name. Every network is returned on the CPU in
eval mode without gradients; the caller moves it to its device.
"""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Mapping
from pathlib import Path

import spandrel
import torch

from ..errors import InputError
from ..restorers import RESTORERS
from ..types import CodeFormerModel, FaceDetector, FaceParser
from .catalog import DETECTORS, KNOWN_FILES, redownload_hint
from .checkpoint import load_state_dict
from .errors import ModelFileError, NotAnUpscalerError
from .parsenet import ParseNetLogits

logger = logging.getLogger(__name__)


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
        # torch lists every mismatched tensor, one per line: keep the first two so the message stays readable
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()] or [type(exc).__name__]
        detail = " ".join(lines[:2]) + (f" (+{len(lines) - 2} more)" if len(lines) > 2 else "")
        raise ModelFileError(
            f"`{path.name}` ({path}) looks like a known architecture but its weights do not fit it ({detail}); "
            f"the file may be damaged or modified: re-download it{redownload_hint(path.name)}."
        ) from exc


def _freeze(module: torch.nn.Module) -> torch.nn.Module:
    """eval() and requires_grad False: these networks are only used for inference."""
    module.eval()
    module.requires_grad_(False)
    return module


def load_codeformer(path: Path) -> CodeFormerModel:
    """Load a face restorer (.pth or .safetensors): CodeFormer, GFPGAN v1.2-1.4 (clean) or RestoreFormer, recognised
    from the checkpoint's keys, as an eval-mode spandrel descriptor on the CPU (``restorers`` says how each runs)."""
    path = Path(path)
    sd = load_state_dict(path)
    descriptor = _spandrel_load(path, sd)
    arch_id = descriptor.architecture.id if descriptor is not None else None
    if descriptor is None or arch_id not in RESTORERS:
        article = "an" if arch_id and arch_id[0].upper() in "AEIOU" else "a"
        if arch_id:
            what = f"{article} {arch_id} model"
        else:
            what = "unknown: no position_emb key" if "position_emb" not in sd else "unknown"
        url = KNOWN_FILES["codeformer.pth"].url
        raise ModelFileError(
            f"`{path.name}` ({path}) is not a CodeFormer checkpoint, nor another face restorer this pack runs "
            f"(GFPGAN v1.2-1.4, RestoreFormer) (it is {what}); "
            f"expected codeformer.pth v0.1.0 from {url} (or GFPGANv1.4.pth, RestoreFormer.pth), "
            "in models/facerestore_models."
        )
    _freeze(descriptor.model)
    logger.info("loaded %s from %s", arch_id, path)
    return CodeFormerModel(descriptor=descriptor, path=path)


def _upscaler_fix() -> str:
    """Where an image upscaler comes from and how it is loaded, in the library and in ComfyUI."""
    example = KNOWN_FILES["RealESRGAN_x2plus.pth"]
    return (f"put an image upscaler such as {example.name} ({example.url}) in models/upscale_models "
            "(in ComfyUI: load it with Load Upscale Model).")


def check_upscaler(model: object, name: str) -> spandrel.ImageModelDescriptor:
    """Return ``model`` if it is a spandrel image upscaler; raise NotAnUpscalerError naming ``name`` and the fix.

    ``name`` says what ``model`` is to the user: a file (`` `x.pth` (path) ``) or an input (``upscale_model``). Core
    ComfyUI's Load Upscale Model also loads face models (CodeFormer, GFPGAN), hence the check on a loaded model.
    """
    if not isinstance(model, spandrel.ModelBase):  # ModelDescriptor is a Union of subscripted generics
        raise NotAnUpscalerError(
            f"{name} is a {type(model).__name__}, not a background upscaler (a spandrel image model); "
            + _upscaler_fix()
        )
    arch_id = model.architecture.id
    if arch_id == "CodeFormer" or model.purpose == "FaceSR":
        raise NotAnUpscalerError(
            f"{name} is a {arch_id} face-restoration model, not a background upscaler; " + _upscaler_fix()
            + " Face models belong in models/facerestore_models (CodeFormer Model Loader)."
        )
    if not isinstance(model, spandrel.ImageModelDescriptor):
        raise NotAnUpscalerError(
            f"{name} is a {arch_id} {model.purpose} model, not an image upscaler; " + _upscaler_fix()
        )
    return model


def load_upscaler(path: Path) -> spandrel.ImageModelDescriptor:
    """Load any spandrel image-to-image upscaler/restorer (not a face model) as an eval-mode ImageModelDescriptor."""
    path = Path(path)
    descriptor = _spandrel_load(path, load_state_dict(path))
    if descriptor is None:
        raise ModelFileError(
            f"`{path.name}` ({path}) is not a supported upscale model (unknown architecture); " + _upscaler_fix()
        )
    upscaler = check_upscaler(descriptor, f"`{path.name}` ({path})")
    _freeze(upscaler.model)
    logger.info("loaded %s upscaler (x%s) from %s", upscaler.architecture.id, upscaler.scale, path)
    return upscaler


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
    r50, mnet = (KNOWN_FILES[DETECTORS[kind].file] for kind in ("retinaface_resnet50", "retinaface_mobile0.25"))
    return f"expected {r50.name} ({r50.url}) or {mnet.name} ({mnet.url}) in models/facedetection."


def load_detector(path: Path, name: str | None = None) -> FaceDetector:
    """Load a facexlib RetinaFace detector on the CPU, choosing resnet50 / mobilenet0.25 from the keys."""
    from facexlib.detection.retinaface import RetinaFace

    path = Path(path)
    if name is not None and name not in DETECTORS:
        raise InputError(f"Unknown detector name {name!r}; use one of {sorted(DETECTORS)}.")
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
            f"choose {kind}, or use {DETECTORS[name].file} in models/facedetection."
        )
    with warnings.catch_warnings():
        # facexlib builds resnet50 with the deprecated ``pretrained=False`` (no download happens).
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torchvision\.models")
        net = RetinaFace(network_name=DETECTORS[kind].network, half=False, device=torch.device("cpu"))
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
    logger.info("loaded ParseNet from %s", path)
    return FaceParser(module=_freeze(ParseNetLogits(net)), path=path)


__all__ = ["check_upscaler", "load_codeformer", "load_detector", "load_parser", "load_upscaler"]
