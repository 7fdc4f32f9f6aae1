"""Settings advisor: the article's rules, the shot thresholds at their boundaries, Faces input, the real detector."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import weights
from codeformer.advisor import (
    CLOSE_UP_SHARE, CROP_PER_BOX, GROUP_FACES, LARGE_IMAGE_SIDE, SOURCES, WIDE_SHARE, Advice, advise, advise_faces,
    advise_image, auto_fidelity, classify_shot, face_share,
)
from codeformer.types import FACE_SIZE, FACE_UPSAMPLE_ABOVE, Face, Faces

EPS = 1e-6
SIZE = (1000, 1000)  # (height, width) of the synthetic images
WHOLE_02 = weights.IMAGES / "whole_02.png"
needs_real_data = pytest.mark.skipif(not (weights.REAL_DETECTOR.exists() and WHOLE_02.exists()),
                                     reason="shared/data (real detector, whole_02.png) not available")


def box_for(share: float, size: tuple[int, int] = SIZE, centre: tuple[float, float] | None = None):
    """A square box (x0, y0, x1, y1) covering ``share`` of an image of ``size`` (height, width)."""
    h, w = size
    side = math.sqrt(share * h * w)
    cx, cy = centre if centre is not None else (w / 2, h / 2)
    return (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)


def strip_for(share: float):
    """A full-height box of exactly ``share`` of a 1000x1000 image (for the ``at the threshold`` cases)."""
    box = (0.0, 0.0, share * SIZE[1], float(SIZE[0]))
    assert face_share(box, SIZE) == share
    return box


def make_face(box, source_size: tuple[int, int], index: int = 0) -> Face:
    """A Face with ``box`` in working-image pixels (affine values do not matter to the advisor)."""
    affine = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    return Face(source_index=index, box=tuple(float(v) for v in box), score=0.99, landmarks=np.zeros((5, 2)),
                affine=affine, inverse=affine, source_size=source_size, is_gray=False)


# --- face_share / classify_shot -------------------------------------------------------------------------------


def test_face_share_is_box_area_over_image_area():
    assert face_share((100, 200, 300, 300), (1000, 2000)) == pytest.approx(200 * 100 / 2_000_000)


def test_face_share_clips_the_box_to_the_image():
    assert face_share((-100, -50, 100, 50), (100, 200)) == pytest.approx(100 * 50 / 20_000)
    assert face_share((500, 500, 600, 600), (100, 200)) == 0.0
    assert face_share((-10, -10, 1000, 1000), (100, 200)) == 1.0


def test_face_share_rejects_an_empty_image():
    with pytest.raises(ValueError, match="image_size"):
        face_share((0, 0, 1, 1), (0, 10))


@pytest.mark.parametrize("share, shot", [
    (CLOSE_UP_SHARE + 0.1, "close_up"),
    (CLOSE_UP_SHARE, "close_up"),
    (CLOSE_UP_SHARE - EPS, "medium"),
    (WIDE_SHARE, "medium"),
    (WIDE_SHARE - EPS, "wide"),
    (0.0, "wide"),
])
def test_classify_shot_boundaries_for_one_face(share, shot):
    assert classify_shot(share, 1) == shot


def test_classify_shot_several_people_is_wide_unless_a_face_fills_the_frame():
    medium = (WIDE_SHARE + CLOSE_UP_SHARE) / 2
    assert classify_shot(medium, GROUP_FACES - 1) == "medium"
    assert classify_shot(medium, GROUP_FACES) == "wide"
    assert classify_shot(medium, 40) == "wide"
    assert classify_shot(CLOSE_UP_SHARE, GROUP_FACES) == "close_up"


def test_classify_shot_without_faces():
    assert classify_shot(0.0, 0) == "no_face"
    with pytest.raises(ValueError, match="faces"):
        classify_shot(0.1, -1)


# --- advise: the article's rules ---------------------------------------------------------------------------------


@pytest.mark.parametrize("source", SOURCES)
def test_close_up_gets_fidelity_1_and_no_background_enhance(source):
    a = advise([box_for(0.3)], SIZE, source)
    assert (a.shot, a.fidelity, a.background_enhance) == ("close_up", 1.0, False)
    assert a.face_share == pytest.approx(0.3)


@pytest.mark.parametrize("source, fidelity", [("ai_generated", 0.5), ("photo", 0.7)])
def test_close_up_threshold_switches_fidelity(source, fidelity):
    assert advise([box_for(CLOSE_UP_SHARE + 0.01)], SIZE, source).fidelity == 1.0
    assert advise([strip_for(CLOSE_UP_SHARE)], SIZE, source).fidelity == 1.0
    below = advise([box_for(CLOSE_UP_SHARE - 0.001)], SIZE, source)
    assert (below.shot, below.fidelity, below.background_enhance) == ("medium", fidelity, True)


def test_ai_generated_keeps_the_default_fidelity_for_medium_and_wide_shots():
    medium = advise([box_for(0.05)], SIZE, "ai_generated")
    wide = advise([box_for(0.005)], SIZE, "ai_generated")
    assert (medium.shot, medium.fidelity) == ("medium", 0.5)
    assert (wide.shot, wide.fidelity) == ("wide", 0.5)


@pytest.mark.parametrize("share", [0.5, 0.05, 0.005])
def test_photos_get_fidelity_above_0_6_and_face_upsample(share):
    a = advise([box_for(share)], SIZE, "photo")
    assert a.fidelity > 0.6
    assert a.face_upsample is True


def test_default_source_is_ai_generated():
    assert advise([box_for(0.05)], SIZE) == advise([box_for(0.05)], SIZE, "ai_generated")


@pytest.mark.parametrize("share, shot", [
    (WIDE_SHARE - 0.001, "wide"), (WIDE_SHARE, "medium"), (WIDE_SHARE + 0.001, "medium"),
])
def test_wide_threshold_and_background_enhance(share, shot):
    a = advise([strip_for(share)], SIZE, "ai_generated")
    assert a.shot == shot
    assert a.background_enhance is True


def test_several_faces_make_a_wide_shot_with_background_enhance():
    share = 0.05
    boxes = [box_for(share, centre=(150 + 300 * i, 500)) for i in range(GROUP_FACES)]
    a = advise(boxes, SIZE, "ai_generated")
    assert (a.faces, a.shot, a.fidelity, a.background_enhance) == (GROUP_FACES, "wide", 0.5, True)
    assert a.face_share == pytest.approx(share)
    assert advise(boxes[:GROUP_FACES - 1], SIZE).shot == "medium"


def test_largest_face_sets_the_share():
    a = advise([box_for(0.01, centre=(200, 200)), box_for(0.2, centre=(700, 700))], SIZE)
    assert a.face_share == pytest.approx(0.2)
    assert a.shot == "close_up"


def test_ai_face_upsample_only_when_the_face_is_pasted_larger_than_the_auto_rule():
    # pasted side = CROP_PER_BOX * box side * upscale (2 here); the rule of face_upsample "auto"
    assert FACE_SIZE < FACE_UPSAMPLE_ABOVE <= FACE_SIZE * 1.25
    limit = FACE_UPSAMPLE_ABOVE / (CROP_PER_BOX * 2)
    small = advise([(100, 100, 100 + limit - 1, 100 + limit - 1)], SIZE, "ai_generated")
    large = advise([(100, 100, 100 + limit + 1, 100 + limit + 1)], SIZE, "ai_generated")
    assert (small.upscale, small.face_upsample) == (2, False)
    assert (large.upscale, large.face_upsample) == (2, True)


def test_large_images_are_not_upscaled():
    below = advise([box_for(0.05, (1000, LARGE_IMAGE_SIDE - 1))], (1000, LARGE_IMAGE_SIDE - 1))
    at = advise([box_for(0.05, (LARGE_IMAGE_SIDE, 1000))], (LARGE_IMAGE_SIDE, 1000))
    assert below.upscale == 2
    assert at.upscale == 1
    assert "upscale 1" in at.reason


def test_source_size_sets_upscale_and_pasted_size_but_not_the_share():
    # boxes found in a 2x working copy of a 1200x800 image
    box = (400, 400, 400 + 200, 400 + 200)
    working = advise([box], (2400, 1600))
    source = advise([box], (2400, 1600), source_size=(1200, 800))
    assert working.face_share == source.face_share
    assert (working.upscale, source.upscale) == (1, 2)
    # pasted side: 1.6 * 200 px * upscale 1 = 320 (2400 px image); 1.6 * 100 source px * 2 = 320; as a source: 640
    assert (working.face_upsample, source.face_upsample) == (False, False)
    assert advise([box], (1200, 800)).face_upsample is True


@pytest.mark.parametrize("source, fidelity", [("ai_generated", 0.5), ("photo", 0.7)])
def test_no_face_gives_defaults(source, fidelity):
    a = advise([], SIZE, source)
    assert a == Advice(faces=0, face_share=0.0, shot="no_face", fidelity=fidelity, background_enhance=True,
                       face_upsample=False, upscale=2, reason="no face found")
    assert advise([], (3000, 2000), source).upscale == 1


@pytest.mark.parametrize("bad", ["AI", "real", "", "photos"])
def test_invalid_source_names_the_allowed_values(bad):
    for call in (lambda: advise([box_for(0.1)], SIZE, bad), lambda: advise([], SIZE, bad),
                 lambda: auto_fidelity(make_face(box_for(0.1), SIZE), bad),
                 lambda: advise_image(np.zeros((8, 8, 3), np.uint8), None, source=bad)):  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="ai_generated, photo") as info:
            call()
        assert repr(bad) in str(info.value)


def test_advice_dict_and_reason():
    a = advise([box_for(0.3)], SIZE, "photo")
    d = a.as_dict()
    assert set(d) == {"faces", "fidelity", "background_enhance", "face_upsample", "upscale", "reason", "shot",
                      "face_share"}
    assert json.loads(json.dumps(d)) == d
    assert "\n" not in a.reason and "close-up" in a.reason and "fidelity 1.0" in a.reason
    assert "\n" not in advise([box_for(0.005)] * 4, SIZE).reason


# --- Faces input ---------------------------------------------------------------------------------------------------


def test_auto_fidelity_uses_each_face_share():
    close, small = make_face(box_for(0.3), SIZE), make_face(box_for(0.01), SIZE)
    assert auto_fidelity(close) == 1.0
    assert auto_fidelity(close, "photo") == 1.0
    assert auto_fidelity(small) == 0.5
    assert auto_fidelity(small, "photo") == 0.7


def test_auto_fidelity_works_in_working_coordinates():
    source = (256, 384)  # enlarged 2x to a 512x768 working image
    face = make_face(box_for(CLOSE_UP_SHARE + 0.01, (512, 768)), source)
    assert face.working_size == (512, 768)
    assert auto_fidelity(face) == 1.0


def test_advise_faces_per_image_of_a_hand_built_batch():
    small_source = (300, 400)  # working image 512 x 683: boxes are in working pixels
    work = make_face(box_for(0.2), small_source).working_size
    faces = Faces(
        faces=(
            make_face(box_for(0.2, work), small_source, index=0),
            make_face(box_for(0.01, (800, 1200), centre=(200, 200)), (800, 1200), index=2),
            make_face(box_for(0.05, (800, 1200), centre=(900, 500)), (800, 1200), index=2),
        ),
        source_sizes=(small_source, (640, 480), (800, 1200)),
    )
    first = advise_faces(faces, 0, "ai_generated")
    assert (first.faces, first.shot, first.fidelity, first.upscale) == (1, "close_up", 1.0, 2)
    assert first.face_share == pytest.approx(0.2, rel=1e-3)
    assert first == advise([faces.faces[0].box], work, "ai_generated", source_size=small_source)

    empty = advise_faces(faces, 1, "photo")
    assert (empty.shot, empty.reason, empty.fidelity) == ("no_face", "no face found", 0.7)

    third = advise_faces(faces, 2, "photo")
    assert (third.faces, third.shot, third.fidelity, third.face_upsample) == (2, "medium", 0.7, True)
    assert third.face_share == pytest.approx(0.05)


def test_advise_faces_rejects_an_index_outside_the_batch():
    faces = Faces(faces=(), source_sizes=((100, 100),))
    with pytest.raises(IndexError, match="1 image"):
        advise_faces(faces, 1)


# --- real detector -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def detector():
    from codeformer.models import load_detector

    return load_detector(weights.REAL_DETECTOR)


@needs_real_data
def test_advise_image_on_a_real_group_photo(detector):
    from codeformer.cli.images import read_image

    image = read_image(WHOLE_02)  # 1204x645, four people shown from the waist up
    a = advise_image(image, detector, source="photo")
    assert a.faces == 4
    assert a.face_share == pytest.approx(0.033, abs=0.004)
    assert (a.shot, a.fidelity, a.background_enhance, a.face_upsample, a.upscale) == ("wide", 0.7, True, True, 2)
    assert advise_image(image, detector).fidelity == 0.5


@needs_real_data
def test_advise_image_without_faces(detector):
    a = advise_image(np.full((300, 400, 3), 128, np.uint8), detector, source="photo")
    assert (a.faces, a.shot, a.reason) == (0, "no_face", "no face found")


@needs_real_data
def test_cli_advise_prints_json(tmp_path, capsys):
    from codeformer.cli import main

    det = tmp_path / "facedetection" / "detection_mobilenet0.25_Final.pth"
    det.parent.mkdir()
    det.write_bytes(weights.REAL_DETECTOR.read_bytes())
    code = main(["advise", str(WHOLE_02), "--source", "photo", "--detector", "retinaface_mobile0.25",
                 "--models-dir", str(tmp_path), "--offline", "--device", "cpu"])
    assert code == 0
    line = json.loads(capsys.readouterr().out.strip())
    assert line["image"] == str(WHOLE_02)
    assert (line["faces"], line["shot"], line["fidelity"]) == (4, "wide", 0.7)
