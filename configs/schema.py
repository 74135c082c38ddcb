"""Typed schemas of every ``sci-diffusion`` command's options (data only).

Each command's options are one dataclass; Hydra's ConfigStore holds them (registered by
:mod:`sci_diffusion.config`), OmegaConf checks the types on every merge, and each field's
``metadata`` carries its one-line help and its rules:

``help``      the line ``--help`` prints
``choices``   allowed values
``min``/``max`` inclusive bounds (NaN fails them); ``gt`` an exclusive lower bound
``required``  the command needs it (the field defaults to ``None``)
``choices_from`` ``"module:function"`` returning the allowed values of a plugin registry
              (checked by :mod:`sci_diffusion.config`, which may import it)

:class:`Schema.__post_init__` applies the rules (so ``OmegaConf.to_object`` validates) and then
the class's own :meth:`Schema.validate` for rules between fields. Nothing here parses command
lines or prints: :mod:`sci_diffusion.config` does, and the CLI's help is generated from these
fields, so help, parsing and validation cannot drift apart.

Task configs (``configs/task/*.yaml``) and the network and policy groups stay free-form YAML:
an override there keeps the type of its default (``sci_diffusion.config.check_type``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any


class SchemaError(ValueError):
    """A value breaks its field's rule; ``key`` names the field, ``problem`` says how."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key} {problem}")
        self.key, self.problem = key, problem


def doc(help: str, **rules: Any) -> dict[str, Any]:
    """A field's ``metadata``: one line of help and its rules (see the module doc)."""
    return {"help": help, **rules}


def opt(default: Any, help: str, **rules: Any) -> Any:
    """A schema field with an immutable default, its help and its rules."""
    return field(default=default, metadata=doc(help, **rules))


def _check(name: str, value: Any, rules: dict[str, Any]) -> None:
    if value is None:
        return  # optional values; `required` is the parser's business (it knows the command)
    choices = rules.get("choices")
    if choices is not None and value not in choices:
        raise SchemaError(name, f"must be one of {', '.join(map(str, choices))}, got {value!r}")
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    if isinstance(value, float) and math.isnan(value) and {"min", "max", "gt", "lt"} & set(rules):
        raise SchemaError(name, f"must be a number, got {value}")
    if "min" in rules and not value >= rules["min"]:
        raise SchemaError(name, f"must be >= {rules['min']}, got {value}")
    if "gt" in rules and not value > rules["gt"]:
        raise SchemaError(name, f"must be > {rules['gt']}, got {value}")
    if "max" in rules and not value <= rules["max"]:
        raise SchemaError(name, f"must be <= {rules['max']}, got {value}")
    if "lt" in rules and not value < rules["lt"]:
        raise SchemaError(name, f"must be < {rules['lt']}, got {value}")


