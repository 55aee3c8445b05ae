"""Sweep reports: ``report.md``, a self-contained ``report.html`` (figures embedded as base64 PNG), ``summary.json``.

The report answers, for each activation: below δ = 1 vanishing is guaranteed — is it observed? Above δ = 1 the
bound allows growth — up to which δ do gradients still vanish, where do they first explode, and how far below the
bound's slope log δ does the measured rate sit (the slack)? It also re-checks that no computed ‖J_t‖₂ exceeded
δ^t beyond float rounding; if one ever did, that is a bug in rnnstab and the report says so first, loudly.
"""

from __future__ import annotations

import base64
import datetime
import functools
import html
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rnnstab import _checks
from rnnstab._io import atomic_write, finite_or_none, plural, write_json
from rnnstab.exceptions import InvalidArgumentError
from rnnstab.store import read_metadata
from rnnstab.theory import rate_spread

#: Axes other than δ, in the order they label panels and table columns.
OTHER_AXES = ("gamma", "hidden", "steps", "input_scale", "init", "dtype")
_SYMBOL = {
    "activation": "activation",
    "gamma": "γ",
    "delta": "δ",
    "hidden": "n",
    "steps": "T",
    "input_scale": "input scale",
    "init": "init",
    "dtype": "dtype",
}
_MAX_PANELS = 12
FIGURES = {
    "norms": "figures/norms.png",
    "phase": "figures/phase.png",
    "rates": "figures/rate_vs_log_delta.png",
}


@dataclass(frozen=True)
class Report:
    """What :func:`write_report` wrote and concluded.

    Attributes:
        directory: the sweep directory.
        markdown, html, summary_json: the three report files.
        figures: the PNG files (also embedded in the HTML).
        table: per configuration (aggregated over seeds), a pandas DataFrame — see :func:`configuration_table`.
        conclusions: activation → plain-language sentences.
        bound_holds: every (network, input, step) respected log‖J_t‖₂ ≤ t·log δ up to float rounding; ``False``
            means a bug in rnnstab (the report then opens with a BUG banner).
        summary: the content of ``summary.json``.
    """

    directory: Path
    markdown: Path
    html: Path
    summary_json: Path
    figures: tuple[Path, ...]
    table: Any
    conclusions: dict[str, list[str]]
    bound_holds: bool
    summary: dict[str, Any]


def configuration_table(frame: Any) -> Any:
    """Aggregate :func:`rnnstab.load_sweep`'s rows (configuration × seed) over seeds: one row per configuration.

    Columns: the parameters; ``seeds``; ``spectral_norm_W``; ``spectral_radius_W`` (mean over seeds) and
    ``spectral_radius_W_std``; ``rate_per_step`` (mean over seeds), ``rate_per_step_std`` (sample standard
    deviation over seeds, NaN for one seed), ``rate_per_step_min``/``_max``; ``log_delta``; ``slack_per_step``
    (log δ − mean rate); ``max_bound_excess`` (max over seeds and inputs and t); ``bound_holds`` (all);
    ``bound_violations`` (sum); ``verdict`` (the seeds' common regime, or ``mixed: …`` with counts);
    ``state_overflow_step`` (the earliest step at which a seed's hidden state overflowed the dtype, ``None`` if
    none did) and ``state_overflow_seeds`` (how many seeds did); ``half_life_steps`` / ``doubling_steps`` (from
    the mean rate); ``mean_field_delta_critical`` (δ at the
    mean-field transition χ = 1 for the configuration's setting, see :func:`mean_field_delta`; NaN where the theory
    has no prediction). Logs are natural, rates in nats per step.
    """
    import pandas as pd

    keys = ["activation", "gamma", "delta", "hidden", "steps", "input_scale", "init", "dtype", "batch", "inputs"]
    rows = []
    for values, group in frame.groupby(keys, sort=True):
        rates = group["rate_per_step"].to_numpy(dtype=float)
        with np.errstate(invalid="ignore"):
            mean_rate = float(rates.mean())
        spread = rate_spread(rates) if rates.size > 1 else math.nan
        counts = group["regime"].value_counts()
        if len(counts) == 1:
            verdict = str(counts.index[0])
        else:
            verdict = "mixed: " + ", ".join(f"{n} {regime}" for regime, n in counts.items())
        delta = float(values[2])
        overflowed = group["state_overflow_step"].dropna() if "state_overflow_step" in group else group["seed"][:0]
        rows.append(
            {
                **dict(zip(keys, values, strict=True)),
                "config": group["config"].iloc[0],
                "seeds": len(group),
                "spectral_norm_W": float(group["spectral_norm_W"].mean()),
                "spectral_radius_W": float(group["spectral_radius_W"].mean()),
                "spectral_radius_W_std": float(group["spectral_radius_W"].std(ddof=1)) if len(group) > 1 else math.nan,
                "rate_per_step": mean_rate,
                "rate_per_step_std": spread,
                "rate_per_step_min": float(rates.min()),
                "rate_per_step_max": float(rates.max()),
                "log_delta": math.log(delta),
                "slack_per_step": math.log(delta) - mean_rate,
                "max_bound_excess": float(group["max_bound_excess"].max()),
                "bound_holds": bool(group["bound_holds"].all()),
                "bound_violations": int(group["bound_violations"].sum()),
                "verdict": verdict,
                "state_overflow_step": int(overflowed.min()) if len(overflowed) else None,
                "state_overflow_seeds": len(overflowed),
                "half_life_steps": math.log(2) / -mean_rate if -math.inf < mean_rate < 0 else None,
                "doubling_steps": math.log(2) / mean_rate if mean_rate > 0 else None,
                "mean_field_delta_critical": mean_field_delta(
                    str(values[0]), float(values[1]), float(values[5]), str(values[6])
                ),
            }
        )
    return pd.DataFrame(rows)


