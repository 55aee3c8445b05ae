"""Tests of rnnstab.identities.induction_check: σ(h_t) = g_t for the two forms of the vanilla RNN.

The identity holds exactly in exact arithmetic, so the measured value is pure rounding. To show that the quantity
measured *can* fail, the test also builds a wrong pre-activation recursion by hand and measures the same
|σ(h_t) − g_t| on it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rnnstab import VanillaRNN
from rnnstab.identities import induction_check

#: σ written in the test, independently of the library.
SIGMA = {
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "relu": torch.relu,
    "sin": torch.sin,
    "gelu": lambda z: 0.5 * z * (1.0 + torch.erf(z / math.sqrt(2.0))),
    "softsign": lambda z: z / (1.0 + z.abs()),
    "hardtanh": lambda z: z.clamp(-1.0, 1.0),
}


def _net(name, *, n=8, m=3, batch=None, dtype=torch.float64, seed=0, norm=1.5):
    """Random network; ‖W‖₂ = norm (numpy) — deliberately > 1/γ for most σ, so nothing is damped away."""
    g = torch.Generator().manual_seed(seed)
    lead = () if batch is None else (batch,)
    W = torch.randn(*lead, n, n, generator=g, dtype=torch.float64)
    W = W * torch.as_tensor(norm / np.linalg.norm(W.numpy(), 2, axis=(-2, -1)))[..., None, None]
    U = torch.randn(*lead, n, m, generator=g, dtype=torch.float64)
    b = torch.randn(*lead, n, generator=g, dtype=torch.float64)
    return VanillaRNN(W.to(dtype), U.to(dtype), b.to(dtype), activation=name)


def _inputs(batch=5, T=30, m=3, *, dtype=torch.float64, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, T, m, generator=g, dtype=torch.float64).to(dtype)
    h0 = 2.0 * torch.randn(batch, 8, generator=g, dtype=torch.float64).to(dtype)
    return x, h0


@pytest.mark.parametrize("with_h0", [False, True])
@pytest.mark.parametrize("name", ["tanh", "sigmoid", "relu", "sin", "gelu", "softsign", "hardtanh"])
def test_induction_check_float64(name, with_h0):
    rnn = _net(name, norm=0.9 if name in ("relu", "gelu") else 1.5)  # unbounded σ: keep the states O(1)
    x, h0 = _inputs()
    value = induction_check(rnn, x, h0=h0 if with_h0 else None)
    assert isinstance(value, float)
    # Pure rounding: at most a few float64 ulps of O(1) states (≈ 1e-16 each); 1e-12 is four orders above that.
    assert 0.0 <= value < 1e-12


@pytest.mark.parametrize("name", ["tanh", "sigmoid", "sin", "softsign", "hardtanh"])
def test_induction_check_float32_bounded(name):
    rnn = _net(name, dtype=torch.float32)
    x, h0 = _inputs(dtype=torch.float32)
    # Bounded σ keep |g_t| ≤ 1, so any rounding difference is a few float32 ulps (6e-8 each) of O(1) values, and
    # σ is 1-Lipschitz-or-less, so it cannot amplify it; 1e-5 is > 100 ulps.
    assert induction_check(rnn, x, h0=h0) < 1e-5


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_induction_check_batched_networks(dtype):
    rnn = _net("tanh", batch=5, dtype=dtype, seed=3)
    x, h0 = _inputs(dtype=dtype)
    # Same bounds as above for the respective dtype.
    assert induction_check(rnn, x, h0=h0) < (1e-5 if dtype == torch.float32 else 1e-12)


@pytest.mark.parametrize("name", ["tanh", "sigmoid", "sin", "gelu"])
def test_induction_check_measures_the_documented_quantity(name):
    # induction_check must be max |σ(h_t) − g_t| over t, batch, units: recompute it from the two runs with σ from
    # the test, and also against a hand-written correct pre-activation recursion.
    rnn = _net(name, norm=0.9)
    x, h0 = _inputs()
    W, U, b = rnn.W, rnn.U, rnn.b
    sigma = SIGMA[name]
    h = h0.clone()
    pre = []
    for t in range(x.shape[1]):
        h = sigma(h) @ W.T + x[:, t] @ U.T + b
        pre.append(h)
    pre = torch.stack(pre, dim=1)
    post = rnn.run(x, h0=h0)
    # Hand recursion vs library: different summation order only, a few ulps (~1e-16) of O(1) states per step;
    # γ‖W‖₂ ≤ 0.9 · 1.13 ≈ 1.02, so over T = 30 steps they grow at most 1.02³⁰ < 2×: far below 1e-12.
    assert float((sigma(pre) - post).abs().max()) < 1e-12
    direct = float((sigma(rnn.run_preactivation(x, h0=h0)) - post).abs().max())
    # σ from the test vs the library's σ differ by rounding only (gelu via erf here, torch's kernel there).
    assert induction_check(rnn, x, h0=h0) == pytest.approx(direct, abs=1e-14)


@pytest.mark.parametrize("name", ["tanh", "sigmoid", "relu", "sin", "gelu"])
def test_the_measured_quantity_can_fail(name):
    # A *wrong* pre-activation recursion that forgets σ inside, h_t = W h_{t-1} + U x_t + b, measured with the same
    # max |σ(h_t) − g_t|: the quantity is far from zero, so a tiny induction_check value is evidence, not a tautology.
    rnn = _net(name, norm=0.9)
    x, h0 = _inputs()
    W, U, b = rnn.W, rnn.U, rnn.b
    sigma = SIGMA[name]
    post = rnn.run(x, h0=h0)

    h = h0.clone()
    wrong = []
    for t in range(x.shape[1]):
        h = h @ W.T + x[:, t] @ U.T + b  # σ missing
        wrong.append(h)
    wrong = torch.stack(wrong, dim=1)
    error = float((sigma(wrong) - post).abs().max())
    # O(1) states with O(1) inputs: the missing nonlinearity shifts them by O(0.1–1); 1e-2 is 10 orders above the
    # float64 rounding level that the correct recursion reaches.
    assert error > 1e-2

    # Another plausible mistake: starting from g_0 = h_0 instead of g_0 = σ(h_0) (h_0 has entries of both signs and
    # magnitude up to ~6, where every σ here differs from the identity by ≫ 1e-2).
    h1_wrong = h0 @ W.T + x[:, 0] @ U.T + b
    assert float((sigma(h1_wrong) - post[:, 0]).abs().max()) > 1e-2


def test_induction_check_with_default_h0_and_single_step():
    rnn = _net("sigmoid")
    x, _ = _inputs(T=1)
    assert induction_check(rnn, x) < 1e-12
