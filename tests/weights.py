"""Random-initialised checkpoints in the official file formats, for tests (no downloads here).

- CodeFormer: ``{'params_ema': state_dict}`` (.pth) or the bare state dict (.safetensors), full size.
- Real-ESRGAN: basicsr ``RRDBNet`` key names under ``params_ema``, small (few features / blocks).
- GFPGAN v1.4: ``{'params_ema': state_dict}`` of ``GFPGANv1Clean`` (v1.2-1.4 config), full size.
- RestoreFormer: ``{'params_ema': state_dict}`` of RestoreFormer (the official config), full size.
- ParseNet: facexlib ``ParseNet`` plain state dict.
- RetinaFace: the real mobilenet0.25 detector from ``shared/data/weights``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

SHARED = Path(__file__).resolve().parents[2] / "shared"
SHARED_DATA = SHARED / "data"
REAL_DETECTOR = SHARED_DATA / "weights" / "retinaface_mobilenet0.25.pth"
IMAGES = SHARED_DATA / "images"


def codeformer_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """State dict of the official CodeFormer (dim 512, 9 layers, codebook 1024), random weights."""
    from spandrel_extra_arches.architectures.CodeFormer import CodeFormer

    torch.manual_seed(seed)
    net = CodeFormer()
    # Default init gives a flat codebook; spread it so code picks depend on the input.
    with torch.no_grad():
        net.quantize.embedding.weight.normal_(0, 1)
        net.position_emb.normal_(0, 0.1)
    return {k: v.contiguous() for k, v in net.state_dict().items()}


def gfpgan_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """State dict of GFPGAN v1.4 (``GFPGANv1Clean`` as GFPGANer builds it for v1.2-1.4), random weights, with the
    StyleGAN noise buffers (``stylegan_decoder.noises.noiseN``) the official checkpoints hold."""
    from spandrel.architectures.GFPGAN import GFPGAN

    torch.manual_seed(seed)
    net = GFPGAN(out_size=512, num_style_feat=512, channel_multiplier=2, decoder_load_path=None, fix_decoder=False,
                 num_mlp=8, input_is_latent=True, different_w=True, narrow=1, sft_half=True)
    return {k: v.contiguous() for k, v in net.state_dict().items()}


def restoreformer_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """State dict of RestoreFormer (the official 512 px config), random weights."""
    from spandrel.architectures.RestoreFormer import RestoreFormer

    torch.manual_seed(seed)
    net = RestoreFormer()
    return {k: v.contiguous() for k, v in net.state_dict().items()}


def realesrgan_state_dict(scale: int = 2, nf: int = 8, nb: int = 1, gc: int = 32, seed: int = 0) -> dict[str, torch.Tensor]:
    """State dict with basicsr ``RRDBNet`` keys (the official RealESRGAN_x2plus/x4plus format), small sizes."""
    g = torch.Generator().manual_seed(seed)
    in_ch = 3 * {1: 16, 2: 4, 4: 1}[scale]  # basicsr pixel-unshuffles x1/x2 inputs

    def conv(name: str, cout: int, cin: int, gain: float = 1.0) -> dict[str, torch.Tensor]:
        std = gain / (cin * 9) ** 0.5
        return {
            f"{name}.weight": torch.randn(cout, cin, 3, 3, generator=g) * std,
            f"{name}.bias": torch.randn(cout, generator=g) * 0.01,
        }

    sd: dict[str, torch.Tensor] = {}
    sd |= conv("conv_first", nf, in_ch)
    for b in range(nb):
        for r in (1, 2, 3):
            for i in range(1, 5):
                sd |= conv(f"body.{b}.rdb{r}.conv{i}", gc, nf + (i - 1) * gc)
            sd |= conv(f"body.{b}.rdb{r}.conv5", nf, nf + 4 * gc, gain=0.1)
    sd |= conv("conv_body", nf, nf)
    sd |= conv("conv_up1", nf, nf)
    sd |= conv("conv_up2", nf, nf)
    sd |= conv("conv_hr", nf, nf)
    sd |= conv("conv_last", 3, nf, gain=0.5)
    sd["conv_last.bias"] = torch.full((3,), 0.45)
    return sd


def parsenet_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """State dict of facexlib's ParseNet (512 in/out, 19 classes), random weights."""
    from facexlib.parsing.parsenet import ParseNet

    torch.manual_seed(seed)
    net = ParseNet(in_size=512, out_size=512, parsing_ch=19)
    return {k: v.contiguous() for k, v in net.state_dict().items()}


def save_pth(sd: dict[str, torch.Tensor], path: Path, wrap: str | None = None) -> Path:
    """Save like the official releases: ``torch.save({wrap: sd})`` or the bare dict."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({wrap: sd} if wrap else sd, path)
    return path


def save_safetensors(sd: dict[str, torch.Tensor], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    return path
