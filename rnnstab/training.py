"""Train a vanilla RNN on a synthetic long-memory task and watch its gradients while it learns.

The network is g_t = σ(W g_{t-1} + U x_t + b) from g_0 = σ(0), with a linear readout y_t = C g_t + c at every step
(the task's loss decides which steps count). W is parametrised in one of three ways:

- ``plain``: W itself is trained.
- ``weight_norm``: W = diag(g)·V with each row v_i divided by ‖v_i‖, i.e. w_i = g_i·v_i/‖v_i‖ (Salimans & Kingma
  2016); V starts at the initial W and g at its row norms, so the network starts from the same W.
- ``orthogonal``: W = Q₀·exp(A − Aᵀ) with A trained from 0 and Q₀ the orthogonal polar factor of the initial W
  (the initial W itself when it is orthogonal); the exponential of a skew-symmetric matrix is orthogonal, so W
  stays orthogonal whatever the optimizer does — to rounding while A stays moderate. A diverging run (‖∇L‖ ~ 10¹⁰
  at lr = 1 with SGD) makes A huge, and ``matrix_exp`` of a huge skew matrix loses orthogonality: ‖W‖₂ = 1.002 in
  float32 (1.8·10⁻⁹ off in float64); the monitor's ‖W‖₂ shows it.

At every step the log records the loss, ‖∇L‖ over all parameters (before clipping), the per-timestep norms
‖∂ℓ/∂g_t‖ of one sequence's loss ℓ averaged over the batch, the size of the update, and under weight
normalisation ‖v‖, g and g/‖v‖; every ``monitor_every`` steps (and at the first and last) it adds ‖W‖₂, ρ(W) and
the Jacobian rate of the current weights.

Seeds: W comes from ``init_weights(init, n, seed=seed, activation=σ)``; U (N(0, 1/m) entries) and C
(N(0, 1/n)) from seed + 1, b = c = 0; the training batches from seed + 2; the monitor's fixed sequences from
seed + 3. Runs that differ only in the learning rate therefore start from the same network and see the same data.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from rnnstab import _checks, _io
from rnnstab._identity import unit_interval
from rnnstab.activations import Activation, get_activation
from rnnstab.exceptions import ArgumentTypeError, InvalidArgumentError
from rnnstab.jacobian import jacobian_norms
from rnnstab.optimizers import OPTIMIZERS, Optimizer, make_optimizer
from rnnstab.rnn import VanillaRNN
from rnnstab.tasks import Task, get_task
from rnnstab.theory import late_rate
from rnnstab.weights import init_weights, spectral_norm

PARAMETRIZATIONS = ("plain", "weight_norm", "orthogonal")
#: default rates: momentum's ε = δ(1−β) matches the running average's δ at β = 0.9.
DEFAULT_LR = {"sgd": 0.05, "momentum": 0.005, "ema": 0.05, "adam": 1e-3}
LOG_FORMAT = 1
#: fields that hold wall-clock times: they differ between otherwise identical runs.
TIMING_FIELDS = ("seconds", "monitor_seconds", "started")
_MONITOR_SEQUENCES = 4
#: up to this n an exact SVD per step is cheaper for the monitor than warm-started Lanczos (measured at n = 64).
_SVD_UP_TO = 128


class RecurrentModel(torch.nn.Module):
    """The trained network: a vanilla RNN with a parametrised W and a linear readout.

    Args:
        W: initial recurrent weights (n, n).
        U: initial input weights (n, m).
        C: initial readout weights (output size, n).
        activation: σ.
        param: ``plain``, ``weight_norm`` or ``orthogonal`` (see the module docstring).

    Raises:
        InvalidArgumentError: an unknown parametrisation, or ``weight_norm`` with a zero row in W.
    """

    def __init__(self, W: torch.Tensor, U: torch.Tensor, C: torch.Tensor, *, activation: Activation, param: str):
        super().__init__()
        if param not in PARAMETRIZATIONS:
            # "param: …" so that the CLI names its option (--param), as for every other bad value
            raise InvalidArgumentError(
                f"param: unknown parametrization {param!r}; valid names: {', '.join(PARAMETRIZATIONS)}"
            )
        self.param, self.activation = param, activation
        if param == "plain":
            self.W = torch.nn.Parameter(W.clone())
        elif param == "weight_norm":
            _refuse_zero_rows(W, "the given W", "pass a W without zero rows, or another param")
            self.v = torch.nn.Parameter(W.clone())
            self.g = torch.nn.Parameter(W.norm(dim=1))
        else:
            left, _, right = torch.linalg.svd(W)
            self.register_buffer("base", left @ right)
            self.skew = torch.nn.Parameter(torch.zeros_like(W))
        self.U = torch.nn.Parameter(U.clone())
        self.b = torch.nn.Parameter(torch.zeros(W.shape[0], dtype=W.dtype, device=W.device))
        self.C = torch.nn.Parameter(C.clone())
        self.c = torch.nn.Parameter(torch.zeros(C.shape[0], dtype=W.dtype, device=W.device))

    def recurrent_weight(self) -> torch.Tensor:
        """W as a function of the trained parameters."""
        if self.param == "plain":
            return self.W
        if self.param == "weight_norm":
            return self.g[:, None] * self.v / self.v.norm(dim=1, keepdim=True)
        return self.base @ torch.linalg.matrix_exp(self.skew - self.skew.T)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Outputs (batch, T, output size) and the hidden states [g_1, …, g_T], each (batch, n), in the graph."""
        rnn = VanillaRNN(self.recurrent_weight(), self.U, self.b, self.activation)
        drive = rnn.drive(x)
        state = self.activation.fn(rnn.initial_preactivation(x.shape[0]))
        states = []
        for t in range(x.shape[1]):
            state = self.activation.fn(rnn.recur(state, drive[:, t]))
            states.append(state)
        return torch.stack(states, dim=1) @ self.C.T + self.c, states


