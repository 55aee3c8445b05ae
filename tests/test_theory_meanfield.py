import math

import pytest
import torch
from scipy import integrate

import rnnstab

F64 = torch.float64


def quad_expectation(f, variance: float, kinks=()) -> float:
    """E[f(√q z)] by adaptive quadrature (scipy's QUADPACK), told where the kinks are — independent of the
    Gauss–Hermite / Gauss–Legendre code under test."""
    s = math.sqrt(variance)

    def integrand(z: float) -> float:
        return float(f(torch.tensor([s * z], dtype=F64))[0]) * math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)

    points = [k / s for k in kinks if abs(k / s) < 12]
    value, _ = integrate.quad(integrand, -12, 12, points=points or None, limit=400, epsabs=1e-14, epsrel=1e-13)
    return value


@pytest.mark.parametrize("name", rnnstab.activation_names())
@pytest.mark.parametrize("variance", [0.05, 0.8, 6.0])
def test_gaussian_expectations_of_every_registry_activation(name, variance):
    act = rnnstab.get_activation(name)
    for f in (lambda x: act.fn(x) ** 2, lambda x: act.derivative(x) ** 2):
        got = rnnstab.gaussian_expectation(f, variance, breakpoints=act.breakpoints)
        expected = quad_expectation(f, variance, act.breakpoints)
        # Both are converged quadratures of a piecewise-analytic integrand: agreement to QUADPACK's own 1e-13.
        assert got == pytest.approx(expected, rel=1e-11, abs=1e-13)


def test_closed_forms():
    # E[z²] = 1, E[relu(√q z)²] = q/2, E[1{√q z > 0}] = 1/2, E[sign(z)·…]: exact values.
    assert rnnstab.gaussian_expectation(lambda x: x**2, 3.0) == pytest.approx(3.0, rel=1e-14)
    assert rnnstab.gaussian_expectation(lambda x: torch.relu(x) ** 2, 2.5, breakpoints=[0.0]) == pytest.approx(1.25)
    hardtanh_slope = rnnstab.gaussian_expectation(lambda x: ((x > -1) & (x < 1)).to(x.dtype), 4.0, breakpoints=[-1, 1])
    assert hardtanh_slope == pytest.approx(math.erf(0.5 / math.sqrt(2)), rel=1e-13)  # P(|2z| < 1)
    assert rnnstab.gaussian_expectation(torch.cos, 0.0) == 1.0


def test_a_kink_the_caller_did_not_declare_falls_back_to_fine_panels():
    # hardtanh' has jumps at ±1; without breakpoints Gauss–Hermite is off by ~1e-2, the convergence check notices
    # and switches to panels of width 1/16 (error O(h²) for a jump straddled by a panel, here < 1e-3).
    f = lambda x: ((x > -1) & (x < 1)).to(x.dtype)  # noqa: E731
    got = rnnstab.gaussian_expectation(f, 4.0)
    assert got == pytest.approx(math.erf(0.5 / math.sqrt(2)), abs=1e-3)


def test_relu_closed_forms():
    # relu: E[relu(√q z)²] = q/2, so q* = σ²_in/(1 − g²/2) for g < √2, and χ = g²/2 for any q.
    mf = rnnstab.mean_field("relu", gain=1.2, input_variance=0.3)
    assert mf.q_star == pytest.approx(0.3 / (1 - 0.72), rel=1e-12)
    assert mf.chi == pytest.approx(0.72, rel=1e-14)
    assert mf.lyapunov_max_per_step == pytest.approx(0.5 * math.log(0.72))
    assert mf.depth_scale_steps == pytest.approx(-1 / math.log(0.72))
    assert mf.regime == "ordered"
    above = rnnstab.mean_field("relu", gain=1.5, input_variance=0.3)
    assert math.isinf(above.q_star) and above.chi == pytest.approx(1.125) and above.regime == "chaotic"
    assert rnnstab.mean_field("relu", gain=1.0).chi == pytest.approx(0.5)  # q* = 0: the limit q → 0⁺, not σ'(0)²
    assert rnnstab.critical_gain("relu") == pytest.approx(math.sqrt(2), rel=1e-12)


def test_the_depth_scale_is_a_positive_e_folding_length_in_both_phases_and_infinite_at_chi_one():
    # It was −1/log χ: −1.862 steps for tanh at g = 3, −8.49 for relu at g = 1.5, and −9e15 at relu's critical gain,
    # where χ = 1 up to rounding. ξ = 1/|log χ|; the regime says whether squared gradients shrink or grow.
    ordered = rnnstab.mean_field("relu", gain=1.2)
    assert ordered.depth_scale_steps == pytest.approx(-1 / math.log(0.72)) and ordered.regime == "ordered"
    chaotic = rnnstab.mean_field("relu", gain=1.5, input_variance=1.0)
    assert chaotic.depth_scale_steps == pytest.approx(1 / math.log(1.125)) and chaotic.regime == "chaotic"
    tanh = rnnstab.mean_field("tanh", gain=3.0, input_variance=1.0)
    assert tanh.depth_scale_steps == pytest.approx(1 / math.log(tanh.chi)) and tanh.depth_scale_steps > 0
    critical = rnnstab.mean_field("relu", gain=math.sqrt(2))
    assert critical.regime == "critical" and critical.depth_scale_steps == math.inf


