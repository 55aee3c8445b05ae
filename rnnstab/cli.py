"""The ``rnnstab`` command line: parse, call the library, print. Nothing else lives here."""

from __future__ import annotations

import json
import platform
import sys
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

import rnnstab
from rnnstab import _checks, _io, audit_report, lyapunov_report, validation
from rnnstab.plots import plot_trace
from rnnstab.sweep import parse_values
from rnnstab.training import default_lr

app = typer.Typer(
    help="rnnstab: will gradients in your recurrent network vanish or explode, why, and by how much.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)

_Activation = Annotated[str, typer.Option(help=f"Activation σ, one of: {', '.join(rnnstab.activation_names())}.")]
_Gamma = Annotated[
    float | None,
    typer.Option(
        help="Use the scaled family σ_γ(x) = σ(c·x) with c chosen so that sup|σ_γ'| = γ "
        "(tanh with γ = 0.5 is tanh(0.5x)). Default: the activation's own γ = sup|σ'|."
    ),
]


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        console.print("[red]interrupted[/red]")
        sys.exit(130)


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn a library error into one red line on stderr and exit code 2 (no traceback)."""
    try:
        yield
    except rnnstab.RnnstabError as err:
        console.print(f"[red]error:[/red] {err}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


@contextmanager
def _warnings_as_lines() -> Iterator[None]:
    """Print each library warning as one yellow ``warning:`` line on stderr, as soon as it is raised."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", rnnstab.RnnstabWarning)
        default = warnings.showwarning

        def show(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
            if issubclass(category, rnnstab.RnnstabWarning):
                console.print(f"[yellow]warning:[/yellow] {message}", highlight=False, soft_wrap=True)
            else:
                default(message, category, *args, **kwargs)

        warnings.showwarning = show
        yield


def _print_version(value: bool) -> None:
    if value:
        typer.echo(rnnstab.__version__)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", help="Print the version and exit.", callback=_print_version, is_eager=True)
    ] = False,
) -> None:
    """rnnstab: will gradients in your recurrent network vanish or explode, why, and by how much."""