def conclusions(table: Any) -> dict[str, list[str]]:
    """Plain-language conclusions per activation, one sentence group per setting of the other varied axes.

    Below δ = 1 vanishing is guaranteed by the bound — the sentence says whether every seed also measured a
    negative rate. At and above δ = 1 the bound allows growth but does not force it: the sentence says up to which δ
    every seed still vanished and at which δ a seed first exploded (or that none did), then how loose the bound is.

    Example:
        >>> import pandas as pd
        >>> rows = [(0.5, -0.9, "guaranteed vanishing"), (1.0, -0.3, "vanishing"), (1.2, -0.1, "vanishing"),
        ...         (1.4, 0.0, "marginal"), (1.6, 0.2, "exploding")]
        >>> table = pd.DataFrame([dict(activation="tanh", gamma=1.0, hidden=64, steps=100, input_scale=1.0,
        ...     init="gaussian", dtype="float64", delta=d, rate_per_step=r, rate_per_step_min=r, rate_per_step_max=r,
        ...     slack_per_step=math.log(d) - r, verdict=v, seeds=1) for d, r, v in rows])
        >>> import textwrap
        >>> print(textwrap.fill(conclusions(table)["tanh"][0], 100))
        tanh (γ = 1): below δ = 1 (δ = 0.5, 1 configuration) vanishing is guaranteed by the bound and
        observed in every seed (rate −0.9 nats/step). At and above δ = 1 the bound allows growth, yet tanh
        still vanished up to δ = 1.2, was marginal at δ = 1.4, and first exploded at δ = 1.6 (rate +0.2
        nats/step, doubling every 3.47 steps). The measured rate sits 0.207–0.336 nats/step below the
        bound's slope log δ.
    """
    varying = [axis for axis in OTHER_AXES if axis != "gamma" and table[axis].nunique() > 1]
    out: dict[str, list[str]] = {}
    for activation, group in table.groupby("activation", sort=False):
        sentences = []
        for _, sub in group.groupby(["gamma", *varying], sort=True):
            first = sub.iloc[0]
            extra = ", ".join(f"{_SYMBOL[axis]} = {_value(first[axis])}" for axis in varying)
            label = f"{activation} (γ = {_value(first['gamma'])}{', ' + extra if extra else ''})"
            sentences.append(_conclusion(str(activation), label, sub.sort_values("delta")))
        out[str(activation)] = sentences
    return out


