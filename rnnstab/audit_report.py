"""The report of an audit: ``report.md``, a self-contained ``report.html`` (figures embedded), ``summary.json`` and
``figures/*.png``. Both documents are rendered from one list of blocks, so they always say the same thing."""

from __future__ import annotations

import base64
import datetime
import html
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rnnstab import _io
from rnnstab.audit import Audit, AuditRow, Stat, format_against_one
from rnnstab.report import _CSS, Report

FIGURES = {
    "eigenvalues": "figures/eigenvalues.png",
    "singular_values": "figures/singular_values.png",
    "jacobian": "figures/jacobian_norms.png",
}
_ROUNDING_SPREAD = 1e-12  # relative: a spread this small is float64 rounding between equal values

_NORM_VS_RADIUS = (
    "Why ‖W‖₂ and not ρ(W): the gradient bound ‖J_t‖₂ ≤ (γ‖W‖₂)^t uses the spectral norm ‖W‖₂ (the largest "
    "singular value). The spectral radius ρ(W) (the largest |eigenvalue|) only fixes the long-run rate of the linear "
    "map, ‖W^t‖₂^(1/t) → ρ(W), and ρ(W) ≤ ‖W‖₂ always, with equality for normal W (orthogonal, identity). For a "
    "non-normal W the two differ — a random Gaussian matrix has ‖W‖₂ ≈ 2ρ(W) — so ρ(W) < 1/γ does not make "
    "gradients provably vanish, and W^t can grow for a while before it decays (the transient growth column)."
)


@dataclass(frozen=True)
class _Block:
    """A piece of the report: kind is heading (level in ``level``), paragraph, bullets, table, figure or alert."""

    kind: str
    text: str = ""
    level: int = 2
    items: Sequence[str] = ()
    header: Sequence[str] = ()
    body: Sequence[Sequence[str]] = ()
    path: str = ""


def write_audit_report(
    audit: Audit, directory: str | os.PathLike[str], *, title: str, parameters: Mapping[str, Any]
) -> Report:
    """Write report.md, a self-contained report.html, summary.json and three figures for an audit.

    Works for subjects with one sample (no spread shown) and for subjects of different n and γ.

    Args:
        audit: from :func:`rnnstab.audit` or :func:`rnnstab.audit_schemes`.
        directory: where to write (created if missing).
        title: the report's title.
        parameters: shown in the report and stored in summary.json (JSON-ready values).

    Returns:
        A :class:`~rnnstab.Report` whose ``table`` is a DataFrame with one row per subject (means and spreads),
        ``conclusions`` maps each subject to its verdict, and ``bound_holds`` is ``False`` only if a computed
        ‖J_t‖₂ exceeded δ^t beyond float rounding (a bug in rnnstab).

    Raises:
        ArgumentTypeError: ``audit`` is not an :class:`~rnnstab.Audit`.
        InvalidArgumentError: the directory cannot be created or written, a directory stands where one of the files
            goes, or the audit is empty.
    """
    from rnnstab.audit_plots import plot_eigenvalues, plot_jacobian_curves, plot_singular_values
    from rnnstab.exceptions import ArgumentTypeError, InvalidArgumentError

    if not isinstance(audit, Audit):
        raise ArgumentTypeError(
            f"audit must be the Audit that rnnstab.audit or rnnstab.audit_schemes returns, got {type(audit).__name__}"
        )
    if not audit.rows:
        raise InvalidArgumentError("the audit has no subjects: nothing to report")
    root = _io.output_dir(directory, name="directory")
    figures = {key: root / name for key, name in FIGURES.items()}
    paths = (root / "report.md", root / "report.html", root / "summary.json")
    summary = {
        "title": title,
        "generated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "parameters": dict(parameters),
        "versions": _io.versions(),  # what reproducing these numbers needs besides the parameters
        **audit.to_dict(),
        "bound_holds": audit.bound_holds,
        "files": {
            "markdown": str(paths[0]),
            "html": str(paths[1]),
            "figures": [str(p) for p in figures.values()],
        },
    }
    # all or none: a figure that fails must not leave this audit's first figures beside an earlier report
    with _io.staged(root, [*(path.name for path in paths), *FIGURES.values()]) as staging:
        (staging / "figures").mkdir()
        plot_eigenvalues(audit.rows, path=staging / FIGURES["eigenvalues"])
        plot_singular_values(audit.rows, path=staging / FIGURES["singular_values"])
        plot_jacobian_curves(audit.rows, path=staging / FIGURES["jacobian"], horizon_drop=audit.horizon_drop)
        blocks = _blocks(audit, title, parameters)
        markdown = _markdown(blocks)
        page = _html(blocks, title, staging)
        _io.atomic_write(staging / paths[0].name, lambda handle: handle.write(markdown.encode()))
        _io.atomic_write(staging / paths[1].name, lambda handle: handle.write(page.encode()))
        _io.write_json(staging / paths[2].name, summary)
    return Report(
        directory=root,
        markdown=paths[0],
        html=paths[1],
        summary_json=paths[2],
        figures=tuple(figures.values()),
        table=summary_table(audit),
        conclusions={row.name: [row.verdict] for row in audit.rows},
        bound_holds=audit.bound_holds,
        summary=_io.finite_or_none(summary),
    )


