"""Conditioning on a known part that the rest follows (issue 14, item 3).

The test problem has a closed-form posterior: a mixture of 4 Gaussian trajectories (T = 8
points in 2-D, std 0.15) whose first point's x is +-1 and last point's x is +-1 (one mode per
combination) and whose middle bulges by +-1.5 sin(pi tau), with the sign the product of the
two. Known entries: the first and last points of a draw from a random mode; the exact
posterior puts probability 1.0 (to float64) on that mode. The exact denoiser is
``GaussianMixture.denoiser``, so every miss is the method's. A sample "picks" the mode whose
mean is nearest in the free (middle) coordinates.

Measured (seeded, n = 2000, cosine schedule; docs/core.md has the table):
plain replacement 47% (ddpm, 50 steps; 44% ddim), RePaint resampling alone 60% (r = 10),
reconstruction guidance at scale 4 98.6% (ddpm, 50 steps), 95.8% (ddim), with resample = 5
99.75%. Chance is 25%.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from sci_diffusion.core import (
    CategoricalSpace,
    CoMFreeSpace,
    CosineSchedule,
    EuclideanSpace,
    GaussianMixture,
    Inpainting,
    ProductSpace,
    function_evaluations,
    gradient_guidance,
    reconstruction_guidance,
    sample,
)

T, STD = 8, 0.15
_tau = torch.linspace(0, 1, T, dtype=torch.float64)
MEANS = torch.stack(
    [
        torch.stack([b * (1 - _tau) + c * _tau, 1.5 * b * c * torch.sin(math.pi * _tau)], -1)
        for b in (-1.0, 1.0)
        for c in (-1.0, 1.0)
    ]
)
MIXTURE = GaussianMixture(MEANS, torch.full((4,), STD))
SCHEDULE = CosineSchedule()
SPACE = EuclideanSpace(SCHEDULE)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _problem(n: int, seed: int):
    g = _gen(seed)
    mode = torch.randint(4, (n,), generator=g)
    x0 = MEANS[mode] + STD * torch.randn(n, T, 2, generator=g, dtype=torch.float64)
    known_mask = torch.zeros(n, T, 2, dtype=torch.bool)
    known_mask[:, 0] = known_mask[:, -1] = True
    return mode, torch.where(known_mask, x0, torch.zeros_like(x0)), known_mask


def _picked(out: torch.Tensor) -> torch.Tensor:
    distance = ((out[:, None, 1:-1] - MEANS[None, :, 1:-1]) ** 2).sum((-1, -2))
    return distance.argmin(1)


def _run(n: int, name: str = "ddpm", steps: int = 50, **kwargs):
    mode, known, known_mask = _problem(n, 1)
    inpaint = Inpainting(known, known_mask, SCHEDULE, generator=_gen(2))
    x = SPACE.prior((n, T, 2), generator=_gen(3), dtype=torch.float64)
    with torch.no_grad():
        out = inpaint.sample(name, MIXTURE.denoiser(SCHEDULE), x,
                             SCHEDULE.time_grid(steps, dtype=torch.float64), space=SPACE,
                             generator=_gen(4), **kwargs)  # fmt: skip
    return out, mode, known, known_mask


def _binomial_upper_tail(successes: int, n: int, p: float) -> float:
    """P(X >= successes) for X ~ Binomial(n, p), exactly (log-space terms)."""
    logs = [
        math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
        + k * math.log(p) + (n - k) * math.log1p(-p)
        for k in range(successes, n + 1)
    ]  # fmt: skip
    top = max(logs)
    return math.exp(top) * sum(math.exp(v - top) for v in logs)


def test_exact_posterior_pins_one_mode():
    mode, known, known_mask = _problem(2000, 1)
    log_lik = -0.5 * (((known[:, None] - MEANS[None]) ** 2) * known_mask[:, None]).sum((-1, -2))
    posterior = torch.softmax(log_lik / STD**2, dim=1)
    assert float(posterior[torch.arange(2000), mode].min()) > 1 - 1e-12


def test_recommended_method_picks_the_implied_mode():
    """Reconstruction guidance at scale 4 with the stochastic ``ddpm`` sampler, 50 steps.

    n = 2000 seeded samples; measured 98.6%. Claim: the rate exceeds 95%. If the true rate
    were only 95%, observing this many successes would have probability < 1e-6 (exact
    one-sided binomial tail), so the test demonstrates the >= 95% requirement rather than
    passing by luck at a 95% method (which would pass a bare ``rate >= 0.95`` half the time).
    Plain replacement on the same problem and seeds: 47% (asserted below 60%: its binomial
    standard error is 1.1%). Fixed entries are bitwise the given values."""
    n = 2000
    out, mode, known, known_mask = _run(n, guidance=4.0)
    hits = int((_picked(out) == mode).sum())
    assert hits / n >= 0.95, f"guided: {hits / n:.4f}"
    assert _binomial_upper_tail(hits, n, 0.95) < 1e-6
    assert torch.equal(out[known_mask], known[known_mask])
    plain, *_ = _run(n)
    assert float((_picked(plain) == mode).double().mean()) < 0.6
    assert torch.equal(plain[known_mask], known[known_mask])


@pytest.mark.parametrize(
    ("name", "kwargs", "lowest"),
    [
        ("ddim", {"guidance": 4.0}, 0.93),  # measured 95.8% (n = 2000)
        ("ddpm", {"guidance": 4.0, "resample": 5}, 0.97),  # measured 99.75%
        ("ddpm", {"resample": 10}, 0.53),  # measured 60.0%: resampling alone helps little
    ],
)
def test_other_methods_rates(name, kwargs, lowest):
    """Each bound sits >= 3 binomial standard errors (n = 400: <= 2.5%) below the rate
    measured at n = 2000 on other seeds; fixed entries stay bitwise."""
    out, mode, known, known_mask = _run(400, name, **kwargs)
    rate = float((_picked(out) == mode).double().mean())
    assert rate >= lowest, f"{name} {kwargs}: {rate:.4f}"
    assert torch.equal(out[known_mask], known[known_mask])


def test_resample_costs_what_function_evaluations_says_and_runs_on_products():
    calls = []
    schedule = SCHEDULE
    space = ProductSpace({"pos": CoMFreeSpace(schedule), "atoms": CategoricalSpace(3, schedule)})
    mask = torch.tensor([[True] * 4 + [False] * 2] * 3)
    x = space.prior({"pos": (3, 6, 3), "atoms": (3, 6, 3)}, {"pos": mask, "atoms": mask},
                    generator=_gen(0))  # fmt: skip

    def denoise(x, t):
        calls.append(t)
        return {"pos": 0.5 * x["pos"], "atoms": torch.full_like(x["atoms"], 1 / 3)}

    masks = {"pos": mask, "atoms": mask}
    out = sample("ddpm", denoise, x, schedule.time_grid(5), space=space, mask=masks,
                 resample=3, generator=_gen(1))  # fmt: skip
    assert len(calls) == function_evaluations("ddpm", 5, resample=3) == 20
    assert torch.equal(out["pos"][~mask], torch.zeros_like(out["pos"][~mask]))
    assert torch.equal(out["atoms"][~mask], torch.zeros_like(out["atoms"][~mask]))
    assert torch.equal(out["atoms"][mask].sum(-1), torch.ones(int(mask.sum())))
    with pytest.raises(ValueError, match="resample must be an int >= 0"):
        sample("ddpm", denoise, x, schedule.time_grid(5), space=space, resample=-1)


# -- stability ----------------------------------------------------------------------------------


def test_reconstruction_guidance_stays_in_range_with_a_sharp_denoiser():
    """A near-degenerate mixture (std 1e-4) in float32 has a Jacobian up to ~1e8 at low noise:
    the kind of denoiser with which gradient guidance's ``sigma^2/alpha`` factor diverged.
    The normalized step stays within the data's range (|x| < 2.5 for means in [-1.5, 1.5])
    at scales up to 8."""
    sharp = GaussianMixture(MEANS.float(), torch.full((4,), 1e-4))
    _, known, known_mask = _problem(200, 5)
    known = known.float()
    inpaint = Inpainting(known, known_mask, SCHEDULE, generator=_gen(6))
    for scale in (1.0, 8.0):
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # skipped steps are allowed here
            out = inpaint.sample("ddpm", sharp.denoiser(SCHEDULE),
                                 SPACE.prior((200, T, 2), generator=_gen(7)),
                                 SCHEDULE.time_grid(50), space=SPACE, guidance=scale,
                                 generator=_gen(8))  # fmt: skip
        assert torch.isfinite(out).all() and float(out.abs().max()) < 2.5, scale
        assert torch.equal(out[known_mask], known[known_mask])


def _nan_gradient_denoise(x, t):
    """0.5 x plus sqrt(|x|): its gradient is infinite where an entry is exactly 0."""
    return 0.5 * x + 0.1 * x.abs().sqrt()


def test_non_finite_step_is_skipped_with_advice():
    x = torch.randn(4, T, 2, generator=_gen(9))
    x[1, 3, 0] = 0.0  # sample 1's Jacobian is infinite there
    _, known, known_mask = _problem(4, 10)
    guided = reconstruction_guidance(_nan_gradient_denoise, known.float(), known_mask, 1.0)
    t = torch.tensor(0.5)
    with pytest.warns(RuntimeWarning, match=r"1 of 4 samples.*skipped.*lower `scale`"):
        out = guided(x, t)
    plain = _nan_gradient_denoise(x, t)
    assert torch.isfinite(out).all()
    assert torch.equal(out[1], plain[1])  # that sample's step was skipped
    assert not torch.equal(out[0], plain[0])  # the others were guided
    with pytest.warns(RuntimeWarning, match="gradient_guidance.*1 of 4"):
        out = gradient_guidance(_nan_gradient_denoise, lambda x0, t: -(x0**2).sum((1, 2)),
                                SCHEDULE, 1.0)(x, t)  # fmt: skip
    assert torch.isfinite(out).all() and torch.equal(out[1], plain[1])


def test_max_norm_clips_both_guidances():
    x = torch.randn(4, T, 2, generator=_gen(11))
    _, known, known_mask = _problem(4, 12)
    t = torch.tensor(0.9)
    plain = _nan_gradient_denoise(x.abs() + 0.1, t)
    for guided in (
        reconstruction_guidance(_nan_gradient_denoise, known.float(), known_mask, 50.0,
                                max_norm=0.25),
        gradient_guidance(_nan_gradient_denoise, lambda x0, t: -1e4 * (x0**2).sum((1, 2)),
                          SCHEDULE, 1.0, max_norm=0.25),
    ):  # fmt: skip
        step = guided(x.abs() + 0.1, t) - plain
        norms = step.reshape(4, -1).norm(dim=1)
        assert float(norms.max()) <= 0.25 * (1 + 1e-5) and float(norms.min()) > 0.2
    with pytest.raises(ValueError, match="max_norm must be > 0"):
        reconstruction_guidance(_nan_gradient_denoise, known, known_mask, max_norm=0.0)