def _conclusion(activation: str, label: str, sub: Any) -> str:
    below = sub[sub["delta"] < 1]
    above = sub[sub["delta"] >= 1]
    parts = []
    if below.empty:
        parts.append(f"{label}: no δ < 1 was tried.")
    else:
        observed = below[below["rate_per_step_max"] < 0]
        span = _span(below["delta"], "δ = ")
        where = f"{span}, {len(below)} configuration{'s' if len(below) > 1 else ''}"
        rates = _span(below["rate_per_step"], signed=True, plural="rates")
        if len(observed) == len(below):
            parts.append(
                f"{label}: below δ = 1 ({where}) vanishing is guaranteed by the bound and observed in every seed "
                f"({rates} nats/step)."
            )
        else:
            odd = ", ".join(_value(d) for d in below.loc[below["rate_per_step_max"] >= 0, "delta"])
            parts.append(
                f"{label}: below δ = 1 ({where}) vanishing is guaranteed by the bound; the late-half rate was "
                f"negative for every seed in {len(observed)} of {len(below)} configurations (not at δ = {odd}: "
                "a finite horizon can hide the guaranteed decay) — see the table."
            )
    if above.empty:
        parts.append("No δ ≥ 1 was tried.")
    else:
        parts.append(_above(activation, above))
    if "state_overflow_step" in sub:
        gone = sub[sub["state_overflow_step"].notna()]
        if len(gone):
            dtypes = " and ".join(sorted(set(gone["dtype"])))
            parts.append(
                f"At δ = {_list(gone['delta'])} the hidden state itself overflowed {dtypes} (first at step "
                f"{int(gone['state_overflow_step'].min())}): ∂g_t/∂g_0 is undefined from there, so those rates are "
                "measured on the steps before."
            )
    slack = sub["slack_per_step"].to_numpy(dtype=float)
    # The late-half slope averages increments of log‖J_t‖₂ with positive weights, and the bound caps every increment
    # at log δ: a slack below 0 is float rounding (a tight bound in float32), not a rate above the bound. Rounding
    # moves each increment by up to the per-step allowance of JacobianTrace.float_tolerance, either way, so a slack
    # within it (a tight bound in float64 reads 1e-16) is 0 too.
    eps = np.array([np.finfo(np.dtype(str(d))).eps for d in sub["dtype"]]) + np.finfo(np.float64).eps
    rounding = 16.0 * np.sqrt(sub["hidden"].to_numpy(dtype=float)) * eps
    finite = np.isfinite(slack)
    slack = np.where(slack[finite] > rounding[finite], slack[finite], 0.0)
    if slack.size and slack.max() == 0:
        parts.append("The measured rate equals the bound's slope log δ to rounding: the bound is tight.")
    elif slack.size:
        parts.append(
            f"The measured rate sits {_fmt(slack.min())}–{_fmt(slack.max())} nats/step below the bound's slope log δ."
            if slack.size > 1
            else f"The measured rate sits {_fmt(slack[0])} nats/step below the bound's slope log δ."
        )
    return " ".join(parts)


def _above(activation: str, above: Any) -> str:
    """The δ ≥ 1 sentence: how far vanishing persists, where growth first appears."""
    vanished_to = None
    for delta, verdict in zip(above["delta"], above["verdict"], strict=True):
        if verdict != "vanishing":
            break
        vanished_to = float(delta)
    exploding = above[above["verdict"].str.contains("exploding")]
    first_explosion = float(exploding["delta"].min()) if len(exploding) else math.inf
    before = above[above["delta"] < first_explosion]
    marginal = before[before["verdict"] == "marginal"]
    mixed = before[before["verdict"].str.startswith("mixed")]
    if vanished_to is not None:
        pieces = [f"{activation} still vanished up to δ = {_value(vanished_to)}"]
        lead = "At and above δ = 1 the bound allows growth, yet "
    elif first_explosion == float(above["delta"].min()):
        pieces = []
        lead = "At and above δ = 1 the bound allows growth: "
    elif str(above["verdict"].iloc[0]) == "marginal":
        # the marginal clause below says it; "did not vanish in every seed" would suggest that some seeds vanished
        pieces = []
        lead = f"At and above δ = 1 the bound allows growth: {activation} "
    else:
        pieces = [f"{activation} did not vanish in every seed even at δ = {_value(above['delta'].min())}"]
        lead = "At and above δ = 1 the bound allows growth: "
    if len(marginal):
        pieces.append(f"was marginal at δ = {_list(marginal['delta'])}")
    if len(mixed):
        pieces.append(f"was mixed over seeds at δ = {_list(mixed['delta'])}")
    largest = _value(above["delta"].max())
    if len(exploding):
        row = exploding.iloc[0]
        if row["verdict"] == "exploding":
            rate, seeds, what = float(row["rate_per_step"]), "", "rate"
        else:  # some seeds only: quote the fastest one (its verdict), not a mean across verdicts
            rate, seeds, what = float(row["rate_per_step_max"]), f"; {row['verdict']}", "fastest seed's rate"
        every = _fmt(math.log(2) / rate) if rate > 0 else ""
        doubling = f", doubling every {every} step{'' if every == '1' else 's'}" if rate > 0 else ""
        at = _value(row["delta"])
        where = (
            f"first exploded at δ = {at}"
            if pieces
            else f"{activation} exploded already at δ = {at}, the smallest δ ≥ 1 tried"
        )
        pieces.append(f"{where} ({what} {_signed(rate)} nats/step{doubling}{seeds})")
        # "first exploded at δ = 3.5" reads as a threshold; where a larger δ vanished again, the sentence says so
        again = above[(above["delta"] > first_explosion) & (above["verdict"] == "vanishing")]
        ending = f"; at δ = {_list(again['delta'])} it vanished again." if len(again) else "."
    elif vanished_to is not None and _value(vanished_to) == largest:
        pieces[0] += " (the largest δ tried)"
        ending = ": it never exploded."
    else:
        ending = f"; it never exploded up to δ = {largest}, the largest tried."
    joined = pieces[0] if len(pieces) == 1 else ", ".join(pieces[:-1]) + ", and " + pieces[-1]
    return lead + joined + ending


