"""Tests of rnnstab.identities.induction_check: σ(h_t) = g_t for the two forms of the vanilla RNN.

The identity holds exactly in exact arithmetic, so the measured value is pure rounding. To show that the quantity
measured *can* fail, the test also builds a wrong pre-activation recursion by hand and measures the same
|σ(h_t) − g_t| on it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rnnstab import VanillaRNN
from rnnstab.identities import induction_check

#: σ written in the test, independently of the library.
SIGMA = {
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "relu": torch.relu,
    "sin": torch.sin,
    "gelu": lambda z: 0.5 * z * (1.0 + torch.erf(z / math.sqrt(2.0))),
    "softsign": lambda z: z / (1.0 + z.abs()),
    "hardtanh": lambda z: z.clamp(-1.0, 1.0),
}


def _net(name, *, n=8, m=3, batch=None, dtype=torch.float64, seed=0, norm=1.5):
    """Random network; ‖W‖₂ = norm (numpy) — deliberately > 1/γ for most σ, so nothing is damped away."""
    g = torch.Generator().manual_seed(seed)
    lead = () if batch is None else (batch,)
    W = torch.randn(*lead, n, n, generator=g, dtype=torch.float64)
    W = W * torch.as_tensor(norm / np.linalg.norm(W.numpy(), 2, axis=(-2, -1)))[..., None, None]
    U = torch.randn(*lead, n, m, generator=g, dtype=torch.float64)
    b = torch.randn(*lead, n, generator=g, dtype=torch.float64)
    return VanillaRNN(W.to(dtype), U.to(dtype), b.to(dtype), activation=name)


def _inputs(batch=5, T=30, m=3, *, dtype=torch.float64, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, T, m, generator=g, dtype=torch.float64).to(dtype)
    h0 = 2.0 * torch.randn(batch, 8, generator=g, dtype=torch.float64).to(dtype)
    return x, h0


@pytest.mark.parametrize("with_h0", [False, True])
@pytest.mark.parametrize("name", ["tanh", "sigmoid", "relu", "sin", "gelu", "softsign", "hardtanh"])
def test_induction_check_float64(name, with_h0):
    rnn = _net(name, norm=0.9 if name in ("relu", "gelu") else 1.5)  # unbounded σ: keep the states O(1)
    x, h0 = _inputs()
    value = induction_check(rnn, x, h0=h0 if with_h0 else None)
    assert isinstance(value, float)
    # Pure rounding: at most a few float64 ulps of O(1) states (≈ 1e-16 each); 1e-12 is four orders above that.
    assert 0.0 <= value < 1e-12


@pytest.mark.parametrize("name", ["tanh", "sigmoid", "sin", "softsign", "hardtanh"])
def test_induction_check_float32_bounded(name):
    rnn = _net(name, dtype=torch.float32)
    x, h0 = _inputs(dtype=torch.float32)
    # Bounded σ keep |g_t| ≤ 1, so any rounding difference is a few float32 ulps (6e-8 each) of O(1) values, and
    # σ is 1-Lipschitz-or-less, so it cannot amplify it; 1e-5 is > 100 ulps.
    assert induction_check(rnn, x, h0=h0) < 1e-5


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_induction_check_batched_networks(dtype):
    rnn = _net("tanh", batch=5, dtype=dtype, seed=3)
    x, h0 = _inputs(dtype=dtype)
    # Same bounds as above for the respective dtype.
    assert induction_check(rnn, x, h0=h0) < (1e-5 if dtype == torch.float32 else 1e-12)


@pytest.mark.parametrize("name", ["tanh", "sigmoid", "sin", "gelu"])
def test_induction_check_measures_the_documented_quantity(name):
    # induction_check must be max |σ(h_t) − g_t| over t, batch, units: recompute it from the two runs with σ from
    # the test, and also against a hand-written correct pre-activation recursion.
    rnn = _net(name, norm=0.9)
    x, h0 = _inputs()
    W, U, b = rnn.W, rnn.U, rnn.b
    sigma = SIGMA[name]
    h = h0.clone()
    pre = []
    for t in range(x.shape[1]):
        h = sigma(h) @ W.T + x[:, t] @ U.T + b
        pre.append(h)
    pre = torch.stack(pre, dim=1)
    post = rnn.run(x, h0=h0)
    # Hand recursion vs library: different summation order only, a few ulps (~1e-16) of O(1) states per step;
    # γ‖W‖₂ ≤ 0.9 · 1.13 ≈ 1.02, so over T = 30 steps they grow at most 1.02³⁰ < 2×: far below 1e-12.
    assert float((sigma(pre) - post).abs().max()) < 1e-12
    direct = float((sigma(rnn.run_preactivation(x, h0=h0)) - post).abs().max())
    # σ from the test vs the library's σ differ by rounding only (gelu via erf here, torch's kernel there).
    assert induction_check(rnn, x, h0=h0) == pytest.approx(direct, abs=1e-14)


@pytest.mark.parametrize("name", ["tanh", "sigmoid", "relu", "sin", "gelu"])
def test_the_measured_quantity_can_fail(name):
    # A *wrong* pre-activation recursion that forgets σ inside, h_t = W h_{t-1} + U x_t + b, measured with the same
    # max |σ(h_t) − g_t|: the quantity is far from zero, so a tiny induction_check value is evidence, not a tautology.
    rnn = _net(name, norm=0.9)
    x, h0 = _inputs()
    W, U, b = rnn.W, rnn.U, rnn.b
    sigma = SIGMA[name]
    post = rnn.run(x, h0=h0)

    h = h0.clone()
    wrong = []
    for t in range(x.shape[1]):
        h = h @ W.T + x[:, t] @ U.T + b  # σ missing
        wrong.append(h)
    wrong = torch.stack(wrong, dim=1)
    error = float((sigma(wrong) - post).abs().max())
    # O(1) states with O(1) inputs: the missing nonlinearity shifts them by O(0.1–1); 1e-2 is 10 orders above the
    # float64 rounding level that the correct recursion reaches.
    assert error > 1e-2

    # Another plausible mistake: starting from g_0 = h_0 instead of g_0 = σ(h_0) (h_0 has entries of both signs and
    # magnitude up to ~6, where every σ here differs from the identity by ≫ 1e-2).
    h1_wrong = h0 @ W.T + x[:, 0] @ U.T + b
    assert float((sigma(h1_wrong) - post[:, 0]).abs().max()) > 1e-2


def test_induction_check_with_default_h0_and_single_step():
    rnn = _net("sigmoid")
    x, _ = _inputs(T=1)
    assert induction_check(rnn, x) < 1e-12


# ---------------------------------------------------------------------------------------------------------------
# The IdentityCheck family (rnnstab.identities / optimizers / weightnorm). Each check is tested twice: it passes on
# the true claim, compared with a reference written here (closed form or autograd), and it FAILS on a wrong rule.
# ---------------------------------------------------------------------------------------------------------------

import itertools  # noqa: E402
import json  # noqa: E402

import rnnstab  # noqa: E402
from rnnstab import (  # noqa: E402
    IDENTITIES,
    IdentityCheck,
    InvalidArgumentError,
    check_ema_bias,
    check_ema_unrolled,
    check_momentum_ema,
    check_newton_quadratic,
    check_newton_rnn,
    check_taylor,
    check_weightnorm_gradient,
    check_weightnorm_growth,
    check_wn_bn,
    norm_growth,
    run_identities,
    weightnorm_gradients,
)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_run_identities_all_pass(dtype):
    results = run_identities(seed=0, dtype=dtype)
    assert [r.name for r in results] == list(IDENTITIES)
    for r in results:
        assert isinstance(r, IdentityCheck)
        assert r.passed, (r.name, r.discrepancy, r.tolerance)
        assert r.discrepancy <= r.tolerance
        assert r.details["unit"] and r.details["tolerance_reason"]
        json.dumps(r.to_dict())  # JSON-ready


def test_run_identities_only_and_unknown_name():
    assert [r.name for r in run_identities(only=["wn-bn", "induction"])] == ["wn-bn", "induction"]
    with pytest.raises(InvalidArgumentError, match=r"only.*nope.*wn-bn"):
        run_identities(only=["nope"])


def test_momentum_equals_ema_reference():
    # Independent reference: with α = β, ε = δ(1−β), v^momentum_t = δ·v^EMA_t for any gradient sequence (numpy).
    rng = np.random.default_rng(0)
    beta, delta = 0.8, 0.3
    v_mom = v_ema = np.zeros(3)
    for g in rng.normal(size=(15, 3)):
        v_mom = beta * v_mom + delta * (1 - beta) * g
        v_ema = beta * v_ema + (1 - beta) * g
        np.testing.assert_allclose(v_mom, delta * v_ema, rtol=1e-14, atol=1e-16)
    check = check_momentum_ema(alpha=beta, epsilon=delta * (1 - beta), beta=beta, delta=delta)
    assert check.passed and check.discrepancy < 1e-13
    assert check.details["max_parameter_change"] > 1e-3  # the RNN really trained: the comparison is not vacuous


@pytest.mark.parametrize(("alpha", "epsilon"), [(0.9, 0.02), (0.8, 0.01)])
def test_momentum_ema_can_fail(alpha, epsilon):
    # ε ≠ δ(1−β) or α ≠ β: different trajectories, the check must say FAIL.
    check = check_momentum_ema(alpha=alpha, epsilon=epsilon, beta=0.9, delta=0.1)
    assert not check.passed and check.discrepancy > 100 * check.tolerance


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_momentum_ema_passes_at_every_seed_with_a_rounding_sized_tolerance(dtype):
    eps = torch.finfo(dtype).eps
    for seed in range(50):
        check = check_momentum_ema(seed=seed, dtype=dtype)
        assert check.passed, (seed, check.discrepancy, check.tolerance)
        # 20 steps of O(1) parameters: a rounding bound is tens of ulps, not the 44 000 (float64) of old.
        assert check.tolerance < 200 * eps


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("error", [0.01, 0.001, -0.001])
def test_momentum_ema_fails_when_epsilon_is_slightly_wrong(dtype, error):
    # ε = δ(1−β)(1 + η) scales every momentum step by 1 + η, so to first order the trajectories part by η times the
    # distance travelled (the gradient feedback changes that by an O(1) factor): 0.1 % must fail in float32 too.
    for seed in range(5):
        check = check_momentum_ema(seed=seed, dtype=dtype, epsilon=0.01 * (1 + error))
        assert not check.passed and check.discrepancy > 5 * check.tolerance, (seed, check.discrepancy)
        predicted = abs(error) * check.details["max_parameter_change"]
        assert 0.3 * predicted < check.discrepancy < 3 * predicted


def test_ema_unrolled_weights_closed_form():
    check = check_ema_unrolled(beta=0.5, steps=3)
    assert check.passed
    assert check.details["weights"] == [0.125, 0.25, 0.5]
    beta, steps = 0.9, 12
    check = check_ema_unrolled(beta=beta, steps=steps)
    assert check.passed
    assert check.details["weights"] == pytest.approx([(1 - beta) * beta ** (steps - i) for i in range(1, steps + 1)])
    assert check.details["weights_sum"] == pytest.approx(1 - beta**steps, rel=1e-13)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_ema_unrolled_tolerance_is_a_rounding_bound(dtype):
    eps = torch.finfo(dtype).eps
    for seed in range(50):
        check = check_ema_unrolled(seed=seed, dtype=dtype)
        # 10 steps on 60 N(0, 1) gradients (max |g| < 10): two ulps of max |g| per step is < 200 ulps in all.
        assert check.passed and check.tolerance < 200 * eps, (seed, check.discrepancy, check.tolerance)


def test_ema_bias_monte_carlo():
    beta, steps, mean = 0.9, 10, 1.0
    check = check_ema_bias(beta=beta, steps=steps, mean=mean)
    assert check.passed
    low, high = check.details["raw"]["ci"]
    assert low <= (1 - beta**steps) * mean <= high
    low, high = check.details["corrected"]["ci"]
    assert low <= mean <= high
    # The bias is large against the interval: the raw v_t is far from E[g] = 1 (0.349 vs a CI half-width ~0.01).
    assert abs(check.details["raw"]["estimate"] - mean) > 0.3


def test_ema_bias_can_fail_without_correction():
    check = check_ema_bias(bias_correction=False)
    assert not check.passed and check.discrepancy > 50


def _rnn_loss_written_here(params, x, y):
    """The tanh-RNN regression loss, written independently of the library: g_t = tanh(W g_{t-1} + U x_t + b)."""
    W, U, b, V = params
    g = torch.zeros(x.shape[0], W.shape[0], dtype=x.dtype)
    for t in range(x.shape[1]):
        g = torch.tanh(g @ W.T + x[:, t] @ U.T + b)
    return ((g @ V - y) ** 2).mean()


def _taylor_problem(seed):
    """θ₀, the loss written here, its gradient g and gᵀHg by a central difference of the gradient along g."""
    from rnnstab._identity import problem

    params, x, y = problem(seed, torch.float64)
    sizes = [p.numel() for p in params]

    def loss(theta):
        parts = [part.reshape(p.shape) for part, p in zip(torch.split(theta, sizes), params, strict=True)]
        return _rnn_loss_written_here(parts, x, y)

    theta = torch.cat([p.flatten() for p in params])
    grad = torch.func.grad(loss)
    g = grad(theta)
    h = 1e-5
    return theta, loss, g, float(g @ (grad(theta + h * g) - grad(theta - h * g)) / (2 * h))


def test_taylor_curvature_matches_finite_differences():
    check = check_taylor()
    assert check.passed and check.discrepancy < 0.05
    _, _, g, fd = _taylor_problem(0)
    assert check.details["gTHg"] == pytest.approx(fd, rel=1e-7)
    assert check_taylor(exact_hessian=True).details["gTHg"] == pytest.approx(fd, rel=1e-7)
    assert check.details["curvature"] == "positive"
    assert check.details["epsilon_star"] == pytest.approx(float(g @ g) / fd, rel=1e-7)


@pytest.mark.parametrize("seed", [0, 16, 19])
def test_taylor_measures_the_documented_remainder(seed):
    # Recompute, with the loss and gᵀHg written here, the remainder f(θ₀−εg) − f(θ₀) + εgᵀg − ½ε²gᵀHg at the steps
    # the check chose, as a fraction r of ½ε²gᵀHg. Seeds 16 and 19 broke the old fixed-grid slope fit.
    check = check_taylor(seed=seed)
    theta, loss, g, fd = _taylor_problem(seed)
    gg, f0 = float(g @ g), float(loss(theta))
    ratios = []
    for step in check.details["epsilons"]:
        curvature = 0.5 * step**2 * fd
        ratios.append((float(loss(theta - step * g)) - f0 + step * gg - curvature) / curvature)
    # At ‖εg‖ ≈ 1e-4 the curvature term is ≈ 1e-8, so float64 rounding of f (≈ 1e-16) moves r by ≈ 1e-8, and the
    # finite-difference gᵀHg is good to ≈ 1e-9.
    assert check.details["remainder_over_curvature_term"] == pytest.approx(ratios, abs=1e-7)
    # An O(ε³) remainder: doubling ε multiplies R by 8, i.e. r by 2 (the ε⁴ term shifts that by ≈ 2 %).
    assert ratios[1] / ratios[0] == pytest.approx(2.0, rel=0.05)
    assert check.passed and check.discrepancy < 1e-5


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_taylor_passes_and_its_wrong_model_fails_at_every_seed(dtype):
    # Seeds 6, 12, 16, 19, 21, 25, 27 made a fixed-grid slope fit fail on the correct model. From theory, not the
    # code: the second-order model leaves r₀ → 0, the first-order one leaves exactly the curvature term, r₀ → 1.
    for seed in range(100):
        right, wrong = check_taylor(seed=seed, dtype=dtype), check_taylor(seed=seed, dtype=dtype, order=1)
        assert right.passed and right.discrepancy < 0.05, (seed, right.discrepancy)
        assert not wrong.passed and wrong.discrepancy == pytest.approx(1.0, abs=0.05), (seed, wrong.discrepancy)
        assert wrong.discrepancy > 5 * wrong.tolerance


def test_taylor_non_positive_curvature_is_stated():
    check = check_taylor(seed=34)  # this seed's loss curves downwards along −g
    assert check.details["gTHg"] <= 0
    assert check.passed and check.details["curvature"] == "non-positive"
    assert "epsilon_star" not in check.details and "no optimal step" in check.details["statement"]


def test_newton_quadratic_lands_on_the_minimum():
    check = check_newton_quadratic()
    assert check.passed and check.details["f_after"] == pytest.approx(check.details["f_min"], abs=1e-13)
    assert not check_newton_quadratic(step_size=0.5).passed


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_newton_quadratic_passes_at_every_seed_and_misses_by_one_minus_step(dtype):
    # On a quadratic x₀ − s·H⁻¹∇f − x* = (1 − s)(x₀ − x*) exactly, so the miss is linear in 1 − s: the s = 0.5 miss
    # (rounding is 10⁻⁴ of it even in float32) predicts the s = 0.9999 one. 0.9999 must fail, even in float32.
    eps = torch.finfo(dtype).eps
    for seed in range(50):
        check = check_newton_quadratic(seed=seed, dtype=dtype)
        assert check.passed, (seed, check.discrepancy, check.tolerance)
        assert check.tolerance < 1e3 * eps  # κ·dim = 60 times eps times O(1) vectors: tens of ulps, not 10⁴
        near = check_newton_quadratic(seed=seed, dtype=dtype, step_size=0.9999)
        assert not near.passed and near.discrepancy > 3 * near.tolerance, (seed, near.discrepancy, near.tolerance)
    for seed in range(10):
        half = check_newton_quadratic(seed=seed, dtype=dtype, step_size=0.5).discrepancy
        for step in (0.9999, 1.0001):
            miss = check_newton_quadratic(seed=seed, dtype=dtype, step_size=step)
            assert not miss.passed and miss.discrepancy == pytest.approx(2e-4 * half, rel=0.05)


def test_newton_rnn_is_a_report():
    check = check_newton_rnn()
    assert check.passed and check.discrepancy == 0.0 and check.kind == "report"
    d = check.details
    assert math.isfinite(d["loss_before"]) and math.isfinite(d["loss_after"])
    assert d["loss_decreased"] == (d["loss_after"] < d["loss_before"])
    assert d["hessian_eigenvalue_min"] <= d["hessian_eigenvalue_max"]


def test_weightnorm_gradients_against_autograd():
    # A loss written here, autograd through w = g·v/‖v‖ as the reference.
    gen = torch.Generator().manual_seed(5)
    X = torch.randn(30, 4, generator=gen, dtype=torch.float64)

    def loss(w):
        return torch.log1p(torch.exp(X @ w)).mean()

    g = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    v = torch.randn(4, generator=gen, dtype=torch.float64, requires_grad=True)
    auto_g, auto_v = torch.autograd.grad(loss(g * v / v.norm()), (g, v))
    dg, dv = weightnorm_gradients(loss, g.detach(), v.detach())
    assert float(dg) == pytest.approx(float(auto_g), rel=1e-12)
    torch.testing.assert_close(dv, auto_v, rtol=1e-12, atol=1e-15)
    assert abs(float(dv @ v.detach())) < 1e-14
    check = check_weightnorm_gradient()
    assert check.passed and check.details["cosine_grad_v_v"] < 1e-13


@pytest.mark.parametrize("g", [0.0, 1e-200, -3.0])
def test_weightnorm_gradients_at_a_zero_or_tiny_scale_and_a_huge_direction(g):
    # M_w = I − wwᵀ/‖w‖² is 0/0 at g = 0 (and ‖w‖² underflows at g = 1e-200): ∇_v L came out NaN, where autograd
    # through w = g·v/‖v‖ gives 0 (or 1e-200 entries); a v of 1e200 entries overflowed ‖v‖ the same way
    gen = torch.Generator().manual_seed(2)
    X = torch.randn(20, 3, generator=gen, dtype=torch.float64)
    y = torch.randn(20, generator=gen, dtype=torch.float64)

    def loss(w):
        return ((torch.tanh(X @ w) - y) ** 2).mean()

    scale = torch.tensor(g, dtype=torch.float64, requires_grad=True)
    v = torch.randn(3, generator=gen, dtype=torch.float64, requires_grad=True)
    auto_g, auto_v = torch.autograd.grad(loss(scale * v / v.norm()), (scale, v))
    dg, dv = weightnorm_gradients(loss, scale.detach(), v.detach())
    assert float(dg) == pytest.approx(float(auto_g), rel=1e-13)
    torch.testing.assert_close(dv, auto_v, rtol=1e-12, atol=0)
    huge_g, huge_v = weightnorm_gradients(loss, scale.detach(), 1e200 * v.detach())  # ∇_v L ∝ 1/‖v‖
    assert float(huge_g) == pytest.approx(float(dg), rel=1e-14)
    if g != 1e-200:  # whose ∇_v L, 1e-400, is below float64's range
        torch.testing.assert_close(huge_v * 1e200, dv, rtol=1e-13, atol=0)


def test_weightnorm_gradient_can_fail_without_projection():
    assert not check_weightnorm_gradient(project=False).passed


def test_norm_growth_pythagoras_and_can_fail():
    v = torch.tensor([3.0, 4.0], dtype=torch.float64)
    actual, predicted = norm_growth(v, torch.tensor([-0.8, 0.6], dtype=torch.float64))  # Δv ⟂ v, c = 0.2
    assert actual == pytest.approx(5 * math.sqrt(1.04), rel=1e-15) and predicted == pytest.approx(actual, rel=1e-15)
    actual, predicted = norm_growth(v, 0.2 * v)  # Δv ∥ v: ‖v‖ grows by 1.2, not √1.04
    assert actual == pytest.approx(6.0) and abs(actual - predicted) > 0.8
    check = check_weightnorm_growth()
    norms = check.details["v_norms"]
    assert check.passed and all(b >= a for a, b in itertools.pairwise(norms))


def test_wn_bn_exact_when_whitened_and_can_fail():
    check = check_wn_bn()
    assert check.passed and check.discrepancy < 1e-12
    assert not check_wn_bn(whiten=False).passed


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: check_momentum_ema(alpha=0.0), "alpha"),
        (lambda: check_momentum_ema(alpha=1.0), "alpha"),
        (lambda: check_momentum_ema(beta=1.5), "beta"),
        (lambda: check_momentum_ema(epsilon=0.0), "epsilon"),
        (lambda: check_momentum_ema(delta=-0.1), "delta"),
        (lambda: check_ema_unrolled(beta=-0.5), "beta"),
        (lambda: check_ema_bias(beta=1.0), "beta"),
        (lambda: check_weightnorm_growth(lr=0.0), "lr"),
        (lambda: check_newton_quadratic(step_size=-1.0), "step_size"),
        (lambda: check_taylor(order=3), "order"),
        (lambda: run_identities(dtype="float16"), "dtype"),
    ],
)
def test_bad_arguments_name_the_argument(call, name):
    with pytest.raises(InvalidArgumentError, match=name):
        call()


def test_public_names_exported():
    for name in ["IdentityCheck", "run_identities", "check_momentum_ema", "weightnorm_gradients", "IDENTITIES"]:
        assert name in rnnstab.__all__


@pytest.mark.parametrize("name", list(IDENTITIES))
def test_every_check_takes_a_dtype_name_and_refuses_an_unsupported_dtype(name):
    # each check_* documents "torch.float64 or torch.float32 (or their names)", called on its own too
    assert IDENTITIES[name](dtype="float32").passed
    with pytest.raises(InvalidArgumentError, match="dtype"):
        IDENTITIES[name](dtype=torch.float16)
