"""The ``sci-diffusion`` command line: ``sci-diffusion <command> [key=value overrides...]``.

Every command's options are a typed schema (:mod:`sci_diffusion.configs.schema`) parsed by
:mod:`sci_diffusion.config` with Hydra's override grammar: ``train``, ``eval`` and ``sample``
compose the packaged ``configs/``; the others compose their own options dataclass. ``--help``
is generated from the same schemas. Each command is a parse step (everything that checks the
input without touching files) and a run step; :func:`check` runs only the first.

Exit codes: 0 success; 2 a user error (a config or option error, a missing or bad input file
or checkpoint: :class:`~sci_diffusion.io.errors.UserInputError`), printed as one line; 1 a
diverged run (one line) or an unexpected error, printed with its traceback.
"""

from __future__ import annotations

import sys
import textwrap
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sci_diffusion.config import (  # noqa: F401 (compose, check_type, validate: old names)
    CONFIG_GROUPS,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    OPTIONS,
    UsageError,
    _group_options,
    _override_key,
    check_type,
    compose,
    describe,
    options_schema,
    parse_options,
    validate,
)
from sci_diffusion.configs import schema
from sci_diffusion.configs.schema import BENCHMARKS
from sci_diffusion.core.errors import InvalidValueError
from sci_diffusion.io.errors import UserInputError

# -- train, eval, sample -----------------------------------------------------------------------


@dataclass
class Composed:
    """What the parse step of train / eval / sample hands to its run step."""

    cfg: Any
    run_dir: Path
    args: list[str]


BUDGETS = ("trainer.max_steps", "trainer.max_minutes", "trainer.progress")
"""The keys ``train resume=<run dir>`` may change."""


def parse_train(args: list[str]) -> Composed:
    cfg, run_dir = compose(args)
    if cfg.get("resume"):
        ignored = [_override_key(o) for o in args
                   if _override_key(o) not in (*BUDGETS, "resume")]  # fmt: skip
        if ignored:
            raise UsageError(
                f"resume continues {cfg.resume} with its saved config; only "
                f"{', '.join(BUDGETS)} may change, got {', '.join(ignored)}"
            )
    return Composed(cfg, run_dir, args)


def run_train(p: Composed) -> int:
    from omegaconf import OmegaConf

    from sci_diffusion.io.rundir import CONFIG_FILE
    from sci_diffusion.train.trainer import train

    cfg, run_dir, resume = p.cfg, p.run_dir, p.cfg.get("resume")
    if resume:
        run_dir = Path(str(resume))
        if not (run_dir / CONFIG_FILE).exists():
            raise UsageError(f"resume={run_dir}: no {CONFIG_FILE} there; pass a train run dir")
        saved = OmegaConf.load(run_dir / CONFIG_FILE)
        for override in p.args:  # budgets may be extended on resume; nothing else changes
            key = _override_key(override)
            if key in BUDGETS:
                OmegaConf.update(saved, key, OmegaConf.select(cfg, key), merge=False)
        cfg = saved
    result = train(cfg, run_dir, resume=bool(resume))
    print(f"trained {cfg.task.name} for {result.step} steps ({result.stop_reason}); "
          f"last loss {result.last_loss:.4f}; run dir {result.run_dir}")  # fmt: skip
    if result.stop_reason == "interrupted":  # checkpointed and carded, but not what was asked
        print(f"interrupted at step {result.step}, checkpoint saved; continue with: "
              f"sci-diffusion train resume={result.run_dir}", file=sys.stderr)  # fmt: skip
        return EXIT_INTERRUPTED
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


def parse_eval(args: list[str]) -> Composed:
    args = _with_run_task(args)
    cfg, run_dir = compose(args)
    _run_dir_arg(cfg, "eval")
    return Composed(cfg, run_dir, args)


def run_eval(p: Composed) -> int:
    import json

    from sci_diffusion.train.evaluate import evaluate_run

    metrics = evaluate_run(_run_dir_arg(p.cfg, "eval"), p.cfg, p.args)
    if metrics is not None:  # None on ranks other than 0 of a sharded run
        print(json.dumps(metrics, indent=2, default=str))
    return 0