def _list(values: Any) -> str:
    return ", ".join(_value(float(v)) for v in sorted(values))


def _span(values: Any, prefix: str = "", *, signed: bool = False, plural: str = "") -> str:
    """``prefix`` + the smallest … the largest of ``values`` (one value if they agree), with ``plural`` in front
    (singularised for one value)."""
    v = sorted(float(x) for x in values)
    show = _signed if signed else _value
    if v[0] == v[-1]:
        return f"{plural[:-1] + ' ' if plural else ''}{prefix}{show(v[0])}"
    return f"{plural + ' ' if plural else ''}{prefix}{show(v[0])} … {show(v[-1])}"


# Every number the report prints goes through these, so that one style holds throughout: the Unicode minus "−"
# (in exponents too), an explicit "+" on quantities that can take either sign (rates, log δ, bound excesses), and a
# bare 0 for zero, never "+0" or "−0".


def _value(x: Any) -> str:
    if isinstance(x, (float, np.floating)):
        return _minus(f"{float(x):g}")
    return str(x)


def _fmt(x: float) -> str:
    return _minus(f"{x:.3g}") if math.isfinite(x) else ("∞" if x > 0 else "−∞")


def _signed(x: float) -> str:
    if not math.isfinite(x):
        return "+∞" if x > 0 else "−∞"
    return _minus(f"{x:+.3g}")


def _minus(text: str) -> str:
    """``text`` (a formatted number) with the Unicode minus, and 0 written as 0 whatever its sign or exponent."""
    if float(text) == 0:
        return "0"
    return text.replace("-", "−")


def write_report(directory: str | os.PathLike[str]) -> Report:
    """Write ``report.md``, ``report.html`` (self-contained), ``summary.json`` and ``figures/*.png`` for a sweep.

    Args:
        directory: a sweep directory (``rnnstab sweep --out``).

    Returns:
        A :class:`Report`.

    Raises:
        ArgumentTypeError: ``directory`` is not a path.
        InvalidArgumentError: ``directory`` empty or not a sweep directory, or no records yet.
    """
    from rnnstab.plots import plot_phase_diagram, plot_rate_vs_log_delta, plot_sweep_norms
    from rnnstab.store import load_sweep

    root = _checks.path("directory", directory)
    frame = load_sweep(root, traces=True)
    if frame.empty:
        raise InvalidArgumentError(f"{root} holds no records yet: run (or resume) the sweep first")
    metadata = read_metadata(root) or {}
    # activations in the order the sweep named them (records load alphabetically): tables, panels and conclusions
    named = {name: i for i, name in enumerate(metadata.get("parameters", {}).get("activation", []))}

    def in_named_order(rows: Any) -> Any:
        return rows.sort_values(
            "activation", key=lambda column: column.map(lambda a: named.get(a, len(named))), kind="stable"
        ).reset_index(drop=True)

    frame = in_named_order(frame)
    table = in_named_order(configuration_table(frame))
    said = conclusions(table)
    bound_holds = bool(table["bound_holds"].all())
    varying = [axis for axis in ("activation", *OTHER_AXES) if table[axis].nunique() > 1]
    (root / "figures").mkdir(exist_ok=True)

    figures = [root / path for path in FIGURES.values()]
    summary = _summary(root, frame, table, said, bound_holds, metadata, figures)
    # panels name the varied axes; the fixed n and T go in the titles, or no figure would say what network it shows
    size = _fixed_size(summary)
    size = f" — {size}" if size else ""
    curves, panel_note = _norm_curves(frame, varying)
    plot_sweep_norms(
        curves, path=figures[0], title=f"log‖J_t‖₂ (natural log) against the bound t·log δ{size}{panel_note}"
    )
    phase, y_label = _phase_table(table, varying)
    plot_phase_diagram(
        phase,
        path=figures[1],
        y_label=y_label,
        title=f"Phase diagram of the empirical rate (late-half slope of log‖J_t‖₂){size}",
    )
    rates = table.assign(series=[_panel_label(row, varying) for _, row in table.iterrows()])
    plot_rate_vs_log_delta(
        rates, path=figures[2], title=f"Measured rate against the bound's slope (error bars: spread over seeds){size}"
    )

    blocks = _document(summary, table, said, varying, bound_holds)
    markdown = _markdown(blocks)
    page = _html(blocks, figures)
    paths = (root / "report.md", root / "report.html", root / "summary.json")
    atomic_write(paths[0], lambda handle: handle.write(markdown.encode()))
    atomic_write(paths[1], lambda handle: handle.write(page.encode()))
    write_json(paths[2], summary)
    return Report(
        directory=root,
        markdown=paths[0],
        html=paths[1],
        summary_json=paths[2],
        figures=tuple(figures),
        table=table,
        conclusions=said,
        bound_holds=bound_holds,
        summary=summary,
    )


