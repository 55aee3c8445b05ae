"""Argument checks shared by the public entry points: say which argument, what was expected, what came."""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from rnnstab.exceptions import ArgumentTypeError, InvalidArgumentError, NonFiniteError, ShapeError

FLOAT_DTYPES = {"float32": torch.float32, "float64": torch.float64}
#: The largest input scale s: s², the mean-field input variance, must stay a finite float (theory caps the gain alike).
INPUT_SCALE_MAX = 1e150


def real(name: str, value: object) -> float:
    """Return ``value`` as a float: a real number (Python or numpy) or a 0-d real array or tensor, not a bool."""
    if isinstance(value, (torch.Tensor, np.ndarray)) and value.ndim == 0:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ArgumentTypeError(f"{name} must be a number, got {type(value).__name__}")
    return float(value)


def integer(name: str, value: object) -> int:
    """Return ``value`` as an int: an integer (Python or numpy) or a 0-d integer array or tensor, not a bool."""
    if isinstance(value, (torch.Tensor, np.ndarray)) and value.ndim == 0:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ArgumentTypeError(f"{name} must be an integer, got {type(value).__name__}")
    return int(value)


def seed(name: str, value: object) -> int:
    """Return ``value`` as an int in [0, 2^63 − 1], the seeds of every command and entry point, or raise naming
    ``name`` (as :func:`non_negative_int` does below 0, so that ``sweep --seeds`` says the same)."""
    value = non_negative_int(name, value)
    # an int64 wherever a seed is stored or read back (numpy, JSON readers), and seed + a stream offset (lyapunov
    # draws trajectory b's frame from seed + b) stays within torch's 2^64 − 1
    if value > 2**63 - 1:
        raise InvalidArgumentError(f"{name} must be ≤ 2^63 - 1, got {value}")
    return value


def generator(value: object, offset: int = 0, name: str = "seed") -> torch.Generator:
    """A torch.Generator for stream ``offset`` (≥ 0, small) of seed ``value``, checked as by :func:`seed`."""
    return torch.Generator().manual_seed(seed(name, value) + offset)


def boolean(name: str, value: object) -> bool:
    """Return ``value`` as a bool: Python's True/False or numpy's bool_, nothing merely truthy (``"no"`` is truthy)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ArgumentTypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def positive_float(name: str, value: object) -> float:
    """Return ``value`` as a finite float > 0, or raise naming ``name``."""
    value = real(name, value)
    if not math.isfinite(value) or value <= 0:
        raise InvalidArgumentError(f"{name} must be a finite number > 0, got {value}")
    return value


def non_negative_float(name: str, value: object) -> float:
    """Return ``value`` as a finite float ≥ 0, or raise naming ``name``."""
    value = real(name, value)
    if not math.isfinite(value) or value < 0:
        raise InvalidArgumentError(f"{name} must be a finite number ≥ 0, got {value}")
    return value


def input_scale(name: str, value: object) -> float:
    """Return ``value`` as a standard deviation of inputs in [0, :data:`INPUT_SCALE_MAX`], or raise naming ``name``."""
    value = non_negative_float(name, value)
    if value > INPUT_SCALE_MAX:
        raise InvalidArgumentError(
            f"{name} must be at most {INPUT_SCALE_MAX:g} (s², the mean-field input variance, must be a finite float), "
            f"got {value:g}"
        )
    return value


def path(name: str, value: object) -> Path:
    """Return ``value`` (a str or os.PathLike naming a directory) as a Path, refusing an empty one: Path("") is ".",
    so an unset variable would silently mean the current directory."""
    text = os.fspath(value) if isinstance(value, (str, os.PathLike)) else None
    if not isinstance(text, str):
        raise ArgumentTypeError(f"{name} must be a path (a str or os.PathLike), got {type(value).__name__}")
    if not text:
        raise InvalidArgumentError(f"{name} is empty: name a directory (. for the current one)")
    return Path(text)


def positive_int(name: str, value: object) -> int:
    """Return ``value`` as an int ≥ 1, or raise naming ``name``."""
    value = integer(name, value)
    if value < 1:
        raise InvalidArgumentError(f"{name} must be ≥ 1, got {value}")
    return value


def non_negative_int(name: str, value: object) -> int:
    """Return ``value`` as an int ≥ 0, or raise naming ``name``."""
    value = integer(name, value)
    if value < 0:
        raise InvalidArgumentError(f"{name} must be ≥ 0, got {value}")
    return value


def steps(name: str, values: object, last: int) -> tuple[int, ...]:
    """The distinct steps in ``values``, sorted, each an integer in 1..last; or raise naming ``name``."""
    if not isinstance(values, Iterable) or isinstance(values, str):
        raise ArgumentTypeError(
            f"{name} must be a list of steps, got {type(values).__name__} (for one step t, pass [t])"
        )
    given = list(values)
    try:
        chosen = sorted({integer(name, t) for t in given})
    except ArgumentTypeError:
        chosen = [0]
    if not all(1 <= t <= last for t in chosen):
        raise InvalidArgumentError(f"{name} must hold integer steps in 1..{last}, got {given}")
    return tuple(chosen)


def tensor(name: str, value: object, *, ndims: Iterable[int]) -> torch.Tensor:
    """Check that ``value`` is a finite floating tensor with one of the allowed numbers of dimensions."""
    allowed = tuple(ndims)
    if not isinstance(value, torch.Tensor):
        raise ArgumentTypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if not value.is_floating_point():
        raise ArgumentTypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
    if value.layout != torch.strided:  # a sparse reservoir W: torch's elementwise checks fail on it with no name
        raise ArgumentTypeError(f"{name} must be a dense tensor, got layout {value.layout}: pass {name}.to_dense()")
    if value.dim() not in allowed:
        want = " or ".join(f"{d}-D" for d in allowed)
        raise ShapeError(f"{name} must be {want}, got shape {tuple(value.shape)}")
    finite(name, value)
    return value


def finite(name: str, value: torch.Tensor) -> None:
    """Raise :class:`NonFiniteError` if ``value`` holds NaN or ±Inf, saying how many and where the first is
    (:class:`InvalidArgumentError` if it holds no values at all: a tensor on the meta device)."""
    if value.is_meta:  # a model built with device="meta" and saved before its weights were loaded
        raise InvalidArgumentError(
            f"{name} is on the meta device and holds no values: load the weights first (module.to_empty(device=...) "
            "and load_state_dict), or build the model without device='meta'"
        )
    bad = ~torch.isfinite(value)
    if bool(bad.any()):
        first = tuple(int(i) for i in bad.nonzero()[0])
        raise NonFiniteError(
            f"{name} holds {int(bad.sum())} non-finite value(s) (NaN or Inf), the first at index {first}"
        )


def synthetic_inputs(x: torch.Tensor, input_scale: float) -> None:
    """Refuse synthetic inputs that overflowed: the error would otherwise blame "inputs", which the caller never
    gave, rather than ``input_scale``."""
    if not bool(torch.isfinite(x).all()):
        raise InvalidArgumentError(
            f"input_scale is too large: {input_scale:g} × N(0, 1) overflows float64 (largest number "
            f"{torch.finfo(torch.float64).max:.3g})"
        )


def cast(name: str, value: torch.Tensor, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``value`` (finite, floating) in ``dtype`` on ``device``, refusing a narrowing cast that overflows: a float64
    entry beyond float32's range would become ±inf and then be reported as a non-finite argument or an exploding
    state, neither of which the caller gave."""
    out = value.to(dtype=dtype, device=device)
    if torch.finfo(dtype).max < torch.finfo(value.dtype).max and not bool(torch.isfinite(out).all()):
        kind = str(dtype).removeprefix("torch.")
        raise InvalidArgumentError(
            f"{name} does not fit in {kind}: its largest entry is {float(value.abs().max()):.3g}, beyond {kind}'s "
            f"largest number {torch.finfo(dtype).max:.3g}; compute in float64 or rescale {name}"
        )
    return out


