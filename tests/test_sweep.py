"""Grid parsing, task seeding, canonical chunking, batched execution and executors of rnnstab.sweep."""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import sys
import time

import numpy as np
import pytest
import torch

import rnnstab
from rnnstab.store import Configuration
from rnnstab.sweep import _quiet_after_ctrl_c, compute_chunk, parse_values, plan_chunks, sweep_network, task_seed
from rnnstab.theory import late_rate
from tests.sweeps import OVERFLOWING_AT_1_5, assert_identical

SMALL = {"hidden": (8,), "steps": (30,), "batch": 2}


# --- grid parsing against hand-written expectations -------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "kind", "expected"),
    [
        (["0.5:1.5:11"], "float", [0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5]),
        (["log:0.1:10:5"], "float", [0.1, 0.316227766017, 1.0, 3.16227766017, 10.0]),
        (["0.9", "1.1,1.3"], "float", [0.9, 1.1, 1.3]),
        ([" 2 , 1e-1 "], "float", [2.0, 0.1]),
        (["1:1:1"], "float", [1.0]),
        (["32:128:3"], "int", [32, 80, 128]),
        (["log:32:512:5"], "int", [32, 64, 128, 256, 512]),
        (["2:5"], "int", [2, 3, 4, 5]),
        (["64", "16,32"], "int", [64, 16, 32]),
        (["3"], "seeds", [0, 1, 2]),
        (["0,4,9"], "seeds", [0, 4, 9]),
        (["7:7"], "seeds", [7]),
        (["10:13"], "seeds", [10, 11, 12, 13]),
        (["tanh,relu", "sigmoid"], "name", ["tanh", "relu", "sigmoid"]),
    ],
)
def test_parse_values(raw, kind, expected):
    assert parse_values("--x", raw, kind=kind) == expected


@pytest.mark.parametrize(
    ("raw", "kind", "message"),
    [
        ([""], "float", "empty"),
        (["1,,2"], "float", "empty item"),
        (["abc"], "float", "not a number"),
        (["nan"], "float", "not a finite number"),
        (["0.5:1.5"], "float", "START:STOP:COUNT"),
        (["0.5:1.5:1"], "float", "COUNT ≥ 2"),
        (["0.5:1.5:2.5"], "float", "not an integer"),
        (["log:0:1:3"], "float", "START and STOP > 0"),
        (["1.5"], "int", "not an integer"),
        (["5:2"], "int", "STOP < START"),
        (["0"], "seeds", "N must be ≥ 1"),
        (["0.5:1.5:1000001"], "float", "limited to 1,000,000"),
        (["log:1:64:1000001"], "int", "limited to 1,000,000"),
    ],
)
def test_parse_values_refuses_malformed_tokens(raw, kind, message):
    with pytest.raises(rnnstab.InvalidArgumentError, match=message) as err:
        parse_values("--x", raw, kind=kind)
    assert "--x" in str(err.value)


def test_grid_from_strings_canonicalises_sorts_and_deduplicates():
    grid = rnnstab.Grid.from_strings(
        delta=["1.5,0.5:1.5:3", "0.6"], hidden=["16"], seeds=["2"], activation=["relu,tanh"]
    )
    assert grid.delta == (0.5, 0.6, 1.0, 1.5)
    assert grid.activation == ("relu", "tanh")
    assert grid.seeds == (0, 1)
    assert grid.gamma == (1.0,) and grid.init == ("gaussian",)  # defaults kept
    # 0.6 from a range and 0.6 typed by hand are the same configuration (same hash)
    ranged = rnnstab.Grid.from_strings(delta=["0.5:1.5:11"]).configurations()[1]
    typed = rnnstab.Grid(delta=(0.6,)).configurations()[0]
    assert ranged.delta == 0.6 and ranged.key == typed.key


