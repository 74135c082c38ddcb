"""The one config system: typed schemas (configs/schema.py) that parse, validate and generate
``--help`` for every command, and the exit codes of user errors (2) versus bugs (1)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from sci_diffusion import cli
from sci_diffusion.config import (
    OPTIONS,
    UsageError,
    compose,
    describe,
    options_schema,
    parse_options,
    validate,
)
from sci_diffusion.configs import schema
from sci_diffusion.io.errors import UserInputError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

# -- the schemas match the YAML and the registries -------------------------------------------


def test_trainer_schema_defaults_are_the_default_trainer_yaml() -> None:
    default = OmegaConf.to_container(OmegaConf.load(CONFIGS / "trainer" / "default.yaml"))
    assert default == dataclasses.asdict(schema.TrainerConfig())


@pytest.mark.parametrize("group", ["trainer", "sampler"])
def test_every_option_of_a_typed_group_has_exactly_the_schema_keys(group: str) -> None:
    cls = {"trainer": schema.TrainerConfig, "sampler": schema.SamplerConfig}[group]
    names = {f.name for f in dataclasses.fields(cls)}
    for path in sorted((CONFIGS / group).glob("*.yaml")):
        data = OmegaConf.load(path)
        assert set(data) == names, f"{path.name}: {set(data) ^ names}"
        OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cls), data))  # rules hold


def test_schema_choices_match_the_registries() -> None:
    from sci_diffusion.core.samplers import SAMPLERS

    assert set(schema.SAMPLER_NAMES) == set(SAMPLERS)
    assert set(schema.SAMPLER_NAMES) == {p.stem for p in (CONFIGS / "sampler").glob("*.yaml")}


def test_demo_task_choices_match_the_environment_registry() -> None:
    pytest.importorskip("gymnasium")
    pytest.importorskip("mujoco")
    from sci_diffusion.envs.registry import ENV_TASKS

    assert set(schema.DEMO_TASKS) == set(ENV_TASKS)


def test_gate_schema_is_typed_by_gate_config() -> None:
    pytest.importorskip("rdkit")
    from sci_diffusion.chem.gate import GateConfig

    rows = {k: t for k, t, _, _ in describe(options_schema("screen"))}
    for f in dataclasses.fields(GateConfig):
        assert f"gate.{f.name}" in rows
        assert f.metadata["help"], f.name
    assert rows["gate.max_mw"] == "float or null"
    assert rows["gate.allowed_elements"] == "list of str"
    assert rows["gate.require_connected"] == "bool"


# -- parsing ---------------------------------------------------------------------------------


def test_every_command_parses_its_defaults_and_typed_values() -> None:
    o = parse_options("demos", ["task=multimodal", "episodes=3", "out=x", "progress=no",
                                "action_noise=1"])  # fmt: skip
    assert o == schema.DemosOptions(task="multimodal", episodes=3, out="x", progress=False,
                                    action_noise=1.0)  # fmt: skip
    assert cli.check(["bench", "policy", "model=mlp", "quick=true"]) == schema.BenchOptions(
        benchmark="policy", model="mlp", quick=True
    )
    assert cli.check(["export", "run=r", "force=true"]).force is True
    assert cli.check(["quickstart", "steps=5"]).steps == 5
    assert cli.check(["demos", "task.env_name=push-v3", "task=metaworld", "episodes=1",
                      "out=x"]).env_name == "push-v3"  # the task configs' spelling  # fmt: skip


def test_composed_config_is_typed() -> None:
    cfg, _ = compose(["trainer.lr=1", "trainer.betas=[0.8,0.9]", "trainer.progress=false"])
    assert cfg.trainer.lr == 1.0 and isinstance(cfg.trainer.lr, float)
    assert list(cfg.trainer.betas) == [0.8, 0.9] and cfg.trainer.progress is False


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["trainer.betas=[0.9,1.5]"], "trainer.betas"),
        (["trainer.betas=abc"], "trainer.betas"),
        (["trainer.ema_decay=1.0"], "trainer.ema_decay"),
        (["trainer.lr=0"], "trainer.lr"),
        (["trainer.device=cuda:x"], "trainer.device"),
        (["sampler.t_start=0"], "sampler.t_start"),
        (["sampler.steps=0"], "sampler.steps"),
        (["n=0"], "n"),
        (["episodes=many"], "episodes"),
        (["trainer.progress=maybe"], "trainer.progress"),
        (["model.width=abc"], "model.width"),
    ],
)
def test_compose_refuses_bad_values_naming_the_key(args: list[str], needle: str) -> None:
    with pytest.raises(UsageError, match=needle):
        compose(args)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["bench"], "benchmark="),
        (["bench", "nope"], "benchmark"),
        (["bench", "sampler", "model=mlp"], "model"),
        (["bench", "policy", "model=resnet"], "model must be one of"),
        (["demos", "task=multimodal", "episodes=0", "out=x"], "episodes"),
        (["demos", "task=multimodal", "episodes=1", "out=x", "render=2"], "render"),
        (["demos", "task=multimodal", "episodes=1", "out=x", "action_noise=-1"], "action_noise"),
        (["demos", "task=multimodal", "episodes=1", "out=x", "seed=-1"], "seed"),
        (["screen", "in=a"], "out="),
        (["screen", "in=a", "out=b", "processes=0"], "processes"),
        (["screen", "in=a", "out=b", "+gate.x=1"], "gate.x"),
        (["export", "force=true"], "run="),
        (["quickstart", "out"], "key=value"),
    ],
)
def test_options_refuse_bad_values_naming_the_key(argv: list[str], needle: str) -> None:
    with pytest.raises(UsageError, match=needle):
        cli.check(argv)


def test_validate_checks_a_plain_config() -> None:
    cfg, _ = compose([])
    validate(cfg)
    cfg.trainer.max_steps = 0
    with pytest.raises(UsageError, match=r"trainer\.max_steps"):
        validate(cfg)


# -- help ------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", list(cli.REGISTRY))
def test_help_names_every_schema_field(command: str) -> None:
    text = cli._command_help(command)
    if command in OPTIONS:
        keys = [k for k, _, _, _ in describe(options_schema(command))]
    else:
        keys = [f"trainer.{f.name}" for f in dataclasses.fields(schema.TrainerConfig)]
        keys += [f"sampler.{f.name}" for f in dataclasses.fields(schema.SamplerConfig)]
        keys += [k for k in schema.RUN_KEYS if k != "guidance"]
        keys += ["guidance.scale", "guidance.method", "guidance.predictor"]
    lines = text.splitlines()
    for key in keys:
        assert any(ln.split()[:1] == [key] for ln in lines), f"{command} --help lacks {key}"


def test_help_names_the_issue_13_omissions() -> None:
    bench = cli._command_help("bench")
    for name in ("sampler", "policy", "screen", "egnn", "graph"):
        assert name in bench
    assert "action_noise" in cli._command_help("demos")
    assert "trainer.betas" in cli._command_help("train")


def test_bench_model_choices_are_the_registered_backbones() -> None:
    from sci_diffusion.policy.backbones import backbone_names

    text = cli._command_help("bench")
    assert "|".join(backbone_names()) in text


def test_top_level_help_lists_the_registry() -> None:
    text = cli._help()
    for name in cli.REGISTRY:
        assert f"  {name} " in text


# -- errors and exit codes -------------------------------------------------------------------


def _failing(exc: BaseException):
    def run(_: object) -> int:
        raise exc

    return run


@pytest.fixture
def quickstart_raises(monkeypatch: pytest.MonkeyPatch):
    def set_error(exc: BaseException) -> None:
        c = cli.REGISTRY["quickstart"]
        monkeypatch.setitem(cli.REGISTRY, "quickstart", dataclasses.replace(c, run=_failing(exc)))

    return set_error


def test_an_unexpected_error_exits_1_with_its_traceback(quickstart_raises, capsys) -> None:
    quickstart_raises(ValueError("shape mismatch deep inside"))
    assert cli.main(["quickstart"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "shape mismatch deep inside" in err
    assert err.strip().splitlines()[-1].startswith("error: internal error (ValueError")


def test_user_errors_exit_2_with_one_line(quickstart_raises, capsys) -> None:
    from sci_diffusion.io.checkpoint import CheckpointError

    for exc in (UserInputError("bad\ninput file"), CheckpointError("hash mismatch in x")):
        quickstart_raises(exc)
        assert cli.main(["quickstart"]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_diverged_run_exits_1_with_one_line(quickstart_raises, capsys) -> None:
    from sci_diffusion.train.trainer import TrainingDiverged

    quickstart_raises(TrainingDiverged("loss is nan at step 7"))
    assert cli.main(["quickstart"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == "error: loss is nan at step 7"


def test_the_cores_setting_checks_count_as_user_errors() -> None:
    """The core's sampler-setting checks raise InvalidValueError (the base of UserInputError,
    which the core cannot import): a user error; a plain ValueError anywhere is a bug."""
    from omegaconf import OmegaConf

    from sci_diffusion.core.sampler_config import start_time

    with pytest.raises(ValueError) as info:
        start_time(OmegaConf.create({"t_start": 0.0}))
    assert cli.is_user_error(info.value)
    try:
        int("x")
    except ValueError as err:
        assert not cli.is_user_error(err)


def test_the_input_checks_raise_user_input_error() -> None:
    """The run loader's checks raise UserInputError (still a ValueError for old callers)."""
    from sci_diffusion.train.evaluate import load_run

    with pytest.raises(UserInputError, match="no_such_run_dir"):
        load_run(Path("no_such_run_dir"))
    assert cli.USER_ERROR_TYPES == ()
