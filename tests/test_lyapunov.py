import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import digamma, polygamma

import rnnstab
from rnnstab.theory import late_rate
from tests.problems import explicit_jacobians, non_normal_linear, random_rnn

F64 = torch.float64
DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


def inputs(batch: int, steps: int, m: int = 3, *, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    return scale * torch.randn(batch, steps, m, generator=torch.Generator().manual_seed(seed), dtype=F64)


def eigenvalue_log_moduli(W: torch.Tensor) -> torch.Tensor:
    """Sorted log|eig W| from numpy's LAPACK eigensolver — independent of the QR code under test."""
    moduli = np.abs(np.linalg.eigvals(W.numpy()))
    return torch.from_numpy(np.sort(np.log(moduli))[::-1].copy())


@pytest.mark.parametrize("device", DEVICES)
def test_linear_rnn_exponents_are_log_moduli_of_eigenvalues(device):
    W = torch.randn(10, 10, generator=torch.Generator().manual_seed(1), dtype=F64) / math.sqrt(10)
    rnn = rnnstab.VanillaRNN(W, activation="identity").to(device=device)
    result = rnnstab.lyapunov_spectrum(rnn, torch.zeros(1, 2000, 0), warmup=200)
    expected = eigenvalue_log_moduli(W)
    # For a constant W = VΛV⁻¹ the window's growth of each frame volume is within a factor κ(V)^(±1) of the
    # eigen-rate at each end: an O(log κ(V)/T) transient (κ(V) ≈ e³ here), 2(1 + log κ(V))/1800 ≈ 4e-3.
    log_condition = math.log(np.linalg.cond(np.linalg.eig(W.numpy())[1]))
    assert (result.exponents[0] - expected).abs().max() < 2 * (1 + log_condition) / 1800


def test_non_normal_linear_rnn_exponents_and_loose_bound():
    W = non_normal_linear(8, radius=0.9, shear=3.0, seed=2)
    result = rnnstab.lyapunov_spectrum(rnnstab.VanillaRNN(W, activation="identity"), torch.zeros(1, 1500, 0))
    expected = eigenvalue_log_moduli(W)
    # Real, distinct eigenvalues spaced by ≥ 0.45/7 in modulus: the frame converges geometrically, the transient
    # is O(log κ(V))/T ≈ 10/1350; observed far smaller, 1e-3 is a safe margin.
    assert (result.exponents[0] - expected).abs().max() < 1e-3
    log_norm = math.log(float(torch.linalg.matrix_norm(W, ord=2)))
    assert float(result.exponents[0, 0]) < log_norm - 1.0  # the δ^T bound is loose by (ρ/‖W‖₂)^T


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_orthogonal_linear_rnn_has_all_exponents_zero(dtype):
    W = rnnstab.init_weights("orthogonal", 24, seed=3)
    result = rnnstab.lyapunov_spectrum(
        rnnstab.VanillaRNN(W, activation="identity"), torch.zeros(2, 400, 0), dtype=dtype
    )
    # Only rounding: each step perturbs log R_ii by ~√n·ε relative, a random walk that averages down; 10·√n·ε
    # per step bounds it generously (float64 2.4e-14, float32 1.2e-5 — W itself rounded to float32 adds ~ε).
    tol = 10 * math.sqrt(24) * torch.finfo(dtype).eps
    assert result.exponents.abs().max() < tol
    assert result.sum_rule_residual.abs().max() < 24 * tol


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "softsign", "silu"])
def test_sum_rule_holds_to_rounding(activation):
    rnn = random_rnn(12, activation=activation, delta=1.5, seed=4)
    result = rnnstab.lyapunov_spectrum(rnn, inputs(2, 300, seed=5))
    # Σ log R_ii over the window is log|det| of the window's product exactly, so the residual is rounding: each
    # QR's log R_ii carry a relative error ≲ ε·e^{spread} (spread of log R_ii over the interval); n of them.
    assert result.sum_rule_residual.abs().max() < 12 * math.exp(result.max_log_spread) * torch.finfo(F64).eps
    # The expected side, recomputed independently from the explicit forward pass:
    W, x = rnn.W, inputs(2, 300, seed=5)
    pre, g = [], rnn.activation.fn(torch.zeros(2, 12, dtype=F64))
    for t in range(300):
        h = g @ W.T + x[:, t] @ rnn.U.T + rnn.b
        pre.append(h)
        g = rnn.activation.fn(h)
    derivative = rnn.activation.derivative(torch.stack(pre[result.warmup :], dim=1))
    expected = torch.linalg.slogdet(W)[1] + torch.log(derivative.abs()).sum(dim=(1, 2)) / result.measured_steps
    assert torch.allclose(result.sum_rule_expected, expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize(
    "c, dtype",
    [(60.0, torch.float32), (200.0, F64)],  # σ' = e^-118.6 underflows float32; e^-398.6 squared underflows float64
)
def test_deeply_saturated_units_keep_their_exact_exponents(c, dtype):
    # W = c·I and g_0 = tanh(25) = 1 exactly: every h_t = c, J_t = c·tanh'(c)·I, and every exponent and the sum
    # rule's mean log|det J_t| follow from the closed form log tanh'(c) = log 4 − 2c − 2·log(1 + e^{−2c}).
    n = 4
    rnn = rnnstab.VanillaRNN(c * torch.eye(n, dtype=F64), activation="tanh")
    result = rnnstab.lyapunov_spectrum(rnn, torch.zeros(2, 200, 0), h0=torch.full((n,), 25.0), dtype=dtype)
    exponent = math.log(c) + math.log(4.0) - 2 * c - 2 * math.log1p(math.exp(-2 * c))
    # σ' rounded to dtype, and the float64 sum of the logs over the window, both relative
    atol = (4 * torch.finfo(dtype).eps + 16 * torch.finfo(F64).eps) * abs(exponent)
    torch.testing.assert_close(result.exponents, torch.full((2, n), exponent, dtype=F64), rtol=0, atol=atol)
    torch.testing.assert_close(
        result.sum_rule_expected, torch.full((2,), n * exponent, dtype=F64), rtol=0, atol=n * atol
    )


def test_products_of_gaussian_matrices_match_newman():
    n, sigma, steps, batch = 6, 0.7, 3000, 2
    generator = torch.Generator().manual_seed(6)
    result = rnnstab.product_lyapunov_spectrum(
        lambda t: sigma / math.sqrt(n) * torch.randn(batch, n, n, generator=generator, dtype=F64), steps=steps
    )
    i = np.arange(1, n + 1)
    expected = torch.from_numpy(math.log(sigma) + 0.5 * (math.log(2 / n) + digamma((n - i + 1) / 2)))
    # Newman: the per-step log R_ii are independent with variance ¼ψ'((n−i+1)/2): exact standard errors.
    stderr = torch.from_numpy(0.5 * np.sqrt(polygamma(1, (n - i + 1) / 2) / (steps * batch)))
    z = (result.exponents.mean(dim=0) - expected) / stderr
    assert z.abs().max() < 5  # 5 s.e.: a false alarm about once in 3·10⁵ runs per exponent
    # The sum rule is exact up to the rounding of each QR, ≲ ε·e^{spread} relative per log R_ii (n of them).
    assert result.sum_rule_residual.abs().max() < n * math.exp(result.max_log_spread) * torch.finfo(F64).eps


def test_every_step_and_adaptive_qr_agree_in_float64():
    rnn = random_rnn(16, delta=1.2, seed=7)
    x = inputs(2, 500, seed=8, scale=0.5)
    every = rnnstab.lyapunov_spectrum(rnn, x, qr_every=1)
    adaptive = rnnstab.lyapunov_spectrum(rnn, x)
    fixed = rnnstab.lyapunov_spectrum(rnn, x, qr_every=3)
    assert every.qr_count == 500 and adaptive.qr_count < 500
    assert adaptive.max_log_spread <= adaptive.log_spread_limit
    # Exact arithmetic gives identical sums (diagonal of a product of triangular matrices); rounding with the
    # log-spread near 18 nats contributes ≲ ε·e¹⁸ per QR ≈ 1.5e-8, divided by the steps per QR and averaged.
    assert (every.exponents - adaptive.exponents).abs().max() < 1e-9
    assert (every.exponents - fixed.exponents).abs().max() < 1e-9


def test_adaptive_interval_grows_for_a_narrow_spectrum():
    # Scaled orthogonal linear RNN: every exponent is log 0.9, spread 0; the interval doubles up to the cap of 64
    # (the magnitude rule allows s·|log 0.9| ≤ 18, s ≤ 170), cut only by the warm-up end and the 10 block ends.
    W = 0.9 * rnnstab.init_weights("orthogonal", 8, seed=9)
    result = rnnstab.lyapunov_spectrum(rnnstab.VanillaRNN(W, activation="identity"), torch.zeros(1, 1000, 0))
    assert result.qr_count <= 7 + 2 * 11  # the ramp 1, 2, …, 64, then at most two QRs per block (90 steps)
    assert torch.allclose(result.exponents, torch.full_like(result.exponents, math.log(0.9)), atol=1e-13, rtol=0)


def test_an_interval_past_the_limit_is_redone_step_by_step():
    # Identity factors let the interval grow to 64 steps; one factor diag(1, e^-30) then makes that interval's
    # log R_ii spread ≈ 30 > ⅔·ln(1/ε) ≈ 24: it must be rejected and redone with a QR every step.
    spike = torch.diag(torch.tensor([1.0, math.exp(-30.0)], dtype=F64))
    rotation = torch.tensor([[0.6, -0.8], [0.8, 0.6]], dtype=F64)
    factors = lambda t: spike if t == 150 else rotation  # noqa: E731
    auto = rnnstab.product_lyapunov_spectrum(factors, steps=300, blocks=1)
    every = rnnstab.product_lyapunov_spectrum(factors, steps=300, blocks=1, qr_every=1)
    assert auto.rejected_intervals == 1 and every.rejected_intervals == 0
    assert auto.max_log_spread == pytest.approx(every.max_log_spread)  # the one-step spread of the spike itself
    assert torch.allclose(auto.exponents, every.exponents, atol=1e-15, rtol=0)
    assert float(auto.exponents.sum()) == pytest.approx(-30.0 / 300, abs=1e-14)  # det of the product is e^-30


def test_a_nearly_dead_unit_is_resolved_by_row_sorted_qr():
    # sigmoid' ≈ e^-30 on unit 0 (bias −30): one row of D_t W Q is e^-30 times the others, a single-step spread of
    # ~30 nats that no interval can split. Householder QR with rows sorted by norm resolves it: the smallest
    # exponent is ≈ −30 + log|...| and the sum rule holds to rounding (unsorted, R_nn came out as rounding noise).
    W = 0.5 * rnnstab.init_weights("orthogonal", 3, seed=25)
    b = torch.tensor([-30.0, 0.0, 0.0], dtype=F64)
    rnn = rnnstab.VanillaRNN(W, torch.zeros(3, 1, dtype=F64), b, activation="sigmoid")
    result = rnnstab.lyapunov_spectrum(rnn, torch.zeros(1, 50, 1), qr_every=1)
    assert result.max_log_spread > 28
    assert abs(float(result.sum_rule_residual[0])) < 1e-12
    assert -31.5 < float(result.exponents[0, -1]) < -28.5


def test_top_k_equals_the_first_k_of_the_full_spectrum():
    rnn = random_rnn(20, delta=1.4, seed=10)
    x = inputs(3, 400, seed=11)
    full = rnnstab.lyapunov_spectrum(rnn, x)
    top = rnnstab.lyapunov_spectrum(rnn, x, k=5)
    # Same initial frame (the first k rows of one draw) and Gram–Schmidt is triangular: the first k frame vectors
    # never see the others, so only rounding (and a different QR schedule) separates the two (observed 1e-15).
    assert top.exponents.shape == (3, 5)
    assert (top.in_frame_order() - full.in_frame_order()[:, :5]).abs().max() < 1e-12
    # Here no finite-time estimates cross, so the sorted lists agree too.
    assert (full.frame_index == torch.arange(20)).all()
    assert (top.exponents - full.exponents[:, :5]).abs().max() < 1e-12
    assert top.sum_rule_measured is None and top.sum_rule_residual is None


def test_top_exponent_matches_jacobian_norms():
    rnn = random_rnn(16, delta=1.3, seed=12)
    x = inputs(2, 600, seed=13)
    result = rnnstab.lyapunov_spectrum(rnn, x, k=1, warmup=300, blocks=6)
    trace = rnnstab.jacobian_norms(rnn, x, norms=("spectral",))
    log_norm = trace.log_spectral
    # (1/T')(log‖J_T q‖ − log‖J_{T/2} q‖) and (1/T')(log‖J_T‖₂ − log‖J_{T/2}‖₂) differ by the change in
    # log|⟨q, v₁(J_t)⟩|, which decays like e^{−(λ₁−λ₂)t} as the top right singular vector settles (Oseledets).
    endpoint_rate = (log_norm[:, -1] - log_norm[:, 299]) / 300
    assert torch.allclose(result.exponents[:, 0], endpoint_rate, rtol=0, atol=1e-10)
    # The least-squares late rate is another estimator of λ₁: agreement within 4 block standard errors.
    rate = late_rate(log_norm)
    assert ((result.exponents[:, 0] - rate).abs() < 4 * result.exponents_stderr[:, 0]).all()


def test_float32_agrees_with_float64():
    rnn = random_rnn(16, delta=1.2, seed=14)
    x = inputs(2, 400, seed=15, scale=0.5)
    double = rnnstab.lyapunov_spectrum(rnn, x, k=8)
    single = rnnstab.lyapunov_spectrum(rnn, x, k=8, dtype=torch.float32)
    assert single.dtype == torch.float32 and single.log_spread_target == pytest.approx(0.5 * math.log(2**23))
    # float32 rounds W, the trajectory and each product to ~6e-8 relative; the exponents are averages of
    # per-step log-ratios, so their error stays near the per-step rounding √n·ε ≈ 5e-7 (observed 2e-7) as long as
    # the float32 trajectory tracks the float64 one (a contracting network: it does). 5e-6 leaves a 10× margin.
    assert (single.exponents - double.exponents).abs().max() < 5e-6


def test_batched_networks_equal_separate_runs():
    rnn = random_rnn(8, delta=1.3, seed=16, batch_networks=3)
    x = inputs(3, 200, seed=17)
    together = rnnstab.lyapunov_spectrum(rnn, x, qr_every=2, seed=5)
    for b in range(3):
        alone = rnnstab.VanillaRNN(rnn.W[b], rnn.U[b], rnn.b[b], activation=rnn.activation)
        single = rnnstab.lyapunov_spectrum(alone, x[b : b + 1], qr_every=2, seed=5 + b)
        assert torch.allclose(together.exponents[b], single.exponents[0], rtol=0, atol=1e-12)


def test_error_bars_and_history():
    rnn = random_rnn(6, delta=1.1, seed=18)
    result = rnnstab.lyapunov_spectrum(rnn, inputs(2, 300, seed=19), warmup=50, blocks=5)
    assert result.block_exponents.shape == (2, 5, 6)
    # The exponent is the mean of the five equal (50-step) blocks; the error the s.d. of block means over √5.
    assert torch.allclose(result.block_exponents.mean(dim=1), result.exponents, atol=1e-12, rtol=0)
    expected_stderr = result.block_exponents.std(dim=1, correction=1) / math.sqrt(5)
    assert torch.allclose(result.exponents_stderr, expected_stderr, atol=1e-14, rtol=0)
    assert result.history_steps[-1] == 300 and len(result.history_steps) <= 100
    assert list(result.history_steps) == sorted(set(result.history_steps)) and result.history_steps[0] > 50
    assert torch.allclose(result.history[:, -1], result.exponents, atol=1e-12, rtol=0)
    mean, error = result.batch_mean()
    assert torch.allclose(error, result.exponents_stderr.pow(2).sum(0).sqrt() / 2)
    assert torch.allclose(mean, result.exponents.mean(0))
    one_block = rnnstab.lyapunov_spectrum(rnn, inputs(1, 20, seed=19), blocks=1)
    assert torch.isnan(one_block.exponents_stderr).all()


def test_exponents_are_sorted_and_below_log_delta():
    for activation in ("tanh", "relu", "gelu"):
        rnn = random_rnn(10, activation=activation, delta=0.9, seed=20)
        result = rnnstab.lyapunov_spectrum(rnn, inputs(2, 200, seed=21))
        assert (result.exponents[:, :-1] >= result.exponents[:, 1:]).all()
        assert result.exponents[:, 0].max() <= math.log(0.9) + 1e-12  # λ₁ ≤ log δ at every finite T


def test_dead_relu_directions_fall_back_to_qr_every_step():
    # Bias −10 and no input switch every relu unit off: J_t = 0, the frame image is exactly zero.
    W = torch.eye(4, dtype=F64) * 0.5
    rnn = rnnstab.VanillaRNN(W, torch.ones(4, 1, dtype=F64), torch.full((4,), -10.0, dtype=F64), activation="relu")
    result = rnnstab.lyapunov_spectrum(rnn, torch.zeros(1, 50, 1))
    assert torch.isneginf(result.exponents).all()
    assert result.qr_count == 50 and math.isinf(result.max_log_spread)
    assert torch.isnan(result.sum_rule_residual).all()  # ⟨log|det J_t|⟩ = −inf: the check does not apply


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 8),
    activation=st.sampled_from(["tanh", "sigmoid", "gelu", "softsign", "identity"]),
    delta=st.floats(0.2, 3.0),
    steps=st.integers(2, 60),
    k=st.integers(1, 8),
    seed=st.integers(0, 10_000),
)
def test_invariants_on_random_networks(n, activation, delta, steps, k, seed):
    rnn = random_rnn(n, activation=activation, delta=delta, seed=seed)
    x = inputs(2, steps, seed=seed)
    full = rnnstab.lyapunov_spectrum(rnn, x, seed=seed)
    top = rnnstab.lyapunov_spectrum(rnn, x, k=min(k, n), seed=seed)
    # λ₁ ≤ log δ at every T (submultiplicativity), the sum rule to rounding, top-k = the full frame's first k.
    assert float(full.exponents[:, 0].max()) <= math.log(delta) + 1e-12
    assert (full.exponents[:, :-1] >= full.exponents[:, 1:]).all()
    # (a unit with σ' = 0 exactly — gelu far below 0 underflows — makes ⟨log|det J_t|⟩ = −inf: no check then; nor
    # where one step's |det J_t| is below float64's range, e^-745: the frame's last direction then underflows in that
    # step, a known limit — gelu, n = 7, δ = 2, seed 5626 reaches log|det J_19| = −951 with every unit saturated)
    log_det = torch.linalg.slogdet(rnn.W).logabsdet + torch.log(
        rnn.activation.derivative(rnn.run_preactivation(x)).abs()
    ).sum(-1)
    applies = torch.isfinite(full.sum_rule_expected) & (log_det.amin(dim=-1) > math.log(torch.finfo(F64).tiny))
    residual = full.sum_rule_residual[applies].abs()
    assert (residual < n * math.exp(full.max_log_spread) * torch.finfo(F64).eps + 1e-13).all()
    assert torch.allclose(top.in_frame_order(), full.in_frame_order()[:, : min(k, n)], atol=1e-9, rtol=0)