@app.command()
def trace(
    activation: _Activation = "tanh",
    gamma: _Gamma = None,
    delta: Annotated[
        float, typer.Option(help="Scale W so that γ‖W‖₂ = δ exactly. δ < 1 guarantees vanishing gradients.")
    ] = 0.9,
    hidden: Annotated[int, typer.Option(help="Hidden size n.")] = 128,
    steps: Annotated[int, typer.Option(help="Horizon T: Jacobians ∂g_t/∂g_0 for t = 1..T.")] = 200,
    batch: Annotated[int, typer.Option(help="Number of input sequences (one trace each).")] = 16,
    inputs: Annotated[int, typer.Option(help="Input size m (U is n × m, drawn N(0, 1/m)).")] = 4,
    input_scale: Annotated[float, typer.Option(help="Standard deviation of the inputs x_t.")] = 1.0,
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
    with _user_errors():
        act = rnnstab.get_activation(activation, gamma=gamma)
        delta = _checks.positive_float("--delta", delta)
        input_scale = _checks.positive_float("--input-scale", input_scale)
        chosen_dtype = _checks.dtype("--dtype", dtype)
        chosen_device = _checks.device("--device", device)
        out_dir = _io.output_dir(out)
        W0 = rnnstab.init_weights(init, hidden, seed=seed, activation=act)
        W = rnnstab.scale_to_threshold(W0, delta=delta, gamma=act.gamma)
        generator = torch.Generator().manual_seed(seed + 1)
        m = _checks.positive_int("--inputs", inputs)
        U = torch.randn(hidden, m, generator=generator, dtype=torch.float64) / m**0.5
        x = input_scale * torch.randn(
            _checks.positive_int("--batch", batch),
            _checks.positive_int("--steps", steps),
            m,
            generator=generator,
            dtype=torch.float64,
        )
        rnn = rnnstab.VanillaRNN(W, U, None, act).to(device=chosen_device)
        with _progress(quiet or json_output) as progress:
            task = progress.add_task("Jacobian products", total=steps)
            result = rnnstab.jacobian_norms(
                rnn, x, dtype=chosen_dtype, progress=lambda done: progress.advance(task, done)
            )
        verdicts = rnnstab.verdicts(result, delta=delta)
        violations = rnnstab.bound_violations(result, delta=delta)
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
            "log_spectral_final_median": float(result.log_spectral.median(dim=0).values[-1])
            if result.log_spectral is not None
            else None,
            "rate_per_step_median": float(np.median([v.rate_per_step for v in verdicts])),
            "regimes": dict(Counter(v.regime for v in verdicts)),
            "bound_violations": len(violations),
            "svd_fallbacks": result.svd_fallbacks,
            "files": {"png": str(out_dir / "trace.png"), "json": str(out_dir / "trace.json")},
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
        plot_trace(
            result,
            delta=delta,
            path=out_dir / "trace.png",
            title=f"{act.name}, n = {hidden}, δ = γ‖W‖₂ = {delta:g}, {batch} input sequences",
        )
        _io.write_json(out_dir / "trace.json", record)
        if json_output:
            typer.echo(json.dumps(_io.finite_or_none(summary), indent=2, ensure_ascii=False))
        else:
            _print_summary(summary)


_SWEEP_PANEL = "Grid (each option takes several values)"
_RUN_PANEL = "Execution"


_SWEEP_HELP = (
    "Sweep a grid of (activation, γ, δ, n, T, …) × seeds and report where gradients vanish or explode.\n\n"
    "Every configuration's W is scaled so that γ‖W‖₂ = δ, and its exact Jacobian norms ‖∂g_t/∂g_0‖ (t = 1..T) are "
    "computed for --batch input sequences; configurations sharing (activation, γ, n, T, dtype) run as one batched "
    "product. Each configuration × seed is saved in OUT/records as soon as it is done, so an interrupted sweep loses "
    "nothing: rerun the same command with --resume. At the end OUT/report.html (self-contained), report.md and "
    "summary.json are written (see rnnstab report).\n\n"
    "Grid options take several values: repeat the flag (--delta 0.5 --delta 1), give a comma list "
    "(--activation tanh,relu), and for numbers a range START:STOP:COUNT — COUNT evenly spaced values including both "
    "ends (0.5:1.5:11 = 0.5, 0.6, …, 1.5) — or log:START:STOP:COUNT, spaced geometrically (log:0.1:10:5 = 0.1, "
    "0.32, 1, 3.2, 10).\n\n"
    "Exit codes: 0 done; 2 bad input (one error: line); 3 the δ^t bound was violated (a bug in rnnstab); "
    "130 interrupted."
)
_REPORT_HELP = (
    "Write DIRECTORY/report.md, report.html (self-contained, figures embedded) and summary.json for a sweep.\n\n"
    "The report tabulates every configuration (‖W‖₂, ρ(W), the measured rate with its spread over seeds, log δ, the "
    "slack, the largest excess over the δ^t bound, the verdict and the gradient half-life); draws log‖J_t‖₂ against "
    "t with the t·log δ lines, a phase diagram of the rate over the grid, and the rate against log δ; and says in "
    "plain words, per activation, where gradients vanished or exploded. Exit code 3 if the bound was violated."
)


@app.command(help=_SWEEP_HELP)
def sweep(
    activation: Annotated[
        list[str] | None,
        typer.Option(
            help=f"Activations σ to compare, from: {', '.join(rnnstab.activation_names())}. Default: tanh.",
            rich_help_panel=_SWEEP_PANEL,
        ),
    ] = None,
    gamma: Annotated[
        list[str] | None,
        typer.Option(
            help="γ = sup|σ'|: each activation is used as the scaled family member σ(c·x) with c chosen so that "
            "sup|σ'| = γ (tanh with γ = 0.5 is tanh(0.5x); sigmoid's own γ is 0.25). Must be > 0. Default: 1.",
            rich_help_panel=_SWEEP_PANEL,
        ),
    ] = None,
    delta: Annotated[
        list[str] | None,
        typer.Option(
            help="δ = γ‖W‖₂: W is scaled so that γ‖W‖₂ = δ exactly. δ < 1 guarantees vanishing gradients; "
            "above 1 they may vanish or explode. Must be > 0. Default: 0.5:1.5:21, which includes 1.",
            rich_help_panel=_SWEEP_PANEL,
        ),
    ] = None,
    hidden: Annotated[
        list[str] | None,
        typer.Option(
            help="Hidden sizes n (integers also take START:STOP, every integer). Default: 64.",
            rich_help_panel=_SWEEP_PANEL,
        ),
    ] = None,
    steps: Annotated[
        list[str] | None,
        typer.Option(help="Horizons T: Jacobians ∂g_t/∂g_0 for t = 1..T. Default: 300.", rich_help_panel=_SWEEP_PANEL),
    ] = None,
    seeds: Annotated[
        list[str] | None,
        typer.Option(
            help="Seeds: a single N means the N seeds 0..N−1; a list (0,4,9) or range (10:19) names them. Each seed "
            "draws an independent W, U and set of inputs. Default: 3.",
            rich_help_panel=_SWEEP_PANEL,
        ),
    ] = None,
    input_scale: Annotated[
        list[str] | None,
        typer.Option(
            help="Standard deviations of the inputs x_t (> 0); larger inputs saturate σ more. Default: 1.",
            rich_help_panel=_SWEEP_PANEL,
        ),
    ] = None,
    init: Annotated[
        list[str] | None,
        typer.Option(
            help="Recurrent-weight schemes, before scaling to δ: gaussian (i.i.d. N(0, 1/n), non-normal: ρ(W) ≈ "
            "‖W‖₂/2), orthogonal (ρ(W) = ‖W‖₂), or any other scheme of rnnstab inits. Default: gaussian.",
            rich_help_panel=_SWEEP_PANEL,
        ),
    ] = None,
    dtype: Annotated[
        list[str] | None,
        typer.Option(
            help="dtypes of the Jacobian product: float64 (exact to ~1e-10) and/or float32 (faster). Default: float64.",
            rich_help_panel=_SWEEP_PANEL,
        ),
    ] = None,
    batch: Annotated[
        int, typer.Option(help="Input sequences per network (one trace each).", rich_help_panel=_SWEEP_PANEL)
    ] = 8,
    inputs: Annotated[
        int, typer.Option(help="Input size m (U is n × m, drawn N(0, 1/m)).", rich_help_panel=_SWEEP_PANEL)
    ] = 4,
    out: Annotated[
        Path, typer.Option(help="Sweep directory: records, sweep.json and the report.", rich_help_panel=_RUN_PANEL)
    ] = Path("rnnstab-results/sweep"),
    resume: Annotated[
        bool,
        typer.Option(
            help="Continue the sweep in --out: finished configurations are kept, the rest (and any corrupted "
            "record) computed. The fixed parameters (--batch, --inputs) must match; new grid values are "
            "added.",
            rich_help_panel=_RUN_PANEL,
        ),
    ] = False,
    executor: Annotated[
        str,
        typer.Option(
            help="local: this process. dask: a Dask cluster (pip install 'rnnstab\\[dask]'), --scheduler or a local "
            "one with --workers.",
            rich_help_panel=_RUN_PANEL,
        ),
    ] = "local",
    workers: Annotated[
        int | None,
        typer.Option(
            help="--executor dask: worker processes of the local cluster. Default: one per CPU core.",
            rich_help_panel=_RUN_PANEL,
        ),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            help="--executor dask: address of a running scheduler (tcp://host:8786, from `dask scheduler`).",
            rich_help_panel=_RUN_PANEL,
        ),
    ] = None,
    device: Annotated[
        str, typer.Option(help="auto (CUDA when present), cpu, cuda or cuda:N.", rich_help_panel=_RUN_PANEL)
    ] = "auto",
    stack: Annotated[
        int | None,
        typer.Option(
            help="Networks per batched product (default: about 256 MiB worth). It changes speed and memory, "
            "never the results.",
            rich_help_panel=_RUN_PANEL,
        ),
    ] = None,
    make_report: Annotated[
        bool, typer.Option("--report/--no-report", help="Write the report at the end.", rich_help_panel=_RUN_PANEL)
    ] = True,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print a machine-readable summary as JSON on stdout.")
    ] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar, and only the report's location.")] = False,
) -> None:
    """Sweep a grid and write its report (help: :data:`_SWEEP_HELP`)."""
    with _user_errors(), _warnings_as_lines():
        grid = rnnstab.Grid.from_strings(
            activation=activation,
            gamma=gamma,
            delta=delta,
            hidden=hidden,
            steps=steps,
            seeds=seeds,
            input_scale=input_scale,
            init=init,
            dtype=dtype,
            batch=batch,
            inputs=inputs,
        )
        try:
            with _sweep_progress(quiet or json_output) as progress:
                # Hidden until the library reports: a refused sweep then prints its error line and nothing else.
                bar = progress.add_task("sweep", total=None, counts="", visible=False)

                def show(state: rnnstab.SweepProgress) -> None:
                    call = min(state.chunks_done + 1, state.chunks_total)
                    progress.update(
                        bar,
                        visible=True,
                        total=max(state.work_total, 1e-9),
                        completed=state.work_done,
                        counts=f"{state.tasks_written}/{state.tasks_to_compute} saved · {state.tasks_skipped} "
                        f"done before · call {call}/{state.chunks_total}",
                    )

                result = rnnstab.run_sweep(
                    grid,
                    out,
                    resume=resume,
                    executor=executor,
                    device=device,
                    workers=workers,
                    scheduler=scheduler,
                    stack=stack,
                    progress=show,
                )
        except KeyboardInterrupt:
            console.print(
                f"[red]interrupted[/red]: every finished configuration is saved in {out}; "
                "run the same command with --resume to finish",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(130) from None
        summary: dict[str, Any] = {
            "directory": str(result.directory),
            "configurations": len(grid.configurations()),
            "seeds": list(grid.seeds),
            "tasks": result.tasks_total,
            "computed": result.tasks_computed,
            "skipped": result.tasks_skipped,
            "recomputed": result.tasks_recomputed,
            "batched_calls": result.chunks,
            "seconds": round(result.seconds_total, 3),
            "seconds_jacobian": round(result.seconds_jacobian, 3),
            "executor": result.executor,
            "device": result.device,
        }
        if not make_report:
            _finish(summary, None, json_output=json_output, quiet=quiet)
            return
        if not (quiet or json_output):
            console.print("writing the report…", highlight=False)
        _finish(summary, rnnstab.write_report(result.directory), json_output=json_output, quiet=quiet)


@app.command("report", help=_REPORT_HELP)
def report_command(
    directory: Annotated[Path, typer.Argument(help="A sweep directory (rnnstab sweep --out).")],
    json_output: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")] = False,
    quiet: Annotated[bool, typer.Option(help="Print only the report's location.")] = False,
) -> None:
    """Write the report of a sweep directory (help: :data:`_REPORT_HELP`)."""
    with _user_errors(), _warnings_as_lines():
        _finish({"directory": str(directory)}, rnnstab.write_report(directory), json_output=json_output, quiet=quiet)


def _finish(summary: dict[str, Any], report: rnnstab.Report | None, *, json_output: bool, quiet: bool) -> None:
    """Print the outcome (JSON on stdout, or lines for a person) and exit 3 if the bound check failed."""
    if report is not None:
        summary = {
            **summary,
            "records": report.summary["records"],
            "regimes": report.summary["regimes"],
            "bound": report.summary["bound"],
            "conclusions": report.conclusions,
            "files": {
                "html": str(report.html),
                "markdown": str(report.markdown),
                "summary": str(report.summary_json),
                "figures": [str(f) for f in report.figures],
            },
        }
    if json_output:
        typer.echo(json.dumps(_io.finite_or_none(summary), indent=2, ensure_ascii=False))
    elif quiet:
        typer.echo(str(report.html) if report is not None else summary["directory"])
    else:
        out = Console(soft_wrap=True)  # long sentences stay whole lines in logs and pipes
        if "tasks" in summary:
            out.print(
                f"[bold]sweep[/bold] {summary['tasks']} configurations × seeds in {summary['directory']}: "
                f"{summary['computed']} computed, {summary['skipped']} already done"
                + (f", {summary['recomputed']} recomputed" if summary["recomputed"] else "")
                + f" ({summary['seconds']:.1f} s, {summary['batched_calls']} batched calls, {summary['device']})",
                highlight=False,
            )
        if report is not None:
            for activation, sentences in report.conclusions.items():
                out.print(f"[bold]{activation}[/bold]", highlight=False)
                for sentence in sentences:
                    out.print(f"  • {sentence}", highlight=False)
            out.print(f"report: [bold]{report.html}[/bold]  (also report.md, summary.json)", highlight=False)
    if report is not None and not report.bound_holds:
        console.print(f"[bold red]BUG:[/bold red] {report.summary['bound']}", highlight=False, soft_wrap=True)
        console.print(
            "[bold red]BUG: a computed ‖J_t‖₂ exceeded δ^t beyond float rounding — a bug in rnnstab, see the "
            "report[/bold red]",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(3)


def _sweep_progress(disable: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}[/bold]"),
        BarColumn(bar_width=20),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[counts]}"),
        console=console,
        disable=disable or not console.is_terminal,  # a bar in a log or pipe is noise (and a stray blank line)
        transient=True,  # an error then leaves one line, not a stopped bar
    )


