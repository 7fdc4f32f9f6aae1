"""nodes.face_nodes (Face Detect): no face, selection errors, a flooding detector, two detectors in one graph."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
import weights
from helpers import DETECT, many_boxes_detector


def test_no_face_is_logged(nodes, detector, as_image, caplog):
    y, x = np.mgrid[0:60, 0:90]
    image = as_image(np.stack([x * 2, y * 4, np.full_like(x, 70)], -1).astype(np.uint8))
    with caplog.at_level(logging.INFO):
        _, crops, mask, count = nodes["CodeFormerFaceDetect"]().detect(image=image, detector=detector, **DETECT)
    assert count == 0 and float(crops.abs().sum()) == 0.0 and float(mask.sum()) == 0.0
    assert "image 0: 0 face(s) kept" in caplog.text


def test_selection_out_of_range_names_the_fix(nodes, detector, photo, as_image):
    with pytest.raises(ValueError, match=r"face selection '0,9' asks for face index 9, but only 5 face\(s\).*"
                                         r"use 'all' or indices below 5"):
        nodes["CodeFormerFaceDetect"]().detect(image=as_image(photo("whole_01.jpg")), detector=detector,
                                               **{**DETECT, "selection": "0,9"})


def test_thousands_of_boxes_are_capped_by_max_faces(nodes, lib, as_image, tmp_path):
    noisy = lib.models.load_detector(many_boxes_detector(tmp_path / "many.pth"))
    image = as_image(np.random.default_rng(0).integers(0, 256, (200, 300, 3), dtype=np.uint8))
    faces, crops, mask, count = nodes["CodeFormerFaceDetect"]().detect(
        image=image, detector=noisy, **{**DETECT, "min_eye_distance": 0.0, "max_faces": 4})
    assert count == 4 and crops.shape == (4, 512, 512, 3) and mask.shape == (1, 200, 300)


def test_two_detectors_in_one_graph_share_no_state(nodes, lib, detector, photo, as_image, tmp_path):
    sd = lib.models.load_state_dict(weights.REAL_DETECTOR)
    for key in [k for k in sd if k.startswith("BboxHead") and k.endswith("bias")]:
        sd[key] = sd[key] + 0.5  # boxes shifted and enlarged: a different detector
    other = lib.models.load_detector(weights.save_pth(sd, tmp_path / "shifted.pth"))
    image = as_image(photo("whole_01.jpg"))
    detect = nodes["CodeFormerFaceDetect"]().detect
    runs = [detect(image=image, detector=d, **DETECT) for d in (detector, other, detector, other)]
    (a1, ca1, ma1, _), (b1, cb1, mb1, _), (a2, ca2, ma2, _), (b2, cb2, mb2, _) = runs
    assert [f.box for f in a1.faces] == [f.box for f in a2.faces] and torch.equal(ca1, ca2) and torch.equal(ma1, ma2)
    assert [f.box for f in b1.faces] == [f.box for f in b2.faces] and torch.equal(cb1, cb2) and torch.equal(mb1, mb2)
    assert [f.box for f in a1.faces] != [f.box for f in b1.faces]
