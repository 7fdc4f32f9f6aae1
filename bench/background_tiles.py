"""Background upsample with Real-ESRGAN x2 on the official 400 px tile grid (fp32 NCHW, the official arithmetic;
and in ``auto`` precision) against ``auto`` tiles (``upsample.auto_tile``: on a CPU without AMX balanced tiles of
up to ``CPU_LARGE_TILE`` px, ``tile_spans``): time, pixels computed with their context, the difference to the
official output.

    ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16 python bench/background_tiles.py MODELS [IMAGE ...]   # as without AMX
    python bench/background_tiles.py MODELS --per-pixel 480x480,482x363,682x645 [--bf16]

MODELS: ``bench/make_models.py``'s folder (random weights). IMAGE: default the shared ``whole_02.png`` (1204x645,
whose last official column is 4 px wide). ``--per-pixel``: the network alone on random tiles of these sizes (with
their context, WxH) in channels_last, fp32 or ``--bf16``: seconds per megapixel (first and second call), behind
``upsample.CPU_LARGE_TILE`` and ``DEFAULT_TILE``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from weights import IMAGES  # noqa: E402

from codeformer import models, upsample  # noqa: E402
from codeformer.cli.images import read_image  # noqa: E402
from codeformer.runtime import AUTO_NATIVE, use_bf16  # noqa: E402


def computed_pixels(shape: tuple[int, ...], tile: int, balanced: bool) -> int:
    """Input pixels the network runs on: every tile with its context."""
    h, w = shape[:2]

    def padded(length: int) -> int:
        spans = upsample.tile_spans(length, tile, balanced)
        return sum(min(b + upsample.TILE_PAD, length) - max(a - upsample.TILE_PAD, 0) for a, b in spans)

    return padded(h) * padded(w)


def per_pixel(up, sizes: str, bf16: bool) -> None:
    """Seconds per megapixel of the bare network on random tiles of each size (first and second call)."""
    net = up.model.eval().to(memory_format=torch.channels_last)
    with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
        for size in sizes.split(","):
            w, h = (int(v) for v in size.split("x"))
            x = torch.rand(1, 3, h, w).contiguous(memory_format=torch.channels_last)
            times = []
            for _ in range(2):
                start = time.perf_counter()
                net(x)
                times.append(time.perf_counter() - start)
            mpx = w * h / 1e6
            print(f"{'bf16' if bf16 else 'fp32'} channels_last {w}x{h}: {times[1]:.2f} s, {times[1] / mpx:.1f} s/Mpx "
                  f"(first call {times[0] / mpx:.1f})", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", type=Path)
    ap.add_argument("images", type=Path, nargs="*")
    ap.add_argument("--per-pixel", metavar="WxH,...")
    ap.add_argument("--bf16", action="store_true")
    args = ap.parse_args()
    up = models.load_upscaler(args.models / "upscale_models" / "RealESRGAN_x2plus.pth")
    if args.per_pixel:
        per_pixel(up, args.per_pixel, args.bf16)
        return
    paths = args.images or [IMAGES / "whole_02.png"]
    for path in paths:
        image = read_image(path)
        res = {}
        for label, tile, precision, balanced in [("official grid fp32", upsample.DEFAULT_TILE, "fp32", False),
                                                 ("official grid auto", upsample.DEFAULT_TILE, "auto", False),
                                                 ("auto tiles", upsample.AUTO_TILE, "auto", None)]:
            bf16 = use_bf16("cpu", precision, auto_on=AUTO_NATIVE)
            side = tile or upsample.auto_tile("cpu", image.shape[:2], int(up.scale), bf16)
            grid = precision != "fp32" if balanced is None else balanced
            start = time.perf_counter()
            res[label] = upsample.upscale_image(up, image, 2.0, tile=tile, precision=precision,
                                                balanced=balanced).astype(np.float64)
            ratio = computed_pixels(image.shape, side, grid) / (image.shape[0] * image.shape[1])
            print(f"{path.name} {image.shape[1]}x{image.shape[0]} {label} ({side} px, "
                  f"{'balanced' if grid else 'official grid'}): {time.perf_counter() - start:.2f} s, "
                  f"{ratio:.3f}x the pixels computed", flush=True)
        reference = res["official grid fp32"]
        for label in ["official grid auto", "auto tiles"]:
            diff = np.abs(res[label] - reference)
            mse = (diff**2).mean()
            psnr = round(10 * np.log10(255**2 / mse), 1) if mse else "inf"
            print(f"{path.name} {label} against official: mean {diff.mean():.4f}, max {diff.max():.0f}, "
                  f"PSNR {psnr} dB", flush=True)


if __name__ == "__main__":
    main()