@app.command()
def lyapunov(
    activation: _Activation = "tanh",
    gamma: _Gamma = None,
    init: Annotated[
        str,
        typer.Option(
            help="W₀, a scheme of rnnstab inits: gaussian (i.i.d. N(0, 1/n) entries, the mean-field setting, the only "
            "one with a mean-field prediction), orthogonal (Haar), identity, …"
        ),
    ] = "gaussian",
    gain: Annotated[
        float | None,
        typer.Option(help="W = g·W₀, i.e. W_ij ~ N(0, g²/n) for gaussian W₀: the mean-field gain. Default 1.5."),
    ] = None,
    delta: Annotated[
        float | None,
        typer.Option(help="Instead of --gain: scale W so that δ = γ‖W‖₂ exactly (δ < 1 guarantees vanishing)."),
    ] = None,
    hidden: Annotated[int, typer.Option(help="Hidden size n.")] = 128,
    steps: Annotated[int, typer.Option(help="Horizon T.")] = 1000,
    warmup: Annotated[
        int | None, typer.Option(help="Steps before measuring (the frame and trajectory settle). Default T // 10.")
    ] = None,
    top: Annotated[
        int | None, typer.Option(help="Compute only the top k exponents (O(T·n²·k)). Default: all n.")
    ] = None,
    qr_every: Annotated[
        str,
        typer.Option(
            help="Re-orthonormalise every this many steps, or auto: the interval that keeps the spread of log R_ii "
            "between QRs near ½·ln(1/ε) (18 nats in float64: relative error ≲ √ε per QR), shrinking at once and "
            "growing at most ×2 per QR."
        ),
    ] = "auto",
    blocks: Annotated[int, typer.Option(help="Blocks of the measured window for the error bars.")] = 10,
    singular_values_at: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated steps t at which to compute every singular value of J_t (histogram). "
            "Default: 10 and 100 (those ≤ T)."
        ),
    ] = None,
    batch: Annotated[int, typer.Option(help="Number of input sequences (one spectrum each).")] = 4,
    inputs: Annotated[int, typer.Option(help="Input size m (U is n × m, drawn N(0, 1/m)).")] = 4,
    input_scale: Annotated[
        float,
        typer.Option(
            help="Standard deviation s of the inputs x_t (0: autonomous). U x_t then has variance s² per unit, the "
            "mean-field input variance."
        ),
    ] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed for W, U, the inputs, h_0 ~ N(0, 1) and the initial frame.")] = 0,
    dtype: Annotated[str, typer.Option(help="float64 (default) or float32; logs are accumulated in float64.")] = (
        "float64"
    ),
    device: Annotated[str, typer.Option(help="auto (CUDA when present), cpu, cuda or cuda:N.")] = "auto",
    out: Annotated[Path, typer.Option(help="Directory for lyapunov.json, lyapunov.md and the figures.")] = Path(
        "rnnstab-results/lyapunov"
    ),
    json_output: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Lyapunov spectrum (natural log, nats per step) of a random RNN along input-driven trajectories.

    Benettin's QR method on the tangent dynamics J_t = D_t W, with error bars from block means; the mean-field
    prediction λ_max = ½ log χ (gaussian W₀) and the bound λ₁ ≤ log δ are marked. Also the singular values of J_t at
    chosen t. Writes OUT/lyapunov.json, OUT/lyapunov.md, OUT/lyapunov_spectrum.png, OUT/lyapunov_convergence.png and
    OUT/singular_values.png.
    """
    with _user_errors():
        act = rnnstab.get_activation(activation, gamma=gamma)
        if gain is not None and delta is not None:
            raise rnnstab.InvalidArgumentError("--gain and --delta are alternatives: give one of them")
        chosen_dtype = _checks.dtype("--dtype", dtype)
        chosen_device = _checks.device("--device", device)
        input_scale = _non_negative("--input-scale", input_scale)
        steps = _checks.positive_int("--steps", steps)
        m = _checks.positive_int("--inputs", inputs)
        n_batch = _checks.positive_int("--batch", batch)
        interval = _qr_interval(qr_every)
        sv_steps = _steps_list("--singular-values-at", singular_values_at, steps)
        W0 = rnnstab.init_weights(init, hidden, seed=seed, activation=act)
        if delta is not None:
            W = rnnstab.scale_to_threshold(W0, delta=_checks.positive_float("--delta", delta), gamma=act.gamma)
            g = float(rnnstab.spectral_norm(W) / rnnstab.spectral_norm(W0))
        else:
            g = _checks.positive_float("--gain", 1.5 if gain is None else gain)
            W = g * W0
        out_dir = _io.output_dir(out)
        generator = torch.Generator().manual_seed(seed + 1)
        U = torch.randn(hidden, m, generator=generator, dtype=torch.float64) / m**0.5
        x = input_scale * torch.randn(n_batch, steps, m, generator=generator, dtype=torch.float64)
        h0 = torch.randn(n_batch, hidden, generator=generator, dtype=torch.float64)
        rnn = rnnstab.VanillaRNN(W, U, None, act).to(device=chosen_device)
        with _progress(quiet or json_output) as progress:
            task = progress.add_task("Lyapunov (QR)", total=steps)
            result = rnnstab.lyapunov_spectrum(
                rnn,
                x,
                k=top,
                qr_every=interval,
                warmup=warmup,
                blocks=blocks,
                h0=h0,
                dtype=chosen_dtype,
                seed=seed,
                progress=lambda done: progress.advance(task, done),
            )
            spectrum = None
            if sv_steps:
                task = progress.add_task("singular values", total=max(sv_steps))
                spectrum = rnnstab.singular_value_spectrum(
                    rnn, x, at=sv_steps, h0=h0, dtype=chosen_dtype, progress=lambda done: progress.advance(task, done)
                )
        field = gc = None
        if init == "gaussian":  # the mean-field theory is for i.i.d. entries
            field = rnnstab.mean_field(act, gain=g, input_variance=input_scale**2)
            gc = rnnstab.critical_gain(act, input_variance=input_scale**2)
        norm = float(rnnstab.spectral_norm(W))
        log_delta = float(np.log(act.gamma * norm))
        summary = lyapunov_report.summarise(
            result, log_delta=log_delta, mean_field=field, critical_gain=gc, singular_values=spectrum
        )
        parameters = {
            "activation": act.name,
            "gamma": act.gamma,
            "init": init,
            "gain": g,
            "spectral_norm_W": norm,
            "delta": act.gamma * norm,
            "hidden": hidden,
            "steps": steps,
            "warmup": result.warmup,
            "k": result.num_exponents,
            "qr_every": interval,
            "blocks": blocks,
            "batch": n_batch,
            "inputs": m,
            "input_scale": input_scale,
            "seed": seed,
            "dtype": str(chosen_dtype).removeprefix("torch."),
            "device": str(chosen_device),
        }
        title = f"{act.name}, n = {hidden}, g = {g:.4g}, δ = {act.gamma * norm:.4g}, {n_batch} input sequences"
        files = lyapunov_report.write_lyapunov_outputs(
            out_dir,
            result=result,
            singular_values=spectrum,
            summary=summary,
            parameters=parameters,
            metadata=_metadata(**parameters),
            title=title,
        )
        if json_output:
            typer.echo(json.dumps(_io.finite_or_none({**summary, "files": files}), indent=2, ensure_ascii=False))
        else:
            _print_lyapunov(parameters, summary, files)


@app.command()
def validate(
    quick: Annotated[bool, typer.Option(help="Smaller sizes (seconds): looser statistical tolerances.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of every random draw.")] = 0,
    out: Annotated[
        Path | None, typer.Option(help="Also write validation.json and validation.md into this directory.")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the results as JSON on stdout.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Run the built-in reference checks against the literature and print expected, measured, tolerance, PASS/FAIL.

    Linear RNNs (exponents = sorted log|eig W|, also non-normal W); orthogonal linear RNN (all exponents 0); the sum
    rule Σλ = log|det W| + ⟨Σ log|σ'|⟩; products of Gaussian matrices against Newman's exact formula (and the error
    bars against the exact standard errors); the δ^T bound; the mean-field λ_max = ½ log χ of random tanh RNNs.
    Exit code 0 when every check passes, 1 when any fails.
    """
    with _user_errors():
        out_dir = _io.output_dir(out) if out is not None else None
        suite = validation.SUITE_SIZE
        with _progress(quiet or json_output) as progress:
            task = progress.add_task("reference checks", total=suite)
            checks = rnnstab.run_validation(
                quick=quick, seed=seed, progress=lambda name: progress.update(task, description=name)
            )
            progress.update(task, description="reference checks", completed=suite)
        record = lyapunov_report.validation_record(checks)
        record["metadata"] = _metadata(quick=quick, seed=seed)
        if out_dir is not None:
            _io.write_json(out_dir / "validation.json", record)
            text = lyapunov_report.validation_markdown(checks)
            _io.atomic_write(out_dir / "validation.md", lambda handle: handle.write(text.encode()))
        if json_output:
            typer.echo(json.dumps(_io.finite_or_none(record), indent=2, ensure_ascii=False))
        else:
            _print_validation(checks)
    if not record["passed"]:
        raise typer.Exit(1)


