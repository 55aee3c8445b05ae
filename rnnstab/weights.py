"""Recurrent-weight schemes (an extensible catalogue) and scaling against the vanishing threshold ‖W‖₂ = δ/γ.

Scaling uses the *exact* largest singular value (a float64 SVD), never the spectral radius and never an
unconverged power-iteration estimate: for non-normal W the spectral radius ρ(W) can be far below ‖W‖₂, and only
‖W‖₂ enters the bound ‖∂g_T/∂g_0‖₂ ≤ (γ‖W‖₂)^T.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from rnnstab import _checks
from rnnstab.activations import Activation, get_activation
from rnnstab.exceptions import ArgumentTypeError, InvalidArgumentError, ShapeError

#: fn(n, generator, **params) → (n, n) float64 matrix; a scheme that needs the activation also gets ``activation``.
WeightScheme = Callable[..., torch.Tensor]
_SPARSE_DRAWS = 1000  # sparse patterns drawn before giving up on one with a cycle (a non-nilpotent one)


def spectral_norm(W: torch.Tensor) -> torch.Tensor:
    """Exact ‖W‖₂ (largest singular value) of an (n, n) matrix or of each matrix in a (B, n, n) batch.

    Computed by an SVD in float64 whatever W's dtype; returns a float64 tensor of shape () or (B,).

    Raises:
        ShapeError: W is not (n, n) or (B, n, n) with square matrices, n ≥ 1.
        NonFiniteError: W holds NaN or Inf.

    Example:
        >>> spectral_norm(torch.tensor([[3.0, 0.0], [0.0, -4.0]]))
        tensor(4., dtype=torch.float64)
        >>> spectral_norm(torch.stack([torch.eye(3), 2 * torch.eye(3)])).tolist()  # a batch: one norm each
        [1.0, 2.0]
    """
    unit, scale = _power_of_two_scaled(_square("W", W))
    return torch.linalg.matrix_norm(unit, ord=2) * scale


def _power_of_two_scaled(W: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(W/s in float64, s) with s the power of two nearest max|W| per matrix (1 for a zero matrix).

    LAPACK's SVD fails on subnormal or near-overflow entries; dividing by a power of two is exact, so the SVD of W/s
    gives W's singular values to the same rounding."""
    W = W.to(torch.float64)
    scale = torch.exp2(binary_exponent(W.abs().amax(dim=(-2, -1))))
    return W / scale[..., None, None], scale


def binary_exponent(largest: torch.Tensor) -> torch.Tensor:
    """e (float64) with 2^e the power of two nearest ``largest`` (0 where it is 0), kept within ±1022 so that 2^e and
    2^-e are normal float64 numbers: W/2^e is then exact, also with subnormals flushed. (Rounded, log2 of a W near
    float64's maximum gave 2^1024 = inf, and W/inf = 0: ‖W‖₂ came out NaN.)"""
    return torch.where(largest > 0, torch.log2(largest).round(), 0.0).clamp(-1022.0, 1022.0)


