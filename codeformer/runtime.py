"""Device helpers: bf16 support, out-of-memory detection and batching that halves on OOM."""

from __future__ import annotations

import logging
from typing import Callable, Sequence, TypeVar

import torch

log = logging.getLogger(__name__)

T = TypeVar("T")


class OutOfMemory(RuntimeError):
    """Still out of memory at the smallest batch or tile; the message says what to do."""


def autocast_dtype(device: torch.device | str) -> torch.dtype | None:
    """bfloat16 on CUDA devices that support it, else None (fp32). CodeFormer is not fp16-safe."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then MPS, then CPU; otherwise the named device (error if unavailable)."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device '{name}' was asked for but this torch has no CUDA; use --device cpu or auto")
    return device


def is_oom(error: BaseException) -> bool:
    """True for CUDA/MPS/CPU out-of-memory errors."""
    if isinstance(error, torch.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def empty_cache() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def run_in_batches(
    fn: Callable[[list[T]], None],
    items: Sequence[T],
    batch_size: int,
    *,
    on_done: Callable[[int], None] | None = None,
    check_interrupt: Callable[[], None] | None = None,
    what: str = "the model",
) -> None:
    """Call ``fn`` on consecutive batches of ``items``; halve the batch on out-of-memory, down to 1."""
    items = list(items)
    size = max(1, int(batch_size))
    start = 0
    while start < len(items):
        if check_interrupt is not None:
            check_interrupt()
        batch = items[start : start + size]
        try:
            fn(batch)
        except Exception as error:  # noqa: BLE001 - only OOM is handled, the rest re-raised
            if not is_oom(error):
                raise
            empty_cache()
            if size == 1:
                raise OutOfMemory(
                    f"out of memory running {what} on a single input; free memory (close other programs or "
                    "models), use a smaller image/tile, or run on the CPU"
                ) from error
            size = max(1, size // 2)
            log.warning("out of memory in %s; retrying with batch size %d", what, size)
            continue
        start += len(batch)
        if on_done is not None:
            on_done(len(batch))