@dataclass(frozen=True)
class StepRecord:
    """What one training step logs (``None``: not measured at this step).

    The loss and the gradients are those of the step's batch before the update; the weights (‖W‖₂, ρ(W), the
    Jacobian rate, the weight-norm fields) are measured after it, so step 1 already shows the first update.

    Attributes:
        step: 1, 2, …
        loss: the batch loss L (mean over the batch of the per-sequence losses) before the update.
        grad_norm: ‖∇L‖ over every parameter, before clipping.
        clipped: whether the gradient was rescaled to norm ``clip``.
        update_norm: ‖Δθ‖ of the update over every parameter (``None`` when the step stopped before updating).
        state_grad_norms: for t = 1..T, the mean over the batch of ‖∂ℓ_b/∂g_t‖ for sequence b, where L is the mean
            of the per-sequence losses ℓ_b; equal to B·‖∂L/∂g_t^(b)‖ averaged over b, independent of the batch size.
        spectral_norm_W, spectral_radius_W: ‖W‖₂ and ρ(W), exact (monitor steps).
        jacobian_rate: the median (the mean of the two middle values) over the monitor's 4 sequences of the late
            rate of log‖∂g_t/∂g_0‖₂, nats per step (monitor steps).
        wn_v_norm: weight norm only: ‖V‖_F/√n, the root-mean-square row norm ‖v_i‖.
        wn_g: weight norm only: ‖g‖/√n, the root-mean-square scale g_i.
        wn_g_over_v: weight norm only: the mean over rows of |g_i|/‖v_i‖ (a step Δv moves w_i by (g_i/‖v_i‖)·Δv
            perpendicular to w_i, so SGD's effective rate on w_i is lr·(g_i/‖v_i‖)²).
        seconds: wall-clock time since the start of training.
        monitor_seconds: wall-clock time this step spent on the monitor (‖W‖₂, ρ(W), the Jacobian rate).
    """

    step: int
    loss: float
    grad_norm: float
    clipped: bool
    update_norm: float | None
    state_grad_norms: list[float]
    spectral_norm_W: float | None = None
    spectral_radius_W: float | None = None
    jacobian_rate: float | None = None
    wn_v_norm: float | None = None
    wn_g: float | None = None
    wn_g_over_v: float | None = None
    seconds: float = 0.0
    monitor_seconds: float = 0.0


