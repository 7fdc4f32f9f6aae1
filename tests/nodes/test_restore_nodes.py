"""Restore / upsample / paste nodes and the one-node restore (nodes.restore_nodes), after Face Detect.

The graphs run the tiny CodeFormer and parser (``tiny_networks``: spandrel's CodeFormer forward over small blocks,
ParseNet's contract), milliseconds a face where the full-size random-weight networks take ~12 s here: the subject is
the nodes and the graphs, and the node loaders are tested on the full-size files in test_loaders. Elsewhere a stand-in
(``fake``) replaces CodeFormer, and where a test is not about detection either, flat images skip the detector network
(``fast_detect``): a flat image has no face.
"""

from __future__ import annotations

import logging
import sys
from types import SimpleNamespace

import comfy.model_management
import comfy.utils
import cv2
import numpy as np
import pytest
import spandrel
import torch
from helpers import DETECT, psnr
from tiny_networks import tiny_model, tiny_parser

FIDELITY = 1.0
DETECT_BEST = {**DETECT, "max_faces": 1}  # the best face only


class _Stop(Exception):
    """Raised from a forward pre-hook once the inputs of the network have been seen."""


@pytest.fixture(scope="module")
def models(nodes, lib, comfy_models):
    codeformer, parser = tiny_model(), tiny_parser()
    (detector,) = nodes["CodeFormerFaceDetectorLoader"]().load("retinaface_mobile0.25")
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
    faces, crops, face_mask, count = nodes["CodeFormerFaceDetect"]().detect(source, m["detector"], **DETECT_BEST)
    crops_before = crops.clone()
    (restored,) = nodes["CodeFormerRestore"]().restore(m["codeformer"], crops, FIDELITY, detected_faces=faces)
    restore_bars = [b.history for b in comfy.utils.bars]
    (background,) = nodes["CodeFormerBackgroundUpsample"]().upsample(source, 2.0, 400, upscale_model=m["upscaler"])
    image, mask = nodes["CodeFormerPasteBack"]().paste(background, faces, restored, 1.0, 1.0, "auto",
                                                       face_parser=m["parser"], upscale_model=m["upscaler"])
    one = nodes["CodeFormerFaceRestore"]().restore(source, m["codeformer"], m["detector"], FIDELITY, 2.0, True,
                                                   "auto", **DETECT_BEST, upscale_model=m["upscaler"],
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


def test_modular_graph_equals_one_node_at_a_non_integer_scale(nodes, models, source, graphs):
    """At 1.5 the 491x310 source comes out 736x465 (736.5 rounded to even) through both graphs alike."""
    m = models
    (background,) = nodes["CodeFormerBackgroundUpsample"]().upsample(source, 1.5, 400, upscale_model=m["upscaler"])
    image, mask = nodes["CodeFormerPasteBack"]().paste(background, graphs["faces"], graphs["restored"], 1.0, 1.0,
                                                       "auto", face_parser=m["parser"], upscale_model=m["upscaler"])
    one, one_mask, count = nodes["CodeFormerFaceRestore"]().restore(
        source, m["codeformer"], m["detector"], FIDELITY, 1.5, True, "auto", **DETECT_BEST,
        upscale_model=m["upscaler"], face_parser=m["parser"])
    assert count == 1 and image.shape == one.shape == (1, 465, 736, 3)
    assert torch.equal(image, one) and torch.equal(mask, one_mask)


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
                                                                    0.5, 1.0, True, "auto", **DETECT_BEST)
    assert n == 0 and torch.equal(one, image) and float(one_mask.sum()) == 0.0
    assert "no upscale_model" in caplog.text
    assert torch.equal(image, before)
    # an RGBA input comes out RGB, as it does when faces are pasted
    rgba = torch.cat([image, torch.full_like(image[..., :1], 0.25)], dim=-1)
    out, _ = nodes["CodeFormerPasteBack"]().paste(rgba, faces, restored, 1.0, 1.0, "auto")
    assert torch.equal(out, image)
    one, _, _ = nodes["CodeFormerFaceRestore"]().restore(rgba, models["codeformer"], models["detector"], 0.5, 1.0,
                                                         False, "off", **DETECT_BEST)
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
                                             "off", **DETECT_BEST, upscale_model=models["upscaler"])
    assert models["upscaler"].model not in loaded()
    mm.calls.clear()
    nodes["CodeFormerFaceRestore"]().restore(image, models["codeformer"], models["detector"], 0.5, 1.0, True,
                                             "off", **DETECT_BEST, upscale_model=models["upscaler"])
    assert models["upscaler"].model in loaded()


