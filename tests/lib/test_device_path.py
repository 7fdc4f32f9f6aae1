"""The device path (frames on the device from detection to paste) against the OpenCV path on the same inputs, on
the CPU with the device path forced (CODEFORMER_DEVICE_PATH=1). The issue's bar: detections within 0.5 px, crops
and final images within 1/255 mean and >= 45 dB PSNR; masks close."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch
from helpers import fake_model, gradient, psnr, read_rgb
from tiny_networks import tiny_model, tiny_parser

from bench.clips import load_photo, still_clip
from codeformer import canvas, pipeline, upsample
from codeformer.device_path import ENV_SWITCH, crops_on_device, find_faces_on_device, use_device_path
from codeformer.faces import DetectOptions
from codeformer.pipeline import Networks, PasteOptions, RestoreResult, RestoreSettings, restore_images
from codeformer.temporal import TemporalOptions, restore_clip, track_frames
from codeformer.tracking import TrackOptions
from codeformer.types import FACE_SIZE, Faces

PX = 0.5
MEAN = 1.0  # 1/255 in 0..255 units
DB = 45.0
MASK = 1 / 255  # mean difference of the pasted-area masks (0..1)
# The device path runs on the CPU here, forced; on a machine with CUDA (bench/gpu_run.sh) on the GPU as well.
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def both_paths(monkeypatch, images, networks, settings, device: str = "cpu") -> tuple[RestoreResult, RestoreResult]:
    """``restore_images`` on the CPU by the OpenCV path, then by the device path on ``device``."""
    monkeypatch.setenv(ENV_SWITCH, "0")
    opencv = restore_images(images, networks, settings)
    monkeypatch.setenv(ENV_SWITCH, "1")
    return opencv, restore_images(images, networks, settings, device=device)


def check_close(opencv: RestoreResult, device: RestoreResult) -> dict[str, float]:
    """Every bar of the issue, and the worst figures measured (printed with -s)."""
    assert len(opencv.faces) == len(device.faces)
    worst = {"px": 0.0, "crop_mean": 0.0, "crop_db": np.inf, "image_mean": 0.0, "image_db": np.inf, "mask": 0.0}
    for a, b in zip(opencv.faces.faces, device.faces.faces, strict=True):
        assert a.source_index == b.source_index and a.is_gray == b.is_gray
        worst["px"] = max(worst["px"], float(np.abs(a.landmarks - b.landmarks).max()),
                          float(np.abs(np.subtract(a.box, b.box)).max()))
    for a, b in zip(opencv.crops, device.crops, strict=True):
        worst["crop_mean"] = max(worst["crop_mean"], float(np.abs(a.astype(float) - b).mean()))
        worst["crop_db"] = min(worst["crop_db"], psnr(a, b))
    for a, b in zip(opencv.images, device.images, strict=True):
        assert a.image.shape == b.image.shape and a.mask.shape == b.mask.shape
        assert b.image.dtype == np.float32 and b.mask.dtype == np.float32
        worst["image_mean"] = max(worst["image_mean"], float(np.abs(a.image - b.image).mean()))
        worst["image_db"] = min(worst["image_db"], psnr(a.image, b.image))
        worst["mask"] = max(worst["mask"], float(np.abs(a.mask - b.mask).mean()))
    print(worst)
    assert worst["px"] <= PX
    assert worst["crop_mean"] <= MEAN and worst["crop_db"] >= DB
    assert worst["image_mean"] <= MEAN and worst["image_db"] >= DB
    assert worst["mask"] <= MASK
    return worst


def test_switch(monkeypatch):
    monkeypatch.delenv(ENV_SWITCH, raising=False)
    assert use_device_path("cuda") and not use_device_path("cpu") and not use_device_path("mps")
    monkeypatch.setenv(ENV_SWITCH, "1")
    assert use_device_path("cpu")
    monkeypatch.setenv(ENV_SWITCH, "0")
    assert not use_device_path("cuda")


@pytest.mark.parametrize("device_name", DEVICES)
@pytest.mark.parametrize("upscale", [1.0, 1.5, 2.0])
def test_photo_with_several_faces(detector, monkeypatch, upscale, device_name):
    """whole_02 (1204x645, 4 faces, working scale 1) and a frame without faces of its size, one batch."""
    photo = read_rgb("whole_02.png")
    images = [photo, gradient(*photo.shape[:2])]
    opencv, device = both_paths(monkeypatch, images, Networks(fake_model(), detector), RestoreSettings(upscale=upscale),
                                device_name)
    assert [len(members) for members in device.faces.by_image()] == [4, 0]
    check_close(opencv, device)


def test_with_the_parser(detector, monkeypatch):
    """Parser masks made and applied on the device, two faces with their own masks. The tiny parser (the full-size
    ParseNet costs ~4.5 s a face here) gives noisy class maps: many mask edges for the erosion and blur."""
    settings = RestoreSettings(upscale=2.0, paste=PasteOptions(feather=0.5, visibility=0.8),
                               detect=DetectOptions(max_faces=2))
    check_close(*both_paths(monkeypatch, [read_rgb("whole_02.png")], Networks(fake_model(), detector, tiny_parser()),
                            settings))


def test_small_image_with_background_enhance(detector, x4_model, monkeypatch, upscale=2.0):
    """whole_01 (248x189: working scale 2.7, enlarged on the device), background and every face upscaled by the
    random Real-ESRGAN x4, parsed by the tiny parser, the result fitted (area) to x2 (one scale; x1 takes the same
    fit)."""
    settings = RestoreSettings(upscale=upscale, background_enhance=True, paste=PasteOptions(face_upsample="always"),
                               detect=DetectOptions(max_faces=2))
    networks = Networks(fake_model(), detector, tiny_parser(), x4_model)
    check_close(*both_paths(monkeypatch, [read_rgb("whole_01.jpg")], networks, settings))


def test_small_image_plain_canvas(detector, monkeypatch):
    """whole_01 without an upscaler: the canvas is the working image resized on the device, then fitted (area)."""
    check_close(*both_paths(monkeypatch, [read_rgb("whole_01.jpg")], Networks(fake_model(), detector),
                            RestoreSettings(upscale=1.5)))


def test_codeformer_on_one_face(detector, monkeypatch):
    """CodeFormer (spandrel's forward, in the tiny network) takes the device crops as they are (a tensor, no host
    round trip)."""
    settings = RestoreSettings(upscale=2.0, detect=DetectOptions(selection="largest"))
    opencv, device = both_paths(monkeypatch, [read_rgb("whole_01.jpg")], Networks(tiny_model(), detector),
                                settings)
    assert len(device.faces) == 1
    check_close(opencv, device)


def test_found_faces_stay_on_the_device(detector):
    """The crops handed to CodeFormer are the device tensor; the host copy equals it."""
    found = find_faces_on_device(detector, [read_rgb("whole_01.jpg")], DetectOptions(), device="cpu")
    assert found.crops.dtype == torch.uint8 and found.crops.shape == (5, 3, 512, 512)
    np.testing.assert_array_equal(found.crops.permute(0, 2, 3, 1).numpy(), found.found.crops)
    assert found.working.shape[2:] == (512, 672) and found.frames.shape[2:] == (189, 248)
    empty = find_faces_on_device(detector, [], DetectOptions(), device="cpu")
    assert len(empty.found.faces) == 0 and empty.crops.shape == (0, 3, 512, 512)


@pytest.mark.parametrize("device_name", DEVICES)
def test_clip_with_temporal_processing(detector, monkeypatch, device_name):
    """``restore_clip`` with tracking, landmark smoothing, a filled miss and the face blend: the frames go to the
    device a detection batch at a time, are aligned and pasted there (one device paste per chunk), and match the
    OpenCV path. A restorer without code logits (a fake RestoreFormer: the crop, coloured) keeps it quick."""
    clip = still_clip(load_photo("whole_01.jpg"), 7, seed=1).frames
    clip[3] = np.full_like(clip[3], 128)  # the face is gone for a frame: tracking fills it in
    networks = Networks(fake_model(arch_id="RestoreFormer", shift=0.2), detector)
    settings = RestoreSettings(upscale=1.5, detect=DetectOptions(selection="largest"))
    temporal = TemporalOptions(frames_per_chunk=3)  # chunks and detection batches end inside the clip
    pastes = []
    real_paste = pipeline.paste_on_device
    monkeypatch.setattr(pipeline, "paste_on_device", lambda *a, **k: pastes.append(1) or real_paste(*a, **k))
    runs = []
    for switch, run_on in (("0", "cpu"), ("1", device_name)):
        monkeypatch.setenv(ENV_SWITCH, switch)
        runs.append(list(restore_clip(iter(clip), networks, settings, temporal, device=run_on)))
    assert len(pastes) == 3  # the device run: one paste per chunk of 3, 3, 1 frames
    opencv, device = (RestoreResult([f.image for f in run], Faces(tuple(face for f in run for face in f.faces.faces),
                                                                   tuple(f.image.image.shape[:2] for f in run)),
                                    np.concatenate([f.crops for f in run]), np.concatenate([f.restored for f in run]))
                      for run in runs)
    assert [f.index for f in runs[1]] == list(range(7))
    assert [[face.track for face in f.faces.faces] for f in runs[1]] == [[0]] * 7
    assert [face.score for face in device.faces.faces][3] == 0.0  # filled, not detected
    check_close(opencv, device)


def test_tracked_frames_stay_on_the_device(detector, monkeypatch):
    """On the device path each tracked frame keeps its source and working image on the device; its crops are the
    device warps' (the same frames on the OpenCV path carry none)."""
    clip = still_clip(load_photo("whole_01.jpg"), 3, seed=2).frames
    monkeypatch.setenv(ENV_SWITCH, "1")
    frames = list(track_frames(detector, clip, DetectOptions(selection="largest"), TrackOptions(), detect_frames=2))
    for frame in frames:
        assert frame.on_device is not None and frame.on_device.frames.shape == (1, 3, *clip[0].shape[:2])
        assert frame.on_device.working.shape[2] == 512  # enlarged there
        np.testing.assert_array_equal(frame.on_device.frames[0].permute(1, 2, 0).numpy(), frame.source)
        np.testing.assert_array_equal(crops_on_device(frame.on_device.working, [
            replace(face, source_index=0) for face in frame.found.faces.faces]).permute(0, 2, 3, 1).numpy(),
            frame.found.crops)
    monkeypatch.setenv(ENV_SWITCH, "0")
    assert all(frame.on_device is None for frame in track_frames(detector, clip, DetectOptions(), TrackOptions()))


