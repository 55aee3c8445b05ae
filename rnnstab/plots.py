"""Figures (matplotlib's object API with the Agg canvas: no display, no global pyplot state)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from rnnstab._io import atomic_write
from rnnstab.jacobian import JacobianTrace
from rnnstab.lyapunov import LyapunovSpectrum, SingularValueSpectrum

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def new_figure(figsize: tuple[float, float]) -> Figure:
    """A Figure with constrained layout on the Agg canvas. matplotlib is imported here, on first use, so that
    ``import rnnstab`` and ``rnnstab --help`` do not pay the 0.7 s it takes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def integer_ticks(axis: Any) -> None:
    """Ticks at whole steps, spaced 1, 2 or 5 × a power of ten (MaxNLocator's default steps gave 0, 15, 30, …)."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10], min_n_ticks=1))


def plot_trace(trace: JacobianTrace, *, delta: float, path: Path, title: str = "") -> Figure:
    """Write a PNG: log‖J_t‖₂ and log‖J_t‖_F against t with the t·log δ bound (top), and the excess over the
    bound log‖J_t‖₂ − t·log δ, which must stay ≤ 0 (bottom).

    Each trace of the batch is a thin line; the median over the batch (the mean of the two middle values for an even
    batch, as in ``rnnstab trace``'s summary) is drawn bold, with markers when there are few steps. The Frobenius
    median is dashed over the spectral one, so both show where they coincide (n = 1, or J_t of rank one). A trace
    whose Jacobian becomes exactly 0 (log = −∞, which no axis can show) gets a ▼ on each panel's floor at the step
    it does. Returns the Figure.
    """
    steps = torch.arange(1, trace.steps + 1)
    marker = "o" if trace.steps <= 30 else None  # a line of one step draws nothing
    bound = steps * math.log(delta)
    fig = new_figure((8, 7))
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(2, 1))
    # (label, curve, colour, style, bold width, marker size, layer): the spectral curve below, the Frobenius one
    # dashed and thinner on top, so that both show where they coincide
    curves = [
        ("‖J_t‖₂ (spectral)", trace.log_spectral, "tab:blue", "-", 2.6, 6.0, 2.0),
        ("‖J_t‖_F (Frobenius)", trace.log_frobenius, "tab:orange", (0, (4, 3)), 1.6, 3.5, 2.2),
    ]
    for label, curve, colour, style, width, size, layer in curves:
        if curve is None:
            continue
        for row in curve:
            top.plot(steps, row, color=colour, alpha=0.2, linewidth=0.6, linestyle=style)
        median = _median(curve)
        # a curve that is −∞ throughout draws nothing: the legend must not name it (the ▼ entry says why)
        shown = f"log {label}" if np.isfinite(median).any() else "_"
        top.plot(
            steps,
            median,
            color=colour,
            linewidth=width,
            linestyle=style,
            marker=marker,
            markersize=size,
            label=shown,
            zorder=layer,
        )
    top.plot(steps, bound, "k:", linewidth=2, marker=marker, label=f"bound t·log δ  (δ = {delta:.4g})")
    top.axhline(0.0, color="grey", linewidth=0.6)
    top.set_ylabel("log ‖∂g_t/∂g_0‖  (natural log)")
    top.set_title(title or "Jacobian norms against the δ^t bound")
    top.grid(alpha=0.3)
    if trace.log_spectral is not None:
        excess = trace.log_spectral - bound
        for row in excess:
            bottom.plot(steps, row, color="tab:blue", alpha=0.2, linewidth=0.6)
        bottom.plot(steps, _median(excess), color="tab:blue", linewidth=2, marker=marker)
    bottom.axhline(0.0, color="k", linestyle=":", linewidth=2)
    dead = zero_jacobian_steps(trace)
    if dead:
        for ax in (top, bottom):
            mark_on_the_floor(ax, [([step for step in dead if step is not None], "tab:blue")])
        first = min(step for step in dead if step is not None)
        top.plot([], [], "v", color="tab:blue", label=f"J_t = 0 exactly from here (log = −∞), first at t = {first}")
    # below the panels, as in the sweep figures, not in them: no place inside is sure to be free of the curves and
    # of the ▼ on the floor
    fig.legend(
        handles=top.get_legend_handles_labels()[0],
        loc="outside lower center",
        ncols=2,
        fontsize=9,
        frameon=False,
        title="median over the batch; thin: each input",
        title_fontsize=8,
    )
    integer_ticks(bottom.xaxis)
    if marker:
        bottom.set_xlim(0.5, trace.steps + 0.5)
    bottom.set_xlabel("t (steps)")
    bottom.set_ylabel("log‖J_t‖₂ − t·log δ\n(≤ 0: bound holds)")
    bottom.grid(alpha=0.3)
    atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=110))
    return fig


def zero_jacobian_steps(trace: JacobianTrace) -> list[int | None]:
    """Per trace of the batch, the first step t at which J_t = ∂g_t/∂g_0 is exactly 0 (log-norm −∞; every later
    J_t is 0 too, being D W J_{t−1}), or None where it never is; an empty list if no trace's J_t ever is 0."""
    curve = trace.log_spectral if trace.log_spectral is not None else trace.log_frobenius
    if curve is None:
        return []
    zero = torch.isneginf(curve)
    if not bool(zero.any()):
        return []
    first = zero.to(torch.int8).argmax(dim=1)  # the first True of each row
    return [int(k) + 1 if bool(z.any()) else None for k, z in zip(first, zero, strict=True)]


def mark_on_the_floor(ax: Any, marks: Sequence[tuple[Sequence[int], Any]]) -> None:
    """A ▼ at each of the steps of every (steps, colour) pair, on the panel's floor below every finite value:
    matplotlib drops −∞ points (a Jacobian that is exactly 0) silently."""
    low, high = ax.get_ylim()
    margin = 0.05 * (high - low)
    floor = low - margin
    for steps, colour in marks:
        ax.plot(steps, [floor] * len(steps), "v", color=colour, markersize=7, linestyle="", zorder=4)
    ax.set_ylim(floor - margin, high)


def _median(curves: torch.Tensor) -> np.ndarray:
    """The median over the batch at each step: torch's ``median`` of an even batch is the lower middle value, which
    for a batch of two is the lower trace."""
    return np.median(curves.numpy(), axis=0)


# Sweep figures. Each takes a small tidy pandas DataFrame whose columns are documented below (the report builds
# them from ``load_sweep``), writes a PNG atomically, and returns the Figure so that callers can inspect it.

_NATURAL_LOG = "natural log"


def plot_sweep_norms(curves: Any, *, path: Path, title: str = "") -> Figure:
    """log‖J_t‖₂ against t for every δ of a sweep, with the bound lines t·log δ; one panel per ``panel`` label.

    Args:
        curves: a DataFrame with columns ``panel`` (str), ``delta`` (float), ``seed`` (int) and ``curve`` (a 1-D
            array: log‖J_t‖₂ for t = 1..T, averaged over the input sequences of that seed's network).
        path: where to write the PNG.
        title: the figure title.

    For each δ the line is the mean over seeds, the band spans min–max over seeds, and the dashed line of the
    same colour is the bound t·log δ. Colour encodes δ (blue below the threshold δ = 1, red above).
    """
    from matplotlib import cm, colors
    from matplotlib.lines import Line2D

    panels = list(dict.fromkeys(curves["panel"]))
    columns = min(len(panels), 3)
    rows = math.ceil(len(panels) / columns)
    fig = new_figure((5.2 * columns + 1.2, 4.0 * rows + 0.8))
    axes = fig.subplots(rows, columns, squeeze=False, sharex=False, sharey=False)
    deltas = sorted(set(curves["delta"]))
    low, high = min(deltas), max(deltas)
    norm = colors.TwoSlopeNorm(vmin=min(low, 0.999), vcenter=1.0, vmax=max(high, 1.001))
    cmap = _threshold_colormap()
    for ax, panel in zip(axes.flat, panels, strict=False):
        sub = curves[curves["panel"] == panel]
        for delta, group in sub.groupby("delta", sort=True):
            stack = np.stack([np.asarray(c, dtype=float) for c in group["curve"]])
            steps = np.arange(1, stack.shape[1] + 1)
            colour = cmap(norm(delta))
            with np.errstate(invalid="ignore"):
                ax.fill_between(steps, stack.min(axis=0), stack.max(axis=0), color=colour, alpha=0.25, linewidth=0)
                ax.plot(steps, stack.mean(axis=0), color=colour, linewidth=1.4)
            ax.plot(steps, steps * math.log(delta), color=colour, linewidth=0.9, linestyle=(0, (4, 3)))
        ax.axhline(0.0, color="black", linewidth=0.6)
        ax.set_title(str(panel), fontsize=10)
        ax.set_xlabel("t (steps)")
        ax.set_ylabel(f"log‖J_t‖₂  ({_NATURAL_LOG})")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    handles = [
        Line2D([], [], color="0.3", linewidth=1.4, label="log‖J_t‖₂: mean over seeds (band: min–max)"),
        Line2D([], [], color="0.3", linewidth=0.9, linestyle=(0, (4, 3)), label="bound t·log δ"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=9, frameon=False)
    bar = fig.colorbar(cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes, shrink=0.9, pad=0.02)
    bar.set_label("δ = γ‖W‖₂  (δ < 1: vanishing guaranteed)")
    bar.ax.axhline(1.0, color="black", linewidth=1.2)
    fig.suptitle(title or "Jacobian norms against the δ^t bound", fontsize=11)
    atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=110))
    return fig


