"""The result type of the identity checks and the small test problems they share."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from rnnstab import _checks
from rnnstab._io import finite_or_none
from rnnstab.exceptions import InvalidArgumentError


@dataclass(frozen=True)
class IdentityCheck:
    """One numerical check of a claimed identity.

    Attributes:
        name: short identifier (``"momentum-ema"``), usable with ``run_identities(only=...)``.
        claim: the identity in words and symbols.
        discrepancy: the measured violation (its unit is given in ``details["unit"]``).
        tolerance: the largest discrepancy accepted; justified in ``details["tolerance_reason"]``.
        passed: ``discrepancy <= tolerance`` (and the discrepancy is finite).
        details: the numbers behind the verdict (weights, confidence intervals, slopes, …).
        kind: ``"identity"``, a claim checked against a tolerance, or ``"report"``, where no identity holds and only
            finiteness is checked (``newton-rnn``): counted apart from the identities in ``rnnstab identities``.
    """

    name: str
    claim: str
    discrepancy: float
    tolerance: float
    passed: bool
    details: dict[str, Any] = field(default_factory=dict)
    kind: str = "identity"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (non-finite floats become None)."""
        return finite_or_none(asdict(self))


def verdict(
    name: str, claim: str, discrepancy: float, tolerance: float, *, kind: str = "identity", **details: Any
) -> IdentityCheck:
    passed = math.isfinite(discrepancy) and discrepancy <= tolerance
    return IdentityCheck(name, claim, float(discrepancy), float(tolerance), passed, details, kind)


def unit_interval(name: str, value: object) -> float:
    """A float strictly inside (0, 1), or an error naming the argument."""
    value = _checks.real(name, value)
    if not 0 < value < 1:
        raise InvalidArgumentError(f"{name} must lie in the open interval (0, 1), got {value}")
    return value


def eps(dtype: torch.dtype) -> float:
    return float(torch.finfo(dtype).eps)


def problem(
    seed: int, dtype: torch.dtype, *, n: int = 4, m: int = 2, T: int = 6, batch: int = 8
) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """A small regression problem for a tanh RNN: parameters [W, U, b, V], inputs x (batch, T, m), targets y."""
    gen = _checks.generator(seed)

    def randn(*shape: int, scale: float = 1.0) -> torch.Tensor:
        return (scale * torch.randn(*shape, generator=gen, dtype=torch.float64)).to(dtype)

    params = [randn(n, n, scale=0.8 / n**0.5), randn(n, m, scale=m**-0.5), randn(n, scale=0.1), randn(n, scale=0.5)]
    return params, randn(batch, T, m), randn(batch)


def rnn_loss(params: Sequence[torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error of the read-out V·g_T of g_t = tanh(W g_{t-1} + U x_t + b), g_0 = 0."""
    W, U, b, V = params
    g = torch.zeros(x.shape[0], W.shape[0], dtype=x.dtype)
    for t in range(x.shape[1]):
        g = torch.tanh(g @ W.mT + x[:, t] @ U.mT + b)
    return ((g @ V - y) ** 2).mean()


def flat_loss(shapes: list[torch.Size], x: torch.Tensor, y: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """The RNN loss as a function of one flat parameter vector (for exact Hessians and Taylor expansions)."""
    sizes = [int(torch.Size(s).numel()) for s in shapes]

    def loss(theta: torch.Tensor) -> torch.Tensor:
        ends = [sum(sizes[: i + 1]) for i in range(len(sizes))]
        parts = [theta[end - size : end].reshape(shape) for end, size, shape in zip(ends, sizes, shapes, strict=True)]
        return rnn_loss(parts, x, y)

    return loss