@pytest.mark.parametrize(
    ("exponents", "expected"),
    [
        ([0.5, -0.2, -1.0], 2.3),
        ([-0.1, -0.2], 0.0),
        ([0.9, 0.0, -14.5], 2 + 0.9 / 14.5),  # Lorenz-like: a dimension just above 2
        ([0.3, 0.1], 2.0),
        ([-1.0, 0.5, -0.2], 2.3),  # in frame order, not sorted: D_KY is defined on the ordered spectrum
    ],
)
def test_kaplan_yorke_dimension(exponents, expected):
    assert float(rnnstab.kaplan_yorke_dimension(torch.tensor(exponents))) == pytest.approx(expected)


def test_kaplan_yorke_dimension_of_a_neutral_spectrum_is_n_whatever_the_rounding():
    # An orthogonal linear RNN: every λ = 0, measured as ±1e-17. D_KY = n, not a value that hangs on those signs.
    W = rnnstab.init_weights("orthogonal", 12, seed=5)
    spectrum = rnnstab.lyapunov_spectrum(rnnstab.VanillaRNN(W, activation="identity"), torch.zeros(3, 150, 0))
    assert float(spectrum.exponents.abs().max()) < 1e-14
    assert spectrum.kaplan_yorke_dimension().tolist() == [12.0, 12.0, 12.0]
    assert float(rnnstab.kaplan_yorke_dimension(torch.tensor([1e-17, -2e-17, 0.0]), atol=1e-15)) == 3.0


