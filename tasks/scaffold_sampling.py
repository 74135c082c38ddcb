"""Scaffold-constrained sampling for the graph tasks (``qm9_graph``, ``moses_graph``).

``sci-diffusion sample task=qm9_graph scaffold=<SMILES or SMARTS>``: every sample holds the
fragment's atoms, charges and the bonds among them exactly, on its first k nodes; the node
count (>= k), the other atoms and every other bond — those between the fragment and the new
atoms included — are generated. Mechanism: :class:`~sci_diffusion.core.guidance.Inpainting`
with each categorical component re-noised by its own forward process, run by the task's
configured sampler (every sampler takes a ``constraint`` and ``resample``), so a fixed entry is
exact in the output and the free part sees the fragment through ``q(x_t | fragment)``.
``resample=r`` adds RePaint's resampling (``(1 + r)`` x the network evaluations; measured in
docs/benchmarks.md, "Scaffold-constrained generation (issue 16)").
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.nn.functional import one_hot

from sci_diffusion.chem.scaffold import Scaffold, ScaffoldError, parse_scaffold
from sci_diffusion.core.guidance import Inpainting
from sci_diffusion.core.sampler_config import run_sampler, start_time

from .graph_keys import EDGE_KEY

__all__ = [
    "sample_with_scaffold",
    "scaffold_count_weights",
    "scaffold_counts",
    "scaffold_for_task",
    "scaffold_known",
]


def scaffold_for_task(task: Any, fragment: str | Scaffold) -> Scaffold:
    """``fragment`` parsed under the task's vocabulary and node limit (a :class:`Scaffold`
    is returned as it is). Raises :class:`ScaffoldError` before any sampling."""
    if isinstance(fragment, Scaffold):
        return fragment
    data = task.data()
    scaffold = parse_scaffold(fragment, data.vocab, int(data.stats.max_nodes))
    scaffold_count_weights(task, scaffold.num_atoms)  # no training graph that large: refuse now
    return scaffold


def scaffold_count_weights(task: Any, k: int) -> Tensor:
    """The training node-count histogram restricted to counts >= ``k`` (float64, not
    normalised); :class:`ScaffoldError` when no training graph has ``k`` nodes or more."""
    weights = task.data().stats.node_counts.double().clone()
    weights[:k] = 0.0
    if not float(weights.sum()) > 0:
        raise ScaffoldError(
            f"the scaffold has {k} heavy atoms; no training molecule of this model has that many "
            "nodes or more"
        )
    return weights


def scaffold_counts(task: Any, k: int, n: int, generator: torch.Generator) -> Tensor:
    """``n`` node counts (CPU int64) from the training histogram restricted to counts >= ``k``
    (seeded from ``generator``'s stream, as :meth:`MoleculeGraphTask.sample_masks` does)."""
    weights = scaffold_count_weights(task, k)
    seed = int(torch.randint(2**31, (1,), generator=generator, device=generator.device))
    cpu = torch.Generator().manual_seed(seed)
    return torch.multinomial(weights, n, replacement=True, generator=cpu)


def scaffold_known(
    scaffold: Scaffold, space: Any, n: int, n_max: int, device: torch.device | str
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """The one-hot known values and their masks (keyed like the space): the fragment's atom
    and charge classes on nodes ``0..k-1`` and its bond classes on the off-diagonal pairs
    among them (no bond between two fragment atoms is a fixed "none"); nothing else."""
    k = scaffold.num_atoms
    fixed = torch.zeros(n_max, dtype=torch.bool, device=device)
    fixed[:k] = True
    pair = fixed[:, None] & fixed[None, :] & ~torch.eye(n_max, dtype=torch.bool, device=device)
    known: dict[str, Tensor] = {}
    masks: dict[str, Tensor] = {}
    for key, classes, where in (("atoms", scaffold.atoms, fixed), ("charges", scaffold.charges,
                                fixed), (EDGE_KEY, scaffold.bonds, pair)):  # fmt: skip
        num = space[key].num_classes
        full = torch.zeros(where.shape, dtype=torch.long, device=device)
        full[(slice(0, k),) * full.ndim] = classes.to(device)
        value = one_hot(full, num).float() * where[..., None]
        known[key] = value.expand(n, *value.shape).contiguous()
        masks[key] = where[..., None].expand(n, *where.shape, num).contiguous()
    return known, masks


def sample_with_scaffold(
    task: Any,
    denoise: Any,
    fragment: str | Scaffold,
    n: int,
    generator: torch.Generator,
    device: torch.device | str,
    *,
    resample: int = 0,
) -> dict[str, Tensor]:
    """``n`` graphs of ``task`` (a :class:`~tasks.molecule_graph.MoleculeGraphTask`) that hold
    ``fragment`` (SMILES or SMARTS, or a parsed :class:`Scaffold`) on their first k nodes.

    Returns what :meth:`MoleculeGraphTask._sample_graphs` returns: ``atoms``, ``charges``
    (n, N) and ``bonds`` (n, N, N) class indices and ``node_mask`` (n, N), CPU tensors. Node
    counts come from the training histogram restricted to counts >= k. ``denoise`` is the
    task's denoiser (or a guided wrapper of it); the sampler is ``task.cfg.sampler``.
    ``resample=r``: RePaint's resampling, ``(1 + r)`` x the network evaluations.

    Raises
    ------
    ScaffoldError
        (a user error) for a fragment the task's graphs cannot hold, before any sampling.
    """
    scaffold = scaffold_for_task(task, fragment)
    space = task.space()
    counts = scaffold_counts(task, scaffold.num_atoms, n, generator)
    mask, pair = task.sample_masks(n, generator, device, counts)
    masks = {"atoms": mask, "charges": mask, EDGE_KEY: pair}
    known, known_mask = scaffold_known(scaffold, space, n, mask.shape[1], device)
    x = {key: space[key].prior((n, *m.shape[1:], space[key].num_classes), m,
                               generator=generator, device=device)
         for key, m in masks.items()}  # fmt: skip
    inpaint = Inpainting(known, known_mask, space, generator=generator)
    t_start = torch.tensor(start_time(task.cfg.sampler), device=mask.device)
    x = inpaint.constraint(x, t_start)  # the fragment's rows drawn from q(x_t | fragment)
    out = run_sampler(inpaint.wrap(denoise), space, x, task.cfg.sampler, generator, mask=masks,
                      constraint=inpaint.constraint, resample=resample)  # fmt: skip
    return {
        "atoms": out["atoms"].argmax(-1).cpu(),
        "charges": out["charges"].argmax(-1).cpu(),
        EDGE_KEY: out[EDGE_KEY].argmax(-1).cpu(),
        "node_mask": mask.cpu(),
    }
