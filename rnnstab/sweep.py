"""Sweeps: a grid of configurations × seeds → batched Jacobian products → one record per configuration × seed.

Grid → tasks. A :class:`Grid` holds values for each axis (activation, γ, δ, n, T, input scale, init, dtype) and a
list of seeds; its tasks are the Cartesian product. Each task's network is drawn from its own generators, seeded
from a hash of its parameters and its seed (:func:`sweep_network`), so it is the same network whatever else is in
the grid, however the work is split, wherever it runs.

Tasks → batched products. Tasks that share (activation, γ, n, T, dtype) are stacked into one batched W of shape
(B, n, n) — each network repeated once per input sequence — and go through :func:`rnnstab.jacobian_norms`
together: a grid of a hundred configurations costs a few batched loops, not a hundred loops. The split of a stack
group into calls ("chunks") is canonical: tasks sorted by record key, cut into balanced chunks of at most ``stack``
networks (default: on a CPU, products of about 8 MiB, which stay in cache; on a GPU, as many as fit in 256 MiB —
a function of n, T, dtype and the kind of device only). ``jacobian_norms`` treats every
network of a batch on its own (convergence is decided per network), and the chunks do not depend on how they are
run, so the numbers are bit-identical whatever the executor, the number of workers, or an interruption and resume.
Another ``stack`` can change their last bits, which a chaotic trajectory amplifies: BLAS and torch's element-wise
kernels round a network's forward step by its batch's size, and on some CPUs batched products by its place in the
batch (see the README's known limits).

Executors. ``local`` runs the chunks one after another in this process; ``dask`` submits them (grouped into
shards of ``chunks_per_shard``) to a ``distributed`` cluster — a scheduler address, or a LocalCluster with
``workers`` processes — and writes each record here as its shard returns.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import itertools
import logging
import math
import os
import shutil
import signal
import threading
import time
import warnings
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rnnstab import _checks, _io
from rnnstab.activations import activation_names, get_activation
from rnnstab.exceptions import (
    ArgumentTypeError,
    InvalidArgumentError,
    MissingDependencyError,
    RnnstabError,
    RnnstabWarning,
    StateOverflowError,
)
from rnnstab.jacobian import jacobian_norms, memory_estimate
from rnnstab.rnn import VanillaRNN
from rnnstab.store import (
    FORMAT_VERSION,
    METADATA_FILE,
    Configuration,
    Record,
    present_keys,
    read_metadata,
    record_key,
    remove_stale_temporaries,
    scan_records,
    sweep_lock,
    write_metadata,
    write_record,
)
from rnnstab.theory import DEFAULT_RATE_TOL, Verdict, bound_violations, rate_spread, verdicts
from rnnstab.weights import SCHEMES, init_weights, scale_to_threshold, spectral_norm

#: The grid axes, in the order records and tables list them.
GRID_AXES = ("activation", "gamma", "delta", "hidden", "steps", "input_scale", "init", "dtype")
EXECUTORS = ("local", "dask")
MAX_TASKS = 1_000_000  # records in one sweep: far beyond any grid worth plotting, and planning stays within memory
_FLOAT_AXES = ("gamma", "delta", "input_scale")
_INT_AXES = ("hidden", "steps")
_NAME_AXES = ("activation", "init", "dtype")
_SIGNIFICANT = 12  # grid values are rounded to 12 significant digits: 0.5:1.5:11 gives the same 0.6 as "0.6"
_CALL_BUDGET_BYTES = 256 * 2**20  # default memory of one batched call; sets the canonical chunk size
# On a CPU, one (networks, n, n) product of about this size keeps the step's GEMM and thin products in the last-level
# cache; measured on a 2-core EPYC (32 MiB L3), 8 MiB products ran 25–30 % faster than 256 MiB calls (n = 64, 128).
_CPU_PRODUCT_BYTES = 8 * 2**20
_MEMORY_FRACTION = 0.8  # refuse a sweep whose largest call needs more than this share of free memory
_DISK_FRACTION = 0.9
_INPUT_SIGMAS = 10.0  # a bound on |z| for z from torch.randn (see Grid._check_scales), with room to spare


def _canonical(value: float) -> float:
    return float(f"{value:.{_SIGNIFICANT}g}")


_DEFAULT_DELTAS = tuple(_canonical(v) for v in np.linspace(0.5, 1.5, 21))


@dataclass(frozen=True)
class Grid:
    """The values to sweep on each axis, the seeds, and the fixed parameters shared by every configuration.

    Any iterable works for an axis (a list, a numpy array, a 1-D tensor), and a single value for a one-value axis;
    numbers may be Python, numpy or 0-d torch scalars. Values are validated, rounded to 12 significant digits,
    de-duplicated and (numbers) sorted. The configurations are the Cartesian product of the axes; every one runs
    with every seed.

    Attributes:
        activation: activation names (see :func:`rnnstab.activation_names`).
        gamma: γ values > 0; each activation σ is used as its scaled family member σ(c·x) with sup|σ'| = γ.
        delta: δ values > 0; W is scaled so that γ‖W‖₂ = δ exactly.
        hidden: hidden sizes n ≥ 1.
        steps: horizons T ≥ 1.
        input_scale: standard deviations of the inputs x_t (≥ 0, at most 1e150; 0 runs the network without input).
        init: recurrent-weight schemes before scaling (``gaussian``, ``orthogonal``, …).
        dtype: ``float32`` and/or ``float64``, the dtype of the Jacobian product.
        seeds: seeds (integers ≥ 0); each gives an independent W, U and set of inputs.
        batch: fixed: input sequences per network (one trace each).
        inputs: fixed: input size m.

    Raises:
        InvalidArgumentError, ArgumentTypeError: an empty axis, a value out of range, an unknown name, a δ/γ or an
            input scale that leaves the range of a dtype of the grid.

    Example:
        >>> grid = Grid(activation=("tanh", "relu"), delta=(0.9, 1.1), seeds=(0, 1, 2))
        >>> len(grid.configurations()), len(grid.tasks())
        (4, 12)
    """

    activation: Sequence[str] = ("tanh",)
    gamma: Sequence[float] = (1.0,)
    delta: Sequence[float] = _DEFAULT_DELTAS
    hidden: Sequence[int] = (64,)
    steps: Sequence[int] = (300,)
    input_scale: Sequence[float] = (1.0,)
    init: Sequence[str] = ("gaussian",)
    dtype: Sequence[str] = ("float64",)
    seeds: Sequence[int] = (0, 1, 2)
    batch: int = 8
    inputs: int = 4

    def __post_init__(self) -> None:
        self._normalise({})

    def _normalise(self, labels: dict[str, str]) -> None:
        def label(axis: str) -> str:
            return labels.get(axis, axis)

        choices = {"activation": activation_names(), "init": sorted(SCHEMES), "dtype": sorted(_checks.FLOAT_DTYPES)}
        for axis in (*GRID_AXES, "seeds"):
            values = getattr(self, axis)
            if isinstance(values, (str, bytes)) or not isinstance(values, Iterable) or getattr(values, "ndim", 1) == 0:
                values = (values,)
            values = tuple(values)
            if len(values) == 0:
                raise InvalidArgumentError(f"{label(axis)} is empty: give at least one value")
            if axis in _NAME_AXES:
                clean: list[Any] = []
                for value in values:
                    if value not in choices[axis]:
                        what = "init scheme" if axis == "init" else axis
                        raise InvalidArgumentError(
                            f"{label(axis)}: unknown {what} {value!r}; valid names: {', '.join(choices[axis])}"
                        )
                    clean.append(str(value))
                normalised: tuple[Any, ...] = tuple(dict.fromkeys(clean))
            elif axis in _FLOAT_AXES:
                # no input at all (input_scale 0) is the autonomous network, as in trace, inits and lyapunov
                check = _checks.input_scale if axis == "input_scale" else _checks.positive_float
                normalised = tuple(sorted({_canonical(check(label(axis), v)) for v in values}))
            elif axis in _INT_AXES:
                normalised = tuple(sorted({_checks.positive_int(label(axis), v) for v in values}))
            else:  # seeds
                normalised = tuple(sorted({_checks.seed(label(axis), v) for v in values}))
            object.__setattr__(self, axis, normalised)
        self._check_scales(label)
        records = math.prod(len(getattr(self, axis)) for axis in (*GRID_AXES, "seeds"))
        if records > MAX_TASKS:
            raise InvalidArgumentError(
                f"the grid has {records:,} configuration × seed records; a sweep is limited to {MAX_TASKS:,}: "
                "split it into several sweeps"
            )
        object.__setattr__(self, "batch", _checks.positive_int(label("batch"), self.batch))
        object.__setattr__(self, "inputs", _checks.positive_int(label("inputs"), self.inputs))

    def _check_scales(self, label: Callable[[str], str]) -> None:
        """Refuse a δ/γ whose W (‖W‖₂ = δ/γ) would leave the normal range of the grid's narrowest dtype, and inputs
        that would overflow float32.

        jacobian_norms refuses such a W or x too (or, for a subnormal W, silently loses its precision), but only
        inside a batched call, after sweep.json is written: a refused grid must write nothing. An n × n W with
        ‖W‖₂ = δ/γ has its largest entry between δ/(γn) and δ/γ, so δ/γ ≥ n·tiny keeps it normal and δ/γ ≤ max/n
        keeps the scaling finite. The extreme cells of the Cartesian product are the smallest δ with the largest γ
        and the largest δ with the smallest γ, each at the largest n. Float32 rows run the float64 networks and
        inputs cast to float32; the inputs are input_scale·z with z from torch.randn, a Box–Muller transform of
        53-bit uniforms, so |z| ≤ √(106·ln 2) ≈ 8.6."""
        narrowest = "float32" if "float32" in self.dtype else "float64"
        info, n = np.finfo(narrowest), max(self.hidden)
        tiny, largest = float(info.tiny), float(info.max)  # Python floats: 1e300 > a float32 limit warns in numpy
        low, high = min(self.delta) / max(self.gamma), max(self.delta) / min(self.gamma)
        remedy = f" for {label('dtype')} float32, or use float64" if narrowest == "float32" else ""
        if low < n * tiny or high > largest / n:
            delta, gamma = (min(self.delta), max(self.gamma)) if low < n * tiny else (max(self.delta), min(self.gamma))
            raise InvalidArgumentError(
                f"{label('delta')} {delta:g} with {label('gamma')} {gamma:g} needs ‖W‖₂ = δ/γ = {delta / gamma:.3g}, "
                f"which leaves {narrowest}'s range at n = {n}: keep δ/γ between {n * tiny:.3g} and "
                f"{largest / n:.3g}{remedy}"
            )
        scale = max(self.input_scale)
        if scale * _INPUT_SIGMAS > largest:
            raise InvalidArgumentError(
                f"{label('input_scale')} {scale:g} overflows {narrowest}: inputs of up to {_INPUT_SIGMAS:g} standard "
                f"deviations would pass {narrowest}'s largest number {largest:.3g}; keep it at most "
                f"{largest / _INPUT_SIGMAS:.3g}{remedy}"
            )

    @classmethod
    def from_strings(cls, *, batch: int = 8, inputs: int = 4, **options: Sequence[str] | None) -> Grid:
        """Build a grid from command-line strings; an option that is ``None`` keeps its default.

        Every option takes repeated values and comma lists (``["tanh,relu", "sigmoid"]``). Numeric options also take
        ``START:STOP:COUNT`` — COUNT evenly spaced values, both ends included (``0.5:1.5:11`` is 0.5, 0.6, …, 1.5)
        — and ``log:START:STOP:COUNT``, geometrically spaced (``log:0.1:10:5`` is 0.1, 0.316…, 1, 3.16…, 10).
        Integer options (hidden, steps, seeds) also take ``START:STOP``, every integer in between; ranges of
        integers are rounded. ``seeds`` given as one plain integer N means the N seeds 0, …, N−1.

        Args:
            batch, inputs: the fixed parameters.
            options: any of the :data:`GRID_AXES` and ``seeds``, each a list of strings.

        Raises:
            InvalidArgumentError: unknown option, malformed token, empty list, value out of range. The message
                names the option as ``--delta``, ``--input-scale``, ….
        """
        unknown = set(options) - {*GRID_AXES, "seeds"}
        if unknown:
            raise InvalidArgumentError(f"unknown grid options {sorted(unknown)}; valid: {[*GRID_AXES, 'seeds']}")
        labels = {axis: "--" + axis.replace("_", "-") for axis in (*GRID_AXES, "seeds", "batch", "inputs")}
        parsed: dict[str, Any] = {}
        for axis, raw in options.items():
            if raw is None:
                continue
            kind = (
                "name"
                if axis in _NAME_AXES
                else "int"
                if axis in _INT_AXES
                else "seeds"
                if axis == "seeds"
                else "float"
            )
            parsed[axis] = parse_values(labels[axis], raw, kind=kind)
        grid = object.__new__(cls)
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        for name, default in defaults.items():
            object.__setattr__(grid, name, parsed.get(name, default))
        object.__setattr__(grid, "batch", batch)
        object.__setattr__(grid, "inputs", inputs)
        grid._normalise(labels)
        return grid

    def configurations(self) -> list[Configuration]:
        """Every configuration of the grid (the Cartesian product of the axes)."""
        axes = [getattr(self, axis) for axis in GRID_AXES]
        return [
            Configuration(**dict(zip(GRID_AXES, values, strict=True)), batch=self.batch, inputs=self.inputs)
            for values in itertools.product(*axes)
        ]

    def tasks(self) -> list[Task]:
        """Every configuration × seed."""
        return [Task(c, s) for c in self.configurations() for s in self.seeds]

    def fixed(self) -> dict[str, Any]:
        """The parameters every configuration of a sweep directory shares (a resumed sweep must match them)."""
        return {"batch": self.batch, "inputs": self.inputs}

    def describe(self) -> dict[str, Any]:
        """The grid as a JSON-ready dict."""
        return {**{axis: list(getattr(self, axis)) for axis in GRID_AXES}, "seeds": list(self.seeds), **self.fixed()}


def parse_values(name: str, raw: Sequence[str], *, kind: str = "float") -> list[Any]:
    """Parse repeated/comma-separated option strings into values (see :meth:`Grid.from_strings` for the syntax).

    Args:
        name: the option, for error messages (``--delta``).
        raw: the strings given (one per repeated flag).
        kind: ``float``, ``int``, ``seeds`` or ``name``.

    Returns:
        The values in the order given (duplicates are removed later, by :class:`Grid`).

    Raises:
        InvalidArgumentError: an empty list or token, a malformed number or range.

    Example:
        >>> parse_values("--delta", ["0.5:1.5:3", "2"])
        [0.5, 1.0, 1.5, 2.0]
        >>> parse_values("--hidden", ["log:32:512:5"], kind="int")
        [32, 64, 128, 256, 512]
        >>> parse_values("--seeds", ["3"], kind="seeds")
        [0, 1, 2]
    """
    if isinstance(raw, str):
        raw = [raw]
    tokens = [token.strip() for item in raw for token in str(item).split(",")]
    if not tokens or all(token == "" for token in tokens):
        raise InvalidArgumentError(f"{name} is empty: give at least one value")
    if "" in tokens:
        raise InvalidArgumentError(f"{name} has an empty item in {','.join(raw)!r}")
    if kind == "name":
        return tokens
    if kind == "seeds" and len(tokens) == 1 and ":" not in tokens[0]:
        count = _number(name, tokens[0], integer=True)
        if count < 1:
            raise InvalidArgumentError(f"{name} N must be ≥ 1 (N seeds 0..N−1), got {tokens[0]}")
        _check_count(name, count)
        return list(range(int(count)))
    integer = kind in ("int", "seeds")
    values: list[Any] = []
    for token in tokens:
        if ":" in token:
            values.extend(_range(name, token, integer=integer))
        else:
            number = _number(name, token, integer=integer)
            values.append(int(number) if integer else number)
    return values


def _check_count(name: str, count: float) -> None:
    if count > MAX_TASKS:
        raise InvalidArgumentError(f"{name}: {count:.0f} values; a sweep is limited to {MAX_TASKS:,} records")


def _number(name: str, token: str, *, integer: bool) -> float:
    try:
        value = float(token)
    except ValueError:
        raise InvalidArgumentError(f"{name}: {token!r} is not a number") from None
    if not math.isfinite(value):
        raise InvalidArgumentError(f"{name}: {token!r} is not a finite number")
    if integer and value != int(value):
        raise InvalidArgumentError(f"{name}: {token!r} is not an integer")
    return value


def _range(name: str, token: str, *, integer: bool) -> list[Any]:
    parts = token.split(":")
    geometric = parts[0].strip().lower() == "log"
    if geometric:
        parts = parts[1:]
    syntax = "START:STOP:COUNT or log:START:STOP:COUNT" + (" or START:STOP" if integer else "")
    if len(parts) == 2 and integer and not geometric:
        first, last = (int(_number(name, p, integer=True)) for p in parts)
        if last < first:
            raise InvalidArgumentError(f"{name}: range {token!r} has STOP < START")
        _check_count(name, last - first + 1)
        return list(range(first, last + 1))
    if len(parts) != 3:
        raise InvalidArgumentError(f"{name}: range {token!r} must be {syntax}")
    start, stop = _number(name, parts[0], integer=False), _number(name, parts[1], integer=False)
    count = _number(name, parts[2], integer=True)
    if count < 1 or (count == 1 and start != stop):
        raise InvalidArgumentError(f"{name}: range {token!r} needs COUNT ≥ 2 (or START = STOP with COUNT = 1)")
    # before the points are built: a mistyped COUNT (1e9) would otherwise fill the memory instead of being refused
    _check_count(name, count)
    if geometric:
        if start <= 0 or stop <= 0:
            raise InvalidArgumentError(f"{name}: log range {token!r} needs START and STOP > 0")
        points = np.geomspace(start, stop, int(count))
    else:
        points = np.linspace(start, stop, int(count))
    if integer:
        return list(dict.fromkeys(round(float(p)) for p in points))
    return [_canonical(float(p)) for p in points]


@dataclass(frozen=True)
class Task:
    """One configuration run with one seed."""

    configuration: Configuration
    seed: int

    @property
    def key(self) -> str:
        return record_key(self.configuration, self.seed)


def task_seed(configuration: Configuration, seed: int, stream: str) -> int:
    """A 63-bit seed for one random stream (``"weights"`` or ``"inputs"``) of one configuration × seed.

    Derived from the configuration's hash without its dtype (:attr:`Configuration.network_key`), so it depends on
    nothing but the task itself, and a float32 row runs the network of the float64 row beside it.
    """
    digest = hashlib.sha256(f"{configuration.network_key}/{seed}/{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def sweep_network(configuration: Configuration, seed: int) -> tuple[VanillaRNN, torch.Tensor]:
    """The network and inputs of one configuration × seed, exactly as a sweep builds them (float64, CPU).

    W = ``init_weights(init, n, seed=s_W, activation=σ)`` scaled so that γ‖W‖₂ = δ; U has i.i.d. N(0, 1/m)
    entries; b = 0; inputs x ~ N(0, input_scale²) of shape (batch, T, m); σ is the scaled family member with
    sup|σ'| = γ. The seeds s_W and s_x come from :func:`task_seed`.

    Returns:
        (rnn, x): a one-network :class:`~rnnstab.VanillaRNN` and its inputs, ready for
        :func:`~rnnstab.jacobian_norms`.

    Example:
        >>> cfg = Grid(delta=(0.8,), hidden=(16,), steps=(10,)).configurations()[0]
        >>> rnn, x = sweep_network(cfg, seed=0)
        >>> round(float(rnn.delta()), 12), tuple(x.shape)
        (0.8, (8, 10, 4))
    """
    if not isinstance(configuration, Configuration):
        raise ArgumentTypeError(
            f"configuration must be a Configuration (from Grid.configurations()), got {type(configuration).__name__}"
        )
    seed = _checks.seed("seed", seed)
    c = configuration
    act = get_activation(c.activation, gamma=c.gamma)
    W = scale_to_threshold(
        init_weights(c.init, c.hidden, seed=task_seed(c, seed, "weights"), activation=act),
        delta=c.delta,
        gamma=act.gamma,
    )
    generator = torch.Generator().manual_seed(task_seed(c, seed, "inputs"))
    U = torch.randn(c.hidden, c.inputs, generator=generator, dtype=torch.float64) / math.sqrt(c.inputs)
    x = c.input_scale * torch.randn(c.batch, c.steps, c.inputs, generator=generator, dtype=torch.float64)
    return VanillaRNN(W, U, torch.zeros(c.hidden, dtype=torch.float64), act), x


def _stack_key(configuration: Configuration) -> tuple[Any, ...]:
    """What must be equal for two configurations to share one batched call."""
    c = configuration
    return (c.activation, c.gamma, c.hidden, c.steps, c.dtype, c.batch, c.inputs)


def _bytes_per_network(configuration: Configuration) -> int:
    """Memory one network of a batched call needs: jacobian_norms' products and forward chunk, plus the stacked
    copies of W (float64 and the product dtype) and the per-step traces, which grow with T."""
    c = configuration
    itemsize = torch.finfo(_checks.FLOAT_DTYPES[c.dtype]).bits // 8
    return (
        memory_estimate(1, c.hidden, _checks.FLOAT_DTYPES[c.dtype])
        + (16 + 2 * itemsize) * c.hidden**2
        + 8 * c.steps * (c.inputs + 8)
    )


def _canonical_bytes_per_network(configuration: Configuration) -> int:
    """Like :func:`_bytes_per_network` but from fixed constants only, so that chunking (hence the last bits of the
    results) cannot change when jacobian_norms' own memory accounting does."""
    c = configuration
    itemsize = 4 if c.dtype == "float32" else 8
    return (
        (3 * itemsize + 16 + 2 * itemsize) * c.hidden**2 + 4 * 128 * c.hidden * itemsize + 8 * c.steps * (c.inputs + 8)
    )


