"""Recurrent-weight schemes and scaling against the vanishing threshold ‖W‖₂ = δ/γ.

Everything here uses the *exact* largest singular value (a float64 SVD), never the spectral radius and never an
unconverged power-iteration estimate: for non-normal W the spectral radius ρ(W) can be far below ‖W‖₂, and only
‖W‖₂ enters the bound ‖∂g_T/∂g_0‖₂ ≤ (γ‖W‖₂)^T.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from rnnstab import _checks
from rnnstab.exceptions import ArgumentTypeError, InvalidArgumentError, ShapeError

WeightScheme = Callable[[int, torch.Generator], torch.Tensor]


def spectral_norm(W: torch.Tensor) -> torch.Tensor:
    """Exact ‖W‖₂ (largest singular value) of an (n, n) matrix or of each matrix in a (B, n, n) batch.

    Computed by an SVD in float64 whatever W's dtype; returns a float64 tensor of shape () or (B,).

    Raises:
        ShapeError: W is not (n, n) or (B, n, n) with square matrices.
        NonFiniteError: W holds NaN or Inf.
    """
    W = _square("W", W)
    return torch.linalg.matrix_norm(W.to(torch.float64), ord=2)


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
        InvalidArgumentError: δ ≤ 0, γ ≤ 0, or a matrix of W is zero (it cannot be scaled to any norm).

    Example:
        >>> W = scale_to_threshold(torch.randn(64, 64, dtype=torch.float64), delta=0.9, gamma=1.0)
        >>> round(float(spectral_norm(W)), 12)
        0.9
    """
    delta = _checks.positive_float("delta", delta)
    gamma = _checks.positive_float("gamma", gamma)
    norms = spectral_norm(W)
    if bool((norms == 0).any()):
        which = "W" if norms.dim() == 0 else f"W[{int((norms == 0).nonzero()[0])}]"
        raise InvalidArgumentError(f"{which} is the zero matrix: it cannot be scaled to ‖W‖₂ = δ/γ")
    factor = (delta / gamma) / norms
    return (W.to(torch.float64) * factor[..., None, None]).to(W.dtype)


def _gaussian(n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(n, n, generator=generator, dtype=torch.float64) / n**0.5


def _orthogonal(n: int, generator: torch.Generator) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(n, n, generator=generator, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))  # sign fix makes Q Haar-distributed


#: name → callable(n, generator) returning a float64 (n, n) matrix before any threshold scaling.
SCHEMES: dict[str, WeightScheme] = {
    "gaussian": _gaussian,
    "orthogonal": _orthogonal,
}


def init_weights(scheme: str, n: int, *, batch: int | None = None, seed: int = 0) -> torch.Tensor:
    """Draw recurrent weights from a named scheme (float64), reproducibly from ``seed``.

    Schemes: ``gaussian`` — i.i.d. N(0, 1/n) entries (‖W‖₂ ≈ 2, ρ(W) ≈ 1 for large n); ``orthogonal`` — Haar
    orthogonal (every singular value and |eigenvalue| is 1).

    Returns:
        (n, n), or (batch, n, n) of independent draws when ``batch`` is given.

    Raises:
        InvalidArgumentError: unknown scheme (the message lists the valid ones), n < 1 or batch < 1.
    """
    if scheme not in SCHEMES:
        raise InvalidArgumentError(f"unknown init scheme {scheme!r}; valid names: {', '.join(sorted(SCHEMES))}")
    n = _checks.positive_int("hidden size n", n)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ArgumentTypeError(f"seed must be an integer, got {type(seed).__name__}")
    generator = torch.Generator().manual_seed(seed)
    if batch is None:
        return SCHEMES[scheme](n, generator)
    batch = _checks.positive_int("batch", batch)
    return torch.stack([SCHEMES[scheme](n, generator) for _ in range(batch)])


def _square(name: str, W: torch.Tensor) -> torch.Tensor:
    W = _checks.tensor(name, W, ndims=(2, 3))
    if W.shape[-1] != W.shape[-2]:
        raise ShapeError(f"{name} must be square (n, n) or (B, n, n), got shape {tuple(W.shape)}")
    return W
