"""EGNN throughput on QM9-sized batches: dense against sparse edges (and PyG), on CPU.

Synthetic molecules only (nothing is read or downloaded): sizes are drawn from QM9's own size
histograms (:data:`QM9_SIZES`), positions are Gaussian with a molecule-like spread, atom types
and bond types random one-hots. Each batch is padded to its largest molecule, as a data loader
would. Two models: ``edm`` (positions + atom types, EDM's setting) and ``joint`` (bond types in
and a symmetric bond-type head out). Up to three implementations of the same function with the
same weights: ``dense`` and ``sparse`` (``EGNN(edges=...)``, plain torch) and ``pyg``
(:class:`~sci_diffusion.nets.egnn_pyg.PyGEGNN`: the layers on torch-geometric's
``MessagePassing``; needs torch-geometric). For each setting, model and implementation (record
field ``edges``) the benchmark times

* **train**: forward + backward of a squared-output loss (one training step without the
  optimizer update, which costs the same for both modes), and
* **sample**: a forward pass under ``torch.inference_mode`` (one sampler step),

as medians over interleaved repeats, and reports molecules per second.

Run with ``run_egnn_bench(out="egnn.json")`` or ``python -m sci_diffusion.bench.egnn``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..io.files import write_json_atomic
from ..io.progress import stage
from ..nets.egnn import EGNN
from .sampler import machine_info

# Molecule sizes in QM9 (130,831 molecules; qm9pack's `Elements` column): size -> count.
QM9_SIZES: dict[str, dict[int, int]] = {
    "hydrogens": {
        3: 2, 4: 4, 5: 5, 6: 12, 7: 20, 8: 65, 9: 172, 10: 483, 11: 1053, 12: 2189,
        13: 4027, 14: 6758, 15: 10216, 16: 13824, 17: 16969, 18: 17442, 19: 18146,
        20: 12403, 21: 13166, 22: 4428, 23: 6362, 24: 712, 25: 1923, 26: 59, 27: 356, 29: 35,
    },
    "heavy": {1: 3, 2: 5, 3: 9, 4: 31, 5: 127, 6: 608, 7: 3138, 8: 17879, 9: 109031},
}  # fmt: skip
ATOM_TYPES = 5  # H, C, N, O, F
BOND_TYPES = 5  # none, single, double, triple, aromatic
MODELS = ("edm", "joint")
COMPARED = ("dense", "sparse")  # the two implementations behind EGNN(edges=...)
IMPLEMENTATIONS = (*COMPARED, "pyg")  # + PyGEGNN (torch-geometric MessagePassing)
DEFAULT_THREADS = 2


def sample_sizes(histogram: Mapping[int, int], batch: int, generator: torch.Generator) -> Tensor:
    """``batch`` molecule sizes (batch,) drawn with the frequencies of ``histogram``."""
    sizes = torch.tensor(list(histogram))
    weights = torch.tensor(list(histogram.values()), dtype=torch.float64)
    return sizes[torch.multinomial(weights, batch, replacement=True, generator=generator)]


def random_molecules(sizes: Tensor, generator: torch.Generator) -> dict[str, Tensor]:
    """A padded batch of random molecules with ``sizes`` (B,) atoms.

    Returns ``x`` (B, N, 3) positions (spread ~ size^(1/3), like real molecules), ``h``
    (B, N, ATOM_TYPES) one-hot types, ``edge_attr`` (B, N, N, BOND_TYPES) symmetric one-hot
    bonds, ``t`` (B,) times and ``mask`` (B, N), with N = max(sizes).
    """
    batch, n = sizes.shape[0], int(sizes.max())
    mask = torch.arange(n)[None] < sizes[:, None]
    spread = sizes.double().pow(1 / 3)[:, None, None]
    x = (torch.randn(batch, n, 3, generator=generator, dtype=torch.float64) * spread).float()
    types = torch.randint(ATOM_TYPES, (batch, n), generator=generator)
    bonds = torch.randint(BOND_TYPES, (batch, n, n), generator=generator)
    bonds = torch.triu(bonds, 1) + torch.triu(bonds, 1).transpose(1, 2)
    return {
        "x": x * mask[..., None],
        "h": torch.nn.functional.one_hot(types, ATOM_TYPES).float() * mask[..., None],
        "edge_attr": torch.nn.functional.one_hot(bonds, BOND_TYPES).float(),
        "t": torch.rand(batch, generator=generator),
        "mask": mask,
    }


def _median_times(
    fns: Mapping[str, Callable[[], object]], repeats: int
) -> dict[str, tuple[float, float]]:
    """Median (wall, CPU) seconds per call; repeats interleave the functions so that load
    drift hits all of them. CPU time (all threads of this process) is the steadier of the two
    on a shared machine: waiting for a core does not count."""
    for fn in fns.values():  # warm-up: allocator, lazy init
        fn()
    samples: dict[str, list[tuple[float, float]]] = {key: [] for key in fns}
    keys = list(fns)
    for r in range(repeats):
        for key in keys[r % len(keys) :] + keys[: r % len(keys)]:
            wall, cpu = time.perf_counter(), time.process_time()
            fns[key]()
            samples[key].append((time.perf_counter() - wall, time.process_time() - cpu))
    return {
        key: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
        for key, v in samples.items()
    }


def _model_inputs(batch: dict[str, Tensor], model: str) -> dict[str, Tensor]:
    keys = ("x", "h", "t", "mask", "edge_attr") if model == "joint" else ("x", "h", "t", "mask")
    return {k: batch[k] for k in keys}


def _step_fns(net: EGNN, inputs: dict[str, Tensor]) -> dict[str, Callable[[], object]]:
    def train() -> None:
        net.zero_grad(set_to_none=True)
        out = net(**inputs)
        loss = out.pos.square().mean() + out.h.square().mean()
        if out.edges is not None:
            loss = loss + out.edges.square().mean()
        loss.backward()

    def sample() -> None:
        with torch.inference_mode():
            net(**inputs)

    return {"train": train, "sample": sample}


def _build(model: str, mode: str, hidden: int, n_layers: int, seed: int) -> EGNN:
    if mode == "pyg":  # the same weights, on torch-geometric's MessagePassing
        from ..nets.egnn_pyg import PyGEGNN

        return PyGEGNN.from_egnn(_build(model, "sparse", hidden, n_layers, seed))
    torch.manual_seed(seed)  # the same weights for every implementation
    joint = model == "joint"
    return EGNN(
        ATOM_TYPES,
        ATOM_TYPES,
        hidden=hidden,
        n_layers=n_layers,
        edge_features=BOND_TYPES if joint else 0,
        edge_out_features=BOND_TYPES if joint else 0,
        edges=mode,
    )


def _records_for(
    setting: str,
    model: str,
    batch: dict[str, Tensor],
    hidden: int,
    n_layers: int,
    repeats: int,
    seed: int,
    implementations: Sequence[str] = COMPARED,
) -> list[dict[str, Any]]:
    inputs = _model_inputs(batch, model)
    fns: dict[str, Callable[[], object]] = {}
    for mode in implementations:
        net = _build(model, mode, hidden, n_layers, seed)
        for phase, fn in _step_fns(net, inputs).items():
            fns[f"{mode}/{phase}"] = fn
    timing = _median_times(fns, repeats)
    sizes = batch["mask"].sum(1)
    size = len(sizes)
    real_pairs = int((sizes * (sizes - 1)).sum())
    n = batch["mask"].shape[1]
    records = []
    for mode in implementations:
        (train_s, train_cpu), (sample_s, sample_cpu) = (
            timing[f"{mode}/train"],
            timing[f"{mode}/sample"],
        )
        records.append(
            {
                "setting": setting,
                "model": model,
                "edges": mode,
                "batch": size,
                "n_max": n,
                "mean_atoms": float(sizes.double().mean()),
                "real_pair_fraction": real_pairs / (size * n * n),
                "train_s": train_s,
                "sample_s": sample_s,
                "train_cpu_s": train_cpu,
                "sample_cpu_s": sample_cpu,
                "train_mol_per_s": size / train_s,
                "sample_mol_per_s": size / sample_s,
            }
        )
    return records


def run_egnn_bench(
    out: str | None = None,
    *,
    batch_size: int = 64,
    settings: Sequence[str] = ("heavy", "hydrogens"),
    models: Sequence[str] = MODELS,
    hidden: int = 128,
    n_layers: int = 4,
    repeats: int = 7,
    seed: int = 0,
    threads: int | None = None,
    implementations: Sequence[str] = COMPARED,
) -> dict[str, Any]:
    """Time EGNN training and sampling steps, dense against sparse edges (and PyG), on CPU.

    Parameters
    ----------
    out
        Where to write the JSON result (``None``: do not write).
    batch_size
        Molecules per batch.
    settings
        Keys of :data:`QM9_SIZES`: ``heavy`` (up to 9 atoms) and/or ``hydrogens`` (up to 29).
    models
        ``edm`` (positions + types) and/or ``joint`` (+ bond types in and out).
    hidden, n_layers
        EGNN size (defaults: the :class:`~sci_diffusion.nets.egnn.EGNN` defaults).
    repeats
        Timed calls per function (median reported), after one warm-up call.
    seed
        Seeds the molecules and the weights.
    threads
        torch threads for the timings. Default: 2, or the current setting when
        ``OMP_NUM_THREADS`` or ``MKL_NUM_THREADS`` is set. On a machine shared with other
        work, 1 thread measures the work itself: busy-waiting OpenMP threads that lose their
        core inflate both wall and CPU time.
    implementations
        Subset of :data:`IMPLEMENTATIONS`: ``dense``, ``sparse`` (``EGNN(edges=...)``) and
        ``pyg`` (:class:`~sci_diffusion.nets.egnn_pyg.PyGEGNN`, needs torch-geometric), all
        with the same weights, timed interleaved.

    Returns
    -------
    dict
        ``{"benchmark": "egnn", "machine", "config", "records", "speedup", "wall_s"}``;
        one record per (setting, model, edges) with ``train_s``, ``sample_s`` (median wall
        seconds per batch), ``train_cpu_s``, ``sample_cpu_s`` (median process CPU seconds,
        all threads) and ``train_mol_per_s``, ``sample_mol_per_s`` (from wall time);
        ``speedup`` holds dense / sparse time per (setting, model), wall and CPU (> 1:
        sparse is faster), and with ``pyg`` also ``pyg_*``: PyG / sparse time (> 1: the
        hand-written sparse EGNN is faster).

    The previous torch thread setting is restored afterwards.
    """
    unknown = [s for s in settings if s not in QM9_SIZES] + [m for m in models if m not in MODELS]
    if unknown:
        raise ValueError(f"unknown settings/models {unknown}; {sorted(QM9_SIZES)}, {MODELS}")
    wrong = [i for i in implementations if i not in IMPLEMENTATIONS]
    if wrong or not implementations:
        raise ValueError(f"unknown implementations {wrong}; accepted: {IMPLEMENTATIONS}")
    start = time.perf_counter()
    previous = torch.get_num_threads()
    env_threads = any(v in os.environ for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"))
    records: list[dict[str, Any]] = []
    try:
        if threads is None:
            threads = previous if env_threads else DEFAULT_THREADS
        torch.set_num_threads(threads)
        for setting in settings:
            generator = torch.Generator().manual_seed(seed)
            sizes = sample_sizes(QM9_SIZES[setting], batch_size, generator)
            batch = random_molecules(sizes, generator)
            for model in models:
                stage(f"bench egnn: {model}, {setting} batches, {' vs '.join(implementations)}")
                records += _records_for(
                    setting, model, batch, hidden, n_layers, repeats, seed, implementations
                )
        machine = machine_info()
    finally:
        torch.set_num_threads(previous)
    result: dict[str, Any] = {
        "benchmark": "egnn",
        "machine": machine,
        "config": {
            "batch_size": batch_size,
            "settings": list(settings),
            "models": list(models),
            "hidden": hidden,
            "n_layers": n_layers,
            "repeats": repeats,
            "seed": seed,
            "implementations": list(implementations),
            "parameters": {m: _count(_build(m, "dense", hidden, n_layers, seed)) for m in models},
        },
        "records": records,
        "speedup": _speedups(records),
        "wall_s": time.perf_counter() - start,
    }
    if out is not None:
        write_json_atomic(Path(out), result, allow_nan=False)
    return result


def _count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def _speedups(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (setting, model): dense time / sparse time (``train``, ``sample``, ``*_cpu``; > 1
    means sparse is faster) and PyG time / sparse time (``pyg_*``; > 1 means sparse is
    faster), for the implementations that were timed."""
    by_key = {(r["setting"], r["model"], r["edges"]): r for r in records}
    phases = {"train": "train_s", "sample": "sample_s",
              "train_cpu": "train_cpu_s", "sample_cpu": "sample_cpu_s"}  # fmt: skip
    rows = []
    for setting, model in dict.fromkeys((s, m) for s, m, _ in by_key):
        sparse = by_key.get((setting, model, "sparse"))
        if sparse is None:
            continue
        row: dict[str, Any] = {"setting": setting, "model": model}
        for prefix, other in (("", "dense"), ("pyg_", "pyg")):
            rec = by_key.get((setting, model, other))
            if rec is not None:
                row.update({prefix + k: rec[key] / sparse[key] for k, key in phases.items()})
        if len(row) > 2:
            rows.append(row)
    return rows


