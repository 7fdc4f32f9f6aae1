"""Detect / restore / upsample / paste nodes and the one-node restore, on a real photo with random-weight models.

The full CodeFormer network runs on three faces in this file (CPU: ~5 s each): the modular graph, the one-node
restore (same face, same settings) and one more fidelity.
"""

from __future__ import annotations

import logging
import sys

import comfy.model_management
import comfy.utils
import numpy as np
import pytest
import spandrel
import torch

FIDELITY = 1.0
DETECT = dict(confidence=0.8, min_eye_distance=10.0, selection="all", max_faces=1)


class _Stop(Exception):
    """Raised from a forward pre-hook once the inputs of the network have been seen."""


@pytest.fixture(scope="module")
def models(nodes, lib, comfy_models):
    (codeformer,) = nodes["CodeFormerModelLoader"]().load("codeformer.pth")
    (detector,) = nodes["CodeFormerFaceDetectorLoader"]().load("retinaface_mobile0.25")
    (parser,) = nodes["CodeFormerFaceParserLoader"]().load("parsing_parsenet.pth")
    # What core's Load Upscale Model returns: a spandrel ImageModelDescriptor from the global registry.
    sd = lib.models.load_state_dict(comfy_models / "upscale_models" / "RealESRGAN_x2plus.pth")
    upscaler = spandrel.ModelLoader().load_from_state_dict(sd).eval()
    return dict(codeformer=codeformer, detector=detector, parser=parser, upscaler=upscaler)


@pytest.fixture(scope="module")
def source(photo, as_image):
    return as_image(photo("whole_00.jpg"))  # 491x310, 4 faces; max_faces=1 keeps the best one


@pytest.fixture(scope="module")
def graphs(nodes, models, source):
    """The modular graph and the one-node restore with the same settings, plus what they were given."""
    original = source.clone()
    m = models
    faces, crops, face_mask, count = nodes["CodeFormerFaceDetect"]().detect(source, m["detector"], **DETECT)
    crops_before = crops.clone()
    (restored,) = nodes["CodeFormerRestore"]().restore(m["codeformer"], crops, FIDELITY, detected_faces=faces)
    restore_bars = [b.history for b in comfy.utils.bars]
    (background,) = nodes["CodeFormerBackgroundUpsample"]().upsample(source, 2.0, 400, upscale_model=m["upscaler"])
    image, mask = nodes["CodeFormerPasteBack"]().paste(background, faces, restored, 1.0, 1.0, "auto",
                                                       face_parser=m["parser"], upscale_model=m["upscaler"])
    one = nodes["CodeFormerFaceRestore"]().restore(source, m["codeformer"], m["detector"], FIDELITY, 2.0, True,
                                                   "auto", **DETECT, upscale_model=m["upscaler"],
                                                   face_parser=m["parser"])
    return dict(faces=faces, crops=crops, face_mask=face_mask, count=count, restored=restored, image=image,
                mask=mask, one=one, original=original, crops_before=crops_before, restore_bars=restore_bars)


def test_modular_graph_equals_one_node(graphs):
    image, mask, count = graphs["one"]
    assert count == graphs["count"] == 1
    assert image.shape == (1, 620, 982, 3) and image.dtype == torch.float32
    assert torch.equal(graphs["image"], image)
    assert torch.equal(graphs["mask"], mask)
    assert 0.0 < float(mask.max()) <= 1.0 and float(mask.min()) == 0.0


