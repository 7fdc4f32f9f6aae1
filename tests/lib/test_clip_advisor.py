"""Best settings for a clip (``codeformer.clip_advisor``): sampled frames, the video fidelity floor, temporal on."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import gradient, read_rgb

from codeformer.advisor import Advice, advise_image
from codeformer.clip_advisor import VIDEO_FIDELITY, advise_clip, clip_advice, sample_indices
from codeformer.errors import InputError


def advice(share: float, fidelity: float, faces: int = 1) -> Advice:
    return Advice(faces=faces, face_share=share, shot="medium" if faces else "no_face", fidelity=fidelity,
                  background_enhance=True, face_upsample=False, upscale=2, reason=f"share {share}")


@pytest.mark.parametrize(("count", "expected"), [(0, []), (3, [0, 1, 2]), (8, list(range(8))),
                                                  (100, [0, 14, 28, 42, 57, 71, 85, 99])])
def test_sample_indices_spread_over_the_clip(count, expected):
    assert sample_indices(count) == expected


def test_fidelity_is_raised_for_video_and_temporal_is_on():
    got = clip_advice([advice(0.05, 0.5), advice(0.0, 0.5, faces=0), advice(0.08, 0.5), advice(0.06, 0.5)])
    assert got.temporal and got.advice.fidelity == VIDEO_FIDELITY
    assert got.frames_sampled == 4 and got.frames_with_faces == 3
    assert "share 0.06" in got.advice.reason  # the typical (median) frame's advice
    assert "flicker" in got.advice.reason and "temporal on" in got.advice.reason
    assert got.as_dict()["temporal"] is True and got.as_dict()["fidelity"] == VIDEO_FIDELITY


def test_a_close_up_keeps_its_higher_fidelity():
    got = clip_advice([advice(0.3, 1.0)])
    assert got.advice.fidelity == 1.0 and "already steady" in got.advice.reason


def test_no_face_in_the_clip():
    got = clip_advice([advice(0.0, 0.5, faces=0)] * 3)
    assert not got.temporal and got.frames_with_faces == 0 and "no face in 3 sampled" in got.advice.reason


def test_no_frames_is_an_input_error():
    with pytest.raises(InputError, match="no decodable frame"):
        clip_advice([])


def test_advise_clip_on_real_frames(detector):
    photo = read_rgb("whole_01.jpg")
    frames = [photo, np.ascontiguousarray(photo[:, ::-1]), gradient(*photo.shape[:2])]
    got = advise_clip(frames, detector, "photo")
    still = advise_image(photo, detector, "photo")
    assert got.frames_with_faces == 2 and got.advice.shot == still.shot
    assert got.advice.fidelity == max(still.fidelity, VIDEO_FIDELITY)
