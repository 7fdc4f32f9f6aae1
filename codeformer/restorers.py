"""The face restorers beside CodeFormer, each called by its own contract (one adapter per architecture).

Every restorer here takes aligned 512x512 faces scaled as the official code scales them, ``(x / 255 - 0.5) / 0.5``
(CodeFormer's inference script, GFPGANer for GFPGAN and RestoreFormer), and gives an image in [-1, 1] that is
clamped and scaled back as ``tensor2img(min_max=(-1, 1))`` does; so ``restore.restore_faces`` (batching, precision,
the gray rule) treats them alike and only the call itself differs:

- CodeFormer: ``net(x, weight=w)[0]``; the only one with a fidelity ``w``, and with code logits (``codes.py``).
- GFPGAN v1.2-1.4 (``GFPGANv1Clean``): ``net(x, return_rgb=False, randomize_noise=False)[0]``. Its forward draws
  fresh StyleGAN noise on every call by default (the official GFPGANer keeps that), so the same face restores
  differently each time and video shimmers; the noise stored in the checkpoint makes it deterministic.
- RestoreFormer: ``net(x)[0]``. spandrel's own call maps [0, 1] itself; the module is called here, in [-1, 1] as the
  official GFPGANer does, and its need for sizes that are multiples of 32 is met by the 512x512 faces.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .errors import InputError
from .said_once import warn_once

log = logging.getLogger(__name__)

DEFAULT_FIDELITY = 0.5  # the official -w default: not worth a warning when a restorer has no fidelity


@dataclass(frozen=True)
class Restorer:
    """How one architecture restores a batch ``[B, 3, 512, 512]`` in [-1, 1] into an image in [-1, 1]."""

    arch: str  # spandrel's architecture id, read from the checkpoint's keys
    name: str  # for messages
    has_fidelity: bool  # takes CodeFormer's fidelity weight w
    has_codes: bool  # code logits that codes.py smooths along face tracks
    forward: Callable[[Any, torch.Tensor, float], Any]  # (net, x, weight) -> the network's raw output
    # GFPGAN's StyleGAN weights are 5-D (modulated per face, reshaped on every call): torch refuses to make them
    # channels_last, and that layout would not help them anyway
    channels_last: bool = True

    def call(self, net: Any, x: torch.Tensor, weight: float) -> torch.Tensor:
        """The restored faces in [-1, 1] (not clamped yet); ``weight`` only reaches restorers with a fidelity."""
        return self.forward(net, x, weight)[0]


def _codeformer(net: Any, x: torch.Tensor, weight: float) -> Any:
    return net(x, weight=weight)


def _gfpgan(net: Any, x: torch.Tensor, weight: float) -> Any:
    # return_rgb=False: skip the intermediate RGB images GFPGANer never uses; the stored noise: deterministic
    return net(x, return_rgb=False, randomize_noise=False)


def _restoreformer(net: Any, x: torch.Tensor, weight: float) -> Any:
    return net(x)


CODEFORMER = Restorer("CodeFormer", "CodeFormer", has_fidelity=True, has_codes=True, forward=_codeformer)
RESTORERS: dict[str, Restorer] = {r.arch: r for r in (
    CODEFORMER,
    Restorer("GFPGAN", "GFPGAN", has_fidelity=False, has_codes=False, forward=_gfpgan, channels_last=False),
    Restorer("RestoreFormer", "RestoreFormer", has_fidelity=False, has_codes=False, forward=_restoreformer),
)}
SUPPORTED = "CodeFormer, GFPGAN v1.2-1.4 (clean) or RestoreFormer"


def restorer_of(model: Any) -> Restorer:
    """The restorer of a loaded model (``CodeFormerModel``), by the architecture spandrel recognised."""
    arch = model.descriptor.architecture.id
    if arch not in RESTORERS:
        raise InputError(f"the model is a {arch} network, not a face restorer ({SUPPORTED}); load one with "
                         "CodeFormer Model Loader (models/facerestore_models)")
    return RESTORERS[arch]


def fidelity_note(restorer: Restorer, fidelity: float | None) -> str | None:
    """Why the fidelity does nothing for ``restorer``; None when it does something or is the default.
    ``fidelity`` None: values that differ per face (a rule, auto fidelity)."""
    if restorer.has_fidelity or fidelity == DEFAULT_FIDELITY:
        return None
    given = "the fidelity values given are" if fidelity is None else f"fidelity {fidelity:g} is"
    return (f"{restorer.name} has no fidelity setting (only CodeFormer has one): {given} ignored and the faces "
            "restore the same at any value; load a CodeFormer model to trade quality against fidelity")


def warn_fidelity(restorer: Restorer, weights: list[float]) -> None:
    """Log ``fidelity_note`` once per restorer and process (every video chunk would repeat it otherwise)."""
    if restorer.has_fidelity or all(w == DEFAULT_FIDELITY for w in weights):
        return
    note = fidelity_note(restorer, weights[0] if len(set(weights)) == 1 else None)
    if note is not None:
        warn_once(log, f"fidelity ignored by {restorer.arch}", note)


__all__ = ["CODEFORMER", "RESTORERS", "SUPPORTED", "Restorer", "fidelity_note", "restorer_of", "warn_fidelity"]