def _embedded_task(args: list[str]) -> str | None:
    """``sample`` without ``run=`` samples the embedded default of ``task=`` (default
    ``qm9_graph``); None when ``run=`` is given."""
    if any(_override_key(a) == "run" for a in args):
        return None
    from sci_diffusion.train.embedded import DEFAULT_TASK

    tasks = [a.split("=", 1)[1] for a in args if _override_key(a) == "task" and "=" in a]
    return tasks[-1] if tasks else DEFAULT_TASK


def parse_sample(args: list[str]) -> Composed:
    task = _embedded_task(args)
    if task is None:
        args = _with_run_task(args)
        cfg, run_dir = compose(args)
        _run_dir_arg(cfg, "sample")
        return Composed(cfg, run_dir, args)
    from sci_diffusion.train import embedded

    if not any(_override_key(a) == "task" for a in args):
        args = [f"task={task}", *args]
    cfg, run_dir = compose(args)
    if not cfg.get("out"):
        raise UsageError(f"sample needs out=<dir> with the embedded {task} default (it lives "
                         "inside the package); or pass run=<run dir>")  # fmt: skip
    if embedded.is_embedded_dir(Path(str(cfg.out))):
        raise UsageError(f"out={cfg.out} is inside the package's embedded checkpoints; "
                         "choose a folder of your own")  # fmt: skip
    return Composed(cfg, run_dir, args)


def run_sample(p: Composed) -> int:
    import json

    from sci_diffusion.io.checkpoint import CheckpointError
    from sci_diffusion.train import embedded
    from sci_diffusion.train.evaluate import evaluate_run

    cfg = p.cfg
    if cfg.get("run"):
        run_dir = Path(str(cfg.run))
        out = Path(str(cfg.out)) if cfg.get("out") else run_dir / "samples"
        metrics = evaluate_run(run_dir, cfg, p.args, out_dir=out)
    else:
        task, out = str(cfg.task.name), Path(str(cfg.out))
        run_dir = embedded.embedded_for_sampling(task, conditional=bool(cfg.get("target")))
        if run_dir is None:
            have = embedded.available_embedded()
            listing = f"tasks that have one: {', '.join(have)}" if have else "this install has none"
            raise UsageError(f"no embedded default checkpoint for task {task} ({listing}); "
                             "pass run=<run dir> to sample a run you trained")  # fmt: skip
        print(f"sampling the embedded {task} default checkpoint ({run_dir})")
        try:
            metrics = evaluate_run(run_dir, cfg, p.args, out_dir=out)
        except CheckpointError as err:
            raise CheckpointError(f"the embedded {task} default checkpoint is damaged; "
                                  f"reinstall sci-diffusion ({err})") from None  # fmt: skip
    if metrics is not None:  # None on ranks other than 0 of a sharded run
        print(json.dumps(metrics, indent=2, default=str))
        print(f"samples written to {out}")
    return 0


# -- the commands with their own options -------------------------------------------------------


def parse_export(args: list[str]) -> schema.ExportOptions:
    return parse_options("export", args)


def run_export(o: schema.ExportOptions) -> int:
    from sci_diffusion.io.checkpoint import list_checkpoints
    from sci_diffusion.io.rundir import CHECKPOINT_DIR
    from sci_diffusion.train.embedded import checkpoint_bytes, export_embedded

    run_dir = Path(str(o.run))
    sampler = {"steps": o.steps, "time_spacing": o.time_spacing}
    dest = export_embedded(run_dir, Path(o.out) if o.out else None, task=o.task, force=o.force,
                           sampler={k: v for k, v in sampler.items() if v is not None})  # fmt: skip
    size, newest = checkpoint_bytes(dest), list_checkpoints(run_dir / CHECKPOINT_DIR)[-1]
    from sci_diffusion.train.embedded import sample_command

    hint = "" if o.out else f"; try: {sample_command(dest)}"
    print(f"exported {newest} -> {dest} ({size / 2**20:.2f} MiB, was "
          f"{newest.stat().st_size / 2**20:.2f} MiB){hint}")  # fmt: skip
    return 0


