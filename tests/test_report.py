"""Sweep reports: aggregation over seeds, plain-language conclusions, the BUG banner, figures, self-contained HTML."""

from __future__ import annotations

import dataclasses
import html
import json
import math
import re
import shutil

import numpy as np
import pandas as pd
import pytest

import rnnstab
from rnnstab import plots, store
from rnnstab.plots import plot_phase_diagram, plot_rate_vs_log_delta, plot_sweep_norms
from rnnstab.report import conclusions, mean_field_delta
from rnnstab.sweep import Task, compute_chunk
from tests.sweeps import OVERFLOWING_AT_1_5

GRID = rnnstab.Grid(
    activation=("tanh", "identity"),
    delta=(0.8, 1.0, 1.25),
    init=("orthogonal",),
    seeds=(0, 1),
    hidden=(8,),
    steps=(40,),
    batch=2,
)


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    rnnstab.run_sweep(GRID, out)
    return out, rnnstab.write_report(out)


def test_report_files_exist_and_html_is_self_contained(swept):
    out, report = swept
    assert report.markdown == out / "report.md" and report.html == out / "report.html"
    page = report.html.read_text()
    assert page.count('src="data:image/png;base64,') == 3
    assert not re.search(r'(src|href)="(?!data:)', page), "the HTML must not reference other files"
    assert all(f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in report.figures)
    markdown = report.markdown.read_text()
    for header in (
        "activation",
        "γ",
        "δ",
        "‖W‖₂",
        "ρ(W)",
        "rate (nats/step",
        "log δ",
        "slack",
        "bound excess",
        "verdict",
    ):
        assert header in markdown
    assert "half-life (steps)" in markdown and "natural" in markdown
    for figure in report.figures:
        assert f"]({figure.relative_to(out)})" in markdown
    assert not [p for p in out.rglob("*.tmp")]


def test_summary_json_matches_the_sweep(swept):
    _, report = swept
    summary = json.loads(report.summary_json.read_text())
    assert summary["records"] == 12 and summary["configurations"] == 6 and summary["seeds"] == [0, 1]
    assert summary["bound"]["holds"] is True and summary["bound"]["bug"] is False
    assert sum(summary["regimes"].values()) == 12
    assert set(summary["conclusions"]) == {"tanh", "identity"}
    assert len(summary["table"]) == 6 and {"rate_per_step", "verdict", "spectral_radius_W"} <= set(summary["table"][0])


def test_table_aggregates_seeds(swept):
    out, report = swept
    frame = rnnstab.load_sweep(out)
    table = report.table
    assert len(table) == 6
    for _, row in table.iterrows():
        seeds = frame[(frame["activation"] == row["activation"]) & (frame["delta"] == row["delta"])]
        assert row["seeds"] == 2
        assert row["rate_per_step"] == pytest.approx(seeds["rate_per_step"].mean())
        assert row["rate_per_step_std"] == pytest.approx(seeds["rate_per_step"].std(ddof=1))
        assert row["slack_per_step"] == pytest.approx(math.log(row["delta"]) - row["rate_per_step"])
        assert row["max_bound_excess"] == pytest.approx(seeds["max_bound_excess"].max())
        assert row["spectral_norm_W"] == pytest.approx(row["delta"], rel=1e-12)


def test_mean_field_transition_is_in_the_table_and_matches_linear_theory(swept):
    _, report = swept
    critical = report.table.groupby("activation")["mean_field_delta_critical"].first()
    # identity σ: χ = g², so χ = 1 at g = 1, and an orthogonal W of gain 1 has δ = ‖W‖₂ = 1 — where the rate of a
    # linear orthogonal network, log δ, crosses 0.
    assert critical["identity"] == pytest.approx(1.0, abs=1e-9)
    rates = report.table[report.table["activation"] == "identity"].set_index("delta")["rate_per_step"]
    assert rates[1.0] == pytest.approx(0.0, abs=1e-9) and rates[0.8] < 0 < rates[1.25]
    # unit-variance inputs (input_scale 1) push tanh's transition above the noiseless g_c = 1
    assert critical["tanh"] == pytest.approx(rnnstab.critical_gain("tanh", input_variance=1.0))
    assert critical["tanh"] > 1.5