def _print_lyapunov(parameters: dict[str, Any], summary: dict[str, Any], files: dict[str, str]) -> None:
    table = Table(title="rnnstab lyapunov (natural logs, nats per step)", show_header=False)
    field = summary["mean_field"]
    rows = [
        ("activation, γ", f"{parameters['activation']}, {parameters['gamma']:.6g}"),
        ("init, gain g", f"{parameters['init']}, {parameters['gain']:.6g}"),
        ("δ = γ‖W‖₂, log δ", f"{parameters['delta']:.6g}, {summary['log_delta']:.6g}"),
        (
            "n, T (warm-up), k, batch",
            f"{parameters['hidden']}, {parameters['steps']} ({parameters['warmup']}), "
            f"{parameters['k']}, {parameters['batch']}",
        ),
        ("λ₁ (mean ± s.e.)", f"{summary['lambda_max_per_step']:.6g} ± {summary['lambda_max_stderr']:.2g}"),
        ("gradients", lyapunov_report.verdict_text(summary)),
        ("bound λ₁ ≤ log δ", "holds" if summary["bound_holds"] else "VIOLATED ← BUG"),
    ]
    if field:
        rows += [
            ("mean-field ½ log χ", f"{field['lambda_max_per_step']:.6g}  ({field['regime']}, χ = {field['chi']:.6g})"),
            ("depth scale −1/log χ", f"{field['depth_scale_steps']:.4g} steps"),
            ("critical gain (χ = 1)", f"{field['critical_gain']:.6g}"),
        ]
    if summary["kaplan_yorke_dimension"] is not None:
        rows.append(("Kaplan–Yorke dimension", f"{summary['kaplan_yorke_dimension']:.4g}"))
    if summary["sum_rule"]:
        rows.append(("sum rule residual (max)", f"{summary['sum_rule']['max_abs_residual']:.2g}"))
    qr = summary["qr"]
    rows.append(
        (
            "QRs, largest log-spread",
            f"{qr['qr_count']}, {qr['max_log_spread']:.3g} (limit {qr['log_spread_limit']:.3g})",
        )
    )
    rows.append(("files", "\n".join(files.values())))
    for key, value in rows:
        table.add_row(key, value)
    Console().print(table)


