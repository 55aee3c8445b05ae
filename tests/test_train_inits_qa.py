"""Checks of ``rnnstab train`` against references written here: the monitor's Jacobian rate from float64
``torch.func.jacrev`` Jacobians and numpy's median, and the files that a second command leaves in an existing --out."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.func import jacrev
from typer.testing import CliRunner

from rnnstab import get_task, train, write_training_figures
from rnnstab.cli import app

F64 = torch.float64
SMALL = ["--length", "6", "--hidden", "4", "--steps", "2", "--monitor-every", "2", "--device", "cpu", "--quiet"]


def late_slope(log_norms: torch.Tensor) -> float:
    """Least-squares slope of log‖J_t‖₂ over t = T/2 + 1 … T (the late half)."""
    steps = log_norms.shape[0]
    t = torch.arange(steps // 2 + 1, steps + 1, dtype=F64)
    return float(np.polyfit(t.numpy(), log_norms[steps // 2 :].numpy(), 1)[0])


def rate_of(W: torch.Tensor, U: torch.Tensor, b: torch.Tensor, sequence: torch.Tensor) -> float:
    """The late rate of ‖∂g_t/∂g_0‖₂ along g_t = tanh(W g_{t-1} + U x_t + b) from g_0 = tanh(0) = 0."""

    def states(g0: torch.Tensor) -> torch.Tensor:
        g, out = g0, []
        for x_t in sequence:
            g = torch.tanh(W @ g + U @ x_t + b)
            out.append(g)
        return torch.stack(out)

    J = jacrev(states)(torch.zeros(W.shape[0], dtype=F64))  # (T, n, n)
    return late_slope(torch.linalg.matrix_norm(J, ord=2).log())


def test_the_monitors_jacobian_rate_is_the_median_of_its_four_sequences_rates():
    length, seed = 10, 4
    weights = {}

    def keep(record, model):
        weights[record.step] = {name: p.detach().clone() for name, p in model.named_parameters()}

    run = train("adding", length=length, hidden=5, steps=2, lr=0.1, seed=seed, dtype=F64, callback=keep)
    # the module docstring: the monitor's 4 fixed sequences come from seed + 3
    x = get_task("adding").generate(4, length, torch.Generator().manual_seed(seed + 3))[0]
    for step in (1, 2):
        rates = [rate_of(weights[step]["W"], weights[step]["U"], weights[step]["b"], sequence) for sequence in x]
        # an even count: the median is the mean of the two middle rates, not the lower one
        assert run.records[step - 1].jacobian_rate == pytest.approx(np.median(rates), rel=1e-12)


def test_figures_written_into_a_used_directory_leave_no_stale_weightnorm_figure(tmp_path):
    (tmp_path / "weightnorm.png").write_bytes(b"an earlier call's figure of weight-normalised runs")
    run = train("adding", length=4, hidden=3, steps=2, batch_size=2)  # plain W: no weight-norm figure
    assert [p.name for p in write_training_figures([run.frame()], tmp_path)] == ["training.png", "state_gradients.png"]
    assert not (tmp_path / "weightnorm.png").exists()


def test_a_second_command_into_the_same_out_names_the_earlier_logs_it_leaves(tmp_path):
    runner = CliRunner()
    first = runner.invoke(app, ["train", *SMALL, "--lr", "0.01,0.02", "--out", str(tmp_path)])
    assert first.exit_code == 0, first.output
    second = runner.invoke(app, ["train", *SMALL, "--lr", "0.02", "--out", str(tmp_path)])
    assert second.exit_code == 0, second.output
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["lr0.01_batch32.jsonl", "lr0.02_batch32.jsonl"]
    assert "warning:" in second.stderr and "lr0.01_batch32.jsonl" in second.stderr
    assert "lr0.02_batch32.jsonl" not in second.stderr  # this command's own log, overwritten
