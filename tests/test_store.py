"""Records on disk, load_sweep, and resume: skipping, recomputing corrupted/missing records, refusals, kills."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

import rnnstab
from rnnstab import store
from rnnstab.sweep import compute_chunk, plan_chunks
from tests.sweeps import assert_identical

GRID = rnnstab.Grid(delta=(0.5, 1.0, 1.5), seeds=(0, 1), hidden=(8,), steps=(20,), batch=2)


def _frame(directory):
    return rnnstab.load_sweep(directory, traces=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("reference")
    rnnstab.run_sweep(GRID, out, stack=4)
    return out


# --- records -------------------------------------------------------------------------------------------------------


def test_record_round_trip_is_exact(tmp_path):
    record = compute_chunk(GRID.tasks()[:2]).records[1]
    path = store.write_record(tmp_path, record)
    assert path.name == f"{record.key}.npz" and path.parent.name == "records"
    back = store.read_record(path)
    assert back.scalars() == record.scalars()
    assert np.array_equal(back.log_spectral, record.log_spectral) and back.log_spectral.dtype == np.float64
    assert np.array_equal(back.log_frobenius, record.log_frobenius)
    assert back.log_spectral.shape == (GRID.batch, 20)
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    light = store.read_record(path, traces=False)
    assert light.scalars() == record.scalars() and light.log_spectral.size == 0


def test_a_record_from_before_state_overflow_step_loads_with_none(tmp_path):
    # records written before the field existed lack it; their runs stopped at an overflow instead of recording one
    record = compute_chunk(GRID.tasks()[:1]).records[0]
    path = store.write_record(tmp_path, record)
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    meta = json.loads(str(arrays["record"][()]))
    del meta["state_overflow_step"]
    arrays["record"] = np.array(json.dumps(meta))
    with open(path, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    back = store.read_record(path)
    assert back.state_overflow_step is None and back.scalars() == record.scalars()


@pytest.mark.parametrize("damage", ["truncate", "garbage", "rename", "empty"])
def test_damaged_records_are_detected(tmp_path, damage):
    record = compute_chunk(GRID.tasks()[:1]).records[0]
    path = store.write_record(tmp_path, record)
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:200])
    elif damage == "garbage":
        path.write_bytes(b"not a zip file at all")
    elif damage == "empty":
        path.write_bytes(b"")
    else:  # a valid record under another configuration's name
        path = path.rename(path.with_name("0123456789abcdef-s0.npz"))
    with pytest.raises(store.CorruptRecordError, match=path.name) as caught:
        store.read_record(path)
    assert "allow_pickle" not in str(caught.value)  # numpy's advice to load untrusted data unsafely is not passed on


def test_load_sweep_is_tidy(reference):
    frame = rnnstab.load_sweep(reference)
    assert frame["half_life_steps"].dtype == frame["doubling_steps"].dtype == np.float64  # even when all missing
    assert frame["state_overflow_step"].dtype == np.float64 and frame["state_overflow_step"].isna().all()
    assert len(frame) == 6  # 3 configurations × 2 seeds
    assert frame["record"].is_unique
    assert list(frame["delta"]) == [0.5, 0.5, 1.0, 1.0, 1.5, 1.5] and list(frame["seed"]) == [0, 1] * 3
    for column in ("activation", "gamma", "spectral_norm_W", "spectral_radius_W", "rate_per_step", "log_delta"):
        assert column in frame.columns
    assert "log_spectral" not in frame.columns
    assert frame["spectral_norm_W"].to_numpy() == pytest.approx(frame["delta"].to_numpy(), rel=1e-12)
    assert (frame["spectral_radius_W"] <= frame["spectral_norm_W"] * (1 + 1e-12)).all()
    assert frame["bound_holds"].all() and (frame["bound_violations"] == 0).all()
    with_traces = rnnstab.load_sweep(reference, traces=True)
    assert with_traces["log_spectral"][0].shape == (2, 20)


def test_metadata_records_parameters_versions_device_dtype_and_seeds(reference):
    meta = json.loads((reference / store.METADATA_FILE).read_text())
    assert meta["tool"] == "rnnstab sweep"
    assert meta["fixed"]["batch"] == 2
    assert meta["parameters"]["delta"] == [0.5, 1.0, 1.5]
    assert meta["seeds"] == [0, 1] and meta["dtype"] == ["float64"] and meta["device"] == "cpu"
    assert {"rnnstab", "torch", "numpy"} <= set(meta["versions"])
    assert meta["runs"][-1]["status"] == "finished" and len(meta["runs"][-1]["planned"]) == 6


def test_load_sweep_refuses_non_sweeps_and_skips_corrupted_records(tmp_path, reference):
    with pytest.raises(rnnstab.InvalidArgumentError, match="no rnnstab sweep"):
        rnnstab.load_sweep(tmp_path)
    with pytest.raises(rnnstab.InvalidArgumentError, match="nope does not exist"):  # not "is not a directory"
        rnnstab.load_sweep(tmp_path / "nope")
    (tmp_path / "file").write_text("")
    with pytest.raises(rnnstab.InvalidArgumentError, match="file is not a directory"):
        rnnstab.load_sweep(tmp_path / "file")
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / store.METADATA_FILE).write_text((reference / store.METADATA_FILE).read_text())
    (copy / "records").mkdir()
    files = sorted((reference / "records").iterdir())
    for f in files:
        (copy / "records" / f.name).write_bytes(f.read_bytes())
    (copy / "records" / files[0].name).write_bytes(b"junk")
    with pytest.warns(rnnstab.RnnstabWarning, match="skipping record"):
        frame = rnnstab.load_sweep(copy)
    assert len(frame) == 5


# --- resume ----------------------------------------------------------------------------------------------------------


def test_resume_skips_complete_records(tmp_path, reference):
    rnnstab.run_sweep(GRID, tmp_path, stack=4)
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "records").iterdir()}
    result = rnnstab.run_sweep(GRID, tmp_path, stack=4, resume=True)
    assert (result.tasks_computed, result.tasks_skipped, result.chunks) == (0, 6, 0)
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "records").iterdir()} == before
    assert_identical(_frame(reference), _frame(tmp_path))
    meta = json.loads((tmp_path / store.METADATA_FILE).read_text())
    assert [r["status"] for r in meta["runs"]] == ["finished", "finished"]


def test_resume_with_a_larger_grid_adds_configurations(tmp_path):
    rnnstab.run_sweep(GRID, tmp_path, stack=4)
    bigger = rnnstab.Grid(delta=(0.5, 1.0, 1.5, 2.0), seeds=(0, 1, 2), hidden=(8,), steps=(20,), batch=2)
    result = rnnstab.run_sweep(bigger, tmp_path, stack=4, resume=True)
    assert result.tasks_total == 12 and result.tasks_computed == 12 - result.tasks_skipped
    assert len(rnnstab.load_sweep(tmp_path)) == 12
    meta = json.loads((tmp_path / store.METADATA_FILE).read_text())
    assert meta["parameters"]["delta"] == [0.5, 1.0, 1.5, 2.0] and meta["seeds"] == [0, 1, 2]


def test_partially_written_call_is_recomputed_identically(tmp_path, reference):
    # A kill between two records of one batched call: the call is recomputed whole (same composition), so the
    # missing record gets exactly the numbers of the uninterrupted run.
    rnnstab.run_sweep(GRID, tmp_path, stack=4)
    chunks = plan_chunks(GRID.tasks(), stack=4)
    assert max(len(c) for c in chunks) > 1
    victim = chunks[0][-1].key
    store.record_path(tmp_path, victim).unlink()
    meta = json.loads((tmp_path / store.METADATA_FILE).read_text())
    meta["runs"][-1]["status"] = "running"  # as a SIGKILLed run leaves it: no warning, just finish the work
    (tmp_path / store.METADATA_FILE).write_text(json.dumps(meta))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = rnnstab.run_sweep(GRID, tmp_path, stack=4, resume=True)
    assert result.tasks_computed == 1 and result.chunks == 1 and result.tasks_recomputed == 0
    assert_identical(_frame(reference), _frame(tmp_path))
    runs = json.loads((tmp_path / store.METADATA_FILE).read_text())["runs"]
    assert [run["status"] for run in runs] == ["killed", "finished"]  # not "running" forever


def test_corrupted_and_missing_records_are_recomputed_with_a_warning(tmp_path, reference):
    rnnstab.run_sweep(GRID, tmp_path, stack=4)
    records = sorted((tmp_path / "records").iterdir())
    records[0].write_bytes(records[0].read_bytes()[:100])
    records[3].unlink()
    (tmp_path / "records" / ".leftover.npz.abc123.tmp").write_bytes(b"partial")  # a SIGKILLed writer's temp file
    with pytest.warns(rnnstab.RnnstabWarning) as caught:
        result = rnnstab.run_sweep(GRID, tmp_path, stack=4, resume=True)
    messages = " | ".join(str(w.message) for w in caught)
    assert "corrupted record" in messages and records[0].name in messages
    assert "missing since an earlier finished run" in messages
    assert result.tasks_computed == 2 and result.tasks_recomputed == 2
    assert not list((tmp_path / "records").glob("*.tmp"))
    assert_identical(_frame(reference), _frame(tmp_path))


def test_existing_sweep_is_not_overwritten_without_resume(tmp_path):
    rnnstab.run_sweep(GRID, tmp_path, stack=4)
    before = sorted(p.name for p in (tmp_path / "records").iterdir())
    with pytest.raises(rnnstab.InvalidArgumentError, match="already holds a sweep; pass --resume"):
        rnnstab.run_sweep(GRID, tmp_path, stack=4)
    assert sorted(p.name for p in (tmp_path / "records").iterdir()) == before


@pytest.mark.parametrize(
    ("grid", "stack", "message"),
    [
        (rnnstab.Grid(delta=(0.5,), seeds=(0,), hidden=(8,), steps=(20,), batch=3), 4, "batch = 2 there, 3 now"),
        (rnnstab.Grid(delta=(0.5,), seeds=(0,), hidden=(8,), steps=(20,), batch=2, inputs=2), 4, "inputs = 4 there"),
    ],
)
def test_resume_with_different_fixed_parameters_is_refused(tmp_path, grid, stack, message):
    rnnstab.run_sweep(GRID, tmp_path, stack=4)
    meta_before = (tmp_path / store.METADATA_FILE).read_text()
    with pytest.raises(rnnstab.InvalidArgumentError, match="different fixed parameters") as err:
        rnnstab.run_sweep(grid, tmp_path, stack=stack, resume=True)
    assert message in str(err.value)
    assert (tmp_path / store.METADATA_FILE).read_text() == meta_before
    assert len(list((tmp_path / "records").iterdir())) == 6


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("runs", None, "runs must be a list, got null"),
        ("runs", ["x"], 'runs[0] must be an object, got "x"'),
        ("runs", {"a": 1}, 'runs must be a list, got {"a": 1}'),
        ("runs", [{"grid": {}, "planned": 5}], "runs[0].planned must be a list of record names, got 5"),
        ("runs", [{"planned": []}], "runs[0] has no grid"),
        ("runs", [{"grid": {"delta": 0.5}, "planned": []}], "runs[0].grid must be an object of lists of values"),
        ("fixed", [], "fixed must be an object, got []"),
        ("parameters", {"activation": [["tanh"]]}, "parameters.activation must be a list of names"),
    ],
)
def test_metadata_of_the_wrong_shape_is_refused_as_damaged_by_every_reader(tmp_path, reference, field, value, message):
    # valid JSON whose fields have the wrong types: every reader refuses it by name instead of failing deep inside
    (tmp_path / "records").mkdir()
    for record in (reference / "records").iterdir():
        (tmp_path / "records" / record.name).write_bytes(record.read_bytes())
    meta = json.loads((reference / store.METADATA_FILE).read_text())
    (tmp_path / store.METADATA_FILE).write_text(json.dumps({**meta, field: value}))
    damaged = f"{tmp_path / store.METADATA_FILE} is damaged: {message}"
    for read in (
        lambda: rnnstab.run_sweep(GRID, tmp_path, stack=4, resume=True),
        lambda: rnnstab.resume_sweep(tmp_path),
        lambda: rnnstab.load_sweep(tmp_path),
        lambda: rnnstab.write_report(tmp_path),
    ):
        with pytest.raises(rnnstab.InvalidArgumentError) as err:
            read()
        assert str(err.value).startswith(damaged)
    assert not (tmp_path / "report.md").exists()


def test_a_live_lock_refuses_a_second_writer_and_a_stale_one_is_taken_over(tmp_path):
    tmp_path.joinpath(store.LOCK_FILE).write_text(json.dumps({"pid": os.getpid(), "host": os.uname().nodename}))
    with pytest.raises(rnnstab.InvalidArgumentError, match="another rnnstab sweep"):
        rnnstab.run_sweep(GRID, tmp_path, stack=4)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    tmp_path.joinpath(store.LOCK_FILE).write_text(json.dumps({"pid": dead.pid, "host": os.uname().nodename}))
    rnnstab.run_sweep(GRID, tmp_path, stack=4)
    assert not tmp_path.joinpath(store.LOCK_FILE).exists()


# --- killed for real, then resumed -----------------------------------------------------------------------------------

# Long enough (≈ 30 batched calls) that the kill lands mid-run; small enough to stay cheap.
KILL_ARGS = ["--hidden", "8", "--steps", "150", "--delta", "0.5:1.5:11", "--seeds", "4", "--batch", "2", "--stack", "4"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    _cli([*KILL_ARGS, "--out", str(out), "--quiet", "--no-report"], check=True)
    return _frame(out)


# One torch thread: tiny products gain nothing from two, and a busy CI machine then cannot stall them.
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _cli(args, *, check=False):
    return subprocess.run(
        [sys.executable, "-m", "rnnstab", "sweep", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=check,
        env=ENV,
    )


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_killed_sweep_resumes_to_exactly_the_uninterrupted_results(tmp_path, uninterrupted, sig):
    out = tmp_path / "sweep"
    process = subprocess.Popen(
        [sys.executable, "-m", "rnnstab", "sweep", *KILL_ARGS, "--out", str(out), "--quiet", "--no-report"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if (out / "records").is_dir() and len(list((out / "records").glob("*.npz"))) >= 8:
            break
        time.sleep(0.01)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=60)
    done = len(list((out / "records").glob("*.npz")))
    assert 0 < done < 44, "the kill should land mid-run"
    if sig == signal.SIGINT:
        assert process.returncode == 130
        assert "interrupted" in stderr and "--resume" in stderr and "Traceback" not in stderr
        meta = json.loads((out / store.METADATA_FILE).read_text())
        assert meta["runs"][-1]["status"] == "interrupted"
        assert not (out / store.LOCK_FILE).exists()
    else:
        assert process.returncode == -signal.SIGKILL
    resumed = _cli([*KILL_ARGS, "--out", str(out), "--quiet", "--no-report", "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    assert "warning" not in resumed.stderr  # an interrupted run's gaps are work to do, not damage
    assert_identical(uninterrupted, _frame(out))
    assert not list(out.rglob("*.tmp"))
