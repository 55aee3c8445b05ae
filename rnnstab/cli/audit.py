"""``rnnstab analyze`` and ``rnnstab inits``: the weight audit of a trained RNN and of initialisation schemes."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

import rnnstab
from rnnstab import _checks, _io, audit_report
from rnnstab.cli._common import (
    _Activation,
    _exit_on_bound_violation,
    _Gamma,
    _names,
    _progress,
    _user_errors,
    _warnings_as_lines,
    app,
)

_ANALYZE_HELP = (
    "Audit the recurrent weights of a real, trained RNN: do its gradients vanish or explode, how fast, and why.\n\n"
    "PATH is one of:\n\n"
    "• .pt/.pth/.ckpt/.bin/.tar (torch.save): a torch.nn.RNN state_dict (model.state_dict()) or a checkpoint dict "
    "nesting one at any depth (keys such as rnn.weight_hh_l0, rnn.weight_hh_l1_reverse; several RNNs are told apart "
    "by their prefix), or an nn.RNNCell's (weight_hh, …: one layer). Weights under weight normalisation "
    "(parametrizations.weight_hh_l0.original0/1, or weight_hh_l0_g/_v) are rebuilt as g·v/‖v‖. Read with "
    "torch.load(weights_only=True): tensors and plain containers only, nothing runs.\n\n"
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
    "Writes OUT/report.md, OUT/report.html, OUT/summary.json and OUT/figures/*.png. Exit codes: 0 done; "
    "2 bad input (one error: line); 3 the δ^t bound was violated (a bug in rnnstab)."
)


@app.command("analyze", help=_ANALYZE_HELP)
def analyze_command(
    ctx: typer.Context,
    path: Annotated[
        Path, typer.Argument(help="The saved model or matrix (formats above).", show_default=False, metavar="PATH")
    ],
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
            help="Your input sequences for layer 0: a .npy or .pt array of shape (batch, T, m) — batch first, even "
            "for a model built with batch_first=False — or (T, m) for one sequence; m must be the input size of "
            "layer 0. Default: synthetic N(0, scale²) inputs."
        ),
    ] = None,
    input_scale: Annotated[
        float | None, typer.Option(help="Standard deviation of the synthetic inputs (≥ 0; 0: no input). Default 1.")
    ] = None,
    steps: Annotated[int | None, typer.Option(help="T of the synthetic inputs. Default 200.")] = None,
    batch: Annotated[int | None, typer.Option(help="Number of synthetic input sequences. Default 8.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the synthetic inputs. Default 0.")] = None,
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
    with _user_errors(ctx) as made, _warnings_as_lines():
        # kept for summary.json and the report too (a gated network skipped next to a vanilla one): a script reading
        # the JSON would not see the stderr line
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", rnnstab.RnnstabWarning)
            layers = rnnstab.load_recurrent_layers(path, activation=activation, trust_pickle=trust_pickle)
        for warning in caught:
            warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
        notes = [str(w.message) for w in caught if issubclass(w.category, rnnstab.RnnstabWarning)]
        x = rnnstab.load_inputs(inputs) if inputs is not None else None
        out_dir = _io.output_dir(out, created=made)
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
        synthetic = (
            {"input_scale": 1.0 if input_scale is None else input_scale, "seed": 0 if seed is None else seed}
            if x is None
            else {}
        )
        parameters = {
            "path": str(path),
            "inputs": "synthetic N(0, input_scale²)" if x is None else str(inputs),
            **synthetic,
            "steps": result.rows[0].steps,
            "batch": result.rows[0].trajectories,
            "trust_pickle": trust_pickle,
            **({"warnings": notes} if notes else {}),
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
    _exit_on_bound_violation(result.bound_holds)


_INITS_HELP = (
    "Compare recurrent-weight initialisation schemes: what each does to ‖W‖₂, ρ(W) and the gradients.\n\n"
    "For each scheme, SAMPLES matrices of size n × n are drawn; the report shows, as mean ± standard deviation over "
    "samples (the table printed here: means only): ‖W‖₂ and ρ(W); δ = γ‖W‖₂ (δ < 1, i.e. ‖W‖₂ < 1/γ, proves "
    "that gradients vanish); Henrici's non-normality index; the transient growth max_t ‖W^t‖₂ and its step (“≥ …, "
    "still growing at T = …” where the horizon cut the growth off, ρ(W) > 1); the measured gradient "
    "rate (nats/step) along input-driven trajectories g_t = σ(W g_(t-1) + U x_t) with U ~ N(0, 1/m), "
    "x ~ N(0, input_scale²); the memory horizon (steps until ‖∂g_t/∂g_0‖₂ falls to 10⁻³, extrapolated from the rate "
    "past T, or unbounded); a verdict.\n\n"
    "Writes OUT/report.html (self-contained), OUT/report.md, OUT/summary.json and OUT/figures/*.png. "
    "Exit code 2 on bad options, 3 if a computed norm broke the δ^t bound (a bug in rnnstab).\n\n"
    f"Schemes: {', '.join(rnnstab.scheme_names())}."
)


@app.command("inits", help=_INITS_HELP)
def inits(
    ctx: typer.Context,
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
            "(repeatable, each SCHEME.NAME once). Parameters: gain (gaussian, orthogonal, xavier_*, kaiming_*), "
            "scale (scaled_identity), rho (spectral_radius, sparse_echo_state), density (sparse_echo_state), "
            "sigma (spectral_norm), g (weight_norm), input_variance (critical)."
        ),
    ] = None,
    samples: Annotated[int, typer.Option(help="Matrices drawn per scheme (spectra use them all).")] = 20,
    jacobian_samples: Annotated[
        int,
        typer.Option(
            help="Of those, how many drive trajectories (rate, horizon, transient growth); "
            "more than --samples means all."
        ),
    ] = 4,
    steps: Annotated[int, typer.Option(help="Horizon T of the trajectories.")] = 100,
    batch: Annotated[int, typer.Option(help="Input sequences per traced matrix.")] = 2,
    inputs: Annotated[int, typer.Option(help="Input size m (U is n × m, drawn N(0, 1/m)).")] = 4,
    input_scale: Annotated[
        float, typer.Option(help="Standard deviation of the inputs x_t (0: autonomous trajectories).")
    ] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed of the weights, U and the inputs.")] = 0,
    out: Annotated[Path, typer.Option(help="Directory for the report.")] = Path("rnnstab-results/inits"),
    json_output: Annotated[bool, typer.Option("--json", help="Print summary.json's content on stdout.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar; print only the report's location.")] = False,
) -> None:
    """Compare initialisation schemes (help: :data:`_INITS_HELP`)."""
    with _user_errors(ctx, {"params": "--param"}) as made:
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
        input_scale = _checks.non_negative_float("--input-scale", input_scale)
        chosen = _names("--scheme", scheme, rnnstab.scheme_names())
        overrides = _scheme_params(param or [])
        out_dir = _io.output_dir(out, created=made)
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
    _exit_on_bound_violation(report.bound_holds)


def _scheme_params(items: list[str]) -> dict[str, dict[str, float]]:
    """Parse --param SCHEME.NAME=VALUE options into {scheme: {name: value}}."""
    out: dict[str, dict[str, float]] = {}
    for item in items:
        key, equals, value = item.partition("=")
        scheme_name, dot, name = (part.strip() for part in key.partition("."))
        try:
            number = float(value)
        except ValueError:
            number = None
        if not (equals and dot and scheme_name and name) or number is None:
            raise rnnstab.InvalidArgumentError(
                f"--param must look like SCHEME.NAME=VALUE (e.g. spectral_radius.rho=0.9), got {item!r}"
            )
        given = out.setdefault(scheme_name, {})
        if name in given:  # the last would win silently: which one was meant is the user's to say
            raise rnnstab.InvalidArgumentError(
                f"--param gives {scheme_name}.{name} twice ({given[name]:g} and {number:g}): give each SCHEME.NAME once"
            )
        given[name] = number
    return out


def _print_audit(result: rnnstab.Audit, title: str) -> None:
    header, body = audit_report.table_rows(result, compact=True)
    table = Table(title=f"{title} ({audit_report.terminal_note(result)})")
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