def parse_bench(args: list[str]) -> schema.BenchOptions | Any:
    if args and args[0] == "metaworld":  # its own subcommands and --options (argparse)
        from sci_diffusion.bench.metaworld import parse_args

        try:
            return parse_args(args[1:])
        except UserInputError as err:
            raise UsageError(str(err)) from None
    if args and "=" not in args[0]:  # `bench sampler ...`: the benchmark is the first word
        args = [f"benchmark={args[0]}", *args[1:]]
    return parse_options("bench", args)


def run_bench(o: schema.BenchOptions | Any) -> int:
    if not isinstance(o, schema.BenchOptions):  # `bench metaworld ...`: parse_bench's Namespace
        from sci_diffusion.bench.metaworld import run

        return run(o)
    name, out, quick = o.benchmark, o.out, o.quick
    if name == "sampler":
        from sci_diffusion.bench.sampler import main_table, run_sampler_benchmark

        print(main_table(run_sampler_benchmark(out, quick=quick)))
    elif name == "policy":
        from sci_diffusion.bench.policy import latency_table, run_policy_benchmark

        model = o.model or "unet1d"
        print(latency_table(run_policy_benchmark(out, quick=quick, model=model, part=o.part)))
    elif name == "screen":
        from sci_diffusion.bench.screen import main_table as screen_table
        from sci_diffusion.bench.screen import run_screen_bench

        sizes = {"n_qm9": 1000, "n_moses": 250} if quick else {}
        print(screen_table(run_screen_bench(out, **sizes)))
    elif name == "egnn":
        from sci_diffusion.bench.egnn import run_egnn_bench, table

        print(table(run_egnn_bench(out, repeats=2 if quick else 7)))
    elif name == "graph":
        import json

        from sci_diffusion.bench.graph_denoiser import run_graph_denoiser_bench

        result = run_graph_denoiser_bench(repeats=3 if quick else 9, out=out)
        print(json.dumps(result, indent=2, default=str))
    elif name in ("rollouts", "rendering", "frames"):  # argparse mains of their own modules
        import importlib

        if out and name != "rollouts":
            raise UsageError(f"out= applies to bench rollouts, not {name} (it prints a table)")
        argv = {
            "rollouts": (["--episodes", "4", "--repeats", "1"] if quick else [])
            + (["--json", out] if out else []),
            "rendering": ["--seconds", "0.2", "--sizes", "64"] if quick else [],
            "frames": ["--episodes", "50"] if quick else [],
        }[name]
        return int(importlib.import_module(f"sci_diffusion.bench.{name}").main(argv))
    return 0


def parse_quickstart(args: list[str]) -> schema.QuickstartOptions:
    return parse_options("quickstart", args)


def run_quickstart(o: schema.QuickstartOptions) -> int:
    from sci_diffusion.quickstart import run_quickstart as quickstart

    report = quickstart(Path(o.out) if o.out else None, train_steps=o.steps)
    print(f"report: {report}")
    return 0


def parse_demos(args: list[str]) -> schema.DemosOptions:
    # `task.env_name=` is the spelling the task configs use
    args = [("env_name" + a[len("task.env_name") :]) if a.startswith("task.env_name=") else a
            for a in args]  # fmt: skip
    options = parse_options("demos", args, partial=True)
    collect = options.import_ is None and options.export is None  # needs task and episodes
    missing = [k for k in ("task", "episodes", "out")
               if getattr(options, k) is None and (collect or k == "out")]  # fmt: skip
    if missing:
        raise UsageError(f"demos needs {', '.join(f'{k}=...' for k in missing)}"
                         + (" (or import=/export= with format=)" if collect else ""))  # fmt: skip
    return options


def run_demos(o: schema.DemosOptions) -> int:
    if o.import_ is not None or o.export is not None:
        return _convert_demos(o)
    from sci_diffusion.envs.demos import collect_demos

    out = Path(str(o.out))
    pixels = None
    if o.cameras is not None:
        from sci_diffusion.envs.pixels import pixel_spec
        from sci_diffusion.envs.registry import get_task

        names = [] if o.cameras == "default" else [c for c in o.cameras.split(",") if c]
        pixels = pixel_spec(get_task(str(o.task)), names, o.image_size)
    meta = collect_demos(str(o.task), int(o.episodes or 0), out, seed=o.seed,
                         env_name=o.env_name, render=o.render, progress=o.progress,
                         action_noise=o.action_noise, images=o.images,
                         pixels=pixels, workers=o.workers)  # fmt: skip
    print(f"demos: {meta['episodes']} episodes, expert success {meta['expert_success_rate']:.0%}"
          f", {out / 'demos.hdf5'}")  # fmt: skip
    return 0


