"""Sweep results on disk: one record per configuration × seed, written atomically, loaded as a pandas DataFrame.

A sweep directory holds::

    sweep.json                         metadata: fixed parameters, each run's grid and seeds, versions, device
    records/<config>-s<seed>.npz       one record per configuration × seed, named by a hash of the parameters
    report.md, report.html, summary.json, figures/*.png      written by ``rnnstab report``

A record is a NumPy ``.npz`` archive with the per-t traces ``log_spectral`` (log‖J_t‖₂) and ``log_frobenius``
(log‖J_t‖_F) — float64, natural log, shape (batch, T), row i the i-th input sequence, column t-1 step t — and
``record``, a JSON string holding the parameters and the numbers derived from the traces. Every file is written to
a temporary name in the same directory and renamed into place, so a sweep killed at any moment (SIGINT, SIGKILL,
power loss after the rename) leaves only complete records; a record that fails to load or whose content does not
match its name is *corrupted*, and a resumed sweep recomputes it.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import os
import socket
import warnings
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rnnstab import _checks
from rnnstab._io import atomic_write, write_json
from rnnstab.exceptions import InvalidArgumentError, RnnstabWarning

#: Bumped whenever the meaning of a record changes; part of every configuration's hash.
FORMAT_VERSION = 2  # 2: float32 records run the float64 networks (Configuration.network_key)
METADATA_FILE = "sweep.json"
RECORDS_DIR = "records"
LOCK_FILE = ".rnnstab-sweep.lock"
_RECORD_SUFFIX = ".npz"


@dataclass(frozen=True)
class Configuration:
    """One point of a sweep grid: every parameter that determines the numbers, except the seed.

    Attributes:
        activation: registry name of σ (see :func:`rnnstab.activation_names`).
        gamma: γ of the scaled family σ_γ(x) = σ(c·x) with sup|σ_γ'| = γ (tanh with γ = 1 is plain tanh).
        delta: δ = γ‖W‖₂, the value W is scaled to exactly; δ < 1 guarantees vanishing gradients.
        hidden: hidden size n.
        steps: horizon T.
        input_scale: standard deviation of the inputs x_t.
        init: recurrent-weight scheme before scaling (see :func:`rnnstab.init_weights`).
        dtype: ``"float32"`` or ``"float64"``, the dtype the Jacobian product is computed in.
        batch: input sequences per network (one trace each).
        inputs: input size m (U is n × m with N(0, 1/m) entries).
    """

    activation: str
    gamma: float
    delta: float
    hidden: int
    steps: int
    input_scale: float
    init: str
    dtype: str
    batch: int
    inputs: int

    @functools.cached_property
    def key(self) -> str:
        """16 hex digits of the SHA-256 of the parameters (and the record format): the record's name."""
        payload = json.dumps({"format": FORMAT_VERSION, **dataclasses.asdict(self)}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    @functools.cached_property
    def network_key(self) -> str:
        """The hash the networks and inputs are drawn from: every parameter but the dtype, so that float32 and
        float64 rows of one grid run the same networks and differ by precision alone.

        The payload is the record key's of format 1 with dtype float64, so float64 networks are those of every
        earlier rnnstab version; it changes only if the way networks are drawn changes."""
        payload = json.dumps({"format": 1, **dataclasses.asdict(self), "dtype": "float64"}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def parameters(self) -> dict[str, Any]:
        """The fields as a plain dict (JSON-ready)."""
        return dataclasses.asdict(self)


def record_key(configuration: Configuration, seed: int) -> str:
    """The name of the record of ``configuration`` run with ``seed``: ``<configuration.key>-s<seed>``."""
    return f"{configuration.key}-s{seed}"


@dataclass(frozen=True)
class Record:
    """The result of one configuration × seed. Logs are natural; rates are in nats per step.

    Attributes:
        configuration, seed: what was run.
        log_spectral: (batch, T) log‖J_t‖₂, row i the i-th input sequence, column t-1 step t.
        log_frobenius: (batch, T) log‖J_t‖_F.
        spectral_norm_W: ‖W‖₂ (= δ/γ up to rounding).
        spectral_radius_W: ρ(W) = max |eig W| (≤ ‖W‖₂; far below it for non-normal W).
        rate_per_step: late-half slope of the mean over inputs of log‖J_t‖₂ (= the mean of the per-input rates),
            an estimate of the top Lyapunov exponent.
        rate_per_step_std_inputs: standard deviation of the per-input rates (0 for a single input).
        log_delta: log δ, the slope of the bound t·log δ.
        slack_per_step: log δ − rate (0 when the bound is tight).
        half_life_steps: log 2 / −rate when the rate is negative, else ``None``.
        doubling_steps: log 2 / rate when the rate is positive, else ``None``.
        max_bound_excess: max over inputs and t of log‖J_t‖₂ − t·log δ (≤ 0 up to float rounding).
        bound_holds: no input and no step exceeds the bound by more than float rounding explains.
        bound_violations: how many (input, step) pairs exceed it (anything but 0 is a bug in rnnstab).
        regime: :func:`rnnstab.verdicts` on the mean curve over inputs (one of :data:`rnnstab.REGIMES`).
        log_spectral_final: mean over inputs of log‖J_T‖₂.
        log_frobenius_final: mean over inputs of log‖J_T‖_F.
        device: where the product was computed.
        state_overflow_step: the first step t at which the hidden state of one of the inputs overflowed the dtype
            (an exploding network with an unbounded activation), else ``None``. ∂g_t/∂g_0 is undefined from there
            on: that input's traces are NaN from t, and every derived number is measured on steps 1..t−1 of all
            inputs (``log_*_final`` stay NaN).
    """

    configuration: Configuration
    seed: int
    log_spectral: np.ndarray
    log_frobenius: np.ndarray
    spectral_norm_W: float
    spectral_radius_W: float
    rate_per_step: float
    rate_per_step_std_inputs: float
    log_delta: float
    slack_per_step: float
    half_life_steps: float | None
    doubling_steps: float | None
    max_bound_excess: float
    bound_holds: bool
    bound_violations: int
    regime: str
    log_spectral_final: float
    log_frobenius_final: float
    device: str
    state_overflow_step: int | None = None  # older records lack it: their runs stopped at an overflow instead

    @property
    def key(self) -> str:
        return record_key(self.configuration, self.seed)

    def scalars(self) -> dict[str, Any]:
        """Every field but the traces, flattened: configuration parameters, seed, derived numbers."""
        out: dict[str, Any] = {"record": self.key, "config": self.configuration.key, "seed": self.seed}
        out.update(self.configuration.parameters())
        for field in dataclasses.fields(self):
            if field.name not in ("configuration", "seed", "log_spectral", "log_frobenius"):
                out[field.name] = getattr(self, field.name)
        return out


class CorruptRecordError(InvalidArgumentError):
    """A record file cannot be read, or its content does not match its name."""


def records_dir(directory: Path) -> Path:
    return directory / RECORDS_DIR


def record_path(directory: Path, key: str) -> Path:
    return records_dir(directory) / f"{key}{_RECORD_SUFFIX}"


def write_record(directory: Path, record: Record) -> Path:
    """Write ``record`` atomically to ``directory/records/<key>.npz`` and return the path."""
    path = record_path(directory, record.key)
    path.parent.mkdir(exist_ok=True)
    meta = json.dumps({"format": FORMAT_VERSION, "key": record.key, **record.scalars()}, ensure_ascii=False)
    # Serialise in memory first: the temporary file then receives one write, and a failure while encoding
    # leaves nothing on disk at all.
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        log_spectral=np.ascontiguousarray(record.log_spectral, dtype=np.float64),
        log_frobenius=np.ascontiguousarray(record.log_frobenius, dtype=np.float64),
        record=np.array(meta),
    )
    atomic_write(path, lambda handle: handle.write(buffer.getvalue()))
    return path


def read_record(path: Path, *, traces: bool = True) -> Record:
    """Load one record; with ``traces=False`` the traces are empty (0, 0) arrays and only the JSON is read.

    Raises:
        CorruptRecordError: unreadable file, or content that does not match the file name or the format.
    """
    try:
        with np.load(path, allow_pickle=False) as archive:
            meta = json.loads(str(archive["record"][()]))
            spectral = archive["log_spectral"] if traces else np.empty((0, 0))
            frobenius = archive["log_frobenius"] if traces else np.empty((0, 0))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, json.JSONDecodeError) as err:
        # numpy calls any non-archive "pickled data" and suggests allow_pickle=True: wrong here, and unsafe advice.
        detail = "not a NumPy .npz archive" if "pickle" in str(err) else f"{type(err).__name__}: {err}"
        raise CorruptRecordError(f"{path.name}: unreadable ({detail})") from None
    try:
        configuration = Configuration(**{f.name: meta[f.name] for f in dataclasses.fields(Configuration)})
        derived = {
            f.name: meta[f.name] if f.default is dataclasses.MISSING else meta.get(f.name, f.default)
            for f in dataclasses.fields(Record)
            if f.name not in ("configuration", "seed", "log_spectral", "log_frobenius")
        }
        record = Record(
            configuration=configuration,
            seed=int(meta["seed"]),
            log_spectral=spectral,
            log_frobenius=frobenius,
            **derived,
        )
    except (KeyError, TypeError) as err:
        raise CorruptRecordError(f"{path.name}: missing or malformed field ({err})") from None
    if meta.get("format") != FORMAT_VERSION:
        raise CorruptRecordError(f"{path.name}: record format {meta.get('format')}, expected {FORMAT_VERSION}")
    if record.key != path.name.removesuffix(_RECORD_SUFFIX) or meta.get("key") != record.key:
        raise CorruptRecordError(f"{path.name}: its parameters hash to {record.key}, not to its file name")
    if traces:
        shape = (configuration.batch, configuration.steps)
        for name, array in (("log_spectral", spectral), ("log_frobenius", frobenius)):
            if array.shape != shape or array.dtype != np.float64:
                raise CorruptRecordError(
                    f"{path.name}: {name} is {array.dtype} {array.shape}, expected float64 {shape}"
                )
    return record


