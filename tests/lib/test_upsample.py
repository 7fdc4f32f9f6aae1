"""Background upsampling: exact output sizes, tiling equals the whole-image run, OOM fallback."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from codeformer import upsample
from codeformer.runtime import OutOfMemory


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
    assert upsample.auto_tile("cpu", (3000, 4000), 2, bf16=True) == upsample.DEFAULT_TILE
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


def test_tile_zero_is_auto(x4_model, photo, monkeypatch):
    seen = []
    real = upsample._tiled
    monkeypatch.setattr(upsample, "_tiled", lambda net, x, scale, tile, *a: seen.append(tile) or real(net, x, scale, tile, *a))
    upsample.upscale_image(x4_model, photo, 4.0)
    assert seen == [upsample.DEFAULT_TILE]  # on the CPU