def _panel_label(row: Any, varying: list[str]) -> str:
    """ "tanh, γ = 1" plus every other varied axis except δ: one panel (or series) per setting."""
    parts = [str(row["activation"]), f"γ = {_value(row['gamma'])}"]
    parts += [f"{_SYMBOL[a]} = {_value(row[a])}" for a in varying if a not in ("activation", "gamma", "delta")]
    return ", ".join(parts)


def _norm_curves(frame: Any, varying: list[str]) -> tuple[Any, str]:
    """Per record: the mean over inputs of log‖J_t‖₂, with its panel (one per setting of the non-δ axes)."""
    import pandas as pd

    labels = [_panel_label(row, varying) for _, row in frame.iterrows()]
    keep = list(dict.fromkeys(labels))[:_MAX_PANELS]
    note = "" if len(set(labels)) <= _MAX_PANELS else f" (first {_MAX_PANELS} of {len(set(labels))} settings)"
    rows = [
        {
            "panel": label,
            "delta": row["delta"],
            "seed": row["seed"],
            "curve": np.asarray(row["log_spectral"]).mean(axis=0),
        }
        for label, (_, row) in zip(labels, frame.iterrows(), strict=True)
        if label in keep
    ]
    return pd.DataFrame(rows), note


def _phase_table(table: Any, varying: list[str]) -> tuple[Any, str]:
    """The phase-diagram cells: δ across; up, the first varied axis other than δ and activation (γ if none)."""
    others = [a for a in varying if a not in ("activation", "delta")]
    y_axis = others[0] if others else "gamma"
    panel_axes = others[1:]
    y_label = {"gamma": "γ = sup|σ'|", "hidden": "hidden size n", "steps": "horizon T"}.get(y_axis, _SYMBOL[y_axis])
    rows = []
    for _, row in table.iterrows():
        panel = ", ".join([str(row["activation"]), *(f"{_SYMBOL[a]} = {_value(row[a])}" for a in panel_axes)])
        value = row[y_axis]
        rows.append(
            {
                "panel": panel,
                "delta": row["delta"],
                "y": _value(value),
                "y_order": (float(value) if isinstance(value, (int, float, np.number)) else 0.0, str(value)),
                "rate_per_step": row["rate_per_step"],
                "regime": row["verdict"],
                "delta_critical": row["mean_field_delta_critical"],
            }
        )
    import pandas as pd

    return pd.DataFrame(rows), y_label


@functools.cache
def mean_field_delta(activation: str, gamma: float, input_scale: float, init: str) -> float:
    """δ at the mean-field order-to-chaos transition (χ = 1) for a sweep cell, or NaN where the theory says nothing.

    A sweep drives each unit with U x_t of variance input_scale² (U ~ N(0, 1/m), x ~ N(0, input_scale²)), so the
    mean-field input variance is input_scale²; see :func:`rnnstab.theory.critical_delta`. Only the i.i.d. Gaussian
    and Haar-orthogonal inits have a mean-field prediction; any other init gives NaN, as does an activation whose χ
    never reaches 1, or an input scale above 1e150 (whose square, the input variance, is no finite float; sweeps no
    longer take one, but older sweeps may hold one).

    Example:
        >>> round(mean_field_delta("tanh", 1.0, 1.0, "gaussian"), 4), mean_field_delta("tanh", 1.0, 1.0, "identity")
        (3.7112, nan)
    """
    from rnnstab.activations import get_activation
    from rnnstab.theory import critical_delta

    if init not in ("gaussian", "orthogonal") or input_scale > _checks.INPUT_SCALE_MAX:
        return math.nan
    return critical_delta(get_activation(activation, gamma=gamma), input_variance=input_scale**2, init=init)


def _summary(
    root: Path,
    frame: Any,
    table: Any,
    said: dict[str, list[str]],
    bound_holds: bool,
    metadata: dict[str, Any],
    figures: list[Path],
) -> dict[str, Any]:
    regimes = {str(k): int(v) for k, v in frame["regime"].value_counts().items()}
    # an interrupted run leaves records out: the report must say so, or "the largest δ tried" reads as final
    planned = {key for run in metadata.get("runs", []) for key in run.get("planned", [])} | set(frame["record"])
    worst = table.loc[table["max_bound_excess"].idxmax()]
    columns = [c for c in table.columns if c not in ("batch", "inputs")]
    return finite_or_none(
        {
            "directory": str(root),
            "generated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "units": "natural log; rates in nats per step; half-lives in steps",
            "records": len(frame),
            "configurations": len(table),
            "seeds": sorted(int(s) for s in frame["seed"].unique()),
            "seeds_per_configuration": {"min": int(table["seeds"].min()), "max": int(table["seeds"].max())},
            "parameters": _parameters(table),
            "planned_records": len(planned),
            "missing_records": len(planned - set(frame["record"])),
            "regimes": regimes,
            "bound": {
                "holds": bound_holds,
                "bug": not bound_holds,
                "max_excess": float(worst["max_bound_excess"]),
                "max_excess_at": {"activation": worst["activation"], "gamma": worst["gamma"], "delta": worst["delta"]},
                "violations": int(table["bound_violations"].sum()),
            },
            "conclusions": said,
            "table": [{c: _plain(row[c]) for c in columns} for _, row in table.iterrows()],
            "files": {
                "markdown": str(root / "report.md"),
                "html": str(root / "report.html"),
                "summary": str(root / "summary.json"),
                "figures": [str(f) for f in figures],
            },
            "fixed": metadata.get("fixed", {}),
            "versions": metadata.get("versions", {}),
        }
    )


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