@dataclass(frozen=True)
class TrainingRun:
    """The outcome of :func:`train`.

    Attributes:
        parameters: every option of the run (JSON-ready).
        records: one :class:`StepRecord` per step taken.
        status: ``finished``, or ``stopped`` on a non-finite loss, gradient or weight.
        stop_reason: why it stopped (``None`` when finished), e.g. ``"stopped at step 12: loss is NaN (…)"``.
        baseline_loss: the task's memoryless baseline loss at this length.
        log_path: the JSON Lines log, if one was written.
        seconds: wall-clock time of the whole run.
        initial: the network before the first update (every record measures the weights after its step's
            update): the monitor's fields of :class:`StepRecord` (``spectral_norm_W``, ``spectral_radius_W``,
            ``jacobian_rate``) and, for weight normalisation, ``wn_v_norm``, ``wn_g`` and ``wn_g_over_v``.
    """

    parameters: dict[str, Any]
    records: list[StepRecord]
    status: str
    stop_reason: str | None
    baseline_loss: float
    log_path: Path | None
    seconds: float = field(compare=False)
    initial: dict[str, float | None] = field(default_factory=dict)

    @property
    def final_loss(self) -> float:
        """The loss at the last step (NaN if no step was taken)."""
        return self.records[-1].loss if self.records else math.nan

    def frame(self) -> Any:
        """The records as a pandas DataFrame, one row per step, with ``attrs`` as :func:`load_training_log` gives
        them (the header holds only the parameters, the baseline loss and the initial state)."""
        import pandas as pd

        frame = _numeric(pd.DataFrame([asdict(r) for r in self.records], columns=_COLUMNS))
        header = {"parameters": self.parameters, "baseline_loss": self.baseline_loss, "initial": self.initial}
        frame.attrs.update(header=header, end=None, status=self.status)
        return frame


_COLUMNS = [f.name for f in fields(StepRecord)]


