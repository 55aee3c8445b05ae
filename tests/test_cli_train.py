"""Tests of ``rnnstab train``: the grid of runs, the files, the exit codes and the error lines."""

from __future__ import annotations

import errno
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rnnstab import load_training_log, training_plots
from rnnstab._io import atomic_write
from rnnstab.cli import app
from rnnstab.training_plots import run_labels

runner = CliRunner()
SMALL = ["--length", "8", "--hidden", "6", "--steps", "4", "--monitor-every", "2", "--device", "cpu", "--quiet"]
PNG = b"\x89PNG\r\n\x1a\n"


def test_every_combination_of_rates_and_batch_sizes_gets_a_log(tmp_path):
    grid = ["--lr", "0.01,0.02,0.01", "--batch-size", "4", "--batch-size", "8"]  # a repeated value runs once
    result = runner.invoke(app, ["train", *SMALL[:-1], *grid, "--out", str(tmp_path)])  # not --quiet
    assert result.exit_code == 0, result.output
    assert "lr 0.02, batch 8: finished" in result.stdout and "baseline loss 0.167" in result.stdout
    logs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert logs == ["lr0.01_batch4.jsonl", "lr0.01_batch8.jsonl", "lr0.02_batch4.jsonl", "lr0.02_batch8.jsonl"]
    for name in logs:
        frame = load_training_log(tmp_path / "runs" / name)
        assert len(frame) == 4 and frame.attrs["status"] == "finished"
    for figure in ("training.png", "state_gradients.png"):
        assert (tmp_path / figure).read_bytes()[:8] == PNG
    assert not (tmp_path / "weightnorm.png").exists()  # only for --param weight_norm
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [(r["lr"], r["batch_size"]) for r in summary["runs"]] == [(0.01, 4), (0.01, 8), (0.02, 4), (0.02, 8)]
    parameters = summary["metadata"]["parameters"]
    assert parameters["lr"] == [0.01, 0.02] and parameters["batch_size"] == [4, 8]
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_weight_norm_json_summary(tmp_path):
    args = ["train", *SMALL, "--param", "weight_norm", "--optimizer", "sgd", "--lr", "0.5", "--out", str(tmp_path)]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    (run,) = summary["runs"]
    assert run["status"] == "finished" and run["batch_size"] == 32
    assert run["wn_v_norm_final"] >= run["wn_v_norm_first"]  # SGD on v never shrinks ‖v‖
    assert summary["metadata"]["parameters"]["param"] == "weight_norm"
    assert "jacobian_rate: nats per step" in summary["units"]  # as trace's, lyapunov's and sweep's --json
    assert json.loads((tmp_path / "summary.json").read_text())["units"] == summary["units"]
    assert (tmp_path / "weightnorm.png").read_bytes()[:8] == PNG