def summary_table(audit: Audit) -> Any:
    """A pandas DataFrame with one row per subject: ``name``, n, γ, each statistic's ``_mean`` and ``_spread``,
    ``transient_still_growing`` and ``transient_cut_off``, the horizon kind, ``vanishing_guaranteed``, ``regime``,
    ``verdict`` and ``bound_holds``."""
    import pandas as pd

    records = []
    for row in audit.rows:
        record: dict[str, Any] = {"name": row.name, "hidden": row.hidden, "gamma": row.gamma}
        for key, value in vars(row).items():
            if isinstance(value, Stat):
                record[f"{key}_mean"], record[f"{key}_spread"] = value.mean, value.spread
        record.update(
            transient_still_growing=row.transient_still_growing,
            transient_cut_off=row.transient_cut_off,
            memory_horizon_kind=row.memory_horizon_kind,
            vanishing_guaranteed=row.vanishing_guaranteed,
            regime=row.regime,
            verdict=row.verdict,
            bound_holds=row.bound_holds,
        )
        records.append(record)
    return pd.DataFrame(records)


def format_stat(stat: Stat, digits: int = 4) -> str:
    """'mean ± spread'; the mean alone for a single value (a trained layer's one matrix: nothing to spread over);
    '± —' for values that are not all finite (several values, but no standard deviation); '∞' for an infinite mean;
    '± 0' for a spread below 10⁻¹² of the mean, which is float64 rounding (every sample of ``scaled_identity`` or an
    exactly rescaled scheme has the same ‖W‖₂, up to 1e-16).

    Example:
        >>> format_stat(Stat(1.98312, 0.0213)), format_stat(Stat(0.9, None)), format_stat(Stat(-math.inf, math.nan))
        ('1.983 ± 0.021', '0.9', '−∞ ± —')
        >>> format_stat(Stat(1.0, 1.1e-16))
        '1 ± 0'
    """
    if stat.spread is None:
        return _number(stat.mean, digits)
    rounding = math.isfinite(stat.mean) and stat.spread <= _ROUNDING_SPREAD * abs(stat.mean)
    spread = "—" if math.isnan(stat.spread) else "0" if rounding else _number(stat.spread, 2)
    return f"{_number(stat.mean, digits)} ± {spread}"