def _columns(varying: list[str]) -> list[tuple[str, str]]:
    """(header, key) of the table, showing the non-δ axes only when they vary."""
    shown = [a for a in ("hidden", "steps", "input_scale", "init", "dtype") if a in varying]
    return [
        ("activation", "activation"),
        ("γ", "gamma"),
        ("δ", "delta"),
        *((_SYMBOL[a], a) for a in shown),
        ("‖W‖₂", "spectral_norm_W"),
        ("ρ(W)", "spectral_radius_W"),
        ("rate (nats/step, mean ± sd over seeds)", "rate"),
        ("log δ", "log_delta"),
        ("slack log δ − rate", "slack_per_step"),
        ("max bound excess (nats)", "excess"),
        ("verdict", "verdict"),
        ("half-life (steps)", "half_life"),
    ]


def _cell(row: Any, key: str) -> str:
    if key == "rate":
        spread = row["rate_per_step_std"]
        sd = f" ± {_fmt(spread)}" if isinstance(spread, float) and math.isfinite(spread) else ""
        return f"{_signed(row['rate_per_step'])}{sd}"
    if key == "excess":
        flag = "" if row["bound_holds"] else "  **BUG**"
        return _excess(row["max_bound_excess"]) + flag
    if key == "verdict" and row.get("state_overflow_step") is not None and not _isnan(row["state_overflow_step"]):
        return f"{row['verdict']} (state overflowed at t = {int(row['state_overflow_step'])})"
    if key == "half_life":
        if row["verdict"] == "marginal":  # a half-life of 10¹⁵ steps from a rate of −3e-16 says nothing
            return "— (marginal)"
        if row["rate_per_step"] == -math.inf:
            return "— (J_t = 0)"
        if row["half_life_steps"] is not None and not _isnan(row["half_life_steps"]):
            return _fmt(row["half_life_steps"])
        if row["doubling_steps"] is not None and not _isnan(row["doubling_steps"]):
            return f"— (doubles every {_fmt(row['doubling_steps'])})"
        return "—"
    if key in ("spectral_norm_W", "spectral_radius_W"):
        return f"{row[key]:.4g}"
    if key in ("log_delta", "slack_per_step"):
        return _signed(row[key]) if key == "log_delta" else _fmt(row[key])
    return _value(row[key])


def _excess(x: float | None) -> str:
    if x is None:
        return "—"
    return _minus(f"{x:+.1e}") if math.isfinite(x) else _signed(x)


def _isnan(x: Any) -> bool:
    return isinstance(x, float) and math.isnan(x)


def _bug_text(table: Any) -> str:
    bad = table[~table["bound_holds"]]
    where = "; ".join(f"{r['activation']} γ = {_value(r['gamma'])} δ = {_value(r['delta'])}" for _, r in bad.iterrows())
    return (
        f"BUG: a computed ‖J_t‖₂ exceeded the bound δ^t beyond float rounding in {len(bad)} configuration(s) "
        f"({int(bad['bound_violations'].sum())} input × step pairs; {where}). This is a bug in rnnstab, never a "
        "finding: please report it with this directory."
    )