def table(result: dict[str, Any]) -> str:
    """The records as a plain-text table (molecules per second)."""
    m = result["machine"]
    lines = [
        f"EGNN hidden={result['config']['hidden']} layers={result['config']['n_layers']}, "
        f"torch {m['torch']}, {m['threads']} threads, load {m['load_average']}",
        f"{'setting':<10}{'model':<7}{'edges':<8}{'batch':>6}{'n_max':>6}{'atoms':>7}"
        f"{'train mol/s':>13}{'sample mol/s':>14}{'train cpu s':>13}{'sample cpu s':>14}",
    ]
    for r in result["records"]:
        lines.append(
            f"{r['setting']:<10}{r['model']:<7}{r['edges']:<8}{r['batch']:>6}{r['n_max']:>6}"
            f"{r['mean_atoms']:>7.1f}{r['train_mol_per_s']:>13.1f}{r['sample_mol_per_s']:>14.1f}"
            f"{r['train_cpu_s']:>13.3f}{r['sample_cpu_s']:>14.3f}"
        )
    return "\n".join(lines)


def speedup_table(result: dict[str, Any]) -> str:
    """Median time ratios per (setting, model): ``dense/sparse`` and ``pyg/sparse`` (> 1:
    the hand-written sparse EGNN is faster), training and sampling, CPU time and wall."""
    lines = [f"{'setting':<10}{'model':<7}{'ratio':<14}{'train cpu':>10}{'sample cpu':>11}"
             f"{'train wall':>11}{'sample wall':>12}"]  # fmt: skip
    for row in result["speedup"]:
        for prefix, name in (("", "dense/sparse"), ("pyg_", "pyg/sparse")):
            if prefix + "train" in row:
                lines.append(
                    f"{row['setting']:<10}{row['model']:<7}{name:<14}"
                    f"{row[prefix + 'train_cpu']:>10.2f}{row[prefix + 'sample_cpu']:>11.2f}"
                    f"{row[prefix + 'train']:>11.2f}{row[prefix + 'sample']:>12.2f}"
                )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sci_diffusion.bench.egnn [--out FILE] [--batch-size 64] [--repeats 7]
    [--threads N] [--hidden 128] [--layers 4] [--implementations dense sparse pyg]``: run and
    print :func:`table` and :func:`speedup_table`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--implementations", nargs="+", choices=IMPLEMENTATIONS, default=None,
        help="default: dense sparse, and pyg when torch-geometric is installed",
    )  # fmt: skip
    args = parser.parse_args(argv)
    implementations = args.implementations or (
        IMPLEMENTATIONS if importlib.util.find_spec("torch_geometric") else COMPARED
    )
    result = run_egnn_bench(
        args.out,
        batch_size=args.batch_size,
        hidden=args.hidden,
        n_layers=args.layers,
        repeats=args.repeats,
        threads=args.threads,
        implementations=implementations,
    )
    print(table(result))
    print(speedup_table(result))
    print(f"wall {result['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
