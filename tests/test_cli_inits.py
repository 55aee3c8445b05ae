"""``rnnstab inits``: the files it writes, its JSON, and one clear line (exit 2) for each kind of bad input."""

import json

import pytest
from typer.testing import CliRunner

import rnnstab
from rnnstab.cli import app

runner = CliRunner()
SMALL = ["inits", "--hidden", "12", "--samples", "3", "--jacobian-samples", "1", "--steps", "12", "--batch", "1"]


def test_inits_writes_the_report_and_prints_a_table(tmp_path):
    args = [*SMALL, "--scheme", "orthogonal,spectral_radius", "--scheme", "identity", "--out", str(tmp_path)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    for name in ("orthogonal", "spectral_radius", "identity", "regime"):
        assert name in result.stdout
    assert f"report: {tmp_path / 'report.html'}" in result.stdout.replace("\n", "")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert list(summary["subjects"]) == ["orthogonal", "spectral_radius", "identity"]
    for entry in summary["subjects"].values():
        for field in ("spectral_norm", "spectral_radius", "delta", "nonnormality", "transient_growth"):
            assert set(entry[field]) == {"mean", "spread"}
        assert entry["memory_horizon_steps"]["kind"] in ("measured", "extrapolated", "unbounded")
        assert entry["verdict"]
    assert summary["subjects"]["orthogonal"]["spectral_norm"]["mean"] == pytest.approx(1.0, abs=1e-12)
    assert (tmp_path / "report.md").read_text().startswith("# rnnstab inits")
    assert (tmp_path / "report.html").read_text().count("data:image/png;base64,") == 3
    for figure in ("eigenvalues", "singular_values", "jacobian_norms"):
        assert (tmp_path / "figures" / f"{figure}.png").read_bytes()[:4] == b"\x89PNG"


def test_inits_json_parameters_and_gamma(tmp_path):
    args = [*SMALL, "--scheme", "spectral_radius", "--param", "spectral_radius.rho=0.5", "--json"]
    result = runner.invoke(app, [*args, "--activation", "sigmoid", "--gamma", "0.5", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    entry = summary["subjects"]["spectral_radius"]
    assert entry["spectral_radius"]["mean"] == pytest.approx(0.5, abs=1e-12)
    assert entry["gamma"] == pytest.approx(0.5) and entry["activation"] == "sigmoid[γ=0.5]"
    assert entry["delta"]["mean"] == pytest.approx(0.5 * entry["spectral_norm"]["mean"])
    assert summary["parameters"]["params"] == {"spectral_radius": {"rho": 0.5}}


def test_inits_quiet_prints_only_the_report(tmp_path):
    result = runner.invoke(app, [*SMALL, "--scheme", "identity", "--quiet", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(tmp_path / "report.html")


def test_inits_runs_every_scheme_by_default(tmp_path):
    result = runner.invoke(
        app,
        ["inits", "--hidden", "8", "--samples", "1", "--steps", "4", "--batch", "1", "--json", "--out", str(tmp_path)],
    )
    assert result.exit_code == 0, result.output
    assert list(json.loads(result.stdout)["subjects"]) == rnnstab.scheme_names()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--hidden", "0"], "--hidden must be ≥ 1"),
        (["--samples", "0"], "--samples"),
        (["--steps", "-1"], "--steps"),
        (["--scheme", "nope"], "--scheme: unknown scheme(s) 'nope'; valid names: gaussian"),
        (["--scheme", ","], "--scheme is empty: give at least one value; valid names: gaussian"),
        # accepted as gaussian and orthogonal, where sweep --delta 1,,2 and train --lr 0.1,,1 were refused
        (["--scheme", "gaussian,,orthogonal"], "--scheme has an empty item in 'gaussian,,orthogonal'; valid names: "),
        (["--scheme", "gaussian,"], "--scheme has an empty item in 'gaussian,'; valid names: gaussian"),
        # "parameters given for scheme(s) not audited: foo", as if foo were a scheme
        (["--param", "foo.rho=1"], "--param: unknown scheme(s) 'foo'; valid names: gaussian, orthogonal"),
        (["--param", "rho=0.5"], "--param must look like SCHEME.NAME=VALUE"),
        (["--param", "spectral_radius.rho=abc"], "--param must look like SCHEME.NAME=VALUE"),
        (["--param", "spectral_radius.rho=-1"], "parameter rho must be > 0"),
        (["--scheme", "gaussian", "--param", "orthogonal.gain=2"], "not audited: orthogonal"),
        (["--param", "gaussian.rho=2"], "'gaussian' has no parameter 'rho'; valid parameters: gain"),
        (["--activation", "nope"], "valid names"),
        (["--gamma", "0"], "gamma"),
        (["--input-scale", "-1"], "--input-scale"),
    ],
)
def test_bad_options_give_one_line_and_exit_2(tmp_path, args, message):
    out = tmp_path / "out"
    result = runner.invoke(app, [*SMALL, "--out", str(out), *args])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], result.stderr
    assert "Traceback" not in result.output
    assert not (out / "summary.json").exists()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (["gaussian.gain=1", "gaussian.gain=2"], "error: --param gives gaussian.gain twice (1 and 2): "),
        (["gaussian.gain=1", " gaussian . gain =1"], "error: --param gives gaussian.gain twice (1 and 1): "),
    ],
)
def test_a_parameter_given_twice_is_refused(tmp_path, params, message):
    # the last value won silently: gaussian.gain=1 --param gaussian.gain=2 audited gain 2
    out = tmp_path / "out"
    args = [*SMALL, "--scheme", "gaussian", "--out", str(out)]
    result = runner.invoke(app, [*args, *(part for value in params for part in ("--param", value))])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message) and "give each SCHEME.NAME once" in lines[0], lines
    assert not out.exists()