def scale_to_threshold(W: torch.Tensor, *, delta: float, gamma: float) -> torch.Tensor:
    """Return W rescaled so that ‖W‖₂ = δ/γ exactly, i.e. γ‖W‖₂ = δ (for each matrix of a batch).

    The scaling is done in float64 and cast back to W's dtype, so ‖W‖₂ = δ/γ to the rounding of that dtype.

    Args:
        W: (n, n) or (B, n, n) recurrent weights.
        delta: target δ > 0 (δ < 1 guarantees vanishing gradients).
        gamma: γ = sup|σ'| of the activation, > 0.

    Raises:
        ShapeError: W is not square.
        NonFiniteError: W holds NaN or Inf.
        InvalidArgumentError: δ ≤ 0, γ ≤ 0, a matrix of W is zero (it cannot be scaled to any norm), or δ/γ is so
            large that the scaled W overflows its dtype, or so small that it underflows it (its largest entry would
            be subnormal).

    Example:
        >>> W = scale_to_threshold(torch.randn(64, 64, dtype=torch.float64), delta=0.9, gamma=1.0)
        >>> round(float(spectral_norm(W)), 12)
        0.9
    """
    delta = _checks.positive_float("delta", delta)
    gamma = _checks.positive_float("gamma", gamma)
    unit, _ = _power_of_two_scaled(_square("W", W))
    norms = torch.linalg.matrix_norm(unit, ord=2)
    if bool((norms == 0).any()):
        which = "W" if norms.dim() == 0 else f"W[{int((norms == 0).nonzero()[0])}]"
        raise InvalidArgumentError(f"{which} is the zero matrix: it cannot be scaled to ‖W‖₂ = δ/γ")
    factor = (delta / gamma) / norms
    scaled = (unit * factor[..., None, None]).to(W.dtype)
    wider = " or float64 weights" if W.dtype != torch.float64 else ""
    name, info = str(W.dtype).removeprefix("torch."), torch.finfo(W.dtype)
    if not bool(torch.isfinite(scaled).all()):
        raise InvalidArgumentError(
            f"delta/gamma = {delta / gamma:.3g} makes entries of W overflow {name} (largest {info.max:.3g}): "
            f"use a smaller delta{wider}"
        )
    # Subnormal entries keep only a few significant bits (or round to 0), so ‖W‖₂ would miss δ/γ by far more than
    # rounding; a largest entry that is still normal bounds the error of the smaller ones by n·ε relative.
    largest = scaled.abs().amax(dim=(-2, -1))
    if bool((largest < info.tiny).any()):
        raise InvalidArgumentError(
            f"delta/gamma = {delta / gamma:.3g} makes W underflow {name}: its largest entry would be "
            f"{float(largest.min()):.3g}, below the smallest normal number {info.tiny:.3g}, so ‖W‖₂ = δ/γ cannot "
            f"hold; use a larger delta{wider}"
        )
    return scaled


@dataclass(frozen=True)
class Param:
    """A scheme parameter: its default, what it means, and the values it accepts.

    Attributes:
        default: used when the parameter is not given.
        doc: one line for help texts.
        accepts: predicate on the (finite float) value.
        expected: the accepted values in words, for error messages (e.g. ``"> 0"``).
    """

    default: float
    doc: str = ""
    accepts: Callable[[float], bool] = field(default=lambda value: True, repr=False)
    expected: str = "a finite number"


def _positive(default: float, doc: str) -> Param:
    return Param(default, doc, lambda value: value > 0, "> 0")


@dataclass(frozen=True)
class Scheme:
    """A named recurrent-weight scheme with what it guarantees about ‖W‖₂ and ρ(W).

    Calling it, ``scheme(n, generator, **params)``, draws one (n, n) float64 matrix (parameters checked and
    defaulted by :meth:`resolve`).

    Attributes:
        name: the registry name.
        fn: ``fn(n, generator, **params)`` (plus ``activation=`` when ``needs_activation``).
        summary: what the scheme draws, in one line.
        norm_guarantee: what it guarantees about ‖W‖₂.
        radius_guarantee: what it guarantees about ρ(W).
        params: parameter name → :class:`Param`.
        needs_activation: the scheme depends on the activation (e.g. its mean-field critical gain).
    """

    name: str
    fn: WeightScheme = field(repr=False)
    summary: str
    norm_guarantee: str
    radius_guarantee: str
    params: Mapping[str, Param] = field(default_factory=dict)
    needs_activation: bool = False

    def resolve(self, params: Mapping[str, Any]) -> dict[str, float]:
        """Every parameter's value: the defaults overridden by ``params``, each checked.

        Raises:
            InvalidArgumentError: an unknown parameter name, or a value that is not accepted (the message names
                the scheme and lists its parameters with their defaults).
        """
        unknown = [key for key in params if key not in self.params]
        if unknown:
            raise InvalidArgumentError(
                f"scheme {self.name!r} has no parameter {', '.join(map(repr, unknown))}; {self._valid()}"
            )
        values = {key: p.default for key, p in self.params.items()}
        for key, value in params.items():
            p = self.params[key]
            try:
                number = _checks.real(key, value)
            except ArgumentTypeError:
                number = math.nan
            if not (math.isfinite(number) and p.accepts(number)):
                raise InvalidArgumentError(
                    f"scheme {self.name!r}: parameter {key} must be {p.expected}, got {value!r}; {self._valid()}"
                )
            values[key] = number
        return values

    def _valid(self) -> str:
        if not self.params:
            return "it takes no parameters"
        listed = ", ".join(f"{key} ({p.expected}, default {p.default:g})" for key, p in self.params.items())
        return f"valid parameters: {listed}"

    def __call__(
        self, n: int, generator: torch.Generator, *, activation: Activation | None = None, **params: Any
    ) -> torch.Tensor:
        values = self.resolve(params)
        if self.needs_activation:
            if activation is None:
                raise InvalidArgumentError(
                    f"scheme {self.name!r} depends on the activation: pass activation= (e.g. 'tanh')"
                )
            return self.fn(n, generator, activation=activation, **values)
        return self.fn(n, generator, **values)


