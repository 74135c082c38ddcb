"""Classifier guidance (a differentiable property predictor) vs classifier-free guidance on
``qm9_graph`` (issue 16, item 7).

Stages:

``predictor``  train a predictor of the target properties on graphs noised by the task's
               forward process (QM9 training rows 50,000-99,999, like the alpha predictor of
               scripts/edm_property_protocol.py), report its MAE on QM9's test split (clean
               graphs, t = 0) and write it (safetensors + JSON metadata).
``compare``    sample n molecules per arm towards the targets: (a) the unconditional
               embedded model unguided, (b) the same model with classifier guidance
               (:class:`sci_diffusion.tasks.predictor_guidance.PredictorGuidance`) at several
               scales, (c) classifier-free guidance of the conditional run at several scales;
               score each with the task's screening gate and the candidates' RDKit values and
               print a markdown table (progress on stderr).
``table``      one table from several ``compare --json`` files (arms run separately).

    OMP_NUM_THREADS=1 python scripts/guidance_comparison.py predictor \
        --out runs/predictors/qed_logp.safetensors --steps 1200 --batch-size 128
    OMP_NUM_THREADS=1 python scripts/guidance_comparison.py compare \
        --predictor runs/predictors/qed_logp.safetensors --cond-run runs/qm9_graph_cond/half_a \
        --n 1000 --cg-scale 1 3 10 --cfg-scale 1 2
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch

from sci_diffusion.config import compose
from sci_diffusion.tasks import build_task


def _say(message: str) -> None:
    print(f"[guidance_comparison] {message}", file=sys.stderr, flush=True)


def stage_predictor(args: argparse.Namespace) -> dict[str, Any]:
    from sci_diffusion.tasks.property_predictor import fit_half_b_predictor, save_predictor

    task = build_task(compose(["task=qm9_graph"])[0])
    net, result = fit_half_b_predictor(task, tuple(args.properties), steps=args.steps,
                                       batch_size=args.batch_size, seed=args.seed)  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    path = save_predictor(net, args.out, result)
    _say(f"predictor written to {path}")
    return result


def _score(task: Any, samples: dict[str, torch.Tensor], targets: dict[str, float], n: int,
           cond: Any) -> dict[str, Any]:  # fmt: skip
    """Strict validity (share of the n samples passing the screening gate), uniqueness of the
    candidates, and per property the candidates' RDKit MAE / hit rate / mean; ``both_hit``: share
    of the n samples that pass the gate and hit every target."""
    from sci_diffusion.chem.conditioning import CONDITION_PROPERTIES
    from sci_diffusion.tasks.property_conditioning import conditioning_figures

    smiles = task._candidate_smiles(samples)
    names = list(targets)
    achieved = cond.achieved(smiles, names)
    figures = conditioning_figures(targets, achieved)
    hit_all = sum(
        all(abs(row[i] - targets[m]) <= CONDITION_PROPERTIES[m].tolerance
            for i, m in enumerate(names))
        for row in achieved
    )  # fmt: skip
    return {"n": n, "strict_valid": len(smiles) / n,
            "unique": len(set(smiles)) / max(1, len(smiles)), "both_hit": hit_all / n,
            "properties": figures}  # fmt: skip


def _arms(args: argparse.Namespace) -> list[tuple[str, str, float]]:
    arms = [("unconditional", "none", 0.0)]
    arms += [("unconditional", "classifier", float(s)) for s in args.cg_scale]
    if args.cond_run != "none":
        arms += [("conditional", "classifier-free", float(s)) for s in args.cfg_scale]
    return arms


def stage_compare(args: argparse.Namespace) -> dict[str, Any]:
    from sci_diffusion.tasks.predictor_guidance import PredictorGuidance
    from sci_diffusion.tasks.property_predictor import load_predictor
    from sci_diffusion.train.embedded import embedded_run
    from sci_diffusion.train.evaluate import load_run

    predictor, meta = load_predictor(args.predictor)
    targets = {"qed": args.qed, "logp": args.logp}
    missing = [m for m in targets if m not in predictor.names]
    if missing:
        raise SystemExit(f"{args.predictor} does not predict {missing} (it does {meta['names']})")
    row = torch.tensor([targets.get(m, math.nan) for m in predictor.names])
    cg_targets = row.expand(args.n, -1).clone()
    uncond_dir = Path(args.uncond_run) if args.uncond_run else embedded_run("qm9_graph")
    if uncond_dir is None:
        raise SystemExit("no embedded qm9_graph checkpoint; pass --uncond-run")
    models: dict[str, Any] = {"unconditional": load_run(uncond_dir, "cpu")}
    if args.cond_run != "none":
        models["conditional"] = load_run(Path(args.cond_run), "cpu")
    for loaded in models.values():
        loaded.task.cfg.sampler.steps = args.steps
    result: dict[str, Any] = {
        "targets": targets, "n": args.n, "sampler": "categorical", "sampler_steps": args.steps,
        "seed": args.seed, "predictor": str(args.predictor),
        "predictor_test_mae": meta.get("test_mae"), "unconditional_run": str(uncond_dir),
        "conditional_run": args.cond_run, "arms": [],
    }  # fmt: skip
    for model, method, scale in _arms(args):
        loaded = models[model]
        task, denoiser = loaded.task, loaded.denoiser
        if method == "classifier":
            denoise: Any = PredictorGuidance(denoiser, predictor, cg_targets, scale)
        elif method == "classifier-free":
            cond = task.condition.target_tensor(targets, args.n, denoiser.net)
            denoise = task.condition.guided(denoiser, cond, scale)
        else:
            denoise = denoiser
        label = f"{model} / {method}" + (f" w={scale:g}" if method != "none" else "")
        _say(f"sampling {args.n} molecules: {label}")
        gen = torch.Generator().manual_seed(args.seed)
        start, wall = time.process_time(), time.perf_counter()
        samples = task._sample_graphs(denoise, args.n, gen, torch.device("cpu"))
        cpu_s, wall_s = time.process_time() - start, time.perf_counter() - wall
        scored = _score(task, samples, targets, args.n, task.condition)
        arm = {"model": model, "method": method, "scale": scale, "label": label,
               "sample_cpu_s": round(cpu_s, 1), "sample_wall_s": round(wall_s, 1),
               **scored}  # fmt: skip
        result["arms"].append(arm)
        _say(json.dumps({k: v for k, v in arm.items() if k != "properties"}))
    return result


def markdown_table(result: dict[str, Any]) -> str:
    names = sorted(result["targets"], key=lambda m: (m != "qed", m != "logp", m))
    head = ["arm", "strict valid"]
    for m in names:
        head += [f"{m} MAE", f"{m} hit", f"{m} mean"]
    head += ["both hit (of n)", "CPU s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for arm in result["arms"]:
        cells = [arm["label"], f"{arm['strict_valid']:.3f}"]
        for m in names:
            f = arm["properties"][m]
            cells += ["-" if f["mae"] is None else f"{f['mae']:.3f}",
                      "-" if f["hit_rate"] is None else f"{f['hit_rate']:.3f}",
                      "-" if f["mean"] is None else f"{f['mean']:.3f}"]  # fmt: skip
        cells += [f"{arm['both_hit']:.3f}", f"{arm['sample_cpu_s']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="stage", required=True)
    p = sub.add_parser("predictor", help="train the property predictor")
    p.add_argument("--out", type=Path, default=Path("runs/predictors/qed_logp.safetensors"))
    p.add_argument("--properties", nargs="+", default=["qed", "logp"])
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    c = sub.add_parser("compare", help="sample and score every arm; markdown table on stdout")
    c.add_argument("--predictor", type=Path, default=Path("runs/predictors/qed_logp.safetensors"))
    c.add_argument("--uncond-run", default=None, help="default: the embedded qm9_graph model")
    c.add_argument("--cond-run", default="runs/qm9_graph_cond/half_a",
                   help="conditional run (conditioned on qed and logp); 'none': skip")  # fmt: skip
    c.add_argument("--n", type=int, default=1000)
    c.add_argument("--steps", type=int, default=100)
    c.add_argument("--qed", type=float, default=0.6)
    c.add_argument("--logp", type=float, default=1.5)
    c.add_argument("--cg-scale", type=float, nargs="*", default=[1.0, 3.0, 10.0])
    c.add_argument("--cfg-scale", type=float, nargs="*", default=[1.0, 2.0])
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--json", type=Path, default=None, help="also write the result here")
    m = sub.add_parser("table", help="one markdown table from compare's --json files")
    m.add_argument("files", type=Path, nargs="+")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.stage == "table":
        parts = [json.loads(f.read_text()) for f in args.files]
        merged = {**parts[0], "arms": [a for p in parts for a in p["arms"]]}
        print(markdown_table(merged))
        return
    if args.stage == "predictor":
        result = stage_predictor(args)
        print(json.dumps(result, indent=2))
        return
    result = stage_compare(args)
    if args.json is not None:
        from sci_diffusion.io.files import write_json_atomic

        write_json_atomic(args.json, result)
    print(markdown_table(result))


if __name__ == "__main__":
    main()