def test_a_negative_seed_is_refused_by_name():
    with pytest.raises(rnnstab.InvalidArgumentError, match="seed must be ≥ 0"):
        rnnstab.lyapunov_spectrum(random_rnn(4), inputs(1, 10, seed=0), seed=-1)


def test_kaplan_yorke_dimension_of_a_truncated_spectrum_is_undetermined():
    value = rnnstab.kaplan_yorke_dimension(torch.tensor([[0.3, 0.1]]), hidden_size=5)
    assert torch.isnan(value).all()


def test_singular_value_spectrum_equals_svd_of_explicit_products():
    rnn = random_rnn(8, delta=1.1, seed=22)
    x = inputs(2, 30, seed=23)
    spectrum = rnnstab.singular_value_spectrum(rnn, x, at=[30, 5])
    assert spectrum.steps == (5, 30)
    reference = explicit_jacobians(rnn, x)
    for j, t in enumerate(spectrum.steps):
        expected = torch.linalg.svdvals(reference[:, t - 1])
        got = spectrum.log_singular_values[:, j].exp()
        # Singular values are resolved to ~n·ε·σ₁ (Weyl): compare relative to σ₁.
        assert torch.allclose(got / expected[:, :1], expected / expected[:, :1], atol=1e-12, rtol=0)
    assert spectrum.finite_time_exponents().shape == (2, 2, 8)
    summary = spectrum.isometry_summary()
    assert summary["step"] == [5.0, 30.0] and len(summary["std_log_singular_value"]) == 2


