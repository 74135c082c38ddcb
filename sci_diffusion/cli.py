"""The ``sci-diffusion`` command line: ``sci-diffusion <command> [key=value overrides...]``.

Configs are composed with Hydra's compose API from the packaged ``configs/`` (groups
``task``, ``model``, ``sampler``, ``trainer``), so overrides use Hydra's grammar. Errors in
the user's input print one short message and exit with code 2; a diverged run exits 1.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

from sci_diffusion.config import (  # noqa: F401 (compose, check_type, validate: old names)
    CONFIG_GROUPS,
    EXIT_FAILED,
    EXIT_USAGE,
    TRAINER_TYPES,
    UsageError,
    _group_options,
    _kv,
    _override_key,
    check_type,
    compose,
    validate,
)

COMMANDS = {
    "train": "train a task: sci-diffusion train task=toy2d trainer.max_steps=200; "
    "continue a run with resume=<run dir>",
    "eval": "evaluate a run's EMA model: sci-diffusion eval run=<run dir> [sampler=heun steps=10] "
    "[episodes=50 for policy tasks]",
    "sample": "draw samples from a run into a folder: sci-diffusion sample run=<run dir> "
    "out=<dir> [n=1000 sampler=... steps=...]; without run= it samples the packaged embedded "
    "default of task= (qm9_graph when no task is given; out= is then required): "
    "sci-diffusion sample n=100 out=<dir>; under torchrun with trainer.distributed=true "
    "the ranks share the work",
    "export": "copy a run's newest checkpoint (EMA weights only) into the package as the "
    "embedded default of its task: sci-diffusion export run=<run dir> [task=<name>] "
    "[force=true] [out=<dir>, default sci_diffusion/embedded/<task>]",
    "bench": "benchmarks: sci-diffusion bench <sampler|policy> out=<file.json> [quick=true]",
    "quickstart": "the end-to-end demo on embedded defaults; writes a report "
    "(sci-diffusion quickstart [out=<dir>])",
    "screen": "run the RDKit screening gate on a SMILES or SDF file: sci-diffusion screen "
    "in=<file> out=<dir> [training=<smiles file>] [processes=N] [config=<gate settings yaml>] "
    "[gate.<setting>=<value> ...]",
    "demos": "collect scripted-expert demonstrations: sci-diffusion demos "
    "task=<multimodal|reacher|pusher|metaworld> episodes=<N> out=<dir> [seed=0] "
    "[env_name=push-v3] [render=0] [progress=true]",
}

# -- commands ------------------------------------------------------------------------------


def cmd_train(args: list[str]) -> int:
    from omegaconf import OmegaConf

    from sci_diffusion.io.rundir import CONFIG_FILE
    from sci_diffusion.train.trainer import train

    cfg, run_dir = compose(args)
    resume = cfg.get("resume")
    if resume:
        run_dir = Path(str(resume))
        if not (run_dir / CONFIG_FILE).exists():
            raise UsageError(f"resume={run_dir}: no {CONFIG_FILE} there; pass a train run dir")
        saved = OmegaConf.load(run_dir / CONFIG_FILE)
        budgets = ("trainer.max_steps", "trainer.max_minutes", "trainer.progress")
        ignored = [o.split("=", 1)[0] for o in args
                   if o.split("=", 1)[0].lstrip("+~") not in (*budgets, "resume")]  # fmt: skip
        if ignored:
            raise UsageError(
                f"resume continues {run_dir} with its saved config; only {', '.join(budgets)} "
                f"may change, got {', '.join(ignored)}"
            )
        for override in args:  # budgets may be extended on resume; nothing else changes
            key = override.split("=", 1)[0]
            if key in budgets:
                OmegaConf.update(saved, key, OmegaConf.select(cfg, key), merge=False)
        cfg = saved
    result = train(cfg, run_dir, resume=bool(resume))
    print(f"trained {cfg.task.name} for {result.step} steps ({result.stop_reason}); "
          f"last loss {result.last_loss:.4f}; run dir {result.run_dir}")  # fmt: skip
    return 0


def _run_dir_arg(cfg: Any, command: str) -> Path:
    if not cfg.get("run"):
        raise UsageError(f"{command} needs run=<run dir> (a directory written by train)")
    return Path(str(cfg.run))


def _with_run_task(args: list[str]) -> list[str]:
    """``args`` plus ``task=<the run's task>`` when ``run=`` is given without ``task=``, so that
    ``task.eval.*`` overrides are checked against the right task's keys."""
    runs = [a.split("=", 1)[1] for a in args if a.startswith("run=")]
    if not runs or any(_override_key(a) == "task" for a in args):
        return args
    saved = Path(runs[-1]) / "config.yaml"
    if not saved.is_file():
        return args  # load_run reports the missing run with its own message
    from omegaconf import OmegaConf

    name = OmegaConf.load(saved).get("task", {}).get("name")
    return [f"task={name}", *args] if name in _group_options("task") else args