def _convert_demos(o: schema.DemosOptions) -> int:
    """``demos import=<path> format=...`` / ``demos export=<demo dir> format=lerobot``."""
    from sci_diffusion.envs.formats import export_lerobot, import_lerobot, import_robomimic

    out = Path(str(o.out))
    if o.export is not None:
        info = export_lerobot(Path(o.export), out, fps=o.fps, quality=o.quality)
        cameras = [k for k, f in info["features"].items() if f["dtype"] == "video"]
        print(f"demos: exported {info['total_episodes']} episodes ({info['total_frames']} frames"
              f", {len(cameras)} camera(s), {info['fps']} fps) as LeRobot "
              f"{info['codebase_version']} to {out}")  # fmt: skip
        return 0
    importer = import_lerobot if o.format == "lerobot" else import_robomimic
    meta = importer(Path(str(o.import_)), out, task=o.task, env_name=o.env_name)
    print(f"demos: imported {meta['episodes']} episodes ({meta['total_steps']} steps, cameras "
          f"{sorted(meta.get('cameras') or {}) or 'none'}) from {o.format} {o.import_} to "
          f"{out / 'demos.hdf5'}")  # fmt: skip
    return 0


def parse_screen(args: list[str]) -> schema.ScreenOptions:
    return parse_options("screen", args)


def run_screen(o: schema.ScreenOptions) -> int:
    from sci_diffusion.chem.screen import screen_file

    config: Any = None
    if o.config is not None:
        from omegaconf import OmegaConf

        path = Path(o.config)
        if not path.is_file():
            raise UsageError(f"config={path}: no such file")
        try:
            config = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
        except Exception as err:  # YAML syntax errors come in several types
            raise UsageError(f"config={path} is not valid YAML/JSON: {err}") from None
        if not isinstance(config, dict):
            raise UsageError(f"config={path} must hold a mapping of gate settings")
    if o.gate:  # gate.<setting>=<value> overrides on top of the config file
        from sci_diffusion.chem.gate import GateConfig

        base = GateConfig.from_dict(config or {}).to_dict()
        config = GateConfig.from_dict({**base, **o.gate})
    out = Path(str(o.out))
    metrics = screen_file(str(o.in_), out, config, training=o.training, processes=o.processes,
                          chunk=o.chunk, resume=o.resume, shard=o.shard, progress=True)  # fmt: skip
    if "shard" in metrics:  # written into out/shard-<rank>-of-<world>
        out = out / "shard-{}-of-{}".format(*metrics["shard"].split("/"))
    print(f"screened {metrics.get('n_input')} molecules: {metrics.get('n_candidates')} candidates"
          f" -> {out / 'candidates.csv'}")  # fmt: skip
    return 0


# -- the registry --------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """One subcommand: a one-line summary, usage examples, its parse and run steps."""

    summary: str
    usage: tuple[str, ...]
    parse: Callable[[list[str]], Any]
    run: Callable[[Any], int]