def test_detect_outputs(graphs, source):
    faces, crops, face_mask = graphs["faces"], graphs["crops"], graphs["face_mask"]
    assert len(faces) == 1 and faces.source_sizes == ((310, 491),)
    assert crops.shape == (1, 512, 512, 3) and crops.dtype == torch.float32
    assert face_mask.shape == (1, 310, 491)
    x0, y0, x1, y1 = faces.faces[0].source_box
    assert float(face_mask[0, int(y0 + y1) // 2, int(x0 + x1) // 2]) == 1.0
    assert float(face_mask.mean()) < 0.1
    assert graphs["restored"].shape == (1, 512, 512, 3)
    assert graphs["restore_bars"][-1][-1] == (1, 1)  # the restore node drove a progress bar to its end


def test_nodes_do_not_modify_inputs(graphs, source):
    assert torch.equal(source, graphs["original"])
    assert torch.equal(graphs["crops"], graphs["crops_before"])


def test_fidelity_reaches_the_network(nodes, models, graphs):
    net = models["codeformer"].module
    seen = []

    def record(module, args, kwargs):
        seen.append(kwargs.get("weight"))

    handle = net.register_forward_pre_hook(record, with_kwargs=True)
    try:
        (low,) = nodes["CodeFormerRestore"]().restore(models["codeformer"], graphs["crops"], 0.0,
                                                      detected_faces=graphs["faces"])
    finally:
        handle.remove()
    assert seen == [0.0]
    assert not torch.equal(low, graphs["restored"])  # w=0 vs w=1

    def stop(module, args, kwargs):
        seen.append(kwargs.get("weight"))
        raise _Stop

    handle = net.register_forward_pre_hook(stop, with_kwargs=True)
    try:
        with pytest.raises(_Stop):  # also without FACES (gray flag measured on the crop)
            nodes["CodeFormerRestore"]().restore(models["codeformer"], graphs["crops"], 0.37)
    finally:
        handle.remove()
    assert seen[-1] == pytest.approx(0.37)


@pytest.fixture()
def no_network(models):
    """Fail the test if CodeFormer runs."""

    def boom(module, args):
        raise AssertionError("CodeFormer ran although there was nothing to restore")

    handle = models["codeformer"].module.register_forward_pre_hook(boom)
    yield
    handle.remove()


def test_image_without_faces_passes_through(nodes, models, as_image, caplog, no_network):
    y, x = np.mgrid[0:48, 0:80]
    flat = np.stack([x * 3, y * 5, np.full_like(x, 90)], axis=-1).astype(np.uint8)
    image = as_image(flat)
    before = image.clone()
    faces, crops, face_mask, count = nodes["CodeFormerFaceDetect"]().detect(image, models["detector"], 0.8, 10.0,
                                                                           "all", 0)
    assert count == 0 and len(faces) == 0
    assert crops.shape == (1, 512, 512, 3) and float(crops.abs().sum()) == 0.0
    assert face_mask.shape == (1, 48, 80) and float(face_mask.sum()) == 0.0
    (restored,) = nodes["CodeFormerRestore"]().restore(models["codeformer"], crops, 0.5, detected_faces=faces)
    assert restored.shape == (1, 512, 512, 3)
    out, mask = nodes["CodeFormerPasteBack"]().paste(image, faces, restored, 1.0, 1.0, "auto")
    assert torch.equal(out, image) and mask.shape == (1, 48, 80) and float(mask.sum()) == 0.0
    with caplog.at_level(logging.WARNING):
        one, one_mask, n = nodes["CodeFormerFaceRestore"]().restore(image, models["codeformer"], models["detector"],
                                                                    0.5, 1.0, True, "auto", **DETECT)
    assert n == 0 and torch.equal(one, image) and float(one_mask.sum()) == 0.0
    assert "no upscale_model" in caplog.text
    assert torch.equal(image, before)
    # an RGBA input comes out RGB, as it does when faces are pasted
    rgba = torch.cat([image, torch.full_like(image[..., :1], 0.25)], dim=-1)
    out, _ = nodes["CodeFormerPasteBack"]().paste(rgba, faces, restored, 1.0, 1.0, "auto")
    assert torch.equal(out, image)
    one, _, _ = nodes["CodeFormerFaceRestore"]().restore(rgba, models["codeformer"], models["detector"], 0.5, 1.0,
                                                         False, "off", **DETECT)
    assert torch.equal(one, image)
    # the checks of the path with faces: values clamped, NaN refused, one background per detected image
    bright = image.clone()
    bright[0, 0, 0] = 1.5
    out, _ = nodes["CodeFormerPasteBack"]().paste(bright, faces, restored, 1.0, 1.0, "auto")
    assert float(out.max()) == 1.0 and torch.equal(out[0, 1:], image[0, 1:])
    broken = image.clone()
    broken[0, 3, 3, 1] = float("nan")
    with pytest.raises(ValueError, match="background: image 0 of the batch has 1 NaN"):
        nodes["CodeFormerPasteBack"]().paste(broken, faces, restored, 1.0, 1.0, "auto")
    with pytest.raises(ValueError, match="2 background image.* from 1 image"):
        nodes["CodeFormerPasteBack"]().paste(image.repeat(2, 1, 1, 1), faces, restored, 1.0, 1.0, "auto")


def test_upscaler_is_loaded_only_when_used(nodes, models, as_image, no_network):
    """An upscale_model connected but switched off (face_upsample off, no background enhance) is not put on the
    device: it would take memory from other models for nothing."""
    mm = comfy.model_management
    image = as_image(np.full((40, 40, 3), 128, np.uint8))
    faces, crops, _, _ = nodes["CodeFormerFaceDetect"]().detect(image, models["detector"], 0.8, 10.0, "all", 0)

    def loaded() -> list:
        return [p.model.net for c in mm.calls if c[0] == "load_models_gpu" for p in c[1]]

    nodes["CodeFormerFaceRestore"]().restore(image, models["codeformer"], models["detector"], 0.5, 1.0, False,
                                             "off", **DETECT, upscale_model=models["upscaler"])
    assert models["upscaler"].model not in loaded()
    mm.calls.clear()
    nodes["CodeFormerFaceRestore"]().restore(image, models["codeformer"], models["detector"], 0.5, 1.0, True,
                                             "off", **DETECT, upscale_model=models["upscaler"])
    assert models["upscaler"].model in loaded()


def test_interrupt_propagates(nodes, models, graphs, source, no_network):
    interrupted = comfy.model_management.InterruptProcessingException
    calls = [
        lambda: nodes["CodeFormerRestore"]().restore(models["codeformer"], graphs["crops"], 0.5),
        lambda: nodes["CodeFormerFaceDetect"]().detect(source, models["detector"], **DETECT),
        lambda: nodes["CodeFormerBackgroundUpsample"]().upsample(source, 2.0, 64, upscale_model=models["upscaler"]),
        lambda: nodes["CodeFormerFaceRestore"]().restore(source, models["codeformer"], models["detector"], 0.5, 2.0,
                                                         False, "off", **DETECT),
    ]
    for call in calls:
        comfy.model_management.interrupt_current_processing()
        with pytest.raises(interrupted):
            call()
        assert not comfy.model_management.processing_interrupted()


def test_background_upsample_sizes_and_tiles(nodes, models, as_image):
    rng = np.random.default_rng(1)
    image = as_image(*rng.integers(0, 256, (2, 30, 41, 3), dtype=np.uint8))
    before = image.clone()
    (plain,) = nodes["CodeFormerBackgroundUpsample"]().upsample(image, 1.55, 400)
    assert plain.shape == (2, round(30 * 1.55), round(41 * 1.55), 3)
    (tiled,) = nodes["CodeFormerBackgroundUpsample"]().upsample(image, 2.0, 16, upscale_model=models["upscaler"])
    (whole,) = nodes["CodeFormerBackgroundUpsample"]().upsample(image, 2.0, 0, upscale_model=models["upscaler"])
    assert tiled.shape == whole.shape == (2, 60, 82, 3)
    assert (tiled - whole).abs().max() <= 2 / 255  # tiles with context give (nearly) the whole-image result
    history = comfy.utils.bars[0].history  # 2x3 tiles per image, counted over the batch of two
    assert [d for d, _ in history] == list(range(1, 13)) and {t for _, t in history} == {12}
    assert torch.equal(image, before)


def test_models_are_loaded_through_comfy_memory_management(nodes, models, as_image):
    """Every run hands ComfyUI the same ModelPatcher per network (ComfyUI tracks loaded models by patcher), whole
    (plain torch layers cannot be partly loaded), with room for activations; nothing is moved back afterwards."""
    mm = comfy.model_management
    image = as_image(np.full((20, 24, 3), 128, np.uint8))
    runs = []
    for _ in range(2):
        mm.calls.clear()
        nodes["CodeFormerBackgroundUpsample"]().upsample(image, 2.0, 0, upscale_model=models["upscaler"])
        nodes["CodeFormerFaceDetect"]().detect(image, models["detector"], **DETECT)
        loads = [c for c in mm.calls if c[0] == "load_models_gpu"]
        assert [len(c[1]) for c in loads] == [1, 1]
        assert all(c[2] >= 2**30 and c[3] is True for c in loads)
        runs.append([c[1][0] for c in loads])
    (up_patcher, det_patcher), second = runs
    assert second[0] is up_patcher and second[1] is det_patcher
    assert up_patcher.model.net is models["upscaler"].model and det_patcher.model.net is models["detector"].module
    assert up_patcher.load_device == torch.device("cpu") and mm.current_loaded_models[:2] == [det_patcher, up_patcher]


def test_networks_with_a_read_only_device_property_load(pack):
    """ComfyUI's ModelPatcher writes ``model.device`` on load; a network where that is a read-only property
    (spandrel's AuraSR) must still load, keeping its own property."""
    load_on_device = sys.modules[pack.__name__ + ".nodes.device"].load_on_device

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 3, 1)

        @property
        def device(self):
            return self.conv.weight.device

    net = Net()
    assert load_on_device(net) == torch.device("cpu")
    assert net.device == torch.device("cpu") and "device" not in net.__dict__


def test_modular_nodes_take_a_precision(nodes, models, as_image):
    image = as_image(np.random.default_rng(8).integers(0, 256, (24, 32, 3), dtype=np.uint8))
    for node in ("CodeFormerBackgroundUpsample", "CodeFormerPasteBack"):
        spec = nodes[node].INPUT_TYPES()["required"]
        assert list(spec)[-1] == "precision" and spec["precision"][0] == ["auto", "fp32", "bf16"]
    upsample = nodes["CodeFormerBackgroundUpsample"]().upsample
    (fp32,) = upsample(image, 2.0, 0, upscale_model=models["upscaler"], precision="fp32")
    (bf16,) = upsample(image, 2.0, 0, upscale_model=models["upscaler"], precision="bf16")
    assert fp32.shape == bf16.shape == (1, 48, 64, 3)
    assert 0 < float((fp32 - bf16).abs().mean()) < 2 / 255  # bf16 ran, and stayed close
    with pytest.raises(ValueError, match="auto, fp32, bf16"):
        upsample(image, 2.0, 0, upscale_model=models["upscaler"], precision="fp16")


def test_wiring_errors_name_the_fix(nodes, models, graphs, source):
    two = torch.cat([graphs["crops"], graphs["crops"]])
    with pytest.raises(ValueError, match="same CodeFormer Face Detect"):
        nodes["CodeFormerRestore"]().restore(models["codeformer"], two, 0.5, detected_faces=graphs["faces"])
    with pytest.raises(ValueError, match="restored face"):
        nodes["CodeFormerPasteBack"]().paste(source, graphs["faces"], two, 1.0, 1.0, "off")
    with pytest.raises(ValueError, match="not a background upscaler"):
        nodes["CodeFormerBackgroundUpsample"]().upsample(source, 2.0, 400,
                                                         upscale_model=models["codeformer"].descriptor)
    with pytest.raises(ValueError, match="face selection"):
        nodes["CodeFormerFaceDetect"]().detect(source, models["detector"], 0.8, 10.0, "left", 0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_gpu_and_models_stay_until_comfy_frees_memory(nodes, models, graphs, source):
    mm = comfy.model_management
    mm.torch_device = torch.device("cuda")
    faces, crops, _, count = nodes["CodeFormerFaceDetect"]().detect(source, models["detector"], **DETECT)
    assert count == 1 and crops.device.type == "cpu"
    (restored,) = nodes["CodeFormerRestore"]().restore(models["codeformer"], crops, FIDELITY, detected_faces=faces)
    (background,) = nodes["CodeFormerBackgroundUpsample"]().upsample(source, 2.0, 400, upscale_model=models["upscaler"])
    image, _mask = nodes["CodeFormerPasteBack"]().paste(background, faces, restored, 1.0, 1.0, "always",
                                                        face_parser=models["parser"], upscale_model=models["upscaler"])
    assert image.device.type == "cpu" and image.shape == graphs["image"].shape
    # bf16 autocast on the GPU: close to, not equal to, the CPU result
    assert float((image - graphs["image"]).abs().mean()) < 0.05
    networks = (models["codeformer"].module, models["detector"].module, models["parser"].module,
                models["upscaler"].model)
    assert all(next(m.parameters()).device.type == "cuda" for m in networks)  # kept for the next run
    mm.free_memory(1e30, mm.torch_device)  # what ComfyUI does when a checkpoint needs the room
    assert all(next(m.parameters()).device.type == "cpu" for m in networks)
