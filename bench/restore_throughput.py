"""CodeFormer throughput: faces/s at several batch sizes, fp32 and bf16, beside a one-face-at-a-time fp32 loop.

    python bench/restore_throughput.py [--device auto] [--batches 1,4,16,64] [--faces 64] [--json out.json]

Random weights in the official format (no download needed); speed does not depend on the values.
Prints a table and writes JSON. On CPU keep --faces small (each face costs ~810 GFLOP).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from codeformer.restore import restore_faces  # noqa: E402
from codeformer.runtime import AUTO_NATIVE, resolve_device, use_bf16  # noqa: E402

from common import random_codeformer, sync  # noqa: E402


def timed(fn, device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batches", default="1,4,16,64")
    ap.add_argument("--faces", type=int, default=64, help="faces per measurement")
    ap.add_argument("--loop-faces", type=int, default=0, help="faces for the one-at-a-time loop (default: --faces, max 16)")
    ap.add_argument("--compile", action="store_true",
                    help="also time restore_faces with the torch.compile'd network (bf16, batch --compile-batch; "
                         "the first call compiles for about a minute and is not timed)")
    ap.add_argument("--compile-batch", type=int, default=32)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    device = resolve_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    model = random_codeformer()
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (args.faces, 512, 512, 3), dtype=np.uint8)
    # bf16 where the device runs it natively (CUDA with bf16, CPUs with AMX)
    native_bf16 = use_bf16(device, auto_on=AUTO_NATIVE)
    modes = ["fp32"] + (["bf16"] if native_bf16 else [])
    rows = []

    loop_n = args.loop_faces or min(args.faces, 16)
    restore_faces(model, faces[:1], 0.5, device=device, precision="fp32")  # warm-up
    t = timed(lambda: [restore_faces(model, faces[i : i + 1], 0.5, device=device, precision="fp32") for i in range(loop_n)], device)
    baseline = loop_n / t
    rows.append({"mode": "fp32 loop (1 face/call)", "batch": 1, "faces": loop_n, "seconds": t, "faces_per_s": baseline})

    def measure(name: str, batch: int | None, precision: str, n: int) -> None:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        first = timed(lambda: restore_faces(model, faces[: batch or 1], 0.5, device=device, batch_size=batch,
                                            precision=precision), device)  # warm-up (compiles, with --compile)
        t = timed(lambda: restore_faces(model, faces[:n], 0.5, device=device, batch_size=batch, precision=precision),
                  device)
        peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
        rows.append({"mode": name, "batch": batch or "auto", "faces": n, "seconds": t, "faces_per_s": n / t,
                     "speedup_vs_loop": n / t / baseline, "peak_gib": peak, "first_call_s": first})

    for name in modes:
        for batch in [int(b) for b in args.batches.split(",")]:
            n = max(batch, (args.faces // batch) * batch)
            if n > len(faces):
                continue
            measure(name, batch, name, n)

    best = modes[-1]
    measure(f"{best} (batch from free memory)", None, best, len(faces))
    if args.compile:
        model = dataclasses.replace(model, compile=True, compiled={})
        measure("bf16 + torch.compile", args.compile_batch, "bf16", len(faces))

    card = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"CodeFormer 512px throughput on {card}, torch {torch.__version__}")
    print(f"{'mode':<34}{'batch':>6}{'faces':>7}{'seconds':>10}{'faces/s':>10}{'x loop':>8}{'peak GiB':>10}"
          f"{'1st call s':>11}")
    for r in rows:
        peak = f"{r['peak_gib']:.2f}" if r.get("peak_gib") is not None else "-"
        speed = f"{r['speedup_vs_loop']:.1f}" if "speedup_vs_loop" in r else "1.0"
        first = f"{r['first_call_s']:.1f}" if "first_call_s" in r else "-"
        print(f"{r['mode']:<34}{r['batch']:>6}{r['faces']:>7}{r['seconds']:>10.2f}{r['faces_per_s']:>10.2f}{speed:>8}{peak:>10}"
              f"{first:>11}")
    if args.json:
        args.json.write_text(json.dumps({"device": card, "torch": torch.__version__, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
