"""DDP on CPU (gloo): two processes launched by torchrun."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from support import SMALL_RUN, subprocess_env

from sci_diffusion import cli
from sci_diffusion.config import compose
from sci_diffusion.io.checkpoint import list_checkpoints, load_checkpoint
from sci_diffusion.train.trainer import train

SMALL = SMALL_RUN


_env = subprocess_env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
        for child in children:
            found += [child, *_descendants(child)]
    return found


def torchrun(args: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """``torchrun --nproc_per_node=2 ...`` with output in files. On timeout torchrun and its
    workers (each in a session of its own) are stopped, so a hung job cannot outlive the test."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           f"--master_port={free_port()}", *args]  # fmt: skip
    out_path, err_path = cwd / "torchrun.out", cwd / "torchrun.err"
    with out_path.open("w") as out, err_path.open("w") as err:
        proc = subprocess.Popen(cmd, cwd=cwd, env=_env(), stdout=out, stderr=err)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            workers = _descendants(proc.pid)
            proc.terminate()  # torchrun forwards SIGTERM to its workers
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            for pid in workers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            pytest.fail(f"torchrun did not finish within {timeout} s (hang?)\n"
                        f"{out_path.read_text()}\n{err_path.read_text()[-3000:]}")  # fmt: skip
    stdout, stderr = out_path.read_text(), err_path.read_text()
    out_path.unlink()
    err_path.unlink()
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


HELPER = textwrap.dedent(
    '''
    """Under torchrun. `agree <train args>`: the real `sci-diffusion train` (cli.main), checking
    right after fit, while the process group is up, that the ranks agree. `nan-on-rank-1
    <run dir> <overrides>`: train() with a NaN loss on rank 1 only."""
    import hashlib
    import json
    import os
    import sys
    from pathlib import Path

    import torch
    import torch.distributed as dist

    from sci_diffusion import cli
    from sci_diffusion.config import compose
    from sci_diffusion.io.checkpoint import load_checkpoint
    from sci_diffusion.train.trainer import Trainer, TrainingDiverged, step_seed, train

    mode = sys.argv[1]

    if mode == "nan-on-rank-1":
        run_dir = Path(sys.argv[2])
        cfg, _ = compose(sys.argv[3:])
        # Only rank 1 sees a non-finite loss at step 5 (e.g. a bad sample in its shard).
        original = Trainer._train_step

        def step(self, max_steps):
            loss = original(self, max_steps)
            if self.dist.rank == 1 and self.step + 1 == 5:
                return torch.full_like(loss, float("nan"))
            return loss

        Trainer._train_step = step
        rank = int(os.environ["RANK"])
        try:
            train(cfg, run_dir)
        except TrainingDiverged as exc:
            print(f"rank {rank} diverged: {exc}", flush=True)
            sys.exit(1)
        print(f"rank {rank} finished without noticing the NaN", flush=True)
        sys.exit(3)

    assert mode == "agree", mode
    reports = []
    original_fit = Trainer.fit

    def fit_and_check(trainer):
        result = original_fit(trainer)
        cfg = trainer.cfg
        rank, world = trainer.dist.rank, trainer.dist.world_size
        assert world == 2 and dist.is_initialized()

        def flat(module):
            return torch.cat([t.detach().reshape(-1).double()
                              for t in module.state_dict().values()])

        mine = {"net": flat(trainer.net), "ema": flat(trainer.ema)}
        for name, vec in mine.items():
            gathered = [torch.empty_like(vec) for _ in range(world)]
            dist.all_gather(gathered, vec)
            assert all(torch.equal(gathered[0], g) for g in gathered), f"ranks disagree on {name}"
        digest = hashlib.sha256(mine["net"].numpy().tobytes()).hexdigest()
        digests = [None] * world
        dist.all_gather_object(digests, digest)
        assert len(set(digests)) == 1, digests

        # Ranks train on different batches (the data is sharded by the step seed).
        first = trainer.task.sample_batch(int(cfg.trainer.batch_size),
                                          torch.Generator().manual_seed(step_seed(0, 0, rank))).x0
        batches = [torch.empty_like(first) for _ in range(world)]
        dist.all_gather(batches, first)
        assert not torch.equal(batches[0], batches[1]), "both ranks drew the same batch"

        if rank == 0:  # the checkpoint rank 0 wrote holds the weights every rank has
            tensors, meta = load_checkpoint(result.checkpoint)
            assert meta["step"] == result.step
            for key, value in trainer.net.state_dict().items():
                assert torch.equal(tensors["model." + key], value), key
        reports.append({"rank": rank, "step": result.step, "digest": digest})
        return result

    Trainer.fit = fit_and_check
    # train() drops the DDP wrapper and destroys the process group before it returns.
    code = cli.main(sys.argv[2:])
    if code == 0:
        print(json.dumps(reports[0]), flush=True)
    sys.exit(code)
    '''
)