def present_keys(directory: Path) -> set[str]:
    """The keys of every record file in ``directory`` (not checked: see :func:`scan_records`)."""
    return {p.name.removesuffix(_RECORD_SUFFIX) for p in _record_files(directory)}


def scan_records(directory: Path, keys: Iterable[str]) -> tuple[set[str], dict[str, str]]:
    """Check the records named ``keys`` that exist: return (the valid ones, {corrupted key: reason}).

    A record counts as valid only when it loads completely (traces included) and matches its name.
    """
    valid: set[str] = set()
    corrupted: dict[str, str] = {}
    present = present_keys(directory)
    for key in keys:
        if key not in present:
            continue
        try:
            read_record(record_path(directory, key))
        except CorruptRecordError as err:
            corrupted[key] = str(err)
        else:
            valid.add(key)
    return valid, corrupted


def remove_stale_temporaries(directory: Path) -> int:
    """Delete temporary files left by a killed writer (``.<name>.<random>.tmp``); return how many."""
    removed = 0
    for folder in (directory, records_dir(directory)):
        if folder.is_dir():
            for path in folder.glob(".*.tmp"):
                path.unlink(missing_ok=True)
                removed += 1
    return removed


def _record_files(directory: Path) -> list[Path]:
    folder = records_dir(directory)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix == _RECORD_SUFFIX and not p.name.startswith("."))


