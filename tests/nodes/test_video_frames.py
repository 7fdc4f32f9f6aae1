"""The video_frames option of the nodes: tracks on FACES, the modular graph equal to the one-node, off by default.

The graphs run the tiny CodeFormer (``tiny_networks``): their subject is the plumbing, which is the same for the
full-size network (loaded through the node in test_restore_nodes) at seconds a face.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import spandrel
import torch
from helpers import DETECT
from tiny_networks import tiny_model

LARGEST = {**DETECT, "selection": "largest"}  # whole_01 has 5 faces; one per frame keeps this file fast


@pytest.fixture(scope="module")
def frames(photo, as_image):
    """Two frames of a photo panned by a pixel and a half."""
    image = photo("whole_01.jpg")
    h, w = image.shape[:2]
    moved = cv2.warpAffine(image, np.float32([[1, 0, 1.5], [0, 1, 0.75]]), (w, h), borderMode=cv2.BORDER_REFLECT)
    return as_image(image, moved)


@pytest.fixture(scope="module")
def models(nodes, lib, comfy_models):
    codeformer = tiny_model()
    (detector,) = nodes["CodeFormerFaceDetectorLoader"]().load("retinaface_mobile0.25")
    # What core's Load Upscale Model returns: the two graphs paste on the same upscaled background only with one
    sd = lib.models.load_state_dict(comfy_models / "upscale_models" / "RealESRGAN_x2plus.pth")
    return codeformer, detector, spandrel.ModelLoader().load_from_state_dict(sd).eval()


def test_tracks_travel_on_faces_only_when_asked(nodes, models, frames):
    _, detector, _ = models
    detect = nodes["CodeFormerFaceDetect"]()
    tracked, crops, _, count = detect.detect(frames, detector, **LARGEST, video_frames=True)
    still, still_crops, _, _ = detect.detect(frames, detector, **LARGEST)
    assert count == 2 and [f.track for f in tracked.faces] == [0, 0]
    assert [f.track for f in still.faces] == [None, None]  # off by default: a batch is not a clip
    assert crops.shape == still_crops.shape == (2, 512, 512, 3)


def test_modular_graph_equals_the_one_node_on_video_frames(nodes, models, frames):
    codeformer, detector, upscaler = models
    faces, crops, _, _ = nodes["CodeFormerFaceDetect"]().detect(frames, detector, **LARGEST, video_frames=True)
    (restored,) = nodes["CodeFormerRestore"]().restore(codeformer, crops, 0.7, detected_faces=faces, code_window=3)
    (background,) = nodes["CodeFormerBackgroundUpsample"]().upsample(frames, 1.0, 400, upscale_model=upscaler)
    image, mask = nodes["CodeFormerPasteBack"]().paste(background, faces, restored, 1.0, 1.0, "off")
    one, one_mask, count = nodes["CodeFormerFaceRestore"]().restore(
        frames, codeformer, detector, 0.7, 1.0, True, "off", **LARGEST, upscale_model=upscaler, video_frames=True,
        code_window=3)
    assert count == 2 and one.shape == frames.shape
    assert torch.equal(image, one) and torch.equal(mask, one_mask)
