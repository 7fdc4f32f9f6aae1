"""facexlib's ParseNet as the paste uses it: its class logits only, bit for bit, with less work.

facexlib's forward also builds a reconstructed face (a 64 -> 3 convolution at 512 px) that the paste never reads,
and its layers without a norm or an activation pass their output through ``x * 1.0`` for each: 40 full copies of a
feature map per face, which change no value. Both are left out here. The logits are the same bits
(tests/lib/test_parsenet.py) and ParseNet takes 7-10 % less time in channels_last on a 2-core AMD EPYC Zen 5
(bench/lean_networks.py; figures in bench/measured/README.md).
"""

from __future__ import annotations

import torch
from facexlib.parsing.parsenet import NormLayer, ParseNet, ReluLayer


def _same(x: torch.Tensor) -> torch.Tensor:
    return x


class ParseNetLogits(torch.nn.Module):
    """Wraps a loaded ParseNet; called as ParseNet is (faces ``[B, 3, 512, 512]`` in [-1, 1]), it returns
    ``(logits [B, 19, 512, 512],)``: the first of ParseNet's outputs, without the second."""

    def __init__(self, net: ParseNet) -> None:
        super().__init__()
        self.net = net
        for layer in net.modules():
            # norm_type / relu_type 'none' are the only ones given as a lambda (x * 1.0) rather than a module. No
            # layer changes the tensor in place after them, so the copy protected nothing.
            if isinstance(layer, NormLayer) and layer.norm_type == "none":
                layer.norm = _same
            elif isinstance(layer, ReluLayer) and not isinstance(layer.func, torch.nn.Module):
                layer.func = _same

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        net = self.net
        feat = net.encoder(x)
        return (net.out_mask_conv(net.decoder(feat + net.body(feat))),)