def test_the_same_parameter_name_for_two_schemes_is_not_a_repeat(tmp_path):
    args = [*SMALL, "--scheme", "gaussian,orthogonal", "--param", "gaussian.gain=1.2", "--param", "orthogonal.gain=2"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["parameters"]["params"] == {"gaussian": {"gain": 1.2}, "orthogonal": {"gain": 2}}


def test_out_pointing_at_a_file_is_refused(tmp_path):
    target = tmp_path / "a-file"
    target.write_text("keep me")
    result = runner.invoke(app, [*SMALL, "--scheme", "identity", "--out", str(target)])
    assert result.exit_code == 2 and "is a file" in result.stderr
    assert target.read_text() == "keep me"


def test_huge_sizes_give_one_line_not_a_traceback(tmp_path):
    # --steps 10¹³ made torch.randn fail with a RuntimeError traceback (exit 1) before any check on memory
    out = tmp_path / "out"
    result = runner.invoke(app, [*SMALL, "--scheme", "identity", "--steps", "10000000000000", "--out", str(out)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: this needs about"), result.stderr
    assert not out.exists()  # the directory made for the report is removed again


def test_help_says_the_printed_table_shows_means_only():
    # the table printed by the command has no spreads (they are in the report), which --help said it showed
    result = runner.invoke(app, ["inits", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "the report shows, as mean ± standard deviation over samples (the table printed here: means only)" in (
        " ".join(result.stdout.split())
    )


def test_summary_json_records_the_versions(tmp_path):
    result = runner.invoke(app, [*SMALL, "--scheme", "identity", "--json", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    versions = json.loads(result.stdout)["versions"]
    assert versions["rnnstab"] == rnnstab.__version__ and {"torch", "numpy", "python"} <= set(versions)


def test_inits_writes_to_rnnstab_results_inits_by_default(tmp_path, monkeypatch):
    # every other command writes to rnnstab-results/<command>; inits wrote to rnnstab-inits
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, [*SMALL, "--scheme", "identity", "--quiet"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "rnnstab-results" / "inits" / "summary.json").is_file()
    assert not (tmp_path / "rnnstab-inits").exists()
    help_text = " ".join(runner.invoke(app, ["inits", "--help"], env={"COLUMNS": "200"}).stdout.split())
    assert "[default: rnnstab-results/inits]" in help_text


def test_growth_cut_off_by_the_horizon_says_so_in_the_table_and_the_json(tmp_path):
    # ‖(1.5I)^t‖₂ = 1.5^t grows up to T = 12: it read "130 (t ≈ 12)", a peak that is the horizon's cut-off
    args = [*SMALL, "--scheme", "scaled_identity", "--param", "scaled_identity.scale=1.5", "--out", str(tmp_path)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    cells = [line.split("│")[7] for line in result.stdout.splitlines() if line.count("│") == 11]  # max_t column
    assert " ".join(" ".join(cells).split()) == "≥ 130, still growing at T = 12"
    assert "(t ≈ 12)" not in result.stdout
    entry = json.loads((tmp_path / "summary.json").read_text())["subjects"]["scaled_identity"]
    assert entry["transient_cut_off"] is True and entry["transient_still_growing"] == 1
    assert "≥ 129.7, still growing at T = 12" in (tmp_path / "report.md").read_text()


def test_the_table_header_says_what_its_cells_are(tmp_path):
    # the header said "means over samples — spreads in the report" above a horizon column printed as "19 ± 1.2"
    args = ["inits", "--hidden", "12", "--samples", "3", "--steps", "12", "--batch", "2", "--scheme", "gaussian"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert (
        "(natural logs; means over samples, over trajectories for the rate and memory horizon — spreads in the report)"
        in text
    )
    table = result.stdout.split("gaussian:")[0]  # the verdict lines below the table say "±" nowhere either
    assert "±" not in table
    assert " ± " in (tmp_path / "report.md").read_text()  # the spreads are in the report
