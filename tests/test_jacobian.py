import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import rnnstab
from rnnstab._coupling import Coupling
from rnnstab._spectral_tracker import SpectralTracker
from tests.problems import (
    assert_same_whatever_the_batch,
    explicit_jacobians,
    jacrev_jacobians,
    non_normal_linear,
    random_rnn,
)

F64 = torch.float64
ACTIVATIONS = ["tanh", "sigmoid", "relu", "softsign", "silu", "gelu", "sin", "elu"]


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_float64_norms_equal_jacrev(activation):
    rnn = random_rnn(7, activation=activation, delta=1.3, seed=1)
    x = torch.randn(3, 12, 3, generator=torch.Generator().manual_seed(2), dtype=F64)
    reference = jacrev_jacobians(rnn, x)
    trace = rnnstab.jacobian_norms(rnn, x)
    ref_spec = torch.linalg.matrix_norm(reference, ord=2)
    ref_fro = torch.linalg.matrix_norm(reference)
    # The bar: relative error ≤ 1e-9 in float64 (the default rtol is 1e-10 on the Ritz estimates).
    assert torch.allclose(trace.log_spectral.exp(), ref_spec, rtol=1e-9, atol=0)
    assert torch.allclose(trace.log_frobenius.exp(), ref_fro, rtol=1e-9, atol=0)


@pytest.mark.parametrize("activation", ["tanh", "relu", "gelu"])
def test_float32_agrees_with_float64_reference(activation):
    rnn = random_rnn(16, activation=activation, delta=1.0, seed=3)
    x = torch.randn(4, 60, 3, generator=torch.Generator().manual_seed(4), dtype=F64)
    reference = explicit_jacobians(rnn, x)
    trace = rnnstab.jacobian_norms(rnn, x, dtype=torch.float32)
    expected = torch.log(torch.linalg.matrix_norm(reference, ord=2))
    # float32: each step's product carries ~√n·ε ≈ 5e-7 relative error and the trajectory itself (hence D_t)
    # is computed in float32; over 60 steps that accumulates to ~1e-4 in log-norm, and the float32 power
    # iteration stops at rtol 1e-6. Allow 1e-3 absolute in log space (0.1 % in the norm).
    assert (trace.log_spectral - expected).abs().max() < 1e-3
    expected_fro = torch.log(torch.linalg.matrix_norm(reference))
    assert (trace.log_frobenius - expected_fro).abs().max() < 1e-3


@pytest.mark.parametrize("batched", [False, True])
def test_spectral_norm_equals_explicit_product_at_every_step(batched):
    rnn = random_rnn(48, delta=1.1, seed=5, batch_networks=5 if batched else None)
    x = torch.randn(5, 80, 3, generator=torch.Generator().manual_seed(6), dtype=F64)
    reference = torch.linalg.matrix_norm(explicit_jacobians(rnn, x), ord=2)
    trace = rnnstab.jacobian_norms(rnn, x, norms=("spectral",))
    assert trace.log_frobenius is None
    assert torch.allclose(trace.log_spectral, torch.log(reference), rtol=0, atol=1e-9)


def test_svd_method_equals_explicit_product():
    rnn = random_rnn(24, delta=1.2, seed=13)
    x = torch.randn(3, 40, 3, generator=torch.Generator().manual_seed(14), dtype=F64)
    reference = torch.log(torch.linalg.matrix_norm(explicit_jacobians(rnn, x), ord=2))
    trace = rnnstab.jacobian_norms(rnn, x, spectral_method="svd")
    assert torch.allclose(trace.log_spectral, reference, rtol=0, atol=1e-12)
    assert trace.spectral_iterations.sum() == 0


def test_singular_values_at_chosen_steps():
    rnn = random_rnn(10, delta=1.2, seed=7)
    x = torch.randn(2, 30, 3, generator=torch.Generator().manual_seed(8), dtype=F64)
    trace = rnnstab.jacobian_norms(rnn, x, singular_values_at=[1, 17, 30])
    reference = explicit_jacobians(rnn, x)
    assert trace.singular_value_steps == (1, 17, 30)
    for i, t in enumerate((1, 17, 30)):
        expected = torch.linalg.svdvals(reference[:, t - 1])
        got = trace.log_singular_values[:, i].exp()
        # Both sides are float64 products: each σ_i is known to ~n·ε·σ₁ (Weyl), not to ε·σ_i — at t = 30 the
        # smallest are ~e^-36·σ₁, below that resolution. Compare relative to σ₁ (scale-free) at 1e-12.
        top = expected[:, :1]
        assert torch.allclose(got / top, expected / top, rtol=0, atol=1e-12)
        assert torch.allclose(got[:, 0], expected[:, 0], rtol=1e-10, atol=0)


def test_orthogonal_identity_rnn_has_unit_norms():
    W = rnnstab.init_weights("orthogonal", 32, seed=1)
    rnn = rnnstab.VanillaRNN(W, activation="identity")
    trace = rnnstab.jacobian_norms(rnn, torch.zeros(2, 300, 0))
    # Every singular value of a product of orthogonal matrices is 1: log-norms are 0 up to rounding
    # (300 float64 products: ~300·√32·ε ≈ 4e-13), and ‖J_t‖_F = √n.
    assert trace.log_spectral.abs().max() < 1e-11
    assert torch.allclose(trace.log_frobenius, torch.full_like(trace.log_frobenius, 0.5 * math.log(32)), atol=1e-11)


def test_non_normal_linear_rate_tends_to_log_spectral_radius():
    W = non_normal_linear(12, radius=0.9, shear=3.0)
    norm = float(torch.linalg.matrix_norm(W, ord=2))
    assert math.log(norm) > 1.0  # ‖W‖₂ ≫ 1 > ρ(W): the δ^T bound says nothing, the product still vanishes
    rnn = rnnstab.VanillaRNN(W, activation="identity")
    trace = rnnstab.jacobian_norms(rnn, torch.zeros(1, 400, 0))
    rate = float(rnnstab.theory.late_rate(trace.log_spectral)[0])
    # Gelfand: (1/t) log‖W^t‖ → log ρ(W) = log 0.9; with distinct real eigenvalues the slope over t ∈ (200, 400]
    # converges geometrically (second eigenvalue 0.9·(1 − 1/22)), so 1e-3 is loose.
    assert abs(rate - math.log(0.9)) < 1e-3
    assert rate < math.log(norm) - 1.0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ten_thousand_steps_without_underflow(dtype):
    W = rnnstab.scale_to_threshold(rnnstab.init_weights("orthogonal", 16, seed=2), delta=0.5, gamma=1.0)
    rnn = rnnstab.VanillaRNN(W, torch.zeros(16, 1, dtype=F64), None, activation="tanh")
    # Zero input and h0 keep g_t = 0, so D_t = I and J_T = W^T exactly: ‖J_T‖₂ = 0.5^T, i.e. e^-6931 — far below
    # the smallest float64 (e^-745); the log-space product must still report T·log 0.5.
    trace = rnnstab.jacobian_norms(rnn, torch.zeros(1, 10_000, 1), dtype=dtype)
    expected = 10_000 * math.log(0.5)
    assert torch.isfinite(trace.log_spectral).all()
    # float32 rounds W's norm to ~6e-8 relative, compounding to 10⁴·6e-8 ≈ 6e-4, plus per-step rounding.
    tol = 1e-8 if dtype == F64 else 0.05
    assert abs(float(trace.log_spectral[0, -1]) - expected) < tol
    assert abs(float(trace.log_frobenius[0, -1]) - (expected + 0.5 * math.log(16))) < tol


def test_ten_thousand_contracting_steps_do_not_read_as_bound_violations():
    # The log scale is a sum of 10⁴ terms near log 0.5: summed naively its rounding reached 1e-9 (2070 steps read as
    # violations, "BUG"); compensated, the error stays at the size of the per-step rounding.
    W = rnnstab.scale_to_threshold(rnnstab.init_weights("orthogonal", 8, seed=0), delta=0.5, gamma=1.0)
    rnn = rnnstab.VanillaRNN(W, torch.zeros(8, 1, dtype=F64), None, activation="identity")
    trace = rnnstab.jacobian_norms(rnn, torch.zeros(1, 10_000, 1), singular_values_at=[10_000])
    assert rnnstab.bound_violations(trace, delta=0.5) == []
    exact = torch.arange(1, 10_001, dtype=F64) * math.log(0.5)
    assert float((trace.log_spectral[0] - exact).abs().max()) < 1e-11
    assert abs(float(trace.log_singular_values[0, 0, 0]) - float(exact[-1])) < 1e-11


def test_running_sum_matches_exact_prefix_sums():
    from rnnstab.jacobian import _running_sum

    terms = torch.randn(5000, 3, dtype=F64, generator=torch.Generator().manual_seed(0)) - 0.7
    terms[100:, 2] = -math.inf  # a product that died at step 101 stays dead
    sums = _running_sum(terms)
    for column in range(2):
        exact = [math.fsum(terms[: t + 1, column].tolist()) for t in range(0, 5000, 499)]
        got = sums[::499, column].tolist()
        assert max(abs(g - e) for g, e in zip(got, exact, strict=True)) <= 4 * 2.0**-52 * 3500
    assert torch.isneginf(sums[100:, 2]).all() and torch.isfinite(sums[:100, 2]).all()
    for steps in (1, 30, 64, 100, 4999):  # a shorter run's sums are a longer run's first ones, bit for bit
        assert torch.equal(_running_sum(terms[:steps]), sums[:steps])


