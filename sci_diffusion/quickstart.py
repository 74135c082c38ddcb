"""``sci-diffusion quickstart``: the README's main job, end to end on embedded defaults.

Trains the ``toy2d`` task and evaluates its final EMA checkpoint with three samplers; then trains
a small diffusion policy and its ``mse_bc`` baseline on the ``multimodal`` MuJoCo task (expert
demonstrations collected on the spot) and evaluates both on seeded episodes with a rollout
video; last, samples 100 molecules from the embedded ``qm9_graph`` default checkpoint and
screens them (skipped, with one line in the report, when the install has none). Writes
``report.md`` with figures and metrics.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

from sci_diffusion.config import compose
from sci_diffusion.io.files import write_text_atomic
from sci_diffusion.io.progress import stage
from sci_diffusion.train.embedded import embedded_run
from sci_diffusion.train.evaluate import evaluate_run
from sci_diffusion.train.trainer import train

EVAL_SAMPLERS = (("ddim", 50), ("dpm_solver_pp_2m", 10), ("ddpm", 100))
POLICY_OVERRIDES = (
    "task=multimodal", "model=mlp", "model.width=256", "model.depth=3",
    "trainer.max_steps=4000", "trainer.lr=0.001", "trainer.warmup_steps=100",
    "trainer.checkpoint_every=4000", "task.eval.videos=1",
)  # fmt: skip
"""A small MLP policy: about 35 s of training per method on a quiet core (measured: diffusion
45/50, docs/benchmarks.md)."""


def run_quickstart(out: Path | None = None, train_steps: int | None = None) -> Path:
    """Run the demo into ``out`` (default ``runs/quickstart/<date-time>``); return the report."""
    started = time.monotonic()
    out = out or Path("runs/quickstart") / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    run_dir = out / "toy2d"
    overrides = ["task=toy2d", f"hydra.run.dir={run_dir}"]
    if train_steps is not None:
        overrides.append(f"trainer.max_steps={train_steps}")
    cfg, _ = compose(overrides)
    stage(f"quickstart 1/4: training toy2d ({cfg.trainer.max_steps} steps) into {run_dir}")
    result = train(cfg, run_dir)
    rows = []
    for name, steps in EVAL_SAMPLERS:
        stage(f"quickstart 2/4: evaluating toy2d with {name}, {steps} steps")
        eval_overrides = [f"sampler={name}", f"steps={steps}", f"run={run_dir}"]
        eval_cfg, _ = compose(eval_overrides)
        m = evaluate_run(run_dir, eval_cfg, eval_overrides)
        figure = Path("toy2d") / "eval" / f"{name}_{steps}" / "samples.png"
        rows.append((name, steps, m, figure))
    policy_lines = _policy_section(out, progress=bool(cfg.trainer.progress))
    stage("quickstart 4/4: sampling and screening molecules from the embedded qm9_graph default")
    molecule_lines = _molecules_section(out)
    minutes = (time.monotonic() - started) / 60
    lines = [
        "# sci_diffusion quickstart report",
        "",
        f"Generated {datetime.now():%Y-%m-%d %H:%M} in {minutes:.1f} min.",
        "",
        "## toy2d: a learned denoiser on an 8-mode Gaussian mixture",
        "",
        f"Trained {result.step} steps ({result.wall_seconds:.0f} s); final EMA checkpoint "
        f"evaluated with {rows[0][2]['n_samples']} samples per sampler. 'Exact denoiser' runs "
        "the same sampler with the closed-form E[x0 | x_t], separating learning error from "
        "sampler error. 'Matches data' needs all three statistics below their thresholds, each "
        f"{cfg.task.eval.threshold_factor:g} x its noise floor (the 95th percentile of the "
        "statistic for true samples of the same size): the sliced Wasserstein-1 distance to "
        "fresh true samples; the share of samples off the modes (farther than "
        f"{cfg.task.eval.mode_radius_stds:g} standard deviations from every mode centre: "
        "samples smeared between modes); and the total variation between per-mode frequencies "
        "and the true mixture weights.",
        "",
        "| sampler | steps | NFE | distance (learned / exact denoiser / threshold) "
        "| off-mode share (learned / exact denoiser / threshold) | mode-weight TV (threshold) "
        "| matches data |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, steps, m, _ in rows:
        lines.append(
            f"| {name} | {steps} | {m['nfe']} | {m['sliced_wasserstein']:.4f} / "
            f"{m['sliced_wasserstein_exact_denoiser']:.4f} / {m['threshold']:.4f} | "
            f"{m['off_mode_share']:.3f} / {m['off_mode_share_exact_denoiser']:.3f} / "
            f"{m['off_mode_threshold']:.3f} | {m['mode_weight_tv']:.3f} "
            f"({m['mode_weight_tv_threshold']:.3f}) | {'yes' if m['matches_data'] else 'no'} |"
        )
    lines += [""]
    for name, steps, _, figure in rows:
        lines += [f"### {name}, {steps} steps", "", f"![{name} samples]({figure})", ""]
    lines += [
        "Model card: [toy2d/model_card.md](toy2d/model_card.md). "
        "Training log: toy2d/train_log.jsonl (TensorBoard: toy2d/tb).",
        "",
        *policy_lines,
        *molecule_lines,
    ]
    report = out / "report.md"
    write_text_atomic(report, "\n".join(lines))
    return report


def _policy_section(out: Path, progress: bool) -> list[str]:
    """Train and evaluate diffusion and mse_bc policies on ``multimodal``; the report lines."""
    results = {}
    for kind in ("diffusion", "mse_bc"):
        stage(f"quickstart 3/4: multimodal policy '{kind}': demonstrations, training, "
              "50 seeded episodes")  # fmt: skip
        run_dir = out / f"multimodal_{kind}"
        cfg, _ = compose([*POLICY_OVERRIDES, f"policy={kind}", f"trainer.progress={progress}",
                          f"hydra.run.dir={run_dir}"])  # fmt: skip
        trained = train(cfg, run_dir)
        eval_overrides = ["task=multimodal", f"run={run_dir}"]
        eval_cfg, _ = compose(eval_overrides)
        results[kind] = (trained, evaluate_run(run_dir, eval_cfg, eval_overrides), run_dir)
    lines = [
        "## multimodal: a diffusion policy against MSE regression in MuJoCo",
        "",
        "A puck must reach a goal behind a block; the scripted expert goes around the left or the "
        "right with equal probability. Both policies share the backbone (MLP), the demonstrations "
        "and the training steps; success over seeded episodes with its Wilson 95% interval.",
        "",
        "| policy | sampler | steps | success | 95% CI | mean episode length | chunk latency "
        "(ms, batch 1) | training (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind, (trained, m, _) in results.items():
        low, high = m["success_ci95"]
        lines.append(
            f"| {kind} | {m['sampler']} | {m['steps']} | {m['successes']}/{m['episodes']} | "
            f"[{low:.2f}, {high:.2f}] | {m['mean_episode_length']:.1f} | "
            f"{m['chunk_latency_ms']:.1f} | {trained.wall_seconds:.0f} |"
        )
    lines.append("")
    for kind, (_, m, run_dir) in results.items():
        for video in m.get("videos", []):
            folder = _eval_folder(run_dir, video)
            lines.append(f"- {kind} rollout video: [{video}]({run_dir.name}/{folder}/{video})")
    lines += ["", "Model cards: " + ", ".join(
        f"[{r.name}/model_card.md]({r.name}/model_card.md)" for _, _, r in results.values()
    ) + ".", ""]  # fmt: skip
    return lines


def _eval_folder(run_dir: Path, video: str) -> str | None:
    """The evaluation folder (relative to ``run_dir``) holding ``video``."""
    for path in sorted((run_dir / "eval").glob(f"*/{video}")):
        return str(path.parent.relative_to(run_dir))
    return None


MOLECULE_SAMPLES, MOLECULE_STEPS = 100, 100
"""Molecules drawn from the embedded ``qm9_graph`` default (categorical sampler)."""


def _molecules_section(out: Path) -> list[str]:
    """Sample and screen molecules with the embedded ``qm9_graph`` default; the report lines."""
    heading = ["## Molecules: qm9_graph samples from the embedded default checkpoint", ""]
    run_dir = embedded_run("qm9_graph")
    if run_dir is None:
        return [*heading, "Skipped: this install has no embedded `qm9_graph` checkpoint "
                "(`sci-diffusion export run=<run dir>` adds one).", ""]  # fmt: skip
    mol_dir = out / "molecules"
    overrides = ["task=qm9_graph", f"n={MOLECULE_SAMPLES}", f"steps={MOLECULE_STEPS}",
                 f"out={mol_dir}"]  # fmt: skip
    cfg, _ = compose(overrides)
    started = time.monotonic()
    try:
        m = evaluate_run(run_dir, cfg, overrides, out_dir=mol_dir)
    except ImportError as err:  # the chem extra (RDKit, qm9pack) is not installed
        return [*heading, f"Skipped: molecules need the chem extra "
                f"(`pip install sci-diffusion[chem]`): {err}.", ""]  # fmt: skip
    seconds = time.monotonic() - started
    source = (m.get("embedded_default") or {}).get("source_run", "?")
    lines = [
        *heading,
        f"{m['n_samples']} molecular graphs drawn with the {m['sampler']} sampler in "
        f"{m['steps']} steps ({seconds:.0f} s, including RDKit screening) from the packaged "
        f"checkpoint (step {m['step']}, exported from `{source}`; model card: "
        f"`sci_diffusion/embedded/qm9_graph/model_card.md`), then screened by the RDKit gate. "
        "Candidates are in-silico screened only: never synthesized or assayed.",
        "",
        "Novelty: the share of distinct valid molecules whose canonical SMILES is absent from "
        "the QM9 training split (EDM's and DiGress's definition; `sci_diffusion.chem.metrics`).",
        "",
        "| validity (literature) | validity (strict) | uniqueness | novelty "
        "| screened candidates |",
        "|---|---|---|---|---|",
        f"| {_fraction(m.get('validity'))} | {_fraction(m.get('validity_strict'))} | "
        f"{_fraction(m.get('uniqueness'))} | {_fraction(m.get('novelty'))} | "
        f"{m['n_candidates']} / {m['n_samples']} |",
        "",
    ]
    reasons = _top_rejections(mol_dir / "rejected.csv")
    if reasons:
        lines += ["Top rejection reasons (first failing check, count, most common reason):", ""]
        lines += [f"- {gate}: {count} (e.g. {_short(reason)})" if reason else f"- {gate}: {count}"
                  for gate, reason, count in reasons]  # fmt: skip
        lines.append("")
    lines += [
        "![screened candidates](molecules/grid.png)",
        "",
        "Candidates: [molecules/candidates.csv](molecules/candidates.csv) (SDF: "
        "molecules/candidates.sdf); drawings: molecules/grid.png (SVG: molecules/grid.svg); "
        "rejections: molecules/rejected.csv; screening report: "
        "[molecules/report.md](molecules/report.md).",
        "",
    ]
    return lines


def _short(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fraction(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "n/a"


def _top_rejections(path: Path, n: int = 3) -> list[tuple[str, str, int]]:
    """The ``n`` checks that rejected most molecules in ``rejected.csv`` (first failing check),
    each with its count and most common reason, most frequent first."""
    import csv
    from collections import Counter

    if not path.is_file():
        return []
    with path.open(newline="") as f:
        rows = [(r["failed_gate"], r.get("failure_reason") or "") for r in csv.DictReader(f)]
    gates = Counter(gate for gate, _ in rows)
    top = []
    for gate, count in gates.most_common(n):
        reasons = Counter(reason for g, reason in rows if g == gate and reason)
        top.append((gate, reasons.most_common(1)[0][0] if reasons else "", count))
    return top
