"""``rnnstab trace``: the Jacobian norms of one random RNN against the δ^t bound."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
import typer
from rich.console import Console
from rich.table import Table

import rnnstab
from rnnstab import _checks, _io
from rnnstab.cli._common import (
    _Activation,
    _exit_on_bound_violation,
    _Gamma,
    _metadata,
    _progress,
    _user_errors,
    app,
)
from rnnstab.plots import plot_trace, zero_jacobian_steps


@app.command()
def trace(
    ctx: typer.Context,
    activation: _Activation = "tanh",
    gamma: _Gamma = None,
    delta: Annotated[
        float, typer.Option(help="Scale W so that γ‖W‖₂ = δ exactly. δ < 1 guarantees vanishing gradients.")
    ] = 0.9,
    hidden: Annotated[int, typer.Option(help="Hidden size n.")] = 128,
    steps: Annotated[int, typer.Option(help="Horizon T: Jacobians ∂g_t/∂g_0 for t = 1..T.")] = 200,
    batch: Annotated[int, typer.Option(help="Number of input sequences (one trace each).")] = 16,
    inputs: Annotated[int, typer.Option(help="Input size m (U is n × m, drawn N(0, 1/m)).")] = 4,
    input_scale: Annotated[
        float, typer.Option(help="Standard deviation of the inputs x_t (0: an autonomous network, no input).")
    ] = 1.0,
    init: Annotated[
        str, typer.Option(help="Recurrent weights before scaling: a scheme of rnnstab inits (gaussian, orthogonal, …).")
    ] = "gaussian",
    seed: Annotated[int, typer.Option(help="Seed for W, U and the inputs.")] = 0,
    dtype: Annotated[str, typer.Option(help="float64 (exact to ~1e-10) or float32 (faster).")] = "float64",
    device: Annotated[str, typer.Option(help="auto (CUDA when present), cpu, cuda or cuda:N.")] = "auto",
    out: Annotated[Path, typer.Option(help="Directory for trace.png and trace.json.")] = Path("rnnstab-results/trace"),
    json_output: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Trace log‖∂g_t/∂g_0‖ for t = 1..T of a random RNN scaled to γ‖W‖₂ = δ, against the δ^t bound.

    Writes OUT/trace.png (the curves with the t·log δ line) and OUT/trace.json (every number, natural logs).
    """
    with _user_errors(ctx) as made:
        act = rnnstab.get_activation(activation, gamma=gamma)
        delta = _checks.positive_float("--delta", delta)
        input_scale = _checks.non_negative_float("--input-scale", input_scale)
        chosen_dtype = _checks.dtype("--dtype", dtype)
        chosen_device = _checks.device("--device", device)
        hidden, steps, batch, m = (
            _checks.positive_int(flag, value)
            for flag, value in (("--hidden", hidden), ("--steps", steps), ("--batch", batch), ("--inputs", inputs))
        )
        # the inputs (float64) and the per-step results (~1.5 KiB a step, whatever the batch) grow with T: refuse a
        # --steps that cannot fit before allocating, not with a traceback from torch's allocator
        needed = 8 * batch * steps * (m + 4) + 1536 * steps
        _checks.check_memory(needed, torch.device("cpu"), "reduce --steps or --batch")
        out_dir = _io.output_dir(out, created=made)
        W0 = rnnstab.init_weights(init, hidden, seed=seed, activation=act)
        W = rnnstab.scale_to_threshold(W0, delta=delta, gamma=act.gamma)
        generator = _checks.generator(seed, 1)
        U = torch.randn(hidden, m, generator=generator, dtype=torch.float64) / m**0.5
        x = input_scale * torch.randn(batch, steps, m, generator=generator, dtype=torch.float64)
        _checks.synthetic_inputs(x, input_scale)  # refused by the option's name, not as "x holds non-finite values"
        rnn = rnnstab.VanillaRNN(W, U, None, act).to(device=chosen_device)
        with _progress(quiet or json_output) as progress:
            task = progress.add_task("Jacobian products", total=steps)
            result = rnnstab.jacobian_norms(
                rnn, x, dtype=chosen_dtype, progress=lambda done: progress.advance(task, done)
            )
        verdicts = rnnstab.verdicts(result, delta=delta)
        violations = rnnstab.bound_violations(result, delta=delta)
        # a log-norm of −∞ says only "0"; where and in how many inputs J_t died is the finding (relu units all off)
        zero = [step for step in zero_jacobian_steps(result) if step is not None]
        summary = {
            "activation": act.name,
            "gamma": act.gamma,
            "delta": delta,
            "spectral_norm_W": float(rnnstab.spectral_norm(W)),
            "hidden": hidden,
            "steps": steps,
            "batch": batch,
            "dtype": str(chosen_dtype).removeprefix("torch."),
            "device": str(chosen_device),
            "log_bound_final": steps * float(np.log(delta)),
            # np.median: torch's median of an even batch is the lower of the two middle values, not their mean
            "log_spectral_final_median": float(np.median(result.log_spectral[:, -1].numpy()))
            if result.log_spectral is not None
            else None,
            "rate_per_step_median": float(np.median([v.rate_per_step for v in verdicts])),
            "jacobian_zero_from_step": min(zero) if zero else None,
            "jacobian_zero_inputs": len(zero),
            "regimes": dict(Counter(v.regime for v in verdicts)),
            "bound_violations": len(violations),
            "svd_fallbacks": result.svd_fallbacks,
            "spectral_method": result.spectral_method,
            "files": {"png": str(out_dir / "trace.png"), "json": str(out_dir / "trace.json")},
            "units": "natural log; rates in nats per step",  # --json prints this summary alone
        }
        record = {
            "summary": summary,
            "metadata": _metadata(seed=seed, init=init, inputs=m, input_scale=input_scale),
            "units": "natural log; rates in nats per step; column t-1 is step t",
            "steps": list(range(1, steps + 1)),
            "log_bound": [t * float(np.log(delta)) for t in range(1, steps + 1)],
            "log_spectral": result.log_spectral.tolist() if result.log_spectral is not None else None,
            "log_frobenius": result.log_frobenius.tolist() if result.log_frobenius is not None else None,
            "verdicts": [v.__dict__ for v in verdicts],
            "bound_violations_detail": [v.__dict__ for v in violations],
        }
        # together: a figure that fails must not leave this run's numbers beside an earlier run's figure
        with _io.staged(out_dir, ["trace.json", "trace.png"]) as staging:
            _io.write_json(staging / "trace.json", record)
            plot_trace(
                result,
                delta=delta,
                path=staging / "trace.png",
                title=f"{act.name}, n = {hidden}, δ = γ‖W‖₂ = {delta:g}, "
                f"{batch} input sequence{'s' if batch > 1 else ''}",
            )
        if json_output:
            typer.echo(json.dumps(_io.finite_or_none(summary), indent=2, ensure_ascii=False))
        else:
            _print_summary(summary)
        _exit_on_bound_violation(not violations, where=str(out_dir / "trace.json"))


