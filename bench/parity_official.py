"""Our CLI beside the official ``inference_codeformer.py`` on the same images with the same weights (CPU).

    python bench/parity_official.py IMAGE... [--full] [--precision fp32] [--shared ../shared] [--weights DIR]
        [--json out.json]

Runs ``tools/official/run_official.sh`` and ``python -m codeformer restore --precision fp32`` (or ``--precision``'s
value: ``auto`` shows what the default's speed costs) with ``-w 0.5 -s 2``
(``--full``: with ``--bg_upsampler realesrgan --face_upsample`` / ``--background-enhance --face-upsample``) on the
random weights of ``tools/official/make_weights.py`` (``--weights``, default ``$CF_WEIGHTS`` or
/tmp/official-weights/seed0) and prints per image: faces kept by each, max difference, equal pixels, PSNR, and how
many aligned crops and restored 512 px faces are identical to the official ones.
The official code writes sources with a short side under 512 at their enlarged size: those outputs are area-resized
to ours (input x upscale) first. Inputs other than PNG/JPEG are converted to PNG (the official script takes no others).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from official_models import link_official_models  # noqa: E402


def compare(official: np.ndarray, ours: np.ndarray) -> dict:
    if official.shape != ours.shape:
        official = cv2.resize(official, (ours.shape[1], ours.shape[0]), interpolation=cv2.INTER_AREA)
    diff = np.abs(official.astype(np.int16) - ours.astype(np.int16))
    mse = float((diff.astype(np.float64) ** 2).mean())
    return {"max": int(diff.max()), "equal_px_pct": round(100 * float((diff.max(-1) == 0).mean()), 3),
            "psnr_db": round(10 * np.log10(255**2 / mse), 1) if mse else float("inf")}


def same_faces(off: Path, our: Path, stem: str) -> dict:
    """How many aligned crops and restored faces (512 px, before paste-back) are identical to the official ones."""
    counts = {"crops_identical": 0, "restored_identical": 0}
    for crop in sorted((our / "faces").glob(f"{stem}_[0-9][0-9]_crop.png")):
        index = crop.name[len(stem) + 1 : len(stem) + 3]
        pairs = (("crops_identical", off / "cropped_faces" / f"{stem}_{index}.png", crop),
                 ("restored_identical", off / "restored_faces" / f"{stem}_{index}.png",
                  our / "faces" / f"{stem}_{index}_restored.png"))
        for key, theirs, mine in pairs:
            a, b = cv2.imread(str(theirs)), cv2.imread(str(mine))
            counts[key] += int(a is not None and b is not None and a.shape == b.shape and np.array_equal(a, b))
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("images", nargs="+", type=Path)
    ap.add_argument("--full", action="store_true", help="background and face upsampling")
    ap.add_argument("--precision", choices=("fp32", "auto", "bf16"), default="fp32")
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    ap.add_argument("--weights", type=Path, default=Path(os.environ.get("CF_WEIGHTS", "/tmp/official-weights/seed0")))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    official_flags = ["-w", "0.5", "-s", "2"]
    official_flags += ["--bg_upsampler", "realesrgan", "--face_upsample"] if args.full else []
    our_flags = ["-w", "0.5", "-s", "2", "--precision", args.precision, "--detector", "retinaface_mobile0.25", "--offline",
                 "--save-faces"] + (["--background-enhance", "--face-upsample"] if args.full else [])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        link_official_models(args.weights, work / "models")
        for image in args.images:
            source = image
            if image.suffix.lower() not in (".png", ".jpg", ".jpeg"):
                source = work / "in" / f"{image.stem}.png"
                source.parent.mkdir(exist_ok=True)
                cv2.imwrite(str(source), cv2.imread(str(image)))
            off, our = work / "official" / image.stem, work / "ours" / image.stem
            subprocess.run(["bash", str(args.shared / "tools/official/run_official.sh"), str(source), str(off),
                            *official_flags], check=True, stdout=subprocess.DEVNULL)
            subprocess.run([sys.executable, "-m", "codeformer", "restore", str(source), "-o", str(our),
                            "--models-dir", str(work / "models"), *our_flags], check=True, cwd=ROOT)
            row = {"image": image.name,
                   "faces_official": len(list((off / "cropped_faces").glob("*.png"))),
                   "faces_ours": len(list((our / "faces").glob("*_crop.png"))),
                   **compare(cv2.imread(str(off / "final_results" / f"{source.stem}.png")),
                             cv2.imread(str(our / f"{source.stem}.png"))),
                   **same_faces(off, our, source.stem)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"full": args.full, "precision": args.precision, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
