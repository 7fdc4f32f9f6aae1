"""CodeFormer Best Settings and the auto_fidelity mode of the restore nodes, on real photos with the real detector.

CodeFormer's forward is replaced by a recorder here: these tests check which fidelity reaches the network per face,
not what the (random-weight) network makes of it.
"""

from __future__ import annotations

import pytest
import torch

OFFICIAL = dict(confidence=0.8, min_eye_distance=10.0, selection="all", max_faces=0)  # what the advisor uses


@pytest.fixture(scope="module")
def codeformer(nodes, comfy_models):
    return nodes["CodeFormerModelLoader"]().load("codeformer.pth")[0]


@pytest.fixture(scope="module")
def group(photo, as_image):
    return as_image(photo("whole_02.png"))  # 1204x645, four people waist up: a wide (group) shot


@pytest.fixture(scope="module")
def close_up(photo, as_image):
    return as_image(photo("aligned_0143.png"))  # an aligned FFHQ face: a close-up


@pytest.fixture()
def weights_seen(codeformer, monkeypatch):
    """Records (weight, batch size) of every CodeFormer call; the network itself does not run."""
    seen = []

    def forward(x, weight=0.5, **kwargs):
        seen.append((float(weight), x.shape[0]))
        return (x,)

    monkeypatch.setattr(codeformer.module, "forward", forward)
    return seen


def _per_face(seen):
    return sorted(w for w, count in seen for _ in range(count))


def test_best_settings_from_the_detector(nodes, detector, group):
    before = group.clone()
    fidelity, background, face_upsample, upscale, reason = nodes["CodeFormerBestSettings"]().advise(
        group, "photo", detector=detector)
    assert (fidelity, background, face_upsample, upscale) == (0.7, True, "always", 2.0)
    assert isinstance(upscale, float) and reason.startswith("wide shot") and "4 faces" in reason
    ai = nodes["CodeFormerBestSettings"]().advise(group, "ai_generated", detector=detector)
    assert ai[0] == 0.5 and ai[2] in ("off", "auto")
    assert torch.equal(group, before)


def test_best_settings_close_up(nodes, detector, close_up):
    fidelity, background, face_upsample, upscale, reason = nodes["CodeFormerBestSettings"]().advise(
        close_up, "ai_generated", detector=detector)
    # 512 px face pasted at ~2x: face upsample is on, applied per face by the one-node's auto mode
    assert (fidelity, background, face_upsample, upscale) == (1.0, False, "auto", 2.0)
    assert reason.startswith("close-up")


def test_best_settings_from_faces_equals_detector(nodes, detector, group):
    faces = nodes["CodeFormerFaceDetect"]().detect(group, detector, **OFFICIAL)[0]
    from_faces = nodes["CodeFormerBestSettings"]().advise(group, "photo", faces=faces)
    assert from_faces == nodes["CodeFormerBestSettings"]().advise(group, "photo", detector=detector)
    # faces wins over detector when both are connected
    assert nodes["CodeFormerBestSettings"]().advise(group, "photo", detector=detector, faces=faces) == from_faces


def test_best_settings_batch_uses_the_first_image(nodes, detector, group):
    batch = torch.cat([group, torch.full_like(group, 0.5)])  # the second image has no face
    *settings, reason = nodes["CodeFormerBestSettings"]().advise(batch, "photo", detector=detector)
    *single, single_reason = nodes["CodeFormerBestSettings"]().advise(group, "photo", detector=detector)
    assert settings == single and reason == f"advice for image 1 of 2: {single_reason}"


def test_best_settings_errors_name_the_inputs(nodes, detector, group, close_up):
    with pytest.raises(ValueError, match="detector.*faces"):
        nodes["CodeFormerBestSettings"]().advise(group, "photo")
    faces = nodes["CodeFormerFaceDetect"]().detect(close_up, detector, **OFFICIAL)[0]
    with pytest.raises(ValueError, match="same image"):
        nodes["CodeFormerBestSettings"]().advise(group, "photo", faces=faces)


def test_best_settings_face_upsample_is_a_one_node_option(nodes, pack, lib):
    mode = pack.nodes.advisor_nodes.face_upsample_mode
    advice = lib.advisor.advise([(0, 0, 100, 100)], (1000, 1000), "ai_generated")
    assert mode(advice, "ai_generated") == "off"
    big = lib.advisor.advise([(0, 0, 400, 400)], (1000, 1000), "ai_generated")
    assert mode(big, "ai_generated") == "auto" and mode(big, "photo") == "always"
    assert nodes["CodeFormerBestSettings"].RETURN_TYPES[2] == ["off", "auto", "always"]


def test_auto_fidelity_per_face_in_the_restore_node(nodes, detector, codeformer, group, close_up, weights_seen):
    restore = nodes["CodeFormerRestore"]()
    faces, crops, _, count = nodes["CodeFormerFaceDetect"]().detect(group, detector, **OFFICIAL)
    assert count == 4
    restore.restore(codeformer, crops, 0.2, detected_faces=faces, auto_fidelity=True, source="photo")
    assert _per_face(weights_seen) == [0.7] * 4  # each face alone is a medium/wide shot of a photo
    weights_seen.clear()
    restore.restore(codeformer, crops, 0.2, detected_faces=faces, auto_fidelity=True, source="ai_generated")
    assert _per_face(weights_seen) == [0.5] * 4
    weights_seen.clear()
    faces, crops, _, _ = nodes["CodeFormerFaceDetect"]().detect(close_up, detector, **OFFICIAL)
    restore.restore(codeformer, crops, 0.2, detected_faces=faces, auto_fidelity=True, source="ai_generated")
    assert _per_face(weights_seen) == [1.0]
    weights_seen.clear()
    restore.restore(codeformer, crops, 0.2, detected_faces=faces)  # auto off: the fidelity value
    assert _per_face(weights_seen) == [0.2]
    with pytest.raises(ValueError, match="detected_faces"):
        restore.restore(codeformer, crops, 0.2, auto_fidelity=True)


def test_auto_fidelity_and_progress_in_the_one_node(nodes, detector, codeformer, group, weights_seen):
    import comfy.utils

    image, mask, count = nodes["CodeFormerFaceRestore"]().restore(
        group, codeformer, detector, 0.2, 1.0, False, "off", **OFFICIAL, auto_fidelity=True, source="photo",
        visibility=0.5, feather=2.0)
    assert count == 4 and image.shape == group.shape and float(mask.max()) <= 0.5 + 1e-6
    assert _per_face(weights_seen) == [0.7] * 4
    # one bar to the end: 4 faces restored, then the background, then the paste (6 steps)
    history = comfy.utils.bars[0].history
    assert len(comfy.utils.bars) == 1 and history[-3:] == [(4, 6), (5, 6), (6, 6)] and {t for _, t in history} == {6}