@pytest.mark.parametrize("gain", [0.5, 0.9, 1.0])
def test_tanh_without_input_below_one_has_q_star_zero(gain):
    mf = rnnstab.mean_field("tanh", gain=gain)
    assert mf.q_star == 0.0
    assert mf.chi == pytest.approx(gain**2, rel=1e-14)  # tanh'(0) = 1
    assert mf.lyapunov_max_per_step == pytest.approx(math.log(gain), abs=1e-14)
    assert mf.regime == ("critical" if gain == 1.0 else "ordered")


@pytest.mark.parametrize(("gain", "input_variance"), [(1.3, 0.0), (2.0, 0.0), (3.0, 0.5), (0.8, 1.0)])
def test_tanh_fixed_point_and_chi_against_quadpack(gain, input_variance):
    mf = rnnstab.mean_field("tanh", gain=gain, input_variance=input_variance)
    tanh2 = lambda x: torch.tanh(x) ** 2  # noqa: E731
    sech4 = lambda x: (1 - torch.tanh(x) ** 2) ** 2  # noqa: E731
    assert mf.q_star > 0
    assert gain**2 * quad_expectation(tanh2, mf.q_star) + input_variance == pytest.approx(mf.q_star, rel=1e-11)
    assert mf.chi == pytest.approx(gain**2 * quad_expectation(sech4, mf.q_star), rel=1e-11)
    if input_variance == 0:
        # Poole et al. 2016 (σ_b = 0): every g > 1 is chaotic.
        assert mf.chi > 1 and mf.regime == "chaotic"


def test_critical_gains():
    assert rnnstab.critical_gain("tanh") == pytest.approx(1.0, abs=1e-12)
    assert rnnstab.critical_gain("identity") == pytest.approx(1.0, abs=1e-12)
    assert rnnstab.critical_gain("hardtanh") == pytest.approx(1.0, abs=1e-9)
    # The scaled family tanh(x/2) has γ = 1/2: χ = g²/4 at q* = 0, so g_c = 2.
    assert rnnstab.critical_gain(rnnstab.get_activation("tanh", gamma=0.5)) == pytest.approx(2.0, abs=1e-9)
    # Input noise suppresses chaos (Molgedey, Schuchhardt & Schuster 1992): g_c moves above 1, and χ(g_c) = 1.
    for variance in (0.1, 1.0):
        g_c = rnnstab.critical_gain("tanh", input_variance=variance)
        assert g_c > 1
        assert rnnstab.mean_field("tanh", gain=g_c, input_variance=variance).chi == pytest.approx(1.0, abs=1e-9)
    assert rnnstab.critical_gain("tanh", input_variance=1.0) > rnnstab.critical_gain("tanh", input_variance=0.1)


def test_critical_delta_places_the_transition_in_delta():
    assert rnnstab.critical_delta("tanh") == pytest.approx(2.0, abs=1e-12)  # γ = 1, g_c = 1, ‖W₀‖₂ → 2
    assert rnnstab.critical_delta("relu", init="orthogonal") == pytest.approx(math.sqrt(2), rel=1e-12)
    g_c = rnnstab.critical_gain("sigmoid", input_variance=0.5)
    assert rnnstab.critical_delta("sigmoid", input_variance=0.5) == pytest.approx(0.25 * g_c * 2, rel=1e-12)
    with pytest.raises(rnnstab.InvalidArgumentError, match="init"):
        rnnstab.critical_delta("tanh", init="identity")


def test_mean_field_accepts_callables_and_names_its_activation():
    mf = rnnstab.mean_field(torch.tanh, gain=2.0)
    assert mf.lyapunov_max_per_step == pytest.approx(rnnstab.mean_field("tanh", gain=2.0).lyapunov_max_per_step)
    assert rnnstab.mean_field(rnnstab.get_activation("sigmoid", gamma=1.0), gain=1.0).activation == "sigmoid[γ=1]"


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: rnnstab.mean_field("tanh", gain=0.0), "gain"),
        (lambda: rnnstab.mean_field("tanh", gain=-1.0), "gain"),
        (lambda: rnnstab.mean_field("tanh", gain=1.0, input_variance=-0.1), "input_variance"),
        (lambda: rnnstab.mean_field("tanh", gain=1.0, input_variance=math.inf), "input_variance"),
        (lambda: rnnstab.mean_field("nope", gain=1.0), "valid names"),
        (lambda: rnnstab.critical_gain("tanh", input_variance=-1.0), "input_variance"),
        (lambda: rnnstab.gaussian_expectation(torch.tanh, -1.0), "variance"),
        (lambda: rnnstab.gaussian_expectation(torch.tanh, math.nan), "variance"),
    ],
)
def test_bad_arguments_name_themselves(call, match):
    with pytest.raises(rnnstab.InvalidArgumentError, match=match):
        call()


def test_gaussian_expectation_refuses_a_non_callable_by_name():
    # a raw "TypeError: 'int' object is not callable" from inside the quadrature
    with pytest.raises(rnnstab.ArgumentTypeError, match="f must be a function of a tensor, got int"):
        rnnstab.gaussian_expectation(3, 1.0)