def test_singular_values_of_orthogonal_products_show_isometry():
    W = rnnstab.init_weights("orthogonal", 6, seed=24)
    spectrum = rnnstab.singular_value_spectrum(
        rnnstab.VanillaRNN(W, activation="identity"), torch.zeros(1, 20, 0), at=[20]
    )
    summary = spectrum.isometry_summary()
    assert summary["fraction_within_factor_e"] == [1.0]
    assert summary["std_log_singular_value"][0] < 1e-12


def test_isometry_summary_leaves_out_the_values_below_the_rounding_floor():
    # n = 3, float64: the floor is log σ₁ + log(3ε) = log σ₁ − 35.4. Row 0: −50 is noise, which pulled the mean to
    # −17. Row 1 (σ₁ = e⁴⁰): 0.5 is below the floor at 4.6 and was counted as within a factor e of 1.
    logs = torch.tensor([[[0.0, -1.0, -50.0]], [[40.0, 10.0, 0.5]]], dtype=F64)
    summary = rnnstab.SingularValueSpectrum(
        steps=(7,), log_singular_values=logs, dtype=F64, hidden_size=3
    ).isometry_summary()
    assert summary["num_resolved"] == [4] and summary["num_below_rounding_floor"] == [2]
    resolved = torch.tensor([0.0, -1.0, 40.0, 10.0], dtype=F64)
    assert summary["mean_log_singular_value"] == [pytest.approx(float(resolved.mean()))]
    assert summary["std_log_singular_value"] == [pytest.approx(float(resolved.std(correction=0)))]
    assert summary["fraction_within_factor_e"] == [pytest.approx(2 / 6)]