def train(
    task: str = "adding",
    *,
    length: int = 50,
    symbols: int | None = None,
    memory: int | None = None,
    hidden: int = 64,
    activation: str = "tanh",
    init: str = "orthogonal",
    param: str = "plain",
    optimizer: str = "adam",
    lr: float | None = None,
    momentum: float = 0.9,
    beta2: float = 0.999,
    bias_correction: bool = True,
    batch_size: int = 32,
    clip: float | None = None,
    steps: int = 300,
    seed: int = 0,
    dtype: torch.dtype | str = torch.float32,
    device: torch.device | str = "cpu",
    monitor_every: int = 50,
    log_path: str | os.PathLike[str] | None = None,
    callback: Callable[[StepRecord, RecurrentModel], None] | None = None,
) -> TrainingRun:
    """Train a vanilla RNN on a synthetic task, recording the loss, the gradients and the stability of W.

    Each step draws a fresh batch, computes L and its gradients (∂L/∂θ and ∂L/∂g_t in one backward pass), clips
    the gradient to norm ``clip`` if asked, and applies the optimizer. A NaN or infinite loss or gradient stops the
    run before the update, and a non-finite weight after it; the run is then returned with status ``stopped`` and
    the reason (the likely cause and what to try). With ``log_path``, a header line (every parameter, the versions,
    the seed, the device) and then one JSON line per step are written and flushed at once, so a run interrupted at
    any moment leaves a log that :func:`load_training_log` reads; the last line marks how the run ended.

    Args:
        task: a name from :data:`rnnstab.tasks.TASKS` (``adding``, ``copy``).
        length: sequence length T.
        symbols, memory: the copy task's alphabet size K ≥ 2 and number of symbols to remember S ≥ 1 (defaults
            8 and 5; T must be ≥ 2S + 1); refused for the adding task.
        hidden: hidden size n.
        activation: σ, a registry name.
        init: the initial W, any key of :data:`rnnstab.weights.SCHEMES`.
        param: ``plain``, ``weight_norm`` or ``orthogonal``.
        optimizer: ``sgd``, ``momentum``, ``ema`` or ``adam`` (rules in :mod:`rnnstab.optimizers`).
        lr: the rate, > 0; ``None`` takes :data:`DEFAULT_LR` for the optimizer.
        momentum: α (momentum), β (ema) or β₁ (adam), in (0, 1).
        beta2: adam's β₂, in (0, 1).
        bias_correction: adam's 1/(1−β^t) factors (False drops them).
        batch_size: sequences per step.
        clip: rescale the gradient to this norm when it is larger (``None``: no clipping).
        steps: training steps.
        seed: the seed of everything random (see the module docstring).
        dtype: float32 or float64 for training (the monitor always works in float64).
        device: where to train (``auto``, ``cpu``, ``cuda``, ``cuda:N`` or a torch.device).
        monitor_every: measure ‖W‖₂, ρ(W) and the Jacobian rate every this many steps (and at the first and last).
        log_path: the JSON Lines log to write (parent directories are created).
        callback: called as ``callback(record, model)`` after every step (after the update).

    Returns:
        A :class:`TrainingRun`.

    Raises:
        InvalidArgumentError: an unknown task, init scheme, activation, optimizer or parametrisation; a rate,
            clip, size or count ≤ 0; a rate that underflows in ``dtype`` (:func:`check_lr`); ``weight_norm`` with an
            ``init`` draw that has a zero row; a coefficient outside (0, 1); a length too short for the task;
            ``symbols`` or ``memory`` for the adding task; a batch, length and hidden size whose step would not fit
            in memory (:func:`check_step_memory`).
        KeyboardInterrupt: passed on after the log's last line marks the run as interrupted (any other exception
            raised during training is passed on the same way, marked ``error``).

    Example:
        >>> run = train("adding", length=10, hidden=8, steps=20, batch_size=16, lr=0.01, monitor_every=10)
        >>> run.status, len(run.records), len(run.records[0].state_grad_norms)
        ('finished', 20, 10)
        >>> run.records[-1].loss < run.records[0].loss
        True
    """
    spec = get_task(task, symbols=symbols, memory=memory)
    act = get_activation(activation)
    length = _checks.positive_int("length", length)
    if length < spec.min_length:
        raise InvalidArgumentError(f"length must be ≥ {spec.min_length} for the {task} task, got {length}")
    hidden = _checks.positive_int("hidden", hidden)
    batch_size = _checks.positive_int("batch_size", batch_size)
    steps = _checks.positive_int("steps", steps)
    monitor_every = _checks.positive_int("monitor_every", monitor_every)
    clip = None if clip is None else _checks.positive_float("clip", clip)
    momentum, beta2 = unit_interval("momentum", momentum), unit_interval("beta2", beta2)
    bias_correction = _checks.boolean("bias_correction", bias_correction)
    dtype = _checks.dtype("dtype", dtype)
    lr = check_lr(default_lr(optimizer) if lr is None else lr, dtype)
    device = _checks.device("device", device)
    check_step_memory(spec, batch_size=batch_size, length=length, hidden=hidden, dtype=dtype, device=device)
    parameters: dict[str, Any] = {
        "task": task,
        "length": length,
        **spec.options,
        "hidden": hidden,
        "activation": act.name,
        "init": init,
        "param": param,
        "optimizer": optimizer,
        "lr": lr,
        "momentum": momentum,
        "beta2": beta2,
        "bias_correction": bias_correction,
        "batch_size": batch_size,
        "clip": clip,
        "steps": steps,
        "seed": seed,
        "dtype": str(dtype).removeprefix("torch."),
        "device": str(device),
        "monitor_every": monitor_every,
    }
    model = initial_model(spec, hidden=hidden, activation=act, init=init, param=param, seed=seed)
    model = model.to(dtype=dtype, device=device)
    opt = make_optimizer(
        optimizer, list(model.parameters()), lr=lr, momentum=momentum, beta2=beta2, bias_correction=bias_correction
    )
    data = _checks.generator(seed, 2)
    monitor_x = spec.generate(_MONITOR_SEQUENCES, length, _checks.generator(seed, 3))[0]
    baseline = spec.baseline(length)
    # every record measures the weights after its update: step 1 has already moved ‖v‖ and g/‖v‖ (by 12 % at lr 3)
    initial = {**_monitor(model, monitor_x), **_weightnorm_state(model)}
    log = _Log(Path(log_path), parameters, baseline, initial) if log_path is not None else None
    records: list[StepRecord] = []
    stop_reason = None
    start = time.perf_counter()
    try:
        for step in range(1, steps + 1):
            x, y = spec.generate(batch_size, length, data)
            x = x.to(dtype=dtype, device=device)
            y = y.to(dtype=dtype if y.is_floating_point() else y.dtype, device=device)  # class labels stay int64
            record, stop_reason = _step(model, opt, spec, x, y, clip=clip)
            measured: dict[str, Any] = {"step": step, **_weightnorm_state(model)}
            tic = time.perf_counter()
            if stop_reason is None and (step == 1 or step % monitor_every == 0 or step == steps):
                measured.update(_monitor(model, monitor_x))
            measured["monitor_seconds"] = time.perf_counter() - tic
            record = replace(record, **measured, seconds=time.perf_counter() - start)
            if log is not None:
                log.write({"type": "step", **asdict(record)})
            if stop_reason is not None:
                stop_reason = _explain(step, stop_reason, records[-1].grad_norm if records else None)
                records.append(record)
                break
            records.append(record)
            if callback is not None:
                callback(record, model)
    except BaseException as err:
        if log is not None:
            interrupted = isinstance(err, KeyboardInterrupt)
            log.end("interrupted" if interrupted else "error", len(records), repr(err))
        raise
    if log is not None:
        log.end("stopped" if stop_reason else "finished", len(records), stop_reason)
    seconds = time.perf_counter() - start
    return TrainingRun(
        parameters=parameters,
        records=records,
        status="stopped" if stop_reason else "finished",
        stop_reason=stop_reason,
        baseline_loss=baseline,
        log_path=log.path if log is not None else None,
        seconds=seconds,
        initial=initial,
    )


