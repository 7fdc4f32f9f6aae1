"""Codebook flicker of a face 'video' with and without temporal code smoothing (prints JSON).

    python bench/codes_flicker.py [FACE.png ...] [--frames 10] [--noise 6]

Each face becomes ``--frames`` frames (the photo with fresh Gaussian pixel noise of ``--noise`` levels each); the
random-weight CodeFormer encodes them once (``codes.encode``), and the logits are averaged per frame over windows of
different reach and weighting. Reported per scheme: flips (share of the 256 tokens whose codebook pick changes from
one frame to the next) and agreement with the picks of the noise-free photo. Random weights pick far less stably
than the real ones: the figures compare the schemes, they do not predict the flicker of real weights.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from common import random_codeformer  # noqa: E402
from helpers import read_rgb  # noqa: E402

from codeformer.codes import encode, pick_codes  # noqa: E402
from codeformer.restore import network_input  # noqa: E402


def gaussian(radius: int, sigma: float) -> list[float]:
    return [float(np.exp(-d * d / (2 * sigma * sigma))) for d in range(-radius, radius + 1)]


SCHEMES = {"window 1": [1.0], "uniform 3": [1.0] * 3, "uniform 5": [1.0] * 5,
           "gaussian 3 (sigma 1)": gaussian(1, 1.0), "gaussian 5 (sigma 1)": gaussian(2, 1.0)}


def noisy_frames(name: str, count: int, noise: float) -> torch.Tensor:
    """The shared face ``name`` clean, then ``count`` times with fresh Gaussian noise: ``[1 + count, 3, H, W]``
    uint8."""
    photo = read_rgb(name).astype(np.float64)
    rng = np.random.default_rng(0)
    frames = [photo] + [np.clip(photo + rng.normal(0, noise, photo.shape), 0, 255) for _ in range(count)]
    return torch.from_numpy(np.stack(frames).round().astype(np.uint8)).permute(0, 3, 1, 2)


def smoothed_codes(logits: torch.Tensor, weights: list[float]) -> torch.Tensor:
    """Picks of each frame's weighted mean logits over the frames of its window that exist (as at a track's ends)."""
    r, out = len(weights) // 2, []
    for t in range(len(logits)):
        frames = [u for u in range(t - r, t + r + 1) if 0 <= u < len(logits)]
        w = torch.tensor([weights[u - t + r] for u in frames])
        out.append((logits[frames] * w[:, None, None]).sum(0) / w.sum())
    return pick_codes(torch.stack(out))[:, :, 0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("faces", nargs="*", default=["aligned_0143.png", "aligned_0342.png"])
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--noise", type=float, default=6.0)
    args = parser.parse_args()
    net = random_codeformer().module.eval()
    results: dict[str, list[dict[str, float]]] = {name: [] for name in SCHEMES}
    for name in args.faces:
        x = noisy_frames(name, args.frames, args.noise)
        with torch.inference_mode():
            logits = torch.cat([encode(net, network_input(x[i : i + 1], torch.contiguous_format),
                                       keep_features=False).logits for i in range(len(x))])
        clean = pick_codes(logits[:1])[0, :, 0]
        for scheme, weights in SCHEMES.items():
            codes = smoothed_codes(logits[1:], weights)
            results[scheme].append({"face": name, "flips": round((codes[1:] != codes[:-1]).float().mean().item(), 4),
                                    "agree_with_clean": round((codes == clean).float().mean().item(), 4)})
    print(json.dumps({"frames": args.frames, "noise": args.noise, "results": results}, indent=1))


if __name__ == "__main__":
    main()