def plot_phase_diagram(table: Any, *, path: Path, y_label: str, title: str = "") -> Figure:
    """The empirical rate over the grid: δ across, another grid axis up, one panel per ``panel`` label.

    Args:
        table: a DataFrame with columns ``panel`` (str), ``delta`` (float), ``y`` (the row's label on the vertical
            axis, str), ``y_order`` (sort key of ``y``), ``rate_per_step`` (mean over seeds, nats/step) and
            ``regime`` (the verdict; cells not vanishing are marked); optionally ``delta_critical`` (δ at the
            mean-field transition χ = 1 for the row's setting, NaN where there is no prediction).
        path: where to write the PNG.
        y_label: what the vertical axis shows.
        title: the figure title.

    Colour is the rate (blue: gradients shrink, red: they grow; white: rate 0), the dashed line is the threshold
    δ = 1, and markers flag cells whose verdict is marginal (○), exploding (▲) or mixed over seeds (◇), and cells
    whose Jacobian became exactly zero (×, rate −∞, drawn in the darkest blue). The solid green line is the
    mean-field χ = 1 transition, where the theory predicts the rate crosses 0: a segment across each row, labelled
    with its δ; when it lies beyond the δ range of a panel, an arrow at that edge says where.
    """
    from matplotlib import colors
    from matplotlib.lines import Line2D

    panels = list(dict.fromkeys(table["panel"]))
    levels = list(dict.fromkeys(table.sort_values("y_order")["y"]))
    columns = min(len(panels), 2)
    rows = math.ceil(len(panels) / columns)
    height = max(2.6, 1.6 + 0.45 * len(levels))
    fig = new_figure((6.5 * columns + 1.2, height * rows + 0.9))
    axes = fig.subplots(rows, columns, squeeze=False)
    rates = np.asarray(table["rate_per_step"], dtype=float)
    finite = rates[np.isfinite(rates)]
    vmax = float(np.abs(finite).max()) if finite.size else 1.0
    norm = colors.Normalize(vmin=-vmax, vmax=vmax)
    cmap = "RdBu_r"
    markers = {"marginal": "o", "exploding": "^", "mixed": "D", "J_t = 0 (rate −∞)": "x"}
    present = {"mixed" if str(r).startswith("mixed") else str(r) for r in table["regime"]}
    if bool((table["rate_per_step"] == -math.inf).any()):
        present.add("J_t = 0 (rate −∞)")
    mesh = None
    for ax, panel in zip(axes.flat, panels, strict=False):
        sub = table[table["panel"] == panel]
        deltas = sorted(set(sub["delta"]))
        grid = np.full((len(levels), len(deltas)), np.nan)
        for _, row in sub.iterrows():
            # a dead Jacobian (J_t = 0, rate −∞) gets the darkest colour and its own marker, not a blank cell
            rate = max(float(row["rate_per_step"]), -vmax)
            grid[levels.index(row["y"]), deltas.index(row["delta"])] = rate
        edges = _cell_edges(deltas)
        mesh = ax.pcolormesh(
            edges, np.arange(len(levels) + 1) - 0.5, np.ma.masked_invalid(grid), cmap=cmap, norm=norm, shading="flat"
        )
        for _, row in sub.iterrows():
            kind = "mixed" if str(row["regime"]).startswith("mixed") else str(row["regime"])
            if row["rate_per_step"] == -math.inf:
                kind = "J_t = 0 (rate −∞)"
            if kind in markers:
                colour = "white" if markers[kind] == "x" else "black"  # × sits on the darkest cell
                y = levels.index(row["y"])
                ax.plot(row["delta"], y, markers[kind], color=colour, markersize=6, fillstyle="none", zorder=4)
        ax.axvline(1.0, color="black", linestyle="--", linewidth=1.5, zorder=3.5)
        if "delta_critical" in sub and _draw_critical(ax, sub, levels, edges):
            present.add("chi")
        ax.set_yticks(range(len(levels)), levels)
        ax.set_xlim(edges[0], edges[-1])
        ax.set_xlabel("δ = γ‖W‖₂")
        ax.set_ylabel(y_label)
        ax.set_title(str(panel), fontsize=10)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    if mesh is not None:
        bar = fig.colorbar(mesh, ax=axes, shrink=0.95, pad=0.02)
        bar.set_label(f"empirical rate λ\n(nats/step, {_NATURAL_LOG})")
    handles = [
        Line2D([], [], color="black", linestyle="--", label="threshold δ = 1"),
        *([Line2D([], [], color=_CHAOS, linewidth=_CHAOS_WIDTH, label="mean-field χ = 1")] if "chi" in present else []),
        *(
            Line2D([], [], marker=m, color="black", linestyle="", fillstyle="none", label=label)
            for label, m in markers.items()
            if label in present
        ),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=9, frameon=False)
    fig.suptitle(title or "Phase diagram of the empirical rate (late-half slope of log‖J_t‖₂)", fontsize=11)
    atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=110))
    return fig