def default_lr(optimizer: str) -> float:
    """The rate :func:`train` uses for ``optimizer`` when none is given (:data:`DEFAULT_LR`).

    Raises:
        InvalidArgumentError: an unknown optimizer (the message lists the valid ones).
    """
    if optimizer not in OPTIMIZERS:
        raise InvalidArgumentError(f"optimizer: unknown optimizer {optimizer!r}; valid names: {', '.join(OPTIMIZERS)}")
    return DEFAULT_LR[optimizer]


def check_lr(lr: float, dtype: torch.dtype | str = torch.float32) -> float:
    """Return ``lr`` as a float if it is a usable rate in ``dtype``: finite, > 0, and a normal number there.

    A rate below the dtype's smallest normal number (float32: 1.18e-38, float64: 2.23e-308) becomes 0 or a subnormal
    once cast to it, and every update lr·g then rounds to zero against weights of order one: the run would "train"
    for every step without moving.

    Args:
        lr: the learning rate.
        dtype: the training dtype (float32 or float64, or their names).

    Returns:
        ``lr`` as a float.

    Raises:
        InvalidArgumentError: ``lr`` ≤ 0 or not finite, or below the smallest normal number of ``dtype``, or above
            its largest.

    Example:
        >>> check_lr(1e-3)
        0.001
        >>> check_lr(1e-50, "float32")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        rnnstab.exceptions.InvalidArgumentError: lr: 1e-50 underflows in float32: ... becomes 0, ...
    """
    lr = _checks.positive_float("lr", lr)
    dtype = _checks.dtype("dtype", dtype)
    info = torch.finfo(dtype)
    cast = float(torch.tensor(lr, dtype=dtype))
    if cast < info.tiny:
        kind = str(dtype).removeprefix("torch.")
        became = "0" if cast == 0 else f"the subnormal {cast:.3g}"
        raise InvalidArgumentError(
            f"lr: {lr!r} underflows in {kind}: it is below {kind}'s smallest normal number {info.tiny:.3g} and "
            f"becomes {became}, so every update lr·g would round to zero; use a larger rate"
        )
    if cast == math.inf:
        kind = str(dtype).removeprefix("torch.")
        raise InvalidArgumentError(
            f"lr: {lr!r} overflows {kind} (largest {info.max:.3g}): every update lr·g would be infinite; use a "
            "smaller rate"
        )
    return lr


