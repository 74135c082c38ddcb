"""The trainer: determinism, exact resume (also after SIGKILL), the NaN guard, checkpoint
tampering and truncation, and the model card a run writes."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from support import SMALL_RUN, subprocess_env

from sci_diffusion import cli
from sci_diffusion.config import compose
from sci_diffusion.io.checkpoint import (
    CheckpointError,
    checkpoint_path,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
)
from sci_diffusion.tasks import build_task
from sci_diffusion.train.trainer import Trainer, TrainingDiverged, train

SMALL = SMALL_RUN


@pytest.fixture(autouse=True)
def _one_thread():
    """Two shared cores: one intra-op thread avoids OpenMP oversubscription stalls."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_cfg(*overrides: str):
    cfg, _ = compose([*SMALL, *overrides])
    return cfg


def read_log(run_dir: Path) -> list[dict]:
    return [json.loads(ln) for ln in (run_dir / "train_log.jsonl").read_text().splitlines()]


def losses(entries: list[dict]) -> dict[int, float]:
    return {e["step"]: e["loss"] for e in entries}


def ckpt(run_dir: Path, step: int) -> Path:
    return checkpoint_path(run_dir / "checkpoints", step)


def weights(path: Path) -> dict[str, torch.Tensor]:
    # Copies: load_checkpoint's tensors may be views of the file (see the aliasing test).
    return {k: v.clone() for k, v in load_checkpoint(path)[0].items()}


def assert_bitwise_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name].dtype == b[name].dtype, name
        assert torch.equal(a[name], b[name]), f"tensor {name} differs"


_env = subprocess_env


# -- (a) determinism -------------------------------------------------------------------------


def test_same_seed_same_run_different_seed_different_run(tmp_path: Path) -> None:
    runs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        result = train(make_cfg("trainer.max_steps=40", f"trainer.seed={seed}"), tmp_path / name)
        assert result.step == 40 and result.stop_reason == "max_steps"
        runs[name] = (losses(read_log(tmp_path / name)), weights(ckpt(tmp_path / name, 40)))
    (loss_a, w_a), (loss_b, w_b), (loss_c, w_c) = runs["a"], runs["b"], runs["c"]
    assert sorted(loss_a) == list(range(1, 41))
    assert loss_a == loss_b
    assert_bitwise_equal(w_a, w_b)  # model, EMA and optimizer state
    assert loss_a != loss_c
    assert any(not torch.equal(w_a[k], w_c[k]) for k in w_a if k.startswith("model."))
    assert any(not torch.equal(w_a[k], w_c[k]) for k in w_a if k.startswith("ema."))


# -- (b) resume equivalence ------------------------------------------------------------------


