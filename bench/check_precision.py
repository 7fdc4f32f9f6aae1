"""Accuracy of the fast paths against the fp32 reference on real aligned faces (prints JSON).

    python bench/check_precision.py FACE.png [FACE.png ...] [--device cuda]

Compares, for the same random weights: batched vs one-by-one fp32, ``auto`` vs ``fp32`` (on the CPU: channels_last
vs the official NCHW), and, where the device runs bf16 fast (CUDA, CPUs with AMX), bf16 autocast vs
fp32 (mean absolute difference in 0..255 levels). Target: fp32 paths within 1e-4 before rounding (a level at most
after), bf16 mean abs diff < 2 levels.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from codeformer.cli.images import read_image  # noqa: E402
from codeformer.restore import restore_faces  # noqa: E402
from codeformer.runtime import AUTO_NATIVE, resolve_device, use_bf16  # noqa: E402

from common import random_codeformer  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("faces", nargs="+", type=Path)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    device = resolve_device(args.device)
    model = random_codeformer()
    faces = np.stack([read_image(p) for p in args.faces])
    single = np.stack([restore_faces(model, f[None], 0.5, device=device, precision="fp32")[0] for f in faces])
    batched = restore_faces(model, faces, 0.5, device=device, batch_size=len(faces), precision="fp32")
    report = {"device": str(device), "faces": len(faces)}

    def diff(a: np.ndarray, b: np.ndarray) -> dict:
        d = np.abs(a.astype(np.float64) - b.astype(np.float64))
        return {"mean_abs": float(d.mean()), "max_abs": float(d.max()), "within_2": float((d <= 2).mean())}

    report["fp32_batched_vs_single"] = diff(batched, single)
    auto = restore_faces(model, faces, 0.5, device=device, batch_size=len(faces), precision="auto")
    report["auto_vs_fp32"] = diff(auto, single)
    if use_bf16(device, auto_on=AUTO_NATIVE):  # bf16 runs natively here
        bf16 = restore_faces(model, faces, 0.5, device=device, batch_size=len(faces), precision="bf16")
        report["bf16_vs_fp32"] = diff(bf16, single)
        # Random weights leave many near-tied codebook picks; compare bf16 with fp32 for the same codes too.
        codes = {}
        quantize = model.module.quantize
        original = quantize.get_codebook_feat

        def record(indices, shape):
            codes["fp32"] = indices.clone()
            return original(indices, shape)

        def replay(indices, shape):
            codes["bf16"] = indices.clone()
            return original(codes["fp32"], shape)

        quantize.get_codebook_feat = record
        ref = restore_faces(model, faces, 0.5, device=device, batch_size=len(faces), precision="fp32")
        quantize.get_codebook_feat = replay
        same_codes = restore_faces(model, faces, 0.5, device=device, batch_size=len(faces), precision="bf16")
        quantize.get_codebook_feat = original
        report["bf16_code_flips"] = float((codes["fp32"] != codes["bf16"]).float().mean())
        report["bf16_vs_fp32_same_codes"] = diff(same_codes, ref)
    if device.type == "cuda":
        cpu = restore_faces(model, faces[:1], 0.5, device="cpu", precision="fp32")
        report["cuda_fp32_vs_cpu_fp32_first_face"] = diff(single[:1], cpu)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
