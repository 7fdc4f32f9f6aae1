"""The networks as the official code runs them beside the leaner forms `auto` runs, in one process, in turns.

    python bench/lean_networks.py [--device auto] [--batch 1] [--rounds 3] [--json F]

- ParseNet: facexlib's forward (``net(x)[0]``) against ``models.parsenet.ParseNetLogits`` (no image head, no
  ``x * 1.0`` copies): the logits must be the same bits.
- CodeFormer: spandrel's ResBlocks with the official swish (``x * sigmoid(x)``) against the fused SiLU
  (``codeformer.swish``), w = 0.5; prints the largest difference of the outputs in 0..255 levels.
Both in the layout ``auto`` uses on the device (channels_last on the CPU, NCHW on a GPU), fp32, random weights.
Each round times each form once after a warm-up call; the best round is kept (``--rounds``).
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable
from pathlib import Path

import torch
from common import print_and_save, random_codeformer, sync
from weights import parsenet_state_dict

from codeformer.models.parsenet import ParseNetLogits
from codeformer.runtime import memory_format, resolve_device
from codeformer.swish import use_fused_swish


def best_times(forms: dict[str, Callable[[], torch.Tensor]], device: torch.device, rounds: int) -> dict:
    """Best wall time of each form over ``rounds`` interleaved rounds, and each form's output of the last round."""
    best = dict.fromkeys(forms, float("inf"))
    outputs: dict[str, torch.Tensor] = {}
    with torch.inference_mode():
        for fn in forms.values():
            fn()  # oneDNN / cuDNN build their kernels on the first call
        for _ in range(rounds):
            for name, fn in forms.items():
                sync(device)
                start = time.perf_counter()
                outputs[name] = fn()
                sync(device)
                best[name] = min(best[name], time.perf_counter() - start)
    return {"seconds": {k: round(v, 4) for k, v in best.items()}, "outputs": outputs}


def time_parsenet(x: torch.Tensor, device: torch.device, fmt: torch.memory_format, rounds: int) -> dict:
    from facexlib.parsing.parsenet import ParseNet

    parsenet = ParseNet(in_size=512, out_size=512, parsing_ch=19)
    parsenet.load_state_dict(parsenet_state_dict())
    parsenet = parsenet.eval().to(device, memory_format=fmt)
    lean = ParseNetLogits(copy.deepcopy(parsenet))
    timed = best_times({"facexlib": lambda: parsenet(x)[0], "logits only": lambda: lean(x)[0]}, device, rounds)
    out = timed.pop("outputs")
    return timed | {"same_bits": bool(torch.equal(out["facexlib"], out["logits only"]))}


def time_codeformer(x: torch.Tensor, device: torch.device, fmt: torch.memory_format, rounds: int) -> dict:
    net = random_codeformer().module.eval().to(device, memory_format=fmt)

    def codeformer(fused: bool) -> Callable[[], torch.Tensor]:
        def run() -> torch.Tensor:
            use_fused_swish(net, fused)
            return net(x, weight=0.5)[0]
        return run

    timed = best_times({"official swish": codeformer(False), "fused SiLU": codeformer(True)}, device, rounds)
    out = timed.pop("outputs")
    levels = (out["official swish"] - out["fused SiLU"]).abs().max().item() * 127.5  # [-1, 1] -> 0..255
    return timed | {"max_diff_levels": round(levels, 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    device = resolve_device(args.device)
    fmt = memory_format(device, "auto")
    torch.manual_seed(0)
    x = (torch.rand(args.batch, 3, 512, 512, device=device) * 2 - 1).contiguous(memory_format=fmt)
    report: dict = {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "batch": args.batch, "layout": str(fmt).removeprefix("torch.")}

    report["parsenet"] = time_parsenet(x, device, fmt, args.rounds)
    print("ParseNet", report["parsenet"], flush=True)
    report["codeformer"] = time_codeformer(x, device, fmt, args.rounds)
    print("CodeFormer", report["codeformer"], flush=True)
    print_and_save(report, args.json)


if __name__ == "__main__":
    main()