def _intro(summary: dict[str, Any]) -> str:
    bound = summary["bound"]
    regimes = ", ".join(f"{n} {r}" for r, n in summary["regimes"].items())
    excess = bound["max_excess"]
    margin = "never above the bound" if excess is not None and excess <= 0 else "within float rounding"
    check = (
        f"The bound log‖J_t‖₂ ≤ t·log δ held at every step for every network and input (largest excess "
        f"{_excess(excess)} nats: {margin})."
        if bound["holds"]
        else "The bound log‖J_t‖₂ ≤ t·log δ was VIOLATED — see the BUG notice above."
    )
    configurations, seeds, records = summary["configurations"], len(summary["seeds"]), summary["records"]
    if records == configurations * seeds:
        count = f"{plural(configurations, 'configuration')} × {plural(seeds, 'seed')} = {plural(records, 'record')}"
    else:  # an unfinished sweep, or grids with different seeds resumed into one directory
        low, high = summary["seeds_per_configuration"]["min"], summary["seeds_per_configuration"]["max"]
        count = (
            f"{plural(records, 'record')} of {plural(configurations, 'configuration')}, with {low}–{high} of the "
            f"{plural(seeds, 'seed')} each (not every configuration ran with every seed)"
        )
    missing = summary["missing_records"]
    unfinished = (
        f"The sweep is unfinished: {missing} of the {summary['planned_records']} records its runs planned "
        f"{'is' if missing == 1 else 'are'} missing or unreadable (rnnstab sweep --out {summary['directory']} --resume "
        "computes them); everything below describes the records on disk only. "
        if missing
        else ""
    )
    return (
        f"{unfinished}{count} ({regimes}). {check} All logs are natural; rates are in nats per step (the late-half "
        "slope of log‖J_t‖₂, an estimate of the top Lyapunov exponent): a rate r means ‖J_t‖₂ shrinks or grows like "
        "e^(r·t)."
    )


def _document(
    summary: dict[str, Any], table: Any, said: dict[str, list[str]], varying: list[str], bound_holds: bool
) -> list[tuple[str, Any]]:
    """The report as a list of (kind, content) blocks, which :func:`_markdown` and :func:`_html` only render: every
    sentence exists once, so the two files cannot say different things (the HTML once lost the table's legend)."""
    blocks: list[tuple[str, Any]] = [("h1", "rnnstab sweep report")]
    if not bound_holds:
        blocks.append(("bug", f"⚠ {_bug_text(table)}"))
    blocks += [("p", _intro(summary)), ("h2", "Parameters"), ("ul", _parameter_lines(summary)), ("h2", "Conclusions")]
    for activation, sentences in said.items():
        blocks += [("h3", activation), ("ul", sentences)]
    blocks += [("h2", "Figures"), *(("figure", key) for key in FIGURES)]
    blocks += [
        ("h2", "Configurations"),
        ("table", (_columns(varying), table)),
        (
            "p",
            "‖W‖₂ is the exact largest singular value (W is scaled so that γ‖W‖₂ = δ); ρ(W) = max |eig W|, the mean "
            "over seeds. The slack is how much faster than the bound's slope the gradients decay; 0 means the bound "
            "is tight. The max bound excess is max over seeds, inputs and t of log‖J_t‖₂ − t·log δ: it must stay ≤ 0 "
            "up to float rounding.",
        ),
    ]
    versions = summary.get("versions", {})
    if versions:
        blocks.append(("small", "Generated with " + ", ".join(f"{k} {v}" for k, v in versions.items()) + "."))
    return blocks


def _parameters(table: Any) -> dict[str, Any]:
    """Every grid axis (one value where the grid kept it fixed, the sorted values where it varied), with the fixed
    batch and input size: what network was swept, which the table's columns show only for varied axes."""
    out: dict[str, Any] = {}
    for axis in ("activation", "gamma", "delta", *OTHER_AXES[1:]):
        # activations in the table's order (the order the sweep named them), the numbers ascending
        values = [_plain(v) for v in (dict.fromkeys(table[axis]) if axis == "activation" else sorted(set(table[axis])))]
        out[axis] = values[0] if len(values) == 1 else values
    for axis in ("batch", "inputs"):  # one value per sweep: a resume with another is refused
        out[axis] = _plain(table[axis].iloc[0])
    return out


def _parameter_lines(summary: dict[str, Any]) -> list[str]:
    """The "Parameters" section: fixed axes, varied axes, then what each network was run on."""
    parameters = summary["parameters"]
    axes = list(_SYMBOL)  # every grid axis, in the order the table names them
    fixed = [f"{_SYMBOL[a]} = {_value(parameters[a])}" for a in axes if not isinstance(parameters[a], list)]
    varied = [f"{_SYMBOL[a]} = {_values(parameters[a])}" for a in axes if isinstance(parameters[a], list)]
    seeds = summary["seeds"]
    lines = [f"Fixed over the grid: {', '.join(fixed)}."] if fixed else []
    if varied:
        lines.append(f"Varied: {'; '.join(varied)}.")
    lines.append(
        f"Each network: {plural(parameters['batch'], 'input sequence')} (batch) of input size m = "
        f"{parameters['inputs']}; {plural(len(seeds), 'seed')}: {_seed_list(seeds)} (each seed draws its own W, U and "
        "inputs)."
    )
    return lines


def _values(values: list[Any]) -> str:
    shown = [_value(v) for v in values]
    if len(shown) <= 8:
        return ", ".join(shown)
    return f"{len(shown)} values, {shown[0]} … {shown[-1]}"


