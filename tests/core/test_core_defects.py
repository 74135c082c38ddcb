"""Issue 14's defects of the core, each fixed or refused with a clear error.

Every test here failed on the code before the fix (noted per test: what the old code did).
"""

from __future__ import annotations

import inspect
import math

import pytest
import torch

import sci_diffusion.core as core
from sci_diffusion.core import (
    SAMPLERS,
    CategoricalJoint,
    CategoricalSpace,
    CoMFreeSpace,
    ComponentSpaceProtocol,
    CosineSchedule,
    Denoiser,
    DiffusionObjective,
    EuclideanSpace,
    GaussianMixture,
    PolynomialSchedule,
    ProductSpace,
    SamplerOptionError,
    SpaceProtocol,
    function_evaluations,
    get_sampler,
    sample,
)

SCHEDULE = CosineSchedule()
NAMES = sorted(SAMPLERS)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- 1. a categorical single space behind a Denoiser ------------------------------------------

K, V = 4, 3
_rule = torch.zeros((K,) * V)
for _k in range(K):
    _rule[(_k,) * V] = 1.0  # all three variables equal: 4 of 64 states (chance 1/16)
JOINT = CategoricalJoint(_rule + 1e-3)


def test_categorical_single_space_denoiser_samples_the_learned_rule():
    """The network outputs logits (here: the log of the exact ``p(x_0 | x_t)``). The old code
    read them through ``denoise_at`` as an epsilon prediction: ~chance (a lab measured 0.2%
    against 1.6% chance). Now the single space gives bitwise the one-component product's
    samples, and the rule holds in >= 97% of 2000 samples: the exact rate is
    4/(4 + 60e-3) = 0.985 (the table's floor of 1e-3 per state), whose binomial standard
    error at n = 2000 is 0.0027, so 0.97 sits 5.5 standard errors below it."""
    space = CategoricalSpace(K, SCHEDULE, "uniform")
    exact = JOINT.denoiser(space)

    def net(x, t):
        return torch.log(exact(x, t).clamp_min(1e-30))

    n, times = 2000, SCHEDULE.time_grid(50)
    x = space.prior((n, V, K), generator=_gen(0))
    single = sample("ddpm", Denoiser(net, space), x, times, space=space, generator=_gen(1))
    product = ProductSpace({"c": space})
    via_product = sample(
        "ddpm",
        Denoiser(lambda x, t: {"c": net(x["c"], t)}, product),
        {"c": x},
        times,
        space=product,
        generator=_gen(1),
    )["c"]
    assert torch.equal(single, via_product)
    labels = single.argmax(-1)
    rate = (labels == labels[:, :1]).all(1).double().mean().item()
    assert rate >= 0.97, f"rule obeyed by {rate:.3f} of samples"


@pytest.mark.parametrize("prediction", ["epsilon", "x0", {"c": "v"}])
def test_prediction_is_refused_for_categorical_components(prediction):
    """Old code accepted any prediction for categorical data without complaint."""
    space = CategoricalSpace(K, SCHEDULE)
    target = space if isinstance(prediction, str) else ProductSpace({"c": space})
    with pytest.raises(ValueError, match="logits"):
        Denoiser(lambda x, t: x, target, prediction=prediction)


def test_product_prediction_naming_an_unknown_component_is_refused():
    space = ProductSpace({"pos": EuclideanSpace(SCHEDULE)})
    with pytest.raises(ValueError, match=r"unknown components \['p0s'\]"):
        Denoiser(lambda x, t: x, space, prediction={"pos": "v", "p0s": "v"})


# -- 2. masks reach the network ---------------------------------------------------------------


