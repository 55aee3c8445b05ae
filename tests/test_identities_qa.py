"""Regression tests of defects found in the identity checks (rnnstab.identities / optimizers / weightnorm).

Each test failed before its fix. References are written here: closed forms, autograd through w = g·v/‖v‖, and
deliberately wrong optimizer rules that the checks must catch.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import rnnstab.identities
from rnnstab import (
    IDENTITIES,
    ArgumentTypeError,
    InvalidArgumentError,
    ShapeError,
    check_ema_bias,
    check_ema_unrolled,
    check_momentum_ema,
    check_taylor,
    check_weightnorm_gradient,
    check_weightnorm_growth,
    check_wn_bn,
    make_optimizer,
    norm_growth,
    run_identities,
    weightnorm_gradients,
)
from rnnstab._checks import boolean
from rnnstab.cli import app
from rnnstab.identities import check_optimal_step
from rnnstab.optimizers import Adam, Momentum, RunningAverage

runner = CliRunner()
DTYPES = [torch.float64, torch.float32]


# --- the checks must exercise the optimizers that `rnnstab train` uses ------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_momentum_ema_fails_when_the_shipped_momentum_rule_is_0_1_percent_off(monkeypatch, dtype):
    # The check used to re-implement both rules inline, so a wrong Momentum class passed it.
    def wrong(self, i, grad):
        self.velocity[i] = self.alpha * self.velocity[i] + 1.001 * self.lr * grad
        return self.velocity[i]

    monkeypatch.setattr(Momentum, "delta", wrong)
    check = check_momentum_ema(dtype=dtype)
    # 0.1 % of every step parts the trajectories by ≈ 0.1 % of the distance travelled: ≥ 20 × the rounding tolerance.
    assert not check.passed and check.discrepancy > 10 * check.tolerance, (check.discrepancy, check.tolerance)


@pytest.mark.parametrize("dtype", DTYPES)
def test_ema_checks_fail_when_the_shipped_running_average_is_wrong(monkeypatch, dtype):
    def wrong(self, i, grad):  # weight 1.01 (1−β) on the new gradient
        self.average[i] = self.beta * self.average[i] + 1.01 * (1 - self.beta) * grad
        return self.lr * self.average[i]

    monkeypatch.setattr(RunningAverage, "delta", wrong)
    assert not check_momentum_ema(dtype=dtype).passed
    unrolled = check_ema_unrolled(dtype=dtype)
    # v_t is 1 % off Σ(1−β)β^(t−i)g_i, i.e. ≈ 1e-3 for O(0.1) averages: far above 2·steps·eps·max|g| (≤ 1e-5).
    assert not unrolled.passed and unrolled.discrepancy > 1e-4


@pytest.mark.parametrize("seed", range(3))
def test_ema_bias_fails_on_a_1_percent_wrong_adam_bias_correction(monkeypatch, seed):
    # The check used to divide by 1 − β^t itself, so a wrong Adam correction passed it. Here m̂ = m / (1.01 (1 − β₁^t)):
    # E[m̂] = 0.990 E[g], while the standard error of m̂ is sd(m_t)/((1 − β^t)√N) with
    # sd(m_t)² = (1−β)/(1+β)·(1 − β^(2t)): ≈ 1.0e-3 at β = 0.9, t = 10, N = 10⁵, so the bias is ≈ 9.5 standard errors.
    def wrong(self, i):
        return self.first[i] / (1.01 * (1 - self.beta1**self.t)), self.second[i] / (1 - self.beta2**self.t)

    monkeypatch.setattr(Adam, "moments", wrong, raising=False)
    check = check_ema_bias(seed=seed)
    assert not check.passed and check.discrepancy > 6, check.discrepancy


def test_ema_bias_uses_adams_first_moment_with_and_without_correction():
    beta, steps, mean = 0.9, 10, 1.0
    factor = 1 - beta**steps
    right = check_ema_bias(beta=beta, steps=steps, mean=mean)
    assert right.passed
    # the corrected estimate is the raw one divided by 1 − β^t (closed form), up to rounding
    assert right.details["corrected"]["estimate"] == pytest.approx(right.details["raw"]["estimate"] / factor, 1e-12)
    raw = check_ema_bias(beta=beta, steps=steps, mean=mean, bias_correction=False)
    assert raw.details["corrected"]["estimate"] == pytest.approx(raw.details["raw"]["estimate"], rel=1e-15)
    assert not raw.passed


@pytest.mark.parametrize(
    ("options", "error", "name"),
    [
        ({"samples": 1}, InvalidArgumentError, "samples"),  # was a NaN standard error and a silent FAIL
        ({"mean": math.nan}, InvalidArgumentError, "mean"),  # was a NaN discrepancy and a silent FAIL
        ({"mean": "1"}, ArgumentTypeError, "mean"),  # was a raw TypeError from torch
    ],
)
def test_ema_bias_refuses_bad_arguments(options, error, name):
    with pytest.raises(error, match=name):
        check_ema_bias(**options)


# --- wn-bn: exact whitening whatever the mixing's conditioning ------------------------------------------------------


@pytest.mark.parametrize("seed", [31, 41, 55, 61, 63, 78, 84])
def test_wn_bn_passes_at_seeds_with_an_ill_conditioned_mixing(seed):
    # One whitening pass left cov = I + O(eps·κ²): these seeds (κ up to ≈ 600) failed by up to 63 × in float64.
    check = check_wn_bn(seed=seed)
    assert check.passed and check.discrepancy < 0.1 * check.tolerance, (check.discrepancy, check.tolerance)
    assert not check_wn_bn(seed=seed, whiten=False).passed


# --- weightnorm-growth: a diverged run must not pass ----------------------------------------------------------------


def test_weightnorm_growth_fails_when_the_norms_overflow():
    # lr = 1e300 sends ‖v‖ to inf and then NaN; Python's max() dropped the NaN gap and the check said PASS with 0.
    check = check_weightnorm_growth(lr=1e300)
    assert not all(math.isfinite(n) for n in check.details["v_norms"])
    assert not check.passed and not math.isfinite(check.discrepancy)
    assert json.loads(json.dumps(check.to_dict()))["discrepancy"] is None


# --- weightnorm_gradients / norm_growth: bad input is refused, not answered wrongly ----------------------------------


def test_weightnorm_gradients_refuses_a_matrix_v():
    # A matrix v used to return a 3×3 "∇_g L" and a ∇_v L off by ≈ 3 from autograd through g·V/‖V‖_F, silently.
    V = torch.randn(3, 3, dtype=torch.float64)
    with pytest.raises(ShapeError, match="v must be 1-D"):
        weightnorm_gradients(lambda w: (w**3).sum(), torch.tensor(2.0, dtype=torch.float64), V)
    with pytest.raises(ShapeError, match="g must be 0-D"):
        weightnorm_gradients(lambda w: (w**3).sum(), torch.ones(1, dtype=torch.float64), V[0])


def test_weightnorm_gradients_takes_a_number_g_and_refuses_zero_v():
    v = torch.tensor([3.0, 4.0], dtype=torch.float64)
    loss = lambda w: (w**3).sum()  # noqa: E731
    # w = 2·(0.6, 0.8) = (1.2, 1.6); ∇_w L = 3w² = (4.32, 7.68); ∇_g L = ∇_w L·v/‖v‖ = 2.592 + 6.144 = 8.736
    dg, dv = weightnorm_gradients(loss, 2, v)
    assert float(dg) == pytest.approx(8.736, rel=1e-14)
    # M_w ∇_w L = ∇_w L − (∇_g L) v/‖v‖ = (4.32 − 5.2416, 7.68 − 6.9888); times g/‖v‖ = 0.4
    assert dv.tolist() == pytest.approx([0.4 * (4.32 - 5.2416), 0.4 * (7.68 - 6.9888)], rel=1e-13)
    with pytest.raises(InvalidArgumentError, match="v must be non-zero"):
        weightnorm_gradients(loss, 2.0, torch.zeros(2, dtype=torch.float64))
    with pytest.raises(ArgumentTypeError, match="g must be a number"):
        weightnorm_gradients(loss, "2", v)


def test_norm_growth_refuses_mismatched_shapes_and_zero_v():
    with pytest.raises(ShapeError, match="delta_v must have the shape of v"):
        norm_growth(torch.ones(3), torch.ones(4))
    with pytest.raises(InvalidArgumentError, match="v must be non-zero"):
        norm_growth(torch.zeros(3), torch.ones(3))


# --- run_identities / CLI argument checks ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"seed": 2**70}, InvalidArgumentError, r"seed must be ≤ 2\^63 - 1"),  # was a raw ValueError from torch
        ({"seed": 1.5}, ArgumentTypeError, "seed must be an integer"),  # was a raw RuntimeError from torch
        ({"only": "taylor"}, ArgumentTypeError, "only must be a list"),  # was split into 't', 'a', 'y', …
    ],
)
def test_run_identities_refuses_bad_arguments(options, error, match):
    with pytest.raises(error, match=match):
        run_identities(**options)


def test_run_identities_takes_every_seed_of_0_to_2_63_minus_1():
    assert [c.passed for c in run_identities(seed=0, only=["induction"])] == [True]
    assert [c.passed for c in run_identities(seed=2**63 - 1, only=["induction"])] == [True]


def test_cli_huge_seed_is_one_error_line_and_exit_2():
    # It was a traceback and exit code 1, the code for "a check failed".
    result = runner.invoke(app, ["identities", "--seed", str(10**20), "--only", "induction"])
    assert result.exit_code == 2
    assert result.output.strip().startswith("error: --seed must be ≤ 2^63 - 1") and "Traceback" not in result.output


@pytest.mark.parametrize("order", [True, 2.0])
def test_taylor_order_must_be_an_integer(order):
    # True == 1 silently ran the deliberately wrong first-order model; 2.0 was accepted as 2
    with pytest.raises(ArgumentTypeError, match="order must be an integer"):
        check_taylor(order=order)


# --- taylor: the tolerance is what r₀ can resolve, not a flat 0.1 ----------------------------------------------------


def _curvature_off_by(monkeypatch, fraction):
    """Make every gᵀHg (f(x₀), g, gᵀHg from autograd) wrong by the given fraction."""
    right = rnnstab.identities._gradient_and_curvature

    def wrong(*args, **kwargs):
        f0, g, gHg = right(*args, **kwargs)
        return f0, g, gHg * (1 + fraction)

    monkeypatch.setattr(rnnstab.identities, "_gradient_and_curvature", wrong)


@pytest.mark.parametrize(("dtype", "fraction"), [(torch.float64, 1e-3), (torch.float64, -1e-3), (torch.float32, 0.1)])
@pytest.mark.parametrize("seed", [0, 51, 55])
def test_taylor_fails_on_a_slightly_wrong_curvature(monkeypatch, dtype, fraction, seed):
    # A flat tolerance of 0.1 passed a gᵀHg 5 % off in float64, where r₀ is resolved to ≈ 1e-7. With gᵀHg' = (1+δ)gᵀHg
    # the remainder over ½ε²gᵀHg' tends to −δ/(1+δ) (closed form), far above what r₀ resolves in float64.
    _curvature_off_by(monkeypatch, fraction)
    check = check_taylor(seed=seed, dtype=dtype)
    assert not check.passed, (check.discrepancy, check.tolerance)
    if dtype == torch.float64:
        assert check.discrepancy == pytest.approx(abs(fraction) / (1 + fraction), rel=0.01)
        assert check.discrepancy > 100 * check.tolerance


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_taylor_tolerance_scales_with_the_dtype_and_the_right_model_passes(dtype):
    # Seeds 51 and 55 have a large ε⁴ coefficient (b ≈ 20–24), 34 and 51 curve downwards along −g.
    for seed in (0, 16, 19, 34, 51, 55):
        check = check_taylor(seed=seed, dtype=dtype)
        assert check.passed and check.discrepancy < 0.5 * check.tolerance, (seed, check.discrepancy, check.tolerance)
        # float64 resolves r₀ to ≈ 1e-7 at ‖εg‖ ≈ 1e-4: its tolerance must be orders below the old flat 0.1
        assert torch.finfo(dtype).eps ** 0.5 <= check.tolerance < (1e-5 if dtype == torch.float64 else 0.1)
        assert check.details["extrapolation_error"] > 0 and "estimated error" in check.details["tolerance_reason"]


# --- optimal-step: ε* = gᵀg/gᵀHg is checked, not only reported -------------------------------------------------------


def test_optimal_step_is_a_check_of_its_own_in_the_library_and_the_cli():
    assert "optimal-step" in IDENTITIES
    (check,) = run_identities(only=["optimal-step"], dtype="float32")
    assert check.name == "optimal-step" and check.passed
    result = runner.invoke(app, ["identities", "--json", "--only", "optimal-step"])
    assert result.exit_code == 0, result.output
    (record,) = json.loads(result.stdout)
    assert record["name"] == "optimal-step" and record["passed"] is True
    result = runner.invoke(app, ["identities", "--only", "taylor,optimal-step"])
    assert result.exit_code == 0 and "optimal-step" in result.output and "2/2 passed" in result.output


@pytest.mark.parametrize("seed", [0, 7])
def test_optimal_step_is_the_exact_line_minimiser(seed):
    # Reference: on f(x) = ½xᵀAx − bᵀx the line φ(ε) = f(x₀ − εg) is an exact parabola, so three values of φ give its
    # minimiser without gᵀHg: ε = h (φ(−h) − φ(h)) / (2 (φ(h) − 2φ(0) + φ(−h))), with g = Ax₀ − b by hand.
    _, A, b, x0, _ = rnnstab.identities._quadratic(6, seed, torch.float64)
    g = A @ x0 - b
    h = float(g @ g) / float(g @ A @ g)  # any h of the minimiser's size keeps the cancellation mild

    def phi(step):
        x = x0 - step * g
        return float(0.5 * x @ A @ x - b @ x)

    reference = h * (phi(-h) - phi(h)) / (2 * (phi(h) - 2 * phi(0.0) + phi(-h)))
    check = check_optimal_step(seed=seed)
    assert check.passed and check.details["epsilon_star"] == pytest.approx(reference, rel=1e-10)
    assert check.details["f_at_epsilon_star"] < min(phi(0.999 * reference), phi(1.001 * reference))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("factor", [2.0, 1.001, 0.999])
def test_optimal_step_fails_on_a_wrong_formula(monkeypatch, dtype, factor):
    # ∇f(x₀ − εg)ᵀg = gᵀg − ε gᵀAg, so ε = k·gᵀg/gᵀAg leaves (1 − k)gᵀg: the discrepancy is |1 − k| (closed form).
    monkeypatch.setattr(rnnstab.identities, "_optimal_step", lambda gg, gHg: factor * gg / gHg)
    for seed in range(5):
        check = check_optimal_step(seed=seed, dtype=dtype)
        assert not check.passed and check.discrepancy > 10 * check.tolerance, (seed, check.discrepancy)
        assert check.discrepancy == pytest.approx(abs(1 - factor), rel=1e-3)
    assert [c.passed for c in run_identities(only=["optimal-step"], dtype=dtype)] == [False]
    # the ε* that the taylor row reports is the formula checked here
    taylor = check_taylor()
    assert taylor.details["epsilon_star"] == pytest.approx(factor * taylor.details["gTg"] / taylor.details["gTHg"])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_optimal_step_passes_at_every_seed_with_a_rounding_sized_tolerance(dtype):
    eps = torch.finfo(dtype).eps
    for seed in range(100):
        check = check_optimal_step(seed=seed, dtype=dtype)
        assert check.passed and check.discrepancy < 0.2 * check.tolerance, (seed, check.discrepancy, check.tolerance)
        # (dim + 2)·eps times O(κ) = O(10): hundreds of ulps, so a 0.1 % wrong ε* fails even in float32
        assert check.tolerance < 1e3 * eps


# --- every check validates its seed ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(IDENTITIES))
@pytest.mark.parametrize(
    ("seed", "error", "match"),
    [
        (1.5, ArgumentTypeError, "seed must be an integer"),  # was a raw RuntimeError from torch
        (10**30, InvalidArgumentError, r"seed must be ≤ 2\^63 - 1, got 10+$"),  # was a raw ValueError
        (-1, InvalidArgumentError, "seed must be ≥ 0, got -1$"),
    ],
)
def test_every_check_refuses_a_bad_seed_by_name(name, seed, error, match):
    with pytest.raises(error, match=match):
        IDENTITIES[name](seed=seed)


def test_checks_take_every_seed_of_0_to_2_63_minus_1():
    for seed in (0, 2**63 - 1, np.int64(3)):
        assert check_wn_bn(seed=seed).passed and check_optimal_step(seed=seed).passed


# --- boolean options refuse truthy non-bools -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: check_taylor(exact_hessian="no"), "exact_hessian"),
        (lambda: check_weightnorm_gradient(project="no"), "project"),
        (
            lambda: weightnorm_gradients(lambda w: (w**3).sum(), 2.0, torch.ones(2, dtype=torch.float64), project=0),
            "project",
        ),
        (lambda: check_wn_bn(whiten="no"), "whiten"),  # whitened the batch and passed
        (lambda: check_ema_bias(bias_correction="no"), "bias_correction"),
        (lambda: Adam([torch.zeros(2)], lr=0.1, beta1=0.9, beta2=0.99, bias_correction=None), "bias_correction"),
        (lambda: make_optimizer("adam", [torch.zeros(2)], lr=0.1, bias_correction="False"), "bias_correction"),
        (lambda: make_optimizer("sgd", [torch.zeros(2)], lr=0.1, bias_correction="False"), "bias_correction"),
    ],
)
def test_boolean_options_refuse_non_bools(call, name):
    with pytest.raises(ArgumentTypeError, match=f"^{name} must be True or False, got "):
        call()


def test_boolean_options_take_numpy_bools_and_report_python_bools():
    right, wrong = check_wn_bn(whiten=np.True_), check_wn_bn(whiten=np.False_)
    assert right.passed and not wrong.passed
    assert wrong.details["whiten"] is False and json.loads(json.dumps(wrong.to_dict()))["details"]["whiten"] is False
    assert not check_ema_bias(bias_correction=np.bool_(False)).passed


@pytest.mark.parametrize("value", [True, False, np.True_, np.False_])
def test_checks_boolean_accepts_bools(value):
    assert boolean("flag", value) is bool(value)


@pytest.mark.parametrize("value", [1, 0, 1.0, "yes", "", None, np.int64(1), torch.tensor(True), [True]])
def test_checks_boolean_refuses_everything_else(value):
    with pytest.raises(ArgumentTypeError, match="flag must be True or False"):
        boolean("flag", value)