def plot_rate_vs_log_delta(table: Any, *, path: Path, title: str = "") -> Figure:
    """Empirical rate against log δ, one series per ``series`` label, with the diagonal rate = log δ.

    Args:
        table: a DataFrame with columns ``series`` (str), ``log_delta`` (float), ``rate_per_step`` (mean over seeds)
            and ``rate_per_step_std`` (spread over seeds, drawn as error bars; NaN for a single seed).
        path: where to write the PNG.
        title: the figure title.

    The bound ‖J_t‖₂ ≤ δ^t caps the asymptotic rate at log δ: points on the diagonal mean the bound is tight,
    points far below it that the bound is loose (saturation, or ρ(W) < ‖W‖₂). Each series has its own colour and
    the legend stands right of the axes; rates of −∞ (J_t = 0) cannot be drawn, and the legend names the series and
    δ they were left out at.
    """
    fig = new_figure((10.5, 6.0))
    ax = fig.subplots()
    names = list(dict.fromkeys(table["series"]))
    colours = _distinct_colours(len(names))
    rates = np.asarray(table["rate_per_step"], dtype=float)
    finite = table[np.isfinite(rates)]
    handles: list[Any] = []
    for series, group in finite.groupby("series", sort=False):
        index = names.index(series)
        group = group.sort_values("log_delta")
        handles.append(
            ax.errorbar(
                group["log_delta"],
                group["rate_per_step"],
                yerr=np.nan_to_num(np.asarray(group["rate_per_step_std"], dtype=float)),
                color=colours[index],
                marker="os^Dv<>p"[index % 8],
                markersize=4,
                linewidth=1,
                capsize=2,
                label=str(series),
            )
        )
    # The diagonal spans the log δ of the grid only: rates far below it must not stretch the x axis into empty space.
    x = np.asarray(table["log_delta"], dtype=float)
    pad = 0.05 * (float(x.max() - x.min()) or 1.0)
    ends = [float(x.min()) - pad, float(x.max()) + pad]
    handles += ax.plot(ends, ends, "k--", linewidth=1.2, label="rate = log δ (bound tight)")
    # a rate of −∞ (J_t = 0) has no place on the axis: without a word, those points would simply be missing
    for series, group in table[np.isneginf(rates)].groupby("series", sort=False):
        every = len(group) == int((table["series"] == series).sum())
        where = "every δ" if every else "δ = " + ", ".join(f"{math.exp(v):.3g}" for v in sorted(group["log_delta"]))
        label = f"{series}: rate −∞ (J_t = 0)\nat {where}, not drawn"
        handles += ax.plot([], [], linestyle="", marker="x", color=colours[names.index(series)], label=label)
    ax.set_xlim(*ends)
    ax.axhline(0.0, color="grey", linewidth=0.7)
    ax.axvline(0.0, color="grey", linewidth=0.7)
    ax.set_xlabel(f"log δ  ({_NATURAL_LOG}; the bound's slope per step)")
    ax.set_ylabel(f"empirical rate λ  (nats/step, {_NATURAL_LOG})")
    ax.set_title(title or "Measured rate against the bound's slope (error bars: spread over seeds)", fontsize=11)
    ax.grid(alpha=0.3)
    # outside the axes: inside, a legend of many series covered the points it names
    ax.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        borderaxespad=0,
        fontsize=9,
        ncols=1 + (len(handles) - 1) // 24,  # one column holds about 24 entries in the figure's height
    )
    atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=110))
    return fig


