"""Every sampler, driven by an exact denoiser, reproduces the true distribution.

No training is involved: for Gaussian mixtures ``E[x_0 | x_t]`` is closed-form, and for a small
categorical joint ``p(x_0^d | x_t)`` is exact by enumeration. A sampler passes when the
distance between its samples and an independent true sample is below a threshold derived from
the noise floor: ``THRESHOLD_FACTOR`` x the 95th percentile of the same distance between two
independent true samples of the same size (20 seeded replicates). The factor 1.5 leaves room
for a discretisation bias of half the floor at the step counts used; a broken sampler lands far
above it, which ``test_threshold_has_power`` demonstrates with a mildly perturbed mixture.
"""

from __future__ import annotations

import pytest
import torch

from sci_diffusion.core import (
    CategoricalJoint,
    CategoricalSpace,
    CoMFreeSpace,
    CosineSchedule,
    EuclideanSpace,
    GaussianMixture,
    KarrasSchedule,
    LinearSchedule,
    ProductSpace,
    RectifiedFlowSchedule,
    function_evaluations,
    sample,
)
from sci_diffusion.core.metrics import noise_floor, sliced_wasserstein

N = 8000
THRESHOLD_FACTOR = 1.5
FIRST_ORDER_STEPS = 200
SECOND_ORDER_STEPS = 100
SECOND_ORDER = {"heun", "flow_heun", "dpm_solver_pp_2m"}

GMM_2D = GaussianMixture(
    torch.tensor([[-2.0, 0.0], [2.0, 1.0], [0.0, -2.5]]),
    torch.tensor([0.3, 0.5, 0.4]),
    torch.tensor([0.5, 0.3, 0.2]),
)
_line = torch.linspace(0.0, 1.0, 8)[:, None]
GMM_TRAJ = GaussianMixture(  # two modes: go up-right or down-right, (T=8, D=2)
    torch.stack([torch.cat([_line * 3, _line * 2], -1), torch.cat([_line * 3, -_line * 2], -1)]),
    torch.tensor([0.2, 0.2]),
)

# (sampler, schedule) pairs: every sampler on the cosine schedule, plus the schedules each
# sampler family is typically paired with.
CASES = [(name, CosineSchedule()) for name in (
    "ddpm", "ddim", "dpm_solver_pp_2m", "euler", "heun", "flow_euler", "flow_heun",
    "euler_maruyama",
)] + [
    ("heun", KarrasSchedule()),
    ("dpm_solver_pp_2m", KarrasSchedule()),
    ("flow_euler", RectifiedFlowSchedule()),
    ("flow_heun", RectifiedFlowSchedule()),
    ("ddim", RectifiedFlowSchedule()),
    ("ddpm", LinearSchedule()),
    ("euler_maruyama", LinearSchedule()),
]  # fmt: skip


def _floor(draw) -> float:
    """95th percentile of the distance between two independent true samples of size N."""
    return noise_floor(draw, N, replicates=20, quantile=0.95, seed=1234)


@pytest.fixture(scope="module")
def threshold_2d() -> float:
    return THRESHOLD_FACTOR * _floor(GMM_2D.sample)


@pytest.fixture(scope="module")
def threshold_traj() -> float:
    return THRESHOLD_FACTOR * _floor(GMM_TRAJ.sample)


def _steps(name: str) -> int:
    return SECOND_ORDER_STEPS if name in SECOND_ORDER else FIRST_ORDER_STEPS