class _MaskedNet(torch.nn.Module):
    """Records the mask it receives; zero output on padding is up to the space."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list = []

    def forward(self, x, t, mask=None):
        self.seen.append(mask)
        return 0.5 * x


def _points(seed: int = 0):
    mask = torch.tensor([[True] * 5 + [False], [True] * 3 + [False] * 3])
    x = CoMFreeSpace(SCHEDULE).prior((2, 6, 3), mask, generator=_gen(seed))
    return x, mask


@pytest.mark.parametrize("name", NAMES)
def test_sampler_passes_the_mask_to_a_network_that_takes_it(name):
    """Old code called ``net(x, t)``: the mask never arrived."""
    net = _MaskedNet()
    space = CoMFreeSpace(SCHEDULE)
    x, mask = _points()
    if name == "categorical":
        return  # the same loop as ddpm
    out = sample(name, Denoiser(net, space, "v"), x, SCHEDULE.time_grid(3, t_start=0.9),
                 space=space, mask=mask, generator=_gen(1))  # fmt: skip
    assert net.seen and all(m is mask for m in net.seen)
    assert torch.equal(out[~mask], torch.zeros_like(out[~mask]))


def test_mask_convention_on_products_training_and_bound_denoisers():
    seen = []

    def net(x, t, mask=None, obs=None):
        seen.append((mask, obs))
        return {k: torch.zeros_like(v) for k, v in x.items()}

    space = ProductSpace({"pos": CoMFreeSpace(SCHEDULE), "atoms": CategoricalSpace(3, SCHEDULE)})
    x, mask = _points()
    atoms = space["atoms"].prior((2, 6, 3), mask, generator=_gen(2))
    denoiser = Denoiser(net, space, {"pos": "epsilon"})
    # Sampling with a bound condition: a dict with every component's key (None = unmasked).
    sample("ddim", denoiser.bind(obs="o"), {"pos": x, "atoms": atoms},
           SCHEDULE.time_grid(2, t_start=0.9), space=space, mask={"pos": mask})  # fmt: skip
    assert seen and all(m == {"pos": mask, "atoms": None} and o == "o" for m, o in seen)
    seen.clear()
    # Training: the same structure.
    DiffusionObjective(denoiser)({"pos": x, "atoms": atoms}, mask={"pos": mask, "atoms": mask})
    assert seen[0][0]["pos"] is mask and seen[0][0]["atoms"] is mask


def test_networks_without_mask_keep_working_and_other_names_opt_in():
    calls = []
    space = EuclideanSpace(SCHEDULE)
    x = torch.randn(2, 4, 2)
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]])
    plain = Denoiser(lambda x, t: calls.append("plain") or x, space, "x0")
    assert plain.mask_keyword is None
    sample("ddim", plain, x, SCHEDULE.time_grid(2), space=space, mask=mask)
    named = Denoiser(
        lambda x, t, node_mask: calls.append(node_mask) or x, space, "x0", mask_keyword="node_mask"
    )
    sample("ddim", named, x, SCHEDULE.time_grid(2), space=space, mask=mask)
    assert calls == ["plain", "plain", mask, mask]
    with pytest.raises(ValueError, match="mask_keyword"):
        Denoiser(lambda x, t: x, space, mask_keyword="not a name")


# -- 3. CoM-free predictions --------------------------------------------------------------------


def test_comfree_prediction_is_projected_and_loss_ignores_the_centre_of_mass():
    """A network off by a constant translation is exact on the CoM-free subspace. Old code:
    its output kept the translation (nonzero CoM) and the loss counted it (here 4.0)."""
    space = CoMFreeSpace(SCHEDULE)
    x0, mask = _points(3)
    shift = torch.tensor([2.0, -1.0, 0.5])
    captured = {}

    def net(x, t, mask=None):
        alpha, sigma = SCHEDULE.alpha_sigma(t[:, None, None])
        eps = (x - alpha * captured["x0"]) / sigma  # the exact noise, plus a translation
        return eps + shift

    captured["x0"] = x0
    denoiser = Denoiser(net, space, "epsilon")
    t = torch.tensor([0.3, 0.7])
    out = denoiser.network_output(space.add_noise(x0, t, space.noise(x0, mask, _gen(4))), t,
                                  mask=mask)  # fmt: skip
    m = mask[..., None].double()
    centre = (out * m).sum(1) / m.sum(1)
    assert centre.abs().max() < 1e-6  # float32 rounding of a mean of 5 values
    loss = DiffusionObjective(denoiser)(x0, mask=mask, generator=_gen(5)).loss
    assert float(loss) < 1e-10, float(loss)


# -- 4. the smaller defects ---------------------------------------------------------------------

MIXTURE = GaussianMixture(torch.tensor([[-1.0, 0.0], [1.0, 0.5]]), torch.tensor([0.3, 0.4]))
X = torch.randn(4, 2, generator=_gen(0))
SPACE = EuclideanSpace(SCHEDULE)


@pytest.mark.parametrize("eta", [-0.5, float("nan"), float("inf")])
def test_ddim_refuses_negative_or_non_finite_eta(eta):
    """Old code: eta < 0 left the state untouched and returned the prior noise."""
    with pytest.raises(ValueError, match="eta must be a finite number >= 0"):
        sample("ddim", MIXTURE.denoiser(SCHEDULE), X, SCHEDULE.time_grid(4), space=SPACE,
               eta=eta)  # fmt: skip


@pytest.mark.parametrize("name", ["euler", "heun"])
def test_churn_on_a_categorical_only_product_is_refused(name):
    """Old code: IndexError (``continuous()[0]`` of an empty list)."""
    space = ProductSpace({"c": CategoricalSpace(3, SCHEDULE)})
    x = {"c": space["c"].prior((4, 2, 3), generator=_gen(1))}
    with pytest.raises(ValueError, match="churn=0"):
        sample(name, lambda x, t: x, x, SCHEDULE.time_grid(4, t_start=0.9), space=space,
               churn=1.0)  # fmt: skip
    with pytest.raises(ValueError, match="churn must be >= 0"):
        sample(name, MIXTURE.denoiser(SCHEDULE), X, SCHEDULE.time_grid(4, t_start=0.9),
               space=SPACE, churn=-1.0)  # fmt: skip


@pytest.mark.parametrize("name", ["heun", "flow_heun", "ddim"])
@pytest.mark.parametrize(
    ("schedule", "t_end"),
    [(CosineSchedule(), 0.05), (PolynomialSchedule(), 0.0), (CosineSchedule(), 0.0)],
    ids=["cosine-t_end", "polynomial-sigma0>0", "cosine-0"],
)
def test_function_evaluations_counts_corrections_above_sigma_zero(name, schedule, t_end):
    """Old code: ``function_evaluations("heun", n)`` was 2n - 1 whatever the grid's end (and
    the polynomial schedule's ``sigma(0) = sqrt(1e-5)`` > 0 keeps every correction)."""
    calls = []

    def counting(x, t):
        calls.append(t)
        return 0.5 * x

    steps, resample = 6, 2
    times = schedule.time_grid(steps, t_start=0.99, t_end=t_end)
    sample(name, counting, X, times, space=EuclideanSpace(schedule), resample=resample,
           generator=_gen(1))  # fmt: skip
    assert len(calls) == function_evaluations(
        name, steps, t_end=t_end, schedule=schedule, resample=resample
    )