def _distinct_colours(count: int) -> list[Any]:
    """One colour per series: tab10 repeats after 10 (series then told apart by marker alone), tab20 after 20, so
    beyond that the colours are spread over a continuous map."""
    from matplotlib import colormaps

    if count <= 10:
        return [colormaps["tab10"](i) for i in range(count)]
    if count <= 20:
        return [colormaps["tab20"](i) for i in range(count)]
    return [colormaps["turbo"](v) for v in np.linspace(0.05, 0.95, count)]


_CHAOS = "#1b7837"
_CHAOS_WIDTH = 4.0  # wider than the threshold line, which is drawn over it: where both are δ = 1, both show
_LABEL_RISE = 0.3  # rows: the χ = 1 labels sit this far above a row's centre, where its cell markers are
_LABEL_BOX = {"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.8}


def _draw_critical(ax: Any, sub: Any, levels: list[str], edges: np.ndarray) -> bool:
    """Draw the χ = 1 line through the rows of one panel, labelled with its δ (an arrow at the edge for rows beyond
    the δ range).

    Each row's segment spans the row's full height and joins the next row's into a staircase: a tick at the row's
    centre was lost under the threshold line and the cell markers, above all where χ = 1 falls at δ = 1.

    Returns whether anything was drawn.
    """
    critical = sub.groupby("y", sort=False)["delta_critical"].first()
    points = sorted((levels.index(y), float(d)) for y, d in critical.items() if np.isfinite(d))
    xs: list[float] = []
    ys: list[float] = []
    for y, d in points:
        if not edges[0] <= d <= edges[-1]:
            continue
        if ys and ys[-1] != y - 0.5:  # a row beyond the range (or without a prediction) lies between: break the line
            xs.append(math.nan)
            ys.append(math.nan)
        xs += [d, d]
        ys += [y - 0.5, y + 0.5]
        # the label goes towards the wider side of the panel, off the line, so it also reads where the line is δ = 1
        right = d > (edges[0] + edges[-1]) / 2
        ax.annotate(
            f"χ = 1 at δ ≈ {d:.3g}",
            xy=(d, y + _LABEL_RISE),
            xytext=(-6 if right else 6, 0),
            textcoords="offset points",
            ha="right" if right else "left",
            va="center",
            fontsize=8,
            color=_CHAOS,
            fontweight="bold",
            bbox=_LABEL_BOX,
            zorder=5,
        )
    if xs:
        ax.plot(xs, ys, color=_CHAOS, linewidth=_CHAOS_WIDTH, solid_capstyle="butt", zorder=3)
    for y, d in points:
        if not edges[0] <= d <= edges[-1]:
            right = d > edges[-1]
            # in the row's upper part, as the label of a segment is: cell markers sit at the row's centre, and a
            # label there covered the marker of the edge cell (a "mixed" ◇ at the largest δ)
            ax.annotate(
                f"χ = 1 at δ ≈ {d:.3g} {'→' if right else '←'}",
                xy=(edges[-1] if right else edges[0], y + _LABEL_RISE),
                xytext=(-2 if right else 2, 0),
                textcoords="offset points",
                ha="right" if right else "left",
                va="center",
                fontsize=8,
                color=_CHAOS,
                fontweight="bold",
                bbox=_LABEL_BOX,
                zorder=5,
            )
    return bool(points)


def _cell_edges(values: list[float]) -> np.ndarray:
    """Edges of cells centred on sorted ``values`` (midpoints inside, half a spacing outside)."""
    v = np.asarray(values, dtype=float)
    if v.size == 1:  # relative beyond 1: at δ = 1e300, ±0.05 left both edges equal
        half = 0.05 * max(abs(float(v[0])), 1.0)
        return np.array([v[0] - half, v[0] + half])
    mid = (v[1:] + v[:-1]) / 2
    return np.concatenate([[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]])


def _threshold_colormap() -> Any:
    """Blue (δ < 1) to dark grey (δ = 1) to red (δ > 1): every line stays visible on white."""
    from matplotlib.colors import LinearSegmentedColormap

    return LinearSegmentedColormap.from_list("threshold", ["#08306b", "#4292c6", "#404040", "#ef3b2c", "#67000d"])


def plot_lyapunov_spectrum(
    result: LyapunovSpectrum,
    *,
    path: Path,
    log_delta: float | None = None,
    mean_field_max: float | None = None,
    title: str = "",
) -> None:
    """Write a PNG of the exponents λ_i against i/n: each trajectory thin, the batch mean bold with a ±2 standard
    error band (block means), the bound log δ and the mean-field λ_max as horizontal lines."""
    n, k = result.hidden_size, result.num_exponents
    position = torch.arange(1, k + 1, dtype=torch.float64) / n
    mean, error = result.batch_mean()
    error = torch.nan_to_num(error, nan=0.0)
    fig = new_figure((8, 5))
    ax = fig.subplots()
    marker = "o" if k <= 64 else None
    if result.batch_size > 1:
        for row in result.exponents:
            ax.plot(position, row, color="tab:blue", alpha=0.25, linewidth=0.6)
    ax.fill_between(position, mean - 2 * error, mean + 2 * error, color="tab:blue", alpha=0.25, linewidth=0)
    label = "λ_i, mean over the batch (band: ±2 s.e.)" if result.batch_size > 1 else "λ_i (band: ±2 s.e.)"
    ax.plot(position, mean, color="tab:blue", linewidth=2, marker=marker, markersize=3, label=label)
    if log_delta is not None:
        ax.axhline(
            log_delta, color="k", linestyle=":", linewidth=2, label=f"bound log δ = {log_delta:.4g}  (λ₁ ≤ log δ)"
        )
    if mean_field_max is not None and math.isfinite(mean_field_max):
        ax.axhline(
            mean_field_max,
            color="tab:red",
            linestyle="--",
            linewidth=1.5,
            label=f"mean-field ½ log χ = {mean_field_max:.4g}",
        )
    ax.axhline(0.0, color="grey", linewidth=0.6)
    xlabel = f"i / n   (top {k} of n = {n} exponents)" if k < n else "i / n"
    dead = int(torch.isneginf(mean).sum())
    if dead:  # −∞ has no place on the axis: without a word, those exponents would simply be missing
        xlabel += f"\n{dead} of {k} exponents are −∞ (dead directions: J_t maps them to exactly 0), not drawn"
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Lyapunov exponent λ_i  (nats per step, natural log)")
    ax.set_xlim(0, position[-1].item() * 1.02)
    ax.set_title(title or "Lyapunov spectrum")
    ax.legend(loc="best", fontsize=9)
    ax.grid(alpha=0.3)
    atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=110))


