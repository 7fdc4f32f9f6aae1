"""codeformer.runtime: precision and memory format per device, batch sizes, cancel and OOM retry, host memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import fake_model

from codeformer import runtime, said_once, upsample
from codeformer.errors import OutOfMemory
from codeformer.parse import parse_masks
from codeformer.restore import restore_faces
from codeformer.types import FaceParser


@pytest.fixture(scope="module")
def photo():
    return np.random.default_rng(5).integers(0, 256, (40, 56, 3), dtype=np.uint8)


@pytest.fixture
def native_bf16(monkeypatch):
    """Set whether this CPU counts as running bf16 fast."""
    def set_native(value: bool) -> None:
        monkeypatch.setattr(runtime, "cpu_runs_bf16_fast", lambda: value)
    return set_native


def test_use_bf16_by_device_and_precision(native_bf16):
    native_bf16(True)
    assert not runtime.use_bf16("cpu", "fp32", auto_on=runtime.AUTO_NATIVE)
    assert runtime.use_bf16("cpu", "bf16")
    assert runtime.use_bf16("cpu", "auto", auto_on=runtime.AUTO_NATIVE)
    assert not runtime.use_bf16("cpu", "auto")  # AUTO_GPU, the default (CodeFormer): fp32 on the CPU
    assert not runtime.use_bf16("cpu", "auto", auto_on=runtime.AUTO_NEVER)
    assert not runtime.use_bf16("mps", "bf16")
    native_bf16(False)
    assert not runtime.use_bf16("cpu", "auto", auto_on=runtime.AUTO_NATIVE)
    with pytest.raises(ValueError, match="auto, fp32, bf16"):
        runtime.use_bf16("cpu", "fp16")


def test_amx_counts_only_where_onednn_may_use_it(monkeypatch):
    """A cap on oneDNN's instructions below AMX turns it off."""
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: True)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    for name in runtime.ISA_CAP_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert runtime.cpu_has_amx()
    for cap, amx in (("AVX512_CORE_BF16", False), ("avx2", False), ("AVX512_CORE_AMX", True), ("ALL", True)):
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
        assert runtime.cpu_has_amx() is amx, cap
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    monkeypatch.setenv("DNNL_MAX_CPU_ISA", "AVX512_CORE")  # oneDNN's older name
    assert not runtime.cpu_has_amx()
    monkeypatch.delenv("DNNL_MAX_CPU_ISA")
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert not runtime.cpu_has_amx()


def test_bf16_asked_on_a_cpu_without_bf16_instructions_is_run_and_said_once(monkeypatch, caplog):
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: True)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    for name in runtime.ISA_CAP_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(said_once, "_said", set())
    with caplog.at_level("WARNING", logger="codeformer.runtime"):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
        assert runtime.cpu_has_bf16_instructions() and runtime.use_bf16("cpu", "bf16")
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")  # capped below bf16: emulated
        assert not runtime.cpu_has_bf16_instructions()
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
        assert not caplog.records
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)  # an AVX2 CPU
        assert runtime.use_bf16("cpu", "bf16") and runtime.use_bf16("cpu", "bf16")  # asked for: run
        assert not runtime.use_bf16("cpu", "auto", auto_on=runtime.AUTO_NATIVE)
    assert len(caplog.records) == 1 and "bf16 is emulated" in caplog.records[0].getMessage()


def test_memory_format_is_channels_last_on_cpu_except_for_fp32():
    assert runtime.memory_format("cpu") == runtime.memory_format("cpu", "bf16") == torch.channels_last
    assert runtime.memory_format("cpu", "fp32") == torch.contiguous_format  # the official arithmetic
    assert runtime.memory_format("cuda") == torch.contiguous_format


def test_upscaler_auto_follows_native_bf16(x4_model, photo, native_bf16):
    fp32 = upsample.upscale_image(x4_model, photo, 4.0, tile=0, precision="fp32")
    bf16 = upsample.upscale_image(x4_model, photo, 4.0, tile=0, precision="bf16")
    assert np.abs(bf16.astype(int) - fp32.astype(int)).mean() < 2  # the bf16 bound: < 2/255 mean
    native_bf16(False)
    auto = upsample.upscale_image(x4_model, photo, 4.0, tile=0)  # fp32, in channels_last: float noise can flip a
    assert np.abs(auto.astype(int) - fp32.astype(int)).max() <= 1  # rounding (seen on an AMD EPYC), where bf16
    assert np.mean(auto != fp32) < 1e-3 < np.mean(bf16 != fp32)  # moves a fifth of the values
    native_bf16(True)
    assert np.array_equal(upsample.upscale_image(x4_model, photo, 4.0, tile=0), bf16)


def test_upscaler_without_bf16_support_stays_fp32(x4_model, photo, native_bf16, monkeypatch):
    native_bf16(False)
    fp32 = upsample.upscale_image(x4_model, photo, 4.0, tile=0)
    native_bf16(True)
    monkeypatch.setattr(x4_model, "supports_bfloat16", False)
    assert np.array_equal(upsample.upscale_image(x4_model, photo, 4.0, tile=0), fp32)
    # asked for bf16 explicitly: still fp32 (spandrel says the model breaks in bf16), in the same channels_last
    assert np.array_equal(upsample.upscale_image(x4_model, photo, 4.0, tile=0, precision="bf16"), fp32)