def test_default_grid_is_tanh_gamma_one_delta_half_to_three_halves_through_one():
    grid = rnnstab.Grid()
    assert grid.activation == ("tanh",) and grid.gamma == (1.0,)
    assert grid.delta[0] == 0.5 and grid.delta[-1] == 1.5 and 1.0 in grid.delta
    assert len(grid.seeds) >= 2


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"delta": ["0"]}, "--delta must be a finite number > 0"),
        ({"delta": ["-1,1"]}, "--delta"),
        ({"gamma": ["0"]}, "--gamma"),
        ({"activation": ["nope"]}, "valid names"),
        ({"init": ["nope"]}, "unknown init scheme"),
        ({"dtype": ["float16"]}, "--dtype"),
        ({"hidden": ["0"]}, "--hidden"),
        ({"steps": ["0"]}, "--steps"),
        ({"input_scale": ["-1"]}, "--input-scale must be a finite number ≥ 0"),
        ({"delta": []}, "--delta is empty"),
        # the report squares the input scale (the mean-field input variance), as `rnnstab lyapunov` does
        ({"input_scale": ["1e200"]}, r"--input-scale must be at most 1e\+150 .*got 1e\+200"),
        # weights and inputs must fit the dtype they are computed in: refused here, not after sweep.json is written
        ({"delta": ["1e300"], "dtype": ["float32"]}, r"--delta 1e\+300 with --gamma 1 .* float32's range"),
        ({"delta": ["0.5,1e-40"], "dtype": ["float64,float32"]}, r"--delta 1e-40 .* for --dtype float32, or use"),
        ({"input_scale": ["1,1e38"], "dtype": ["float32"]}, r"--input-scale 1e\+38 overflows float32"),
    ],
)
def test_grid_errors_name_the_option(options, message):
    with pytest.raises(rnnstab.InvalidArgumentError, match=message):
        rnnstab.Grid.from_strings(**options)


def test_grid_from_python_values_names_the_parameter_and_float64_keeps_its_range():
    with pytest.raises(rnnstab.InvalidArgumentError, match=r"^input_scale must be at most 1e\+150"):
        rnnstab.Grid(input_scale=1e200)
    with pytest.raises(rnnstab.InvalidArgumentError, match=r"^input_scale 1e\+38 overflows float32"):
        rnnstab.Grid(input_scale=1e38, dtype=("float32",))
    # float64 alone takes what float32 cannot
    assert rnnstab.Grid(input_scale=1e38, delta=(1e300,), hidden=(8,)).input_scale == (1e38,)


def test_input_scale_zero_runs_the_network_without_input():
    # tanh from g_0 = 0 with no input stays at 0, where σ' = 1: J_t = W^t exactly
    task = rnnstab.Grid(input_scale=(0.0,), delta=(1.2,), hidden=(8,), steps=(30,), seeds=(0,), batch=2).tasks()[0]
    record = compute_chunk([task]).records[0]
    W = sweep_network(task.configuration, task.seed)[0].W
    powers = torch.stack([torch.linalg.matrix_power(W, t) for t in range(1, 31)])
    expected = torch.log(torch.linalg.matrix_norm(powers, ord=2)).numpy()
    assert np.allclose(record.log_spectral, expected[None, :], rtol=0, atol=1e-9)


def test_grid_from_python_sequences():
    grid = rnnstab.Grid(activation="relu", delta=[1.2, 0.8], seeds=range(2))
    assert grid.activation == ("relu",) and grid.delta == (0.8, 1.2) and grid.seeds == (0, 1)
    with pytest.raises(rnnstab.InvalidArgumentError, match="seeds"):
        rnnstab.Grid(seeds=(-1,))
    with pytest.raises(rnnstab.InvalidArgumentError, match="batch"):
        rnnstab.Grid(batch=0)


# --- configuration keys and task seeds ----------------------------------------------------------------------------


def _config(**changes):
    base = {
        "activation": "tanh",
        "gamma": 1.0,
        "delta": 0.9,
        "hidden": 8,
        "steps": 30,
        "input_scale": 1.0,
        "init": "gaussian",
        "dtype": "float64",
        "batch": 2,
        "inputs": 4,
    }
    return Configuration(**{**base, **changes})


def test_configuration_key_is_a_stable_hash_of_every_parameter():
    config = _config()
    # A fixed value: if this changes, every existing sweep directory stops resuming (bump FORMAT_VERSION instead).
    assert config.key == "e48ba53c400ff4a0"
    # and the networks it draws: those of format 1 (the first release), for every dtype
    assert config.network_key == "8e9fcd700278c232" == _config(dtype="float32").network_key
    changed = [
        _config(activation="relu"),
        _config(gamma=0.5),
        _config(delta=0.91),
        _config(hidden=9),
        _config(steps=31),
        _config(input_scale=2.0),
        _config(init="orthogonal"),
        _config(dtype="float32"),
        _config(batch=3),
        _config(inputs=5),
    ]
    assert len({c.key for c in changed} | {config.key}) == len(changed) + 1