def cmd_eval(args: list[str]) -> int:
    import json

    from sci_diffusion.train.evaluate import evaluate_run

    args = _with_run_task(args)
    cfg, _ = compose(args)
    metrics = evaluate_run(_run_dir_arg(cfg, "eval"), cfg, args)
    if metrics is not None:  # None on ranks other than 0 of a sharded run
        print(json.dumps(metrics, indent=2, default=str))
    return 0


def cmd_sample(args: list[str]) -> int:
    import json

    from sci_diffusion.train.evaluate import evaluate_run

    if not any(_override_key(a) == "run" for a in args):
        return _sample_embedded(args)
    args = _with_run_task(args)
    cfg, _ = compose(args)
    run_dir = _run_dir_arg(cfg, "sample")
    out = Path(str(cfg.out)) if cfg.get("out") else run_dir / "samples"
    metrics = evaluate_run(run_dir, cfg, args, out_dir=out)
    if metrics is not None:  # None on ranks other than 0 of a sharded run
        print(json.dumps(metrics, indent=2, default=str))
        print(f"samples written to {out}")
    return 0


def _sample_embedded(args: list[str]) -> int:
    """``sample`` without ``run=``: the embedded default checkpoint of ``task=`` (default
    ``qm9_graph``), written to the required ``out=`` (never into the package)."""
    import json

    from sci_diffusion.io.checkpoint import CheckpointError
    from sci_diffusion.train import embedded
    from sci_diffusion.train.evaluate import evaluate_run

    tasks = [a.split("=", 1)[1] for a in args if _override_key(a) == "task" and "=" in a]
    task = tasks[-1] if tasks else embedded.DEFAULT_TASK
    run_dir = embedded.embedded_run(task)
    if run_dir is None:
        have = embedded.available_embedded()
        listing = f"tasks that have one: {', '.join(have)}" if have else "this install has none"
        raise UsageError(f"no embedded default checkpoint for task {task} ({listing}); "
                         "pass run=<run dir> to sample a run you trained")  # fmt: skip
    if not tasks:
        args = [f"task={task}", *args]
    cfg, _ = compose(args)
    if not cfg.get("out"):
        raise UsageError(f"sample needs out=<dir> with the embedded {task} default (it lives "
                         "inside the package); or pass run=<run dir>")  # fmt: skip
    out = Path(str(cfg.out))
    if embedded.is_embedded_dir(out):
        raise UsageError(f"out={out} is inside the package's embedded checkpoints; "
                         "choose a folder of your own")  # fmt: skip
    print(f"sampling the embedded {task} default checkpoint ({run_dir})")
    try:
        metrics = evaluate_run(run_dir, cfg, args, out_dir=out)
    except CheckpointError as err:
        raise CheckpointError(f"the embedded {task} default checkpoint is damaged; reinstall "
                              f"sci-diffusion ({err})") from None  # fmt: skip
    if metrics is not None:  # None on ranks other than 0 of a sharded run
        print(json.dumps(metrics, indent=2, default=str))
        print(f"samples written to {out}")
    return 0


def cmd_export(args: list[str]) -> int:
    from sci_diffusion.io.checkpoint import list_checkpoints
    from sci_diffusion.io.rundir import CHECKPOINT_DIR
    from sci_diffusion.train.embedded import checkpoint_bytes, export_embedded

    keys = {"run": "train run dir", "task": "the run's task (a check)", "force": "true|false",
            "out": "destination (default: sci_diffusion/embedded/<task>)"}  # fmt: skip
    opts = _kv(args, keys)
    if not opts.get("run"):
        raise UsageError("export needs run=<run dir> (a directory written by train)")
    force = opts.get("force", "false").lower()
    if force not in ("true", "false"):
        raise UsageError(f"force must be true or false, got {opts['force']!r}")
    run_dir = Path(opts["run"])
    dest = export_embedded(run_dir, Path(opts["out"]) if opts.get("out") else None,
                           task=opts.get("task"), force=force == "true")  # fmt: skip
    size, newest = checkpoint_bytes(dest), list_checkpoints(run_dir / CHECKPOINT_DIR)[-1]
    hint = (
        "" if opts.get("out") else f"; try: sci-diffusion sample task={dest.name} n=100 out=<dir>"
    )
    print(f"exported {newest} -> {dest} ({size / 2**20:.2f} MiB, was "
          f"{newest.stat().st_size / 2**20:.2f} MiB){hint}")  # fmt: skip
    return 0