REGISTRY: dict[str, Command] = {
    "train": Command(
        "train a task; continue a run with resume=<run dir>",
        ("sci-diffusion train task=toy2d trainer.max_steps=200",
         "sci-diffusion train resume=<run dir> trainer.max_steps=4000"),
        parse_train, run_train),
    "eval": Command(
        "evaluate a run's EMA model (metrics.json, model card)",
        ("sci-diffusion eval run=<run dir> [sampler=heun steps=10] [episodes=50]",),
        parse_eval, run_eval),
    "sample": Command(
        "draw samples from a run into a folder; without run= it samples the packaged embedded "
        "default of task= (qm9_graph when no task is given; out= is then required); under "
        "torchrun with trainer.distributed=true the ranks share the work",
        ("sci-diffusion sample run=<run dir> out=<dir> [n=1000 sampler=... steps=...]",
         "sci-diffusion sample n=100 out=<dir>"),
        parse_sample, run_sample),
    "export": Command(
        "copy a run's newest checkpoint (EMA weights only) into the package as the embedded "
        "default of its task",
        ("sci-diffusion export run=<run dir> [task=<name>] [force=true] [out=<dir>] "
         "[steps=<N>] [time_spacing=<linear|quadratic|cubic>]",),
        parse_export, run_export),
    "bench": Command(
        "benchmarks: " + ", ".join([*BENCHMARKS, "metaworld"]),
        (f"sci-diffusion bench <{'|'.join(BENCHMARKS)}> out=<file.json> [quick=true]",
         "sci-diffusion bench metaworld <experts|train|table> --help  (Meta-World MT50 tables)"),
        parse_bench, run_bench),
    "quickstart": Command(
        "the end-to-end demo on embedded defaults; writes a report",
        ("sci-diffusion quickstart [out=<dir>]",), parse_quickstart, run_quickstart),
    "demos": Command(
        "collect scripted-expert demonstrations; import/export LeRobot and robomimic data sets",
        ("sci-diffusion demos task=<task> episodes=<N> out=<dir> [action_noise=0.1]",
         "sci-diffusion demos import=<path> format=<lerobot|robomimic> out=<dir> [task=<task>]",
         "sci-diffusion demos export=<demo dir> format=lerobot out=<new dir> [quality=lossless]"),
        parse_demos, run_demos),
    "screen": Command(
        "run the RDKit screening gate on a SMILES or SDF file",
        ("sci-diffusion screen in=<file> out=<dir> [training=<smiles file>] "
         "[gate.<setting>=<value> ...]",
         "sci-diffusion screen in=<file> out=<dir> [chunk=10000] [resume=false] "
         "[shard=<rank>/<world>]"),
        parse_screen, run_screen),
}  # fmt: skip
"""Every subcommand; the top-level help, dispatch and :func:`check` read this."""

COMMANDS: dict[str, str] = {name: c.summary for name, c in REGISTRY.items()}
HANDLERS: dict[str, Callable[[list[str]], int]] = {
    name: (lambda args, c=c: c.run(c.parse(args))) for name, c in REGISTRY.items()
}


def check(argv: list[str], *, partial: bool = False) -> Any:
    """Parse and validate a command line without running it (no files are read or written
    beyond a run's saved config); return what the run step would get. Raises
    :class:`UsageError` for what ``main`` would report with exit code 2. ``partial``: do not
    require the required options (a documentation line that elides them with ``...``)."""
    if not argv or argv[0] in ("-h", "--help", "help"):
        return None
    command, rest = argv[0], argv[1:]
    if command not in REGISTRY:
        raise UsageError(f"unknown command {command!r}; commands: {', '.join(REGISTRY)}")
    own_parser = command == "bench" and rest[:1] == ["metaworld"]  # argparse answers --help
    if any(a in ("-h", "--help") for a in rest) and not own_parser:
        return None
    if partial and own_parser:  # a mention such as `bench metaworld train`: the name only
        from sci_diffusion.bench.metaworld import SUBCOMMANDS

        if rest[1:2] and rest[1] not in SUBCOMMANDS:
            raise UsageError(f"bench metaworld: no subcommand {rest[1]!r}; one of {SUBCOMMANDS}")
        return None
    if partial and command in OPTIONS:
        if command == "bench" and rest and "=" not in rest[0]:
            rest = [f"benchmark={rest[0]}", *rest[1:]]
        return parse_options(command, rest, partial=True)
    return REGISTRY[command].parse(rest)


# -- help ----------------------------------------------------------------------------------


def _help() -> str:
    from sci_diffusion.tasks import task_names

    rows = "\n".join(f"  {name:<11} {c.summary}" for name, c in REGISTRY.items())
    return (
        "usage: sci-diffusion <command> [key=value ...]\n\n"
        "Diffusion models for science and robotics.\n\n"
        f"commands:\n{rows}\n\n"
        f"tasks: {', '.join(task_names())}\n"
        "`sci-diffusion <command> --help` shows a command's options. Exit codes: 0 done, "
        "2 a mistake in the input (one line), 1 a failure (with its traceback)."
    )


def _rows(cls: type, prefix: str = "") -> str:
    lines = []
    for key, kind, default, text in describe(cls, prefix):
        lines.append(f"  {key:<28} {kind:<16} {default:<10} {text}")
    return "\n".join(lines)