def test_float32_and_float64_rows_run_the_same_networks():
    grid = rnnstab.Grid(delta=(0.9,), hidden=(8,), steps=(5,), dtype=("float32", "float64"), seeds=(0,))
    (a, x_a), (b, x_b) = (sweep_network(task.configuration, task.seed) for task in grid.tasks())
    assert torch.equal(a.W, b.W) and torch.equal(a.U, b.U) and torch.equal(x_a, x_b)


def test_task_seeds_differ_across_configurations_seeds_and_streams():
    seeds = {
        task_seed(_config(delta=d), s, stream) for d in (0.5, 0.9) for s in (0, 1) for stream in ("weights", "inputs")
    }
    assert len(seeds) == 8 and all(0 <= s < 2**63 for s in seeds)


def test_sweep_network_is_scaled_to_delta_and_reproducible():
    config = _config(delta=1.3, gamma=0.5, hidden=12)
    rnn, x = sweep_network(config, 4)
    assert float(rnnstab.spectral_norm(rnn.W)) == pytest.approx(1.3 / 0.5, rel=1e-13)
    assert float(rnn.delta()) == pytest.approx(1.3, rel=1e-13)
    assert rnn.activation.gamma == 0.5
    assert tuple(x.shape) == (config.batch, config.steps, config.inputs)
    again, x_again = sweep_network(config, 4)
    assert torch.equal(rnn.W, again.W) and torch.equal(rnn.U, again.U) and torch.equal(x, x_again)
    other, _ = sweep_network(config, 5)
    assert not torch.equal(rnn.W, other.W)


# --- canonical chunking ---------------------------------------------------------------------------------------------


def test_plan_chunks_covers_every_task_once_and_respects_stack_groups():
    grid = rnnstab.Grid(activation=("tanh", "relu"), delta=(0.5, 1.0, 1.5), hidden=(8, 12), seeds=(0, 1, 2), batch=2)
    tasks = grid.tasks()
    chunks = plan_chunks(tasks, stack=8)  # 4 tasks of 2 networks per call
    assert sorted(t.key for c in chunks for t in c) == sorted(t.key for t in tasks)
    for chunk in chunks:
        assert len(chunk) <= 4
        assert len({(t.configuration.activation, t.configuration.hidden) for t in chunk}) == 1
    # 4 stack groups of 9 tasks, each cut into 3 balanced chunks of 3
    assert sorted(len(c) for c in chunks) == [3] * 12
    # canonical: independent of the order of the tasks
    assert plan_chunks(list(reversed(tasks)), stack=8) == chunks
    # the default puts a small grid into one call per stack group
    assert len(plan_chunks(tasks)) == 4
    with pytest.raises(rnnstab.InvalidArgumentError, match=r"^stack: 1 is smaller than a configuration's batch \(2\)"):
        plan_chunks(tasks, stack=1)


# --- batched execution against independent references ---------------------------------------------------------------


def test_stacked_call_equals_separate_single_network_runs():
    grid = rnnstab.Grid(
        delta=(0.7, 1.0, 1.4), init=("gaussian", "orthogonal"), seeds=(0, 1), hidden=(10,), steps=(40,), batch=3
    )
    tasks = grid.tasks()
    result = compute_chunk(tasks, device="cpu")
    assert len(result.records) == len(tasks)
    # every third task against its own run (each single run costs a full loop; four suffice to pin the slicing)
    for task, record in list(zip(tasks, result.records, strict=True))[::3]:
        rnn, x = sweep_network(task.configuration, task.seed)  # one shared (n, n) W: the unbatched code path
        alone = rnnstab.jacobian_norms(rnn, x)
        np.testing.assert_allclose(record.log_spectral, alone.log_spectral.numpy(), rtol=0, atol=1e-9)
        np.testing.assert_allclose(record.log_frobenius, alone.log_frobenius.numpy(), rtol=0, atol=1e-10)
        # derived numbers against independent computations
        W = rnn.W.numpy()
        assert record.spectral_norm_W == pytest.approx(np.linalg.norm(W, 2), rel=1e-12)
        assert record.spectral_radius_W == pytest.approx(np.abs(np.linalg.eigvals(W)).max(), rel=1e-10)
        assert record.rate_per_step == pytest.approx(float(late_rate(alone.log_spectral).mean()), abs=1e-9)
        assert record.log_delta == pytest.approx(math.log(task.configuration.delta))
        excess = alone.log_spectral.numpy() - np.arange(1, 41) * math.log(task.configuration.delta)
        assert record.max_bound_excess == pytest.approx(excess.max(), abs=1e-9)
        assert record.bound_holds and record.bound_violations == 0
        expected = "guaranteed vanishing" if task.configuration.delta < 1 else "vanishing"
        assert record.regime == expected
        assert record.log_spectral_final == pytest.approx(float(alone.log_spectral[:, -1].mean()), abs=1e-9)
        assert record.device == "cpu"


