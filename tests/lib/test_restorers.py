"""GFPGAN v1.4 and RestoreFormer beside CodeFormer: recognised from the keys, each called by its real contract
(random weights in the official formats; the reference is the arch's forward with the official pre/post-processing).

The full networks cost 10-25 s per face on a shared CPU: each runs on one face, the CLI output is kept per session.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import spandrel
import torch
import weights
from helpers import arch, psnr, read_rgb

from codeformer import models, restorers, said_once
from codeformer.cli import main
from codeformer.codes import restore_tracked_faces
from codeformer.restore import restore_faces, restore_found_faces
from codeformer.types import CodeFormerModel, Face, Faces

FACE = "aligned_0143.png"  # a colour face: the gray rule stays out of the comparison


@pytest.fixture(scope="session")
def restorer_dir(tmp_path_factory) -> Path:
    """A models folder with GFPGANv1.4.pth and RestoreFormer.pth in their official formats (random weights)."""
    root = tmp_path_factory.mktemp("restorers")
    weights.save_pth(weights.gfpgan_state_dict(), root / "facerestore_models" / "GFPGANv1.4.pth", wrap="params_ema")
    weights.save_pth(weights.restoreformer_state_dict(), root / "facerestore_models" / "RestoreFormer.pth",
                     wrap="params_ema")
    return root


def official(name: str, sd_path: Path, rgb: np.ndarray) -> np.ndarray:
    """The official GFPGANer arithmetic on one aligned face: img2tensor / 255, normalize 0.5/0.5, the arch's forward
    (GFPGAN with the checkpoint's stored noise), tensor2img(min_max=(-1, 1)): clamp, (x + 1) / 2 * 255, round."""
    sd = torch.load(sd_path, map_location="cpu", weights_only=True)["params_ema"]
    net = spandrel.ModelLoader().load_from_state_dict(sd).model.eval()
    x = (torch.from_numpy(rgb.astype(np.float32) / 255.0).permute(2, 0, 1)[None] - 0.5) / 0.5
    with torch.no_grad():
        y = net(x, return_rgb=False, randomize_noise=False)[0] if name == "GFPGAN" else net(x)[0]
    return ((y[0].clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy().__mul__(255.0).round().astype(np.uint8)


def cli_aligned(tmp: Path, models_dir: Path, model: str, *more: str) -> np.ndarray:
    from codeformer.cli.images import read_image

    src = tmp / "in"
    src.mkdir(exist_ok=True)
    shutil.copy(weights.IMAGES / FACE, src / "face.png")
    out = tmp / "out"
    code = main(["restore", str(src / "face.png"), "-o", str(out), "--aligned", "--model", model, "--models-dir",
                 str(models_dir), "--offline", "--device", "cpu", *more])
    assert code == 0
    return read_image(out / "face.png")


@pytest.mark.parametrize(("file", "name"), [("GFPGANv1.4.pth", "GFPGAN"), ("RestoreFormer.pth", "RestoreFormer")])
def test_cli_aligned_equals_the_official_call(tmp_path, restorer_dir, capsys, file, name):
    got = cli_aligned(tmp_path, restorer_dir, file, "--fidelity", "0.9")
    assert "has no fidelity setting" in capsys.readouterr().err  # said where the fidelity is set
    ref = official(name, restorer_dir / "facerestore_models" / file, read_rgb(FACE))
    close = (np.abs(got.astype(int) - ref.astype(int)) <= 1).mean()
    assert close >= 0.99 and psnr(got, ref) >= 45.0, (close, psnr(got, ref))


def test_loader_recognises_the_architecture_from_the_keys(restorer_dir, tmp_path):
    renamed = tmp_path / "codeformer_maybe.pth"  # the name says nothing: the keys do
    shutil.copy(restorer_dir / "facerestore_models" / "GFPGANv1.4.pth", renamed)
    model = models.load_codeformer(renamed)
    assert model.descriptor.architecture.id == "GFPGAN" and restorers.restorer_of(model).name == "GFPGAN"
    assert [k for k in model.module.state_dict() if "noises.noise" in k]  # the stored noise it runs with


def test_gfpgan_restores_the_same_face_identically(restorer_dir):
    model = models.load_codeformer(restorer_dir / "facerestore_models" / "GFPGANv1.4.pth")
    face = read_rgb(FACE)
    a, b = restore_faces(model, [face, face], batch_size=1, precision="fp32")  # two calls of the network
    np.testing.assert_array_equal(a, b)


class FakeGFPGAN(torch.nn.Module):
    """Records the keywords of each call; returns (0.5 x, rgbs) like GFPGANv1Clean."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[dict] = []

    def forward(self, x: torch.Tensor, **kwargs: object):
        self.calls.append({"batch": int(x.shape[0]), **kwargs})
        return x * 0.5, []


def fake_gfpgan() -> CodeFormerModel:
    return CodeFormerModel(descriptor=SimpleNamespace(model=FakeGFPGAN(), architecture=arch("GFPGAN")),
                           path=Path("GFPGANv1.4.pth"))


def test_gfpgan_contract_no_fidelity_one_batch_and_one_warning(caplog, monkeypatch):
    monkeypatch.setattr(said_once, "_said", set())
    model = fake_gfpgan()
    faces = np.random.default_rng(0).integers(0, 256, (3, 512, 512, 3), dtype=np.uint8)
    with caplog.at_level(logging.WARNING, logger="codeformer.restorers"):
        out = restore_faces(model, faces, [0.2, 0.9, 0.5], batch_size=4)
        restore_faces(model, faces, 0.7, batch_size=4)
    calls = model.module.calls
    assert calls[0] == {"batch": 3, "return_rgb": False, "randomize_noise": False}  # fidelities do not split it
    assert [r.message for r in caplog.records].count(restorers.fidelity_note(restorers.RESTORERS["GFPGAN"], None)) == 1
    assert len(caplog.records) == 1  # once per restorer, not per call (video chunks)
    expected = np.round(((faces / 255.0 - 0.5) / 0.5 * 0.5 + 1) / 2 * 255)
    assert np.abs(out.astype(int) - expected).max() <= 1
    assert restorers.fidelity_note(restorers.RESTORERS["GFPGAN"], 0.5) is None
    assert restorers.fidelity_note(restorers.CODEFORMER, 0.9) is None


def _face(frame: int, track: int | None) -> Face:
    eye = np.eye(2, 3)
    return Face(frame, (0.0, 0.0, 10.0, 10.0), 0.9, np.zeros((5, 2)), eye, eye, (512, 512), False, track)


def test_clip_of_a_restorer_without_codes_restores_each_face_without_code_smoothing():
    model = fake_gfpgan()
    faces = Faces(tuple(_face(t, 0) for t in range(4)), ((512, 512),) * 4)
    crops = np.random.default_rng(1).integers(0, 256, (4, 512, 512, 3), dtype=np.uint8)
    restored, codes = restore_tracked_faces(model, faces, crops, 0.5, window=3, frames_per_chunk=2)
    assert codes is None  # no code logits to smooth: the clip keeps its landmark smoothing only
    np.testing.assert_array_equal(restored, restore_found_faces(model, faces, crops, 0.5))


def test_model_option_is_not_taken_for_models_dir_and_prefixes_are_errors(tmp_path, capsys):
    from codeformer.cli.args import build_parser

    args = build_parser().parse_args(["restore", "a.png", "-o", str(tmp_path), "--model", "GFPGANv1.4.pth"])
    assert args.model == "GFPGANv1.4.pth" and args.models_dir is None
    assert build_parser().parse_args(["restore", "a.png", "-o", "x"]).model == "codeformer.pth"
    for prefix in (["--models", str(tmp_path)], ["--over"], ["--dev", "cpu"]):
        with pytest.raises(SystemExit) as info:
            main(["restore", "a.png", "-o", str(tmp_path / "out"), *prefix])
        assert info.value.code == 2 and "unrecognized arguments" in capsys.readouterr().err


def test_cli_model_path_and_missing_model(tmp_path, restorer_dir, capsys):
    missing = main(["restore", str(weights.IMAGES / FACE), "-o", str(tmp_path / "out"), "--aligned", "--model",
                    "NoSuchRestorer.pth", "--models-dir", str(restorer_dir), "--offline", "--device", "cpu"])
    assert missing == 1 and "NoSuchRestorer.pth" in capsys.readouterr().err


def test_advice_names_the_restorer_it_assumes():
    from codeformer.advisor import advise

    for source, box in (("ai_generated", (400, 400, 600, 600)), ("photo", (0, 0, 900, 900))):
        assert "CodeFormer fidelity" in advise([box], (1000, 1000), source).reason