@pytest.mark.parametrize("name", NAMES)
def test_unknown_option_is_a_value_error_naming_the_accepted_ones(name):
    """Old code: Python's TypeError. Now a SamplerOptionError, which is a ValueError (and a
    TypeError, for code written against the old behaviour), listing what the sampler takes."""
    accepted = get_sampler(name).options
    with pytest.raises(ValueError, match="unexpected keyword argument 'etta'") as info:
        sample(name, MIXTURE.denoiser(SCHEDULE), X, SCHEDULE.time_grid(3), space=SPACE, etta=1)
    assert isinstance(info.value, TypeError) and isinstance(info.value, SamplerOptionError)
    message = str(info.value)
    assert all(option in message for option in accepted) and "resample" in message
    if not accepted:
        assert "own options: none" in message


@pytest.mark.parametrize("name", ["ddpm", "ddim", "dpm_solver_pp_2m", "heun", "flow_heun"])
def test_float64_state_gets_float64_coefficients_from_a_float32_grid(name):
    """Old code evaluated the schedule on the float32 grid, so a float64 state was updated
    with float32 coefficients (differences ~1e-7 from the float64 computation). Now the
    coefficients are computed in the state's dtype: same result as the float64 copy of the
    grid to float64 rounding, and a float32 state stays float32 on a float64 grid."""
    x = torch.randn(64, 2, generator=_gen(3), dtype=torch.float64)
    grid32 = SCHEDULE.time_grid(8, t_start=0.98)
    denoise = MIXTURE.denoiser(SCHEDULE)
    a = sample(name, denoise, x, grid32, space=SPACE, generator=_gen(4))
    b = sample(name, denoise, x, grid32.double(), space=SPACE, generator=_gen(4))
    assert a.dtype == torch.float64
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    out = sample(name, denoise, x.float(), grid32.double(), space=SPACE, generator=_gen(4))
    assert out.dtype == torch.float32


