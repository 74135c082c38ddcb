"""Guidance: classifier-free combination, condition dropout, inpainting, gradient guidance."""

from __future__ import annotations

import pytest
import torch

from sci_diffusion.core import (
    CosineSchedule,
    EuclideanSpace,
    GaussianMixture,
    Inpainting,
    LinearSchedule,
    classifier_free,
    drop_condition,
    gradient_guidance,
    sample_ddim,
    sample_ddpm,
    sample_dpm_solver_pp_2m,
)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _conditional(x, t, c):
    """A toy conditional denoiser whose branches differ: x0 = tanh(x) + c * (1 + t)."""
    tt = t.reshape(-1, *(1,) * (x.ndim - 1)) if t.ndim else t
    return torch.tanh(x) + c * (1.0 + tt)


X = torch.randn(6, 3, generator=_gen(0))
COND = torch.randn(6, 3, generator=_gen(1))
NULL = torch.zeros(6, 3)


@pytest.mark.parametrize("t", [torch.tensor(0.3), torch.linspace(0.1, 0.9, 6)])
def test_classifier_free_scales(t):
    u, c = _conditional(X, t, NULL), _conditional(X, t, COND)
    # Scales 0 and 1 call a single branch: bit-identical.
    assert torch.equal(classifier_free(_conditional, COND, NULL, 0.0)(X, t), u)
    assert torch.equal(classifier_free(_conditional, COND, NULL, 1.0)(X, t), c)
    # Scale 3 runs one batch of 2B; rounding of u + 3 (c - u) in float32 is ~1e-6.
    guided = classifier_free(_conditional, COND, NULL, 3.0)(X, t)
    torch.testing.assert_close(guided, u + 3.0 * (c - u), rtol=1e-6, atol=1e-6)


def test_classifier_free_batches_tensor_conditions_and_not_others():
    calls = []

    def denoise(x, t, c):
        calls.append(x.shape[0])
        return _conditional(x, t, c if isinstance(c, torch.Tensor) else torch.tensor(c))

    classifier_free(denoise, COND, NULL, 2.0)(X, torch.tensor(0.5))
    assert calls == [12]  # one batch of 2B
    calls.clear()
    out = classifier_free(denoise, 1.0, 0.0, 2.0)(X, torch.tensor(0.5))
    assert calls == [6, 6]  # non-tensor conditions: two calls
    u, c = _conditional(X, torch.tensor(0.5), 0.0), _conditional(X, torch.tensor(0.5), 1.0)
    torch.testing.assert_close(out, u + 2.0 * (c - u))


@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 1.0])
def test_drop_condition_rate(p):
    n = 20000
    cond = torch.randn(n, 4, generator=_gen(2)) + 5.0  # never equal to the null condition
    null = torch.full((4,), -1.0)
    out, keep = drop_condition(cond, null, p, _gen(3))
    assert keep.shape == (n,) and keep.dtype == torch.bool
    assert torch.equal(out[keep], cond[keep])
    assert torch.equal(out[~keep], null.expand(int((~keep).sum()), 4))
    dropped = 1.0 - keep.float().mean().item()
    # Binomial: std sqrt(p (1 - p) / n) <= 0.0036; 0.016 is > 4.4 std at the worst p = 0.5.
    assert abs(dropped - p) < 0.016


def test_drop_condition_rejects_bad_probability():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        drop_condition(COND, NULL[0], 1.5)


# -- inpainting on trajectories ----------------------------------------------------------------

T_STEPS, D = 8, 2
_line = torch.linspace(0.0, 1.0, T_STEPS)[:, None]
TRAJ = GaussianMixture(
    torch.stack(
        [
            torch.cat([_line * 3, _line * 2], -1),
            torch.cat([_line * 3, -_line * 2], -1),
            torch.cat([-_line, _line], -1),
        ]
    ),
    torch.tensor([0.2, 0.3, 0.25]),
)
SAMPLERS = {"ddim": sample_ddim, "dpm_solver_pp_2m": sample_dpm_solver_pp_2m, "ddpm": sample_ddpm}


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_inpainting_holds_known_prefix_exactly(sampler):
    schedule = LinearSchedule()
    space = EuclideanSpace(schedule)
    batch = 16
    known = torch.zeros(batch, T_STEPS, D)
    known[:, 0] = torch.tensor([0.5, -0.25])
    known[:, 1] = torch.randn(batch, D, generator=_gen(4))  # a different prefix per sample
    known_mask = torch.zeros(batch, T_STEPS, D, dtype=torch.bool)
    known_mask[:, :2] = True
    inpaint = Inpainting(known, known_mask, schedule, generator=_gen(5))
    x = space.prior((batch, T_STEPS, D), generator=_gen(6))
    out = SAMPLERS[sampler](
        inpaint.wrap(TRAJ.denoiser(schedule)),
        x,
        schedule.time_grid(25),
        space=space,
        constraint=inpaint.constraint,
        generator=_gen(7),
    )
    assert out.shape == (batch, T_STEPS, D) and torch.isfinite(out).all()
    # sigma(0) = 0 and alpha(0) = 1 exactly, so the last replacement writes `known` itself.
    assert torch.equal(out[known_mask], known[known_mask])
    # The rest is generated, not copied from the (zero) placeholder.
    assert (out[:, 2:].abs() > 1e-3).any()


def test_inpainting_rejects_bad_mask():
    known = torch.zeros(2, T_STEPS, D)
    with pytest.raises(ValueError, match="known_mask"):
        Inpainting(known, torch.zeros(2, T_STEPS, D), LinearSchedule())
    with pytest.raises(ValueError, match="known_mask"):
        Inpainting(known, torch.zeros(2, T_STEPS, dtype=torch.bool), LinearSchedule())


