"""CodeFormer's swish in one pass (torch's SiLU) wherever the official arithmetic is not asked for.

CodeFormer's residual blocks compute swish as ``x * torch.sigmoid(x)``: a sigmoid pass, a multiply pass and a
temporary map as large as the features, 64 times per face. ``F.silu`` is the same function in one pass. It rounds
differently in the last bit (1 ULP on about a quarter of the values), so ``precision fp32`` keeps the official
function, bit-identical, and ``auto`` / ``bf16`` use SiLU: CodeFormer then takes 8-10 % less time in fp32
channels_last on a 2-core AMD EPYC Zen 5, and its output stays within 0.01/255 of the official function's
(bench/lean_networks.py; figures in bench/measured/README.md).

spandrel's ``ResBlock`` calls a module-level ``swish``, which a block cannot change per call. ``use_fused_swish``
therefore puts a ``SwitchableResBlock`` in each one's place: the same submodules under the same names (the state dict
is unchanged) and spandrel's own (TorchScript) swish unless ``fused`` is set.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

# spandrel's CodeFormer architecture module; read from sys.modules, as a loaded network has imported it, so that
# importing this module does not import spandrel_extra_arches (about a second).
_ARCH_MODULE = "spandrel_extra_arches.architectures.CodeFormer.__arch.codeformer"
_official_swish: Callable[[torch.Tensor], torch.Tensor] | None = None  # spandrel's swish, set by the first wrap


class SwitchableResBlock(torch.nn.Module):
    """spandrel's CodeFormer ``ResBlock`` with its swish chosen per call: ``fused`` False runs spandrel's own
    ``swish`` (the official ``x * sigmoid(x)``), True ``F.silu``. Its forward is ``ResBlock.forward`` otherwise."""

    def __init__(self, block: Any) -> None:  # spandrel's ResBlock, which has no type hints
        super().__init__()
        self.in_channels: int = block.in_channels
        self.out_channels: int = block.out_channels
        self.norm1, self.conv1, self.norm2, self.conv2 = block.norm1, block.conv1, block.norm2, block.conv2
        if self.in_channels != self.out_channels:
            self.conv_out = block.conv_out
        self.fused = False

    def forward(self, x_in: torch.Tensor) -> torch.Tensor:
        swish = F.silu if self.fused else _official_swish
        assert swish is not None  # set before any block is built
        x = self.conv1(swish(self.norm1(x_in)))
        x = self.conv2(swish(self.norm2(x)))
        if self.in_channels != self.out_channels:
            x_in = self.conv_out(x_in)
        return x + x_in


def use_fused_swish(net: torch.nn.Module, fused: bool) -> None:
    """Make every CodeFormer residual block of ``net`` compute swish with SiLU (``fused``) or as the official code
    does; spandrel's blocks are first replaced by ``SwitchableResBlock`` (once). Other networks are left alone."""
    global _official_swish
    arch = sys.modules.get(_ARCH_MODULE)
    if arch is None:  # no spandrel CodeFormer was ever built, so net has none of its blocks
        return
    _official_swish = arch.swish
    for name, block in list(net.named_modules()):  # a list: blocks are replaced while walking
        if type(block) is arch.ResBlock:
            parent_name, _, child = name.rpartition(".")
            block = SwitchableResBlock(block)
            setattr(net.get_submodule(parent_name), child, block)
        if isinstance(block, SwitchableResBlock):
            block.fused = fused
