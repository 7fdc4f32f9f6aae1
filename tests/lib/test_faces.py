"""Finding faces (codeformer.detect, faces): detection, caps on a flooding detector, alignment, paste-back geometry."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import fake_model, many_boxes_detector, psnr, read_rgb

from codeformer import detect
from codeformer import faces as finding
from codeformer.align import FFHQ_TEMPLATE_512, estimate_affine
from codeformer.detect import FaceSelectionError, detect_faces, select_faces
from codeformer.image import to_working
from codeformer.models import load_detector
from codeformer.paste import FacePlacement, paste_faces
from codeformer.pipeline import (
    DetectOptions,
    Networks,
    RestoreSettings,
    find_faces,
    paste_back,
    restore_images,
    upscale_backgrounds,
)
from codeformer.types import FaceParser


@pytest.mark.parametrize("name", ["whole_00.jpg", "whole_02.png"])
def test_detects_four_faces(models, name):
    image = read_rgb(name)
    working = to_working(image)
    found = detect_faces(models.detector, working)
    assert len(found) == 4
    h, w = working.shape[:2]
    for det in found:
        x0, y0, x1, y1 = det.box
        assert -2 <= x0 < x1 <= w + 2 and -2 <= y0 < y1 <= h + 2
        assert 0.8 < det.score <= 1.0
        assert ((det.landmarks[:, 0] >= x0) & (det.landmarks[:, 0] <= x1)).all()
        assert ((det.landmarks[:, 1] >= y0) & (det.landmarks[:, 1] <= y1)).all()


def test_crowd_eye_distance_filter(models):
    working = to_working(read_rgb("crowd.jpg"))
    everything = detect_faces(models.detector, working, min_eye_distance=0)
    kept = detect_faces(models.detector, working)  # correct eye distance >= 10 px
    assert len(everything) == 165
    assert len(kept) == 85  # the official (mis-measured) filter keeps 84 of these: see detect.py


def test_selection(models):
    image = read_rgb("whole_02.png")
    found = detect_faces(models.detector, image)
    assert len(select_faces(found, image.shape[:2], "largest")) == 1
    assert len(select_faces(found, image.shape[:2], "center")) == 1
    assert [d.score for d in select_faces(found, image.shape[:2], "2, 0")] == [found[2].score, found[0].score]
    assert len(select_faces(found, image.shape[:2], "all", max_faces=3)) == 3
    with pytest.raises(FaceSelectionError, match="index 7.*only 4"):
        select_faces(found, image.shape[:2], "0,7")
    with pytest.raises(FaceSelectionError, match="not understood"):
        select_faces(found, image.shape[:2], "biggest")


def test_thousands_of_boxes_are_capped_by_max_faces(detector, tmp_path, monkeypatch):
    noisy = load_detector(many_boxes_detector(tmp_path / "many.pth"))
    rows, warped = [], []
    real_retinaface, real_warp = detect._retinaface, finding.warp_face
    monkeypatch.setattr(detect, "_retinaface", lambda *a: rows.append(len(r := real_retinaface(*a))) or r)
    monkeypatch.setattr(finding, "warp_face", lambda *a: warped.append(1) or real_warp(*a))
    model = fake_model()
    image = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    result = restore_images([image], Networks(model, noisy),
                            RestoreSettings(upscale=1.0, detect=DetectOptions(min_eye_distance=0.0, max_faces=4)),
                            batch_size=2)
    # bounded work: hundreds of boxes survive NMS (16800 before, PRE_NMS_TOP_K kept), but only the 4 kept faces
    # are warped and restored
    assert rows[0] > 500
    assert len(result.faces) == 4 and len(warped) == 4 and result.crops.shape[0] == result.restored.shape[0] == 4
    assert sum(model.module.batches) == 4 and max(model.module.batches) <= 2
    assert result.images[0].image.shape == (300, 400, 3)


def test_flooding_detector_is_capped_without_max_faces(tmp_path, caplog):
    noisy = load_detector(many_boxes_detector(tmp_path / "many.pth"))
    image = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    with caplog.at_level(logging.WARNING):
        found = find_faces(noisy, [image], DetectOptions(min_eye_distance=0.0))
        faces, crops = found.faces, found.crops
    assert len(faces) == detect.FACE_LIMIT and crops.shape[0] == detect.FACE_LIMIT
    assert "keeping the 256 most confident" in caplog.text


def test_alignment_maps_landmarks_onto_template():
    angle, scale, shift = np.deg2rad(17), 0.37, np.array([412.0, 95.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    landmarks = (FFHQ_TEMPLATE_512 @ rot.T + shift).astype(np.float32)
    affine = estimate_affine(landmarks)
    warped = landmarks @ affine[:, :2].T + affine[:, 2]
    assert np.abs(warped - FFHQ_TEMPLATE_512).max() < 1.0


def test_source_geometry_is_in_source_pixels(models):
    """A small photo is detected in its enlarged working image; ``source_box`` and ``source_landmarks`` put the
    faces back on the photo itself: the same photo at twice the size (no enlargement) gives twice the values."""
    import cv2

    small = read_rgb("whole_00.jpg")  # 491x310: worked on at 512/310 = 1.65x
    large = cv2.resize(small, (982, 620), interpolation=cv2.INTER_LINEAR)  # short side >= 512: worked on as it is
    a, b = find_faces(models.detector, [small]).faces, find_faces(models.detector, [large]).faces
    assert len(a) == len(b) == 4 and a.faces[0].working_scale > 1.6 and b.faces[0].working_scale == 1.0
    for fa, fb in zip(a.faces, b.faces):
        assert np.abs(2 * np.array(fa.source_box) - np.array(fb.source_box)).max() < 6
        assert np.abs(2 * fa.source_landmarks - fb.source_landmarks).max() < 6
        assert fb.source_box == fb.box


def test_real_faces_align_near_template(models):
    found = find_faces(models.detector, [read_rgb("whole_02.png")])
    faces, crops = found.faces, found.crops
    for face in faces.faces:
        warped = face.landmarks @ face.affine[:, :2].T + face.affine[:, 2]
        assert np.linalg.norm(warped - FFHQ_TEMPLATE_512, axis=1).mean() < 12  # a similarity fit of a real face
    assert crops.shape == (4, 512, 512, 3) and crops.dtype == np.uint8


@pytest.mark.parametrize("scale", [1.0, 1.5, 2.0])  # at 1.5 the output is 1806x968: 968/645 is not 1.5
def test_round_trip_of_unrestored_crops(models, scale):
    image = read_rgb("whole_02.png")
    found = find_faces(models.detector, [image])
    faces, crops = found.faces, found.crops
    background = upscale_backgrounds([image], scale)[0]
    result = paste_back([background], faces, crops)[0]
    inside = result.mask > 0.5
    assert inside.mean() > 0.01
    assert psnr(result.image[inside], background[inside]) > 35
    assert result.image.shape == background.shape


def test_batch_equals_images_alone(models):
    images = [read_rgb("whole_00.jpg"), read_rgb("whole_02.png"), np.full((300, 400, 3), 90, np.uint8)]
    found = find_faces(models.detector, images)
    together, crops = found.faces, found.crops
    assert [len(together.for_image(i)) for i in range(3)] == [4, 4, 0]
    outs = paste_back(images, together, crops)
    for i, image in enumerate(images):
        found = find_faces(models.detector, [image])
        alone, alone_crops = found.faces, found.crops
        positions = [p for p, _ in together.for_image(i)]
        np.testing.assert_array_equal(crops[positions], alone_crops)
        np.testing.assert_array_equal(outs[i].image, paste_back([image], alone, alone_crops)[0].image)


class _RecordingParser(torch.nn.Module):
    """ParseNet stand-in: class 1 (skin) in the middle of the crop, 0 elsewhere; records its batch sizes."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    def forward(self, x: torch.Tensor):
        self.batches.append(int(x.shape[0]))
        logits = torch.zeros(x.shape[0], 19, *x.shape[2:])
        logits[:, 1, 128:384, 128:384] = 1.0
        return logits, None