def read_metadata(directory: Path) -> dict[str, Any] | None:
    """The parsed ``sweep.json`` of ``directory``, or ``None`` if there is none.

    Raises:
        InvalidArgumentError: the file exists but is not valid JSON, not a sweep's, or damaged (a field of the wrong
            type).
    """
    path = directory / METADATA_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise InvalidArgumentError(f"{path} is unreadable ({err}): not an rnnstab sweep, or damaged") from None
    if not isinstance(data, dict) or data.get("tool") != "rnnstab sweep":
        raise InvalidArgumentError(f"{path} is not an rnnstab sweep metadata file")
    problem = _metadata_problem(data)
    if problem is not None:
        raise InvalidArgumentError(f"{path} is damaged: {problem}")
    return data


def _metadata_problem(data: dict[str, Any]) -> str | None:
    """What in parsed ``sweep.json`` has a type that the sweep and the report cannot read, or ``None``: a file that
    is valid JSON can still hold ``"runs": null``, and every reader would then fail with no name."""
    for key in ("fixed", "parameters", "versions"):
        if not isinstance(data.get(key, {}), dict):
            return f"{key} must be an object, got {_json_text(data[key])}"
    activations = data.get("parameters", {}).get("activation", [])
    if not _list_of(activations, str):
        return f"parameters.activation must be a list of names, got {_json_text(activations)}"
    runs = data.get("runs", [])
    if not isinstance(runs, list):
        return f"runs must be a list, got {_json_text(runs)}"
    for i, run in enumerate(runs):
        if not isinstance(run, dict):
            return f"runs[{i}] must be an object, got {_json_text(run)}"
        for key in ("grid", "planned"):
            if key not in run:
                return f"runs[{i}] has no {key}"
        grid, planned = run["grid"], run["planned"]
        if not isinstance(grid, dict) or not all(
            isinstance(values, list) for axis, values in grid.items() if axis not in ("batch", "inputs")
        ):
            return f"runs[{i}].grid must be an object of lists of values, got {_json_text(grid)}"
        if not _list_of(planned, str):
            return f"runs[{i}].planned must be a list of record names, got {_json_text(planned)}"
    return None