def plot_lyapunov_convergence(
    result: LyapunovSpectrum, *, path: Path, mean_field_max: float | None = None, shown: int = 5, title: str = ""
) -> None:
    """Write a PNG of the running estimates against t: the top ``shown`` exponents (top panel, with the mean-field
    λ_max) and, when more were computed, the last one (bottom panel, its own scale); batch mean bold, each
    trajectory thin, with markers when there are few points (a history of one point is a dot per exponent)."""
    steps = torch.tensor(result.history_steps, dtype=torch.float64)
    marker = "o" if len(steps) <= 30 else None  # a line of one point draws nothing
    k = result.num_exponents
    top = list(range(min(shown, k)))
    panels = [top] if k <= shown else [top, [k - 1]]
    fig = new_figure((8, 5 if len(panels) == 1 else 6.5))
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False, height_ratios=(2, 1)[: len(panels)])[:, 0]
    for ax, indices in zip(axes, panels, strict=True):
        for i in indices:
            colour = f"C{i % 10}" if i < shown else "C5"
            curves = result.history[:, :, i]
            if result.batch_size > 1:
                for row in curves:
                    ax.plot(steps, row, color=colour, alpha=0.2, linewidth=0.6, marker=marker, markersize=2)
            ax.plot(steps, curves.mean(dim=0), color=colour, linewidth=2, marker=marker, label=f"λ_{i + 1}")
        ax.set_ylabel("running estimate\n(nats per step, natural log)")
        ax.grid(alpha=0.3)
    if mean_field_max is not None and math.isfinite(mean_field_max):
        axes[0].axhline(mean_field_max, color="tab:red", linestyle="--", linewidth=1.5, label="mean-field ½ log χ")
    for ax in axes:
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=9, title="batch mean", title_fontsize=8)
    integer_ticks(axes[-1].xaxis)
    if len(set(result.history_steps)) == 1:  # one point got an axis of ±4% around it, ticked at fractions of a step
        axes[-1].set_xlim(result.history_steps[0] - 0.5, result.history_steps[0] + 0.5)
    warmup = {0: "no warm-up: every step is averaged", 1: "the first step is warm-up and not averaged"}.get(
        result.warmup, f"the first {result.warmup} are warm-up and not averaged"
    )
    axes[-1].set_xlabel(f"t (steps; {warmup})")
    axes[0].set_title(title or "Convergence of the Lyapunov exponents")
    atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=110))