# -- gradient guidance -------------------------------------------------------------------------

TWO_MODES = GaussianMixture(torch.tensor([[-2.0, 0.0], [2.0, 0.0]]), torch.tensor([0.5, 0.5]))
GOAL = torch.tensor([2.0, 0.0])


@pytest.mark.parametrize("through_denoiser", [True, False])
def test_gradient_guidance_moves_samples_toward_target(through_denoiser):
    """Both modes approximate the same score shift, so at one moderate scale both must steer.

    The cheap mode (``through_denoiser=False``) maps the x0-gradient to x_t with 1/alpha, which
    is the Jacobian of E[x0 | x_t] only at low noise; at high noise the true Jacobian vanishes
    (~ alpha Var[x0] / sigma^2) while 1/alpha -> 1/min_alpha = 100, so early steps get a
    ~1e4 x too large push (sigma^2 / alpha^2) and the samples are thrown far past the goal.
    """
    schedule = CosineSchedule()
    space = EuclideanSpace(schedule)
    denoise = TWO_MODES.denoiser(schedule)

    def log_prob(x0, t):
        return -((x0 - GOAL) ** 2).sum(-1)

    guided = gradient_guidance(
        denoise, log_prob, schedule, scale=0.5, through_denoiser=through_denoiser
    )
    x = space.prior((2000, 2), generator=_gen(8))
    times = schedule.time_grid(40)
    with torch.no_grad():
        plain = sample_ddim(denoise, x, times, space=space)
        steered = sample_ddim(guided, x, times, space=space)
    assert torch.isfinite(steered).all()
    # The mixture lives within |x| < 4; a push that throws samples beyond 10 is broken.
    assert float(steered.abs().max()) < 10.0, f"samples reach {float(steered.abs().max()):.3g}"
    dist_plain = float((plain.mean(0) - GOAL).norm())
    dist_steered = float((steered.mean(0) - GOAL).norm())
    # Unguided, half the samples land on each mode: the mean sits ~2 from GOAL (its standard
    # error is ~0.05). Requiring the guided mean to be 0.5 closer is 10 standard errors.
    assert dist_plain > 1.5
    assert dist_steered < dist_plain - 0.5, (
        f"guided mean is {dist_steered:.3g} from the goal, unguided {dist_plain:.3g}"
    )
    # More samples end in the goal's mode (binomial std of each fraction ~0.011).
    assert (steered[:, 0] > 0).float().mean() > (plain[:, 0] > 0).float().mean() + 0.1


# -- ClassifierFreeGuidance on a Denoiser (any space) -------------------------------------------
class _CountingNet(torch.nn.Module):
    """Logits for a categorical component and epsilon for a continuous one that depend on a
    conditioning vector ``c`` (B, 1); counts its calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x, t, c):
        self.calls += 1
        return {"cat": x["cat"] * c[:, :, None] + 0.3, "pos": x["pos"] * 0.1 + c[:, :, None]}


def _cfg_setup():
    from sci_diffusion.core import (
        CategoricalSpace,
        ClassifierFreeGuidance,
        Denoiser,
        EuclideanSpace,
        ProductSpace,
        make_schedule,
    )

    sched = make_schedule("cosine")
    space = ProductSpace({"cat": CategoricalSpace(4, sched), "pos": EuclideanSpace(sched)})
    net = _CountingNet()
    den = Denoiser(net, space)
    g = torch.Generator().manual_seed(0)
    x = {"cat": torch.nn.functional.one_hot(torch.randint(4, (5, 3), generator=g), 4).float(),
         "pos": torch.randn(5, 3, 2, generator=g)}  # fmt: skip
    cond, null = {"c": torch.full((5, 1), 2.0)}, {"c": torch.zeros(5, 1)}
    return ClassifierFreeGuidance, den, net, x, cond, null


@pytest.mark.parametrize("w", [0.0, 1.0, 3.0])
def test_classifier_free_guidance_combines_outputs_in_one_batch(w):
    cfg_class, den, net, x, cond, null = _cfg_setup()
    t = torch.full((5,), 0.4)
    guided = cfg_class(den, cond, null, w)(x, t)
    net.calls = 0
    out_c = den.network_output(x, t, **cond)
    out_u = den.network_output(x, t, **null)
    logits = out_u["cat"] + w * (out_c["cat"] - out_u["cat"])
    # categorical: p ∝ p_u^(1-w) p_c^w, i.e. logits combined, still a distribution for w > 1
    torch.testing.assert_close(guided["cat"], torch.softmax(logits, -1))
    assert torch.all(guided["cat"] >= 0)
    # continuous: the x0 estimates combine linearly (x0 is affine in epsilon)
    x0_c, x0_u = den(x, t, **cond)["pos"], den(x, t, **null)["pos"]
    torch.testing.assert_close(guided["pos"], x0_u + w * (x0_c - x0_u))
    net.calls = 0
    cfg_class(den, cond, null, w)(x, t)
    assert net.calls == 1  # both branches in one forward of 2B (or only the one needed)


def test_classifier_free_guidance_rejects_mismatched_conditions():
    cfg_class, den, _, _, cond, _ = _cfg_setup()
    with pytest.raises(ValueError, match="same keywords"):
        cfg_class(den, cond, {"other": torch.zeros(5, 1)}, 2.0)
    with pytest.raises(ValueError, match="finite"):
        cfg_class(den, cond, {"c": torch.zeros(5, 1)}, float("nan"))
