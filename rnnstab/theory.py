"""The δ^T bound, regime verdicts, and mean-field predictions for random networks.

If |σ'| ≤ γ and ‖W‖₂ ≤ δ/γ then ‖∂g_t/∂g_0‖₂ ≤ (γ‖W‖₂)^t ≤ δ^t, i.e. log‖J_t‖₂ ≤ t·log δ: for δ < 1 gradients
vanish at least geometrically. For δ ≥ 1 the bound allows growth but does not force it: saturating activations
often still vanish, so the verdict then rests on the measured rate.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from rnnstab import _checks
from rnnstab.activations import Activation, get_activation
from rnnstab.exceptions import ArgumentTypeError, InvalidArgumentError, ShapeError, StateOverflowError
from rnnstab.jacobian import JacobianTrace

REGIMES = ("guaranteed vanishing", "vanishing", "marginal", "exploding")
DEFAULT_RATE_TOL = 1e-3


@dataclass(frozen=True)
class BoundViolation:
    """A step where log‖J_t‖₂ exceeds t·log δ by more than float rounding explains — always a bug, never a finding."""

    batch: int
    step: int
    log_norm: float
    log_bound: float
    excess: float
    tolerance: float


@dataclass(frozen=True)
class Verdict:
    """What one trace says about gradients over its horizon (all logs natural, rates in nats per step).

    Attributes:
        regime: one of :data:`REGIMES` (see :func:`verdicts` for the thresholds).
        rate_per_step: least-squares slope of log‖J_t‖₂ against t over the late half of the horizon (t > T/2),
            an estimate of the top Lyapunov exponent; -inf if the Jacobian became exactly zero.
        log_delta: log δ, the slope of the bound.
        slack_per_step: log δ − rate: how much faster than the bound gradients actually decay (≥ 0 when the bound
            is respected asymptotically; 0 means the bound is tight).
        half_life_steps: steps for ‖J_t‖₂ to halve, log 2 / −rate (``None`` unless the rate is negative and finite:
            a Jacobian that became exactly 0 has no half-life).
        doubling_steps: steps for ‖J_t‖₂ to double, log 2 / rate (``None`` unless the rate is positive).
        max_bound_excess: max over t of log‖J_t‖₂ − t·log δ (≤ 0 up to rounding when the bound holds).
        bound_holds: no step exceeds the bound by more than the trace's float tolerance.
    """

    regime: str
    rate_per_step: float
    log_delta: float
    slack_per_step: float
    half_life_steps: float | None
    doubling_steps: float | None
    max_bound_excess: float
    bound_holds: bool


def log_bound(delta: float, steps: int) -> torch.Tensor:
    """t·log δ for t = 1..steps (float64): the log of the δ^t bound.

    Raises:
        InvalidArgumentError: δ ≤ 0 or steps < 1.
    """
    delta = _checks.positive_float("delta", delta)
    steps = _checks.positive_int("steps", steps)
    return torch.arange(1, steps + 1, dtype=torch.float64) * math.log(delta)


def bound_violations(trace: JacobianTrace, *, delta: float | torch.Tensor | np.ndarray) -> list[BoundViolation]:
    """Every (trace, step) where log‖J_t‖₂ > t·log δ + tolerance; an empty list when the bound holds.

    Args:
        trace: from :func:`~rnnstab.jacobian_norms` with the spectral norm.
        delta: δ for every trace (a float) or one per trace ((batch,) tensor or array, e.g. ``rnn.delta()``).

    The tolerance is :meth:`JacobianTrace.float_tolerance` (rounding of the product in the trace's dtype) plus
    4·ε·(|log‖J_t‖₂| + |t·log δ|), ε that of float64: the rounding of the two logs themselves, which matters only
    when they are large (|log δ| of tens of nats per step, e.g. units saturated to σ' ≈ e^-100).

    Raises:
        ArgumentTypeError: ``trace`` is not a :class:`~rnnstab.JacobianTrace`.
        InvalidArgumentError: the trace has no spectral norms, or δ ≤ 0.
        ShapeError: ``delta`` has the wrong number of entries.

    Example:
        >>> import torch, rnnstab
        >>> gen = torch.Generator().manual_seed(0)
        >>> W = rnnstab.scale_to_threshold(rnnstab.init_weights("gaussian", 16, seed=0), delta=0.9, gamma=1.0)
        >>> rnn = rnnstab.VanillaRNN(W, torch.randn(16, 2, generator=gen, dtype=torch.float64), activation="tanh")
        >>> trace = rnnstab.jacobian_norms(rnn, torch.randn(4, 60, 2, generator=gen, dtype=torch.float64))
        >>> bound_violations(trace, delta=0.9)  # tanh's γ = 1 and ‖W‖₂ = 0.9: the bound holds
        []
        >>> first = bound_violations(trace, delta=0.5)[0]  # not this network's δ: no bound, exceeded at once
        >>> first.batch, first.step, first.excess > 0
        (0, 1, True)
    """
    excess = _excess(trace, delta)
    tolerance = _tolerance(trace, delta)
    bad = (excess > tolerance).nonzero().tolist()
    log_spectral = _spectral(trace)
    return [
        BoundViolation(
            batch=b,
            step=t + 1,
            log_norm=float(log_spectral[b, t]),
            log_bound=float(log_spectral[b, t] - excess[b, t]),
            excess=float(excess[b, t]),
            tolerance=float(tolerance[b, t]),
        )
        for b, t in bad
    ]


def verdicts(
    trace: JacobianTrace, *, delta: float | torch.Tensor | np.ndarray, rate_tol: float = DEFAULT_RATE_TOL
) -> list[Verdict]:
    """One :class:`Verdict` per trace in the batch.

    Regimes, with r the late-half rate (nats/step) and δ = γ‖W‖₂:

    - ``guaranteed vanishing``: δ < 1 — the bound alone proves ‖J_t‖₂ ≤ δ^t → 0, whatever r shows;
    - ``vanishing``: δ ≥ 1 and r < −rate_tol (the bound permits growth, the network still contracts);
    - ``exploding``: δ ≥ 1 and r > +rate_tol;
    - ``marginal``: δ ≥ 1 and |r| ≤ rate_tol — the norm changes by less than a factor e^{rate_tol·T} over T steps.

    A δ < 1 passed for a trace that exceeds δ^t (``bound_holds`` False: the δ is not this network's γ‖W‖₂) proves
    nothing; that trace is classed by its rate as if δ ≥ 1.

    A trace whose state overflowed (``on_overflow="truncate"``) is measured on the steps before its overflow step.

    Args:
        trace: from :func:`~rnnstab.jacobian_norms` with the spectral norm.
        delta: a float, or one δ per trace ((batch,) tensor or array, e.g. ``rnn.delta()``).
        rate_tol: the half-width of the marginal band, nats per step (default 1e-3: a half-life of 693 steps).

    Raises:
        ArgumentTypeError: ``trace`` is not a :class:`~rnnstab.JacobianTrace`.
        InvalidArgumentError: no spectral norms in the trace, δ ≤ 0, rate_tol ≤ 0.
        StateOverflowError: a trace whose state overflowed at the first step (no step to measure).

    Example:
        >>> import torch, rnnstab
        >>> W = rnnstab.scale_to_threshold(rnnstab.init_weights("orthogonal", 8, seed=0), delta=1.2, gamma=1.0)
        >>> trace = rnnstab.jacobian_norms(rnnstab.VanillaRNN(W, activation="identity"), torch.zeros(1, 40, 0))
        >>> (v,) = verdicts(trace, delta=1.2)  # J_t = W^t, so ‖J_t‖₂ = 1.2^t: the bound is tight
        >>> v.regime, round(v.rate_per_step, 9) == round(math.log(1.2), 9), round(v.doubling_steps, 3)
        ('exploding', True, 3.802)
    """
    rate_tol = _checks.positive_float("rate_tol", rate_tol)
    excess = _excess(trace, delta)
    deltas = _deltas(trace, delta)
    spectral = _spectral(trace)
    tolerance = _tolerance(trace, delta)
    # A trace truncated at a state overflow (NaN from that step on) is measured on the steps before it, as a sweep
    # does: a NaN read as 0 would turn an exploding network into a vanishing one.
    measured = torch.where(trace.overflow_steps > 0, trace.overflow_steps - 1, trace.steps).clamp(max=trace.steps)
    if bool((measured == 0).any()):
        row = int((measured == 0).to(torch.int8).argmax())
        raise StateOverflowError(
            f"the hidden state of trace {row} overflowed at the first step: there is no step to measure a rate on",
            step=1,
            sequence=row,
        )
    rates = late_rate(spectral)
    for horizon in sorted(set(measured[measured < trace.steps].tolist())):
        rows = measured == horizon
        rates[rows] = late_rate(spectral[rows, :horizon])
    out = []
    for b in range(trace.batch_size):
        rate, d, end = float(rates[b]), float(deltas[b]), int(measured[b])
        holds = bool((excess[b, :end] <= tolerance[b, :end]).all())
        out.append(
            Verdict(
                # a δ < 1 that the trace exceeds is not γ‖W‖₂ (or the engine has a bug): it guarantees nothing, so
                # the rate decides, as above the threshold
                regime=regime_of(d if holds else max(d, 1.0), rate, rate_tol=rate_tol),
                rate_per_step=rate,
                log_delta=math.log(d),
                slack_per_step=math.log(d) - rate,
                # none for a Jacobian that became exactly 0 (rate −∞), as the sweep report and lyapunov say
                half_life_steps=math.log(2) / -rate if -math.inf < rate < 0 else None,
                doubling_steps=math.log(2) / rate if rate > 0 else None,
                max_bound_excess=float(excess[b, :end].max()),
                bound_holds=holds,
            )
        )
    return out


def regime_of(delta: float, rate: float, *, rate_tol: float = DEFAULT_RATE_TOL) -> str:
    """The regime (one of :data:`REGIMES`) of a network with δ = γ‖W‖₂ and measured rate (nats/step); see
    :func:`verdicts` for the thresholds.

    Example:
        >>> regime_of(0.9, 0.5), regime_of(2.0, -0.1), regime_of(2.0, 0.0), regime_of(2.0, 0.1)
        ('guaranteed vanishing', 'vanishing', 'marginal', 'exploding')
    """
    if delta < 1:
        return "guaranteed vanishing"
    if rate < -rate_tol:
        return "vanishing"
    if rate > rate_tol:
        return "exploding"
    return "marginal"


def rate_spread(rates: np.ndarray) -> float:
    """Sample standard deviation (ddof = 1) of rates, NaN where one is −∞ (a dead Jacobian). Rates beyond ±1e150
    (units saturated far past float64's σ') are scaled first, as their squares would overflow; the others are
    taken as they are, to the same bits as ``np.std``."""
    size = float(np.abs(rates[np.isfinite(rates)]).max(initial=0.0))
    scale = size if size > 1e150 else 1.0
    with np.errstate(invalid="ignore"):
        return scale * float(np.std(rates / scale, ddof=1))


def late_rate(log_norms: torch.Tensor) -> torch.Tensor:
    """Least-squares slope of log-norms (batch, T) against t over the late half t > T/2 (all t when T < 4).

    A row that reached -inf (an exactly zero Jacobian) has rate -inf.
    """
    steps = log_norms.shape[-1]
    start = steps // 2 if steps >= 4 else 0
    y = log_norms[..., start:].to(torch.float64)
    t = torch.arange(start + 1, steps + 1, dtype=torch.float64)
    if t.numel() == 1:
        return y[..., 0] / t[0]
    dead = torch.isneginf(y).any(dim=-1)
    y = torch.where(torch.isfinite(y), y, 0.0)
    tc = t - t.mean()
    slope = (y * tc).sum(-1) / (tc * tc).sum()
    return torch.where(dead, -math.inf, slope)


def _spectral(trace: JacobianTrace) -> torch.Tensor:
    if not isinstance(trace, JacobianTrace):
        raise ArgumentTypeError(
            f"trace must be the JacobianTrace that rnnstab.jacobian_norms returns, got {type(trace).__name__}"
        )
    if trace.log_spectral is None:
        raise InvalidArgumentError("the trace has no spectral norms: call jacobian_norms with 'spectral' in norms")
    return trace.log_spectral


def _deltas(trace: JacobianTrace, delta: float | torch.Tensor | np.ndarray) -> torch.Tensor:
    if isinstance(delta, np.ndarray) and delta.ndim > 0 and delta.dtype.kind in "iuf":
        delta = torch.from_numpy(delta)  # rnn.delta().numpy(), or a column of a DataFrame: as good as the tensor
    if isinstance(delta, torch.Tensor):
        if delta.dtype == torch.bool or delta.is_complex():
            kind = str(delta.dtype).removeprefix("torch.")
            raise ArgumentTypeError(f"delta must hold real numbers, got a {kind} tensor")
        values = delta.detach().to(torch.float64).cpu().reshape(-1)
        if values.numel() == 1:
            values = values.expand(trace.batch_size)
        if values.numel() != trace.batch_size:
            raise ShapeError(f"delta must be a number or hold {trace.batch_size} values, got {values.numel()}")
        for value in values.tolist():
            _checks.positive_float("delta", value)
        return values
    return torch.full((trace.batch_size,), _checks.positive_float("delta", delta), dtype=torch.float64)


def _excess(trace: JacobianTrace, delta: float | torch.Tensor | np.ndarray) -> torch.Tensor:
    """log‖J_t‖₂ − t·log δ, (batch, T)."""
    return _spectral(trace) - _log_bounds(trace, delta)


def _tolerance(trace: JacobianTrace, delta: float | torch.Tensor | np.ndarray) -> torch.Tensor:
    """(batch, T) rounding allowance for :func:`_excess` (see :func:`bound_violations`)."""
    size = _spectral(trace).abs() + _log_bounds(trace, delta).abs()
    return trace.float_tolerance() + 4 * torch.finfo(torch.float64).eps * size


def _log_bounds(trace: JacobianTrace, delta: float | torch.Tensor | np.ndarray) -> torch.Tensor:
    """t·log δ, (batch, T)."""
    t = torch.arange(1, trace.steps + 1, dtype=torch.float64)
    return t * torch.log(_deltas(trace, delta))[:, None]


# ---------------------------------------------------------------------------------------------------------------------
# Mean-field theory of random networks (W with i.i.d. N(0, g²/n) entries, n → ∞)
# ---------------------------------------------------------------------------------------------------------------------

MEAN_FIELD_REGIMES = ("ordered", "critical", "chaotic")
_GH_NODES = 160
_Z_MAX = 12.0  # the Gaussian mass beyond |z| = 12 is < 1e-32: far below float64 resolution even for f ~ z²
_PANEL_WIDTH = 0.5
_FINE_PANEL_WIDTH = 1.0 / 16.0
_GL_NODES = 20
_CONVERGED = 1e-10
_Q_MAX = 1e12
_Q_MIN = 1e-12
_CRITICAL_TOL = 1e-9
_GAIN_MAX = 1e150


@dataclass(frozen=True)
class MeanField:
    """Mean-field predictions for an RNN with W_ij ~ N(0, g²/n) i.i.d., large n (natural logs, per step).

    The pre-activations h_t = W g_{t-1} + U x_t + b are, for large n, Gaussian with a variance that settles at the
    fixed point q* of the variance map q ↦ g²·E[σ(√q z)²] + σ²_in (z ~ N(0, 1); σ²_in the variance of U x_t + b).
    A small perturbation then grows or shrinks by χ = g²·E[σ'(√q* z)²] per step in squared norm, so

    - the top Lyapunov exponent is λ_max = ½·log χ (nats per step);
    - squared gradients change by a factor e every ξ = 1/|log χ| steps, the depth scale: they vanish over ξ steps
      in the ordered phase (χ < 1, where ξ = −1/log χ of Schoenholz et al.) and grow by e every ξ steps in the
      chaotic phase (χ > 1); ξ diverges at χ = 1, where they do neither exponentially;
    - the ordered (χ < 1) and chaotic (χ > 1) phases meet at the critical gain g_c with χ = 1.

    Sources: Poole, Lahiri, Raghu, Sohl-Dickstein & Ganguli, "Exponential expressivity in deep neural networks
    through transient chaos", NeurIPS 2016 (q-map, q*, χ, order-to-chaos at χ = 1); Schoenholz, Gilmer, Ganguli &
    Sohl-Dickstein, "Deep information propagation", ICLR 2017 (depth scale ξ = −1/log χ); Molgedey, Schuchhardt &
    Schuster, "Suppressing chaos in neural networks by noise", Phys. Rev. Lett. 69, 3717 (1992) (the same mean-field
    for a discrete-time random RNN with input noise: λ_max = ½·log χ; input variance moves g_c above 1 for tanh).
    The theory treats W as drawn afresh each step; for an RNN, which reuses one W, it is accurate at large n in the
    chaotic phase (checked by :func:`rnnstab.run_validation`), less so near χ = 1 and in the ordered phase.

    Attributes:
        activation: the activation's name.
        gain: g.
        input_variance: σ²_in.
        q_star: the stable (largest) fixed point q* of the variance map; ``inf`` when the variance grows without
            bound (unbounded σ above its critical gain, e.g. relu with g > √2 and σ²_in > 0).
        chi: χ = g²·E[σ'(√q* z)²]; at q* = 0 the limit q → 0⁺ (relu: g²/2), at q* = inf the value at q = 10¹².
        lyapunov_max_per_step: ½·log χ.
        depth_scale_steps: ξ = 1/|log χ| ≥ 0, the steps over which squared gradients shrink (``ordered``) or grow
            (``chaotic``) by a factor e; ``inf`` when ``critical``.
        regime: ``ordered`` (χ < 1), ``critical`` (|log χ| ≤ 1e-9) or ``chaotic`` (χ > 1).
    """

    activation: str
    gain: float
    input_variance: float
    q_star: float
    chi: float
    lyapunov_max_per_step: float
    depth_scale_steps: float
    regime: str


def gaussian_expectation(
    f: Callable[[torch.Tensor], torch.Tensor], variance: float, *, breakpoints: Sequence[float] = ()
) -> float:
    """E[f(√q·z)] for z ~ N(0, 1) and q = ``variance`` ≥ 0, in float64.

    Smooth integrands (no ``breakpoints``) use Gauss–Hermite quadrature with 160 nodes (exact for polynomials of
    degree ≤ 319; tanh², sech⁴ to 1e-16). Across a kink Gauss–Hermite converges only algebraically (hardtanh' with
    200 nodes is off by 3e-2), so with ``breakpoints`` (the kinks of f in x) the line |z| ≤ 12 is cut into panels of
    width ≤ 0.5 with edges at the kinks, each integrated by 20-node Gauss–Legendre: exact to rounding for piecewise-
    analytic f. Without breakpoints a second Gauss–Hermite rule (80 nodes) checks convergence; if the two disagree
    beyond 1e-10 (an undeclared kink), fine panels of width 1/16 are used instead (error O(1/16²)).

    Args:
        f: elementwise function of a float64 tensor.
        variance: q ≥ 0 (q = 0 gives f(0)).
        breakpoints: the points x where f is not smooth.

    Raises:
        ArgumentTypeError: ``f`` is not callable.
        InvalidArgumentError: q < 0 or not finite.

    Example:
        >>> round(gaussian_expectation(lambda x: x**2, 2.0), 14)
        2.0
        >>> round(gaussian_expectation(torch.relu, 1.0, breakpoints=[0.0]), 12)  # 1/√(2π)
        0.398942280401
    """
    if not callable(f):
        raise ArgumentTypeError(f"f must be a function of a tensor, got {type(f).__name__}")
    variance = _checks.non_negative_float("variance", variance)
    scale = math.sqrt(variance)
    if scale == 0.0:
        return float(f(torch.zeros(1, dtype=torch.float64))[0])
    if breakpoints:
        return _panel_expectation(f, scale, [b / scale for b in breakpoints], _PANEL_WIDTH)
    fine = _hermite_expectation(f, scale, _GH_NODES)
    coarse = _hermite_expectation(f, scale, _GH_NODES // 2)
    if abs(fine - coarse) <= _CONVERGED * (1.0 + abs(fine)):
        return fine
    return _panel_expectation(f, scale, [], _FINE_PANEL_WIDTH)


def mean_field(
    activation: str | Activation | Callable[[torch.Tensor], torch.Tensor] = "tanh",
    *,
    gain: float,
    input_variance: float = 0.0,
) -> MeanField:
    """Mean-field q*, χ, λ_max = ½·log χ and depth scale 1/|log χ| for W_ij ~ N(0, g²/n); see :class:`MeanField`.

    The fixed point is found robustly: an upper bracket q_hi with map(q_hi) < q_hi (doubling from 1 up to 10¹²,
    else q* = inf), a geometric scan down from q_hi to the first q with map(q) > q, then Brent's method on that
    bracket — the largest fixed point, which is the stable one (the map crosses the diagonal from above there).
    Below q = 10⁻¹² the fixed point is taken as 0.

    Args:
        activation: a registry name, an :class:`~rnnstab.Activation` (scaled families included) or a callable.
        gain: g > 0, the standard deviation of √n·W_ij.
        input_variance: σ²_in ≥ 0, the variance of each entry of U x_t + b (inputs i.i.d. over time).

    Raises:
        InvalidArgumentError: g ≤ 0 or g > 10¹⁵⁰, σ²_in < 0, an unknown activation.

    Example:
        >>> mf = mean_field("tanh", gain=0.5)  # q* = 0: χ = g²·tanh'(0)² = 0.25
        >>> mf.q_star, mf.chi, round(mf.lyapunov_max_per_step, 6), mf.regime
        (0.0, 0.25, -0.693147, 'ordered')
        >>> round(mean_field("relu", gain=2**0.5).chi, 12)  # relu: χ = g²/2 whatever q*
        1.0
    """
    act = get_activation(activation)
    gain = _checks.positive_float("gain", gain)
    if gain > _GAIN_MAX:
        raise InvalidArgumentError(f"gain must be at most {_GAIN_MAX:g} (g² must be a finite float), got {gain:g}")
    sigma_in = _checks.non_negative_float("input_variance", input_variance)
    q_star = _fixed_point(act, gain, sigma_in)
    q_eval = _Q_MAX if math.isinf(q_star) else max(q_star, _Q_MIN**2)  # q → 0⁺: relu's χ is g²/2, not g²·σ'(0)²
    chi = gain**2 * gaussian_expectation(lambda x: act.derivative(x) ** 2, q_eval, breakpoints=act.breakpoints)
    log_chi = math.log(chi) if chi > 0 else -math.inf
    regime = "critical" if abs(log_chi) <= _CRITICAL_TOL else "chaotic" if log_chi > 0 else "ordered"
    return MeanField(
        activation=act.name,
        gain=gain,
        input_variance=sigma_in,
        q_star=q_star,
        chi=chi,
        lyapunov_max_per_step=0.5 * log_chi,
        # Within the critical tolerance the sign of log χ, and so a finite ξ of 10⁹ steps or more, is quadrature
        # rounding: the theory's answer there is the divergence at χ = 1.
        depth_scale_steps=math.inf if regime == "critical" else 1.0 / abs(log_chi),
        regime=regime,
    )


def critical_gain(
    activation: str | Activation | Callable[[torch.Tensor], torch.Tensor] = "tanh", *, input_variance: float = 0.0
) -> float:
    """The gain g_c at which χ = 1 (the order-to-chaos transition), by Brent's method on log χ(g).

    Returns ``nan`` if χ never reaches 1 for g in [10⁻³, 10³] (e.g. an activation with σ' = 0 almost everywhere).

    Args:
        activation: as for :func:`mean_field`.
        input_variance: σ²_in ≥ 0; input noise suppresses chaos, moving g_c up (Molgedey et al. 1992).

    Raises:
        InvalidArgumentError: σ²_in < 0, an unknown activation.

    Example:
        >>> critical_gain("tanh"), round(critical_gain("relu"), 12)
        (1.0, 1.414213562373)
        >>> critical_gain("tanh", input_variance=0.5) > 1
        True
    """
    act = get_activation(activation)
    sigma_in = _checks.non_negative_float("input_variance", input_variance)

    def log_chi(g: float) -> float:
        chi = mean_field(act, gain=g, input_variance=sigma_in).chi
        return math.log(chi) if chi > 0 else -math.inf

    lo, hi = 1.0, 1.0
    while log_chi(lo) > 0 and lo > 1e-3:
        lo /= 2.0
    while log_chi(hi) < 0 and hi < 1e3:
        hi *= 2.0
    if not (log_chi(lo) <= 0 <= log_chi(hi)):
        return math.nan
    if log_chi(lo) == 0:
        return lo
    if log_chi(hi) == 0:
        return hi
    from scipy.optimize import brentq  # here: scipy.optimize takes 0.7 s to import

    return float(brentq(log_chi, lo, hi, xtol=1e-13, rtol=1e-13))


def critical_delta(
    activation: str | Activation | Callable[[torch.Tensor], torch.Tensor] = "tanh",
    *,
    input_variance: float = 0.0,
    init: str = "gaussian",
) -> float:
    """δ = γ‖W‖₂ at the mean-field order-to-chaos transition, for placing the χ = 1 line on a (δ, ·) phase diagram.

    W = g·W₀ has ‖W‖₂ = g·‖W₀‖₂, with ‖W₀‖₂ → 2 for i.i.d. N(0, 1/n) entries as n → ∞ (the edge of the
    quarter-circle law of its singular values; finite-n fluctuations are of order n^(-2/3)) and = 1 for a Haar
    orthogonal W₀, whose entries have the same variance 1/n and hence the same variance map and χ. So
    δ_c = γ·g_c·‖W₀‖₂ with g_c from :func:`critical_gain`.

    Args:
        activation: as for :func:`mean_field`.
        input_variance: σ²_in ≥ 0.
        init: ``gaussian`` or ``orthogonal`` (the schemes of :func:`rnnstab.init_weights`).

    Raises:
        InvalidArgumentError: an unknown init, σ²_in < 0, an unknown activation.

    Example:
        >>> critical_delta("tanh"), critical_delta("tanh", init="orthogonal")
        (2.0, 1.0)
    """
    norms = {"gaussian": 2.0, "orthogonal": 1.0}
    if init not in norms:
        raise InvalidArgumentError(f"init must be one of {', '.join(sorted(norms))} for critical_delta, got {init!r}")
    act = get_activation(activation)
    return act.gamma * critical_gain(act, input_variance=input_variance) * norms[init]


def _fixed_point(act: Activation, gain: float, sigma_in: float) -> float:
    """The largest fixed point of q ↦ g²·E[σ(√q z)²] + σ²_in (see :func:`mean_field`)."""

    def excess(q: float) -> float:
        second_moment = gaussian_expectation(lambda x: act.fn(x) ** 2, q, breakpoints=act.breakpoints)
        return gain**2 * second_moment + sigma_in - q

    hi = 1.0
    while excess(hi) >= 0:
        hi *= 4.0
        if hi > _Q_MAX:
            return math.inf
    lo = hi
    while excess(lo) <= 0:
        lo /= 4.0
        if lo < _Q_MIN:
            return 0.0
    from scipy.optimize import brentq

    return float(brentq(excess, lo, min(4.0 * lo, hi), xtol=1e-300, rtol=4 * np.finfo(float).eps))


def _hermite_expectation(f: Callable[[torch.Tensor], torch.Tensor], scale: float, nodes: int) -> float:
    x, w = _hermite_rule(nodes)
    return float((w * f(math.sqrt(2.0) * scale * x)).sum() / math.sqrt(math.pi))


def _panel_expectation(
    f: Callable[[torch.Tensor], torch.Tensor], scale: float, kinks: Sequence[float], width: float
) -> float:
    """∫ f(scale·z) φ(z) dz over |z| ≤ 12 by Gauss–Legendre panels with edges at the kinks (in z)."""
    count = round(2 * _Z_MAX / width)
    edges = np.union1d(np.linspace(-_Z_MAX, _Z_MAX, count + 1), [k for k in kinks if abs(k) < _Z_MAX])
    x, w = _legendre_rule(_GL_NODES)
    left, right = edges[:-1, None], edges[1:, None]
    z = torch.from_numpy(0.5 * (right - left) * x[None, :] + 0.5 * (right + left)).reshape(-1)
    weights = torch.from_numpy(0.5 * (right - left) * w[None, :]).reshape(-1)
    density = torch.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    return float((weights * density * f(scale * z)).sum())


@functools.cache
def _hermite_rule(nodes: int) -> tuple[torch.Tensor, torch.Tensor]:
    x, w = np.polynomial.hermite.hermgauss(nodes)
    return torch.from_numpy(x), torch.from_numpy(w)


@functools.cache
def _legendre_rule(nodes: int) -> tuple[np.ndarray, np.ndarray]:
    x, w = np.polynomial.legendre.leggauss(nodes)
    return x, w
