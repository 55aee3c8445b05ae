"""``rnnstab train``: train vanilla RNNs on a synthetic task and monitor their gradients."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

import rnnstab
from rnnstab import _checks, _io
from rnnstab.cli._common import _Activation, _metadata, _print_line, _train_progress, _user_errors, app, console
from rnnstab.optimizers import COEFFICIENTS
from rnnstab.sweep import parse_values
from rnnstab.training import check_lr, check_step_memory, default_lr
from rnnstab.training_plots import FIGURES, rate_labels

_TRAIN_HELP = (
    "Train a vanilla RNN g_t = σ(W g_{t-1} + U x_t + b) on a synthetic long-memory task and watch its gradients.\n\n"
    "Every step logs the loss, ‖∇L‖, the per-timestep gradient norms ‖∂ℓ/∂g_t‖ (how far back the loss reaches; ℓ "
    "is one sequence's loss, the norm averaged over the batch, so it does not shrink as the batch grows), "
    "and under weight normalisation ‖v‖, g and g/‖v‖; every --monitor-every steps also ‖W‖₂, ρ(W) and the "
    "Jacobian rate of the current weights (nats per step: < 0 vanishing, > 0 exploding).\n\n"
    "--lr and --batch-size take several values (repeat the flag or give a comma list, e.g. --lr 0.1,1,10): every "
    "combination is trained from the same seed, each logged to OUT/runs/lr<LR>_batch<B>.jsonl (one JSON line per "
    "step, flushed at once: an interrupted run leaves a usable log). OUT/training.png (loss, ‖∇L‖, ‖W‖₂, ρ(W), "
    "rate), OUT/state_gradients.png (‖∂ℓ/∂g_t‖ over step × t, for the first six runs), OUT/weightnorm.png "
    "(--param weight_norm: ‖v‖ and g/‖v‖ for each rate and batch size, from step 0, before the first update) and "
    "OUT/summary.json are written at the end.\n\n"
    "Exit codes: 0 done; 1 a run stopped on a NaN/Inf loss, gradient or weight (its log is kept, the other runs "
    "go on); 2 bad input; 130 interrupted."
)


@app.command("train", help=_TRAIN_HELP)
def train_command(
    ctx: typer.Context,
    task: Annotated[
        str,
        typer.Option(help=f"Task: {'; '.join(f'{k} — {t.description}' for k, t in rnnstab.TASKS.items())}."),
    ] = "adding",
    length: Annotated[int, typer.Option(help="Sequence length T (the memory the task needs).")] = 50,
    symbols: Annotated[
        int | None, typer.Option(help="Copy task only: the alphabet size K ≥ 2 of the symbols to repeat. Default 8.")
    ] = None,
    memory: Annotated[
        int | None,
        typer.Option(help="Copy task only: how many symbols S ≥ 1 to repeat; T must be ≥ 2S + 1. Default 5."),
    ] = None,
    hidden: Annotated[int, typer.Option(help="Hidden size n.")] = 64,
    activation: _Activation = "tanh",
    init: Annotated[
        str, typer.Option(help=f"Initial W, a scheme from: {', '.join(sorted(rnnstab.weights.SCHEMES))}.")
    ] = "orthogonal",
    param: Annotated[
        str,
        typer.Option(
            help="How W is trained: plain (W itself), weight_norm (w_i = g_i·v_i/‖v_i‖ per row) or orthogonal "
            "(W = Q₀·exp(A − Aᵀ), orthogonal at every step, to rounding unless the run diverges; Q₀ is the orthogonal "
            "polar factor of the --init draw)."
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
        float | None,
        typer.Option(
            "--momentum",
            "--beta",
            help="α (momentum), β (ema) or β₁ (adam), in (0, 1). Default 0.9. Like --beta2 and --bias-correction, "
            "refused with an optimizer that does not use it (here: sgd), rather than silently ignored.",
        ),
    ] = None,
    beta2: Annotated[
        float | None,
        typer.Option(
            help="Adam's β₂, in (0, 1). Default 0.999. Adam only: refused with the other optimizers, rather than "
            "silently ignored."
        ),
    ] = None,
    bias_correction: Annotated[
        bool | None,
        typer.Option(
            help="Adam's bias correction m/(1−β₁^t), v/(1−β₂^t). Default on. Adam only: either form is refused "
            "with the other optimizers, rather than silently ignored."
        ),
    ] = None,
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
            "at the defaults this costs about 10–15 % of the training time."
        ),
    ] = 50,
    out: Annotated[Path, typer.Option(help="Directory for runs/, the figures and summary.json.")] = Path(
        "rnnstab-results/train"
    ),
    json_output: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Train and monitor (help: :data:`_TRAIN_HELP`)."""
    with _user_errors(ctx) as made:
        fallback_lr = default_lr(optimizer)  # also refuses an unknown --optimizer before its coefficients are judged
        _refuse_unused_coefficients(optimizer, momentum=momentum, beta2=beta2, bias_correction=bias_correction)
        rates = [_checks.positive_float("--lr", v) for v in parse_values("--lr", lr)] if lr else [fallback_lr]
        # a rate that underflows in the training dtype is refused before any run of the grid, not when its turn comes;
        # dict.fromkeys drops repeated values (they would share one log file) and keeps the order given
        rates = list(dict.fromkeys(check_lr(rate, dtype) for rate in rates))
        batches = [
            _checks.positive_int("--batch-size", v)
            for v in parse_values("--batch-size", batch_size or ["32"], kind="int")
        ]
        batches = list(dict.fromkeys(batches))
        device = str(_checks.device("--device", device))  # "auto" resolved: the summary says where the runs trained
        # the largest batch is refused before any run of the grid has written its log, not after the others trained
        check_step_memory(
            rnnstab.get_task(task, symbols=symbols, memory=memory),
            batch_size=max(batches),
            length=length,
            hidden=hidden,
            dtype=dtype,
            device=device,
        )
        # lr 0.1 and 0.1000001 print alike with 6 digits and would share (overwrite) one log file: then use repr
        names = rate_labels(rates)
        out_dir = _io.output_dir(out, created=made)
        runs_created: list[Path] = []
        runs_dir = _io.output_dir(out_dir / "runs", created=runs_created)
        made[:0] = runs_created  # deepest first, so that a refused command removes runs/ before OUT
        logs = {(rate, batch): runs_dir / f"lr{names[rate]}_batch{batch}.jsonl" for rate in rates for batch in batches}
        # every file is checked before the first run trains: a directory in the way of summary.json would otherwise
        # fail the command only after the whole grid has run and written its logs
        _refuse_unwritable(out_dir, list(logs.values()))
        options: dict[str, Any] = {
            "length": length,
            "symbols": symbols,
            "memory": memory,
            "hidden": hidden,
            "activation": activation,
            "init": init,
            "param": param,
            "optimizer": optimizer,
            "momentum": 0.9 if momentum is None else momentum,
            "beta2": 0.999 if beta2 is None else beta2,
            "bias_correction": True if bias_correction is None else bias_correction,
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

                for (rate, batch), log in logs.items():
                    progress.update(bar, description=log.stem)
                    run = rnnstab.train(task, lr=rate, batch_size=batch, log_path=log, callback=show, **options)
                    runs.append(run)
                    if run.stop_reason:
                        console.print(f"[red]{log.stem}:[/red] {run.stop_reason}", highlight=False, soft_wrap=True)
        except KeyboardInterrupt:
            console.print(
                f"[red]interrupted[/red]: the logs so far are in {runs_dir} (read them with load_training_log)",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(130) from None
        _warn_of_earlier_logs(runs_dir, [run.log_path for run in runs])
        frames = [run.frame() for run in runs]
        # together: a figure that fails must not leave this run's first figures beside an earlier summary.json
        with _io.staged(out_dir, _RESULTS) as staging:
            figures = rnnstab.write_training_figures(
                frames, staging, title=f"{task}, T = {length}, n = {hidden}, {param}, {optimizer}"
            )
            summary = {
                "task": task,
                "baseline_loss": runs[0].baseline_loss,
                "runs": [_run_summary(run) for run in runs],
                "files": {
                    "figures": [str(out_dir / figure.name) for figure in figures],
                    "summary": str(out_dir / "summary.json"),
                },
                "metadata": _metadata(task=task, lr=rates, batch_size=batches, **options),  # the grid, each value once
                "units": "jacobian_rate: nats per step (natural log of ‖∂g_t/∂g_0‖₂ per step); seconds: wall-clock",
            }
            _io.write_json(staging / "summary.json", summary)
        if json_output:
            typer.echo(json.dumps(_io.finite_or_none(summary), indent=2, ensure_ascii=False))
        else:  # --quiet drops the progress bar only, as in the other commands
            _print_training(summary)
    if any(run.stop_reason for run in runs):
        raise typer.Exit(1)


_FLAGS = {"momentum": "--momentum/--beta", "beta2": "--beta2", "bias_correction": "--bias-correction"}
_RESULTS = [*FIGURES, "summary.json"]  # written at the end, into OUT, all or none


def _refuse_unused_coefficients(optimizer: str, **given: float | bool | None) -> None:
    """Refuse an optimizer coefficient given explicitly (not ``None``) to a rule that does not read it: one rule for
    all three, as make_optimizer already refuses bias_correction=False for any rule but adam, and a run that quietly
    ignores what was asked for misleads."""
    for name, value in given.items():
        users = [rule for rule, coefficients in COEFFICIENTS.items() if name in coefficients]
        if value is not None and optimizer not in users:
            flag = "--no-bias-correction" if value is False else _FLAGS[name]
            readers = users[0] if len(users) == 1 else f"{', '.join(users[:-1])} and {users[-1]}"
            raise rnnstab.InvalidArgumentError(
                f"{flag} is used only by {readers}, not by --optimizer {optimizer}: leave it out"
            )


def _refuse_unwritable(out_dir: Path, logs: list[Path]) -> None:
    """Refuse, naming it, an output file that could not be written: a directory in its place, or (for a log, which
    is opened in place, unlike the files written by atomic rename) an existing file without write permission."""
    _io.refuse_directories(out_dir, [*(str(log.relative_to(out_dir)) for log in logs), *_RESULTS])
    for path in logs:
        if path.exists() and not os.access(path, os.W_OK):
            raise rnnstab.InvalidArgumentError(f"cannot write the training log {path}: it is not writable")


def _warn_of_earlier_logs(directory: Path, written: list[Path | None]) -> None:
    """Logs of other rates or batch sizes, from an earlier command with the same --out, stay beside this one's: say
    so, since neither the figures nor summary.json include them (and deleting someone's results is not ours to do)."""
    earlier = sorted(path.name for path in directory.glob("*.jsonl") if path not in written)
    if earlier:
        _print_line(
            "warning:",
            "yellow",
            f"{directory} also holds {_io.plural(len(earlier), 'log')} from an earlier run ({', '.join(earlier)}), "
            "not included in the figures or summary.json",
        )


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
        # "first" as for the loss: the network before any update (step 1's record is measured after it)
        "spectral_norm_W_first": run.initial["spectral_norm_W"],
        "spectral_norm_W_final": None if last is None else float(last["spectral_norm_W"]),
        "spectral_radius_W_first": run.initial["spectral_radius_W"],
        "spectral_radius_W_final": None if last is None else float(last["spectral_radius_W"]),
        "jacobian_rate_first": run.initial["jacobian_rate"],
        "jacobian_rate_final": None if last is None else float(last["jacobian_rate"]),
        # a stopped run's last monitor step precedes its end: the "final" numbers above are from that step
        "monitored_at_step": None if last is None else int(last["step"]),
        "seconds": round(run.seconds, 3),
        "monitor_fraction": round(float(frame["monitor_seconds"].sum()) / max(run.seconds, 1e-9), 4),
        "log": str(run.log_path),
    }
    if run.parameters["param"] == "weight_norm":
        for key in ("wn_v_norm", "wn_g_over_v"):
            summary[f"{key}_first"], summary[f"{key}_final"] = run.initial[key], float(frame[key].iloc[-1])
    return summary


def _print_training(summary: dict[str, Any]) -> None:
    out = Console(soft_wrap=True)  # one line per run, whole in logs and pipes
    out.print(
        f"[bold]rnnstab train[/bold] {summary['task']} (memoryless baseline loss {summary['baseline_loss']:.3g})",
        highlight=False,
    )
    # the rates as the log names have them: 0.1 and 0.1000001 would both print as "lr 0.1"
    rates = rate_labels([run["lr"] for run in summary["runs"]])
    for run in summary["runs"]:
        status = run["status"] if run["status"] == "finished" else f"[red]stopped at step {run['steps_done']}[/red]"
        line = (
            f"  lr {rates[run['lr']]}, batch {run['batch_size']}: {status} in {run['seconds']:.1f} s; "
            f"loss {run['loss_first']:.4g} → {run['loss_final']:.4g} (min {run['loss_min']:.4g}); "
            f"‖W‖₂ {_maybe(run['spectral_norm_W_first'])} → {_maybe(run['spectral_norm_W_final'])}, "
            f"ρ(W) {_maybe(run['spectral_radius_W_first'])} → {_maybe(run['spectral_radius_W_final'])}, "
            f"Jacobian rate {_maybe(run['jacobian_rate_first'])} → {_maybe(run['jacobian_rate_final'])} nats/step"
        )
        if run["monitored_at_step"] not in (None, run["steps_done"]):
            line += f" (last measured at step {run['monitored_at_step']})"
        if "wn_v_norm_final" in run:
            line += (
                f"; ‖v‖ {run['wn_v_norm_first']:.4g} → {run['wn_v_norm_final']:.4g}, "
                f"g/‖v‖ {run['wn_g_over_v_first']:.4g} → {run['wn_g_over_v_final']:.4g}"
            )
        out.print(line, highlight=False)
    out.print("figures: " + ", ".join(summary["files"]["figures"]), highlight=False)


def _maybe(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"
