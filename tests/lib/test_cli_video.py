"""``python -m codeformer restore|advise`` with video inputs: tiny clips made here with PyAV (frames without faces
where the test is not about restoring: CodeFormer with random weights costs seconds per face on the CPU)."""

from __future__ import annotations

import errno
import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from helpers import cli_args, gradient, max_change, read_rgb
from tiny_networks import use_tiny_networks

from codeformer.cli import main
from codeformer.cli.outputs import write_image
from codeformer.video import VideoWriter, probe_video, read_frames

RATE = 24


def make_clip(path: Path, frames: list[np.ndarray], pts: list[int] | None = None, audio: bool = False,
              faststart: bool = False, key_every: int | None = None) -> None:
    """Write ``frames`` as H.264 (time base 1/RATE, or 1/1000 with irregular ``pts``; a key frame every
    ``key_every`` frames), with a 440 Hz AAC track."""
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w", options={"movflags": "faststart"} if faststart else {}) as out:
        video = out.add_stream("libx264", rate=RATE, options={"crf": "10"})
        video.height, video.width, video.pix_fmt = h, w, "yuv420p"
        if key_every is not None:
            video.codec_context.gop_size = key_every
        base = Fraction(1, RATE) if pts is None else Fraction(1, 1000)
        video.codec_context.time_base = base
        sound = out.add_stream("aac", rate=44100) if audio else None
        if sound is not None:
            sound.layout = "mono"
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = (i if pts is None else pts[i]), base
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if sound is not None:
            t = np.arange(44100 * len(frames) // RATE) / 44100
            data = av.AudioFrame.from_ndarray((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None],
                                              format="flt", layout="mono")
            data.sample_rate, data.pts = 44100, 0
            out.mux(sound.encode(data))
            out.mux(sound.encode(None))


def plain_frames(n: int, h: int = 48, w: int = 64) -> list[np.ndarray]:
    """Frames without faces that change a little over time."""
    return [np.roll(gradient(h, w), i, axis=1) for i in range(n)]


def restore(models_dir: Path, out: Path, *inputs: Path | str) -> int:
    return main(["restore", *map(str, inputs), *cli_args(models_dir, out)])


def test_clip_and_image_of_the_same_stem_keep_count_rate_size_and_audio(models_dir, tmp_path):
    make_clip(tmp_path / "a.mp4", plain_frames(8), audio=True)
    write_image(tmp_path / "a.png", gradient(30, 40))
    out = tmp_path / "out"
    assert restore(models_dir, out, tmp_path / "a.png", tmp_path / "a.mp4") == 0  # a.png and a.mp4: no clash
    assert sorted(p.name for p in out.iterdir()) == ["a.mp4", "a.png"]  # no temporary file left
    info = probe_video(out / "a.mp4")
    assert (info.frames, info.rate, info.width, info.height, info.has_audio) == (8, RATE, 128, 96, True)
    with av.open(str(out / "a.mp4")) as clip:
        assert clip.streams.audio[0].codec_context.name == "aac"


def test_faces_are_restored_and_saved_by_track(models_dir, tmp_path, monkeypatch):
    """A real face, moving a pixel per frame (the small detector also sees false faces: one kept), restored in
    every frame, saved as <frame>_<track>. The tiny networks: the full-size ones cost ~12 s a face here."""
    use_tiny_networks(monkeypatch)
    face = read_rgb("whole_01.jpg")[:188]  # even sides for the yuv420p source clip
    frames = [np.roll(face, i, axis=1) for i in range(3)]
    make_clip(tmp_path / "talk.mp4", frames)
    out = tmp_path / "out"
    assert restore(models_dir, out, tmp_path / "talk.mp4", "-s", "1", "--save-faces", "--max-faces", "1") == 0
    saved = sorted(p.name for p in (out / "faces" / "talk").iterdir())
    assert saved == [f"{i:06d}_00_{kind}.png" for i in range(3) for kind in ("crop", "restored")]
    restored = [f.image for f in read_frames(out / "talk.mp4")]
    assert len(restored) == 3 and restored[0].shape == face.shape
    source = [f.image for f in read_frames(tmp_path / "talk.mp4")]
    assert all(max_change(r, s) > 20 for r, s in zip(restored, source, strict=True))  # each frame's face replaced


def test_variable_frame_rate_and_odd_size_without_faces(models_dir, tmp_path, caplog):
    """Per-frame restore (--no-temporal); the timestamps are kept; 75x99 is padded to 76x100, with a note."""
    irregular = [0, 40, 70, 150, 160, 230]
    make_clip(tmp_path / "vfr.mkv", plain_frames(6, 50, 66), pts=irregular)
    out = tmp_path / "out"
    assert restore(models_dir, out, tmp_path / "vfr.mkv", "-s", "1.5", "--no-temporal") == 0
    info = probe_video(out / "vfr.mp4")
    assert [f.pts * info.time_base for f in read_frames(out / "vfr.mp4")] == [Fraction(p, 1000) for p in irregular]
    assert (info.width, info.height) == (100, 76)
    assert "vfr.mp4: the 99x75 frames are padded to 100x76" in caplog.text


@pytest.mark.parametrize("faststart", [False, True])  # the index lost (nothing decodes) / frames cut mid-clip
def test_truncated_clip_is_skipped_and_leaves_nothing(models_dir, tmp_path, capsys, faststart):
    clip = tmp_path / "cut.mp4"
    make_clip(clip, plain_frames(10), audio=True, faststart=faststart)  # cut: 3 frames decode, then the error
    clip.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    out = tmp_path / "out"
    assert restore(models_dir, out, clip) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(clip) in errors[0] and errors[0].endswith("; skipped")
    assert not out.exists()  # no output, no temporary file: the folder the run made is removed, being empty


def test_aligned_and_existing_outputs_are_refused_before_any_work(models_dir, tmp_path, capsys):
    make_clip(tmp_path / "clip.mp4", plain_frames(2))
    out = tmp_path / "out"
    assert restore(models_dir / "missing", out, tmp_path / "clip.mp4", "--aligned") == 2
    assert "--aligned takes aligned 512x512 face images, not videos" in capsys.readouterr().err
    (out / "faces" / "clip").mkdir(parents=True)
    (out / "faces" / "clip" / "000000_00_crop.png").write_bytes(b"mine")
    (out / "clip.mp4").write_bytes(b"mine")
    # a models folder that does not exist: the refusal comes before any model is looked for
    assert restore(models_dir / "missing", out, tmp_path / "clip.mp4", "--save-faces") == 2
    err = capsys.readouterr().err
    assert "2 output file(s) already exist" in err and "--overwrite" in err
    assert (out / "clip.mp4").read_bytes() == b"mine"


@pytest.mark.parametrize(("error", "code", "said"), [
    (OSError(errno.ENOSPC, "No space left on device"), 1, "cannot write {out}: No space left on device; free some"),
    (KeyboardInterrupt(), 130, "interrupted"),
], ids=["disk_full", "ctrl_c"])
def test_disk_full_or_ctrl_c_while_writing_leave_no_file(models_dir, tmp_path, capsys, monkeypatch, error, code,
                                                         said):
    make_clip(tmp_path / "clip.mp4", plain_frames(3))
    write = VideoWriter.write

    def second_fails(self, image, pts):
        if self._count:
            raise error
        write(self, image, pts)

    monkeypatch.setattr(VideoWriter, "write", second_fails)
    out = tmp_path / "out"
    assert restore(models_dir, out, tmp_path / "clip.mp4") == code
    assert capsys.readouterr().err.startswith("error: " + said.format(out=out / "clip.mp4"))
    assert not out.exists()  # the temporary file is gone too: the folder the run made is removed, being empty


def test_advise_prints_json_for_a_video(models_dir, tmp_path, capsys):
    make_clip(tmp_path / "clip.mkv", plain_frames(3))
    assert main(["advise", str(tmp_path / "clip.mkv"), "--models-dir", str(models_dir), "--offline",
                 "--device", "cpu", "--detector", "retinaface_mobile0.25"]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["video"] == str(tmp_path / "clip.mkv") and len(line) > 1  # then the clip advice's fields


def test_best_settings_advise_on_sampled_frames_and_restore_with_them(models_dir, tmp_path, capsys):
    make_clip(tmp_path / "clip.mp4", plain_frames(3))
    out = tmp_path / "out"
    assert restore(models_dir, out, tmp_path / "clip.mp4", "--best-settings", "photo") == 0
    said = capsys.readouterr().out
    assert said.startswith(f"{tmp_path / 'clip.mp4'}: fidelity ") and ", temporal o" in said
    upscale = float(said.split(", upscale ")[1].split(",")[0])
    info = probe_video(out / "clip.mp4")
    assert (info.frames, info.width) == (3, round(64 * upscale))
