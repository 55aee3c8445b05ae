import math

import numpy as np
import pytest
import torch

import rnnstab
from rnnstab.theory import late_rate
from tests.problems import explicit_jacobians, random_rnn

F64 = torch.float64


def scaled_orthogonal_identity(delta: float, steps: int = 200) -> rnnstab.JacobianTrace:
    W = rnnstab.scale_to_threshold(rnnstab.init_weights("orthogonal", 8, seed=3), delta=delta, gamma=1.0)
    return rnnstab.jacobian_norms(rnnstab.VanillaRNN(W, activation="identity"), torch.zeros(1, steps, 0))


@pytest.mark.parametrize(
    ("delta", "regime"),
    [(0.95, "guaranteed vanishing"), (1.0, "marginal"), (1.05, "exploding")],
)
def test_regimes_of_scaled_orthogonal_linear_rnns(delta, regime):
    # J_t = (δQ)^t: log‖J_t‖₂ = t·log δ exactly, so the rate is log δ and the slack is 0 (the bound is tight).
    (verdict,) = rnnstab.verdicts(scaled_orthogonal_identity(delta), delta=delta)
    assert verdict.regime == regime
    assert verdict.rate_per_step == pytest.approx(math.log(delta), abs=1e-12)
    assert verdict.slack_per_step == pytest.approx(0.0, abs=1e-12)
    assert verdict.bound_holds


def test_saturating_tanh_above_threshold_still_vanishes():
    # δ = 1.5 permits growth, but inputs of scale 5 saturate tanh (σ' ≈ 0): gradients vanish anyway.
    rnn = random_rnn(32, delta=1.5, seed=11)
    x = 5.0 * torch.randn(4, 100, 3, generator=torch.Generator().manual_seed(12), dtype=F64)
    verdicts = rnnstab.verdicts(rnnstab.jacobian_norms(rnn, x), delta=1.5)
    assert {v.regime for v in verdicts} == {"vanishing"}
    # Independent rate: numpy's least-squares line through the explicit products over t ∈ (50, 100].
    reference = torch.log(torch.linalg.matrix_norm(explicit_jacobians(rnn, x), ord=2)).numpy()
    t = np.arange(51, 101)
    for b, verdict in enumerate(verdicts):
        slope = np.polyfit(t, reference[b, 50:], 1)[0]
        assert verdict.rate_per_step == pytest.approx(slope, abs=1e-8)
        assert verdict.half_life_steps == pytest.approx(math.log(2) / -slope, rel=1e-6)
        assert verdict.doubling_steps is None
        assert verdict.slack_per_step == pytest.approx(math.log(1.5) - slope, abs=1e-8)


def test_late_rate_of_dead_trace_is_minus_infinity():
    rates = late_rate(torch.tensor([[0.0, -1.0, -math.inf, -math.inf], [0.0, 1.0, 2.0, 3.0]]))
    assert math.isinf(rates[0]) and rates[0] < 0
    assert float(rates[1]) == pytest.approx(1.0)


def test_a_jacobian_that_became_exactly_zero_has_no_half_life():
    # the verdict (trace.json, load_sweep) gave 0 steps where the sweep's report and lyapunov give none
    rnn = rnnstab.VanillaRNN(torch.eye(2, dtype=F64), activation="relu")
    trace = rnnstab.jacobian_norms(rnn, torch.zeros(1, 10, 0), h0=-torch.ones(2, dtype=F64))
    (verdict,) = rnnstab.verdicts(trace, delta=1.0)
    assert verdict.rate_per_step == -math.inf and verdict.half_life_steps is None and verdict.doubling_steps is None


def test_per_network_delta_as_a_numpy_array():
    # rnn.delta().numpy() or a DataFrame column was refused: "delta must be a number, got ndarray"
    rnn = random_rnn(6, delta=1.0, seed=4, batch_networks=3)
    trace = rnnstab.jacobian_norms(rnn, torch.randn(3, 20, 3, dtype=F64))
    deltas = rnn.delta()
    assert rnnstab.verdicts(trace, delta=deltas.numpy()) == rnnstab.verdicts(trace, delta=deltas)
    assert rnnstab.bound_violations(trace, delta=deltas.numpy().astype("float32")) == []
    with pytest.raises(rnnstab.ShapeError, match="delta"):
        rnnstab.verdicts(trace, delta=deltas.numpy()[:2])


def test_per_network_delta_for_a_batch_of_networks():
    rnn = random_rnn(6, delta=1.0, seed=4, batch_networks=3)
    trace = rnnstab.jacobian_norms(rnn, torch.randn(3, 20, 3, dtype=F64))
    deltas = rnn.delta()
    assert torch.allclose(deltas, torch.ones(3, dtype=F64), atol=1e-12)
    assert rnnstab.bound_violations(trace, delta=deltas) == []
    with pytest.raises(rnnstab.ShapeError, match="delta"):
        rnnstab.bound_violations(trace, delta=torch.ones(2))
    with pytest.raises(rnnstab.InvalidArgumentError, match="delta"):
        rnnstab.bound_violations(trace, delta=torch.tensor([1.0, -1.0, 1.0]))