BENCHMARKS = {
    "sampler": "sample quality vs NFE and speed vs diffusers (2D mixture)",
    "policy": "policy chunk latency at batch 1 vs steps; network vs sampler time; vs diffusers",
    "screen": "screening-gate throughput with all cores vs cores x the single-core rate",
    "egnn": "EGNN training and sampling throughput, dense vs sparse edges",
    "graph": "graph-transformer denoiser step time, dense vs torch-geometric sparse",
}


def cmd_bench(args: list[str]) -> int:
    usage = f"usage: sci-diffusion bench <{'|'.join(BENCHMARKS)}> out=<file.json> [quick=true]"
    if not args or "=" in args[0]:
        raise UsageError(usage)
    name, rest = args[0], args[1:]
    if name not in BENCHMARKS:
        raise UsageError(f"unknown benchmark {name!r}; available: {', '.join(BENCHMARKS)}")
    allowed = {"out": "output JSON", "quick": "true|false"}
    if name == "policy":
        allowed["model"] = "unet1d|transformer|mlp"
    opts = _kv(rest, allowed)
    quick = opts.get("quick", "false").lower() in ("1", "true", "yes")
    if name == "sampler":
        from sci_diffusion.bench.sampler import main_table, run_sampler_benchmark

        print(main_table(run_sampler_benchmark(opts.get("out"), quick=quick)))
    elif name == "policy":
        from sci_diffusion.bench.policy import latency_table, run_policy_benchmark
        from sci_diffusion.tasks.policy import BACKBONES

        model = opts.get("model", "unet1d")
        if model not in BACKBONES:
            raise UsageError(f"model must be one of {', '.join(BACKBONES)}, got {model!r}")
        print(latency_table(run_policy_benchmark(opts.get("out"), quick=quick, model=model)))
    elif name == "screen":
        from sci_diffusion.bench.screen import main_table as screen_table
        from sci_diffusion.bench.screen import run_screen_bench

        sizes = {"n_qm9": 1000, "n_moses": 250} if quick else {}
        print(screen_table(run_screen_bench(opts.get("out"), **sizes)))
    elif name == "egnn":
        from sci_diffusion.bench.egnn import run_egnn_bench, table

        print(table(run_egnn_bench(opts.get("out"), repeats=2 if quick else 7)))
    elif name == "graph":
        import json

        from sci_diffusion.bench.graph_denoiser import run_graph_denoiser_bench

        result = run_graph_denoiser_bench(repeats=3 if quick else 9, out=opts.get("out"))
        print(json.dumps(result, indent=2, default=str))
    return 0


def cmd_quickstart(args: list[str]) -> int:
    from sci_diffusion.quickstart import run_quickstart

    opts = _kv(args, {"out": "report directory", "steps": "training steps"})
    report = run_quickstart(
        Path(opts["out"]) if "out" in opts else None,
        train_steps=int(opts["steps"]) if "steps" in opts else None,
    )
    print(f"report: {report}")
    return 0


def cmd_demos(args: list[str]) -> int:
    from sci_diffusion.envs.demos import collect_demos

    keys = ("task", "episodes", "out", "seed", "env_name", "task.env_name", "render", "progress",
            "action_noise")  # fmt: skip
    opts = _kv(args, dict.fromkeys(keys, ""))
    if "task.env_name" in opts:  # the spelling the task configs use
        opts["env_name"] = opts.pop("task.env_name")
    missing = [k for k in ("task", "episodes", "out") if k not in opts]
    if missing:
        raise UsageError(f"demos needs {', '.join(f'{k}=...' for k in missing)}")
    ints = {}
    for key, default, low in (("episodes", None, 1), ("seed", "0", 0), ("render", "0", 0)):
        try:
            ints[key] = int(opts.get(key, default))
        except ValueError:
            raise UsageError(f"{key} must be an integer, got {opts[key]!r}") from None
        if ints[key] < low:
            raise UsageError(f"{key} must be >= {low}, got {ints[key]}")
    progress = opts.get("progress", "true").lower()
    if progress not in ("true", "false"):
        raise UsageError(f"progress must be true or false, got {opts['progress']!r}")
    try:
        noise = float(opts.get("action_noise", "0"))  # its range is checked by collect_demos
    except ValueError:
        raise UsageError(f"action_noise must be a number, got {opts['action_noise']!r}") from None
    meta = collect_demos(
        opts["task"], ints["episodes"], Path(opts["out"]), seed=ints["seed"],
        env_name=opts.get("env_name"), render=ints["render"], progress=progress == "true",
        action_noise=noise,
    )  # fmt: skip
    print(f"demos: {meta['episodes']} episodes, expert success {meta['expert_success_rate']:.0%}"
          f", {Path(opts['out']) / 'demos.hdf5'}")  # fmt: skip
    return 0