def horizon_text(row: AuditRow, *, compact: bool = False) -> str:
    """The memory horizon in words: 'unbounded', 'N ± s' (s over trajectories; N alone if ``compact`` or there is
    no spread) or '≈ N (extrapolated)'."""
    if row.memory_horizon_kind == "unbounded":
        return "unbounded"
    horizon = row.memory_horizon_steps
    text = f"{horizon.mean:.0f}" + ("" if compact or horizon.spread is None else f" ± {horizon.spread:.2g}")
    return f"≈ {text} (extrapolated)" if row.memory_horizon_kind == "extrapolated" else text


def growth_text(row: AuditRow, *, compact: bool = False) -> str:
    """max_t ‖W^t‖₂ and where it is reached: 'X (t ≈ k)' for a transient peak, '≥ X, still growing at T = …' where
    ‖W^t‖₂ still grows at the last step for most traced samples (ρ(W) > 1: the horizon cut the growth off, X is a
    lower bound and T no peak). ``compact`` (for a terminal): the mean alone, to 3 significant digits.

    Example:
        >>> from rnnstab import audit_schemes
        >>> def row(scale):  # ‖W^t‖₂ = scale^t
        ...     params = {"scaled_identity": {"scale": scale}}
        ...     return audit_schemes(4, "tanh", schemes=["scaled_identity"], samples=1, steps=5, params=params).rows[0]
        >>> growth_text(row(0.9)), growth_text(row(1.5), compact=True)
        ('0.9 (t ≈ 1)', '≥ 7.59, still growing at T = 5')
    """
    growth = row.transient_growth
    if not math.isfinite(growth.mean):  # ρ(W) > 1 over a long T: e^{900} is a number a reader can use, inf is not
        number = f"e^{row.log_transient_growth.mean:.4g}"
    else:
        number = _number(growth.mean, 3) if compact else format_stat(growth)
    growing, traced = row.transient_still_growing, row.jacobian_samples
    if growing == 0:
        return f"{number} (t ≈ {row.transient_peak_step.mean:.0f})"
    # one maximum cut off by the horizon makes the mean over samples a lower bound too
    if row.transient_cut_off:
        some = "" if growing == traced else f" ({growing} of {traced} samples)"
        return f"≥ {number}, still growing at T = {row.steps}{some}"
    return (
        f"≥ {number} (t ≈ {row.transient_peak_step.mean:.0f}; {growing} of {traced} still growing at T = {row.steps})"
    )


def terminal_note(audit: Audit) -> str:
    """What the cells of the compact table (:func:`table_rows` with ``compact``) are, for its caption: means over
    samples and trajectories where there are several, with their spreads left to the report; one matrix per
    subject (a trained layer) has no spread but that of its trajectories."""
    several = any(row.samples > 1 for row in audit.rows)
    traced = any(row.trajectories > 1 for row in audit.rows)
    if several:
        what = "means over samples" + (", over trajectories for the rate and memory horizon" if traced else "")
    else:
        what = "one matrix per subject" + ("; rate and memory horizon: means over trajectories" if traced else "")
    return f"natural logs; {what}" + (" — spreads in the report" if several or traced else "")


def table_rows(audit: Audit, *, compact: bool = False) -> tuple[list[str], list[list[str]]]:
    """The results table (header, rows) as text, shared by the report and the command line.

    ``compact`` (for a terminal) shows means only, to 3 significant digits, and leaves out n and γ (caption:
    :func:`terminal_note`).
    """

    def cell(stat: Stat, digits: int = 4) -> str:
        return _number(stat.mean, 3) if compact else format_stat(stat, digits)

    def delta_cell(stat: Stat) -> str:
        # 3 digits would print δ = 1.003 as "1", the δ of an orthogonal W, beside "δ < 1: no": compared with 1
        return format_against_one(stat.mean) if compact else format_stat(stat)

    header = ["subject", "n", "γ", "‖W‖₂", "ρ(W)", "δ = γ‖W‖₂", "δ < 1", "non-normality"]
    header += ["max_t ‖W^t‖₂ (at t)", "rate (nats/step)", "memory horizon (steps)", "regime"]
    body = [
        [
            row.name,
            str(row.hidden),
            f"{row.gamma:.4g}",
            cell(row.spectral_norm),
            cell(row.spectral_radius),
            delta_cell(row.delta),
            "yes" if row.vanishing_guaranteed else "no",
            cell(row.nonnormality, 3),
            growth_text(row, compact=compact),
            cell(row.rate_per_step, 3),
            horizon_text(row, compact=compact),
            row.regime,
        ]
        for row in audit.rows
    ]
    if compact:
        header, body = header[:1] + header[3:], [line[:1] + line[3:] for line in body]
    return header, body