def test_the_singular_value_figure_greys_what_the_statistics_leave_out(tmp_path):
    # the same spectrum: 0.5 in row 1 lies above row 0's floor (−35.4) but below its own (4.6), so one floor for the
    # batch would have drawn it as resolved; the figure's grey bars are exactly the values the summary leaves out
    from rnnstab.plots import plot_singular_values

    logs = torch.tensor([[[0.0, -1.0, -50.0]], [[40.0, 10.0, 0.5]]], dtype=F64)
    spectrum = rnnstab.SingularValueSpectrum(steps=(7,), log_singular_values=logs, dtype=F64, hidden_size=3)
    (ax,) = plot_singular_values(spectrum, path=tmp_path / "s.png").axes
    blue, grey = ax.containers  # the stacked histogram: resolved values, then noise
    assert sum(bar.get_height() for bar in blue) == 4 and sum(bar.get_height() for bar in grey) == 2
    noise = sorted(bar.get_x() + bar.get_width() / 2 for bar in grey if bar.get_height())
    assert noise[0] < -49 and -1 < noise[1] < 2  # −50, and 0.5 (above the other row's floor)
    assert any(patch.get_label() == "rounding floors log(nεσ₁)" for patch in ax.patches)  # the floors differ: a band


def test_isometry_summary_of_a_zero_jacobian_has_no_statistics():
    logs = torch.full((2, 1, 3), -math.inf, dtype=F64)  # every relu unit off at some step: J_t = 0 exactly
    summary = rnnstab.SingularValueSpectrum(
        steps=(5,), log_singular_values=logs, dtype=F64, hidden_size=3
    ).isometry_summary()
    assert summary["num_resolved"] == [0] and summary["num_below_rounding_floor"] == [6]
    assert math.isnan(summary["mean_log_singular_value"][0]) and summary["fraction_within_factor_e"] == [0.0]


