"""Your own MLP on a 2-D Gaussian mixture: train, sample, measure.

The whole pipeline with the denoising core and a network you write yourself:

1. data: 8 Gaussians on a ring (``GaussianMixture`` also gives exact samples to compare with);
2. a plain ``nn.Module`` ``net(x, t) -> output`` (here it predicts ``v``);
3. ``Denoiser`` + ``DiffusionObjective`` for training, ``EMA`` for the weights you sample with;
4. ``sample("dpm_solver_pp_2m", ...)`` in 20 steps;
5. the sliced Wasserstein distance to an exact sample of the same size, next to the distance
   two exact samples reach by chance (the noise floor), and the share of samples on a mode.

Run:  python examples/mixture_2d.py            (4000 steps, ~1-2 min on one CPU core)
      python examples/mixture_2d.py --small    (a few seconds; what the test suite runs)
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from torch import Tensor, nn

from sci_diffusion.core import (
    EMA,
    CosineSchedule,
    Denoiser,
    DiffusionObjective,
    EuclideanSpace,
    GaussianMixture,
    sample,
)
from sci_diffusion.core.metrics import noise_floor, sliced_wasserstein


class TimeMLP(nn.Module):
    """Your network: an MLP on ``[x, Fourier features of t]``; same shape out as in."""

    def __init__(self, dim: int = 2, width: int = 128, depth: int = 3, freqs: int = 16) -> None:
        super().__init__()
        self.register_buffer("freqs", torch.exp(torch.linspace(0.0, math.log(1000.0), freqs)))
        layers: list[nn.Module] = [nn.Linear(dim + 2 * freqs, width), nn.SiLU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(width, width), nn.SiLU()]
        self.body = nn.Sequential(*layers, nn.Linear(width, dim))

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        angles = t[:, None] * self.freqs[None]  # t arrives as (B,) in [0, 1]
        return self.body(torch.cat([x, angles.sin(), angles.cos()], dim=-1))


def ring_mixture(modes: int = 8, radius: float = 2.0, std: float = 0.1) -> GaussianMixture:
    angles = torch.arange(modes) * 2 * math.pi / modes
    means = radius * torch.stack([angles.cos(), angles.sin()], dim=-1)
    return GaussianMixture(means, torch.full((modes,), std))


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="tiny run for tests (seconds)")
    parser.add_argument("--steps", type=int, default=None, help="training steps")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    steps = args.steps or (150 if args.small else 4000)
    n_eval = 1000 if args.small else 4000
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)

    data = ring_mixture()
    space = EuclideanSpace(CosineSchedule())
    net = TimeMLP(width=64 if args.small else 128)
    denoiser = Denoiser(net, space, prediction="v")
    objective = DiffusionObjective(denoiser, "uniform")
    ema = EMA(net, max_decay=0.999)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)

    start = time.perf_counter()
    for step in range(steps):
        x0 = data.sample(256, gen).float()
        loss = objective(x0, generator=gen).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        ema.update(net)
        if step % max(steps // 5, 1) == 0 or step == steps - 1:
            print(f"step {step:5d}  loss {loss.item():.4f}")
    train_s = time.perf_counter() - start

    sampler = Denoiser(ema.module.eval(), space, prediction="v")
    x = space.prior((n_eval, 2), generator=gen)
    with torch.no_grad():
        out = sample("dpm_solver_pp_2m", sampler, x, space.schedule.time_grid(20), space=space)
    exact = data.sample(n_eval, gen)
    distance = sliced_wasserstein(out.double(), exact)
    floor = noise_floor(data.sample, n_eval, replicates=10)
    nearest = torch.cdist(out.double(), data.means).min(dim=1).values
    on_mode = float((nearest < 3 * 0.1).double().mean())  # within 3 std of a mode's centre
    result = {
        "train_seconds": train_s,
        "sliced_wasserstein": distance,
        "noise_floor": floor,
        "on_mode_share": on_mode,
    }
    print(f"trained {steps} steps in {train_s:.1f} s; sampled {n_eval} points (DPM-Solver++ 20)")
    print(f"sliced Wasserstein to exact samples: {distance:.4f} (noise floor {floor:.4f})")
    print(f"share within 3 std of a mode: {on_mode:.3f} (exact samples: 0.989)")
    print("RESULT " + " ".join(f"{k}={v:.4g}" for k, v in result.items()))
    return result


if __name__ == "__main__":
    main()