def test_sliced_wasserstein_is_exported_and_sample_documents_its_options():
    assert core.sliced_wasserstein is not None and "sliced_wasserstein" in core.__all__
    doc = inspect.getdoc(sample)
    for name in ("eta", "churn", "s_tmin", "s_tmax", "s_noise", "resample", "mask", "generator"):
        assert name in doc, name


# -- the space protocol and the shared signature ------------------------------------------------


def test_every_space_satisfies_the_protocol():
    spaces = [
        EuclideanSpace(SCHEDULE),
        CoMFreeSpace(SCHEDULE),
        CategoricalSpace(3, SCHEDULE),
        CategoricalSpace(3, SCHEDULE, "absorbing", symmetric=True),
    ]
    for space in spaces:
        assert isinstance(space, SpaceProtocol) and isinstance(space, ComponentSpaceProtocol)
    product = ProductSpace({"pos": spaces[1], "atoms": spaces[2]})
    assert isinstance(product, SpaceProtocol) and not isinstance(product, ComponentSpaceProtocol)
    # The product implements the protocol's methods on dicts.
    mask = torch.tensor([[True, True, False]])
    x = product.prior({"pos": (1, 3, 3), "atoms": (1, 3, 3)}, {"pos": mask, "atoms": mask},
                      generator=_gen(0))  # fmt: skip
    product.validate(x, {"pos": mask, "atoms": mask})
    torch.testing.assert_close(product.project(x, {"pos": mask})["pos"], x["pos"])
    with pytest.raises(ValueError, match="dict with keys"):
        product.validate({"pos": x["pos"]})
    with pytest.raises(ValueError, match="single space"):
        ProductSpace({"inner": product})
    # A schedule is not a space: the samplers say so instead of failing inside the loop.
    with pytest.raises(ValueError, match="space must be a space"):
        sample("ddim", lambda x, t: x, X, SCHEDULE.time_grid(2), space=SCHEDULE)


def test_samplers_share_one_signature():
    common = ["denoise", "x", "times", "space", "mask", "generator", "callback", "constraint",
              "check_inputs", "resample"]  # fmt: skip
    for name, fn in SAMPLERS.items():
        parameters = inspect.signature(fn).parameters
        assert list(parameters)[: len(common)] == common, name
        assert parameters["space"].annotation == "SpaceProtocol"
        assert list(parameters)[len(common) :] == list(fn.options), name
        assert fn.__name__.startswith("sample_") and "SAMPLER_ARGUMENTS" in fn.__doc__
    assert list(inspect.signature(SAMPLERS["euler"]).parameters)[len(common) :] == [
        "churn", "s_tmin", "s_tmax", "s_noise",
    ]  # fmt: skip
    assert SAMPLERS["ddim"].options == {"eta": 0.0}
    assert math.isinf(SAMPLERS["heun"].options["s_tmax"])