def _blocks(audit: Audit, title: str, parameters: Mapping[str, Any]) -> list[_Block]:
    rows = audit.rows
    blocks = [_Block("heading", title, level=1)]
    if not audit.bound_holds:
        bad = ", ".join(row.name for row in rows if not row.bound_holds)
        blocks.append(
            _Block(
                "alert",
                f"BUG: a computed ‖J_t‖₂ exceeded the bound δ^t beyond float rounding ({bad}). This is a bug in "
                "rnnstab, never a finding: please report it with this directory.",
            )
        )
    if any(row.samples > 1 for row in rows):
        spreads = (
            "Each cell is the mean ± the standard deviation over samples (the mean alone for a single one); for "
            "the transient growth, over the samples whose Jacobians were traced; for the rate and the memory "
            "horizon, over trajectories (traced samples × input sequences)."
        )
    else:  # a trained layer is one matrix: its spectra are exact values, only its trajectories vary
        spreads = (
            "Each subject is one matrix: its spectral quantities and transient growth are single values; the rate "
            "and the memory horizon are the mean ± the standard deviation over its trajectories (input sequences)."
        )
    blocks.append(
        _Block(
            "paragraph",
            "All logs are natural; rates are in nats per step (the late-half slope of log‖J_t‖₂, J_t = ∂g_t/∂g_0, "
            f"along input-driven trajectories); horizons in steps. {spreads} A spread shown as — means that the "
            "values are not all finite. δ = γ‖W‖₂ with γ = sup|σ'|: δ < 1 proves ‖J_t‖₂ ≤ δ^t. "
            "Non-normality is Henrici's relative departure √(‖W‖_F² − Σ|λ|²)/‖W‖_F (0: normal W). "
            "max_t ‖W^t‖₂ reads '≥ …, still growing at T = …' where ‖W^t‖₂ still grows at t = T for most traced "
            "samples (ρ(W) > 1): the horizon cut the growth off, so the number is a lower bound and T is not a "
            f"peak. The memory horizon is the first t with ‖J_t‖₂ ≤ {audit.horizon_drop:g} — extrapolated from the "
            "rate when not reached within the horizon T and the rate is negative, unbounded when the rate is ≥ 0.",
        )
    )
    blocks += [
        _Block("heading", "Parameters"),
        _Block("table", header=["parameter", "value"], body=[[key, _plain(v)] for key, v in parameters.items()]),
    ]
    header, body = table_rows(audit)
    blocks += [_Block("heading", "Results"), _Block("table", header=header, body=body)]
    blocks += [
        _Block("heading", "Verdicts"),
        _Block("bullets", items=[f"{row.name}: {row.verdict}" for row in rows]),
        _Block("heading", "Spectral radius against spectral norm"),
        _Block("paragraph", _NORM_VS_RADIUS),
    ]
    hidden = [row for row in rows if row.radius_hides_norm]
    if hidden:
        blocks.append(
            _Block(
                "bullets",
                items=[
                    f"{row.name}: γρ(W) = {format_against_one(row.gamma * row.spectral_radius.mean)} < 1 but "
                    f"δ = γ‖W‖₂ = {format_against_one(row.delta.mean)} ≥ 1 — the eigenvalues look contracting, yet "
                    "the bound does not apply; "
                    f"measured rate {row.rate_per_step.mean:+.3g} nats/step, max_t ‖W^t‖₂: "
                    f"{growth_text(row, compact=True)}."
                    for row in hidden
                ],
            )
        )
    else:
        blocks.append(_Block("paragraph", "No subject here has γρ(W) < 1 ≤ γ‖W‖₂."))
    described = [row for row in rows if row.details]
    if described:
        blocks.append(_Block("heading", "Subjects"))
        blocks.append(
            _Block(
                "bullets",
                items=[
                    f"{row.name} ({row.samples} sample{'s' if row.samples > 1 else ''}, Jacobians of "
                    f"{row.jacobian_samples} × {row.trajectories // row.jacobian_samples} input sequences, "
                    f"T = {row.steps}): " + "; ".join(f"{key}: {_plain(value)}" for key, value in row.details.items())
                    for row in described
                ],
            )
        )
    blocks.append(_Block("heading", "Figures"))
    captions = {
        "eigenvalues": "Eigenvalues of W in the complex plane (every sample), with the unit circle and the circle "
        "|λ| = 1/γ.",
        "singular_values": "Singular values of W (every sample, descending, against i/n) and the line 1/γ: the "
        "bound applies when the largest lies below it.",
        "jacobian": "log‖J_t‖₂ (natural log) against t per subject: mean over trajectories, band ± one standard "
        f"deviation; dotted: log {audit.horizon_drop:g}, the memory-horizon level.",
    }
    blocks += [_Block("figure", captions[key], path=FIGURES[key]) for key in FIGURES]
    blocks.append(
        _Block("paragraph", "Generated with " + ", ".join(f"{k} {v}" for k, v in _io.versions().items()) + ".")
    )
    return blocks