def test_dead_relu_jacobian_is_minus_infinity():
    W = torch.eye(4, dtype=F64) * 0.5
    rnn = rnnstab.VanillaRNN(W, torch.ones(4, 1, dtype=F64), torch.full((4,), -10.0, dtype=F64), activation="relu")
    trace = rnnstab.jacobian_norms(rnn, torch.zeros(1, 5, 1), singular_values_at=[1, 5])
    assert torch.isneginf(trace.log_spectral).all()
    assert torch.isneginf(trace.log_frobenius).all()
    assert torch.isneginf(trace.log_singular_values).all()  # not −∞ − (−∞) = NaN
    assert rnnstab.bound_violations(trace, delta=0.5) == []


@pytest.mark.parametrize(
    "activation, bias, dtype",
    [("tanh", 10.0, torch.float32), ("sigmoid", 20.0, torch.float32), ("tanh", 25.0, F64), ("sigmoid", 40.0, F64)],
)
def test_saturated_units_are_not_dead_units(activation, bias, dtype):
    # W = ½I and a large bias hold every unit at h ≈ bias, where σ(h) rounds to its limit in dtype and σ' is tiny but
    # not 0: J_t = Π_s ½·σ'(h_s) I, so log‖J_t‖₂ is finite and computable in closed form (an exact 0 here would be a
    # dead Jacobian, -inf).
    n, steps = 3, 4
    rnn = rnnstab.VanillaRNN(0.5 * torch.eye(n, dtype=F64), None, torch.full((n,), bias, dtype=F64), activation)
    trace = rnnstab.jacobian_norms(rnn, torch.zeros(1, steps, 0), dtype=dtype)
    squash = math.tanh if activation == "tanh" else lambda h: 1.0 / (1.0 + math.exp(-h))
    g, total, expected = squash(0.0), 0.0, []
    for _ in range(steps):
        h = 0.5 * g + bias
        g = squash(h)
        slope = 1.0 / math.cosh(h) ** 2 if activation == "tanh" else squash(h) * squash(-h)
        total += math.log(0.5 * slope)
        expected.append(total)
    # h ≈ bias is computed in dtype, and σ' moves by about 2·|h|·ε relative with it.
    assert torch.allclose(trace.log_spectral[0], torch.tensor(expected, dtype=F64), rtol=0, atol=1e-4)


@pytest.mark.parametrize(
    "activation, c, dtype",
    [
        ("tanh", 30.0, torch.float32),  # σ' = e^-58.6: normal in float32, but a product entry's square is not
        ("tanh", 60.0, torch.float32),  # σ' = e^-118.6 underflows float32 itself
        ("sigmoid", 70.0, torch.float32),
        ("tanh", 200.0, F64),  # σ' = e^-398.6: squares underflow float64
        # σ' = e^-798.6 and e^-800: below float64's range too, taken from log σ' (they read as dead units, −∞)
        ("tanh", 400.0, F64),
        ("tanh", 400.0, torch.float32),
        ("sigmoid", 800.0, F64),
    ],
)
def test_deeply_saturated_units_keep_their_exact_log_norm(activation, c, dtype):
    # W = c·I and g_0 = σ(40) = σ's limit, exactly in both dtypes (σ(25) is not, for sigmoid in float64): every h_t = c,
    # so J_t = (c·σ'(c))^t I and log‖J_t‖₂ = t·(log c + log σ'(c)), log‖J_t‖_F = that + ½ log n, with log σ'(c)
    # from its closed form in logs.
    n, steps = 4, 300
    rnn = rnnstab.VanillaRNN(c * torch.eye(n, dtype=F64), activation=activation)
    trace = rnnstab.jacobian_norms(
        rnn, torch.zeros(2, steps, 0), h0=torch.full((n,), 40.0), dtype=dtype, singular_values_at=[1, steps]
    )
    if activation == "tanh":  # sech²(c) = 4e^{-2c}/(1 + e^{-2c})²
        log_slope = math.log(4.0) - 2 * c - 2 * math.log1p(math.exp(-2 * c))
    else:  # σ(c)σ(−c) = e^{-c}/(1 + e^{-c})²
        log_slope = -c - 2 * math.log1p(math.exp(-c))
    t = torch.arange(1, steps + 1, dtype=F64)
    expected = t * (math.log(c) + log_slope)
    # each step rounds σ' to dtype (ε relative); the float64 log scale rounds relative to its own size
    atol = 4 * torch.finfo(dtype).eps * steps + 4 * torch.finfo(F64).eps * float(expected.abs().max())
    torch.testing.assert_close(trace.log_spectral, expected.expand(2, -1), rtol=0, atol=atol)
    torch.testing.assert_close(trace.log_frobenius, expected.expand(2, -1) + 0.5 * math.log(n), rtol=0, atol=atol)
    singular = expected[[0, -1]][None, :, None].expand(2, 2, n)
    torch.testing.assert_close(trace.log_singular_values, singular, rtol=0, atol=atol)
    if math.exp(log_slope) > 0:  # δ = c·σ'(h) itself is a float64 number
        assert rnnstab.bound_violations(trace, delta=c * math.exp(log_slope)) == []


def test_progress_callback_counts_every_step():
    rnn = random_rnn(4)
    seen = []
    rnnstab.jacobian_norms(rnn, torch.zeros(1, 300, 3), progress=seen.append)
    assert sum(seen) == 300


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_saturated_steps_whose_derivatives_are_all_negative_keep_their_exact_log_norm(dtype):
    # gelu' < 0 left of −0.75: with W = ½I and biases −20 and −37 the two units sit at h ≈ b, with σ' ≈ −1e-86 and
    # −4e-297. Such a step is rescaled by a power of two; taken from the signed maximum (the σ' nearest 0, −4e-297)
    # instead of the largest magnitude, that power blew the other unit up past float32's range (seen: NaN norms, or
    # a LinAlgError from the tracker). J_t = Π_s ½·diag(σ'(h_s)), so ‖J_t‖₂ = Π_s ½·|σ'(h_s,0)| in closed form.
    bias = torch.tensor([-20.0, -37.0], dtype=F64)
    rnn = rnnstab.VanillaRNN(0.5 * torch.eye(2, dtype=F64), None, bias, "gelu")
    steps = 4
    trace = rnnstab.jacobian_norms(rnn, torch.zeros(1, steps, 0), dtype=dtype)
    g, total, expected = 0.0, 0.0, []
    for _ in range(steps):
        h = 0.5 * g + float(bias[0])
        g = h * 0.5 * math.erfc(-h / math.sqrt(2))
        slope = 0.5 * math.erfc(-h / math.sqrt(2)) + h * math.exp(-h * h / 2) / math.sqrt(2 * math.pi)
        total += math.log(0.5 * abs(slope))
        expected.append(total)
    # h ≈ −20 is computed in dtype: σ' moves by about h²·ε relative with it
    atol = 4 * 20**2 * torch.finfo(dtype).eps * steps
    torch.testing.assert_close(trace.log_spectral[0], torch.tensor(expected, dtype=F64), rtol=0, atol=atol)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 12),
    activation=st.sampled_from(rnnstab.activation_names()),
    delta=st.floats(0.01, 2.0),
    gamma=st.one_of(st.none(), st.floats(0.1, 3.0)),
    steps=st.integers(1, 40),
    seed=st.integers(0, 10_000),
    input_scale=st.floats(0.0, 5.0),
)
def test_bound_is_never_violated(n, activation, delta, gamma, steps, seed, input_scale):
    act = rnnstab.get_activation(activation, gamma=gamma)
    gen = torch.Generator().manual_seed(seed)
    W = rnnstab.scale_to_threshold(torch.randn(n, n, generator=gen, dtype=F64), delta=delta, gamma=act.gamma)
    rnn = rnnstab.VanillaRNN(W, torch.randn(n, 2, generator=gen, dtype=F64), None, activation=act)
    x = input_scale * torch.randn(2, steps, 2, generator=gen, dtype=F64)
    trace = rnnstab.jacobian_norms(rnn, x)
    assert rnnstab.bound_violations(trace, delta=delta) == []


def test_bound_violations_reports_a_wrong_delta():
    rnn = random_rnn(8, delta=1.5, seed=9, activation="identity")
    trace = rnnstab.jacobian_norms(rnn, torch.zeros(1, 10, 3))
    # The identity RNN's J_t = W^t: claiming δ = 1 when γ‖W‖₂ = 1.5 must be flagged at step 1 already.
    found = rnnstab.bound_violations(trace, delta=1.0)
    assert found and found[0].step == 1
    assert found[0].excess == pytest.approx(math.log(1.5), rel=1e-9)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"norms": ("nuclear",)}, "norms"),
        ({"norms": ()}, "norms"),
        ({"singular_values_at": [0]}, "singular_values_at"),
        ({"singular_values_at": [11]}, "singular_values_at"),
        ({"dtype": torch.float16}, "dtype"),
        ({"dtype": "half"}, "dtype"),
        ({"rtol": 0.0}, "rtol"),
        ({"spectral_method": "power"}, "spectral_method"),
        ({"max_iter": 0}, "max_iter"),
        ({"device": "tpu"}, "device"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, match):
    rnn = random_rnn(4)
    with pytest.raises(rnnstab.InvalidArgumentError, match=match):
        rnnstab.jacobian_norms(rnn, torch.zeros(1, 10, 3), **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        # tuple("spectral") was its letters, each reported as an unknown norm: ('s', 'p', 'e', ...)
        (
            {"norms": "spectral"},
            r"^norms must be a list of norm names, got str 'spectral' \(for one, pass \['spectral'\]\)",
        ),
        ({"norms": None}, r"^norms must be a list of norm names, got NoneType"),
        # found out only after the first chunk of work, as "'int' object is not callable"
        ({"progress": 3}, r"^progress must be a callable"),
        # a torch.device went to torch unchecked: AssertionError "Torch not compiled with CUDA", or a meta-tensor error
        ({"device": torch.device("meta")}, r"^device must be auto, cpu, cuda or cuda:N, got 'meta'"),
    ],
)
def test_bad_argument_types_name_themselves(kwargs, match):
    with pytest.raises(rnnstab.RnnstabError, match=match):
        rnnstab.jacobian_norms(random_rnn(4), torch.zeros(1, 3, 3), **kwargs)