def test_mean_field_delta_needs_a_mean_field_init():
    assert mean_field_delta("tanh", 1.0, 0.5, "gaussian") == pytest.approx(
        rnnstab.critical_delta("tanh", input_variance=0.25, init="gaussian")
    )
    assert math.isnan(mean_field_delta("tanh", 1.0, 0.5, "identity"))


def test_a_sweep_with_an_input_scale_beyond_the_mean_field_reports_without_it(tmp_path):
    # sweeps took any input scale before it was capped at 1e150 (its square overflows): such a sweep still reports
    configuration = dataclasses.replace(
        GRID.configurations()[0], activation="tanh", init="gaussian", delta=0.5, input_scale=1e200
    )
    assert math.isnan(mean_field_delta("tanh", 1.0, 1e200, "gaussian"))
    (record,) = compute_chunk([Task(configuration, 0)]).records
    store.write_record(tmp_path, record)
    store.write_metadata(tmp_path, {"tool": "rnnstab sweep", "runs": []})
    report = rnnstab.write_report(tmp_path)
    assert report.summary["table"][0]["mean_field_delta_critical"] is None
    assert report.summary["records"] == 1


@pytest.mark.parametrize(
    ("directory", "error", "message"),
    [
        (None, rnnstab.ArgumentTypeError, "^directory must be a path"),
        ("", rnnstab.InvalidArgumentError, "^directory is empty"),
    ],
)
def test_report_names_a_directory_argument_that_is_no_path(tmp_path, monkeypatch, directory, error, message):
    monkeypatch.chdir(tmp_path)  # "" would otherwise read the current directory
    with pytest.raises(error, match=message):
        rnnstab.write_report(directory)


def test_phase_diagram_draws_the_transition_or_points_to_it(tmp_path):
    table = pd.DataFrame(
        [
            {
                "panel": "tanh",
                "delta": d,
                "y": str(g),
                "y_order": g,
                "rate_per_step": -0.1,
                "regime": "vanishing",
                "delta_critical": 1.2 if g == 1.0 else 9.0,
            }
            for g in (0.5, 1.0)
            for d in (0.5, 1.5)
        ]
    )
    ax = plot_phase_diagram(table, path=tmp_path / "phase.png", y_label="γ").axes[0]
    line = next(line for line in ax.lines if line.get_color() == "#1b7837")
    assert list(line.get_xdata()) == [1.2, 1.2] and list(line.get_ydata()) == [0.5, 1.5]  # across the row γ = 1
    assert [t.get_text() for t in ax.texts] == ["χ = 1 at δ ≈ 1.2", "χ = 1 at δ ≈ 9 →"]


def test_the_transition_at_the_threshold_spans_the_panel_and_is_labelled_beside_it(tmp_path):
    # identity σ, orthogonal W: χ = 1 at δ = 1. A '|' tick at the single row's centre lay hidden under the dashed
    # threshold line and the marginal cell's ○, with no δ printed anywhere
    table = pd.DataFrame(
        [
            {
                "panel": "identity",
                "delta": d,
                "y": "1",
                "y_order": 1.0,
                "rate_per_step": math.log(d),
                "regime": "marginal" if d == 1.0 else "exploding" if d > 1 else "guaranteed vanishing",
                "delta_critical": 1.0,
            }
            for d in (0.8, 1.0, 1.2, 1.4)
        ]
    )
    fig = plot_phase_diagram(table, path=tmp_path / "phase.png", y_label="γ")
    ax = fig.axes[0]
    chi = next(line for line in ax.lines if line.get_color() == "#1b7837")
    threshold = next(line for line in ax.lines if line.get_linestyle() == "--")
    assert list(chi.get_xdata()) == [1.0, 1.0]
    assert (min(chi.get_ydata()), max(chi.get_ydata())) == pytest.approx(ax.get_ylim())  # the whole panel's height
    assert chi.get_marker() in ("None", None, "") and chi.get_zorder() > ax.collections[0].get_zorder()
    assert chi.get_linewidth() > 2 * threshold.get_linewidth()  # the dashes drawn over it leave it showing
    (label,) = [t for t in ax.texts if t.get_text() == "χ = 1 at δ ≈ 1"]
    assert label.xyann[0] != 0 and label.get_color() == "#1b7837"  # set off the line it names
    assert "mean-field χ = 1" in [t.get_text() for t in fig.legends[0].get_texts()]