def _print_validation(checks: list[rnnstab.ValidationCheck]) -> None:
    table = Table(title="rnnstab validate (natural logs; exponents in nats per step)")
    for column in ("check", "expected", "measured", "tolerance", "result", "source"):
        table.add_column(column)
    sources: list[str] = []
    for c in checks:
        if c.source not in sources:
            sources.append(c.source)
        table.add_row(
            c.name,
            ("≤ " if c.comparison == "≤" else "") + f"{c.expected:.8g}",
            f"{c.measured:.8g}",
            f"{c.tolerance:.3g}",
            "[green]PASS[/green]" if c.passed else "[red]FAIL[/red]",
            f"[{sources.index(c.source) + 1}]",
        )
    console_out = Console()
    console_out.print(table)
    for j, source in enumerate(sources, start=1):
        console_out.print(f"[{j}] {source}", highlight=False, markup=False)
    failed = [c.name for c in checks if not c.passed]
    console_out.print(
        f"{len(checks) - len(failed)} of {len(checks)} checks passed"
        + (f"; FAILED: {', '.join(failed)}" if failed else "")
    )


def _non_negative(name: str, value: float) -> float:
    if not np.isfinite(value) or value < 0:
        raise rnnstab.InvalidArgumentError(f"{name} must be a finite number ≥ 0, got {value}")
    return float(value)


