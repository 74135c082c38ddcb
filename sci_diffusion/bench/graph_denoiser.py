"""Graph denoiser benchmark: dense graph transformer against sparse message passing.

Times one training step's forward and backward pass (cross-entropy on node and edge logits) of

* ``dense`` — :class:`~sci_diffusion.nets.graph_transformer.GraphTransformer` without structural
  features, on padded (B, N, N) tensors;
* ``dense_cycles`` — the same with k-cycle features (the default model);
* ``dense_cycles_spectral`` — with cycle and Laplacian eigenfeatures;
* ``sparse_pyg`` — a torch-geometric stack of the same depth and widths: ``TransformerConv``
  with edge features for the nodes, an MLP of both endpoints for the edges, over the fully
  connected directed edges between the *real* nodes of each graph (no padding work at all);

for QM9-sized (N <= 9 heavy atoms, batch 256) and MOSES-sized (N <= 27, batch 64) batches.
Graph sizes follow the data sets' heavy-atom histograms (:data:`SIZE_HISTOGRAMS`), so the dense
model pays for as much padding as it would in training. The variants run interleaved, one call
each per round, and the median over rounds is reported, so slow phases of a shared machine hit
all variants alike; compare the ratios within one run rather than absolute times across runs.
Conversion to the sparse layout is done once, outside the timings (a sparse pipeline would hold
its data that way).

Run ``python -m sci_diffusion.bench.graph_denoiser [--out result.json]``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..io.files import write_json_atomic
from ..io.progress import stage
from ..nets.embeddings import SinusoidalTimeEmbedding
from ..nets.graph_transformer import GraphTransformer, pair_mask
from .sampler import machine_info

SIZES: tuple[tuple[str, int, int], ...] = (("qm9", 9, 256), ("moses", 27, 64))
"""(name, max nodes N, batch size)."""
SIZE_HISTOGRAMS: dict[str, dict[int, int]] = {
    # heavy atoms per molecule: all 130,831 QM9 molecules (qm9pack), and 20,000 MOSES training
    # SMILES drawn with random.seed(0) (molsets), counted with RDKit's GetNumHeavyAtoms
    "qm9": {1: 3, 2: 5, 3: 9, 4: 31, 5: 127, 6: 608, 7: 3138, 8: 17879, 9: 109031},
    "moses": {
        9: 1, 10: 3, 12: 4, 13: 12, 14: 43, 15: 79, 16: 141, 17: 495, 18: 1118, 19: 2270,
        20: 2401, 21: 2561, 22: 2871, 23: 2959, 24: 2853, 25: 1832, 26: 357,
    },
}  # fmt: skip
"""Graph sizes are drawn from these (clipped to N) for sizes of these names."""
NODE_CLASSES, EDGE_CLASSES = 4, 5  # QM9 heavy atoms C, N, O, F; no/single/double/triple/aromatic
DENSE_VARIANTS = {
    "dense": {"cycle_features": False},
    "dense_cycles": {"cycle_features": True},
    "dense_cycles_spectral": {"cycle_features": True, "spectral_features": True},
}


# -- data -------------------------------------------------------------------------------------
def draw_sizes(
    batch: int, max_nodes: int, histogram: dict[int, int] | None, gen: torch.Generator
) -> Tensor:
    """Graph sizes (B,): from ``histogram`` (counts per size) if given, else uniform in
    ``[ceil(2N/3), N]``."""
    if histogram is None:
        low = math.ceil(2 * max_nodes / 3)
        return torch.randint(low, max_nodes + 1, (batch,), generator=gen)
    sizes = torch.tensor([n for n in histogram if n <= max_nodes])
    weights = torch.tensor([float(histogram[int(n)]) for n in sizes])
    return sizes[torch.multinomial(weights, batch, True, generator=gen)]


def random_batch(
    batch: int, max_nodes: int, seed: int = 0, histogram: dict[int, int] | None = None
) -> dict[str, Tensor]:
    """Noisy-looking one-hot graphs: nodes (B, N, Kx), symmetric edges (B, N, N, Ke) with an
    empty diagonal, node mask (B, N), times (B,). Sizes: see :func:`draw_sizes`; N is the
    largest drawn size (a collate function pads to the batch's largest graph)."""
    gen = torch.Generator().manual_seed(seed)
    sizes = draw_sizes(batch, max_nodes, histogram, gen)
    n = int(sizes.max())
    mask = torch.arange(n)[None] < sizes[:, None]
    nodes = torch.randint(0, NODE_CLASSES, (batch, n), generator=gen)
    # mostly "no bond", as in molecules and in DiGress's marginal noise
    probs = torch.tensor([0.85, 0.08, 0.03, 0.01, 0.03])
    edges = torch.multinomial(probs, batch * n * n, True, generator=gen).reshape(batch, n, n)
    edges = torch.triu(edges, 1) + torch.triu(edges, 1).transpose(1, 2)
    pairs = pair_mask(mask)
    return {
        "x": F.one_hot(nodes, NODE_CLASSES).float() * mask[..., None],
        "e": F.one_hot(edges, EDGE_CLASSES).float() * pairs[..., None],
        "mask": mask,
        "t": torch.rand(batch, generator=gen),
    }


def to_sparse(dense: dict[str, Tensor]) -> dict[str, Tensor]:
    """The real nodes and the directed pairs between them in torch-geometric's layout:
    ``x`` (V, Kx), ``edge_index`` (2, P), ``edge_attr`` (P, Ke), ``batch`` (V,), ``t`` (B,)."""
    mask = dense["mask"]
    index = torch.full(mask.shape, -1, dtype=torch.long)
    index[mask] = torch.arange(int(mask.sum()))
    b, i, j = pair_mask(mask).nonzero(as_tuple=True)
    return {
        "x": dense["x"][mask],
        "edge_index": torch.stack([index[b, j], index[b, i]]),  # message from j to i
        "edge_attr": dense["e"][b, i, j],
        "batch": mask.nonzero(as_tuple=True)[0],
        "t": dense["t"],
    }


# -- the sparse alternative -------------------------------------------------------------------
def _mlp(dim_in: int, dim_out: int, hidden: int | None = None) -> nn.Sequential:
    hidden = hidden or dim_out
    return nn.Sequential(nn.Linear(dim_in, hidden), nn.SiLU(), nn.Linear(hidden, dim_out))


class SparseGraphNet(nn.Module):
    """Message-passing counterpart of the dense model, for timing only: per layer a
    ``TransformerConv`` (attention with edge features) and a node FFN, then an edge update from
    both endpoints; time enters the nodes additively."""

    def __init__(
        self,
        node_in: int,
        edge_in: int,
        *,
        layers: int = 4,
        node_dim: int = 128,
        edge_dim: int = 64,
        heads: int = 8,
    ) -> None:
        super().__init__()
        from torch_geometric.nn import TransformerConv

        self.time = nn.Sequential(SinusoidalTimeEmbedding(node_dim), nn.Linear(node_dim, node_dim))
        self.node_in = _mlp(node_in, node_dim)
        self.edge_in = _mlp(edge_in, edge_dim)
        self.convs = nn.ModuleList(
            TransformerConv(node_dim, node_dim // heads, heads=heads, edge_dim=edge_dim)
            for _ in range(layers)
        )
        self.node_ffn = nn.ModuleList(_mlp(node_dim, node_dim, 2 * node_dim) for _ in range(layers))
        self.edge_msg = nn.ModuleList(
            _mlp(2 * node_dim + edge_dim, edge_dim) for _ in range(layers)
        )
        self.node_norms = nn.ModuleList(nn.LayerNorm(node_dim) for _ in range(2 * layers))
        self.edge_norms = nn.ModuleList(nn.LayerNorm(edge_dim) for _ in range(layers))
        self.node_head = _mlp(node_dim, node_in)
        self.edge_head = _mlp(edge_dim, edge_in)

    def forward(
        self, x: Tensor, edge_index: Tensor, edge_attr: Tensor, batch: Tensor, t: Tensor
    ) -> tuple[Tensor, Tensor]:
        """``x`` (V, Kx), ``edge_index`` (2, P), ``edge_attr`` (P, Ke), ``batch`` (V,), ``t`` (B,)
        -> node logits (V, Kx), edge logits (P, Ke)."""
        h = self.node_in(x) + self.time(t)[batch]
        e = self.edge_in(edge_attr)
        src, dst = edge_index
        for k, conv in enumerate(self.convs):
            h = self.node_norms[2 * k](h + conv(h, edge_index, e))
            h = self.node_norms[2 * k + 1](h + self.node_ffn[k](h))
            e = self.edge_norms[k](e + self.edge_msg[k](torch.cat([h[src], h[dst], e], -1)))
        return self.node_head(h), self.edge_head(e)


# -- timing -----------------------------------------------------------------------------------
def _count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def _dense_step(net: GraphTransformer, data: dict[str, Tensor]) -> Callable[[], None]:
    mask, pairs = data["mask"], pair_mask(data["mask"])
    x_target, e_target = data["x"].argmax(-1), data["e"].argmax(-1)

    def step() -> None:
        net.zero_grad(set_to_none=True)
        nodes, edges = net(data["x"], data["e"], mask, data["t"])
        loss = F.cross_entropy(nodes[mask], x_target[mask])
        (loss + F.cross_entropy(edges[pairs], e_target[pairs])).backward()

    return step


def _sparse_step(net: SparseGraphNet, data: dict[str, Tensor]) -> Callable[[], None]:
    x_target, e_target = data["x"].argmax(-1), data["edge_attr"].argmax(-1)

    def step() -> None:
        net.zero_grad(set_to_none=True)
        nodes, edges = net(
            data["x"], data["edge_index"], data["edge_attr"], data["batch"], data["t"]
        )
        (F.cross_entropy(nodes, x_target) + F.cross_entropy(edges, e_target)).backward()

    return step


def time_interleaved(
    fns: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1
) -> dict[str, float]:
    """Median seconds per call of each function, called round-robin ``repeats`` times."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    samples: dict[str, list[float]] = {k: [] for k in fns}
    keys = list(fns)
    for r in range(repeats):
        for key in keys[r % len(keys) :] + keys[: r % len(keys)]:  # rotate the order
            start = time.perf_counter()
            fns[key]()
            samples[key].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in samples.items()}


def _feature_step(net: GraphTransformer, data: dict[str, Tensor]) -> Callable[[], None]:
    return lambda: net.structural_features(data["e"], data["mask"])


def bench_size(
    name: str,
    max_nodes: int,
    batch: int,
    *,
    repeats: int,
    warmup: int,
    sparse: bool,
    seed: int,
    widths: dict[str, int],
) -> dict[str, Any]:
    """One row: medians of forward+backward per variant, and the structural features alone."""
    torch.manual_seed(seed)
    data = random_batch(batch, max_nodes, seed, SIZE_HISTOGRAMS.get(name))
    nets: dict[str, nn.Module] = {
        key: GraphTransformer(NODE_CLASSES, EDGE_CLASSES, **widths, **flags)
        for key, flags in DENSE_VARIANTS.items()
    }
    fns = {key: _dense_step(net, data) for key, net in nets.items()}  # type: ignore[arg-type]
    fns["features_cycles"] = _feature_step(nets["dense_cycles"], data)  # type: ignore[arg-type]
    fns["features_spectral"] = _feature_step(
        GraphTransformer(
            NODE_CLASSES, EDGE_CLASSES, layers=0, cycle_features=False, spectral_features=True
        ),
        data,
    )
    if sparse:
        widths_sparse = {k: v for k, v in widths.items() if k != "global_dim"}
        nets["sparse_pyg"] = SparseGraphNet(NODE_CLASSES, EDGE_CLASSES, **widths_sparse)
        fns["sparse_pyg"] = _sparse_step(nets["sparse_pyg"], to_sparse(data))  # type: ignore[arg-type]
        fns["to_sparse"] = lambda: to_sparse(data)  # what the core's dense states would cost
    medians = time_interleaved(fns, repeats, warmup)
    mask = data["mask"]
    row: dict[str, Any] = {
        "name": name,
        "max_nodes": max_nodes,
        "batch": batch,
        "mean_nodes": float(mask.sum(1).float().mean()),
        "padded_nodes": mask.shape[1],
        "real_pair_fraction": float(pair_mask(mask).sum() / mask.numel() / mask.shape[1]),
        "seconds": medians,
        "parameters": {key: _count(net) for key, net in nets.items()},
    }
    if sparse:
        row["sparse_over_dense"] = medians["sparse_pyg"] / medians["dense"]
    return row


def run_graph_denoiser_bench(
    sizes: Sequence[tuple[str, int, int]] = SIZES,
    *,
    layers: int = 4,
    node_dim: int = 128,
    edge_dim: int = 64,
    global_dim: int = 64,
    heads: int = 8,
    repeats: int = 9,
    warmup: int = 2,
    threads: int | None = 2,
    sparse: bool = True,
    seed: int = 0,
    out: str | None = None,
) -> dict[str, Any]:
    """Time forward+backward of the dense graph transformer (with and without structural
    features) and of the sparse torch-geometric alternative at each ``(name, N, batch)``.

    Returns ``{"machine": ..., "config": ..., "rows": [...]}``; each row holds median
    ``seconds`` per variant (``features_*``: the structural features alone, no backward;
    ``to_sparse``: converting the dense batch to the sparse layout, not part of ``sparse_pyg``),
    parameter counts and ``sparse_over_dense`` (> 1: the dense model is faster). ``threads``
    sets torch's intra-op threads for the run (``None``: leave as is); the previous value is
    restored. ``sparse=False`` (or torch-geometric missing) skips the sparse model. The JSON
    result is written to ``out`` unless ``None``.
    """
    if sparse:
        try:
            import torch_geometric  # noqa: F401
        except ImportError:
            sparse = False
    widths = {
        "layers": layers,
        "node_dim": node_dim,
        "edge_dim": edge_dim,
        "global_dim": global_dim,
        "heads": heads,
    }
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        before = machine_info()
        start = time.perf_counter()
        rows = []
        for name, n, b in sizes:
            stage(f"bench graph: {name} (N <= {n}, batch {b}), dense vs sparse")
            rows.append(bench_size(name, n, b, repeats=repeats, warmup=warmup, sparse=sparse,
                                   seed=seed, widths=widths))  # fmt: skip
        result = {
            "machine": before,
            "load_average_after": machine_info()["load_average"],
            "wall_s": time.perf_counter() - start,
            "config": {**widths, "repeats": repeats, "warmup": warmup, "seed": seed},
            "rows": rows,
        }
    finally:
        torch.set_num_threads(previous)
    if out is not None:
        write_json_atomic(Path(out), result)
    return result


def table(result: dict[str, Any]) -> str:
    """A Markdown table of the medians (milliseconds) and the sparse/dense ratio."""
    keys = [
        "dense",
        "dense_cycles",
        "dense_cycles_spectral",
        "sparse_pyg",
        "features_cycles",
        "features_spectral",
        "to_sparse",
    ]
    present = [k for k in keys if any(k in r["seconds"] for r in result["rows"])]
    head = "| size | N | batch | " + " | ".join(f"{k} ms" for k in present) + " | sparse/dense |"
    lines = [head, "|" + "---|" * (len(present) + 4)]
    for r in result["rows"]:
        cells = [f"{1000 * r['seconds'][k]:.1f}" if k in r["seconds"] else "-" for k in present]
        ratio = f"{r['sparse_over_dense']:.2f}" if "sparse_over_dense" in r else "-"
        lines.append(
            f"| {r['name']} | {r['max_nodes']} | {r['batch']} | "
            + " | ".join(cells)
            + f" | {ratio} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="write the JSON result here")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    result = run_graph_denoiser_bench(repeats=args.repeats, threads=args.threads, out=args.out)
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=2))
    print(table(result))


if __name__ == "__main__":
    main()
