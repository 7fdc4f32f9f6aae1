"""``restore --ray``: the outputs of a run on a local Ray cluster are the bytes a single-process run writes, and the
run survives a driver stopped with Ctrl+C (started again, it finishes the rest) and a worker killed mid-run.

One local cluster (2 CPUs) serves the module: in-process runs use it directly, the CLI started as a process joins it
by address. One worker, holding both CPUs, uses as many torch threads as the single-process run here (the thread
count changes CPU results in the last bits). The clip has no faces (CodeFormer costs seconds a face here) and is
upscaled, so that its parts take long enough to be interrupted; the photo has one face. Each run on the cluster
takes part of the inputs (a run costs most of a minute here): the photos alone where nothing goes wrong, and the
clip with the plain photo where the run is interrupted; each is compared with the single run of all of them.
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


def some_of(inputs: Path, folder: Path, *names: str) -> Path:
    folder.mkdir()
    for name in names:
        (folder / name).write_bytes((inputs / name).read_bytes())
    return folder


@pytest.fixture(scope="module")
def photos(inputs, tmp_path_factory) -> Path:
    return some_of(inputs, tmp_path_factory.mktemp("in") / "photos", "face.png", "plain.png")


@pytest.fixture(scope="module")
def without_faces(inputs, tmp_path_factory) -> Path:
    return some_of(inputs, tmp_path_factory.mktemp("in") / "plain", "plain.png", "clip.mp4")


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


def same_outputs(out: Path, single: Path, *names: str) -> None:
    assert sorted(p.name for p in out.iterdir()) == sorted(names)  # no record, no part
    if "clip.mp4" in names:  # frame by frame first: a difference says where
        ours, theirs = list(read_frames(out / "clip.mp4")), list(read_frames(single / "clip.mp4"))
        assert [f.pts for f in ours] == [f.pts for f in theirs] and len(ours) == 5 * PART
        for a, b in zip(ours, theirs, strict=True):
            np.testing.assert_array_equal(a.image, b.image)
    for name in names:
        assert (out / name).read_bytes() == (single / name).read_bytes(), name


def test_outputs_are_the_single_run_bytes(cluster, models_dir, photos, single, tmp_path, capsys, monkeypatch):
    bars: list[tqdm] = []

    class Shown(tqdm):  # the bar as on a terminal, kept
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **{**kwargs, "disable": False})
            bars.append(self)

    monkeypatch.setattr(ray_run, "tqdm", Shown)
    out = tmp_path / "out"
    assert main(["restore", str(photos), *cli_args(models_dir, out), *OPTIONS, "--ray", "--ray-workers", "1"]) == 0
    same_outputs(out, single, "face.png", "plain.png")
    assert len(bars) == 1 and bars[0].total == bars[0].n == 2  # one bar, a step a photo (a clip's units: frames)
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


def parts_done(out: Path) -> int:
    folder = out / STATE / "clip"
    return len(list(folder.glob("*.json"))) if folder.is_dir() else 0


def wait_for_parts(out: Path, cli: subprocess.Popen, more_than: int = 0, timeout: float = 240) -> int:
    """Wait until more than ``more_than`` parts of the clip are complete; returns how many are."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and cli.poll() is None:
        if (done := parts_done(out)) > more_than:
            return done
        time.sleep(0.02)
    raise AssertionError(f"no part was written: {cli.communicate()}")


def test_ctrl_c_keeps_what_is_done_and_the_same_command_finishes_the_rest_through_a_killed_worker(
        cluster, models_dir, without_faces, single, tmp_path):
    """One scenario for both failures (each run costs most of a minute here): the first run is stopped with Ctrl+C
    after a part of the clip; the same command resumes, and its worker is killed after a further part: Ray replaces
    it, the killed worker's unit runs again, and the run ends with every output as a single run writes it."""
    out = tmp_path / "out"
    cli = start_cli(cluster, models_dir, without_faces, out)
    assert wait_for_parts(out, cli) < 5
    cli.send_signal(signal.SIGINT)
    _, err = cli.communicate(timeout=60)
    assert cli.returncode == 130, err
    assert "run the same command again to finish the rest" in err
    assert not (out / "clip.mp4").exists() and (out / STATE / "run.json").is_file()
    kept = parts_done(out)
    assert 1 <= kept < 5

    again = start_cli(cluster, models_dir, without_faces, out)
    assert wait_for_parts(out, again, more_than=kept) < 5  # resumed; parts are still to come when the worker dies
    killed = subprocess.run(["pkill", "-KILL", "-f", "ray::MapWorker"], check=False).returncode
    assert killed == 0, "no worker process was found to kill"
    _, err = again.communicate(timeout=600)
    assert again.returncode == 0, err
    assert "resuming: 1 of 2 output(s)" in err  # the photo; the clip's finished parts are kept too
    same_outputs(out, single, "plain.png", "clip.mp4")


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
    the run (the cause of a lost Ctrl+C seen in test_ctrl_c_keeps_what_is_done_and_the_same_command...)."""
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
