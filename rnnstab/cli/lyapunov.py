"""``rnnstab lyapunov`` and ``rnnstab validate``: Lyapunov spectra, and the reference checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
import typer
from rich.console import Console
from rich.table import Table

import rnnstab
from rnnstab import _checks, _io, lyapunov_report, validation
from rnnstab.cli._common import (
    _Activation,
    _exit_on_bound_violation,
    _Gamma,
    _metadata,
    _progress,
    _user_errors,
    _warnings_as_lines,
    app,
)
from rnnstab.sweep import parse_values

# one paragraph per string: rich keeps a docstring's line breaks, which broke the help mid-sentence at 80 columns
_LYAPUNOV_HELP = (
    "Lyapunov spectrum (natural log, nats per step) of a random RNN along input-driven trajectories.\n\n"
    "Benettin's QR method on the tangent dynamics J_t = D_t W, with error bars from block means; the mean-field "
    "prediction λ_max = ½ log χ (gaussian W₀) and the bound λ₁ ≤ log δ are marked. Also the singular values of J_t at "
    "chosen t. Writes OUT/lyapunov.json, OUT/lyapunov.md, OUT/lyapunov_spectrum.png, OUT/lyapunov_convergence.png and "
    "OUT/singular_values.png. Exit code 2 on a bad option, 3 if λ₁ > log δ beyond rounding (a bug in rnnstab)."
)
_VALIDATE_HELP = (
    "Run the built-in reference checks against the literature and print expected, measured, tolerance, PASS/FAIL.\n\n"
    "Linear RNNs (exponents = sorted log|eig W|, also non-normal W); orthogonal linear RNN (all exponents 0); the sum "
    "rule Σλ = log|det W| + ⟨Σ log|σ'|⟩; tanh and gelu RNNs against Benettin's method on autograd Jacobians with a QR "
    "every step (it catches a transposed W or σ' one step off, which the rest cannot); products of Gaussian matrices "
    "against Newman's exact formula (and the error bars against the exact standard errors); the δ^T bound; the "
    "mean-field λ_max = ½ log χ of random tanh RNNs.\n\n"
    "Exit code 0 when every check passes, 1 when any fails, 2 on a bad option."
)


@app.command(help=_LYAPUNOV_HELP)
def lyapunov(
    ctx: typer.Context,
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
    blocks: Annotated[
        int | None,
        typer.Option(
            help="Blocks of the measured window (T minus the warm-up) for the error bars, each at least one step: a "
            "value above the window's length is refused. Default: 10, or one per step of a shorter window."
        ),
    ] = None,
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
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the summary, with the parameters, as JSON on stdout.")
    ] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    with _user_errors(ctx, {"k": "--top"}) as made, _warnings_as_lines():
        act = rnnstab.get_activation(activation, gamma=gamma)
        if gain is not None and delta is not None:
            raise rnnstab.InvalidArgumentError("--gain and --delta are alternatives: give one of them")
        chosen_dtype = _checks.dtype("--dtype", dtype)
        chosen_device = _checks.device("--device", device)
        input_scale = _checks.input_scale("--input-scale", input_scale)
        steps = _checks.positive_int("--steps", steps)
        m = _checks.positive_int("--inputs", inputs)
        n_batch = _checks.positive_int("--batch", batch)
        hidden = _checks.positive_int("--hidden", hidden)
        # x (drawn, then scaled: two float64 copies at once) and U are made here, before the library checks its own
        # memory: refuse what cannot fit now, not with a traceback from torch's allocator
        needed = 8 * (2 * n_batch * steps * m + hidden * m)
        _checks.check_memory(needed, torch.device("cpu"), "reduce --steps, --batch or --inputs")
        interval = _qr_interval(qr_every)
        blocks = _blocks(blocks, steps, warmup)
        sv_steps = _steps_list("--singular-values-at", singular_values_at, steps)
        W0 = rnnstab.init_weights(init, hidden, seed=seed, activation=act)
        if delta is not None:
            W = rnnstab.scale_to_threshold(W0, delta=_checks.positive_float("--delta", delta), gamma=act.gamma)
            g = float(rnnstab.spectral_norm(W) / rnnstab.spectral_norm(W0))
        else:
            g = _checks.positive_float("--gain", 1.5 if gain is None else gain)
            W = g * W0
        # before the run, so that a gain the theory cannot take is refused at once, not after the whole spectrum
        field = gc = None
        if init == "gaussian":  # the mean-field theory is for i.i.d. entries
            try:
                field = rnnstab.mean_field(act, gain=g, input_variance=input_scale**2)
            except rnnstab.InvalidArgumentError as err:
                if delta is None:
                    raise
                # the library names its gain, which would read as --gain: the user gave --delta
                raise rnnstab.InvalidArgumentError(f"--delta {delta:g} makes the gain g = {g:.6g}: {err}") from None
            gc = rnnstab.critical_gain(act, input_variance=input_scale**2)
        out_dir = _io.output_dir(out, created=made)
        generator = _checks.generator(seed, 1)
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
        norm = float(rnnstab.spectral_norm(W))
        # The δ asked for, not γ·‖W‖₂ recomputed: that lands an ulp either side of it, and at --delta 1 an ulp below
        # would read as "guaranteed vanishing".
        network_delta = delta if delta is not None else act.gamma * norm
        log_delta = float(np.log(network_delta))
        summary = lyapunov_report.summarise(
            result, log_delta=log_delta, mean_field=field, critical_gain=gc, singular_values=spectrum
        )
        parameters = {
            "activation": act.name,
            "gamma": act.gamma,
            "init": init,
            "gain": g,
            "spectral_norm_W": norm,
            "delta": network_delta,
            "hidden": hidden,
            "steps": steps,
            "warmup": result.warmup,
            "k": result.num_exponents,
            "qr_every": interval,
            "blocks": result.block_exponents.shape[1],  # fewer than the default 10 when the window is shorter
            "batch": n_batch,
            "inputs": m,
            "input_scale": input_scale,
            "seed": seed,
            "dtype": str(chosen_dtype).removeprefix("torch."),
            "device": str(chosen_device),
        }
        title = (
            f"{act.name}, n = {hidden}, g = {g:.4g}, δ = {network_delta:.4g}, {_io.plural(n_batch, 'input sequence')}"
        )
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
            record = {**summary, "parameters": parameters, "files": files, "units": "natural log; nats per step"}
            typer.echo(json.dumps(_io.finite_or_none(record), indent=2, ensure_ascii=False))
        else:
            _print_lyapunov(parameters, summary, files)
        _exit_on_bound_violation(summary["bound_holds"], where=files["json"])


@app.command(help=_VALIDATE_HELP)
def validate(
    ctx: typer.Context,
    quick: Annotated[bool, typer.Option(help="Smaller sizes (seconds): looser statistical tolerances.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of every random draw.")] = 0,
    out: Annotated[
        Path | None, typer.Option(help="Also write validation.json and validation.md into this directory.")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the results as JSON on stdout.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    with _user_errors(ctx) as made:
        seed = _checks.seed("--seed", seed)  # before --out is made and before the suite starts
        out_dir = _io.output_dir(out, created=made) if out is not None else None
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
            text = lyapunov_report.validation_markdown(checks)
            with _io.staged(out_dir, ["validation.json", "validation.md"]) as staging:
                _io.write_json(staging / "validation.json", record)
                _io.atomic_write(staging / "validation.md", lambda handle: handle.write(text.encode()))
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
        ("λ₁ (mean ± s.e.)", lyapunov_report.top_exponent_text(summary)),
        ("gradients", lyapunov_report.verdict_text(summary)),
        ("bound λ₁ ≤ log δ", "holds" if summary["bound_holds"] else "VIOLATED ← BUG"),
    ]
    if field:
        rows += [
            ("mean-field ½ log χ", f"{field['lambda_max_per_step']:.6g}  ({field['regime']}, χ = {field['chi']:.6g})"),
            ("depth scale ξ = 1/|log χ|", lyapunov_report.depth_scale_text(field)),
            ("critical gain (χ = 1)", f"{field['critical_gain']:.6g}"),
        ]
    if summary["kaplan_yorke_dimension"] is not None:
        rows.append(("Kaplan–Yorke dimension", f"{summary['kaplan_yorke_dimension']:.4g}"))
    if summary["sum_rule"]:
        residual = summary["sum_rule"]["max_abs_residual"]
        rows.append(
            (
                "sum rule residual (max)",
                f"{residual:.2g}" if np.isfinite(residual) else "none: σ' = 0 at some step, log|det J_t| = −inf",
            )
        )
    if summary["singular_values"] is not None:
        # the resolved values only: below the rounding floor log(n·ε·σ₁) a computed σ_i is noise
        for t, statistics, below, within in lyapunov_report.singular_value_rows(summary["singular_values"]):
            rows.append(
                (
                    f"log σ_i(J_t), t = {t}",
                    f"mean, std {statistics}; {below} below the rounding floor (noise, left out); "
                    f"a fraction {within} within a factor e of 1",
                )
            )
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


def _qr_interval(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        interval = int(value)
    except ValueError:
        raise rnnstab.InvalidArgumentError(f"--qr-every must be auto or a positive integer, got {value!r}") from None
    return _checks.positive_int("--qr-every", interval)


def _blocks(value: int | None, steps: int, warmup: int | None) -> int:
    """--blocks, or its default. The library takes fewer blocks than asked when the measured window is shorter; here
    a value the user chose is refused instead, since error bars from fewer blocks than asked would pass unnoticed."""
    if value is None:
        return 10
    value = _checks.positive_int("--blocks", value)
    skip = steps // 10 if warmup is None else warmup
    window = steps - skip
    if 0 <= skip < steps and value > window:  # a warm-up outside 0..T−1 is the library's to refuse, naming --warmup
        raise rnnstab.InvalidArgumentError(
            f"--blocks must be in 1..{window} (a block is at least one step of the measured window: T − warm-up = "
            f"{steps} − {skip} = {window} steps), got {value}"
        )
    return value


def _steps_list(name: str, value: str | None, steps: int) -> list[int]:
    if value is None:
        return [t for t in (10, 100) if t <= steps] or [steps]
    if not value.replace(",", "").strip():  # "--singular-values-at ," must not quietly mean no step at all
        raise rnnstab.InvalidArgumentError(f"{name} names no step: give comma-separated steps in 1..{steps}")
    # "5,,10" is more likely a typo than the steps 5 and 10: refused as sweep's and the other lists' empty items are
    parts = parse_values(name, [value], kind="name")
    try:
        chosen = [int(part) for part in parts]
    except ValueError:
        raise rnnstab.InvalidArgumentError(f"{name} must be comma-separated integers, got {value!r}") from None
    return list(_checks.steps(name, chosen, steps))