def _seed_list(seeds: list[int]) -> str:
    """0–9, 20, 30, 31: runs of three or more consecutive seeds as ranges."""
    runs: list[list[int]] = []
    for seed in seeds:
        if runs and seed == runs[-1][-1] + 1:
            runs[-1].append(seed)
        else:
            runs.append([seed])
    return ", ".join(f"{r[0]}–{r[-1]}" if len(r) > 2 else ", ".join(map(str, r)) for r in runs)


def _fixed_size(summary: dict[str, Any]) -> str:
    """ "n = 32, T = 100" for the figures' titles, for whichever of n and T the grid kept fixed (panels name the
    varied ones)."""
    parameters = summary["parameters"]
    return ", ".join(
        f"{_SYMBOL[a]} = {parameters[a]}" for a in ("hidden", "steps") if not isinstance(parameters[a], list)
    )


def _markdown(blocks: list[tuple[str, Any]]) -> str:
    captions = _captions()
    lines: list[str] = []
    for kind, content in blocks:
        if kind in ("h1", "h2", "h3"):
            lines += ["#" * int(kind[1]) + " " + content, ""]
        elif kind == "bug":
            lines += [f"> **{content}**", ""]
        elif kind in ("p", "small"):
            lines += [content, ""]
        elif kind == "ul":
            lines += [f"- {item}" for item in content] + [""]
        elif kind == "figure":
            lines += [f"![{captions[content]}]({FIGURES[content]})", "", f"*{captions[content]}*", ""]
        elif kind == "table":
            columns, table = content
            lines.append("| " + " | ".join(h for h, _ in columns) + " |")
            lines.append("|" + "|".join("---" if k in ("activation", "verdict") else "---:" for _, k in columns) + "|")
            for _, row in table.iterrows():
                lines.append("| " + " | ".join(_cell(row, k) for _, k in columns) + " |")
            lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def _captions() -> dict[str, str]:
    return {
        "norms": "log‖J_t‖₂ (natural log) against t, one colour per δ: line = mean over seeds, band = min–max "
        "over seeds, dashed = the bound t·log δ",
        "phase": "Phase diagram: the empirical rate (nats/step) over the grid; dashed = the threshold δ = 1; "
        "solid green = the mean-field order-to-chaos transition χ = 1 (Gaussian and orthogonal inits), labelled with "
        "its δ; an arrow at a panel's edge says where it lies when beyond the grid",
        "rates": "Empirical rate against log δ (natural log); the diagonal rate = log δ is where the bound is tight; "
        "rates of −∞ (J_t = 0) cannot be drawn and are named in the legend",
    }


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1200px; margin: 2em auto;
       padding: 0 1em; color: #222; line-height: 1.45; }
table { border-collapse: collapse; font-size: 0.85em; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; }
th { background: #f0f0f0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.bug { background: #b00020; color: white; padding: 1em; font-size: 1.2em; font-weight: bold; border-radius: 4px; }
.bad { background: #fdd; font-weight: bold; }
figure { margin: 1.5em 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-style: italic; color: #555; }
"""


def _html(blocks: list[tuple[str, Any]], figures: list[Path]) -> str:
    e = html.escape
    captions = _captions()
    images = dict(zip(FIGURES, figures, strict=True))
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>rnnstab sweep report</title>',
        f"<style>{_CSS}</style></head><body>",
    ]
    for kind, content in blocks:
        if kind in ("h1", "h2", "h3"):
            out.append(f"<{kind}>{e(content)}</{kind}>")
        elif kind == "bug":
            out.append(f'<p class="bug">{e(content)}</p>')
        elif kind == "p":
            out.append(f"<p>{e(content)}</p>")
        elif kind == "small":
            out.append(f"<p><small>{e(content)}</small></p>")
        elif kind == "ul":
            out.append("<ul>" + "".join(f"<li>{e(item)}</li>" for item in content) + "</ul>")
        elif kind == "figure":
            data = base64.b64encode(images[content].read_bytes()).decode()
            out.append(
                f'<figure><img alt="{e(captions[content])}" src="data:image/png;base64,{data}">'
                f"<figcaption>{e(captions[content])}</figcaption></figure>"
            )
        elif kind == "table":
            out.append(_html_table(*content))
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _html_table(columns: list[tuple[str, str]], table: Any) -> str:
    e = html.escape
    out = ["<table><thead><tr>", *(f"<th>{e(h)}</th>" for h, _ in columns), "</tr></thead><tbody>"]
    for _, row in table.iterrows():
        cells = []
        for _, key in columns:
            text = _cell(row, key).replace("  **BUG**", " BUG")
            cls = "" if key in ("activation", "verdict", "init", "dtype") else "num"
            if key == "excess" and not row["bound_holds"]:
                cls += " bad"
            cells.append(f'<td class="{cls.strip()}">{e(text)}</td>')
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)