def cmd_screen(args: list[str]) -> int:
    from sci_diffusion.chem.screen import screen_file

    keys = {"in": "SMILES or SDF file", "out": "output directory",
            "training": "training SMILES file (novelty)", "processes": "worker processes",
            "config": "YAML/JSON file of gate settings (thresholds, deny-list)"}  # fmt: skip
    gate = {a.split("=", 1)[0][5:]: a.split("=", 1)[1] for a in args if a.startswith("gate.")}
    opts = _kv([a for a in args if not a.startswith("gate.")], keys)
    missing = [k for k in ("in", "out") if k not in opts]
    if missing:
        raise UsageError(f"screen needs {', '.join(f'{k}=...' for k in missing)}")
    config: Any = None
    if "config" in opts:
        from omegaconf import OmegaConf

        path = Path(opts["config"])
        if not path.is_file():
            raise UsageError(f"config={path}: no such file")
        try:
            config = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
        except Exception as err:  # YAML syntax errors come in several types
            raise UsageError(f"config={path} is not valid YAML/JSON: {err}") from None
        if not isinstance(config, dict):
            raise UsageError(f"config={path} must hold a mapping of gate settings")
    processes = None
    if "processes" in opts:
        try:
            processes = int(opts["processes"])
        except ValueError:
            raise UsageError(f"processes must be an integer, got {opts['processes']!r}") from None
        if processes < 1:
            raise UsageError(f"processes must be >= 1, got {processes}")
    if gate:  # gate.<field>=<value> overrides on top of the config file
        from sci_diffusion.chem.gate import GateConfig

        base = GateConfig.from_dict(config or {}).to_dict()
        config = GateConfig.from_dict({**base, **gate}, coerce_strings=True)
    metrics = screen_file(opts["in"], opts["out"], config, training=opts.get("training"),
                          processes=processes)  # fmt: skip
    print(f"screened {metrics.get('n_input')} molecules: {metrics.get('n_candidates')} candidates"
          f" -> {Path(opts['out']) / 'candidates.csv'}")  # fmt: skip
    return 0


HANDLERS = {
    "train": cmd_train,
    "eval": cmd_eval,
    "sample": cmd_sample,
    "export": cmd_export,
    "bench": cmd_bench,
    "quickstart": cmd_quickstart,
    "demos": cmd_demos,
    "screen": cmd_screen,
}


def _help() -> str:
    from sci_diffusion.tasks import task_names

    rows = "\n".join(f"  {name:<11} {text}" for name, text in COMMANDS.items())
    return (
        "usage: sci-diffusion <command> [key=value ...]\n\n"
        "Diffusion models for science and robotics.\n\n"
        f"commands:\n{rows}\n\n"
        f"tasks: {', '.join(task_names())}\n"
        "`sci-diffusion <command> --help` shows a command's options."
    )


def _command_help(command: str) -> str:
    from sci_diffusion.tasks import task_names

    groups = "\n".join(f"  {g:<8} {', '.join(_group_options(g))}" for g in CONFIG_GROUPS)
    trainer_keys = ", ".join(TRAINER_TYPES)
    body = textwrap.fill(COMMANDS[command], 88, subsequent_indent="  ")
    if command in ("bench", "quickstart", "demos", "screen", "export"):
        return f"sci-diffusion {command}: {body}"
    return (
        f"sci-diffusion {command}: {body}\n\n"
        f"config groups (choose with group=option):\n{groups}\n"
        f"tasks: {', '.join(task_names())}\n"
        f"trainer keys (trainer.<key>=...): {trainer_keys}\n"
        "top-level keys: run, resume, steps, n, episodes, out, hydra.run.dir"
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_help())
        return 0 if argv else EXIT_USAGE
    command, rest = argv[0], argv[1:]
    if command not in HANDLERS:
        print(f"error: unknown command {command!r}; commands: {', '.join(HANDLERS)}",
              file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    if any(a in ("-h", "--help") for a in rest):
        print(_command_help(command))
        return 0
    from sci_diffusion.io.checkpoint import CheckpointError
    from sci_diffusion.train.trainer import TrainingDiverged

    try:
        return HANDLERS[command](rest)
    except (UsageError, CheckpointError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except TrainingDiverged as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