def test_faces_of_all_images_are_parsed_together(models, monkeypatch):
    from codeformer import parse

    images = [read_rgb("whole_00.jpg"), np.full((300, 400, 3), 90, np.uint8), read_rgb("whole_02.png")]
    found = find_faces(models.detector, images)
    faces, crops = found.faces, found.crops
    parser = FaceParser(module=_RecordingParser(), path=Path("fake_parser.pth"))
    outs = paste_back(images, faces, crops, parser=parser)
    assert parser.module.batches == [1] * 8  # the CPU runs one face per call
    parser.module.batches.clear()
    monkeypatch.setattr(parse, "auto_batch_size", lambda device, bf16: 32)  # as on a GPU with room for 32
    outs = paste_back(images, faces, crops, parser=parser)
    assert parser.module.batches == [8]  # 4 + 0 + 4 faces in one ParseNet batch
    for i in (0, 2):
        found = find_faces(models.detector, [images[i]])
        alone, alone_crops = found.faces, found.crops
        np.testing.assert_array_equal(outs[i].image, paste_back([images[i]], alone, alone_crops, parser=parser)[0].image)
    np.testing.assert_array_equal(outs[1].image, images[1].astype(np.float32))


def test_no_face_passes_through(models):
    image = np.random.default_rng(1).integers(0, 256, (200, 260, 3), dtype=np.uint8)
    found = find_faces(models.detector, [image])
    faces, crops = found.faces, found.crops
    assert len(faces) == 0 and crops.shape == (0, 512, 512, 3)
    out = paste_back([image], faces, crops)[0]
    np.testing.assert_array_equal(out.image, image.astype(np.float32))
    assert not out.mask.any()