def _draw(gmm: GaussianMixture, name: str, schedule, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    space = EuclideanSpace(schedule)
    x = space.prior((N, *gmm.event_shape), generator=g, dtype=torch.float64)
    times = schedule.time_grid(_steps(name), dtype=torch.float64)
    return sample(name, gmm.denoiser(schedule), x, times, space=space, generator=g)


@pytest.mark.parametrize(("name", "schedule"), CASES, ids=lambda v: getattr(v, "name", v))
def test_gmm_2d(name: str, schedule, threshold_2d: float) -> None:
    out = _draw(GMM_2D, name, schedule, seed=0)
    reference = GMM_2D.sample(N, torch.Generator().manual_seed(99))
    assert sliced_wasserstein(out, reference) < threshold_2d


@pytest.mark.parametrize("name", ["ddpm", "ddim", "dpm_solver_pp_2m", "heun", "flow_heun"])
def test_gmm_trajectory(name: str, threshold_traj: float) -> None:
    out = _draw(GMM_TRAJ, name, CosineSchedule(), seed=1)
    reference = GMM_TRAJ.sample(N, torch.Generator().manual_seed(98))
    assert out.shape == (N, 8, 2)
    assert sliced_wasserstein(out, reference) < threshold_traj


def test_threshold_has_power(threshold_2d: float) -> None:
    """A mixture with means moved by 0.25 and weights changed is rejected."""
    shifted = GaussianMixture(GMM_2D.means.float() + 0.25, GMM_2D.stds.float(), torch.tensor(
        [0.4, 0.4, 0.2]))  # fmt: skip
    g = torch.Generator().manual_seed(5)
    assert sliced_wasserstein(shifted.sample(N, g), GMM_2D.sample(N, g)) > threshold_2d


def test_per_sample_times(threshold_2d: float) -> None:
    """Half the batch starts from pure noise at t=1, half from forward-noised data at t=0.4;
    per-sample grids (N+1, B) bring both halves to the data distribution."""
    schedule = CosineSchedule()
    space = EuclideanSpace(schedule)
    g = torch.Generator().manual_seed(3)
    half = N // 2
    start = torch.cat([torch.ones(half), torch.full((N - half,), 0.4)]).double()
    steps = 100
    fractions = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)[:, None]
    times = fractions * start[None]  # (steps+1, B)
    x_noise = space.prior((half, 2), generator=g, dtype=torch.float64)
    x_mid = space.add_noise(
        GMM_2D.sample(N - half, g), start[half:], torch.randn(N - half, 2, generator=g).double()
    )
    x = torch.cat([x_noise, x_mid])
    out = sample("dpm_solver_pp_2m", GMM_2D.denoiser(schedule), x, times, space=space)
    reference = GMM_2D.sample(N, torch.Generator().manual_seed(97))
    assert sliced_wasserstein(out[half:], reference[:half]) < threshold_2d * 1.5
    assert sliced_wasserstein(out, reference) < threshold_2d


def test_no_host_sync_in_loop() -> None:
    """On the meta device any read of a tensor value raises; with the one-time input checks
    switched off, every sampler's loop must run there, so it never syncs with the device."""
    schedule = CosineSchedule()
    space = EuclideanSpace(schedule)
    x = torch.empty(4, 2, device="meta")
    times = torch.empty(6, device="meta")
    for name in ("ddpm", "ddim", "dpm_solver_pp_2m", "euler", "heun", "flow_euler",
                 "flow_heun", "euler_maruyama"):  # fmt: skip
        out = sample(name, lambda x, t: x * 0.5, x, times, space=space, check_inputs=False)
        assert out.device.type == "meta"
    cat = CategoricalSpace(3, schedule, "uniform")
    probs = torch.empty(4, 2, 3, device="meta")
    sample("ddpm", lambda x, t: probs, torch.empty(4, 2, 3, device="meta"), times, space=cat,
           check_inputs=False)  # fmt: skip


def test_euler_with_churn(threshold_2d: float) -> None:
    schedule = KarrasSchedule()
    space = EuclideanSpace(schedule)
    g = torch.Generator().manual_seed(4)
    x = space.prior((N, 2), generator=g, dtype=torch.float64)
    out = sample("heun", GMM_2D.denoiser(schedule), x, schedule.time_grid(64, dtype=torch.float64),
                 space=space, generator=g, churn=20.0, s_tmin=0.05, s_tmax=50.0)  # fmt: skip
    reference = GMM_2D.sample(N, torch.Generator().manual_seed(96))
    assert sliced_wasserstein(out, reference) < threshold_2d
    assert function_evaluations("heun", 64) == 127


# -- zero-centre-of-mass point structures --------------------------------------------------

N_ATOMS, N_PAD = 4, 6


def _point_mixture() -> GaussianMixture:
    tetrahedron = torch.tensor([[1.0, 1, 1], [-1, -1, 1], [-1, 1, -1], [1, -1, -1]])
    square = torch.tensor([[1.5, 0, 0], [0, 1.5, 0], [-1.5, 0, 0], [0, -1.5, 0]])
    return GaussianMixture(
        torch.stack([tetrahedron, square]),
        torch.tensor([0.15, 0.15]),
        torch.tensor([0.6, 0.4]),
        projection=CoMFreeSpace(CosineSchedule()).project,
        dof=(N_ATOMS - 1) * 3,
    )


@pytest.fixture(scope="module")
def threshold_points() -> float:
    return THRESHOLD_FACTOR * _floor(_point_mixture().sample)


@pytest.mark.parametrize("name", ["ddpm", "dpm_solver_pp_2m", "heun"])
def test_com_free_points_with_padding(name: str, threshold_points: float) -> None:
    """Samples on a padded (B, 6, 3) batch with 4 valid atoms: zero centre of mass over valid
    atoms, padding exactly zero, and the valid block distributed like the true structures."""
    mixture = _point_mixture()
    schedule = CosineSchedule()
    space = CoMFreeSpace(schedule)
    mask = torch.zeros(N, N_PAD, dtype=torch.bool)
    mask[:, :N_ATOMS] = True
    exact = mixture.denoiser(schedule)

    def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(x)
        out[:, :N_ATOMS] = exact(x[:, :N_ATOMS], t)
        return out

    g = torch.Generator().manual_seed(6)
    x = space.prior((N, N_PAD, 3), mask, generator=g, dtype=torch.float64)
    out = sample(name, denoise, x, schedule.time_grid(_steps(name), dtype=torch.float64),
                 space=space, mask=mask, generator=g)  # fmt: skip
    assert torch.equal(out[:, N_ATOMS:], torch.zeros_like(out[:, N_ATOMS:]))
    assert out[:, :N_ATOMS].mean(1).abs().max() < 1e-9
    reference = mixture.sample(N, torch.Generator().manual_seed(95))
    assert sliced_wasserstein(out[:, :N_ATOMS], reference) < threshold_points