def test_interrupted_run_resumes_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stopped after step 20 of 40 (cosine phase: warmup 5), resumed -> the straight run."""
    cfg = make_cfg("trainer.max_steps=40", "trainer.warmup_steps=5")
    train(cfg, tmp_path / "straight")

    original = Trainer._train_step

    def interrupt_after_20(self: Trainer, max_steps: int) -> torch.Tensor:
        if self.step == 20:
            raise KeyboardInterrupt
        return original(self, max_steps)

    monkeypatch.setattr(Trainer, "_train_step", interrupt_after_20)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "resumed")
    monkeypatch.setattr(Trainer, "_train_step", original)
    assert [p.name for p in list_checkpoints(tmp_path / "resumed" / "checkpoints")] == [
        "step_00000010.safetensors", "step_00000020.safetensors"]  # fmt: skip

    result = train(cfg, tmp_path / "resumed", resume=True)
    assert result.step == 40
    assert_bitwise_equal(weights(ckpt(tmp_path / "straight", 40)),
                         weights(ckpt(tmp_path / "resumed", 40)))  # fmt: skip
    straight = losses(read_log(tmp_path / "straight"))
    resumed_log = read_log(tmp_path / "resumed")
    assert [e["step"] for e in resumed_log] == list(range(1, 41))
    assert losses(resumed_log) == straight
    assert load_checkpoint(ckpt(tmp_path / "resumed", 40))[1]["step"] == 40


def test_budget_extended_on_resume_matches_straight_run_within_warmup(tmp_path: Path) -> None:
    """max_steps=20, then resume with max_steps=40: identical to a straight 40-step run.

    Holds because all 40 steps are inside the (default, 100-step) warmup, where the learning
    rate does not depend on max_steps. Past warmup, the cosine is re-stretched to the new
    max_steps on resume, so an extended run is NOT the straight run (by design)."""
    cfg40 = make_cfg("trainer.max_steps=40")
    assert cfg40.trainer.warmup_steps >= 40
    train(cfg40, tmp_path / "straight")
    cfg20 = make_cfg("trainer.max_steps=20")
    train(cfg20, tmp_path / "extended")
    cfg20.trainer.max_steps = 40
    result = train(cfg20, tmp_path / "extended", resume=True)
    assert result.step == 40
    assert_bitwise_equal(weights(ckpt(tmp_path / "straight", 40)),
                         weights(ckpt(tmp_path / "extended", 40)))  # fmt: skip
    straight = losses(read_log(tmp_path / "straight"))
    extended = read_log(tmp_path / "extended")
    assert [e["step"] for e in extended] == list(range(1, 41))
    assert {s: v for s, v in losses(extended).items() if s > 20} == {
        s: v for s, v in straight.items() if s > 20
    }


def test_resume_with_max_steps_not_beyond_checkpoint_is_refused(tmp_path: Path) -> None:
    """Resuming a 40-step run with max_steps=20 must not rewrite its final checkpoint (today it
    re-saves step 40 with last_loss=NaN and reports success)."""
    run_dir = tmp_path / "run"
    train(make_cfg("trainer.max_steps=40"), run_dir)
    before = ckpt(run_dir, 40).read_bytes()
    error: BaseException | None = None
    try:
        train(make_cfg("trainer.max_steps=20"), run_dir, resume=True)
    except ValueError as exc:
        error = exc
    assert ckpt(run_dir, 40).read_bytes() == before, "the final checkpoint was rewritten"
    assert math.isfinite(load_checkpoint(ckpt(run_dir, 40))[1]["last_loss"])
    assert error is not None, "resume with max_steps <= checkpoint step reported success"
    assert "max_steps" in str(error)


# -- (c) SIGKILL and resume --------------------------------------------------------------------


def test_sigkill_then_resume_continues_from_last_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sci_diffusion", "train", *SMALL, "trainer.max_steps=100000",
         "trainer.checkpoint_every=10", f"hydra.run.dir={run_dir}"],
        cwd=tmp_path, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while len(list_checkpoints(run_dir / "checkpoints")) < 2:
            assert proc.poll() is None, f"training exited early: {proc.stderr.read()}"
            assert time.monotonic() < deadline, "no 2 checkpoints within 90 s"
            time.sleep(0.02)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL

    ck_dir = run_dir / "checkpoints"
    last_path = latest_checkpoint(ck_dir)  # step files appear only complete (rename)
    assert last_path is not None
    last = load_checkpoint(last_path)[1]["step"]
    assert last >= 20 and last % 10 == 0
    killed_log = read_log(run_dir)
    tmp_before = {p.name for p in ck_dir.iterdir() if p.name.startswith(".tmp-")}

    # The resume in-process (the killed run above is the real process).
    monkeypatch.chdir(tmp_path)
    capfd.readouterr()
    code = cli.main(["train", f"resume={run_dir}", f"trainer.max_steps={last + 20}"])
    out = capfd.readouterr()
    assert code == 0, out.err
    assert f"trained toy2d for {last + 20} steps" in out.out
    assert "Traceback" not in out.err

    final = latest_checkpoint(ck_dir)
    assert final == ckpt(run_dir, last + 20)
    assert load_checkpoint(final)[1]["step"] == last + 20
    assert load_checkpoint(ckpt(run_dir, last + 10))[1]["step"] == last + 10

    new_entries = read_log(run_dir)[len(killed_log) :]
    assert [e["step"] for e in new_entries] == list(range(last + 1, last + 21))
    # Steps the killed run logged after its last checkpoint are replayed exactly.
    replayed = {s: v for s, v in losses(killed_log).items() if s > last}
    assert replayed == {s: v for s, v in losses(new_entries).items() if s in replayed}

    tmp_after = {p.name for p in ck_dir.iterdir() if p.name.startswith(".tmp-")}
    assert tmp_after <= tmp_before, f"the resumed run left temporary files: {tmp_after}"
    assert len(tmp_before) <= 1  # at most the write SIGKILL interrupted


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_between_steps_with_a_checkpoint(tmp_path: Path, signum: int) -> None:
    """kill / Ctrl-C: the run finishes its step, checkpoints it (no periodic checkpoint is due),
    writes the card, exits 130 naming the resume command; resuming continues from that step."""
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sci_diffusion", "train", *SMALL, "trainer.max_steps=100000",
         "trainer.checkpoint_every=100000", "trainer.log_every=1", f"hydra.run.dir={run_dir}"],
        cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        log = run_dir / "train_log.jsonl"
        while not (log.exists() and len(log.read_text().splitlines()) >= 5):
            assert proc.poll() is None, f"training exited early: {proc.stderr.read()}"
            assert time.monotonic() < deadline, "no 5 logged steps within 90 s"
            time.sleep(0.02)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert f"resume={run_dir}" in err and "Traceback" not in err
    assert "(interrupted)" in out
    last = read_log(run_dir)[-1]["step"]
    saved = latest_checkpoint(run_dir / "checkpoints")
    assert saved == ckpt(run_dir, last)  # the step it stopped after, not an older one
    facts = json.loads((run_dir / "card.json").read_text())
    assert facts["training"]["stop_reason"] == "interrupted"
    assert facts["training"]["steps"] == last

    cfg = make_cfg(f"trainer.max_steps={last + 5}", "trainer.checkpoint_every=100000")
    result = train(cfg, run_dir, resume=True)
    assert result.step == last + 5 and result.stop_reason == "max_steps"


# -- (d) NaN guard -----------------------------------------------------------------------------


def _nan_at_step_25(monkeypatch: pytest.MonkeyPatch) -> None:
    original = Trainer._train_step

    def step(self: Trainer, max_steps: int) -> torch.Tensor:
        loss = original(self, max_steps)
        return torch.full_like(loss, float("nan")) if self.step + 1 == 25 else loss

    monkeypatch.setattr(Trainer, "_train_step", step)


def test_nan_loss_stops_training_and_keeps_last_good_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _nan_at_step_25(monkeypatch)
    run_dir = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match=r"at step 25\b") as info:
        train(make_cfg("trainer.max_steps=40"), run_dir)
    assert "checkpoint" in str(info.value)
    paths = list_checkpoints(run_dir / "checkpoints")
    assert [p.name for p in paths] == ["step_00000010.safetensors", "step_00000020.safetensors"]
    assert latest_checkpoint(run_dir / "checkpoints") == ckpt(run_dir, 20)
    tensors, meta = load_checkpoint(ckpt(run_dir, 20))
    assert meta["step"] == 20 and math.isfinite(meta["last_loss"])
    assert all(torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point())
    assert max(e["step"] for e in read_log(run_dir)) == 24


def test_nan_loss_exits_1_from_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _nan_at_step_25(monkeypatch)
    run_dir = tmp_path / "run"
    code = cli.main(["train", *SMALL, "trainer.max_steps=40", f"hydra.run.dir={run_dir}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and err[0].startswith("error: loss became nan at step 25")
    assert latest_checkpoint(run_dir / "checkpoints") == ckpt(run_dir, 20)


# -- (e) tampered and truncated checkpoints -----------------------------------------------


def test_tampered_checkpoint_is_never_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # where a user would run the commands
    run_dir = tmp_path / "run"
    cfg = make_cfg("trainer.max_steps=40")
    train(cfg, run_dir)
    last = ckpt(run_dir, 40)
    original = weights(last)
    data = bytearray(last.read_bytes())
    data[-1] ^= 0x01  # a bit of the last tensor's data
    last.write_bytes(bytes(data))

    with pytest.raises(CheckpointError, match="hash"):
        load_checkpoint(last)

    # eval skips the tampered file, says so (a RuntimeWarning: on stderr under Python's default
    # warning filters), and evaluates the previous one.
    capfd.readouterr()
    with pytest.warns(RuntimeWarning, match=r"skipping checkpoint .*step_00000040.*hash"):
        code = cli.main(["eval", f"run={run_dir}", "steps=5", "task.eval.n_samples=200"])
    out = capfd.readouterr()
    assert code == 0, out.err
    assert "Traceback" not in out.err
    metrics = json.loads(out.out)
    assert metrics["checkpoint"] == "step_00000030.safetensors"
    assert metrics["step"] == 30

    # Resuming falls back to step 30 and recomputes step 40 exactly.
    with pytest.warns(RuntimeWarning, match="step_00000040.*hash"):
        train(cfg, run_dir, resume=True)
    assert_bitwise_equal(weights(last), original)


def test_loaded_tensors_do_not_alias_the_file(tmp_path: Path) -> None:
    """load_checkpoint verifies the bytes it returns: modifying the file in place afterwards
    must not change them. (Today they are views of a memory map of the file: an in-place
    edit changes the verified tensors, and truncating the file makes reading them SIGBUS.)"""
    from sci_diffusion.io.checkpoint import save_checkpoint

    path = tmp_path / "ck.safetensors"
    save_checkpoint(path, {"w": torch.zeros(4096)}, {"step": 1})
    tensors, _ = load_checkpoint(path)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x40  # in place: same inode
    with path.open("r+b") as f:
        f.write(bytes(data))
    assert torch.equal(tensors["w"], torch.zeros(4096)), "the verified tensor changed on disk edit"


def test_truncated_checkpoints_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # where a user would run the commands
    run_dir = tmp_path / "run"
    train(make_cfg("trainer.max_steps=20"), run_dir)
    for path in list_checkpoints(run_dir / "checkpoints"):
        size = path.stat().st_size
        with path.open("r+b") as f:
            f.truncate(size // 2)

    capfd.readouterr()
    code = cli.main(["eval", f"run={run_dir}"])
    out = capfd.readouterr()
    assert code == 2, out.out
    assert "Traceback" not in out.err
    last_line = out.err.strip().splitlines()[-1]
    # The error names the folder and the newest file's own reason (not just "train first").
    assert last_line.startswith("error: ") and "passes verification" in last_line, out.err
    assert "truncated" in last_line

    # Every checkpoint is skipped with a warning, then the error.
    with pytest.warns(RuntimeWarning, match="skipping checkpoint .*truncated"):
        code = cli.main(["train", f"resume={run_dir}", "trainer.max_steps=30"])
    out = capfd.readouterr()
    assert code == 2
    assert out.err.strip().splitlines()[-1].startswith("error: nothing to resume")
    assert "Traceback" not in out.err


# -- (f) model card ------------------------------------------------------------------------


def test_model_card_after_train_and_eval(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    cfg = make_cfg("trainer.max_steps=40")
    train(cfg, run_dir)
    assert cli.main(["eval", f"run={run_dir}", "sampler=ddim", "steps=20"]) == 0
    capsys.readouterr()

    task = build_task(cfg)
    torch.manual_seed(0)
    n_params = sum(p.numel() for p in task.build_network().parameters())
    fingerprint = task.data_info().fingerprint

    card = (run_dir / "model_card.md").read_text()
    lines = set(card.splitlines())
    d = cfg.task.diffusion
    expected = [
        f"- **objective**: denoising regression, weighting={d.weighting}, "
        f"time distribution={d.time_distribution}",
        f"- **schedule**: {d.schedule}",
        f"- **parameterization**: {d.prediction}",
        f"- **parameters**: {n_params}",
        f"- **fingerprint**: {fingerprint}",
        "- **size**: 2000",
        "- **steps**: 40",
        "- **device**: cpu",
        "- **processes**: 1",
        "- **precision**: fp32",
        "- **seed**: 0",
        "- **validation_status**: synthetic data only",
        "- **checkpoint**: step_00000040.safetensors",
        "### ddim, 20 steps",
        "- **sampler**: ddim",
        "- **steps**: 20",
    ]
    for line in expected:
        assert line in lines, f"model card lacks {line!r}:\n{card}"
    assert "_Not recorded yet" not in card
    evaluation = card.split("## Evaluation", 1)[1].split("\n## ", 1)[0]
    assert "### ddim, 20 steps" in evaluation and "- **sliced_wasserstein**:" in evaluation

    assert OmegaConf.load(run_dir / "config.yaml") == cfg
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ("sliced_wasserstein", "sliced_wasserstein_exact_denoiser", "noise_floor_q95",
                "threshold", "matches_data", "mode_weight_tv"):  # fmt: skip
        assert key in metrics, key
    assert metrics["sampler"] == "ddim" and metrics["steps"] == 20
    assert metrics["step"] == 40 and metrics["n_samples"] == 500
    assert metrics["threshold"] == pytest.approx(
        cfg.task.eval.threshold_factor * metrics["noise_floor_q95"]
    )
    assert metrics["checks"]["distance"] == (metrics["sliced_wasserstein"] < metrics["threshold"])
    assert metrics["matches_data"] == all(metrics["checks"].values())
    card_facts = json.loads((run_dir / "card.json").read_text())
    assert card_facts["model"]["parameters"] == n_params
    assert card_facts["evaluation"]["ddim, 20 steps"] == metrics


def test_model_card_reports_bf16_autocast_on_cpu(tmp_path: Path) -> None:
    """trainer.precision=bf16 trains under bf16 autocast on CPU too; the card must say so."""
    fp32 = train(make_cfg("trainer.max_steps=3", "trainer.precision=fp32"), tmp_path / "fp32")
    bf16 = train(make_cfg("trainer.max_steps=3", "trainer.precision=bf16"), tmp_path / "bf16")
    assert fp32.last_loss != bf16.last_loss  # autocast really was on
    facts = json.loads((tmp_path / "bf16" / "card.json").read_text())
    assert "bf16" in facts["training"]["precision"], facts["training"]


def test_max_minutes_counts_the_time_before_a_resume(tmp_path: Path) -> None:
    """``trainer.max_minutes`` is the run's total budget: a resumed run whose checkpoint already
    spent it stops at once instead of granting the budget again."""
    from sci_diffusion.config import compose
    from sci_diffusion.train.trainer import train

    cfg, _ = compose(["task=toy2d", *SMALL_RUN, "trainer.max_steps=20"])
    run = tmp_path / "run"
    first = train(cfg, run)
    assert first.step == 20
    cfg.trainer.max_steps = 40
    cfg.trainer.max_minutes = first.wall_seconds / 60 / 2  # already spent at step 20
    resumed = train(cfg, run, resume=True)
    assert resumed.stop_reason == "max_minutes" and resumed.step == 20


def test_init_from_loads_ema_weights_lists_new_tensors_and_refuses_misfits(
    tmp_path: Path,
) -> None:
    from sci_diffusion.nets.graph_transformer import GraphDenoiserNet
    from sci_diffusion.train.embedded import embedded_run
    from sci_diffusion.train.evaluate import load_run
    from sci_diffusion.train.init_weights import InitWeightsError, load_initial_weights

    source = embedded_run("qm9_graph")
    loaded = load_run(source, "cpu")
    plain = loaded.denoiser.net
    options = {k: v for k, v in loaded.cfg.model.items() if k != "name"}
    cond = GraphDenoiserNet(plain.node_classes, "bonds", plain.transformer.edge_out,
                            properties=2, **options)  # fmt: skip
    info = load_initial_weights(cond, "embedded:qm9_graph")
    assert info.new_tensors and all("cond_in" in k or "property_" in k for k in info.new_tensors)
    for key, value in plain.state_dict().items():
        assert torch.equal(cond.state_dict()[key], value), key
    small = GraphDenoiserNet(plain.node_classes, "bonds", plain.transformer.edge_out,
                             **{**options, "node_dim": 32})  # fmt: skip
    with pytest.raises(InitWeightsError, match="same model"):
        load_initial_weights(small, str(source))
    with pytest.raises(InitWeightsError, match="not a checkpoint"):
        load_initial_weights(cond, str(tmp_path / "nothing"))
