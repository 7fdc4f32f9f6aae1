"""Reliability matrix through the ComfyUI nodes: odd IMAGE tensors, big batches, hostile detector output, cancel,
out-of-memory, several detectors in one graph, broken model files in the loader nodes.

CodeFormer is replaced by a tiny stand-in network (these rows are not about it). Where a row is not about
detection either, flat images skip the detector network (``fast_detect``): a flat image has no face.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from types import SimpleNamespace

import comfy.model_management
import cv2
import folder_paths
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import weights
from helpers import FakeCodeFormer, many_boxes_detector, psnr

DETECT = dict(confidence=0.8, min_eye_distance=10.0, selection="all", max_faces=0)


@pytest.fixture()
def fake(lib):
    """``fake(**kwargs)``: a CODEFORMER_MODEL whose network is a FakeCodeFormer."""

    def make(**kwargs):
        return lib.types.CodeFormerModel(descriptor=SimpleNamespace(model=FakeCodeFormer(**kwargs)),
                                         path=Path("fake.pth"))

    return make


@pytest.fixture(scope="module")
def detector(nodes, comfy_models):
    (det,) = nodes["CodeFormerFaceDetectorLoader"]().load("retinaface_mobile0.25")
    return det


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


# ---------------------------------------------------------------------------------------------- images


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


def test_no_face_is_logged(nodes, detector, as_image, caplog):
    y, x = np.mgrid[0:60, 0:90]
    image = as_image(np.stack([x * 2, y * 4, np.full_like(x, 70)], -1).astype(np.uint8))
    with caplog.at_level(logging.INFO):
        _, crops, mask, count = nodes["CodeFormerFaceDetect"]().detect(image=image, detector=detector, **DETECT)
    assert count == 0 and float(crops.abs().sum()) == 0.0 and float(mask.sum()) == 0.0
    assert "image 0: 0 face(s) found, 0 kept" in caplog.text


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


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(h=st.integers(1, 64), w=st.integers(1, 64), channels=st.sampled_from([1, 2, 3, 4]),
       low=st.floats(-5, 1), high=st.floats(0, 5), seed=st.integers(0, 2**16), inf=st.booleans())
def test_image_to_numpy_any_shape_and_range(pack, h, w, channels, low, high, seed, inf):
    convert = pack.nodes.convert
    values = np.random.default_rng(seed).uniform(low, max(low, high), (2, h, w, channels)).astype(np.float32)
    if inf:
        values[0, 0, 0, 0], values[-1, -1, -1, -1] = np.inf, -np.inf
    image = torch.from_numpy(values.copy())
    out = convert.image_to_numpy(image)
    rgb = values[..., :3] if channels >= 3 else np.repeat(values[..., :1], 3, axis=-1)
    expected = (np.clip(rgb, 0, 1) * np.float32(255)).round().astype(np.uint8)  # clamped, not refused
    assert len(out) == 2 and all(o.shape == (h, w, 3) and o.dtype == np.uint8 for o in out)
    np.testing.assert_array_equal(np.stack(out), expected)
    assert np.array_equal(image.numpy(), values, equal_nan=True)  # the input is never modified


@settings(max_examples=15, deadline=None)
@given(b=st.integers(1, 3), h=st.integers(1, 32), w=st.integers(1, 32), where=st.integers(0, 10**6))
def test_nan_is_refused_naming_the_input(pack, b, h, w, where):
    values = torch.rand(b, h, w, 3)
    values.view(-1)[where % values.numel()] = float("nan")
    bad = (where % values.numel()) // (h * w * 3)
    with pytest.raises(ValueError) as info:
        pack.nodes.convert.image_to_numpy(values, "background")
    msg = str(info.value)
    assert msg.startswith("background:") and f"image {bad} of the batch has 1 NaN" in msg and "fp32" in msg


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
    assert lib.parts.images_per_run((48, 64), 2.0) >= 3  # one run
    calls = []
    real = lib.parts.restore_images
    monkeypatch.setattr(lib.parts, "restore_images",
                        lambda images, *args, **kw: calls.append(len(images)) or real(images, *args, **kw))
    monkeypatch.setattr(lib.parts, "PIXELS_PER_RUN", 96 * 128 * 2)  # two output images per run
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
    monkeypatch.setattr(lib.parts, "PIXELS_PER_RUN", 10**9)
    whole = paste(image, faces, restored, 1.0, 1.0, "off")
    monkeypatch.setattr(lib.parts, "PIXELS_PER_RUN", 48 * 64)  # one image per run
    parts = paste(image, faces, restored, 1.0, 1.0, "off")
    assert {f.source_index for f in faces.faces} == {0, 2} and float(whole[1][0].max()) > 0.5
    assert torch.equal(parts[0], whole[0]) and torch.equal(parts[1], whole[1])


# ---------------------------------------------------------------------------------------------- detection


def test_selection_out_of_range_names_the_fix(nodes, detector, photo, as_image):
    with pytest.raises(ValueError, match=r"face selection '0,9' asks for face index 9, but only 5 face\(s\).*"
                                         r"use 'all' or indices below 5"):
        nodes["CodeFormerFaceDetect"]().detect(image=as_image(photo("whole_01.jpg")), detector=detector,
                                               **{**DETECT, "selection": "0,9"})


def test_faces_cut_by_the_border_through_the_nodes(nodes, detector, fake, photo, as_image):
    image = as_image(photo("whole_02.png", box=(200, 120, 760, 500)))  # faces cut by the left and top edges
    g = run_graph(nodes, image, fake(), detector)
    assert g.count >= 3
    one, one_mask, n = g.one
    assert n == g.count and g.pasted.shape == one.shape == (1, 760, 1120, 3)
    assert_small_source_paths_agree(g)
    assert float(g.mask[0, 0].max()) > 0 and float(g.mask[0, :, 0].max()) > 0  # pasted up to the edges


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


# ---------------------------------------------------------------------------------------------- runtime


def test_cancel_between_faces_stops_promptly(pack, lib, fake, monkeypatch):
    interrupted = comfy.model_management.InterruptProcessingException
    checks = []

    def throw_if_interrupted():
        checks.append(1)
        if len(checks) == 2:  # the user presses Cancel while the first face is being restored
            raise interrupted()

    monkeypatch.setattr(comfy.model_management, "throw_exception_if_processing_interrupted", throw_if_interrupted)
    model = fake()
    crops = np.zeros((6, 512, 512, 3), np.uint8)
    with pytest.raises(interrupted):
        lib.restore.restore_faces(model, crops, batch_size=1, check_interrupt=pack.nodes.device.check_interrupt)
    assert model.module.batches == [1]


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


# ---------------------------------------------------------------------------------------------- loader nodes


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('code ran')",))


@pytest.fixture()
def folders(monkeypatch, tmp_path):
    """Empty facerestore_models / facedetection folders registered for this test only."""
    made = {}
    for key in ("facerestore_models", "facedetection"):
        folder = tmp_path / key
        folder.mkdir()
        monkeypatch.setitem(folder_paths.folder_names_and_paths, key,
                            ([str(folder)], folder_paths.supported_pt_extensions))
        made[key] = folder
    return made


LOADER_NODES = [
    ("CodeFormerModelLoader", "facerestore_models", "bad.pth"),
    ("CodeFormerFaceDetectorLoader", "facedetection", "bad_detector.pth"),
    ("CodeFormerFaceParserLoader", "facedetection", "parsing_bad.pth"),
]


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
@pytest.mark.parametrize("kind", ["evil-zip", "evil-raw", "zero", "html"])
@pytest.mark.parametrize(("node", "key", "name"), LOADER_NODES)
def test_loader_nodes_refuse_broken_and_hostile_files(nodes, lib, folders, tmp_path, node, key, name, kind):
    marker = tmp_path / "marker"
    path = folders[key] / name
    if kind == "evil-zip":
        torch.save({"params_ema": {"w": torch.zeros(1)}, "x": _Evil(marker)}, path)
    elif kind == "evil-raw":
        path.write_bytes(pickle.dumps(_Evil(marker)))
    elif kind == "zero":
        path.write_bytes(b"")
    else:
        path.write_text("<html><body>Too many requests</body></html>")
    with pytest.raises(lib.models.ModelFileError) as info:
        nodes[node]().load(name)
    msg = str(info.value)
    assert name in msg and str(path) in msg
    if kind.startswith("evil"):
        assert "unsafe" in msg and "Nothing in it was executed" in msg
    else:
        assert "re-download" in msg
    assert not marker.exists()


def test_loader_nodes_refuse_other_architectures(nodes, lib, folders, comfy_models):
    (folders["facerestore_models"] / "looks_like_codeformer.pth").symlink_to(
        comfy_models / "upscale_models" / "RealESRGAN_x2plus.pth")
    with pytest.raises(lib.models.ModelFileError) as info:
        nodes["CodeFormerModelLoader"]().load("looks_like_codeformer.pth")
    msg = str(info.value)
    assert "looks_like_codeformer.pth" in msg and "not a CodeFormer checkpoint" in msg and "ESRGAN" in msg
    assert lib.models.KNOWN_FILES["codeformer.pth"].url in msg and "facerestore_models" in msg

    (folders["facedetection"] / "parsing_other.pth").symlink_to(weights.REAL_DETECTOR)
    with pytest.raises(lib.models.ModelFileError, match="parsing_other.pth.*RetinaFace face detector, not a "
                                                              "face parser.*parsing_parsenet.pth"):
        nodes["CodeFormerFaceParserLoader"]().load("parsing_other.pth")


def test_missing_model_names_folder_file_and_url(nodes, lib, folders, monkeypatch):
    monkeypatch.setenv("CODEFORMER_OFFLINE", "1")
    with pytest.raises(lib.models.ModelDownloadError) as info:
        nodes["CodeFormerModelLoader"]().load("codeformer.pth")
    msg = str(info.value)
    assert lib.models.KNOWN_FILES["codeformer.pth"].url in msg
    assert str(folders["facerestore_models"] / "codeformer.pth") in msg and "models/facerestore_models" in msg
    assert list(folders["facerestore_models"].iterdir()) == []