def _print_summary(summary: dict[str, Any]) -> None:
    table = Table(title="rnnstab trace (natural logs)", show_header=False)
    zero = summary["jacobian_zero_inputs"]
    rows = [
        ("activation, γ", f"{summary['activation']}, {summary['gamma']:.6g}"),
        ("δ = γ‖W‖₂", f"{summary['delta']:.6g}  (‖W‖₂ = {summary['spectral_norm_W']:.6g})"),
        ("n, T, batch", f"{summary['hidden']}, {summary['steps']}, {summary['batch']}"),
        ("log‖J_T‖₂ (median)", _number(summary["log_spectral_final_median"], ".6g")),
        ("bound T·log δ", f"{summary['log_bound_final']:.6g}"),
        ("rate (median, nats/step)", _number(summary["rate_per_step_median"], ".4g")),
        *(
            [
                (
                    "∂g_t/∂g_0 = 0 exactly",
                    f"from step {summary['jacobian_zero_from_step']} in {zero} of {summary['batch']} input "
                    f"sequence{'s' if summary['batch'] > 1 else ''} (log-norm -inf)",
                )
            ]
            if zero
            else []
        ),
        ("regimes", ", ".join(f"{k}: {v}" for k, v in summary["regimes"].items())),
        ("bound violations", str(summary["bound_violations"]) + ("  ← BUG" if summary["bound_violations"] else "")),
        ("files", f"{summary['files']['png']}\n{summary['files']['json']}"),
    ]
    for key, value in rows:
        table.add_row(key, value)
    Console().print(table)


def _number(x: float | None, spec: str) -> str:
    """``x`` formatted; a −∞ (a Jacobian that is exactly 0) says so, as "-inf" alone did not."""
    if x is None:
        return "—"
    return format(x, spec) + (" (J_t = 0)" if x == -np.inf else "")
