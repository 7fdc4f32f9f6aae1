"""codeformer.models.loaders: networks chosen by their keys, eval mode on the CPU; other architectures refused with a
short message naming the folder; check_upscaler accepts image upscalers only."""

from __future__ import annotations

from pathlib import Path

import pytest
import spandrel
import torch

import weights
from codeformer import models
from codeformer.errors import InputError
from codeformer.models import ModelFileError, NotAnUpscalerError, loaders
from codeformer.types import CodeFormerModel, FaceDetector, FaceParser


def test_load_codeformer_pth_and_safetensors(models_dir: Path) -> None:
    a = models.load_codeformer(models_dir / "facerestore_models" / "codeformer.pth")
    b = models.load_codeformer(models_dir / "facerestore_models" / "codeformer.safetensors")
    assert isinstance(a, CodeFormerModel) and a.path.name == "codeformer.pth"
    assert not a.module.training
    assert not any(p.requires_grad for p in a.module.parameters())
    sa, sb = a.module.state_dict(), b.module.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    ref = models.load_state_dict(models_dir / "facerestore_models" / "codeformer.pth")
    assert all(torch.equal(sa[k], ref[k]) for k in ref)


def test_load_codeformer_rejects_other_models(models_dir: Path) -> None:
    esrgan = models_dir / "upscale_models" / "RealESRGAN_x2plus.pth"
    with pytest.raises(ModelFileError) as info:
        models.load_codeformer(esrgan)
    msg = str(info.value)
    assert "RealESRGAN_x2plus.pth" in msg and "not a CodeFormer checkpoint" in msg and "ESRGAN" in msg
    assert models.KNOWN_FILES["codeformer.pth"].url in msg and "facerestore_models" in msg
    with pytest.raises(ModelFileError, match="unknown: no position_emb key"):
        models.load_codeformer(models_dir / "facedetection" / "parsing_parsenet.pth")


def test_load_upscaler(models_dir: Path) -> None:
    up = models.load_upscaler(models_dir / "upscale_models" / "RealESRGAN_x2plus.pth")
    assert up.scale == 2 and up.architecture.id == "ESRGAN"
    assert not up.model.training
    with pytest.raises(ModelFileError, match="codeformer.pth.*CodeFormer.*not a background upscaler"):
        models.load_upscaler(models_dir / "facerestore_models" / "codeformer.pth")
    with pytest.raises(ModelFileError, match="not a supported upscale model"):
        models.load_upscaler(models_dir / "facedetection" / "parsing_parsenet.pth")


# In the check_upscaler tests ``models`` is the conftest fixture (the loaded test models), not the package.
def test_check_upscaler(models) -> None:
    """The one check of an UPSCALE_MODEL: face models and other objects are refused with the fix, as an input error
    (ValueError) and a ModelFileError; an image upscaler comes back as it is."""
    assert models.upscaler.architecture.id == "ESRGAN"
    assert loaders.check_upscaler(models.upscaler, "upscale_model") is models.upscaler
    for wrong, what in ((models.codeformer.descriptor, "CodeFormer face-restoration model"),
                        (models.codeformer, "CodeFormerModel"), (models.upscaler.model, "RRDBNet")):
        with pytest.raises(NotAnUpscalerError) as info:
            loaders.check_upscaler(wrong, "upscale_model")
        msg = str(info.value)
        assert isinstance(info.value, ValueError) and isinstance(info.value, InputError)
        assert isinstance(info.value, ModelFileError)
        assert msg.startswith(f"upscale_model is a {what}") and "not a background upscaler" in msg
        assert "RealESRGAN_x2plus.pth" in msg and "models/upscale_models" in msg and "Load Upscale Model" in msg
    assert "CodeFormer Model Loader" in str(pytest.raises(ValueError, loaders.check_upscaler,
                                                          models.codeformer.descriptor, "upscale_model").value)


def test_check_upscaler_refuses_other_descriptors(models) -> None:
    """A spandrel model that is not image-to-image (an inpainting model, say) is not an image upscaler."""
    inpaint = spandrel.MaskedImageModelDescriptor(
        models.upscaler.model, models.upscaler.model.state_dict(), models.upscaler.architecture, purpose="Inpainting",
        tags=[], supports_half=False, supports_bfloat16=False, input_channels=3, output_channels=3)
    with pytest.raises(NotAnUpscalerError, match=r"^x is a ESRGAN Inpainting model, not an image upscaler; put"):
        loaders.check_upscaler(inpaint, "x")


