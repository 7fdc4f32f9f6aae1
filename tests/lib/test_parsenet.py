"""codeformer.models.parsenet: ParseNet's class logits, the same bits as facexlib's forward, without its image head
and its ``x * 1.0`` copies."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from facexlib.parsing.parsenet import ParseNet
from torch.profiler import profile

import weights
from codeformer import models
from codeformer.models.parsenet import ParseNetLogits
from helpers import read_rgb


def _face(size: int) -> torch.Tensor:
    """A real aligned face, resized to ``size`` px, in [-1, 1] as ParseNet takes it."""
    face = torch.from_numpy(np.ascontiguousarray(read_rgb("aligned_0143.png"))).permute(2, 0, 1)[None].float()
    face = torch.nn.functional.interpolate(face, size=(size, size), mode="area")
    return (face / 255.0 - 0.5) / 0.5


@pytest.fixture(scope="module")
def parsenet() -> ParseNet:
    net = ParseNet(in_size=512, out_size=512, parsing_ch=19)
    net.load_state_dict(weights.parsenet_state_dict(seed=3))
    return net.eval()


@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last])
def test_logits_are_the_same_bits_as_facexlibs_forward(parsenet, fmt):
    x = _face(128).contiguous(memory_format=fmt)  # ParseNet is convolutional: 128 px keeps the test quick
    reference = parsenet.to(memory_format=fmt)
    lean = ParseNetLogits(copy.deepcopy(parsenet)).to(memory_format=fmt)
    with torch.inference_mode():
        expected = reference(x)[0]
        (logits,) = lean(x)
    assert logits.shape == (1, 19, 128, 128)
    assert torch.equal(logits, expected)


def test_no_image_head_and_no_copies(parsenet):
    lean = ParseNetLogits(copy.deepcopy(parsenet))
    ran_image_head = []
    lean.net.out_img_conv.register_forward_hook(lambda *args: ran_image_head.append(True))

    def multiplies(net: torch.nn.Module) -> int:
        with torch.inference_mode(), profile() as prof:
            net(_face(64))
        return sum(event.count for event in prof.key_averages() if event.key == "aten::mul")

    assert multiplies(parsenet) == 40  # facexlib's x * 1.0 for each norm and activation of type 'none'
    assert multiplies(lean) == 0
    assert not ran_image_head


def test_load_parser_gives_the_logits_of_the_checkpoint(models_dir: Path) -> None:
    path = models_dir / "facedetection" / "parsing_parsenet.pth"
    parser = models.load_parser(path)
    net = ParseNet(in_size=512, out_size=512, parsing_ch=19)
    net.load_state_dict(models.load_state_dict(path))
    x = _face(64)
    with torch.inference_mode():
        assert torch.equal(parser.module(x)[0], net.eval()(x)[0])
