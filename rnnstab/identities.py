"""Numerical checks of results around the vanishing-gradient bound.

Each ``check_*`` returns an :class:`IdentityCheck`; :func:`run_identities` runs them all. The optimiser checks live in
:mod:`rnnstab.optimizers`, the weight-normalisation ones in :mod:`rnnstab.weightnorm`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from rnnstab import _checks
from rnnstab._identity import IdentityCheck, eps, flat_loss, problem, verdict
from rnnstab.exceptions import ArgumentTypeError, InvalidArgumentError
from rnnstab.optimizers import check_ema_bias, check_ema_unrolled, check_momentum_ema
from rnnstab.rnn import VanillaRNN, check_rnn
from rnnstab.weightnorm import check_weightnorm_gradient, check_weightnorm_growth, check_wn_bn

__all__ = [
    "IDENTITIES",
    "IdentityCheck",
    "check_induction",
    "check_newton_quadratic",
    "check_newton_rnn",
    "check_taylor",
    "induction_check",
    "run_identities",
]


def induction_check(rnn: VanillaRNN, x: torch.Tensor, *, h0: torch.Tensor | None = None) -> float:
    """max over t, batch and units of |σ(h_t) − g_t|: both forms run from g_0 = σ(h_0).

    By induction σ(h_t) = g_t exactly: σ(h_t) = σ(W σ(h_{t-1}) + U x_t + b) = σ(W g_{t-1} + U x_t + b) = g_t.
    The measured value is the rounding of the two computations (≈ 1e-16 in float64, ≈ 1e-7 in float32 for
    bounded activations).

    Example:
        >>> rnn = VanillaRNN(torch.randn(4, 4, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64))
        >>> induction_check(rnn, torch.randn(3, 20, 2)) < 1e-12
        True
    """
    post = check_rnn(rnn).run(x, h0=h0)
    pre = rnn.run_preactivation(x, h0=h0)
    return float((rnn.activation.fn(pre) - post).abs().max())


def _hessian(f: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """Exact Hessian by reverse-over-reverse (torch.func.hessian's forward mode triggers a torch.jit warning)."""
    return torch.func.jacrev(torch.func.jacrev(f))


def check_induction(*, seed: int = 0, dtype: torch.dtype = torch.float64) -> IdentityCheck:
    """σ(h_t) = g_t for the post- and pre-activation forms of a random tanh RNN (see :func:`induction_check`).

    Args:
        seed: seed of the random problem.
        dtype: torch.float64 or torch.float32 (or their names).

    Returns:
        An :class:`IdentityCheck`; discrepancy = max |σ(h_t) − g_t|, tolerance 10⁴ ulps of the dtype.

    Raises:
        InvalidArgumentError: an unsupported dtype.

    Example:
        >>> check_induction().passed
        True
    """
    dtype = _checks.dtype("dtype", dtype)
    gen = torch.Generator().manual_seed(seed)
    n, m = 8, 3
    W = 1.5 * torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))[0]
    U = torch.randn(n, m, generator=gen, dtype=torch.float64)
    x = torch.randn(5, 30, m, generator=gen, dtype=torch.float64)
    rnn = VanillaRNN(W.to(dtype), U.to(dtype), None, activation="tanh")
    value = induction_check(rnn, x.to(dtype))
    # |g_t| ≤ 1 and tanh is 1-Lipschitz: the two forms differ by a few ulps of O(1) numbers; 1e4 ulps is generous.
    return verdict(
        "induction",
        "σ(h_t) = g_t: pre-activation form h_t = W σ(h_{t-1}) + U x_t + b matches g_t = σ(W g_{t-1} + U x_t + b)",
        value,
        1e4 * eps(dtype),
        unit="max |σ(h_t) − g_t|",
        tolerance_reason="10⁴ ulps of O(1) states",
    )


#: The ε² coefficient b of r(ε) assumed when choosing the probe step (in units of ‖εg‖; see check_taylor).
_TAYLOR_B = 10.0
#: |r₀| accepted: 8× its largest error estimate at seeds 0–99 (0.012 in float32), 1/10 of a missing curvature term.
_TAYLOR_TOLERANCE = 0.1