def check_step_memory(
    task: Task,
    *,
    batch_size: int,
    length: int,
    hidden: int,
    dtype: torch.dtype | str = torch.float32,
    device: torch.device | str = "cpu",
) -> None:
    """Refuse a training step that would not fit in memory, before anything is allocated or written.

    Backpropagation through time keeps the whole graph of a batch: about six (B, T, n) tensors in the training dtype
    (drive, pre-activations, states and their gradients) and the float64 norms ‖∂ℓ/∂g_t‖, the float64 data as
    drawn and its cast, and a few copies of the (B, T, output size) outputs; the copy task's one-hot inputs and
    outputs grow with its alphabet. The estimate is within 30 % of the peak measured on the CPU at n = 32…128,
    T = 400, B = 256…512.

    Raises:
        InvalidArgumentError: more than 80 % of the memory available on ``device`` would be needed.
    """
    size = torch.finfo(_checks.dtype("dtype", dtype)).bits // 8
    per_step = (6 * size + 8) * hidden + (16 + size) * task.input_size + 5 * size * task.output_size
    _checks.check_memory(
        batch_size * length * per_step,
        _checks.device("device", device),
        "reduce the batch size, the sequence length or the hidden size (or the copy task's alphabet)",
    )


def initial_model(
    task: Task, *, hidden: int, activation: Activation, init: str, param: str, seed: int
) -> RecurrentModel:
    """The network :func:`train` starts from, in float64 on the CPU (see the module docstring for the seeds)."""
    W = init_weights(init, hidden, seed=seed, activation=activation)
    if param == "weight_norm":  # said here, where the scheme and the seed that drew the zero row are known
        _refuse_zero_rows(
            W,
            f"init {init!r} (hidden {hidden}, seed {seed})",
            "choose another init or param, or another seed or a larger hidden size",
        )
    generator = _checks.generator(seed, 1)
    U = torch.randn(hidden, task.input_size, generator=generator, dtype=torch.float64) / task.input_size**0.5
    C = torch.randn(task.output_size, hidden, generator=generator, dtype=torch.float64) / hidden**0.5
    return RecurrentModel(W, U, C, activation=activation, param=param)


def _refuse_zero_rows(W: torch.Tensor, source: str, advice: str) -> None:
    zero = (W.norm(dim=1) == 0).nonzero().flatten().tolist()
    if zero:
        shown = ", ".join(map(str, zero[:5])) + (", …" if len(zero) > 5 else "")
        rows = f"row {shown} of its {W.shape[0]} is" if len(zero) == 1 else f"rows {shown} of its {W.shape[0]} are"
        # "param: …" so that the CLI names --param; the source names the other half of the clash (the init scheme)
        raise InvalidArgumentError(
            f"param: weight_norm cannot start from {source}: {rows} zero, and "
            f"w_i = g_i·v_i/‖v_i‖ needs every row v_i ≠ 0; {advice}"
        )


