"""Where CodeFormer's GPU time goes: the network alone in fp32/bf16, contiguous/channels_last, and the top kernels.

    python bench/profile_restore.py [--batch 32] [--iters 4]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))


from common import random_codeformer  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--iters", type=int, default=4)
    args = ap.parse_args()
    torch.backends.cudnn.benchmark = True
    model = random_codeformer()
    net = model.module.cuda().eval()
    x = torch.rand(args.batch, 3, 512, 512, device="cuda") * 2 - 1
    results = {}
    for fmt_name, fmt in (("contiguous", torch.contiguous_format), ("channels_last", torch.channels_last)):
        net = net.to(memory_format=fmt)
        xf = x.contiguous(memory_format=fmt)
        for dtype_name, bf16 in (("fp32", False), ("bf16", True)):
            with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
                net(xf, weight=0.5)
                torch.cuda.synchronize()
                start = time.perf_counter()
                for _ in range(args.iters):
                    net(xf, weight=0.5)
                torch.cuda.synchronize()
            fps = args.batch * args.iters / (time.perf_counter() - start)
            results[(fmt_name, dtype_name)] = fps
            print(f"network only  {fmt_name:<14}{dtype_name:<6} batch {args.batch}: {fps:8.1f} faces/s", flush=True)
    import numpy as np

    from codeformer import restore

    faces = np.random.default_rng(0).integers(0, 256, (args.batch * args.iters, 512, 512, 3), dtype=np.uint8)
    for channels_last in (False, True):
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        restore.memory_format = lambda device, precision=None, fmt=fmt: fmt  # the pack's choice, overridden for the comparison
        for precision in ("fp32", "bf16"):
            restore.restore_faces(model, faces[: args.batch], 0.5, device="cuda", batch_size=args.batch, precision=precision)
            torch.cuda.synchronize()
            start = time.perf_counter()
            restore.restore_faces(model, faces, 0.5, device="cuda", batch_size=args.batch, precision=precision)
            torch.cuda.synchronize()
            fps = len(faces) / (time.perf_counter() - start)
            print(f"restore_faces channels_last={channels_last!s:<6}{precision}: {fps:8.1f} faces/s", flush=True)
    best = max(results, key=results.get)
    net = net.to(memory_format=torch.channels_last if best[0] == "channels_last" else torch.contiguous_format)
    xf = x.contiguous(memory_format=torch.channels_last if best[0] == "channels_last" else torch.contiguous_format)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=best[1] == "bf16"):
            net(xf, weight=0.5)
            torch.cuda.synchronize()
    print(f"top kernels for {best}:")
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=12, max_name_column_width=60))


if __name__ == "__main__":
    main()