def test_inputs_beyond_the_range_of_the_product_dtype_are_named_not_read_as_an_explosion():
    # float64 inputs cast to float32 became inf, reported as "the forward pass overflowed float32 at step t = 1 ...
    # use at most 0 steps"
    x = torch.zeros(1, 5, 3, dtype=torch.float64)
    x[0, 2, 1] = 1e300
    with pytest.raises(rnnstab.InvalidArgumentError, match=r"^x does not fit in float32"):
        rnnstab.jacobian_norms(random_rnn(4), x, dtype="float32")


def test_bad_inputs_name_themselves():
    rnn = random_rnn(4)
    with pytest.raises(rnnstab.ShapeError, match="T = 0"):
        rnnstab.jacobian_norms(rnn, torch.zeros(1, 0, 3))
    with pytest.raises(rnnstab.NonFiniteError, match="x holds"):
        rnnstab.jacobian_norms(rnn, torch.full((1, 5, 3), float("nan")))
    with pytest.raises(rnnstab.ShapeError, match="input size 3"):
        rnnstab.jacobian_norms(rnn, torch.zeros(1, 5, 2))


def test_float32_weights_at_the_threshold_are_not_flagged():
    # An orthogonal float32 W scaled to δ: rounding to float32 may put γ‖W‖₂ a few ulps above δ, which compounds
    # over t; the tolerance must cover that, while a 1e-3 excess per step (a real error) is still caught.
    W = rnnstab.scale_to_threshold(rnnstab.init_weights("orthogonal", 64, seed=5).float(), delta=0.9, gamma=1.0)
    trace = rnnstab.jacobian_norms(rnnstab.VanillaRNN(W, activation="identity"), torch.zeros(1, 500, 0))
    assert rnnstab.bound_violations(trace, delta=0.9) == []
    assert len(rnnstab.bound_violations(trace, delta=0.9 * math.exp(-1e-3))) == 500


@pytest.mark.parametrize("n", [1, 2, 30])
def test_rank_deficient_products_match_explicit(n):
    # Negative biases switch most relu units off: J_t has rank ≪ n, the Lanczos process meets an invariant subspace
    # (breakdown) and must neither overshoot ‖J_t‖₂ nor stall. n = 1 and 2 exercise a Krylov space that fills ℝⁿ.
    gen = torch.Generator().manual_seed(n)
    W = torch.randn(n, n, generator=gen, dtype=F64)
    U = torch.randn(n, 2, generator=gen, dtype=F64)
    b = torch.full((n,), -0.7, dtype=F64)
    rnn = rnnstab.VanillaRNN(W, U, b, activation="relu")
    x = torch.randn(3, 40, 2, generator=gen, dtype=F64)
    reference = torch.linalg.matrix_norm(explicit_jacobians(rnn, x), ord=2)
    trace = rnnstab.jacobian_norms(rnn, x)
    alive = reference > 0
    assert torch.equal(torch.isneginf(trace.log_spectral), ~alive)
    assert torch.allclose(trace.log_spectral[alive], torch.log(reference[alive]), rtol=0, atol=1e-9)
    assert trace.svd_fallbacks == 0


def test_a_shorter_run_repeats_a_longer_runs_first_steps():
    # The spectral tracker solves steps a window at a time (1, 1, 2, 4, then 8 steps); a run that ends inside a
    # window solves its last steps as a part-window, from the same warm start, so its Krylov runs are the same
    # block for block, and its numbers the same but for the last bit of the final vectorised log (torch's SIMD and
    # scalar-tail paths of log can differ by one ulp, and which elements take which depends on T).
    rnn = random_rnn(24, delta=1.2, seed=23, batch_networks=2)
    x = torch.randn(2, 29, 3, generator=torch.Generator().manual_seed(24), dtype=F64)
    longer = rnnstab.jacobian_norms(rnn, x)
    for steps in (1, 3, 6, 13, 21):
        shorter = rnnstab.jacobian_norms(rnn, x[:, :steps])
        assert shorter.log_spectral is not None and longer.log_spectral is not None
        torch.testing.assert_close(shorter.log_spectral, longer.log_spectral[:, :steps], rtol=0, atol=1e-14)
        assert torch.equal(shorter.spectral_iterations, longer.spectral_iterations[:steps])


@pytest.mark.parametrize("n", [20, 128])
def test_a_network_does_not_depend_on_its_batch_mates(n):
    # Convergence is decided per network, a network's start depends on its own step alone, and the window on n
    # alone, so a network stacked with others gives bit-identical numbers whichever others (sweeps rely on this
    # when --stack changes on --resume). n = 128 runs the tracker in windows of 8 steps. A batch of one is left out:
    # BLAS may round its forward step differently in the last bit (the README's known limits).
    rnn = random_rnn(n, delta=1.1, seed=21, batch_networks=4)
    x = torch.randn(4, 50, 3, generator=torch.Generator().manual_seed(22), dtype=F64)
    together = rnnstab.jacobian_norms(rnn, x)
    for i, j in ((0, 2), (3, 1)):
        pair = [i, j]
        mates = rnnstab.VanillaRNN(rnn.W[pair], rnn.U[pair], rnn.b[pair], rnn.activation)
        apart = rnnstab.jacobian_norms(mates, x[pair])
        assert_same_whatever_the_batch(apart.log_spectral[0], together.log_spectral[i])
        assert torch.equal(apart.log_frobenius[0], together.log_frobenius[i])


def test_float32_does_not_stop_on_a_plateau():
    # A case where the top two singular values of J_t change places early on: Lanczos warm-started from the old top
    # vector first finds the old value, and a loose stopping test (1e-5) once reported ‖J_15‖₂ 7 % too low in
    # float32. The default float32 tolerance must follow through to the true top value.
    n = 128
    gen = torch.Generator().manual_seed(n)
    W = rnnstab.scale_to_threshold(rnnstab.init_weights("gaussian", n, seed=n), delta=0.9, gamma=1.0)
    U = torch.randn(n, 4, generator=gen, dtype=F64) / 2
    b = 0.1 * torch.randn(n, generator=gen, dtype=F64)
    x = torch.randn(16, 30, 4, generator=gen, dtype=F64)
    rnn = rnnstab.VanillaRNN(W, U, b, activation="tanh")
    expected = torch.log(torch.linalg.matrix_norm(explicit_jacobians(rnn, x), ord=2))
    trace = rnnstab.jacobian_norms(rnn, x, dtype=torch.float32)
    # float32 rounding over 30 steps: ~30·√128·6e-8 ≈ 2e-5 in log, plus rtol; a plateau error is ≥ 1e-3.
    assert (trace.log_spectral - expected).abs().max() < 1e-4


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_top_two_singular_values_changing_places_are_followed(dtype):
    # The identity activation makes J_t = W^t: a Gaussian W's top two singular values of W^t change places at
    # t = 7 here, and a single warm vector (the old top one) converged to the old value, now the second: 6 % low in
    # float32. The reference is an SVD of the same product, so the dtype's rounding of the product does not enter.
    W = rnnstab.scale_to_threshold(rnnstab.init_weights("gaussian", 32, seed=5), delta=1.8427, gamma=1.0)
    rnn = rnnstab.VanillaRNN(W, activation="identity")
    x = torch.zeros(1, 60, 0)
    got = rnnstab.jacobian_norms(rnn, x, dtype=dtype).log_spectral
    expected = rnnstab.jacobian_norms(rnn, x, dtype=dtype, spectral_method="svd").log_spectral
    assert (got - expected).abs().max() < (1e-5 if dtype == torch.float32 else 1e-10)


@pytest.mark.parametrize("seed", range(12))
def test_a_cluster_of_close_singular_values_is_resolved_to_rtol(seed):
    # J_1 = D_1 W with W orthogonal has singular values ‖W‖₂·σ'(b_i), a cluster within 0.25 % of the top for small
    # biases b. Through such a cluster the Ritz value crawls up by less than rtol a step while still below the top:
    # a test on the last growth alone stopped up to 2.2e-10 low in float64 (rtol 1e-10) and 6e-5 in float32 (rtol
    # 1e-6) on these seeds. The reference is an SVD of the same product in the same dtype.
    n = 64
    W = rnnstab.scale_to_threshold(rnnstab.init_weights("orthogonal", n, seed=seed), delta=0.9, gamma=1.0)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    rnn = rnnstab.VanillaRNN(W, b=torch.linspace(0, 0.05, n, dtype=F64)[order], activation="tanh")
    x = torch.zeros(1, 3, 0)
    # Allowed: rtol in float64 (the SVD is good to ~1e-14 there); in float32 the SVD's own n·ε ≈ 4e-6 is added.
    for dtype, allowed in ((F64, 1e-10), (torch.float32, 1e-5)):
        got = rnnstab.jacobian_norms(rnn, x, dtype=dtype).log_spectral
        expected = rnnstab.jacobian_norms(rnn, x, dtype=dtype, spectral_method="svd").log_spectral
        assert (got - expected).abs().max() < allowed