def _rounding_level(remainder: Callable[[float], float], gnorm: float, f0: float, dtype: torch.dtype) -> float:
    """The rounding level of the Taylor remainder, measured where the remainder itself is negligible.

    At ‖εg‖ ≤ √eps the exact remainder is O(eps^1.5), far below the rounding of f (O(eps·|f|)), so what is left
    at eight such steps is rounding; one ulp of f(θ₀) is the floor, since f cannot be resolved more finely.
    """
    tiny = [eps(dtype) ** 0.5 * 0.5**k / gnorm for k in range(8)]
    return max(max(abs(remainder(step)) for step in tiny), eps(dtype) * abs(f0))


def _probe_step(gg: float, gHg: float, rounding: float) -> float:
    """The ε minimising the error (9/4)·ρ/(c‖εg‖²) + 2|b|‖εg‖² of r₀, with |b| = _TAYLOR_B and ‖εg‖ ≤ ½.

    ρ is the rounding level and c = ½|gᵀHg|/‖g‖² the curvature term per unit ‖εg‖²; gᵀHg = 0 gives the cap.
    """
    if gHg == 0.0:
        return 0.5 / gg**0.5
    curvature = 0.5 * abs(gHg) / gg
    return min((9.0 * rounding / (8.0 * _TAYLOR_B * curvature)) ** 0.25, 0.5) / gg**0.5


