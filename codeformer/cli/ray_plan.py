"""What a ``restore --ray`` run hands to its workers: one unit per image, one per clip or per part of a long clip,
and the record that lets a stopped run be started again and finish only the rest.

The record (``OUTDIR/.codeformer-ray/run.json``) is written before any work: for each output, a key of its input
(path, size, modification time) and of the settings. Started again with the same inputs and settings, a run skips
the outputs the record names that exist (outputs are renamed into place only when complete), and the clip parts
already written; it refuses other existing outputs exactly as a single-process run does. A run that ends removes
the record, the parts and their folder.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from ..temporal import TemporalOptions, clip_context
from ..video import VideoReadError, frame_timestamps
from ..video_parts import part_done
from .inputs import Inputs, output_name

STATE = ".codeformer-ray"  # under OUTDIR: the run's record and the parts of clips not yet joined
# Options that do not change what is written: a run started again with other values of these still resumes.
NOT_SETTINGS = frozenset({"command", "inputs", "output", "overwrite", "verbose", "offline", "ray", "ray_workers",
                          "part_frames"})


@dataclass(frozen=True)
class Unit:
    """One piece of work: an image, a whole clip, or frames ``first`` to ``stop`` of a clip (``part``)."""

    number: int
    path: str
    frames: int  # for the progress bar: 1 per image, the frames of a clip or part
    part: bool = False
    first: int = 0
    stop: int | None = None  # exclusive; None: to the end of the clip
    read_from: int = 0
    read_from_pts: int | None = None
    read_to: int | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @staticmethod
    def from_json(text: str) -> Unit:
        return Unit(**json.loads(text))


def settings_key(args: argparse.Namespace) -> dict:
    """The options that decide what is written."""
    return {k: str(v) for k, v in sorted(vars(args).items()) if k not in NOT_SETTINGS}


def input_key(path: Path, settings: dict) -> str:
    """Changes when the input file or the settings change."""
    stat = path.stat()
    said = json.dumps({"input": str(path.resolve()), "size": stat.st_size, "mtime": stat.st_mtime_ns, **settings},
                      sort_keys=True)
    return hashlib.sha256(said.encode()).hexdigest()


class RunRecord:
    """The record of a ``--ray`` run in OUTDIR (see the module's text)."""

    def __init__(self, output: Path, args: argparse.Namespace, files: tuple[Path, ...]) -> None:
        self.folder = output / STATE
        settings = settings_key(args)
        self.keys = {output_name(p): input_key(p, settings) for p in files}
        self.output = output
        try:
            before = json.loads((self.folder / "run.json").read_text()).get("outputs", {})
        except (OSError, ValueError):
            before = {}
        self.before: dict[str, str] = before if isinstance(before, dict) else {}

    def done(self, path: Path) -> bool:
        """Whether the output of ``path`` was written by a stopped run with the same input and settings."""
        name = output_name(path)
        return self.before.get(name) == self.keys[name] and (self.output / name).is_file()

    def parts_folder(self, path: Path) -> Path:
        return parts_folder(self.output, path)

    def save(self) -> None:
        """Write the record, and drop the parts of clips whose input or settings changed since the last run."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for name, key in self.keys.items():
            if self.before.get(name) != key:
                shutil.rmtree(self.folder / Path(name).stem, ignore_errors=True)
        (self.folder / "run.json").write_text(json.dumps({"outputs": self.keys}, indent=1))

    def finish(self) -> None:
        """The run ended: nothing is left to resume."""
        shutil.rmtree(self.folder, ignore_errors=True)


def parts_folder(output: Path, path: Path) -> Path:
    """Where the parts of the clip ``path`` wait to be joined."""
    return output / STATE / Path(output_name(path)).stem


def plan_units(inputs: Inputs, record: RunRecord, args: argparse.Namespace, part_frames: int) -> list[Unit]:
    """The units of the inputs not yet done: images, then clips. A clip longer than 1.5 ``part_frames`` is cut into
    parts of that many frames when its settings are fixed (not --best-settings) and --save-faces is off (track
    numbers are counted from a part's start); each part reads the context ``clip_context`` asks for."""
    units: list[Unit] = []
    for path in inputs.images:
        if not record.done(path):
            units.append(Unit(len(units), str(path), 1))
    temporal = None if args.temporal is False else TemporalOptions()
    before, after = clip_context(temporal)
    for path in inputs.videos:
        if record.done(path):
            continue
        stamps = _timestamps(path)
        count = len(stamps) if stamps is not None else 0
        if count <= part_frames * 3 // 2 or args.best_settings or args.save_faces or stamps is None:
            units.append(Unit(len(units), str(path), max(count, 1)))
            continue
        folder = record.parts_folder(path)
        for first, stop in clip_parts(count, part_frames):
            if part_done(folder, first) is None:
                read_from = max(0, first - before)
                read_to = None if stop is None else min(count, stop + after)
                units.append(Unit(len(units), str(path), (stop or count) - first, True, first, stop, read_from,
                                  stamps[read_from], read_to))
    return units


def clip_parts(count: int, part_frames: int) -> list[tuple[int, int | None]]:
    """(first, stop) of the parts of a clip of ``count`` frames: ``part_frames`` each, the last one taking the rest
    (stop None: to the clip's end, whatever the count the container declared)."""
    firsts = list(range(0, count, part_frames))
    if len(firsts) > 1 and count - firsts[-1] < part_frames:
        firsts.pop()  # a short tail joins the part before
    return [(first, None if first == firsts[-1] else first + part_frames) for first in firsts]


def _timestamps(path: Path) -> list[int] | None:
    try:
        return frame_timestamps(path)
    except (VideoReadError, OSError):  # unreadable: the worker restoring it whole reports it as a single run does
        return None


__all__ = ["NOT_SETTINGS", "STATE", "RunRecord", "Unit", "clip_parts", "input_key", "parts_folder", "plan_units",
           "settings_key"]