def test_identity_orthogonal_conclusion_is_exact(swept):
    # identity σ, orthogonal W: ‖J_t‖₂ = δ^t exactly, so the rate is log δ, the bound is tight, and δ = 1.25 explodes
    _, report = swept
    rows = report.table[report.table["activation"] == "identity"]
    assert rows["rate_per_step"].to_numpy() == pytest.approx(np.log([0.8, 1.0, 1.25]), abs=1e-9)
    assert list(rows["verdict"]) == ["guaranteed vanishing", "marginal", "exploding"]
    text = report.conclusions["identity"][0]
    assert "first exploded at δ = 1.25 (rate +0.223 nats/step, doubling every 3.11 steps)" in text
    assert "was marginal at δ = 1" in text
    assert "observed in every seed" in text


def _table(rows, **extra):
    base = {
        "activation": "tanh",
        "gamma": 1.0,
        "hidden": 64,
        "steps": 100,
        "input_scale": 1.0,
        "init": "gaussian",
        "dtype": "float64",
        "seeds": 3,
    }
    out = []
    for delta, rate, verdict in rows:
        out.append(
            {
                **base,
                **extra,
                "delta": delta,
                "rate_per_step": rate,
                "rate_per_step_min": rate,
                "rate_per_step_max": rate,
                "slack_per_step": math.log(delta) - rate,
                "verdict": verdict,
            }
        )
    return pd.DataFrame(out)


def test_conclusion_when_nothing_explodes():
    table = _table([(0.5, -0.9, "guaranteed vanishing"), (1.0, -0.4, "vanishing"), (1.5, -0.2, "vanishing")])
    text = conclusions(table)["tanh"][0]
    assert text.startswith("tanh (γ = 1): below δ = 1 (δ = 0.5, 1 configuration) vanishing is guaranteed")
    assert "tanh still vanished up to δ = 1.5 (the largest δ tried): it never exploded." in text
    assert "0.207–0.605 nats/step below the bound's slope" in text


def test_a_tight_bound_rounded_above_is_not_reported_as_a_negative_slack():
    # float32, identity σ, orthogonal W: the rate is log δ exactly, computed a few 1e-9 above it
    table = _table([(0.5, -0.693147165, "guaranteed vanishing"), (1.01, 0.009950336, "exploding")], dtype="float32")
    assert min(table["slack_per_step"]) < 0
    text = conclusions(table)["tanh"][0]
    assert text.endswith("The measured rate equals the bound's slope log δ to rounding: the bound is tight.")
    mixed = _table([(0.5, -0.693147165, "guaranteed vanishing"), (1.2, -0.2, "vanishing")])
    assert "sits 0–0.382 nats/step below the bound's slope" in conclusions(mixed)["tanh"][0]


def test_a_tight_bound_rounded_below_reads_as_tight_too():
    # float64, identity σ, orthogonal W: rates a few 1e-17 under log δ are the same tight bound as float32's above it
    rows = [(0.8, math.log(0.8) - 2e-16, "guaranteed vanishing"), (1.5, math.log(1.5) - 8e-17, "exploding")]
    text = conclusions(_table(rows))["tanh"][0]
    assert text.endswith("The measured rate equals the bound's slope log δ to rounding: the bound is tight.")


def test_conclusion_with_mixed_seeds_and_no_vanishing_above_one():
    table = _table(
        [
            (0.9, -0.1, "guaranteed vanishing"),
            (1.0, 0.0, "marginal"),
            (1.1, 0.01, "mixed: 2 marginal, 1 exploding"),
            (1.2, 0.05, "exploding"),
        ]
    )
    text = conclusions(table)["tanh"][0]
    # marginal in every seed at δ = 1: "did not vanish in every seed" would suggest that some seeds vanished there
    assert "the bound allows growth: tanh was marginal at δ = 1, and first exploded at δ = 1.1" in text
    assert "did not vanish" not in text
    assert (
        "first exploded at δ = 1.1 (fastest seed's rate +0.01 nats/step, doubling every 69.3 steps; "
        "mixed: 2 marginal, 1 exploding)" in text
    )


