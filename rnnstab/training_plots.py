"""Figures of training runs (matplotlib's object API with the Agg canvas, written atomically).

Each function takes training logs as pandas DataFrames — from :func:`rnnstab.load_training_log` or
:meth:`rnnstab.TrainingRun.frame` — whose ``attrs["header"]["parameters"]`` hold the run's options.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rnnstab import _checks
from rnnstab._io import atomic_write, output_dir
from rnnstab.exceptions import ArgumentTypeError, InvalidArgumentError
from rnnstab.plots import integer_ticks, mark_on_the_floor, new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: the files :func:`write_training_figures` writes (weightnorm.png only for weight-normalised runs, else removes).
FIGURES = ("training.png", "state_gradients.png", "weightnorm.png")
_MAX_HEATMAPS = 6
_ZERO_COLOUR, _NONFINITE_COLOUR = "0.6", "red"  # outside viridis, and told apart from each other
_LINESTYLES = ("-", "--", ":", "-.")
_MONITORED = ["step", "spectral_norm_W", "spectral_radius_W", "jacobian_rate"]
_MARKED_UP_TO = 30  # steps: the loss and gradient curves of shorter runs get a marker at each step


def rate_labels(rates: Sequence[float]) -> dict[float, str]:
    """Each learning rate as ``rnnstab train`` writes it: 6 significant digits (``0.1``), or in full (``repr``) for
    every rate when two of them would print alike (0.1 and 0.1000001), in log names, summaries and legends alike."""
    short = {rate: f"{rate:g}" for rate in rates}
    return short if len(set(short.values())) == len(short) else {rate: repr(rate) for rate in rates}


def run_labels(frames: Sequence[Any]) -> list[str]:
    """``lr = …, batch = …`` for each log (the two options a ``rnnstab train`` grid varies)."""
    parameters = [frame.attrs["header"]["parameters"] for frame in frames]
    rates = rate_labels([p["lr"] for p in parameters])
    return [f"lr = {rates[p['lr']]}, batch = {p['batch_size']}" for p in parameters]


def plot_training_curves(frames: Sequence[Any], *, path: Path, title: str = "") -> Figure:
    """Loss (with the task's memoryless baseline), ‖∇L‖, ‖W‖₂ and ρ(W), and the Jacobian rate against the step."""
    fig = new_figure((11, 7.5))
    (loss, grad), (norms, rate) = fig.subplots(2, 2, sharex=True)
    colours = _colours(len(frames))
    dead = []  # (steps, colour) of each run's -inf rates
    for frame, colour, label in zip(frames, colours, run_labels(frames), strict=True):
        # markers on short runs: a run stopped at step 2 has one finite loss, which a line alone does not draw
        style = {"color": colour, "linewidth": 1, "marker": "." if len(frame) <= _MARKED_UP_TO else None}
        loss.plot(frame["step"], frame["loss"], label=label, **style)
        grad.plot(frame["step"], frame["grad_norm"], **style)
        monitored = _with_initial(frame.dropna(subset=["spectral_norm_W"])[_MONITORED], frame.attrs["header"])
        norms.plot(monitored["step"], monitored["spectral_norm_W"], "o-", color=colour, markersize=3)
        norms.plot(monitored["step"], monitored["spectral_radius_W"], "s--", color=colour, markersize=3)
        rate.plot(monitored["step"], monitored["jacobian_rate"], "o-", color=colour, markersize=3)
        dead.append((monitored["step"][np.isneginf(monitored["jacobian_rate"])], colour))
    baseline = frames[0].attrs["header"]["baseline_loss"]
    loss.axhline(baseline, color="k", linestyle=":", label=f"memoryless baseline {baseline:.3g}")
    # step k's loss and gradient are those of the network before step k's update; the weight panels' step k is after it
    loss.set(ylabel="training loss L", title="loss (before each step's update)")
    # below the panels, for the whole figure: inside the loss panel a grid of runs covered its own curves
    fig.legend(*loss.get_legend_handles_labels(), loc="outside lower center", ncols=min(len(frames) + 1, 4), fontsize=8)
    grad.set(ylabel="‖∇L‖ (before clipping)", title="gradient norm (before each step's update)")
    norms.axhline(1.0, color="grey", linewidth=0.6)
    norms.set(
        xlabel="training step",
        ylabel="‖W‖₂ (o, solid), ρ(W) (□, dashed)",
        title="recurrent weights (after each step's update)",
    )
    for ax in (loss, grad, norms):
        _log_scale_if_wide(ax)
    rate.axhline(0.0, color="grey", linewidth=0.6)
    rate.set(
        xlabel="training step",
        ylabel="late rate of log‖∂g_t/∂g_0‖₂ (nats/step)",
        title="Jacobian rate (< 0: vanishing, > 0: exploding)",
    )
    if any(len(steps) for steps, _ in dead):
        mark_on_the_floor(rate, dead)  # a dead Jacobian's rate, -inf, is the fastest vanishing there is
        rate.plot([], [], "v", color="grey", label="on the floor: −∞ (∂g_t/∂g_0 = 0)")
        rate.legend(fontsize=8)
    for ax in (loss, grad, norms, rate):
        ax.grid(alpha=0.3)
        integer_ticks(ax.xaxis)  # training steps are counts: no tick at step 0.2
    fig.suptitle(title or "training")
    _save(fig, path)
    return fig


def plot_state_gradients(frames: Sequence[Any], *, path: Path, title: str = "") -> Figure:
    """Heatmaps of ln ‖∂ℓ/∂g_t‖ over (training step, t), one panel per run (at most six).

    A norm of exactly 0 (ln = −∞) is grey and an Inf or NaN one red; a panel that has such cells says so in its colour
    bar's label."""
    shown = list(frames)[:_MAX_HEATMAPS]
    columns = min(len(shown), 3)
    rows = math.ceil(len(shown) / columns)
    fig = new_figure((5 * columns, 3.8 * rows))
    axes = np.atleast_1d(fig.subplots(rows, columns, squeeze=False)).ravel()
    logs = [_log_state_gradients(frame) for frame in shown]
    finite = np.concatenate([grid[np.isfinite(grid)] for grid in logs])
    # one colour scale for every panel, so that runs compare by colour
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    from matplotlib import colormaps

    cmap = colormaps["viridis"].with_extremes(under=_ZERO_COLOUR, bad=_NONFINITE_COLOUR)
    for ax, frame, grid, label in zip(axes, shown, logs, run_labels(frames), strict=False):
        steps = frame["step"].to_numpy()
        zero = bool(np.isneginf(grid).any())
        image = ax.imshow(
            # imshow paints -inf as "bad", like NaN: a value below the scale gets the distinct "under" colour instead
            np.where(np.isneginf(grid), low - 1.0, grid),
            aspect="auto",
            origin="lower",
            interpolation="nearest",
            cmap=cmap,
            vmin=low,
            vmax=high,
            extent=(steps[0] - 0.5, steps[-1] + 0.5, 0.5, grid.shape[0] + 0.5),
        )
        ax.set(xlabel="training step", ylabel="t (time step of the sequence)", title=label)
        # steps and t are counts: a tick at t = 2.5 (a short sequence) names a time step that does not exist
        integer_ticks(ax.xaxis)
        integer_ticks(ax.yaxis)
        notes = ["grey: ‖∂ℓ/∂g_t‖ = 0"] if zero else []
        if bool(np.isnan(grid).any()):
            notes.append("red: Inf or NaN")
        fig.colorbar(
            image,
            ax=ax,
            extend="min" if zero else "neither",
            label="ln ‖∂ℓ/∂g_t‖ (natural log, batch mean)" + "".join(f"\n{note}" for note in notes),
        )
    for ax in axes[len(shown) :]:
        ax.set_visible(False)
    heading = title or "per-timestep gradient norms: how far back the loss reaches"
    if len(frames) > len(shown):  # a grid larger than the panels must not pass for all of them
        heading += f" (the first {len(shown)} of {len(frames)} runs)"
    fig.suptitle(heading)
    _save(fig, path)
    return fig


def plot_weightnorm(frames: Sequence[Any], *, path: Path, title: str = "") -> Figure:
    """‖v‖ and g/‖v‖ against the step: one colour per learning rate, one line style per batch size."""
    fig = new_figure((11, 4.5))
    v_ax, rate_ax = fig.subplots(1, 2, sharex=True)
    parameters = [frame.attrs["header"]["parameters"] for frame in frames]
    rates = sorted({p["lr"] for p in parameters})
    batches = sorted({p["batch_size"] for p in parameters})
    colours = dict(zip(rates, _colours(len(rates)), strict=True))
    for frame, p, label in zip(frames, parameters, run_labels(frames), strict=True):
        style = {"color": colours[p["lr"]], "linestyle": _LINESTYLES[batches.index(p["batch_size"]) % 4]}
        steps, v_norm, g_over_v = list(frame["step"]), list(frame["wn_v_norm"]), list(frame["wn_g_over_v"])
        initial = frame.attrs["header"].get("initial")
        if initial:  # step 0, the network before any update: each record is taken after its step's update
            steps, v_norm, g_over_v = [0, *steps], [initial["wn_v_norm"], *v_norm], [initial["wn_g_over_v"], *g_over_v]
        v_ax.plot(steps, v_norm, label=label, **style)
        rate_ax.plot(steps, g_over_v, **style)
    v_ax.set(xlabel="training step", ylabel="‖v‖ (RMS over the rows of V)", title="‖v‖ grows")
    rate_ax.set(xlabel="training step", ylabel="g/‖v‖ (mean over rows)", title="… until the effective rate settles")
    fig.legend(*v_ax.get_legend_handles_labels(), loc="outside lower center", ncols=min(len(frames), 4), fontsize=8)
    for ax in (v_ax, rate_ax):
        _log_scale_if_wide(ax)
        ax.grid(alpha=0.3, which="both")
    fig.suptitle(title or "weight normalisation: self-stabilisation of the effective learning rate")
    _save(fig, path)
    return fig


def write_training_figures(frames: Sequence[Any], directory: str | os.PathLike[str], *, title: str = "") -> list[Path]:
    """Write training.png, state_gradients.png and, when a run used weight normalisation, weightnorm.png (else remove
    a weightnorm.png that an earlier call left in ``directory``).

    Args:
        frames: training logs (:func:`rnnstab.load_training_log` or :meth:`rnnstab.TrainingRun.frame`), at least one;
            the state-gradient heatmaps show the first six.
        directory: where to write (created if needed).
        title: the figures' title.

    Returns:
        The paths written.

    Raises:
        ArgumentTypeError: ``frames`` is not a list of training logs, or ``directory`` not a path.
        InvalidArgumentError: no frames, or ``directory`` cannot be created.

    Example:
        >>> import tempfile, rnnstab
        >>> run = rnnstab.train("adding", length=6, hidden=4, steps=3, param="weight_norm")
        >>> [p.name for p in write_training_figures([run.frame()], tempfile.mkdtemp())]
        ['training.png', 'state_gradients.png', 'weightnorm.png']
    """
    if isinstance(frames, (str, bytes)) or not isinstance(frames, Sequence):
        hint = ": pass a list, [frame]" if hasattr(frames, "attrs") else ""
        raise ArgumentTypeError(f"frames must be a list of training logs, got {type(frames).__name__}{hint}")
    if not frames:
        raise InvalidArgumentError("write_training_figures needs at least one training log")
    for frame in frames:
        if "header" not in getattr(frame, "attrs", {}):
            raise ArgumentTypeError(
                "frames must be training logs, from rnnstab.load_training_log or TrainingRun.frame(), got "
                + type(frame).__name__
            )
    out = output_dir(_checks.path("directory", directory), name="directory")
    curves, heatmaps, weightnorm = (out / name for name in FIGURES)
    plot_training_curves(frames, path=curves, title=title)
    plot_state_gradients(frames, path=heatmaps, title=title)
    normalised = [f for f in frames if f.attrs["header"]["parameters"]["param"] == "weight_norm"]
    if normalised:
        plot_weightnorm(normalised, path=weightnorm, title=title)
        return [curves, heatmaps, weightnorm]
    # one left by an earlier call into this directory would pass for a figure of these runs
    weightnorm.unlink(missing_ok=True)
    return [curves, heatmaps]


def _log_state_gradients(frame: Any) -> np.ndarray:
    """(T, steps) ln ‖∂ℓ/∂g_t‖: -inf where the norm is exactly 0, NaN where it is Inf or NaN (a log writes both as
    null)."""
    values = np.array(frame["state_grad_norms"].tolist(), dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log(values).T
    return np.where(np.isposinf(logs), np.nan, logs)


def _with_initial(monitored: Any, header: dict[str, Any]) -> Any:
    """The monitored rows with step 0, the network before the first update, in front, where the log's header holds it
    (:attr:`rnnstab.TrainingRun.initial`)."""
    import pandas as pd

    initial = header.get("initial") or {}
    if initial.get("spectral_norm_W") is None:
        return monitored
    row = {"step": 0, **{key: initial.get(key) for key in _MONITORED[1:]}}
    return pd.concat([pd.DataFrame([row]).astype(monitored.dtypes.to_dict()), monitored], ignore_index=True)


def _log_scale_if_wide(ax: Any) -> None:
    """A log y axis where the data span a decade or more, so that a diverging run (‖W‖₂ ~ 10⁴, a loss of 10³) does
    not flatten the others onto the axis; a linear one otherwise, where a log axis would have no decade to label and
    write its ticks as 1.0015×10⁰."""
    low, high = ax.dataLim.intervaly
    if low > 0 and high >= 10 * low:
        ax.set_yscale("log")
        # plain numbers (0.3, 2, 1e+04): over a decade or two matplotlib also labels minor ticks, as 3×10⁻¹
        ax.yaxis.set_major_formatter(_plain_log_formatter())
        ax.yaxis.set_minor_formatter(_plain_log_formatter(labelOnlyBase=False))


def _plain_log_formatter(**options: Any) -> Any:
    """matplotlib's LogFormatter — the same choice of which ticks to label — writing each label as ``f"{x:g}"``."""
    from matplotlib.ticker import LogFormatter

    class Plain(LogFormatter):
        def _num_to_string(self, x: float, vmin: float, vmax: float) -> str:
            return f"{x:g}"

    return Plain(**options)


def _colours(count: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["viridis" if count > 10 else "tab10"]
    return [cmap(i / max(count - 1, 1)) if count > 10 else cmap(i) for i in range(count)]


def _save(fig: Figure, path: Path) -> None:
    atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=100))
