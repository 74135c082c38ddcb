"""EDM's QM9 property protocol (Hoogeboom et al. 2022, section 5.2) on our graph models.

Stages (each writes its result; run them in order):

``predictor``  train a property predictor on half B of QM9's training split (rows 50,000-
               99,999 in the split's SHA-256 order) and report its MAE on QM9's test split.
``evaluate``   with a conditional generator trained on half A (rows 0-49,999;
               ``task.data.limit=50000``): draw n (node count, property) pairs from half A,
               generate one molecule per pair with classifier-free guidance, and report the
               predictor's MAE against the targets, beside EDM's baselines under the same
               predictor: *naive* (half-A molecules with shuffled targets), *#atoms* (the
               property guessed from the node count alone: the half-B mean per count) and the
               *lower bound* (half-A molecules with their own labels).

    OMP_NUM_THREADS=1 python scripts/edm_property_protocol.py predictor --out runs/edm_protocol
    OMP_NUM_THREADS=1 python scripts/edm_property_protocol.py evaluate --out runs/edm_protocol \
        --run runs/qm9_graph_cond/half_a --n 1000 --scale 1 2
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from sci_diffusion.config import compose
from sci_diffusion.tasks import build_task
from sci_diffusion.tasks.property_predictor import HALF, split_labels


def stage_predictor(args: argparse.Namespace) -> dict:
    from sci_diffusion.tasks.property_predictor import fit_half_b_predictor, save_predictor

    task = build_task(compose(["task=qm9_graph"])[0])
    net, result = fit_half_b_predictor(task, tuple(args.properties), steps=args.steps,
                                       batch_size=args.batch_size,
                                       clean_fraction=args.clean_fraction)  # fmt: skip
    path = save_predictor(net, args.out / "predictor.safetensors", result)
    print(f"predictor written to {path}")
    return result


def stage_evaluate(args: argparse.Namespace) -> dict:
    from sci_diffusion.chem.metrics import literature_valid_smiles
    from sci_diffusion.tasks.property_predictor import load_predictor, predict_graphs
    from sci_diffusion.train.evaluate import load_run

    net, meta = load_predictor(args.out / "predictor.safetensors")
    names = tuple(meta["names"])
    loaded = load_run(Path(args.run), "cpu")
    task, denoiser = loaded.task, loaded.denoiser
    if int(task.cfg.task.data.limit or 0) != HALF:
        raise SystemExit(f"{args.run} was not trained on half A (task.data.limit={HALF})")
    task.cfg.sampler.steps = args.steps
    cond_names = task.condition.names
    full = build_task(compose(["task=qm9_graph"])[0])
    values = split_labels(full, "train", names)
    counts_all = full.data().node_mask.sum(1)
    half_a, half_b = torch.arange(HALF), torch.arange(HALF, len(full.data()))
    g = torch.Generator().manual_seed(args.seed)
    pick = half_a[torch.randperm(HALF, generator=g)[: args.n]]
    targets, counts = values[pick], counts_all[pick]

    # Baselines on real half-A molecules, same predictor.
    data = full.data()
    real = {"atoms": data.atom_types[pick], "charges": data.charges[pick],
            "bonds": data.bonds[pick], "node_mask": data.node_mask[pick]}  # fmt: skip
    real_pred = predict_graphs(net, full, real)
    shuffled = targets[torch.randperm(args.n, generator=g)]
    per_count = {int(c): values[half_b][counts_all[half_b] == c].mean(0)
                 for c in counts_all[half_b].unique()}  # fmt: skip
    from_count = torch.stack([per_count[int(c)] for c in counts])
    result = {"names": list(names), "n": args.n, "sampler_steps": args.steps,
              "lower_bound_mae": (real_pred - targets).abs().mean(0).tolist(),
              "naive_mae": (real_pred - shuffled).abs().mean(0).tolist(),
              "atoms_mae": (from_count - targets).abs().mean(0).tolist(), "ours": {}}  # fmt: skip
    for scale in args.scale:
        cond = torch.full((args.n, len(cond_names)), float("nan"))
        for i, name in enumerate(names):
            cond[:, cond_names.index(name)] = targets[:, i]
        guided = task.condition.guided(denoiser, cond, scale)
        gen = torch.Generator().manual_seed(args.seed + 1)
        start = time.process_time()
        samples = task._sample_graphs(guided, args.n, gen, torch.device("cpu"), counts)
        pred = predict_graphs(net, task, samples)
        mols, _ = task.molecules(samples)
        valid = torch.tensor([literature_valid_smiles(m) is not None for m in mols])
        err = (pred - targets).abs()
        result["ours"][str(scale)] = {
            "mae_all": err.mean(0).tolist(),
            "mae_valid": err[valid].mean(0).tolist(),
            "valid": float(valid.float().mean()),
            "cpu_s": round(time.process_time() - start, 1),
        }
        print(json.dumps(result["ours"][str(scale)]))
    return result


def _sanitizes(mol: object) -> bool:
    from rdkit import Chem

    if mol is None:
        return False
    try:
        Chem.SanitizeMol(Chem.Mol(mol))
    except Exception:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("stage", choices=["predictor", "evaluate"])
    parser.add_argument("--out", type=Path, default=Path("runs/edm_protocol"))
    parser.add_argument("--properties", nargs="+", default=["alpha"])
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--clean-fraction", type=float, default=1.0,
                        help="share of clean (t = 0) graphs per predictor batch")  # fmt: skip
    parser.add_argument("--run", default="runs/qm9_graph_cond/half_a")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--scale", type=float, nargs="+", default=[1.0, 2.0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.stage == "predictor":
        args.steps = args.steps or 1500
        result = stage_predictor(args)
    else:
        args.steps = args.steps or 100
        result = stage_evaluate(args)
    from sci_diffusion.io.files import write_json_atomic

    path = args.out / f"{args.stage}.json"
    write_json_atomic(path, result)
    print(json.dumps(result, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