def test_orthogonal_linear_network_has_rate_log_delta_exactly():
    # identity activation, orthogonal W scaled to δ: J_t = W^t, ‖J_t‖₂ = δ^t, so rate = log δ and slack = 0
    grid = rnnstab.Grid(activation=("identity",), delta=(0.8, 1.25), init=("orthogonal",), seeds=(3,), **SMALL)
    records = compute_chunk(grid.tasks(), device="cpu").records
    for record in records:
        delta = record.configuration.delta
        np.testing.assert_allclose(
            record.log_spectral, np.arange(1, 31)[None, :] * math.log(delta) + 0 * record.log_spectral, atol=1e-10
        )
        assert record.rate_per_step == pytest.approx(math.log(delta), abs=1e-10)
        assert record.slack_per_step == pytest.approx(0.0, abs=1e-10)
        assert record.spectral_radius_W == pytest.approx(delta, rel=1e-10)
    assert [r.regime for r in records] == ["guaranteed vanishing", "exploding"]


def test_compute_chunk_refuses_mixed_stacks():
    a = rnnstab.Grid(hidden=(8,), seeds=(0,)).tasks()[0]
    b = rnnstab.Grid(hidden=(9,), seeds=(0,)).tasks()[0]
    with pytest.raises(rnnstab.InvalidArgumentError, match="must share"):
        compute_chunk([a, b])
    with pytest.raises(rnnstab.InvalidArgumentError, match="at least one task"):
        compute_chunk([])


def test_an_overflowing_state_ends_its_record_there_and_leaves_the_others_alone():
    tasks = OVERFLOWING_AT_1_5.tasks()
    calm, exploding = sorted(compute_chunk(tasks).records, key=lambda r: r.configuration.delta)
    rnn, x = sweep_network(exploding.configuration, exploding.seed)
    with pytest.raises(rnnstab.StateOverflowError) as raised:
        rnnstab.jacobian_norms(rnn, x, dtype="float32")
    first = exploding.state_overflow_step
    assert first is not None and 200 < first <= raised.value.step < 300
    assert np.isfinite(exploding.log_spectral[:, : first - 1]).all()
    assert np.isnan(exploding.log_spectral[raised.value.sequence, raised.value.step - 1 :]).all()
    assert exploding.regime == "exploding" and exploding.bound_holds
    assert exploding.rate_per_step == pytest.approx(math.log(1.5), abs=1e-5)
    alone = compute_chunk([t for t in tasks if t.configuration.delta == 1.2]).records[0]
    assert calm.state_overflow_step is None and calm.scalars() == alone.scalars()
    assert np.array_equal(calm.log_spectral, alone.log_spectral)  # bit for bit


def test_an_overflow_at_the_first_step_is_refused_naming_the_configuration(monkeypatch):
    tasks = rnnstab.Grid(activation=("relu",), delta=(1.2,), hidden=(4,), steps=(5,), seeds=(0,), batch=1).tasks()
    rnn, x = sweep_network(tasks[0].configuration, 0)
    huge = rnnstab.VanillaRNN(rnn.W, torch.full_like(rnn.U, 1e308), rnn.b, rnn.activation)  # U x_1 = 4e308 = inf
    monkeypatch.setattr(rnnstab.sweep, "sweep_network", lambda c, s: (huge, torch.ones_like(x)))
    with pytest.raises(rnnstab.StateOverflowError, match=r"^activation = relu, .*seed 0: .*at the first step"):
        compute_chunk(tasks)


def test_a_run_stopped_by_an_error_is_recorded_as_failed_not_interrupted(tmp_path, monkeypatch):
    calls = []

    def fail_second(*args, **kwargs):  # the first call's record is written: the sweep exists, and failed
        calls.append(1)
        if len(calls) == 2:
            raise rnnstab.StateOverflowError("boom", step=1, sequence=0)
        return compute_chunk(*args, **kwargs)

    monkeypatch.setattr(rnnstab.sweep, "compute_chunk", fail_second)
    with pytest.raises(rnnstab.StateOverflowError):
        rnnstab.run_sweep(
            rnnstab.Grid(delta=(0.5, 1.5), hidden=(4,), steps=(3,), seeds=(0,), batch=1), tmp_path, stack=1
        )
    runs = json.loads((tmp_path / "sweep.json").read_text())["runs"]
    assert [run["status"] for run in runs] == ["failed"]
    assert len(list((tmp_path / "records").iterdir())) == 1