def _qr_interval(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        interval = int(value)
    except ValueError:
        raise rnnstab.InvalidArgumentError(f"--qr-every must be auto or a positive integer, got {value!r}") from None
    return _checks.positive_int("--qr-every", interval)


def _steps_list(name: str, value: str | None, steps: int) -> list[int]:
    if value is None:
        return [t for t in (10, 100) if t <= steps] or [steps]
    try:
        chosen = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise rnnstab.InvalidArgumentError(f"{name} must be comma-separated integers, got {value!r}") from None
    bad = [t for t in chosen if not 1 <= t <= steps]
    if bad:
        raise rnnstab.InvalidArgumentError(f"{name} must hold steps in 1..{steps} (--steps), got {bad}")
    return chosen


def _print_summary(summary: dict[str, Any]) -> None:
    table = Table(title="rnnstab trace (natural logs)", show_header=False)
    rows = [
        ("activation, γ", f"{summary['activation']}, {summary['gamma']:.6g}"),
        ("δ = γ‖W‖₂", f"{summary['delta']:.6g}  (‖W‖₂ = {summary['spectral_norm_W']:.6g})"),
        ("n, T, batch", f"{summary['hidden']}, {summary['steps']}, {summary['batch']}"),
        ("log‖J_T‖₂ (median)", f"{summary['log_spectral_final_median']:.6g}"),
        ("bound T·log δ", f"{summary['log_bound_final']:.6g}"),
        ("rate (median, nats/step)", f"{summary['rate_per_step_median']:.4g}"),
        ("regimes", ", ".join(f"{k}: {v}" for k, v in summary["regimes"].items())),
        ("bound violations", str(summary["bound_violations"]) + ("  ← BUG" if summary["bound_violations"] else "")),
        ("files", f"{summary['files']['png']}\n{summary['files']['json']}"),
    ]
    for key, value in rows:
        table.add_row(key, value)
    Console().print(table)


_ANALYZE_HELP = (
    "Audit the recurrent weights of a real, trained RNN: do its gradients vanish or explode, how fast, and why.\n\n"
    "PATH is one of:\n\n"
    "• .pt/.pth/.ckpt/.bin (torch.save): a torch.nn.RNN state_dict (model.state_dict()) or a checkpoint dict "
    "nesting one at any depth (keys such as rnn.weight_hh_l0, rnn.weight_hh_l1_reverse; several RNNs are told apart "
    "by their prefix). Read with torch.load(weights_only=True): tensors and plain containers only, nothing runs.\n\n"
    "• a whole pickled module (torch.save(model)): only with --trust-pickle. UNSAFE: unpickling runs any code the "
    "file names; use it only for files from a source you trust (or save model.state_dict() instead).\n\n"
    "• .safetensors: the same keys as a state_dict.\n\n"
    "• .npz: the same keys, or one recurrent matrix W (or weight_hh) with optional input weights U (or weight_ih) "
    "and bias b (or bias); --activation required.\n\n"
    "• .npy: one square recurrent matrix W; --activation required. No input weights are saved, so the inputs "
    "x_t (size n) are added to the pre-activation (U = I).\n\n"
    "Every layer and direction is audited along the trajectories the real network runs: layer k > 0 is driven by "
    "the outputs of layer k − 1 (both directions concatenated), a reverse direction reads its sequence backwards. "
    "Only vanilla RNNs (nn.RNN, tanh or relu) are supported: GRU and LSTM weights are refused, by name.\n\n"
    "Writes OUT/report.md, OUT/report.html and OUT/summary.json. Exit codes: 0 done; 2 bad input (one error: line); "
    "3 the δ^t bound was violated (a bug in rnnstab)."
)


@app.command("analyze", help=_ANALYZE_HELP)
def analyze_command(
    path: Annotated[Path, typer.Argument(help="The saved model or matrix (formats above).", show_default=False)],
    activation: Annotated[
        str | None,
        typer.Option(
            help="σ. For nn.RNN weights tanh (the default: a state_dict does not record it) or relu; a pickled "
            f"module records its own. Required for .npy/.npz matrices, one of: {', '.join(rnnstab.activation_names())}."
        ),
    ] = None,
    inputs: Annotated[
        Path | None,
        typer.Option(
            help="Your input sequences for layer 0: a .npy or .pt array of shape (batch, T, m), or (T, m) for one "
            "sequence; m must be the input size of layer 0. Default: synthetic N(0, scale²) inputs."
        ),
    ] = None,
    input_scale: Annotated[
        float | None, typer.Option(help="Standard deviation of the synthetic inputs. Default 1.")
    ] = None,
    steps: Annotated[int | None, typer.Option(help="T of the synthetic inputs. Default 200.")] = None,
    batch: Annotated[int | None, typer.Option(help="Number of synthetic input sequences. Default 8.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic inputs.")] = 0,
    trust_pickle: Annotated[
        bool,
        typer.Option(
            "--trust-pickle",
            help="Allow unpickling arbitrary Python objects (a whole nn.Module). UNSAFE: a malicious file runs code "
            "when loaded. Only for files you trust.",
        ),
    ] = False,
    out: Annotated[Path, typer.Option(help="Directory for the report.")] = Path("rnnstab-results/analyze"),
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the layers and the audit as JSON on stdout.")
    ] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar, and only the report's location.")] = False,
) -> None:
    """Audit the layers of a saved RNN (help: :data:`_ANALYZE_HELP`)."""
    with _user_errors(), _warnings_as_lines():
        layers = rnnstab.load_recurrent_layers(path, activation=activation, trust_pickle=trust_pickle)
        x = rnnstab.load_inputs(inputs) if inputs is not None else None
        out_dir = _io.output_dir(out)
        names = [layer.name for layer in layers]
        with _progress(quiet or json_output) as progress:
            task = progress.add_task("audit", total=len(layers))
            result = rnnstab.analyze(
                layers,
                inputs=x,
                input_scale=input_scale,
                steps=steps,
                batch=batch,
                seed=seed,
                progress=lambda name: progress.update(task, description=name, completed=names.index(name)),
            )
        synthetic = {"input_scale": 1.0 if input_scale is None else input_scale, "seed": seed} if x is None else {}
        parameters = {
            "path": str(path),
            "inputs": "synthetic N(0, input_scale²)" if x is None else str(inputs),
            **synthetic,
            "steps": result.rows[0].steps,
            "batch": result.rows[0].trajectories,
            "trust_pickle": trust_pickle,
        }
        report = rnnstab.write_audit_report(
            result, out_dir, title=f"rnnstab analyze {path.name}", parameters=parameters
        )
    # what summary.json holds, plus where each layer came from
    summary = {**report.summary, "layers": [{"name": layer.name, **layer.details()} for layer in layers]}
    if json_output:
        typer.echo(json.dumps(_io.finite_or_none(summary), indent=2, ensure_ascii=False))
    elif quiet:
        typer.echo(str(report.html))
    else:
        _print_analysis(layers, result, report)
    if not result.bound_holds:
        console.print(
            "[bold red]BUG: a computed ‖J_t‖₂ exceeded δ^t beyond float rounding — a bug in rnnstab, see the "
            "report[/bold red]",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(3)


_INITS_HELP = (
    "Compare recurrent-weight initialisation schemes: what each does to ‖W‖₂, ρ(W) and the gradients.\n\n"
    "For each scheme, SAMPLES matrices of size n × n are drawn; the table shows, as mean ± standard deviation over "
    "samples: ‖W‖₂ and ρ(W); δ = γ‖W‖₂ (δ < 1, i.e. ‖W‖₂ < 1/γ, proves that gradients vanish); Henrici's "
    "non-normality index; the transient growth max_t ‖W^t‖₂; the measured gradient rate (nats/step) along "
    "input-driven trajectories g_t = σ(W g_(t-1) + U x_t) with U ~ N(0, 1/m), x ~ N(0, input_scale²); the memory "
    "horizon (steps until ‖∂g_t/∂g_0‖₂ falls by 10⁻³, extrapolated from the rate past T, or unbounded); a verdict.\n\n"
    "Writes OUT/report.html (self-contained), OUT/report.md, OUT/summary.json and OUT/figures/*.png. "
    "Exit code 2 on bad options, 3 if a computed norm broke the δ^t bound (a bug in rnnstab).\n\n"
    f"Schemes: {', '.join(rnnstab.scheme_names())}."
)


@app.command("inits", help=_INITS_HELP)
def inits(
    hidden: Annotated[int, typer.Option(help="Hidden size n.")] = 256,
    activation: _Activation = "tanh",
    gamma: _Gamma = None,
    scheme: Annotated[
        list[str] | None,
        typer.Option(help="Scheme(s) to compare: repeat the option or give a comma list. Default: all."),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            help="A scheme parameter as SCHEME.NAME=VALUE, e.g. spectral_radius.rho=0.5 or gaussian.gain=1.2 "
            "(repeatable). Parameters: gain (gaussian, orthogonal, xavier_*, kaiming_*), scale (scaled_identity), "
            "rho (spectral_radius, sparse_echo_state), density (sparse_echo_state), sigma (spectral_norm), "
            "g (weight_norm), input_variance (critical)."
        ),
    ] = None,
    samples: Annotated[int, typer.Option(help="Matrices drawn per scheme (spectra use them all).")] = 20,
    jacobian_samples: Annotated[
        int, typer.Option(help="Of those, how many drive trajectories (rate, horizon, transient growth).")
    ] = 4,
    steps: Annotated[int, typer.Option(help="Horizon T of the trajectories.")] = 100,
    batch: Annotated[int, typer.Option(help="Input sequences per traced matrix.")] = 2,
    inputs: Annotated[int, typer.Option(help="Input size m (U is n × m, drawn N(0, 1/m)).")] = 4,
    input_scale: Annotated[
        float, typer.Option(help="Standard deviation of the inputs x_t (0: autonomous trajectories).")
    ] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed of the weights, U and the inputs.")] = 0,
    out: Annotated[Path, typer.Option(help="Directory for the report.")] = Path("rnnstab-inits"),
    json_output: Annotated[bool, typer.Option("--json", help="Print summary.json's content on stdout.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar; print only the report's location.")] = False,
) -> None:
    """Compare initialisation schemes (help: :data:`_INITS_HELP`)."""
    with _user_errors():
        act = rnnstab.get_activation(activation, gamma=gamma)
        sizes = {
            name: _checks.positive_int(name, value)
            for name, value in (
                ("--hidden", hidden),
                ("--samples", samples),
                ("--jacobian-samples", jacobian_samples),
                ("--steps", steps),
                ("--batch", batch),
                ("--inputs", inputs),
            )
        }
        input_scale = _non_negative("--input-scale", input_scale)
        chosen = [name.strip() for item in scheme or [] for name in item.split(",") if name.strip()] or None
        overrides = _scheme_params(param or [])
        out_dir = _io.output_dir(out)
        with _progress(quiet or json_output) as progress:
            names = chosen or rnnstab.scheme_names()
            task = progress.add_task("schemes", total=len(names))

            def advance(name: str) -> None:
                progress.update(task, description=name, completed=names.index(name) if name in names else 0)

            result = rnnstab.audit_schemes(
                sizes["--hidden"],
                act,
                schemes=chosen,
                samples=sizes["--samples"],
                jacobian_samples=sizes["--jacobian-samples"],
                steps=sizes["--steps"],
                batch=sizes["--batch"],
                inputs=sizes["--inputs"],
                input_scale=input_scale,
                seed=seed,
                params=overrides,
                progress=advance,
            )
        parameters = {
            "hidden": sizes["--hidden"],
            "activation": act.name,
            "gamma": act.gamma,
            "schemes": result.names,
            "params": overrides,
            "samples": sizes["--samples"],
            "jacobian_samples": min(sizes["--jacobian-samples"], sizes["--samples"]),
            "steps": sizes["--steps"],
            "batch": sizes["--batch"],
            "inputs": sizes["--inputs"],
            "input_scale": input_scale,
            "seed": seed,
        }
        title = f"rnnstab inits — {act.name}, n = {sizes['--hidden']}, {sizes['--samples']} samples per scheme"
        report = rnnstab.write_audit_report(result, out_dir, title=title, parameters=parameters)
    if json_output:
        typer.echo(json.dumps(report.summary, indent=2, ensure_ascii=False))
    elif quiet:
        typer.echo(str(report.html))
    else:
        _print_audit(result, title)
        Console(soft_wrap=True).print(
            f"report: [bold]{report.html}[/bold]  (also report.md, summary.json, figures/)", highlight=False
        )
    if not report.bound_holds:
        console.print("[bold red]BUG: a computed ‖J_t‖₂ exceeded δ^t beyond float rounding — see the report[/bold red]")
        raise typer.Exit(3)


def _scheme_params(items: list[str]) -> dict[str, dict[str, float]]:
    """Parse --param SCHEME.NAME=VALUE options into {scheme: {name: value}}."""
    out: dict[str, dict[str, float]] = {}
    for item in items:
        key, equals, value = item.partition("=")
        scheme_name, dot, name = key.partition(".")
        try:
            number = float(value)
        except ValueError:
            number = None
        if not (equals and dot and scheme_name.strip() and name.strip()) or number is None:
            raise rnnstab.InvalidArgumentError(
                f"--param must look like SCHEME.NAME=VALUE (e.g. spectral_radius.rho=0.9), got {item!r}"
            )
        out.setdefault(scheme_name.strip(), {})[name.strip()] = number
    return out


