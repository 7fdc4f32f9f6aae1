"""How often torch.compile traces CodeFormer again as batch size and fidelity change (CPU is enough: dynamo only).

    python bench/compile_recompiles.py

Calls the compiled network as ``restore_faces`` does (``net(x, weight=w)``) with a counting backend that runs the
traced graph eagerly, and prints the number of graphs after each call. Each graph is one ~1 min inductor compile
on a GPU. Measured (torch 2.14.1, CPU): the 1st call traces 1 graph; a 2nd batch size one more (the batch
dimension becomes dynamic, except size 1, which keeps its own graph); a 2nd fidelity one more (the weight becomes a
graph input); fidelity 0 its own (a branch of the network): 6 graphs for batch 1/2/3 x fidelity 0.5/0.8/0.3/0/1,
and none after that.
"""

from __future__ import annotations

import time

import torch

from common import random_codeformer


def main() -> None:
    net = random_codeformer().module.eval()
    graphs = []

    def counting_backend(gm: torch.fx.GraphModule, inputs):
        graphs.append(gm)
        return gm.forward

    compiled = torch.compile(net, backend=counting_backend)
    for batch, w in ((1, 0.5), (2, 0.5), (3, 0.5), (2, 0.8), (1, 0.3), (1, 0.0), (2, 0.0), (1, 1.0)):
        x = torch.rand(batch, 3, 512, 512) * 2 - 1
        start = time.perf_counter()
        with torch.inference_mode():
            compiled(x, weight=w)
        print(f"batch {batch} fidelity {w}: {len(graphs)} graph(s) so far ({time.perf_counter() - start:.1f} s)",
              flush=True)


if __name__ == "__main__":
    main()