def test_paste_region_equals_whole_image_warp(models):
    """Warping only each face's footprint gives the official whole-image result."""
    import cv2

    image = read_rgb("whole_02.png")
    found = find_faces(models.detector, [image], DetectOptions(max_faces=1))
    faces, crops = found.faces, found.crops
    face, crop, s = faces.faces[0], crops[0], 2.0
    bg = upscale_backgrounds([image], s)[0]
    out, _ = paste_faces(bg, [FacePlacement(crop, face.inverse)], s)
    # the official steps over the whole image
    h, w = bg.shape[:2]
    m = face.inverse * s
    m[:, 2] += 0.5 * s
    restored = cv2.warpAffine(crop, m, (w, h))
    mask = cv2.warpAffine(np.ones((512, 512), np.float32), m, (w, h))
    mask = cv2.erode(mask, np.ones((4, 4), np.uint8))
    pasted = mask[:, :, None] * restored
    edge = int(np.sum(mask) ** 0.5) // 20
    mask = cv2.erode(mask, np.ones((2 * edge, 2 * edge), np.uint8))
    soft = cv2.GaussianBlur(mask, (2 * edge + 1, 2 * edge + 1), 0)[:, :, None]
    expected = soft * pasted + (1 - soft) * bg
    # warpAffine quantises coordinates to 1/32 px from the matrix's translation, so a shifted region can round
    # a handful of pixels one level differently; nothing more
    diff = np.abs(out - expected)
    assert diff.max() <= 1.0 and (diff > 0.5).mean() < 1e-4


def test_background_of_another_picture_is_refused(models):
    image = read_rgb("whole_02.png")
    found = find_faces(models.detector, [image], DetectOptions(max_faces=1))
    faces, crops = found.faces, found.crops
    wrong = np.zeros((image.shape[0], image.shape[1] * 2, 3), np.uint8)  # same width ratio? no: twice as wide
    with pytest.raises(ValueError, match="not the same picture"):
        paste_back([wrong], faces, crops)


def test_by_image_groups_faces_as_for_image(models):
    images = [read_rgb("whole_00.jpg"), np.full((300, 400, 3), 90, np.uint8), read_rgb("whole_02.png")]
    faces = find_faces(models.detector, images).faces
    assert faces.by_image() == [faces.for_image(i) for i in range(3)]
    assert [len(group) for group in faces.by_image()] == [4, 0, 4]
