"""Restored faces blended along their track (``codeformer.face_blend``): only where the input faces agree, only
within the track and the window, the same whatever the chunking, streamed with a look-ahead of window // 2 chunks."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import read_rgb
from test_codes import face, fidelity_rule
from tiny_networks import tiny_model

from codeformer.codes import restore_tracked_faces
from codeformer.errors import InputError
from codeformer.face_blend import FaceChunk, blend_clip_faces, blend_face, blend_face_torch, guide_weight
from codeformer.temporal import TemporalOptions
from codeformer.types import Face, Faces

RNG = np.random.default_rng(5)


def noisy(photo: np.ndarray, sigma: float = 4.0) -> np.ndarray:
    return np.clip(photo + RNG.normal(0, sigma, photo.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return read_rgb("aligned_0143.png")


def test_guide_weight_is_one_where_inputs_agree_and_near_zero_where_the_face_changed(photo):
    changed = photo.copy()
    changed[300:420, 150:360] = 255 - changed[300:420, 150:360]  # the mouth region changes (a spoken word)
    w = guide_weight(noisy(photo), noisy(changed))
    assert w.shape == (512, 512, 1) and w.dtype == np.float32
    assert w[:200].min() > 0.9  # only noise differs above the mouth
    assert w[330:390, 180:330].max() < 0.01


def test_blend_averages_where_inputs_agree_and_keeps_the_own_face_where_they_differ(photo):
    crop, other_crop = noisy(photo), noisy(photo)
    own = RNG.integers(0, 256, (512, 512, 3), dtype=np.uint8)
    other = RNG.integers(0, 256, (512, 512, 3), dtype=np.uint8)
    assert blend_face(crop, own, []) is own
    mean = blend_face(crop, own, [(other_crop, other)]).astype(float)
    np.testing.assert_allclose(mean, (own.astype(float) + other) / 2, atol=10)  # weight 1 up to the noise
    opposite = np.where(crop > 127, 0, 255).astype(np.uint8)  # at least 128 levels from the crop everywhere
    unlike = blend_face(crop, own, [(opposite, other)])
    assert np.abs(unlike.astype(float) - own).mean() < 0.1


def test_the_device_blend_is_the_host_blend(photo):
    """``blend_face_torch`` (the device path's, run here on the CPU) against ``blend_face``: neighbours alike in
    places and changed in others, so the weights take every value; within one level where float rounding differs."""
    changed = photo.copy()
    changed[300:420, 150:360] = 255 - changed[300:420, 150:360]
    crop = noisy(photo)
    neighbours = [(noisy(photo), noisy(photo, 12)), (noisy(changed), RNG.integers(0, 256, (512, 512, 3), np.uint8))]
    own = noisy(photo, 8)
    host, device = blend_face(crop, own, neighbours), blend_face_torch(crop, own, neighbours, "cpu")
    assert device.dtype == np.uint8 and device.shape == host.shape
    difference = np.abs(host.astype(int) - device)
    assert difference.max() <= 1 and difference.mean() < 1e-3
    assert blend_face_torch(crop, own, [], "cpu") is own


def test_the_stream_blends_on_the_given_device(clip):
    faces, crops, restored = clip
    host = np.concatenate(list(blend_clip_faces(chunks_of(faces, crops, restored, 3), 3)))
    device = np.concatenate(list(blend_clip_faces(chunks_of(faces, crops, restored, 3), 3, "cpu")))
    assert not np.array_equal(device, restored)
    assert np.abs(host.astype(int) - device).max() <= 1


def chunks_of(faces: list[Face], crops: np.ndarray, restored: np.ndarray, frames_per_chunk: int) -> list[FaceChunk]:
    last = max(f.source_index for f in faces)
    out = []
    for start in range(0, last + 1, frames_per_chunk):
        rows = [i for i, f in enumerate(faces) if start <= f.source_index < start + frames_per_chunk]
        out.append(FaceChunk(tuple(faces[i] for i in rows), crops[rows], restored[rows]))
    return out


@pytest.fixture(scope="module")
def clip(photo):
    """Five frames: track 0 in all (frame 4 a different face: a cut), track 1 in frames 0-2, an untracked face at 1."""
    layout = [(0, 0), (0, 1), (1, 0), (1, 1), (1, None), (2, 0), (2, 1), (3, 0), (4, 0)]
    faces = [face(t, k) for t, k in layout]
    other = read_rgb("aligned_0342.png")
    crops = np.stack([noisy(other if (k == 1 or t == 4) else photo) for t, k in layout])
    restored = RNG.integers(0, 256, crops.shape, dtype=np.uint8)
    return faces, crops, restored


def blended(clip, window: int, frames_per_chunk: int) -> np.ndarray:
    faces, crops, restored = clip
    return np.concatenate(list(blend_clip_faces(chunks_of(faces, crops, restored, frames_per_chunk), window)))


def test_window_1_keeps_every_restoration(clip):
    np.testing.assert_array_equal(blended(clip, 1, 2), clip[2])


@pytest.mark.parametrize("window", [3, 5])
def test_the_result_does_not_depend_on_the_chunking(clip, window):
    whole = blended(clip, window, 8)
    for frames_per_chunk in (1, 2, 3):
        np.testing.assert_array_equal(blended(clip, window, frames_per_chunk), whole)


def test_each_face_blends_with_its_own_track_within_the_window_only(clip):
    faces, crops, restored = clip
    out = blended(clip, 3, 2)
    row = {(f.source_index, f.track): i for i, f in enumerate(faces)}

    def expect(t: int, k: int, near: list[int]) -> np.ndarray:
        i = row[(t, k)]
        return blend_face(crops[i], restored[i], [(crops[row[(s, k)]], restored[row[(s, k)]]) for s in near])

    np.testing.assert_array_equal(out[row[(0, 0)]], expect(0, 0, [1]))
    np.testing.assert_array_equal(out[row[(2, 0)]], expect(2, 0, [1, 3]))  # not frames 0 and 4 (2 away)
    np.testing.assert_array_equal(out[row[(2, 1)]], expect(2, 1, [1]))  # track 1 ends at frame 2
    np.testing.assert_array_equal(out[row[(1, None)]], restored[row[(1, None)]])  # untracked: as restored
    # the cut: frame 4's face is another person; where the two aligned faces differ, frame 4 keeps its own
    # restoration and frame 3 blends with frame 2 only
    own, three = restored[row[(4, 0)]].astype(float), restored[row[(3, 0)]].astype(float)
    differs = np.abs(crops[row[(4, 0)]].astype(float) - crops[row[(3, 0)]]).mean(axis=2) > 60
    assert differs.mean() > 0.2
    assert np.abs(out[row[(4, 0)]] - own)[differs].mean() < 0.02 * np.abs((own + three) / 2 - own)[differs].mean()
    assert np.abs(out[row[(3, 0)]] - expect(3, 0, [2]).astype(float))[differs].mean() < 1.0


def test_chunks_are_yielded_once_their_look_ahead_has_come(clip):
    faces, crops, restored = clip
    chunks = chunks_of(faces, crops, restored, 1)
    taken = []

    def source():
        for chunk in chunks:
            taken.append(chunk)
            yield chunk

    stream = blend_clip_faces(source(), 3)
    for t in range(len(chunks)):
        next(stream)
        assert len(taken) == min(len(chunks), t + 2)
    assert next(stream, None) is None


def test_restore_tracked_faces_blends_as_the_stream(photo):
    """The modular Restore Faces path: restore_tracked_faces with a face window is restore + blend_clip_faces."""
    tiny = tiny_model()
    faces = Faces(tuple(face(t, 0) for t in range(3)), ((512, 512),) * 3)
    crops = np.stack([noisy(photo) for _ in range(3)])
    plain, _ = restore_tracked_faces(tiny, faces, crops, fidelity_rule, window=3)
    smooth, _ = restore_tracked_faces(tiny, faces, crops, fidelity_rule, window=3, face_window=3,
                                      frames_per_chunk=2)
    expected = np.concatenate(list(blend_clip_faces([FaceChunk(faces.faces, crops, plain)], 3)))
    np.testing.assert_array_equal(smooth, expected)
    assert not np.array_equal(smooth, plain)


def test_even_face_window_is_refused():
    with pytest.raises(InputError, match="face window must be an odd number"):
        TemporalOptions(face_window=2)
