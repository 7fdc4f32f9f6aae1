"""torch.compile for CodeFormer without a compile per lone face (CUDA, ``compile_on_gpu`` / ``--compile``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import torch

from .runtime import retry_smaller

log = logging.getLogger(__name__)


def compile_network(net: torch.nn.Module, **compile_options) -> Callable:
    """``torch.compile(net)`` that never sees a batch of one face: it runs as two (itself twice) and the outputs are
    cut back. torch.compile gives size 1 graphs of its own, so without this a lone face (a last partial batch, a
    one-face image) would cost another minute of compiling; the copy costs one face of compute. Where two faces do
    not fit in memory, the lone face runs through ``net`` uncompiled. The first call's time (the compile, and one
    batch) is logged once.
    """
    compiled = torch.compile(net, **compile_options)
    reported = False

    def call(x: torch.Tensor, weight: float) -> tuple:
        nonlocal reported
        if reported:
            return compiled(x, weight=weight)
        start = time.perf_counter()
        out = compiled(x, weight=weight)
        if x.is_cuda:
            torch.cuda.synchronize(x.device)
        reported = True
        log.info("torch.compile: the first batch (%d faces) took %.1f s, compile included; a new batch size or "
                 "fidelity 0 compiles again, 4 times at most", x.shape[0], time.perf_counter() - start)
        return out

    def run(x: torch.Tensor, weight: float) -> tuple:
        if x.shape[0] != 1:
            return call(x, weight)

        def lone(copies: int) -> tuple:
            if copies == 1:
                return net(x, weight=weight)
            out = call(torch.cat([x, x]), weight)
            return tuple(t[:1] if isinstance(t, torch.Tensor) else t for t in out)

        return retry_smaller(lone, 2, smallest=1, what="compiled CodeFormer", unit="copies of the face",
                             too_large=lambda _: "out of memory running CodeFormer on a single face; free GPU memory "
                                                 "(close other programs or models) or run on the CPU")

    return run


__all__ = ["compile_network"]
