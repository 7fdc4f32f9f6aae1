"""codeformer.models.catalog: the official files match MODELS.md; the detector table names official files."""

from __future__ import annotations

import weights
from codeformer import models
from codeformer.models import catalog


def test_known_files_match_models_md() -> None:
    models_md = (weights.SHARED / "MODELS.md").read_text()
    rows = [line for line in models_md.splitlines() if line.startswith("| ") and "github.com" in line]
    assert len(rows) + len(catalog.OUTSIDE_MODELS_MD) == len(models.KNOWN_FILES)
    for row in rows:
        name, folder, size, sha, url = (c.strip() for c in row.strip("|").split("|"))
        k = models.KNOWN_FILES[name]
        assert (k.folder, k.sha256, k.url) == (folder, sha, url)
        assert k.size == (int(size) if size.isdigit() else None)
        assert k.folder in models.FOLDERS


def test_files_outside_models_md_are_face_restorers_with_a_hash() -> None:
    for name in catalog.OUTSIDE_MODELS_MD:
        k = models.KNOWN_FILES[name]
        assert k.folder == "facerestore_models" and len(k.sha256) == 64 and k.size and k.url.startswith("https://")


def test_detector_table() -> None:
    assert list(models.DETECTORS) == ["retinaface_resnet50", "retinaface_mobile0.25"]  # the loader's list order
    assert {name: (kind.file, kind.network) for name, kind in models.DETECTORS.items()} == {
        "retinaface_resnet50": ("detection_Resnet50_Final.pth", "resnet50"),
        "retinaface_mobile0.25": ("detection_mobilenet0.25_Final.pth", "mobile0.25"),
    }
    for kind in models.DETECTORS.values():
        assert models.KNOWN_FILES[kind.file].folder == "facedetection"
