"""The paste canvas (``codeformer.canvas``): at any upscale, away from the faces the output is the plain background."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import fake_model, psnr, read_rgb

import torch

from codeformer.canvas import face_paste_size, shown_part, upsamples_face
from codeformer.device_warp import paste_faces_torch
from codeformer.geometry import target_size
from codeformer.paste import FacePlacement, paste_faces
from codeformer.pipeline import Networks, RestoreSettings, find_faces, paste_back, restore_images, upscale_backgrounds
from codeformer.types import FACE_SIZE, FACE_UPSAMPLE_ABOVE, Face


def portrait_513x1280() -> np.ndarray:
    """A 513x1280 portrait with 4 faces: at --upscale 1.5 its output is 770x1920, and the official canvas rule
    (int of the height at the output's scale, 1280 * 770/513 = 1921.2) is a pixel taller than the output."""
    crop = read_rgb("whole_02.png")[:, 300:813]
    return np.ascontiguousarray(np.concatenate([crop, crop[::-1]])[:1280])


@pytest.mark.parametrize("scale", [1.5, 1.75, 2.0])
def test_background_away_from_the_faces_is_kept_at_any_scale(models, scale):
    """The canvas of a source with a short side >= 512 is its background itself: nothing is resampled twice
    (before, at 1.5 the background here was resized to the canvas and back: 0.145/255 mean, 3.7/255 max off)."""
    image = portrait_513x1280()
    assert int(1280 * target_size((1280, 513), 1.5)[1] / 513) != target_size((1280, 513), 1.5)[0]
    found = find_faces(models.detector, [image])
    assert len(found.faces) >= 1
    background = upscale_backgrounds([image], scale)[0]
    result = paste_back([background], found.faces, found.crops)[0]
    assert result.image.shape == background.shape
    away = result.mask == 0
    assert away.mean() > 0.5
    np.testing.assert_array_equal(result.image[away], background[away].astype(np.float32))


@pytest.mark.parametrize("scale", [1.5, 2.0])
def test_restore_images_at_non_integer_scales(models, scale):
    """Away from the faces the whole pipeline gives the plain upscaled background, as closely at 1.5 as at 2: exactly
    for a large source; for a small one (pasted on the enlarged working image, then brought back) within the same
    bound."""
    large = portrait_513x1280()
    small = read_rgb("whole_00.jpg")  # 491x310: 736.5 wide at 1.5
    model = fake_model()  # the crop comes back as it went in: the faces are pasted back unchanged
    result = restore_images([large], Networks(model, models.detector), RestoreSettings(upscale=scale))
    plain = upscale_backgrounds([large], scale)[0]
    away = result.images[0].mask == 0
    np.testing.assert_array_equal(result.images[0].image[away], plain[away].astype(np.float32))
    result = restore_images([small], Networks(model, models.detector), RestoreSettings(upscale=scale))
    plain = upscale_backgrounds([small], scale)[0]
    out, away = result.images[0].image, result.images[0].mask == 0
    assert out.shape == plain.shape == (*target_size((310, 491), scale), 3)
    assert np.abs(out[away] - plain[away]).mean() < 1.5
    assert psnr(out[away], plain[away]) > 35


def _face_of_side(side: float) -> Face:
    """A face whose 512 crop covers ``side`` working-image pixels."""
    k = side / FACE_SIZE
    inverse = np.array([[k, 0.0, 10.0], [0.0, k, 10.0]])
    affine = np.array([[1 / k, 0.0, -10.0 / k], [0.0, 1 / k, -10.0 / k]])
    return Face(0, (0.0, 0.0, side, side), 0.9, np.zeros((5, 2)), affine, inverse, (1000, 1000), False)


def test_face_upsample_auto_only_for_faces_pasted_larger_than_the_rule():
    upscaler = object()  # only whether there is one matters here
    below, above = _face_of_side(FACE_UPSAMPLE_ABOVE / 2 - 1), _face_of_side(FACE_UPSAMPLE_ABOVE / 2 + 1)
    assert face_paste_size(below, 2.0) < FACE_UPSAMPLE_ABOVE < face_paste_size(above, 2.0)
    assert face_paste_size(_face_of_side(260), 2.0) == pytest.approx(520)  # pasted 2 % larger: not upsampled
    assert not upsamples_face(upscaler, "auto", _face_of_side(260), 2.0)
    assert not upsamples_face(upscaler, "auto", below, 2.0) and upsamples_face(upscaler, "auto", above, 2.0)
    assert upsamples_face(upscaler, "always", below, 2.0) and not upsamples_face(None, "always", above, 2.0)


def _face_at(side: float, angle: float, centre: tuple[float, float]) -> Face:
    """A face whose 512 crop covers ``side`` working-image pixels, turned by ``angle`` degrees, centred at
    ``centre`` (x, y)."""
    k, turn = side / FACE_SIZE, np.deg2rad(angle)
    linear = k * np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    inverse = np.hstack([linear, (np.array(centre) - linear @ [FACE_SIZE / 2, FACE_SIZE / 2])[:, None]])
    affine = np.hstack([np.linalg.inv(linear), -np.linalg.inv(linear) @ inverse[:, 2:]])
    return Face(0, (0.0, 0.0, side, side), 0.9, np.zeros((5, 2)), affine, inverse, (400, 300), False)


@pytest.mark.parametrize(("side", "angle", "centre", "scale", "scale_y"), [
    (460.0, 0.0, (120.0, 330.0), 2.0, None),  # a close-up cut by the bottom edge (the canvas: 400x300 x scale)
    (520.0, 17.0, (40.0, 60.0), 2.0, 2.0025),  # turned, past the top left corner, a canvas a pixel taller
    (300.0, -8.0, (280.0, 200.0), 1.5, None),  # cut by the right edge, a non-integer scale
])
def test_the_paste_reads_a_face_upsampled_crop_only_in_its_shown_part(side, angle, centre, scale, scale_y):
    """What ``shown_part`` leaves out is never read by the paste: the upsampler may skip it. The crop with
    everything outside the box replaced pastes to the same pixels, with OpenCV and on the device."""
    face = _face_at(side, angle, centre)
    canvas_size = (round(400 * (scale_y or scale)), round(300 * scale))
    big_side = target_size((FACE_SIZE, FACE_SIZE), scale)[0]
    rng = np.random.default_rng(7)
    big = rng.integers(0, 256, (big_side, big_side, 3), dtype=np.uint8)
    x0, y0, x1, y1 = shown_part(face, scale, scale_y, canvas_size)
    assert (x1 - x0) * (y1 - y0) < 0.8 * big_side**2  # a good part is off the canvas
    elsewhere = np.full_like(big, 255)
    elsewhere[y0:y1, x0:x1] = big[y0:y1, x0:x1]
    background = rng.integers(0, 256, (*canvas_size, 3), dtype=np.uint8)
    pasted = [paste_faces(background, [FacePlacement(crop, face.inverse)], scale, scale_y=scale_y)
              for crop in (big, elsewhere)]
    assert np.array_equal(pasted[0][0], pasted[1][0]) and np.array_equal(pasted[0][1], pasted[1][1])
    assert pasted[0][1].max() > 0.99  # the face is there
    board = torch.from_numpy(background).permute(2, 0, 1).float()
    on_device = [paste_faces_torch(board, [torch.from_numpy(crop).permute(2, 0, 1)], [face.inverse], [None], scale,
                                   scale_y, 1.0, 1.0)[0] for crop in (big, elsewhere)]
    assert torch.equal(on_device[0], on_device[1])


def test_a_face_inside_the_canvas_is_shown_whole():
    assert shown_part(_face_at(200.0, 10.0, (150.0, 200.0)), 2.0, None, (800, 600)) is None
    assert shown_part(_face_at(200.0, 0.0, (900.0, 200.0)), 2.0, None, (800, 600)) is None  # off it: as before