def loss_and_gradients(
    model: RecurrentModel, task: Task, x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
    """L, ∂L/∂θ for every parameter, and the per-timestep norms of :attr:`StepRecord.state_grad_norms`.

    ∂L/∂g_t is the total derivative (through every later step), from the same backward pass as ∂L/∂θ.

    Returns:
        (L, gradients in ``model.parameters()`` order, (T,) float64 tensor of mean_b ‖∂ℓ_b/∂g_t‖).
    """
    outputs, states = model(x)
    loss = task.loss(outputs, y).mean()
    params = list(model.parameters())
    grads = torch.autograd.grad(loss, [*params, *states])
    # L = mean_b ℓ_b and ℓ_b depends on sequence b only, so ∂ℓ_b/∂g_t^(b) = B·∂L/∂g_t^(b).
    per_sequence = torch.stack(grads[len(params) :], dim=1).to(torch.float64).norm(dim=-1) * x.shape[0]
    return loss, list(grads[: len(params)]), per_sequence.mean(0).cpu()


def _step(
    model: RecurrentModel, opt: Optimizer, task: Task, x: torch.Tensor, y: torch.Tensor, *, clip: float | None
) -> tuple[StepRecord, str | None]:
    """One gradient step; returns its record and, if the step must stop the run, the reason."""
    loss, grads, state_norms = loss_and_gradients(model, task, x, y)
    grad_norm = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))
    loss_value = float(loss.detach())
    clipped = clip is not None and grad_norm > clip
    record = StepRecord(0, loss_value, grad_norm, clipped, None, state_norms.tolist())
    if not math.isfinite(loss_value):
        return record, f"loss is {_nonfinite(loss_value)}"
    if not math.isfinite(grad_norm):
        return record, f"gradient norm ‖∇L‖ is {_nonfinite(grad_norm)}"
    if clip is not None and clipped:
        grads = [g * (clip / grad_norm) for g in grads]
    before = torch.cat([p.detach().flatten() for p in opt.params])
    opt.step(grads)
    after = torch.cat([p.detach().flatten() for p in opt.params])
    record = replace(record, update_norm=float((after - before).norm()))
    if not bool(torch.isfinite(after).all()):
        return record, "the weights became non-finite (Inf or NaN) after the update"
    return record, None


def _nonfinite(value: float) -> str:
    return "NaN" if math.isnan(value) else "Inf"


def _explain(step: int, reason: str, previous_grad_norm: float | None) -> str:
    before = f"; ‖∇L‖ was {previous_grad_norm:.3g} at step {step - 1}" if previous_grad_norm is not None else ""
    return (
        f"stopped at step {step}: {reason} (exploding gradients or too large a learning rate are the likely "
        f"cause{before}; try --clip or a smaller --lr)"
    )


def _monitor(model: RecurrentModel, x: torch.Tensor) -> dict[str, float | None]:
    """‖W‖₂, ρ(W) and the Jacobian rate of the current weights, in float64."""
    with torch.no_grad():
        W, U, b = (t.detach().to(torch.float64) for t in (model.recurrent_weight(), model.U, model.b))
    rnn = VanillaRNN(W, U, b, model.activation)
    trace = jacobian_norms(
        rnn, x, norms=("spectral",), spectral_method="svd" if W.shape[0] <= _SVD_UP_TO else "lanczos"
    )
    assert trace.log_spectral is not None  # asked for above
    return {
        "spectral_norm_W": float(spectral_norm(W)),
        "spectral_radius_W": float(torch.linalg.eigvals(W).abs().max()),
        # numpy's median: torch's is the lower middle value, for the monitor's 4 sequences always the second most
        # negative rate. Rates are finite or -inf (a dead Jacobian), and the mean of -inf and a finite value is -inf.
        "jacobian_rate": float(np.median(late_rate(trace.log_spectral).numpy())),
    }


def _weightnorm_state(model: RecurrentModel) -> dict[str, float | None]:
    if model.param != "weight_norm":
        return {}
    with torch.no_grad():
        rows = model.v.to(torch.float64).norm(dim=1)
        g = model.g.to(torch.float64)
        n = rows.numel()
        return {
            "wn_v_norm": float(rows.norm() / n**0.5),
            "wn_g": float(g.norm() / n**0.5),
            "wn_g_over_v": float((g.abs() / rows).mean()),
        }