# -- categorical ---------------------------------------------------------------------------

CAT_N = 20000


def _joint(num_classes: int) -> CategoricalJoint:
    g = torch.Generator().manual_seed(0)
    table = torch.rand(4, 4, 4, generator=g) ** 3
    table[0, 0, :] += 0.5  # correlations: the first two variables like to agree on class 0
    table[:, 1, 1] += 0.3
    full = torch.zeros((num_classes,) * 3)
    full[:4, :4, :4] = table  # the absorbing class (if any) never occurs in the data
    return CategoricalJoint(full)


def _tv(p: torch.Tensor, q: torch.Tensor) -> float:
    return 0.5 * float((p - q).abs().sum())


@pytest.mark.parametrize("transition", ["uniform", "marginal", "absorbing"])
def test_categorical_joint(transition: str) -> None:
    """Total variation between sampled and true joint over 64 states, threshold 1.5 x the
    95th percentile of the empirical-vs-true TV of true samples of the same size."""
    k = 5 if transition == "absorbing" else 4
    joint = _joint(k)
    marginals = torch.tensor([0.4, 0.3, 0.2, 0.1]) if transition == "marginal" else None
    space = CategoricalSpace(k, CosineSchedule(), transition, marginals=marginals)
    g = torch.Generator().manual_seed(7)
    floors = torch.tensor(
        [_tv(joint.histogram(joint.sample(CAT_N, g)), joint.state_probs) for _ in range(20)]
    )
    threshold = THRESHOLD_FACTOR * float(floors.quantile(0.95))
    x = space.prior((CAT_N, 3, k), generator=g)
    out = sample("categorical", joint.denoiser(space), x, space.schedule.time_grid(200),
                 space=space, generator=g)  # fmt: skip
    assert _tv(joint.histogram(out), joint.state_probs) < threshold


def test_product_space_samples_jointly() -> None:
    """A class c in {0, 1} and a position x | c ~ N(mu_c, 0.3^2): sampling the product with the
    exact joint denoiser keeps the coupling (x's sign follows c) and both marginals."""
    mu = torch.tensor([-2.0, 2.0], dtype=torch.float64)
    prior_c = torch.tensor([0.3, 0.7], dtype=torch.float64)
    s0 = 0.3
    pos_schedule, cat_schedule = CosineSchedule(), LinearSchedule()
    space = ProductSpace({
        "pos": EuclideanSpace(pos_schedule),
        "cls": CategoricalSpace(2, cat_schedule, "uniform"),
    })  # fmt: skip

    def denoise(state: dict, t: torch.Tensor) -> dict:
        x, c = state["pos"].double()[:, 0], state["cls"].double()
        alpha, sigma = pos_schedule.alpha_sigma(t.double())
        var = alpha**2 * s0**2 + sigma**2
        log_px = -0.5 * (x[:, None] - alpha * mu[None]) ** 2 / var
        a = space["cls"].keep_probability(t.double())
        log_pc = torch.log(a * c + (1 - a) * 0.5)  # q(c_t | c_0 = k) for each k
        post = torch.softmax(torch.log(prior_c)[None] + log_px + log_pc, -1)  # (B, 2)
        gain = alpha * s0**2 / var
        x0 = (post * (mu[None] + gain * (x[:, None] - alpha * mu[None]))).sum(-1, keepdim=True)
        return {"pos": x0, "cls": post.float()}

    g = torch.Generator().manual_seed(8)
    x = {
        "pos": space["pos"].prior((N, 1), generator=g, dtype=torch.float64),
        "cls": space["cls"].prior((N, 2), generator=g),
    }
    out = sample("dpm_solver_pp_2m", denoise, x, pos_schedule.time_grid(100), space=space,
                 generator=g)  # fmt: skip
    cls = out["cls"].argmax(-1)
    agree = ((out["pos"][:, 0] > 0).long() == cls).double().mean()
    assert agree > 0.995  # modes 4 std apart: mislabelled samples are ~3e-5 under the truth
    # Binomial noise on the class frequency: std sqrt(0.21 / 8000) ~ 0.005; allow 4 std.
    assert abs(cls.double().mean() - 0.7) < 0.02
