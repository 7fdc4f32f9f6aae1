"""bench.clips (synthetic test clips with ground-truth affines, written as mp4) and bench.flicker (the metrics)."""

from __future__ import annotations

import av
import numpy as np
import pytest
from helpers import read_rgb

from bench.clips import PAN_FRAMES, PAN_STEP, Clip, load_photo, shake_clip, still_clip, write_clip
from bench.flicker import code_flip_rate, crop_change, landmark_error, landmark_jitter, region_flicker, truth_landmarks

MARK = np.array([131.0, 77.0])  # (x, y) of the marker in the photo


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return load_photo("whole_01.jpg")  # 248x189: small and quick


def marker_photo(h: int = 180, w: int = 260) -> np.ndarray:
    """A dark photo with one bright Gaussian spot (sigma 2.5 px) centred at MARK."""
    y, x = np.mgrid[0:h, 0:w]
    spot = 220 * np.exp(-((x - MARK[0]) ** 2 + (y - MARK[1]) ** 2) / (2 * 2.5**2))
    return np.repeat((20 + spot).astype(np.uint8)[:, :, None], 3, axis=2)


def centroid(frame: np.ndarray) -> np.ndarray:
    """(x, y) of the bright spot: the weighted centre of what rises above the background."""
    weight = np.clip(frame[:, :, 0].astype(np.float64) - 40, 0, None)
    y, x = np.mgrid[0 : frame.shape[0], 0 : frame.shape[1]]
    return np.array([(weight * x).sum(), (weight * y).sum()]) / weight.sum()


def mapped(affine: np.ndarray, point: np.ndarray) -> np.ndarray:
    return affine[:, :2] @ point + affine[:, 2]


def test_load_photo_reads_the_shared_images():
    np.testing.assert_array_equal(load_photo("whole_00.jpg"), read_rgb("whole_00.jpg"))


@pytest.mark.parametrize("make", [still_clip, shake_clip])
def test_shapes_types_and_seed(photo, make):
    clip = make(photo, 6, seed=3)
    assert isinstance(clip, Clip) and clip.rate == 25 and len(clip.frames) == len(clip.transforms) == 6
    h, w = clip.size
    assert h % 2 == 0 and w % 2 == 0
    for frame, affine in zip(clip.frames, clip.transforms, strict=True):
        assert frame.dtype == np.uint8 and frame.shape == (h, w, 3) and frame.flags.c_contiguous
        assert affine.shape == (2, 3) and affine.dtype == np.float64
    again, other = make(photo, 6, seed=3), make(photo, 6, seed=4)
    assert all(np.array_equal(a, b) for a, b in zip(clip.frames, again.frames, strict=True))
    assert all(np.array_equal(a, b) for a, b in zip(clip.transforms, again.transforms, strict=True))
    assert not np.array_equal(clip.frames[2], other.frames[2])
    sized = make(photo, 2, size=(96, 128))
    assert sized.size == (96, 128)


def test_still_clip_fresh_noise_around_the_photo(photo):
    clip = still_clip(photo, 32, jpeg=None)
    h, w = clip.size
    base = photo[:h, :w].astype(np.float64)
    assert (h, w) == (188, 248)  # 189 rows cut to even
    assert all(np.array_equal(a, np.eye(2, 3)) for a in clip.transforms)
    frames = np.stack(clip.frames).astype(np.float64)
    assert np.abs(frames[1] - frames[0]).mean() > 3  # sigma 4 each: differences of ~4.5 on average
    assert 2.5 < np.abs(frames[0] - base).mean() < 4
    mean = frames.mean(0)
    assert np.abs(mean - base).mean() < 0.8 and abs((mean - base).mean()) < 0.1  # 4 / sqrt(32): ~0.56
    jpeg = np.stack(still_clip(photo, 8).frames).astype(np.float64)  # quality 70: noise and a little detail gone
    assert np.abs(jpeg[1] - jpeg[0]).mean() > 1 and np.abs(jpeg.mean(0) - base).mean() < 3


def test_still_clip_resized_transform_follows_the_marker():
    clip = still_clip(marker_photo(), 2, noise=0, jpeg=None, size=(120, 200))
    assert np.abs(centroid(clip.frames[0]) - mapped(clip.transforms[0], MARK)).max() < 0.15


def test_shake_clip_transforms_follow_the_marker():
    clip = shake_clip(marker_photo(), 30, noise=0, jpeg=None, seed=1)
    errors = [np.abs(centroid(f) - mapped(a, MARK)).max() for f, a in zip(clip.frames, clip.transforms, strict=True)]
    assert max(errors) < 0.15
    points = np.array([mapped(a, MARK) for a in clip.transforms])
    steps = np.linalg.norm(np.diff(points, axis=0), axis=1)
    assert 0.3 < np.median(steps) < 10  # shake of a few px, not frozen


def test_shake_clip_zoom_and_fast_pan(photo):
    clip = shake_clip(photo, 40, shake_px=0.0, zoom=0.15, noise=0, jpeg=None)
    scales = [a[0, 0] for a in clip.transforms]
    assert scales[-1] / scales[0] == pytest.approx(1.15) and np.all(np.diff(scales) > 0)
    centre = np.array([(photo.shape[1] - 1) / 2, (photo.shape[0] - 1) / 2])
    moves = np.diff([mapped(a, centre)[0] for a in clip.transforms])
    fast = np.flatnonzero(np.abs(moves) > 0.5 * PAN_STEP * clip.size[1])
    assert len(fast) == PAN_FRAMES and np.all(np.diff(fast) == 1) and 40 // 3 - 1 <= fast[0] <= 40 - 40 // 3
    assert np.abs(moves[fast]).max() < 1.2 * PAN_STEP * clip.size[1]  # ~5 % of the width a frame (x the zoom)
    assert np.abs(np.delete(moves, fast)).max() < 1  # elsewhere the slow zoom alone


