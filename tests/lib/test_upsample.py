"""Background upsampling: exact output sizes, tiling equals the whole-image run, OOM fallback, bounded memory."""

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

from codeformer import runtime, upsample
from codeformer.errors import OutOfMemory

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def photo():
    return np.random.default_rng(3).integers(0, 256, (97, 130, 3), dtype=np.uint8)


@pytest.mark.parametrize("scale", [1.0, 1.5, 2.0, 3.3, 4.0])
def test_plain_resize_sizes(photo, scale):
    out = upsample.upscale_image(None, photo, scale)
    assert out.shape == (round(97 * scale), round(130 * scale), 3) and out.dtype == np.uint8


def test_model_output_size_and_range(models, photo):
    out = upsample.upscale_image(models.upscaler, photo, 3.0)  # x2 model, then Lanczos to x3
    assert out.shape == (291, 390, 3) and out.dtype == np.uint8


def test_tiled_equals_untiled(x4_model, photo):
    whole = upsample.upscale_image(x4_model, photo, 4.0, tile=0)
    tiled = upsample.upscale_image(x4_model, photo, 4.0, tile=48)
    diff = np.abs(whole.astype(int) - tiled.astype(int))
    assert diff.max() <= 1  # float noise can flip a rounding, nothing more


def test_tile_halves_on_out_of_memory(x4_model, photo, monkeypatch):
    sizes = []
    real = upsample._tiled

    def fake(net, x, scale, tile, *args):
        sizes.append(tile)
        if tile > 64:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return real(net, x, scale, tile, *args)

    monkeypatch.setattr(upsample, "_tiled", fake)
    out = upsample.upscale_image(x4_model, photo, 4.0, tile=256)
    assert sizes == [256, 128, 64] and out.shape == (388, 520, 3)

    monkeypatch.setattr(upsample, "_tiled", lambda *a: (_ for _ in ()).throw(torch.OutOfMemoryError("out of memory")))
    with pytest.raises(OutOfMemory, match="out of memory upscaling"):
        upsample.upscale_image(x4_model, photo, 4.0, tile=256)


def test_auto_tile_from_free_gpu_memory(monkeypatch):
    monkeypatch.setattr(upsample, "cpu_has_amx", lambda: True)
    assert upsample.auto_tile("cpu", (3000, 4000), 2, bf16=True) == upsample.DEFAULT_TILE
    assert upsample.auto_tile("cpu", (512, 512), 2, bf16=True) == 512  # a restored face in bf16: whole
    assert upsample.auto_tile("cpu", (480, 600), 2, bf16=True) == upsample.DEFAULT_TILE
    assert upsample.auto_tile("cpu", (3000, 4000), 2, bf16=False) == upsample.CPU_LARGE_TILE  # channels_last
    assert upsample.auto_tile("cpu", (512, 512), 2, bf16=False, official=True) == upsample.DEFAULT_TILE  # fp32
    monkeypatch.setattr(upsample, "cpu_has_amx", lambda: False)  # bf16 with AVX512-BF16 alone: as flat as fp32
    assert upsample.auto_tile("cpu", (3000, 4000), 2, bf16=True) == upsample.CPU_LARGE_TILE
    gib = 2**30
    monkeypatch.setattr(upsample, "free_cuda_memory", lambda device: 8 * gib)
    side = upsample.auto_tile("cuda", (3000, 4000), 2, bf16=True)
    per_pixel = upsample.BYTES_PER_PIXEL[True] * 4 * upsample.GPU_MARGIN
    assert side % 8 == 0 and (side + 2 * upsample.TILE_PAD) ** 2 * per_pixel <= 0.8 * 8 * gib
    assert side > upsample.DEFAULT_TILE  # far fewer overlaps than the CPU's 400 px
    assert upsample.auto_tile("cuda", (3000, 4000), 4, bf16=False) < side  # x4 and fp32 need more per pixel
    assert upsample.auto_tile("cuda", (600, 900), 2, bf16=True) == 900  # fits: the whole image at once
    monkeypatch.setattr(upsample, "free_cuda_memory", lambda device: 0)
    assert upsample.auto_tile("cuda", (3000, 4000), 2, bf16=True) == upsample.MIN_TILE


