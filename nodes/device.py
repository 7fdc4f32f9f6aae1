"""ComfyUI runtime wiring for the library: device, memory, progress bar and interrupt callbacks."""

from __future__ import annotations

import logging
from collections.abc import Callable

import comfy.model_management as mm
import comfy.model_patcher
import comfy.utils
import torch

log = logging.getLogger(__name__)

# Room for activations on top of the weights when asking ComfyUI to free GPU memory (a few faces' worth, see
# runtime.FACE_WORKING_BYTES; batches shrink to what is free and halve on out-of-memory).
WORKING_MEMORY = 2 * 1024**3
_PATCHER_ATTR = "_comfy_model_patcher"


def check_interrupt() -> None:
    """Raise ``InterruptProcessingException`` when the user pressed Cancel (passed to the library)."""
    mm.throw_exception_if_processing_interrupted()


def progress_callback() -> Callable[[int, int], None]:
    """An ``on_progress(done, total)`` that drives a ComfyUI ProgressBar (created on the first call)."""
    bar: comfy.utils.ProgressBar | None = None

    def on_progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = comfy.utils.ProgressBar(total)
        bar.update_absolute(done, total)

    return on_progress


def output_device() -> torch.device:
    """Where node outputs go (``intermediate_device``: the CPU unless ComfyUI runs with --gpu-only)."""
    return torch.device(mm.intermediate_device())


class _Held(torch.nn.Module):
    """What a ModelPatcher manages: a container around one network. The patcher sets its bookkeeping attributes
    (``device``, ``model_lowvram``...) on the module it holds; on the container they cannot clash with the network's
    own (spandrel's AuraSR has a read-only ``device`` property)."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net


def _patcher(module: torch.nn.Module, device: torch.device) -> comfy.model_patcher.ModelPatcher:
    """The ModelPatcher that lets ComfyUI load and offload ``module``: one per network and device, kept on the
    module itself so that every run hands ComfyUI the same model (it tracks loaded models by patcher identity)."""
    patcher = module.__dict__.get(_PATCHER_ATTR)
    if patcher is None or patcher.load_device != device:
        patcher = comfy.model_patcher.ModelPatcher(_Held(module), load_device=device,
                                                   offload_device=mm.unet_offload_device())
        module.__dict__[_PATCHER_ATTR] = patcher
    return patcher


def load_on_device(*modules: torch.nn.Module | None) -> torch.device:
    """Load ``modules`` on ComfyUI's torch device through ComfyUI's memory management and return that device.

    ``load_models_gpu`` frees room by offloading other models (checkpoints, our own) as needed; our networks then
    stay on the device between runs until ComfyUI needs the memory for something else (or ``Unload models``).
    Whole networks are loaded (``force_full_load``): their layers are plain torch modules, not ComfyUI's
    low-VRAM-capable ones.
    """
    device = torch.device(mm.get_torch_device())
    used = [m for m in modules if m is not None]
    if used:
        mm.load_models_gpu([_patcher(m, device) for m in used], memory_required=WORKING_MEMORY,
                           force_full_load=True)
    return device