def test_conclusion_says_where_growth_stops_again_and_counts_one_step_in_the_singular():
    table = _table(
        [
            (0.9, -0.1, "guaranteed vanishing"),
            (1.5, -0.05, "vanishing"),
            (3.5, math.log(2), "exploding"),
            (4.0, -0.01, "vanishing"),
            (4.5, -0.02, "vanishing"),
        ]
    )
    text = conclusions(table)["tanh"][0]
    # "first exploded at δ = 3.5" alone read as a threshold beyond which every δ explodes
    assert (
        "first exploded at δ = 3.5 (rate +0.693 nats/step, doubling every 1 step); at δ = 4, 4.5 it vanished again."
        in text
    )


def test_conclusion_when_some_seeds_vanish_at_the_first_delta_above_one():
    table = _table([(0.9, -0.1, "guaranteed vanishing"), (1.0, -0.01, "mixed: 2 vanishing, 1 marginal")])
    text = conclusions(table)["tanh"][0]
    assert "tanh did not vanish in every seed even at δ = 1, and was mixed over seeds at δ = 1;" in text


def test_conclusion_when_the_first_delta_above_one_already_explodes():
    table = _table([(0.5, -0.7, "guaranteed vanishing"), (1.2, 0.18, "exploding"), (1.5, 0.4, "exploding")])
    text = conclusions(table)["tanh"][0]
    assert "the bound allows growth: tanh exploded already at δ = 1.2, the smallest δ ≥ 1 tried (rate +0.18" in text
    assert "did not vanish" not in text and "first exploded" not in text


def test_an_overflowed_state_is_named_in_the_conclusion_and_the_verdict_cell(tmp_path):
    table = _table([(1.2, 0.18, "exploding"), (1.5, 0.41, "exploding")], dtype="float32")
    table["state_overflow_step"] = [None, 216]
    text = conclusions(table)["tanh"][0]
    assert "At δ = 1.5 the hidden state itself overflowed float32 (first at step 216)" in text
    # the whole path: a sweep whose δ = 1.5 state overflows writes a report that says so
    rnnstab.run_sweep(OVERFLOWING_AT_1_5, tmp_path)
    report = rnnstab.write_report(tmp_path).markdown.read_text()
    assert re.search(r"\| 1\.5 \|.*\| exploding \(state overflowed at t = 2\d\d\) \|", report)
    assert "the hidden state itself overflowed float32 (first at step 2" in report


def test_conclusions_group_by_the_other_varied_axes():
    table = pd.concat(
        [
            _table([(0.5, -0.9, "guaranteed vanishing"), (1.2, -0.1, "vanishing")], hidden=32),
            _table([(0.5, -0.8, "guaranteed vanishing"), (1.2, 0.1, "exploding")], hidden=128),
        ]
    )
    sentences = conclusions(table)["tanh"]
    assert len(sentences) == 2
    assert sentences[0].startswith("tanh (γ = 1, n = 32)") and sentences[1].startswith("tanh (γ = 1, n = 128)")
    assert "never exploded" in sentences[0] and "tanh exploded already at δ = 1.2" in sentences[1]


def test_a_bound_violation_makes_the_report_say_bug(tmp_path):
    grid = rnnstab.Grid(delta=(0.5, 1.2), seeds=(0,), hidden=(8,), steps=(20,), batch=2)
    rnnstab.run_sweep(grid, tmp_path)
    path = sorted((tmp_path / "records").iterdir())[0]
    record = store.read_record(path)
    store.write_record(
        tmp_path, dataclasses.replace(record, bound_holds=False, bound_violations=3, max_bound_excess=0.25)
    )
    report = rnnstab.write_report(tmp_path)
    assert report.bound_holds is False
    markdown = report.markdown.read_text()
    assert markdown.splitlines()[2].startswith("> **⚠ BUG: a computed ‖J_t‖₂ exceeded the bound")
    assert "+2.5e−01  **BUG**" in markdown
    assert '<p class="bug">⚠ BUG' in report.html.read_text()
    summary = json.loads(report.summary_json.read_text())
    assert summary["bound"]["bug"] is True and summary["bound"]["violations"] == 3


