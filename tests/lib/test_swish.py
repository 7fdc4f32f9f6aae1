"""codeformer.swish: CodeFormer's residual blocks compute swish as the official code does under ``precision fp32``
(bit for bit) and as the fused SiLU otherwise; the state dict and other networks are left as they are."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import fake_model, psnr, read_rgb

from codeformer import models, restore
from codeformer.restore import restore_faces
from codeformer.swish import SwitchableResBlock, use_fused_swish

with warnings.catch_warnings():  # its module uses torch.jit.script, which recent torch warns about
    warnings.simplefilter("ignore", FutureWarning)
    from spandrel_extra_arches.architectures.CodeFormer.__arch.codeformer import ResBlock


def _blocks() -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(ResBlock(64, 64), torch.nn.Sequential(ResBlock(64, 128))).eval()


def _silu_reference(block: ResBlock, x: torch.Tensor) -> torch.Tensor:
    """ResBlock.forward written out with F.silu."""
    y = block.conv2(F.silu(block.norm2(block.conv1(F.silu(block.norm1(x))))))
    return y + (block.conv_out(x) if block.in_channels != block.out_channels else x)


def test_blocks_are_replaced_once_with_the_same_weights_and_the_official_swish_by_default():
    net = _blocks()
    originals = [net[0], net[1][0]]
    state = net.state_dict()
    x = torch.randn(2, 64, 24, 24)
    with torch.inference_mode():
        expected = net(x)
    use_fused_swish(net, False)
    assert isinstance(net[0], SwitchableResBlock) and isinstance(net[1][0], SwitchableResBlock)
    assert net[1][0].conv_out is originals[1].conv_out
    assert net.state_dict().keys() == state.keys()
    assert all(torch.equal(net.state_dict()[k], v) for k, v in state.items())
    with torch.inference_mode():
        assert torch.equal(net(x), expected)  # spandrel's own swish: the same bits
    replaced = net[0]
    use_fused_swish(net, True)
    assert net[0] is replaced  # switched, not wrapped again
    with torch.inference_mode():
        fused = net(x)
        assert torch.equal(fused, _silu_reference(originals[1], _silu_reference(originals[0], x)))
    assert not torch.equal(fused, expected)  # SiLU rounds differently in the last bit...
    torch.testing.assert_close(fused, expected, rtol=1e-5, atol=1e-5)  # ...and nothing more
    use_fused_swish(net, False)
    with torch.inference_mode():
        assert torch.equal(net(x), expected)


def test_networks_without_codeformer_blocks_are_left_alone():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1))
    use_fused_swish(net, True)
    assert type(net[0]) is torch.nn.Conv2d


@pytest.mark.parametrize(("precision", "fused"), [("fp32", False), ("auto", True), ("bf16", True)])
def test_restore_fuses_swish_unless_fp32(monkeypatch, precision, fused):
    seen = []
    monkeypatch.setattr(restore, "use_fused_swish", lambda net, on: seen.append(on))
    restore_faces(fake_model(precision=precision), [np.zeros((512, 512, 3), np.uint8)])
    assert seen == [fused]


def test_fp32_restores_as_spandrels_codeformer_and_auto_close_to_it(models_dir: Path):
    path = models_dir / "facerestore_models" / "codeformer.pth"
    model, reference = models.load_codeformer(path), models.load_codeformer(path).module
    face = read_rgb("aligned_0143.png")
    x = (torch.from_numpy(face).permute(2, 0, 1)[None].float() / 255.0 - 0.5) / 0.5
    with torch.inference_mode():
        y = reference(x, weight=0.5)[0]
    expected = ((y.clamp(-1, 1) + 1) / 2 * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    fp32 = restore_faces(model, [face], precision="fp32")
    np.testing.assert_array_equal(fp32, expected)
    auto = restore_faces(model, [face], precision="auto")  # SiLU and channels_last: float rounding, which may flip
    assert psnr(auto[0], expected[0]) > 35  # a near-tie code on another CPU, so no bound per pixel
