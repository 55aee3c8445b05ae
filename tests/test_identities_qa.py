"""Regression tests of defects found in the identity checks (rnnstab.identities / optimizers / weightnorm).

Each test failed before its fix. References are written here: closed forms, autograd through w = g·v/‖v‖, and
deliberately wrong optimizer rules that the checks must catch.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from rnnstab import (
    ArgumentTypeError,
    InvalidArgumentError,
    ShapeError,
    check_ema_bias,
    check_ema_unrolled,
    check_momentum_ema,
    check_taylor,
    check_weightnorm_growth,
    check_wn_bn,
    norm_growth,
    run_identities,
    weightnorm_gradients,
)
from rnnstab.cli import app
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
        ({"seed": 2**70}, InvalidArgumentError, "seed must be in"),  # was a raw ValueError from torch
        ({"seed": 1.5}, ArgumentTypeError, "seed must be an integer"),  # was a raw RuntimeError from torch
        ({"only": "taylor"}, ArgumentTypeError, "only must be a list"),  # was split into 't', 'a', 'y', …
    ],
)
def test_run_identities_refuses_bad_arguments(options, error, match):
    with pytest.raises(error, match=match):
        run_identities(**options)


def test_run_identities_keeps_torchs_whole_seed_range():
    assert [c.passed for c in run_identities(seed=-1, only=["induction"])] == [True]
    assert [c.passed for c in run_identities(seed=2**64 - 1, only=["induction"])] == [True]


def test_cli_huge_seed_is_one_error_line_and_exit_2():
    # It was a traceback and exit code 1, the code for "a check failed".
    result = runner.invoke(app, ["identities", "--seed", str(10**20), "--only", "induction"])
    assert result.exit_code == 2
    assert result.output.strip().startswith("error: --seed must be in") and "Traceback" not in result.output


@pytest.mark.parametrize("order", [True, 2.0])
def test_taylor_order_must_be_an_integer(order):
    # True == 1 silently ran the deliberately wrong first-order model; 2.0 was accepted as 2
    with pytest.raises(ArgumentTypeError, match="order must be an integer"):
        check_taylor(order=order)
