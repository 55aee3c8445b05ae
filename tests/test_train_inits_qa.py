"""Checks of ``rnnstab train`` against references written here: the monitor's Jacobian rate from float64
``torch.func.jacrev`` Jacobians and numpy's median, and the files that a second command leaves in an existing --out."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgba
from torch.func import jacrev
from typer.testing import CliRunner

from rnnstab import get_task, train, write_training_figures
from rnnstab.cli import app
from rnnstab.training_plots import plot_state_gradients, plot_training_curves

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


def test_a_grid_larger_than_the_heatmap_panels_says_which_runs_it_shows(tmp_path):
    run = train("adding", length=4, hidden=3, steps=2, batch_size=2)
    frames = []
    for rate in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7):
        frame = run.frame()
        frame.attrs = {**frame.attrs, "header": {**frame.attrs["header"], "parameters": {**run.parameters, "lr": rate}}}
        frames.append(frame)
    shown = plot_state_gradients(frames, path=tmp_path / "seven.png", title="grid")
    assert shown.get_suptitle() == "grid (the first 6 of 7 runs)"  # lr = 0.7 has no panel
    assert plot_state_gradients(frames[:6], path=tmp_path / "six.png", title="grid").get_suptitle() == "grid"


def test_a_diverged_run_does_not_flatten_the_others_weight_norms_onto_the_axis(tmp_path):
    calm = train("adding", length=4, hidden=3, steps=2, batch_size=2, optimizer="sgd", lr=0.1).frame()
    wild = train("adding", length=4, hidden=3, steps=2, batch_size=2, optimizer="sgd", lr=0.1).frame()
    wild["spectral_norm_W"] *= 1e4  # as a run at lr 2·10⁴ reaches, next to runs with ‖W‖₂ near 1
    figure = plot_training_curves([calm, wild], path=tmp_path / "training.png")
    norms = figure.axes[2]
    assert norms.get_title().startswith("recurrent weights") and norms.get_yscale() == "log"


def test_the_weights_panels_start_at_step_0_on_a_linear_axis_when_they_span_less_than_a_decade(tmp_path):
    # every record is taken after its step's update: the initial W (‖W‖₂ = 1 for the default orthogonal draw) is
    # drawn at step 0, from the header; near 1 a log axis would have no decade to label (ticks "1.0015×10⁰")
    run = train("adding", length=4, hidden=3, steps=3, batch_size=2, optimizer="sgd", lr=0.1, monitor_every=2)
    figure = plot_training_curves([run.frame()], path=tmp_path / "training.png")
    norms, rate = figure.axes[2], figure.axes[3]
    norm_line, radius_line = norms.get_lines()[:2]
    assert list(norm_line.get_xdata()) == [0, 1, 2, 3] and list(rate.get_lines()[0].get_xdata()) == [0, 1, 2, 3]
    assert norm_line.get_ydata()[0] == pytest.approx(1.0, rel=1e-6)  # orthogonal in float32: σ₁ = ρ = 1
    assert radius_line.get_ydata()[0] == pytest.approx(1.0, rel=1e-6)
    assert rate.get_lines()[0].get_ydata()[0] == run.initial["jacobian_rate"]
    assert norms.get_yscale() == "linear"
    # the runs' legend sits below the panels, where it covers no curve
    (legend,) = figure.legends
    assert figure.axes[0].get_legend() is None
    assert [text.get_text() for text in legend.get_texts()] == ["lr = 0.1, batch = 2", "memoryless baseline 0.167"]


def test_log_axes_label_plain_numbers_and_a_short_run_shows_its_points(tmp_path):
    # a run stopped at step 2 has one finite loss: a line alone draws nothing; on a log axis over a decade or two
    # matplotlib's own labels read 3×10⁻¹; steps are counts (no tick at 0.2)
    run = train("adding", length=10, hidden=8, steps=3, optimizer="sgd", lr=2e4, monitor_every=1, activation="relu")
    assert run.status == "stopped" and len(run.records) == 2
    figure = plot_training_curves([run.frame()], path=tmp_path / "training.png")
    figure.canvas.draw()
    assert figure.axes[0].get_lines()[0].get_marker() == "."  # the loss
    for ax in figure.axes:
        assert all(float(tick).is_integer() for tick in ax.get_xticks())
    for ax in (ax for ax in figure.axes if ax.get_yscale() == "log"):
        labels = [t.get_text() for t in [*ax.get_yticklabels(), *ax.get_yticklabels(minor=True)] if t.get_text()]
        assert labels and all(float(label.replace("\u2212", "-")) > 0 for label in labels), labels


def test_the_weight_norm_figure_has_its_legend_below_the_panels_as_training_png(tmp_path):
    from rnnstab.training_plots import plot_weightnorm

    runs = [train("adding", length=4, hidden=3, steps=2, batch_size=2, param="weight_norm", lr=lr) for lr in (0.1, 1)]
    figure = plot_weightnorm([run.frame() for run in runs], path=tmp_path / "weightnorm.png")
    (legend,) = figure.legends
    assert [text.get_text() for text in legend.get_texts()] == ["lr = 0.1, batch = 2", "lr = 1, batch = 2"]
    assert all(ax.get_legend() is None for ax in figure.axes)


def test_a_dead_jacobians_minus_infinite_rate_is_marked_in_the_figure(tmp_path):
    # every relu unit off (a saturated tanh is not dead: its rate is finite, if vast)
    dead = train(
        "adding", length=4, hidden=3, steps=2, batch_size=2, optimizer="sgd", lr=2e4, monitor_every=1, activation="relu"
    )
    assert [r.jacobian_rate for r in dead.records] == [-np.inf, -np.inf]
    figure = plot_training_curves([dead.frame()], path=tmp_path / "training.png")
    rate = figure.axes[3]
    (floor,) = [line for line in rate.get_lines() if line.get_marker() == "v" and len(line.get_xdata())]
    assert list(floor.get_xdata()) == [1, 2] and all(y > rate.get_ylim()[0] for y in floor.get_ydata())
    assert "−∞" in rate.get_legend().get_texts()[0].get_text()


def test_state_gradient_heatmaps_have_integer_ticks_and_show_zero_norms_in_an_explained_colour(tmp_path):
    # lr 2·10⁴ saturates tanh at step 1: from step 2 on, ∂ℓ/∂g_t = 0 exactly for every t < T (ln = −∞)
    calm = train("adding", length=4, hidden=3, steps=2, batch_size=2, optimizer="sgd", lr=0.1).frame()
    dead = train("adding", length=4, hidden=3, steps=2, batch_size=2, optimizer="sgd", lr=2e4).frame()
    assert dead["state_grad_norms"].iloc[1][:3] == [0.0, 0.0, 0.0]
    figure = plot_state_gradients([calm, dead], path=tmp_path / "state_gradients.png")
    panels = [ax for ax in figure.axes if ax.images]
    for ax in panels:  # T = 4 and 2 steps: ticks at 2.5 or 1.5 would name a t or a step that does not exist
        ticks = [*ax.get_xticks(), *ax.get_yticks()]
        assert all(float(tick).is_integer() for tick in ticks), ticks
    calm_image, dead_image = (ax.images[0] for ax in panels)
    colours = dead_image.to_rgba(dead_image.get_array())  # (t, step, RGBA), t = 1 in row 0
    grey = colours[0, 1]
    assert [list(colours[t, 1]) for t in range(3)] == [list(grey)] * 3
    assert list(grey) == list(to_rgba(dead_image.cmap.get_under()))
    # not a colour of the scale, nor white (the figure's background, where a NaN hole shows through)
    scale = dead_image.cmap(np.linspace(0, 1, 256))
    assert np.abs(scale - grey).sum(axis=1).min() > 0.2 and list(grey) != [1.0, 1.0, 1.0, 1.0]
    assert "grey: ‖∂ℓ/∂g_t‖ = 0" in dead_image.colorbar.ax.get_ylabel()
    assert "grey" not in calm_image.colorbar.ax.get_ylabel()  # the note only where such cells exist


def test_state_gradient_heatmaps_show_non_finite_norms_in_their_own_explained_colour(tmp_path):
    frame = train("adding", length=3, hidden=3, steps=2, batch_size=2).frame()
    frame.at[1, "state_grad_norms"] = [0.0, math.nan, math.inf]  # a log reads an Inf or NaN norm back as NaN
    image = plot_state_gradients([frame], path=tmp_path / "state_gradients.png").axes[0].images[0]
    colours = image.to_rgba(image.get_array())
    zero, nan, inf = (list(colours[t, 1]) for t in range(3))
    assert nan == inf == list(to_rgba(image.cmap.get_bad())) and zero != nan
    assert "red: Inf or NaN" in image.colorbar.ax.get_ylabel()