@dataclass
class Schema:
    """Base of every options dataclass: field rules on construction, then :meth:`validate`."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _check(f.name, getattr(self, f.name), dict(f.metadata))
        self.validate()

    def validate(self) -> None:
        """Rules between fields (raise :class:`SchemaError`); none by default."""


# -- the Hydra-composed commands (train, eval, sample) ---------------------------------------

PRECISIONS = ("auto", "fp32", "bf16")


@dataclass
class TrainerConfig(Schema):
    """``trainer.*``: every key of ``configs/trainer/*.yaml`` (defaults: ``default.yaml``)."""

    max_steps: int = opt(3000, "optimizer steps to train for", min=1)
    max_minutes: float | None = opt(
        None, "wall-clock budget in minutes; the run checkpoints and stops when spent", gt=0
    )
    seed: int = opt(0, "seeds batches and noise per step (with the step and rank)")
    device: str = opt("auto", "auto (cuda if available, else cpu) | cpu | cuda | cuda:N")
    distributed: bool = opt(False, "DDP under torchrun (gloo on CPU, nccl on GPU)")
    checkpoint_every: int = opt(500, "steps between checkpoints", min=1)
    batch_size: int = opt(256, "examples per step (per rank)", min=1)
    lr: float = opt(1e-3, "AdamW learning rate", gt=0)
    weight_decay: float = opt(1e-4, "AdamW weight decay", min=0)
    betas: list[float] = field(
        default_factory=lambda: [0.9, 0.999],
        metadata=doc("AdamW betas [beta1, beta2], each in [0, 1)"),
    )
    warmup_steps: int = opt(100, "linear learning-rate warm-up steps", min=0)
    grad_clip: float = opt(1.0, "gradient norm clip", gt=0)
    ema_decay: float = opt(0.999, "EMA decay, in [0, 1)", min=0.0, lt=1.0)
    ema_power: float = opt(0.75, "EMA warm-up power (decay ramps in as 1 - (1 + step)^-power)")
    log_every: int = opt(50, "steps between train_log.jsonl lines", min=1)
    precision: str = opt("auto", "auto (bf16 autocast on CUDA, fp32 on CPU) | fp32 | bf16",
                         choices=PRECISIONS)  # fmt: skip
    progress: bool = opt(True, "progress bar (a terminal) or stage lines (a redirected log)")
    init_from: str | None = opt(None, "start from these EMA weights (a checkpoint, a run dir or "
                                "embedded:<task>); new layers keep their init")  # fmt: skip

    def validate(self) -> None:
        kind = self.device.split(":")[0]
        index = self.device.split(":", 1)[1] if ":" in self.device else "0"
        if self.device != "auto" and (kind not in ("cpu", "cuda") or not index.isdigit()):
            raise SchemaError("device", f"must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise SchemaError("betas", f"must be two numbers in [0, 1), got {list(self.betas)}")


SAMPLER_NAMES = ("ddpm", "ddim", "dpm_solver_pp_2m", "euler", "heun", "flow_euler",
                 "flow_heun", "euler_maruyama", "categorical")  # fmt: skip
"""``sci_diffusion.core.samplers.SAMPLERS`` (a test keeps them equal)."""

TIME_SPACINGS = ("linear", "quadratic", "cubic")
"""``sci_diffusion.core.time_spacing.TIME_SPACINGS``."""


@dataclass
class SamplerConfig(Schema):
    """``sampler.*``: choose one with ``sampler=<name>`` (``configs/sampler/*.yaml``)."""

    name: str = opt("ddim", "the sampler (set by sampler=<name>)", choices=SAMPLER_NAMES)
    steps: int = opt(50, "denoiser evaluations grid: number of steps", min=1)
    t_start: float = opt(1.0, "start time in (0, 1]; below 1 for epsilon checkpoints",
                         gt=0.0, max=1.0)  # fmt: skip
    options: dict[str, Any] = field(
        default_factory=dict, metadata=doc("sampler-specific options (ddim: eta; heun: churn)")
    )
    time_spacing: str = opt("linear", "where the steps fall: linear, or denser near t = 0 "
                            "(quadratic, cubic)", choices=TIME_SPACINGS)  # fmt: skip
    polish_steps: int = opt(0, "extra denoiser evaluations after sampling at low noise, "
                            "continuous parts only (0: off)", min=0)  # fmt: skip
    polish_t: float = opt(0.05, "polishing starts at this time", gt=0.0, lt=1.0)
    polish_t_min: float = opt(0.005, "polishing ends at this time (geometric ladder)",
                              gt=0.0, lt=1.0)  # fmt: skip

    def validate(self) -> None:
        if self.polish_t_min > self.polish_t:
            raise SchemaError("polish_t_min", f"must be <= polish_t={self.polish_t}, "
                                              f"got {self.polish_t_min}")  # fmt: skip


GUIDANCE_METHODS = ("cfg", "predictor")


@dataclass
class GuidanceConfig(Schema):
    """``guidance.*``: how ``sample target.<property>=<value>`` steers a conditional model."""

    scale: float = opt(1.0, "guidance weight (cfg: 0 unconditional, 1 conditional, > 1 "
                       "stronger; predictor: the gradient tilt's weight)", min=0.0)  # fmt: skip
    method: str = opt("cfg", "cfg (classifier-free: a conditional checkpoint) or predictor "
                      "(classifier guidance by guidance.predictor)",
                      choices=GUIDANCE_METHODS)  # fmt: skip
    predictor: str | None = opt(None, "a property-predictor file (tasks/property_predictor.py; "
                                "scripts/guidance_comparison.py trains one)")  # fmt: skip


@dataclass
class RunConfig(Schema):
    """The primary config of train, eval and sample: groups plus the top-level shortcuts."""

    model: dict[str, Any] = field(
        default_factory=dict, metadata=doc("network (choose with model=<name>)")
    )
    sampler: SamplerConfig = field(
        default_factory=SamplerConfig, metadata=doc("sampler (choose with sampler=<name>)")
    )
    trainer: TrainerConfig = field(
        default_factory=TrainerConfig, metadata=doc("trainer (choose with trainer=<name>)")
    )
    policy: dict[str, Any] = field(
        default_factory=dict, metadata=doc("policy method of policy tasks (policy=<name>)")
    )
    task: dict[str, Any] = field(
        default_factory=dict, metadata=doc("the benchmark task (choose with task=<name>)")
    )
    run: str | None = opt(None, "run dir to evaluate / sample from (eval, sample)")
    resume: str | None = opt(None, "train: continue this run dir (budgets may change)")
    steps: int | None = opt(None, "eval/sample: the sampler's number of steps", min=1)
    n: int | None = opt(None, "eval/sample: number of samples", min=1)
    episodes: int | None = opt(None, "eval: evaluation episodes (policy tasks)", min=1)
    out: str | None = opt(None, "sample: output folder (eval: default run/eval/...)")
    target: dict[str, float] = field(
        default_factory=dict,
        metadata=doc(
            "sample: property targets, target.<property>=<value> (a conditional "
            "checkpoint; docs/molecules.md lists the properties)"
        ),
    )
    guidance: GuidanceConfig = field(
        default_factory=GuidanceConfig, metadata=doc("sample: guidance towards target.*")
    )
    scaffold: str | None = opt(None, "sample: SMILES or SMARTS fragment every candidate keeps")


RUN_KEYS = ("run", "resume", "steps", "n", "episodes", "out", "target", "guidance", "scaffold")
"""The top-level shortcut keys of :class:`RunConfig`."""


# -- the other commands ------------------------------------------------------------------------


@dataclass
class ExportOptions(Schema):
    """``sci-diffusion export``."""

    run: str | None = opt(None, "train run dir whose newest checkpoint to export",
                             required=True)  # fmt: skip
    task: str | None = opt(None, "the run's task, as a check")
    force: bool = opt(False, "replace an existing embedded default")
    out: str | None = opt(None, "destination (default: sci_diffusion/embedded/<task>)")
    steps: int | None = opt(None, "sampler steps the copy samples with by default (default: "
                            "the run's)", min=1)  # fmt: skip
    time_spacing: str | None = opt(None, "sampler time grid the copy samples with by default "
                                   "(default: the run's)", choices=TIME_SPACINGS)  # fmt: skip


BENCHMARKS = {
    "sampler": "sample quality vs NFE and speed vs diffusers (2D mixture)",
    "policy": "policy chunk latency at batch 1 vs steps; network vs sampler time; vs diffusers",
    "screen": "screening-gate throughput with all cores vs cores x the single-core rate",
    "egnn": "EGNN training and sampling throughput, dense vs sparse edges",
    "graph": "graph-transformer denoiser step time, dense vs torch-geometric sparse",
    "rollouts": "episodes and demo collection in worker processes vs one process, state and "
    "pixels",
    "rendering": "camera frames/s per policy task and size, default vs our scene flags",
    "frames": "peak memory of pixel training data: lazy frame reads vs loading every frame",
}


@dataclass
class BenchOptions(Schema):
    """``sci-diffusion bench <benchmark>`` (the first word may be given as benchmark=...)."""

    benchmark: str | None = opt(
        None, "which benchmark (first word; listed below)", choices=tuple(BENCHMARKS), required=True
    )
    out: str | None = opt(None, "output JSON file")
    quick: bool = opt(False, "a smaller, faster run")
    model: str | None = opt(
        None,
        "bench policy only: the backbone (default unet1d)",
        choices_from="sci_diffusion.policy.backbones:backbone_names",
    )
    part: str | None = opt(
        None,
        "bench policy only: one part, latency (vs steps, vs diffusers), loop (sampler "
        "overhead per backbone and task) or pixels (image encoder + sampler vs Diffusion "
        "Policy's reference size); default all",
        choices=("latency", "loop", "pixels"),
    )

    def validate(self) -> None:
        if self.model is not None and self.benchmark != "policy":
            raise SchemaError("model", f"applies to bench policy only, not {self.benchmark}")
        if self.part is not None and self.benchmark != "policy":
            raise SchemaError("part", f"applies to bench policy only, not {self.benchmark}")


@dataclass
class QuickstartOptions(Schema):
    """``sci-diffusion quickstart``."""

    out: str | None = opt(None, "report directory (default: runs/quickstart/<date-time>)")
    steps: int | None = opt(None, "toy2d training steps (default: the quickstart's)", min=1)


DEMO_TASKS = ("multimodal", "reacher", "pusher", "metaworld")
"""``sci_diffusion.envs.registry.ENV_TASKS`` (a test keeps them equal)."""


DEMO_FORMATS = ("lerobot", "robomimic")
"""``sci_diffusion.envs.formats.FORMATS`` (a test keeps them equal)."""


@dataclass
class DemosOptions(Schema):
    """``sci-diffusion demos``: collect with the expert (task=, episodes=), or convert another
    format (import= or export=, with format=)."""

    task: str | None = opt(None, "environment task (required to collect; with import=: the env "
                                 "the data set must fit)", choices=DEMO_TASKS)  # fmt: skip
    episodes: int | None = opt(None, "expert episodes to collect (required to collect)", min=1)
    out: str | None = opt(None, "output folder (demos.hdf5, meta.json; export=: the new LeRobot "
                                "folder)", required=True)  # fmt: skip
    seed: int = opt(0, "seed of the first episode (episode i uses seed + i)", min=0)
    env_name: str | None = opt(None, "metaworld only: the Meta-World task, e.g. push-v3")
    render: int = opt(0, "episodes to render as videos", min=0)
    progress: bool = opt(True, "progress bar or stage lines")
    action_noise: float = opt(0.0, "DART noise on executed actions (labels stay the expert's)",
                              min=0.0)  # fmt: skip
    images: bool = opt(False, "collect: store every step's rendered frame (camera 'render') in "
                              "demos.hdf5")  # fmt: skip
    cameras: str | None = opt(None, "collect: store these cameras' frames, as task.obs=pixels "
                                    "trains on (comma-separated names, or 'default': the "
                                    "task's)")  # fmt: skip
    image_size: int | None = opt(None, "collect with cameras=: square frame size (default: the "
                                       "task's)", min=8)  # fmt: skip
    workers: int = opt(0, "collect: worker processes, each rolling a share of the seeds (0: "
                          "this process; the same data either way)", min=0)  # fmt: skip
    # `import` is a Python keyword: the field is `import_`, the command-line key `import`.
    import_: str | None = opt(None, "a data set to convert into out= (a LeRobot v3 folder or a "
                                    "robomimic .hdf5; needs format=)", key="import")  # fmt: skip
    export: str | None = opt(None, "a demonstration folder to write as a LeRobot v3 data set "
                                   "into out= (format=lerobot)")  # fmt: skip
    format: str | None = opt(None, "the format of import= / export=", choices=DEMO_FORMATS)
    fps: float | None = opt(None, "export=: frames per second (default: the set's control "
                                  "rate)", gt=0)  # fmt: skip
    quality: str = opt("high", "export=: MP4 quality, high (H.264 4:2:0, crf 18) or lossless "
                               "(H.264 RGB, crf 0)", choices=("high", "lossless"))  # fmt: skip

    def validate(self) -> None:
        if self.image_size is not None and self.cameras is None:
            raise SchemaError("image_size", "applies with cameras= only (cameras=default for "
                                            "the task's)")  # fmt: skip
        if self.images and self.cameras is not None:
            raise SchemaError("images", "and cameras= exclude each other; cameras= stores "
                                        "policy cameras, images= the render frame")  # fmt: skip
        if self.episodes is not None and self.render > self.episodes:
            raise SchemaError("render", f"must be in [0, episodes={self.episodes}], "
                                        f"got {self.render}")  # fmt: skip
        if self.import_ is not None and self.export is not None:
            raise SchemaError("export", "and import= exclude each other; convert one way at a time")
        mode = "import" if self.import_ is not None else "export" if self.export else None
        if mode is None:
            if self.format is not None or self.fps is not None:
                raise SchemaError("format" if self.format is not None else "fps",
                                  "applies to import= / export= only")  # fmt: skip
            return
        if self.format is None:
            raise SchemaError("format", f"is needed with {mode}=: one of "
                                        f"{', '.join(DEMO_FORMATS)}")  # fmt: skip
        if mode == "export" and self.format != "lerobot":
            raise SchemaError("format", f"export= writes lerobot only, got {self.format}")
        collect_only = {
            "episodes": self.episodes is not None,
            "images": self.images,
            "cameras": self.cameras is not None,
            "workers": self.workers > 0,
            "render": self.render > 0,
            "action_noise": self.action_noise > 0,
        }
        for name, given in collect_only.items():
            if given:
                raise SchemaError(name, f"applies to collecting only, not to {mode}=")
        if mode == "export" and self.task is not None:
            raise SchemaError("task", "applies to collecting and import= only; export= reads "
                                      "the task from the set's meta.json")  # fmt: skip


@dataclass
class ScreenOptions(Schema):
    """``sci-diffusion screen`` (``gate.<setting>=...`` keys are typed by ``GateConfig``)."""

    # `in` is a Python keyword: the field is `in_`, the command-line key `in`.
    in_: str | None = opt(None, "SMILES or SDF file to screen", required=True, key="in")
    out: str | None = opt(None, "output directory (candidates.csv, rejected.csv, ...)",
                             required=True)  # fmt: skip
    training: str | None = opt(None, "training SMILES file (novelty)")
    processes: int | None = opt(None, "worker processes (default: all cores)", min=1)
    config: str | None = opt(None, "YAML/JSON file of gate settings")
    chunk: int = opt(10_000, "records between two commits of the resume ledger", min=1)
    resume: bool = opt(True, "continue an unfinished run of the same input and settings in out=")
    shard: str | None = opt(None, "<rank>/<world> or env (torchrun's): only the records i with "
                                  "i % world == rank, into out/shard-<rank>-of-<world>")
    gate: dict[str, Any] = field(
        default_factory=dict, metadata=doc("gate.<setting>=<value>: one gate setting, over config=")
    )
