"""Shared by the benchmark scripts: a random-weight CodeFormer loaded through the real loader, device sync, the
result printed and saved as JSON."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from weights import codeformer_state_dict, save_safetensors  # noqa: E402

from codeformer import models  # noqa: E402
from codeformer.types import CodeFormerModel  # noqa: E402


def random_codeformer() -> CodeFormerModel:
    """Official-size CodeFormer with random weights (speed does not depend on the values), via safetensors."""
    with tempfile.TemporaryDirectory() as tmp:
        return models.load_codeformer(save_safetensors(codeformer_state_dict(), Path(tmp) / "cf.safetensors"))


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously), so wall-clock timings are complete."""
    if device.type == "cuda":
        torch.cuda.synchronize()


def timing(fn: Callable, device: torch.device, totals: dict[str, float], name: str) -> Callable:
    """``fn`` wrapped to add its wall-clock time to ``totals[name]`` on every call, the device synchronised before
    and after (so a stage's queued GPU work is counted in it)."""
    def wrapper(*args, **kwargs):
        sync(device)
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            sync(device)
            totals[name] = totals.get(name, 0.0) + time.perf_counter() - start

    return wrapper


def print_and_save(result: dict, path: Path | None) -> None:
    """Print ``result`` as JSON and, given a ``path``, write it there (its folder made if missing)."""
    text = json.dumps(result, indent=1)
    print(text)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
