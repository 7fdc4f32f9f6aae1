"""Make the README figures from a real photo with the real RetinaFace detector (no CodeFormer output shown).

    python docs/make_figures.py PHOTO DETECTOR.pth [OUTDIR]

Writes detection.jpg (boxes and the 5 landmarks), crops.jpg (the aligned 512x512 inputs CodeFormer sees) and
paste_mask.jpg (the feathered paste-back mask at 2x) into OUTDIR (default docs/images).
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from codeformer import models  # noqa: E402
from codeformer.cli.images import read_image  # noqa: E402
from codeformer.cli.outputs import write_image  # noqa: E402
from codeformer.pipeline import find_faces, paste_back, upscale_backgrounds  # noqa: E402

COLORS = [(255, 64, 64), (64, 200, 64), (64, 128, 255), (255, 200, 0), (200, 64, 255)]


def main() -> None:
    photo, detector_path = Path(sys.argv[1]), Path(sys.argv[2])
    out = Path(sys.argv[3]) if len(sys.argv) > 3 else ROOT / "docs" / "images"
    image = read_image(photo)
    detector = models.load_detector(detector_path)
    found = find_faces(detector, [image])
    faces, crops = found.faces, found.crops

    overlay = image.copy()
    for face in faces.faces:
        x0, y0, x1, y1 = (int(round(v)) for v in face.source_box)
        cv2.rectangle(overlay, (x0, y0), (x1, y1), (0, 255, 0), 2)
        for (x, y), color in zip(face.source_landmarks, COLORS):
            cv2.circle(overlay, (int(round(x)), int(round(y))), 3, color, -1)
        cv2.putText(overlay, f"{face.score:.2f}", (x0, max(12, y0 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 255, 0), 1)
    write_image(out / "detection.jpg", overlay)

    tiles = [cv2.resize(c, (192, 192), interpolation=cv2.INTER_AREA) for c in crops]
    write_image(out / "crops.jpg", np.concatenate(tiles, axis=1))

    background = upscale_backgrounds([image], 2.0)[0]
    mask = paste_back([background], faces, crops)[0].mask
    mask = cv2.resize(mask, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_AREA)
    write_image(out / "paste_mask.jpg", np.repeat((mask * 255).round().astype(np.uint8)[:, :, None], 3, axis=2))


if __name__ == "__main__":
    main()
