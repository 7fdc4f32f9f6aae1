"""Output flicker of a still face with fresh noise each frame: code logits averaged over the track (today's
temporal default) against logits AND the encoder features averaged (the fidelity path and AdaIN statistics).

    python bench/feature_smoothing.py [FACE.png ...] [--frames 8] [--noise 6] [--fidelity 0.5] [--json F]

Each face becomes ``--frames`` frames (the photo with fresh Gaussian pixel noise); the random-weight CodeFormer
encodes each once (``codes.encode``); then every scheme decodes every frame with its window of 3 frames (fewer at
the ends). Reported per scheme: output flicker (mean |y_t - y_t-1| in 0..255 over the 512 crop) and the mean
difference to the clean photo's restoration. Random weights: the figures compare schemes, they do not predict the
size of the effect with the real weights.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from codes_flicker import noisy_frames  # noqa: E402
from common import print_and_save, random_codeformer  # noqa: E402

from codeformer.codes import Encoded, decode_codes, encode, pick_codes  # noqa: E402
from codeformer.restore import network_input, network_output  # noqa: E402


def mean_of(parts: list[Encoded]) -> Encoded:
    return Encoded(torch.stack([p.logits for p in parts]).mean(0), torch.stack([p.lq_feat for p in parts]).mean(0),
                   {k: torch.stack([p.features[k] for p in parts]).mean(0) for k in parts[0].features})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("faces", nargs="*", default=["aligned_0143.png"])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--noise", type=float, default=6.0)
    parser.add_argument("--fidelity", type=float, default=0.5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    net = random_codeformer().module.eval().to(memory_format=torch.channels_last)
    result: dict = {"frames": args.frames, "noise": args.noise, "fidelity": args.fidelity, "faces": {}}
    for name in args.faces:
        x = noisy_frames(name, args.frames, args.noise)
        with torch.inference_mode():
            encoded = [encode(net, network_input(x[i : i + 1], torch.channels_last)) for i in range(len(x))]

            def run(e: Encoded, logits: torch.Tensor) -> np.ndarray:
                return network_output(decode_codes(net, e, pick_codes(logits), args.fidelity)).numpy()[0]

            clean = run(encoded[0], encoded[0].logits).astype(np.float64)
            noisy = encoded[1:]
            rows = {}
            for scheme in ("per frame", "logits", "logits + features"):
                outs = []
                for t in range(len(noisy)):
                    near = noisy[max(0, t - 1) : t + 2]
                    if scheme == "per frame":
                        outs.append(run(noisy[t], noisy[t].logits))
                    elif scheme == "logits":
                        outs.append(run(noisy[t], torch.stack([p.logits for p in near]).mean(0)))
                    else:
                        mean = mean_of(near)
                        outs.append(run(mean, mean.logits))
                y = np.stack(outs).astype(np.float64)
                rows[scheme] = {"flicker": round(float(np.abs(np.diff(y, axis=0)).mean()), 3),
                                "error_to_clean": round(float(np.abs(y - clean).mean()), 3)}
                print(name, scheme, rows[scheme], flush=True)
        result["faces"][name] = rows
    print_and_save(result, args.json)


if __name__ == "__main__":
    main()
