"""A property predictor on molecular graphs, clean or noised: the evaluator of EDM's property
protocol (Hoogeboom et al. 2022, section 5.2) and a differentiable guide.

The network is the graph transformer of the denoiser (:class:`~sci_diffusion.nets.
graph_transformer.GraphTransformer`) with a per-node output of 2P values read out as a sum
(extensive part: polarizability grows with size) plus a mean (intensive part) over real nodes.
It is trained on graphs noised by the task's own forward process at a random time (t = 0,
the clean graph, in a third of the batch), so it reads both generated molecules (t = 0) and
noisy sampler states. Files are safetensors with JSON metadata (never pickle).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from sci_diffusion.io.checkpoint import load_checkpoint, save_checkpoint
from sci_diffusion.io.errors import UserInputError
from sci_diffusion.io.progress import Progress
from sci_diffusion.nets.graph_transformer import GraphTransformer

from .graph_keys import EDGE_KEY, NODE_KEYS

if TYPE_CHECKING:
    from .molecule_graph import MoleculeGraphTask

#: Format tag of predictor files.
PREDICTOR_FORMAT = "sci_diffusion.property_predictor/1"

#: EDM's property protocol splits the training split in halves: the generator is trained on
#: rows [0, HALF) ("half A", ``task.data.limit=HALF``), the predictor on [HALF, end).
HALF = 50_000


def split_labels(task: MoleculeGraphTask, split: str, names: tuple[str, ...]) -> Tensor:
    """(M, P) property values of ``task``'s training graphs (``split="train"``) or of the data
    set's ``split`` graphs, in their order (:func:`~sci_diffusion.chem.conditioning.
    property_table`)."""
    from sci_diffusion.chem.conditioning import property_table

    data = task.data() if split == "train" else task.dataset.graphs(split)
    table = property_table(task.dataset.name, split, data.source_index.numpy(), names)
    return torch.from_numpy(table).float()


class PropertyPredictor(nn.Module):
    """``predictor(x, t) -> (B, P)`` property values (in their units) of graphs ``x``.

    Args:
        node_classes: ``{key: K}`` of the node components (one-hot inputs, in order).
        edge_classes: K of the symmetric edge component.
        names: the predicted properties.
        **options: :class:`GraphTransformer` widths (``layers``, ``node_dim``, ...).
    """

    def __init__(
        self,
        node_classes: dict[str, int],
        edge_classes: int,
        names: tuple[str, ...],
        **options: Any,
    ) -> None:
        super().__init__()
        self.node_classes = dict(node_classes)
        self.names = tuple(names)
        self.options = dict(options)
        p = len(self.names)
        self.transformer = GraphTransformer(sum(self.node_classes.values()), edge_classes,
                                            node_out=2 * p, edge_out=1, **options)  # fmt: skip
        self.register_buffer("mean", torch.zeros(p))
        self.register_buffer("std", torch.ones(p))

    def forward(self, x: dict[str, Tensor], t: Tensor, node_mask: Tensor | None = None) -> Tensor:
        """``x``: one-hot (or probability) graphs as the denoiser takes them; ``t`` (B,)."""
        nodes = torch.cat([x[k] for k in self.node_classes], dim=-1)
        if node_mask is None:
            node_mask = nodes.abs().sum(-1) > 0
        per_node, _ = self.transformer(nodes, x[EDGE_KEY], node_mask, t)
        w = node_mask[..., None].to(per_node.dtype)
        p = len(self.names)
        total = (per_node[..., :p] * w).sum(1)
        mean = (per_node[..., p:] * w).sum(1) / w.sum(1).clamp_min(1.0)
        return (total + mean) * self.std + self.mean


def noisy_graphs(
    task: MoleculeGraphTask, x0: dict[str, Tensor], masks: dict[str, Tensor], t: Tensor,
    generator: torch.Generator,
) -> dict[str, Tensor]:  # fmt: skip
    """``x_t`` drawn from the task's forward process at times ``t`` (B,)."""
    space = task.space()
    return {k: space[k].sample_xt(v, t, masks[k], generator) for k, v in x0.items()}


def train_property_predictor(
    task: MoleculeGraphTask,
    rows: Tensor,
    values: Tensor,
    names: tuple[str, ...],
    *,
    steps: int = 1500,
    batch_size: int = 256,
    lr: float = 5e-4,
    seed: int = 0,
    clean_fraction: float = 1 / 3,
    **options: Any,
) -> PropertyPredictor:
    """Fit a predictor of ``values`` (M, P) for training rows ``rows`` (M,) of ``task``'s data.

    AdamW, linear warm-up over 100 steps then cosine; MSE on standardized values. A share
    ``clean_fraction`` of each batch is clean (t = 0), the rest noised at t ~ U(0, 1): 1.0 for
    a predictor that only reads finished molecules (EDM's protocol), less for guidance.
    """
    torch.manual_seed(seed)
    space = task.space()
    classes = {k: space[k].num_classes for k in NODE_KEYS}
    options = {"layers": 4, "node_dim": 128, "edge_dim": 64, "global_dim": 64, **options}
    net = PropertyPredictor(classes, space[EDGE_KEY].num_classes, names, **options)
    net.mean.copy_(values.mean(0))
    net.std.copy_(values.std(0).clamp_min(1e-6))
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-12)
    generator = torch.Generator().manual_seed(seed)
    net.train()
    with Progress(steps, f"train predictor ({', '.join(names)})", unit="steps") as bar:
        for step in range(steps):
            factor = (step + 1) / 100 if step < 100 else 0.5 * (
                1 + math.cos(math.pi * (step - 100) / max(1, steps - 100)))  # fmt: skip
            for group in optimizer.param_groups:
                group["lr"] = lr * factor
            pick = torch.randint(0, len(rows), (batch_size,), generator=generator)
            x0, masks = task._one_hot(rows[pick])
            t = torch.rand(batch_size, generator=generator)
            t = torch.where(torch.rand(batch_size, generator=generator) < clean_fraction, 0.0, t)
            xt = noisy_graphs(task, x0, masks, t, generator)
            pred = net(xt, t, masks[NODE_KEYS[0]])
            loss = (((pred - values[pick]) / net.std) ** 2).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            optimizer.step()
            bar.update(1)
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
    return net.eval()


@torch.no_grad()
def predict_graphs(
    net: PropertyPredictor, task: MoleculeGraphTask, samples: dict[str, Tensor],
    batch_size: int = 1000,
) -> Tensor:  # fmt: skip
    """(n, P) predictions at t = 0 for class-index graphs (``generate``'s output)."""
    from torch.nn.functional import one_hot

    space = task.space()
    out = []
    for start in range(0, samples["node_mask"].shape[0], batch_size):
        part = slice(start, start + batch_size)
        mask = samples["node_mask"][part]
        pair = mask[:, :, None] & mask[:, None, :]
        pair &= ~torch.eye(mask.shape[1], dtype=torch.bool)[None]
        masks = {"atoms": mask, "charges": mask, EDGE_KEY: pair}
        x = {k: one_hot(samples[k][part].long(), space[k].num_classes).float()
             * masks[k][..., None] for k in (*NODE_KEYS, EDGE_KEY)}  # fmt: skip
        out.append(net(x, torch.zeros(mask.shape[0]), mask))
    return torch.cat(out)


def save_predictor(net: PropertyPredictor, path: Path, info: dict[str, Any]) -> Path:
    """Write the predictor (weights + JSON metadata) atomically."""
    meta = {"format": PREDICTOR_FORMAT, "names": list(net.names), "node_classes":
            net.node_classes, "edge_classes": net.transformer.edge_in[0].in_features,
            "options": net.options, **info}  # fmt: skip
    return save_checkpoint(path, net.state_dict(), meta)


def load_predictor(path: Path) -> tuple[PropertyPredictor, dict[str, Any]]:
    """A predictor file written by :func:`save_predictor` (verified; no pickle)."""
    tensors, meta = load_checkpoint(path)
    if meta.get("format") != PREDICTOR_FORMAT:
        raise UserInputError(f"{path} is not a property-predictor file ({PREDICTOR_FORMAT})")
    net = PropertyPredictor(dict(meta["node_classes"]), int(meta["edge_classes"]),
                            tuple(meta["names"]), **meta["options"])  # fmt: skip
    net.load_state_dict(tensors)
    return net.eval(), meta


def fit_half_b_predictor(
    task: MoleculeGraphTask,
    names: tuple[str, ...],
    *,
    steps: int,
    batch_size: int,
    clean_fraction: float = 1 / 3,
    seed: int = 0,
) -> tuple[PropertyPredictor, dict[str, Any]]:
    """A predictor of ``names`` trained on half B of ``task``'s training graphs (rows
    ``HALF`` to the end) and its record: CPU seconds, test-split MAE, and the MAE of always
    predicting the training mean (what the predictor must beat)."""
    import time

    values = split_labels(task, "train", names)
    rows = torch.arange(HALF, len(task.data()))
    start = time.process_time()
    net = train_property_predictor(task, rows, values[rows], names, steps=steps,
                                   batch_size=batch_size, seed=seed,
                                   clean_fraction=clean_fraction)  # fmt: skip
    cpu_s = time.process_time() - start
    test = task.dataset.graphs("test")
    test_values = split_labels(task, "test", names)
    samples = {"atoms": test.atom_types, "charges": test.charges, "bonds": test.bonds,
               "node_mask": test.node_mask}  # fmt: skip
    mae = (predict_graphs(net, task, samples) - test_values).abs().mean(0)
    baseline = (test_values - values[rows].mean(0)).abs().mean(0)
    record = {
        "names": list(names), "train_rows": [HALF, len(task.data())], "steps": steps,
        "batch_size": batch_size, "clean_fraction": clean_fraction, "seed": seed,
        "train_cpu_s": round(cpu_s, 1), "test_n": len(test),
        "test_mae": dict(zip(names, mae.tolist(), strict=True)),
        "test_mae_of_train_mean": dict(zip(names, baseline.tolist(), strict=True)),
    }  # fmt: skip
    return net, record