def check_taylor(
    *, order: int = 2, seed: int = 0, dtype: torch.dtype = torch.float64, exact_hessian: bool = False
) -> IdentityCheck:
    """Second-order Taylor model of an RNN loss along the gradient, and the optimal step ε* = gᵀg / gᵀHg.

    f(θ₀ − εg) = f(θ₀) − ε gᵀg + ½ ε² gᵀHg + O(ε³), with gᵀHg from a Hessian-vector product (double backward);
    ``exact_hessian=True`` forms H instead (small models only). ``order=1`` drops the curvature term, a
    deliberately wrong model whose remainder is O(ε²): the check must fail on it.

    The statistic is the remainder R(ε) as a fraction of the curvature term, r(ε) = R(ε) / (½ε²gᵀHg). Written in
    the step norm s = ‖εg‖, the second-order model has r = as + bs² + … → 0; if the ε² term is missing r → 1, and if
    gᵀHg is wrong by a fraction δ, r → −δ. Richardson extrapolation r₀ = 2r(s_p) − r(2s_p) removes the as term, so
    r₀ = −2bs_p² + … is not spoilt by a large third derivative, nor by the ε³ and ε⁴ terms cancelling (a fixed ε
    grid and a slope fitted to log R failed on exactly those).

    The probe step comes from the data. The rounding level ρ of R is measured at eight steps s ≤ √eps, where the
    exact remainder is negligible. Rounding then moves r₀ by ≤ (2 + ¼)·ρ/(c s_p²), with c = ½|gᵀHg|/‖g‖², and
    truncation by ≈ 2|b| s_p²; s_p minimises their sum for |b| = 10 (b is unknown, and erring large costs only
    a little more rounding), which puts the error of r₀ near 3·√(20ρ/c). It lands at s_p ≈ 10⁻⁴ in float64 and
    ≈ 10⁻² in float32, where that estimate is ≤ 5·10⁻⁷ and ≤ 0.012 for seeds 0–99 (|r₀| stays within 1.2 times it).

    Tolerance 0.1 on |r₀|: eight times the largest error estimate, and a tenth of what the first-order model gives
    (|r₀| ≈ 1), so any curvature term off by more than 10 % fails. Over seeds 0–99, |r₀| ≤ 5·10⁻⁷ (float64) and
    ≤ 0.011 (float32) for the second-order model, and 0.99 ≤ |r₀| ≤ 1.011 for the first-order one. When gᵀHg is so
    small that s_p reaches its cap of ½ the estimate no longer holds and the check may fail (gᵀHg = 0: r = ∞).

    When gᵀHg > 0 the quadratic model is minimised by ε* = gᵀg/gᵀHg (reported with the loss there); when
    gᵀHg ≤ 0 the model has no minimum along −g, ``details["curvature"]`` is ``"non-positive"`` and no ε* is given.

    Args:
        order: 2 for the Taylor model above; 1 drops the curvature term (a deliberately wrong model).
        seed: seed of the random problem.
        dtype: torch.float64 or torch.float32 (or their names).
        exact_hessian: form the full Hessian instead of one Hessian-vector product.

    Returns:
        An :class:`IdentityCheck`; discrepancy = |r₀|, tolerance 0.1.

    Raises:
        InvalidArgumentError: order not 1 or 2, or an unsupported dtype.

    Example:
        >>> c = check_taylor()
        >>> c.passed, c.discrepancy < 0.05, check_taylor(order=1).discrepancy > 0.9
        (True, True, True)
    """
    if _checks.integer("order", order) not in (1, 2):
        raise InvalidArgumentError(f"order must be 1 or 2, got {order!r}")
    dtype = _checks.dtype("dtype", dtype)
    params, x, y = problem(seed, dtype)
    loss = flat_loss([p.shape for p in params], x, y)
    theta = torch.cat([p.flatten() for p in params]).requires_grad_(True)
    f0 = loss(theta)
    (grad,) = torch.autograd.grad(f0, theta, create_graph=True)
    if exact_hessian:
        hessian = _hessian(loss)(theta.detach())
        gHg = float(grad.detach() @ hessian @ grad.detach())
    else:
        (hvp,) = torch.autograd.grad(grad, theta, grad_outputs=grad.detach())
        gHg = float(grad.detach() @ hvp)
    g = grad.detach()
    gg, theta0, f0v = float(g @ g), theta.detach(), float(f0.detach())

    def remainder(step: float, model_order: int) -> float:
        model = f0v - step * gg + (0.5 * step**2 * gHg if model_order == 2 else 0.0)
        with torch.no_grad():
            return float(loss(theta0 - step * g)) - model

    # Rounding is a property of evaluating f, not of the model under test: measure it with the full model.
    rounding = _rounding_level(lambda step: remainder(step, 2), gg**0.5, f0v, dtype)
    probe = _probe_step(gg, gHg, rounding)
    steps = [probe, 2.0 * probe]
    remainders = [remainder(step, order) for step in steps]
    ratios = [r / (0.5 * step**2 * gHg) if gHg else math.inf for r, step in zip(remainders, steps, strict=True)]
    extrapolated = 2.0 * ratios[0] - ratios[1]
    details: dict[str, Any] = {
        "unit": "|r₀|: remainder / (½ε²gᵀHg), Richardson-extrapolated to ε → 0",
        "tolerance_reason": "≥ 8 × the rounding + truncation error 3√(20ρ/c) of r₀; no curvature term gives r₀ = 1",
        "order": order,
        "epsilons": steps,
        "step_norms": [step * gg**0.5 for step in steps],
        "remainders": remainders,
        "remainder_over_curvature_term": ratios,
        "extrapolated_ratio": extrapolated,
        "rounding_level": rounding,
        "gTg": gg,
        "gTHg": gHg,
        "hessian": "exact" if exact_hessian else "Hessian-vector product",
    }
    if gHg > 0:
        eps_star = gg / gHg
        with torch.no_grad():
            details.update(
                curvature="positive",
                epsilon_star=eps_star,
                loss_before=f0v,
                loss_at_epsilon_star=float(loss(theta0 - eps_star * g)),
                model_at_epsilon_star=f0v - 0.5 * gg**2 / gHg,
            )
    else:
        details.update(
            curvature="non-positive",
            statement="gᵀHg ≤ 0: the quadratic model decreases without bound along −g; no optimal step ε*",
        )
    return verdict(
        "taylor",
        "f(θ₀−εg) = f(θ₀) − εgᵀg + ½ε²gᵀHg + O(ε³); ε* = gᵀg/gᵀHg when gᵀHg > 0",
        abs(extrapolated),
        _TAYLOR_TOLERANCE,
        **details,
    )


