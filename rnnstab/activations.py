"""Activations σ with their derivative σ' and γ = sup_x |σ'(x)|, the constant in the vanishing bound.

γ is always derived numerically from σ' (a dense grid over [-40, 40], a geometric one out to ±10⁴, a bounded Brent
refinement around the best point, and a check against σ itself: see :func:`derive_gamma`), so a user's own callable
gets the same treatment as the built-ins.
The tests check the derived γ against the closed forms: tanh 1, sigmoid 1/4, relu/leaky_relu/hardtanh/softsign/
identity/elu(α ≤ 1)/sin 1, gelu Φ(√2) + √2·φ(√2) ≈ 1.1289, silu σ(x*)(1 + x*(1 − σ(x*))) ≈ 1.0998 at the root
x* of x·tanh(x/2) = 2.

The *scaled family* σ_γ(x) = σ(c·x) with c = γ/γ_σ has sup|σ_γ'| = γ exactly: ``get_activation("tanh", gamma=0.5)``
is tanh(0.5x).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from rnnstab import _checks
from rnnstab.exceptions import ArgumentTypeError, InvalidArgumentError

TensorFn = Callable[[torch.Tensor], torch.Tensor]

_GRID_HALF_WIDTH = 40.0
_GRID_STEP = 1e-3
_FAR_RATIO = 1e-3  # beyond ±40 the grid's points are 0.1 % of |x| apart, out to ±_FAR_LIMIT
_FAR_LIMIT = 1e4
_GROWTH_FROM = 1e3  # a |σ'| beyond ±this above 1.01 × its largest value within: unbounded
_REFINE_POINTS = 1001  # points laid across an interval where σ moved faster than the largest |σ'| allows
_REFINE_PASSES = 8  # intervals refined, at most, before a mismatch between σ and σ' is refused


@dataclass(frozen=True)
class Activation:
    """An elementwise activation with its derivative and γ = sup|σ'|.

    Attributes:
        name: registry name, with the γ of the scaled family appended when scaled (``"tanh[γ=0.5]"``).
        fn: σ, elementwise on tensors.
        derivative: σ', elementwise on tensors.
        gamma: sup_x |σ'(x)|, derived numerically.
        argmax: a point where |σ'| attains γ (within the search range).
        scale: c in σ(c·x); 1 for the unscaled activation.
        breakpoints: the points where σ, σ' or σ'' is not smooth (relu's 0, hardtanh's ±1, …): Gaussian
            expectations split their quadrature there (see :func:`rnnstab.theory.gaussian_expectation`). Empty for
            smooth activations and for user callables (which then get a convergence check instead).
        log_derivative: log σ' in closed form, for the activations whose σ' never vanishes but underflows even
            float64 (tanh beyond |x| ≈ 373, sigmoid beyond 745): without it such a saturated unit reads as a dead
            one. ``None`` for the others and for user callables.

    Example:
        >>> act = get_activation("gelu")
        >>> round(act.gamma, 4), round(act.argmax, 4)
        (1.1289, 1.4142)
    """

    name: str
    fn: TensorFn
    derivative: TensorFn
    gamma: float
    argmax: float
    scale: float = 1.0
    breakpoints: tuple[float, ...] = ()
    log_derivative: TensorFn | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)

    def scaled(self, gamma: float) -> Activation:
        """Return σ_γ(x) = σ(c·x) with c = γ/self.gamma, so that sup|σ_γ'| = γ.

        Raises:
            InvalidArgumentError: ``gamma`` is not a finite number > 0.
        """
        gamma = _checks.positive_float("gamma", gamma)
        c = gamma / self.gamma
        base_fn, base_derivative = self.fn, self.derivative
        base_name = self.name.split("[")[0]
        if c == 1.0:  # σ itself, under the scaled name: to_torch then still knows tanh and relu
            return dataclasses.replace(self, name=f"{base_name}[γ={gamma:g}]")
        base_log = self.log_derivative
        return Activation(
            name=f"{base_name}[γ={gamma:g}]",
            fn=lambda x: base_fn(c * x),
            derivative=lambda x: c * base_derivative(c * x),
            gamma=gamma,
            argmax=self.argmax / c,
            scale=self.scale * c,
            breakpoints=tuple(b / c for b in self.breakpoints),
            log_derivative=None if base_log is None else (lambda x: math.log(c) + base_log(c * x)),
        )

    @classmethod
    def from_callable(cls, fn: TensorFn, *, name: str | None = None, derivative: TensorFn | None = None) -> Activation:
        """Wrap a user's elementwise function; σ' comes from autograd unless ``derivative`` is given.

        Raises:
            ArgumentTypeError: ``fn`` is not callable, fails on a torch tensor or does not return one, or (without
                ``derivative``) cannot be differentiated by autograd.
            InvalidArgumentError: ``fn`` is not elementwise, or σ' is unbounded, zero or non-finite.
        """
        if not callable(fn):
            raise ArgumentTypeError(f"activation must be a registry name or a callable, got {type(fn).__name__}")
        label = name or str(getattr(fn, "__name__", type(fn).__name__))  # an nn.Tanh() is "Tanh"
        _check_elementwise(label, fn)
        if derivative is not None:
            if not callable(derivative):
                raise ArgumentTypeError(
                    f"derivative= of activation {label} must be a callable, got {type(derivative).__name__}"
                )
            _check_elementwise(f"{label}'s derivative", derivative)
        deriv = derivative if derivative is not None else _autograd_derivative(fn)
        if derivative is None:
            try:
                deriv(torch.zeros(1, dtype=torch.float64))
            except Exception as error:  # e.g. a round trip through numpy, which autograd cannot follow
                raise ArgumentTypeError(
                    f"autograd cannot differentiate activation {label} ({type(error).__name__}: {error}): write it "
                    "with torch operations or pass derivative="
                ) from error
            _check_in_graph(label, fn)
        gamma, argmax = derive_gamma(deriv, name=label, fn=fn)
        return cls(name=label, fn=fn, derivative=deriv, gamma=gamma, argmax=argmax)


def derive_gamma(derivative: TensorFn, *, name: str = "activation", fn: TensorFn | None = None) -> tuple[float, float]:
    """Return (γ, x*) with γ = sup|σ'(x)| = |σ'(x*)|, found numerically in float64.

    The search covers a grid of 80,001 points on [-40, 40] and a geometric one (points 0.1 % of |x| apart) out to
    ±10⁴, refined by bounded Brent iteration around the best point. A |σ'| that grows beyond ±10³ to more than
    1.01 × its largest value within is taken to be unbounded.

    With ``fn`` = σ the result is checked against σ itself: by the mean value theorem no difference quotient
    |σ(b) − σ(a)|/(b − a) can exceed sup|σ'|, so an interval of the grid where one does holds a peak of |σ'| that the
    grid stepped over (tanh(10⁵·x) shifted off the grid points), and is searched again, 1001 points across, up to
    8 times. A peak narrower than that, or whose area is below γ times the grid's spacing, stays unseen: no finite
    search can certify sup|σ'| for an arbitrary σ.

    Raises:
        InvalidArgumentError: σ' is non-finite somewhere on the grid, identically zero, or unbounded; or σ moves
            faster than any |σ'| found (σ is discontinuous, or ``derivative`` is not its derivative).
    """
    x = _search_grid()
    values = _abs_derivative(derivative, x, name)
    _check_bounded(x, values, name)
    gamma, argmax = _peak(derivative, x, values, name)
    if fn is not None:
        first = None  # the grid's own interval, for the message: later ones are narrower than any reader needs
        for _ in range(_REFINE_PASSES):
            steep = _too_steep(fn, x, gamma, name)
            if steep is None:
                break
            first = first or steep
            a, b, _ = steep
            inside = torch.linspace(a, b, _REFINE_POINTS, dtype=torch.float64)[1:-1]
            x, order = torch.cat([x, inside]).sort()
            values = torch.cat([values, _abs_derivative(derivative, inside, name)])[order]
            gamma, argmax = _peak(derivative, x, values, name)
        else:
            if _too_steep(fn, x, gamma, name) is not None and first is not None:
                a, b, quotient = first
                raise InvalidArgumentError(
                    f"{name} moves faster than its derivative allows: |σ({b:.6g}) − σ({a:.6g})|/{b - a:.3g} = "
                    f"{quotient:.4g}, above the largest |σ'| found, {gamma:.4g}: σ is discontinuous there, or the "
                    "derivative given is not σ's"
                )
    if gamma == 0.0:
        constant = " (and σ constant)" if fn is not None else ""
        raise InvalidArgumentError(f"the derivative of {name} is zero everywhere on [-1e4, 1e4]{constant}: γ = 0")
    return gamma, argmax


def _search_grid() -> torch.Tensor:
    """The points searched, ascending: a step of 10⁻³ on [-40, 40] (holding 0 exactly: kinks sit there), then
    geometric out to ±10⁴."""
    half = round(_GRID_HALF_WIDTH / _GRID_STEP)
    dense = torch.arange(-half, half + 1, dtype=torch.float64) * _GRID_STEP
    count = math.ceil(math.log(_FAR_LIMIT / _GRID_HALF_WIDTH) / math.log1p(_FAR_RATIO))
    far = _GRID_HALF_WIDTH * torch.exp(torch.arange(1, count + 1, dtype=torch.float64) * math.log1p(_FAR_RATIO))
    return torch.cat([-far.flip(0), dense, far])


def _check_bounded(x: torch.Tensor, values: torch.Tensor, name: str) -> None:
    within = x.abs() <= _GROWTH_FROM
    inner, outer = float(values[within].max()), values[~within]
    if float(outer.max()) > 1.01 * inner:
        worst = int(torch.argmax(outer))
        raise InvalidArgumentError(
            f"the derivative of {name} is unbounded (|σ'({float(x[~within][worst]):g})| = {float(outer[worst]):.4g} "
            f"> {inner:.4g} on [-1000, 1000]): γ = sup|σ'| is infinite and the vanishing bound does not apply"
        )


def _peak(derivative: TensorFn, x: torch.Tensor, values: torch.Tensor, name: str) -> tuple[float, float]:
    """(γ, x*): the largest |σ'| of the grid (of its points that attain it, the one nearest 0), refined by Brent's
    method between that point's neighbours."""
    best = int(torch.where(values == values.max(), x.abs(), torch.inf).argmin())
    gamma, argmax = float(values[best]), float(x[best])
    low, high = float(x[max(best - 1, 0)]), float(x[min(best + 1, len(x) - 1)])
    from scipy.optimize import minimize_scalar  # here: scipy.optimize takes 0.7 s to import

    refined = minimize_scalar(
        lambda p: -float(_abs_derivative(derivative, torch.tensor([p], dtype=torch.float64), name)[0]),
        bounds=(low, high),
        method="bounded",
        options={"xatol": 1e-13},
    )
    if -refined.fun > gamma:
        gamma, argmax = float(-refined.fun), float(refined.x)
    return gamma, argmax