def test_a_top_value_pinned_by_an_exact_singular_vector_is_not_taken_for_converged(monkeypatch):
    # W block-diagonal (2 × 2 blocks) keeps every J_t block-diagonal, so the previous step's Ritz vectors can be exact
    # singular vectors of J_t: here one pinned the top Ritz value at σ₂ (zero growth, read as converged) while dead
    # relu units left the basis growing through the generic row alone: 8 % low at t = 2. Such a W is traced by SVD
    # (see below); block Lanczos, with its usual stopping test, is forced here, to test its second-Ritz-value check.
    monkeypatch.setattr(rnnstab.jacobian, "coupling", _coupled)
    n, gen = 32, torch.Generator().manual_seed(1)
    W = torch.block_diag(*[torch.randn(2, 2, generator=gen, dtype=F64) for _ in range(n // 2)])
    W = rnnstab.scale_to_threshold(W, delta=1.0, gamma=1.0)
    for scale in (0.3, 1.0, 3.0):  # the third draw of (U, x, b) from this generator
        U = torch.randn(n, 4, generator=gen, dtype=F64) * scale
        x = torch.randn(4, 60, 4, generator=gen, dtype=F64)
        b = 0.1 * torch.randn(n, generator=gen, dtype=F64)
    rnn = rnnstab.VanillaRNN(W, U, b, activation="relu")
    trace = rnnstab.jacobian_norms(rnn, x[2:3, :4], singular_values_at=range(1, 5))
    assert trace.log_singular_values is not None and trace.log_spectral is not None
    gap = trace.log_spectral[0] - trace.log_singular_values[0, :, 0]
    assert gap.max() <= 1e-13 and gap.min() >= -1e-10


@pytest.mark.parametrize("gamma", [1e-307, 1e-300, 1e-250, 1e300])
def test_an_extreme_gamma_keeps_the_bound_to_rounding(gamma):
    # γ = 1e-300 makes ‖W‖₂ = δ/γ ≈ 1e300, carried as W/2^997, and σ' ≈ 1e-300, carried as σ'/2^-997: each step's
    # log scale once added 997·log 2 and −997·log 2 separately, 10⁻¹³ of rounding at t = 1, which the bound's
    # tolerance (4·10⁻¹⁴ there) read as a violation. γ = 1e300 made σ' ≈ 1e300, whose squares overflowed the norms.
    # Inputs of 10⁻⁹/γ keep every σ' within 10⁻¹⁸ of γ, so that the bound is tight.
    activation = rnnstab.get_activation("tanh", gamma=gamma)
    W0 = torch.randn(8, 8, generator=torch.Generator().manual_seed(0), dtype=F64)
    W = rnnstab.scale_to_threshold(W0, delta=0.95, gamma=gamma)
    rnn = rnnstab.VanillaRNN(W, torch.eye(8, dtype=F64), None, activation=activation)
    x = torch.randn(2, 10, 8, generator=torch.Generator().manual_seed(1), dtype=F64) * (1e-9 / gamma)
    trace = rnnstab.jacobian_norms(rnn, x)
    assert rnnstab.bound_violations(trace, delta=0.95) == []
    assert trace.log_spectral is not None and trace.log_spectral[:, 0].max() > math.log(0.95) - 1e-9  # tight


def _coupled(W: torch.Tensor) -> Coupling:
    """Every network of W taken as one dense group: block Lanczos with its usual stopping test, forced."""
    networks = 1 if W.dim() == 2 else W.shape[0]
    none = torch.zeros(networks, dtype=torch.bool)
    return Coupling(split=none, sparse=none, diagonal=none)


def _rotation_blocks(n: int, gen: torch.Generator) -> torch.Tensor:
    """A block-diagonal W of n/2 rotations by random angles, each scaled by 1.1."""
    blocks = []
    for _ in range(n // 2):
        angle = float(torch.rand(1, generator=gen, dtype=F64)) * 6.28
        c, s = math.cos(angle), math.sin(angle)
        blocks.append(1.1 * torch.tensor([[c, -s], [s, c]], dtype=F64))
    return torch.block_diag(*blocks)


def test_a_last_part_block_that_adds_nothing_is_not_taken_for_converged(monkeypatch):
    # n = 16: the Krylov basis reaches ℝ¹⁶ through a last part-block of one row, the continuation of a warm row's
    # chain that had run out in its 2×2 block (a zero row). That block added nothing, which read as converged, and
    # the full-size basis as exact, though it spanned 9 dimensions: 2.2e-3 nats low at t = 2. Block Lanczos is forced
    # (a block-diagonal W is otherwise traced by SVD).
    monkeypatch.setattr(rnnstab.jacobian, "coupling", _coupled)
    gen = torch.Generator().manual_seed(9)
    W = _rotation_blocks(16, gen)
    rnn = rnnstab.VanillaRNN(W, torch.eye(16, dtype=F64), None, activation="tanh")
    x = torch.randn(4, 60, 16, generator=gen, dtype=F64)
    trace = rnnstab.jacobian_norms(rnn, x, norms=["spectral"])
    assert trace.spectral_method == "lanczos"
    exact = rnnstab.jacobian_norms(rnn, x, norms=["spectral"], spectral_method="svd").log_spectral
    assert (exact - trace.log_spectral).abs().max() < 1e-10


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_a_w_that_splits_into_sub_networks_is_traced_exactly(activation):
    # 2×2 rotation blocks, relu, n = 64: the top two singular values of J_6 (1.3778, 1.3729) lie in two blocks; both
    # warm rows were exact singular vectors of the lower one and the generic row's image was small, so nothing grew
    # and block Lanczos stopped on the lower value, 3.5e-3 nats low. Such a W is traced by SVD.
    gen = torch.Generator().manual_seed(11)
    W = _rotation_blocks(64, gen)
    rnn = rnnstab.VanillaRNN(W, torch.eye(64, dtype=F64), None, activation=activation)
    x = torch.randn(4, 60, 64, generator=gen, dtype=F64)
    trace = rnnstab.jacobian_norms(rnn, x, norms=["spectral"], singular_values_at=[6])
    assert trace.spectral_method == "svd" and trace.log_singular_values is not None
    assert trace.log_spectral is not None
    assert (trace.log_spectral[:, 5] - trace.log_singular_values[:, 0, 0]).abs().max() < 1e-12


def test_only_a_w_that_splits_leaves_block_lanczos():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 8, generator=gen, dtype=F64)
    dense = torch.randn(8, 8, generator=gen, dtype=F64) / 4
    one_group = dense * (torch.rand(8, 8, generator=gen, dtype=F64) < 0.3)  # sparse, every unit linked
    one_group[torch.arange(8), (torch.arange(8) + 1) % 8] = 0.3  # a ring links them all
    isolated = one_group.clone()
    isolated[0], isolated[:, 0] = 0.0, 0.0
    isolated[0, 0] = 0.5  # unit 0 alone, the rest one group: two groups
    cases = [(dense, "lanczos"), (one_group, "lanczos"), (torch.diag(torch.rand(8, dtype=F64)), "lanczos")]
    cases += [(isolated, "svd"), (torch.stack([isolated, isolated]), "svd"), (torch.stack([dense, dense]), "lanczos")]
    cases += [(torch.stack([dense, isolated]), "mixed")]
    for W, method in cases:
        rnn = rnnstab.VanillaRNN(W, torch.eye(8, dtype=F64), None, activation="tanh")
        assert rnnstab.jacobian_norms(rnn, x).spectral_method == method


@pytest.mark.parametrize(
    ("weights", "activation", "seed"), [("rotations", "relu", 4), ("rotations", "tanh", 4), ("identity", "relu", 1)]
)
def test_groups_linked_only_by_weak_weights_are_traced_exactly(weights, activation, seed):
    # 2×2 rotation blocks linked by noise of std 1e-6 (relu) or 1e-10 (tanh), or W = I + 1e-6·noise: every J_t nearly
    # splits, and block Lanczos read 2.0e-6, 1.9e-4 and 3.8e-7 nats below ‖J_t‖₂ in float64 (T = 20). No weight
    # above 1 % of the largest links the groups: traced by SVD.
    gen, n = torch.Generator().manual_seed(seed), 64
    if weights == "rotations":
        noise = 1e-6 if activation == "relu" else 1e-10
        W = _rotation_blocks(n, gen) + noise * torch.randn(n, n, generator=gen, dtype=F64)
        x = torch.randn(4, 60, n, generator=gen, dtype=F64)[:, :20]
    else:
        W = torch.eye(n, dtype=F64) + 1e-6 * torch.randn(n, n, generator=gen, dtype=F64)
        x = 0.5 * torch.randn(4, 60, n, generator=gen, dtype=F64)[:, :20]
    rnn = rnnstab.VanillaRNN(W, torch.eye(n, dtype=F64), None, activation=activation)
    trace = rnnstab.jacobian_norms(rnn, x, norms=["spectral"])
    reference = torch.log(torch.linalg.matrix_norm(explicit_jacobians(rnn, x), ord=2))
    assert trace.spectral_method == "svd"
    assert (trace.log_spectral - reference).abs().max() < 1e-12


def test_groups_linked_by_weights_of_a_percent_keep_block_lanczos():
    gen, n = torch.Generator().manual_seed(0), 64
    W = _rotation_blocks(n, gen) + 0.03 * torch.randn(n, n, generator=gen, dtype=F64)
    rnn = rnnstab.VanillaRNN(W, torch.eye(n, dtype=F64), None, activation="relu")
    x = torch.randn(4, 20, n, generator=gen, dtype=F64)
    trace = rnnstab.jacobian_norms(rnn, x, norms=["spectral"])
    reference = torch.log(torch.linalg.matrix_norm(explicit_jacobians(rnn, x), ord=2))
    assert trace.spectral_method == "lanczos"
    assert (trace.log_spectral - reference).abs().max() < 1e-10


def _linked_orthogonal_blocks(n: int, size: int, gen: torch.Generator) -> torch.Tensor:
    """Orthogonal size×size blocks on the diagonal, block b linked to block b + 1 (cyclically) by one weight."""
    W = torch.block_diag(
        *[torch.linalg.qr(torch.randn(size, size, generator=gen, dtype=F64))[0] for _ in range(n // size)]
    )
    for b in range(n // size):
        i = size * b + int(torch.randint(size, (1,), generator=gen))
        j = (size * (b + 1) + int(torch.randint(size, (1,), generator=gen))) % n
        W[i, j] = 0.2 * torch.randn(1, generator=gen, dtype=F64)
    return W


@pytest.mark.parametrize(
    ("size", "delta", "seed", "steps"), [(4, 0.9, 10, 4), (2, 1.5, 11, 24), (8, 1.5, 13, 4), (4, 0.9, 15, 4)]
)
def test_sparse_links_that_dead_units_cut_are_traced_exactly(size, delta, seed, steps):
    # Orthogonal blocks joined by one link each, relu: where a link's unit is off, J_t falls apart into blocks whose
    # top singular values tie or nearly tie, and block Lanczos stopped on a lower one, 2.7e-2, 5.0e-2, 1.2e-3 and
    # 1.9e-3 nats below ‖J_t‖₂ (float64, at t = 2, 24, 2, 3). Such a sparse W gets the stricter stopping test.
    gen, n = torch.Generator().manual_seed(seed), 64
    W = rnnstab.scale_to_threshold(_linked_orthogonal_blocks(n, size, gen), delta=delta, gamma=1.0)
    rnn = rnnstab.VanillaRNN(W, torch.eye(n, dtype=F64), None, activation="relu")
    x = torch.randn(8, 60, n, generator=gen, dtype=F64)[:, :steps]
    trace = rnnstab.jacobian_norms(rnn, x, norms=["spectral"])
    reference = torch.log(torch.linalg.matrix_norm(explicit_jacobians(rnn, x), ord=2))
    alive = reference > -torch.inf
    assert trace.spectral_method == "lanczos"
    assert (trace.log_spectral - reference)[alive].abs().max() < 1e-10


def test_groups_linked_by_single_weights_just_above_a_percent_are_traced_exactly():
    # 2×2 rotation blocks (entries up to 1.1), block b linked to b + 1 by one weight of ±0.0121: linked, but barely,
    # and relu cuts the links where a unit is off. With the lower Ritz values settled to 1e-5 instead of rtol/10,
    # block Lanczos read 1.7e-4 nats low at t = 3 (float64).
    gen, n = torch.Generator().manual_seed(2), 64
    W = _rotation_blocks(n, gen)
    for b in range(n // 2):
        i = 2 * b + int(torch.randint(2, (1,), generator=gen))
        j = (2 * b + 2 + int(torch.randint(2, (1,), generator=gen))) % n
        W[i, j] = 0.0121 * (1 if torch.rand(1, generator=gen) < 0.5 else -1)
    rnn = rnnstab.VanillaRNN(W, torch.eye(n, dtype=F64), None, activation="relu")
    x = torch.randn(4, 60, n, generator=gen, dtype=F64)[:, :4]
    trace = rnnstab.jacobian_norms(rnn, x, norms=["spectral"])
    reference = torch.log(torch.linalg.matrix_norm(explicit_jacobians(rnn, x), ord=2))
    alive = reference > -torch.inf
    assert trace.spectral_method == "lanczos"
    assert (trace.log_spectral - reference)[alive].abs().max() < 1e-10


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_a_chain_that_dead_units_cut_is_traced_to_rtol(dtype):
    # W = 0.2·I + 10·shift (a Jordan-like chain), relu: dead units cut it into segments whose top singular values
    # nearly tie (three within 2e-4 at t = 5). With the lower Ritz values settled to 10·rtol instead of rtol/10, block
    # Lanczos read 1.05e-4 nats low there, in both dtypes.
    n = 64
    W = 0.2 * torch.eye(n, dtype=F64) + 10 * torch.diag(torch.ones(n - 1, dtype=F64), 1)
    W = rnnstab.scale_to_threshold(W, delta=1.0, gamma=1.0)
    x = torch.randn(6, 60, n, dtype=F64, generator=torch.Generator().manual_seed(2))[:2, :8]
    rnn = rnnstab.VanillaRNN(W, torch.eye(n, dtype=F64), None, activation="relu")
    trace = rnnstab.jacobian_norms(rnn, x, norms=["spectral"], dtype=dtype)
    exact = rnnstab.jacobian_norms(rnn, x, norms=["spectral"], dtype=dtype, spectral_method="svd").log_spectral
    assert trace.spectral_method == "lanczos"
    assert (exact - trace.log_spectral).max() < (1e-10 if dtype == torch.float64 else 1e-5)


@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_a_dense_cluster_at_the_first_step_is_resolved(dtype, tolerance):
    # W = Q·diag(1, …, 1, 0.999, …, 0.999), leaky relu, n = 64: J_1 has a cluster of top singular values 1e-3 wide
    # and no warm start. The lower Ritz values crawled through it by less than 10⁻³ of the top a block, which read as
    # settled: 1.5e-8 low in float64 and 2.2e-4 in float32 at t = 1.
    n, gen = 64, torch.Generator().manual_seed(0)
    Q, R = torch.linalg.qr(torch.randn(n, n, dtype=F64, generator=gen))
    W = Q * torch.sign(torch.diagonal(R)) @ torch.diag(torch.tensor([1.0] * (n // 2) + [0.999] * (n // 2), dtype=F64))
    W = rnnstab.scale_to_threshold(W, delta=1.0, gamma=1.0)
    x = torch.randn(6, 5, n, dtype=F64, generator=gen)
    rnn = rnnstab.VanillaRNN(W, torch.eye(n, dtype=F64), None, activation="leaky_relu")
    trace = rnnstab.jacobian_norms(rnn, x, norms=["spectral"], dtype=dtype)
    exact = rnnstab.jacobian_norms(rnn, x, norms=["spectral"], dtype=dtype, spectral_method="svd").log_spectral
    assert trace.spectral_method == "lanczos"
    assert (exact - trace.log_spectral).max() < tolerance


def test_float32_estimates_stay_within_rtol_when_the_krylov_space_runs_out():
    # A shift W, tanh, δ = 3: J_43 has rank 2 and norm e^-146, and P shrinks by 1e-18 in that one step. With two
    # Gram–Schmidt passes a basis row normalised from a remainder near the rounding floor kept its overlap, and the
    # float32 estimate came out 1.2e-4 above an SVD of the very product formed; with three it was 2.7e-5 below, and
    # 5.1e-4 above with a block of four rows: the float32 norm of a row whose squares are subnormal is off by 1e-3.
    n = 45
    W = rnnstab.scale_to_threshold(torch.diag(torch.ones(n - 1, dtype=F64), 1), delta=3.0, gamma=1.0)
    x = torch.randn(6, 60, n, dtype=F64, generator=torch.Generator().manual_seed(1))[5:6]
    rnn = rnnstab.VanillaRNN(W, torch.eye(n, dtype=F64), None, activation="tanh")
    kwargs = {"norms": ["spectral"], "dtype": torch.float32}
    trace = rnnstab.jacobian_norms(rnn, x, **kwargs)
    exact = rnnstab.jacobian_norms(rnn, x, spectral_method="svd", **kwargs).log_spectral
    alive = torch.isfinite(exact)  # from t = 45 on, J_t = 0: a shift of n units dies out
    assert torch.equal(alive, torch.isfinite(trace.log_spectral)) and alive[0, :44].all()
    assert (trace.log_spectral - exact)[alive].abs().max() < 1e-5


def _leaky_chain(n: int, diagonal: float, link: float, delta: float) -> rnnstab.VanillaRNN:
    W = diagonal * torch.eye(n, dtype=F64) + link * torch.diag(torch.ones(n - 1, dtype=F64), 1)
    W = rnnstab.scale_to_threshold(W, delta=delta, gamma=1.0)
    return rnnstab.VanillaRNN(W, torch.eye(n, dtype=F64), None, activation="leaky_relu")


@pytest.mark.parametrize(
    ("diagonal", "link", "seed"),
    [
        # t = 7: the warm start held the second singular vector, and the one generic row had a component of 3e-5
        # along the top one, which units at slope 0.01 keep apart from the rest: 1.1e-3 nats low (the second value)
        (0.2, 10.0, 0),
        # t = 1: four runs of four live units make four top singular values within 1e-6, one more than a block of
        # three start rows can tell apart: 1.8e-8 low
        (1.0, 1.0, 1),
    ],
)
def test_a_leaky_chain_is_traced_to_rtol(diagonal, link, seed):
    rnn = _leaky_chain(64, diagonal, link, 1.0)
    x = torch.randn(6, 40, 64, dtype=F64, generator=torch.Generator().manual_seed(seed))[:2, :10]
    trace = rnnstab.jacobian_norms(rnn, x, norms=["spectral"])
    exact = rnnstab.jacobian_norms(rnn, x, norms=["spectral"], spectral_method="svd").log_spectral
    assert trace.spectral_method == "lanczos"
    assert (exact - trace.log_spectral).abs().max() < 1e-10


def test_a_float32_fallback_to_svd_does_not_fail_to_converge():
    # A leaky chain, n = 100, float32: a step that runs out of blocks ends in an SVD, which LAPACK's float32 SVD with
    # singular vectors failed to converge on ("ill-conditioned or too many repeated singular values")
    rnn = _leaky_chain(100, 0.2, 10.0, 2.0)
    x = torch.randn(6, 40, 100, dtype=F64, generator=torch.Generator().manual_seed(4))
    kwargs = {"norms": ["spectral"], "dtype": torch.float32, "on_overflow": "truncate"}
    trace = rnnstab.jacobian_norms(rnn, x, **kwargs)
    exact = rnnstab.jacobian_norms(rnn, x, spectral_method="svd", **kwargs).log_spectral
    assert trace.svd_fallbacks > 0
    assert torch.equal(torch.isfinite(exact), torch.isfinite(trace.log_spectral))
    assert (exact - trace.log_spectral).nan_to_num(0.0, 0.0, 0.0).abs().max() < 1e-5


def test_a_network_does_not_depend_on_batch_mates_that_split_or_are_sparse():
    # Each network is traced by its own method and test, whatever shares its batch: a sweep stacks networks of
    # every --init together.
    gen, n = torch.Generator().manual_seed(3), 32
    dense = [torch.randn(n, n, generator=gen, dtype=F64) / 6 for _ in range(2)]
    split = torch.block_diag(*[torch.randn(4, 4, generator=gen, dtype=F64) / 2 for _ in range(n // 4)])
    sparse = _linked_orthogonal_blocks(n, 4, gen)
    W = torch.stack([*dense, split, sparse])
    U = torch.randn(4, n, 3, generator=gen, dtype=F64)
    x = torch.randn(4, 30, 3, generator=gen, dtype=F64)
    together = rnnstab.jacobian_norms(rnnstab.VanillaRNN(W, U, None, "relu"), x)
    assert together.spectral_method == "mixed"
    for pair, method in (([0, 1], "lanczos"), ([2, 2], "svd"), ([3, 0], "lanczos"), ([2, 1], "mixed")):
        apart = rnnstab.jacobian_norms(rnnstab.VanillaRNN(W[pair], U[pair], None, "relu"), x[pair])
        assert apart.spectral_method == method
        for row, network in enumerate(pair):
            assert_same_whatever_the_batch(apart.log_spectral[row], together.log_spectral[network])


@pytest.mark.parametrize(("n", "seed", "scale"), [(64, 5, 0.5), (64, 1, 0.3), (64, 2, 0.3), (128, 3, 0.3)])
def test_diagonal_products_are_not_stuck_in_an_invariant_subspace(n, seed, scale):
    # W = I makes every J_t = D_t ⋯ D_1 diagonal, so ‖J_t‖₂ = max_i Π_s σ'(h_s,i) exactly. A warm start equal to a
    # coordinate vector spans an invariant subspace: Lanczos from it stops at once on a non-top value (once 2.7
    # nats too low at t = 2). With small inputs the entries cluster near 1, and when the top unit changes the
    # warm start's component along the new one can be too small for the stopping test to notice (once 1–2 % too
    # low at the switch). Such rows are caught by the column-norm lower bound and run again.
    gen = torch.Generator().manual_seed(seed)
    U = torch.randn(n, 4, generator=gen, dtype=F64) * scale
    x = torch.randn(4, 100, 4, generator=gen, dtype=F64)
    b = 0.1 * torch.randn(n, generator=gen, dtype=F64)
    rnn = rnnstab.VanillaRNN(torch.eye(n, dtype=F64), U, b, activation="tanh")
    derivative = rnn.activation.derivative(rnn.run_preactivation(x))
    expected = torch.log(derivative).cumsum(dim=1).max(dim=-1).values
    got = rnnstab.jacobian_norms(rnn, x).log_spectral
    assert (got - expected).max() <= 1e-12  # a Ritz value never exceeds the norm
    assert (expected - got).max() < 1e-9


@pytest.mark.parametrize(("n", "seed"), [(16, 3), (64, 2)])
def test_float32_saturated_products_stay_below_their_norm(n, seed):
    # Saturated tanh units make σ' span orders of magnitude, so a warm start's image carried through D_t W from
    # step to step kept its rounding error while it shrank itself: a float32 Ritz value once came out 3 % above
    # ‖J_t‖₂. The reference is the SVD of the very product the engine formed (singular_values_at), so float32
    # rounding of the trajectory does not enter; what is left is the SVD's own n·ε·σ₁.
    gen = torch.Generator().manual_seed(seed)
    U = torch.randn(n, 4, generator=gen, dtype=F64) * 3.0
    x = torch.randn(4, 100, 4, generator=gen, dtype=F64)
    b = 0.1 * torch.randn(n, generator=gen, dtype=F64)
    rnn = rnnstab.VanillaRNN(torch.eye(n, dtype=F64), U, b, activation="tanh")
    trace = rnnstab.jacobian_norms(rnn, x, dtype=torch.float32, singular_values_at=range(1, 101))
    assert trace.log_singular_values is not None and trace.log_spectral is not None
    gap = trace.log_spectral - trace.log_singular_values[..., 0]
    resolution = 4 * n * torch.finfo(torch.float32).eps
    assert gap.max() <= resolution  # never above the norm
    assert gap.min() >= -1e-4  # nor stuck on a plateau


@pytest.mark.parametrize("scheme", rnnstab.weights.scheme_names())
def test_every_scheme_matches_an_svd_of_the_same_product_at_every_step(scheme):
    # Structured W (identity, orthogonal, sparse, spectral-norm-scaled, …) is where a warm-started Krylov method
    # can stall; the reference is an exact SVD of the very product the engine formed, so only the tracker is tested.
    n = 32
    for activation, scale in (("tanh", 0.3), ("relu", 1.0), ("sigmoid", 3.0)):
        gen = torch.Generator().manual_seed(7)
        W = rnnstab.init_weights(scheme, n, seed=7, activation=activation)
        U = torch.randn(n, 4, generator=gen, dtype=F64) * scale
        x = torch.randn(3, 40, 4, generator=gen, dtype=F64)
        rnn = rnnstab.VanillaRNN(W, U, 0.1 * torch.randn(n, generator=gen, dtype=F64), activation=activation)
        trace = rnnstab.jacobian_norms(rnn, x, singular_values_at=range(1, 41))
        assert trace.log_singular_values is not None and trace.log_spectral is not None
        alive = torch.isfinite(trace.log_singular_values[..., 0])
        assert torch.equal(torch.isfinite(trace.log_spectral), alive)  # a dead product is -inf in both
        gap = (trace.log_spectral - trace.log_singular_values[..., 0])[alive]
        assert gap.max() <= 1e-13 and gap.min() >= -1e-9, (activation, gap.min().item(), gap.max().item())


@pytest.mark.parametrize(
    ("dtype", "delta"),
    [
        (torch.float64, 1e-200),
        (torch.float64, 1e200),
        (torch.float32, 1e-30),
        (torch.float32, 1e30),
    ],
)
def test_extreme_weight_scales_stay_exact(dtype, delta):
    # J_t = W^t with W = δ·Q orthogonal: log‖J_t‖₂ = log‖J_t‖_F − ½ log n = t·log δ. Squared in the norms, W's
    # entries would overflow or underflow the dtype without the power-of-two rescaling.
    n, steps = 8, 6
    W = rnnstab.scale_to_threshold(rnnstab.init_weights("orthogonal", n, seed=3), delta=delta, gamma=1.0)
    rnn = rnnstab.VanillaRNN(W.to(dtype), activation="identity")
    trace = rnnstab.jacobian_norms(rnn, torch.zeros(1, steps, 0, dtype=dtype), singular_values_at=[1, steps])
    exact = torch.arange(1, steps + 1, dtype=torch.float64) * math.log(delta)
    rel = 1e-12 if dtype == torch.float64 else 1e-6
    torch.testing.assert_close(trace.log_spectral[0], exact, rtol=rel, atol=0)
    torch.testing.assert_close(trace.log_frobenius[0], exact + 0.5 * math.log(n), rtol=rel, atol=0)
    torch.testing.assert_close(trace.log_singular_values[0], exact[[0, -1], None].expand(2, n), rtol=rel, atol=0)


def test_float32_weights_of_scale_2_to_the_62_are_rescaled_too():
    # Entries of 2^62, 64 to a column: their squares sum past float32's 2^128 (but not float64's); the product
    # W^t (zero state, σ'(0) = 1) must come out as float64 computes it.
    W = rnnstab.init_weights("gaussian", 64, seed=2)
    W = W * (2.0**62 / float(W.abs().max()))
    x = torch.zeros(1, 5, 0, dtype=F64)
    reference = rnnstab.jacobian_norms(rnnstab.VanillaRNN(W, activation="tanh"), x)
    single = rnnstab.jacobian_norms(rnnstab.VanillaRNN(W.float(), activation="tanh"), x.float(), dtype=torch.float32)
    for norm in ("log_spectral", "log_frobenius"):
        torch.testing.assert_close(getattr(single, norm), getattr(reference, norm), rtol=1e-6, atol=0)


def test_an_overflowing_forward_pass_is_refused_not_read_as_dead_units():
    # relu'(NaN) = 0: an overflowed state used to pass for a dead unit, and an exploding network for a vanishing one.
    W = rnnstab.scale_to_threshold(
        torch.randn(16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0)), delta=40.0, gamma=1.0
    )
    rnn = rnnstab.VanillaRNN(W, torch.ones(16, 1, dtype=torch.float64), activation="relu")
    x = torch.ones(2, 400, 1, dtype=torch.float64)
    finite = torch.isfinite(rnn.run_preactivation(x)).all(dim=-1)  # (batch, T)
    first_bad = int((~finite).to(torch.int8).argmax(dim=1).min()) + 1
    assert 1 < first_bad < 400
    for compute in (rnnstab.jacobian_norms, rnnstab.lyapunov_spectrum):
        with pytest.raises(rnnstab.StateOverflowError, match=f"overflowed float64 at step t = {first_bad} ") as caught:
            compute(rnn, x)
        assert caught.value.step == first_bad
    trace = rnnstab.jacobian_norms(rnn, x[:, : first_bad - 1])
    assert bool(torch.isfinite(trace.log_spectral).all())


@pytest.mark.parametrize(("dtype", "advice"), [(torch.float64, "use smaller"), (torch.float32, "use float64, smaller")])
def test_an_overflow_at_the_first_step_does_not_advise_zero_steps(dtype, advice):
    # it said "Use at most 0 steps": no horizon helps when h_1 itself is out of range
    W = torch.eye(4, dtype=dtype)
    x = torch.full((1, 3, 1), torch.finfo(dtype).max, dtype=dtype)
    rnn = rnnstab.VanillaRNN(W, torch.full((4, 1), 4.0, dtype=dtype), activation="relu")
    with pytest.raises(rnnstab.StateOverflowError, match=f"The very first step overflows: {advice}") as caught:
        rnnstab.jacobian_norms(rnn, x, dtype=dtype)
    assert caught.value.step == 1
    assert "at most 0" not in str(caught.value)


def test_truncate_ends_only_the_overflowing_sequences_trace_at_its_overflow_step():
    W = rnnstab.scale_to_threshold(
        torch.randn(16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0)), delta=40.0, gamma=1.0
    )
    rnn = rnnstab.VanillaRNN(W, torch.ones(16, 1, dtype=torch.float64), activation="relu")
    x = torch.ones(3, 400, 1, dtype=torch.float64)
    # starting 1e-300 small, this state grows as fast but stays finite for 400 steps; its Jacobian is alive and
    # grows (an input of 0 would leave every relu unit at 0, σ' = 0: a dead trace that tests nothing)
    x[1] = 1e-300
    x[2] = 1e-30  # starts smaller, overflows later: each sequence has its own step
    finite = torch.isfinite(rnn.run_preactivation(x)).all(dim=-1)
    first = torch.where(finite.all(dim=1), 0, (~finite).to(torch.int8).argmax(dim=1) + 1)
    assert first[1] == 0 and 1 < first[0] < 400 and 1 < first[2] < 400 and first[0] != first[2]
    trace = rnnstab.jacobian_norms(rnn, x, on_overflow="truncate", singular_values_at=[1, 399])
    assert float(trace.log_spectral[1, -1]) > 400  # alive and exploding, far past what its state could hold
    assert trace.overflow_steps.tolist() == first.tolist()
    for row in range(3):
        # each sequence, run alone and only as far as its state stays finite, gives the same numbers bit for bit
        steps = int(first[row]) - 1 if first[row] else 400
        alone = rnnstab.jacobian_norms(rnn, x[row : row + 1, :steps])
        assert torch.equal(trace.log_spectral[row, :steps], alone.log_spectral[0])
        assert torch.equal(trace.log_frobenius[row, :steps], alone.log_frobenius[0])
        assert bool(trace.log_spectral[row, steps:].isnan().all() and trace.log_frobenius[row, steps:].isnan().all())
    assert not trace.log_singular_values[:, 0].isnan().any()  # t = 1: before every overflow
    assert trace.log_singular_values[:, 1, 0].isnan().tolist() == [True, False, True]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_truncate_keeps_the_steps_before_an_overflow_in_a_chunk_whose_derivatives_are_rescaled(dtype):
    # σ = 10³⁰·x (identity at γ = 1e30): every σ' is above 2^32, so the chunk's derivatives are taken a second time,
    # in float64, and that pass read the overflow its first pass had just recorded (at t = 2) as one before the chunk:
    # J_1 came out 0 (log −inf) instead of γW, of norm δ
    act = rnnstab.get_activation("identity", gamma=1e30)
    W = rnnstab.scale_to_threshold(torch.randn(4, 4, dtype=torch.float64), delta=1.0, gamma=act.gamma)
    rnn = rnnstab.VanillaRNN(W, torch.ones(4, 1, dtype=torch.float64), activation=act)
    x = torch.full((2, 5, 1), 1e300 if dtype == torch.float64 else 1e9, dtype=torch.float64)
    x[1] = 1e-30  # stays finite for all five steps
    trace = rnnstab.jacobian_norms(rnn, x, dtype=dtype, on_overflow="truncate")
    assert trace.overflow_steps.tolist() == [2, 0]
    assert float(trace.log_spectral[0, 0]) == pytest.approx(0.0, abs=1e-6)  # log δ
    assert bool(trace.log_spectral[0, 1:].isnan().all())
    alone = rnnstab.jacobian_norms(rnn, x[1:], dtype=dtype)
    assert torch.equal(trace.log_spectral[1], alone.log_spectral[0])


def test_an_unknown_overflow_policy_is_refused():
    rnn = rnnstab.VanillaRNN(torch.eye(3, dtype=torch.float64), activation="tanh")
    with pytest.raises(rnnstab.InvalidArgumentError, match="on_overflow must be one of raise, truncate"):
        rnnstab.jacobian_norms(rnn, torch.zeros(1, 4, 0), on_overflow="ignore")


def test_a_bare_weight_matrix_is_refused_by_name():
    with pytest.raises(rnnstab.ArgumentTypeError, match=r"rnn must be a rnnstab\.VanillaRNN, got Tensor"):
        rnnstab.jacobian_norms(torch.eye(3), torch.zeros(1, 4, 0))


def test_weights_that_require_grad_are_accepted():
    # W taken straight from a model being trained (nn.RNN's weight_hh_l0) requires grad
    W = (0.5 * torch.eye(4, dtype=F64)).requires_grad_()
    rnn = rnnstab.VanillaRNN(W, torch.ones(4, 1, dtype=F64).requires_grad_(), activation="tanh")
    x = torch.zeros(2, 5, 1, dtype=F64)
    trace = rnnstab.jacobian_norms(rnn, x)
    assert torch.allclose(trace.log_spectral[0], torch.arange(1, 6, dtype=F64) * math.log(0.5), atol=1e-12)
    spectrum = rnnstab.lyapunov_spectrum(rnn, torch.zeros(2, 40, 1, dtype=F64), k=2, warmup=0)
    assert torch.isfinite(spectrum.exponents).all()


def test_float32_frobenius_norms_hold_where_the_product_shrinks_by_1e_22_in_one_step():
    # A shift W with sigmoid at δ = 10: where J_t's rank drops, the renormalised product shrinks to ~1e-23 in one
    # step, and its entries' squares are subnormal in float32. Summed in float32, ‖J_t‖_F came out 0.32 nats off
    # the float64 run, 550 times the float32 tolerance; the spectral norm, divided by the same sum, was right.
    n, act = 45, rnnstab.get_activation("sigmoid")
    W = rnnstab.scale_to_threshold(torch.diag(torch.ones(n - 1, dtype=F64), 1), delta=10.0, gamma=act.gamma)
    x = torch.randn(4, n + 5, n, dtype=F64, generator=torch.Generator().manual_seed(0))
    rnn = rnnstab.VanillaRNN(W, torch.eye(n, dtype=F64), None, activation=act)
    single = rnnstab.jacobian_norms(rnn, x, dtype=torch.float32)
    double = rnnstab.jacobian_norms(rnn, x, dtype=F64)
    assert torch.equal(torch.isfinite(single.log_frobenius), torch.isfinite(double.log_frobenius))
    steps = torch.diff(double.log_frobenius, dim=1).nan_to_num(0.0, 0.0, 0.0)
    assert steps.min() < math.log(1e-22)  # the case still reaches the subnormal range
    for name in ("log_frobenius", "log_spectral"):
        gap = (getattr(single, name) - getattr(double, name)).nan_to_num(0.0, 0.0, 0.0).abs()
        assert (gap <= single.float_tolerance()).all(), name
    # a sequence whose norms were taken again does not move the others
    alone = rnnstab.jacobian_norms(rnn.to(dtype=torch.float32), x[1:2].float(), dtype=torch.float32)
    assert torch.equal(alone.log_frobenius[0], single.log_frobenius[1])


def _orthogonal(n: int, gen: torch.Generator) -> torch.Tensor:
    Q, R = torch.linalg.qr(torch.randn(n, n, dtype=F64, generator=gen))
    return Q * torch.sign(torch.diagonal(R))


@pytest.mark.parametrize(
    ("kind", "spread", "activation"),
    [
        # an orthogonal init barely moved (noise of 1e-7): J_1 = D_1 W with D_1 a 0/1 mask, so J_1ᵀJ_1 is nearly a
        # projector, half its singular values within 1e-7 of each other; the Ritz values stalled in that cluster,
        # up to 4.8e-9 nats low
        ("noise", 1e-7, "relu"),
        ("noise", 1e-6, "leaky_relu"),
        # every singular value of W in [1 − spread, 1]: up to 6.6e-7 low
        ("cluster", 1e-5, "relu"),
        ("cluster", 1e-6, "elu"),
    ],
)
def test_a_crowded_cluster_at_the_top_is_resolved(kind, spread, activation):
    n = 64
    cases = []
    for seed in range(4):
        gen = torch.Generator().manual_seed(seed)
        if kind == "noise":
            W = _orthogonal(n, gen) + spread * torch.randn(n, n, dtype=F64, generator=gen) / n**0.5
        else:
            values = 1 - spread * torch.rand(n, dtype=F64, generator=gen)
            W = _orthogonal(n, gen) @ torch.diag(values) @ _orthogonal(n, gen).T
        cases.append(rnnstab.scale_to_threshold(W, delta=1.0, gamma=rnnstab.get_activation(activation).gamma))
    gen = torch.Generator().manual_seed(9)
    rnn = rnnstab.VanillaRNN(
        torch.stack(cases), torch.eye(n, dtype=F64), 0.5 * torch.randn(n, dtype=F64, generator=gen), activation
    )
    x = 3 * torch.randn(4, 3, n, dtype=F64, generator=gen)
    trace = rnnstab.jacobian_norms(rnn, x, norms=["spectral"])
    exact = rnnstab.jacobian_norms(rnn, x, norms=["spectral"], spectral_method="svd").log_spectral
    assert trace.spectral_method == "lanczos"
    assert (exact - trace.log_spectral).abs().max() < 1e-10


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_units_saturated_a_trillion_deep_keep_their_log_norm(dtype):
    # log σ'(h) = log 4 − 2h at h = 10¹²: a power of two fit to it lost its bits to log σ''s own rounding (and
    # overflowed int32 past |h| ~ 10⁹), so σ' there is carried relative to the step's largest, whose log is exact
    rnn = rnnstab.VanillaRNN(torch.tensor([[0.5]], dtype=F64), torch.tensor([[1.0]], dtype=F64), activation="tanh")
    x = torch.full((1, 3, 1), 1e12, dtype=F64)
    trace = rnnstab.jacobian_norms(rnn, x, dtype=dtype)
    # h_1 = 10¹² (g_0 = 0), then h_t = 10¹² + 0.5 (g = 1), rounded to the dtype
    first, later = (float(torch.tensor(h, dtype=dtype)) for h in (1e12, 1e12 + 0.5))
    step = [math.log(0.5) + math.log(4.0) - 2 * h for h in (first, later, later)]
    expected = torch.tensor(step, dtype=F64).cumsum(0)
    torch.testing.assert_close(trace.log_spectral[0], expected, rtol=1e-14 if dtype == F64 else 1e-7, atol=0)


def _crowded_orthogonal(count: int, seed: int) -> tuple[rnnstab.VanillaRNN, torch.Tensor]:
    """Orthogonal W at δ = 1 with tanh and inputs × 0.01, n = 128: σ' ≈ 1 − 10⁻⁴ everywhere, so the singular values
    of J_t crowd together (relative gaps 10⁻⁷–10⁻², the whole spectrum within 10⁻²–1), and block Lanczos needs
    restarts at nearly every step."""
    gen = torch.Generator().manual_seed(seed)
    W = torch.stack([rnnstab.init_weights("orthogonal", 128, seed=seed + i) for i in range(count)])
    U = torch.randn(count, 128, 4, generator=gen, dtype=F64)
    x = 0.01 * torch.randn(count, 64, 4, generator=gen, dtype=F64)
    return rnnstab.VanillaRNN(W, U, None, activation="tanh"), x


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_a_stretch_of_slow_steps_is_solved_exactly_then_tried_again(dtype):
    # Such a sequence is switched to exact solves for a window once half a window's steps were slow, then for 2, 4,
    # … windows while Lanczos stays slow on return. Every step's value must stay exact to rtol whichever way it was
    # solved; the reference is an SVD of the same product.
    rnn, x = _crowded_orthogonal(2, seed=7)
    trace = rnnstab.jacobian_norms(rnn, x, dtype=dtype)
    exact = rnnstab.jacobian_norms(rnn, x, dtype=dtype, spectral_method="svd")
    assert (trace.log_spectral - exact.log_spectral).abs().max() < (2e-6 if dtype == torch.float32 else 1e-10)
    blocks = trace.spectral_iterations.tolist()
    # windows: steps 1, 2, 3–4, 5–8, then 8 at a time. The first full window, 9–16, is slow, so 17–24 are switched;
    # back on Lanczos, 25–32 are slow again, so that the next two windows are switched, then 49–56 slow again.
    assert min(blocks[8:16]) > 10 and blocks[16:24] == [0] * 8
    assert min(blocks[24:32]) > 10 and blocks[32:48] == [0] * 16
    assert min(blocks[48:56]) > 10 and blocks[56:] == [0] * 8
    assert trace.svd_fallbacks >= 32


def test_a_switched_network_does_not_depend_on_its_batch_mates():
    # The switch is decided per sequence from its own steps, so a crowded network stacked with dense ones gives the
    # same numbers, bit for bit, as with other mates
    crowded, x_crowded = _crowded_orthogonal(2, seed=3)
    dense = random_rnn(128, delta=0.9, seed=4, batch_networks=2, m=4)
    x_dense = torch.randn(2, 64, 4, generator=torch.Generator().manual_seed(5), dtype=F64)
    W, U = torch.cat([crowded.W, dense.W]), torch.cat([crowded.U, dense.U])
    b = torch.cat([torch.zeros(2, 128, dtype=F64), dense.b])
    together = rnnstab.jacobian_norms(rnnstab.VanillaRNN(W, U, b, activation="tanh"), torch.cat([x_crowded, x_dense]))
    for i, j in ((0, 2), (3, 1)):
        pair = [i, j]
        mates = rnnstab.VanillaRNN(W[pair], U[pair], b[pair], activation="tanh")
        apart = rnnstab.jacobian_norms(mates, torch.cat([x_crowded, x_dense])[pair])
        assert_same_whatever_the_batch(apart.log_spectral[0], together.log_spectral[i])
        assert_same_whatever_the_batch(apart.log_spectral[1], together.log_spectral[j])


def test_the_switch_backs_off_while_lanczos_stays_slow():
    # windows of 8 steps for three sequences: slow in half of them (4 ≥ 4) switches; 3 of 8 does not; a switched
    # window counts down; a window without slow steps resets the next switch's length to one window; the first,
    # shorter windows never switch
    tracker = SpectralTracker(rtol=1e-6, max_iter=50)
    tracker.backoff, tracker.penalty = torch.zeros(3, dtype=torch.int64), torch.ones(3, dtype=torch.int64)

    def window(slow):
        tracker._back_off(tracker.backoff > 0, torch.tensor(slow), 8, full=True)
        return tracker.backoff.tolist(), tracker.penalty.tolist()

    assert window([4, 3, 0]) == ([1, 0, 0], [2, 1, 1])
    assert window([0, 8, 8]) == ([0, 1, 1], [2, 2, 2])  # sequence 0 switched: its slow count is not read
    assert window([8, 0, 0]) == ([2, 0, 0], [4, 2, 2])
    assert window([0, 0, 0]) == ([1, 0, 0], [4, 1, 1])
    assert window([0, 0, 0]) == ([0, 0, 0], [4, 1, 1])
    assert window([0, 2, 0]) == ([0, 0, 0], [1, 1, 1])
    for _ in range(8):  # slow whenever tried: 1, 2, 4, 8, 16, 16, … windows switched
        while tracker.backoff[0] > 0:
            window([0, 0, 0])
        window([8, 0, 0])
    assert tracker.penalty[0] == 16 and tracker.backoff[0] == 16
    tracker._back_off(tracker.backoff > 0, torch.tensor([0, 4, 4]), 4, full=False)
    assert tracker.backoff.tolist() == [15, 0, 0]


def _diagonal_silu() -> tuple[rnnstab.VanillaRNN, torch.Tensor]:
    """W = cI with silu and small inputs, n = 256: every J_t is diagonal, its entries within 10⁻³ of each other."""
    gen, n = torch.Generator().manual_seed(17), 256
    silu = rnnstab.get_activation("silu")
    U = torch.randn(n, 4, generator=gen, dtype=F64)
    rnn = rnnstab.VanillaRNN(torch.eye(n, dtype=F64) * (1.7 / silu.gamma), U, activation=silu)
    return rnn, 1e-3 * torch.randn(8, 30, 4, generator=gen, dtype=F64)


def test_a_diagonal_w_reads_each_norm_off_the_largest_column():
    # every J_t is diagonal, so ‖J_t‖₂ is its largest column norm, which the Frobenius pass computes anyway: no
    # Krylov block and no fallback, and the SVD of the very product formed agrees to the last bit or so
    rnn, x = _diagonal_silu()
    trace = rnnstab.jacobian_norms(rnn, x, dtype=torch.float32)
    exact = rnnstab.jacobian_norms(rnn, x, dtype=torch.float32, spectral_method="svd")
    assert trace.svd_fallbacks == 0 and not trace.spectral_iterations.any()
    assert (trace.log_spectral - exact.log_spectral).abs().max() < 4 * torch.finfo(torch.float32).eps


def test_block_lanczos_does_not_stop_short_of_the_largest_column(monkeypatch):
    # The same diagonal products, forced through block Lanczos: its largest column norm is ‖J_t‖₂ itself, a lower
    # bound a Ritz value must reach. float32 runs stopped up to 1.2e-4 low, inside the 4·n·ε they allowed that
    # bound for rounding; rounding moves either norm by about √n·ε. The reference is an SVD of the same product.
    monkeypatch.setattr(rnnstab.jacobian, "coupling", _coupled)
    rnn, x = _diagonal_silu()
    trace = rnnstab.jacobian_norms(rnn, x, dtype=torch.float32)
    exact = rnnstab.jacobian_norms(rnn, x, dtype=torch.float32, spectral_method="svd")
    assert trace.spectral_iterations.any()
    bound = 4 * math.sqrt(rnn.hidden_size) * torch.finfo(torch.float32).eps
    assert (trace.log_spectral - exact.log_spectral).abs().max() < bound


def test_a_tight_top_cluster_in_float32_is_solved_exactly():
    # W orthogonal plus noise of 4e-5 with sin and inputs × 1.6e-4, n = 256: J_t's top singular values lie within
    # about n·ε₃₂ of each other. A block whose Ritz values lay within n·ε (3e-5) was taken as exact and stopped after
    # one block, 1.6e-4 low at t ≈ 16; rounding separates Ritz values by about √n·ε, so a block spread wider than
    # 4·√n·ε within 10⁻³ of the top is now crowded, and solved exactly. The reference is an SVD of the same product.
    n, gen = 256, torch.Generator().manual_seed(0)
    sin = rnnstab.get_activation("sin")
    W = rnnstab.init_weights("orthogonal", n, seed=1) + 4e-5 * torch.randn(n, n, generator=gen, dtype=F64) / n**0.5
    W = rnnstab.scale_to_threshold(W, delta=1.16, gamma=sin.gamma)
    rnn = rnnstab.VanillaRNN(W, torch.randn(n, 4, generator=gen, dtype=F64), None, activation=sin)
    x = 1.6e-4 * torch.randn(2, 20, 4, generator=gen, dtype=F64)
    kwargs = {"dtype": torch.float32, "norms": ["spectral"]}
    trace = rnnstab.jacobian_norms(rnn, x, **kwargs)
    exact = rnnstab.jacobian_norms(rnn, x, spectral_method="svd", **kwargs)
    bound = 4 * math.sqrt(n) * torch.finfo(torch.float32).eps + 1e-6  # the crowding threshold plus rtol
    assert (trace.log_spectral - exact.log_spectral).abs().max() < bound