def test_channels_last_upscale_equals_nchw(x4_model, photo, native_bf16):
    native_bf16(False)  # auto = fp32 in channels_last
    last = upsample.upscale_image(x4_model, photo, 4.0, tile=0, precision="auto")
    nchw = upsample.upscale_image(x4_model, photo, 4.0, tile=0, precision="fp32")
    assert np.abs(last.astype(int) - nchw.astype(int)).max() <= 1  # float noise can flip a rounding


def test_restore_precision_comes_from_the_model(native_bf16):
    native_bf16(True)
    faces = np.zeros((1, 512, 512, 3), np.uint8)
    for precision, bf16, channels_last in (("auto", False, True), ("fp32", False, False), ("bf16", True, True)):
        model = fake_model(precision=precision)
        restore_faces(model, faces)
        assert model.module.autocast == [bf16] and model.module.channels_last == [channels_last], precision
    model = fake_model(precision="bf16")
    restore_faces(model, faces, precision="fp32")  # an explicit precision wins
    assert model.module.autocast == [False]


class RecordingParser(torch.nn.Module):
    """Stands in for ParseNet: records whether bf16 autocast was on; every pixel is background."""

    def __init__(self) -> None:
        super().__init__()
        self.autocast: list[bool] = []

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        self.autocast.append(torch.is_autocast_enabled(x.device.type))
        return (torch.zeros(x.shape[0], 19, *x.shape[2:]),)


def test_parser_auto_is_fp32_on_cpu(native_bf16):
    native_bf16(True)  # even where bf16 is fast
    parser = FaceParser(RecordingParser(), Path("parser.pth"))
    face = np.zeros((128, 128, 3), np.uint8)
    for precision, bf16 in (("auto", False), ("fp32", False), ("bf16", True)):
        assert not parse_masks(parser, [face], precision=precision)[0].any()
        assert parser.module.autocast.pop() is bf16, precision


def test_auto_batch_size_from_free_memory(monkeypatch):
    assert runtime.auto_batch_size("cpu", bf16=False) == runtime.CPU_BATCH
    gib = 2**30
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (6 * gib, 80 * gib))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 2 * gib)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 1 * gib)
    assert runtime.auto_batch_size("cuda", bf16=True) == int(7 * gib // runtime.FACE_WORKING_BYTES[True])
    assert runtime.auto_batch_size("cuda", bf16=False) == int(7 * gib // runtime.FACE_WORKING_BYTES[False])
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (200 * gib, 200 * gib))
    assert runtime.auto_batch_size("cuda", bf16=True) == runtime.MAX_AUTO_BATCH
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (0, 80 * gib))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 0)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 0)
    assert runtime.auto_batch_size("cuda", bf16=True) == 1


def test_parser_runs_bf16_only_when_asked(native_bf16):
    native_bf16(True)
    seen = []

    class Parser(torch.nn.Module):
        def forward(self, x):
            seen.append(torch.is_autocast_enabled("cpu"))
            return torch.zeros(x.shape[0], 19, *x.shape[2:]), None

    parser = FaceParser(module=Parser(), path=Path("fake.pth"))
    face = np.zeros((512, 512, 3), np.uint8)
    for precision in ("auto", "fp32", "bf16"):
        parse_masks(parser, [face], precision=precision)
    assert seen == [False, False, True]


def test_no_autocast_context_unless_bf16(monkeypatch, x4_model, photo):
    # backends without autocast (DirectML's privateuseone) refuse even torch.autocast(..., enabled=False)
    class NoAutocast(torch.nn.Module):
        def forward(self, x):
            return torch.zeros(x.shape[0], 19, *x.shape[2:]), None

    def refuse(*args, **kwargs):
        raise AssertionError("autocast asked for on a backend without it")

    monkeypatch.setattr(torch, "autocast", refuse)
    face = np.zeros((512, 512, 3), np.uint8)
    assert restore_faces(fake_model(), [face], precision="fp32").shape == (1, 512, 512, 3)
    parser = FaceParser(module=NoAutocast(), path=Path("fake.pth"))
    assert parse_masks(parser, [face], precision="fp32")[0].shape == (512, 512)
    assert upsample.upscale_image(x4_model, photo, 4, precision="fp32").shape == (160, 224, 3)
    with pytest.raises(AssertionError, match="without it"):
        runtime.bf16_autocast("cpu", True)


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


def test_available_host_memory_reads_meminfo(tmp_path):
    from codeformer.runtime import available_host_memory

    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:  1000 kB\nMemAvailable:  600 kB\nSwapTotal: 50 kB\nSwapFree:  40 kB\n")
    assert available_host_memory(meminfo) == 640 * 1024
    meminfo.write_text("MemTotal:  1000 kB\n")  # an old kernel without MemAvailable
    assert available_host_memory(meminfo) is None
    assert available_host_memory(tmp_path / "missing") is None
