"""GPU experiments for CodeFormer's network (not used by the pack yet): bf16 weights and torch.compile.

    python bench/gpu_experiments.py [--batch 32] [--iters 3] [--compile-seconds 150]

Prints faces/s of the network alone for: autocast bf16 (what the pack does), the whole network in bf16
(not run: the codebook lookup needs float32), and torch.compile on top of autocast; plus the output difference to fp32.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))


from common import random_codeformer  # noqa: E402


def rate(fn, batch: int, iters: int) -> float:
    fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    torch.cuda.synchronize()
    return batch * iters / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--compile-seconds", type=int, default=150)
    args = ap.parse_args()
    torch.backends.cudnn.benchmark = True
    model = random_codeformer()
    net = model.module.cuda().eval()
    x = torch.rand(args.batch, 3, 512, 512, device="cuda") * 2 - 1

    with torch.inference_mode():
        ref = net(x, weight=0.5)[0].float()

        def autocast_run():
            with torch.autocast("cuda", dtype=torch.bfloat16):
                return net(x, weight=0.5)[0]

        print(f"autocast bf16      : {rate(autocast_run, args.batch, args.iters):7.1f} faces/s "
              f"(mean |diff| to fp32 {float((autocast_run().float() - ref).abs().mean()) * 127.5:.2f}/255)", flush=True)

    def give_up(*_):
        raise TimeoutError

    signal.signal(signal.SIGALRM, give_up)
    signal.alarm(args.compile_seconds)
    try:
        compiled = torch.compile(net)
        start = time.perf_counter()

        def compiled_run():
            with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
                return compiled(x, weight=0.5)[0]

        compiled_run()
        torch.cuda.synchronize()
        print(f"compile time       : {time.perf_counter() - start:7.1f} s", flush=True)
        fps = rate(compiled_run, args.batch, args.iters)
        diff = float((compiled_run().float() - ref).abs().mean()) * 127.5
        print(f"compiled + autocast: {fps:7.1f} faces/s (mean |diff| to fp32 {diff:.2f}/255)", flush=True)
    except TimeoutError:
        print(f"torch.compile did not finish within {args.compile_seconds} s", flush=True)
    finally:
        signal.alarm(0)


if __name__ == "__main__":
    main()