def dtype(name: str, value: object) -> torch.dtype:
    """Accept torch.float32/float64 or their names."""
    if isinstance(value, str):
        if value not in FLOAT_DTYPES:
            raise InvalidArgumentError(f"{name} must be {' or '.join(FLOAT_DTYPES)}, got {value!r}")
        return FLOAT_DTYPES[value]
    for known in FLOAT_DTYPES.values():
        if value == known:
            return known
    raise InvalidArgumentError(f"{name} must be torch.float32 or torch.float64, got {value!r}")


def device(name: str, value: object) -> torch.device:
    """Accept 'auto', 'cpu', 'cuda', 'cuda:N' or a torch.device; 'auto' means CUDA when present."""
    if isinstance(value, torch.device):
        # checked as its name: torch.device("cuda") is as unavailable here as "cuda", and torch would otherwise fail
        # later, deep inside a .to(), with no name
        value = str(value)
    if not isinstance(value, str):
        raise ArgumentTypeError(f"{name} must be a string or torch.device, got {type(value).__name__}")
    if value == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(value)
    except RuntimeError:
        raise InvalidArgumentError(f"{name} must be auto, cpu, cuda or cuda:N, got {value!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidArgumentError(f"{name} is {value!r} but no CUDA device is available here")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise InvalidArgumentError(
            f"{name} is {value!r} but there are only {count} CUDA device(s): cuda:0..cuda:{count - 1}"
        )
    if dev.type not in ("cpu", "cuda"):
        raise InvalidArgumentError(f"{name} must be auto, cpu, cuda or cuda:N, got {value!r}")
    return dev


def check_memory(
    needed: int, device: torch.device, advice: str = "reduce the batch or the hidden size, or use float32"
) -> None:
    """Refuse a run that would need more than 80 % of the memory available on ``device`` (before it allocates: an
    allocation that fails raises from deep inside torch, or the system starts swapping).

    Raises:
        InvalidArgumentError: saying how much is needed and how much is there.
    """
    if device.type == "cuda":
        available, _ = torch.cuda.mem_get_info(device)
        where = "the GPU"
    else:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        where = "this machine"
    if needed > 0.8 * available:
        raise InvalidArgumentError(
            f"this needs about {needed / 2**30:.2f} GiB ({where} has {available / 2**30:.2f} GiB available): {advice}"
        )
