"""Temporal code smoothing: the split network equals spandrel's forward, and the streaming restore of video faces.

Most tests run the tiny CodeFormer (``tiny_networks``: spandrel's own forward over small blocks), milliseconds
per face; two run the full-size random-weight CodeFormer (seconds per face on the CPU).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import read_rgb
from tiny_networks import TinyCodeFormer, tiny_model

from codeformer.codes import Encoded, decode, encode, pick_codes, restore_clip_faces, restore_tracked_faces
from codeformer.errors import InputError
from codeformer.restore import restore_found_faces
from codeformer.types import Face, Faces


def face(frame: int, track: int | None, gray: bool = False) -> Face:
    return Face(source_index=frame, box=(0.0, 0.0, 512.0, 512.0), score=0.9, landmarks=np.zeros((5, 2)),
                affine=np.eye(2, 3), inverse=np.eye(2, 3), source_size=(512, 512), is_gray=gray, track=track)


def frames_of(photo: np.ndarray, count: int, seed: int) -> list[np.ndarray]:
    """``count`` consecutive 'video frames' of a face: the photo with a little fresh noise each."""
    rng = np.random.default_rng(seed)
    return [np.clip(photo + rng.normal(0, 6, photo.shape), 0, 255).astype(np.uint8) for _ in range(count)]


# Four frames: track 0 in all, track 1 (a gray face) in frames 0, 1 and 3 (missing at 2), one untracked face at 2.
LAYOUT = [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, None), (3, 0), (3, 1)]


@pytest.fixture(scope="module")
def clip():
    a = frames_of(read_rgb("aligned_0143.png"), 4, seed=1)
    b = frames_of(read_rgb("aligned_0342.png"), 4, seed=2)
    gray = [np.repeat(f.mean(axis=2, keepdims=True), 3, axis=2).astype(np.uint8) for f in b]
    other = read_rgb("aligned_0240.png")
    crops = np.stack([a[t] if k == 0 else gray[t] if k == 1 else other for t, k in LAYOUT])
    faces = Faces(tuple(face(t, k, gray=k == 1) for t, k in LAYOUT), ((512, 512),) * 4)
    return faces, crops


def fidelity_rule(f: Face) -> float:
    return 0.0 if f.track == 1 else 0.7


def chunked(faces: Faces, crops: np.ndarray, frames_per_chunk: list[int]):
    """(faces, crops) chunks of the given numbers of frames."""
    start = 0
    for count in frames_per_chunk:
        rows = [i for i, f in enumerate(faces.faces) if start <= f.source_index < start + count]
        yield tuple(faces.faces[i] for i in rows), crops[rows]
        start += count


def run_clip(model, faces, crops, frames_per_chunk, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    chunks = list(restore_clip_faces(model, chunked(faces, crops, frames_per_chunk), fidelity_rule, **kwargs))
    assert [len(c.restored) for c in chunks] == [len(f) for f, _ in chunked(faces, crops, frames_per_chunk)]
    return np.concatenate([c.restored for c in chunks]), np.concatenate([c.codes for c in chunks])


@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last])
def test_decode_equals_forward_bit_for_bit(fmt):
    net = TinyCodeFormer().to(memory_format=fmt)
    x = (torch.rand(2, 3, 512, 512) * 2 - 1).contiguous(memory_format=fmt)
    with torch.inference_mode():
        encoded = encode(net, x)
        for w in (0.0, 0.5, 1.0):
            assert torch.equal(decode(net, encoded, encoded.logits, w), net(x, weight=w)[0])
        lean = encode(net, x, keep_features=False)  # fidelity 0 needs no features
        assert lean.features == {} and torch.equal(decode(net, lean, lean.logits, 0.0), net(x, weight=0.0)[0])
        with pytest.raises(ValueError, match="features"):
            decode(net, lean, lean.logits, 0.5)


def test_encoded_splits_and_concatenates_per_face():
    net = TinyCodeFormer()
    with torch.inference_mode():
        encoded = encode(net, torch.rand(3, 3, 512, 512) * 2 - 1)
    parts = [encoded[i : i + 1] for i in range(3)]
    assert [len(p) for p in parts] == [1, 1, 1] and sorted(encoded.features) == ["256", "32"]
    joined = Encoded.cat([parts[2], parts[0]])
    assert torch.equal(joined.logits, encoded.logits[[2, 0]])
    assert torch.equal(joined.features["32"], encoded.features["32"][[2, 0]])


def test_full_size_decode_equals_forward_bit_for_bit(models):
    """One face (the split is per face; a batch of two costs twice the seconds and tests nothing more)."""
    net = models.codeformer.module.to(memory_format=torch.contiguous_format)
    x = torch.from_numpy(read_rgb("aligned_0143.png")[None])
    x = (x.permute(0, 3, 1, 2).float() / 255.0 - 0.5) / 0.5
    with torch.inference_mode():
        encoded = encode(net, x)
        assert torch.equal(decode(net, encoded, encoded.logits, 0.5), net(x, weight=0.5)[0])


def test_full_size_window_1_equals_restore_found_faces(models, clip):
    """One face, the one the decode test leaves out: gray, at fidelity 0 (CodeFormer skips its fusion at w=0)."""
    faces, crops = clip
    rows = [3]  # frame 1, track 1
    part = Faces(tuple(faces.faces[i] for i in rows), faces.source_sizes)
    expected = restore_found_faces(models.codeformer, part, crops[rows], fidelity_rule)
    restored, codes = restore_tracked_faces(models.codeformer, part, crops[rows], fidelity_rule, window=1)
    np.testing.assert_array_equal(restored, expected)
    assert codes.shape == (1, 256) and codes.dtype == np.int64


@pytest.fixture(scope="module")
def tiny():
    return tiny_model()


@pytest.fixture(scope="module")
def window_1(tiny, clip):
    faces, crops = clip
    return run_clip(tiny, faces, crops, [4], window=1)


@pytest.fixture(scope="module")
def window_3(tiny, clip):
    faces, crops = clip
    return run_clip(tiny, faces, crops, [4], window=3)


@pytest.mark.parametrize(("frames_per_chunk", "precision"),
                         [([1, 1, 1, 1], None), ([2, 2], None), ([3, 1], None), ([4], None), ([1, 3], "bf16")])
def test_window_1_equals_restore_found_faces(tiny, clip, frames_per_chunk, precision):
    faces, crops = clip
    expected = restore_found_faces(tiny, faces, crops, fidelity_rule, precision=precision)
    restored, _ = run_clip(tiny, faces, crops, frames_per_chunk, window=1, precision=precision)
    np.testing.assert_array_equal(restored, expected)
    gray = restored[[i for i, f in enumerate(faces.faces) if f.is_gray]]
    assert (gray[..., 0] == gray[..., 1]).all()  # the gray rule reached the gray faces


@pytest.mark.parametrize("frames_per_chunk", [[1, 1, 1, 1], [1, 3], [2, 2]])
def test_window_3_does_not_depend_on_the_chunking(tiny, clip, window_3, frames_per_chunk):
    faces, crops = clip
    restored, codes = run_clip(tiny, faces, crops, frames_per_chunk, window=3)
    np.testing.assert_array_equal(restored, window_3[0])
    np.testing.assert_array_equal(codes, window_3[1])


def test_window_3_changes_faces_only_where_codes_change(clip, window_1, window_3):
    faces, _ = clip
    changed = [(c1 != c3).any() for c1, c3 in zip(window_1[1], window_3[1], strict=True)]
    assert any(changed)  # averaging moved some picks
    for i, moved in enumerate(changed):
        if not moved:  # same picks, same face: the rest of the network saw the frame's own features
            np.testing.assert_array_equal(window_1[0][i], window_3[0][i])
    assert not np.array_equal(window_1[0], window_3[0])
    untracked = [i for i, f in enumerate(faces.faces) if f.track is None]
    assert not any(changed[i] for i in untracked)


def test_codes_are_the_picks_of_the_mean_logits_of_the_track(tiny, clip, window_3):
    faces, crops = clip
    net = tiny.module
    with torch.inference_mode():
        x = (torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255.0).contiguous(memory_format=torch.channels_last)
        logits = [encode(net, (x[i : i + 1] - 0.5) / 0.5).logits for i in range(len(crops))]
    for i, f in enumerate(faces.faces):
        near = [j for j, g in enumerate(faces.faces)
                if g.track == f.track and abs(g.source_index - f.source_index) <= 1] if f.track is not None else [i]
        mean = torch.stack([logits[j] for j in near]).mean(0)
        np.testing.assert_array_equal(window_3[1][i], pick_codes(mean)[0, :, 0].numpy())


def test_other_tracks_do_not_influence_a_track(tiny, clip, window_3):
    faces, crops = clip
    changed = crops.copy()
    track_1 = [i for i, f in enumerate(faces.faces) if f.track == 1]
    changed[track_1] = 255 - changed[track_1]
    restored, codes = run_clip(tiny, faces, changed, [4], window=3)
    track_0 = [i for i, f in enumerate(faces.faces) if f.track == 0]
    np.testing.assert_array_equal(restored[track_0], window_3[0][track_0])
    np.testing.assert_array_equal(codes[track_0], window_3[1][track_0])
    assert not np.array_equal(codes[track_1], window_3[1][track_1])


def test_restore_tracked_faces_keeps_the_faces_order(tiny, clip, window_3):
    faces, crops = clip
    for frames_per_chunk in (1, 3, 8):
        restored, codes = restore_tracked_faces(tiny, faces, crops, fidelity_rule, window=3,
                                                frames_per_chunk=frames_per_chunk)
        np.testing.assert_array_equal(restored, window_3[0])
        np.testing.assert_array_equal(codes, window_3[1])


class Recording:
    """An iterator over chunks that records how many were taken."""

    def __init__(self, chunks) -> None:
        self.chunks, self.taken = list(chunks), 0

    def __iter__(self):
        return self

    def __next__(self):
        if self.taken == len(self.chunks):
            raise StopIteration
        self.taken += 1
        return self.chunks[self.taken - 1]


def one_face_frames(count: int, track: int | None = 0):
    rng = np.random.default_rng(0)
    return [((face(t, track),), rng.integers(0, 256, (1, 512, 512, 3), dtype=np.uint8)) for t in range(count)]


@pytest.mark.parametrize("window", [1, 3, 5])
def test_chunks_are_yielded_in_order_as_soon_as_their_look_ahead_is_known(tiny, window):
    source = Recording(one_face_frames(5))
    stream = restore_clip_faces(tiny, source, 0.0, window=window)
    for t in range(5):
        chunk = next(stream)
        assert chunk.restored.shape == (1, 512, 512, 3) and chunk.codes.shape == (1, 256)
        assert source.taken == min(5, t + 1 + window // 2)
    assert next(stream, None) is None


def test_untracked_faces_and_empty_chunks_do_not_wait(tiny):
    empty = ((), np.zeros((0, 512, 512, 3), np.uint8))
    source = Recording([empty, *one_face_frames(2, track=None)])
    stream = restore_clip_faces(tiny, source, 0.0, window=3)
    first = next(stream)
    assert first.restored.shape == (0, 512, 512, 3) and first.codes.shape == (0, 256) and source.taken == 1
    next(stream)
    assert source.taken == 2


def test_interrupt_stops_the_stream(tiny):
    calls = []

    def interrupt() -> None:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt

    source = Recording(one_face_frames(6))
    with pytest.raises(KeyboardInterrupt):
        list(restore_clip_faces(tiny, source, 0.0, window=3, check_interrupt=interrupt))
    assert source.taken < 6


def test_bad_windows_and_frame_order(tiny):
    with pytest.raises(InputError, match="odd"):
        next(restore_clip_faces(tiny, one_face_frames(1), window=2))
    frames = one_face_frames(2)
    with pytest.raises(InputError, match="increasing order"):
        list(restore_clip_faces(tiny, [frames[1], frames[0]], 0.0, window=1))