class _Log:
    """The JSON Lines log: a header, one line per step, an end line; each line flushed as it is written."""

    def __init__(self, path: Path, parameters: dict[str, Any], baseline: float, initial: dict[str, Any]) -> None:
        self.path = path
        _io.output_dir(path.parent, name="log_path's directory")
        try:
            self.handle: IO[str] = path.open("w", encoding="utf-8")
        except OSError as err:
            raise InvalidArgumentError(f"cannot write the training log {path}: {err.strerror}") from None
        self.closed = False
        self.write(
            {
                "type": "header",
                "format": LOG_FORMAT,
                "tool": "rnnstab train",
                "parameters": parameters,
                "seed": parameters["seed"],
                "device": parameters["device"],
                "baseline_loss": baseline,
                "initial": initial,
                "versions": _io.versions(),
                "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "units": "norms are Euclidean; jacobian_rate in nats per step (natural log); seconds wall-clock",
            }
        )

    def write(self, entry: dict[str, Any]) -> None:
        self.handle.write(json.dumps(_io.finite_or_none(entry), ensure_ascii=False) + "\n")
        self.handle.flush()

    def end(self, status: str, steps: int, reason: str | None) -> None:
        self.write({"type": "end", "status": status, "steps_done": steps, "reason": reason})
        self.handle.close()
        self.closed = True


def load_training_log(path: str | os.PathLike[str]) -> Any:
    """Read a training log (also one cut short by a kill) as a pandas DataFrame, one row per step.

    The columns are the fields of :class:`StepRecord` (NaN where not measured; ``state_grad_norms`` holds lists;
    ``jacobian_rate`` is -inf where ∂g_t/∂g_0 became exactly 0, written as null in the log).
    ``frame.attrs`` holds ``header`` (parameters, versions, seed, device, baseline loss, and as ``initial`` the
    monitor's and the weight-norm fields of the network before the first update, as :attr:`TrainingRun.initial`),
    ``end`` (the end line, or ``None`` if the process was killed before writing it) and ``status`` (``finished``,
    ``stopped``, ``interrupted``, or ``killed`` when the end line is missing).

    Raises:
        ArgumentTypeError: ``path`` is not a str or os.PathLike.
        InvalidArgumentError: the file is missing, has no header line, or has a corrupted line other than the last
            (the last line may be cut short by a kill and is then skipped).

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "run.jsonl"
        >>> _ = train("adding", length=6, hidden=4, steps=3, log_path=path)
        >>> frame = load_training_log(path)
        >>> len(frame), frame.attrs["status"], frame.attrs["header"]["parameters"]["hidden"]
        (3, 'finished', 4)
    """
    import pandas as pd

    if not isinstance(path, (str, os.PathLike)):
        raise ArgumentTypeError(f"path must be a path (a str or os.PathLike), got {type(path).__name__}")
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise InvalidArgumentError(f"cannot read the training log {path}: {err.strerror}") from None
    header, end, rows = None, None, []
    for number, line in enumerate(lines, start=1):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                break  # the line being written when the process was killed
            raise InvalidArgumentError(f"{path}: line {number} is not valid JSON (corrupted log)") from None
        kind = entry.pop("type", None) if isinstance(entry, dict) else None
        if kind == "header":
            header = entry
        elif kind == "step":
            rows.append(entry)
        elif kind == "end":
            end = entry
    if header is None:
        raise InvalidArgumentError(f"{path} is not an rnnstab training log: it has no header line")
    frame = _numeric(pd.DataFrame(rows, columns=_COLUMNS))
    # JSON has no -inf: the log writes a dead Jacobian's rate (∂g_t/∂g_0 = 0) as null. The monitor measures the rate
    # with ‖W‖₂ and it is finite or -inf, so a null beside a measured ‖W‖₂ is -inf, not "not measured".
    frame.loc[frame["spectral_norm_W"].notna() & frame["jacobian_rate"].isna(), "jacobian_rate"] = -math.inf
    initial = header.get("initial") or {}
    if initial.get("spectral_norm_W") is not None and initial.get("jacobian_rate") is None:
        initial["jacobian_rate"] = -math.inf
    frame.attrs.update(header=header, end=end, status=end["status"] if end else "killed")
    return frame


def _numeric(frame: Any) -> Any:
    """Scalar columns as floats (None → NaN), so that partly measured columns plot and compare as numbers."""
    import pandas as pd

    for name in _COLUMNS:
        if name not in ("state_grad_norms", "clipped", "step"):
            frame[name] = pd.to_numeric(frame[name], errors="coerce").astype(float)
    return frame
