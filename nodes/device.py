"""ComfyUI runtime wiring for the library: device, memory, progress bar and interrupt callbacks."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator

import comfy.model_management as mm
import comfy.utils
import torch

log = logging.getLogger(__name__)

# Room for activations on top of the weights when asking ComfyUI to free GPU memory.
WORKING_MEMORY = 1024**3


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


@contextlib.contextmanager
def running_on_device(*modules: torch.nn.Module | None) -> Iterator[torch.device]:
    """Yield ComfyUI's torch device for ``modules``; afterwards move them back to the CPU and empty the cache.

    Before the run, ComfyUI-managed models are unloaded as needed to make room for these networks.
    """
    device = torch.device(mm.get_torch_device())
    used = [m for m in modules if m is not None]
    if device.type != "cpu" and used:
        mm.free_memory(sum(mm.module_size(m) for m in used) + WORKING_MEMORY, device)
    try:
        yield device
    finally:
        if device.type != "cpu":
            for module in used:
                module.to("cpu")
            mm.soft_empty_cache()
