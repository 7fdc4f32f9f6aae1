"""codeformer.bf16_probe: whether bf16 beats fp32 on this CPU, measured once per machine and kept in the user cache;
and runtime.cpu_runs_bf16_fast, which asks it only where CPU features leave the answer open."""

from __future__ import annotations

import json

import pytest
import torch

from codeformer import bf16_probe, runtime
from codeformer.bf16_probe import ProbeTiming


@pytest.fixture
def measured(monkeypatch):
    """``bf16_probe.measure`` replaced by set timings; the list of calls; this process's answers forgotten."""
    calls: list[ProbeTiming] = []
    timing = {"now": ProbeTiming(1.0, 0.5)}

    def fake(rounds: int = bf16_probe.ROUNDS) -> ProbeTiming:
        calls.append(timing["now"])
        return timing["now"]

    monkeypatch.setattr(bf16_probe, "measure", fake)
    monkeypatch.setattr(bf16_probe, "_known", {})
    return calls, timing


def test_the_probe_times_both_and_leaves_the_global_random_state():
    state = torch.get_rng_state()
    timing = bf16_probe.measure(rounds=2)
    assert timing.fp32_s > 0 and timing.bf16_s > 0
    assert torch.equal(torch.get_rng_state(), state)


def test_bf16_counts_as_faster_only_below_the_threshold():
    assert ProbeTiming(1.0, 0.79).bf16_faster
    assert not ProbeTiming(1.0, bf16_probe.FASTER_BELOW).bf16_faster
    assert not ProbeTiming(1.0, 2.6).bf16_faster  # emulated bf16


def test_the_answer_is_measured_once_and_kept_per_machine(measured, tmp_path, monkeypatch):
    calls, timing = measured
    cache = tmp_path / "cache.json"
    assert bf16_probe.bf16_faster("", cache) is True
    assert len(calls) == 1
    kept = json.loads(cache.read_text())
    assert kept == {bf16_probe.machine_key(""): {"fp32_s": 1.0, "bf16_s": 0.5, "bf16_faster": True}}
    assert bf16_probe.bf16_faster("", cache) is True and len(calls) == 1  # this process remembers it
    monkeypatch.setattr(bf16_probe, "_known", {})  # a new process reads the file
    timing["now"] = ProbeTiming(1.0, 0.95)
    assert bf16_probe.bf16_faster("", cache) is True and len(calls) == 1
    assert bf16_probe.bf16_faster("AVX512_CORE_BF16", cache) is False  # another key: measured again, kept beside
    assert len(calls) == 2 and len(json.loads(cache.read_text())) == 2
    monkeypatch.setattr(torch, "get_num_threads", lambda: 97)  # other threads, another answer
    assert bf16_probe.machine_key("") != next(iter(kept))


def test_a_cache_that_cannot_be_read_or_written_costs_only_a_measurement(measured, tmp_path, monkeypatch):
    calls, _ = measured
    damaged = tmp_path / "damaged.json"
    damaged.write_text("{not json")
    assert bf16_probe.bf16_faster("", damaged) is True and len(calls) == 1
    assert bf16_probe.machine_key("") in json.loads(damaged.read_text())  # rewritten whole
    monkeypatch.setattr(bf16_probe, "_known", {})
    (tmp_path / "a file").write_text("")
    unwritable = tmp_path / "a file" / "cache.json"  # its folder is a file: mkdir fails
    assert bf16_probe.bf16_faster("", unwritable) is True and len(calls) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a file", "damaged.json"]  # no temporary file left


def test_the_default_cache_is_in_the_user_cache(measured, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path))
    bf16_probe.bf16_faster("")
    assert bf16_probe.machine_key("") in json.loads((tmp_path / "codeformer" / bf16_probe.CACHE_NAME).read_text())


def test_the_cpu_is_probed_only_with_bf16_instructions_and_no_amx(monkeypatch):
    asked: list[str] = []
    monkeypatch.setattr(bf16_probe, "bf16_faster", lambda cap: asked.append(cap) or True)
    for name in runtime.ISA_CAP_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for amx, instructions, expected, probed in ((True, True, True, False), (False, False, False, False),
                                                (False, True, True, True)):
        monkeypatch.setattr(runtime, "cpu_has_amx", lambda amx=amx: amx)
        monkeypatch.setattr(runtime, "cpu_has_bf16_instructions", lambda i=instructions: amx or i)
        asked.clear()
        assert runtime.cpu_runs_bf16_fast() is expected
        assert asked == ([""] if probed else [])
        assert runtime.use_bf16("cpu", "auto", auto_on=runtime.AUTO_NATIVE) is expected
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx512_core_bf16")
    asked.clear()
    runtime.cpu_runs_bf16_fast()
    assert asked == ["AVX512_CORE_BF16"]  # the cap is part of the machine's key


def test_the_probe_is_not_asked_for_fp32_or_codeformer(monkeypatch):
    monkeypatch.setattr(runtime, "cpu_runs_bf16_fast", lambda: pytest.fail("probed"))
    assert not runtime.use_bf16("cpu", "fp32", auto_on=runtime.AUTO_NATIVE)
    assert not runtime.use_bf16("cpu", "auto")  # CodeFormer: fp32 on the CPU whatever the CPU