def register_scheme(
    name: str,
    fn: WeightScheme,
    *,
    summary: str,
    norm_guarantee: str,
    radius_guarantee: str,
    params: Mapping[str, float | Param] | None = None,
    needs_activation: bool = False,
    replace: bool = False,
) -> Scheme:
    """Add a scheme to the catalogue (:data:`SCHEMES`), after which :func:`init_weights` and ``rnnstab inits`` know it.

    Args:
        name: the registry name (a non-empty identifier-like string).
        fn: ``fn(n, generator, **params)`` returning an (n, n) matrix; draw every random number from ``generator``
            so that seeds reproduce. With ``needs_activation`` it also receives ``activation=`` (an Activation).
        summary, norm_guarantee, radius_guarantee: what it draws, what it guarantees about ‖W‖₂ and about ρ(W).
        params: parameter name → default (any finite value accepted) or a :class:`Param`.
        needs_activation: see above.
        replace: allow replacing a registered scheme of the same name.

    Returns:
        The registered :class:`Scheme`.

    Raises:
        InvalidArgumentError: an empty name, a name already registered (without ``replace``).
        ArgumentTypeError: ``fn`` is not callable, or a default in ``params`` is neither a number nor a Param.

    Example:
        >>> s = register_scheme("half_identity", lambda n, g, scale: scale * torch.eye(n, dtype=torch.float64),
        ...     summary="scale·I", norm_guarantee="= scale", radius_guarantee="= scale", params={"scale": 0.5})
        >>> init_weights("half_identity", 2, scale=0.25).tolist()
        [[0.25, 0.0], [0.0, 0.25]]
        >>> del SCHEMES["half_identity"]
    """
    if not isinstance(name, str) or not name.strip() or any(c.isspace() or c in ",=" for c in name):
        raise InvalidArgumentError(f"a scheme name must be a non-empty string without spaces, ',' or '=', got {name!r}")
    if not callable(fn):
        raise ArgumentTypeError(f"fn of scheme {name!r} must be callable, got {type(fn).__name__}")
    if name in SCHEMES and not replace:
        raise InvalidArgumentError(f"scheme {name!r} is already registered (pass replace=True to replace it)")
    declared = {}
    for key, p in (params or {}).items():
        try:
            declared[key] = p if isinstance(p, Param) else Param(_checks.real(key, p))
        except ArgumentTypeError:
            raise ArgumentTypeError(
                f"params of scheme {name!r} must map names to numbers or Params, got {key}={p!r}"
            ) from None
    scheme = Scheme(name, fn, summary, norm_guarantee, radius_guarantee, declared, needs_activation)
    SCHEMES[name] = scheme
    return scheme


