"""``sci-diffusion quickstart``: the README's main job, end to end on embedded defaults.

Trains the ``toy2d`` task, evaluates its final EMA checkpoint with three samplers, and writes
``report.md`` with figures and metrics. Later capabilities (policies, molecules) add sections.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

from sci_diffusion.cli import compose
from sci_diffusion.train.evaluate import evaluate_run
from sci_diffusion.train.rundir import write_text_atomic
from sci_diffusion.train.trainer import train

EVAL_SAMPLERS = (("ddim", 50), ("dpm_solver_pp_2m", 10), ("ddpm", 100))


def run_quickstart(out: Path | None = None, train_steps: int | None = None) -> Path:
    """Run the demo into ``out`` (default ``runs/quickstart/<date-time>``); return the report."""
    started = time.monotonic()
    out = out or Path("runs/quickstart") / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    run_dir = out / "toy2d"
    overrides = ["task=toy2d", f"hydra.run.dir={run_dir}"]
    if train_steps is not None:
        overrides.append(f"trainer.max_steps={train_steps}")
    cfg, _ = compose(overrides)
    result = train(cfg, run_dir)
    rows = []
    for name, steps in EVAL_SAMPLERS:
        eval_overrides = [f"sampler={name}", f"steps={steps}", f"run={run_dir}"]
        eval_cfg, _ = compose(eval_overrides)
        m = evaluate_run(run_dir, eval_cfg, eval_overrides)
        figure = Path("toy2d") / "eval" / f"{name}_{steps}" / "samples.svg"
        rows.append((name, steps, m, figure))
    minutes = (time.monotonic() - started) / 60
    lines = [
        "# sci_diffusion quickstart report",
        "",
        f"Generated {datetime.now():%Y-%m-%d %H:%M} in {minutes:.1f} min.",
        "",
        "## toy2d: a learned denoiser on an 8-mode Gaussian mixture",
        "",
        f"Trained {result.step} steps ({result.wall_seconds:.0f} s); final EMA checkpoint "
        f"evaluated with {rows[0][2]['n_samples']} samples per sampler. Distance: sliced "
        "Wasserstein-1 to fresh true samples; the noise floor is the 95th percentile of the "
        "same distance between two independent true samples. 'Exact denoiser' runs the same "
        "sampler with the closed-form E[x0 | x_t], separating learning error from sampler error.",
        "",
        "| sampler | steps | NFE | distance (learned) | distance (exact denoiser) | noise floor "
        "| matches data | mode-weight TV |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, steps, m, _ in rows:
        lines.append(
            f"| {name} | {steps} | {m['nfe']} | {m['sliced_wasserstein']:.4f} | "
            f"{m['sliced_wasserstein_exact_denoiser']:.4f} | {m['noise_floor_q95']:.4f} | "
            f"{'yes' if m['matches_data'] else 'no'} | {m['mode_weight_tv']:.3f} |"
        )
    lines += [""]
    for name, steps, _, figure in rows:
        lines += [f"### {name}, {steps} steps", "", f"![{name} samples]({figure})", ""]
    lines += [
        "Model card: [toy2d/model_card.md](toy2d/model_card.md). "
        "Training log: toy2d/train_log.jsonl (TensorBoard: toy2d/tb).",
        "",
    ]
    report = out / "report.md"
    write_text_atomic(report, "\n".join(lines))
    return report