def test_progress_counts_every_step():
    seen: list[int] = []
    rnnstab.lyapunov_spectrum(random_rnn(4), inputs(1, 300), progress=seen.append)
    assert sum(seen) == 300
    seen.clear()
    rnnstab.product_lyapunov_spectrum(lambda t: torch.eye(3, dtype=F64), steps=300, progress=seen.append)
    assert sum(seen) == 300


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"k": 0}, rnnstab.InvalidArgumentError, "k must"),
        ({"k": 5}, rnnstab.InvalidArgumentError, "k must be in 1..4"),
        ({"k": 1.5}, rnnstab.ArgumentTypeError, "k must"),
        ({"warmup": 10}, rnnstab.InvalidArgumentError, "warmup"),
        ({"warmup": -1}, rnnstab.InvalidArgumentError, "warmup"),
        ({"warmup": 2.0}, rnnstab.ArgumentTypeError, "warmup"),
        ({"qr_every": 0}, rnnstab.InvalidArgumentError, "qr_every"),
        ({"qr_every": "often"}, rnnstab.InvalidArgumentError, "qr_every"),
        ({"blocks": 0}, rnnstab.InvalidArgumentError, "blocks"),
        ({"dtype": torch.float16}, rnnstab.InvalidArgumentError, "dtype"),
        ({"seed": "a"}, rnnstab.ArgumentTypeError, "seed"),
        ({"device": "tpu"}, rnnstab.InvalidArgumentError, "device"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, error, match):
    with pytest.raises(error, match=match):
        rnnstab.lyapunov_spectrum(random_rnn(4), inputs(1, 10), **kwargs)


