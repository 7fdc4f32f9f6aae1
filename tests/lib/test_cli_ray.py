"""``restore --ray``: the outputs of a run on a local Ray cluster are the bytes a single-process run writes, and the
run survives a worker killed mid-run and a driver stopped with Ctrl+C (started again, it finishes the rest).

One local cluster (2 CPUs) serves the module: in-process runs use it directly, the CLI started as a process joins it
by address. One worker, holding both CPUs, uses as many torch threads as the single-process run here (the thread
count changes CPU results in the last bits). The clip has no faces (CodeFormer costs seconds a face here) and is
upscaled, so that its parts take long enough to be interrupted; the photo has one face.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import cli_args, gradient, read_rgb
from test_cli_video import make_clip, plain_frames
from tqdm import tqdm

from codeformer.cli import main, ray_run
from codeformer.cli.outputs import write_image
from codeformer.cli.ray_plan import STATE
from codeformer.video import read_frames

ray = pytest.importorskip("ray", reason="the cluster extra (ray[data]) is not installed")

ROOT = Path(__file__).resolve().parents[2]
PART = 8
OPTIONS = ["-s", "2", "--max-faces", "1", "--part-frames", str(PART)]


@pytest.fixture(scope="module")
def cluster() -> str:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
             runtime_env={"py_modules": [str(ROOT / "codeformer")]})
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("in")
    write_image(folder / "face.png", read_rgb("whole_01.jpg"))
    write_image(folder / "plain.png", gradient(40, 60))
    make_clip(folder / "clip.mp4", plain_frames(5 * PART, 96, 128), audio=True, key_every=5)
    return folder


@pytest.fixture(scope="module")
def single(models_dir, inputs, tmp_path_factory) -> Path:
    """The single-process run's outputs, with the worker's thread count."""
    out = tmp_path_factory.mktemp("single") / "out"
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert main(["restore", str(inputs), *cli_args(models_dir, out), *OPTIONS]) == 0
    finally:
        torch.set_num_threads(threads)
    return out


def same_outputs(out: Path, single: Path) -> None:
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in single.iterdir())  # no record, no part
    for name in ("face.png", "plain.png"):
        assert (out / name).read_bytes() == (single / name).read_bytes()
    ours, theirs = list(read_frames(out / "clip.mp4")), list(read_frames(single / "clip.mp4"))
    assert [f.pts for f in ours] == [f.pts for f in theirs] and len(ours) == 5 * PART
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(a.image, b.image)


def test_outputs_are_the_single_run_bytes(cluster, models_dir, inputs, single, tmp_path, capsys, monkeypatch):
    bars: list[tqdm] = []

    class Shown(tqdm):  # the bar as on a terminal, kept
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **{**kwargs, "disable": False})
            bars.append(self)

    monkeypatch.setattr(ray_run, "tqdm", Shown)
    out = tmp_path / "out"
    assert main(["restore", str(inputs), *cli_args(models_dir, out), *OPTIONS, "--ray", "--ray-workers", "1"]) == 0
    same_outputs(out, single)
    assert len(bars) == 1 and bars[0].total == bars[0].n == 2 + 5 * PART  # one bar: two photos and the clip's frames
    assert (out / "clip.mp4").read_bytes() == (single / "clip.mp4").read_bytes()
    assert "error" not in capsys.readouterr().err


def start_cli(cluster: str, models_dir: Path, inputs: Path, out: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "codeformer", "restore", str(inputs), *cli_args(models_dir, out), *OPTIONS,
               "--ray", cluster, "--ray-workers", "1"]
    # A runner started in the background (``cmd &`` without job control) ignores SIGINT, and a child inherits an
    # ignored signal: the CLI would never see the test's Ctrl+C. With a handler here, the child starts with the default.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
    finally:
        signal.signal(signal.SIGINT, previous)


def wait_for_part(out: Path, cli: subprocess.Popen, timeout: float = 240) -> int:
    """Wait until the first part of the clip is complete; returns how many are."""
    folder = out / STATE / "clip"
    end = time.monotonic() + timeout
    while time.monotonic() < end and cli.poll() is None:
        done = len(list(folder.glob("*.json"))) if folder.is_dir() else 0
        if done:
            return done
        time.sleep(0.02)
    raise AssertionError(f"no part was written: {cli.communicate()}")


def test_ctrl_c_keeps_what_is_done_and_the_same_command_finishes_the_rest(cluster, models_dir, inputs, single,
                                                                          tmp_path):
    out = tmp_path / "out"
    cli = start_cli(cluster, models_dir, inputs, out)
    assert wait_for_part(out, cli) < 5
    cli.send_signal(signal.SIGINT)
    _, err = cli.communicate(timeout=60)
    assert cli.returncode == 130, err
    assert "run the same command again to finish the rest" in err
    assert not (out / "clip.mp4").exists() and (out / STATE / "run.json").is_file()
    parts = sorted(p.name for p in (out / STATE / "clip").glob("*.json"))
    assert 1 <= len(parts) < 5
    again = start_cli(cluster, models_dir, inputs, out)
    _, err = again.communicate(timeout=600)
    assert again.returncode == 0, err
    assert "resuming: 2 of 3 output(s)" in err  # the photos; the clip's finished parts are kept too
    same_outputs(out, single)


def test_a_worker_killed_mid_run_is_replaced_and_its_unit_run_again(cluster, models_dir, inputs, single, tmp_path):
    out = tmp_path / "out"
    cli = start_cli(cluster, models_dir, inputs, out)
    assert wait_for_part(out, cli) < 5
    killed = subprocess.run(["pkill", "-KILL", "-f", "ray::MapWorker"], check=False).returncode
    assert killed == 0, "no worker process was found to kill"
    _, err = cli.communicate(timeout=600)
    assert cli.returncode == 0, err
    same_outputs(out, single)


def test_without_ray_one_line_says_what_to_install(models_dir, inputs, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails
    assert main(["restore", str(inputs), *cli_args(models_dir, tmp_path / "out"), "--ray"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'pip install "ray[data]"' in err[0]
    assert not (tmp_path / "out").exists()


def test_a_file_that_fails_is_reported_once_as_in_a_single_run(cluster, models_dir, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    write_image(folder / "plain.png", gradient(40, 60))
    (folder / "broken.png").write_bytes(b"not a picture")
    said = {}
    for name, extra in (("single", []), ("ray", ["--ray", "--ray-workers", "1"])):
        code = main(["restore", str(folder), *cli_args(models_dir, tmp_path / name), *extra])
        said[name] = (code, [line for line in capsys.readouterr().err.splitlines() if "broken.png" in line])
    assert said["single"][0] != 0 and len(said["single"][1]) == 1, said
    assert said["ray"] == said["single"]
    assert (tmp_path / "ray" / "plain.png").read_bytes() == (tmp_path / "single" / "plain.png").read_bytes()
    assert sorted(p.name for p in (tmp_path / "ray").iterdir()) == ["plain.png"]


def test_ctrl_c_left_deferred_by_nested_ray_contexts_is_given_back_and_raised():
    """Ray's DeferSigint, nested, leaves its deferring handler installed: Ctrl+C would be swallowed for the rest of
    the run (the cause of a lost Ctrl+C seen in test_ctrl_c_keeps_what_is_done...)."""
    from ray._private.utils import DeferSigint

    original = signal.getsignal(signal.SIGINT)
    try:
        with DeferSigint(), DeferSigint():
            pass
        assert getattr(signal.getsignal(signal.SIGINT), "__self__", None) is not None  # Ray's leftover
        ray_run.ctrl_c_back()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        with DeferSigint(), DeferSigint():
            pass
        os.kill(os.getpid(), signal.SIGINT)  # swallowed by the leftover
        with pytest.raises(KeyboardInterrupt):
            ray_run.ctrl_c_back()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        ray_run.ctrl_c_back()  # Python's own handler: nothing to do
    finally:
        signal.signal(signal.SIGINT, original)
