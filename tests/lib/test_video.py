"""codeformer.video: clips made here with PyAV itself (small and short), read, written back and read again."""

from __future__ import annotations

import inspect
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from codeformer.errors import InputError
from codeformer.video import VideoWriteError, VideoWriter, probe_video, read_frames

RATE = 24


def smooth(index: int, h: int, w: int) -> np.ndarray:
    """A smooth colour ramp that moves with the frame index (H.264 keeps it well: PSNR is meaningful)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    r = 128 + 100 * np.sin(x / w * np.pi + index / 5)
    g = 128 + 100 * np.cos(y / h * np.pi + index / 7)
    b = np.full_like(r, 60 + 5 * index)
    return np.clip(np.dstack([r, g, b]), 0, 255).astype(np.uint8)


def make_clip(path: Path, n: int = 12, size: tuple[int, int] = (48, 64), pts: list[int] | None = None,
              audio: str | None = None, rotation: int = 0, options: dict[str, str] | None = None) -> list[np.ndarray]:
    """Write a clip (time base 1/RATE unless ``pts`` is irregular); returns its frames."""
    h, w = size
    frames = [smooth(i, h, w) for i in range(n)]
    with av.open(str(path), "w", options=options or {}) as out:
        video = out.add_stream("libx264", rate=RATE, options={"crf": "10"})
        video.height, video.width, video.pix_fmt = h, w, "yuv420p"
        base = Fraction(1, RATE) if pts is None else Fraction(1, 1000)
        video.codec_context.time_base = base
        if rotation:
            video.set_display_rotation(rotation)
        sound = None
        if audio:
            sound = out.add_stream(audio, rate=44100)
            sound.layout = "mono"
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i if pts is None else pts[i]
            frame.time_base = base
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
        if sound is not None:
            t = np.arange(44100 * n // RATE) / 44100
            samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
            if audio.startswith("pcm_s16"):
                data = av.AudioFrame.from_ndarray((samples * 32767).astype(np.int16), format="s16", layout="mono")
            else:
                data = av.AudioFrame.from_ndarray(samples, format="flt", layout="mono")
            data.sample_rate, data.pts = 44100, 0
            for packet in sound.encode(data):
                out.mux(packet)
            for packet in sound.encode(None):
                out.mux(packet)
    return frames


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / max(mse, 1e-10)))


def rewrite(src: Path, dst: Path, **kwargs) -> VideoWriter:
    """Read ``src`` and write its frames unchanged to ``dst`` (audio from ``src``)."""
    info = probe_video(src)
    with VideoWriter(dst, info, (info.height, info.width), audio_from=src, **kwargs) as writer:
        for frame in read_frames(src):
            writer.write(frame.image, frame.pts)
    return writer


def audio_packets(path: Path) -> tuple[str, int, float]:
    with av.open(str(path)) as c:
        stream = c.streams.audio[0]
        packets = [p for p in c.demux(stream) if p.size]
        end = max((p.pts + (p.duration or 0)) * p.time_base for p in packets)
        return stream.codec_context.name, len(packets), float(end)


def test_round_trip_keeps_count_rate_size_and_content(tmp_path):
    src, dst = tmp_path / "in.mp4", tmp_path / "out.mp4"
    originals = make_clip(src, n=15)
    info = probe_video(src)
    assert (info.width, info.height, info.frames, info.rate, info.has_audio) == (64, 48, 15, RATE, False)
    writer = rewrite(src, dst)
    assert writer.notes == []
    out = probe_video(dst)
    assert (out.width, out.height, out.frames, out.rate) == (64, 48, 15, RATE)
    frames = list(read_frames(dst))
    assert [f.index for f in frames] == list(range(15))
    assert min(psnr(f.image, o) for f, o in zip(frames, originals, strict=True)) > 35
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "out.mp4"]  # no temporary file left


def test_variable_frame_rate_timestamps_are_kept(tmp_path):
    src, dst = tmp_path / "vfr.mkv", tmp_path / "out.mp4"
    irregular = [0, 40, 70, 150, 160, 230, 400, 420, 500, 610]
    make_clip(src, n=len(irregular), pts=irregular)
    info = probe_video(src)
    seconds = [f.pts * info.time_base for f in read_frames(src)]
    assert seconds == [Fraction(p, 1000) for p in irregular]
    rewrite(src, dst)
    out = probe_video(dst)
    assert [f.pts * out.time_base for f in read_frames(dst)] == seconds


def test_aac_audio_is_copied(tmp_path):
    src, dst = tmp_path / "talk.mp4", tmp_path / "out.mp4"
    make_clip(src, n=24, audio="aac")
    assert probe_video(src).has_audio
    writer = rewrite(src, dst)
    assert writer.notes == []
    codec, count, end = audio_packets(dst)
    want_codec, want_count, want_end = audio_packets(src)
    assert (codec, count) == (want_codec, want_count) == ("aac", want_count)
    assert end == pytest.approx(want_end, abs=0.03)
    with av.open(str(src)) as a, av.open(str(dst)) as b:  # copied: the very same bytes, not re-encoded
        assert [bytes(p) for p in a.demux(audio=0) if p.size] == [bytes(p) for p in b.demux(audio=0) if p.size]


def test_pcm_audio_is_reencoded_for_mp4_with_a_note(tmp_path):
    src, dst = tmp_path / "talk.mov", tmp_path / "out.mp4"
    make_clip(src, n=24, audio="pcm_s16le")
    writer = rewrite(src, dst)
    assert any("AAC" in n for n in writer.notes)
    codec, _, end = audio_packets(dst)
    assert codec == "aac" and end == pytest.approx(1.0, abs=0.1)


def test_odd_size_is_padded_not_cropped(tmp_path):
    src, dst = tmp_path / "odd.mkv", tmp_path / "out.mp4"
    make_clip(src, n=10, size=(48, 64))
    info = probe_video(src)
    image = smooth(3, 49, 65)
    with VideoWriter(dst, info, (49, 65)) as writer:
        for _ in range(10):
            writer.write(image, None)
    assert len(writer.notes) == 1 and "65x49" in writer.notes[0] and "66x50" in writer.notes[0]
    out = probe_video(dst)
    assert (out.width, out.height, out.frames) == (66, 50, 10)
    frame = next(iter(read_frames(dst))).image
    assert psnr(frame[:49, :65], image) > 35
    assert psnr(frame[:49, 65], image[:, 64]) > 30  # the extra column repeats the last one


def test_an_exception_leaves_no_file(tmp_path):
    src, dst = tmp_path / "in.mp4", tmp_path / "out.mp4"
    make_clip(src, n=10, audio="aac")
    info = probe_video(src)
    with pytest.raises(KeyboardInterrupt), VideoWriter(dst, info, (48, 64), audio_from=src) as writer:
        writer.write(smooth(0, 48, 64), 0)
        raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_existing_output_is_refused_unless_overwrite(tmp_path):
    src, dst = tmp_path / "in.mp4", tmp_path / "out.mp4"
    make_clip(src, n=10)
    dst.write_bytes(b"keep me")
    info = probe_video(src)
    with pytest.raises(VideoWriteError, match=rf"{dst}.*already exists.*overwrite"):
        VideoWriter(dst, info, (48, 64))
    assert dst.read_bytes() == b"keep me"
    rewrite(src, dst, overwrite=True)
    assert probe_video(dst).frames == 10
    with pytest.raises(VideoWriteError, match="over its input"):
        VideoWriter(src, info, (48, 64), overwrite=True)
    with pytest.raises(VideoWriteError, match=r"\.mp4"):
        VideoWriter(tmp_path / "out.webm", info, (48, 64))


@pytest.mark.parametrize(("faststart", "n"), [(False, 30), (True, 20), (True, 30)])
def test_truncated_file_is_an_input_error(tmp_path, faststart, n):
    src = tmp_path / "cut.mp4"
    make_clip(src, n=n, audio="aac", options={"movflags": "faststart"} if faststart else None)
    data = src.read_bytes()
    src.write_bytes(data[: _inside_a_packet(src, len(data) // 2)])
    if not faststart:  # the index (moov) was at the end: nothing can be read
        with pytest.raises(InputError, match=rf"{src} is not a readable video.*cut short") as caught:
            probe_video(src)
        assert "\n" not in str(caught.value)
        return
    assert probe_video(src).frames == n  # the index is whole; the frames it points to are not all there
    got = []
    with pytest.raises(InputError, match=rf"{src}.*(cut short|only \d+ of its {n} frames)") as caught:
        for frame in read_frames(src):  # the frames before the cut come first, then the error
            got.append(frame.index)
    assert 0 < len(got) < n and "\n" not in str(caught.value)


def _inside_a_packet(path, near: int) -> int:
    """A byte offset in the middle of the video packet stored nearest ``near``: a cut there is always damage the
    demuxer sees (a cut that falls exactly between packets is a shorter file, not a damaged one)."""
    with av.open(str(path)) as container:
        packets = [(p.pos, p.size) for p in container.demux(video=0) if p.pos is not None and p.size]
    pos, size = min(packets, key=lambda p: abs(p[0] - near))
    return pos + size // 2


@pytest.mark.parametrize("content", [b"not a video at all\n" * 50, b""])
def test_not_a_video_is_an_input_error(tmp_path, content):
    path = tmp_path / "notes.mp4"
    path.write_bytes(content)
    with pytest.raises(InputError, match=rf"{path} is not a readable video"):
        probe_video(path)
    with pytest.raises(InputError, match=rf"{path}"):
        next(read_frames(path))
    with pytest.raises(InputError, match="cannot be read.*check the path"):
        probe_video(tmp_path / "missing.mp4")


def test_frames_are_streamed(tmp_path, monkeypatch):
    src = tmp_path / "in.mp4"
    make_clip(src, n=20)
    frames = read_frames(src)
    assert inspect.isgenerator(frames)
    decoded = []
    original = av.VideoFrame.to_ndarray

    def counting(self, *args, **kwargs):
        decoded.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(av.VideoFrame, "to_ndarray", counting)
    first = next(frames)
    assert first.index == 0 and first.image.shape == (48, 64, 3) and first.image.dtype == np.uint8
    assert len(decoded) == 1  # one frame converted, not the clip
    assert sum(1 for _ in frames) == 19
    assert len(decoded) == 20


def test_unknown_frame_count_and_rotation(tmp_path):
    src = tmp_path / "turned.mp4"
    originals = make_clip(src, n=10, rotation=90)
    info = probe_video(src)
    assert (info.width, info.height, info.rotation) == (48, 64, 90)
    first = next(read_frames(src)).image
    assert psnr(first, np.rot90(originals[0])) > 35
    mkv = tmp_path / "count.mkv"
    make_clip(mkv, n=10)
    info = probe_video(mkv)
    assert info.frames == 0 and info.rate == RATE
    writer_out = tmp_path / "out.mp4"
    rewrite(mkv, writer_out)
    assert probe_video(writer_out).frames == 10