@pytest.mark.parametrize("amx", [False, True])
def test_tile_zero_is_auto(x4_model, photo, monkeypatch, amx):
    seen = []
    real = upsample._tiled
    monkeypatch.setattr(upsample, "_tiled", lambda net, x, scale, tile, *a: seen.append(tile) or real(net, x, scale, tile, *a))
    monkeypatch.setattr(upsample, "cpu_has_amx", lambda: amx)
    monkeypatch.setattr(runtime, "cpu_runs_bf16_fast", lambda: amx)
    upsample.upscale_image(x4_model, photo, 4.0)
    upsample.upscale_image(x4_model, photo, 4.0, precision="fp32")
    # on the CPU: fp32 channels_last in large tiles, bf16 (with AMX) small images whole; fp32: the official tiles
    assert seen == [max(photo.shape[:2]) if amx else upsample.CPU_LARGE_TILE, upsample.DEFAULT_TILE]



def test_real_esrgan_runs_as_the_official_realesrganer(models, photo):
    """RRDB runs its network directly: it pads an odd size by reflection to a multiple of 2, as the official
    RealESRGANer does; spandrel's descriptor call would pad x2 models to a multiple of 4 (other edge pixels)."""
    model = models.upscaler
    assert model.architecture.id == "ESRGAN" and model.scale == 2
    x = torch.from_numpy(photo.astype(np.float32) / 255.0).permute(2, 0, 1)[None]  # 97 x 130: odd height
    ours = upsample.upscale_image(model, photo, 2.0, tile=0, precision="fp32")  # leaves the network in NCHW
    with torch.inference_mode():
        raw = model.model(x)
    expected = (raw.clamp(0, 1)[0].permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
    np.testing.assert_array_equal(ours, expected)


def _spandrel(net: torch.nn.Module):
    import spandrel

    return spandrel.ModelLoader().load_from_state_dict(net.state_dict())


@pytest.mark.parametrize("arch", ["SAFMN", "DRUNet"])
def test_other_architectures_run_through_their_descriptor(arch, photo):
    """Models with size requirements (SAFMN: multiples of 8) or a call of their own (DRUNet: a noise-level channel)
    give what ComfyUI core's upscale node gives: the descriptor's call, tiled or whole."""
    from spandrel.architectures.DRUNet import DRUNet
    from spandrel.architectures.SAFMN import SAFMN

    torch.manual_seed(0)
    net = SAFMN(dim=8, n_blocks=1, upscaling_factor=2) if arch == "SAFMN" else DRUNet(in_nc=4, out_nc=3, nc=[8, 16, 32, 64], nb=2)
    model = _spandrel(net)
    assert model.architecture.id != "ESRGAN"
    x = torch.from_numpy(photo.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    with torch.inference_mode():
        expected = (model(x)[0].permute(1, 2, 0).numpy() * 255.0).round()
    whole = upsample.upscale_image(model, photo, model.scale, tile=0, precision="fp32")
    assert whole.shape == expected.shape and np.abs(whole - expected).max() <= 1
    tiled = upsample.upscale_image(model, photo, model.scale, tile=48, precision="fp32")  # odd-sized edge tiles
    assert tiled.shape == expected.shape and np.abs(tiled.astype(int) - whole.astype(int)).mean() < 8


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


@pytest.mark.parametrize("length", [1, 47, 400, 401, 440, 441, 645, 1204, 1920])
def test_tile_spans_cover_the_side_once(length):
    for balanced in (False, True):
        spans = upsample.tile_spans(length, 400, balanced)
        assert spans[0][0] == 0 and spans[-1][1] == length
        assert all(a < b for a, b in spans) and all(spans[i][1] == spans[i + 1][0] for i in range(len(spans) - 1))
        assert max(b - a for a, b in spans) <= (440 if balanced else 400)


def test_balanced_tiles_save_the_sliver_tile():
    assert upsample.tile_spans(1204, 400, False) == [(0, 400), (400, 800), (800, 1200), (1200, 1204)]  # official
    assert upsample.tile_spans(1204, 400, True) == [(0, 401), (401, 803), (803, 1204)]
    assert upsample.tile_spans(645, 400, True) == [(0, 322), (322, 645)]
    assert upsample.tile_spans(440, 400, True) == [(0, 440)]


def test_balanced_grid_only_outside_fp32(x4_model, photo, monkeypatch):
    seen = []
    real = upsample._tiled

    def spy(net, x, scale, tile, device, bf16, fmt, on_progress, check_interrupt, balanced, region):
        seen.append(balanced)
        return real(net, x, scale, tile, device, bf16, fmt, on_progress, check_interrupt, balanced, region)

    monkeypatch.setattr(upsample, "_tiled", spy)
    balanced = upsample.upscale_image(x4_model, photo, 4.0, tile=48)
    upsample.upscale_image(x4_model, photo, 4.0, tile=48, precision="fp32")
    official_grid = upsample.upscale_image(x4_model, photo, 4.0, tile=48, balanced=False)
    assert seen == [True, False, False]
    assert np.abs(balanced.astype(int) - official_grid.astype(int)).max() <= 1  # tiles with context: float noise


@pytest.mark.parametrize("scale", [4.0, 3.0])  # the model's scale, and the model's output resized with Lanczos
def test_only_the_shown_part_is_computed_outside_fp32(x4_model, photo, monkeypatch, scale):
    """``shown``: the model runs over that part of the result only (with its tile context): the same pixels there
    (float noise aside), fewer computed, and a Lanczos resize of the image elsewhere; fp32 computes everything."""
    computed = []
    real = upsample._forward

    def counting(model):
        net = real(model)

        def run(x):
            computed.append(x.shape[-2] * x.shape[-1])
            return net(x)

        return run

    monkeypatch.setattr(upsample, "_forward", counting)
    shown = (40, 150, 160, 260)  # x0, y0, x1, y1 of the result (97x130 x scale)
    whole = upsample.upscale_image(x4_model, photo, scale)
    part = upsample.upscale_image(x4_model, photo, scale, shown=shown)
    assert sum(computed[1:]) < 0.7 * computed[0]
    x0, y0, x1, y1 = shown
    assert np.abs(whole[y0:y1, x0:x1].astype(int) - part[y0:y1, x0:x1].astype(int)).max() <= 1
    elsewhere = cv2.resize(cv2.resize(photo, (520, 388), interpolation=cv2.INTER_LANCZOS4), part.shape[1::-1],
                           interpolation=cv2.INTER_LANCZOS4) if scale != 4.0 else \
        cv2.resize(photo, (520, 388), interpolation=cv2.INTER_LANCZOS4)
    assert np.array_equal(part[:40, -60:], elsewhere[:40, -60:])  # far from the part shown
    computed.clear()
    official = [upsample.upscale_image(x4_model, photo, scale, precision="fp32", shown=box) for box in (None, shown)]
    assert np.array_equal(official[0], official[1]) and computed[0] == computed[1]


def test_the_model_region_of_a_shown_part():
    assert upsample.model_region((0, 0, 200, 100), (50, 100), (100, 200), 2) is None  # all of it
    assert upsample.model_region((20, 40, 120, 100), (50, 100), (100, 200), 2) == (9, 19, 61, 50)  # +-1 px
    # a x2 model's output resized to x3: Lanczos reads 4 model-output px on either side
    assert upsample.model_region((30, 60, 180, 150), (50, 100), (150, 300), 2) == (7, 17, 63, 50)
