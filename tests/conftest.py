"""Shared fixtures: random-weight checkpoints in the official formats, built once per session."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import weights  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    """What the library keeps per machine (bf16_probe's answer) goes to a temporary user cache, for this process and
    the CLI and Ray processes the tests start, not to the user's."""
    cache = tempfile.mkdtemp(prefix="codeformer-tests-cache-")
    os.environ["XDG_CACHE_HOME"] = os.environ["LOCALAPPDATA"] = cache
    config.add_cleanup(lambda: shutil.rmtree(cache, ignore_errors=True))


def pytest_sessionstart(session: pytest.Session) -> None:
    """Stop with one message when the shared test data is missing (instead of an error per fixture)."""
    missing = [p for p in (weights.REAL_DETECTOR, weights.IMAGES) if not p.exists()]
    if missing:
        pytest.exit(f"the tests need the shared test data beside this repository, and it is missing: "
                    f"{', '.join(map(str, missing))} (real photos in shared/data/images, the RetinaFace detector in "
                    "shared/data/weights); check out the shared folder next to the repository", returncode=4)


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    """A ``--models-dir`` with the standard subfolders holding random-weight files (and the real detector)."""
    root = tmp_path_factory.mktemp("models")
    cf = weights.codeformer_state_dict()
    weights.save_pth(cf, root / "facerestore_models" / "codeformer.pth", wrap="params_ema")
    weights.save_safetensors(cf, root / "facerestore_models" / "codeformer.safetensors")
    weights.save_pth(weights.parsenet_state_dict(), root / "facedetection" / "parsing_parsenet.pth")
    weights.save_pth(weights.realesrgan_state_dict(), root / "upscale_models" / "RealESRGAN_x2plus.pth", wrap="params_ema")
    det = root / "facedetection" / "detection_mobilenet0.25_Final.pth"
    det.write_bytes(weights.REAL_DETECTOR.read_bytes())
    return root


@pytest.fixture(scope="session")
def models(models_dir):
    """The random-weight models and the real detector, loaded once."""
    from codeformer.models import load_codeformer, load_detector, load_parser, load_upscaler

    class Loaded:
        codeformer = load_codeformer(models_dir / "facerestore_models" / "codeformer.pth")
        detector = load_detector(models_dir / "facedetection" / "detection_mobilenet0.25_Final.pth")
        parser = load_parser(models_dir / "facedetection" / "parsing_parsenet.pth")
        upscaler = load_upscaler(models_dir / "upscale_models" / "RealESRGAN_x2plus.pth")

    return Loaded


@pytest.fixture(scope="session")
def x4_model(tmp_path_factory):
    """A small random Real-ESRGAN x4 (no pixel-unshuffle: its ~21 px receptive field fits the 40 px tile context)."""
    from codeformer.models import load_upscaler

    path = weights.save_pth(weights.realesrgan_state_dict(scale=4), tmp_path_factory.mktemp("up") / "x4.pth",
                            wrap="params_ema")
    return load_upscaler(path)