def plot_singular_values(spectrum: SingularValueSpectrum, *, path: Path, title: str = "") -> Figure:
    """Write a PNG: one histogram of log σ_i(J_t) per chosen step t (pooled over the batch), with log σ = 0
    (dynamical isometry). Values below their own trajectory's rounding floor log(n·ε·σ₁) are noise: they are
    stacked in grey, as :meth:`SingularValueSpectrum.isometry_summary` leaves them out, and the floors are marked
    (a line, or a band from the lowest to the highest where the trajectories' floors differ)."""
    count = len(spectrum.steps)
    fig = new_figure((8, 2.2 + 1.8 * count))
    axes = fig.subplots(count, 1, squeeze=False)[:, 0]
    floors = spectrum.log_rounding_floor()
    for j, (ax, t) in enumerate(zip(axes, spectrum.steps, strict=True)):
        logs = spectrum.log_singular_values[:, j]
        finite = torch.isfinite(logs)
        values = logs[finite]
        ax.axvline(0.0, color="k", linestyle=":", linewidth=1.5, label="σ = 1 (isometry)")
        ax.set_ylabel("count")
        ax.grid(alpha=0.3)
        if values.numel() == 0:  # J_t = 0 in every trajectory (every relu unit off at some step): nothing to bin
            ax.text(0.5, 0.5, f"t = {t}: every σ_i = 0 (J_t is exactly 0)", transform=ax.transAxes, ha="center")
            ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
            continue
        low, high = float(values.min()), float(values.max())
        # σ_i equal up to rounding (orthogonal W, identity σ): numpy cannot cut a range of a few ulps into 60 bins,
        # and any finer binning would split one value across bins by its rounding
        equal = high - low < 1e-9 * max(1.0, abs(low))
        bins, span = (1, (low - 0.02, high + 0.02)) if equal else (60, (low, high))
        noise = finite & (logs < floors[:, j : j + 1])
        groups = [
            (logs[finite & ~noise], "tab:blue", f"log σ_i(J_t), t = {t}"),
            (logs[noise], "0.55", "below its trajectory's\nrounding floor: noise"),
        ]
        shown = [(v.numpy(), colour, label) for v, colour, label in groups if v.numel()]
        ax.hist(
            [v for v, _, _ in shown],
            bins=bins,
            range=span,
            stacked=True,
            color=[c for _, c, _ in shown],
            alpha=0.85,
            label=[label for _, _, label in shown],
        )
        lowest, highest = float(floors[:, j].min()), float(floors[:, j].max())
        if highest - lowest > 1e-9 * max(1.0, abs(highest)):
            ax.axvspan(lowest, highest, color="tab:red", alpha=0.12, linewidth=0, label="rounding floors log(nεσ₁)")
        else:
            ax.axvline(highest, color="tab:red", linestyle="--", linewidth=1.2, label="rounding floor log(nεσ₁)")
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    axes[-1].set_xlabel("log σ_i(J_t)  (natural log)")
    axes[0].set_title(title or "Singular values of J_t = ∂g_t/∂g_0")
    atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=110))
    return fig