def _randn(n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(n, n, generator=generator, dtype=torch.float64)


def _gaussian(n: int, generator: torch.Generator, *, gain: float) -> torch.Tensor:
    return gain * (_randn(n, generator) / n**0.5)  # gain 1 multiplies exactly: the historical draws are unchanged


def _orthogonal(n: int, generator: torch.Generator, *, gain: float) -> torch.Tensor:
    q, r = torch.linalg.qr(_randn(n, generator))
    return gain * (q * torch.sign(torch.diagonal(r)))  # sign fix makes Q Haar-distributed


def _identity(n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.eye(n, dtype=torch.float64)


def _scaled_identity(n: int, generator: torch.Generator, *, scale: float) -> torch.Tensor:
    return scale * torch.eye(n, dtype=torch.float64)


def _uniform(n: int, generator: torch.Generator, bound: float) -> torch.Tensor:
    return torch.nn.init.uniform_(torch.empty(n, n, dtype=torch.float64), -bound, bound, generator=generator)


def _normal(n: int, generator: torch.Generator, std: float) -> torch.Tensor:
    return torch.nn.init.normal_(torch.empty(n, n, dtype=torch.float64), 0.0, std, generator=generator)


def _uniform_gain(n: int, generator: torch.Generator, *, gain: float) -> torch.Tensor:
    # torch's xavier_uniform_ bound gain·√(6/(fan_in + fan_out)) and kaiming_uniform_ bound √3·gain/√fan_in
    # coincide for a square matrix: √3·gain/√n, entry variance gain²/n.
    return _uniform(n, generator, math.sqrt(3.0) * (gain / math.sqrt(n)))


def _normal_gain(n: int, generator: torch.Generator, *, gain: float) -> torch.Tensor:
    return _normal(n, generator, gain / math.sqrt(n))


def _torch_default(n: int, generator: torch.Generator) -> torch.Tensor:
    return _uniform(n, generator, 1.0 / math.sqrt(n))  # torch.nn.RNN.reset_parameters: U(±1/√hidden_size)


def _spectral_radius(n: int, generator: torch.Generator, *, rho: float) -> torch.Tensor:
    return _to_radius(_randn(n, generator), rho, "spectral_radius")


def _sparse_echo_state(n: int, generator: torch.Generator, *, rho: float, density: float) -> torch.Tensor:
    # A pattern without a cycle (likely when n·density is small) is nilpotent whatever its values: ρ = 0 cannot be
    # scaled to ρ, and LAPACK would return rounding noise ~ε^{1/n} for it. Such patterns are redrawn.
    for _ in range(_SPARSE_DRAWS):
        mask = torch.rand(n, n, generator=generator, dtype=torch.float64) < density
        if _has_cycle(mask):
            break
    return _to_radius(_randn(n, generator) * mask, rho, "sparse_echo_state")


def _has_cycle(mask: torch.Tensor) -> bool:
    """Whether the directed graph i → j for mask[i, j] has a cycle: reachability closed under squaring n times."""
    reach = mask.to(torch.float64)
    for _ in range(max(1, math.ceil(math.log2(mask.shape[0]))) + 1):
        reach = ((reach + reach @ reach) > 0).to(torch.float64)
    return bool(reach.diagonal().any())


def _to_radius(W: torch.Tensor, rho: float, scheme: str) -> torch.Tensor:
    radius = float(torch.linalg.eigvals(W).abs().max())
    if radius == 0.0:
        raise InvalidArgumentError(
            f"scheme {scheme!r}: the draw is nilpotent (ρ = 0: too sparse for n = {W.shape[0]}) and cannot be "
            "scaled to a spectral radius; raise density or n"
        )
    return W * (rho / radius)


def _exact_spectral_norm(n: int, generator: torch.Generator, *, sigma: float) -> torch.Tensor:
    return scale_to_threshold(_randn(n, generator), delta=sigma, gamma=1.0)


def _torch_spectral_norm(n: int, generator: torch.Generator) -> torch.Tensor:
    W0 = _randn(n, generator) / n**0.5
    # The parametrization draws its power-iteration vectors u, v from the global RNG: seed it from our generator
    # inside a fork so that the draw is reproducible and the caller's RNG state is left untouched.
    seed = int(torch.randint(0, 2**62, (), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layer = torch.nn.Linear(n, n, bias=False, dtype=torch.float64)
        with torch.no_grad():
            layer.weight.copy_(W0)
        torch.nn.utils.parametrizations.spectral_norm(layer)
        with torch.no_grad():  # read in training mode, as the first forward pass sees it (one more power step)
            return layer.weight.detach().clone()


def _weight_norm(n: int, generator: torch.Generator, *, g: float) -> torch.Tensor:
    v = _randn(n, generator)
    return g * v / torch.linalg.vector_norm(v, dim=1, keepdim=True)


def _critical(n: int, generator: torch.Generator, *, activation: Activation, input_variance: float) -> torch.Tensor:
    from rnnstab.theory import critical_gain  # theory sits downstream of weights (it reads Jacobian traces)

    gain = critical_gain(activation, input_variance=input_variance)
    if not math.isfinite(gain):
        # with inputs this strong every unit saturates and χ stays below 1 at any gain: say which setting is to blame
        inputs = f" with input_variance={input_variance:g}" if input_variance else ""
        raise InvalidArgumentError(
            f"scheme 'critical': activation {activation.name!r}{inputs} has no mean-field critical gain "
            "(χ never reaches 1 for gains in [1e-3, 1e3])"
        )
    return _gaussian(n, generator, gain=gain)


_GAIN = "standard deviation of √n·W_ij"
_ASYMPTOTIC = "as n → ∞ (Bai–Yin / Geman: edge of the quarter-circle law; finite-n excess of order n^(-2/3))"
_CIRCULAR = "as n → ∞ (circular law: eigenvalues fill the disc of that radius; finite-n excess of order √(log n/n))"

#: name → :class:`Scheme`, in catalogue order. Add schemes with :func:`register_scheme`.
SCHEMES: dict[str, Scheme] = {}

for _args, _kwargs in [
    (
        ("gaussian", _gaussian),
        dict(
            summary="i.i.d. N(0, gain²/n) entries",
            norm_guarantee=f"→ 2·gain {_ASYMPTOTIC}; not bounded at finite n",
            radius_guarantee=f"→ gain {_CIRCULAR}",
            params={"gain": _positive(1.0, _GAIN)},
        ),
    ),
    (
        ("orthogonal", _orthogonal),
        dict(
            summary="gain × a Haar-random orthogonal matrix (QR of a Gaussian matrix with the sign fix)",
            norm_guarantee="= gain exactly (every singular value is gain)",
            radius_guarantee="= gain exactly (every |eigenvalue| is gain; W is normal)",
            params={"gain": _positive(1.0, "every singular value")},
        ),
    ),
    (
        ("identity", _identity),
        dict(
            summary="the identity I (IRNN: Le, Jaitly & Hinton 2015, with relu)",
            norm_guarantee="= 1 exactly",
            radius_guarantee="= 1 exactly",
        ),
    ),
    (
        ("scaled_identity", _scaled_identity),
        dict(
            summary="scale·I (a contracting IRNN)",
            norm_guarantee="= scale exactly",
            radius_guarantee="= scale exactly",
            params={"scale": _positive(0.9, "the diagonal value")},
        ),
    ),
    (
        ("xavier_uniform", _uniform_gain),
        dict(
            summary="torch.nn.init.xavier_uniform_ on a square matrix (fan_in = fan_out = n): U(±gain·√(3/n)), "
            "entry variance gain²/n",
            norm_guarantee=f"→ 2·gain {_ASYMPTOTIC}",
            radius_guarantee=f"→ gain {_CIRCULAR}",
            params={"gain": _positive(1.0, "torch's gain (default 1, xavier's own)")},
        ),
    ),
    (
        ("xavier_normal", _normal_gain),
        dict(
            summary="torch.nn.init.xavier_normal_ on a square matrix: N(0, gain²/n) (the gaussian law)",
            norm_guarantee=f"→ 2·gain {_ASYMPTOTIC}",
            radius_guarantee=f"→ gain {_CIRCULAR}",
            params={"gain": _positive(1.0, "torch's gain (default 1, xavier's own)")},
        ),
    ),
    (
        ("kaiming_uniform", _uniform_gain),
        dict(
            summary="torch.nn.init.kaiming_uniform_ with mode fan_in (= n): U(±gain·√(3/n)); default gain √2, "
            "torch's calculate_gain('relu')",
            norm_guarantee=f"→ 2·gain = 2√2 by default {_ASYMPTOTIC}",
            radius_guarantee=f"→ gain = √2 by default {_CIRCULAR}",
            params={"gain": _positive(math.sqrt(2.0), "nonlinearity gain (√2: relu)")},
        ),
    ),
    (
        ("kaiming_normal", _normal_gain),
        dict(
            summary="torch.nn.init.kaiming_normal_ with mode fan_in (= n): N(0, gain²/n); default gain √2 (relu)",
            norm_guarantee=f"→ 2·gain = 2√2 by default {_ASYMPTOTIC}",
            radius_guarantee=f"→ gain = √2 by default {_CIRCULAR}",
            params={"gain": _positive(math.sqrt(2.0), "nonlinearity gain (√2: relu)")},
        ),
    ),
    (
        ("torch_default", _torch_default),
        dict(
            summary="what torch.nn.RNN does: U(±1/√n), entry variance 1/(3n)",
            norm_guarantee=f"→ 2/√3 ≈ 1.155 {_ASYMPTOTIC}",
            radius_guarantee=f"→ 1/√3 ≈ 0.577 {_CIRCULAR}",
        ),
    ),
    (
        ("spectral_radius", _spectral_radius),
        dict(
            summary="a Gaussian matrix rescaled so that ρ(W) = rho (echo-state style)",
            norm_guarantee="≥ rho, not bounded: ≈ 2·rho for large n (the Gaussian ratio ‖W‖₂/ρ → 2)",
            radius_guarantee="= rho exactly (to the rounding of the eigenvalue solver)",
            params={"rho": _positive(0.9, "target spectral radius")},
        ),
    ),
    (
        ("sparse_echo_state", _sparse_echo_state),
        dict(
            summary="an echo-state reservoir (Jaeger 2001): Gaussian entries kept with probability density, "
            "rescaled so that ρ(W) = rho",
            norm_guarantee="≥ rho, not bounded: ≈ 2·rho when n·density ≫ log n, larger for sparser W",
            radius_guarantee="= rho exactly (to the rounding of the eigenvalue solver)",
            params={
                "rho": _positive(0.9, "target spectral radius"),
                "density": Param(0.1, "fraction of non-zero entries", lambda value: 0 < value <= 1, "in (0, 1]"),
            },
        ),
    ),
    (
        ("spectral_norm", _exact_spectral_norm),
        dict(
            summary="a Gaussian matrix rescaled so that ‖W‖₂ = sigma exactly (SVD)",
            norm_guarantee="= sigma exactly (to rounding)",
            radius_guarantee="≤ sigma (ρ ≤ ‖W‖₂ always); ≈ sigma/2 for large n",
            params={"sigma": _positive(0.9, "target spectral norm")},
        ),
    ),
    (
        ("torch_spectral_norm", _torch_spectral_norm),
        dict(
            summary="torch.nn.utils.parametrizations.spectral_norm registered on a Linear(n, n) holding an "
            "N(0, 1/n) draw (default n_power_iterations = 1; 15 power steps at registration), read in training "
            "mode as the first forward pass sees it",
            norm_guarantee="≥ 1, target 1: W/σ̂ with the power-iteration estimate σ̂ = uᵀWv ≤ σ₁, so ‖W‖₂ = σ₁/σ̂ "
            "exceeds 1 by the estimate's error — measured",
            radius_guarantee="≈ ‖W‖₂/2 for large n (a rescaled Gaussian matrix)",
        ),
    ),
    (
        ("weight_norm", _weight_norm),
        dict(
            summary="weight normalisation (Salimans & Kingma 2016) by rows: W_i = g·v_i/‖v_i‖ with Gaussian v",
            norm_guarantee="every row has norm g exactly, so g ≤ ‖W‖₂ ≤ g·√n; → 2·g as n → ∞",
            radius_guarantee=f"→ g {_CIRCULAR}",
            params={"g": _positive(1.0, "the norm of every row")},
        ),
    ),
    (
        ("critical", _critical),
        dict(
            summary="i.i.d. N(0, g_c²/n) with g_c the mean-field critical gain of the activation (χ = 1, the edge "
            "of chaos; tanh: 1, relu: √2)",
            norm_guarantee=f"→ 2·g_c {_ASYMPTOTIC}",
            radius_guarantee=f"→ g_c {_CIRCULAR}",
            params={
                "input_variance": Param(
                    0.0, "variance of U x_t + b per unit (moves g_c up)", lambda value: value >= 0, "≥ 0"
                )
            },
            needs_activation=True,
        ),
    ),
]:
    register_scheme(*_args, **_kwargs)  # type: ignore[arg-type]


def scheme_names() -> list[str]:
    """The registered scheme names, in catalogue order."""
    return list(SCHEMES)


def init_weights(
    scheme: str,
    n: int,
    *,
    batch: int | None = None,
    seed: int = 0,
    activation: str | Activation | None = None,
    **params: float,
) -> torch.Tensor:
    """Draw recurrent weights from a named scheme (float64), reproducibly from ``seed``.

    Schemes (see :data:`SCHEMES` for what each guarantees about ‖W‖₂ and ρ(W)): ``gaussian`` (gain), ``orthogonal``
    (gain), ``identity``, ``scaled_identity`` (scale), ``xavier_uniform``/``xavier_normal`` (gain, default 1),
    ``kaiming_uniform``/``kaiming_normal`` (gain, default √2), ``torch_default``, ``spectral_radius`` (rho),
    ``sparse_echo_state`` (rho, density), ``spectral_norm`` (sigma), ``torch_spectral_norm``, ``weight_norm`` (g),
    ``critical`` (input_variance; needs ``activation``), and any added by :func:`register_scheme`.

    Args:
        scheme: the registry name.
        n: hidden size.
        batch: draw this many independent matrices.
        seed: seed of a private generator (the global RNG is untouched).
        activation: needed by schemes that depend on it (``critical``); ignored by the others.
        **params: the scheme's parameters (defaults documented in its :class:`Param`).

    Returns:
        (n, n), or (batch, n, n) of independent draws when ``batch`` is given.

    Raises:
        InvalidArgumentError: unknown scheme (the message lists the valid ones), unknown parameter or bad value
            (the message names the scheme and its parameters), ``critical`` without an activation, n < 1 or batch < 1,
            a seed beyond 64 bits.
        ShapeError, NonFiniteError: a registered callable returned something other than a finite (n, n) matrix.

    Example:
        >>> W = init_weights("spectral_radius", 64, rho=0.5)
        >>> round(float(torch.linalg.eigvals(W).abs().max()), 12)
        0.5
    """
    if not isinstance(scheme, str) or scheme not in SCHEMES:
        raise InvalidArgumentError(f"unknown init scheme {scheme!r}; valid names: {', '.join(SCHEMES)}")
    chosen = SCHEMES[scheme]
    n = _checks.positive_int("hidden size n", n)
    seed = _checks.seed("seed", seed)
    if batch is not None:
        batch = _checks.positive_int("batch", batch)
    # a draw and a factorisation's workspace, in float64, for every matrix of the batch
    _checks.check_memory(3 * (batch or 1) * n * n * 8, torch.device("cpu"), "reduce the hidden size or the batch")
    values = chosen.resolve(params)
    act = get_activation(activation) if activation is not None and chosen.needs_activation else None
    generator = torch.Generator().manual_seed(seed)

    def draw() -> torch.Tensor:
        W = chosen(n, generator, activation=act, **values)
        if not isinstance(W, torch.Tensor) or tuple(W.shape) != (n, n):
            got = tuple(W.shape) if isinstance(W, torch.Tensor) else type(W).__name__
            raise ShapeError(f"scheme {scheme!r} must return an ({n}, {n}) tensor, got {got}")
        W = W.detach().to(torch.float64)
        _checks.finite(f"the draw of scheme {scheme!r}", W)
        return W

    if batch is None:
        return draw()
    return torch.stack([draw() for _ in range(batch)])


def _square(name: str, W: torch.Tensor) -> torch.Tensor:
    W = _checks.tensor(name, W, ndims=(2, 3))
    if W.shape[-1] != W.shape[-2]:
        raise ShapeError(f"{name} must be square (n, n) or (B, n, n), got shape {tuple(W.shape)}")
    if W.shape[-1] == 0:
        raise ShapeError(f"{name} must hold at least one unit, got shape {tuple(W.shape)}")
    return W
