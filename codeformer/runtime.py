"""Device helpers: precision and memory format per device, out-of-memory detection and batching that halves on OOM."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TypeVar

import torch

from . import bf16_probe
from .errors import InputError, OutOfMemory
from .said_once import warn_once
from .types import Interrupt

log = logging.getLogger(__name__)

T = TypeVar("T")


PRECISIONS = ("auto", "fp32", "bf16")


def check_precision(precision: str) -> str:
    """``precision`` if it is one of ``PRECISIONS``, else InputError naming the choices."""
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


# oneDNN's cap on the instructions it uses (a user's, or a benchmark's "as on a CPU without AMX"); AMX is only used
# where the cap names it or there is none.
ISA_CAP_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")


def cpu_has_amx() -> bool:
    """True on CPUs whose oneDNN runs bf16 convolutions on AMX: there they are about 5x faster than fp32
    (bench/measured/cpu_precision_probe.json)."""
    return _cpu_has("AMX", "_is_amx_tile_supported")


def cpu_has_bf16_instructions() -> bool:
    """True on CPUs with AVX512-BF16 or AMX. Elsewhere bf16 is emulated: 7-10x slower than fp32 on an AVX2 CPU
    (bench/measured/cpu_precision_probe_amd_epyc_avx2.json)."""
    return cpu_has_amx() or _cpu_has("BF16", "_is_avx512_bf16_supported")


def cpu_runs_bf16_fast() -> bool:
    """Whether bf16 convolutions run clearly faster than fp32 channels_last on this CPU: with AMX, yes; without
    bf16 instructions (emulated), no; with AVX512-BF16 alone it depends on the CPU (2.2x faster on an AMD EPYC Zen 4,
    no faster on a Xeon capped below AMX), so ``bf16_probe`` measures it once per machine."""
    if cpu_has_amx():
        return True
    if not cpu_has_bf16_instructions():
        return False
    return bf16_probe.bf16_faster(_isa_cap())


def _isa_cap() -> str:
    """oneDNN's cap on its instruction set (``ISA_CAP_VARIABLES``), upper case; empty where there is none."""
    return next((os.environ[name] for name in ISA_CAP_VARIABLES if os.environ.get(name)), "").upper()


def _cpu_has(isa: str, probe: str) -> bool:
    """Whether oneDNN may use the instructions ``isa`` names: the CPU has them (``torch.cpu.<probe>``) and no cap
    on oneDNN's instruction set (``ISA_CAP_VARIABLES``) keeps them out."""
    cap = _isa_cap()
    if cap and cap not in ("ALL", "DEFAULT") and isa not in cap and "AMX" not in cap:
        return False
    check = getattr(getattr(torch, "cpu", None), probe, None)
    try:
        return check is not None and torch.backends.mkldnn.is_available() and bool(check())
    except RuntimeError:  # a torch build without the probe
        return False


# Where ``auto`` turns bf16 on, per network: CodeFormer on GPUs only (its codebook picks near ties flip, and on the
# CPU its speed is not worth that); the upscaler also on CPUs that run bf16 fast (``cpu_runs_bf16_fast``; its output
# is continuous, so bf16 only moves it by small amounts: bench/measured/precision_cpu.json); ParseNet nowhere (small
# network; class flips near ties move the mask edges).
AUTO_GPU = ("cuda",)
AUTO_NATIVE = ("cuda", "cpu")
AUTO_NEVER: tuple[str, ...] = ()


def use_bf16(device: torch.device | str, precision: str = "auto", *, auto_on: tuple[str, ...] = AUTO_GPU) -> bool:
    """Whether a network runs under bfloat16 autocast (never fp16: CodeFormer is not fp16-safe).

    ``fp32``: never (and NCHW, see ``memory_format``: the official arithmetic). ``bf16``: always (CUDA or CPU).
    ``auto``: on the device types in ``auto_on`` where bf16 is fast (CUDA devices with bf16 support, CPUs where
    ``cpu_runs_bf16_fast``).
    """
    check_precision(precision)
    device = torch.device(device)
    if precision == "fp32" or device.type not in ("cuda", "cpu"):
        return False
    if precision == "bf16":
        if device.type == "cpu" and not cpu_has_bf16_instructions():
            warn_once(log, "bf16 emulated", "precision bf16: this CPU has no bf16 instructions (AVX512-BF16 or AMX), "
                      "so bf16 is emulated and runs several times slower than fp32; precision auto picks the fastest "
                      "here")
        return True
    if device.type not in auto_on:
        return False
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return cpu_runs_bf16_fast()