def test_report_refuses_an_empty_or_foreign_directory(tmp_path):
    with pytest.raises(rnnstab.InvalidArgumentError, match="no rnnstab sweep"):
        rnnstab.write_report(tmp_path)
    rnnstab.run_sweep(rnnstab.Grid(delta=(0.5,), seeds=(0,), hidden=(4,), steps=(5,), batch=1), tmp_path / "s")
    for record in (tmp_path / "s" / "records").iterdir():
        record.unlink()
    with pytest.raises(rnnstab.InvalidArgumentError, match="no records yet"):
        rnnstab.write_report(tmp_path / "s")


# --- figures ---------------------------------------------------------------------------------------------------------


def test_figures_label_their_axes_in_natural_log(tmp_path):
    curves = pd.DataFrame(
        [
            {"panel": p, "delta": d, "seed": s, "curve": np.arange(1, 11) * (math.log(d) - 0.1 * s)}
            for p in ("tanh, γ = 1", "relu, γ = 1")
            for d in (0.5, 1.0, 1.5)
            for s in range(3)
        ]
    )
    fig = plot_sweep_norms(curves, path=tmp_path / "norms.png")
    visible = [ax for ax in fig.axes if ax.get_visible() and ax.get_xlabel()]
    assert len(visible) == 2
    assert all("natural log" in ax.get_ylabel() and ax.get_xlabel() == "t (steps)" for ax in visible)
    assert len(visible[0].lines) >= 6  # a mean line and a bound line per δ

    table = pd.DataFrame(
        [
            {"panel": "tanh", "delta": d, "y": str(g), "y_order": g, "rate_per_step": math.log(d) - 0.2, "regime": r}
            for g in (0.5, 1.0)
            for d, r in ((0.5, "guaranteed vanishing"), (1.5, "exploding"))
        ]
    )
    fig = plot_phase_diagram(table, path=tmp_path / "phase.png", y_label="γ")
    assert any("natural log" in ax.get_ylabel() for ax in fig.axes)  # the colour bar
    assert fig.axes[0].get_xlabel() == "δ = γ‖W‖₂"

    rates = pd.DataFrame(
        {
            "series": ["a"] * 3,
            "log_delta": [-0.5, 0.0, 0.5],
            "rate_per_step": [-0.7, -0.2, 0.3],
            "rate_per_step_std": [0.1, np.nan, 0.0],
        }
    )
    fig = plot_rate_vs_log_delta(rates, path=tmp_path / "rates.png")
    ax = fig.axes[0]
    assert "natural log" in ax.get_xlabel() and "natural log" in ax.get_ylabel()
    assert any("bound tight" in (line.get_label() or "") for line in ax.lines)
    for name in ("norms", "phase", "rates"):
        assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG"


def test_rate_figure_colours_every_series_apart_keeps_its_legend_off_the_points_and_names_minus_infinity(tmp_path):
    from matplotlib.colors import to_hex

    series = [f"{a}, γ = {g}, n = {n}" for a in ("tanh", "sigmoid") for g in (0.5, 1, 2) for n in (8, 16)]
    rows = [
        {"series": s, "log_delta": x, "rate_per_step": x - 0.1 * i, "rate_per_step_std": 0.05}
        for i, s in enumerate(series)
        for x in (-0.5, 0.0, 0.5)
    ]
    rows += [  # J_t = 0: relu at every δ, hardtanh at the smaller δ only
        {"series": "relu, γ = 1, n = 8", "log_delta": x, "rate_per_step": -math.inf, "rate_per_step_std": np.nan}
        for x in (-0.5, 0.0, 0.5)
    ]
    rows += [
        {"series": "hardtanh, γ = 1, n = 8", "log_delta": x, "rate_per_step": r, "rate_per_step_std": np.nan}
        for x, r in ((math.log(0.8), -math.inf), (0.5, 0.4))
    ]
    fig = plot_rate_vs_log_delta(pd.DataFrame(rows), path=tmp_path / "rates.png")
    ax = fig.axes[0]
    drawn = [c.lines[0] for c in ax.containers]
    assert [c.get_label() for c in ax.containers] == [*series, "hardtanh, γ = 1, n = 8"]
    assert len({to_hex(line.get_color()) for line in drawn}) == len(drawn)  # tab10 repeated after 10
    renderer = fig.canvas.get_renderer()
    legend = ax.get_legend()
    assert legend.get_window_extent(renderer).x0 >= ax.get_window_extent(renderer).x1  # outside, right of the axes
    texts = [t.get_text() for t in legend.get_texts()]
    assert "relu, γ = 1, n = 8: rate −∞ (J_t = 0)\nat every δ, not drawn" in texts
    assert "hardtanh, γ = 1, n = 8: rate −∞ (J_t = 0)\nat δ = 0.8, not drawn" in texts
    assert texts.index("rate = log δ (bound tight)") == len(drawn)  # after the series, before the notes


