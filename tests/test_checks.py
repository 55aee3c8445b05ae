"""Numbers from numpy and torch are numbers: the public API takes them wherever it takes a Python int or float.

Notebooks sweep with ``np.linspace`` and ``np.arange``, and read values back out of tensors; refusing
``np.float32(0.9)`` or ``np.int64(128)`` there would be a pointless stumbling block. Bools, strings and arrays of
more than one element stay refused, naming the argument.
"""

from __future__ import annotations

import dataclasses
import inspect
import math

import numpy as np
import pytest
import torch

import rnnstab
from rnnstab import ArgumentTypeError, InvalidArgumentError, theory


def small_rnn() -> rnnstab.VanillaRNN:
    W = rnnstab.init_weights("orthogonal", 6, seed=0)
    return rnnstab.VanillaRNN(rnnstab.scale_to_threshold(W, delta=0.5, gamma=1.0), activation="identity")


@pytest.mark.parametrize("delta", [np.float32(0.5), np.float64(0.5), torch.tensor(0.5), np.array(0.5)])
def test_scale_to_threshold_takes_numpy_and_torch_scalars(delta):
    W = rnnstab.init_weights("gaussian", 8, seed=1)
    scaled = rnnstab.scale_to_threshold(W, delta=delta, gamma=np.int64(1))
    assert float(torch.linalg.matrix_norm(scaled, ord=2)) == pytest.approx(0.5, rel=1e-12)


def test_integer_arguments_take_numpy_and_torch_integers():
    W = rnnstab.init_weights("gaussian", np.int64(8), seed=np.int32(3), gain=np.float32(1.5))
    assert W.shape == (8, 8)
    assert torch.equal(W, rnnstab.init_weights("gaussian", 8, seed=3, gain=1.5))
    rnn = small_rnn()
    trace = rnnstab.jacobian_norms(rnn, torch.zeros(1, 4, 0), singular_values_at=np.arange(1, 3), max_iter=np.int64(9))
    assert trace.singular_value_steps == (1, 2)
    assert all(type(t) is int for t in trace.singular_value_steps)
    # identity σ, orthogonal W at δ = 0.5: every singular value of J_t is 0.5^t
    expected = torch.tensor([1.0, 2.0], dtype=torch.float64)[None, :, None] * math.log(0.5)
    torch.testing.assert_close(trace.log_singular_values, expected.expand(1, 2, 6), atol=1e-12, rtol=0)


def test_theory_takes_numpy_scalars():
    trace = rnnstab.jacobian_norms(small_rnn(), torch.zeros(2, 20, 0))
    assert rnnstab.bound_violations(trace, delta=np.float32(0.5)) == []
    verdict = rnnstab.verdicts(trace, delta=np.float64(0.5), rate_tol=np.float32(1e-3))[0]
    assert verdict.rate_per_step == pytest.approx(math.log(0.5), abs=1e-9)
    assert theory.regime_of(np.float32(1.5), np.float32(0.2)) == "exploding"
    assert theory.gaussian_expectation(lambda x: x**2, np.float32(2.0)) == pytest.approx(2.0, rel=1e-12)


def test_grid_takes_arrays_and_tensors_as_axes():
    grid = rnnstab.Grid(
        delta=np.linspace(0.5, 1.5, 3),
        activation=np.array(["tanh", "relu"]),
        seeds=torch.arange(2),
        hidden=np.int64(8),
        steps=[np.int64(10)],
    )
    assert grid.delta == (0.5, 1.0, 1.5)
    assert grid.activation == ("tanh", "relu") and all(type(a) is str for a in grid.activation)
    assert grid.seeds == (0, 1) and all(type(s) is int for s in grid.seeds)
    assert grid.hidden == (8,) and grid.steps == (10,)
    assert grid == rnnstab.Grid(
        delta=(0.5, 1.0, 1.5), activation=("tanh", "relu"), seeds=(0, 1), hidden=(8,), steps=(10,)
    )