def test_interrupt_propagates(nodes, models, graphs, source, no_network):
    interrupted = comfy.model_management.InterruptProcessingException
    calls = [
        lambda: nodes["CodeFormerRestore"]().restore(models["codeformer"], graphs["crops"], 0.5),
        lambda: nodes["CodeFormerFaceDetect"]().detect(source, models["detector"], **DETECT_BEST),
        lambda: nodes["CodeFormerBackgroundUpsample"]().upsample(source, 2.0, 64, upscale_model=models["upscaler"]),
        lambda: nodes["CodeFormerFaceRestore"]().restore(source, models["codeformer"], models["detector"], 0.5, 2.0,
                                                         False, "off", **DETECT_BEST),
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
        nodes["CodeFormerFaceDetect"]().detect(image, models["detector"], **DETECT_BEST)
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
    faces, crops, _, count = nodes["CodeFormerFaceDetect"]().detect(source, models["detector"], **DETECT_BEST)
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


@pytest.fixture()
def fast_detect(lib, monkeypatch):
    """Skip the detector network on flat images (no face possible); returns the list of real network calls."""
    real = lib.detect._retinaface
    calls = []

    def retinaface(det, bgr, *args):
        if float(bgr.std()) < 1.0:
            return np.zeros((0, 15), np.float32)
        calls.append(bgr.shape)
        return real(det, bgr, *args)

    monkeypatch.setattr(lib.detect, "_retinaface", retinaface)
    return calls


def run_graph(nodes, image, model, detector, upscale=2.0, **detect):
    """Detect -> Restore -> Background Upsample (bilinear) -> Paste Back, and the one-node restore."""
    options = {**DETECT, **detect}
    faces, crops, face_mask, count = nodes["CodeFormerFaceDetect"]().detect(image=image, detector=detector, **options)
    (restored,) = nodes["CodeFormerRestore"]().restore(model=model, faces=crops, fidelity=0.5, detected_faces=faces)
    (background,) = nodes["CodeFormerBackgroundUpsample"]().upsample(image=image, scale=upscale, tile=400)
    pasted, mask = nodes["CodeFormerPasteBack"]().paste(background=background, faces=faces, restored_faces=restored,
                                                        visibility=1.0, feather=1.0, face_upsample="off")
    one = nodes["CodeFormerFaceRestore"]().restore(image=image, model=model, detector=detector, fidelity=0.5,
                                                   upscale=upscale, background_enhance=False, face_upsample="off",
                                                   **options)
    return SimpleNamespace(faces=faces, crops=crops, face_mask=face_mask, count=count, restored=restored,
                           background=background, pasted=pasted, mask=mask, one=one)


def assert_small_source_paths_agree(g) -> None:
    """Sources with a short side under 512: the one-node builds its plain background from the enlarged image, as
    the official code does; the modular graph enlarges its upsampled original. Same masks, pixels nearly."""
    one, one_mask, _ = g.one
    assert psnr(one.numpy() * 255, g.pasted.numpy() * 255) > 35
    assert torch.equal(one_mask, g.mask)


def thumbnail(photo, size):
    """whole_01.jpg (5 faces) shrunk to ``size`` (w, h)."""
    return cv2.resize(photo("whole_01.jpg"), size, interpolation=cv2.INTER_AREA)


@pytest.mark.parametrize("shape", [(1, 1), (8, 8), (16, 4096), (4096, 16)])
def test_extreme_sizes_through_the_nodes(nodes, detector, fake, as_image, fast_detect, shape):
    image = as_image(np.full((*shape, 3), 100, np.uint8))
    before = image.clone()
    g = run_graph(nodes, image, fake(), detector)
    h2, w2 = shape[0] * 2, shape[1] * 2
    assert g.count == 0 and g.crops.shape == (1, 512, 512, 3) and g.face_mask.shape == (1, *shape)
    assert g.pasted.shape == (1, h2, w2, 3) and torch.equal(g.pasted, g.background)
    one, one_mask, n = g.one
    assert n == 0 and one.shape == (1, h2, w2, 3) and one_mask.shape == (1, h2, w2)
    assert torch.equal(one, g.background)
    assert torch.equal(image, before)


def test_rgba_and_one_channel_images(nodes, pack, detector, fake, photo, as_image):
    rgb = photo("whole_01.jpg")
    alpha = np.random.default_rng(0).integers(0, 256, (*rgb.shape[:2], 1), dtype=np.uint8)
    rgba = as_image(np.concatenate([rgb, alpha], -1))
    faces, crops, _, count = nodes["CodeFormerFaceDetect"]().detect(image=rgba, detector=detector, **DETECT)
    assert count >= 4 and crops.shape == (count, 512, 512, 3)
    assert np.array_equal(pack.nodes.convert.image_to_numpy(rgba)[0], rgb)  # alpha is ignored
    out, _ = nodes["CodeFormerPasteBack"]().paste(background=rgba, faces=faces, restored_faces=crops, visibility=1.0,
                                                  feather=1.0, face_upsample="off")
    assert out.shape == (1, *rgb.shape[:2], 3)

    gray = as_image(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[:, :, None])  # [1, H, W, 1]
    image, mask, n = nodes["CodeFormerFaceRestore"]().restore(
        image=gray, model=fake(shift=0.4), detector=detector, fidelity=0.5, upscale=1.0, background_enhance=False,
        face_upsample="off", **{**DETECT, "max_faces": 2})
    assert n == 2 and image.shape == (1, *rgb.shape[:2], 3) and float(mask.max()) > 0.5
    assert float((image[..., 0] - image[..., 2]).abs().max()) <= 1.5 / 255  # comes back gray (see the lib test)


def test_nan_through_the_nodes(nodes, detector, fake, as_image):
    image = as_image(np.full((20, 30, 3), 120, np.uint8))
    image[0, 3, 4, 1] = float("nan")
    with pytest.raises(ValueError, match=r"^image: image 0 of the batch has 1 NaN"):
        nodes["CodeFormerFaceDetect"]().detect(image=image, detector=detector, **DETECT)
    with pytest.raises(ValueError, match="NaN.*--fp32-vae"):
        nodes["CodeFormerFaceRestore"]().restore(image=image, model=fake(), detector=detector, fidelity=0.5,
                                                 upscale=1.0, background_enhance=False, face_upsample="off", **DETECT)


def test_batch_of_64_small_images(nodes, detector, fake, photo, as_image, fast_detect):
    face = thumbnail(photo, (64, 48))
    arrays = [np.full((48, 64, 3), 3 * i, np.uint8) for i in range(64)]
    arrays[40] = face
    image = as_image(*arrays)
    model = fake()
    g = run_graph(nodes, image, model, detector, upscale=2.0)
    assert g.count >= 3 and len(fast_detect) == 2  # one photo, detected by the node and by the one-node
    assert {f.source_index for f in g.faces.faces} == {40}
    assert g.face_mask.shape == (64, 48, 64) and float(g.face_mask[[0, 6, 63]].sum()) == 0.0
    assert g.restored.shape == (g.count, 512, 512, 3)
    one, one_mask, n = g.one
    assert n == g.count and one.shape == g.pasted.shape == (64, 96, 128, 3)
    assert_small_source_paths_agree(g)
    plain = [i for i in range(64) if i != 40]
    assert torch.equal(g.pasted[plain], g.background[plain])  # images without faces pass through
    assert float(g.mask[40].max()) > 0.5 and float(g.mask[plain].max()) == 0.0
    assert sum(model.module.batches) == 2 * g.count  # each face restored once per graph


def test_long_batch_runs_a_few_images_at_a_time(nodes, lib, detector, fake, photo, as_image, monkeypatch):
    """A long batch (video frames) goes through the one-node in runs sized by output pixels: the same images,
    masks and face count as in one run, and one progress bar that only moves forward to its end."""
    import comfy.utils

    frames = [thumbnail(photo, (64, 48)), np.full((48, 64, 3), 40, np.uint8), thumbnail(photo, (64, 48))[:, ::-1]]
    image = as_image(*frames)

    def one_node():
        comfy.utils.bars.clear()
        return nodes["CodeFormerFaceRestore"]().restore(image, fake(shift=0.3), detector, 0.5, 2.0, False, "off",
                                                        **DETECT)

    whole, whole_mask, whole_count = one_node()
    assert lib.parts.images_per_part((48, 64), 2.0) >= 3  # one run
    calls = []
    real = lib.parts.restore_images
    monkeypatch.setattr(lib.parts, "restore_images",
                        lambda images, *args, **kw: calls.append(len(images)) or real(images, *args, **kw))
    monkeypatch.setattr(lib.parts, "PIXELS_PER_PART", 96 * 128 * 2)  # two output images per run
    runs, runs_mask, runs_count = one_node()
    assert calls == [2, 1] and whole_count == runs_count > 0
    assert torch.equal(runs, whole) and torch.equal(runs_mask, whole_mask)
    history = comfy.utils.bars[0].history
    assert len(comfy.utils.bars) == 1 and history[-1] == (1000, 1000)
    assert [d for d, _ in history] == sorted(d for d, _ in history)
    # Paste Faces Back pastes a long batch a few images at a time too (the faces of each part re-numbered)
    faces, crops, _, _ = nodes["CodeFormerFaceDetect"]().detect(image, detector, **DETECT)
    (restored,) = nodes["CodeFormerRestore"]().restore(fake(shift=0.3), crops, 0.5, detected_faces=faces)
    paste = nodes["CodeFormerPasteBack"]().paste
    monkeypatch.setattr(lib.parts, "PIXELS_PER_PART", 10**9)
    whole = paste(image, faces, restored, 1.0, 1.0, "off")
    monkeypatch.setattr(lib.parts, "PIXELS_PER_PART", 48 * 64)  # one image per run
    parts = paste(image, faces, restored, 1.0, 1.0, "off")
    assert {f.source_index for f in faces.faces} == {0, 2} and float(whole[1][0].max()) > 0.5
    assert torch.equal(parts[0], whole[0]) and torch.equal(parts[1], whole[1])


def test_faces_cut_by_the_border_through_the_nodes(nodes, detector, fake, photo, as_image):
    image = as_image(photo("whole_02.png", box=(200, 120, 760, 500)))  # faces cut by the left and top edges
    g = run_graph(nodes, image, fake(), detector)
    assert g.count >= 3
    one, one_mask, n = g.one
    assert n == g.count and g.pasted.shape == one.shape == (1, 760, 1120, 3)
    assert_small_source_paths_agree(g)
    assert float(g.mask[0, 0].max()) > 0 and float(g.mask[0, :, 0].max()) > 0  # pasted up to the edges


def test_cancel_in_the_one_node_stops_before_the_next_image(nodes, detector, fake, photo, as_image, fast_detect,
                                                            monkeypatch):
    interrupted = comfy.model_management.InterruptProcessingException
    checks = []

    def throw_if_interrupted():
        checks.append(1)
        if len(checks) == 2:
            raise interrupted()

    monkeypatch.setattr(comfy.model_management, "throw_exception_if_processing_interrupted", throw_if_interrupted)
    face = thumbnail(photo, (64, 48))
    model = fake()
    with pytest.raises(interrupted):
        nodes["CodeFormerFaceRestore"]().restore(image=as_image(face, face, face), model=model, detector=detector,
                                                 fidelity=0.5, upscale=1.0, background_enhance=False,
                                                 face_upsample="off", **DETECT)
    assert len(fast_detect) == 1 and model.module.batches == []  # one image detected, nothing restored


def test_out_of_memory_in_the_restore_node(nodes, lib, fake, monkeypatch):
    monkeypatch.setattr(lib.runtime, "CPU_BATCH", 8)  # batches of several faces, as on a GPU
    crops = torch.rand(3, 512, 512, 3)
    (expected,) = nodes["CodeFormerRestore"]().restore(model=fake(), faces=crops, fidelity=0.5)
    model = fake(oom_above=1)
    (out,) = nodes["CodeFormerRestore"]().restore(model=model, faces=crops, fidelity=0.5)
    assert model.module.batches[-3:] == [1, 1, 1] and max(model.module.batches) == 3
    assert torch.equal(out, expected)
    with pytest.raises(lib.errors.OutOfMemory, match="out of memory running CodeFormer.*free memory"):
        nodes["CodeFormerRestore"]().restore(model=fake(oom_above=0), faces=crops, fidelity=0.5)
