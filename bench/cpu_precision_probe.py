"""Which precision and memory layout is fastest per network on this CPU, and as on CPUs without AMX.

    python bench/cpu_precision_probe.py --models-dir MODELS [--isa ALL,AVX512_CORE_BF16,AVX512_CORE] [--json F]

For each oneDNN ISA cap (``ONEDNN_MAX_CPU_ISA``, set in a fresh process: ``AVX512_CORE_BF16`` is an AVX512-BF16 CPU
without AMX, ``AVX512_CORE`` one without bf16 instructions, ``ALL`` this CPU as it is) it times one Real-ESRGAN x2
tile as the upscaler runs it (400 px + 2 x 40 px context) and one CodeFormer face, in fp32 NCHW (the official
arithmetic), fp32 channels_last and bf16 channels_last. Behind ``runtime.cpu_runs_bf16_fast``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import print_and_save

ROOT = Path(__file__).resolve().parents[1]


def measure(models: Path, repeat: int) -> dict[str, dict[str, float]]:
    import torch

    sys.path.insert(0, str(ROOT))
    from codeformer import models as loaders

    upscaler = loaders.load_upscaler(models / "upscale_models" / "RealESRGAN_x2plus.pth").model.eval()
    codeformer = loaders.load_codeformer(models / "facerestore_models" / "codeformer.pth").module.eval()
    runs = {"upscaler tile 480 px": (upscaler, torch.rand(1, 3, 480, 480), {}),
            "codeformer face": (codeformer, torch.rand(1, 3, 512, 512) * 2 - 1, {"weight": 0.5})}
    result: dict[str, dict[str, float]] = {}
    for name, (net, x, kwargs) in runs.items():
        result[name] = {}
        for mode in ("fp32 NCHW", "fp32 channels_last", "bf16 channels_last"):
            fmt = torch.contiguous_format if mode == "fp32 NCHW" else torch.channels_last
            net.to(memory_format=fmt)
            inp = x.contiguous(memory_format=fmt)
            best = float("inf")
            with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=mode.startswith("bf16")):
                for _ in range(repeat + 1):  # the first call builds oneDNN's kernels
                    start = time.perf_counter()
                    net(inp, **kwargs)
                    best = min(best, time.perf_counter() - start)
            result[name][mode] = round(best, 3)
            print(f"  {name}, {mode}: {best:.2f} s", flush=True)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models-dir", type=Path, required=True)
    ap.add_argument("--isa", default="ALL,AVX512_CORE_BF16,AVX512_CORE")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(args.models_dir, args.repeat)))
        return
    import torch

    report: dict = {"torch": torch.__version__, "threads": torch.get_num_threads(), "isa": {}}
    for isa in args.isa.split(","):
        print(f"ONEDNN_MAX_CPU_ISA={isa}", flush=True)
        done = subprocess.run([sys.executable, __file__, "--child", "--models-dir", str(args.models_dir),
                               "--repeat", str(args.repeat)], env={**os.environ, "ONEDNN_MAX_CPU_ISA": isa},
                              check=True, capture_output=True, text=True)
        print("\n".join(line for line in done.stdout.splitlines() if line.startswith("  ")), flush=True)
        report["isa"][isa] = json.loads(done.stdout.splitlines()[-1])
    print_and_save(report, args.json)


if __name__ == "__main__":
    main()