def test_copy_task_with_its_own_alphabet_and_memory(tmp_path):
    args = ["train", *SMALL, "--task", "copy", "--symbols", "3", "--memory", "2", "--out", str(tmp_path), "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["baseline_loss"] == pytest.approx(2 * math.log(3) / 8, rel=1e-12)  # S·ln K / T
    header = load_training_log(tmp_path / "runs" / "lr0.001_batch32.jsonl").attrs["header"]
    assert header["parameters"]["symbols"] == 3 and header["parameters"]["memory"] == 2


def test_a_diverging_run_stops_with_its_step_and_exit_1_the_others_go_on(tmp_path):
    args = ["train", *SMALL, "--steps", "20", "--optimizer", "sgd", "--lr", "0.01,10000", "--out", str(tmp_path)]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "lr10000_batch32: stopped at step" in result.stderr and "try --clip" in result.stderr
    # its weights were last measured before it stopped: the line must not pass them off as the final ones
    summary = json.loads((tmp_path / "summary.json").read_text())
    diverged = summary["runs"][1]
    assert diverged["monitored_at_step"] < diverged["steps_done"]
    assert f"nats/step (last measured at step {diverged['monitored_at_step']})" in result.stdout
    assert summary["runs"][0]["monitored_at_step"] == 20 and "(last measured" not in result.stdout.splitlines()[1]
    stopped = load_training_log(tmp_path / "runs" / "lr10000_batch32.jsonl")
    assert stopped.attrs["status"] == "stopped" and stopped.attrs["end"]["reason"].startswith("stopped at step")
    assert load_training_log(tmp_path / "runs" / "lr0.01_batch32.jsonl").attrs["status"] == "finished"
    assert (tmp_path / "training.png").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--lr", "0"], "--lr must be a finite number > 0"),
        (["--lr", "-1"], "--lr must be a finite number > 0"),
        (["--lr", "abc"], "--lr: 'abc' is not a number"),
        (["--momentum", "1"], "momentum must lie in the open interval (0, 1)"),
        (["--beta", "0"], "momentum must lie in the open interval (0, 1), got 0.0"),
        (["--beta2", "1.5"], "--beta2 must lie in the open interval (0, 1)"),
        (["--beta2", "0"], "--beta2 must lie in the open interval (0, 1), got 0.0"),
        (["--task", "parity"], "unknown task 'parity'; valid names: adding, copy"),
        (["--optimizer", "rmsprop"], "unknown optimizer 'rmsprop'; valid names: sgd, momentum, ema, adam"),
        (["--param", "spectral"], "unknown parametrization 'spectral'"),
        (["--init", "nope"], "unknown init scheme 'nope'"),
        (["--clip", "0"], "clip must be a finite number > 0"),
        (["--batch-size", "0"], "--batch-size must be ≥ 1"),
        (["--length", "1"], "length must be ≥ 2"),
        (["--memory", "3"], "--memory must not be given for the 'adding' task: it applies to the copy task only"),
        (["--task", "copy", "--memory", "4"], "length must be ≥ 9 for the copy task, got 8"),
        (["--task", "copy", "--symbols", "1"], "symbols must be ≥ 2"),
        (["--dtype", "float16"], "dtype"),
        # a rate that is 0 or subnormal in the training dtype would "train" with every update rounding to zero
        (["--lr", "1e-320"], "--lr: 1e-320 underflows in float32: it is below float32's smallest normal number"),
        (["--lr", "1e-50"], "--lr: 1e-50 underflows in float32"),
        (["--lr", "1e300"], "--lr: 1e+300 overflows float32 (largest 3.4e+38)"),  # trained, then blamed gradients
        (["--lr", "1e-320", "--dtype", "float64"], "--lr: 1e-320 underflows in float64"),
    ],
)
def test_bad_options_give_one_line_and_exit_2(tmp_path, args, message):
    result = runner.invoke(app, ["train", *SMALL, "--out", str(tmp_path), *args])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], lines
    assert "Traceback" not in result.output
    assert not (tmp_path / "runs").exists()


def test_a_killed_run_leaves_a_log_that_loads(tmp_path):
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "rnnstab", "train", *SMALL, "--steps", "100000", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    log = out / "runs" / "lr0.001_batch32.jsonl"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (not log.exists() or log.read_text().count("\n") < 4):
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    frame = load_training_log(log)
    assert len(frame) >= 3 and frame.attrs["status"] == "killed"
    assert list(frame["step"]) == list(range(1, len(frame) + 1))


