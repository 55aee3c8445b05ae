"""Tests of rnnstab.activations against closed forms, scipy root finding and torch autograd.

Every reference value is computed here, independently of the library: γ from the closed forms (with the GELU and
SiLU maxima located analytically / by scipy's brentq), σ' from torch autograd of σ, and sup|σ'| from a dense grid.
"""

from __future__ import annotations

import math
import uuid

import numpy as np
import pytest
import torch
from scipy.optimize import brentq

import rnnstab
from rnnstab import Activation, ArgumentTypeError, InvalidArgumentError, get_activation, register_activation

BUILTIN_NAMES = (
    "elu",
    "gelu",
    "hardtanh",
    "identity",
    "leaky_relu",
    "relu",
    "sigmoid",
    "silu",
    "sin",
    "softsign",
    "tanh",
)


def _phi(x: float) -> float:
    """Standard normal density."""
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def _Phi(x: float) -> float:
    """Standard normal CDF."""
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _logistic(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _gelu_gamma() -> float:
    # GELU'' = φ(x)(2 − x²) vanishes at x = √2, where GELU' = Φ(√2) + √2 φ(√2) is the global maximum.
    r2 = math.sqrt(2.0)
    return _Phi(r2) + r2 * _phi(r2)


def _silu_gamma() -> float:
    # SiLU'' = s(1 − s)(2 − x tanh(x/2)) vanishes at the root x* > 0 of x tanh(x/2) = 2 (the max of SiLU';
    # the negative root is the minimum, where |SiLU'| ≈ 0.0998 < 1.0998).
    x_star = brentq(lambda x: x * math.tanh(x / 2.0) - 2.0, 1.0, 4.0, xtol=1e-15, rtol=1e-15)
    s = _logistic(x_star)
    return s * (1.0 + x_star * (1.0 - s))


CLOSED_FORM_GAMMA = {
    "tanh": 1.0,
    "sigmoid": 0.25,
    "relu": 1.0,
    "leaky_relu": 1.0,
    "hardtanh": 1.0,
    "softsign": 1.0,
    "identity": 1.0,
    "elu": 1.0,  # α = 1: σ'(x) = eˣ ≤ 1 for x ≤ 0 and 1 for x > 0
    "sin": 1.0,
    "gelu": _gelu_gamma(),
    "silu": _silu_gamma(),
}

#: Points where σ is not differentiable: autograd and the closed-form σ' may legitimately disagree there.
KINKS = {
    "relu": (0.0,),
    "leaky_relu": (0.0,),
    "hardtanh": (-1.0, 1.0),
    "elu": (0.0,),
    "softsign": (0.0,),
}


def _autograd_derivative(fn, x: torch.Tensor) -> torch.Tensor:
    """σ'(x) by torch autograd of σ: the independent reference for every derivative."""
    leaf = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(fn(leaf).sum(), leaf)
    return grad


def _grid_avoiding_kinks(name: str, dtype: torch.dtype) -> torch.Tensor:
    x = torch.cat(
        [
            torch.linspace(-8.0, 8.0, 4001, dtype=torch.float64),
            torch.tensor([-100.0, -30.0, -12.5, 12.5, 30.0, 100.0], dtype=torch.float64),
        ]
    )
    keep = torch.ones_like(x, dtype=torch.bool)
    for kink in KINKS.get(name, ()):
        keep &= (x - kink).abs() > 1e-6
    return x[keep].to(dtype)


# ---------------------------------------------------------------------------------------------------------------
# the registry


def test_registry_names_are_the_documented_ones():
    assert set(BUILTIN_NAMES) <= set(rnnstab.activation_names())
    assert rnnstab.activation_names() == sorted(rnnstab.activation_names())


# ---------------------------------------------------------------------------------------------------------------
# (a) γ against closed forms


def test_closed_form_references_are_what_they_claim():
    # Sanity of the references themselves (textbook values, 4 digits), so a typo here cannot hide a library bug.
    assert CLOSED_FORM_GAMMA["gelu"] == pytest.approx(1.1289, abs=1e-4)
    assert CLOSED_FORM_GAMMA["silu"] == pytest.approx(1.0998, abs=1e-4)


@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_gamma_matches_closed_form(name):
    act = get_activation(name)
    # 1e-10 relative: at the maximiser x* the slope of |σ'| is zero, so an argmax error ε costs only ~|σ'''|ε²/2 in γ;
    # the library's Brent refinement localises x* far better than √1e-10 = 1e-5, and everything is float64.
    assert act.gamma == pytest.approx(CLOSED_FORM_GAMMA[name], rel=1e-10)


@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_argmax_attains_gamma(name):
    act = get_activation(name)
    x = torch.tensor([act.argmax], dtype=torch.float64)
    # Independent evaluation of |σ'(argmax)| via autograd; same 1e-10 justification as above (flat maximum).
    # Kinks are fine here: if argmax sits on one, autograd's one-sided value is still ≤ γ, so check both sides.
    left = _autograd_derivative(act.fn, x - 1e-9).abs().item()
    right = _autograd_derivative(act.fn, x + 1e-9).abs().item()
    assert max(left, right) == pytest.approx(CLOSED_FORM_GAMMA[name], rel=1e-8)


@pytest.mark.parametrize("name", ["gelu", "silu"])
def test_argmax_of_smooth_activations_is_the_analytic_one(name):
    x_star = math.sqrt(2.0) if name == "gelu" else brentq(lambda x: x * math.tanh(x / 2.0) - 2.0, 1.0, 4.0)
    # 1e-6 absolute: the location of a flat maximum is determined only to ~sqrt(float64 eps) ≈ 1.5e-8 in principle,
    # Brent's bounded search stops earlier; 1e-6 still pins it far inside the library's 1e-3 grid cell.
    assert get_activation(name).argmax == pytest.approx(x_star, abs=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# (b) σ' against autograd


@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_derivative_matches_autograd_float64(name):
    act = get_activation(name)
    x = _grid_avoiding_kinks(name, torch.float64)
    got = act.derivative(x)
    want = _autograd_derivative(act.fn, x)
    assert got.dtype == torch.float64
    # Both sides evaluate the same closed formula in float64 with a few roundings each (|σ'| ≤ 1.13),
    # so they agree to a few ulps; 1e-12 relative / 1e-14 absolute leaves a wide margin.
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_derivative_matches_autograd_float32(name):
    act = get_activation(name)
    x64 = _grid_avoiding_kinks(name, torch.float64)
    got = act.derivative(x64.to(torch.float32))
    want = _autograd_derivative(act.fn, x64)
    assert got.dtype == torch.float32
    # float32 unit roundoff is 6e-8; σ' is O(1) and Lipschitz with constant ≤ 1 (|σ''| ≤ 1 for every built-in),
    # so rounding x and a few operations cost well under 1e-6 absolute.
    torch.testing.assert_close(got.to(torch.float64), want, rtol=0, atol=1e-6)


SATURATED = [-40.0, -25.0, -12.0, 12.0, 25.0, 40.0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "name, closed_form",
    [
        ("tanh", lambda x: 1.0 / math.cosh(x) ** 2),
        ("sigmoid", lambda x: _logistic(x) * _logistic(-x)),
    ],
)
def test_saturating_derivatives_keep_their_relative_accuracy(name, closed_form, dtype):
    # Where tanh x (or σ(x)) rounds to ±1, the textbook 1 − tanh² (σ(1 − σ)) cancels to exactly 0; the true σ' is
    # above the smallest normal number here (≥ 7e-35 against 1.2e-38 in float32), and a product of exact zeros
    # reads as a dead Jacobian with log-norm -inf.
    x = torch.tensor(SATURATED, dtype=dtype)
    got = get_activation(name).derivative(x).to(torch.float64)
    want = torch.tensor([closed_form(float(v)) for v in x.tolist()], dtype=torch.float64)
    torch.testing.assert_close(got, want, rtol=8 * torch.finfo(dtype).eps, atol=0)


def test_gelu_derivative_keeps_its_cdf_term_far_left():
    # gelu' = Φ(x) + x·φ(x): written with 1 + erf(x/√2), Φ cancels to exactly 0 for x ≲ -6, which leaves σ' off by
    # Φ(x)/(x·φ(x)) ≈ 1/x² relative (0.25 % at x = -20); erfc keeps Φ to full relative precision.
    x = torch.tensor([-30.0, -20.0, -8.0, -3.0], dtype=torch.float64)
    got = get_activation("gelu").derivative(x)
    want = [0.5 * math.erfc(-v / math.sqrt(2)) + v * math.exp(-v * v / 2) / math.sqrt(2 * math.pi) for v in x.tolist()]
    torch.testing.assert_close(
        got, torch.tensor(want, dtype=torch.float64), rtol=64 * torch.finfo(torch.float64).eps, atol=0
    )


# ---------------------------------------------------------------------------------------------------------------
# (c) the scaled family σ_γ(x) = σ(c x)


def test_scaled_tanh_is_tanh_of_half_x():
    act = get_activation("tanh", gamma=0.5)
    x = torch.linspace(-10, 10, 2001, dtype=torch.float64)
    # Same float64 operations up to the multiplication by c = 0.5 (exact): bitwise-level agreement expected.
    torch.testing.assert_close(act.fn(x), torch.tanh(0.5 * x), rtol=1e-15, atol=1e-15)
    # d/dx tanh(x/2) = (1 − tanh²(x/2)) / 2, closed form; a few ulps apart from the library's formula.
    torch.testing.assert_close(act.derivative(x), 0.5 * (1 - torch.tanh(0.5 * x) ** 2), rtol=1e-13, atol=1e-15)
    assert act(x).equal(act.fn(x))
    assert act.gamma == 0.5
    assert act.scale == 0.5
    assert act.name == "tanh[γ=0.5]"


SCALED_CASES = [
    ("tanh", 0.5),
    ("tanh", 2.0),
    ("sigmoid", 1.0),
    ("sigmoid", 0.1),
    ("relu", 0.7),
    ("hardtanh", 3.0),
    ("softsign", 0.9),
    ("gelu", 1.0),
    ("gelu", 2.5),
    ("silu", 0.8),
    ("sin", 1.5),
    ("elu", 0.3),
]


@pytest.mark.parametrize(("name", "gamma"), SCALED_CASES)
def test_scaled_family_has_requested_gamma(name, gamma):
    base = get_activation(name)
    act = get_activation(name, gamma=gamma)
    assert act.gamma == gamma
    c = gamma / CLOSED_FORM_GAMMA[name]
    # c is a ratio of two float64 numbers, one of them derived numerically to ~1e-10 (see γ tolerance above).
    assert act.scale == pytest.approx(c, rel=1e-10)

    # Grid over [-20, 20] with step h = 1e-4, built from integers so that 0 (the argmax of several σ') is on it.
    h = 1e-4
    x = torch.arange(-200_000, 200_001, dtype=torch.float64) * h
    d = _autograd_derivative(act.fn, x).abs()
    grid_sup = d.max().item()
    # The true sup is γ; a grid point lies within h/2 of the argmax, so for smooth σ the grid max falls short by at
    # most ½ sup|σ_γ''| (h/2)² = ½ c² sup|σ''| (h/2)² ≤ ½ c² (h/2)² (every built-in has |σ''| ≤ 1), plus rounding.
    shortfall = 0.5 * c * c * (h / 2) ** 2 + 1e-13
    assert gamma - shortfall <= grid_sup <= gamma * (1 + 1e-12)

    # The library's own σ_γ' must be c σ'(c x), checked against autograd of σ(c x) (kinks have measure zero here:
    # compare away from them).
    keep = torch.ones_like(x, dtype=torch.bool)
    for kink in KINKS.get(name, ()):
        keep &= (c * x - kink).abs() > 1e-6
    # Same float64 justification as test_derivative_matches_autograd_float64 (leaky_relu is left out of
    # SCALED_CASES because of _LEAKY_BUG).
    torch.testing.assert_close(act.derivative(x[keep]), _autograd_derivative(act.fn, x[keep]), rtol=1e-12, atol=1e-14)
    # and σ_γ(x) = σ(c x): the scale is a true rescaling of the input of the unscaled function. Our c and the
    # library's differ by the ~1e-10 relative error of the derived γ (gelu/silu), which moves σ(c x) by at most
    # |x| c 1e-10 sup|σ'| ≤ 20 · 3 · 1e-10 · 1.13 < 1e-8 on this grid.
    torch.testing.assert_close(act.fn(x[::1000]), base.fn(c * x[::1000]), rtol=0, atol=1e-8)


def test_scaling_a_scaled_activation_rescales_from_scratch():
    act = get_activation("tanh", gamma=0.5).scaled(2.0)
    x = torch.linspace(-5, 5, 101, dtype=torch.float64)
    assert act.gamma == 2.0
    assert act.name == "tanh[γ=2]"
    # tanh(2x): c multiplies (0.5 then 4), both exact in binary, so agreement to ulps.
    torch.testing.assert_close(act.fn(x), torch.tanh(2.0 * x), rtol=1e-15, atol=1e-15)


def test_get_activation_passes_activation_objects_through():
    act = get_activation("sin")
    assert get_activation(act) is act
    assert get_activation(act, gamma=0.5).gamma == 0.5


@pytest.mark.parametrize("bad", [0.0, -1.0, -1e-300, float("nan"), float("inf"), float("-inf"), 0])
def test_bad_gamma_raises_naming_gamma(bad):
    with pytest.raises(InvalidArgumentError, match="gamma"):
        get_activation("tanh", gamma=bad)
    with pytest.raises(InvalidArgumentError, match="gamma"):
        get_activation("relu").scaled(bad)


@pytest.mark.parametrize("bad", ["0.5", None, True, [1.0], torch.tensor([0.5]), np.float64([0.5])])
def test_non_numeric_gamma_raises_type_error_naming_gamma(bad):
    if bad is None:
        # gamma=None means "unscaled" for get_activation; only .scaled must refuse it.
        with pytest.raises(ArgumentTypeError, match="gamma"):
            get_activation("tanh").scaled(bad)
        return
    with pytest.raises(ArgumentTypeError, match="gamma"):
        get_activation("tanh", gamma=bad)


# ---------------------------------------------------------------------------------------------------------------
# (d) user callables


@pytest.mark.parametrize(
    ("fn", "gamma"),
    [
        # softplus' = logistic → 1 as x → ∞; torch's softplus returns x itself beyond its threshold 20, so sup = 1.
        (torch.nn.functional.softplus, 1.0),
        (lambda x: 2.0 * torch.tanh(x), 2.0),
        (lambda x: torch.sigmoid(3.0 * x), 0.75),  # 3 · ¼
        (lambda x: 0.5 * torch.sin(4.0 * x), 2.0),  # ½ · 4 · |cos| ≤ 2, attained at 0
    ],
)
def test_user_callable_gets_gamma_from_autograd(fn, gamma):
    act = get_activation(fn)
    assert isinstance(act, Activation)
    # Each sup is attained on the library's grid (at 0, or exactly 1 beyond softplus' threshold), so only float64
    # rounding separates the derived and the closed-form value.
    assert act.gamma == pytest.approx(gamma, rel=1e-12)
    x = torch.linspace(-6, 6, 601, dtype=torch.float64)
    torch.testing.assert_close(act.derivative(x), _autograd_derivative(fn, x), rtol=0, atol=0)


def test_user_callable_name_and_explicit_derivative():
    def my_tanh(x):
        return torch.tanh(x)

    act = rnnstab.Activation.from_callable(my_tanh)
    assert act.name == "my_tanh"
    act2 = rnnstab.Activation.from_callable(my_tanh, name="mine", derivative=lambda x: 1 - torch.tanh(x) ** 2)
    assert act2.name == "mine"
    assert act2.gamma == 1.0  # attained at x = 0, which is on the grid: exact


def test_non_elementwise_callable_raises():
    with pytest.raises(InvalidArgumentError, match="not elementwise"):
        get_activation(lambda x: torch.softmax(x, dim=-1))


def test_cumulative_callable_raises():
    with pytest.raises(InvalidArgumentError, match="not elementwise"):
        get_activation(lambda x: torch.cumsum(x, dim=0))


def test_unbounded_derivative_raises():
    with pytest.raises(InvalidArgumentError, match="unbounded"):
        get_activation(lambda x: x**2)
    with pytest.raises(InvalidArgumentError, match="unbounded"):
        # |σ'| = cosh(x/1000)/1000 is nearly flat on [-40, 40] but ≈ 11 at x = 10⁴: caught by the far probes.
        get_activation(lambda x: torch.sinh(x / 1000.0))


@pytest.mark.parametrize(
    ("fn", "gamma", "argmax"),
    [
        (lambda x: torch.tanh(x - 50.0), 1.0, 50.0),  # beyond the dense grid: read as 8.3e-9 before
        (lambda x: torch.sigmoid(x - 60.0), 0.25, 60.0),
        (lambda x: torch.tanh(1e5 * (x - 5e-4)), 1e5, 5e-4),  # between two grid points: refused as "zero" before
        (lambda x: torch.tanh(1e9 * (x - 5e-4)), 1e9, 5e-4),
        (lambda x: x + 200.0 * torch.log(torch.cosh(x / 200.0)), 2.0, None),  # σ' = 1 + tanh(x/200) → 2
    ],
)
def test_a_derivative_peak_off_the_dense_grid_is_found(fn, gamma, argmax):
    act = get_activation(fn)
    assert act.gamma == pytest.approx(gamma, rel=1e-9)
    if argmax is not None:
        assert act.argmax == pytest.approx(argmax, abs=1e-6 * max(1.0, abs(argmax)))


def test_the_derivative_must_account_for_how_fast_sigma_moves():
    # mean value theorem: |σ(b) − σ(a)|/(b − a) ≤ sup|σ'|; a jump, or a derivative= that is not σ's, breaks it
    with pytest.raises(InvalidArgumentError, match=r"moves faster than its derivative allows.* 1000, above .* 0:"):
        get_activation(torch.sign)
    with pytest.raises(InvalidArgumentError, match=r"moves faster .* = 1, above the largest \|σ'\| found, 0\.5"):
        rnnstab.Activation.from_callable(torch.tanh, derivative=lambda x: 0.5 / torch.cosh(x) ** 2)


def test_a_peak_beyond_the_search_reads_as_unbounded():
    with pytest.raises(InvalidArgumentError, match=r"unbounded .* on \[-1000, 1000\]"):
        get_activation(lambda x: torch.tanh(x - 5000.0))


def test_a_bad_explicit_derivative_is_refused_by_name():
    with pytest.raises(ArgumentTypeError, match="derivative= of activation mine must be a callable, got int"):
        rnnstab.Activation.from_callable(torch.tanh, name="mine", derivative=3)
    with pytest.raises(ArgumentTypeError, match="mine's derivative must map a tensor to a tensor of the same"):
        rnnstab.Activation.from_callable(torch.tanh, name="mine", derivative=lambda x: torch.ones(3, dtype=x.dtype))


def test_a_module_activation_is_named_after_its_class():
    assert get_activation(torch.nn.Tanh()).name == "Tanh"


def test_ties_are_read_off_nearest_zero():
    assert get_activation("identity").argmax == 0.0
    assert get_activation("hardtanh").argmax == 0.0


def test_constant_function_raises():
    # 0·x + 3 keeps x in the autograd graph, so σ' ≡ 0 reaches the γ = 0 check.
    with pytest.raises(InvalidArgumentError, match="zero everywhere"):
        get_activation(lambda x: 0.0 * x + 3.0)


def test_constant_function_detached_from_input_raises_invalid_argument():
    with pytest.raises(InvalidArgumentError, match="zero everywhere"):
        get_activation(lambda x: torch.ones_like(x))


def test_non_finite_derivative_raises():
    # √|x| has an infinite slope at 0, which is on the grid.
    with pytest.raises(InvalidArgumentError, match="not finite"):
        get_activation(lambda x: torch.sqrt(x.abs()))


def test_wrong_shape_or_type_from_callable_raises():
    with pytest.raises(ArgumentTypeError, match="same shape"):
        get_activation(lambda x: x.sum())
    with pytest.raises(ArgumentTypeError, match="same shape"):
        get_activation(lambda x: 1.0)


@pytest.mark.parametrize(
    ("fn", "got"),
    [
        (lambda x: torch.tanh(x.float()), "float64 in, float32 out"),
        (lambda x: torch.tanh(x.double()), "float32 in, float64 out"),
        (lambda x: (x > 0).long(), "float64 in, int64 out"),
    ],
)
def test_callable_that_changes_the_dtype_raises(fn, got):
    # accepted before, then the next step's W·g failed inside torch: "mat1 and mat2 must have the same dtype"
    with pytest.raises(ArgumentTypeError, match=rf"must return a tensor of its input's dtype: {got}"):
        get_activation(fn)


def test_callable_detached_through_numpy_is_named_not_called_constant():
    # σ' came out 0 (no graph) and was refused as "zero everywhere", which tanh is not
    with pytest.raises(ArgumentTypeError, match=r"autograd cannot differentiate .*numpy"):
        get_activation(lambda x: torch.from_numpy(np.tanh(x.detach().numpy())))


def test_callable_that_is_nan_at_a_point_is_refused_for_that_not_as_non_elementwise():
    # NaN ≠ NaN made the elementwise check fail: "σ(x)_i depends on other entries of x"
    with pytest.raises(InvalidArgumentError, match="not finite at x = 0"):
        get_activation(lambda x: torch.sin(x) / x)


@pytest.mark.parametrize("bad", [3, 2.5, None, ["tanh"]])
def test_non_callable_non_name_raises(bad):
    with pytest.raises(ArgumentTypeError, match="activation"):
        get_activation(bad)


@pytest.mark.parametrize("bad", ["nope", "Tanh", "", "tanh "])
def test_unknown_name_lists_valid_names(bad):
    with pytest.raises(InvalidArgumentError, match=r"unknown activation .*valid names: .*sigmoid.*tanh"):
        get_activation(bad)


# ---------------------------------------------------------------------------------------------------------------
# register_activation


def test_register_activation_adds_a_name():
    name = f"test_scaled_sin_{uuid.uuid4().hex}"
    act = register_activation(name, lambda x: torch.sin(3.0 * x))
    assert name in rnnstab.activation_names()
    # 3 cos(3x) peaks at x = 0, a grid point: exact up to float64 rounding.
    assert act.gamma == pytest.approx(3.0, rel=1e-12)
    again = get_activation(name)
    assert again.gamma == act.gamma
    x = torch.linspace(-2, 2, 41, dtype=torch.float64)
    torch.testing.assert_close(again.fn(x), torch.sin(3.0 * x), rtol=0, atol=0)
    torch.testing.assert_close(get_activation(name, gamma=1.5).fn(x), torch.sin(1.5 * x), rtol=1e-15, atol=1e-15)

    with pytest.raises(InvalidArgumentError, match=name):
        register_activation(name, torch.tanh)


def test_register_activation_with_explicit_derivative():
    name = f"test_softsign_{uuid.uuid4().hex}"
    act = register_activation(name, torch.nn.functional.softsign, lambda x: 1.0 / (1.0 + x.abs()) ** 2)
    assert act.gamma == 1.0  # attained at 0 exactly


def test_register_builtin_name_raises():
    with pytest.raises(InvalidArgumentError, match="'tanh' is already registered"):
        register_activation("tanh", torch.tanh)


def test_register_bad_callable_raises_and_does_not_register():
    name = f"test_square_{uuid.uuid4().hex}"
    with pytest.raises(InvalidArgumentError, match="unbounded"):
        register_activation(name, lambda x: x**2)
    assert name not in rnnstab.activation_names()


@pytest.mark.parametrize("bad", [5, "", "my act", "tanh[γ=2]"])
def test_register_activation_refuses_unusable_names(bad):
    # A non-string key would break activation_names() for everyone; "[" marks a scaled family and would be cut off.
    with pytest.raises(InvalidArgumentError, match="activation name"):
        register_activation(bad, torch.tanh)
    assert all(isinstance(name, str) for name in rnnstab.activation_names())


@pytest.mark.parametrize("fn", [math.tanh, lambda x: torch.from_numpy(np.tanh(x.numpy()))])
def test_callables_that_torch_cannot_run_or_differentiate_raise_type_errors(fn):
    with pytest.raises(ArgumentTypeError, match="activation"):
        get_activation(fn)
