"""The ``sci-diffusion`` command line.

Bad input must end in ONE short ``error: ...`` line on stderr naming what is wrong, exit
code 2, no traceback, and no run directory left behind.

Most cases call ``cli.main`` in-process (what the console script and ``python -m
sci_diffusion`` run) with the output captured at the file-descriptor level, so that output
from C extensions counts too; a fresh interpreter costs about 3.5 s on the shared 2-core
machine. Real subprocesses cover what only they can: the installed console script, ``python
-m sci_diffusion``, a fresh interpreter's stderr on a usage error, the traceback of an
internal error, and a successful end-to-end train.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from support import SMALL_RUN, subprocess_env

from sci_diffusion import cli as cli_module
from sci_diffusion.cli import COMMANDS
from sci_diffusion.config import compose
from sci_diffusion.io.checkpoint import latest_checkpoint, load_checkpoint
from sci_diffusion.train.trainer import train

SMALL = SMALL_RUN


_env = subprocess_env


def cli(args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m sci_diffusion <args>`` in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "sci_diffusion", *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def console_script() -> Path:
    """The installed ``sci-diffusion`` console script of this interpreter's environment."""
    path = Path(sys.executable).parent / "sci-diffusion"
    if not path.is_file():
        pytest.skip(f"no console script at {path} (package not installed with pip install -e .)")
    return path


MainIn = Callable[[list[str], Path], subprocess.CompletedProcess[str]]

# Warning categories Python's default filters do not print (outside __main__).
SILENT_BY_DEFAULT = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)


