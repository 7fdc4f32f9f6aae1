"""Long batches a few images at a time (``codeformer.parts``): the same results as one call, one progress bar."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import fake_model, read_rgb

from codeformer import parts
from codeformer.pipeline import Networks, PasteOptions, RestoreSettings, find_faces, paste_back, restore_images


@pytest.fixture(scope="module")
def frames():
    """Three small frames: two with faces (one mirrored), one without."""
    photo = read_rgb("whole_00.jpg")[:, :300]
    return [np.ascontiguousarray(photo), np.full(photo.shape, 40, np.uint8), np.ascontiguousarray(photo[:, ::-1])]


def test_restore_in_parts_equals_one_call(frames, detector, monkeypatch):
    networks = Networks(fake_model(shift=0.3), detector)
    settings = RestoreSettings(upscale=1.0)
    whole = restore_images(frames, networks, settings)
    h, w = frames[0].shape[:2]
    monkeypatch.setattr(parts, "PIXELS_PER_PART", 2 * h * w)  # two images per part
    seen = []
    got = list(parts.restore_in_parts(frames, networks, settings, on_progress=lambda d, t: seen.append((d, t))))
    assert [p.start for p in got] == [0, 2] and [len(p.images) for p in got] == [2, 1]
    results = [r for p in got for r in p.images]
    for mine, theirs in zip(results, whole.images, strict=True):
        np.testing.assert_array_equal(mine.image, theirs.image)
        np.testing.assert_array_equal(mine.mask, theirs.mask)
    assert sum(len(p.faces) for p in got) == len(whole.faces) > 0
    assert seen[-1] == (1000, 1000) and [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_paste_in_parts_renumbers_each_parts_faces(frames, detector, monkeypatch):
    found = find_faces(detector, frames)
    options = PasteOptions()
    whole = paste_back(frames, found.faces, found.crops, options)
    h, w = frames[0].shape[:2]
    monkeypatch.setattr(parts, "PIXELS_PER_PART", h * w)  # one image per part
    got = list(parts.paste_in_parts(frames, found.faces, found.crops, options))
    assert [p.start for p in got] == [0, 1, 2]
    assert [len(p.faces.source_sizes) for p in got] == [1, 1, 1]
    assert all(f.source_index == 0 for p in got for f in p.faces.faces)
    for part in got:
        np.testing.assert_array_equal(part.images[0].image, whole[part.start].image)
