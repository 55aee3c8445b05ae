"""Synthetic long-memory tasks, generated in code: the adding problem and the copy task.

Each task draws a batch of input sequences and targets from a ``torch.Generator`` (float64 on the CPU, so a seed
gives the same data on any device) and defines a per-sequence loss and the loss of its trivial, memoryless
baseline — the number a network must beat to show that it carries information across ``length`` steps.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from rnnstab import _checks
from rnnstab.exceptions import InvalidArgumentError

#: the copy task's alphabet: symbols 1..K, class 0 is the blank and input K+1 the delimiter.
COPY_SYMBOLS = 8
#: how many symbols the copy task asks the network to remember.
COPY_MEMORY = 5


def adding_problem(batch: int, length: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The adding problem (Hochreiter & Schmidhuber 1997; Le et al. 2015): add the two marked numbers.

    Each input step x_t = (value, marker): values are uniform on [0, 1]; exactly two markers are 1, one in the
    first half (t < length // 2) and one in the second half. The target is the sum of the two marked values. The
    loss is the squared error of the output at the last step; always predicting 1 (the mean of the sum) gives
    MSE = Var(U₁ + U₂) = 2/12 ≈ 0.167, the trivial baseline.

    Args:
        batch: number of sequences.
        length: sequence length T ≥ 2.
        generator: the random stream (a seeded ``torch.Generator``).

    Returns:
        (inputs of shape (batch, length, 2), targets of shape (batch,)), float64.

    Raises:
        InvalidArgumentError: batch < 1 or length < 2.

    Example:
        >>> x, y = adding_problem(3, 10, torch.Generator().manual_seed(0))
        >>> x.shape, y.shape, x[:, :, 1].sum(1).tolist()
        (torch.Size([3, 10, 2]), torch.Size([3]), [2.0, 2.0, 2.0])
        >>> bool(torch.allclose((x[:, :, 0] * x[:, :, 1]).sum(1), y))
        True
    """
    batch, length = _sizes(batch, length, minimum=2)
    values = torch.rand(batch, length, generator=generator, dtype=torch.float64)
    half = length // 2
    first = torch.randint(0, half, (batch,), generator=generator)
    second = torch.randint(half, length, (batch,), generator=generator)
    markers = torch.zeros(batch, length, dtype=torch.float64)
    rows = torch.arange(batch)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    return torch.stack([values, markers], dim=-1), (values * markers).sum(1)


def copy_task(
    batch: int, length: int, generator: torch.Generator, *, symbols: int = COPY_SYMBOLS, memory: int = COPY_MEMORY
) -> tuple[torch.Tensor, torch.Tensor]:
    """The copy task (Hochreiter & Schmidhuber 1997; Arjovsky et al. 2016): repeat S symbols after a long delay.

    The first S = ``memory`` inputs are symbols drawn uniformly from 1..K (K = ``symbols``), then come blanks, a
    delimiter at step length − S − 1, and blanks again; the target is the blank class 0 at every step except the
    last S, where it is the S symbols in order. Inputs are one-hot over K + 2 classes (blank, symbols, delimiter).
    The loss is the cross-entropy averaged over the steps; the memoryless baseline (blank, then uniform guesses for
    the last S steps) scores S·ln K / length.

    Args:
        batch: number of sequences.
        length: sequence length T ≥ 2S + 1.
        generator: the random stream.
        symbols: alphabet size K ≥ 2.
        memory: S ≥ 1.

    Returns:
        (one-hot inputs of shape (batch, length, K + 2) float64, target classes of shape (batch, length) int64).

    Raises:
        InvalidArgumentError: batch < 1, symbols < 2, memory < 1, or length < 2·memory + 1.

    Example:
        >>> x, y = copy_task(2, 12, torch.Generator().manual_seed(0), memory=3)
        >>> bool((x[:, :3].argmax(-1) == y[:, -3:]).all()), x[0, 8].argmax().item()  # delimiter = K + 1
        (True, 9)
    """
    symbols = _checks.positive_int("symbols", symbols)
    memory = _checks.positive_int("memory", memory)
    if symbols < 2:
        raise InvalidArgumentError(f"symbols must be ≥ 2, got {symbols}")
    batch, length = _sizes(batch, length, minimum=2 * memory + 1)
    drawn = torch.randint(1, symbols + 1, (batch, memory), generator=generator)
    inputs = torch.zeros(batch, length, dtype=torch.int64)
    inputs[:, :memory] = drawn
    inputs[:, length - memory - 1] = symbols + 1
    targets = torch.zeros(batch, length, dtype=torch.int64)
    targets[:, length - memory :] = drawn
    return torch.nn.functional.one_hot(inputs, symbols + 2).to(torch.float64), targets


