import errno
import inspect
import json
import math
import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

import rnnstab
from rnnstab import _io
from rnnstab.cli import app
from rnnstab.plots import plot_trace

runner = CliRunner()
SMALL = ["--hidden", "12", "--steps", "25", "--batch", "3", "--quiet"]


def test_trace_writes_png_and_json(tmp_path):
    result = runner.invoke(app, ["trace", *SMALL, "--delta", "0.8", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "trace.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    record = json.loads((tmp_path / "trace.json").read_text())
    assert len(record["log_spectral"]) == 3 and len(record["log_spectral"][0]) == 25
    assert record["summary"]["bound_violations"] == 0
    assert record["summary"]["regimes"] == {"guaranteed vanishing": 3}
    assert record["metadata"]["torch"]
    assert "natural log" in record["units"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_trace_exits_3_when_the_bound_is_violated_as_sweep_does(tmp_path, monkeypatch):
    fake = rnnstab.BoundViolation(batch=0, step=3, log_norm=0.1, log_bound=0.0, excess=0.1, tolerance=1e-12)
    monkeypatch.setattr(rnnstab, "bound_violations", lambda trace, delta: [fake])
    result = runner.invoke(app, ["trace", *SMALL, "--delta", "0.8", "--out", str(tmp_path)])
    assert result.exit_code == 3, result.output
    assert "BUG" in result.output and "trace.json" in result.output
    assert json.loads((tmp_path / "trace.json").read_text())["summary"]["bound_violations"] == 1


def test_trace_median_of_an_even_batch_is_the_mean_of_the_middle_two(tmp_path):
    result = runner.invoke(app, ["trace", *SMALL, "--batch", "2", "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    final = [row[-1] for row in json.loads((tmp_path / "trace.json").read_text())["log_spectral"]]
    assert final[0] != final[1]
    assert json.loads(result.stdout)["log_spectral_final_median"] == pytest.approx(sum(final) / 2, rel=1e-15)


@pytest.mark.parametrize("batch", [2, 4])
def test_the_bold_line_of_the_trace_figure_is_the_median_the_summary_gives(tmp_path, batch):
    # torch's median of an even batch is its lower middle value: with two sequences the "median" was the lower trace
    W = rnnstab.scale_to_threshold(rnnstab.init_weights("gaussian", 12, seed=0), delta=0.9, gamma=1.0)
    rnn = rnnstab.VanillaRNN(W, U=torch.randn(12, 2, dtype=torch.float64), activation="tanh")
    trace = rnnstab.jacobian_norms(rnn, torch.randn(batch, 6, 2, dtype=torch.float64))
    fig = plot_trace(trace, delta=0.9, path=tmp_path / "trace.png")
    (bold,) = [line for line in fig.axes[0].lines if line.get_label() == "log ‖J_t‖₂ (spectral)"]
    final = trace.log_spectral[:, -1].sort().values
    assert bold.get_ydata()[-1] == pytest.approx(float(final[batch // 2 - 1] + final[batch // 2]) / 2, rel=1e-15)
    assert bold.get_marker() == "o"  # few steps: a one-step trace drew nothing without markers


def test_trace_json_on_stdout_matches_the_library(tmp_path):
    args = ["trace", *SMALL, "--activation", "sigmoid", "--gamma", "1", "--delta", "1.2", "--out", str(tmp_path)]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["activation"] == "sigmoid[γ=1]"
    assert summary["gamma"] == pytest.approx(1.0)
    assert summary["spectral_norm_W"] == pytest.approx(1.2, rel=1e-12)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--delta", "0"], "--delta"),
        (["--delta", "-1"], "--delta"),
        (["--gamma", "-1"], "gamma"),
        (["--activation", "nope"], "valid names"),
        (["--init", "nope"], "init scheme"),
        (["--steps", "0"], "--steps"),
        (["--hidden", "0"], "--hidden must be ≥ 1"),
        (["--dtype", "float16"], "--dtype"),
        (["--input-scale", "-1"], "--input-scale must be a finite number ≥ 0"),
        # were a traceback from torch's allocator, and "W holds 16 non-finite value(s)" (the float32 cast of W)
        (["--steps", "100000000000"], "reduce --steps or --batch"),
        (["--delta", "1e300", "--dtype", "float32"], "W does not fit in float32"),
    ],
)
def test_bad_options_give_one_line_and_exit_2(tmp_path, args, message):
    out = tmp_path / "out"
    result = runner.invoke(app, ["trace", *SMALL, "--out", str(out), *args])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]
    assert "Traceback" not in result.output
    assert not out.exists()  # the output directory it made is removed again: a refused run leaves nothing


@pytest.mark.parametrize(
    "command",
    [
        ["trace", "--init", "nope"],  # each is refused after its output directory was made
        ["train", "--task", "copy", "--memory", "0"],
        ["inits", "--scheme", "nope"],
    ],
)
def test_a_refused_command_removes_the_directories_it_made_and_keeps_the_others(tmp_path, command):
    existing = tmp_path / "existing"
    (existing / "old").mkdir(parents=True)
    for out in (tmp_path / "new" / "deeper", existing / "fresh"):
        result = runner.invoke(app, [*command, "--out", str(out)])
        assert result.exit_code == 2, result.output
    assert not (tmp_path / "new").exists()
    assert sorted(p.name for p in existing.iterdir()) == ["old"]


def test_an_interrupted_command_removes_the_empty_directories_it_made(tmp_path, monkeypatch):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(rnnstab, "audit_schemes", interrupt)  # Ctrl-C before anything was written
    result = runner.invoke(app, ["inits", "--out", str(tmp_path / "new" / "deeper")])
    assert result.exit_code == 130
    assert list(tmp_path.iterdir()) == []


def test_out_pointing_at_a_file_is_refused(tmp_path):
    target = tmp_path / "a-file"
    target.write_text("keep me")
    result = runner.invoke(app, ["trace", *SMALL, "--out", str(target)])
    assert result.exit_code == 2 and "is a file" in result.stderr
    assert target.read_text() == "keep me"


def test_python_dash_m_and_version():
    done = subprocess.run(
        [sys.executable, "-m", "rnnstab", "--version"], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip() == rnnstab.__version__
    bad = subprocess.run(
        [sys.executable, "-m", "rnnstab", "trace", "--delta", "0"], capture_output=True, text=True, timeout=120
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().startswith("error:") and "Traceback" not in bad.stderr


def test_help_explains_the_scaled_family():
    result = runner.invoke(app, ["trace", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "σ(c·x)" in result.output and "δ < 1 guarantees" in result.output


def test_identities_table_and_exit_code():
    result = runner.invoke(app, ["identities", "--only", "induction", "--only", "wn-bn"])
    assert result.exit_code == 0, result.output
    assert "PASS" in result.output and "FAIL" not in result.output


def test_identities_json():
    result = runner.invoke(app, ["identities", "--json", "--only", "ema-unrolled", "--dtype", "float32"])
    assert result.exit_code == 0, result.output
    (record,) = json.loads(result.stdout)
    assert record["name"] == "ema-unrolled" and record["passed"] is True
    assert set(record) == {"name", "claim", "discrepancy", "tolerance", "passed", "details", "kind"}
    assert record["kind"] == "identity"


def test_a_report_is_not_counted_as_an_identity_that_passed():
    result = runner.invoke(app, ["identities", "--only", "induction,newton-rnn"])
    assert result.exit_code == 0, result.output
    assert "1/1 passed; 1 report (newton-rnn)" in result.output
    result = runner.invoke(app, ["identities", "--only", "newton-rnn", "--json"])
    assert [record["kind"] for record in json.loads(result.stdout)] == ["report"]


def test_identities_failure_exits_1(monkeypatch):
    from rnnstab.identities import IDENTITIES
    from rnnstab.weightnorm import check_wn_bn

    monkeypatch.setitem(IDENTITIES, "wn-bn", lambda **kw: check_wn_bn(whiten=False, **kw))
    result = runner.invoke(app, ["identities", "--only", "wn-bn"])
    assert result.exit_code == 1
    assert "FAIL" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--only", "nope"], "error: --only: unknown check name 'nope'; valid names: induction, momentum-ema,"),
        (["--dtype", "float16"], "error: --dtype must be float32 or float64, got 'float16'"),
    ],
)
def test_identities_bad_options_exit_2(args, message):
    result = runner.invoke(app, ["identities", *args])
    assert result.exit_code == 2
    assert result.output.startswith(message) and "Traceback" not in result.output


def test_identities_help_lists_checks():
    result = runner.invoke(app, ["identities", "--help"])
    assert result.exit_code == 0
    assert "momentum-ema" in result.output and "Exit code 1" in result.output


def test_errors_name_the_option_the_user_typed():
    # the library names its arguments (monitor_every, k); the command line names its options
    for args, line in (
        (["train", "--monitor-every", "0"], "error: --monitor-every must be ≥ 1, got 0"),
        (["lyapunov", "--top", "0", "--hidden", "4", "--steps", "20"], "error: --top must be ≥ 1, got 0"),
        (["lyapunov", "--blocks", "0", "--hidden", "4", "--steps", "20"], "error: --blocks must be ≥ 1, got 0"),
    ):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2 and result.stderr.strip() == line, result.output


def test_identities_only_takes_comma_lists_once_and_shows_reports_as_reports():
    result = CliRunner().invoke(app, ["identities", "--only", "taylor,newton-rnn", "--only", "taylor", "--json"])
    assert result.exit_code == 0, result.output
    assert [r["name"] for r in json.loads(result.stdout)] == ["taylor", "newton-rnn"]
    table = CliRunner().invoke(app, ["identities", "--only", "newton-rnn"], env={"COLUMNS": "200"})
    assert "report" in table.stdout and "PASS" not in table.stdout


def test_trace_takes_input_scale_zero_as_an_autonomous_network(tmp_path):
    # like inits and lyapunov: x = 0, so g_t = σ(W g_(t-1)) from g_0 = σ(0) = 0 stays at 0 and J_t = (σ'(0) W)^t
    args = ["trace", "--activation", "tanh", "--delta", "0.5", "--init", "orthogonal", "--hidden", "6", "--steps", "4"]
    result = runner.invoke(app, [*args, "--batch", "1", "--input-scale", "0", "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["log_spectral_final_median"] == pytest.approx(4 * math.log(0.5), abs=1e-9)
    assert summary["rate_per_step_median"] == pytest.approx(math.log(0.5), abs=1e-9)


COMMANDS = ("trace", "sweep", "report", "lyapunov", "validate", "analyze", "inits", "identities", "train")


def test_every_command_is_listed_in_the_help():
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert all(f" {name} " in result.output for name in COMMANDS)


@pytest.mark.parametrize("command", [[], *([name] for name in COMMANDS)])
def test_help_shows_no_type_placeholder_that_reads_as_a_value(command):
    # typer prints "<bool>" after an on/off flag, as if it took a value ("--json <bool>"), and "<list[str]>" after
    # a repeatable option; flags show nothing there and repeatable options "VALUES"
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output and "<list[" not in result.output
    assert "--help" in result.output


@pytest.mark.parametrize(
    ("command", "option", "message"),
    [
        *((command, "--activation", "unknown activation") for command in ("trace", "lyapunov", "inits")),
        *((command, "--init", "unknown init scheme") for command in ("trace", "lyapunov")),
    ],
)
def test_an_unknown_name_error_names_its_option(tmp_path, command, option, message):
    result = runner.invoke(app, [command, option, "nope", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert f"error: {option}: {message}" in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["trace", "--steps", "abc"], "error: Invalid value for '--steps'"),
        (["trace", "--hidden", "1.5"], "error: Invalid value for '--hidden'"),
        (["trace", "--no-such-option"], "error: No such option: --no-such-option"),
        (["analyze"], "error: Missing argument"),
        (["no-such-command"], "error: No such command 'no-such-command'"),
    ],
)
def test_a_usage_error_is_one_line_and_exit_code_2(args, message):
    # typer drew these as a usage block over a boxed panel, unlike every other bad input
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(message), result.output
    assert lines[0].endswith("--help)")


def test_no_command_still_prints_the_help():
    result = runner.invoke(app, [])
    assert result.exit_code == 2
    assert "Usage:" in result.output and "sweep" in result.output


def test_trace_names_an_output_blocked_by_a_directory_and_keeps_the_earlier_figure(tmp_path):
    # it said "error: Is a directory: OUT/trace.json", naming neither --out nor what to do
    assert runner.invoke(app, ["trace", *SMALL, "--out", str(tmp_path)]).exit_code == 0
    figure = (tmp_path / "trace.png").read_bytes()
    (tmp_path / "trace.json").unlink()
    (tmp_path / "trace.json").mkdir()
    result = runner.invoke(app, ["trace", *SMALL, "--seed", "5", "--out", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == (
        f"error: {tmp_path / 'trace.json'} is a directory, where this command writes a file: move it away or choose "
        "another --out"
    )
    assert (tmp_path / "trace.png").read_bytes() == figure


def test_trace_whose_figure_fails_keeps_the_earlier_numbers(tmp_path, monkeypatch):
    # trace.json was written first: a figure that failed left this run's numbers beside an earlier run's figure
    assert runner.invoke(app, ["trace", *SMALL, "--out", str(tmp_path)]).exit_code == 0
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}

    def disk_full(*args, path, **kwargs):
        def write(handle):
            raise OSError(errno.ENOSPC, "No space left on device", handle.name)

        _io.atomic_write(path, write)

    monkeypatch.setattr(sys.modules["rnnstab.cli.trace"], "plot_trace", disk_full)
    result = runner.invoke(app, ["trace", *SMALL, "--seed", "5", "--out", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == f"error: No space left on device: {tmp_path / 'trace.png'}"
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before


def test_identities_refuse_an_empty_item_as_sweep_and_train_do():
    # "taylor,,induction" ran both checks where sweep --delta 1,,2 and train --lr 0.1,,1 were refused
    for only in ("taylor,,induction", "wn-bn,", ","):
        result = runner.invoke(app, ["identities", "--only", only])
        assert result.exit_code == 2, result.output
        line = result.stderr.strip()
        assert line.startswith("error: --only ") and line.endswith("; valid names: " + ", ".join(rnnstab.IDENTITIES))


def test_every_command_help_breaks_only_between_paragraphs():
    # rich keeps single line breaks: docstring-wrapped help broke mid-sentence at 80 columns (lyapunov, validate)
    for command in app.registered_commands:
        text = inspect.cleandoc(command.help or command.callback.__doc__ or "")
        assert text and "\n" not in text.replace("\n\n", ""), command.callback.__name__
    result = runner.invoke(app, ["validate", "--help"], env={"COLUMNS": "200"})
    assert "2 on a bad option" in result.output


@pytest.mark.parametrize(
    "command",
    [
        ["trace", "--hidden", "6", "--steps", "8", "--batch", "2"],
        ["lyapunov", "--hidden", "6", "--steps", "40", "--batch", "1"],
        ["sweep", "--hidden", "6", "--steps", "8", "--delta", "0.5,1.5", "--seeds", "1", "--batch", "2"],
    ],
)
def test_json_on_stdout_states_its_units(tmp_path, command):
    # the files said "natural log; … nats per step", the --json output these commands print did not
    result = runner.invoke(app, [*command, "--out", str(tmp_path / "o"), "--json"])
    assert result.exit_code == 0, result.output
    assert "natural log" in json.loads(result.stdout)["units"]


def test_trace_refuses_inputs_that_overflow_by_the_option_name(tmp_path):
    # it said "x holds 8 non-finite value(s)": an x the user never gave
    result = runner.invoke(app, ["trace", *SMALL, "--input-scale", "1e308", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --input-scale is too large: 1e+308 × N(0, 1) overflows float64")
    assert not (tmp_path / "o").exists()


def test_importing_the_library_and_the_cli_leaves_matplotlib_and_scipy_optimize_for_later():
    # they take 0.7 s each to import, a third of `import rnnstab` and of every `rnnstab --help`
    probe = "import sys, rnnstab.cli; print(sorted({'matplotlib', 'scipy.optimize'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_trace_says_from_which_step_the_jacobian_is_exactly_zero(tmp_path):
    # it printed "-inf" with no reason
    args = ["trace", "--activation", "relu", "--input-scale", "0", "--hidden", "16", "--steps", "50", "--batch", "2"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["jacobian_zero_from_step"], summary["jacobian_zero_inputs"]) == (1, 2)
    assert json.loads((tmp_path / "trace.json").read_text())["summary"]["jacobian_zero_from_step"] == 1
    table = runner.invoke(app, [*args, "--out", str(tmp_path), "--quiet"], env={"COLUMNS": "200"})
    assert "∂g_t/∂g_0 = 0 exactly" in table.stdout and "from step 1 in 2 of 2 input sequences" in table.stdout
    assert "-inf (J_t = 0)" in table.stdout
    alive = runner.invoke(app, ["trace", *SMALL, "--out", str(tmp_path / "alive"), "--json"])
    assert json.loads(alive.stdout)["jacobian_zero_from_step"] is None
    assert "= 0 exactly" not in runner.invoke(app, ["trace", *SMALL, "--out", str(tmp_path / "alive")]).stdout


def test_the_trace_figure_marks_a_zero_jacobian_on_the_floor_and_names_no_undrawn_curve(tmp_path):
    # the figure showed the bound alone, its legend naming two curves that were not drawn
    # no input and g_0 = 0: every relu unit sits at 0, where relu' = 0, so J_1 = D_1 W is exactly 0 already
    W = rnnstab.scale_to_threshold(rnnstab.init_weights("gaussian", 16, seed=0), delta=0.9, gamma=1.0)
    rnn = rnnstab.VanillaRNN(W, U=torch.zeros(16, 2, dtype=torch.float64), activation="relu")
    dead = rnnstab.jacobian_norms(rnn, torch.zeros(2, 50, 2, dtype=torch.float64), norms=("spectral", "frobenius"))
    fig = plot_trace(dead, delta=0.9, path=tmp_path / "dead.png")
    top, bottom = fig.axes
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert not [text for text in legend if "spectral" in text or "Frobenius" in text]
    assert any("J_t = 0 exactly" in text and "first at t = 1" in text for text in legend)
    for ax in (top, bottom):
        (floor,) = [line for line in ax.lines if line.get_marker() == "v" and len(line.get_xdata())]
        assert set(floor.get_xdata()) == {1}
        assert (
            ax.get_ylim()[0]
            < min(floor.get_ydata())
            < min(y for line in ax.lines if line is not floor for y in line.get_ydata() if math.isfinite(y))
        )
    # one input dying at t = 4, the other alive: the live curves keep their legend, the ▼ sits at t = 4
    import dataclasses

    live = rnnstab.jacobian_norms(
        rnnstab.VanillaRNN(torch.eye(4, dtype=torch.float64) * 0.9, U=torch.zeros(4, 1, dtype=torch.float64)),
        torch.zeros(2, 8, 1, dtype=torch.float64),
        norms=("spectral", "frobenius"),
    )
    spectral, frobenius = live.log_spectral.clone(), live.log_frobenius.clone()
    spectral[1, 3:], frobenius[1, 3:] = -math.inf, -math.inf
    partly = dataclasses.replace(live, log_spectral=spectral, log_frobenius=frobenius)
    assert rnnstab.plots.zero_jacobian_steps(partly) == [None, 4] and rnnstab.plots.zero_jacobian_steps(live) == []
    fig = plot_trace(partly, delta=0.9, path=tmp_path / "partly.png")
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "log ‖J_t‖₂ (spectral)" in legend and any("first at t = 4" in text for text in legend)


@pytest.mark.parametrize(("steps", "spacing"), [(100, {20}), (50, {10}), (7, {1})])
def test_trace_ticks_are_nice_integer_steps(tmp_path, steps, spacing):
    # they read 0, 15, 30, … for T = 100 and 0, 6, 12, … for T = 50
    W = rnnstab.scale_to_threshold(rnnstab.init_weights("gaussian", 4, seed=0), delta=0.9, gamma=1.0)
    rnn = rnnstab.VanillaRNN(W, U=torch.randn(4, 1, dtype=torch.float64), activation="tanh")
    trace = rnnstab.jacobian_norms(rnn, torch.randn(2, steps, 1, dtype=torch.float64))
    ticks = plot_trace(trace, delta=0.9, path=tmp_path / "trace.png").axes[1].get_xticks()
    assert {round(float(step), 9) for step in ticks[1:] - ticks[:-1]} == spacing


def test_the_frobenius_median_is_drawn_over_the_spectral_one_where_they_coincide(tmp_path):
    # a scalar network: ‖J_t‖_F = ‖J_t‖₂, and the dashed Frobenius line was hidden under the solid spectral one
    rnn = rnnstab.VanillaRNN(torch.full((1, 1), 0.9, dtype=torch.float64), U=torch.zeros(1, 1, dtype=torch.float64))
    trace = rnnstab.jacobian_norms(rnn, torch.zeros(2, 40, 1, dtype=torch.float64), norms=("spectral", "frobenius"))
    lines = {line.get_label(): line for line in plot_trace(trace, delta=0.9, path=tmp_path / "t.png").axes[0].lines}
    spectral, frobenius = lines["log ‖J_t‖₂ (spectral)"], lines["log ‖J_t‖_F (Frobenius)"]
    assert list(spectral.get_ydata()) == list(frobenius.get_ydata())
    assert frobenius.get_zorder() > spectral.get_zorder() and frobenius.get_linestyle() == "--"
    assert spectral.get_linewidth() > frobenius.get_linewidth()  # the solid line shows around the dashes
