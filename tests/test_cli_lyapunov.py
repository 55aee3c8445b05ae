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
    args = ["lyapunov", "--hidden", "4", "--steps", "16", "--batch", "1", "--quiet", "--blocks", "1000"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "lyapunov.json").read_text())
    assert record["parameters"]["blocks"] == 15 == 16 - record["parameters"]["warmup"]


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
    assert "no standard error" in (tmp_path / "lyapunov.md").read_text()
