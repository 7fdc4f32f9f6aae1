"""Helpers shared by the test folders (importable as ``helpers``: tests/ is on sys.path)."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import weights

from codeformer.cli.images import read_image
from codeformer.types import CodeFormerModel

DETECT = dict(confidence=0.8, min_eye_distance=10.0, selection="all", max_faces=0)  # Face Detect node defaults


def read_rgb(name: str) -> np.ndarray:
    """A real test photo from shared/data/images as RGB uint8."""
    return read_image(weights.IMAGES / name)


def gradient(h: int, w: int) -> np.ndarray:
    """A smooth colour image without faces, RGB uint8."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), np.full_like(x, 90)], -1).astype(np.uint8)


def cli_args(models_dir: Path, out: Path) -> list[str]:
    """The CLI options of a quick CPU run into ``out``: the test models, offline, the small real detector."""
    return ["-o", str(out), "--models-dir", str(models_dir), "--offline", "--device", "cpu",
            "--detector", "retinaface_mobile0.25"]


def psnr(a, b) -> float:
    """PSNR in dB between two uint8-range images."""
    mse = float(((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2).mean())
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


def max_change(a, b) -> int:
    """The largest change of one value between two uint8 images (re-encoding a test clip with H.264 moves < 10)."""
    return int(np.abs(np.asarray(a, int) - np.asarray(b, int)).max())


class FakeCodeFormer(torch.nn.Module):
    """Stands in for CodeFormer: ``forward(x, weight) -> (out, None, None)`` in [-1, 1], recording batch sizes,
    whether bf16 autocast was on and whether the input was channels_last.

    ``shift`` adds colour (R up, B down) so that gray handling is visible; ``oom_above`` raises
    ``torch.OutOfMemoryError`` for batches larger than that.
    """

    def __init__(self, shift: float = 0.0, oom_above: int | None = None) -> None:
        super().__init__()
        self.shift = shift
        self.oom_above = oom_above
        self.batches: list[int] = []
        self.autocast: list[bool] = []
        self.channels_last: list[bool] = []

    def forward(self, x: torch.Tensor, weight: float = 0.5, **kwargs: object):
        self.batches.append(int(x.shape[0]))
        self.autocast.append(torch.is_autocast_enabled(x.device.type))
        self.channels_last.append(x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous())
        if self.oom_above is not None and x.shape[0] > self.oom_above:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 4.00 GiB")
        out = x.clone()
        out[:, 0] += self.shift
        out[:, 2] -= self.shift
        return out, None, None


def arch(name: str) -> SimpleNamespace:
    """A stand-in for a spandrel architecture: only its id, which picks the restorer's contract."""
    return SimpleNamespace(id=name)


def fake_model(precision: str = "auto", arch_id: str = "CodeFormer", **kwargs: object) -> CodeFormerModel:
    """A CodeFormerModel whose network is a FakeCodeFormer, called as ``arch_id``'s restorer (a restorer without
    code logits, "RestoreFormer", also runs through the temporal path)."""
    descriptor = SimpleNamespace(model=FakeCodeFormer(**kwargs), architecture=arch(arch_id))
    return CodeFormerModel(descriptor=descriptor, path=Path("fake.pth"), precision=precision)


def many_boxes_detector(path: Path) -> Path:
    """A random-weight RetinaFace mobilenet0.25 whose class head says "face" everywhere (16800 boxes at 640 px)."""
    from facexlib.detection.retinaface import RetinaFace

    torch.manual_seed(0)
    net = RetinaFace(network_name="mobile0.25", half=False, device=torch.device("cpu"))
    with torch.no_grad():
        for head in net.ClassHead:
            head.conv1x1.weight.zero_()
            head.conv1x1.bias.copy_(torch.tensor([-4.0, 4.0]).repeat(head.conv1x1.bias.numel() // 2))
    return weights.save_pth(dict(net.state_dict()), path)


@contextmanager
def locked_folder(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``folder`` as one the user may not enter (mode 0o600: it is seen in its parent, but looking at anything in it
    raises PermissionError). Root looks anyway, so there ``Path.stat`` is made to refuse what is under ``folder``."""
    folder.chmod(0o600)
    try:
        try:
            (folder / "probe").stat()
        except PermissionError:
            pass
        except FileNotFoundError:  # root: the mode did not stop it
            real = Path.stat

            def stat(self: Path, *, follow_symlinks: bool = True) -> os.stat_result:
                if folder in Path(os.path.abspath(self)).parents:
                    raise PermissionError(errno.EACCES, "Permission denied", str(self))
                return real(self, follow_symlinks=follow_symlinks)

            monkeypatch.setattr(Path, "stat", stat)
        yield
    finally:
        folder.chmod(0o755)