def test_write_clip_round_trip(photo, tmp_path):
    clip = shake_clip(photo, 10)
    plain = write_clip(clip, tmp_path / "plain.mp4")
    with av.open(str(plain)) as container:
        assert [s.type for s in container.streams] == ["video"]
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == 10 and decoded[0].shape == clip.frames[0].shape
    assert np.abs(decoded[4].astype(np.float64) - clip.frames[4]).mean() < 3  # crf 18
    with av.open(str(write_clip(clip, tmp_path / "audio.mp4", audio=True))) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert video.codec_context.name == "h264" and audio.codec_context.name == "aac"
        assert sum(1 for _ in container.decode(video=0)) == 10
    with av.open(str(tmp_path / "audio.mp4")) as container:
        samples = sum(f.samples for f in container.decode(audio=0))
    assert samples / audio.sample_rate == pytest.approx(10 / 25, abs=0.05)
    odd = Clip([np.zeros((9, 8, 3), np.uint8)], [np.eye(2, 3)], 25)
    with pytest.raises(ValueError, match="even"):
        write_clip(odd, tmp_path / "odd.mp4")


def test_landmark_metrics():
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 100, (5, 2))
    still = np.repeat(base[None], 6, axis=0)
    assert landmark_jitter(still) == 0.0
    drift = still + np.arange(6)[:, None, None] * np.array([1.5, -0.5])  # steady motion has no second difference
    assert landmark_jitter(drift) == pytest.approx(0.0, abs=1e-12)
    sign = (-1.0) ** np.arange(6)
    alternating = still + sign[:, None, None] * np.array([0.6, 0.8])  # +-1 px: second difference 4 px
    assert landmark_jitter(alternating) == pytest.approx(4.0)
    assert landmark_error(still, still) == 0.0
    assert landmark_error(alternating, still) == pytest.approx(1.0)
    offset = still.copy()
    offset[:, 0] += [3.0, 4.0]  # one point of five 5 px off: RMS sqrt(25 / 5)
    assert landmark_error(offset, still) == pytest.approx(np.sqrt(5.0))
    with pytest.raises(ValueError):
        landmark_jitter(still[:2])
    with pytest.raises(ValueError):
        landmark_error(still, still[:3])


def test_truth_landmarks():
    base = np.array([[10.0, 20.0], [30.0, 20.0], [20.0, 30.0], [12.0, 40.0], [28.0, 40.0]])
    scaled = np.array([[2.0, 0.0, 5.0], [0.0, 2.0, -1.0]])
    turned = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0]])
    transforms = [np.eye(2, 3), scaled, turned]
    truth = truth_landmarks(base, transforms)
    assert truth.shape == (3, 5, 2)
    np.testing.assert_allclose(truth[0], base)
    np.testing.assert_allclose(truth[1], base * 2 + [5.0, -1.0])
    np.testing.assert_allclose(truth[2], np.stack([-base[:, 1], base[:, 0]], 1))  # 90 degrees


def test_crop_and_code_metrics():
    crops = np.full((4, 512, 512, 3), 77, np.uint8)
    assert crop_change(crops) == 0.0
    crops[1::2] = 255
    crops[::2] = 0
    assert crop_change(crops) == 255.0  # no uint8 wrap-around
    half = np.zeros((3, 8, 8, 3), np.uint8)
    half[1, :4] = 10  # half the pixels change by 10, then back
    assert crop_change(half) == pytest.approx(5.0)
    codes = np.tile(np.arange(256), (5, 1))
    assert code_flip_rate(codes) == 0.0
    codes[1::2, :64] += 1  # a quarter of the tokens flip each frame
    assert code_flip_rate(codes) == pytest.approx(0.25)
    with pytest.raises(ValueError):
        code_flip_rate(codes[:1])


def test_region_flicker():
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (6, 8, 3), dtype=np.uint8) for _ in range(4)]  # outside the face: anything
    for frame, value in zip(frames, (0, 200, 0, 200), strict=True):
        frame[:3, :4] = value  # the face (a quarter of the frame) alternates by 200
    masks = [np.zeros((6, 8)) for _ in frames]
    for mask in masks:
        mask[:3, :4] = 1.0
    assert region_flicker(frames, masks) == pytest.approx(200.0)
    assert region_flicker([np.full((6, 8, 3), 9, np.uint8)] * 3, masks[:3]) == 0.0
    moving = [np.zeros((6, 8, 1)), masks[1][:, :, None]]  # frame 0: no face; frame 1: the quarter; union: the quarter
    assert region_flicker(frames[:2], moving) == pytest.approx(200.0)
    with pytest.raises(ValueError, match="no pixel"):
        region_flicker(frames[:2], [np.full((6, 8), 0.5)] * 2)  # nothing above 0.5
    pooled = [np.zeros((6, 8, 3), np.uint8), np.full((6, 8, 3), 30, np.uint8), np.full((6, 8, 3), 30, np.uint8)]
    one, three = np.zeros((6, 8)), np.zeros((6, 8))
    one[0, 0] = 1.0
    three[0, :3] = 1.0
    # pair 1: one pixel changes by 30; pair 2: three pixels (the union with frame 1's pixel) by 0: pooled 30 / 4
    assert region_flicker(pooled, [one, one, three]) == pytest.approx(7.5)
