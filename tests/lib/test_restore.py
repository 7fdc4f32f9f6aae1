"""CodeFormer restoration of aligned faces: formats, fidelity, batching, gray handling."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from helpers import fake_model, psnr, read_rgb

from codeformer.gray import restore_gray
from codeformer.restore import restore_faces


@pytest.fixture(scope="module")
def faces():
    return np.stack([read_rgb("aligned_0143.png"), read_rgb("aligned_0342.png")])


@pytest.fixture(scope="module")
def runs(models, faces):
    """Two calls sharing the expensive forwards: a batch of two at w=1, and w=0 / w=1 one by one."""
    pair = restore_faces(models.codeformer, faces, [1.0, 1.0], batch_size=2)
    mixed = restore_faces(models.codeformer, faces, [0.0, 1.0], batch_size=2)
    return pair, mixed


def test_output_is_uint8_faces(runs):
    pair, _ = runs
    assert pair.shape == (2, 512, 512, 3) and pair.dtype == np.uint8
    assert pair.std() > 5  # random weights still give a structured, non-constant image


def test_fidelity_reaches_the_network(runs):
    pair, mixed = runs
    # face 0 at w=0 vs w=1 must differ: the value reached the network (a `w=` keyword would be swallowed)
    assert np.abs(mixed[0].astype(int) - pair[0].astype(int)).mean() > 1.0


def test_batch_equals_singles(runs):
    pair, mixed = runs
    # face 1 at w=1 ran alone in `mixed` and in a batch of two in `pair`
    # Random weights leave a few near-tied codebook picks that batching noise may flip; everything else is equal.
    diff = np.abs(mixed[1].astype(int) - pair[1].astype(int))
    assert (diff == 0).mean() > 0.99 and (diff <= 2).mean() > 0.995
    assert psnr(mixed[1], pair[1]) > 40


def test_weight_keyword_is_passed(models, faces, monkeypatch):
    seen = []
    module = models.codeformer.module

    def spy(x, weight=None, **kwargs):
        seen.append((weight, kwargs))
        raise RuntimeError("stop after recording")

    monkeypatch.setattr(module, "forward", spy)
    with pytest.raises(RuntimeError, match="stop after recording"):
        restore_faces(models.codeformer, faces[:1], 0.37)
    assert seen == [(0.37, {})]


def test_float_input_and_resize(models, faces, monkeypatch):
    inputs = []
    module = models.codeformer.module

    def spy(x, weight=None, **kwargs):
        inputs.append(x.detach().clone())
        raise RuntimeError("stop")

    monkeypatch.setattr(module, "forward", spy)
    for face in (faces[0], faces[0].astype(np.float32) / 255.0):
        with pytest.raises(RuntimeError):
            restore_faces(models.codeformer, face[None], 0.5)
    assert inputs[0].shape == (1, 3, 512, 512)
    assert float(inputs[0].min()) >= -1.0 and float(inputs[0].max()) <= 1.0
    assert np.allclose(inputs[0].numpy(), inputs[1].numpy(), atol=1e-6)  # uint8 and its float form agree
    small = faces[0][::2, ::2]  # 256x256: resized to 512 like the official --has_aligned
    with pytest.raises(RuntimeError):
        restore_faces(models.codeformer, small[None], 0.5)
    assert inputs[2].shape == (1, 3, 512, 512)


def test_bad_fidelity_and_shapes(models, faces):
    with pytest.raises(ValueError, match="outside 0..1"):
        restore_faces(models.codeformer, faces, 1.5)
    with pytest.raises(ValueError, match="one value or one per face"):
        restore_faces(models.codeformer, faces, [0.5])
    with pytest.raises(ValueError, match="aligned face"):
        restore_faces(models.codeformer, [np.zeros((512, 512), np.uint8)], 0.5)
    assert restore_faces(models.codeformer, np.zeros((0, 512, 512, 3), np.uint8), 0.5).shape == (0, 512, 512, 3)


def test_gray_restore_is_gray_and_clipped():
    rng = np.random.default_rng(0)
    restored = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    crop = np.repeat(rng.integers(200, 256, (64, 64, 1), dtype=np.uint8), 3, axis=2)  # bright gray input
    out = restore_gray(restored, crop)
    assert out.dtype == np.uint8
    assert (out[:, :, 0] == out[:, :, 1]).all() and (out[:, :, 1] == out[:, :, 2]).all()
    assert abs(float(out.mean()) - float(crop.mean())) < 3  # colour statistics follow the input crop


def testbatch_is_gray_match_official_is_gray():
    import torch

    from codeformer.gray import batch_is_gray
    from codeformer.image import is_gray

    rng = np.random.default_rng(2)
    base = rng.integers(0, 256, (4, 64, 64, 1)).astype(np.int16)
    noise = np.array([0, 2, 4, 40])[:, None, None, None] * rng.standard_normal((4, 64, 64, 3))
    faces = np.clip(base + noise, 0, 255).astype(np.uint8)
    expected = [is_gray(f) for f in faces]
    assert expected == [True, True, False, False]
    x = torch.from_numpy(faces).permute(0, 3, 1, 2)
    assert batch_is_gray(x) == expected
    assert batch_is_gray(x.float() / 255.0) == expected
    assert batch_is_gray(x, step=3) == expected  # computed a few faces at a time


def test_transfer_chunks_give_the_same_result(monkeypatch):
    from codeformer import restore

    rng = np.random.default_rng(4)
    crops = rng.integers(0, 256, (7, 512, 512, 3), dtype=np.uint8)
    crops[3] = crops[3, :, :, :1]  # one gray face: its flag is measured per chunk
    weights = [0.5, 0.5, 1.0, 0.5, 1.0, 0.5, 0.5]
    expected = restore.restore_faces(fake_model(shift=0.2), crops, weights, batch_size=2)
    monkeypatch.setattr(restore, "TRANSFER_CHUNK", 2)
    progress = []
    model = fake_model(shift=0.2)
    out = restore.restore_faces(model, crops, weights, batch_size=3, on_progress=lambda d, n: progress.append((d, n)))
    np.testing.assert_array_equal(out, expected)
    assert model.module.batches == [2, 2, 1, 2]  # w=0.5: chunks of 2, 2, 1; w=1.0: one chunk of 2
    assert progress[-1] == (7, 7) and [d for d, _ in progress] == sorted(d for d, _ in progress)


def test_array_input_is_read_in_place_and_left_unchanged():
    rng = np.random.default_rng(5)
    crops = rng.integers(0, 256, (5, 512, 512, 3), dtype=np.uint8)
    original = crops.copy()
    weights = [0.5, 1.0, 0.5, 0.5, 1.0]  # w=0.5 rows 0, 2, 3 are not consecutive: those are gathered
    singles = np.stack([restore_faces(fake_model(shift=0.2), crops[i : i + 1], w)[0] for i, w in enumerate(weights)])
    np.testing.assert_array_equal(restore_faces(fake_model(shift=0.2), crops, weights, batch_size=2), singles)
    np.testing.assert_array_equal(restore_faces(fake_model(shift=0.2), list(crops), weights), singles)
    np.testing.assert_array_equal(crops, original)
    assert np.abs(singles.astype(int) - crops.astype(int)).mean() > 10  # the shift reached the output
    readonly = crops.copy()
    readonly.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch.from_numpy warns on read-only arrays
        np.testing.assert_array_equal(restore_faces(fake_model(shift=0.2), readonly, weights), singles)


def test_uint8_and_float_faces_mix():
    rng = np.random.default_rng(6)
    crops = rng.integers(0, 256, (2, 512, 512, 3), dtype=np.uint8)
    expected = restore_faces(fake_model(), crops)
    mixed = restore_faces(fake_model(), [crops[0], crops[1].astype(np.float32) / 255.0])
    assert np.abs(mixed.astype(int) - expected.astype(int)).max() <= 1


def test_compile_is_only_used_on_cuda(models, faces, monkeypatch):
    import dataclasses

    import torch

    calls = []
    monkeypatch.setattr(torch, "compile", lambda net, **kw: calls.append(net) or net)
    model = dataclasses.replace(models.codeformer, compile=True)
    module = model.module

    def stop(x, weight=None, **kwargs):
        raise RuntimeError("stop")

    monkeypatch.setattr(module, "forward", stop)
    with pytest.raises(RuntimeError, match="stop"):
        restore_faces(model, faces[:1], 0.5, device="cpu")
    assert calls == [] and model.compiled == {}


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs CUDA")
def test_compiled_network_is_kept_per_device(models, faces, monkeypatch):
    import dataclasses

    import torch

    calls = []
    monkeypatch.setattr(torch, "compile", lambda net, **kw: calls.append(net) or net)
    model = dataclasses.replace(models.codeformer, compile=True)
    restore_faces(model, faces[:1], 0.5, device="cuda")
    restore_faces(model, faces[:1], 0.5, device="cuda")
    assert len(calls) == 1 and list(model.compiled) == ["cuda"]
    model.module.to("cpu")


def test_compiled_network_never_compiles_a_batch_of_one():
    """A lone face runs as two through the compiled network (size 1 would get a graph of its own), same output."""
    import torch

    from codeformer.compiled import compile_network

    class PerFace(torch.nn.Module):  # per-face arithmetic with CodeFormer's fidelity branch
        def forward(self, x, weight=0.5):
            y = x * 2.0
            if weight > 0:
                y = y + weight * x.sin()
            return y, y.mean(dim=(1, 2, 3))

    torch._dynamo.reset()
    graphs, batches = [], []

    def counting_backend(gm, inputs):
        graphs.append(gm)
        return gm.forward

    net = PerFace()
    net.register_forward_pre_hook(lambda module, args: batches.append(args[0].shape[0]))
    run = compile_network(net, backend=counting_backend)
    for n in (2, 3, 1, 1):
        x = torch.rand(n, 3, 8, 8)
        y, m = run(x, weight=0.5)
        want_y, want_m = net(x, weight=0.5)
        assert y.shape == x.shape and m.shape == (n,)
        torch.testing.assert_close(y, want_y)
        torch.testing.assert_close(m, want_m)
    # 2 (static), 3 (the batch becomes dynamic) and then the lone faces reuse that graph
    assert len(graphs) == 2
    assert batches == [2, 2, 3, 3, 2, 1, 2, 1]  # compiled, then eager: the lone faces went in as two
    torch._dynamo.reset()


def test_compiled_lone_face_falls_back_to_the_network_when_two_do_not_fit(monkeypatch):
    import torch

    from codeformer.compiled import compile_network

    class TwoDoNotFit(torch.nn.Module):
        def forward(self, x, weight=0.5):
            if x.shape[0] > 1:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return (x * weight,)

    monkeypatch.setattr(torch, "compile", lambda net, **kw: net)  # the wrapper's logic, without compiling
    run = compile_network(TwoDoNotFit())
    x = torch.rand(1, 3, 4, 4)
    torch.testing.assert_close(run(x, weight=0.25)[0], x * 0.25)
    with pytest.raises(torch.OutOfMemoryError):  # batches of several still report it (the caller halves them)
        run(torch.rand(2, 3, 4, 4), weight=0.25)


def test_compile_time_is_reported_once(monkeypatch, caplog):
    import logging

    import torch

    from codeformer.compiled import compile_network

    monkeypatch.setattr(torch, "compile", lambda net, **kw: net)  # the wrapper's logic, without compiling
    run = compile_network(lambda x, weight: (x * weight,))
    with caplog.at_level(logging.INFO, logger="codeformer.compiled"):
        for n in (1, 3, 2):
            torch.testing.assert_close(run(torch.ones(n, 3, 4, 4), weight=0.5)[0], torch.full((n, 3, 4, 4), 0.5))
    reports = [r.getMessage() for r in caplog.records if "compile included" in r.getMessage()]
    assert len(reports) == 1 and "first batch (2 faces)" in reports[0]  # the lone face ran as two


def test_crops_must_match_the_detected_faces():
    """One crop per detected face, or an error saying which outputs belong together (not a silent mix-up)."""
    from codeformer.errors import InputError
    from codeformer.restore import restore_found_faces
    from codeformer.types import Face, Faces

    face = Face(source_index=0, box=(0.0, 0.0, 10.0, 10.0), score=0.9, landmarks=np.zeros((5, 2)),
                affine=np.eye(2, 3), inverse=np.eye(2, 3), source_size=(64, 64), is_gray=False)
    crops = np.zeros((2, 512, 512, 3), np.uint8)
    with pytest.raises(InputError, match="2 face crop.s. for 1 detected face"):
        restore_found_faces(fake_model(), Faces((face,), ((64, 64),)), crops)
