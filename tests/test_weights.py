"""Tests of rnnstab.weights: the exact spectral norm, threshold scaling and the weight schemes.

References are numpy's LAPACK SVD (numpy.linalg.norm(·, 2)), closed forms for small matrices, and statistics of
the N(0, 1/n) and Haar-orthogonal laws.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rnnstab
from rnnstab import (
    SCHEMES,
    ArgumentTypeError,
    InvalidArgumentError,
    NonFiniteError,
    Param,
    ShapeError,
    critical_gain,
    init_weights,
    register_scheme,
    scale_to_threshold,
    spectral_norm,
)

DTYPES = [torch.float32, torch.float64]


def _np_norm(W: torch.Tensor) -> np.ndarray:
    """Largest singular value by numpy (float64 LAPACK), of one matrix or of each matrix of a batch."""
    a = W.detach().to(torch.float64).numpy()
    return np.linalg.norm(a, 2) if a.ndim == 2 else np.linalg.norm(a, 2, axis=(-2, -1))


def _randn(*shape: int, dtype: torch.dtype = torch.float64, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


# ---------------------------------------------------------------------------------------------------------------
# spectral_norm


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 2, 7, 32])
def test_spectral_norm_matches_numpy(n, dtype):
    W = _randn(n, n, dtype=dtype, seed=n)
    got = spectral_norm(W)
    assert got.dtype == torch.float64
    assert got.shape == ()
    # Both are float64 SVDs of the same (exactly upcast) matrix; backward-stable to ~n·eps·‖W‖ ≈ 1e-14 for n ≤ 32.
    assert float(got) == pytest.approx(float(_np_norm(W)), rel=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("batch", "n"), [(1, 3), (5, 8), (3, 16)])
def test_spectral_norm_batched_matches_numpy(batch, n, dtype):
    W = _randn(batch, n, n, dtype=dtype, seed=batch * n)
    got = spectral_norm(W)
    assert got.shape == (batch,)
    assert got.dtype == torch.float64
    # Same justification as the unbatched case.
    np.testing.assert_allclose(got.numpy(), _np_norm(W), rtol=1e-12)


def test_spectral_norm_of_non_normal_matrix_is_not_the_spectral_radius():
    # Nilpotent Jordan-like block: every eigenvalue is 0, yet ‖W‖₂ = 5 (closed form).
    W = torch.tensor([[0.0, 5.0], [0.0, 0.0]], dtype=torch.float64)
    assert float(spectral_norm(W)) == pytest.approx(5.0, rel=1e-15)
    # [[a, b], [0, a]] has singular values (√(4a² + b²) ± |b|) / 2: the larger one, closed form.
    a, b = 0.9, 3.0
    W = torch.tensor([[a, b], [0.0, a]], dtype=torch.float64)
    assert float(spectral_norm(W)) == pytest.approx((math.sqrt(4 * a * a + b * b) + b) / 2, rel=1e-14)


def test_spectral_norm_of_diagonal_and_orthogonal():
    d = torch.tensor([0.5, -3.0, 2.0], dtype=torch.float64)
    assert float(spectral_norm(torch.diag(d))) == pytest.approx(3.0, rel=1e-15)
    c, s = math.cos(0.3), math.sin(0.3)
    R = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    assert float(spectral_norm(R)) == pytest.approx(1.0, rel=1e-15)


@pytest.mark.parametrize("scale", [1.5e308, 1.7e308, 1e-310, 4e-320])
def test_spectral_norm_at_the_ends_of_float64(scale):
    # log2 of a largest entry above 2^1023.5 rounded to 1024, and W/2^1024 = W/inf = 0: ‖W‖₂ came out NaN and
    # scale_to_threshold called W the zero matrix
    W = torch.diag(torch.tensor([1.0, -0.5, 0.25], dtype=torch.float64)) * scale
    assert float(spectral_norm(W)) == scale
    assert float(spectral_norm(scale_to_threshold(W, delta=0.9, gamma=1.0))) == pytest.approx(0.9, rel=1e-15)
    rnn = rnnstab.VanillaRNN(W, U=torch.zeros(3, 1, dtype=torch.float64), activation="identity")
    assert float(rnn.delta()) == scale
    trace = rnnstab.jacobian_norms(rnn, torch.zeros(1, 4, 1, dtype=torch.float64))
    expected = torch.arange(1, 5, dtype=torch.float64) * math.log(scale)
    torch.testing.assert_close(trace.log_spectral[0], expected, rtol=1e-14, atol=0)


# ---------------------------------------------------------------------------------------------------------------
# scale_to_threshold

# Rounding the float64 result to float32 perturbs each entry by ≤ 2⁻²⁴ relative, i.e. W + E with |E| ≤ 2⁻²⁴|W|;
# then |‖W + E‖₂ − ‖W‖₂| ≤ ‖E‖₂ ≤ ‖E‖_F ≤ 2⁻²⁴‖W‖_F ≤ 2⁻²⁴ √n ‖W‖₂, i.e. ≤ 2.4e-7 relative for n = 16.
REL_TOL = {torch.float32: 1e-6, torch.float64: 1e-12}  # float64: n·eps ≈ 1e-14 SVD error, with margin


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("delta", "gamma"), [(0.9, 1.0), (1.0, 1.0), (1.5, 0.25), (0.5, 1.1289), (2.0, 3.0)])
def test_scale_to_threshold_single(delta, gamma, dtype):
    W = _randn(16, 16, dtype=dtype, seed=7)
    out = scale_to_threshold(W, delta=delta, gamma=gamma)
    assert out.dtype == dtype
    assert out.shape == W.shape
    assert float(_np_norm(out)) == pytest.approx(delta / gamma, rel=REL_TOL[dtype])
    # Only a rescaling: out = (δ/γ)/‖W‖₂ · W, with the factor from numpy.
    factor = (delta / gamma) / float(_np_norm(W))
    np.testing.assert_allclose(out.to(torch.float64).numpy(), factor * W.to(torch.float64).numpy(), rtol=REL_TOL[dtype])
    # The input is left alone.
    assert W.equal(_randn(16, 16, dtype=dtype, seed=7))


@pytest.mark.parametrize("dtype", DTYPES)
def test_scale_to_threshold_batched(dtype):
    W = _randn(4, 16, 16, dtype=dtype, seed=3)
    W[1] *= 100.0  # very different norms in one batch: each matrix gets its own factor
    W[2] *= 1e-3
    out = scale_to_threshold(W, delta=0.8, gamma=0.5)
    assert out.shape == W.shape
    assert out.dtype == dtype
    np.testing.assert_allclose(_np_norm(out), np.full(4, 0.8 / 0.5), rtol=REL_TOL[dtype])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    delta=st.floats(1e-3, 1e3, allow_nan=False, allow_infinity=False),
    gamma=st.floats(1e-3, 1e3, allow_nan=False, allow_infinity=False),
    seed=st.integers(0, 2**31 - 1),
)
def test_scale_to_threshold_property(delta, gamma, seed):
    W = _randn(6, 6, seed=seed)
    out = scale_to_threshold(W, delta=delta, gamma=gamma)
    # float64 throughout; the 1e-12 argument above holds for any target norm (it is relative).
    assert float(_np_norm(out)) == pytest.approx(delta / gamma, rel=1e-12)


def test_scale_to_threshold_accepts_ints():
    out = scale_to_threshold(_randn(5, 5), delta=1, gamma=2)
    assert float(_np_norm(out)) == pytest.approx(0.5, rel=1e-12)


@pytest.mark.parametrize("arg", ["delta", "gamma"])
@pytest.mark.parametrize("bad", [0.0, -0.5, 0, float("nan"), float("inf"), float("-inf")])
def test_scale_to_threshold_bad_delta_gamma(arg, bad):
    kwargs = {"delta": 0.9, "gamma": 1.0, arg: bad}
    with pytest.raises(InvalidArgumentError, match=arg):
        scale_to_threshold(_randn(3, 3), **kwargs)


@pytest.mark.parametrize("arg", ["delta", "gamma"])
@pytest.mark.parametrize("bad", ["0.9", None, True, torch.tensor([0.9])])
def test_scale_to_threshold_non_numeric_delta_gamma(arg, bad):
    kwargs = {"delta": 0.9, "gamma": 1.0, arg: bad}
    with pytest.raises(ArgumentTypeError, match=arg):
        scale_to_threshold(_randn(3, 3), **kwargs)


@pytest.mark.parametrize("dtype", DTYPES)
def test_scale_to_threshold_zero_matrix(dtype):
    with pytest.raises(InvalidArgumentError, match=r"^W is the zero matrix"):
        scale_to_threshold(torch.zeros(4, 4, dtype=dtype), delta=0.9, gamma=1.0)
    W = _randn(3, 4, 4, dtype=dtype)
    W[1] = 0.0
    with pytest.raises(InvalidArgumentError, match=r"^W\[1\] is the zero matrix"):
        scale_to_threshold(W, delta=0.9, gamma=1.0)


@pytest.mark.parametrize("func", ["spectral_norm", "scale_to_threshold"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("shape", [(4, 4), (2, 4, 4)])
def test_non_finite_weights(func, bad, shape):
    W = _randn(*shape)
    W.view(-1)[5] = bad
    call = spectral_norm if func == "spectral_norm" else lambda w: scale_to_threshold(w, delta=0.9, gamma=1.0)
    with pytest.raises(NonFiniteError, match=r"^W holds 1 non-finite"):
        call(W)


@pytest.mark.parametrize("func", ["spectral_norm", "scale_to_threshold"])
@pytest.mark.parametrize(
    ("shape", "match"),
    [
        ((3, 4), r"^W must be square"),
        ((2, 3, 4), r"^W must be square"),
        ((4,), r"^W must be 2-D or 3-D"),
        ((), r"^W must be 2-D or 3-D"),
        ((1, 2, 3, 3), r"^W must be 2-D or 3-D"),
    ],
)
def test_bad_shapes(func, shape, match):
    call = spectral_norm if func == "spectral_norm" else lambda w: scale_to_threshold(w, delta=0.9, gamma=1.0)
    with pytest.raises(ShapeError, match=match):
        call(torch.ones(shape, dtype=torch.float64))


@pytest.mark.parametrize("func", ["spectral_norm", "scale_to_threshold"])
@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (np.eye(3), r"^W must be a torch.Tensor"),
        ([[1.0, 0.0], [0.0, 1.0]], r"^W must be a torch.Tensor"),
        (torch.eye(3, dtype=torch.int64), r"^W must be a floating-point tensor"),
        (torch.eye(3, dtype=torch.bool), r"^W must be a floating-point tensor"),
    ],
)
def test_bad_types(func, bad, match):
    call = spectral_norm if func == "spectral_norm" else lambda w: scale_to_threshold(w, delta=0.9, gamma=1.0)
    with pytest.raises(ArgumentTypeError, match=match):
        call(bad)


# ---------------------------------------------------------------------------------------------------------------
# init_weights


@pytest.mark.parametrize("n", [1, 2, 8, 64])
@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_orthogonal_is_orthogonal(n, seed):
    W = init_weights("orthogonal", n, seed=seed)
    assert W.shape == (n, n)
    assert W.dtype == torch.float64
    eye = np.eye(n)
    a = W.numpy()
    # Householder QR is backward stable: ‖QᵀQ − I‖ ≲ n·eps ≈ 1.4e-14 for n = 64; 1e-12 leaves margin.
    np.testing.assert_allclose(a.T @ a, eye, atol=1e-12)
    np.testing.assert_allclose(a @ a.T, eye, atol=1e-12)
    # every singular value is 1 (numpy SVD, same tolerance argument)
    np.testing.assert_allclose(np.linalg.svd(a, compute_uv=False), np.ones(n), atol=1e-12)


def test_orthogonal_batched():
    W = init_weights("orthogonal", 16, batch=5, seed=3)
    assert W.shape == (5, 16, 16)
    a = W.numpy()
    np.testing.assert_allclose(np.swapaxes(a, 1, 2) @ a, np.broadcast_to(np.eye(16), (5, 16, 16)), atol=1e-12)
    assert not np.allclose(a[0], a[1])  # independent draws


def test_orthogonal_is_not_biased_towards_identity():
    # For Haar-distributed Q (n ≥ 2), E[tr Q] = 0 and Var[tr Q] = 1 (Diaconis-Shahshahani). The mean of 200
    # traces has sd 0.07, so |mean| < 0.35 is a 5-sd check; LAPACK's QR without the sign fix gives mean ≈ -1.6.
    traces = init_weights("orthogonal", 8, batch=200, seed=11).diagonal(dim1=-2, dim2=-1).sum(-1)
    assert abs(float(traces.mean())) < 0.35
    assert 0.5 < float(traces.var()) < 1.5  # sd of the sample variance of 200 ~ N(0,1)-like draws ≈ 0.1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gaussian_entries_have_variance_one_over_n(seed):
    n = 256
    W = init_weights("gaussian", n, seed=seed)
    assert W.shape == (n, n)
    assert W.dtype == torch.float64
    a = W.numpy().ravel()
    # N = 65,536 i.i.d. N(0, 1/n) entries: sd of the sample mean is (1/16)/256 ≈ 2.4e-4, and the relative sd of the
    # sample variance is √(2/N) ≈ 0.0055. Bounds 2e-3 (8 sd) and 5% (9 sd) cannot fail by chance in practice.
    assert abs(a.mean()) < 2e-3
    assert a.var() * n == pytest.approx(1.0, rel=0.05)
    # Largest singular value → 2 (Marchenko-Pastur edge); Tracy-Widom fluctuations at n = 256 are ~n^(-2/3) ≈ 0.025.
    assert 1.85 < float(_np_norm(W)) < 2.15


def test_gaussian_batched_draws_are_independent():
    W = init_weights("gaussian", 32, batch=3, seed=0)
    assert W.shape == (3, 32, 32)
    # sample correlation of two independent draws of 1024 entries has sd 1/32 ≈ 0.03; 0.2 is > 6 sd.
    r = np.corrcoef(W[0].numpy().ravel(), W[1].numpy().ravel())[0, 1]
    assert abs(r) < 0.2


@pytest.mark.parametrize("scheme", ["gaussian", "orthogonal"])
@pytest.mark.parametrize("batch", [None, 3])
def test_seed_reproducibility(scheme, batch):
    a = init_weights(scheme, 12, batch=batch, seed=42)
    b = init_weights(scheme, 12, batch=batch, seed=42)
    c = init_weights(scheme, 12, batch=batch, seed=43)
    assert a.equal(b)
    assert not torch.allclose(a, c)
    # the default seed is fixed too (0)
    assert init_weights(scheme, 12, batch=batch).equal(init_weights(scheme, 12, batch=batch, seed=0))


def test_seed_does_not_touch_global_rng():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    init_weights("gaussian", 8, seed=5)
    assert torch.rand(3).equal(expected)


@pytest.mark.parametrize("bad", ["uniform", "Gaussian", "", "xavier"])
def test_unknown_scheme_lists_names(bad):
    with pytest.raises(InvalidArgumentError, match=r"unknown init scheme .*valid names: gaussian, orthogonal"):
        init_weights(bad, 4)


@pytest.mark.parametrize("bad", [0, -3])
def test_bad_n(bad):
    with pytest.raises(InvalidArgumentError, match="hidden size n"):
        init_weights("gaussian", bad)


@pytest.mark.parametrize("bad", [2.0, "4", True, None])
def test_non_integer_n(bad):
    with pytest.raises(ArgumentTypeError, match="hidden size n"):
        init_weights("orthogonal", bad)


@pytest.mark.parametrize("bad", [0, -1])
def test_bad_batch(bad):
    with pytest.raises(InvalidArgumentError, match="batch"):
        init_weights("gaussian", 4, batch=bad)


@pytest.mark.parametrize("bad", [2.0, "2", False])
def test_non_integer_batch(bad):
    with pytest.raises(ArgumentTypeError, match="batch"):
        init_weights("gaussian", 4, batch=bad)


# ---------------------------------------------------------------------------------------------------------------
# The scheme catalogue: each scheme against what it guarantees about ‖W‖₂ and ρ(W)


def _radius(W: torch.Tensor) -> float:
    return float(np.abs(np.linalg.eigvals(W.numpy())).max())


def test_gaussian_and_orthogonal_draws_are_the_historical_ones():
    # The sweep's stored results depend on these draws bit for bit.
    n, seed = 24, 7
    g = torch.Generator().manual_seed(seed)
    assert init_weights("gaussian", n, seed=seed).equal(torch.randn(n, n, generator=g, dtype=torch.float64) / n**0.5)
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    assert init_weights("orthogonal", n, seed=seed).equal(q * torch.sign(torch.diagonal(r)))


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_every_scheme_is_reproducible_batched_and_float64(scheme):
    a = init_weights(scheme, 16, batch=3, seed=5, activation="tanh")
    assert a.shape == (3, 16, 16) and a.dtype == torch.float64
    assert a.equal(init_weights(scheme, 16, batch=3, seed=5, activation="tanh"))
    assert bool(torch.isfinite(a).all())
    if scheme not in ("identity", "scaled_identity"):  # the deterministic schemes
        assert not a.equal(init_weights(scheme, 16, batch=3, seed=6, activation="tanh"))
        assert not a[0].equal(a[1])


@pytest.mark.parametrize("gain", [1.0, 0.5])
def test_orthogonal_gain_is_every_singular_value_and_eigenvalue(gain):
    W = init_weights("orthogonal", 32, seed=1, gain=gain).numpy()
    # backward-stable QR/SVD/eig: errors ~ n·ε ≈ 1e-14; 1e-12 leaves margin
    np.testing.assert_allclose(np.linalg.svd(W, compute_uv=False), gain, atol=1e-12)
    np.testing.assert_allclose(np.abs(np.linalg.eigvals(W)), gain, atol=1e-12)


def test_identity_schemes_are_exact():
    assert init_weights("identity", 5).equal(torch.eye(5, dtype=torch.float64))
    assert init_weights("scaled_identity", 5).equal(0.9 * torch.eye(5, dtype=torch.float64))
    assert init_weights("scaled_identity", 5, scale=0.25).equal(0.25 * torch.eye(5, dtype=torch.float64))


@pytest.mark.parametrize("gain", [1.0, 1.5])
def test_gaussian_gain_norm_and_radius_asymptotics(gain):
    # n = 256: ‖W‖₂/gain → 2 with Tracy–Widom fluctuations of order n^(-2/3) ≈ 0.025, so ±0.15 is > 5 sd;
    # ρ/gain → 1 with a finite-n excess of order √(log n / n) ≈ 0.15 at most (measured ≈ 1.05), so [0.85, 1.2].
    W = init_weights("gaussian", 256, batch=2, seed=3, gain=gain)
    for w in W:
        assert abs(float(spectral_norm(w)) / gain - 2.0) < 0.15
        assert 0.85 < _radius(w) / gain < 1.2


@pytest.mark.parametrize(
    ("scheme", "reference"),
    [
        ("xavier_uniform", lambda t, g: torch.nn.init.xavier_uniform_(t, gain=1.0, generator=g)),
        ("xavier_normal", lambda t, g: torch.nn.init.xavier_normal_(t, gain=1.0, generator=g)),
        ("kaiming_uniform", lambda t, g: torch.nn.init.kaiming_uniform_(t, nonlinearity="relu", generator=g)),
        ("kaiming_normal", lambda t, g: torch.nn.init.kaiming_normal_(t, nonlinearity="relu", generator=g)),
    ],
)
def test_xavier_and_kaiming_match_torch_nn_init(scheme, reference):
    # Same generator state, same law: torch's own initialiser is the reference (bounds may differ in the last bit).
    n, seed = 48, 9
    expected = reference(torch.empty(n, n, dtype=torch.float64), torch.Generator().manual_seed(seed))
    torch.testing.assert_close(init_weights(scheme, n, seed=seed), expected, rtol=1e-14, atol=0)


def test_torch_default_is_what_nn_rnn_draws():
    n = 256
    W = init_weights("torch_default", n, seed=0)
    bound = 1 / math.sqrt(n)
    module = torch.nn.RNN(3, n)  # its reset_parameters: U(±1/√hidden_size)
    assert float(module.weight_hh_l0.detach().abs().max()) <= bound
    assert float(W.abs().max()) <= bound
    # 65,536 uniform entries: the max is within 1e-3 of the bound (P(miss) = (1 − 5e-4)^65536 ≈ e^-33)
    assert float(W.abs().max()) > 0.999 * bound
    assert float(W.var()) * 3 * n == pytest.approx(1.0, rel=0.03)  # relative sd of the variance ≈ 0.005
    assert abs(float(spectral_norm(W)) - 2 / math.sqrt(3)) < 0.1  # → 2/√3 (Bai–Yin), TW scale 0.015


@pytest.mark.parametrize("rho", [0.5, 0.9, 1.3])
def test_spectral_radius_is_exact_and_the_norm_is_not_bounded(rho):
    W = init_weights("spectral_radius", 128, seed=2, rho=rho)
    assert _radius(W) == pytest.approx(rho, abs=1e-12)  # eigenvalue error ~ κ·n·ε, κ ~ √n for Gaussian W
    assert float(spectral_norm(W)) > 1.5 * rho  # ‖W‖₂/ρ → 2 for Gaussian W: far above ρ


def test_sparse_echo_state_radius_and_density():
    W = init_weights("sparse_echo_state", 200, seed=4, rho=0.8, density=0.2)
    assert _radius(W) == pytest.approx(0.8, abs=1e-12)
    # 40,000 Bernoulli(0.2) entries: the fraction kept has sd 0.002; 0.01 is 5 sd
    assert float((W != 0).double().mean()) == pytest.approx(0.2, abs=0.01)


def test_sparse_echo_state_refuses_a_nilpotent_draw():
    with pytest.raises(InvalidArgumentError, match=r"sparse_echo_state.*nilpotent.*raise density"):
        init_weights("sparse_echo_state", 2, density=1e-9)


@pytest.mark.parametrize("sigma", [0.5, 0.9, 2.0])
def test_spectral_norm_scheme_is_exact(sigma):
    W = init_weights("spectral_norm", 64, seed=1, sigma=sigma)
    assert float(_np_norm(W)) == pytest.approx(sigma, rel=1e-13)
    assert _radius(W) <= sigma * (1 + 1e-12)  # ρ ≤ ‖W‖₂ always


def test_torch_spectral_norm_lands_at_or_above_its_target():
    # W = W₀/σ̂ with σ̂ = uᵀW₀v ≤ σ₁(W₀) (unit u, v): ‖W‖₂ ≥ 1 always. At n = 256 the top singular values of a
    # Gaussian matrix are close (gap ~ n^(-2/3)), so 16 power steps leave σ̂ visibly low: ‖W‖₂ ≈ 1.01–1.05.
    norms = spectral_norm(init_weights("torch_spectral_norm", 256, batch=4, seed=0))
    assert bool((norms >= 1 - 1e-12).all())
    assert float(norms.mean()) > 1.001
    assert float(norms.max()) < 1.2


def test_torch_spectral_norm_leaves_the_global_rng_alone():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    init_weights("torch_spectral_norm", 8, seed=5)
    assert torch.rand(3).equal(expected)


@pytest.mark.parametrize("g", [1.0, 0.3])
def test_weight_norm_rows_have_norm_g(g):
    n = 64
    W = init_weights("weight_norm", n, seed=2, g=g)
    torch.testing.assert_close(torch.linalg.vector_norm(W, dim=1), torch.full((n,), g, dtype=torch.float64))
    assert g * (1 - 1e-12) <= float(spectral_norm(W)) <= g * math.sqrt(n)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_critical_is_gaussian_at_the_critical_gain(activation):
    expected = critical_gain(activation) * init_weights("gaussian", 32, seed=3)
    got = init_weights("critical", 32, seed=3, activation=activation)
    torch.testing.assert_close(got, expected, rtol=1e-15, atol=0)


def test_critical_needs_the_activation():
    with pytest.raises(InvalidArgumentError, match=r"'critical' depends on the activation"):
        init_weights("critical", 8)


@pytest.mark.parametrize(
    ("scheme", "params", "match"),
    [
        ("gaussian", {"rho": 0.9}, r"scheme 'gaussian' has no parameter 'rho'; valid parameters: gain"),
        ("identity", {"gain": 2.0}, r"'identity' has no parameter 'gain'; it takes no parameters"),
        ("gaussian", {"gain": 0.0}, r"scheme 'gaussian': parameter gain must be > 0, got 0.0"),
        ("spectral_radius", {"rho": math.nan}, r"rho must be > 0, got nan"),
        ("sparse_echo_state", {"density": 1.5}, r"density must be in \(0, 1\]"),
        ("critical", {"input_variance": -1.0}, r"input_variance must be ≥ 0"),
        ("orthogonal", {"gain": "2"}, r"gain must be > 0, got '2'"),
        ("orthogonal", {"gain": True}, r"gain must be > 0, got True"),
    ],
)
def test_bad_scheme_parameters_name_the_scheme_and_its_parameters(scheme, params, match):
    with pytest.raises(InvalidArgumentError, match=match):
        init_weights(scheme, 4, activation="tanh", **params)


def test_register_a_user_callable():
    def banded(n, generator, *, width):
        W = torch.randn(n, n, generator=generator, dtype=torch.float64)
        i = torch.arange(n)
        return W * ((i[:, None] - i[None, :]).abs() <= width)

    try:
        register_scheme(
            "banded",
            banded,
            summary="Gaussian entries within a band",
            norm_guarantee="none",
            radius_guarantee="none",
            params={"width": Param(1.0, "half-width", lambda v: v >= 0, "≥ 0")},
        )
        W = init_weights("banded", 6, seed=1, width=0)
        assert W.equal(torch.diag(torch.diagonal(W))) and bool((torch.diagonal(W) != 0).all())
        assert init_weights("banded", 6, seed=1).equal(init_weights("banded", 6, seed=1, width=1))
        with pytest.raises(InvalidArgumentError, match="already registered"):
            register_scheme("banded", banded, summary="", norm_guarantee="", radius_guarantee="")
        register_scheme(
            "banded", lambda n, g: torch.ones(n, 1), summary="", norm_guarantee="", radius_guarantee="", replace=True
        )
        with pytest.raises(ShapeError, match=r"scheme 'banded' must return an \(6, 6\) tensor, got \(6, 1\)"):
            init_weights("banded", 6)
        register_scheme(
            "banded",
            lambda n, g: torch.full((n, n), math.inf),
            summary="",
            norm_guarantee="",
            radius_guarantee="",
            replace=True,
        )
        with pytest.raises(NonFiniteError, match="banded"):
            init_weights("banded", 3)
    finally:
        SCHEMES.pop("banded", None)


@pytest.mark.parametrize("name", ["", "has space", "a,b", "a=b"])
def test_register_refuses_bad_names(name):
    with pytest.raises(InvalidArgumentError, match="scheme name"):
        register_scheme(name, lambda n, g: torch.eye(n), summary="", norm_guarantee="", radius_guarantee="")


def test_register_refuses_a_non_callable():
    with pytest.raises(ArgumentTypeError, match="callable"):
        register_scheme("x", 3, summary="", norm_guarantee="", radius_guarantee="")  # type: ignore[arg-type]


def test_every_scheme_documents_its_guarantees():
    for scheme in SCHEMES.values():
        assert scheme.summary and scheme.norm_guarantee and scheme.radius_guarantee


@pytest.mark.parametrize("n", [2, 3, 5, 8, 16])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_sparse_echo_state_redraws_nilpotent_patterns_at_small_n(n, seed):
    # At n·density ≲ 1 most patterns have no cycle (n = 8, seeds 1–3 and n = 16, seed 2 did): they are redrawn.
    W = init_weights("sparse_echo_state", n, seed=seed, rho=0.9)
    assert float(np.abs(np.linalg.eigvals(W.numpy())).max()) == pytest.approx(0.9, rel=1e-10)


def test_scale_to_threshold_refuses_a_scale_beyond_the_dtype():
    with pytest.raises(InvalidArgumentError, match=r"delta/gamma = 1e\+60.*overflow float32.*float64 weights"):
        scale_to_threshold(_randn(4, 4, dtype=torch.float32), delta=1e30, gamma=1e-30)


@pytest.mark.parametrize(("dtype", "delta"), [(torch.float32, 1e-40), (torch.float32, 1e-50), (torch.float64, 1e-320)])
def test_scale_to_threshold_refuses_a_scale_below_the_dtype(dtype, delta):
    # Silently, W came back subnormal (‖W‖₂ off by 4e-6 relative at 1e-40) or all zeros (1e-50).
    name = str(dtype).removeprefix("torch.")
    with pytest.raises(InvalidArgumentError, match=rf"delta/gamma = .*underflow {name}.*smallest normal"):
        scale_to_threshold(_randn(4, 4, dtype=dtype), delta=delta, gamma=1.0)


def test_scale_to_threshold_keeps_small_normal_scales():
    out = scale_to_threshold(_randn(4, 4, dtype=torch.float32), delta=1e-30, gamma=1.0)
    assert float(_np_norm(out)) == pytest.approx(1e-30, rel=REL_TOL[torch.float32])


@pytest.mark.parametrize("size", [1e-310, 1e-200, 1e200, 1e300])
def test_scale_to_threshold_handles_extreme_entries(size):
    # LAPACK's SVD fails on subnormal entries (1e-310) and overflows on huge ones unless W is rescaled first.
    W = _randn(6, 6) * size
    assert float(_np_norm(scale_to_threshold(W, delta=0.9, gamma=1.0))) == pytest.approx(0.9, rel=1e-13)
    assert float(spectral_norm(W)) == pytest.approx(float(_np_norm(W / size)) * size, rel=1e-12)


@pytest.mark.parametrize("W", [torch.zeros(0, 0), torch.zeros(2, 0, 0)])
def test_empty_matrices_are_refused_by_name(W):
    with pytest.raises(ShapeError, match="W must hold at least one unit"):
        spectral_norm(W)
    with pytest.raises(ShapeError, match="W must hold at least one unit"):
        scale_to_threshold(W, delta=0.9, gamma=1.0)


@pytest.mark.parametrize(("seed", "bound"), [(2**63, r"≤ 2\^63 - 1"), (-1, "≥ 0")])
def test_a_seed_outside_0_to_2_63_minus_1_is_refused_by_name(seed, bound):
    with pytest.raises(InvalidArgumentError, match=rf"^seed must be {bound}, got {seed}$"):
        init_weights("gaussian", 4, seed=seed)


def test_a_non_numeric_scheme_parameter_default_is_refused_and_not_registered():
    with pytest.raises(ArgumentTypeError, match="params of scheme 'texty'"):
        register_scheme(
            "texty",
            lambda n, g, a: torch.eye(n, dtype=torch.float64),
            summary="",
            norm_guarantee="",
            radius_guarantee="",
            params={"a": "x"},
        )
    assert "texty" not in SCHEMES
