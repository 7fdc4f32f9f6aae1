"""How often torch.compile traces CodeFormer again as batch size and fidelity change (CPU is enough: dynamo only).

    python bench/compile_recompiles.py

Compiles the network as ``restore_faces`` does (``compiled.compile_network``) but with a counting backend that runs
the traced graph eagerly, calls it with several batch sizes and fidelities and prints the number of graphs after
each call; ``--plain`` uses plain ``torch.compile``. Each graph is one ~1 min inductor compile on a GPU.
Measured (torch 2.14.1, CPU), batch 1/2/3 x fidelity 0.5/0.8/0.3/0/1: plain torch.compile 6 graphs (the 1st call
1; a 2nd batch size one more: the batch dimension becomes dynamic, except size 1, which keeps graphs of its own; a
2nd fidelity one more: the weight becomes a graph input; fidelity 0 its own, a branch of the network);
``compile_network`` 4 (a lone face runs as two).
"""

from __future__ import annotations

import argparse
import time

import torch

from common import random_codeformer

from codeformer.compiled import compile_network


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--plain", action="store_true", help="plain torch.compile instead of compiled.compile_network")
    args = ap.parse_args()
    net = random_codeformer().module.eval()
    graphs = []

    def counting_backend(gm: torch.fx.GraphModule, inputs):
        graphs.append(gm)
        return gm.forward

    compile_fn = torch.compile if args.plain else compile_network
    compiled = compile_fn(net, backend=counting_backend)
    for batch, w in ((1, 0.5), (2, 0.5), (3, 0.5), (2, 0.8), (1, 0.3), (1, 0.0), (2, 0.0), (1, 1.0)):
        start = time.perf_counter()
        with torch.inference_mode():  # the input is made inside, as in restore_faces ((x - 0.5) / 0.5)
            compiled(torch.rand(batch, 3, 512, 512) * 2 - 1, weight=w)
        print(f"batch {batch} fidelity {w}: {len(graphs)} graph(s) so far ({time.perf_counter() - start:.1f} s)",
              flush=True)


if __name__ == "__main__":
    main()
