"""codeformer.models.checkpoint: safe state-dict loading (.pth weights-only, .safetensors) and the messages for broken
and hostile files, through load_state_dict and through every loader."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import weights
from codeformer import models
from codeformer.models import ModelFileError


def _sd() -> dict[str, torch.Tensor]:
    return {"a.weight": torch.randn(3, 4), "b.bias": torch.arange(5, dtype=torch.float32)}


def _marker_writer(path: str) -> None:
    Path(path).write_text("code ran")


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (_marker_writer, (str(self.marker),))


class _EvilExec:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (exec, (f"open({str(self.marker)!r}, 'w').write('code ran')",))


def test_load_state_dict_pth_and_safetensors_agree(tmp_path: Path) -> None:
    sd = _sd()
    weights.save_pth(sd, tmp_path / "w.pth", wrap="params_ema")
    weights.save_safetensors(sd, tmp_path / "w.safetensors")
    a = models.load_state_dict(tmp_path / "w.pth")
    b = models.load_state_dict(tmp_path / "w.safetensors")
    assert a.keys() == b.keys() == sd.keys()
    for k in sd:
        assert torch.equal(a[k], sd[k]) and torch.equal(b[k], sd[k])


def test_load_state_dict_unwraps_and_strips_module(tmp_path: Path) -> None:
    sd = _sd()
    other = {k: v + 1 for k, v in sd.items()}
    torch.save({"params": other, "params_ema": sd, "iter": 5}, tmp_path / "both.pth")
    got = models.load_state_dict(tmp_path / "both.pth")
    assert torch.equal(got["a.weight"], sd["a.weight"])
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, tmp_path / "ddp.pth")
    assert set(models.load_state_dict(tmp_path / "ddp.pth")) == set(sd)
    torch.save(sd, tmp_path / "bare.pt")
    assert set(models.load_state_dict(tmp_path / "bare.pt")) == set(sd)
    torch.save({"params": sd}, tmp_path / "params.pth")
    assert set(models.load_state_dict(tmp_path / "params.pth")) == set(sd)


def test_load_state_dict_refuses_code_running_pickle(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    torch.save({"params_ema": _sd(), "x": _Evil(marker)}, tmp_path / "evil.pth")
    assert not marker.exists()
    with pytest.raises(ModelFileError) as info:
        models.load_state_dict(tmp_path / "evil.pth")
    msg = str(info.value)
    assert "evil.pth" in msg and "unsafe" in msg and "Nothing in it was executed" in msg
    assert "_marker_writer" in msg
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["truncated", "zero", "text", "html", "list", "int-keys"])
def test_load_state_dict_bad_files(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "codeformer.pth"
    if kind == "truncated":
        weights.save_pth(_sd(), path, wrap="params_ema")
        path.write_bytes(path.read_bytes()[:300])
    elif kind == "zero":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("this is not a checkpoint\n")
    elif kind == "html":
        path.write_text("<html><body>404 Not Found</body></html>\n")
    elif kind == "list":
        torch.save([torch.zeros(1)], path)
    else:  # a dict of tensors, but not keyed by name
        torch.save({0: torch.zeros(1), 1: torch.zeros(1)}, path)
    with pytest.raises(ModelFileError) as info:
        models.load_state_dict(path)
    msg = str(info.value)
    assert "codeformer.pth" in msg and "re-download it" in msg
    assert models.KNOWN_FILES["codeformer.pth"].url in msg


def test_load_state_dict_corrupt_safetensors(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    save_file(_sd(), str(path))
    data = bytearray(path.read_bytes())
    data[8:20] = b"#garbage!!##"
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="w.safetensors.*re-download it"):
        models.load_state_dict(path)
    path.write_bytes(b"\xff" * 8)
    with pytest.raises(ModelFileError, match="w.safetensors"):
        models.load_state_dict(path)


def test_load_state_dict_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="does not exist"):
        models.load_state_dict(tmp_path / "nope.pth")


def _bad_file(kind: str, folder: Path, marker: Path) -> Path:
    """A broken or hostile model file of ``kind``."""
    sd = {"a.weight": torch.randn(3, 4)}
    if kind.startswith("safetensors"):
        path = folder / "bad.safetensors"
        save_file(sd, str(path))
        data = bytearray(path.read_bytes())
        if kind == "safetensors-header":
            data[8:20] = b"#garbage!!##"
        else:  # a header length far beyond the file
            data[:8] = (1 << 40).to_bytes(8, "little")
        path.write_bytes(bytes(data))
        return path
    path = folder / "bad.pth"
    if kind == "zero":
        path.write_bytes(b"")
    elif kind == "truncated":
        torch.save({"params_ema": sd}, path)
        path.write_bytes(path.read_bytes()[:200])
    elif kind == "text":
        path.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 376637898\n")
    elif kind == "html":
        path.write_text("<!DOCTYPE html><html><body>Rate limit exceeded</body></html>")
    elif kind == "evil-zip":
        torch.save({"params_ema": sd, "x": _Evil(marker)}, path)
    elif kind == "evil-legacy":
        torch.save({"params_ema": sd, "x": _Evil(marker)}, path, _use_new_zipfile_serialization=False)
    elif kind == "evil-raw":
        path.write_bytes(pickle.dumps({"x": _EvilExec(marker)}))
    return path


LOADERS = {
    "codeformer": models.load_codeformer,
    "detector": models.load_detector,
    "parser": models.load_parser,
    "upscaler": models.load_upscaler,
}
BAD_KINDS = ["zero", "truncated", "text", "html", "evil-zip", "evil-legacy", "evil-raw", "safetensors-header",
             "safetensors-length"]


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
@pytest.mark.parametrize("kind", BAD_KINDS)
@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_every_loader_refuses_broken_and_hostile_files(loader, kind, tmp_path):
    marker = tmp_path / "marker"
    path = _bad_file(kind, tmp_path, marker)
    with pytest.raises(ModelFileError) as info:
        LOADERS[loader](path)
    msg = str(info.value)
    assert path.name in msg and str(path) in msg
    if kind.startswith("evil"):
        assert "unsafe" in msg and "Nothing in it was executed" in msg
        assert "_marker_writer" in msg or "builtins.exec" in msg  # names what it would have run
    else:
        assert "re-download" in msg
    if kind == "text":
        assert "Git LFS pointer" in msg
    assert not marker.exists()