def test_a_new_frame_size_starts_a_new_detection_batch(detector, monkeypatch):
    """Frames of two sizes in one detection batch: each run of one size goes to the device (and is detected) as a
    batch of its own, every frame keeps its own pixels and index."""
    small = still_clip(load_photo("whole_01.jpg"), 2, seed=3).frames
    large = still_clip(load_photo("whole_00.jpg"), 1, seed=3).frames
    clip = [small[0], large[0], small[1]]
    monkeypatch.setenv(ENV_SWITCH, "1")
    frames = list(track_frames(detector, clip, DetectOptions(selection="largest"), TrackOptions(landmark_sigma=0),
                               detect_frames=3))
    assert [frame.index for frame in frames] == [0, 1, 2]
    for frame, source in zip(frames, clip, strict=True):
        assert frame.on_device is not None
        np.testing.assert_array_equal(frame.on_device.frames[0].permute(1, 2, 0).numpy(), source)


def test_a_face_cut_by_the_edge_is_upsampled_only_where_it_shows(detector, x4_model, monkeypatch):
    """A close-up whose face crop reaches past the picture (a 512 px aligned face, shrunk): both paths run the
    upscaler over the part the paste shows only (``canvas.shown_part``), and still agree. Against upsampling the
    whole crop the pasted pixels move only where the tiny parser's mask does (it reads the whole upsampled face)."""
    computed = []
    real = upsample._forward

    def counting(model):
        net = real(model)
        return lambda x: computed.append(x.shape[-2] * x.shape[-1]) or net(x)

    monkeypatch.setattr(upsample, "_forward", counting)
    close_up = cv2.resize(read_rgb("aligned_0143.png")[:340, 150:], (181, 170), interpolation=cv2.INTER_AREA)
    settings = RestoreSettings(upscale=1.0, paste=PasteOptions(face_upsample="always"))
    networks = Networks(fake_model(), detector, tiny_parser(), x4_model)
    opencv, device = both_paths(monkeypatch, [close_up], networks, settings)
    check_close(opencv, device)
    faces = len(opencv.faces)
    assert faces >= 1 and computed[:faces] == computed[faces:]  # the same parts in both paths
    monkeypatch.setattr(canvas, "shown_part", lambda *args: None)
    monkeypatch.setenv(ENV_SWITCH, "0")
    whole = restore_images([close_up], networks, settings)
    assert computed[2 * faces:] == [FACE_SIZE**2] * faces and sum(computed[:faces]) < 0.8 * faces * FACE_SIZE**2
    assert psnr(whole.images[0].image, opencv.images[0].image) >= 60  # the upscaler's pixels are pasted, not the fill