def _too_steep(fn: TensorFn, x: torch.Tensor, gamma: float, name: str) -> tuple[float, float, float] | None:
    """(a, b, |σ(b) − σ(a)|/(b − a)) for the interval of the grid x whose difference quotient exceeds γ by the most
    beyond rounding, or None."""
    sigma = fn(x)
    if not bool(torch.isfinite(sigma).all()):
        bad = float(x[~torch.isfinite(sigma)][0])
        raise InvalidArgumentError(f"activation {name} is not finite at x = {bad:g}")
    width = x.diff()
    quotient = sigma.diff().abs() / width
    # the rounding of σ's two values, a few ulps each, divided by the width
    allowed = gamma * (1 + 1e-9) + 8 * torch.finfo(torch.float64).eps * (sigma[1:].abs() + sigma[:-1].abs()) / width
    worst = int(torch.argmax(quotient / allowed.clamp_min(torch.finfo(torch.float64).tiny)))
    if float(quotient[worst]) <= float(allowed[worst]):
        return None
    return float(x[worst]), float(x[worst + 1]), float(quotient[worst])


def _abs_derivative(derivative: TensorFn, x: torch.Tensor, name: str) -> torch.Tensor:
    values = derivative(x).abs()
    if not bool(torch.isfinite(values).all()):
        bad = float(x[~torch.isfinite(values)][0])
        raise InvalidArgumentError(f"the derivative of {name} is not finite at x = {bad:g}")
    return values


