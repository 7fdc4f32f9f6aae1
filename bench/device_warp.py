"""Agreement of the torch warps and paste-back (codeformer.device_warp) with the OpenCV path on the same inputs.

    python bench/device_warp.py [--device cpu|cuda] [--out bench/measured/device_warp.md]

Real faces of whole_02.png (RetinaFace mobilenet0.25): the aligned crops by ``warp_faces_torch`` against
``align.warp_face``, with the detected affines and hand-made ones (rotation, shrink, enlargement, sub-pixel
shifts); then their crops pasted back by ``paste_faces_torch`` against ``paste.paste_faces`` at scales 1, 1.5 and
2, feather 1 and 2, visibility 0.7, with and without (smooth random) parse masks, face-upsampled (1024 px faces at
scale 2), and with two extra faces hanging over the image's edges. Figures in 0..255 units: mean and max absolute
difference and PSNR, for the paste inside the pasted area (mask > 0) where anything differs at all.
tests/lib/test_device_warp.py reuses these cases.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from helpers import read_rgb  # noqa: E402
from weights import REAL_DETECTOR  # noqa: E402

from codeformer.align import warp_face  # noqa: E402
from codeformer.canvas import plain_canvas  # noqa: E402
from codeformer.device_warp import paste_faces_torch, warp_faces_torch  # noqa: E402
from codeformer.image import to_working  # noqa: E402
from codeformer.models import load_detector  # noqa: E402
from codeformer.paste import FacePlacement, paste_faces  # noqa: E402
from codeformer.pipeline import find_faces  # noqa: E402
from codeformer.types import FACE_SIZE  # noqa: E402


@dataclass(frozen=True)
class Diff:
    """How far a torch result is from the OpenCV one, 0..255 units."""

    mean: float
    max: float
    psnr: float

    def row(self) -> str:
        return f"{self.mean:.4f} | {self.max:.3f} | {self.psnr:.1f}"


def diff(ours: np.ndarray, reference: np.ndarray) -> Diff:
    d = np.abs(np.asarray(ours, np.float64) - np.asarray(reference, np.float64))
    mse = float((d**2).mean()) if d.size else 0.0
    return Diff(float(d.mean()) if d.size else 0.0, float(d.max()) if d.size else 0.0,
                10 * math.log10(255**2 / max(mse, 1e-12)))


def hand_affines(detected: np.ndarray) -> dict[str, np.ndarray]:
    """Non-trivial working image -> crop affines around a detected face: rotated, scaled below and above 1,
    shifted by fractions of a pixel."""
    cx, cy = cv2.invertAffineTransform(detected) @ np.array([256.0, 256.0, 1.0])

    def around(angle: float, zoom: float, dx: float, dy: float) -> np.ndarray:
        m = cv2.getRotationMatrix2D((cx, cy), angle, zoom)  # about the face's centre, then onto the crop centre
        m[:, 2] += (256 - cx + dx, 256 - cy + dy)
        return m

    return {"rotated 30 deg, x1.3, +0.37/-0.21 px": around(30, 1.3, 0.37, -0.21),
            "rotated -7 deg, x0.45 (shrink)": around(-7, 0.45, 0.5, 0.25),
            "x2.7 (enlarge), +0.13/+0.71 px": around(0, 2.7, 0.13, 0.71),
            "rotated 95 deg, x0.8, off the edge": around(95, 0.8, 300.3, -180.6)}


def warp_diffs(working: np.ndarray, affines: dict[str, np.ndarray], device: str) -> dict[str, tuple[Diff, float]]:
    """Per affine: the torch crop against ``warp_face``, and the share of equal pixels once rounded to uint8."""
    images = torch.from_numpy(working).permute(2, 0, 1)[None].to(device)
    stack = np.stack(list(affines.values()))
    crops = warp_faces_torch(images, torch.from_numpy(stack), torch.zeros(len(stack), dtype=torch.long))
    crops = crops.permute(0, 2, 3, 1).cpu().numpy()
    out = {}
    for (name, affine), crop in zip(affines.items(), crops, strict=True):
        reference = warp_face(working, affine)
        out[name] = (diff(crop, reference), float((np.round(crop) == reference).mean()))
    return out


def smooth_masks(n: int, seed: int = 0) -> list[np.ndarray]:
    """Random smooth 512x512 parse-like masks, 0..1: blurred noise through a steep sigmoid."""
    rng = np.random.default_rng(seed)
    masks = []
    for _ in range(n):
        noise = cv2.GaussianBlur(rng.standard_normal((FACE_SIZE, FACE_SIZE)).astype(np.float32), (0, 0), 24)
        masks.append((1 / (1 + np.exp(-noise / noise.std() * 4 - 1))).astype(np.float32))
    return masks


def edge_inverses(inverse: np.ndarray, shape: tuple[int, int]) -> list[np.ndarray]:
    """Two copies of a face's inverse moved so the face hangs over the top-left corner and the right edge."""
    h, w = shape
    centre = inverse @ np.array([256.0, 256.0, 1.0])
    corner, right = inverse.copy(), inverse.copy()
    corner[:, 2] += (-centre[0] + 20.4, -centre[1] + 15.7)
    right[:, 2] += (w - centre[0] - 30.2, h / 2 - centre[1] + 0.3)
    return [corner, right]