def _print_audit(result: rnnstab.Audit, title: str) -> None:
    header, body = audit_report.table_rows(result, compact=True)
    table = Table(title=f"{title} (natural logs; means over samples — spreads in the report)")
    for column in header:
        table.add_column(column, overflow="fold")
    for cells in body:
        table.add_row(*(escape(cell) for cell in cells))
    out = Console(soft_wrap=True)
    if not out.is_terminal:  # a log or pipe has no width of its own: keep the table's rows whole
        out.width = 150
    out.print(table)
    for row in result.rows:
        out.print(f"[bold]{escape(row.name)}[/bold]: {escape(row.verdict)}", highlight=False)


def _print_analysis(layers: list[rnnstab.RecurrentLayer], result: rnnstab.Audit, report: rnnstab.Report) -> None:
    out = Console(soft_wrap=True)
    for layer in layers:
        out.print(
            f"[bold]{escape(layer.name)}[/bold]: {escape(', '.join(layer.keys))} (n = {layer.hidden_size}, "
            f"m = {layer.input_size}; {escape(layer.activation)}: {escape(layer.activation_source)})",
            highlight=False,
        )
    _print_audit(result, "rnnstab analyze")
    out.print(f"report: [bold]{report.html}[/bold]  (also report.md, summary.json, figures/)", highlight=False)


_IDENTITIES_HELP = (
    "Check numerically the results around gradient stability, each with PASS/FAIL.\n\n"
    "Each row states a claim (momentum equals a running average, the second-order Taylor model, Newton's step, "
    "the weight-normalisation gradient, …), the discrepancy measured on a small real problem, and the tolerance it "
    "must stay under (a few hundred rounding units of the dtype, a slope, or a Monte-Carlo confidence interval). "
    "Exit code 1 when any check fails, 2 on bad options.\n\n"
    f"Checks: {', '.join(rnnstab.IDENTITIES)}."
)


@app.command("identities", help=_IDENTITIES_HELP)
def identities(
    json_output: Annotated[bool, typer.Option("--json", help="Print the results as a JSON list on stdout.")] = False,
    seed: Annotated[int, typer.Option(help="Seed for every random network, data set and Monte-Carlo sample.")] = 0,
    dtype: Annotated[
        str, typer.Option(help="float64 (tolerances ≈ 1e-12) or float32 (tolerances ≈ 1e-4).")
    ] = "float64",
    only: Annotated[
        list[str] | None,
        typer.Option(help="Run only this check (repeat the option for several). Default: all."),
    ] = None,
) -> None:
    with _user_errors():
        results = rnnstab.run_identities(seed=seed, dtype=_checks.dtype("--dtype", dtype), only=only or None)
    if json_output:
        record = [r.to_dict() for r in results]
        typer.echo(json.dumps(record, indent=2, ensure_ascii=False))
    else:
        table = Table(title=f"rnnstab identities (seed {seed}, {dtype})")
        table.add_column("check")
        table.add_column("claim", overflow="fold")
        table.add_column("discrepancy", justify="right")
        table.add_column("tolerance", justify="right")
        table.add_column("result")
        for r in results:
            verdict = "[green]PASS[/green]" if r.passed else "[red]FAIL[/red]"
            table.add_row(r.name, escape(r.claim), f"{r.discrepancy:.3g}", f"{r.tolerance:.3g}", verdict)
        Console().print(table)
        failed = [r.name for r in results if not r.passed]
        console.print(
            f"{len(results) - len(failed)}/{len(results)} passed" + (f"; failed: {', '.join(failed)}" if failed else "")
        )
    if any(not r.passed for r in results):
        raise typer.Exit(1)


_TRAIN_HELP = (
    "Train a vanilla RNN g_t = σ(W g_{t-1} + U x_t + b) on a synthetic long-memory task and watch its gradients.\n\n"
    "Every step logs the loss, ‖∇L‖, the per-timestep gradient norms ‖∂L/∂g_t‖ (how far back the loss reaches), "
    "and under weight normalisation ‖v‖, g and g/‖v‖; every --monitor-every steps also ‖W‖₂, ρ(W) and the "
    "Jacobian rate of the current weights (nats per step: < 0 vanishing, > 0 exploding).\n\n"
    "--lr and --batch-size take several values (repeat the flag or give a comma list, e.g. --lr 0.1,1,10): every "
    "combination is trained from the same seed, each logged to OUT/runs/lr<LR>_batch<B>.jsonl (one JSON line per "
    "step, flushed at once: an interrupted run leaves a usable log). OUT/training.png (loss, ‖∇L‖, ‖W‖₂, ρ(W), "
    "rate), OUT/state_gradients.png (‖∂L/∂g_t‖ over step × t), OUT/weightnorm.png (--param weight_norm: ‖v‖ and "
    "g/‖v‖ for each rate and batch size) and OUT/summary.json are written at the end.\n\n"
    "Exit codes: 0 done; 1 a run stopped on a NaN/Inf loss, gradient or weight (its log is kept, the other runs "
    "go on); 2 bad input; 130 interrupted."
)


