"""``rnnstab identities``: the numerical checks of the results around gradient stability."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

import rnnstab
from rnnstab import _checks
from rnnstab.cli._common import _names, _user_errors, app, console

_IDENTITIES_HELP = (
    "Check numerically the results around gradient stability, each with PASS/FAIL.\n\n"
    "Each row states a claim (momentum equals a running average, the second-order Taylor model and its optimal step "
    "ε* = gᵀg/gᵀHg, Newton's step, the weight-normalisation gradient, …), the discrepancy measured on a small real "
    "problem, and the tolerance it must stay under: a rounding-error bound in units of the dtype's eps (e.g. "
    "momentum-ema: steps × eps × (1 + max |θ|)), 4 × the estimated error of the extrapolated Taylor remainder as a "
    "fraction of the curvature term (at most 0.1), or 4 Monte-Carlo standard errors; each row's JSON details give "
    "the reason. "
    "Exit code 1 when any check fails, 2 on bad options.\n\n"
    f"Checks: {', '.join(rnnstab.IDENTITIES)}."
)


@app.command("identities", help=_IDENTITIES_HELP)
def identities(
    ctx: typer.Context,
    json_output: Annotated[bool, typer.Option("--json", help="Print the results as a JSON list on stdout.")] = False,
    seed: Annotated[int, typer.Option(help="Seed for every random network, data set and Monte-Carlo sample.")] = 0,
    dtype: Annotated[
        str,
        typer.Option(
            help="float64 (eps 2.2e-16: rounding tolerances ≈ 1e-14 to 1e-12) or float32 (eps 1.2e-7: ≈ 5e-6 to 1e-3)."
        ),
    ] = "float64",
    only: Annotated[
        list[str] | None,
        typer.Option(help="Run only these checks (repeat the option, or give a comma list). Default: all."),
    ] = None,
) -> None:
    with _user_errors(ctx):
        names = _names("--only", only, list(rnnstab.IDENTITIES))
        results = rnnstab.run_identities(seed=seed, dtype=_checks.dtype("--dtype", dtype), only=names)
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
            if r.kind == "report" and r.passed:  # only finiteness is checked: there is no discrepancy to show
                table.add_row(r.name, escape(r.claim), "—", "—", "[green]report[/green]")
                continue
            table.add_row(r.name, escape(r.claim), f"{r.discrepancy:.3g}", f"{r.tolerance:.3g}", verdict)
        Console().print(table)
        console.print(_tally(results))
    if any(not r.passed for r in results):
        raise typer.Exit(1)


def _tally(results: list[rnnstab.IdentityCheck]) -> str:
    """``10/10 passed; 1 report (newton-rnn)``: a report states no identity, so it is not counted as one passed."""
    checks = [r for r in results if r.kind == "identity"]
    reports = [r.name for r in results if r.kind == "report"]
    failed = [r.name for r in results if not r.passed]
    parts = [f"{sum(r.passed for r in checks)}/{len(checks)} passed"] if checks else []
    if reports:
        parts.append(f"{len(reports)} {'report' if len(reports) == 1 else 'reports'} ({', '.join(reports)})")
    if failed:
        parts.append(f"failed: {', '.join(failed)}")
    return "; ".join(parts)