def plan_chunks(tasks: Sequence[Task], *, stack: int | None = None, device: str = "cpu") -> list[tuple[Task, ...]]:
    """Split tasks into batched calls: one stack group per (activation, γ, n, T, dtype), cut canonically.

    Within a group, tasks are sorted by record key and cut into the fewest balanced chunks of at most ``stack``
    networks (a task is ``batch`` networks). ``stack=None`` sizes chunks to about 256 MiB each and, unless
    ``device`` names CUDA, to (networks, n, n) products of about 8 MiB, which stay in a CPU's cache. The result
    depends only on the set of tasks, ``stack`` and whether ``device`` is CUDA; the numbers computed depend on it
    at most in their last bits (torch's element-wise kernels round a tensor's tail differently; see the README).

    Raises:
        InvalidArgumentError: ``stack`` smaller than one task's ``batch``.
    """
    groups: dict[tuple[Any, ...], list[Task]] = {}
    for task in tasks:
        groups.setdefault(_stack_key(task.configuration), []).append(task)
    chunks: list[tuple[Task, ...]] = []
    for key in sorted(groups, key=repr):
        members = sorted(groups[key], key=lambda t: t.key)
        config = members[0].configuration
        if stack is None:
            networks = _CALL_BUDGET_BYTES // _canonical_bytes_per_network(config)
            if not device.startswith("cuda"):
                itemsize = 4 if config.dtype == "float32" else 8
                networks = min(networks, _CPU_PRODUCT_BYTES // (itemsize * config.hidden**2))
            per_chunk = max(1, networks // config.batch)
        else:
            if stack < config.batch:
                raise InvalidArgumentError(
                    f"stack: {stack} is smaller than a configuration's batch ({config.batch}): each configuration "
                    "runs its batch of networks in one call"
                )
            per_chunk = stack // config.batch
        count = math.ceil(len(members) / per_chunk)
        for part in np.array_split(np.arange(len(members)), count):
            chunks.append(tuple(members[i] for i in part))
    return chunks


@dataclass(frozen=True)
class ChunkResult:
    """Records of one batched call, with its timings (seconds)."""

    records: tuple[Record, ...]
    jacobian_seconds: float
    total_seconds: float


def compute_chunk(
    tasks: Sequence[Task], *, device: str = "auto", progress: Callable[[int], None] | None = None
) -> ChunkResult:
    """Run a stack of tasks as one batched :func:`~rnnstab.jacobian_norms` call and derive every record.

    Each task's W (n, n) is repeated ``batch`` times into a (k·batch, n, n) batch, with its own ``batch`` input
    sequences. Rates and regimes come from :func:`~rnnstab.verdicts`; bound checks from
    :func:`~rnnstab.bound_violations`; ‖W‖₂ from an exact SVD and ρ(W) from the eigenvalues, in float64.

    Args:
        tasks: configurations × seeds sharing (activation, γ, n, T, dtype, batch, inputs).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``, resolved where this runs.
        progress: called with the steps completed, as :func:`~rnnstab.jacobian_norms` does.

    Raises:
        InvalidArgumentError: empty ``tasks``, tasks that cannot share a call, or a bad device.
    """
    started = time.perf_counter()
    if not tasks:
        raise InvalidArgumentError("compute_chunk needs at least one task")
    first = tasks[0].configuration
    if any(_stack_key(t.configuration) != _stack_key(first) for t in tasks):
        raise InvalidArgumentError(
            "tasks of one chunk must share activation, gamma, hidden, steps, dtype, batch, inputs"
        )
    where = _checks.device("device", device)
    networks = [sweep_network(t.configuration, t.seed) for t in tasks]
    batch, k, steps = first.batch, len(tasks), first.steps
    W = torch.stack([rnn.W for rnn, _ in networks])  # (k, n, n) float64
    U = torch.stack([rnn.U for rnn, _ in networks])
    x = torch.cat([inputs for _, inputs in networks])  # (k·batch, T, m): task i owns rows i·batch … (i+1)·batch − 1
    rnn = VanillaRNN(
        W.repeat_interleave(batch, dim=0),
        U.repeat_interleave(batch, dim=0),
        torch.zeros(k * batch, first.hidden, dtype=torch.float64),
        networks[0][0].activation,
    )
    jacobian_start = time.perf_counter()
    trace = jacobian_norms(rnn, x, dtype=first.dtype, device=where, on_overflow="truncate", progress=progress)
    jacobian_seconds = time.perf_counter() - jacobian_start
    assert trace.log_spectral is not None and trace.log_frobenius is not None  # both norms are requested

    overflow = trace.overflow_steps.reshape(k, batch)
    for i, task in enumerate(tasks):
        if bool((overflow[i] == 1).any()):  # nothing before the overflow to measure a rate on
            setting = ", ".join(f"{axis} = {getattr(task.configuration, axis)}" for axis in GRID_AXES)
            raise StateOverflowError(
                f"{setting}, seed {task.seed}: the forward pass overflowed {first.dtype} at the first step: there is "
                "no trajectory to measure. Leave this configuration out of the grid, or use float64",
                step=1,
                sequence=i * batch + int((overflow[i] == 1).to(torch.int8).argmax()),
            )
    # A task whose state overflowed at step s (the earliest over its inputs) is measured on steps 1..s−1 only.
    horizons = [int(o[o > 0].min()) - 1 if bool((o > 0).any()) else steps for o in overflow]
    deltas = torch.tensor([t.configuration.delta for t in tasks], dtype=torch.float64)
    per_input: dict[int, Verdict] = {}  # by row of the batch
    per_task: dict[int, Verdict] = {}
    violations = np.zeros(k, dtype=int)
    for horizon in sorted(set(horizons)):
        members = [i for i in range(k) if horizons[i] == horizon]
        rows = torch.cat([torch.arange(i * batch, (i + 1) * batch) for i in members])
        part = dataclasses.replace(
            trace,
            log_spectral=trace.log_spectral[rows, :horizon],
            log_frobenius=trace.log_frobenius[rows, :horizon],
            log_singular_values=None,
            spectral_iterations=trace.spectral_iterations[:horizon],
            overflow_steps=trace.overflow_steps[rows],
        )
        row_deltas = deltas[members].repeat_interleave(batch)
        for row, verdict in zip(rows.tolist(), verdicts(part, delta=row_deltas), strict=True):
            per_input[row] = verdict
        for v in bound_violations(part, delta=row_deltas):
            violations[members[v.batch // batch]] += 1
        # The verdict of a task is the verdict of its mean curve over inputs: the late-half slope is linear in the
        # curve, so its rate is exactly the mean of the per-input rates.
        assert part.log_spectral is not None
        mean_spectral = part.log_spectral.reshape(len(members), batch, horizon).mean(dim=1)
        mean_part = dataclasses.replace(
            part,
            log_spectral=mean_spectral,
            log_frobenius=None,
            overflow_steps=torch.zeros(len(members), dtype=torch.int64),  # finite on every step of the horizon
        )
        for i, verdict in zip(members, verdicts(mean_part, delta=deltas[members]), strict=True):
            per_task[i] = verdict
    norms = spectral_norm(W).tolist()
    radii = torch.linalg.eigvals(W).abs().amax(dim=-1).tolist()
    spectral = trace.log_spectral.numpy()
    frobenius = trace.log_frobenius.numpy()
    records = []
    for i, task in enumerate(tasks):
        own = slice(i * batch, (i + 1) * batch)
        inputs = [per_input[row] for row in range(i * batch, (i + 1) * batch)]
        rates = np.array([v.rate_per_step for v in inputs])
        verdict = per_task[i]
        records.append(
            Record(
                configuration=task.configuration,
                seed=task.seed,
                log_spectral=spectral[own].copy(),
                log_frobenius=frobenius[own].copy(),
                spectral_norm_W=float(norms[i]),
                spectral_radius_W=float(radii[i]),
                rate_per_step=verdict.rate_per_step,
                rate_per_step_std_inputs=_spread(rates),
                log_delta=verdict.log_delta,
                slack_per_step=verdict.slack_per_step,
                half_life_steps=verdict.half_life_steps,
                doubling_steps=verdict.doubling_steps,
                max_bound_excess=max(v.max_bound_excess for v in inputs),
                bound_holds=all(v.bound_holds for v in inputs),
                bound_violations=int(violations[i]),
                regime=verdict.regime,
                log_spectral_final=float(spectral[own, -1].mean()),
                log_frobenius_final=float(frobenius[own, -1].mean()),
                device=str(where),
                state_overflow_step=horizons[i] + 1 if horizons[i] < steps else None,
            )
        )
    return ChunkResult(tuple(records), jacobian_seconds, time.perf_counter() - started)


def _spread(rates: np.ndarray) -> float:
    """Sample standard deviation of per-input rates; NaN when a rate is -inf (a dead Jacobian), 0 for one input."""
    return 0.0 if rates.size < 2 else rate_spread(rates)


def compute_shard(chunks: Sequence[Sequence[Task]], device: str, threads: int | None = None) -> list[ChunkResult]:
    """Run several chunks one after another (the unit a Dask worker receives).

    Args:
        chunks: from :func:`plan_chunks`.
        device: as for :func:`compute_chunk`.
        threads: set torch's intra-op threads first (a LocalCluster gives each worker process its share of cores).
    """
    if threads is not None:
        torch.set_num_threads(threads)
    return [compute_chunk(chunk, device=device) for chunk in chunks]


@dataclass(frozen=True)
class SweepProgress:
    """Where a sweep stands, passed to the ``progress`` callback of :func:`run_sweep`.

    Attributes:
        stage: ``"computing"`` or ``"done"``.
        tasks_total: configurations × seeds in the grid.
        tasks_skipped: already complete on disk (resume).
        tasks_to_compute: the rest.
        tasks_written: records written so far by this run.
        chunks_total: batched calls this run makes.
        chunks_done: batched calls finished.
        work_total: matmul work of this run, in 10⁹ multiply-adds (for a progress bar and its ETA).
        work_done: work done so far (advances within a call on the local executor, per returned call on Dask).
    """

    stage: str
    tasks_total: int
    tasks_skipped: int
    tasks_to_compute: int
    tasks_written: int
    chunks_total: int
    chunks_done: int
    work_total: float
    work_done: float


@dataclass(frozen=True)
class SweepResult:
    """What :func:`run_sweep` did.

    Attributes:
        directory: the sweep directory.
        tasks_total: configurations × seeds in the grid.
        tasks_computed: records written by this run.
        tasks_skipped: records found complete and kept (resume).
        tasks_recomputed: records found corrupted or missing and recomputed (each announced by a warning).
        chunks: batched :func:`~rnnstab.jacobian_norms` calls made.
        seconds_total: wall time of the run.
        seconds_jacobian: time inside :func:`~rnnstab.jacobian_norms`, summed over calls (over workers for Dask).
        executor: ``local`` or ``dask``.
        device: the requested device.
    """

    directory: Path
    tasks_total: int
    tasks_computed: int
    tasks_skipped: int
    tasks_recomputed: int
    chunks: int
    seconds_total: float
    seconds_jacobian: float
    executor: str
    device: str


def run_sweep(
    grid: Grid,
    out: str | os.PathLike[str],
    *,
    resume: bool = False,
    executor: str = "local",
    device: str = "auto",
    workers: int | None = None,
    scheduler: str | None = None,
    client: Any = None,
    stack: int | None = None,
    chunks_per_shard: int = 1,
    progress: Callable[[SweepProgress], None] | None = None,
    also_planned: Collection[str] = (),
) -> SweepResult:
    """Run every configuration × seed of ``grid`` and store one record each in ``out`` (see :mod:`rnnstab.store`).

    Everything is checked before anything is written: options, memory (the largest batched call against what the
    device has free) and disk (the records against free space), the directory (an existing sweep is continued only
    with ``resume`` and the same fixed parameters), the Dask extra and the scheduler. Records are written one by
    one as their batched call returns; ``sweep.json`` records each run's grid, status and versions. A new sweep
    stopped by bad input before its first record (a state overflowing at the first step) leaves nothing behind.

    Args:
        grid: what to run, a :class:`Grid`.
        out: the sweep directory, a non-empty path (created; must not already hold a sweep unless ``resume``).
        resume: continue the sweep in ``out``, which must hold one: complete records are kept, corrupted or
            missing ones recomputed (with a :class:`~rnnstab.exceptions.RnnstabWarning`). The fixed parameters
            (batch, inputs) must match the earlier run's; the grid may differ (new configurations are added).
        executor: ``local`` (this process) or ``dask`` (needs ``pip install 'rnnstab[dask]'``).
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``; on a Dask cluster, resolved on each
            worker.
        workers: Dask only: worker processes of the LocalCluster started when neither ``scheduler`` nor ``client``
            is given (default: one per CPU core, each with its share of torch threads).
        scheduler: Dask only: address of a running scheduler (``tcp://host:8786``).
        client: Dask only: an existing ``distributed.Client`` to use (left open).
        stack: networks per batched call (default: products of about 8 MiB on a CPU, calls of about 256 MiB on a GPU);
            it changes speed and memory, and the results at most in their last bits (the README's "Chaotic
            trajectories and the last bit").
        chunks_per_shard: Dask only: batched calls per submitted task (scheduling granularity; no effect on results).
        progress: called with a :class:`SweepProgress` as work advances.
        also_planned: record keys that the caller computes in other calls (:func:`resume_sweep` passes every saved
            grid's): records of earlier runs among them are not reported as left behind.

    Returns:
        A :class:`SweepResult`.

    Raises:
        ArgumentTypeError: ``grid`` not a :class:`Grid`, ``out`` not a path, ``resume`` not a bool.
        InvalidArgumentError: bad options, ``out`` empty, unusable, holding a different sweep or (with ``resume``) no
            sweep, not enough memory or disk (the message gives the estimate), an unreachable scheduler.
        MissingDependencyError: ``executor="dask"`` without the ``dask`` extra installed.

    Example:
        >>> import rnnstab, tempfile
        >>> out = tempfile.mkdtemp()
        >>> grid = rnnstab.Grid(delta=(0.5, 1.5), hidden=(8,), steps=(20,), seeds=(0, 1), batch=2)
        >>> result = rnnstab.run_sweep(grid, out)  # then rnnstab.load_sweep(out), rnnstab.write_report(out)
        >>> result.tasks_total, result.tasks_computed
        (4, 4)
        >>> again = rnnstab.run_sweep(grid, out, resume=True)  # every record is there: nothing is recomputed
        >>> again.tasks_computed, again.tasks_skipped
        (0, 4)
    """
    started = time.perf_counter()
    if not isinstance(grid, Grid):
        raise ArgumentTypeError(
            f"grid must be an rnnstab.Grid, got {type(grid).__name__}: build one with rnnstab.Grid(delta=..., ...)"
        )
    directory = _checks.path("out", out)
    resume = _checks.boolean("resume", resume)
    if executor not in EXECUTORS:
        raise InvalidArgumentError(f"executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    # named as the arguments they are: the CLI turns a leading argument name into its option (--workers)
    dask_only = {"workers": workers, "scheduler": scheduler, "client": client}
    given = next((name for name, value in dask_only.items() if value is not None), None)
    if executor == "local" and given is not None:
        raise InvalidArgumentError(f"{given}: used by the dask executor only, and the executor is 'local'")
    if workers is not None and (scheduler is not None or client is not None):
        raise InvalidArgumentError(
            "workers: sizes a local Dask cluster, which is not started when a scheduler or client is given (the "
            "workers are then those started by `dask worker`)"
        )
    if workers is not None:
        workers = _checks.positive_int("workers", workers)
    chunks_per_shard = _checks.positive_int("chunks_per_shard", chunks_per_shard)
    if stack is not None:
        stack = _checks.positive_int("stack", stack)
    remote = scheduler is not None or client is not None
    device = _resolved_device(device, remote=remote)

    tasks = grid.tasks()
    chunks = plan_chunks(tasks, stack=stack, device=device)
    fixed = {**grid.fixed(), "format": FORMAT_VERSION, "rate_tol": DEFAULT_RATE_TOL}
    _check_resources(directory, chunks, device=device, share=_calls_at_once(executor, workers, remote=remote))
    previous = _check_directory(directory, fixed, resume=resume)

    with ExitStack() as resources:
        if executor == "dask":
            resources.enter_context(_quiet_after_ctrl_c())  # first in: it ends after the cluster has shut down
            client, threads = _dask_client(resources, workers=workers, scheduler=scheduler, client=client)
        created: list[Path] = []
        # registered before the lock, so it runs once the lock file is gone: a refused new sweep leaves no directory
        resources.callback(_io.remove_empty, created)
        directory = _io.output_dir(directory, created=created)
        resources.enter_context(sweep_lock(directory))
        # again, now that the lock is ours: another sweep may have been written here since the first check
        previous = _check_directory(directory, fixed, resume=resume)
        remove_stale_temporaries(directory)
        wanted = [t.key for t in tasks]
        valid, corrupted = scan_records(directory, wanted)
        missing = _missing_from_finished_runs(previous, valid | set(corrupted), set(wanted))
        if corrupted:
            shown = "; ".join(list(corrupted.values())[:3]) + (" …" if len(corrupted) > 3 else "")
            warnings.warn(f"recomputing {len(corrupted)} corrupted record(s): {shown}", RnnstabWarning, stacklevel=2)
        if missing:
            warnings.warn(
                f"recomputing {len(missing)} record(s) missing since an earlier finished run "
                f"(e.g. {sorted(missing)[0]})",
                RnnstabWarning,
                stacklevel=2,
            )
        left_behind = _planned_before(previous) - set(wanted) - set(also_planned) - present_keys(directory)
        if left_behind:
            warnings.warn(
                f"{len(left_behind)} record(s) planned by an earlier run of this sweep are missing and not in this "
                "grid; resuming with no grid options (rnnstab sweep --out DIR --resume) finishes every earlier grid",
                RnnstabWarning,
                stacklevel=2,
            )
        todo = [chunk for chunk in chunks if any(t.key not in valid for t in chunk)]
        to_compute = sum(1 for chunk in todo for t in chunk if t.key not in valid)
        run_entry: dict[str, Any] = {
            "started": _now(),
            "finished": None,
            "status": "running",
            "executor": executor,
            "device": device,
            "scheduler": scheduler,
            "grid": grid.describe(),
            "planned": wanted,
        }
        metadata = _metadata(previous, fixed, grid, run_entry, device=device)
        write_metadata(directory, metadata)

        tracker = _Tracker(progress, len(tasks), to_compute, todo)
        jacobian_seconds = 0.0
        status = "interrupted"
        try:
            tracker.report()
            if executor == "local":
                results: Iterator[ChunkResult] = _run_local(todo, device, tracker)
            else:
                results = _run_dask(client, todo, device, threads=threads, shard=chunks_per_shard)
            for result in results:
                jacobian_seconds += result.jacobian_seconds
                for record in result.records:
                    if record.key not in valid:
                        write_record(directory, record)
                        valid.add(record.key)
                        tracker.written += 1
                tracker.chunk_done(result)
            status = "finished"
        except RnnstabError:
            # bad input that only the computation reveals (a state overflowing at its first step): a new sweep that
            # it stops before any record is written leaves nothing, as if refused up front, so that the corrected
            # command can run into the same directory
            status = "refused" if previous is None and tracker.written == 0 else "failed"
            raise
        except Exception:
            status = "failed"  # an error (a lost worker, a full disk), not a Ctrl-C
            raise
        finally:
            if status == "refused":
                (directory / METADATA_FILE).unlink(missing_ok=True)
            else:
                run_entry.update(status=status, finished=_now())
                write_metadata(directory, metadata)
        tracker.report("done")
    return SweepResult(
        directory=directory,
        tasks_total=len(tasks),
        tasks_computed=tracker.written,
        tasks_skipped=len(tasks) - to_compute,
        tasks_recomputed=len(corrupted) + len(missing),
        chunks=len(todo),
        seconds_total=time.perf_counter() - started,
        seconds_jacobian=jacobian_seconds,
        executor=executor,
        device=device,
    )


def _work(configuration: Configuration) -> float:
    """Matmul work of one configuration × seed, in units of 10⁹ multiply-adds (for progress and ETA only)."""
    c = configuration
    return c.batch * c.steps * c.hidden**3 / 1e9


class _Tracker:
    """Counts for :class:`SweepProgress`: work advances within a call (local) or per returned call (Dask)."""

    def __init__(
        self,
        callback: Callable[[SweepProgress], None] | None,
        total: int,
        to_compute: int,
        todo: Sequence[Sequence[Task]],
    ) -> None:
        self.callback, self.total, self.to_compute = callback, total, to_compute
        self.chunks_total = len(todo)
        self.work_total = sum(_work(t.configuration) for chunk in todo for t in chunk)
        self.written = 0
        self.chunks = 0
        self.completed_work = 0.0
        self.work = 0.0

    def advance(self, work: float) -> None:
        self.work = min(self.work + work, self.work_total)
        self.report()

    def chunk_done(self, result: ChunkResult) -> None:
        self.chunks += 1
        self.completed_work += sum(_work(r.configuration) for r in result.records)
        self.work = min(self.completed_work, self.work_total)
        self.report()

    def report(self, stage: str = "computing") -> None:
        if self.callback is not None:
            self.callback(
                SweepProgress(
                    stage=stage,
                    tasks_total=self.total,
                    tasks_skipped=self.total - self.to_compute,
                    tasks_to_compute=self.to_compute,
                    tasks_written=self.written,
                    chunks_total=self.chunks_total,
                    chunks_done=self.chunks,
                    work_total=self.work_total,
                    work_done=self.work,
                )
            )


def _run_local(chunks: Sequence[Sequence[Task]], device: str, tracker: _Tracker) -> Iterator[ChunkResult]:
    for chunk in chunks:
        per_step = sum(_work(t.configuration) for t in chunk) / chunk[0].configuration.steps

        def advance(steps: int, per_step: float = per_step) -> None:
            tracker.advance(steps * per_step)

        yield compute_chunk(chunk, device=device, progress=advance)


def _require_distributed() -> Any:
    try:
        import distributed
    except ImportError as err:
        raise MissingDependencyError(
            f"--executor dask needs the optional 'dask' extra ({err}): pip install 'rnnstab[dask]'"
        ) from None
    return distributed


def _dask_client(
    resources: ExitStack, *, workers: int | None, scheduler: str | None, client: Any
) -> tuple[Any, int | None]:
    """The client to submit to (opened on ``resources``), and torch threads per worker (None: leave as is)."""
    distributed = _require_distributed()
    if client is not None:
        return client, None
    if scheduler is not None:
        try:
            return resources.enter_context(distributed.Client(scheduler, timeout="20s")), None
        except (OSError, TimeoutError, ValueError) as err:
            raise InvalidArgumentError(f"cannot reach the Dask scheduler at {scheduler}: {err}") from None
    cores = os.cpu_count() or 1
    count = workers or cores
    with _workers_ignore_ctrl_c():
        cluster = resources.enter_context(
            distributed.LocalCluster(
                n_workers=count,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                # worker chatter on stderr would drown the one-line messages, and so would the errors workers log
                # when Ctrl-C shuts the cluster down ("Failed to communicate with scheduler during heartbeat"); a
                # task's own error reaches the client, and a worker's death too (KilledWorker)
                silence_logs=logging.CRITICAL,
            )
        )
    return resources.enter_context(distributed.Client(cluster)), max(1, cores // count)


@contextmanager
def _workers_ignore_ctrl_c() -> Iterator[None]:
    """Start the local workers with SIGINT ignored (inherited, and then Python installs no KeyboardInterrupt
    handler): Ctrl-C reaches the whole process group, and each worker would print its own traceback before this
    process shuts the cluster down. Only the main thread may change signal handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


_NOISY_LOGGERS = ("distributed", "tornado", "asyncio")


@contextmanager
def _quiet_after_ctrl_c() -> Iterator[None]:
    """On Ctrl-C, silence the loggers of distributed, tornado and asyncio before the KeyboardInterrupt unwinds, until
    the context ends: cut short, their callbacks log tracebacks (tornado: "NameError: cannot access free variable
    'future'" in distributed's sync) that read as a crash beside the one-line message. Only the main thread can
    install the handler."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    loggers = [logging.getLogger(name) for name in _NOISY_LOGGERS]
    levels = [logger.level for logger in loggers]

    def interrupt(signum: int, frame: object) -> None:
        for logger in loggers:
            logger.setLevel(logging.CRITICAL + 1)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _run_dask(
    client: Any, chunks: Sequence[Sequence[Task]], device: str, *, threads: int | None, shard: int
) -> Iterator[ChunkResult]:
    as_completed = _require_distributed().as_completed
    shards = [list(chunks[i : i + shard]) for i in range(0, len(chunks), shard)]
    futures = [client.submit(compute_shard, s, device, threads, pure=False) for s in shards]
    try:
        for future in as_completed(futures):
            yield from future.result()
    finally:
        client.cancel(futures)  # on an interrupt, stop the cluster working for nobody


def _check_resources(directory: Path, chunks: Sequence[Sequence[Task]], *, device: str, share: int | None) -> None:
    """Refuse a sweep whose largest batched call cannot fit in memory, or whose records cannot fit on disk.

    ``share``: how many calls run at once on this machine (None: a remote cluster, whose memory we cannot see).
    """
    if not chunks:
        return
    sizes = [len(chunk) * chunk[0].configuration.batch * _bytes_per_network(chunk[0].configuration) for chunk in chunks]
    largest = chunks[int(np.argmax(sizes))]
    config, needed = largest[0].configuration, max(sizes)
    if share is not None:
        where = _checks.device("device", device)
        if where.type == "cuda":
            available, place = torch.cuda.mem_get_info(where)[0], "the GPU"
        else:
            available, place = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "this machine"
        available //= share
        if needed > _MEMORY_FRACTION * available:
            raise InvalidArgumentError(
                f"this sweep needs about {_io.size(needed)} per batched call ({len(largest) * config.batch} "
                f"networks, n = {config.hidden}, T = {config.steps}, {config.dtype}) and {place} has "
                f"{_io.size(available)} available{' per worker' if share > 1 else ''}: "
                "lower the hidden size, steps, batch, inputs or stack, or use float32"
            )
    record_bytes = sum(16 * t.configuration.batch * t.configuration.steps + 4096 for chunk in chunks for t in chunk)
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.is_dir():
        usage = shutil.disk_usage(existing)
        if usage.total == 0:  # "0 B free" would send the user to shrink a grid that no size fits
            raise InvalidArgumentError(
                f"--out {directory}: {existing} is on a filesystem without storage (such as /proc): choose "
                "another --out"
            )
        free = usage.free
        if record_bytes > _DISK_FRACTION * free:
            raise InvalidArgumentError(
                f"the records of this sweep need about {_io.size(record_bytes)} on disk and {existing} has "
                f"{_io.size(free)} free: lower --steps, --batch or the size of the grid"
            )


def _check_directory(directory: Path, fixed: dict[str, Any], *, resume: bool) -> dict[str, Any] | None:
    """Refuse to overwrite another sweep, or to resume one with different fixed parameters; return its metadata."""
    if directory.exists() and not directory.is_dir():
        raise InvalidArgumentError(f"--out {directory} exists and is a file, not a directory")
    previous = read_metadata(directory) if directory.is_dir() else None
    if previous is None:
        if resume:
            raise InvalidArgumentError(
                f"resume is set but {directory} holds no sweep to resume (no sweep.json): start the sweep without it"
            )
        return None
    if not resume:
        raise InvalidArgumentError(
            f"{directory} already holds a sweep; pass --resume to continue it, or choose another --out"
        )
    before = previous.get("fixed", {})
    differences = [
        f"{name} = {before.get(name)!r} there, {value!r} now"
        for name, value in fixed.items()
        if before.get(name) != value
    ]
    if before.get("format") != fixed["format"]:
        raise InvalidArgumentError(
            f"the sweep in {directory} was written by another rnnstab version (record format {before.get('format')}, "
            f"this one writes {fixed['format']}): its records cannot be resumed; start it again in another --out"
        )
    if differences:
        raise InvalidArgumentError(
            f"cannot resume the sweep in {directory} with different fixed parameters ({'; '.join(differences)}): "
            "use the same ones, or choose another --out"
        )
    return previous


def _planned_before(previous: dict[str, Any] | None) -> set[str]:
    return {key for run in (previous or {}).get("runs", []) for key in run.get("planned", [])}


def saved_grids(out: str | os.PathLike[str]) -> list[Grid]:
    """The grids of the runs recorded in a sweep directory, oldest first, without repeats.

    Resuming each of them (``run_sweep(grid, out, resume=True)``) finishes everything the sweep ever planned.

    Raises:
        InvalidArgumentError: ``out`` holds no sweep, or its ``sweep.json`` is damaged.
    """
    metadata = read_metadata(_checks.path("out", out))
    if metadata is None or not metadata.get("runs"):
        raise InvalidArgumentError(f"{out} holds no sweep to resume (no sweep.json with a run in it)")
    grids: list[Grid] = []
    for run in metadata["runs"]:
        saved = run.get("grid", {})
        try:
            grid = Grid(**{name: saved[name] for name in (*GRID_AXES, "seeds", "batch", "inputs")})
        except (KeyError, TypeError):
            raise InvalidArgumentError(f"{out}/sweep.json lists a run without a complete grid: damaged") from None
        if grid not in grids:
            grids.append(grid)
    return grids


def resume_sweep(
    out: str | os.PathLike[str], *, batch: int | None = None, inputs: int | None = None, **options: Any
) -> tuple[list[Grid], list[SweepResult]]:
    """Finish a sweep: run every grid it was ever run with (:func:`saved_grids`), keeping every complete record.

    Args:
        out: the sweep directory.
        batch, inputs: if given, they must equal the sweep's fixed parameters (a mismatch is refused).
        options: passed on to :func:`run_sweep` (executor, device, workers, scheduler, client, stack,
            chunks_per_shard, progress).

    Returns:
        (the grids, one :class:`SweepResult` per grid), oldest grid first.

    Raises:
        InvalidArgumentError: ``out`` holds no sweep; as :func:`run_sweep`.
    """
    grids = [
        dataclasses.replace(
            grid, batch=grid.batch if batch is None else batch, inputs=grid.inputs if inputs is None else inputs
        )
        for grid in saved_grids(out)
    ]
    # every grid is checked before any is run: a later one refused for memory or disk must not come after hours of work
    remote = options.get("scheduler") is not None or options.get("client") is not None
    device = _resolved_device(options.get("device", "auto"), remote=remote)
    share = _calls_at_once(options.get("executor", "local"), options.get("workers"), remote=remote)
    for index, grid in enumerate(grids):
        try:
            _check_resources(
                Path(out),
                plan_chunks(grid.tasks(), stack=options.get("stack"), device=device),
                device=device,
                share=share,
            )
        except InvalidArgumentError as error:
            raise InvalidArgumentError(
                f"saved grid {index + 1} of {len(grids)} (n = {list(grid.hidden)}, T = {list(grid.steps)}): {error} "
                "(resuming, only --stack and --device can change it)"
            ) from None
    planned = {task.key for grid in grids for task in grid.tasks()}
    return grids, [run_sweep(grid, out, resume=True, also_planned=planned, **options) for grid in grids]


def _resolved_device(device: str, *, remote: bool) -> str:
    """Where the sweep runs, as recorded (``cpu``, not ``auto``); on a remote cluster the device is resolved on the
    workers, so only its spelling is checked here."""
    if not remote:
        return str(_checks.device("device", device))
    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise InvalidArgumentError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}")
    return device


def _calls_at_once(executor: str, workers: int | None, *, remote: bool) -> int | None:
    """Batched calls running at once on this machine (None: a remote cluster, whose memory cannot be seen here)."""
    return None if remote else 1 if executor == "local" else workers or os.cpu_count() or 1


def _missing_from_finished_runs(previous: dict[str, Any] | None, present: set[str], wanted: set[str]) -> set[str]:
    if previous is None:
        return set()
    finished = set()
    for run in previous.get("runs", []):
        if run.get("status") == "finished":
            finished.update(run.get("planned", []))
    return (finished & wanted) - present


def _metadata(
    previous: dict[str, Any] | None, fixed: dict[str, Any], grid: Grid, run: dict[str, Any], *, device: str
) -> dict[str, Any]:
    # This run holds the sweep's lock, so an earlier run still marked running was killed (kill -9, power loss).
    earlier = [
        {**r, "status": "killed"} if r.get("status") == "running" else r for r in (previous or {}).get("runs", [])
    ]
    runs = [*earlier, run]
    union: dict[str, list[Any]] = {axis: [] for axis in (*GRID_AXES, "seeds")}
    for entry in runs:
        for axis in union:
            for value in entry["grid"].get(axis, []):
                if value not in union[axis]:
                    union[axis].append(value)
    return {
        "tool": "rnnstab sweep",
        "format": FORMAT_VERSION,
        "fixed": fixed,
        "parameters": {**union, **grid.fixed()},
        "seeds": union["seeds"],
        "dtype": union["dtype"],
        "device": device,
        "versions": _io.versions(),
        "units": "natural log; rates in nats per step; traces: column t-1 is step t",
        "runs": runs,
    }


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
