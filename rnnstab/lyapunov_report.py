"""Summaries, JSON and Markdown for Lyapunov runs and the validation suite (what ``rnnstab lyapunov`` and
``rnnstab validate`` write): every number in natural logs, exponents in nats per step."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from rnnstab import _io
from rnnstab.lyapunov import LyapunovSpectrum, SingularValueSpectrum
from rnnstab.plots import plot_lyapunov_convergence, plot_lyapunov_spectrum, plot_singular_values
from rnnstab.theory import DEFAULT_RATE_TOL, MeanField
from rnnstab.validation import SOURCES, ValidationCheck

FILES = {
    "json": "lyapunov.json",
    "markdown": "lyapunov.md",
    "spectrum": "lyapunov_spectrum.png",
    "convergence": "lyapunov_convergence.png",
    "singular_values": "singular_values.png",
}

REFERENCES = [
    SOURCES["benettin"],
    SOURCES["oseledets"],
    SOURCES["determinant"],
    "J. L. Kaplan, J. A. Yorke, 'Chaotic behavior of multidimensional difference equations', Lecture Notes in "
    "Mathematics 730, 204 (1979): the Kaplan–Yorke dimension",
    SOURCES["pascanu"],
    SOURCES["mean_field"],
    "S. S. Schoenholz, J. Gilmer, S. Ganguli, J. Sohl-Dickstein, 'Deep information propagation', ICLR 2017: the "
    "gradient depth scale ξ = −1/log χ of the ordered phase",
    "J. Pennington, S. S. Schoenholz, S. Ganguli, 'Resurrecting the sigmoid in deep learning through dynamical "
    "isometry', NeurIPS 2017: the singular values of J_t (dynamical isometry)",
]


def summarise(
    result: LyapunovSpectrum,
    *,
    log_delta: float,
    mean_field: MeanField | None = None,
    critical_gain: float | None = None,
    singular_values: SingularValueSpectrum | None = None,
) -> dict[str, Any]:
    """The headline numbers of a run as a JSON-ready dict (batch means with standard errors).

    Standard errors are those of the batch mean from block means (:meth:`LyapunovSpectrum.batch_mean`).
    """
    top = result.exponents[:, 0]
    means, errors = result.batch_mean()
    top_mean, top_error = float(means[0]), float(errors[0])
    # The regimes of rnnstab.verdicts, with λ₁ as the rate: δ < 1 proves vanishing whatever λ₁ shows.
    if log_delta < 0:
        verdict = "guaranteed vanishing"
    elif abs(top_mean) <= DEFAULT_RATE_TOL:
        verdict = "marginal"
    else:
        verdict = "vanishing" if top_mean < 0 else "exploding"
    dimension = result.kaplan_yorke_dimension()
    residual = result.sum_rule_residual
    expected = result.sum_rule_expected
    summary: dict[str, Any] = {
        "lambda_max_per_step": top_mean,
        "lambda_max_stderr": top_error,
        "lambda_max_per_trajectory": top.tolist(),
        "lambda_last_per_step": float(result.exponents[:, -1].mean()),
        "num_exponents": result.num_exponents,
        "gradient_verdict": verdict,
        # a marginal λ₁ (within DEFAULT_RATE_TOL of 0) has no meaningful half-life: 1e17 steps is rounding noise; nor
        # has λ₁ = −inf (∂g_t/∂g_0 exactly 0), where log 2/∞ = 0 steps would read as a measured one
        "half_life_steps": math.log(2) / -top_mean if -math.inf < top_mean < 0 and verdict != "marginal" else None,
        "doubling_steps": math.log(2) / top_mean if top_mean > 0 and verdict != "marginal" else None,
        "log_delta": log_delta,
        "bound_slack_per_step": log_delta - float(top.max()),
        "bound_holds": bool(float(top.max()) <= log_delta + _bound_tolerance(result)),
        "kaplan_yorke_dimension": float(dimension.mean()) if bool(torch.isfinite(dimension).all()) else None,
        "sum_rule": None
        if residual is None or expected is None
        else {
            "expected_mean": float(expected.mean()),
            "measured_mean": float(result.exponents.sum(dim=-1).mean()),
            "max_abs_residual": float(residual.abs().max()),
        },
        "qr": {
            "qr_every": result.qr_every,
            "qr_count": result.qr_count,
            "max_log_spread": result.max_log_spread,
            "log_spread_target": result.log_spread_target,
            "log_spread_limit": result.log_spread_limit,
        },
        "mean_field": None
        if mean_field is None
        else {
            "gain": mean_field.gain,
            "input_variance": mean_field.input_variance,
            "q_star": mean_field.q_star,
            "chi": mean_field.chi,
            "lambda_max_per_step": mean_field.lyapunov_max_per_step,
            "depth_scale_steps": mean_field.depth_scale_steps,
            # which way squared gradients change by e every depth_scale_steps: ξ is ≥ 0 in both phases, and at χ = 1
            # (inf, written as null) there is no way
            "depth_scale_direction": _DEPTH_SCALE_DIRECTIONS.get(mean_field.regime),
            "regime": mean_field.regime,
            "critical_gain": critical_gain,
        },
        "singular_values": None if singular_values is None else singular_values.isometry_summary(),
    }
    return summary


def write_lyapunov_outputs(
    directory: Path,
    *,
    result: LyapunovSpectrum,
    singular_values: SingularValueSpectrum | None,
    summary: dict[str, Any],
    parameters: dict[str, Any],
    metadata: dict[str, Any],
    title: str,
) -> dict[str, str]:
    """Write lyapunov.json, lyapunov.md and the three figures into ``directory``: all of them or none.

    The files replace an earlier run's together (:func:`rnnstab._io.staged`): a figure that fails, or a file that
    cannot be replaced, leaves the earlier run's files as they were, not mixed with some of this run's; an earlier
    singular-value figure is removed when this run has none.

    Returns:
        The paths written, keyed as in :data:`FILES` (no singular-value figure when ``singular_values`` is None).

    Raises:
        InvalidArgumentError: a directory stands where one of the files goes.
    """
    files = {key: str(directory / name) for key, name in FILES.items()}
    if singular_values is None:
        del files["singular_values"]
    with _io.staged(directory, FILES.values()) as staging:
        _write_staged(staging, result, singular_values, summary, parameters, metadata, title, files)
    return files


def _write_staged(
    staging: Path,
    result: LyapunovSpectrum,
    singular_values: SingularValueSpectrum | None,
    summary: dict[str, Any],
    parameters: dict[str, Any],
    metadata: dict[str, Any],
    title: str,
    files: dict[str, str],
) -> None:
    mean_field_max = summary["mean_field"]["lambda_max_per_step"] if summary["mean_field"] else None
    plot_lyapunov_spectrum(
        result,
        path=staging / FILES["spectrum"],
        log_delta=summary["log_delta"],
        mean_field_max=mean_field_max,
        title=title,
    )
    plot_lyapunov_convergence(result, path=staging / FILES["convergence"], mean_field_max=mean_field_max, title=title)
    if singular_values is not None:
        plot_singular_values(singular_values, path=staging / FILES["singular_values"], title=title)
    record = {
        "summary": summary,
        "parameters": parameters,
        "metadata": metadata,
        "units": "natural log; exponents in nats per step; row b is trajectory b; column i-1 is λ_i",
        "exponents": result.exponents.tolist(),
        "exponents_stderr": result.exponents_stderr.tolist(),
        "history_steps": list(result.history_steps),
        "history": result.history.tolist(),
        "sum_rule_expected": None if result.sum_rule_expected is None else result.sum_rule_expected.tolist(),
        "singular_value_steps": None if singular_values is None else list(singular_values.steps),
        "log_singular_values": None if singular_values is None else singular_values.log_singular_values.tolist(),
        "references": REFERENCES,
        "files": files,
    }
    _io.write_json(staging / FILES["json"], record)
    text = lyapunov_markdown(summary, result, parameters=parameters, title=title)
    _io.atomic_write(staging / FILES["markdown"], lambda handle: handle.write(text.encode()))


def top_exponent_text(summary: dict[str, Any]) -> str:
    """λ₁ with its standard error, or saying why there is none (one block of steps gives no spread to measure)."""
    value, error = summary["lambda_max_per_step"], summary["lambda_max_stderr"]
    if value == -math.inf:  # its standard error is NaN too, whatever the blocks
        return f"{value:.6g}: {_ZERO_JACOBIAN}"
    if error is None or not math.isfinite(error):
        return f"{value:.6g} (no standard error: it needs --blocks ≥ 2 blocks of measured steps)"
    return f"{value:.6g} ± {error:.2g}"


def lyapunov_markdown(
    summary: dict[str, Any], result: LyapunovSpectrum, *, parameters: dict[str, Any], title: str
) -> str:
    """A Markdown report of one run: parameters, headline numbers, the exponents, the singular values of J_t when
    computed, the figures, the references."""
    lines = [f"# Lyapunov spectrum — {title}", "", "All logs are natural; exponents are in nats per step.", ""]
    lines += ["## Parameters", "", "| parameter | value |", "|---|---|"]
    lines += [f"| {key} | {_md(value)} |" for key, value in parameters.items()]
    rows = [
        ("λ₁ (mean ± s.e.)", top_exponent_text(summary)),
        ("gradients", verdict_text(summary)),
        ("bound log δ", f"{summary['log_delta']:.6g} ({'holds' if summary['bound_holds'] else 'VIOLATED — a bug'})"),
        ("Kaplan–Yorke dimension", _md(summary["kaplan_yorke_dimension"])),
    ]
    if summary["sum_rule"]:
        rule = summary["sum_rule"]
        rows.append(
            (
                "sum rule Σλ = ⟨log|det J_t|⟩",
                f"{rule['measured_mean']:.10g} vs {rule['expected_mean']:.10g} (max residual "
                f"{rule['max_abs_residual']:.2g})",
            )
        )
    field = summary["mean_field"]
    if field:
        rows += [
            ("mean-field λ_max = ½ log χ", f"{field['lambda_max_per_step']:.6g} ({field['regime']})"),
            ("mean-field q*, χ", f"{field['q_star']:.6g}, {field['chi']:.6g}"),
            ("depth scale ξ = 1/|log χ|", depth_scale_text(field)),
            ("critical gain (χ = 1)", _md(field["critical_gain"])),
        ]
    qr = summary["qr"]
    rows.append(
        (
            "QR",
            f"{qr['qr_count']} factorisations (qr_every = {qr['qr_every']}); largest log-spread "
            f"{qr['max_log_spread']:.3g} (limit {qr['log_spread_limit']:.3g})",
        )
    )
    lines += ["", "## Results", "", "| quantity | value |", "|---|---|"]
    lines += [f"| {_cell(key)} | {_cell(value)} |" for key, value in rows]
    mean, error = result.batch_mean()
    shown = list(range(min(10, result.num_exponents)))
    if result.num_exponents > 10:
        shown += list(range(max(10, result.num_exponents - 3), result.num_exponents))
    lines += [
        "",
        # batch_mean's error is that of the mean over the batch, √B below a single trajectory's: not an average of them
        "## Exponents (batch mean; s.e. of the batch mean, from each trajectory's block means)",
        "",
        "| i | λ_i | s.e. |",
        "|---|---|---|",
    ]
    previous = -1
    for i in shown:
        if i != previous + 1:
            lines.append("| … | … | … |")
        lines.append(f"| {i + 1} | {float(mean[i]):.6g} | {float(error[i]):.2g} |")
        previous = i
    if summary["singular_values"] is not None:
        lines += [
            "",
            "## Singular values of J_t (pooled over the batch)",
            "",
            "Statistics of the resolved values only: those at or above their trajectory's rounding floor "
            "log(n·ε·σ₁), below which a computed σ_i is rounding noise.",
            "",
            "| t | mean, std of log σ_i (resolved) | below the floor (left out) | fraction within a factor e of 1 |",
            "|---|---|---|---|",
        ]
        for row in singular_value_rows(summary["singular_values"]):
            lines.append("| " + " | ".join(_cell(cell) for cell in row) + " |")
    lines += ["", "## Figures", ""]
    figures = [
        ("spectrum", "exponents against i/n, with the bound log δ" + (" and the mean-field λ_max" if field else "")),
        ("convergence", "running estimates against t"),
    ]
    if summary["singular_values"] is not None:  # no singular values asked for: no figure was written
        figures.append(("singular_values", "histograms of log σ_i(J_t) at the chosen steps"))
    for key, caption in figures:
        lines.append(f"- [{FILES[key]}]({FILES[key]}): {caption}")
    lines += ["", "## References", ""]
    lines += [f"{j}. {ref}" for j, ref in enumerate(REFERENCES, start=1)]
    return "\n".join(lines) + "\n"


def validation_record(checks: list[ValidationCheck]) -> dict[str, Any]:
    """The suite's results as a JSON-ready dict."""
    return {
        "passed": all(c.passed for c in checks),
        "failed": [c.name for c in checks if not c.passed],
        "units": "natural log; exponents in nats per step",
        "checks": [c.__dict__ for c in checks],
    }


