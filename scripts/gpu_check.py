"""GPU checks, run on a lent CUDA machine (see docs/benchmarks.md):

1. every sampler on CUDA with the exact GMM denoiser, against the CPU noise-floor threshold;
2. no host-device sync inside sampler loops (torch.cuda.set_sync_debug_mode("error"));
3. toy2d training: CUDA bf16 vs CPU (2 threads) it/s on the same machine, then evaluation;
4. sampler speed, ours vs diffusers, on CUDA (batch 1 and 256);
5. DDP through torchrun with the nccl backend (1 process);
6. the whole DDIM-10 loop captured as a CUDA graph (batch 1): eager vs captured vs NFE x one
   captured forward, and diffusers' DDIMScheduler loop on the same network when installed
   (``sci_diffusion.bench.capture``; alone: ``python -m sci_diffusion.bench.capture OUT``).

Usage: python scripts/gpu_check.py OUT_DIR [RUNS_DIR]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from sci_diffusion.core import CosineSchedule, EuclideanSpace, KarrasSchedule, get_sampler
from sci_diffusion.core.metrics import noise_floor, sliced_wasserstein

out = Path(sys.argv[1])  # small JSON results (come back from the device machine)
runs = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("/tmp/gpu_runs")  # run directories
out.mkdir(parents=True, exist_ok=True)
report: dict = {"torch": torch.__version__, "cuda": torch.cuda.is_available()}
report["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
print(report, flush=True)
dev = torch.device("cuda")


def save() -> None:
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2, default=str))


# 1 + 2: samplers on CUDA ------------------------------------------------------------------
from sci_diffusion.bench.sampler import gaussian_mixture  # noqa: E402

gmm = gaussian_mixture()
n = 8000
threshold = 1.5 * noise_floor(gmm.sample, n)
cases = [
    (name, CosineSchedule())
    for name in (
        "ddpm",
        "ddim",
        "dpm_solver_pp_2m",
        "euler",
        "heun",
        "flow_euler",
        "flow_heun",
        "euler_maruyama",
    )
] + [("heun", KarrasSchedule())]
records = []
for name, schedule in cases:
    space = EuclideanSpace(schedule)
    exact = gmm.denoiser(schedule)
    steps = 100 if name in ("heun", "flow_heun", "dpm_solver_pp_2m") else 200
    g = torch.Generator(device=dev).manual_seed(0)
    x = space.prior((n, 2), generator=g, device=dev)
    times = schedule.time_grid(steps, device=dev)

    def denoise(x, t, exact=exact):
        return exact(x, t).float()

    sample_out = get_sampler(name)(denoise, x, times, space=space, generator=g)
    reference = gmm.sample(n, torch.Generator().manual_seed(99))
    distance = sliced_wasserstein(sample_out.double().cpu(), reference)
    # sync check: the loop with input checks off must not sync with the host
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    sync_free = True
    try:
        get_sampler(name)(
            lambda x, t: x * 0.5, x, times, space=space, generator=g, check_inputs=False
        )
    except RuntimeError as err:
        sync_free = f"sync: {err}"
    finally:
        torch.cuda.set_sync_debug_mode("default")
    records.append(
        {
            "sampler": name,
            "schedule": schedule.name,
            "steps": steps,
            "distance": distance,
            "threshold": threshold,
            "passes": distance < threshold,
            "sync_free_loop": sync_free,
        }
    )
    print(records[-1], flush=True)
report["samplers_cuda"] = records
save()


# 3: toy2d training CUDA bf16 vs CPU -------------------------------------------------------
def run(cmd: list[str], env: dict | None = None) -> tuple[int, str, float]:
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    return proc.returncode, (proc.stdout + proc.stderr)[-3000:], time.monotonic() - start


def train_rate(run_dir: Path) -> tuple[float, float]:
    logs = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    card = json.loads((run_dir / "card.json").read_text())
    return card["training"]["steps"] / card["training"]["wall_time_s"], logs[-1]["loss"]


cli = [sys.executable, "-m", "sci_diffusion"]
# GPU_CHECK_TOY2D_STEPS shortens this part when device time is scarce (the CPU leg runs a fifth).
cuda_steps = int(os.environ.get("GPU_CHECK_TOY2D_STEPS", "3000"))
cpu_steps = max(50, cuda_steps // 5)
training = {}
for label, extra, env_threads in (
    ("cuda_bf16", ["trainer.device=cuda", f"trainer.max_steps={cuda_steps}"], None),
    (
        "cuda_fp32",
        ["trainer.device=cuda", "trainer.precision=fp32", f"trainer.max_steps={cuda_steps}"],
        None,
    ),
    ("cpu_2threads", ["trainer.device=cpu", f"trainer.max_steps={cpu_steps}"], "2"),
):
    env = dict(os.environ)
    if env_threads:
        env["OMP_NUM_THREADS"] = env_threads
    run_dir = runs / f"run_{label}"
    rc, log, wall = run(
        [*cli, "train", "task=toy2d", "trainer.progress=false", f"hydra.run.dir={run_dir}", *extra],
        env,
    )
    rate, loss = train_rate(run_dir) if rc == 0 else (None, None)
    training[label] = {
        "rc": rc,
        "it_per_s": rate,
        "last_logged_loss": loss,
        "wall_s": wall,
        "tail": log[-400:],
    }
    print(label, training[label], flush=True)
rc, log, _ = run(
    [*cli, "eval", f"run={runs / 'run_cuda_bf16'}", "sampler=dpm_solver_pp_2m", "steps=20"]
)
training["eval_cuda_bf16_dpm20"] = {"rc": rc, "tail": log[-1500:]}
report["training"] = training
save()

# 4: sampler speed on CUDA -----------------------------------------------------------------
from sci_diffusion.bench.sampler import speed_records  # noqa: E402

try:
    report["speed_cuda"] = speed_records(device="cuda")
except Exception as err:  # keep the other results
    report["speed_cuda"] = f"failed: {err!r}"
print(report["speed_cuda"], flush=True)
save()

# 5: DDP with nccl, one process --------------------------------------------------------------
rc, log, wall = run(
    [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=1",
        "-m",
        "sci_diffusion",
        "train",
        "task=toy2d",
        "trainer.distributed=true",
        "trainer.max_steps=200",
        "trainer.progress=false",
        f"hydra.run.dir={runs / 'run_ddp'}",
    ]
)
report["ddp_nccl"] = {"rc": rc, "wall_s": wall, "tail": log[-800:]}
print(report["ddp_nccl"], flush=True)
save()

# 6: the captured sampling loop (CUDA graph) vs eager vs NFE x one captured forward ---------
from sci_diffusion.bench.capture import capture_records  # noqa: E402
from sci_diffusion.bench.capture import table as capture_table  # noqa: E402

try:
    report["capture_cuda"] = capture_records(device="cuda")
    print(capture_table(report["capture_cuda"]), flush=True)
except Exception as err:  # keep the other results
    report["capture_cuda"] = f"failed: {err!r}"
    print(report["capture_cuda"], flush=True)
save()
