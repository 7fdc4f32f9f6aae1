"""IMAGE / MASK <-> numpy conversion at the node boundary."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


@pytest.fixture(scope="module")
def convert(pack):
    return pack.nodes.convert


def test_round_trip_is_exact(convert, as_image):
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (7, 5, 3), dtype=np.uint8) for _ in range(2)]
    image = as_image(*arrays)
    back = convert.image_to_numpy(image)
    assert len(back) == 2 and all(b.dtype == np.uint8 and b.shape == (7, 5, 3) for b in back)
    assert all(np.array_equal(a, b) for a, b in zip(arrays, back))
    again = convert.numpy_to_image(back)
    assert again.dtype == torch.float32 and again.device.type == "cpu"
    assert torch.equal(again, image)


def test_rgba_and_gray_inputs(convert):
    rgba = torch.rand(1, 4, 6, 4)
    gray = torch.rand(2, 4, 6, 1)
    rgba_before, gray_before = rgba.clone(), gray.clone()
    out = convert.image_to_numpy(rgba)[0]
    assert np.array_equal(out, convert.image_to_numpy(rgba[..., :3])[0])
    g = convert.image_to_numpy(gray)
    assert g[1].shape == (4, 6, 3) and np.array_equal(g[1][..., 0], g[1][..., 2])
    assert torch.equal(rgba, rgba_before) and torch.equal(gray, gray_before)


def test_out_of_range_and_other_dtypes(convert):
    x = torch.tensor([[[[-0.5, 0.5, 2.0]]]], dtype=torch.bfloat16)
    assert convert.image_to_numpy(x)[0].tolist() == [[[0, 128, 255]]]
    with pytest.raises(ValueError, match="IMAGE"):
        convert.image_to_numpy(torch.zeros(4, 4, 3))


def test_float_results_and_masks(convert, lib):
    result = np.full((2, 3, 3), 300.0, np.float32)
    result[0, 0] = 127.5
    image = convert.numpy_to_image([result])
    assert image.shape == (1, 2, 3, 3) and float(image.max()) == 1.0
    assert image[0, 0, 0, 0].item() == pytest.approx(0.5)
    batch = convert.ResultBatch(2)
    batch.fill(0, [lib.pipeline.PasteResult(result, np.full((2, 3), 0.25)),
                   lib.pipeline.PasteResult(result, np.ones((2, 3)))])
    _, mask = batch.outputs()
    assert mask.shape == (2, 2, 3) and mask.dtype == torch.float32


def test_conversion_in_place_equals_the_plain_arithmetic(convert):
    """Each image is converted in its slot of the output: same values as float32 / 255 then clip, inputs kept."""
    rng = np.random.default_rng(9)
    for dtype in (np.uint8, np.float32, np.float64):
        images = [(rng.random((5, 7, 3)) * 300 - 20).clip(0, 255).astype(dtype) if dtype == np.uint8
                  else (rng.random((5, 7, 3)) * 300 - 20).astype(dtype) for _ in range(3)]
        before = [i.copy() for i in images]
        expected = np.clip(np.stack([i.astype(np.float32) for i in images]) / np.float32(255.0), 0.0, 1.0)
        out = convert.numpy_to_image(images)
        assert out.dtype == torch.float32 and np.array_equal(out.numpy(), expected)
        assert all(np.array_equal(a, b) for a, b in zip(images, before))
    masks = [rng.random((5, 7)) * 1.4 - 0.2 for _ in range(2)]
    expected = np.clip(np.stack([m.astype(np.float32) for m in masks]), 0.0, 1.0)
    slots = np.empty((2, 5, 7), np.float32)
    convert.fill_mask(slots, masks)
    assert np.array_equal(slots, expected)


def test_box_masks_are_in_source_pixels(convert, lib):
    face = lib.types.Face(source_index=1, box=(10.0, 20.0, 31.0, 40.0), score=0.9, landmarks=np.zeros((5, 2)),
                          affine=np.zeros((2, 3)), inverse=np.zeros((2, 3)), source_size=(256, 300),
                          is_gray=False)
    assert face.working_scale == 2.0  # short side 256 -> 512
    faces = lib.types.Faces((face,), ((256, 300), (256, 300)))
    mask = convert.box_masks(faces)
    assert mask.shape == (2, 256, 300)
    assert float(mask[0].sum()) == 0.0
    expected = torch.zeros(256, 300)
    expected[10:20, 5:16] = 1.0  # working box / 2, outward to whole pixels
    assert torch.equal(mask[1], expected)


def test_placeholder(convert):
    p = convert.placeholder_faces()
    assert p.shape == (1, 512, 512, 3) and float(p.abs().sum()) == 0.0


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