def validation_markdown(checks: list[ValidationCheck]) -> str:
    """The suite's results as a Markdown table, with the sources and the tolerance reasoning."""
    lines = [
        "# rnnstab validate",
        "",
        "| check | expected | measured | tolerance | result |",
        "|---|---|---|---|---|",
    ]
    for c in checks:
        relation = "≤ " if c.comparison == "≤" else ""
        lines.append(
            f"| {_cell(c.name)} | {relation}{c.expected:.8g} | {c.measured:.8g} | {c.tolerance:.3g} | "
            f"{'PASS' if c.passed else '**FAIL**'} |"
        )
    lines += ["", "## Details", ""]
    for c in checks:
        lines += [f"- **{c.name}** — {c.quantity}. {c.details} Source: {c.source}."]
    return "\n".join(lines) + "\n"


def depth_scale_text(field: dict[str, Any]) -> str:
    """The mean-field depth scale ξ = 1/|log χ| with the way squared gradients go, or why it is infinite."""
    direction = field["depth_scale_direction"]
    if direction is None:
        return "∞ (χ = 1: squared gradients neither vanish nor grow exponentially)"
    verb = "shrink" if direction == "vanishing" else "grow"
    return f"{field['depth_scale_steps']:.4g} steps (squared gradients {verb} by e every ξ steps)"


