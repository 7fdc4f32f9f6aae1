"""Our models folder over the official harness's random weights (tools/official/make_weights.py), as symlinks.

    python bench/official_models.py WEIGHTS MODELS_DIR

Gives MODELS_DIR the layout ``--models-dir`` expects (facerestore_models/, facedetection/, upscale_models/), so our
code and the official code run on the very same files.
"""

from __future__ import annotations

import sys
from pathlib import Path

# our models folder layout -> the files make_weights.py writes
LAYOUT = {
    "facerestore_models/codeformer.pth": "CodeFormer/codeformer.pth",
    "facedetection/detection_mobilenet0.25_Final.pth": "facelib/detection_mobilenet0.25_Final.pth",
    "facedetection/parsing_parsenet.pth": "facelib/parsing_parsenet.pth",
    "upscale_models/RealESRGAN_x2plus.pth": "realesrgan/RealESRGAN_x2plus.pth",
}


def link_official_models(weights: Path, models_dir: Path) -> Path:
    """Symlink the official random weights in ``weights`` into ``models_dir``; returns ``models_dir``."""
    for ours, theirs in LAYOUT.items():
        (models_dir / ours).parent.mkdir(parents=True, exist_ok=True)
        (models_dir / ours).symlink_to((weights / theirs).resolve())
    return models_dir


if __name__ == "__main__":
    link_official_models(Path(sys.argv[1]), Path(sys.argv[2]))