def test_a_new_sweep_stopped_by_bad_input_before_its_first_record_leaves_nothing(tmp_path, monkeypatch):
    # bad input that only the computation reveals (a state overflowing at step 1): the corrected sweep must be able
    # to run into the same directory, without a failed run in sweep.json planning records that never come
    def fail(*args, **kwargs):
        raise rnnstab.StateOverflowError("boom", step=1, sequence=0)

    out = tmp_path / "new" / "sweep"
    grid = rnnstab.Grid(delta=(0.5,), hidden=(4,), steps=(3,), seeds=(0,), batch=1)
    with monkeypatch.context() as patch:
        patch.setattr(rnnstab.sweep, "compute_chunk", fail)
        with pytest.raises(rnnstab.StateOverflowError):
            rnnstab.run_sweep(grid, out)
    assert list(tmp_path.iterdir()) == []
    assert rnnstab.run_sweep(grid, out).tasks_computed == 1


# --- determinism across executors and shardings ----------------------------------------------------------------------

DETERMINISM_GRID = rnnstab.Grid(
    activation=("tanh", "relu"), delta=(0.6, 1.0, 1.4), seeds=(0, 1), hidden=(8,), steps=(25,), batch=2
)


def _frame(directory):
    return rnnstab.load_sweep(directory, traces=True).drop(columns=["device"])


@pytest.fixture(scope="module")
def local_reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    rnnstab.run_sweep(DETERMINISM_GRID, out, stack=4)
    return _frame(out)


def test_rerun_is_bit_identical(tmp_path, local_reference):
    rnnstab.run_sweep(DETERMINISM_GRID, tmp_path, stack=4)
    assert_identical(local_reference, _frame(tmp_path))


def test_dask_local_cluster_matches_the_local_executor_bit_for_bit(tmp_path, local_reference):
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):
        for shard in (1, 3):  # one batched call per submitted task, then three
            out = tmp_path / f"shard{shard}"
            result = rnnstab.run_sweep(
                DETERMINISM_GRID, out, executor="dask", client=client, stack=4, chunks_per_shard=shard
            )
            assert result.tasks_computed == 12 and result.chunks == 6
            assert_identical(local_reference, _frame(out))


@pytest.mark.parametrize("stack", [2, 6])
def test_stack_size_does_not_change_the_numbers(tmp_path, local_reference, stack):
    # jacobian_norms decides convergence per network, so how networks are stacked into calls is invisible.
    rnnstab.run_sweep(DETERMINISM_GRID, tmp_path, stack=stack)
    assert_identical(local_reference, _frame(tmp_path))


def test_ctrl_c_during_a_dask_sweep_silences_the_cluster_loggers_until_it_has_shut_down():
    # distributed's callbacks, cut short by Ctrl-C, logged tracebacks beside the one-line "interrupted" message
    tornado = logging.getLogger("tornado")
    before = tornado.level
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt), _quiet_after_ctrl_c():
        assert tornado.level == before
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)  # the handler raises at the next bytecode
        finally:
            assert tornado.level > logging.CRITICAL  # already while the interrupt unwinds
    assert tornado.level == before and signal.getsignal(signal.SIGINT) is handler


def test_missing_dask_extra_names_the_extra_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # makes `import distributed` raise ImportError
    out = tmp_path / "out"
    with pytest.raises(rnnstab.MissingDependencyError, match=r"pip install 'rnnstab\[dask\]'"):
        rnnstab.run_sweep(rnnstab.Grid(seeds=(0,), **SMALL), out, executor="dask", workers=1)
    assert not out.exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"executor": "ray"}, "^executor must be one of local, dask"),
        ({"workers": 2}, "^workers: used by the dask executor only"),
        ({"scheduler": "tcp://x:1"}, "^scheduler: used by the dask executor only"),
        ({"executor": "dask", "workers": 2, "scheduler": "tcp://x:1"}, "^workers: sizes a local Dask cluster"),
        ({"executor": "dask", "workers": 0}, "^workers must be"),
        ({"device": "tpu"}, "^device must be"),
        ({"stack": 0}, "^stack must be"),
    ],
)
def test_bad_execution_options_write_nothing(tmp_path, kwargs, message):
    out = tmp_path / "out"
    with pytest.raises(rnnstab.InvalidArgumentError, match=message):
        rnnstab.run_sweep(rnnstab.Grid(seeds=(0,), **SMALL), out, **kwargs)
    assert not out.exists()


