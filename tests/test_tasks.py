"""Tests of rnnstab.tasks: the synthetic tasks' data, losses and memoryless baselines."""

from __future__ import annotations

import math

import pytest
import torch

from rnnstab import InvalidArgumentError, adding_problem, copy_task, get_task
from rnnstab.tasks import COPY_MEMORY, COPY_SYMBOLS


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_adding_problem_marks_one_value_in_each_half_and_sums_them():
    x, y = adding_problem(64, 11, gen())
    values, markers = x[..., 0], x[..., 1]
    assert x.dtype == torch.float64 and x.shape == (64, 11, 2) and y.shape == (64,)
    assert ((values >= 0) & (values <= 1)).all()
    assert (markers[:, :5].sum(1) == 1).all() and (markers[:, 5:].sum(1) == 1).all()
    first, second = markers[:, :5].argmax(1), 5 + markers[:, 5:].argmax(1)
    rows = torch.arange(64)
    assert torch.equal(y, values[rows, first] + values[rows, second])


def test_adding_problem_baseline_is_the_variance_of_the_sum():
    # Predicting 1 = E[U₁ + U₂] gives MSE Var(U₁ + U₂) = 1/6; the Monte-Carlo mean must lie within 4 standard errors.
    _, y = adding_problem(200_000, 4, gen(1))
    errors = (y - 1.0) ** 2
    stderr = float(errors.std()) / math.sqrt(errors.numel())
    assert abs(float(errors.mean()) - get_task("adding").baseline(4)) < 4 * stderr
    assert get_task("adding").baseline(50) == pytest.approx(1 / 6, abs=1e-15)


def test_copy_task_layout():
    x, y = copy_task(16, 20, gen(), memory=4)
    classes = x.argmax(-1)
    assert x.shape == (16, 20, COPY_SYMBOLS + 2) and torch.equal(x.sum(-1), torch.ones(16, 20, dtype=torch.float64))
    assert ((classes[:, :4] >= 1) & (classes[:, :4] <= COPY_SYMBOLS)).all()
    assert (classes[:, 20 - 4 - 1] == COPY_SYMBOLS + 1).all()  # the delimiter
    assert (classes[:, 4:15] == 0).all() and (classes[:, 16:] == 0).all()
    assert torch.equal(y[:, -4:], classes[:, :4]) and (y[:, :-4] == 0).all()


def test_copy_baseline_is_the_loss_of_the_memoryless_predictor():
    # Certain blanks for the first T − S steps, uniform over the K symbols for the last S: S·ln K / T exactly.
    task, length = get_task("copy"), 30
    _, y = copy_task(8, length, gen())
    logits = torch.full((8, length, COPY_SYMBOLS + 1), -1e9, dtype=torch.float64)
    logits[:, : length - COPY_MEMORY, 0] = 0.0
    logits[:, length - COPY_MEMORY :, 1:] = 0.0
    assert task.loss(logits, y).mean().item() == pytest.approx(task.baseline(length), rel=1e-12)
    assert task.baseline(length) == pytest.approx(COPY_MEMORY * math.log(8) / 30)


def test_copy_task_with_its_own_alphabet_and_memory():
    # S = 3 symbols out of K = 4: the task's sizes, data and baseline all follow, checked as above.
    task, length = get_task("copy", symbols=4, memory=3), 25
    assert (task.input_size, task.output_size, task.min_length) == (6, 5, 7)
    assert task.options == {"symbols": 4, "memory": 3}
    x, y = task.generate(8, length, gen())
    classes = x.argmax(-1)
    assert x.shape == (8, length, 6) and ((classes[:, :3] >= 1) & (classes[:, :3] <= 4)).all()
    assert (classes[:, length - 4] == 5).all() and torch.equal(y[:, -3:], classes[:, :3])
    logits = torch.full((8, length, 5), -1e9, dtype=torch.float64)
    logits[:, : length - 3, 0] = 0.0
    logits[:, length - 3 :, 1:] = 0.0
    assert task.loss(logits, y).mean().item() == pytest.approx(3 * math.log(4) / length, rel=1e-12)
    assert task.baseline(length) == pytest.approx(3 * math.log(4) / length, rel=1e-12)
    assert get_task("copy") is get_task("copy", symbols=None, memory=None)


def test_same_generator_seed_same_data():
    for task in ("adding", "copy"):
        generate = get_task(task).generate
        a, b, c = (generate(4, 12, gen(seed)) for seed in (3, 3, 4))
        assert all(torch.equal(p, q) for p, q in zip(a, b, strict=True))
        assert not torch.equal(a[0], c[0])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: get_task("parity"), "valid names: adding, copy"),
        (lambda: adding_problem(4, 1, gen()), "length must be ≥ 2"),
        (lambda: adding_problem(0, 10, gen()), "batch"),
        (lambda: copy_task(4, 10, gen(), memory=5), "length must be ≥ 11"),
        (lambda: copy_task(4, 10, gen(), symbols=1), "symbols"),
        (lambda: get_task("copy", symbols=1), "symbols must be ≥ 2"),
        (lambda: get_task("copy", memory=0), "memory"),
        (lambda: get_task("adding", memory=3), "memory must not be given for the 'adding' task"),
    ],
)
def test_bad_arguments(call, message):
    with pytest.raises(InvalidArgumentError, match=message):
        call()