def test_conclusions_follow_the_order_the_activations_were_named_in(tmp_path, monkeypatch):
    grid = rnnstab.Grid(activation=("tanh", "relu"), delta=(0.5,), hidden=(4,), steps=(10,), seeds=(0,), batch=2)
    rnnstab.run_sweep(grid, tmp_path)
    panels = []

    def norms(curves, **options):
        panels.extend(dict.fromkeys(curves["panel"]))
        return plot_sweep_norms(curves, **options)

    monkeypatch.setattr(plots, "plot_sweep_norms", norms)
    report = rnnstab.write_report(tmp_path)
    assert list(report.conclusions) == ["tanh", "relu"]  # records load alphabetically: relu first
    text = report.markdown.read_text()
    assert text.index("| tanh |") < text.index("| relu |")
    assert panels == ["tanh, γ = 1", "relu, γ = 1"]  # the curves figure too, not only the table


def test_an_unfinished_sweep_says_how_many_planned_records_are_missing(tmp_path):
    grid = rnnstab.Grid(delta=(0.5, 1.5), hidden=(4,), steps=(10,), seeds=(0, 1), batch=2)
    rnnstab.run_sweep(grid, tmp_path)
    complete = rnnstab.write_report(tmp_path)
    assert complete.summary["missing_records"] == 0 and "unfinished" not in complete.markdown.read_text()
    sorted((tmp_path / "records").iterdir())[0].unlink()  # as an interrupted run leaves it
    report = rnnstab.write_report(tmp_path)
    assert (report.summary["planned_records"], report.summary["missing_records"]) == (4, 1)
    for text in (report.markdown.read_text(), html.unescape(report.html.read_text())):
        assert "The sweep is unfinished: 1 of the 4 records its runs planned is missing or unreadable" in text


def test_half_life_and_excess_cells_for_marginal_and_dead_jacobians():
    from rnnstab.report import _cell

    def row(rate, verdict, excess=-1e-3):
        half = math.log(2) / -rate if -math.inf < rate < 0 else None
        return pd.Series(
            {
                "rate_per_step": rate,
                "verdict": verdict,
                "half_life_steps": half,
                "doubling_steps": None,
                "max_bound_excess": excess,
                "bound_holds": True,
            }
        )

    assert _cell(row(-3e-16, "marginal"), "half_life") == "— (marginal)"
    assert _cell(row(-math.inf, "vanishing", -math.inf), "half_life") == "— (J_t = 0)"
    assert _cell(row(-math.inf, "vanishing", -math.inf), "excess") == "−∞"
    assert _cell(row(-0.1, "vanishing"), "half_life") == "6.93"
    assert _cell(row(-0.1, "vanishing"), "excess") == "−1.0e−03"


def test_the_report_names_the_network_swept_in_its_text_and_figure_titles(swept, tmp_path, monkeypatch):
    # n, T, init, dtype, batch and input size appeared nowhere when the grid kept them fixed (the table has columns
    # for varied axes only), and the figures' titles said only "tanh, γ = 1"
    out, report = swept
    markdown = report.markdown.read_text()
    assert markdown.index("## Parameters") < markdown.index("## Conclusions")
    section = markdown[markdown.index("## Parameters") : markdown.index("## Conclusions")]
    assert "Fixed over the grid: γ = 1, n = 8, T = 40, input scale = 1, init = orthogonal, dtype = float64." in section
    assert "Varied: activation = tanh, identity; δ = 0.8, 1, 1.25." in section
    assert "2 input sequences (batch) of input size m = 4; 2 seeds: 0, 1 (each seed draws its own W, U" in section
    assert report.summary["parameters"] == {
        "activation": ["tanh", "identity"],
        "gamma": 1.0,
        "delta": [0.8, 1.0, 1.25],
        "hidden": 8,
        "steps": 40,
        "input_scale": 1.0,
        "init": "orthogonal",
        "dtype": "float64",
        "batch": 2,
        "inputs": 4,
    }
    titles = []
    for name in ("plot_sweep_norms", "plot_phase_diagram", "plot_rate_vs_log_delta"):
        original = getattr(plots, name)
        monkeypatch.setattr(plots, name, lambda *a, _f=original, **k: titles.append(k["title"]) or _f(*a, **k))
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    rnnstab.write_report(copy)
    assert len(titles) == 3 and all(title.endswith(" — n = 8, T = 40") for title in titles)