def _autograd_derivative(fn: TensorFn) -> TensorFn:
    def derivative(x: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            leaf = x.detach().requires_grad_(True)
            out = fn(leaf)
            if not out.requires_grad:  # fn ignores its input (a constant): σ' = 0, refused by derive_gamma
                return torch.zeros_like(x)
            (grad,) = torch.autograd.grad(out.sum(), leaf, allow_unused=True)
        return torch.zeros_like(x) if grad is None else grad

    return derivative


def _check_elementwise(name: str, fn: TensorFn) -> None:
    probe = torch.linspace(-3.0, 3.0, 7, dtype=torch.float64)
    try:
        together = fn(probe)
    except Exception as error:  # math.tanh, np.tanh, …: any failure here means fn does not take torch tensors
        raise ArgumentTypeError(
            f"activation {name} must map a torch tensor to a tensor elementwise (e.g. torch.tanh, not math.tanh or "
            f"np.tanh); on a float64 tensor it raised {type(error).__name__}: {error}"
        ) from error
    if not isinstance(together, torch.Tensor) or together.shape != probe.shape:
        raise ArgumentTypeError(f"activation {name} must map a tensor to a tensor of the same shape")
    for dtype in (torch.float64, torch.float32):  # a state of another dtype fails the next step's matmul with W
        out = together if dtype == torch.float64 else fn(probe.to(dtype))
        if not isinstance(out, torch.Tensor) or out.dtype != dtype:
            got = str(out.dtype).removeprefix("torch.") if isinstance(out, torch.Tensor) else type(out).__name__
            raise ArgumentTypeError(
                f"activation {name} must return a tensor of its input's dtype: "
                f"{str(dtype).removeprefix('torch.')} in, {got} out"
            )
    alone = torch.cat([fn(probe[i : i + 1]) for i in range(probe.numel())])
    # equal_nan: a σ that is NaN somewhere (sin(x)/x at 0) is refused for its non-finite σ, not as non-elementwise
    if not torch.allclose(together, alone, rtol=1e-12, atol=1e-12, equal_nan=True):
        raise InvalidArgumentError(f"activation {name} is not elementwise: σ(x)_i depends on other entries of x")


def _check_in_graph(name: str, fn: TensorFn) -> None:
    """Refuse a σ that varies with x but leaves autograd's graph (a detached numpy round trip): its σ' would read as
    0 everywhere and be refused as a constant, which it is not. A truly constant σ is left to that refusal."""
    probe = torch.linspace(-3.0, 3.0, 7, dtype=torch.float64)
    with torch.enable_grad():
        out = fn(probe.clone().requires_grad_(True))
    if not out.requires_grad and not bool((out == out[0]).all()):
        raise ArgumentTypeError(
            f"autograd cannot differentiate activation {name}: its output varies with its input but is not connected "
            "to it in autograd's graph (a round trip through numpy, .detach() or .item()?): write it with torch "
            "operations or pass derivative="
        )


def _gelu_derivative(x: torch.Tensor) -> torch.Tensor:
    # erfc, not 1 + erf: for x ≲ -6 the sum cancels to 0 and σ' loses its Φ(x) term (0.25 % of σ' at x = -20)
    cdf = 0.5 * torch.special.erfc(-x / math.sqrt(2.0))
    pdf = torch.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
    return cdf + x * pdf


def _silu_derivative(x: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(x)
    return s * (1.0 + x * (1.0 - s))


def _tanh_derivative(x: torch.Tensor) -> torch.Tensor:
    # sech²x = 4e^{-2|x|}/(1 + e^{-2|x|})²: 1 − tanh²x cancels to exactly 0 once tanh x rounds to ±1 (|x| ≳ 9 in
    # float32, 19 in float64), which turned a saturated network's finite log-norms into -inf. The clamp removes the
    # ulp this rounds above sech² ≤ 1 near 0, where γ is read off.
    e = torch.exp(-2.0 * x.abs())
    return (4.0 * e / (1.0 + e) ** 2).clamp(max=1.0)


def _sigmoid_derivative(x: torch.Tensor) -> torch.Tensor:
    # σ(x)σ(−x), not σ(x)(1 − σ(x)): the latter cancels to 0 once σ(x) rounds to 1 (x ≳ 17 in float32, 37 in float64).
    # The clamp removes the ulp this rounds above ¼ near 0, where γ is read off.
    return (torch.sigmoid(x) * torch.sigmoid(-x)).clamp(max=0.25)


def _tanh_log_derivative(x: torch.Tensor) -> torch.Tensor:
    # log sech²x = log 4 − 2|x| − 2·log(1 + e^{−2|x|}): finite wherever x is
    return math.log(4.0) - 2.0 * x.abs() - 2.0 * torch.log1p(torch.exp(-2.0 * x.abs()))


def _sigmoid_log_derivative(x: torch.Tensor) -> torch.Tensor:
    # log σ(x)σ(−x) = −|x| − 2·log(1 + e^{−|x|})
    return -x.abs() - 2.0 * torch.log1p(torch.exp(-x.abs()))


#: name → log σ', for the activations whose σ' underflows float64 while it is not 0 (see Activation.log_derivative)
_LOG_DERIVATIVES: dict[str, TensorFn] = {"tanh": _tanh_log_derivative, "sigmoid": _sigmoid_log_derivative}


def _one(x: torch.Tensor) -> torch.Tensor:
    return torch.ones_like(x)


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


_LEAKY_SLOPE = 0.01
_ELU_ALPHA = 1.0

#: name → (σ, σ'), elementwise on tensors. Extend with :func:`register_activation`.
_REGISTRY: dict[str, tuple[TensorFn, TensorFn]] = {
    "tanh": (torch.tanh, _tanh_derivative),
    "sigmoid": (torch.sigmoid, _sigmoid_derivative),
    "relu": (torch.relu, lambda x: (x > 0).to(x.dtype)),
    "leaky_relu": (
        lambda x: torch.nn.functional.leaky_relu(x, _LEAKY_SLOPE),
        lambda x: torch.where(x > 0, torch.ones_like(x), torch.full_like(x, _LEAKY_SLOPE)),
    ),
    "hardtanh": (torch.nn.functional.hardtanh, lambda x: ((x > -1) & (x < 1)).to(x.dtype)),
    "softsign": (torch.nn.functional.softsign, lambda x: 1.0 / (1.0 + x.abs()) ** 2),
    "identity": (_identity, _one),
    "elu": (
        lambda x: torch.nn.functional.elu(x, _ELU_ALPHA),
        lambda x: torch.where(x > 0, torch.ones_like(x), _ELU_ALPHA * torch.exp(torch.clamp(x, max=0.0))),
    ),
    "silu": (torch.nn.functional.silu, _silu_derivative),
    "gelu": (torch.nn.functional.gelu, _gelu_derivative),
    "sin": (torch.sin, torch.cos),
}

#: Where σ, σ' or σ'' has a kink (quadratures split there; Gauss–Hermite converges only algebraically across one).
_BREAKPOINTS: dict[str, tuple[float, ...]] = {
    "relu": (0.0,),
    "leaky_relu": (0.0,),
    "hardtanh": (-1.0, 1.0),
    "softsign": (0.0,),
    "elu": (0.0,),
}

_CACHE: dict[str, Activation] = {}


def activation_names() -> list[str]:
    """The registered activation names, sorted."""
    return sorted(_REGISTRY)


def register_activation(name: str, fn: TensorFn, derivative: TensorFn | None = None) -> Activation:
    """Add an elementwise activation to the registry under ``name`` and return it (γ derived on the spot).

    Raises:
        InvalidArgumentError: the name is taken, is not a non-empty string, holds ``[`` (it marks a scaled family) or
            whitespace, or σ is not elementwise / has an unusable derivative.
    """
    if not isinstance(name, str) or not name or any(c.isspace() or c == "[" for c in name):
        # A non-string key would break the sorted activation_names(), and "[" would be cut off by scaled().
        raise InvalidArgumentError(
            f"an activation name must be a non-empty string without whitespace or '[', got {name!r}"
        )
    if name in _REGISTRY:
        raise InvalidArgumentError(f"activation {name!r} is already registered")
    act = Activation.from_callable(fn, name=name, derivative=derivative)
    _REGISTRY[name] = (act.fn, act.derivative)
    _CACHE[name] = act
    return act


def get_activation(activation: str | TensorFn | Activation, *, gamma: float | None = None) -> Activation:
    """Look up an activation by name (or wrap a callable), optionally scaled so that sup|σ'| = ``gamma``.

    Args:
        activation: a registry name (see :func:`activation_names`), an :class:`Activation`, or an elementwise
            callable on tensors (σ' then comes from autograd).
        gamma: if given, return the scaled family member σ(c·x) with sup|σ'| = gamma.

    Returns:
        The :class:`Activation`, with ``gamma`` derived numerically.

    Raises:
        InvalidArgumentError: unknown name (the message lists the valid ones) or ``gamma`` ≤ 0.

    Example:
        >>> get_activation("sigmoid").gamma
        0.25
        >>> get_activation("tanh", gamma=0.5).name
        'tanh[γ=0.5]'
    """
    if isinstance(activation, Activation):
        act = activation
    elif isinstance(activation, str):
        if activation not in _REGISTRY:
            raise InvalidArgumentError(
                f"unknown activation {activation!r}; valid names: {', '.join(activation_names())}"
            )
        if activation not in _CACHE:
            fn, derivative = _REGISTRY[activation]
            g, x_star = derive_gamma(derivative, name=activation, fn=fn)
            _CACHE[activation] = Activation(
                name=activation,
                fn=fn,
                derivative=derivative,
                gamma=g,
                argmax=x_star,
                breakpoints=_BREAKPOINTS.get(activation, ()),
                log_derivative=_LOG_DERIVATIVES.get(activation),
            )
        act = _CACHE[activation]
    else:
        act = Activation.from_callable(activation)
    return act if gamma is None else act.scaled(gamma)