def bf16_autocast(device: torch.device | str, enabled: bool) -> AbstractContextManager:
    """bfloat16 autocast on ``device`` when ``enabled``; else no autocast context at all (some backends, such as
    DirectML's ``privateuseone``, have no autocast and refuse even a disabled one)."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


def memory_format(device: torch.device | str, precision: str = "auto") -> torch.memory_format:
    """channels_last on the CPU unless ``precision`` is ``fp32``: oneDNN runs all three networks faster in it, with
    results within float rounding of NCHW; ``fp32`` keeps the official NCHW arithmetic, bit-identical to the official
    code. GPUs stay NCHW: there NHWC only added format conversions (figures: bench/measured/README.md)."""
    on_cpu = torch.device(device).type == "cpu"
    return torch.channels_last if on_cpu and precision != "fp32" else torch.contiguous_format


# Device memory a 512 px face takes inside CodeFormer (activations, measured in bf16 and fp32, with headroom), and
# the batch past which throughput no longer grows on a large GPU (bench/measured/throughput_h200.json).
FACE_WORKING_BYTES = {True: int(0.6 * 2**30), False: int(1.2 * 2**30)}
MAX_AUTO_BATCH = 32
# One face per call on the CPU: batching gains nothing there (bench/measured/cpu_restore_batch.json), and Cancel and
# the progress bar act between calls.
CPU_BATCH = 1


def auto_batch_size(device: torch.device | str, bf16: bool) -> int:
    """Faces per CodeFormer batch: on CUDA as many as the free memory holds (up to ``MAX_AUTO_BATCH``; the batch
    still halves on out-of-memory), elsewhere ``CPU_BATCH``."""
    free = free_cuda_memory(device)
    if free is None:
        return CPU_BATCH
    return max(1, min(MAX_AUTO_BATCH, int(free // FACE_WORKING_BYTES[bf16])))


def free_cuda_memory(device: torch.device | str) -> int | None:
    """Bytes a CUDA ``device`` can still hand out (free plus what torch has cached); None for other devices."""
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return None
    free, _total = torch.cuda.mem_get_info(device)
    return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)


def available_host_memory(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """Bytes the host can still hand out (Linux: MemAvailable + SwapFree); None where the system does not say."""
    try:
        lines = meminfo.read_text().splitlines()
    except OSError:
        return None
    kib = {}
    for line in lines:
        name, _, value = line.partition(":")
        fields = value.split()
        if fields and fields[0].isdigit():
            kib[name] = int(fields[0])
    if "MemAvailable" not in kib:
        return None
    return (kib["MemAvailable"] + kib.get("SwapFree", 0)) * 1024


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then MPS, then CPU; otherwise the named device (error if unavailable)."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise InputError(f"unknown device '{name}'; use auto, cpu, cuda, cuda:N or mps") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device '{name}' was asked for but this torch has no CUDA; use --device cpu or auto")
    return device


def is_oom(error: BaseException) -> bool:
    """True for CUDA/MPS/CPU out-of-memory errors."""
    if isinstance(error, torch.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def empty_cache() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def retry_smaller(
    run: Callable[[int], T],
    size: int,
    *,
    smallest: int,
    what: str,
    unit: str,
    too_large: Callable[[int], str],
) -> T:
    """``run(size)``; on out-of-memory the device cache is emptied and ``run`` is tried again with half the size
    (``unit``: a batch size, a tile size), down to ``smallest``; then OutOfMemory with ``too_large(size)`` as its
    message. Any other error propagates at once."""
    while True:
        try:
            return run(size)
        except Exception as error:  # noqa: BLE001 - only out-of-memory is handled, the rest re-raised
            if not is_oom(error):
                raise
            empty_cache()
            if size <= smallest:
                raise OutOfMemory(too_large(size)) from error
            size = max(smallest, size // 2)
            log.warning("out of memory in %s; retrying with %s %d", what, unit, size)


def run_in_batches(
    fn: Callable[[list[T]], None],
    items: Sequence[T],
    batch_size: int,
    *,
    on_done: Callable[[int], None] | None = None,
    check_interrupt: Interrupt | None = None,
    what: str = "the model",
) -> None:
    """Call ``fn`` on consecutive batches of ``items``; the batch halves on out-of-memory, down to 1, and stays
    at the size that fit."""
    items = list(items)
    size = max(1, int(batch_size))
    start = 0

    def attempt(batch_size: int) -> int:
        nonlocal size
        size = batch_size
        batch = items[start : start + batch_size]
        fn(batch)
        return len(batch)

    def too_large(_size: int) -> str:
        return (f"out of memory running {what} on a single input; free memory (close other programs or models), "
                "use a smaller image/tile, or run on the CPU")

    while start < len(items):
        if check_interrupt is not None:
            check_interrupt()
        done = retry_smaller(attempt, size, smallest=1, what=what, unit="batch size", too_large=too_large)
        start += done
        if on_done is not None:
            on_done(done)
