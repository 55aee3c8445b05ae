"""The δ^T bound and regime verdicts.

If |σ'| ≤ γ and ‖W‖₂ ≤ δ/γ then ‖∂g_t/∂g_0‖₂ ≤ (γ‖W‖₂)^t ≤ δ^t, i.e. log‖J_t‖₂ ≤ t·log δ: for δ < 1 gradients
vanish at least geometrically. For δ ≥ 1 the bound allows growth but does not force it: saturating activations
often still vanish, so the verdict then rests on the measured rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from rnnstab import _checks
from rnnstab.exceptions import InvalidArgumentError, ShapeError
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
        half_life_steps: steps for ‖J_t‖₂ to halve, log 2 / −rate (``None`` unless the rate is negative).
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


def bound_violations(trace: JacobianTrace, *, delta: float | torch.Tensor) -> list[BoundViolation]:
    """Every (trace, step) where log‖J_t‖₂ > t·log δ + tolerance; an empty list when the bound holds.

    Args:
        trace: from :func:`~rnnstab.jacobian_norms` with the spectral norm.
        delta: δ for every trace (a float) or one per trace ((batch,) tensor, e.g. ``rnn.delta()``).

    The tolerance is :meth:`JacobianTrace.float_tolerance` (rounding of the product in the trace's dtype).

    Raises:
        InvalidArgumentError: the trace has no spectral norms, or δ ≤ 0.
        ShapeError: ``delta`` has the wrong number of entries.
    """
    excess = _excess(trace, delta)
    tolerance = trace.float_tolerance()
    bad = (excess > tolerance).nonzero().tolist()
    log_spectral = _spectral(trace)
    return [
        BoundViolation(
            batch=b,
            step=t + 1,
            log_norm=float(log_spectral[b, t]),
            log_bound=float(log_spectral[b, t] - excess[b, t]),
            excess=float(excess[b, t]),
            tolerance=float(tolerance[t]),
        )
        for b, t in bad
    ]


def verdicts(trace: JacobianTrace, *, delta: float | torch.Tensor, rate_tol: float = DEFAULT_RATE_TOL) -> list[Verdict]:
    """One :class:`Verdict` per trace in the batch.

    Regimes, with r the late-half rate (nats/step) and δ = γ‖W‖₂:

    - ``guaranteed vanishing``: δ < 1 — the bound alone proves ‖J_t‖₂ ≤ δ^t → 0, whatever r shows;
    - ``vanishing``: δ ≥ 1 and r < −rate_tol (the bound permits growth, the network still contracts);
    - ``exploding``: δ ≥ 1 and r > +rate_tol;
    - ``marginal``: δ ≥ 1 and |r| ≤ rate_tol — the norm changes by less than a factor e^{rate_tol·T} over T steps.

    Args:
        trace: from :func:`~rnnstab.jacobian_norms` with the spectral norm.
        delta: a float, or one δ per trace ((batch,) tensor, e.g. ``rnn.delta()``).
        rate_tol: the half-width of the marginal band, nats per step (default 1e-3: a half-life of 693 steps).

    Raises:
        InvalidArgumentError: no spectral norms in the trace, δ ≤ 0, rate_tol ≤ 0.
    """
    rate_tol = _checks.positive_float("rate_tol", rate_tol)
    excess = _excess(trace, delta)
    deltas = _deltas(trace, delta)
    rates = late_rate(_spectral(trace))
    tolerance = trace.float_tolerance()
    out = []
    for b in range(trace.batch_size):
        rate, d = float(rates[b]), float(deltas[b])
        if d < 1:
            regime = "guaranteed vanishing"
        elif rate < -rate_tol:
            regime = "vanishing"
        elif rate > rate_tol:
            regime = "exploding"
        else:
            regime = "marginal"
        out.append(
            Verdict(
                regime=regime,
                rate_per_step=rate,
                log_delta=math.log(d),
                slack_per_step=math.log(d) - rate,
                half_life_steps=math.log(2) / -rate if rate < 0 else None,
                doubling_steps=math.log(2) / rate if rate > 0 else None,
                max_bound_excess=float(excess[b].max()),
                bound_holds=bool((excess[b] <= tolerance).all()),
            )
        )
    return out


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
    if trace.log_spectral is None:
        raise InvalidArgumentError("the trace has no spectral norms: call jacobian_norms with 'spectral' in norms")
    return trace.log_spectral


def _deltas(trace: JacobianTrace, delta: float | torch.Tensor) -> torch.Tensor:
    if isinstance(delta, torch.Tensor):
        values = delta.detach().to(torch.float64).cpu().reshape(-1)
        if values.numel() == 1:
            values = values.expand(trace.batch_size)
        if values.numel() != trace.batch_size:
            raise ShapeError(f"delta must be a number or hold {trace.batch_size} values, got {values.numel()}")
        for value in values.tolist():
            _checks.positive_float("delta", value)
        return values
    return torch.full((trace.batch_size,), _checks.positive_float("delta", delta), dtype=torch.float64)


def _excess(trace: JacobianTrace, delta: float | torch.Tensor) -> torch.Tensor:
    """log‖J_t‖₂ − t·log δ, (batch, T)."""
    log_spectral = _spectral(trace)
    t = torch.arange(1, trace.steps + 1, dtype=torch.float64)
    return log_spectral - t * torch.log(_deltas(trace, delta))[:, None]