def _list_of(value: object, kind: type) -> bool:
    return isinstance(value, list) and all(isinstance(item, kind) for item in value)


def _json_text(value: object) -> str:
    """``value`` as the JSON text that the file holds (shortened): what the person who edited it wrote."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:39] + "…"


def write_metadata(directory: Path, data: dict[str, Any]) -> None:
    """Write ``sweep.json`` atomically."""
    write_json(directory / METADATA_FILE, data)


def load_sweep(directory: str | os.PathLike[str], *, traces: bool = False) -> Any:
    """The results of a sweep as a tidy pandas DataFrame: one row per configuration × seed.

    Columns: ``record`` (file name), ``config`` (configuration hash), ``seed``, the parameters (``activation``,
    ``gamma``, ``delta``, ``hidden``, ``steps``, ``input_scale``, ``init``, ``dtype``, ``batch``, ``inputs``),
    and the derived numbers of :class:`Record` (``spectral_norm_W``, ``spectral_radius_W``, ``rate_per_step``,
    ``rate_per_step_std_inputs``, ``log_delta``, ``slack_per_step``, ``half_life_steps``, ``doubling_steps``,
    ``max_bound_excess``, ``bound_holds``, ``bound_violations``, ``regime``, ``log_spectral_final``,
    ``log_frobenius_final``, ``device``, ``state_overflow_step``: NaN where no state overflowed). Logs are
    natural, rates in nats per step. With ``traces=True`` two more columns hold the (batch, T) arrays
    ``log_spectral`` and ``log_frobenius``. Rows are sorted by parameters, then seed. A corrupted record is
    skipped with an :class:`~rnnstab.exceptions.RnnstabWarning`.

    Values that are not finite numbers, and what they mean:

    - ``half_life_steps`` is NaN unless the rate is negative and finite, ``doubling_steps`` unless it is positive.
    - A dead Jacobian (exactly 0 from some step on, e.g. every relu unit off): ``log_*_final``, ``rate_per_step``
      and ``max_bound_excess`` are −inf, ``slack_per_step`` is +inf, and ``rate_per_step_std_inputs`` NaN where a
      rate is −inf (a spread of infinities is undefined); the regime is a vanishing one.
    - A state that overflowed the dtype: ``state_overflow_step`` is that step (NaN for a record where none did),
      the traces are NaN from it, and ``log_*_final`` are NaN (see :class:`Record`).

    Args:
        directory: a directory written by :func:`rnnstab.run_sweep` / ``rnnstab sweep``.
        traces: also load the per-t traces.

    Returns:
        A ``pandas.DataFrame``.

    Raises:
        ArgumentTypeError: ``directory`` is not a path.
        InvalidArgumentError: ``directory`` is empty or not a sweep directory.

    Example:
        >>> import rnnstab, tempfile
        >>> out = tempfile.mkdtemp()
        >>> grid = rnnstab.Grid(delta=(0.5, 1.5), hidden=(8,), steps=(20,), seeds=(0, 1), batch=2)
        >>> _ = rnnstab.run_sweep(grid, out)
        >>> df = rnnstab.load_sweep(out)
        >>> len(df), sorted(df.columns[:5])
        (4, ['activation', 'config', 'gamma', 'record', 'seed'])
        >>> df.groupby("delta")["regime"].first().to_dict()
        {0.5: 'guaranteed vanishing', 1.5: 'vanishing'}
    """
    import pandas as pd

    path = _checks.path("directory", directory)
    if not path.is_dir():
        raise InvalidArgumentError(f"{path} does not exist" if not path.exists() else f"{path} is not a directory")
    if read_metadata(path) is None:
        raise InvalidArgumentError(f"{path} holds no rnnstab sweep (no {METADATA_FILE}); run `rnnstab sweep` first")
    rows = []
    for file in _record_files(path):
        try:
            record = read_record(file, traces=traces)
        except CorruptRecordError as err:
            warnings.warn(
                f"skipping record {err} (rerun the sweep with --resume to recompute it)", RnnstabWarning, stacklevel=2
            )
            continue
        row = record.scalars()
        if traces:
            row["log_spectral"] = record.log_spectral
            row["log_frobenius"] = record.log_frobenius
        rows.append(row)
    columns = [
        "record",
        "config",
        "seed",
        *(f.name for f in dataclasses.fields(Configuration)),
        *(f.name for f in dataclasses.fields(Record) if f.name not in ("configuration", "seed")),
    ]
    if not traces:
        columns = [c for c in columns if c not in ("log_spectral", "log_frobenius")]
    frame = pd.DataFrame(rows, columns=columns)
    # None (no half-life: nothing vanished; no state overflowed) would leave an all-None column as dtype object;
    # NaN keeps it float
    frame = frame.astype({"half_life_steps": float, "doubling_steps": float, "state_overflow_step": float})
    order = ["activation", "gamma", "delta", "hidden", "steps", "input_scale", "init", "dtype", "batch", "inputs"]
    return frame.sort_values([*order, "seed"], kind="stable").reset_index(drop=True)


@contextmanager
def sweep_lock(directory: Path) -> Iterator[None]:
    """Hold ``directory/.rnnstab-sweep.lock`` while a sweep writes there.

    A lock left by a process that no longer exists on this host (a SIGKILLed sweep) is taken over.

    Raises:
        InvalidArgumentError: another live sweep holds the lock.
    """
    path = directory / LOCK_FILE
    me = {"pid": os.getpid(), "host": socket.gethostname()}
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _lock_holder(path)
            if holder is not None and not _is_stale(holder):
                raise InvalidArgumentError(
                    f"another rnnstab sweep (pid {holder.get('pid')} on {holder.get('host')}) is writing {directory}; "
                    f"wait for it, or delete {path} if you are sure it is gone"
                ) from None
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as handle:
            json.dump(me, handle)
        break
    else:  # pragma: no cover - two writers racing for a stale lock
        raise InvalidArgumentError(f"could not take the lock {path}: another sweep is starting in {directory}")
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def _lock_holder(path: Path) -> dict[str, Any] | None:
    try:
        holder = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # half-written by a writer killed between create and write: stale
    return holder if isinstance(holder, dict) else None


def _is_stale(holder: dict[str, Any]) -> bool:
    if holder.get("host") != socket.gethostname():
        return False  # another machine's process: we cannot tell, so we respect it
    pid = holder.get("pid")
    if not isinstance(pid, int):
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
