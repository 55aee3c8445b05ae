"""Figures (matplotlib's object API with the Agg canvas: no display, no global pyplot state)."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rnnstab._io import atomic_write
from rnnstab.jacobian import JacobianTrace
from rnnstab.lyapunov import LyapunovSpectrum, SingularValueSpectrum


def plot_trace(trace: JacobianTrace, *, delta: float, path: Path, title: str = "") -> None:
    """Write a PNG: log‖J_t‖₂ and log‖J_t‖_F against t with the t·log δ bound (top), and the excess over the
    bound log‖J_t‖₂ − t·log δ, which must stay ≤ 0 (bottom).

    Each trace of the batch is a thin line; the median over the batch is drawn bold.
    """
    steps = torch.arange(1, trace.steps + 1)
    bound = steps * math.log(delta)
    fig = Figure(figsize=(8, 7), layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(2, 1))
    curves = [
        ("‖J_t‖_F (Frobenius)", trace.log_frobenius, "tab:orange", "--"),
        ("‖J_t‖₂ (spectral)", trace.log_spectral, "tab:blue", "-"),
    ]
    for label, curve, colour, style in curves:
        if curve is None:
            continue
        for row in curve:
            top.plot(steps, row, color=colour, alpha=0.2, linewidth=0.6, linestyle=style)
        top.plot(steps, curve.median(dim=0).values, color=colour, linewidth=2, linestyle=style, label=f"log {label}")
    top.plot(steps, bound, "k:", linewidth=2, label=f"bound t·log δ  (δ = {delta:.4g})")
    top.axhline(0.0, color="grey", linewidth=0.6)
    top.set_ylabel("log ‖∂g_t/∂g_0‖  (natural log)")
    top.set_title(title or "Jacobian norms against the δ^t bound")
    top.legend(loc="best", fontsize=9, title="median over the batch; thin: each input", title_fontsize=8)
    top.grid(alpha=0.3)
    if trace.log_spectral is not None:
        excess = trace.log_spectral - bound
        for row in excess:
            bottom.plot(steps, row, color="tab:blue", alpha=0.2, linewidth=0.6)
        bottom.plot(steps, excess.median(dim=0).values, color="tab:blue", linewidth=2)
    bottom.axhline(0.0, color="k", linestyle=":", linewidth=2)
    bottom.set_xlabel("t (steps)")
    bottom.set_ylabel("log‖J_t‖₂ − t·log δ\n(≤ 0: bound holds)")
    bottom.grid(alpha=0.3)
    atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=110))


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
    fig = Figure(figsize=(8, 5), layout="constrained")
    FigureCanvasAgg(fig)
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
    ax.set_xlabel(f"i / n   (top {k} of n = {n} exponents)" if k < n else "i / n")
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
    trajectory thin."""
    steps = torch.tensor(result.history_steps, dtype=torch.float64)
    k = result.num_exponents
    top = list(range(min(shown, k)))
    panels = [top] if k <= shown else [top, [k - 1]]
    fig = Figure(figsize=(8, 5 if len(panels) == 1 else 6.5), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False, height_ratios=(2, 1)[: len(panels)])[:, 0]
    for ax, indices in zip(axes, panels, strict=True):
        for i in indices:
            colour = f"C{i % 10}" if i < shown else "C5"
            curves = result.history[:, :, i]
            if result.batch_size > 1:
                for row in curves:
                    ax.plot(steps, row, color=colour, alpha=0.2, linewidth=0.6)
            ax.plot(steps, curves.mean(dim=0), color=colour, linewidth=2, label=f"λ_{i + 1}")
        ax.set_ylabel("running estimate\n(nats per step, natural log)")
        ax.grid(alpha=0.3)
    if mean_field_max is not None and math.isfinite(mean_field_max):
        axes[0].axhline(mean_field_max, color="tab:red", linestyle="--", linewidth=1.5, label="mean-field ½ log χ")
    for ax in axes:
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=9, title="batch mean", title_fontsize=8)
    axes[-1].set_xlabel(f"t (steps; the first {result.warmup} are warm-up and not averaged)")
    axes[0].set_title(title or "Convergence of the Lyapunov exponents")
    atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=110))


def plot_singular_values(spectrum: SingularValueSpectrum, *, path: Path, title: str = "") -> None:
    """Write a PNG: one histogram of log σ_i(J_t) per chosen step t (pooled over the batch), with log σ = 0
    (dynamical isometry) and the rounding floor log(n·ε·σ₁) below which values are noise."""
    count = len(spectrum.steps)
    fig = Figure(figsize=(8, 2.2 + 1.8 * count), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(count, 1, squeeze=False)[:, 0]
    floors = spectrum.log_rounding_floor()
    for j, (ax, t) in enumerate(zip(axes, spectrum.steps, strict=True)):
        values = spectrum.log_singular_values[:, j].reshape(-1)
        values = values[torch.isfinite(values)]
        ax.hist(values.numpy(), bins=60, color="tab:blue", alpha=0.8, label=f"log σ_i(J_t), t = {t}")
        ax.axvline(0.0, color="k", linestyle=":", linewidth=1.5, label="σ = 1 (isometry)")
        floor = float(floors[:, j].max())
        if floor > float(values.min()):
            ax.axvspan(float(values.min()), floor, color="grey", alpha=0.15, linewidth=0)
            ax.axvline(
                floor,
                color="tab:red",
                linestyle="--",
                linewidth=1.2,
                label="rounding floor log(nεσ₁):\nbelow it, noise",
            )
        ax.set_ylabel("count")
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("log σ_i(J_t)  (natural log)")
    axes[0].set_title(title or "Singular values of J_t = ∂g_t/∂g_0")
    atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=110))
