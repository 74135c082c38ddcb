"""Policy denoisers: shapes, conditioning, gradients, determinism, the core's Denoiser and
samplers, and a tiny overfit through the core's DiffusionObjective.

Networks are built tiny (tens of thousands of parameters) so the file runs in seconds; one
test builds each at its default size.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

from sci_diffusion.bench.policy_nets import policy_table, time_policy_nets
from sci_diffusion.core import (
    CosineSchedule,
    Denoiser,
    DiffusionObjective,
    EuclideanSpace,
    sample,
)
from sci_diffusion.nets.policy_mlp import PolicyMLP
from sci_diffusion.nets.policy_transformer import PolicyTransformer
from sci_diffusion.nets.unet1d import ConditionalUnet1D

TINY: dict[str, Callable[..., nn.Module]] = {
    "unet": lambda **kw: ConditionalUnet1D(**kw, down_dims=(16, 32), time_embed_dim=32),
    "transformer": lambda **kw: PolicyTransformer(
        **kw, d_model=32, n_layers=2, n_heads=2, dropout=0.0
    ),
    "mlp": lambda **kw: PolicyMLP(**kw, width=64, depth=2),
}
DEFAULT: dict[str, Callable[..., nn.Module]] = {
    "unet": ConditionalUnet1D,
    "transformer": PolicyTransformer,
    "mlp": PolicyMLP,
}
NETS = sorted(TINY)
# (T, Da, To, Do): Diffusion Policy's horizon 16, a 7-DoF arm, odd horizons (U-Net padding).
DIMS = [(16, 2, 2, 10), (8, 7, 1, 25), (7, 3, 3, 4)]



def build(name: str, dims: tuple[int, int, int, int] = DIMS[0], seed: int = 0) -> nn.Module:
    horizon, action_dim, n_obs_steps, obs_dim = dims
    torch.manual_seed(seed)
    return TINY[name](
        action_dim=action_dim, obs_dim=obs_dim, n_obs_steps=n_obs_steps, horizon=horizon
    )


def unzero(net: nn.Module) -> nn.Module:
    """Randomise all-zero parameters (zero-initialised output layers, norm biases): with a
    zero output layer no input can change the output and no gradient reaches the body."""
    gen = torch.Generator().manual_seed(123)
    with torch.no_grad():
        for p in net.parameters():
            if not p.any():
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
    return net


def inputs(
    dims: tuple[int, int, int, int], batch: int = 4, seed: int = 1
) -> tuple[Tensor, Tensor, Tensor]:
    horizon, action_dim, n_obs_steps, obs_dim = dims
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, horizon, action_dim, generator=gen)
    t = torch.rand(batch, generator=gen)
    obs = torch.randn(batch, n_obs_steps, obs_dim, generator=gen)
    return x, t, obs


@pytest.mark.parametrize("name", NETS)
@pytest.mark.parametrize("dims", DIMS)
def test_output_shape(name: str, dims: tuple[int, int, int, int]) -> None:
    x, t, obs = inputs(dims, batch=3)
    out = build(name, dims)(x, t, obs)
    assert out.shape == x.shape and out.dtype == x.dtype and torch.isfinite(out).all()


@pytest.mark.parametrize("name", NETS)
def test_default_size_outputs_zero_at_init(name: str) -> None:
    dims = (16, 2, 2, 10)
    horizon, action_dim, n_obs_steps, obs_dim = dims
    net = DEFAULT[name](
        action_dim=action_dim, obs_dim=obs_dim, n_obs_steps=n_obs_steps, horizon=horizon
    )
    x, t, obs = inputs(dims, batch=2)
    # Zero-initialised output layer: the untrained denoiser predicts the mean (0).
    assert torch.equal(net(x, t, obs), torch.zeros_like(x))


@pytest.mark.parametrize("name", NETS)
def test_batch_size_independence(name: str) -> None:
    net = unzero(build(name)).eval()
    x, t, obs = inputs(DIMS[0], batch=5)
    with torch.no_grad():
        batched = net(x, t, obs)
        alone = net(x[2:3], t[2:3], obs[2:3])
    torch.testing.assert_close(alone, batched[2:3], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", NETS)
def test_observation_and_time_change_output(name: str) -> None:
    net = unzero(build(name)).eval()
    x, t, obs = inputs(DIMS[0])
    with torch.no_grad():
        out = net(x, t, obs)
        assert (net(x, t, obs + 0.5) - out).abs().max() > 1e-3
        assert (net(x, (t + 0.3) % 1.0, obs) - out).abs().max() > 1e-3
        # Only the last observation step moves: the whole history is used.
        later = obs.clone()
        later[:, -1] += 0.5
        assert (net(x, t, later) - out).abs().max() > 1e-3


@pytest.mark.parametrize("name", NETS)
def test_regressor_mode_is_deterministic_function_of_obs(name: str) -> None:
    """The behaviour-cloning baseline calls ``net(zeros, ones, obs)``."""
    net = unzero(build(name)).eval()
    _, _, obs = inputs(DIMS[0])
    zeros = torch.zeros(obs.shape[0], DIMS[0][0], DIMS[0][1])
    ones = torch.ones(obs.shape[0])
    with torch.no_grad():
        first, second = net(zeros, ones, obs), net(zeros, ones, obs)
        assert torch.equal(first, second)
        assert (net(zeros, ones, obs.flip(0)) - first).abs().max() > 1e-3


@pytest.mark.parametrize("name", NETS)
def test_gradient_reaches_every_parameter(name: str) -> None:
    net = unzero(build(name))
    x, t, obs = inputs(DIMS[0])
    weights = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    (net(x, t, obs) * weights).sum().backward()
    for pname, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {pname}"


@pytest.mark.parametrize("name", NETS)
def test_deterministic_under_seed(name: str) -> None:
    first, second = build(name, seed=7), build(name, seed=7)
    for (k, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    assert any(
        not torch.equal(a, b)
        for a, b in zip(first.parameters(), build(name, seed=8).parameters(), strict=True)
    )
    x, t, obs = inputs(DIMS[0])
    unzero(first), unzero(second)
    assert torch.equal(first.eval()(x, t, obs), second.eval()(x, t, obs))


@pytest.mark.parametrize("name", NETS)
def test_rejects_mismatched_inputs(name: str) -> None:
    net = build(name)
    x, t, obs = inputs(DIMS[0])
    with pytest.raises(ValueError, match="obs"):
        net(x, t, obs[:, :, :-1])
    with pytest.raises(ValueError, match="x must"):
        net(x[..., :-1], t, obs)
    with pytest.raises(ValueError, match="horizon"):
        net(torch.cat([x, x], dim=1), t, obs)


@pytest.mark.parametrize("name", NETS)
def test_plugs_into_core_denoiser_and_ddim(name: str) -> None:
    net = unzero(build(name)).eval()
    schedule = CosineSchedule()
    space = EuclideanSpace(schedule)
    denoiser = Denoiser(net, space, prediction="epsilon")
    _, _, obs = inputs(DIMS[0], batch=3)
    gen = torch.Generator().manual_seed(4)
    x = space.prior((3, DIMS[0][0], DIMS[0][1]), generator=gen)
    # Samplers call denoise(x, t): the observation is bound here, passed on as net(..., obs=obs).
    with torch.no_grad():
        out = sample(
            "ddim",
            lambda x_t, t: denoiser(x_t, t, obs=obs),
            x,
            schedule.time_grid(8),
            space=space,
            generator=gen,
        )
    assert out.shape == x.shape and torch.isfinite(out).all()


@pytest.mark.parametrize("name", NETS)
def test_overfits_a_fixed_batch(name: str) -> None:
    """150 Adam steps on 16 (chunk, obs) pairs cut the denoising loss by more than 70%.

    x0 prediction: its loss measures memorisation at every noise level (an epsilon loss keeps
    a floor near t = 0, where eps = (x_t - x0) / sigma magnifies any error in x0). The loss is
    compared on one fixed set of (t, noise) draws before and after training.
    """
    dims = (8, 3, 2, 5)
    gen = torch.Generator().manual_seed(11)
    chunks = torch.randn(16, dims[0], dims[1], generator=gen)
    obs = torch.randn(16, dims[2], dims[3], generator=gen)
    net = build(name, dims)
    objective = DiffusionObjective(Denoiser(net, EuclideanSpace(CosineSchedule()), prediction="x0"))
    eval_t = 0.01 + 0.98 * torch.rand(8 * 16, generator=gen)

    def eval_loss() -> float:
        with torch.no_grad():
            loss = objective(
                chunks.repeat(8, 1, 1),
                t=eval_t,
                generator=torch.Generator().manual_seed(12),
                obs=obs.repeat(8, 1, 1),
            ).loss
        return float(loss)

    before = eval_loss()
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(150):
        loss = objective(chunks, generator=gen, obs=obs).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = eval_loss()
    assert after < 0.3 * before, f"{name}: loss {before:.3f} -> {after:.3f}"


def test_benchmark_function_reports_every_net() -> None:
    result = time_policy_nets((("tiny", 2, 3),), repeats=2, warmup=0, threads=1, reference=False)
    rows = result["results"]
    assert [r["net"] for r in rows] == ["unet1d", "transformer", "mlp"]
    for r in rows:
        assert r["params"] > 0 and 0 < r["forward_ms_min"] <= r["forward_ms_median"]
        assert r["thread_cpu_ms_median"] >= 0
    assert "| unet1d | tiny (2, 3) |" in policy_table(result)