@pytest.mark.parametrize("bad", [True, np.bool_(True), "0.5", torch.tensor([0.5]), np.array([0.5, 0.6]), None])
def test_non_scalars_and_bools_are_refused_naming_the_argument(bad):
    with pytest.raises(ArgumentTypeError, match=r"^delta must be a number"):
        rnnstab.scale_to_threshold(torch.eye(3), delta=bad, gamma=1.0)


@pytest.mark.parametrize("bad", [8.0, np.float64(8.0), torch.tensor(8.0), True])
def test_a_float_is_not_an_integer(bad):
    with pytest.raises(ArgumentTypeError, match=r"^hidden size n must be an integer"):
        rnnstab.init_weights("gaussian", bad)


@pytest.mark.parametrize(
    ("steps", "error", "message"),
    [
        (3, ArgumentTypeError, "must be a list of steps, got int"),
        ("12", ArgumentTypeError, "must be a list of steps, got str"),
        ([2.0], InvalidArgumentError, r"integer steps in 1\.\.4, got \[2\.0\]"),
        ([0, 2], InvalidArgumentError, r"integer steps in 1\.\.4, got \[0, 2\]"),
        ([5], InvalidArgumentError, r"integer steps in 1\.\.4"),
    ],
)
def test_bad_step_lists_are_refused(steps, error, message):
    with pytest.raises(error, match=message):
        rnnstab.jacobian_norms(small_rnn(), torch.zeros(1, 4, 0), singular_values_at=steps)
    with pytest.raises(error, match=message):
        rnnstab.singular_value_spectrum(small_rnn(), torch.zeros(1, 4, 0), at=steps)


# every entry point that takes a seed, called with that seed on the smallest problem it accepts
SEEDED = {
    "init_weights": lambda seed: rnnstab.init_weights("gaussian", 4, seed=seed),
    "audit_schemes": lambda seed: rnnstab.audit_schemes(
        4, "tanh", schemes=["orthogonal"], samples=1, steps=2, seed=seed
    ),
    "analyze": lambda seed: rnnstab.analyze(
        rnnstab.layers_from_module(torch.nn.RNN(2, 3)), steps=2, batch=1, seed=seed
    ),
    "lyapunov_spectrum": lambda seed: rnnstab.lyapunov_spectrum(small_rnn(), torch.zeros(1, 4, 0), seed=seed),
    "run_identities": lambda seed: rnnstab.run_identities(seed=seed, only=["induction"]),
    "train": lambda seed: rnnstab.train("adding", length=4, hidden=3, steps=1, seed=seed),
    "run_validation": lambda seed: rnnstab.run_validation(quick=True, seed=seed),
}


@pytest.mark.parametrize(
    ("seed", "message"),
    [(-1, r"^seed must be ≥ 0, got -1$"), (2**63, r"^seed must be ≤ 2\^63 - 1, got 9223372036854775808$")],
)
@pytest.mark.parametrize("entry", list(SEEDED))
def test_every_entry_point_takes_seeds_in_0_to_2_63_minus_1_alone(entry, seed, message):
    # trace, inits, train, identities and analyze took -1 where lyapunov, validate and sweep refused it
    with pytest.raises(InvalidArgumentError, match=message):
        SEEDED[entry](seed)


@pytest.mark.parametrize("entry", [name for name in SEEDED if name != "run_validation"])  # seconds, not a test's ms
def test_the_largest_seed_is_taken_everywhere(entry):
    SEEDED[entry](2**63 - 1)


