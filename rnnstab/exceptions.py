"""Errors raised by rnnstab.

Every error a user can cause is an :class:`RnnstabError`; the concrete classes also subclass the built-in
``ValueError``/``TypeError`` so that ordinary ``except ValueError`` code keeps working. The CLI turns any
:class:`RnnstabError` into one red line and exit code 2.
"""

from __future__ import annotations


class RnnstabError(Exception):
    """Base class of every error rnnstab raises on purpose."""


class InvalidArgumentError(RnnstabError, ValueError):
    """An argument has the right type but an unusable value (δ ≤ 0, T = 0, unknown name, …)."""


class ShapeError(InvalidArgumentError):
    """A tensor argument has the wrong number of dimensions or mismatched sizes."""


class NonFiniteError(InvalidArgumentError):
    """A tensor argument holds NaN or ±Inf."""


class StateOverflowError(NonFiniteError):
    """The forward pass left the dtype's range (an exploding network): ∂g_t/∂g_0 is undefined from ``step`` on.

    Attributes:
        step: the first step t (1-based) whose pre-activation is ±Inf or NaN.
        sequence: the input sequence (batch row) where that happened first.
    """

    def __init__(self, message: str, *, step: int, sequence: int) -> None:
        super().__init__(message)
        self.step, self.sequence = step, sequence


class ArgumentTypeError(RnnstabError, TypeError):
    """An argument has the wrong type (a string where a tensor was expected, …)."""


class MissingDependencyError(RnnstabError, ImportError):
    """An optional dependency is not installed; the message names the extra to install (``rnnstab[dask]``)."""


class RnnstabWarning(UserWarning):
    """Something the user should know that does not stop the run (a corrupted record recomputed, …).

    The CLI prints each as one yellow ``warning:`` line.
    """