def singular_value_rows(isometry: dict[str, list[Any]]) -> list[tuple[str, str, str, str]]:
    """(t, "mean, std" of the resolved log σ_i, "k of N" values below the rounding floor, the fraction within a
    factor e of 1) per step of :meth:`SingularValueSpectrum.isometry_summary`, as text."""
    rows = []
    for j, t in enumerate(isometry["step"]):
        resolved, below = isometry["num_resolved"][j], isometry["num_below_rounding_floor"][j]
        mean, std = isometry["mean_log_singular_value"][j], isometry["std_log_singular_value"][j]
        statistics = f"{mean:.4g}, {std:.2g}" if resolved else "— (none resolved: J_t = 0)"
        rows.append(
            (str(t), statistics, f"{below} of {resolved + below}", f"{isometry['fraction_within_factor_e'][j]:.3g}")
        )
    return rows


def verdict_text(summary: dict[str, Any]) -> str:
    """'vanishing (half-life … steps)', 'exploding (doubling every … steps)' or 'marginal'."""
    if summary["half_life_steps"] is not None:
        return f"{summary['gradient_verdict']} (half-life {summary['half_life_steps']:.4g} steps)"
    if summary["doubling_steps"] is not None:
        return f"{summary['gradient_verdict']} (doubling every {summary['doubling_steps']:.4g} steps)"
    if summary["lambda_max_per_step"] == -math.inf:
        return f"{summary['gradient_verdict']} ({_ZERO_JACOBIAN})"
    return str(summary["gradient_verdict"])


_DEPTH_SCALE_DIRECTIONS = {"ordered": "vanishing", "chaotic": "exploding"}

# What λ₁ = −inf means: the product has rank 0 in floating point (every unit's σ' = 0 at one step, say), in at least
# one trajectory, which makes the batch mean −inf too.
_ZERO_JACOBIAN = "∂g_t/∂g_0 is exactly 0 from some step on"


def _bound_tolerance(result: LyapunovSpectrum) -> float:
    """Slack for λ₁ ≤ log δ: the estimate averages log R_11 over the steps, and each step's product and QR in the
    frame's dtype moves it by up to about √n·ε relative (the per-step allowance of ``JacobianTrace.float_tolerance``),
    so an orthogonal linear RNN at δ = 1 measures λ₁ ≈ +1e-9 in float32. At least 1e-9, the margin float64 runs
    have always had."""
    return max(1e-9, 16.0 * math.sqrt(result.hidden_size) * torch.finfo(result.dtype).eps)


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell (| would end the cell)."""
    return text.replace("|", "\\|")


def _md(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