def test_load_detector(models_dir: Path) -> None:
    det_path = models_dir / "facedetection" / "detection_mobilenet0.25_Final.pth"
    det = models.load_detector(det_path)
    assert isinstance(det, FaceDetector) and det.name == "retinaface_mobile0.25" and det.path == det_path
    assert not det.module.training
    assert models.load_detector(weights.REAL_DETECTOR, "retinaface_mobile0.25").name == "retinaface_mobile0.25"
    with pytest.raises(ModelFileError, match="retinaface_mobile0.25.*retinaface_resnet50"):
        models.load_detector(det_path, "retinaface_resnet50")
    with pytest.raises(ModelFileError, match="parsing_parsenet.pth.*not a RetinaFace") as info:
        models.load_detector(models_dir / "facedetection" / "parsing_parsenet.pth")
    assert "facedetection" in str(info.value)
    with pytest.raises(ValueError):
        models.load_detector(det_path, "yolo")


@pytest.mark.filterwarnings("ignore::UserWarning:torchvision.models")
def test_load_detector_resnet50_from_keys(tmp_path: Path) -> None:
    from facexlib.detection.retinaface import RetinaFace

    torch.manual_seed(0)
    sd = RetinaFace(network_name="resnet50", half=False, device=torch.device("cpu")).state_dict()
    path = weights.save_pth({f"module.{k}": v for k, v in sd.items()}, tmp_path / "detection_Resnet50_Final.pth")
    det = models.load_detector(path, "retinaface_resnet50")
    assert det.name == "retinaface_resnet50"
    assert torch.equal(det.module.state_dict()["body.conv1.weight"], sd["body.conv1.weight"])


def test_load_detector_strict_mismatch(tmp_path: Path) -> None:
    sd = models.load_state_dict(weights.REAL_DETECTOR)
    sd.pop(next(k for k in sd if k.startswith("ClassHead")))
    weights.save_pth(sd, tmp_path / "broken.pth")
    with pytest.raises(ModelFileError, match="broken.pth.*does not match"):
        models.load_detector(tmp_path / "broken.pth")


def test_load_parser(models_dir: Path) -> None:
    path = models_dir / "facedetection" / "parsing_parsenet.pth"
    parser = models.load_parser(path)
    assert isinstance(parser, FaceParser) and parser.path == path and not parser.module.training
    with pytest.raises(ModelFileError) as info:
        models.load_parser(models_dir / "facedetection" / "detection_mobilenet0.25_Final.pth")
    msg = str(info.value)
    assert "detection_mobilenet0.25_Final.pth" in msg and "parsing_parsenet.pth" in msg and "facedetection" in msg


def test_spandrel_main_registry_untouched() -> None:
    before = len(spandrel.MAIN_REGISTRY)
    loaders._registry()
    assert len(spandrel.MAIN_REGISTRY) == before
    assert "CodeFormer" in loaders._registry()


WRONG = {  # loader -> files of other kinds it must refuse, and the folder its message must point to
    "codeformer": (models.load_codeformer, ["facedetection/detection_mobilenet0.25_Final.pth",
                                            "upscale_models/RealESRGAN_x2plus.pth",
                                            "facedetection/parsing_parsenet.pth"], "facerestore_models"),
    "detector": (models.load_detector, ["facerestore_models/codeformer.pth", "upscale_models/RealESRGAN_x2plus.pth",
                                        "facedetection/parsing_parsenet.pth"], "facedetection"),
    "parser": (models.load_parser, ["facerestore_models/codeformer.pth", "upscale_models/RealESRGAN_x2plus.pth",
                                    "facedetection/detection_mobilenet0.25_Final.pth"], "facedetection"),
    "upscaler": (models.load_upscaler, ["facerestore_models/codeformer.safetensors",
                                        "facedetection/detection_mobilenet0.25_Final.pth",
                                        "facedetection/parsing_parsenet.pth"], "upscale_models"),
}


@pytest.mark.parametrize("loader", sorted(WRONG))
def test_every_loader_refuses_other_architectures(loader, models_dir):
    load, files, folder = WRONG[loader]
    for name in files:
        with pytest.raises(ModelFileError) as info:
            load(models_dir / name)
        msg = str(info.value)
        assert Path(name).name in msg and f"models/{folder}" in msg, msg
        assert len(msg) < 800, msg  # one readable sentence, not a dump of every tensor


def test_weights_that_do_not_fit_give_a_short_message(tmp_path):
    sd = weights.realesrgan_state_dict(nf=4, gc=4)  # spandrel reads nf, but assumes gc = 32
    path = weights.save_pth(sd, tmp_path / "odd_esrgan.pth", wrap="params_ema")
    with pytest.raises(ModelFileError, match="odd_esrgan.pth.*do not fit") as info:
        models.load_upscaler(path)
    assert len(str(info.value)) < 800 and "more)" in str(info.value)
