"""Whether this CPU runs bf16 convolutions faster than fp32: measured once per machine and kept in the user cache.

Asked only about CPUs with bf16 instructions but no AMX (``runtime.cpu_runs_bf16_fast``), because there the answer
differs from CPU to CPU: an AMD EPYC (Zen 4, AVX512-BF16) runs a Real-ESRGAN tile 2.2x faster in bf16 than in fp32
channels_last, a Sapphire Rapids Xeon capped below AMX runs it no faster (bench/measured/README.md).

The probe: four 64-channel 3x3 convolutions on a 128 px map (Real-ESRGAN's layer shape), fp32 and bf16 channels_last
taken in turns, the best of 4 each after a warm-up; about 0.2 s. Its bf16/fp32 ratio follows the whole network's
(on the EPYC 0.48-0.53 against 0.46; with bf16 emulated 2.6, the whole network 3.2-6.4). The answer is kept per
machine (CPU, threads, torch, oneDNN's instruction cap), so every run on a machine chooses the same arithmetic.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import platform
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .user_cache import user_cache_dir

log = logging.getLogger(__name__)

# bf16 counts as faster where it takes less than this share of fp32's time: the EPYC's 0.5 passes with a margin for
# a busy machine, the capped Xeon's ~1.1 and emulated bf16 (2.6 and more) do not.
FASTER_BELOW = 0.8
CACHE_NAME = "cpu_bf16_probe.json"
LAYERS, CHANNELS, SIDE, ROUNDS = 4, 64, 128, 5

_known: dict[str, bool] = {}  # this process's answers, by machine key


@dataclass(frozen=True)
class ProbeTiming:
    """Best seconds of the probe in fp32 and in bf16, both channels_last."""

    fp32_s: float
    bf16_s: float

    @property
    def bf16_faster(self) -> bool:
        return self.bf16_s < FASTER_BELOW * self.fp32_s


def measure(rounds: int = ROUNDS) -> ProbeTiming:
    """Time the probe network in fp32 and bf16 autocast, in turns (a load spike then hits both); the first round
    builds oneDNN's kernels and is not counted. Its weights come from a generator of its own: the global random
    state is left as it was."""
    generator = torch.Generator().manual_seed(0)
    weights = [torch.randn(CHANNELS, CHANNELS, 3, 3, generator=generator) * 0.05 for _ in range(LAYERS)]
    x = torch.rand(1, CHANNELS, SIDE, SIDE, generator=generator).contiguous(memory_format=torch.channels_last)
    best = {False: float("inf"), True: float("inf")}
    with torch.inference_mode():
        for round_ in range(rounds):
            for bf16 in (False, True):
                with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                    start = time.perf_counter()
                    y = x
                    for w in weights:
                        y = F.conv2d(y, w, padding=1)
                    elapsed = time.perf_counter() - start
                if round_:
                    best[bf16] = min(best[bf16], elapsed)
    return ProbeTiming(best[False], best[True])


def machine_key(isa_cap: str) -> str:
    """What the answer depends on: the CPU, the threads torch uses, torch's version and oneDNN's instruction cap."""
    return " | ".join((_cpu_name(), f"{torch.get_num_threads()} threads", f"torch {torch.__version__}",
                       f"cap {isa_cap or 'none'}"))


@functools.cache  # read once: machine_key is asked on every upscale
def _cpu_name() -> str:
    """The CPU's name with its family and model numbers (a VM may name it only 'AMD EPYC')."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    fields: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep:
            if fields:  # the first processor's block has ended
                break
            continue
        fields.setdefault(name.strip(), value.strip())
    said = [fields.get(n, "") for n in ("vendor_id", "model name", "cpu family", "model", "stepping")]
    return " ".join(s for s in said if s) or platform.processor() or platform.machine()


def bf16_faster(isa_cap: str, cache: Path | None = None) -> bool:
    """Whether bf16 convolutions beat fp32 channels_last on this machine: the answer kept in ``cache`` (default
    the user cache's ``CACHE_NAME``) for this machine's key, else measured now and kept there. A cache that cannot
    be read or written only costs a measurement."""
    key = machine_key(isa_cap)
    if key in _known:
        return _known[key]
    path = cache if cache is not None else user_cache_dir() / CACHE_NAME
    kept = _read(path).get(key)
    if isinstance(kept, dict) and isinstance(kept.get("bf16_faster"), bool):
        faster = kept["bf16_faster"]
    else:
        timing = measure()
        faster = timing.bf16_faster
        log.info("this CPU runs bf16 convolutions in %.2fx the time of fp32, so precision auto runs the upscaler "
                 "in %s here (measured once, kept in %s)", timing.bf16_s / timing.fp32_s,
                 "bf16" if faster else "fp32", path)
        _write(path, key, {**asdict(timing), "bf16_faster": faster})
    _known[key] = faster
    return faster


def _read(path: Path) -> dict:
    try:
        kept = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return kept if isinstance(kept, dict) else {}


def _write(path: Path, key: str, entry: dict) -> None:
    """Add ``entry`` under ``key``, through a temporary file and a rename: another process reading at the same time
    sees the old file or the new one, never half of one."""
    kept = _read(path)
    kept[key] = entry
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as out:
                json.dump(kept, out, indent=1)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as error:
        log.debug("could not keep the bf16 probe's answer in %s: %s", path, error)


__all__ = ["CACHE_NAME", "FASTER_BELOW", "ProbeTiming", "bf16_faster", "machine_key", "measure"]