def paste_diff(source: np.ndarray, crops: np.ndarray, inverses: list[np.ndarray], scale: float, *, parse: bool,
               feather: float, visibility: float = 0.7, upsampled: bool = False, device: str = "cpu"
               ) -> tuple[Diff, Diff, float]:
    """``paste_faces_torch`` against ``paste_faces`` on the plain canvas of ``source`` at ``scale``: the image
    inside the pasted area, the whole image, and the mask's max difference."""
    canvas = plain_canvas(source, scale)
    faces = [cv2.resize(c, (2 * FACE_SIZE, 2 * FACE_SIZE), interpolation=cv2.INTER_CUBIC) if upsampled else c
             for c in crops]
    masks: list[np.ndarray | None] = list(smooth_masks(len(faces))) if parse else [None] * len(faces)
    placements = [FacePlacement(f, inv, m) for f, inv, m in zip(faces, inverses, masks, strict=True)]
    ref_image, ref_mask = paste_faces(canvas.image, placements, canvas.scale, scale_y=canvas.scale_y,
                                      visibility=visibility, feather=feather)
    image, mask = paste_faces_torch(
        torch.from_numpy(canvas.image).permute(2, 0, 1).float().to(device),
        [torch.from_numpy(f).permute(2, 0, 1).to(device) for f in faces], inverses,
        [None if m is None else torch.from_numpy(m).to(device) for m in masks],
        canvas.scale, canvas.scale_y, visibility, feather)
    ours = image.permute(1, 2, 0).cpu().numpy()
    inside = ref_mask > 0
    return (diff(ours[inside], ref_image[inside]), diff(ours, ref_image),
            float(np.abs(mask.cpu().numpy() - ref_mask).max()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    source = read_rgb("whole_02.png")
    found = find_faces(load_detector(REAL_DETECTOR), [source])
    working = to_working(source)
    faces = found.faces.faces
    affines = {f"detected face {i}": f.affine for i, f in enumerate(faces)} | hand_affines(faces[0].affine)
    lines = [f"# torch warps and paste-back vs OpenCV ({args.device}, torch {torch.__version__}, "
             f"OpenCV {cv2.__version__})", "", "`python bench/device_warp.py`: whole_02.png, "
             f"{len(faces)} detected faces; 0..255 units.", "",
             "## warp_faces_torch vs align.warp_face (512 px crops)", "",
             "| affine | mean | max | PSNR dB | equal once rounded |", "|---|---|---|---|---|"]
    for name, (d, equal) in warp_diffs(working, affines, args.device).items():
        lines.append(f"| {name} | {d.row()} | {equal:.4%} |")
    lines += ["", "## paste_faces_torch vs paste.paste_faces (visibility 0.7)", "",
              "| case | scale | feather | parse | inside: mean | max | PSNR dB | whole: mean | max | PSNR dB "
              "| mask max |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    crops, inverses = list(found.crops), [f.inverse for f in faces]
    edge_crops = crops + [crops[0], crops[1]]
    edge = inverses + edge_inverses(inverses[0], working.shape[:2])
    cases = [("detected", crops, inverses, s, False) for s in (1.0, 1.5, 2.0)]
    cases += [("+2 over the edges", edge_crops, edge, s, False) for s in (1.0, 2.0)]
    cases += [("face-upsampled 1024 px", crops, inverses, 2.0, True)]
    for name, cs, invs, scale, up in cases:
        for feather in (1.0, 2.0):
            for parse in (False, True):
                inside, whole, mask = paste_diff(source, np.stack(cs), invs, scale, parse=parse, feather=feather,
                                                 upsampled=up, device=args.device)
                lines.append(f"| {name} | {scale:g} | {feather:g} | {'yes' if parse else 'no'} | {inside.row()} "
                             f"| {whole.row()} | {mask:.2e} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
