"""Discrete diffusion: the exact posterior against brute-force Bayes, absorbing and symmetric
edge behaviour, and the categorical sampler's frequencies."""

from __future__ import annotations

import pytest
import torch

from sci_diffusion.core import CategoricalSpace, CosineSchedule, LinearSchedule
from sci_diffusion.core.categorical import TRANSITIONS, sample_categorical

K = 5
MARGINALS = torch.tensor([0.4, 0.3, 0.15, 0.1, 0.05])
TIME_PAIRS = [(0.9, 0.5), (0.5, 0.49), (0.3, 0.0), (1.0, 0.8)]


def _space(transition: str, symmetric: bool = False) -> CategoricalSpace:
    marginals = MARGINALS if transition == "marginal" else None
    return CategoricalSpace(K, CosineSchedule(), transition, marginals, symmetric)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _matrices(space: CategoricalSpace, t: float, s: float):
    """Row-stochastic ``Qbar_s``, ``Qbar_t`` and ``Q_{t|s}`` (rows: from, columns: to)."""
    tt = torch.tensor([t, s], dtype=torch.float64)
    a_t, a_s = space.keep_probability(tt).tolist()
    m = space.limit.double()
    eye, ones = torch.eye(K, dtype=torch.float64), torch.ones(K, 1, dtype=torch.float64)

    def q(a: float) -> torch.Tensor:
        return a * eye + (1 - a) * ones @ m[None]

    return q(a_s), q(a_t), q(a_t / a_s)


def _bayes(space, t, s, x_t_class: int, probs_x0: torch.Tensor) -> torch.Tensor:
    """``sum_k p(x0=k) q(x_s | x_t, x0=k)`` by Bayes, over classes k that can produce x_t."""
    q_s, q_t, q_ts = _matrices(space, t, s)
    total = torch.zeros(K, dtype=torch.float64)
    for k in range(K):
        if q_t[k, x_t_class] == 0:  # x0 = k cannot produce x_t
            continue
        # q(x_s = i | x_t = j, x0 = k) = Q_{t|s}[i, j] Qbar_s[k, i] / Qbar_t[k, j]
        total += probs_x0[k] * q_ts[:, x_t_class] * q_s[k] / q_t[k, x_t_class]
    return total / total.sum()


@pytest.mark.parametrize("transition", TRANSITIONS)
@pytest.mark.parametrize(("t", "s"), TIME_PAIRS)
def test_test_matrices_compose(transition, t, s):
    """Sanity of the brute-force reference: Chapman-Kolmogorov ``Qbar_s Q_{t|s} = Qbar_t``."""
    q_s, q_t, q_ts = _matrices(_space(transition), t, s)
    # The space stores its limit m in float32 (0.2 is 0.2 + 3e-9), so rows sum to 1 only to
    # ~1e-8; the matrices mirror that on purpose so posteriors compare at float64 precision.
    torch.testing.assert_close(q_s @ q_ts, q_t, rtol=0, atol=1e-7)
    torch.testing.assert_close(q_ts.sum(1), torch.ones(K, dtype=torch.float64), rtol=0, atol=1e-7)


@pytest.mark.parametrize("transition", TRANSITIONS)
@pytest.mark.parametrize(("t", "s"), TIME_PAIRS)
def test_posterior_with_one_hot_x0_is_exact_bayes(transition, t, s):
    space = _space(transition)
    q_t = _matrices(space, t, s)[1]
    eye = torch.eye(K, dtype=torch.float64)
    pairs = [(j, k) for j in range(K) for k in range(K) if q_t[k, j] > 0]
    x_t = torch.stack([eye[j] for j, _ in pairs])  # (P, K)
    probs = torch.stack([eye[k] for _, k in pairs])
    tt = torch.tensor(t, dtype=torch.float64)
    ss = torch.tensor(s, dtype=torch.float64)
    got = space.posterior(x_t, probs, tt, ss)
    want = torch.stack([_bayes(space, t, s, j, eye[k]) for j, k in pairs])
    # Both sides are a handful of float64 products and one division: 1e-10 absorbs rounding.
    torch.testing.assert_close(got, want, rtol=0, atol=1e-10)