def test_the_seed_list_of_the_parameters_reads_ranges():
    from rnnstab.report import _seed_list

    assert _seed_list([0, 1]) == "0, 1" and _seed_list([*range(10), 20, 30, 31]) == "0–9, 20, 30, 31"


def test_html_and_markdown_carry_the_same_sentences(swept):
    # report.html had lost the paragraph that explains the table's columns
    _, report = swept
    markdown = report.markdown.read_text()
    page = html.unescape(report.html.read_text())
    prose = [
        line.removeprefix("- ").removeprefix("#").lstrip("# ")
        for line in markdown.splitlines()
        if line and not line.startswith(("|", "!", "*"))
    ]
    assert len(prose) > 10 and any("exact largest singular value" in line for line in prose)
    missing = [line for line in prose if line not in page]
    assert not missing
    for _, row in report.table.iterrows():  # and the same table cells
        assert f">{row['verdict']}<" in page


def test_signed_numbers_share_one_minus_and_zero_reads_0(swept):
    # a float32 slack cell read "-2.35e-08" (ASCII) beside "+5.2e−06", and log δ = 0 read "+0"
    from rnnstab.report import _cell, _excess, _fmt, _signed, _value

    assert _fmt(-2.35e-08) == "−2.35e−08" and _signed(5.2e-06) == "+5.2e−06"
    assert _signed(0.0) == _signed(-0.0) == _fmt(-0.0) == _excess(0.0) == _excess(-0.0) == _value(0.0) == "0"
    assert _signed(-0.5) == "−0.5" and _fmt(1.08) == "1.08" and _excess(-1e-3) == "−1.0e−03"
    row = pd.Series({"log_delta": 0.0, "slack_per_step": -2.35e-08})
    assert (_cell(row, "log_delta"), _cell(row, "slack_per_step")) == ("0", "−2.35e−08")
    _, report = swept
    rows = [line for line in report.markdown.read_text().splitlines() if line.startswith("| tanh")]
    cells = [cell.strip() for line in rows for cell in line.split("|")]
    assert "0" in cells and "+0" not in cells  # δ = 1: log δ = 0
    assert not [cell for cell in cells if re.search(r"\d-|-\d", cell)]


def test_the_label_of_a_transition_beyond_the_grid_covers_no_cell_marker(tmp_path):
    # the "χ = 1 at δ ≈ 2.83 →" label sat on the "mixed" ◇ of the largest δ's cell (at the row's centre, as the label)
    deltas = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)
    table = pd.DataFrame(
        [
            {
                "panel": f"{act}, n = {n}",
                "delta": d,
                "y": str(g),
                "y_order": g,
                "rate_per_step": -0.2 if d < 2 else 0.01,
                "regime": "mixed: 1 vanishing, 1 exploding" if d == 2 else "vanishing",
                "delta_critical": 2.83 if act == "relu" else 3.71,
            }
            for act in ("tanh", "relu")
            for n in (16, 32)
            for g in (0.5, 1.0)
            for d in deltas
        ]
    )
    fig = plot_phase_diagram(table, path=tmp_path / "phase.png", y_label="γ")
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes[:4]:
        marks = [line.get_window_extent(renderer) for line in ax.lines if line.get_marker() not in (None, "None", "")]
        labels = [text.get_window_extent(renderer) for text in ax.texts if "→" in text.get_text()]
        assert len(marks) == 2 and len(labels) == 2
        assert not [(m, t) for m in marks for t in labels if m.overlaps(t)]