def check_newton_quadratic(
    *, dim: int = 6, step_size: float = 1.0, seed: int = 0, dtype: torch.dtype = torch.float64
) -> IdentityCheck:
    """One Newton step x₁ = x₀ − step_size·H⁻¹∇f(x₀) reaches the minimum of f(x) = ½xᵀAx − bᵀx, A ≻ 0.

    H and ∇f come from autograd (exact Hessian), the reference x* = A⁻¹b from the closed form. With
    ``step_size=1`` the step lands on x*; a step size s misses it by exactly (1 − s)(x₀ − x*), and the check fails
    once that exceeds rounding.

    Tolerance: κ · dim · eps · (max |x₀| + max |x*|), the textbook forward-error bound of the two linear solves
    (relative error ≲ κ·n·u each, u = eps/2) plus the rounding of ∇f = Ax₀ − b (≤ n·u·(|A||x₀| + |b|), not amplified
    since ‖A⁻¹‖ = 1) and of x₀ − step; κ = 10 is the condition number of A. Measured over seeds 0–99 the error stays
    below 7 % of the tolerance in float64 and float32; step_size = 0.9999 exceeds it at least 4-fold in float32 and
    2·10⁹-fold in float64.

    Args:
        dim: dimension of x (A has eigenvalues spread over [1, 10]).
        step_size: multiplier of the Newton step; 1 is Newton's method.
        seed: seed of the random problem.
        dtype: torch.float64 or torch.float32 (or their names).

    Returns:
        An :class:`IdentityCheck`; discrepancy = max |x₁ − x*|, tolerance as above.

    Raises:
        InvalidArgumentError: dim < 1, step_size ≤ 0, or an unsupported dtype.

    Example:
        >>> check_newton_quadratic().passed, check_newton_quadratic(step_size=0.9999).passed
        (True, False)
    """
    dim = _checks.positive_int("dim", dim)
    step_size = _checks.positive_float("step_size", step_size)
    dtype = _checks.dtype("dtype", dtype)
    gen = torch.Generator().manual_seed(seed)
    Q = torch.linalg.qr(torch.randn(dim, dim, generator=gen, dtype=torch.float64))[0]
    eigenvalues = torch.linspace(1.0, 10.0, dim, dtype=torch.float64)
    condition = float(eigenvalues[-1] / eigenvalues[0])
    A = ((Q * eigenvalues) @ Q.mT).to(dtype)
    b = torch.randn(dim, generator=gen, dtype=torch.float64).to(dtype)
    x0 = torch.randn(dim, generator=gen, dtype=torch.float64).to(dtype)

    def f(x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x @ A @ x - b @ x

    x = x0.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(f(x), x)
    hessian = _hessian(f)(x0)
    x1 = x0 - step_size * torch.linalg.solve(hessian, grad)
    x_star = torch.linalg.solve(A, b)
    scale = float(x0.abs().max()) + float(x_star.abs().max())
    return verdict(
        "newton-quadratic",
        "Newton's step x₀ − H⁻¹∇f reaches the minimum of a positive-definite quadratic in one step",
        float((x1 - x_star).abs().max()),
        condition * dim * eps(dtype) * scale,
        unit="max |x₁ − x*|",
        tolerance_reason="κ × dim × eps × (max |x₀| + max |x*|): forward error of the linear solves",
        dim=dim,
        step_size=step_size,
        condition_number=condition,
        distance_to_minimum=float((x0 - x_star).abs().max()),
        f_after=float(f(x1)),
        f_min=float(f(x_star)),
    )


def check_newton_rnn(*, seed: int = 0, dtype: torch.dtype = torch.float64) -> IdentityCheck:
    """One exact Newton step on a tiny tanh-RNN loss (n = 2, T = 3): a report, not an identity.

    The Hessian of an RNN loss is generally indefinite, so a full Newton step may raise the loss or head for a
    saddle point. The only thing checked is that the step and the new loss are finite; ``details`` gives the loss
    before and after and the Hessian's extreme eigenvalues, so the user can see what happened.

    Args:
        seed: seed of the random problem.
        dtype: torch.float64 or torch.float32 (or their names).

    Returns:
        An :class:`IdentityCheck` with discrepancy 0 and tolerance 0 when the step is finite (∞ otherwise).

    Raises:
        InvalidArgumentError: an unsupported dtype.

    Example:
        >>> c = check_newton_rnn()
        >>> c.passed, sorted(c.details)[:2]
        (True, ['hessian_eigenvalue_max', 'hessian_eigenvalue_min'])
    """
    dtype = _checks.dtype("dtype", dtype)
    params, x, y = problem(seed, dtype, n=2, m=1, T=3, batch=6)
    loss = flat_loss([p.shape for p in params], x, y)
    theta0 = torch.cat([p.flatten() for p in params])
    theta = theta0.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss(theta), theta)
    hessian = _hessian(loss)(theta0)
    eigenvalues = torch.linalg.eigvalsh(hessian)
    step = torch.linalg.lstsq(hessian, grad[:, None]).solution[:, 0]  # lstsq: H may be singular
    before, after = float(loss(theta0)), float(loss(theta0 - step))
    finite = math.isfinite(after) and bool(torch.isfinite(step).all())
    return verdict(
        "newton-rnn",
        "one exact Newton step on a tiny RNN loss (report only: the step is finite, no claim on the loss)",
        0.0 if finite else math.inf,
        0.0,
        unit="0 when the step and the new loss are finite",
        tolerance_reason="no identity holds here: H is indefinite in general, so only finiteness is checked",
        parameters=int(theta0.numel()),
        loss_before=before,
        loss_after=after,
        loss_decreased=after < before,
        hessian_eigenvalue_min=float(eigenvalues[0]),
        hessian_eigenvalue_max=float(eigenvalues[-1]),
        step_norm=float(step.norm()),
    )