def _sizes(batch: int, length: int, *, minimum: int) -> tuple[int, int]:
    batch = _checks.positive_int("batch", batch)
    length = _checks.positive_int("length", length)
    if length < minimum:
        raise InvalidArgumentError(f"length must be ≥ {minimum} for this task, got {length}")
    return batch, length


def _adding_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return (outputs[:, -1, 0] - targets) ** 2


def _copy_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(outputs.transpose(1, 2), targets, reduction="none").mean(1)


@dataclass(frozen=True)
class Task:
    """A synthetic task: data, per-sequence loss and the trivial baseline.

    Attributes:
        name: the registry key.
        input_size: m, the size of each x_t.
        output_size: the size of the linear readout of each g_t.
        min_length: the shortest sequence the task allows.
        generate: ``(batch, length, generator) → (inputs, targets)``.
        loss: ``(outputs (batch, T, output_size), targets) → (batch,)`` per-sequence losses.
        baseline: ``length → `` the loss of the memoryless baseline.
        description: one line for help texts.
        options: the task's own settings (the copy task's ``symbols`` and ``memory``), recorded with a run.
    """

    name: str
    input_size: int
    output_size: int
    min_length: int
    generate: Callable[[int, int, torch.Generator], tuple[torch.Tensor, torch.Tensor]]
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    baseline: Callable[[int], float]
    description: str
    options: dict[str, int] = field(default_factory=dict)


def copy_spec(*, symbols: int = COPY_SYMBOLS, memory: int = COPY_MEMORY) -> Task:
    """The copy task as a :class:`Task`: remember S = ``memory`` symbols out of K = ``symbols``.

    Raises:
        InvalidArgumentError: symbols < 2 or memory < 1.

    Example:
        >>> task = copy_spec(symbols=4, memory=3)
        >>> task.input_size, task.output_size, task.min_length, round(task.baseline(30), 4)
        (6, 5, 7, 0.1386)
    """
    symbols = _checks.positive_int("symbols", symbols)
    memory = _checks.positive_int("memory", memory)
    if symbols < 2:
        raise InvalidArgumentError(f"symbols must be ≥ 2, got {symbols}")
    return Task(
        "copy",
        symbols + 2,
        symbols + 1,
        2 * memory + 1,
        functools.partial(copy_task, symbols=symbols, memory=memory),
        _copy_loss,
        lambda length: memory * math.log(symbols) / length,
        f"repeat S symbols out of K after a delay (default S = {COPY_MEMORY}, K = {COPY_SYMBOLS}); cross-entropy "
        "per step (baseline S·ln K/length)",
        {"symbols": symbols, "memory": memory},
    )


#: name → :class:`Task` (the copy task with its default S and K).
TASKS: dict[str, Task] = {
    "adding": Task(
        "adding",
        2,
        1,
        2,
        adding_problem,
        _adding_loss,
        lambda length: 1.0 / 6.0,
        "add the two marked numbers; MSE at the last step (baseline 0.167: always predict 1)",
    ),
    "copy": copy_spec(),
}


def get_task(name: str, *, symbols: int | None = None, memory: int | None = None) -> Task:
    """The task registered under ``name``; for the copy task, with its alphabet size and memory if given.

    Raises:
        InvalidArgumentError: an unknown name (the message lists the valid ones); ``symbols`` or ``memory`` for a
            task other than copy, or out of range (see :func:`copy_spec`).

    Example:
        >>> round(get_task("adding").baseline(50), 3), round(get_task("copy").baseline(50), 3)
        (0.167, 0.208)
        >>> get_task("copy", memory=10).min_length
        21
    """
    if not isinstance(name, str) or name not in TASKS:
        # "task: …" so that the CLI names its option (--task)
        raise InvalidArgumentError(f"task: unknown task {name!r}; valid names: {', '.join(sorted(TASKS))}")
    options = {key: value for key, value in (("symbols", symbols), ("memory", memory)) if value is not None}
    if not options:
        return TASKS[name]
    if name != "copy":
        first = next(iter(options))  # one option per message, so that the CLI can name it as its flag
        raise InvalidArgumentError(f"{first} must not be given for the {name!r} task: it applies to the copy task only")
    return copy_spec(**options)
