"""Figures (matplotlib's object API with the Agg canvas: no display, no global pyplot state)."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rnnstab._io import atomic_write
from rnnstab.jacobian import JacobianTrace


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
