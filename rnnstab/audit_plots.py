"""Figures of an audit (matplotlib's object API with the Agg canvas): eigenvalues in the complex plane, singular
values against the threshold 1/γ, and log‖J_t‖₂ against t. Each writes a PNG atomically and returns the Figure."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from rnnstab._io import atomic_write
from rnnstab.audit import AuditRow, format_against_one
from rnnstab.plots import new_figure

_COLUMNS = 4


def plot_eigenvalues(rows: Sequence[AuditRow], *, path: Path, title: str = "") -> Figure:
    """One panel per subject: the eigenvalues of every sample in the complex plane, with the unit circle (|λ| = 1)
    and the circle |λ| = 1/γ (eigenvalues inside it do not make the δ^t bound apply: that needs ‖W‖₂ ≤ 1/γ)."""
    fig, axes = _panels(len(rows))
    angle = np.linspace(0.0, 2.0 * math.pi, 361)
    for ax, row in zip(axes, rows, strict=False):
        inverse = 1.0 / row.gamma
        eig = row.eigenvalues.reshape(-1).numpy()
        unit, suffix = _axis_unit(max(float(np.abs(eig).max()), inverse, 1.0))
        eig = eig / unit
        # drawn above the circles: an orthogonal W's eigenvalues all lie on |λ| = 1 and would be hidden under it;
        # faint dots show the density of thousands, but a trained layer's few eigenvalues need solid, larger ones
        few = eig.size < 500
        ax.scatter(
            eig.real, eig.imag, s=16 if few else 4, alpha=1.0 if few else 0.5, color="tab:blue", linewidths=0, zorder=3
        )
        if inverse == 1.0:  # γ = 1: one circle, not a dashed one drawn over the other (which would show neither)
            ax.plot(np.cos(angle) / unit, np.sin(angle) / unit, "r--", linewidth=1.0, label="|λ| = 1 = 1/γ")
        else:
            ax.plot(np.cos(angle) / unit, np.sin(angle) / unit, color="black", linewidth=1.0, label="|λ| = 1")
            ax.plot(
                inverse * np.cos(angle) / unit,
                inverse * np.sin(angle) / unit,
                "r--",
                linewidth=1.0,
                label=f"|λ| = 1/γ = {inverse:.3g}",
            )
        reach = 1.08 * max(float(np.abs(eig).max()), inverse / unit, 1.0 / unit)
        ax.set_xlim(-reach, reach)
        ax.set_ylim(-reach, reach)
        ax.set_aspect("equal")
        ax.set_title(f"{row.name}\nρ(W) = {_stat(row.spectral_radius.mean)}, ‖W‖₂ = {_norm(row)}", fontsize=9)
        ax.set_xlabel("Re λ" + suffix)
        ax.set_ylabel("Im λ" + suffix)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper left", fontsize=7)
    return _finish(fig, path, title or "Eigenvalues of W (every sample)")


def plot_singular_values(rows: Sequence[AuditRow], *, path: Path, title: str = "") -> Figure:
    """One panel per subject: the singular values σ_i of every sample against i/n (descending), with the line
    1/γ — the δ^t bound applies when σ₁ = ‖W‖₂ lies below it."""
    fig, axes = _panels(len(rows))
    for ax, row in zip(axes, rows, strict=False):
        values = row.singular_values.numpy()
        unit, suffix = _axis_unit(max(float(values.max()), 1.0 / row.gamma))
        values = values / unit
        position = (np.arange(values.shape[1]) + 0.5) / values.shape[1]
        # a line through one point (n = 1) draws nothing, and a pale one (for overlapping samples) is hard to see
        # alone: markers for small n, full colour for a single sample
        marker = "o" if values.shape[1] <= 16 else None
        alpha = 0.3 if values.shape[0] > 1 else 1.0
        for sample in values:  # above the 1/γ line: σ_i = 1 = 1/γ (orthogonal W, tanh) would be hidden under it
            ax.plot(position, sample, color="tab:blue", alpha=alpha, linewidth=0.8, marker=marker, ms=4, zorder=3)
        ax.axhline(
            1.0 / row.gamma / unit, color="red", linestyle="--", linewidth=1.0, label=f"1/γ = {1.0 / row.gamma:.3g}"
        )
        ax.set_xlim(0.0, 1.0)
        ax.set_ylim(bottom=0.0, top=1.08 * max(float(values.max()), 1.0 / row.gamma / unit))
        ax.set_title(f"{row.name}\n‖W‖₂ = {_norm(row)}", fontsize=9)
        ax.set_xlabel("i/n")
        ax.set_ylabel("σ_i(W)" + suffix)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper right", fontsize=7)
    return _finish(fig, path, title or "Singular values of W against the threshold 1/γ")


_LOG_LIMIT = 1e300

#: Fifteen distinct colours, one per scheme of the catalogue: matplotlib's ten (tab10) and five darker hues it lacks
#: (black, navy, gold, teal, maroon). tab20 pairs each colour with a paler twin that reads as the same line.
_PALETTE = (
    *(f"C{k}" for k in range(10)),
    "black",
    "#1b2a80",
    "#c89b00",
    "#00695c",
    "#7a0a1f",
)
#: Cycled at a different period from the colours, so that two near colours also differ in dash; not ":", the
#: memory-horizon level.
_STYLES = ("-", "--", "-.")
#: Markers for a curve drawn on top of another it coincides with.
_MARKERS = ("o", "s", "^", "D", "v", "P", "X")
#: Curves closer than this fraction of the plotted range at every t are drawn on top of each other: about two line
#: widths on this figure's axes.
_COINCIDE = 5e-3


def plot_jacobian_curves(rows: Sequence[AuditRow], *, path: Path, horizon_drop: float, title: str = "") -> Figure:
    """log‖J_t‖₂ (natural log) against t, one line per subject (mean over trajectories, band ± one standard
    deviation), with the memory-horizon level log(horizon_drop).

    Each subject has its own colour and line style. A subject whose curve coincides with an earlier one's (within
    a line width: the same W drawn by two schemes) is drawn as markers on that line, and its legend entry says so.
    """
    fig = new_figure((10.5, 5.5))
    ax = fig.subplots()
    curves = []
    for row in rows:
        mean = row.log_norm_mean.numpy()
        # logs near float64's largest number (units saturated by a W of norm 1e308) cannot be drawn either:
        # matplotlib's transforms turn singular on such an axis
        vast = np.isfinite(mean) & (np.abs(mean) > _LOG_LIMIT)
        curves.append((np.where(vast, np.nan, mean), np.where(vast, np.nan, row.log_norm_spread.numpy()), vast))
    drawn = np.concatenate([mean[np.isfinite(mean)] for mean, _, _ in curves])
    tolerance = _COINCIDE * (float(np.ptp(drawn)) if drawn.size else 0.0)
    leaders: list[int] = []  # the subjects drawn as lines
    followers: dict[int, int] = {}  # leader → how many subjects drawn on its line so far
    for k, (row, (mean, spread, vast)) in enumerate(zip(rows, curves, strict=True)):
        steps = np.arange(1, mean.shape[0] + 1)
        colour = _PALETTE[k % len(_PALETTE)]
        label = row.name
        if np.isneginf(mean).any():  # log 0 cannot be drawn: the line just stops, so say why
            label += f" (some J_t = 0 from t = {int(np.argmax(np.isneginf(mean))) + 1})"
        if vast.any():
            label += f" (|log‖J_t‖₂| > {_LOG_LIMIT:g} from t = {int(np.argmax(vast)) + 1}, not drawn)"
        leader = next((j for j in leaders if _coincide(curves[j][0], mean, tolerance)), None)
        if leader is None:
            leaders.append(k)
            with np.errstate(invalid="ignore"):
                ax.fill_between(steps, mean - spread, mean + spread, color=colour, alpha=0.15, linewidth=0)
            # the style changes with k, and once more every len(_PALETTE) subjects: no two share colour and style
            style = _STYLES[(k + k // len(_PALETTE)) % len(_STYLES)]
            ax.plot(steps, mean, color=colour, linestyle=style, linewidth=1.4, label=label)
            continue
        # drawn as a line it would hide the one it lies on: markers on that line instead, staggered so that the
        # markers of several such subjects fall side by side, not on each other
        followers[leader] = order = followers.get(leader, 0) + 1
        every = max(mean.shape[0] // 8, 1)
        ax.plot(
            steps,
            mean,
            color=colour,
            linestyle="none",
            marker=_MARKERS[(order - 1) % len(_MARKERS)],
            markersize=5,
            markevery=(order * every // 4 % every, every),
            label=f"{label} (coincides with {rows[leader].name})",
        )
    ax.set_xlim(1, max(max(row.steps for row in rows), 2))  # an all-zero Jacobian leaves no point to fit the axis to
    ax.axhline(math.log(horizon_drop), color="black", linestyle=":", linewidth=1.2, label=f"log {horizon_drop:g}")
    ax.axhline(0.0, color="grey", linewidth=0.6)
    ax.set_xlabel("t (steps)")
    ax.set_ylabel("log‖J_t‖₂  (natural log)")
    ax.grid(alpha=0.3)
    # beside the axes, from their top down (constrained layout makes room): a figure legend at the figure's top ran
    # above the axes, into the title
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=8)
    return _finish(fig, path, title or "Gradient norms ‖∂g_t/∂g_0‖₂ along input-driven trajectories")


def _coincide(a: np.ndarray, b: np.ndarray, tolerance: float) -> bool:
    """Whether two curves would be drawn on top of each other: same length, the same points not drawn (−∞, NaN),
    and within ``tolerance`` at every drawn point."""
    if a.shape != b.shape:
        return False
    shown = np.isfinite(a)
    if not np.array_equal(shown, np.isfinite(b)) or not np.array_equal(np.isneginf(a), np.isneginf(b)):
        return False
    return bool(np.all(np.abs(a[shown] - b[shown]) <= tolerance))


def _panels(count: int) -> tuple[Figure, list[Axes]]:
    columns = min(count, _COLUMNS)
    rows = math.ceil(count / columns)
    fig = new_figure((3.4 * columns + 0.6, 3.4 * rows + 0.8))
    axes = list(fig.subplots(rows, columns, squeeze=False).flat)
    for ax in axes[count:]:
        ax.set_visible(False)
    return fig, axes[:count]


def _finish(fig: Figure, path: Path, title: str) -> Figure:
    fig.suptitle(title, fontsize=11)
    atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=100))
    return fig


def _axis_unit(largest: float) -> tuple[float, str]:
    """(u, label suffix) to plot values up to ``largest`` as multiples of u: matplotlib's tick locator overflows
    (a ValueError while saving) for axis spans beyond about 1e307, so values past 1e100 are drawn in units of a
    power of ten."""
    if largest <= 1e100:
        return 1.0, ""
    exponent = math.floor(math.log10(largest))
    return 10.0**exponent, f" (× 1e{exponent})"


def _stat(value: float) -> str:
    return f"{value:.3g}"


def _norm(row: AuditRow) -> str:
    """‖W‖₂ for a title: with γ = 1 its threshold is 1, and 3 digits would print ‖W‖₂ = 1.003 as the 1 of an
    orthogonal W."""
    return format_against_one(row.spectral_norm.mean) if row.gamma == 1 else _stat(row.spectral_norm.mean)
