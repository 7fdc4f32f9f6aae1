"""codeformer.pipeline on edge cases: no face, extreme sizes, gray photos, faces cut by the border."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest
import weights
from helpers import fake_model, gradient, psnr, read_rgb
from hypothesis import given, settings
from hypothesis import strategies as st

from codeformer import detect
from codeformer.align import FFHQ_TEMPLATE_512, estimate_affine, invert_affine
from codeformer.cli.images import read_image
from codeformer.geometry import MAX_WORKING_SIDE, working_size
from codeformer.image import is_gray
from codeformer.pipeline import (
    DetectOptions,
    Networks,
    RestoreSettings,
    find_faces,
    paste_back,
    restore_images,
    upscale_backgrounds,
)
from codeformer.restore import restore_faces
from codeformer.types import Face, Faces


def test_no_face_image_is_unchanged_and_logged(detector, caplog):
    image = gradient(120, 160)
    model = fake_model()
    with caplog.at_level(logging.INFO, logger="codeformer"):
        result = restore_images([image], Networks(model, detector), RestoreSettings(upscale=1.0))
    assert len(result.faces) == 0 and result.crops.shape == (0, 512, 512, 3) and len(result.restored) == 0
    np.testing.assert_array_equal(result.images[0].image, image.astype(np.float32))
    assert not result.images[0].mask.any()
    assert model.module.batches == []  # nothing to restore: the network never ran
    assert "image 0: 0 face(s) kept" in caplog.text


@pytest.mark.parametrize("shape", [(1, 1), (8, 8), (16, 4096), (4096, 16)])
def test_extreme_sizes_through_find_faces_and_paste_back(detector, shape, monkeypatch):
    seen = []
    real = detect._retinaface
    monkeypatch.setattr(detect, "_retinaface", lambda det, bgr, *a: seen.append(bgr.shape[:2]) or real(det, bgr, *a))
    image = np.full((*shape, 3), 128, np.uint8)
    found = find_faces(detector, [image])
    faces, crops = found.faces, found.crops
    assert len(faces) == 0 and faces.source_sizes == (shape,)
    assert max(seen[0]) <= detect.DETECT_MAX_SIDE and min(seen[0]) >= 1  # a bounded network input
    background = upscale_backgrounds([image], 2.0)[0]
    out = paste_back([background], faces, crops)[0]
    assert out.image.shape == (shape[0] * 2, shape[1] * 2, 3)
    np.testing.assert_array_equal(out.image, background.astype(np.float32))


def test_face_in_a_16px_image_is_found_and_pasted_back(detector):
    face = cv2.resize(read_image(weights.IMAGES / "aligned_0240.png"), (16, 16), interpolation=cv2.INTER_AREA)
    found = find_faces(detector, [face])
    faces, crops = found.faces, found.crops
    assert len(faces) == 1 and faces.faces[0].working_scale == 32.0
    for scale in (1.0, 2.0):
        background = upscale_backgrounds([face], scale)[0]
        out = paste_back([background], faces, crops)[0]
        black = paste_back([background], faces, np.zeros_like(crops))[0]
        assert out.image.shape == background.shape and out.mask.max() > 0.5
        # the unrestored crop lands where it came from (blurred by 16 -> 512 -> 16 px), a black one does not
        assert psnr(out.image, background) > 18 > 10 > psnr(black.image, background)


def test_face_pasted_across_the_edge_of_a_16x4096_strip():
    strip = gradient(16, 4096)
    landmarks = FFHQ_TEMPLATE_512 * 0.08 + (2000.0, -12.0)  # a 40 px face, mostly above the strip
    affine = estimate_affine(landmarks.astype(np.float32))
    face = Face(source_index=0, box=(2000.0, -12.0, 2040.0, 28.0), score=1.0, landmarks=landmarks, affine=affine,
                inverse=invert_affine(affine), source_size=(16, 4096), is_gray=False)
    faces = Faces((face,), ((16, 4096),))
    crop = np.full((1, 512, 512, 3), 255, np.uint8)
    for scale in (1.0, 2.0):
        background = upscale_backgrounds([strip], scale)[0]
        out = paste_back([background], faces, crop)[0]
        assert out.image.shape == background.shape
        touched = out.mask > 0
        assert touched.any() and not touched[:, : int(1900 * scale)].any()  # only around the face
        np.testing.assert_array_equal(out.image[~touched], background[~touched].astype(np.float32))


def test_grayscale_photo_comes_back_gray(detector):
    gray = cv2.cvtColor(cv2.cvtColor(read_rgb("whole_01.jpg"), cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    model = fake_model(shift=0.4)  # a network that adds colour
    colour = restore_faces(model, gray[None, :64, :64], gray=[False])[0]
    assert np.abs(colour[..., 0].astype(int) - colour[..., 2]).mean() > 20
    result = restore_images([gray], Networks(model, detector), RestoreSettings(upscale=1.0,
                                                                                detect=DetectOptions(max_faces=2)))
    results, faces, restored = result.images, result.faces, result.restored
    assert len(faces) == 2 and all(f.is_gray for f in faces.faces)
    # Official gray handling: luma of the network output with the colour statistics of the crop, whose border is
    # the official (132, 133, 135) grey; a face at the image edge may therefore differ by 1 level between channels.
    assert np.abs(restored[..., 0].astype(int) - restored[..., 2]).max() <= 1
    out = results[0].image
    assert results[0].mask.max() > 0.5 and is_gray(out.astype(np.uint8))
    for a, b in ((0, 1), (1, 2), (0, 2)):  # (+ float noise of the final resize: whole_01 is under 512 px)
        assert np.abs(out[..., a] - out[..., b]).max() <= 1.0 + 1e-3


@settings(max_examples=5, deadline=None)
@given(h=st.integers(1, 64), w=st.integers(1, 64), value=st.integers(0, 255))
def test_any_small_size_without_faces_passes_through(detector, h, w, value):
    image = np.full((h, w, 3), value, np.uint8)
    found = find_faces(detector, [image])
    faces, crops = found.faces, found.crops
    assert len(faces) == 0 and crops.shape == (0, 512, 512, 3)
    assert working_size((h, w))[0] >= 1 and max(working_size((h, w))) <= max(MAX_WORKING_SIDE, h, w)
    out = paste_back([image], faces, crops)[0]
    np.testing.assert_array_equal(out.image, image.astype(np.float32))


def test_faces_cut_by_the_border(detector):
    image = np.ascontiguousarray(read_rgb("whole_02.png")[120:500, 200:760])  # three faces cut by the edges
    found = find_faces(detector, [image])
    faces, crops = found.faces, found.crops
    h, w = faces.faces[0].working_size
    cut = [f for f in faces.faces if f.box[0] < 0 or f.box[1] < 0 or f.box[2] > w or f.box[3] > h]
    assert len(faces) >= 3 and len(cut) >= 2
    for scale in (1.0, 2.0):
        background = upscale_backgrounds([image], scale)[0]
        out = paste_back([background], faces, crops)[0]
        inside = out.mask > 0.5
        assert out.image.shape == background.shape and inside.mean() > 0.05
        assert psnr(out.image[inside], background[inside]) > 30