@pytest.mark.parametrize("bad", [0.0, -0.5, float("nan"), float("inf")])
def test_bad_delta_is_refused(bad):
    trace = scaled_orthogonal_identity(0.9, steps=5)
    with pytest.raises(rnnstab.InvalidArgumentError, match="delta"):
        rnnstab.verdicts(trace, delta=bad)
    with pytest.raises(rnnstab.InvalidArgumentError, match="delta"):
        rnnstab.log_bound(bad, 5)


@pytest.mark.parametrize("bad", [torch.tensor([True, True]), torch.tensor(True), torch.tensor([1 + 0j, 1 + 0j])])
def test_a_bool_or_complex_delta_tensor_is_refused(bad):
    # a bool tensor was read as δ = 1, though a Python bool is refused
    trace = scaled_orthogonal_identity(0.9, steps=5)
    with pytest.raises(rnnstab.ArgumentTypeError, match="delta must hold real numbers"):
        rnnstab.verdicts(trace, delta=bad)


def test_verdicts_need_spectral_norms():
    W = rnnstab.init_weights("orthogonal", 4)
    trace = rnnstab.jacobian_norms(rnnstab.VanillaRNN(W), torch.zeros(1, 3, 0), norms=("frobenius",))
    with pytest.raises(rnnstab.InvalidArgumentError, match="spectral"):
        rnnstab.verdicts(trace, delta=1.0)
    with pytest.raises(rnnstab.InvalidArgumentError, match="rate_tol"):
        rnnstab.verdicts(scaled_orthogonal_identity(0.9, steps=5), delta=0.9, rate_tol=0)


def test_log_bound_is_t_log_delta():
    assert torch.allclose(rnnstab.log_bound(0.5, 3), torch.tensor([1.0, 2.0, 3.0], dtype=F64) * math.log(0.5))


def test_a_truncated_trace_is_measured_on_the_steps_before_its_overflow():
    # identity σ, orthogonal W at δ = 1.5: ‖J_t‖₂ = 1.5^t until the float32 state overflows (t ≈ 218); the NaN from
    # there on must not enter the rate (read as 0 it made this network "vanishing" at −0.7 nats/step, bound broken)
    W = rnnstab.scale_to_threshold(rnnstab.init_weights("orthogonal", 8, seed=0), delta=1.5, gamma=1.0)
    rnn = rnnstab.VanillaRNN(W.float(), torch.ones(8, 1), None, activation="identity")
    x = torch.ones(2, 300, 1)
    x[1] = 0.0  # this sequence's state stays at 0: no overflow, its whole trace counts
    trace = rnnstab.jacobian_norms(rnn, x, dtype="float32", on_overflow="truncate")
    first = int(trace.overflow_steps[0])
    assert 1 < first < 300 and trace.overflow_steps[1] == 0
    overflowed, calm = rnnstab.verdicts(trace, delta=1.5)
    assert overflowed.regime == "exploding" and overflowed.bound_holds
    assert overflowed.rate_per_step == pytest.approx(math.log(1.5), abs=1e-5)
    before = rnnstab.jacobian_norms(rnn, x[:1, : first - 1], dtype="float32")
    assert overflowed == rnnstab.verdicts(before, delta=1.5)[0]
    assert calm == rnnstab.verdicts(rnnstab.jacobian_norms(rnn, x[1:], dtype="float32"), delta=1.5)[0]


def test_a_trace_that_overflowed_at_the_first_step_has_nothing_to_measure():
    rnn = rnnstab.VanillaRNN(torch.eye(2, dtype=F64), torch.full((2, 1), 1e308, dtype=F64), activation="identity")
    x = torch.tensor([[[0.0], [0.0]], [[10.0], [0.0]]], dtype=F64)  # U x_1 = 1e309 = inf in the second sequence
    trace = rnnstab.jacobian_norms(rnn, x, on_overflow="truncate")
    assert trace.overflow_steps.tolist() == [0, 1]
    with pytest.raises(rnnstab.StateOverflowError, match="trace 1 overflowed at the first step"):
        rnnstab.verdicts(trace, delta=1.0)


@pytest.mark.parametrize("check", [rnnstab.verdicts, rnnstab.bound_violations])
def test_a_trace_that_is_not_a_jacobian_trace_is_refused_by_name(check):
    trace = rnnstab.jacobian_norms(random_rnn(4), torch.randn(1, 5, 3, dtype=torch.float64))
    with pytest.raises(rnnstab.ArgumentTypeError, match="trace must be the JacobianTrace"):
        check(trace.log_spectral, delta=0.9)


def test_a_delta_below_one_that_the_trace_exceeds_guarantees_nothing():
    # orthogonal W, identity σ: ‖J_t‖₂ = 1.2^t. Told δ = 0.9, verdicts called it "guaranteed vanishing" beside
    # bound_holds = False; the rate decides instead, as for δ ≥ 1
    trace = scaled_orthogonal_identity(1.2, steps=20)
    (wrong,) = rnnstab.verdicts(trace, delta=0.9)
    assert not wrong.bound_holds and wrong.regime == "exploding"
    assert wrong.rate_per_step == pytest.approx(math.log(1.2), rel=1e-9)
    (right,) = rnnstab.verdicts(scaled_orthogonal_identity(0.9, steps=20), delta=0.9)
    assert right.bound_holds and right.regime == "guaranteed vanishing"
