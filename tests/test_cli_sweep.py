"""The `rnnstab sweep` and `rnnstab report` commands: output, exit codes, one-line errors, nothing half-written."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import warnings

import pytest
from typer.testing import CliRunner

import rnnstab
from rnnstab import store
from rnnstab.cli import app

runner = CliRunner()
TINY = ["--hidden", "6", "--steps", "15", "--delta", "0.5,1.5", "--seeds", "2", "--batch", "2"]


def test_sweep_help_explains_grid_syntax_and_defaults():
    result = runner.invoke(app, ["sweep", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    text = " ".join(result.output.replace("│", " ").split())  # unwrap rich's boxed help
    assert "START:STOP:COUNT" in text and "0.5:1.5:11" in text and "log:START:STOP:COUNT" in text
    assert "repeat the flag" in text and "comma list" in text
    assert "Default: 0.5:1.5:21, which includes 1" in text
    for option in ("--activation", "--gamma", "--hidden", "--steps", "--seeds", "--batch", "--input-scale", "--init"):
        assert option in text
    for option in ("--dtype", "--device", "--out", "--resume", "--executor", "--workers", "--scheduler", "--quiet"):
        assert option in text
    assert "rnnstab[dask]" in text and "σ(c·x)" in text
    assert "loses at most the batched product in flight" in text  # the call running at Ctrl-C is lost


def test_sweep_json_summary_and_files(tmp_path):
    out = tmp_path / "sweep"
    result = runner.invoke(app, ["sweep", *TINY, "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["tasks"] == 4 and summary["computed"] == 4 and summary["skipped"] == 0
    assert summary["configurations"] == 2 and summary["seeds"] == [0, 1]
    assert summary["bound"]["holds"] is True and summary["records"] == 4
    assert "tanh" in summary["conclusions"]
    # everything summary.json holds (the table, the parameters, the versions, …): a script needs no second read
    on_disk = json.loads((out / "summary.json").read_text())
    assert {key: summary[key] for key in on_disk} == on_disk and len(summary["table"]) == 2
    assert summary["parameters"]["hidden"] == 6 and summary["planned_records"] == 4 and "versions" in summary
    for key in ("html", "markdown", "summary"):
        assert os.path.isfile(summary["files"][key])
    assert len(list((out / "records").glob("*.npz"))) == 4


def test_sweep_prints_where_the_report_is_and_quiet_prints_only_that(tmp_path):
    result = runner.invoke(app, ["sweep", *TINY, "--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    assert f"report: {tmp_path / 'a' / 'report.html'}" in result.stdout
    assert "vanishing is guaranteed" in result.stdout
    quiet = runner.invoke(app, ["sweep", *TINY, "--out", str(tmp_path / "b"), "--quiet"])
    assert quiet.exit_code == 0
    assert quiet.stdout.strip() == str(tmp_path / "b" / "report.html")
    assert quiet.stderr == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--activation", ""], "--activation is empty"),
        (["--delta", ""], "--delta has an empty item"),
        (["--delta", "0"], "--delta"),
        (["--delta", "-0.5,1"], "--delta"),
        (["--gamma", "0"], "--gamma"),
        (["--gamma", "-1"], "--gamma"),
        (["--activation", "tanh,nope"], "valid names"),
        (["--init", "nope"], "unknown init scheme"),
        (["--dtype", "float16"], "--dtype"),
        (["--delta", "0.5:1.5"], "START:STOP:COUNT"),
        (["--seeds", "x"], "--seeds"),
        (["--scheduler", "tcp://127.0.0.1:1"], "--scheduler: used by the dask executor only"),
        (["--hidden", "300000"], "GiB"),
        (["--stack", "1"], "--stack: 1 is smaller than a configuration's batch (2)"),
        (["--executor", "ray"], "--executor must be one of local, dask, got 'ray'"),
        (["--workers", "2"], "--workers: used by the dask executor only, and the executor is 'local'"),
        (["--device", "tpu"], "--device must be"),
        # W would be subnormal or infinite: refused here, not by the first batched call after sweep.json is written
        (["--delta", "1e-320"], "with --gamma 1 needs ‖W‖₂ = δ/γ = 1e-320, which leaves float64's range"),
        (["--delta", "1e308", "--gamma", "0.5"], "--delta 1e+308 with --gamma 0.5 needs ‖W‖₂ = δ/γ = inf"),
        # its square is the report's mean-field input variance, as for rnnstab lyapunov
        (["--input-scale", "1e200"], "--input-scale must be at most 1e+150"),
        # W or the inputs would not fit float32: refused before sweep.json is written, naming the option
        (["--delta", "1e300", "--dtype", "float32"], "--delta 1e+300 with --gamma 1 needs ‖W‖₂ = δ/γ = 1e+300, which"),
        (["--delta", "1e-40", "--dtype", "float32"], "leaves float32's range at n = 6"),
        (["--input-scale", "1e38", "--dtype", "float32"], "--input-scale 1e+38 overflows float32"),
        (["--resume"], "--resume is set but"),
    ],
)
def test_bad_input_is_one_error_line_exit_2_and_nothing_written(tmp_path, args, message):
    out = tmp_path / "out"
    result = runner.invoke(app, ["sweep", *TINY, "--out", str(out), *args])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], lines
    assert "Traceback" not in result.output
    assert not out.exists()


def test_out_pointing_at_a_file_or_below_one_is_refused(tmp_path):
    target = tmp_path / "a-file"
    target.write_text("keep me")
    for out, message in (
        (target, "is a file"),
        (target / "sub", f"--out {target / 'sub'}: cannot create output directory"),
    ):
        result = runner.invoke(app, ["sweep", *TINY, "--out", str(out)])
        assert result.exit_code == 2 and message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert target.read_text() == "keep me"


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_directory_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        result = runner.invoke(app, ["sweep", *TINY, "--out", str(locked / "out")])
        assert result.exit_code == 2 and result.stderr.startswith("error:")
    finally:
        locked.chmod(0o700)


def test_resume_rules_on_the_command_line(tmp_path):
    out = tmp_path / "sweep"
    assert runner.invoke(app, ["sweep", *TINY, "--out", str(out), "--quiet"]).exit_code == 0
    again = runner.invoke(app, ["sweep", *TINY, "--out", str(out), "--quiet"])
    assert again.exit_code == 2 and "pass --resume" in again.stderr
    different = runner.invoke(app, ["sweep", *TINY, "--batch", "3", "--out", str(out), "--resume", "--quiet"])
    assert different.exit_code == 2
    assert "different fixed parameters (batch = 2 there, 3 now)" in different.stderr
    # a corrupted record: one warning line, recomputed, exit 0
    victim = sorted((out / "records").iterdir())[0]
    victim.write_bytes(b"garbage")
    resumed = runner.invoke(app, ["sweep", *TINY, "--out", str(out), "--resume", "--json"])
    assert resumed.exit_code == 0, resumed.output
    warnings = [line for line in resumed.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "corrupted record" in warnings[0] and victim.name in warnings[0]
    summary = json.loads(resumed.stdout)
    assert (summary["computed"], summary["skipped"], summary["recomputed"]) == (1, 3, 1)
    store.read_record(victim)  # valid again


def test_report_command(tmp_path):
    out = tmp_path / "sweep"
    assert runner.invoke(app, ["sweep", *TINY, "--out", str(out), "--no-report", "--quiet"]).exit_code == 0
    assert not (out / "report.html").exists()
    result = runner.invoke(app, ["report", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["records"] == 4 and os.path.isfile(summary["files"]["html"])
    # exactly what it wrote to summary.json, as inits --json and train --json print: it lacked the seeds, the
    # configurations, the fixed parameters, the versions, …
    assert summary == json.loads((out / "summary.json").read_text())
    assert summary["seeds"] == [0, 1] and summary["configurations"] == 2 and summary["fixed"]["batch"] == 2
    missing = runner.invoke(app, ["report", str(tmp_path / "nothing-here")])
    assert missing.exit_code == 2 and missing.stderr.startswith("error:")
    empty = runner.invoke(app, ["report", ""])  # "$DIR" with DIR unset: not the current directory
    assert empty.exit_code == 2 and empty.stderr.startswith("error: DIRECTORY is empty")
    # a violated bound: BUG, loudly, and exit code 3
    path = sorted((out / "records").iterdir())[0]
    record = store.read_record(path)
    store.write_record(out, dataclasses.replace(record, bound_holds=False, bound_violations=1, max_bound_excess=0.1))
    bug = runner.invoke(app, ["report", str(out)])
    assert bug.exit_code == 3
    line = " ".join(bug.stderr.split())  # rich may wrap it
    assert (
        line.startswith("BUG: a computed ‖J_t‖₂ exceeded δ^t") and "at 1 input × step pairs (worst by 0.1 nats" in line
    )
    assert "{" not in line  # a sentence, not the summary's dict


def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt


def test_a_sweep_interrupted_while_running_says_to_resume_it(tmp_path, monkeypatch):
    out = tmp_path / "sweep"
    monkeypatch.setattr(rnnstab.sweep, "_run_local", _interrupt)  # Ctrl-C in the first batched call
    result = runner.invoke(app, ["sweep", *TINY, "--out", str(out), "--no-report", "--quiet"])
    assert result.exit_code == 130, result.output
    assert (out / store.METADATA_FILE).is_file()
    assert f"interrupted: every finished configuration is saved in {out}; run the same command with --resume" in (
        " ".join(result.stderr.split())
    )
    monkeypatch.undo()
    result = runner.invoke(app, ["sweep", *TINY, "--out", str(out), "--no-report", "--quiet", "--resume"])
    assert result.exit_code == 0, result.output


def test_a_sweep_interrupted_while_its_report_is_written_says_how_to_finish_it(tmp_path, monkeypatch):
    # it exited 130 without a word
    out = tmp_path / "sweep"
    monkeypatch.setattr(rnnstab, "write_report", _interrupt)
    result = runner.invoke(app, ["sweep", *TINY, "--out", str(out), "--quiet"])
    assert result.exit_code == 130
    line = " ".join(result.stderr.split())
    assert line == f"interrupted: the sweep is complete in {out}, its report is not: run rnnstab report {out}"
    assert len(rnnstab.load_sweep(out)) == 4


@pytest.mark.parametrize(
    ("resume", "again"), [([], "the same command again"), (["--resume"], "the same command without --resume")]
)
def test_a_sweep_interrupted_before_sweep_json_is_written_does_not_suggest_resume(tmp_path, monkeypatch, resume, again):
    # The hint said "run the same command with --resume", which was then refused: no sweep.json, no sweep to resume.
    out = tmp_path / "sweep"
    monkeypatch.setattr(rnnstab.sweep, "_check_resources", _interrupt)  # Ctrl-C while the grid is planned
    result = runner.invoke(app, ["sweep", *TINY, "--out", str(out), "--no-report", "--quiet", *resume])
    assert result.exit_code == 130, result.output
    assert not (out / store.METADATA_FILE).exists()
    text = " ".join(result.stderr.split())
    assert f"interrupted: the sweep had not started: nothing was saved in {out}; run {again}" in text, text
    assert "with --resume" not in text
    monkeypatch.undo()
    result = runner.invoke(app, ["sweep", *TINY, "--out", str(out), "--no-report", "--quiet"])  # the rerun works
    assert result.exit_code == 0, result.output


def test_report_of_an_unfinished_sweep_says_so_on_the_command_line(tmp_path):
    out = tmp_path / "sweep"
    assert runner.invoke(app, ["sweep", *TINY, "--out", str(out), "--no-report", "--quiet"]).exit_code == 0
    sorted((out / "records").iterdir())[0].unlink()  # as an interrupted run leaves it
    result = runner.invoke(app, ["report", str(out)])
    assert result.exit_code == 0, result.output
    assert "unfinished: 1 of the 4 planned records is missing" in result.stdout
    assert f"rnnstab sweep --out {out} --resume" in result.stdout
    assert json.loads(runner.invoke(app, ["report", str(out), "--json"]).stdout)["missing_records"] == 1


def test_dask_executor_on_a_local_cluster(tmp_path):
    pytest.importorskip("distributed")
    local = tmp_path / "local"
    dask = tmp_path / "dask"
    assert runner.invoke(app, ["sweep", *TINY, "--out", str(local), "--quiet", "--no-report"]).exit_code == 0
    result = runner.invoke(
        app, ["sweep", *TINY, "--out", str(dask), "--executor", "dask", "--workers", "1", "--json", "--no-report"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["executor"] == "dask"
    for a, b in zip(sorted((local / "records").iterdir()), sorted((dask / "records").iterdir()), strict=True):
        assert a.name == b.name
        assert store.read_record(a).scalars() == store.read_record(b).scalars()


def test_unwritable_directory_is_refused_even_for_root(tmp_path, monkeypatch):
    # root ignores permission bits, so simulate what an ordinary user meets on a read-only directory
    real_access = os.access
    target = tmp_path / "read-only"
    target.mkdir()
    monkeypatch.setattr(
        os,
        "access",
        lambda path, mode, **kw: (str(path) != str(target) or not mode & os.W_OK) and real_access(path, mode, **kw),
    )
    result = runner.invoke(app, ["sweep", *TINY, "--out", str(target)])
    assert result.exit_code == 2 and ": output directory is not writable" in result.stderr
    assert list(target.iterdir()) == []


def test_a_write_failure_is_one_error_line(tmp_path, monkeypatch):
    # A disk that fills up (or turns read-only) while the report is written: one line, no traceback.
    def full(directory):
        raise OSError(28, "No space left on device", str(directory / "report.html"))

    monkeypatch.setattr("rnnstab.write_report", full)
    result = runner.invoke(app, ["sweep", *TINY, "--out", str(tmp_path / "s")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.strip().splitlines()[-1] == f"error: No space left on device: {tmp_path / 's' / 'report.html'}"


def test_messages_print_user_text_verbatim(tmp_path):
    # rich would read [bold] as markup and :smile: as an emoji code
    for option, value in (("--activation", ":smile:"), ("--delta", "[bold]")):
        result = runner.invoke(app, ["sweep", *TINY, option, value])
        assert result.exit_code == 2 and f"'{value}'" in result.stderr
    out = tmp_path / "[bold]x"
    result = runner.invoke(app, ["sweep", *TINY, "--out", str(out), "--no-report"])
    assert result.exit_code == 0 and f"in {out}:" in result.stdout


def test_a_huge_grid_is_refused_before_it_is_built(tmp_path):
    for args in (["--seeds", "100000000"], ["--seeds", "0:99999999"], ["--seeds", "1000", "--delta", "0.5:1.5:2000"]):
        result = runner.invoke(app, ["sweep", "--hidden", "4", "--steps", "5", *args, "--out", str(tmp_path / "s")])
        assert result.exit_code == 2 and "limited to 1,000,000" in result.stderr, result.output


def test_resume_without_grid_options_finishes_every_earlier_grid(tmp_path):
    out = str(tmp_path / "s")
    assert runner.invoke(app, ["sweep", *TINY, "--out", out, "--no-report", "--quiet"]).exit_code == 0
    extra = ["--hidden", "6", "--steps", "15", "--delta", "2.5", "--seeds", "1", "--batch", "2"]
    assert runner.invoke(app, ["sweep", *extra, "--out", out, "--resume", "--no-report", "--quiet"]).exit_code == 0
    records = sorted((tmp_path / "s" / "records").iterdir())
    assert len(records) == 5
    kept = {path.name: path.read_bytes() for path in records}
    lost = next(path for path in records if "-s1" in path.name)  # a record only the first grid plans
    lost.unlink()
    # resuming with another grid leaves it missing, and says so
    again = runner.invoke(app, ["sweep", *extra, "--out", out, "--resume", "--no-report", "--quiet"])
    assert again.exit_code == 0 and "1 record(s) planned by an earlier run" in again.stderr
    assert not lost.exists()
    # resuming alone runs both grids: the lost record comes back bit for bit
    result = runner.invoke(app, ["sweep", "--out", out, "--resume", "--json"])
    assert result.exit_code == 0, result.output
    assert "planned by an earlier run" not in result.stderr  # the next saved grid computes it: nothing left behind
    summary = json.loads(result.stdout)
    assert summary["grids"] == 2 and summary["computed"] == 1 and summary["configurations"] == 3
    assert {path.name: path.read_bytes() for path in sorted(lost.parent.iterdir())} == kept
    assert summary["records"] == 5


def test_report_header_counts_an_uneven_sweep_truthfully(tmp_path):
    out = str(tmp_path / "s")
    assert runner.invoke(app, ["sweep", *TINY, "--out", out, "--no-report", "--quiet"]).exit_code == 0
    extra = ["--hidden", "6", "--steps", "15", "--delta", "2.5", "--seeds", "1", "--batch", "2"]
    assert runner.invoke(app, ["sweep", *extra, "--out", out, "--resume", "--quiet"]).exit_code == 0
    text = (tmp_path / "s" / "report.md").read_text()
    assert "5 records of 3 configurations, with 1–2 of the 2 seeds each" in text
    assert "seed(s)" not in text


def test_resume_alone_counts_overlapping_grids_once_and_checks_fixed_parameters(tmp_path):
    out = str(tmp_path / "s")
    small = ["--hidden", "6", "--steps", "15", "--delta", "0.5", "--batch", "2", "--no-report", "--quiet"]
    assert runner.invoke(app, ["sweep", *small, "--seeds", "2", "--out", out]).exit_code == 0
    assert runner.invoke(app, ["sweep", *small, "--seeds", "4", "--out", out, "--resume"]).exit_code == 0
    result = runner.invoke(app, ["sweep", "--out", out, "--resume", "--batch", "2", "--no-report", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)  # 4 records of 1 configuration, not 2 + 4 of 2
    assert (summary["tasks"], summary["configurations"], summary["skipped"]) == (4, 1, 4)
    refused = runner.invoke(app, ["sweep", "--out", out, "--resume", "--batch", "3"])
    assert refused.exit_code == 2 and "batch = 2 there, 3 now" in refused.stderr


def test_resume_with_a_grid_keeps_the_sweeps_batch_and_inputs_when_left_out(tmp_path):
    # the README's "add this grid" example was refused for a sweep made with its own --batch: "batch = 2 there, 8 now"
    out = str(tmp_path / "s")
    small = ["--hidden", "6", "--steps", "15", "--no-report", "--quiet"]
    made = runner.invoke(
        app, ["sweep", *small, "--delta", "0.5", "--seeds", "1", "--batch", "2", "--inputs", "3", "--out", out]
    )
    assert made.exit_code == 0, made.output
    added = runner.invoke(app, ["sweep", *small, "--delta", "1.5", "--seeds", "1", "--out", out, "--resume", "--json"])
    assert added.exit_code == 0, added.output
    frame = rnnstab.load_sweep(out)
    assert sorted(frame["delta"]) == [0.5, 1.5] and set(frame["batch"]) == {2} and set(frame["inputs"]) == {3}


def test_resume_alone_needs_a_sweep_and_an_old_format_is_refused_clearly(tmp_path):
    missing = runner.invoke(app, ["sweep", "--out", str(tmp_path / "typo"), "--resume"])
    assert missing.exit_code == 2 and "holds no sweep to resume" in missing.stderr
    assert not (tmp_path / "typo").exists()
    out = tmp_path / "s"
    assert runner.invoke(app, ["sweep", *TINY, "--out", str(out), "--no-report", "--quiet"]).exit_code == 0
    meta = json.loads((out / "sweep.json").read_text())
    meta["fixed"]["format"] = 1  # as written before float32 rows shared the float64 networks
    (out / "sweep.json").write_text(json.dumps(meta))
    old = runner.invoke(app, ["sweep", *TINY, "--out", str(out), "--resume"])
    assert old.exit_code == 2 and "written by another rnnstab version (record format 1" in old.stderr


@pytest.mark.parametrize(
    ("runs", "message"),
    [
        (None, "runs must be a list, got null"),
        (["x"], 'runs[0] must be an object, got "x"'),
        ({"a": 1}, 'runs must be a list, got {"a": 1}'),
        ("planned", "runs[0].planned must be a list of record names, got 5"),
    ],
)
def test_a_damaged_sweep_json_is_one_error_line_for_resume_and_report(tmp_path, runs, message):
    out = tmp_path / "s"
    assert runner.invoke(app, ["sweep", *TINY, "--out", str(out), "--no-report", "--quiet"]).exit_code == 0
    meta = json.loads((out / "sweep.json").read_text())
    meta["runs"] = [{**meta["runs"][0], "planned": 5}] if runs == "planned" else runs
    (out / "sweep.json").write_text(json.dumps(meta))
    for args in (
        ["sweep", "--out", str(out), "--resume"],
        ["sweep", *TINY, "--out", str(out), "--resume"],
        ["report", str(out)],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        assert result.stderr.strip().splitlines() == [f"error: {out / 'sweep.json'} is damaged: {message}"]
    assert not (out / "report.md").exists()


def test_a_sweep_stopped_by_bad_input_leaves_nothing_so_the_corrected_command_runs(tmp_path, monkeypatch):
    # bad input that only the computation finds (a state overflowing at its first step)
    def fail(*args, **kwargs):
        raise rnnstab.StateOverflowError("activation = identity, …: overflowed at the first step", step=1, sequence=0)

    out = tmp_path / "s"
    with monkeypatch.context() as patch:
        patch.setattr(rnnstab.sweep, "compute_chunk", fail)
        refused = runner.invoke(app, ["sweep", *TINY, "--out", str(out)])
    assert refused.exit_code == 2 and refused.stderr.startswith("error: activation = identity")
    assert not out.exists()
    assert runner.invoke(app, ["sweep", *TINY, "--out", str(out), "--no-report", "--quiet"]).exit_code == 0


def test_resume_alone_checks_every_saved_grid_before_running_any(tmp_path):
    out = tmp_path / "s"
    assert runner.invoke(app, ["sweep", *TINY, "--out", str(out), "--no-report", "--quiet"]).exit_code == 0
    meta = json.loads((out / "sweep.json").read_text())
    huge = {**meta["runs"][0], "grid": {**meta["runs"][0]["grid"], "hidden": [300000]}}
    meta["runs"].append(huge)  # a saved grid that no longer fits (as on a smaller machine)
    (out / "sweep.json").write_text(json.dumps(meta))
    lost = sorted((out / "records").iterdir())[0]
    lost.unlink()
    result = runner.invoke(app, ["sweep", "--out", str(out), "--resume"])
    assert result.exit_code == 2 and "saved grid 2 of 2 (n = [300000]" in result.stderr, result.output
    assert not lost.exists()  # refused before the first grid ran


@pytest.mark.skipif(not os.path.isdir("/proc") or shutil.disk_usage("/proc").total != 0, reason="needs Linux's /proc")
def test_an_out_on_a_filesystem_without_storage_is_named_so():
    # it said "/proc has 0 B free: lower --steps, --batch or the size of the grid"
    result = runner.invoke(app, ["sweep", *TINY, "--out", "/proc/rnnstab-sweep", "--quiet"])
    assert result.exit_code == 2
    assert " ".join(result.stderr.split()) == (
        "error: --out /proc/rnnstab-sweep: /proc is on a filesystem without storage (such as /proc): "
        "choose another --out"
    )


def test_a_sweep_at_one_vast_delta_writes_its_report_without_warnings(tmp_path):
    # δ = 1e300: the phase diagram's one cell spanned ±0.05 (identical xlims to matplotlib), and the spread of rates
    # near −1e300 overflowed its squares
    args = [*TINY[:4], "--delta", "1e300", "--seeds", "1", "--batch", "2", "--quiet", "--out", str(tmp_path / "s")]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = runner.invoke(app, ["sweep", *args])
    assert result.exit_code == 0, result.output
    assert result.stderr == "" and [str(w.message) for w in caught] == []