def _command_help(command: str) -> str:
    c = REGISTRY[command]
    head = [f"sci-diffusion {command}: {textwrap.fill(c.summary, 84, subsequent_indent='  ')}",
            "", "usage:", *(f"  {u}" for u in c.usage), ""]  # fmt: skip
    columns = f"  {'key':<28} {'type':<16} {'default':<10} help"
    if command in OPTIONS:
        text = [*head, "options (key=value; Hydra's override grammar):", columns,
                _rows(options_schema(command))]  # fmt: skip
        if command == "bench":
            text += ["", "benchmarks:", *(f"  {k:<11} {v}" for k, v in BENCHMARKS.items()),
                     f"  {'metaworld':<11} Meta-World MT50: scripted experts and the default "
                     "recipe per task (its own --options; see `bench metaworld --help`)"]
        return "\n".join(text)
    from sci_diffusion.tasks import task_names

    groups = "\n".join(f"  {g:<8} {', '.join(_group_options(g))}" for g in CONFIG_GROUPS)
    top = [f for f in describe(schema.RunConfig) if f[0].split(".")[0] in schema.RUN_KEYS]
    top_rows = "\n".join(f"  {k:<28} {t:<16} {d:<10} {h}" for k, t, d, h in top)
    text = [
        *head,
        "config groups (choose with group=option):", groups,
        f"tasks: {', '.join(task_names())}", "",
        "top-level keys:", columns, top_rows,
        "  hydra.run.dir                train: the run directory (default "
        "runs/<task>/<date-time>)", "",
        "trainer keys (trainer.<key>=...; defaults of trainer=default):", columns,
        _rows(schema.TrainerConfig, "trainer."), "",
        "sampler keys (sampler.<key>=...; defaults of sampler=ddim):", columns,
        _rows(schema.SamplerConfig, "sampler."), "",
        "task.*, model.* and policy.* keys are those of the chosen option's YAML in configs/;",
        "an override keeps the type of its default.",
    ]  # fmt: skip
    return "\n".join(text)


# -- errors and main ---------------------------------------------------------------------------

USER_ERROR_TYPES: tuple[str, ...] = ()
"""Deprecated and empty: every user-error class now derives from UserInputError (kept so that
code importing the name keeps working)."""

LEGACY_INPUT_CHECKS: dict[str, frozenset[str]] = {}
"""Deprecated and empty: the core's setting checks raise ``InvalidValueError``, the base of
``UserInputError`` (kept so that code importing the name keeps working)."""


def is_user_error(err: BaseException) -> bool:
    """True for a mistake in the user's input (exit 2), false for a bug or failure (exit 1)."""
    return isinstance(err, InvalidValueError)


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_help())
        return 0 if argv else EXIT_USAGE
    command, rest = argv[0], argv[1:]
    if command not in REGISTRY:
        print(f"error: unknown command {command!r}; commands: {', '.join(REGISTRY)}",
              file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    own_parser = command == "bench" and rest[:1] == ["metaworld"]  # argparse answers --help
    if any(a in ("-h", "--help") for a in rest) and not own_parser:
        print(_command_help(command))
        return 0
    from sci_diffusion.io.allocator import keep_freed_memory
    from sci_diffusion.train.trainer import TrainingDiverged

    keep_freed_memory()  # large tensors reuse freed heap memory (2x on MOSES-sized graphs)
    try:
        c = REGISTRY[command]
        return c.run(c.parse(rest))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except TrainingDiverged as err:
        print(f"error: {_one_line(err)}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as err:
        if is_user_error(err):
            print(f"error: {_one_line(err)}", file=sys.stderr)
            return EXIT_USAGE
        traceback.print_exc(file=sys.stderr)
        print(f"error: internal error ({type(err).__name__}: {_one_line(err)[:200]}); this is a "
              "bug, not a mistake in your input: please report it with the traceback above",
              file=sys.stderr)  # fmt: skip
        return EXIT_FAILED


def __getattr__(name: str) -> Any:
    if name == "TRAINER_TYPES":  # an old name, deprecated in sci_diffusion.config
        import sci_diffusion.config as config

        return config.TRAINER_TYPES
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    raise SystemExit(main())
