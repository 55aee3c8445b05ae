"""Weight normalisation w = g·v/‖v‖: its gradients, the growth of ‖v‖ under SGD, and WN ≡ BN for whitened inputs."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from rnnstab import _checks
from rnnstab._identity import IdentityCheck, eps, verdict
from rnnstab.exceptions import ArgumentTypeError, InvalidArgumentError, ShapeError


def _weightnormproblem(seed: int, dtype: torch.dtype, dim: int = 5) -> tuple[Callable[..., torch.Tensor], Any, Any]:
    """A real loss of one weight vector w: a tanh unit fitted to noisy targets, with g and v drawn at random."""
    gen = _checks.generator(seed)
    X = torch.randn(64, dim, generator=gen, dtype=torch.float64).to(dtype)
    y = torch.randn(64, generator=gen, dtype=torch.float64).to(dtype)
    v = torch.randn(dim, generator=gen, dtype=torch.float64).to(dtype)
    g = torch.tensor(1.7, dtype=dtype)

    def loss(w: torch.Tensor) -> torch.Tensor:
        return ((torch.tanh(X @ w) - y) ** 2).mean()

    return loss, g, v


def weightnorm_gradients(
    loss: Callable[[torch.Tensor], torch.Tensor], g: torch.Tensor, v: torch.Tensor, *, project: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """∇_g L and ∇_v L of L(w), w = g·v/‖v‖, from ∇_w L alone (Salimans & Kingma 2016, eq. 3–4).

    ∇_g L = ∇_w L · v/‖v‖ and ∇_v L = (g/‖v‖) M_w ∇_w L with M_w = I − wwᵀ/‖w‖². ``project=False`` leaves out
    M_w (a wrong formula, kept so that tests can show the check fails on it). M_w is applied as I − uuᵀ with
    u = v/‖v‖, the same matrix for g ≠ 0, and defined at g = 0 too, where wwᵀ/‖w‖² is 0/0 (∇_v L is then 0, not
    NaN); ‖v‖ is taken after dividing v by its largest entry, so that a v of entries near 1e200 does not overflow it.

    Args:
        loss: L as a function of w.
        g: the scale (0-D tensor or a number).
        v: the direction (1-D tensor, non-zero).
        project: apply M_w (True is the correct formula).

    Returns:
        (∇_g L, ∇_v L).

    Raises:
        ShapeError: v not 1-D, or g not 0-D (a weight matrix needs one (g, v) per row: the formulas use v·v).
        InvalidArgumentError: v = 0 (no direction), or non-finite g or v.
        ArgumentTypeError: project not a bool.

    Example:
        >>> loss = lambda w: (w**3).sum()
        >>> v = torch.tensor([3.0, 4.0], dtype=torch.float64)
        >>> dg, dv = weightnorm_gradients(loss, torch.tensor(2.0, dtype=torch.float64), v)
        >>> abs(float(dv @ v)) < 1e-12  # ∇_v L ⟂ v
        True
    """
    v = _checks.tensor("v", v, ndims=(1,))
    project = _checks.boolean("project", project)
    g = g if isinstance(g, torch.Tensor) else torch.tensor(_checks.real("g", g), dtype=v.dtype)
    g = _checks.tensor("g", g, ndims=(0,))
    largest = v.abs().max()
    if largest == 0:
        raise InvalidArgumentError("v must be non-zero: w = g·v/‖v‖ has no direction at v = 0")
    length = (v / largest).norm()
    unit, norm = v / largest / length, largest * length
    w = (g * unit).detach().requires_grad_(True)
    (grad_w,) = torch.autograd.grad(loss(w), w)
    grad_g = grad_w @ unit
    projected = grad_w - unit * grad_g if project else grad_w
    return grad_g, g / norm * projected


def check_weightnorm_gradient(
    *, project: bool = True, seed: int = 0, dtype: torch.dtype = torch.float64
) -> IdentityCheck:
    """The weight-normalisation gradients ∇_g L, ∇_v L (from ∇_w L) against autograd through w = g·v/‖v‖; ∇_v L ⟂ v.

    Args:
        project: use the correct formula with M_w; False leaves M_w out, and the check fails.
        seed: seed of the random problem.
        dtype: torch.float64 or torch.float32 (or their names).

    Returns:
        An :class:`IdentityCheck`; discrepancy = max(relative gap to autograd, |cos(∇_v L, v)|), tolerance 10³ ulps.

    Raises:
        InvalidArgumentError: an unsupported dtype, or a seed outside [0, 2^63 − 1].
        ArgumentTypeError: a seed that is not an integer, or project not a bool.

    Example:
        >>> check_weightnorm_gradient().passed, check_weightnorm_gradient(project=False).passed
        (True, False)
    """
    project = _checks.boolean("project", project)
    dtype = _checks.dtype("dtype", dtype)
    loss, g, v = _weightnormproblem(seed, dtype)
    formula_g, formula_v = weightnorm_gradients(loss, g, v, project=project)
    g_, v_ = g.clone().requires_grad_(True), v.clone().requires_grad_(True)
    auto_g, auto_v = torch.autograd.grad(loss(g_ * v_ / v_.norm()), (g_, v_))
    gap = max(float((formula_g - auto_g).abs()), float((formula_v - auto_v).abs().max()))
    cosine = float((formula_v @ v).abs() / (formula_v.norm() * v.norm()))
    scale = float(auto_v.abs().max()) + float(auto_g.abs())
    return verdict(
        "weightnorm-gradient",
        "w = g·v/‖v‖: ∇_g L = ∇_w L·v/‖v‖, ∇_v L = (g/‖v‖) M_w ∇_w L (vs autograd), and ∇_v L ⟂ v",
        max(gap / scale, cosine),
        1e3 * eps(dtype),
        unit="max of the relative gap to autograd and |cos(∇_v L, v)|",
        tolerance_reason="10³ ulps: the formula and autograd round differently",
        relative_gap_to_autograd=gap / scale,
        cosine_grad_v_v=cosine,
        project=project,
    )


def norm_growth(v: torch.Tensor, delta_v: torch.Tensor) -> tuple[float, float]:
    """(‖v + Δv‖, √(1 + c²)‖v‖) with c = ‖Δv‖/‖v‖; equal when Δv ⟂ v (Pythagoras), as for a WN gradient step.

    Args:
        v: the current direction vector.
        delta_v: the update Δv.

    Returns:
        (the actual norm after the update, the norm the growth law predicts).

    Raises:
        ArgumentTypeError: v or delta_v is not a tensor.
        ShapeError: delta_v's shape differs from v's.
        InvalidArgumentError: v = 0 (c is undefined).

    Example:
        >>> norm_growth(torch.tensor([3.0, 4.0]), torch.tensor([-0.8, 0.6]))  # Δv ⟂ v, c = 0.2
        (5.0990195..., 5.0990195...)
    """
    # not refused if non-finite: an update that overflowed gives a non-finite norm, which check_weightnorm_growth
    # reports as a failure
    for name, value in (("v", v), ("delta_v", delta_v)):
        if not isinstance(value, torch.Tensor):
            raise ArgumentTypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if delta_v.shape != v.shape:
        raise ShapeError(f"delta_v must have the shape of v, {tuple(v.shape)}, got {tuple(delta_v.shape)}")
    if v.norm() == 0:
        raise InvalidArgumentError("v must be non-zero: c = ‖Δv‖/‖v‖ is undefined at v = 0")
    c = float(delta_v.norm() / v.norm())
    return float((v + delta_v).norm()), math.sqrt(1 + c * c) * float(v.norm())


def check_weightnorm_growth(
    *, lr: float = 0.5, steps: int = 10, seed: int = 0, dtype: torch.dtype = torch.float64
) -> IdentityCheck:
    """Under plain SGD on v, ‖v_{t+1}‖ = √(1 + c²)‖v_t‖ with c = ‖Δv‖/‖v_t‖, because ∇_v L ⟂ v.

    Checked at every one of ``steps`` SGD steps of rate ``lr`` on (g, v); the norms ‖v_t‖ and the effective rate
    g/‖v_t‖ are reported — ‖v‖ only grows, which shrinks the effective learning rate.

    Args:
        lr: SGD learning rate, > 0.
        steps: number of SGD steps.
        seed: seed of the random problem.
        dtype: torch.float64 or torch.float32 (or their names).

    Returns:
        An :class:`IdentityCheck`; discrepancy = max relative gap between ‖v_{t+1}‖ and √(1+c²)‖v_t‖,
        tolerance 100 ulps.

    Raises:
        InvalidArgumentError: lr ≤ 0, steps < 1, or a seed outside [0, 2^63 − 1].
        ArgumentTypeError: a seed that is not an integer.

    Example:
        >>> c = check_weightnorm_growth()
        >>> c.passed, c.details["v_norms"][-1] > c.details["v_norms"][0]
        (True, True)
    """
    lr = _checks.positive_float("lr", lr)
    steps = _checks.positive_int("steps", steps)
    dtype = _checks.dtype("dtype", dtype)
    loss, g, v = _weightnormproblem(seed, dtype)
    gaps, norms, rates = [], [float(v.norm())], [float(g / v.norm())]
    for _ in range(steps):
        g_, v_ = g.clone().requires_grad_(True), v.clone().requires_grad_(True)
        grad_g, grad_v = torch.autograd.grad(loss(g_ * v_ / v_.norm()), (g_, v_))
        actual, predicted = norm_growth(v, -lr * grad_v)
        gaps.append(abs(actual - predicted) / actual)
        g, v = g - lr * grad_g, v - lr * grad_v
        norms.append(float(v.norm()))
        rates.append(float(g / v.norm()))
    return verdict(
        "weightnorm-growth",
        "plain SGD on v: ‖v_{t+1}‖ = √(1+c²)‖v_t‖, c = ‖Δv‖/‖v_t‖ (so ‖v‖ never shrinks)",
        float(torch.tensor(gaps).max()),  # not Python's max(), which drops a NaN gap (a diverged step) and passes
        100 * eps(dtype),
        unit="max over steps of |‖v_{t+1}‖ − √(1+c²)‖v_t‖| / ‖v_{t+1}‖",
        tolerance_reason="100 ulps: Δv ⟂ v holds to rounding only",
        lr=lr,
        v_norms=norms,
        effective_rates=rates,
    )


def check_wn_bn(
    *, samples: int = 4096, dim: int = 5, whiten: bool = True, seed: int = 0, dtype: torch.dtype = torch.float64
) -> IdentityCheck:
    """Weight norm ≡ batch norm for one unit with whitened inputs: (vᵀx − mean) / std over the batch = vᵀx/‖v‖.

    The batch is whitened exactly (centred, then multiplied by the inverse square root of its own covariance,
    1/N convention, twice over in float64), so mean 0 and covariance I hold to rounding and the identity is exact to
    rounding — no sampling error. ``whiten=False`` uses the raw correlated batch, where the identity fails.

    Args:
        samples: batch size N.
        dim: input dimension.
        whiten: whiten the batch exactly (False: raw correlated inputs, where the identity fails).
        seed: seed of the random problem.
        dtype: torch.float64 or torch.float32 (or their names).

    Returns:
        An :class:`IdentityCheck`; discrepancy = max |BN(vᵀx) − vᵀx/‖v‖|, tolerance 10³ ulps.

    Raises:
        InvalidArgumentError: samples ≤ dim, dim < 1, an unsupported dtype, or a seed outside [0, 2^63 − 1].
        ArgumentTypeError: a seed that is not an integer, or whiten not a bool.

    Example:
        >>> check_wn_bn().passed, check_wn_bn(whiten=False).passed
        (True, False)
    """
    samples = _checks.positive_int("samples", samples)
    dim = _checks.positive_int("dim", dim)
    if samples <= dim:
        raise InvalidArgumentError(f"samples must exceed dim ({dim}) to whiten the batch, got {samples}")
    whiten = _checks.boolean("whiten", whiten)
    dtype = _checks.dtype("dtype", dtype)
    gen = _checks.generator(seed)
    mixing = torch.randn(dim, dim, generator=gen, dtype=torch.float64)
    X = torch.randn(samples, dim, generator=gen, dtype=torch.float64) @ mixing + 0.5
    v = torch.randn(dim, generator=gen, dtype=torch.float64).to(dtype)
    if whiten:
        # One pass leaves a covariance of I + O(eps·κ(mixing)²): κ ≈ 600 at seed 55 broke 10³ ulps. The second pass
        # whitens a batch whose covariance is already I to ~1e-10, so it is exact to rounding whatever the mixing.
        for _ in range(2):
            X = X - X.mean(0)
            eigenvalues, vectors = torch.linalg.eigh(X.mT @ X / samples)
            X = X @ (vectors * eigenvalues.rsqrt()) @ vectors.mT
    X = X.to(dtype)
    z = X @ v
    batch_norm = (z - z.mean()) / z.std(correction=0)
    weight_norm = z / v.norm()
    return verdict(
        "wn-bn",
        "single unit, whitened inputs: batch-normalised vᵀx = vᵀx/‖v‖ (weight norm)",
        float((batch_norm - weight_norm).abs().max()),
        1e3 * eps(dtype) * float(weight_norm.abs().max()),
        unit="max over the batch |BN(vᵀx) − vᵀx/‖v‖|",
        tolerance_reason="10³ ulps of the largest normalised value: the batch is whitened exactly",
        samples=samples,
        dim=dim,
        whiten=whiten,
    )
