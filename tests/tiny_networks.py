"""Tiny networks for tests whose subject is the plumbing around the networks (the split network, the temporal path,
the node graphs, the CLI's clip parts), not their weights: milliseconds a face on the CPU, where the full-size
random-weight CodeFormer takes ~7 s and ParseNet ~4.5 s (2-core CPU without AMX).

- ``tiny_model``: spandrel's own ``CodeFormer.forward`` (inherited, unchanged) over small blocks of the same structure.
- ``tiny_parser``: ParseNet's contract (``net(x)[0]``: 19 class logits a pixel): a random convolution over a
  face-shaped prior.
- ``use_tiny_networks``: in-process CLI runs load these instead of the files of ``--models-dir``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from helpers import arch

from codeformer import models
from codeformer.types import CodeFormerModel, FaceParser

with warnings.catch_warnings():  # its module uses torch.jit.script, which recent torch warns about
    warnings.simplefilter("ignore", FutureWarning)
    from spandrel_extra_arches.architectures.CodeFormer.__arch.codeformer import (
        CodeFormer,
        TransformerSALayer,
        VectorQuantizer,
    )


class TinyFuse(torch.nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(2 * ch, ch, 3, padding=1)

    def forward(self, enc_feat, dec_feat, w=1):
        return dec_feat + w * self.conv(torch.cat([enc_feat, dec_feat], dim=1))


class TinyCodeFormer(CodeFormer):
    """CodeFormer's forward over small blocks: 512 px in, 16x16x256 latent, 1024 codes, fusion at 32 and 256 px."""

    def __init__(self, seed: int = 0) -> None:
        torch.nn.Module.__init__(self)
        torch.manual_seed(seed)
        ch, conv = 8, torch.nn.Conv2d
        down = [conv(3, ch, 3, stride=2, padding=1)] + [conv(ch, ch, 3, stride=2, padding=1) for _ in range(4)]
        self.encoder = torch.nn.Module()
        self.encoder.blocks = torch.nn.ModuleList([*down, conv(ch, 256, 1)])  # 256 px .. 16 px
        self.connect_list = ["32", "256"]
        self.fuse_encoder_block = {"256": 0, "32": 3}
        self.fuse_generator_block = {"32": 1, "256": 4}
        self.position_emb = torch.nn.Parameter(torch.randn(256, 32) * 0.1)
        self.feat_emb = torch.nn.Linear(256, 32)
        self.ft_layers = torch.nn.Sequential(TransformerSALayer(32, nhead=2, dim_mlp=64))
        self.idx_pred_layer = torch.nn.Sequential(torch.nn.LayerNorm(32), torch.nn.Linear(32, 1024, bias=False))
        self.quantize = VectorQuantizer(1024, 256, 0.25)
        torch.nn.init.normal_(self.quantize.embedding.weight)
        up = [torch.nn.Sequential(torch.nn.Upsample(scale_factor=2.0), conv(ch, ch, 3, padding=1)) for _ in range(5)]
        self.generator = torch.nn.Module()
        self.generator.blocks = torch.nn.ModuleList([conv(256, ch, 1), *up, conv(ch, 3, 3, padding=1)])
        self.fuse_convs_dict = torch.nn.ModuleDict({"32": TinyFuse(ch), "256": TinyFuse(ch)})


def tiny_model(seed: int = 0) -> CodeFormerModel:
    descriptor = SimpleNamespace(model=TinyCodeFormer(seed).eval(), architecture=arch("CodeFormer"))
    return CodeFormerModel(descriptor=descriptor, path=Path("tiny.pth"))


class TinyParser(torch.nn.Module):
    """ParseNet's contract: ``(logits [B, 19, H, W],)`` for faces in [-1, 1]. A random convolution of the face over
    a prior (skin, class 1, in a centred ellipse; background, class 0, around it), so that the masks have a face's
    shape with edges that depend on the input."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv = torch.nn.Conv2d(3, 19, 5, padding=2)
        y, x = torch.meshgrid(torch.linspace(-1, 1, 512), torch.linspace(-1, 1, 512), indexing="ij")
        inside = ((x / 0.7) ** 2 + (y / 0.85) ** 2 < 1).float()
        prior = torch.zeros(19, 512, 512)  # ParseNet's input is always 512 px (parse_labels resizes the faces)
        prior[0], prior[1] = 0.4 * (1 - inside), 0.4 * inside
        self.register_buffer("prior", prior)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        return (self.conv(x) + self.prior,)


def tiny_parser(seed: int = 0) -> FaceParser:
    return FaceParser(TinyParser(seed).eval(), Path("tiny_parser.pth"))


def use_tiny_networks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the library's loaders (the CLI's, in this process) return the tiny CodeFormer and parser."""
    monkeypatch.setattr(models, "load_codeformer", lambda *args, **kwargs: tiny_model())
    monkeypatch.setattr(models, "load_parser", lambda *args, **kwargs: tiny_parser())