def _helper(tmp_path: Path) -> Path:
    path = tmp_path / "ddp_helper.py"
    path.write_text(HELPER)
    return path


def test_ddp_train_two_processes_agree_and_write_one_run(tmp_path: Path) -> None:
    """`sci-diffusion train trainer.distributed=true` under torchrun: the ranks end with the
    same weights after training on different batches, and only rank 0 writes the run."""
    job = tmp_path / "job"  # the working directory: nothing but the run may appear in it
    job.mkdir()
    run_dir = job / "run"
    out = torchrun([str(_helper(tmp_path)), "agree", "train", "task=toy2d",
                    "trainer.distributed=true", "trainer.max_steps=20", *SMALL,
                    f"hydra.run.dir={run_dir}"],
                   job, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    assert "Traceback" not in out.stderr
    # Both ranks share stdout, so their lines can interleave: pick out each JSON object.
    reports = [json.loads(obj) for obj in re.findall(r"\{[^{}]*\}", out.stdout)]
    assert sorted(r["rank"] for r in reports) == [0, 1]
    assert {r["step"] for r in reports} == {20}
    assert len({r["digest"] for r in reports}) == 1

    assert sorted(p.name for p in job.iterdir()) == ["run"]
    names = [p.name for p in list_checkpoints(run_dir / "checkpoints")]
    assert names == ["step_00000010.safetensors", "step_00000020.safetensors"]
    assert not [p for p in (run_dir / "checkpoints").iterdir() if p.name.startswith(".tmp-")]
    log = [json.loads(ln) for ln in (run_dir / "train_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == list(range(1, 21)), "only rank 0 may log"
    assert len(list((run_dir / "tb").glob("events.out.tfevents.*"))) == 1
    meta = load_checkpoint(run_dir / "checkpoints" / names[-1])[1]
    assert meta["step"] == 20
    card = json.loads((run_dir / "card.json").read_text())
    assert card["training"]["processes"] == 2
    assert card["training"]["steps"] == 20


def test_ddp_nan_on_one_rank_stops_every_rank(tmp_path: Path) -> None:
    """A NaN loss seen by one rank must stop all ranks (exit != 0), not hang the job: the
    trainer averages the loss over ranks before its NaN guard, so every rank sees it."""
    out = torchrun([str(_helper(tmp_path)), "nan-on-rank-1", str(tmp_path / "run"),
                    "trainer.distributed=true", "trainer.max_steps=20", *SMALL],
                   tmp_path, timeout=120)  # fmt: skip
    assert out.returncode != 0
    assert "rank 0 diverged" in out.stdout and "rank 1 diverged" in out.stdout, out.stdout
    assert "at step 5" in out.stdout


def test_distributed_without_torchrun_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    code = cli.main(["train", "trainer.distributed=true", "trainer.max_steps=2",
                     "trainer.progress=false"])  # fmt: skip
    out = capfd.readouterr()
    assert code == 2
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "torchrun" in lines[0]
    assert "Traceback" not in out.err
    assert list(tmp_path.iterdir()) == []


def test_sharded_sampling_merges_disjoint_shares(tmp_path: Path) -> None:
    """`sample` under torchrun: two ranks draw 201 samples between them from disjoint seed
    streams; rank 0 alone writes the merged result."""
    run_dir = tmp_path / "run"
    cfg, _ = compose(["task=toy2d", "trainer.max_steps=10", *SMALL])
    assert train(cfg, run_dir).step == 10
    out_dir = tmp_path / "samples"
    out = torchrun(["-m", "sci_diffusion", "sample", f"run={run_dir}", f"out={out_dir}", "n=201",
                    "steps=5", "trainer.distributed=true", "task.eval.n_samples=201"],
                   tmp_path, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    assert out.stdout.count("samples written to") == 1  # rank 0 only
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert metrics["n_samples"] == 201 and metrics["sampling_ranks"] == 2
    tensors, _ = load_checkpoint(out_dir / "samples.safetensors")
    samples = tensors["samples"]
    assert samples.shape == (201, 2)
    assert torch.unique(samples, dim=0).shape[0] == 201  # no rank repeated another's draws
