"""Reliability matrix (library): every bad input gives a correct result or an error naming input and fix.

The command line's rows are in test_cli*.py, one file per module of ``codeformer.cli``.

CodeFormer itself is replaced by a tiny stand-in network wherever the row is not about it (the real one costs
~5 s per face on CPU); detection runs the real RetinaFace mobilenet0.25 unless a row says otherwise.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import weights
from helpers import fake_model, gradient, many_boxes_detector, psnr, read_rgb
from hypothesis import given, settings
from hypothesis import strategies as st

from codeformer import detect
from codeformer import faces as finding
from codeformer.align import FFHQ_TEMPLATE_512, estimate_affine, invert_affine
from codeformer.cli.images import read_image
from codeformer.errors import OutOfMemory
from codeformer.geometry import MAX_WORKING_SIDE, working_scale, working_size
from codeformer.image import is_gray
from codeformer.models import load_detector
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

ROOT = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def detector():
    return load_detector(weights.REAL_DETECTOR)


# ---------------------------------------------------------------------------------------------- images


def test_no_face_image_is_unchanged_and_logged(detector, caplog):
    image = gradient(120, 160)
    model = fake_model()
    with caplog.at_level(logging.INFO, logger="codeformer"):
        result = restore_images([image], Networks(model, detector), RestoreSettings(upscale=1.0))
    assert len(result.faces) == 0 and result.crops.shape == (0, 512, 512, 3) and len(result.restored) == 0
    np.testing.assert_array_equal(result.images[0].image, image.astype(np.float32))
    assert not result.images[0].mask.any()
    assert model.module.batches == []  # nothing to restore: the network never ran
    assert "image 0: 0 face(s) found, 0 kept" in caplog.text


@pytest.mark.parametrize(("size", "scale", "working"), [
    ((1, 1), 512.0, (512, 512)),
    ((8, 8), 64.0, (512, 512)),
    ((310, 491), 512 / 310, (512, 811)),  # a normal small photo: official enlargement
    ((64, 512), 8.0, (512, 4096)),  # 8:1, the longest strip enlarged as officially
    ((300, 3000), MAX_WORKING_SIDE / 3000, (410, 4096)),  # longer: enlarged until the long side is 4096
    ((16, 4096), 1.0, (16, 4096)),  # officially 512x131072
    ((4096, 16), 1.0, (4096, 16)),
    ((645, 1204), 1.0, (645, 1204)),  # short side >= 512: never enlarged
])
def test_working_scale_is_official_up_to_8_to_1_and_capped_beyond(size, scale, working):
    assert working_scale(size) == pytest.approx(scale)
    assert working_size(size) == working


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


def test_4096_image_background_x2_tiled_has_bounded_memory(tmp_path):
    """Measured in a fresh process so that ``ru_maxrss`` counts this upscale alone (plus torch itself).

    Linux copies a process's peak RSS into a child at fork + exec, so the interpreter forks once more before
    importing anything and the work runs in that grandchild, whose ``ru_maxrss`` starts from a few MiB.
    """
    script = f"""
import json, os, sys
read, write = os.pipe()
if os.fork():
    os.close(write)
    with os.fdopen(read) as f:
        sys.stdout.write(f.read())
    sys.exit(os.waitstatus_to_exitcode(os.wait()[1]))
os.close(read)
try:
    import resource, time
    sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / 'tests')!r}]
    import numpy as np, torch
    from spandrel.architectures.Compact import Compact
    import weights
    from codeformer import models, upsample
    torch.manual_seed(0)
    net = Compact(num_in_ch=3, num_out_ch=3, num_feat=4, num_conv=1, upscale=2)
    model = models.load_upscaler(weights.save_pth(net.state_dict(), __import__('pathlib').Path({
        str(tmp_path / 'compact_x2.pth')!r})))
    image = np.random.default_rng(0).integers(0, 256, (4096, 4096, 3), dtype=np.uint8)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    out = upsample.upscale_image(model, image, 2.0, tile=1024)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with os.fdopen(write, "w") as f:
        f.write(json.dumps(dict(shape=out.shape, dtype=str(out.dtype), seconds=time.perf_counter() - start,
                                before_mib=before / 1024, peak_mib=peak / 1024)))
    os._exit(0)
except BaseException:
    import traceback
    traceback.print_exc()
    os._exit(1)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    line = (f"4096x4096 -> 8192x8192 (x2, 1024 px tiles): peak RSS {result['peak_mib']:.0f} MiB "
            f"(before the upscale {result['before_mib']:.0f} MiB), {result['seconds']:.1f} s")
    logging.getLogger(__name__).warning(line)
    print(line)
    assert result["shape"] == [8192, 8192, 3] and result["dtype"] == "uint8"
    # The input is 48 MiB and the output 192 MiB (uint8); a float32 copy of the output alone would be 768 MiB and
    # the former whole-image float tensors peaked at ~2.6 GiB above the imports.
    assert result["peak_mib"] - result["before_mib"] < 1024, line
    assert result["peak_mib"] < 3072, line


# ---------------------------------------------------------------------------------------------- detection


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


# ---------------------------------------------------------------------------------------------- runtime


def test_cancel_between_faces_stops_after_one_batch():
    model = fake_model()
    checks = []

    def check_interrupt():
        checks.append(1)
        if len(checks) == 2:
            raise KeyboardInterrupt  # stands in for ComfyUI's InterruptProcessingException (see the node tests)

    crops = np.zeros((5, 512, 512, 3), np.uint8)
    with pytest.raises(KeyboardInterrupt):
        restore_faces(model, crops, batch_size=1, check_interrupt=check_interrupt)
    assert model.module.batches == [1]


def test_out_of_memory_in_restore_retries_smaller_then_fails_with_advice():
    crops = np.random.default_rng(0).integers(0, 256, (3, 512, 512, 3), dtype=np.uint8)
    expected = restore_faces(fake_model(), crops, batch_size=4)
    model = fake_model(oom_above=1)
    out = restore_faces(model, crops, batch_size=4)
    assert model.module.batches == [3, 2, 1, 1, 1]  # 4 -> 2 -> 1 on out-of-memory
    np.testing.assert_array_equal(out, expected)
    with pytest.raises(OutOfMemory) as info:
        restore_faces(fake_model(oom_above=0), crops, batch_size=4)
    msg = str(info.value)
    assert "CodeFormer" in msg and "free memory" in msg and "CPU" in msg
    assert isinstance(info.value.__cause__, torch.OutOfMemoryError)
    assert isinstance(info.value, torch.OutOfMemoryError)  # ComfyUI unloads its models on these


# ---------------------------------------------------------------------------------------------- host memory


def test_available_host_memory_reads_meminfo(tmp_path):
    from codeformer.runtime import available_host_memory

    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:  1000 kB\nMemAvailable:  600 kB\nSwapTotal: 50 kB\nSwapFree:  40 kB\n")
    assert available_host_memory(meminfo) == 640 * 1024
    meminfo.write_text("MemTotal:  1000 kB\n")  # an old kernel without MemAvailable
    assert available_host_memory(meminfo) is None
    assert available_host_memory(tmp_path / "missing") is None