@pytest.fixture
def main_in(monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> MainIn:
    """``main_in(args, cwd)``: ``cli.main(args)`` run in ``cwd`` in this process, returned as a
    CompletedProcess (exit code, stdout, stderr; fd-level capture, so output written by C
    extensions is included). Warnings a fresh interpreter would print to stderr (all but
    deprecation warnings) are returned as extra stderr lines, so "one line" keeps its meaning."""

    def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
        monkeypatch.chdir(cwd)
        capfd.readouterr()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            code = cli_module.main(list(args))
        out = capfd.readouterr()
        err = out.err + "".join(
            warnings.formatwarning(w.message, w.category, w.filename, w.lineno)
            for w in caught
            if not issubclass(w.category, SILENT_BY_DEFAULT)
        )
        return subprocess.CompletedProcess(["sci-diffusion", *args], code, out.out, err)

    return run


# -- help ------------------------------------------------------------------------------------


def test_help_lists_commands_and_tasks(tmp_path: Path) -> None:
    out = cli(["--help"], tmp_path)
    assert out.returncode == 0, out.stderr
    for command in COMMANDS:
        assert command in out.stdout
    assert "toy2d" in out.stdout
    assert list(tmp_path.iterdir()) == []


def test_no_arguments_prints_help_and_exits_2(tmp_path: Path) -> None:
    out = cli([], tmp_path)
    assert out.returncode == 2
    assert "usage: sci-diffusion" in out.stdout


def test_train_help_lists_config_groups(tmp_path: Path, main_in: MainIn) -> None:
    out = main_in(["train", "--help"], tmp_path)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    for group, option in [("task", "toy2d"), ("model", "mlp"), ("sampler", "ddim"),
                          ("trainer", "default")]:  # fmt: skip
        assert any(ln.split()[:1] == [group] and option in ln for ln in text.splitlines()), (
            f"train --help does not list group {group} with option {option}:\n{text}"
        )
    assert "max_steps" in text and "checkpoint_every" in text
    assert list(tmp_path.iterdir()) == []


def test_sample_and_export_help_name_the_embedded_default(tmp_path: Path, main_in: MainIn) -> None:
    for command, needle in (("sample", "sci-diffusion sample n=100 out=<dir>"),
                            ("export", "sci-diffusion export run=<run dir>")):  # fmt: skip
        out = main_in([command, "--help"], tmp_path)
        assert out.returncode == 0, out.stderr
        assert needle in " ".join(out.stdout.split()), out.stdout
    assert list(tmp_path.iterdir()) == []


# -- usage errors ----------------------------------------------------------------------------

# (id, argv, substrings the one error line must contain)
USAGE_ERRORS = [
    ("unknown-key", ["train", "trainer.max_stepz=3"], ["trainer.max_stepz"]),
    ("unknown-model-key", ["train", "model.widht=3"], ["model.widht"]),
    ("wrong-type", ["train", "trainer.max_steps=abc"], ["trainer.max_steps", "abc"]),
    ("wrong-type-float", ["train", "trainer.max_steps=2.5"], ["trainer.max_steps"]),
    ("wrong-type-model", ["train", "model.width=abc", "trainer.max_steps=2"], ["model.width"]),
    ("out-of-range", ["train", "trainer.max_steps=0"], ["trainer.max_steps"]),
    ("unknown-task", ["train", "task=nope"], ["task", "nope", "toy2d"]),
    ("unknown-sampler-train", ["train", "sampler=nope"], ["sampler", "nope", "ddim"]),
    ("unknown-sampler-eval", ["eval", "run=somewhere", "sampler=nope"], ["sampler", "nope"]),
    ("bad-choice", ["train", "trainer.precision=fp16"], ["trainer.precision", "fp16", "bf16"]),
    ("malformed-override", ["train", "trainer.max_steps=[1"], ["trainer.max_steps"]),
    ("not-key-value", ["train", "trainer.progress=false", "extra"], ["extra"]),
    ("unknown-command", ["frobnicate"], ["frobnicate", "train"]),
    ("eval-without-run", ["eval"], ["run="]),
    ("sample-without-run", ["sample"], ["run="]),
    ("eval-missing-run-dir", ["eval", "run=no_such_dir"], ["no_such_dir"]),
    ("eval-bad-steps", ["eval", "run=somewhere", "steps=0"], ["steps"]),
    ("resume-missing-dir", ["train", "resume=no_such_dir"], ["no_such_dir"]),
    ("bad-device", ["train", "trainer.device=tpu"], ["trainer.device", "tpu"]),
    ("sample-no-embedded-default", ["sample", "task=toy2d", "n=5", "out=samples"],
     ["toy2d", "embedded", "run=<run dir>"]),
    ("export-without-run", ["export"], ["run="]),
    ("export-missing-run-dir", ["export", "run=no_such_dir"], ["no_such_dir"]),
    ("export-bad-force", ["export", "run=somewhere", "force=maybe"], ["force", "maybe"]),
    ("export-unknown-option", ["export", "run=somewhere", "dest=x"], ["dest", "run"]),
    ("bench-unknown-benchmark", ["bench", "nope"], ["benchmark", "nope", "graph"]),
    ("bench-bad-bool", ["bench", "sampler", "quick=maybe"], ["quick", "maybe"]),
    ("quickstart-bad-steps", ["quickstart", "steps=0"], ["steps"]),
    ("screen-bad-gate-type", ["screen", "in=x.smi", "out=o", "gate.max_mw=heavy"],
     ["gate.max_mw", "heavy"]),
    ("train-bad-betas", ["train", "trainer.betas=[0.9,2]"], ["trainer.betas"]),
]  # fmt: skip


def check_usage_error(out: subprocess.CompletedProcess[str], needles: list[str], cwd: Path) -> None:
    where = (
        f"sci-diffusion {' '.join(out.args[1:])}\nstdout: {out.stdout!r}\nstderr: {out.stderr!r}"
    )
    assert out.returncode == 2, where
    assert "Traceback" not in out.stdout + out.stderr, where
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, where
    line = lines[0]
    assert line.startswith("error: "), where
    assert len(line) < 300, where
    for needle in needles:
        assert needle in line, f"the error does not name {needle!r}: {where}"
    assert not out.stdout.strip(), where
    assert list(cwd.iterdir()) == [], f"bad input left files behind: {list(cwd.rglob('*'))}"


@pytest.mark.parametrize(
    ("name", "argv", "needles"), USAGE_ERRORS, ids=[c[0] for c in USAGE_ERRORS]
)
def test_usage_error_is_one_line_exit_2(
    tmp_path: Path, main_in: MainIn, name: str, argv: list[str], needles: list[str]
) -> None:
    """Each bad command line, through ``cli.main`` in its own empty working directory."""
    check_usage_error(main_in(argv, tmp_path), needles, tmp_path)


FRESH = {"unknown-key": "console", "screen-bad-gate-type": "-m", "sample-no-embedded-default": "-m"}


@pytest.mark.parametrize(("name", "how"), FRESH.items(), ids=list(FRESH))
def test_usage_error_in_a_fresh_interpreter(tmp_path: Path, name: str, how: str) -> None:
    """The same contract from the installed ``sci-diffusion`` script and ``python -m
    sci_diffusion``: nothing a fresh interpreter prints on the way (import-time warnings,
    library banners) may add to the one line."""
    _, argv, needles = next(c for c in USAGE_ERRORS if c[0] == name)
    if how == "console":
        out = subprocess.run([str(console_script()), *argv], cwd=tmp_path, env=_env(),
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    else:
        out = cli(argv, tmp_path)
    out.args = ["sci-diffusion", *argv]
    check_usage_error(out, needles, tmp_path)


def test_every_command_help_is_generated(tmp_path: Path, main_in: MainIn) -> None:
    """`<command> --help` exits 0, writes nothing, and lists the command's options."""
    for command, needle in (("demos", "action_noise"), ("bench", "graph"), ("train", "betas"),
                            ("screen", "gate.pains"), ("quickstart", "steps")):  # fmt: skip
        out = main_in([command, "--help"], tmp_path)
        assert out.returncode == 0, out.stderr
        assert needle in out.stdout
    assert list(tmp_path.iterdir()) == []


def test_an_internal_error_exits_1_with_a_traceback(tmp_path: Path) -> None:
    """A bug (here: a ValueError the CLI does not expect) is not a usage error."""
    code = ("import sys; from sci_diffusion import cli\n"
            "def boom(_):\n    raise ValueError('internal shape mismatch')\n"
            "cli.REGISTRY['quickstart'] = cli.Command('x', (), cli.parse_quickstart, boom)\n"
            "sys.exit(cli.main(['quickstart']))\n")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_env(),
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 1, out.stderr
    assert "Traceback" in out.stderr and "internal shape mismatch" in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("error: internal error")


# Each user-error class, reached through a real command on a bad input file: exit 2, one line.
# (id, files to write {name: text}, argv, substrings the error line must contain)
INPUT_FILE_ERRORS = [
    ("CheckpointError", {"run/checkpoints/step_00000010.safetensors": "junk"},
     ["eval", "run=run"], ["run/checkpoints", "passes verification"]),
    ("GateConfigError", {"a.smi": "CCO\n", "gate.yaml": "colour: red\n"},
     ["screen", "in=a.smi", "out=o", "config=gate.yaml"], ["colour"]),
    ("ScreenInputError", {}, ["screen", "in=missing.smi", "out=o"], ["missing.smi"]),
    ("UnknownFormatError", {"a.xyz": "CCO\n"}, ["screen", "in=a.xyz", "out=o"],
     ["a.xyz", ".smi"]),
    ("DemoFormatError", {"bad_demos/README": ""},
     ["train", "task=multimodal", "task.data.demos=bad_demos", "trainer.max_steps=2",
      "hydra.run.dir=r"], ["bad_demos", "meta.json"]),
    ("backbone-option", {"bad_demos/README": ""},
     ["train", "task=multimodal", "task.data.demos=bad_demos", "model.kernel_size=4",
      "hydra.run.dir=r"], ["model=unet1d", "kernel_size"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "files", "argv", "needles"), INPUT_FILE_ERRORS, ids=[c[0] for c in INPUT_FILE_ERRORS]
)
def test_a_bad_input_file_is_one_line_exit_2(
    tmp_path: Path,
    main_in: MainIn,
    name: str,
    files: dict[str, str],
    argv: list[str],
    needles: list[str],
) -> None:
    if argv[0] == "screen":
        pytest.importorskip("rdkit")
    if "task=multimodal" in argv:
        pytest.importorskip("gymnasium")
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    out = main_in(argv, tmp_path)
    where = f"sci-diffusion {' '.join(argv)}\nstdout: {out.stdout!r}\nstderr: {out.stderr!r}"
    assert out.returncode == 2, where
    assert "Traceback" not in out.stderr, where
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), where
    for needle in needles:
        assert needle in lines[0], f"the error does not name {needle!r}: {where}"
    assert not (tmp_path / "o").exists() and not (tmp_path / "r").exists(), where


def test_every_user_error_class_is_a_user_input_error() -> None:
    """The user-error classes are UserInputErrors (exit 2), and still ValueErrors."""
    pytest.importorskip("rdkit")
    from sci_diffusion.chem.gate import GateConfigError
    from sci_diffusion.chem.molfiles import UnknownFormatError
    from sci_diffusion.chem.screen import ScreenInputError
    from sci_diffusion.config import UsageError
    from sci_diffusion.envs.demos import DemoFormatError
    from sci_diffusion.io.checkpoint import CheckpointError
    from sci_diffusion.io.errors import UserInputError

    for cls in (CheckpointError, GateConfigError, ScreenInputError, UnknownFormatError,
                DemoFormatError, UsageError):  # fmt: skip
        assert issubclass(cls, UserInputError) and issubclass(cls, ValueError), cls


def test_a_value_error_deep_inside_a_command_exits_1_with_a_traceback(
    tmp_path: Path, main_in: MainIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ValueError from deep inside training (here: the learning-rate schedule) is a bug, not a
    mistake in the input: exit 1, the traceback, and a last line that says so. (In-process; the
    test above covers the same path in a fresh interpreter.)"""
    from sci_diffusion.train import trainer

    def lr_factor(*_: object) -> float:
        raise ValueError("operands could not be broadcast")

    monkeypatch.setattr(trainer, "lr_factor", lr_factor)
    out = main_in(["train", "task=toy2d", *SMALL, "trainer.max_steps=2"], tmp_path)
    assert out.returncode == 1, out.stderr
    assert "Traceback" in out.stderr and "in lr_factor" in out.stderr, out.stderr
    assert "operands could not be broadcast" in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("error: internal error (ValueError")


# -- end to end: train, eval, sample -----------------------------------------------------


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = tmp_path_factory.mktemp("e2e")
    out = cli(["train", "task=toy2d", *SMALL, "trainer.max_steps=40", "hydra.run.dir=run"], cwd)
    assert out.returncode == 0, out.stderr
    assert "trained toy2d for 40 steps" in out.stdout
    return cwd / "run"


def test_train_writes_a_run_directory(trained_run: Path) -> None:
    names = sorted(p.name for p in (trained_run / "checkpoints").iterdir())
    assert names == [f"step_{s:08d}.safetensors" for s in (10, 20, 30, 40)]
    for name in ("config.yaml", "train_log.jsonl", "model_card.md", "card.json"):
        assert (trained_run / name).is_file(), name


def test_eval_prints_metrics_json(trained_run: Path, main_in: MainIn) -> None:
    out = main_in(["eval", f"run={trained_run}", "sampler=ddim", "steps=20"], trained_run.parent)
    assert out.returncode == 0, out.stderr
    metrics = json.loads(out.stdout)
    assert metrics["sampler"] == "ddim"
    assert metrics["steps"] == 20
    assert metrics["step"] == 40
    assert metrics["checkpoint"] == "step_00000040.safetensors"
    assert metrics["n_samples"] == 500  # the run's own task.eval.n_samples
    assert json.loads((trained_run / "metrics.json").read_text()) == metrics
    assert (trained_run / "eval" / "ddim_20" / "metrics.json").is_file()


def test_eval_folder_names_the_start_time(trained_run: Path, main_in: MainIn) -> None:
    args = ["eval", f"run={trained_run}", "sampler=ddim", "steps=5", "sampler.t_start=0.9"]
    out = main_in(args, trained_run.parent)
    assert out.returncode == 0, out.stderr
    assert (trained_run / "eval" / "ddim_5_t0.9" / "metrics.json").is_file()
    card = (trained_run / "model_card.md").read_text()
    assert "ddim, 5 steps, t_start 0.9" in card


def test_sample_writes_n_samples(trained_run: Path, tmp_path: Path, main_in: MainIn) -> None:
    from safetensors.torch import load_file

    out_dir = tmp_path / "samples"
    out = main_in(["sample", f"run={trained_run}", f"out={out_dir}", "n=300", "steps=10"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert f"samples written to {out_dir}" in out.stdout
    samples = load_file(str(out_dir / "samples.safetensors"))["samples"]
    assert samples.shape == (300, 2)
    assert torch.isfinite(samples).all()
    assert json.loads((out_dir / "metrics.json").read_text())["n_samples"] == 300


# -- resume: only budgets may change -----------------------------------------------------


@pytest.fixture
def small_run(tmp_path: Path) -> Path:
    cfg, _ = compose([*SMALL, "trainer.max_steps=20"])
    run_dir = tmp_path / "run"
    train(cfg, run_dir)
    return run_dir


def test_resume_refuses_overrides_it_would_ignore(small_run: Path, main_in: MainIn) -> None:
    """`train resume=<dir>` keeps the saved config; an override other than a budget
    (trainer.max_steps / max_minutes / progress) must not be silently dropped."""
    before = (small_run / "config.yaml").read_text()
    out = main_in(["train", f"resume={small_run}", "trainer.max_steps=30", "trainer.lr=0.5"],
                  small_run.parent)  # fmt: skip
    assert out.returncode == 2, (
        f"trainer.lr=0.5 was accepted on resume but the run trained with the saved lr "
        f"(rc={out.returncode}, stdout={out.stdout!r})"
    )
    assert out.stderr.strip().startswith("error:")
    assert "trainer.lr" in out.stderr
    assert (small_run / "config.yaml").read_text() == before


def test_resume_extends_budget_from_cli(small_run: Path, main_in: MainIn) -> None:
    out = main_in(["train", f"resume={small_run}", "trainer.max_steps=30"], small_run.parent)
    assert out.returncode == 0, out.stderr
    assert "trained toy2d for 30 steps" in out.stdout
    path = latest_checkpoint(small_run / "checkpoints")
    assert path is not None and path.name == "step_00000030.safetensors"
    assert load_checkpoint(path)[1]["step"] == 30


def test_bench_rendering_quick_prints_its_table(capsys):
    assert cli_module.main(["bench", "rendering", "quick=true"]) == 0
    out = capsys.readouterr().out
    assert "| multimodal | top | 64 |" in out and "| metaworld | corner2 | 64 |" in out
    assert cli_module.main(["bench", "frames", "out=x.json"]) == 2
    assert "out= applies to bench rollouts" in capsys.readouterr().err


def test_demos_workers_collect_the_same_data_as_one_process(tmp_path):
    import h5py
    import numpy as np

    for workers in (0, 2):
        args = ["demos", "task=multimodal", "episodes=3", f"out={tmp_path / str(workers)}",
                f"workers={workers}", "progress=false"]  # fmt: skip
        assert cli_module.main(args) == 0
    one, two = (h5py.File(tmp_path / w / "demos.hdf5") for w in ("0", "2"))
    with one, two:
        for ep in one["episodes"]:
            assert np.array_equal(one["episodes"][ep]["actions"][()],
                                  two["episodes"][ep]["actions"][()])  # fmt: skip
