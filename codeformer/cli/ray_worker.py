"""The worker of ``restore --ray``: a Ray Data actor that loads the models once and restores one unit (an image, a
clip, or a part of a clip) per call with the single-process code, and the progress counter the workers report to.

What a unit would print (advice lines, notes, skipped-file errors) is captured and handed back with its result, so
the driver prints it once, in its own terminal, as a single-process run would.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..video_parts import part_done
from .args import device_arg
from .inputs import is_video, output_name
from .ray_plan import Unit, parts_folder
from .run import ImageJob, restore_image_file
from .session import Models
from .video import VideoJob, VideoPart, restore_video


class Progress:
    """Frames done per unit, summed for the driver's one progress bar (a retried unit does not count twice)."""

    def __init__(self) -> None:
        self.done: dict[int, int] = {}

    def report(self, unit: int, frames: int) -> None:
        self.done[unit] = max(self.done.get(unit, 0), frames)

    def total(self) -> int:
        return sum(self.done.values())


class RestoreWorker:
    """A Ray Data actor: ``__call__`` takes a batch of units (column ``unit``: ``Unit`` as JSON) and returns their
    results (column ``result``: JSON with ``unit``, ``failed``, ``stdout``, ``stderr``, ``fatal``, ``code``)."""

    def __init__(self, args: argparse.Namespace, inputs: list[str], progress: Any) -> None:
        from .. import cli  # the error lines of main()

        self._error_line = cli.error_line
        self.args = args
        self.inputs = [Path(p) for p in inputs]
        self.progress = progress
        self.fatal: tuple[str, int] | None = None
        self._images: ImageJob | None = None
        self.said_at_start: list[str] | None
        threads = _assigned_cpus()
        if threads:  # the cores Ray gave this worker, not all of the machine's
            torch.set_num_threads(threads)
        with _captured(args.verbose) as self.said_at_start:
            try:
                self.device = device_arg(args.device)
                if self.device.type == "cuda":
                    torch.backends.cudnn.benchmark = True
                self.models = Models.load(args)
            except Exception as error:  # reported with every unit: the driver prints it once and stops
                self.fatal = self._fatal(error)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[str]]:
        return {"result": [self.run(Unit.from_json(str(text))) for text in batch["unit"]]}

    def run(self, unit: Unit) -> str:
        """Restore ``unit``; its result as JSON."""
        failed: list[Path] = []
        fatal = self.fatal
        with _captured(self.args.verbose) as said:
            if fatal is None:
                try:
                    self._restore(unit, failed)
                except Exception as error:
                    fatal = self._fatal(error)
        out, err = said
        if self.said_at_start is not None:  # what loading the models said, with the first unit
            out, err = self.said_at_start[0] + out, self.said_at_start[1] + err
            self.said_at_start = None
        if fatal is None:
            self.progress.report.remote(unit.number, unit.frames)
        return json.dumps({"unit": unit.number, "failed": bool(failed), "stdout": out, "stderr": err,
                           "fatal": None if fatal is None else fatal[0], "code": 0 if fatal is None else fatal[1]})

    def _restore(self, unit: Unit, failed: list[Path]) -> None:
        path = Path(unit.path)
        if self._complete(unit):  # a retry of a unit that finished before its worker died
            return
        if not is_video(path):
            if self._images is None:
                self._images = ImageJob.start(self.args, self.models, self.device, self.inputs)
            restore_image_file(path, self._images, failed)
            return

        def on_frame(done: int) -> None:
            self.progress.report.remote(unit.number, done)

        job = VideoJob.from_args(self.args, self.models, self.device, self.inputs, on_frame)
        part = None
        if unit.part:
            part = VideoPart(parts_folder(self.args.output, path), unit.first, unit.stop, unit.read_from,
                             unit.read_from_pts, unit.read_to)
        restore_video(path, job, failed, part)

    def _complete(self, unit: Unit) -> bool:
        """Whether ``unit``'s output is already complete. The driver refused (or, with --overwrite, allowed) the
        outputs before any work, so an output at its name is this run's own, renamed into place when complete."""
        if unit.part:
            return part_done(parts_folder(self.args.output, Path(unit.path)), unit.first) is not None
        return not self.args.overwrite and (self.args.output / output_name(Path(unit.path))).is_file()

    def _fatal(self, error: Exception) -> tuple[str, int]:
        said = self._error_line(error)
        if said is None:
            raise error  # a bug: Ray shows it with its traceback
        return said


def _assigned_cpus() -> int:
    import ray

    return int(ray.get_runtime_context().get_assigned_resources().get("CPU", 0))


@contextlib.contextmanager
def _captured(verbose: bool) -> Iterator[list[str]]:
    """Capture stdout, stderr and the ``codeformer`` log (as main() formats it) into ``[stdout, stderr]``."""
    out, err = io.StringIO(), io.StringIO()
    said = ["", ""]
    logger = logging.getLogger("codeformer")
    handler = logging.StreamHandler(err)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    handler.setLevel(logging.INFO if verbose else logging.WARNING)
    old = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    logger.propagate = False
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            yield said
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old[0])
        logger.propagate = old[1]
        said[0], said[1] = out.getvalue(), err.getvalue()


__all__ = ["Progress", "RestoreWorker"]