@pytest.mark.parametrize(
    ("grid", "out", "kwargs", "error", "message"),
    [
        (None, "s", {}, rnnstab.ArgumentTypeError, "^grid must be an rnnstab.Grid, got NoneType"),
        ({"delta": [0.5]}, "s", {}, rnnstab.ArgumentTypeError, "^grid must be an rnnstab.Grid, got dict"),
        (rnnstab.Grid(seeds=(0,), **SMALL), None, {}, rnnstab.ArgumentTypeError, "^out must be a path"),
        # Path("") is ".": an unset variable would scatter the records into the working directory
        (rnnstab.Grid(seeds=(0,), **SMALL), "", {}, rnnstab.InvalidArgumentError, "^out is empty"),
        (
            rnnstab.Grid(seeds=(0,), **SMALL),
            "typo",
            {"resume": True},
            rnnstab.InvalidArgumentError,
            "^resume is set but typo holds no sweep to resume",
        ),
        (rnnstab.Grid(seeds=(0,), **SMALL), "s", {"resume": "no"}, rnnstab.ArgumentTypeError, "^resume must be True"),
    ],
)
def test_run_sweep_checks_its_arguments_as_the_command_does(tmp_path, monkeypatch, grid, out, kwargs, error, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(error, match=message):
        rnnstab.run_sweep(grid, out, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_absurd_sizes_are_refused_with_the_estimate(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(rnnstab.InvalidArgumentError, match=r"needs about [0-9.]+ GiB per batched call") as err:
        rnnstab.run_sweep(rnnstab.Grid(hidden=(200_000,), seeds=(0,), steps=(10,), batch=1), out)
    assert "available" in str(err.value)
    assert not out.exists()


def test_absurd_input_sizes_name_inputs_among_the_remedies(tmp_path):
    # the per-step inputs grow the estimate too: the advice must name the option that caused it
    advice = "lower the hidden size, steps, batch, inputs or stack"
    with pytest.raises(rnnstab.InvalidArgumentError, match=advice) as err:
        rnnstab.run_sweep(rnnstab.Grid(hidden=(4,), seeds=(0,), steps=(1000,), batch=1, inputs=10**9), tmp_path / "o")
    assert "per batched call" in str(err.value)


def test_progress_reports_counts_and_work(tmp_path):
    seen = []
    grid = rnnstab.Grid(delta=(0.5, 1.5), seeds=(0, 1), hidden=(8,), steps=(260,), batch=2)
    rnnstab.run_sweep(grid, tmp_path, progress=seen.append, stack=4)
    assert seen[0].tasks_to_compute == 4 and seen[0].tasks_written == 0 and seen[0].work_done == 0
    assert seen[-1].stage == "done" and seen[-1].tasks_written == 4 and seen[-1].chunks_done == 2
    assert seen[-1].work_done == pytest.approx(seen[-1].work_total)
    done = [p.work_done for p in seen]
    assert done == sorted(done) and len(seen) > 4  # advances within the 260-step calls too (every 128 steps)


def test_a_sweep_written_while_waiting_for_the_lock_is_not_overwritten(tmp_path, monkeypatch):
    # Between the first check and taking the lock another process may have written a sweep into the directory.
    from contextlib import contextmanager

    from rnnstab import store
    from rnnstab import sweep as sweep_module

    other = tmp_path / "other"
    rnnstab.run_sweep(rnnstab.Grid(hidden=(4,), steps=(3,), delta=(0.9,), seeds=(0,), batch=2), other)
    target = tmp_path / "s"
    real_lock = sweep_module.sweep_lock

    @contextmanager
    def late_lock(directory):
        (directory / store.METADATA_FILE).write_text((other / store.METADATA_FILE).read_text())
        with real_lock(directory):
            yield

    monkeypatch.setattr(sweep_module, "sweep_lock", late_lock)
    with pytest.raises(rnnstab.InvalidArgumentError, match="already holds a sweep"):
        rnnstab.run_sweep(rnnstab.Grid(hidden=(4,), steps=(3,), delta=(0.9,), seeds=(0,), batch=3), target)
    assert json.loads((target / store.METADATA_FILE).read_text())["fixed"]["batch"] == 2  # the other's, untouched
