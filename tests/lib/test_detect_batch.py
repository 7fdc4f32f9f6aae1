"""detect_batch (RetinaFace on a batch of same-size frames) against detect_faces per frame, real detector, CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.clips import load_photo
from bench.detect_batch import batch_frames, deviation
from codeformer import detect
from codeformer.detect import detect_faces
from codeformer.detect_batch import detect_batch
from codeformer.errors import InputError

# The bar: boxes and landmarks within 0.5 px, scores within 1e-3 (measured: bench/measured/detect_batch.md).
PX = 0.5
SCORE = 1e-3


def check_same(detector, frames: list[np.ndarray], batched) -> None:
    """Every frame's batch detections equal its detect_faces ones: count, order, boxes, landmarks, scores."""
    assert len(batched) == len(frames)
    for frame, found in zip(frames, batched, strict=True):
        alone = detect_faces(detector, frame)
        worst = deviation(found, alone)  # raises on a different count
        assert worst["box"] <= PX and worst["landmarks"] <= PX and worst["score"] <= SCORE, worst
        assert all(d.landmarks.dtype == np.float32 and d.landmarks.shape == (5, 2) for d in found)
        assert [d.score for d in found] == sorted((d.score for d in found), reverse=True)


def test_shrinking_batch_with_a_frame_without_faces(detector):
    """whole_02 (645x1204, shrunk to 640): 2 shifted noisy frames and a flat gray one, chunks of 2 frames."""
    frames = batch_frames(load_photo("whole_02.png"), 2)
    frames.append(np.full_like(frames[0], 128))
    batched = detect_batch(detector, frames, chunk=2)
    assert [len(found) for found in batched] == [4, 4, 0]
    check_same(detector, frames, batched)


def test_enlarging_batch_as_tensors(detector):
    """whole_01's working image (512x672, enlarged to 640), as a uint8 tensor and as floats in 0..1."""
    frames = batch_frames(load_photo("whole_01.jpg"), 2)
    tensor = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)
    batched = detect_batch(detector, tensor)
    assert [len(found) for found in batched] == [5, 5]
    check_same(detector, frames, batched)
    as_floats = detect_batch(detector, tensor.float() / 255)
    assert all(deviation(a, b)["box"] == 0 for a, b in zip(as_floats, batched, strict=True))


def test_crowd_batch_of_one(detector):
    """crowd.jpg cut to 720x900 (shrunk to 640): dozens of faces, their NMS order kept."""
    frame = load_photo("crowd.jpg")[:720, :900]
    batched = detect_batch(detector, [frame])
    assert len(batched[0]) > 20
    check_same(detector, [frame], batched)


def test_out_of_memory_halves_the_chunk(detector, monkeypatch):
    """A chunk that runs out of memory is run again in halves, with the same detections."""
    frames = batch_frames(load_photo("whole_00.jpg"), 2)
    real = detect.retinaface_rows

    def small_memory(det, bgr, *args):
        if len(bgr) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory (test)")
        return real(det, bgr, *args)

    monkeypatch.setattr("codeformer.detect_batch.retinaface_rows", small_memory)
    check_same(detector, frames, detect_batch(detector, frames, chunk=2))


def test_frames_of_one_size_only(detector):
    with pytest.raises(InputError, match="one size"):
        detect_batch(detector, [np.zeros((64, 64, 3), np.uint8), np.zeros((64, 80, 3), np.uint8)])
    with pytest.raises(InputError, match=r"\[B, 3, H, W\]"):
        detect_batch(detector, torch.zeros(1, 64, 64, 3, dtype=torch.uint8))
    assert detect_batch(detector, []) == []