def test_bad_inputs_name_themselves():
    with pytest.raises(rnnstab.ShapeError, match="x"):
        rnnstab.lyapunov_spectrum(random_rnn(4), torch.zeros(1, 10, 2))
    with pytest.raises(rnnstab.InvalidArgumentError, match="at must"):
        rnnstab.singular_value_spectrum(random_rnn(4), inputs(1, 10), at=[11])
    with pytest.raises(rnnstab.InvalidArgumentError, match="at must"):
        rnnstab.singular_value_spectrum(random_rnn(4), inputs(1, 10), at=[])


def test_product_spectrum_errors_name_the_factor():
    with pytest.raises(rnnstab.ArgumentTypeError, match="matrices"):
        rnnstab.product_lyapunov_spectrum("not callable", steps=3)  # type: ignore[arg-type]
    with pytest.raises(rnnstab.ShapeError, match=r"matrices\(0\) must be square"):
        rnnstab.product_lyapunov_spectrum(lambda t: torch.zeros(2, 3, dtype=F64), steps=3)
    with pytest.raises(rnnstab.ShapeError, match=r"matrices\(1\)"):
        rnnstab.product_lyapunov_spectrum(lambda t: torch.eye(2 + t, dtype=F64), steps=3)
    with pytest.raises(rnnstab.NonFiniteError, match=r"matrices\(0\)"):
        rnnstab.product_lyapunov_spectrum(lambda t: torch.full((2, 2), math.nan, dtype=F64), steps=3)
    with pytest.raises(rnnstab.ArgumentTypeError, match=r"matrices\(0\)"):
        rnnstab.product_lyapunov_spectrum(lambda t: [[1.0]], steps=3)  # type: ignore[arg-type,return-value]
    with pytest.raises(rnnstab.ArgumentTypeError, match=r"matrices\(0\) .* got dtype torch.int64"):
        rnnstab.product_lyapunov_spectrum(lambda t: torch.eye(2, dtype=torch.int64), steps=3)
    with pytest.raises(rnnstab.InvalidArgumentError, match="steps"):
        rnnstab.product_lyapunov_spectrum(lambda t: torch.eye(2, dtype=F64), steps=0)