def _markdown(blocks: Sequence[_Block]) -> str:
    lines: list[str] = []
    for block in blocks:
        if block.kind == "heading":
            lines += ["#" * block.level + " " + block.text, ""]
        elif block.kind == "alert":
            lines += [f"> **⚠ {block.text}**", ""]
        elif block.kind == "paragraph":
            lines += [block.text, ""]
        elif block.kind == "bullets":
            lines += [f"- {item}" for item in block.items] + [""]
        elif block.kind == "table":
            lines.append("| " + " | ".join(_md_cell(h) for h in block.header) + " |")
            lines.append("|" + "|".join("---" for _ in block.header) + "|")
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.body]
            lines.append("")
        elif block.kind == "figure":
            lines += [f"![{block.text}]({block.path})", "", f"*{block.text}*", ""]
    return "\n".join(lines)


def _html(blocks: Sequence[_Block], title: str, root: Path) -> str:
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        f'<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>',
        f"<style>{_CSS}</style></head><body>",
    ]
    for block in blocks:
        if block.kind == "heading":
            out.append(f"<h{block.level}>{e(block.text)}</h{block.level}>")
        elif block.kind == "alert":
            out.append(f'<p class="bug">⚠ {e(block.text)}</p>')
        elif block.kind == "paragraph":
            out.append(f"<p>{e(block.text)}</p>")
        elif block.kind == "bullets":
            out.append("<ul>" + "".join(f"<li>{e(item)}</li>" for item in block.items) + "</ul>")
        elif block.kind == "table":
            out.append("<table><thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in block.header) + "</tr></thead>")
            out.append("<tbody>")
            out += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in block.body]
            out.append("</tbody></table>")
        elif block.kind == "figure":
            data = base64.b64encode((root / block.path).read_bytes()).decode()
            out.append(
                f'<figure><img alt="{e(block.text)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{e(block.text)}</figcaption></figure>"
            )
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def _number(value: float, digits: int) -> str:
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    return f"{value:.{digits}g}"


def _plain(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, Mapping):
        return ", ".join(f"{k} = {_plain(v)}" for k, v in value.items()) or "—"
    if isinstance(value, (list, tuple)):  # the schemes: names, not a Python list
        return ", ".join(_plain(v) for v in value) or "—"
    return str(value)