@pytest.mark.parametrize("transition", TRANSITIONS)
@pytest.mark.parametrize(("t", "s"), TIME_PAIRS)
def test_posterior_with_soft_x0_is_the_mixture(transition, t, s):
    space = _space(transition)
    g = _gen(1)
    probs = torch.softmax(2 * torch.randn(K, K, generator=g, dtype=torch.float64), -1)
    x_t = torch.eye(K, dtype=torch.float64)  # every observed class once
    got = space.posterior(x_t, probs, torch.tensor(t), torch.tensor(s))
    want = torch.stack([_bayes(space, t, s, j, probs[j]) for j in range(K)])
    # float32 times (a_t from a float32 t) limit agreement to ~1e-7 relative.
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("transition", TRANSITIONS)
def test_posterior_rows_are_distributions(transition):
    space = _space(transition)
    g = _gen(2)
    shape = (6, 9)
    x_t = space.sample_xt(torch.eye(K)[torch.randint(K, shape, generator=g)], torch.tensor(0.6))
    probs = torch.softmax(3 * torch.randn((*shape, K), generator=g), -1)
    t = torch.rand(shape[0], generator=g) * 0.9 + 0.1
    s = t * torch.rand(shape[0], generator=g)
    post = space.posterior(x_t, probs, t, s)
    assert post.shape == (*shape, K)
    assert (post >= 0).all()
    # float32 normalisation of K = 5 terms: 1e-6 is ~10 ulps.
    torch.testing.assert_close(post.sum(-1), torch.ones(shape), rtol=0, atol=1e-6)


def test_absorbing_unmasked_tokens_stay_unchanged_under_step():
    space = _space("absorbing")
    g = _gen(3)
    x0 = torch.eye(K)[torch.randint(K - 1, (64, 12), generator=g)]  # data never uses the mask
    t, s = torch.tensor(0.7), torch.tensor(0.4)
    x_t = space.sample_xt(x0, t, generator=g)
    unmasked = x_t[..., -1] == 0
    assert unmasked.any() and (~unmasked).any()
    probs = torch.softmax(torch.randn(64, 12, K, generator=g), -1)
    x_s = space.step(x_t, probs, t, s, generator=g)
    assert torch.equal(x_s[unmasked], x_t[unmasked])
    # masked tokens may only unmask (or stay masked): rows stay one-hot
    assert torch.equal(x_s.sum(-1), torch.ones(64, 12))


def test_absorbing_unmasked_token_survives_a_denoiser_that_rules_it_out():
    """Exact Bayes: once unmasked, a token can only have been that token at every earlier
    time, so ``q(x_s | x_t = j) = e_j`` whatever ``p(x0 | x_t)`` says. A confident network
    whose softmax underflows to 0 on the observed class (logit gap > ~104 in float32) must not
    send the token back to the absorbing (mask) class -- at ``s = 0`` that puts the mask class
    into the final sample."""
    space = _space("absorbing")
    x_t = torch.eye(K)[torch.tensor([[0, 1, 2]])]
    logits = torch.full((1, 3, K), -200.0)
    logits[..., 3] = 0.0  # the network insists on class 3 for every position
    probs = torch.softmax(logits, -1)
    assert float(probs[0, 0, 0]) == 0.0  # the underflow that triggers the issue
    for s in (0.4, 0.0):
        post = space.posterior(x_t, probs, torch.tensor(0.7), torch.tensor(s))
        torch.testing.assert_close(post, x_t, rtol=0, atol=1e-6)


