"""A long clip cut into parts (what ``restore --ray`` hands to different workers), without Ray: each part restored
alone from the context frames ``ray_plan`` gives it, kept losslessly, and joined, is the clip a single run writes.

The clip has a real face in frames 23 and 24, across the boundary of the last two parts, so the temporal smoothing
(tracks, landmarks, code logits) reaches over it; the other frames have no face. The runs load the tiny CodeFormer and
parser (``tiny_networks``): the subject is how the parts are cut, restored and joined, and the full-size networks,
at seconds a face here, would restore the two faces in five runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import cli_args, gradient, max_change, read_rgb
from test_cli_video import make_clip
from tiny_networks import use_tiny_networks

from codeformer.cli import main
from codeformer.cli.args import build_parser
from codeformer.cli.inputs import find_inputs
from codeformer.cli.ray_plan import RunRecord, clip_parts, plan_units
from codeformer.cli.session import Models
from codeformer.cli.video import VideoJob, VideoPart, join_parts, restore_video
from codeformer.video import read_frames
from codeformer.video_parts import PartWriter, part_done, read_part

PART = 8


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    face = read_rgb("whole_01.jpg")[:188]  # even sides for yuv420p
    plain = gradient(*face.shape[:2])
    frames = [np.roll(face if i in (23, 24) else plain, i, axis=1) for i in range(4 * PART + 2)]
    path = tmp_path_factory.mktemp("clip") / "talk.mp4"
    make_clip(path, frames, key_every=6)  # the last part seeks to the key frame before its context
    return path


@pytest.mark.parametrize(("count", "parts"), [
    (12, [(0, None)]),
    (16, [(0, 8), (8, None)]),
    (23, [(0, 8), (8, None)]),  # a short tail joins the part before
    (24, [(0, 8), (8, 16), (16, None)]),
])
def test_clip_parts_cover_the_clip_once(count, parts):
    assert clip_parts(count, PART) == parts


def test_part_file_keeps_frames_and_timestamps_bit_for_bit(tmp_path):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (34, 50, 3), dtype=np.uint8) for _ in range(3)]
    with PartWriter(tmp_path, 5) as writer:
        for i, image in enumerate(frames):
            writer.write(image, 1000 + 7 * i, faces=i)
    info = part_done(tmp_path, 5)
    assert info is not None and (info.first, info.timestamps, info.faces) == (5, [1000, 1007, 1014], 3)
    back = list(read_part(tmp_path, 5))
    assert [pts for _, pts in back] == [1000, 1007, 1014]
    for (image, _), written in zip(back, frames, strict=True):
        np.testing.assert_array_equal(image, written)
    assert part_done(tmp_path, 0) is None


def test_a_clip_restored_in_parts_and_joined_is_the_single_run_clip(models_dir, clip, tmp_path, monkeypatch):
    use_tiny_networks(monkeypatch)
    out = tmp_path / "out"
    options = ["-s", "1", "--max-faces", "1"]
    assert main(["restore", str(clip), *cli_args(models_dir, tmp_path / "whole"), *options]) == 0
    args = build_parser().parse_args(["restore", str(clip), *cli_args(models_dir, out), *options,
                                      "--part-frames", str(PART)])
    inputs = find_inputs(args.inputs)
    record = RunRecord(out, args, inputs.files)
    units = plan_units(inputs, record, args, PART)
    assert [(u.first, u.stop, u.read_from, u.read_to) for u in units] == [
        (0, 8, 0, 18), (8, 16, 0, 26), (16, 24, 0, 34), (24, None, 8, None)]  # context: 16 frames before, 10 after
    assert [u.frames for u in units] == [8, 8, 8, 10]  # the progress bar's steps: the part's own frames
    job = VideoJob.from_args(args, Models.load(args), torch.device("cpu"), inputs.files)
    failed: list[Path] = []
    for unit in reversed(units):  # workers finish in any order
        restore_video(clip, job, failed, VideoPart(record.parts_folder(clip), unit.first, unit.stop, unit.read_from,
                                                   unit.read_from_pts, unit.read_to))
    assert not failed
    join_parts(clip, out / "talk.mp4", 1.0, False, record.parts_folder(clip), [u.first for u in units])
    whole = list(read_frames(tmp_path / "whole" / "talk.mp4"))
    joined = list(read_frames(out / "talk.mp4"))
    assert [f.pts for f in joined] == [f.pts for f in whole] and len(whole) == 4 * PART + 2
    for a, b in zip(joined, whole, strict=True):
        np.testing.assert_array_equal(a.image, b.image)
    source = list(read_frames(clip))
    assert max_change(whole[23].image, source[23].image) > 20 > max_change(whole[22].image, source[22].image)  # face
    assert (out / "talk.mp4").read_bytes() == (tmp_path / "whole" / "talk.mp4").read_bytes()
