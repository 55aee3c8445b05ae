import json
import math

import pytest
import torch
from typer.testing import CliRunner

import rnnstab
from rnnstab import lyapunov_report
from rnnstab.cli import app
from rnnstab.validation import SUITE_SIZE

runner = CliRunner()
SMALL = ["--hidden", "10", "--steps", "120", "--batch", "2", "--quiet"]
PNG = b"\x89PNG\r\n\x1a\n"


def test_lyapunov_writes_json_markdown_and_figures(tmp_path):
    result = runner.invoke(app, ["lyapunov", *SMALL, "--gain", "2.0", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    names = ["lyapunov.json", "lyapunov.md", "lyapunov_spectrum.png", "lyapunov_convergence.png", "singular_values.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)  # nothing half-written left behind
    for name in names[2:]:
        assert (tmp_path / name).read_bytes()[:8] == PNG
    record = json.loads((tmp_path / "lyapunov.json").read_text())
    assert "natural log" in record["units"] and record["metadata"]["torch"]
    assert len(record["exponents"]) == 2 and len(record["exponents"][0]) == 10
    summary = record["summary"]
    assert summary["bound_holds"]
    assert summary["sum_rule"]["max_abs_residual"] < 1e-9
    assert summary["mean_field"]["lambda_max_per_step"] == pytest.approx(
        rnnstab.mean_field("tanh", gain=2.0, input_variance=1.0).lyapunov_max_per_step
    )
    assert record["singular_value_steps"] == [10, 100]
    markdown = (tmp_path / "lyapunov.md").read_text()
    assert "nats per step" in markdown and "Newman" not in markdown and "Benettin" in markdown
    assert "lyapunov_spectrum.png" in markdown
    assert "s.e. of the batch mean" in markdown and "averaged" not in markdown  # not an average of the rows' s.e.


def test_lyapunov_json_on_stdout_matches_the_library(tmp_path):
    args = ["lyapunov", *SMALL, "--activation", "relu", "--delta", "0.8", "--top", "3", "--input-scale", "0.5"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["num_exponents"] == 3 and summary["sum_rule"] is None
    assert summary["log_delta"] == pytest.approx(math.log(0.8), abs=1e-12)
    assert summary["lambda_max_per_step"] <= math.log(0.8) + 1e-12  # δ < 1: guaranteed vanishing
    assert summary["gradient_verdict"] == "guaranteed vanishing"
    assert summary["files"]["spectrum"].endswith("lyapunov_spectrum.png")
    # what the table shows, and the file's parameters: δ, n, T, the warm-up, k and the batch were missing before
    parameters = summary["parameters"]
    assert parameters == json.loads((tmp_path / "lyapunov.json").read_text())["parameters"]
    assert parameters["delta"] == 0.8 and parameters["activation"] == "relu" and parameters["init"] == "gaussian"
    assert (parameters["hidden"], parameters["steps"], parameters["warmup"], parameters["k"]) == (10, 120, 12, 3)
    assert parameters["batch"] == 2 and parameters["input_scale"] == 0.5


def test_every_step_qr_from_the_cli_agrees_with_auto(tmp_path):
    runs = []
    for interval in ("1", "auto"):
        args = ["lyapunov", *SMALL, "--qr-every", interval, "--out", str(tmp_path / interval), "--json"]
        result = runner.invoke(app, [*args, "--singular-values-at", "5"])
        assert result.exit_code == 0, result.output
        runs.append(json.loads(result.stdout))
    assert runs[0]["qr"]["qr_count"] == 120
    assert runs[0]["lambda_max_per_step"] == pytest.approx(runs[1]["lambda_max_per_step"], abs=1e-10)


def test_orthogonal_init_has_no_mean_field_line(tmp_path):
    result = runner.invoke(app, ["lyapunov", *SMALL, "--init", "orthogonal", "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["mean_field"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gain", "1", "--delta", "1"], "alternatives"),
        (["--gain", "0"], "--gain"),
        (["--delta", "-1"], "--delta"),
        (["--qr-every", "often"], "--qr-every"),
        (["--qr-every", "0"], "--qr-every"),
        (["--singular-values-at", "500"], "--singular-values-at"),
        (["--singular-values-at", "a,b"], "--singular-values-at"),
        (["--singular-values-at", ","], "--singular-values-at names no step"),
        (["--top", "0"], "--top must"),
        (["--top", "11"], "--top must be in 1..10"),
        (["--warmup", "120"], "warmup"),
        (["--input-scale", "-1"], "--input-scale"),
        (["--init", "nope"], "init scheme"),
        (["--dtype", "float16"], "--dtype"),
        (["--hidden", "0"], "--hidden must be ≥ 1"),
        # the inputs are drawn before the run's own memory check: a traceback from torch's allocator before
        (["--steps", str(10**13)], "reduce --steps, --batch or --inputs"),
        (["--inputs", str(10**12)], "reduce --steps, --batch or --inputs"),
        # s² overflowed Python's float: an OverflowError traceback, after the whole run
        (["--input-scale", "1e200"], "--input-scale must be at most 1e+150"),
        # the mean-field gain limit was reported as --gain's, which the user never gave
        (["--delta", "1e200"], "--delta 1e+200 makes the gain"),
    ],
)
def test_bad_lyapunov_options_give_one_line_and_exit_2(tmp_path, args, message):
    result = runner.invoke(app, ["lyapunov", *SMALL, "--out", str(tmp_path / "out"), *args])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]
    assert not (tmp_path / "out" / "lyapunov.json").exists()


@pytest.mark.parametrize("seed", ["1", "6"])
def test_delta_one_is_never_read_as_guaranteed_vanishing(tmp_path, seed):
    # At these seeds γ‖W‖₂ recomputed from the scaled W is 1 − 1 ulp: log δ came out −1e-16, "guaranteed vanishing".
    args = ["lyapunov", *SMALL, "--delta", "1", "--seed", seed, "--out", str(tmp_path), "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["log_delta"] == 0.0
    assert summary["gradient_verdict"] == "vanishing"


def test_sum_rule_of_a_network_with_dead_units_is_explained_not_nan(tmp_path):
    args = ["lyapunov", *SMALL, "--activation", "relu", "--delta", "2", "--out", str(tmp_path)]
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "log|det J_t| = −inf" in result.stdout and " nan " not in result.stdout


def test_parameters_record_the_blocks_used(tmp_path):
    # the default 10 blocks, in a window of 8 steps (T = 8, warm-up T // 10 = 0): one block per step
    args = ["lyapunov", "--hidden", "4", "--steps", "8", "--batch", "1", "--quiet"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "lyapunov.json").read_text())
    assert record["parameters"]["blocks"] == 8 == 8 - record["parameters"]["warmup"]


@pytest.mark.parametrize(
    ("args", "window"),
    [
        (["--steps", "16", "--blocks", "1000"], "1..15 "),  # warm-up 16 // 10 = 1
        (["--steps", "16", "--warmup", "6", "--blocks", "11"], "1..10 "),
    ],
)
def test_blocks_beyond_the_measured_window_are_refused_not_clamped(tmp_path, args, window):
    # 1000 blocks in a 15-step window quietly became 15: error bars from other blocks than asked for
    out = tmp_path / "out"
    result = runner.invoke(app, ["lyapunov", "--hidden", "4", "--batch", "1", "--quiet", *args, "--out", str(out)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --blocks must be in " + window), result.stderr
    assert not out.exists()


def test_blocks_as_many_as_the_steps_of_the_window_are_accepted(tmp_path):
    args = ["lyapunov", "--hidden", "4", "--steps", "16", "--batch", "1", "--quiet", "--blocks", "15"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["parameters"]["blocks"] == 15


def test_blocks_help_says_a_value_beyond_the_window_is_refused():
    result = runner.invoke(app, ["lyapunov", "--help"], env={"COLUMNS": "200"})
    text = " ".join(result.output.replace("│", " ").split())
    assert "value above the window's length is refused" in text and "Default: 10, or one per step" in text


@pytest.mark.parametrize("value", ["5,,10", "5,", ",5", "5, ,10"])
def test_singular_values_at_refuses_an_empty_item(tmp_path, value):
    # "5,,10" was read as 5 and 10, where sweep's, train's and inits' lists refuse an empty item as a likely typo
    out = tmp_path / "out"
    result = runner.invoke(app, ["lyapunov", *SMALL, "--singular-values-at", value, "--out", str(out)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0] == f"error: --singular-values-at has an empty item in {value!r}", lines
    assert not out.exists()


def test_float32_bound_allows_float32_rounding(tmp_path):
    # An orthogonal linear RNN at δ = 1 has λ₁ = log δ = 0 exactly; float32 measures about +1e-9, which a fixed 1e-9
    # slack reported as "VIOLATED ← BUG".
    args = ["lyapunov", "--hidden", "16", "--steps", "500", "--batch", "2", "--quiet", "--init", "orthogonal"]
    args += ["--activation", "identity", "--delta", "1", "--dtype", "float32", "--seed", "2", "--json"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert 1e-9 < max(summary["lambda_max_per_trajectory"]) < 1e-6
    assert summary["bound_holds"] and summary["gradient_verdict"] == "marginal"


def test_validate_quick_passes_and_prints_sources(tmp_path):
    result = runner.invoke(app, ["validate", "--quick", "--quiet", "--out", str(tmp_path)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert f"{SUITE_SIZE} of {SUITE_SIZE} checks passed" in result.stdout
    assert "Newman" in result.stdout and "Commun. Math. Phys. 103" in result.stdout
    record = json.loads((tmp_path / "validation.json").read_text())
    assert record["passed"] and len(record["checks"]) == SUITE_SIZE
    markdown = (tmp_path / "validation.md").read_text()
    assert "| PASS |" in markdown and "log\\|det W\\|" in markdown  # pipes escaped inside the table


def test_validate_json_and_exit_code_1_on_a_failure(monkeypatch):
    failing = rnnstab.ValidationCheck(
        name="made up",
        quantity="x",
        expected=0.0,
        measured=1.0,
        tolerance=0.1,
        comparison="=",
        passed=False,
        source="nobody",
        details="",
    )
    monkeypatch.setattr(rnnstab, "run_validation", lambda **kwargs: [failing])
    result = runner.invoke(app, ["validate", "--json"])
    assert result.exit_code == 1
    record = json.loads(result.stdout)
    assert record["passed"] is False and record["failed"] == ["made up"]
    result = runner.invoke(app, ["validate", "--quiet"], env={"COLUMNS": "200"})
    assert result.exit_code == 1 and "FAILED: made up" in result.stdout


def test_help_texts_explain_the_options():
    result = runner.invoke(app, ["lyapunov", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for phrase in ("nats per step", "½·ln(1/ε)", "σ(c·x)", "N(0, g²/n)", "O(T·n²·k)"):
        assert phrase in result.output
    result = runner.invoke(app, ["validate", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "Newman" in result.output and "Exit code" in result.output


def test_a_fixed_interval_past_the_spread_limit_is_one_warning_line(tmp_path):
    # tanh at g = 3, n = 10: λ₁ − λ₁₀ is several nats per step, so 11 steps between QRs (the blocks force one there)
    # spread log R_ii far past 24 nats, and the smaller exponents are rounding.
    args = ["lyapunov", *SMALL, "--gain", "3", "--qr-every", "50", "--out", str(tmp_path), "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: qr_every=50 let log R_ii spread over"), lines
    assert json.loads(result.stdout)["qr"]["max_log_spread"] > json.loads(result.stdout)["qr"]["log_spread_limit"]


def test_markdown_links_only_the_figures_written(tmp_path):
    (tmp_path / "singular_values.png").write_bytes(b"an earlier run's figure")
    rnn = rnnstab.VanillaRNN(rnnstab.init_weights("gaussian", 4, seed=0), activation="tanh")
    result = rnnstab.lyapunov_spectrum(rnn, torch.zeros(1, 30, 0))
    summary = lyapunov_report.summarise(result, log_delta=0.0)
    files = lyapunov_report.write_lyapunov_outputs(
        tmp_path, result=result, singular_values=None, summary=summary, parameters={}, metadata={}, title="t"
    )
    assert "singular_values" not in files and not (tmp_path / "singular_values.png").exists()
    assert "singular_values.png" not in (tmp_path / "lyapunov.md").read_text()


def test_one_block_says_why_there_is_no_standard_error(tmp_path):
    args = ["lyapunov", "--hidden", "6", "--steps", "40", "--blocks", "1", "--batch", "1", "--out", str(tmp_path)]
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "no standard error: it needs --blocks ≥ 2" in result.output and "nan" not in result.output
    markdown = (tmp_path / "lyapunov.md").read_text()
    assert "no standard error" in markdown
    assert markdown.startswith("# Lyapunov spectrum — tanh, n = 6, g = 1.5, δ = ") and "1 input sequence\n" in markdown


def test_a_jacobian_that_becomes_exactly_zero_is_said_so():
    # relu with every unit off from the start: J_t = 0 exactly, λ₁ = −inf. The text blamed --blocks for the missing
    # standard error (there were 10 blocks) and gave a half-life of 0 steps.
    rnn = rnnstab.VanillaRNN(torch.eye(2, dtype=torch.float64), activation="relu")
    result = rnnstab.lyapunov_spectrum(rnn, torch.zeros(1, 40, 0), h0=-torch.ones(2, dtype=torch.float64))
    summary = lyapunov_report.summarise(result, log_delta=0.0)
    assert summary["lambda_max_per_step"] == -math.inf and summary["half_life_steps"] is None
    text = lyapunov_report.top_exponent_text(summary)
    assert "--blocks" not in text and "exactly 0" in text
    assert lyapunov_report.verdict_text(summary) == "vanishing (∂g_t/∂g_0 is exactly 0 from some step on)"


def test_markdown_names_the_mean_field_line_only_when_there_is_one(tmp_path):
    rnn = rnnstab.VanillaRNN(rnnstab.init_weights("orthogonal", 4, seed=0), activation="tanh")
    result = rnnstab.lyapunov_spectrum(rnn, torch.zeros(1, 30, 0))
    summary = lyapunov_report.summarise(result, log_delta=0.0)
    lyapunov_report.write_lyapunov_outputs(
        tmp_path, result=result, singular_values=None, summary=summary, parameters={}, metadata={}, title="t"
    )
    assert "mean-field" not in (tmp_path / "lyapunov.md").read_text().split("## References")[0]


def test_a_figure_that_fails_leaves_the_earlier_run_whole(tmp_path, monkeypatch):
    # The figures were written one by one before the JSON: a failing one left this run's first figures beside the
    # previous run's lyapunov.json and lyapunov.md, a set that no run wrote.
    rnn = rnnstab.VanillaRNN(rnnstab.init_weights("gaussian", 4, seed=0), activation="tanh")
    result = rnnstab.lyapunov_spectrum(rnn, torch.zeros(1, 30, 0))
    spectrum = rnnstab.singular_value_spectrum(rnn, torch.zeros(1, 30, 0), at=[5])
    summary = lyapunov_report.summarise(result, log_delta=0.0, singular_values=spectrum)
    arguments = {"result": result, "singular_values": spectrum, "summary": summary, "parameters": {}, "metadata": {}}
    lyapunov_report.write_lyapunov_outputs(tmp_path, title="run 1", **arguments)
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}

    def fail(*args, **kwargs):
        raise RuntimeError("a figure failed")

    monkeypatch.setattr(lyapunov_report, "plot_singular_values", fail)
    with pytest.raises(RuntimeError, match="a figure failed"):
        lyapunov_report.write_lyapunov_outputs(tmp_path, title="run 2", **arguments)
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before


def test_a_bound_violation_exits_3_as_in_the_other_commands(tmp_path, monkeypatch):
    # λ₁ > log δ beyond rounding is a bug in rnnstab: trace, sweep and audit exit 3 on it; lyapunov printed
    # "VIOLATED ← BUG" and exited 0, so a script reading --json never noticed.
    summarise = lyapunov_report.summarise
    monkeypatch.setattr(lyapunov_report, "summarise", lambda *a, **k: {**summarise(*a, **k), "bound_holds": False})
    result = runner.invoke(app, ["lyapunov", *SMALL, "--out", str(tmp_path), "--json"])
    assert result.exit_code == 3, result.output
    assert json.loads(result.stdout)["bound_holds"] is False and "BUG" in result.stderr
    assert (tmp_path / "lyapunov.json").exists()  # the evidence is kept


@pytest.mark.parametrize(
    "args",
    [
        # every relu unit off at one step: J_t = 0, no finite log σ to bin (min() of an empty tensor)
        ["--hidden", "3", "--activation", "relu", "--delta", "0.5"],
        # every σ_i equal up to rounding: numpy could not cut a few ulps into 60 bins
        ["--hidden", "16", "--init", "orthogonal", "--activation", "identity", "--gain", "0.7"],
    ],
)
def test_singular_value_histograms_of_degenerate_spectra_are_drawn(tmp_path, args):
    result = runner.invoke(
        app, ["lyapunov", *args, "--steps", "40", "--singular-values-at", "10", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "singular_values.png").stat().st_size > 0


def test_validate_refuses_a_negative_seed_before_running_any_check(monkeypatch):
    # it ran the first checks, then failed with "--seed must be ≥ 0 (trajectory b's frame is drawn from seed + b)"
    def must_not_run(**kwargs):
        raise AssertionError("the suite ran")

    monkeypatch.setattr(rnnstab, "run_validation", must_not_run)
    result = runner.invoke(app, ["validate", "--seed", "-1", "--quick"])
    assert result.exit_code == 2
    assert result.output.strip() == "error: --seed must be ≥ 0, got -1"


def test_the_spectrum_figure_says_which_exponents_are_minus_infinity(tmp_path, monkeypatch):
    # −∞ exponents cannot be drawn: the figure showed an empty axis without a word
    from matplotlib.figure import Figure

    labels = []
    save = Figure.savefig
    monkeypatch.setattr(
        Figure, "savefig", lambda fig, *a, **k: (labels.append(fig.axes[0].get_xlabel()), save(fig, *a, **k))
    )
    args = ["lyapunov", "--hidden", "3", "--activation", "relu", "--delta", "0.5", "--steps", "40", "--quiet"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "3 of 3 exponents are −∞" in labels[0]


def test_a_convergence_history_of_one_point_is_drawn(tmp_path, monkeypatch):
    # --steps 1: lines without markers drew nothing, on an axis from 0.96 to 1.04 "(the first 0 are warm-up)"
    from matplotlib.figure import Figure

    figures = []
    save = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: (figures.append(fig), save(fig, *a, **k)))
    args = ["lyapunov", "--hidden", "8", "--steps", "1", "--batch", "2", "--quiet", "--out", str(tmp_path)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    (fig,) = [f for f in figures if "Convergence" in f.axes[0].get_title() or "running" in f.axes[0].get_ylabel()]
    for ax in fig.axes:
        bold = [line for line in ax.lines if line.get_label().startswith("λ_")]
        assert bold and all(line.get_marker() == "o" for line in bold)
    bottom = fig.axes[-1]
    assert bottom.get_xlim() == pytest.approx((0.5, 1.5))
    ticks = [t for t in bottom.get_xticks() if 0.5 <= t <= 1.5]
    assert ticks == [1.0]
    assert bottom.get_xlabel() == "t (steps; no warm-up: every step is averaged)"


def test_an_output_blocked_by_a_directory_is_named_and_the_earlier_run_is_kept_whole(tmp_path):
    # lyapunov.md made a directory: the rerun moved its lyapunov.json (seed 5) in beside seed 0's figures, then failed
    # with "Is a directory: OUT/.lyapunov.XXXX.tmp/lyapunov.md"
    args = ["lyapunov", "--hidden", "4", "--steps", "20", "--batch", "2", "--quiet", "--out", str(tmp_path)]
    assert runner.invoke(app, args).exit_code == 0
    (tmp_path / "lyapunov.md").unlink()
    (tmp_path / "lyapunov.md").mkdir()
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir() if path.is_file()}
    result = runner.invoke(app, [*args, "--seed", "5"])
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == (
        f"error: {tmp_path / 'lyapunov.md'} is a directory, where this command writes a file: move it away or "
        "choose another --out"
    )
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir() if path.is_file()} == before
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([*before, "lyapunov.md"])


def test_validate_writes_its_two_files_together(tmp_path, monkeypatch):
    # validation.json was written, then validation.md failed: a new JSON beside an earlier run's Markdown
    monkeypatch.setattr(rnnstab, "run_validation", lambda **kwargs: [])
    assert runner.invoke(app, ["validate", "--out", str(tmp_path)]).exit_code == 0
    before = (tmp_path / "validation.json").read_bytes()
    (tmp_path / "validation.md").unlink()
    (tmp_path / "validation.md").mkdir()
    result = runner.invoke(app, ["validate", "--seed", "1", "--out", str(tmp_path)])
    assert result.exit_code == 2 and f"error: {tmp_path / 'validation.md'} is a directory" in result.stderr
    assert (tmp_path / "validation.json").read_bytes() == before


@pytest.mark.parametrize(
    ("args", "direction", "verb"),
    [
        (["--gain", "3"], "exploding", "grow"),
        (["--activation", "relu", "--hidden", "2", "--seed", "1"], "exploding", "grow"),
        (["--gain", "1.2"], "vanishing", "shrink"),
    ],
)
def test_the_depth_scale_is_never_negative_and_says_which_way(tmp_path, args, direction, verb):
    # tanh at g = 3 printed "depth scale −1/log χ │ -1.862 steps", relu at n = 2 −8.49, in all three outputs
    result = runner.invoke(app, ["lyapunov", *SMALL, *args, "--out", str(tmp_path)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    field = json.loads((tmp_path / "lyapunov.json").read_text())["summary"]["mean_field"]
    assert field["depth_scale_steps"] == pytest.approx(1 / abs(math.log(field["chi"])))
    assert field["depth_scale_steps"] > 0 and field["depth_scale_direction"] == direction
    text = f"{field['depth_scale_steps']:.4g} steps (squared gradients {verb} by e every ξ steps)"
    assert text in result.stdout and f"| {text} |" in (tmp_path / "lyapunov.md").read_text()
    assert "−1/log χ" not in result.stdout and "−1/log χ |" not in (tmp_path / "lyapunov.md").read_text()


def test_the_depth_scale_at_chi_one_is_infinite_written_as_null(tmp_path):
    # relu at g = √2: χ = 1 up to rounding, and −1/log χ came out as −9e15 steps
    args = ["lyapunov", *SMALL, "--activation", "relu", "--gain", repr(math.sqrt(2)), "--out", str(tmp_path)]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    field = json.loads(result.stdout)["mean_field"]
    assert field["regime"] == "critical" and field["depth_scale_steps"] is None
    assert field["depth_scale_direction"] is None
    assert json.loads((tmp_path / "lyapunov.json").read_text())["summary"]["mean_field"] == field
    assert (
        "| ∞ (χ = 1: squared gradients neither vanish nor grow exponentially) |"
        in (tmp_path / "lyapunov.md").read_text()
    )


def test_singular_value_statistics_leave_out_the_rounding_noise_everywhere(tmp_path):
    # At t = 100 of this network 99 of 128 log σ_i lie below the rounding floor log(n·ε·σ₁) the figure draws; the
    # mean over all of them was −46.9, a statistic of the noise. Over the 29 resolved values it is −27.7.
    args = ["lyapunov", "--hidden", "32", "--steps", "200", "--quiet", "--out", str(tmp_path)]
    result = runner.invoke(app, args, env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "lyapunov.json").read_text())
    summary = record["summary"]["singular_values"]
    assert summary["step"] == [10, 100]
    assert summary["num_below_rounding_floor"] == [15, 99] and summary["num_resolved"] == [113, 29]
    logs = torch.tensor(record["log_singular_values"], dtype=torch.float64)  # (batch, steps, n)
    floor = logs[..., :1] + math.log(32 * torch.finfo(torch.float64).eps)
    for j in range(2):
        resolved = logs[:, j][logs[:, j] >= floor[:, j]]
        assert summary["mean_log_singular_value"][j] == pytest.approx(float(resolved.mean()), rel=1e-12)
    assert summary["mean_log_singular_value"][1] == pytest.approx(-27.65, abs=0.01)
    row = (
        f"| 100 | {summary['mean_log_singular_value'][1]:.4g}, {summary['std_log_singular_value'][1]:.2g} | 99 of 128 |"
    )
    assert row in (tmp_path / "lyapunov.md").read_text()
    assert f"mean, std {summary['mean_log_singular_value'][1]:.4g}" in result.stdout
    assert "99 of 128 below the rounding floor (noise, left out)" in result.stdout
