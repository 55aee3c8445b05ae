"""``rnnstab sweep`` and ``rnnstab report``: a grid of configurations, and its report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

import rnnstab
from rnnstab import _io, store
from rnnstab.cli._common import (
    _exit_on_bound_violation,
    _sweep_progress,
    _user_errors,
    _warnings_as_lines,
    app,
    console,
)

_SWEEP_PANEL = "Grid (each option takes several values)"
_RUN_PANEL = "Execution"


_SWEEP_HELP = (
    "Sweep a grid of (activation, γ, δ, n, T, …) × seeds and report where gradients vanish or explode.\n\n"
    "Every configuration's W is scaled so that γ‖W‖₂ = δ, and its exact Jacobian norms ‖∂g_t/∂g_0‖ (t = 1..T) are "
    "computed for --batch input sequences; configurations sharing (activation, γ, n, T, dtype) run as one batched "
    "product. Each configuration × seed is saved in OUT/records as soon as it is done, so an interrupted sweep loses "
    "at most the batched product in flight: rerun the same command with --resume. At the end OUT/report.html "
    "(self-contained), report.md and summary.json are written (see rnnstab report).\n\n"
    "Grid options take several values: repeat the flag (--delta 0.5 --delta 1), give a comma list "
    "(--activation tanh,relu), and for numbers a range START:STOP:COUNT — COUNT evenly spaced values including both "
    "ends (0.5:1.5:11 = 0.5, 0.6, …, 1.5) — or log:START:STOP:COUNT, spaced geometrically (log:0.1:10:5 = 0.1, "
    "0.32, 1, 3.2, 10).\n\n"
    "Exit codes: 0 done; 2 bad input (one error: line); 3 the δ^t bound was violated (a bug in rnnstab); "
    "130 interrupted."
)
_REPORT_HELP = (
    "Write DIRECTORY/report.md, report.html (self-contained, figures embedded) and summary.json for a sweep.\n\n"
    "The report names the network swept (every parameter the grid kept fixed, the varied ones, the batch, input "
    "size and seeds), tabulates every configuration (‖W‖₂, ρ(W), the measured rate with its spread over seeds, "
    "log δ, the slack, the largest excess over the δ^t bound, the verdict and the gradient half-life); draws "
    "log‖J_t‖₂ against t with the t·log δ lines, a phase diagram of the rate over the grid, and the rate against "
    "log δ; and says in plain words, per activation, where gradients vanished or exploded. Exit code 3 if the "
    "bound was violated."
)


@app.command(help=_SWEEP_HELP)
def sweep(
    ctx: typer.Context,
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
        typer.Option(
            help="Horizons T: Jacobians ∂g_t/∂g_0 for t = 1..T (integers also take START:STOP). Default: 300.",
            rich_help_panel=_SWEEP_PANEL,
        ),
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
            help="Standard deviations of the inputs x_t (≥ 0; 0 runs the network without input); larger inputs "
            "saturate σ more. Default: 1.",
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
        int | None,
        typer.Option(help="Input sequences per network (one trace each). Default: 8.", rich_help_panel=_SWEEP_PANEL),
    ] = None,
    inputs: Annotated[
        int | None,
        typer.Option(help="Input size m (U is n × m, drawn N(0, 1/m)). Default: 4.", rich_help_panel=_SWEEP_PANEL),
    ] = None,
    out: Annotated[
        Path, typer.Option(help="Sweep directory: records, sweep.json and the report.", rich_help_panel=_RUN_PANEL)
    ] = Path("rnnstab-results/sweep"),
    resume: Annotated[
        bool,
        typer.Option(
            help="Continue the sweep in --out: finished configurations are kept, the rest (and any corrupted "
            "record) computed. With no grid option, every grid the sweep was run with is finished; with grid "
            "options, that grid is run and added to the sweep. The fixed parameters (--batch, --inputs) are the "
            "sweep's; given, they must match.",
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
            help="Networks per batched product (default: about 8 MiB of product on a CPU, which stays in cache; "
            "256 MiB worth on a GPU). It changes speed and memory, and the results at most in their last bits.",
            rich_help_panel=_RUN_PANEL,
        ),
    ] = None,
    make_report: Annotated[
        bool, typer.Option("--report/--no-report", help="Write the report at the end.", rich_help_panel=_RUN_PANEL)
    ] = True,
    json_output: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print a machine-readable summary as JSON on stdout: the run's counts and times, and with the "
            "report, summary.json's content.",
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar, and only the report's location.")] = False,
) -> None:
    """Sweep a grid and write its report (help: :data:`_SWEEP_HELP`)."""
    with _user_errors(ctx), _warnings_as_lines():
        options = {
            "activation": activation,
            "gamma": gamma,
            "delta": delta,
            "hidden": hidden,
            "steps": steps,
            "seeds": seeds,
            "input_scale": input_scale,
            "init": init,
            "dtype": dtype,
        }
        # --resume with no grid option finishes every saved grid; --batch/--inputs are fixed parameters, not grid
        # options: given there, they must match the sweep's, and left out, they are the sweep's
        resume_all = resume and all(value is None for value in options.values())
        grid = None
        if not resume_all:
            fixed = _fixed_parameters(out) if resume else None
            grid = rnnstab.Grid.from_strings(
                **options,
                batch=batch if batch is not None else fixed[0] if fixed else 8,
                inputs=inputs if inputs is not None else fixed[1] if fixed else 4,
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

                execution: dict[str, Any] = {
                    "executor": executor,
                    "device": device,
                    "workers": workers,
                    "scheduler": scheduler,
                    "stack": stack,
                    "progress": show,
                }
                if grid is None:
                    grids, results = rnnstab.resume_sweep(out, batch=batch, inputs=inputs, **execution)
                else:
                    grids, results = [grid], [rnnstab.run_sweep(grid, out, resume=resume, **execution)]
        except KeyboardInterrupt:
            # sweep.json is written before the first configuration runs: without it (Ctrl-C while the grid was
            # planned or a Dask cluster started) --resume would be refused, and a plain rerun starts afresh
            if (out / store.METADATA_FILE).is_file():
                message = (
                    f"every finished configuration is saved in {escape(str(out))}; "
                    "run the same command with --resume to finish"
                )
            else:
                again = "the same command without --resume" if resume else "the same command again"
                message = f"the sweep had not started: nothing was saved in {escape(str(out))}; run {again} to start it"
            console.print(f"[red]interrupted[/red]: {message}", highlight=False, soft_wrap=True)
            raise typer.Exit(130) from None
        result = results[-1]
        # saved grids overlap (a resume with more seeds holds the earlier grid): count distinct records
        tasks = len({task.key for g in grids for task in g.tasks()})
        computed = sum(r.tasks_computed for r in results)
        summary: dict[str, Any] = {
            "directory": str(result.directory),
            "grids": len(grids),
            "configurations": len({c.key for g in grids for c in g.configurations()}),
            "seeds": sorted({seed for g in grids for seed in g.seeds}),
            "tasks": tasks,
            "computed": computed,
            "skipped": tasks - computed,
            "recomputed": sum(r.tasks_recomputed for r in results),
            "batched_calls": sum(r.chunks for r in results),
            "seconds": round(sum(r.seconds_total for r in results), 3),
            "seconds_jacobian": round(sum(r.seconds_jacobian for r in results), 3),
            "executor": result.executor,
            "device": result.device,
        }
        if not make_report:
            _finish(summary, None, json_output=json_output, quiet=quiet)
            return
        if not (quiet or json_output):
            console.print("writing the report…", highlight=False)
        try:
            report = rnnstab.write_report(result.directory)
        except KeyboardInterrupt:
            directory = escape(str(result.directory))
            message = f"the sweep is complete in {directory}, its report is not: run rnnstab report {directory}"
            console.print(f"[red]interrupted[/red]: {message}", highlight=False, soft_wrap=True)
            raise typer.Exit(130) from None
        _finish(summary, report, json_output=json_output, quiet=quiet)


@app.command("report", help=_REPORT_HELP)
def report_command(
    ctx: typer.Context,
    directory: Annotated[str, typer.Argument(help="A sweep directory (rnnstab sweep --out).", metavar="DIRECTORY")],
    json_output: Annotated[bool, typer.Option("--json", help="Print summary.json's content on stdout.")] = False,
    quiet: Annotated[bool, typer.Option(help="Print only the report's location.")] = False,
) -> None:
    """Write the report of a sweep directory (help: :data:`_REPORT_HELP`)."""
    with _user_errors(ctx, {"directory": "DIRECTORY"}), _warnings_as_lines():
        _finish({}, rnnstab.write_report(directory), json_output=json_output, quiet=quiet)


def _fixed_parameters(out: Path) -> tuple[int, int] | None:
    """(--batch, --inputs) of the sweep in ``out``, or None where there is none to resume (refused later, by name)."""
    try:
        grid = rnnstab.saved_grids(out)[0]
    except rnnstab.RnnstabError:
        return None
    return grid.batch, grid.inputs


def _finish(summary: dict[str, Any], report: rnnstab.Report | None, *, json_output: bool, quiet: bool) -> None:
    """Print the outcome (JSON on stdout, or lines for a person) and exit 3 if the bound check failed."""
    if json_output:
        # summary.json's content exactly (a script needs no second read), after the run's own numbers (tasks,
        # seconds, …) where a sweep ran; where both name a key, the report's count of the records on disk wins
        shown = summary if report is None else {**summary, **report.summary}
        typer.echo(json.dumps(_io.finite_or_none(shown), indent=2, ensure_ascii=False))
    elif quiet:
        typer.echo(str(report.html) if report is not None else summary["directory"])
    else:
        out = Console(soft_wrap=True)  # long sentences stay whole lines in logs and pipes
        if "tasks" in summary:
            records = _io.plural(summary["tasks"], "record")
            grid = (
                f"{_io.plural(summary['configurations'], 'configuration')} × "
                f"{_io.plural(len(summary['seeds']), 'seed')}"
                if summary.get("grids", 1) == 1
                else f"the {summary['grids']} grids of this sweep"
            )
            calls = _io.plural(summary["batched_calls"], "batched call")
            out.print(
                f"[bold]sweep[/bold] {records} ({grid}) in {escape(summary['directory'])}: "
                f"{summary['computed']} computed, {summary['skipped']} already done"
                + (f", {summary['recomputed']} recomputed" if summary["recomputed"] else "")
                + f" ({summary['seconds']:.1f} s, {calls}, {summary['device']})",
                highlight=False,
            )
        if report is not None:
            for activation, sentences in report.conclusions.items():
                out.print(f"[bold]{activation}[/bold]", highlight=False)
                for sentence in sentences:
                    out.print(f"  • {sentence}", highlight=False)
            missing = report.summary["missing_records"]
            if missing:
                out.print(
                    f"[bold]unfinished[/bold]: {missing} of the {report.summary['planned_records']} planned records "
                    f"{'is' if missing == 1 else 'are'} missing and the conclusions above describe the rest only; "
                    f"rnnstab sweep --out {escape(str(report.directory))} --resume computes them",
                    highlight=False,
                )
            where = escape(str(report.html))
            out.print(f"report: [bold]{where}[/bold]  (also report.md, summary.json, figures/)", highlight=False)
    if report is not None and not report.bound_holds:
        bound = report.summary["bound"]
        at = bound["max_excess_at"]
        console.print(
            f"[bold red]BUG:[/bold red] a computed ‖J_t‖₂ exceeded δ^t beyond float rounding at {bound['violations']} "
            f"input × step pairs (worst by {bound['max_excess']:.3g} nats, {at['activation']} γ = {at['gamma']:g} "
            f"δ = {at['delta']:g}): a bug in rnnstab, never a finding; please report it with "
            f"{escape(str(report.directory))}",
            highlight=False,
            soft_wrap=True,
        )
        _exit_on_bound_violation(report.bound_holds)