@pytest.mark.parametrize("transition", TRANSITIONS)
def test_symmetric_edges_prior_and_step_are_symmetric(transition):
    space = _space(transition, symmetric=True)
    g = _gen(4)
    b, n = 3, 6
    prior = space.prior((b, n, n, K), generator=g)
    assert prior.shape == (b, n, n, K)
    assert torch.equal(prior, prior.transpose(1, 2))
    probs = torch.softmax(torch.randn(b, n, n, K, generator=g), -1)
    x_s = space.step(prior, probs, torch.tensor(0.9), torch.tensor(0.5), generator=g)
    assert torch.equal(x_s, x_s.transpose(1, 2))
    assert torch.equal(x_s.sum(-1), torch.ones(b, n, n))
    node_mask = torch.tensor([True] * 4 + [False] * 2)[None].expand(b, n)
    edge_mask = node_mask[:, :, None] & node_mask[:, None, :]
    masked = space.step(prior, probs, torch.tensor(0.9), torch.tensor(0.5), edge_mask, g)
    assert torch.equal(masked, masked.transpose(1, 2))
    assert torch.equal(masked[~edge_mask], torch.zeros_like(masked[~edge_mask]))


def test_symmetric_validate_rejects_non_square():
    with pytest.raises(ValueError, match=r"\(B, N, N, K\)"):
        _space("uniform", symmetric=True).validate(torch.zeros(2, 3, 4, K))


def test_marginal_transition_needs_marginals():
    for bad in (None, torch.ones(K + 1), -MARGINALS):
        with pytest.raises(ValueError, match="marginals"):
            CategoricalSpace(K, LinearSchedule(), "marginal", bad)
    space = CategoricalSpace(K, LinearSchedule(), "marginal", MARGINALS * 7.0)
    torch.testing.assert_close(space.limit, MARGINALS)  # normalised


def test_unknown_transition_and_too_few_classes():
    with pytest.raises(ValueError, match="absorbing, marginal, uniform"):
        CategoricalSpace(K, LinearSchedule(), "gaussian")
    with pytest.raises(ValueError, match="num_classes"):
        CategoricalSpace(1, LinearSchedule())


def test_sample_categorical_frequencies_match_probs():
    probs = torch.tensor([0.5, 0.2, 0.15, 0.1, 0.05])
    n = 50000
    draws = sample_categorical(probs.expand(n, K), _gen(5))
    assert torch.equal(draws.sum(-1), torch.ones(n))
    freq = draws.mean(0)
    tv = 0.5 * float((freq - probs).abs().sum())
    # E|p_hat_k - p_k| ~ sqrt(2 p_k (1 - p_k) / (pi n)) ~ 1.4e-3 per class, so the expected
    # TV is ~3e-3; 0.02 is > 6x that (a wrong inverse CDF, e.g. an off-by-one, gives TV >= 0.05).
    assert tv < 0.02


def test_sample_categorical_respects_unnormalised_and_zero_probs():
    probs = torch.tensor([0.0, 3.0, 0.0, 1.0, 0.0]).expand(20000, K)
    draws = sample_categorical(probs, _gen(6))
    assert float(draws[:, [0, 2, 4]].sum()) == 0.0  # zero-probability classes never drawn
    # Binomial std of the class-1 frequency: sqrt(0.75 * 0.25 / 20000) = 0.003; 5 std = 0.015.
    assert abs(float(draws[:, 1].mean()) - 0.75) < 0.015


def test_symmetric_edges_refuse_a_node_mask():
    """A (B, N) node mask on (B, N, N, K) edges would zero padded rows but not columns."""
    space = CategoricalSpace(3, CosineSchedule(), symmetric=True)
    x = torch.nn.functional.one_hot(torch.zeros(2, 4, 4, dtype=torch.long), 3).float()
    node = torch.tensor([[True, True, False, False], [True, True, True, True]])
    with pytest.raises(ValueError, match=r"\(B, N, N\) pair mask"):
        space.validate(x, node)
    space.validate(x, node[:, :, None] & node[:, None, :])