#: Every check run by :func:`run_identities`, by name, in the order printed.
IDENTITIES: dict[str, Callable[..., IdentityCheck]] = {
    "induction": check_induction,
    "momentum-ema": check_momentum_ema,
    "ema-unrolled": check_ema_unrolled,
    "ema-bias": check_ema_bias,
    "taylor": check_taylor,
    "newton-quadratic": check_newton_quadratic,
    "newton-rnn": check_newton_rnn,
    "weightnorm-gradient": check_weightnorm_gradient,
    "weightnorm-growth": check_weightnorm_growth,
    "wn-bn": check_wn_bn,
}


def run_identities(
    *, seed: int = 0, dtype: torch.dtype | str = torch.float64, only: Sequence[str] | None = None
) -> list[IdentityCheck]:
    """Run every identity check (or those named in ``only``) with their default settings.

    Args:
        seed: seed of every random network, data set and Monte-Carlo sample.
        dtype: torch.float64 (default) or torch.float32, or their names; rounding tolerances scale with its eps.
        only: names from :data:`IDENTITIES` to run, in the order given; None runs all.

    Returns:
        One :class:`IdentityCheck` per check.

    Raises:
        InvalidArgumentError: an unknown name in ``only``, a seed outside torch's [-2^63, 2^64 - 1], or an
            unsupported dtype.
        ArgumentTypeError: a seed that is not an integer, or ``only`` given as one string instead of a list.

    Example:
        >>> [c.passed for c in run_identities(only=["induction", "wn-bn"])]
        [True, True]
    """
    seed = _checks.integer("seed", seed)
    if not -(2**63) <= seed < 2**64:  # torch.Generator.manual_seed's range; beyond it torch raises an OverflowError
        raise InvalidArgumentError(f"seed must be in [-2^63, 2^64 - 1], got {seed}")
    chosen = _checks.dtype("dtype", dtype)
    if isinstance(only, str):
        raise ArgumentTypeError(f"only must be a list of check names, got the string {only!r} (for one, pass [name])")
    names = list(IDENTITIES) if only is None else list(only)
    unknown = [name for name in names if name not in IDENTITIES]
    if unknown:
        raise InvalidArgumentError(
            f"only (--only): unknown check name(s) {unknown}; valid names: {', '.join(IDENTITIES)}"
        )
    return [IDENTITIES[name](seed=seed, dtype=chosen) for name in names]
