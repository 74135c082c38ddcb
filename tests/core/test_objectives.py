"""Training objectives: weightings, masked product-space losses, perfect networks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sci_diffusion.core import (
    PREDICTIONS,
    CategoricalSpace,
    CoMFreeSpace,
    CosineSchedule,
    Denoiser,
    DiffusionObjective,
    EuclideanSpace,
    KarrasSchedule,
    LinearSchedule,
    ProductSpace,
    RectifiedFlowSchedule,
    flow_matching_objective,
    loss_weight,
    make_schedule,
    sample_times,
    target,
)
from sci_diffusion.core.objectives import WEIGHTINGS

B, N, K = 4, 6, 5
N_VALID = torch.tensor([6, 4, 3, 2])
T = torch.linspace(0.02, 0.98, 49, dtype=torch.float64)
VP_AND_FLOW = ["cosine", "linear", "polynomial", "karras", "rectified_flow"]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", VP_AND_FLOW)
@pytest.mark.parametrize("gamma", [1.0, 5.0])
def test_min_snr_for_epsilon_is_min_snr_over_snr(name, gamma):
    schedule = make_schedule(name)
    alpha, sigma = schedule.alpha_sigma(T)
    snr = (alpha / sigma) ** 2
    weight = loss_weight("min_snr", "epsilon", T, schedule, min_snr_gamma=gamma)
    # Hang et al. (2023): epsilon-loss weight min(SNR, gamma) / SNR; closed forms, float64.
    torch.testing.assert_close(weight, snr.clamp_max(gamma) / snr, rtol=1e-12, atol=0)
    assert (weight <= 1 + 1e-12).all()


@pytest.mark.parametrize("name", VP_AND_FLOW)
def test_simple_weightings(name):
    schedule = make_schedule(name)
    ones = torch.ones_like(T)
    # SNR on x0 is exactly the plain epsilon MSE.
    torch.testing.assert_close(loss_weight("snr", "epsilon", T, schedule), ones, rtol=1e-12, atol=0)
    # uniform is 1 for every prediction, by definition.
    for prediction in PREDICTIONS:
        assert torch.equal(loss_weight("uniform", prediction, T, schedule), ones)
    # EDM's lambda cancels EDM's c_out^2 (Karras et al. 2022, eq. 8 and table 1); both sides
    # are ratios of the same float64 quantities, so only rounding separates them.
    torch.testing.assert_close(loss_weight("edm", "edm", T, schedule), ones, rtol=1e-9, atol=0)
    # x0 prediction carries the x0 weighting itself: SNR.
    alpha, sigma = schedule.alpha_sigma(T)
    torch.testing.assert_close(
        loss_weight("snr", "x0", T, schedule), (alpha / sigma) ** 2, rtol=1e-12, atol=0
    )


def test_min_snr_for_v_prediction_on_vp_is_min_snr_over_snr_plus_one():
    schedule = CosineSchedule()
    alpha, sigma = schedule.alpha_sigma(T)
    snr = (alpha / sigma) ** 2
    weight = loss_weight("min_snr", "v", T, schedule, min_snr_gamma=5.0)
    # Hang et al. (2023), v-prediction on a VP schedule: min(SNR, gamma) / (SNR + 1).
    torch.testing.assert_close(weight, snr.clamp_max(5.0) / (snr + 1), rtol=1e-9, atol=0)


def test_unknown_weighting_and_time_distribution_raise():
    schedule = LinearSchedule()
    with pytest.raises(ValueError, match="unknown weighting 'l1'") as info:
        loss_weight("l1", "epsilon", T, schedule)
    for name in WEIGHTINGS:
        assert name in str(info.value)
    denoiser = Denoiser(lambda x, t: x, schedule)
    with pytest.raises(ValueError, match="unknown weighting"):
        DiffusionObjective(denoiser, "l1")
    with pytest.raises(ValueError, match="unknown time distribution"):
        DiffusionObjective(denoiser, time_distribution="beta")


def test_sample_times_in_range():
    t = sample_times(10000, generator=_gen(0), t_min=1e-3)
    assert t.shape == (10000,) and (t >= 1e-3).all() and (t <= 1).all()
    t = sample_times(10000, schedule=KarrasSchedule(), distribution="lognormal", generator=_gen(1))
    assert (t >= 1e-5).all() and (t <= 1).all()
    with pytest.raises(ValueError, match="needs the schedule"):
        sample_times(4, distribution="lognormal")


# -- a molecule-like product space: CoM-free positions + atom types, with node masks ---------


class _TinyNet(nn.Module):
    """Per-node MLP that also mixes nodes through an *unmasked* mean: deliberately not
    padding-aware, so the objective alone must make padding irrelevant."""

    def __init__(self) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(3 + K + 1, 32), nn.SiLU(), nn.Linear(32, 3 + K))

    def forward(self, x, t):
        pos, atoms = x["pos"], x["atoms"]
        time = t[:, None, None].expand(pos.shape[0], pos.shape[1], 1).to(pos.dtype)
        h = torch.cat([pos, atoms, time], dim=-1)
        out = self.mlp(h) + self.mlp(h).mean(1, keepdim=True)
        return {"pos": out[..., :3], "atoms": out[..., 3:]}


def _space() -> ProductSpace:
    schedule = CosineSchedule()
    return ProductSpace({"pos": CoMFreeSpace(schedule), "atoms": CategoricalSpace(K, schedule)})


def _batch(seed: int = 0):
    g = _gen(seed)
    mask = torch.arange(N)[None] < N_VALID[:, None]
    pos = CoMFreeSpace(CosineSchedule()).project(torch.randn(B, N, 3, generator=g), mask)
    atoms = torch.eye(K)[torch.randint(K, (B, N), generator=g)] * mask[..., None]
    return {"pos": pos, "atoms": atoms}, {"pos": mask, "atoms": mask}


def _garbage_padding(x0, masks, seed: int = 1):
    g = _gen(seed)
    pad = ~masks["pos"]
    pos = x0["pos"].clone()
    pos[pad] = 50.0 * torch.randn(int(pad.sum()), 3, generator=g)
    atoms = x0["atoms"].clone()
    atoms[pad] = torch.rand(int(pad.sum()), K, generator=g)
    return {"pos": pos, "atoms": atoms}


@pytest.mark.parametrize("prediction", ["epsilon", "x0", "v", "velocity"])
@pytest.mark.parametrize("weighting", WEIGHTINGS)
def test_product_space_loss_is_finite_and_ignores_padding(prediction, weighting):
    torch.manual_seed(0)
    net = _TinyNet()
    objective = DiffusionObjective(Denoiser(net, _space(), {"pos": prediction}), weighting)
    x0, masks = _batch()
    t = torch.tensor([0.1, 0.35, 0.6, 0.9])
    out = objective(x0, mask=masks, t=t, generator=_gen(2))
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    assert set(out.components) == {"pos", "atoms"}
    total = out.components["pos"] + out.components["atoms"]
    torch.testing.assert_close(out.loss, total)
    # Garbage in padded entries of the data: same shapes, so the same noise draws; padding
    # is projected out of x_t and masked out of the mean, so the loss is bit-identical.
    again = objective(_garbage_padding(x0, masks), mask=masks, t=t, generator=_gen(2))
    assert torch.equal(again.loss, out.loss)


def test_product_space_loss_has_no_gradient_from_padded_outputs():
    torch.manual_seed(0)
    x0, masks = _batch()
    captured = {}

    def net(x, t):
        captured["pos"] = torch.randn(B, N, 3, requires_grad=True)
        captured["atoms"] = torch.randn(B, N, K, requires_grad=True)
        return dict(captured)

    objective = DiffusionObjective(Denoiser(net, _space(), {"pos": "epsilon"}), "min_snr")
    out = objective(x0, mask=masks, t=torch.full((B,), 0.5), generator=_gen(3))
    out.loss.backward()
    pad = ~masks["pos"]
    for key in ("pos", "atoms"):
        grad = captured[key].grad
        assert torch.equal(grad[pad], torch.zeros_like(grad[pad]))
        assert (grad[~pad].abs().sum(-1) > 0).all()


def test_product_space_perfect_network_gives_zero_loss():
    x0, masks = _batch()
    # x0 prediction: the perfect network returns the data, and logits that put all the
    # probability on the true class (exp(-1e4) underflows: cross-entropy exactly 0).
    # The objective centres the positions (the space is CoM-free), so the perfect network
    # returns the centred data.
    centred = _space()["pos"].project(x0["pos"], masks["pos"])
    net = lambda x, t: {"pos": centred, "atoms": 1e4 * x0["atoms"]}  # noqa: E731
    objective = DiffusionObjective(Denoiser(net, _space(), {"pos": "x0"}), "min_snr")
    out = objective(x0, mask=masks, generator=_gen(4))
    # Zero up to rounding: the CoM-free part of the prediction is re-centred (projected), which
    # moves the exact target by float noise (6.5e-18 seen).
    assert 0.0 <= float(out.loss) < 1e-15


@pytest.mark.parametrize("name", VP_AND_FLOW)
@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_single_space_perfect_network_gives_zero_loss(name, prediction):
    """The exact target, recovered from ``x_t`` by a network that knows ``x0``."""
    schedule = make_schedule(name)
    x0 = torch.randn(8, 5, 2, generator=_gen(5), dtype=torch.float64)

    def net(x, t):
        tt = t.reshape(-1, 1, 1)
        if prediction == "edm":  # EDM nets see c_in x_t and c_noise; recover t-free quantities
            return captured["target"]
        alpha, sigma = schedule.alpha_sigma(tt)
        eps = (x - alpha * x0) / sigma
        return target(prediction, x0, eps, t, schedule)

    captured = {}
    denoiser = Denoiser(net, EuclideanSpace(schedule), prediction)
    objective = DiffusionObjective(denoiser, "uniform")
    t = torch.linspace(0.05, 0.95, 8, dtype=torch.float64)
    if prediction == "edm":
        eps = EuclideanSpace(schedule).noise(x0, None, _gen(6))
        captured["target"] = target("edm", x0, eps, t, schedule)
    out = objective(x0, t=t, generator=_gen(6))
    # eps recovered from x_t loses ~1e-16 * |x_t| / sigma; squared errors are ~1e-28.
    assert 0.0 <= float(out.loss) < 1e-20


def test_flow_matching_objective_is_velocity_on_rectified_flow():
    net = lambda x, t: (x - x0) / t.reshape(-1, 1)  # noqa: E731  exact velocity eps - x0
    objective = flow_matching_objective(net)
    assert objective.denoiser.prediction == {"x": "velocity"}
    assert objective.weighting == "uniform"
    assert isinstance(objective.denoiser.schedule, RectifiedFlowSchedule)
    x0 = torch.randn(16, 3, generator=_gen(7), dtype=torch.float64)
    out = objective(x0, t=torch.linspace(0.1, 0.9, 16, dtype=torch.float64), generator=_gen(8))
    # x_t = (1-t) x0 + t eps, so (x_t - x0) / t = eps - x0 up to float64 rounding.
    assert float(out.loss) < 1e-20
    # A custom space keeps its schedule and still trains velocity.
    custom = flow_matching_objective(net, EuclideanSpace(CosineSchedule()))
    assert custom.denoiser.prediction == {"x": "velocity"}
    assert isinstance(custom.denoiser.schedule, CosineSchedule)


def test_objective_rejects_mismatched_components():
    objective = DiffusionObjective(Denoiser(lambda x, t: x, _space(), {"pos": "epsilon"}))
    x0, masks = _batch()
    with pytest.raises(ValueError, match="do not match"):
        objective({"pos": x0["pos"]}, mask=masks)