def test_rates_that_print_alike_get_their_own_logs(tmp_path):
    result = runner.invoke(app, ["train", *SMALL, "--lr", "0.1,0.1000001", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    logs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert logs == ["lr0.1000001_batch32.jsonl", "lr0.1_batch32.jsonl"]
    assert [load_training_log(tmp_path / "runs" / name).attrs["header"]["parameters"]["lr"] for name in logs] == [
        0.1000001,
        0.1,
    ]


def test_the_weight_norm_summary_starts_from_the_network_before_any_update(tmp_path):
    # an orthogonal W has unit rows and starts with g_i = ‖v_i‖: ‖v‖ = g/‖v‖ = 1 before step 1's update moves them
    args = ["train", *SMALL, "--param", "weight_norm", "--optimizer", "sgd", "--lr", "3", "--out", str(tmp_path)]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    (run,) = json.loads(result.stdout)["runs"]
    assert run["wn_v_norm_first"] == pytest.approx(1.0, abs=1e-6)
    assert run["wn_g_over_v_first"] == pytest.approx(1.0, abs=1e-6)
    log = load_training_log(run["log"])
    initial = {key: run[f"{key}_first"] for key in ("wn_v_norm", "wn_g_over_v", "spectral_norm_W", "jacobian_rate")}
    assert log.attrs["header"]["initial"] == initial | {
        "wn_g": pytest.approx(1.0, abs=1e-6),
        "spectral_radius_W": run["spectral_radius_W_first"],
    }
    assert run["spectral_norm_W_first"] == pytest.approx(1.0, abs=1e-6)  # an orthogonal W
    step_1 = log.iloc[0]
    assert step_1["wn_v_norm"] > 1.01 and step_1["wn_g_over_v"] < 0.99  # the first record is after the update


def test_a_batch_too_large_for_memory_is_refused_before_any_run_of_the_grid(tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["train", *SMALL, "--batch-size", "4,1000000000", "--out", str(out)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: this needs about") and "GiB" in lines[0], lines
    assert not out.exists()  # not even the log of batch 4, trained before the large batch failed


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--task", "parity"], "--task"),
        (["--param", "spectral"], "--param"),
        (["--optimizer", "rmsprop"], "--optimizer"),
        (["--optimizer", "rmsprop", "--lr", "0.1"], "--optimizer"),
        (["--optimizer", "rmsprop", "--beta2", "0.5"], "--optimizer"),  # the name first, then what it uses
    ],
)
def test_an_unknown_name_is_refused_naming_its_option(tmp_path, args, flag):
    result = runner.invoke(app, ["train", *SMALL, "--out", str(tmp_path), *args])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: {flag}: "), result.stderr


def test_rates_that_print_alike_are_told_apart_in_the_summary_lines(tmp_path):
    result = runner.invoke(app, ["train", *SMALL, "--lr", "0.1,0.1000001", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[1].startswith("  lr 0.1, batch 32:") and lines[2].startswith("  lr 0.1000001, batch 32:"), lines
    names = ("lr0.1_batch32.jsonl", "lr0.1000001_batch32.jsonl")
    frames = [load_training_log(tmp_path / "runs" / name) for name in names]
    assert run_labels(frames) == ["lr = 0.1, batch = 32", "lr = 0.1000001, batch = 32"]  # the figures' legends


def test_a_rate_that_underflows_is_refused_before_any_run_of_the_grid(tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["train", *SMALL, "--lr", "0.01,1e-50", "--out", str(out)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --lr: 1e-50 underflows in float32"), lines
    assert not out.exists()  # not even the log of lr 0.01, which comes first in the grid


def test_weight_norm_from_an_init_draw_with_a_zero_row_names_both_options(tmp_path):
    out = tmp_path / "out"
    args = ["train", *SMALL, "--init", "sparse_echo_state", "--param", "weight_norm", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(
        "error: --param: weight_norm cannot start from init 'sparse_echo_state' (hidden 6, seed 0): rows "
    ), lines
    assert "w_i = g_i·v_i/‖v_i‖ needs every row v_i ≠ 0" in lines[0] and "Traceback" not in result.output
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--optimizer", "sgd", "--beta2", "0.5"], "--beta2 is used only by adam, not by --optimizer sgd"),
        (["--optimizer", "momentum", "--beta2", "0.99"], "--beta2 is used only by adam, not by --optimizer momentum"),
        (["--optimizer", "sgd", "--momentum", "0.5"], "--momentum/--beta is used only by momentum, ema and adam"),
        (["--optimizer", "sgd", "--beta", "0.9"], "--momentum/--beta is used only by momentum, ema and adam"),
        (["--optimizer", "sgd", "--no-bias-correction"], "--no-bias-correction is used only by adam"),
        (["--optimizer", "ema", "--no-bias-correction"], "--no-bias-correction is used only by adam"),
        (["--optimizer", "ema", "--bias-correction"], "--bias-correction is used only by adam, not by --optimizer ema"),
    ],
)
def test_a_coefficient_the_optimizer_does_not_use_is_refused_not_ignored(tmp_path, args, message):
    out = tmp_path / "out"
    result = runner.invoke(app, ["train", *SMALL, "--out", str(out), *args])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {message}") and lines[0].endswith(": leave it out"), lines
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--optimizer", "ema", "--beta", "0.5"], {"momentum": 0.5, "beta2": 0.999, "bias_correction": True}),
        (["--beta2", "0.9", "--no-bias-correction"], {"momentum": 0.9, "beta2": 0.9, "bias_correction": False}),
        (["--optimizer", "sgd"], {"momentum": 0.9, "beta2": 0.999, "bias_correction": True}),  # the defaults
    ],
)
def test_coefficients_given_to_an_optimizer_that_uses_them_reach_the_run(tmp_path, args, expected):
    result = runner.invoke(app, ["train", *SMALL, "--steps", "1", "--out", str(tmp_path), "--json", *args])
    assert result.exit_code == 0, result.output
    (run,) = json.loads(result.stdout)["runs"]
    parameters = load_training_log(run["log"]).attrs["header"]["parameters"]
    assert {key: parameters[key] for key in expected} == expected


@pytest.mark.parametrize(
    "blocked", ["summary.json", "training.png", "state_gradients.png", "weightnorm.png", "runs/lr0.02_batch32.jsonl"]
)
def test_an_output_file_blocked_by_a_directory_is_refused_before_any_training(tmp_path, blocked):
    (tmp_path / blocked).mkdir(parents=True)
    result = runner.invoke(app, ["train", *SMALL, "--lr", "0.01,0.02", "--out", str(tmp_path)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"error: {tmp_path / blocked} is a directory, where this command writes a file: move it away or choose "
        "another --out"
    ], lines
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert written == [], written  # no log of lr 0.01, trained first, and no figure


def test_a_figure_that_fails_leaves_the_earlier_figures_and_summary_whole(tmp_path, monkeypatch):
    # the figures and summary.json were written one by one: a failure left this run's first figure beside an
    # earlier run's other figure and summary.json
    assert runner.invoke(app, ["train", *SMALL, "--out", str(tmp_path)]).exit_code == 0
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir() if path.is_file()}

    def disk_full(frames, *, path, title=""):
        def write(handle):
            raise OSError(errno.ENOSPC, "No space left on device", handle.name)

        atomic_write(path, write)

    monkeypatch.setattr(training_plots, "plot_state_gradients", disk_full)
    result = runner.invoke(app, ["train", *SMALL, "--seed", "5", "--out", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == f"error: No space left on device: {tmp_path / 'state_gradients.png'}"
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir() if path.is_file()} == before
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_runs_blocked_by_a_file_is_refused_before_any_training(tmp_path):
    (tmp_path / "runs").write_text("not a directory")
    result = runner.invoke(app, ["train", *SMALL, "--out", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == f"error: --out {tmp_path / 'runs'} exists and is a file, not a directory"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write any file")
def test_a_read_only_log_of_the_grid_is_refused_before_any_training(tmp_path):
    log = tmp_path / "runs" / "lr0.02_batch32.jsonl"
    log.parent.mkdir()
    log.write_text("an earlier log, made read-only")
    log.chmod(0o444)
    result = runner.invoke(app, ["train", *SMALL, "--lr", "0.01,0.02", "--out", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == f"error: cannot write the training log {log}: it is not writable"
    assert sorted(p.name for p in log.parent.iterdir()) == [log.name]
