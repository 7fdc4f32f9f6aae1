"""``restore --ray``: the inputs become a Ray dataset; actors that load the models once restore them with the
single-process code and write ``OUTDIR`` exactly as a single-process run does; long clips are restored in parts on
different workers and joined here, in order, into one encode.

Ray Data's ``map_batches`` with an actor pool does the scheduling, and Ray's retries the fault tolerance: a worker
that dies is restarted and its unit run again (Ray Data's default for actors: without a limit). Every output is
written under a temporary name and renamed when complete, so nothing half-written is ever left at an output's name;
a unit whose output is already complete is not run twice. ``ray_plan`` holds the units and the record that lets a
stopped run finish only the rest.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from tqdm import tqdm

from .. import models
from ..video import VideoReadError, VideoWriteError, frame_timestamps
from .errors import CliError
from .inputs import Inputs, is_video, output_name
from .outputs import check_output_folder, check_outputs, make_output_folder
from .ray_plan import RunRecord, Unit, clip_parts, parts_folder, plan_units
from .run import restore_inputs
from .session import ModelFiles, given_settings, report_not_files, report_skipped, skip
from .video import join_parts

log = logging.getLogger("codeformer")

INSTALL = 'pip install "ray[data]"'


def run_restore_on_ray(args: argparse.Namespace) -> int:
    """``restore --ray``: the single-process checks, then the units on the cluster, then the clips joined; returns
    the exit code (as ``run_restore``'s)."""
    ray = import_ray()
    inputs = restore_inputs(args)
    check_output_folder(args.output)
    record = RunRecord(args.output, args, inputs.files)
    todo = [path for path in inputs.files if not record.done(path)]
    check_outputs(todo, args.output, args.save_faces, args.overwrite)
    make_output_folder(args.output)
    _fetch_models(args)  # downloaded once, here, before any worker starts
    record.save()
    failed = report_not_files(inputs)
    units = plan_units(inputs, record, args, args.part_frames)
    if len(todo) < len(inputs.files):
        print(f"resuming: {len(inputs.files) - len(todo)} of {len(inputs.files)} output(s) were written by the "
              "stopped run and are kept", file=sys.stderr)
    try:
        with _cluster(ray, args.ray):
            code = _run_units(ray, args, inputs, units, failed)
            if code:
                return code
            _join_clips(args, inputs, failed)
    except KeyboardInterrupt:
        print("error: interrupted; the outputs written so far are complete: run the same command again to finish the "
              "rest", file=sys.stderr)
        return 130
    record.finish()
    _sweep(args.output, inputs.files)
    return report_skipped(failed, inputs.total)


def import_ray() -> ModuleType:
    """Ray, or one error line saying what to install."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as error:
        raise CliError(f"--ray needs Ray, which is not installed: {INSTALL} (or pip install \".[cluster]\" in the "
                       "pack's folder)") from error
    return ray


def _fetch_models(args: argparse.Namespace) -> None:
    """Every model file the run reads, downloaded here if missing (the workers then find them in place)."""
    files = ModelFiles(args.models_dir, args.offline)
    files.restorer(args.model)
    if args.aligned:
        return
    files.path(models.DETECTORS[args.detector].file, "facedetection")
    files.path("parsing_parsenet.pth", "facedetection")
    given = given_settings(args)
    if given is None or given.uses_upscaler:
        files.path(args.upscaler, "upscale_models")


@contextlib.contextmanager
def _cluster(ray: ModuleType, address: str) -> Iterator[None]:
    """Join the cluster at ``address`` (``""``: $RAY_ADDRESS, else a new local one) unless this process already
    has; the pack's code travels to the workers with the job."""
    started = not ray.is_initialized()
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # its progress lines: the run has its own bar
    if started:
        package = Path(__file__).resolve().parents[1]
        ray.init(address=address or None, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.ERROR, runtime_env={"py_modules": [str(package)]})
    try:
        yield
    finally:
        if started:
            ray.shutdown()


def _workers(ray: ModuleType, args: argparse.Namespace) -> tuple[int, dict[str, float]]:
    """How many workers, and the resources of each: one GPU each when the cluster has GPUs (and --device is not
    cpu); otherwise the CPU cores of a machine shared by its workers."""
    total = ray.cluster_resources()
    gpus = int(total.get("GPU", 0))
    if gpus and args.device != "cpu":
        return args.ray_workers or gpus, {"num_gpus": 1, "num_cpus": 1}
    nodes = [node for node in ray.nodes() if node.get("Alive")]
    cpus = [int(node.get("Resources", {}).get("CPU", 0)) for node in nodes] or [1]
    workers = args.ray_workers or len(nodes) or 1
    return workers, {"num_cpus": max(1, min(min(cpus), sum(cpus) // workers))}


def _run_units(ray: ModuleType, args: argparse.Namespace, inputs: Inputs, units: list[Unit],
               failed: list[Path]) -> int:
    """Restore ``units`` on the cluster, printing what each said; returns 0, or the exit code of an error that
    stopped the run."""
    if not units:
        return 0
    from .ray_worker import Progress, RestoreWorker

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # ours is the one bar
    progress = ray.remote(num_cpus=0)(Progress).remote()
    workers, resources = _workers(ray, args)
    dataset = ray.data.from_items([{"unit": unit.to_json()} for unit in units], override_num_blocks=len(units))
    files = [str(p) for p in inputs.files]

    class Worker(RestoreWorker):  # the run's arguments travel with the class: an actor without constructor arguments
        def __init__(self) -> None:  # restarts from the class alone
            super().__init__(args, files, progress)

    results = dataset.map_batches(
        Worker,
        # one unit at a time per worker: a long clip part does not hold back units queued behind it
        batch_size=1, compute=ray.data.ActorPoolStrategy(size=min(workers, len(units)),
                                                         max_tasks_in_flight_per_actor=1), **resources)
    reported: set[str] = set()  # clips with an error line already (one per clip, whatever its parts say)
    done: set[int] = set()
    with _bar(ray, progress, sum(unit.frames for unit in units)):
        for row in results.iter_rows():
            ctrl_c_back()
            result = json.loads(row["result"])
            unit = units[result["unit"]]
            done.add(unit.number)
            if not (unit.path in reported and result["failed"]):
                _print(result["stdout"], sys.stdout)
                _print(result["stderr"], sys.stderr)
            if result["fatal"]:
                _print(result["fatal"], sys.stderr)
                return int(result["code"])
            if result["failed"] and unit.path not in reported:
                reported.add(unit.path)
                failed.append(Path(unit.path))
    ctrl_c_back()
    for unit in units:
        if unit.number not in done and unit.path not in reported:  # not expected: Ray raises when retries run out
            reported.add(unit.path)
            skip(failed, Path(unit.path), f"{unit.path}: no worker finished it")
    return 0


def ctrl_c_back() -> None:
    """Give Ctrl+C back to Python if Ray left it deferred, and raise the interrupt it swallowed.

    Ray defers SIGINT around task submission (``ray._private.utils.DeferSigint``); when two of those contexts nest,
    the inner one's handler goes through the outer one's patch of ``signal.signal`` and the deferring handler stays
    installed after both end (ray 2.x), so Ctrl+C would be swallowed for the rest of the run. Called on the main
    thread between Ray calls, where no such context is open: any deferring handler found is a leftover.
    """
    handler = signal.getsignal(signal.SIGINT)
    owner = getattr(handler, "__self__", None)
    if owner is None or type(owner).__name__ != "DeferSigint":
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if getattr(owner, "signal_received", False):
        raise KeyboardInterrupt


def _join_clips(args: argparse.Namespace, inputs: Inputs, failed: list[Path]) -> None:
    """Join the parts of every clip that was cut into parts and restored without error (their settings are the
    command line's: clips are cut only then)."""
    settings = given_settings(args)
    for path in inputs.videos:
        folder = parts_folder(args.output, path)
        if path in failed or settings is None or not folder.is_dir():
            continue
        try:
            stamps = frame_timestamps(path)
            count = 0 if stamps is None else len(stamps)
            firsts = [first for first, _ in clip_parts(count, args.part_frames)]
            join_parts(path, args.output / output_name(path), settings.upscale, args.overwrite, folder, firsts)
        except (VideoReadError, VideoWriteError) as error:
            skip(failed, path, str(error))


@contextlib.contextmanager
def _bar(ray: ModuleType, progress: Any, total: int) -> Iterator[None]:
    """One progress bar over all units (in frames; an image counts one), polled from the workers' counter."""
    stop = threading.Event()
    with tqdm(total=total, unit="frame", disable=None, file=sys.stderr) as bar:
        def poll() -> None:
            while not stop.wait(0.5):
                with contextlib.suppress(Exception):  # a slow answer: the next poll will do
                    bar.update(ray.get(progress.total.remote(), timeout=5) - bar.n)

        thread = threading.Thread(target=poll, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
        bar.update(bar.total - bar.n)  # every unit has finished; their last reports may still be on their way


def _print(text: str, stream: Any) -> None:
    if text:
        tqdm.write(text.rstrip("\n"), file=stream)


def _sweep(output: Path, files: tuple[Path, ...]) -> None:
    """Remove the temporary files of writes a killed worker left behind (never a complete output)."""
    for path in files:
        stem = Path(output_name(path)).stem
        patterns = [(output, f".{stem}.*.part"), (output / "faces", f".{stem}_*.part")]
        if is_video(path):
            patterns.append((output / "faces" / stem, ".*.part"))
        for folder, pattern in patterns:
            for left in folder.glob(pattern) if folder.is_dir() else []:
                with contextlib.suppress(OSError):
                    left.unlink()


__all__ = ["INSTALL", "import_ray", "run_restore_on_ray"]