@pytest.mark.parametrize(
    "command",
    [
        ["trace", "--steps", "3", "--hidden", "4"],
        ["lyapunov", "--steps", "20", "--hidden", "4"],
        ["train", "--steps", "1", "--hidden", "4", "--length", "6"],
        ["inits", "--hidden", "4", "--samples", "1", "--steps", "2", "--scheme", "orthogonal"],
    ],
)
def test_the_largest_seed_runs_and_the_next_is_named(tmp_path, command):
    # each command draws its inputs from seed + 1 (or + 2, + 3), which stays within torch's 2^64
    from typer.testing import CliRunner

    from rnnstab.cli import app

    runner = CliRunner()
    ok = runner.invoke(app, [*command, "--seed", str(2**63 - 1), "--quiet", "--out", str(tmp_path / "a")])
    assert ok.exit_code == 0, ok.output
    bad = runner.invoke(app, [*command, "--seed", str(2**63), "--quiet", "--out", str(tmp_path / "b")])
    assert bad.exit_code == 2 and bad.stderr.strip() == "error: --seed must be ≤ 2^63 - 1, got 9223372036854775808"
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize(
    "command",
    [
        ["trace"],
        ["lyapunov"],
        ["validate", "--quick"],
        ["train"],
        ["inits"],
        ["identities"],
        ["analyze", "MODEL"],
    ],
)
def test_every_command_refuses_a_negative_seed_alike(tmp_path, command):
    from typer.testing import CliRunner

    from rnnstab.cli import app

    model = tmp_path / "rnn.pt"
    torch.save(torch.nn.RNN(2, 3).state_dict(), model)
    command = [str(model) if arg == "MODEL" else arg for arg in command]
    out = [] if command[0] == "identities" else ["--out", str(tmp_path / "out")]
    result = CliRunner().invoke(app, [*command, "--seed", "-1", *out])
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == "error: --seed must be ≥ 0, got -1"
    assert not (tmp_path / "out").exists()


def test_truthy_non_bools_are_refused_as_flags():
    with pytest.raises(ArgumentTypeError, match=r"^reverse must be True or False, got str 'no'"):
        rnnstab.VanillaRNN.from_torch(torch.nn.RNN(2, 3, bidirectional=True), reverse="no")
    with pytest.raises(ArgumentTypeError, match=r"^bias_correction must be True or False"):
        rnnstab.train("adding", length=4, hidden=3, steps=1, optimizer="adam", bias_correction=0)


def test_weights_too_large_for_memory_are_refused_before_allocating():
    with pytest.raises(InvalidArgumentError, match=r"^this needs about 2235174\.18 GiB .*: reduce the hidden size"):
        rnnstab.init_weights("gaussian", 10**7)  # 3 float64 matrices of 10¹⁴ entries: 2.4 PB


def test_a_gain_whose_square_overflows_is_refused_by_name():
    with pytest.raises(InvalidArgumentError, match=r"^gain must be at most 1e\+150"):
        rnnstab.mean_field("tanh", gain=1e300)
    assert rnnstab.mean_field("relu", gain=1e150).chi == pytest.approx(0.5e300, rel=1e-12)  # relu: χ = g²/2


def _public_callables_with_required_arguments():
    for name in sorted(rnnstab.__all__):
        obj = getattr(rnnstab, name)
        if not callable(obj) or (isinstance(obj, type) and issubclass(obj, BaseException)):
            continue
        if dataclasses.is_dataclass(obj) and not hasattr(obj, "__post_init__"):
            continue  # a record the library fills in, not an entry point
        try:
            signature = inspect.signature(obj)
        except (TypeError, ValueError):
            continue
        required = [p for p in signature.parameters.values() if p.default is p.empty and p.kind != p.VAR_KEYWORD]
        positional = [p for p in required if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if positional:  # the others would run on their defaults: a training run, the whole validation suite
            yield name, len(positional), tuple(p.name for p in required if p.kind == p.KEYWORD_ONLY)


@pytest.mark.parametrize("bad", [None, 3.5, [1]])
@pytest.mark.parametrize(("name", "count", "keywords"), list(_public_callables_with_required_arguments()))
def test_every_public_callable_refuses_a_wrong_type_with_its_own_error(name, count, keywords, bad):
    # never an AttributeError or TypeError from deep inside: an rnnstab error, which the CLI prints as one line
    with pytest.raises(rnnstab.RnnstabError):
        getattr(rnnstab, name)(*[bad] * count, **dict.fromkeys(keywords, bad))