@app.command("train", help=_TRAIN_HELP)
def train_command(
    task: Annotated[
        str,
        typer.Option(help=f"Task: {'; '.join(f'{k} — {t.description}' for k, t in rnnstab.TASKS.items())}."),
    ] = "adding",
    length: Annotated[int, typer.Option(help="Sequence length T (the memory the task needs).")] = 50,
    hidden: Annotated[int, typer.Option(help="Hidden size n.")] = 64,
    activation: _Activation = "tanh",
    init: Annotated[
        str, typer.Option(help=f"Initial W, a scheme from: {', '.join(sorted(rnnstab.weights.SCHEMES))}.")
    ] = "orthogonal",
    param: Annotated[
        str,
        typer.Option(
            help="How W is trained: plain (W itself), weight_norm (w_i = g_i·v_i/‖v_i‖ per row) or orthogonal "
            "(W = Q₀·exp(A − Aᵀ), orthogonal at every step)."
        ),
    ] = "plain",
    optimizer: Annotated[
        str,
        typer.Option(help="sgd (θ −= lr·g); momentum (v = αv + lr·g, θ −= v); ema (u = βu + (1−β)g, θ −= lr·u); adam."),
    ] = "adam",
    lr: Annotated[
        list[str] | None,
        typer.Option(
            help="Learning rates > 0, several allowed (0.1,1,10 or log:0.01:1:5). Default: sgd 0.05, momentum "
            "0.005, ema 0.05, adam 0.001."
        ),
    ] = None,
    momentum: Annotated[
        float, typer.Option("--momentum", "--beta", help="α (momentum), β (ema) or β₁ (adam), in (0, 1).")
    ] = 0.9,
    beta2: Annotated[float, typer.Option(help="Adam's β₂, in (0, 1).")] = 0.999,
    bias_correction: Annotated[
        bool, typer.Option(help="Adam's bias correction m/(1−β₁^t), v/(1−β₂^t) (adam only).")
    ] = True,
    batch_size: Annotated[
        list[str] | None, typer.Option(help="Sequences per step, several allowed (8,64). Default: 32.")
    ] = None,
    clip: Annotated[float | None, typer.Option(help="Rescale the gradient to this norm when it is larger.")] = None,
    steps: Annotated[int, typer.Option(help="Training steps.")] = 300,
    seed: Annotated[int, typer.Option(help="Seed of W, U, the readout and the data: same seed, same log.")] = 0,
    dtype: Annotated[str, typer.Option(help="float32 or float64 for training (the monitor uses float64).")] = "float32",
    device: Annotated[str, typer.Option(help="auto (CUDA when present), cpu, cuda or cuda:N.")] = "auto",
    monitor_every: Annotated[
        int,
        typer.Option(
            help="Measure ‖W‖₂, ρ(W) and the Jacobian rate every this many steps (and at the first and last); "
            "at the defaults this costs about 10 % of the training time."
        ),
    ] = 50,
    out: Annotated[Path, typer.Option(help="Directory for runs/, the figures and summary.json.")] = Path(
        "rnnstab-results/train"
    ),
    json_output: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Train and monitor (help: :data:`_TRAIN_HELP`)."""
    with _user_errors():
        # dict.fromkeys drops repeated values (they would share one log file) and keeps the order given
        rates = [_checks.positive_float("--lr", v) for v in parse_values("--lr", lr)] if lr else [default_lr(optimizer)]
        rates = list(dict.fromkeys(rates))
        batches = [
            _checks.positive_int("--batch-size", v)
            for v in parse_values("--batch-size", batch_size or ["32"], kind="int")
        ]
        batches = list(dict.fromkeys(batches))
        out_dir = _io.output_dir(out)
        options: dict[str, Any] = {
            "length": length,
            "hidden": hidden,
            "activation": activation,
            "init": init,
            "param": param,
            "optimizer": optimizer,
            "momentum": momentum,
            "beta2": beta2,
            "bias_correction": bias_correction,
            "clip": clip,
            "steps": steps,
            "seed": seed,
            "dtype": dtype,
            "device": device,
            "monitor_every": monitor_every,
        }
        runs: list[rnnstab.TrainingRun] = []
        try:
            with _train_progress(quiet or json_output) as progress:
                bar = progress.add_task("train", total=steps * len(rates) * len(batches), loss="", grad="")

                def show(record: rnnstab.StepRecord, _model: Any) -> None:
                    progress.update(bar, advance=1, loss=f"{record.loss:.4g}", grad=f"{record.grad_norm:.3g}")

                for rate in rates:
                    for batch in batches:
                        label = f"lr{rate:g}_batch{batch}"
                        progress.update(bar, description=label)
                        run = rnnstab.train(
                            task,
                            lr=rate,
                            batch_size=batch,
                            log_path=out_dir / "runs" / f"{label}.jsonl",
                            callback=show,
                            **options,
                        )
                        runs.append(run)
                        if run.stop_reason:
                            console.print(f"[red]{label}:[/red] {run.stop_reason}", highlight=False, soft_wrap=True)
        except KeyboardInterrupt:
            console.print(
                f"[red]interrupted[/red]: the logs so far are in {out_dir / 'runs'} (read them with load_training_log)",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(130) from None
        frames = [run.frame() for run in runs]
        figures = rnnstab.write_training_figures(
            frames, out_dir, title=f"{task}, T = {length}, n = {hidden}, {param}, {optimizer}"
        )
        summary = {
            "task": task,
            "baseline_loss": runs[0].baseline_loss,
            "runs": [_run_summary(run) for run in runs],
            "files": {"figures": [str(f) for f in figures], "summary": str(out_dir / "summary.json")},
            "metadata": _metadata(task=task, lr=[r.parameters["lr"] for r in runs], **options),
        }
        _io.write_json(out_dir / "summary.json", summary)
        if json_output:
            typer.echo(json.dumps(_io.finite_or_none(summary), indent=2, ensure_ascii=False))
        elif not quiet:
            _print_training(summary)
    if any(run.stop_reason for run in runs):
        raise typer.Exit(1)


def _run_summary(run: rnnstab.TrainingRun) -> dict[str, Any]:
    """The numbers of one run that the summary table and summary.json show."""
    frame = run.frame()
    monitored = frame.dropna(subset=["spectral_norm_W"])
    last = monitored.iloc[-1] if len(monitored) else None
    first = frame.iloc[0]
    summary = {
        "lr": run.parameters["lr"],
        "batch_size": run.parameters["batch_size"],
        "status": run.status,
        "stop_reason": run.stop_reason,
        "steps_done": len(frame),
        "loss_first": float(first["loss"]),
        "loss_final": run.final_loss,
        "loss_min": float(frame["loss"].min()),
        "spectral_norm_W_final": None if last is None else float(last["spectral_norm_W"]),
        "spectral_radius_W_final": None if last is None else float(last["spectral_radius_W"]),
        "jacobian_rate_final": None if last is None else float(last["jacobian_rate"]),
        "seconds": round(run.seconds, 3),
        "monitor_fraction": round(float(frame["monitor_seconds"].sum()) / max(run.seconds, 1e-9), 4),
        "log": str(run.log_path),
    }
    if run.parameters["param"] == "weight_norm":
        for key in ("wn_v_norm", "wn_g_over_v"):
            summary[f"{key}_first"], summary[f"{key}_final"] = float(first[key]), float(frame[key].iloc[-1])
    return summary


def _print_training(summary: dict[str, Any]) -> None:
    out = Console(soft_wrap=True)  # one line per run, whole in logs and pipes
    out.print(
        f"[bold]rnnstab train[/bold] {summary['task']} (memoryless baseline loss {summary['baseline_loss']:.3g})",
        highlight=False,
    )
    for run in summary["runs"]:
        status = run["status"] if run["status"] == "finished" else f"[red]stopped at step {run['steps_done']}[/red]"
        line = (
            f"  lr {run['lr']:g}, batch {run['batch_size']}: {status} in {run['seconds']:.1f} s; "
            f"loss {run['loss_first']:.4g} → {run['loss_final']:.4g} (min {run['loss_min']:.4g}); "
            f"‖W‖₂ {_maybe(run['spectral_norm_W_final'])}, ρ(W) {_maybe(run['spectral_radius_W_final'])}, "
            f"Jacobian rate {_maybe(run['jacobian_rate_final'])} nats/step"
        )
        if "wn_v_norm_final" in run:
            line += (
                f"; ‖v‖ {run['wn_v_norm_first']:.3g} → {run['wn_v_norm_final']:.3g}, "
                f"g/‖v‖ {run['wn_g_over_v_first']:.3g} → {run['wn_g_over_v_final']:.3g}"
            )
        out.print(line, highlight=False)
    out.print("figures: " + ", ".join(summary["files"]["figures"]), highlight=False)


def _maybe(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


def _train_progress(disable: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}[/bold]"),
        BarColumn(bar_width=20),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("loss {task.fields[loss]}  ‖∇L‖ {task.fields[grad]}"),
        console=console,
        disable=disable or not console.is_terminal,
        transient=True,
    )


def _progress(disable: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=disable or not console.is_terminal,  # a bar in a log or pipe is noise (and a stray blank line)
        transient=True,  # an error then leaves one line, not a stopped bar
    )


def _metadata(**parameters: Any) -> dict[str, Any]:
    return {
        "parameters": parameters,
        "rnnstab": rnnstab.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