@pytest.mark.parametrize(
    "exponents, error",
    [
        ([0.1, -0.2], rnnstab.ArgumentTypeError),
        (np.array([0.1, -0.2]), rnnstab.ArgumentTypeError),
        (torch.tensor(0.5), rnnstab.ShapeError),
        (torch.zeros(0), rnnstab.ShapeError),
        (torch.zeros(2, 3, 4), rnnstab.ShapeError),
    ],
)
def test_kaplan_yorke_refuses_what_is_not_a_spectrum(exponents, error):
    with pytest.raises(error, match="exponents must be"):
        rnnstab.kaplan_yorke_dimension(exponents)


def test_singular_value_spectrum_refuses_a_bare_step():
    with pytest.raises(rnnstab.ArgumentTypeError, match=r"pass \[t\]"):
        rnnstab.singular_value_spectrum(random_rnn(4), torch.randn(1, 5, 3, dtype=torch.float64), at=5)


def test_a_fixed_interval_past_the_spread_limit_warns():
    # Eigenvalues 2 and 0.2 with non-orthogonal eigenvectors: the log R_ii spread by ln 10 per step, 46 nats over 20
    # steps, and the QR of a frame so ill-conditioned swamps λ₂ = ln 0.2 — silently, before.
    c, s = math.cos(0.3), math.sin(0.3)
    P = torch.tensor([[c, -s], [s, c]], dtype=F64)  # rotated, so that no product stays triangular and exact
    W = P @ torch.tensor([[2.0, 1.0], [0.0, 0.2]], dtype=F64) @ P.T
    rnn = rnnstab.VanillaRNN(W, activation="identity")
    x = torch.zeros(1, 400, 0)
    expected = torch.tensor([math.log(2.0), math.log(0.2)], dtype=F64)
    message = r"qr_every=20 let log R_ii spread over \d+\.\d nats.*limit 24 for float64"
    with pytest.warns(rnnstab.RnnstabWarning, match=message):
        wrong = rnnstab.lyapunov_spectrum(rnn, x, qr_every=20, warmup=100)
    assert float((wrong.exponents[0] - expected).abs().max()) > 0.1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for interval in ("auto", 1):
            right = rnnstab.lyapunov_spectrum(rnn, x, qr_every=interval, warmup=100)
            assert torch.allclose(right.exponents[0], expected, atol=1e-12)


@pytest.mark.parametrize(("activation", "c"), [("tanh", 400.0), ("sigmoid", 800.0)])
def test_units_saturated_below_float64s_range_have_finite_exponents(activation, c):
    # σ'(c) = e^-798.6 (tanh) or e^-800 (sigmoid) underflows float64: every exponent read −inf, a dead network's
    rnn = rnnstab.VanillaRNN(c * torch.eye(3, dtype=torch.float64), activation=activation)
    result = rnnstab.lyapunov_spectrum(rnn, torch.zeros(1, 60, 0), h0=torch.full((3,), 40.0, dtype=torch.float64))
    log_slope = math.log(4.0) - 2 * c if activation == "tanh" else -c  # the closed forms; e^{-2c} terms below 1e-300
    torch.testing.assert_close(
        result.exponents, torch.full_like(result.exponents, math.log(c) + log_slope), rtol=1e-12, atol=0
    )
