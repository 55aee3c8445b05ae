"""Tests of rnnstab.rnn.VanillaRNN against a hand-written recursion and against torch.nn.RNN itself."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rnnstab import (
    ArgumentTypeError,
    InvalidArgumentError,
    NonFiniteError,
    ShapeError,
    VanillaRNN,
    get_activation,
)

DTYPES = [torch.float32, torch.float64]

#: σ written independently of the library (gelu through erf, not torch.nn.functional.gelu).
SIGMA = {
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "relu": torch.relu,
    "sin": torch.sin,
    "identity": lambda z: z,
    "gelu": lambda z: 0.5 * z * (1.0 + torch.erf(z / math.sqrt(2.0))),
}
#: sup|σ'| in closed form, used only to build contractive test networks.
GAMMA = {"tanh": 1.0, "sigmoid": 0.25, "relu": 1.0, "sin": 1.0, "identity": 1.0, "gelu": 1.1289}

# Tolerances for comparing two float implementations of the same recursion that differ only in summation order
# (addmm/baddbmm versus separate matmuls and adds, or torch.nn.RNN's b_ih + b_hh kept apart). With test networks
# scaled to γ‖W‖₂ ≤ 0.9, an error made at one step is damped by 0.9 per later step, so the accumulated difference is
# ≤ 10× the per-step rounding: per step a few ulps of |z| = O(5) (float64: ~1e-15, float32: ~1e-6). 1e-12 / 2e-5
# leave margin on top. Torch modules with default init are not contractive (‖W_hh‖₂ ≈ 1.1) but run only T = 12 steps.
TOL = {torch.float64: {"rtol": 1e-12, "atol": 1e-12}, torch.float32: {"rtol": 2e-5, "atol": 2e-5}}


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _net(n=6, m=3, *, batch=None, gamma=1.0, dtype=torch.float64, seed=0, bias=True):
    """Random W (‖W‖₂ = 0.9/γ, by numpy), U and b; batched when ``batch`` is given."""
    g = _gen(seed)
    lead = () if batch is None else (batch,)
    W = torch.randn(*lead, n, n, generator=g, dtype=torch.float64)
    norms = np.linalg.norm(W.numpy(), 2, axis=(-2, -1))
    W = W * torch.as_tensor(0.9 / gamma / norms)[..., None, None]
    U = torch.randn(*lead, n, m, generator=g, dtype=torch.float64) / math.sqrt(m)
    b = 0.3 * torch.randn(*lead, n, generator=g, dtype=torch.float64) if bias else None

    def cast(t):
        return None if t is None else t.to(dtype)

    return cast(W), cast(U), cast(b)


def _x(batch=4, T=15, m=3, *, dtype=torch.float64, seed=1):
    return torch.randn(batch, T, m, generator=_gen(seed), dtype=torch.float64).to(dtype)


def ref_run(W, U, b, x, sigma, h0=None):
    """g_t = σ(W g_{t-1} + U x_t + b), g_0 = σ(h_0) with h_0 = 0 by default; one network, (batch, T, m) inputs."""
    batch, T, _ = x.shape
    n = W.shape[0]
    h = torch.zeros(batch, n, dtype=W.dtype) if h0 is None else h0.expand(batch, n)
    g = sigma(h)
    out = []
    for t in range(T):
        z = g @ W.T
        if U is not None:
            z = z + x[:, t] @ U.T
        if b is not None:
            z = z + b
        g = sigma(z)
        out.append(g)
    return torch.stack(out, dim=1)


def ref_run_pre(W, U, b, x, sigma, h0=None):
    """h_t = W σ(h_{t-1}) + U x_t + b, h_0 = 0 by default."""
    batch, T, _ = x.shape
    n = W.shape[0]
    h = torch.zeros(batch, n, dtype=W.dtype) if h0 is None else h0.expand(batch, n)
    out = []
    for t in range(T):
        h = sigma(h) @ W.T + x[:, t] @ U.T + (0 if b is None else b)
        out.append(h)
    return torch.stack(out, dim=1)


# ---------------------------------------------------------------------------------------------------------------
# run against the hand-written loop


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(SIGMA))
def test_run_matches_hand_written_loop(name, dtype):
    W, U, b = _net(gamma=GAMMA[name], dtype=dtype)
    x = _x(dtype=dtype)
    rnn = VanillaRNN(W, U, b, activation=name)
    got = rnn.run(x)
    assert got.shape == (4, 15, 6)
    assert got.dtype == dtype
    torch.testing.assert_close(got, ref_run(W, U, b, x, SIGMA[name]), **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_default_initial_state_is_sigma_of_zero(dtype):
    # sigmoid(0) = ½ ≠ 0: starting from g_0 = 0 instead would change g_1 by W·½ (large), so this pins g_0 = σ(0).
    W, U, b = _net(gamma=0.25, dtype=dtype)
    x = _x(T=1, dtype=dtype)
    got = VanillaRNN(W, U, b, activation="sigmoid").run(x)
    want = torch.sigmoid(0.5 * W.sum(1) + x[:, 0] @ U.T + b)  # W·(½, …, ½) = ½ row sums
    torch.testing.assert_close(got[:, 0], want, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("per_sequence", [False, True])
def test_run_with_h0(per_sequence, dtype):
    W, U, b = _net(dtype=dtype)
    x = _x(dtype=dtype)
    h0 = torch.randn(4 if per_sequence else 1, 6, generator=_gen(5), dtype=torch.float64).to(dtype)
    h0_arg = h0 if per_sequence else h0[0]
    rnn = VanillaRNN(W, U, b, activation="tanh")
    torch.testing.assert_close(rnn.run(x, h0=h0_arg), ref_run(W, U, b, x, torch.tanh, h0=h0), **TOL[dtype])
    torch.testing.assert_close(
        rnn.run_preactivation(x, h0=h0_arg), ref_run_pre(W, U, b, x, torch.tanh, h0=h0), **TOL[dtype]
    )


def test_run_without_bias_and_autonomous():
    W, U, _ = _net(bias=False)
    x = _x()
    torch.testing.assert_close(VanillaRNN(W, U, None).run(x), ref_run(W, U, None, x, torch.tanh), **TOL[torch.float64])
    # autonomous: no U, inputs of size 0; only h0 and b drive it
    b = torch.linspace(-1, 1, 6, dtype=torch.float64)
    h0 = torch.linspace(2, -2, 6, dtype=torch.float64)
    rnn = VanillaRNN(W, None, b)
    assert rnn.input_size == 0
    x0 = torch.zeros(2, 10, 0, dtype=torch.float64)
    torch.testing.assert_close(rnn.run(x0, h0=h0), ref_run(W, None, b, x0, torch.tanh, h0=h0), **TOL[torch.float64])


def test_run_with_scaled_and_callable_activations():
    W, U, b = _net(gamma=0.5)
    x = _x()
    got = VanillaRNN(W, U, b, activation=get_activation("tanh", gamma=0.5)).run(x)
    torch.testing.assert_close(got, ref_run(W, U, b, x, lambda z: torch.tanh(0.5 * z)), **TOL[torch.float64])
    got = VanillaRNN(W, U, b, activation=torch.nn.functional.softsign).run(x)
    torch.testing.assert_close(got, ref_run(W, U, b, x, lambda z: z / (1 + z.abs())), **TOL[torch.float64])


def test_run_casts_inputs_to_the_network_dtype():
    W, U, b = _net()
    x = _x(dtype=torch.float32)
    rnn = VanillaRNN(W, U, b)
    got = rnn.run(x)
    assert got.dtype == torch.float64
    assert got.equal(rnn.run(x.double()))  # float32 → float64 is exact


def test_run_does_not_track_or_change_inputs():
    W, U, b = _net()
    x = _x()
    x_copy = x.clone()
    VanillaRNN(W, U, b).run(x)
    assert x.equal(x_copy)


# ---------------------------------------------------------------------------------------------------------------
# batched networks


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["tanh", "relu", "sigmoid"])
def test_batched_networks_equal_separate_runs(name, dtype):
    B = 5
    W, U, b = _net(batch=B, gamma=GAMMA[name], dtype=dtype, seed=3)
    x = _x(batch=B, dtype=dtype)
    rnn = VanillaRNN(W, U, b, activation=name)
    assert rnn.num_networks == B
    got = rnn.run(x)
    assert got.shape == (B, 15, 6)
    for i in range(B):
        want = ref_run(W[i], U[i], b[i], x[i : i + 1], SIGMA[name])
        torch.testing.assert_close(got[i : i + 1], want, **TOL[dtype])
        # and the library's own unbatched path agrees with its batched path
        single = VanillaRNN(W[i], U[i], b[i], activation=name).run(x[i : i + 1])
        torch.testing.assert_close(got[i : i + 1], single, **TOL[dtype])


@pytest.mark.parametrize("batched", [False, True])
def test_recur_into_out_equals_recur(batched):
    """The forward pass writes each step into its chunk with ``out=``; it must be the plain step, bit for bit."""
    W, U, b = _net(batch=4 if batched else None, seed=6)
    rnn = VanillaRNN(W, U, b, activation="tanh")
    state, drive = torch.randn(4, W.shape[-1], dtype=W.dtype), torch.randn(4, W.shape[-1], dtype=W.dtype)
    out = torch.empty_like(drive)
    returned = rnn.recur(state, drive, out=out)
    assert returned.data_ptr() == out.data_ptr()
    assert torch.equal(out, rnn.recur(state, drive))
    want = torch.einsum("bij,bj->bi", W.expand(4, -1, -1), state)
    torch.testing.assert_close(out, want + drive, rtol=1e-12, atol=1e-12)


def test_batched_networks_preactivation_and_h0():
    B = 3
    W, U, b = _net(batch=B, seed=4)
    x = _x(batch=B)
    h0 = torch.randn(B, 6, generator=_gen(9), dtype=torch.float64)
    rnn = VanillaRNN(W, U, b)
    pre = rnn.run_preactivation(x, h0=h0)
    for i in range(B):
        want = ref_run_pre(W[i], U[i], b[i], x[i : i + 1], torch.tanh, h0=h0[i])
        torch.testing.assert_close(pre[i : i + 1], want, **TOL[torch.float64])


@pytest.mark.parametrize("case", ["shared_b", "default_b", "shared_U", "autonomous"])
def test_batched_networks_with_shared_U_or_b(case):
    B = 3
    W, U, b = _net(batch=B, seed=4)
    x = _x(batch=B)
    if case == "shared_b":
        b = b[0]
    elif case == "default_b":
        b = None
    elif case == "shared_U":
        U = U[0]
    else:
        U, b, x = None, None, torch.zeros(B, 5, 0, dtype=torch.float64)
    got = VanillaRNN(W, U, b).run(x)
    for i in range(B):
        Ui = None if U is None else (U if U.dim() == 2 else U[i])
        bi = None if b is None else (b if b.dim() == 1 else b[i])
        torch.testing.assert_close(
            got[i : i + 1], ref_run(W[i], Ui, bi, x[i : i + 1], torch.tanh), **TOL[torch.float64]
        )


# ---------------------------------------------------------------------------------------------------------------
# run_preactivation


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(SIGMA))
def test_run_preactivation(name, dtype):
    W, U, b = _net(gamma=GAMMA[name], dtype=dtype, seed=2)
    x = _x(dtype=dtype)
    rnn = VanillaRNN(W, U, b, activation=name)
    h = rnn.run_preactivation(x)
    g = rnn.run(x)
    assert h.shape == g.shape
    # σ(h_t) = g_t by induction; here σ is applied by the test, and both sides are rounded alike (see TOL).
    torch.testing.assert_close(SIGMA[name](h), g, **TOL[dtype])
    torch.testing.assert_close(h, ref_run_pre(W, U, b, x, SIGMA[name]), **TOL[dtype])


# ---------------------------------------------------------------------------------------------------------------
# torch.nn.RNN interoperability


def _module_output(module, x, batch_first, hx=None):
    out, _ = module(x if batch_first else x.transpose(0, 1), hx)
    return out if batch_first else out.transpose(0, 1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_from_torch_matches_module(nonlinearity, bias, batch_first, dtype):
    torch.manual_seed(0)
    module = torch.nn.RNN(3, 8, nonlinearity=nonlinearity, bias=bias, batch_first=batch_first, dtype=dtype)
    x = _x(batch=4, T=12, m=3, dtype=dtype)
    rnn = VanillaRNN.from_torch(module)
    assert rnn.dtype == dtype
    assert rnn.activation.name == nonlinearity
    assert (rnn.hidden_size, rnn.input_size, rnn.num_networks) == (8, 3, None)
    assert rnn.W.equal(module.weight_hh_l0.detach())
    assert rnn.U.equal(module.weight_ih_l0.detach())
    if bias:
        assert rnn.b.equal((module.bias_ih_l0 + module.bias_hh_l0).detach())
    else:
        assert not rnn.b.any()
    with torch.no_grad():
        want = _module_output(module, x, batch_first)
    torch.testing.assert_close(rnn.run(x), want, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_from_torch_h0_is_a_preactivation(dtype):
    # nn.RNN's hx is the post-activation g_0; rnnstab's h0 is the pre-activation with g_0 = tanh(h_0).
    torch.manual_seed(1)
    module = torch.nn.RNN(3, 8, batch_first=True, dtype=dtype)
    x = _x(batch=4, T=12, dtype=dtype)
    h0 = torch.randn(4, 8, generator=_gen(2), dtype=torch.float64).to(dtype)
    with torch.no_grad():
        want = _module_output(module, x, True, hx=torch.tanh(h0)[None])
    torch.testing.assert_close(VanillaRNN.from_torch(module).run(x, h0=h0), want, **TOL[dtype])


def test_from_torch_copies_the_weights():
    module = torch.nn.RNN(2, 4, dtype=torch.float64)
    rnn = VanillaRNN.from_torch(module)
    W = rnn.W.clone()
    with torch.no_grad():
        module.weight_hh_l0.add_(1.0)
    assert rnn.W.equal(W)
    assert not rnn.W.requires_grad


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_from_torch_multilayer(nonlinearity, dtype):
    torch.manual_seed(2)
    module = torch.nn.RNN(3, 8, num_layers=2, nonlinearity=nonlinearity, batch_first=True, dtype=dtype)
    x = _x(batch=4, T=12, dtype=dtype)
    g0 = VanillaRNN.from_torch(module, layer=0).run(x)
    layer1 = VanillaRNN.from_torch(module, layer=1)
    assert layer1.input_size == 8
    with torch.no_grad():
        want = _module_output(module, x, True)
    torch.testing.assert_close(layer1.run(g0), want, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch_first", [True, False])
def test_from_torch_bidirectional(batch_first, dtype):
    torch.manual_seed(3)
    n = 8
    module = torch.nn.RNN(3, n, bidirectional=True, batch_first=batch_first, dtype=dtype)
    x = _x(batch=4, T=12, dtype=dtype)
    with torch.no_grad():
        out = _module_output(module, x, batch_first)
    assert out.shape == (4, 12, 2 * n)
    fwd = VanillaRNN.from_torch(module).run(x)
    rev = VanillaRNN.from_torch(module, reverse=True).run(x.flip(1)).flip(1)
    torch.testing.assert_close(fwd, out[..., :n], **TOL[dtype])
    torch.testing.assert_close(rev, out[..., n:], **TOL[dtype])


def test_from_torch_bidirectional_two_layers():
    torch.manual_seed(4)
    n = 5
    module = torch.nn.RNN(3, n, num_layers=2, bidirectional=True, batch_first=True, dtype=torch.float64)
    x = _x(batch=2, T=9)
    with torch.no_grad():
        out = _module_output(module, x, True)

    def layer_out(layer, inp):
        fwd = VanillaRNN.from_torch(module, layer=layer).run(inp)
        rev = VanillaRNN.from_torch(module, layer=layer, reverse=True).run(inp.flip(1)).flip(1)
        return torch.cat([fwd, rev], dim=-1)

    torch.testing.assert_close(layer_out(1, layer_out(0, x)), out, **TOL[torch.float64])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["tanh", "relu"])
def test_to_torch_round_trip(name, dtype):
    W, U, b = _net(dtype=dtype, seed=6)
    x = _x(dtype=dtype)
    rnn = VanillaRNN(W, U, b, activation=name)
    module = rnn.to_torch()
    assert isinstance(module, torch.nn.RNN)
    assert module.batch_first
    assert module.nonlinearity == name
    assert (module.input_size, module.hidden_size, module.num_layers) == (3, 6, 1)
    assert module.weight_hh_l0.dtype == dtype
    with torch.no_grad():
        out, h_last = module(x)
    # torch.nn.RNN as the independent reference, and the hand-written loop
    torch.testing.assert_close(out, ref_run(W, U, b, x, SIGMA[name]), **TOL[dtype])
    torch.testing.assert_close(h_last[0], out[:, -1])
    # back again: the same tensors exactly (bias_hh = 0, so b_ih + b_hh = b with no rounding)
    back = VanillaRNN.from_torch(module)
    assert back.W.equal(W)
    assert back.U.equal(U)
    assert back.b.equal(b)
    assert back.activation.name == name


def test_to_torch_without_bias_gives_zero_bias():
    W, U, _ = _net(bias=False)
    module = VanillaRNN(W, U).to_torch()
    assert not module.bias_ih_l0.any()
    assert not module.bias_hh_l0.any()


# ---------------------------------------------------------------------------------------------------------------
# properties, to(), delta()


def test_properties_delta_and_to():
    W, U, b = _net(batch=2, seed=8)
    rnn = VanillaRNN(W, U, b, activation="sigmoid")
    assert (rnn.hidden_size, rnn.input_size, rnn.num_networks) == (6, 3, 2)
    assert rnn.dtype == torch.float64
    assert rnn.device == torch.device("cpu")
    # δ = γ‖W‖₂ with γ = ¼ (closed form) and ‖W‖₂ from numpy: float64 SVDs agree to ~1e-14.
    np.testing.assert_allclose(rnn.delta().numpy(), 0.25 * np.linalg.norm(W.numpy(), 2, axis=(-2, -1)), rtol=1e-12)
    assert rnn.to() is rnn
    assert rnn.to(dtype=torch.float64) is rnn
    r32 = rnn.to(dtype="float32")
    assert r32.dtype == torch.float32
    assert r32.W.equal(W.float())
    assert r32.activation is rnn.activation
    assert rnn.to(dtype=torch.float32, device="cpu").dtype == torch.float32


@pytest.mark.parametrize("bad", ["float16", "double", torch.float16, torch.int64, 3])
def test_to_bad_dtype(bad):
    W, U, b = _net()
    with pytest.raises(InvalidArgumentError, match="dtype"):
        VanillaRNN(W, U, b).to(dtype=bad)


@pytest.mark.parametrize(
    ("bad", "exc"),
    [("tpu", InvalidArgumentError), ("meta", InvalidArgumentError), (3, ArgumentTypeError)]
    # a torch.device is checked as its name: torch would otherwise fail deep inside .to(), naming nothing
    + [
        (torch.device("meta"), InvalidArgumentError),
        (torch.device("cuda", torch.cuda.device_count()), InvalidArgumentError),
    ]
    + (
        []
        if torch.cuda.is_available()
        else [("cuda", InvalidArgumentError), (torch.device("cuda"), InvalidArgumentError)]
    ),
)
def test_to_bad_device(bad, exc):
    W, U, b = _net()
    with pytest.raises(exc, match="device"):
        VanillaRNN(W, U, b).to(device=bad)


# ---------------------------------------------------------------------------------------------------------------
# constructor errors

F64 = torch.float64


def _ok():
    return _net(n=4, m=2)


@pytest.mark.parametrize(
    ("make", "exc", "match"),
    [
        (lambda W, U, b: (torch.randn(4, 5, dtype=F64), U, b), ShapeError, r"^W must be square"),
        (lambda W, U, b: (torch.randn(2, 4, 5, dtype=F64), U, b), ShapeError, r"^W must be square"),
        (lambda W, U, b: (torch.randn(4, dtype=F64), U, b), ShapeError, r"^W must be 2-D or 3-D"),
        (lambda W, U, b: (torch.randn(1, 1, 4, 4, dtype=F64), U, b), ShapeError, r"^W must be 2-D or 3-D"),
        (lambda W, U, b: (torch.zeros(0, 0, dtype=F64), None, None), ShapeError, r"^W must hold at least one unit"),
        (
            lambda W, U, b: (torch.zeros(0, 4, 4, dtype=F64), None, None),
            ShapeError,
            r"one network, got shape \(0, 4, 4\)",
        ),
        (lambda W, U, b: (W.numpy(), U, b), ArgumentTypeError, r"^W must be a torch.Tensor"),
        (lambda W, U, b: (W.long(), U, b), ArgumentTypeError, r"^W must be a floating-point"),
        (lambda W, U, b: (W, torch.randn(5, 2, dtype=F64), b), ShapeError, r"^U must have 4 rows"),
        (lambda W, U, b: (W, torch.randn(4, dtype=F64), b), ShapeError, r"^U must be 2-D or 3-D"),
        (lambda W, U, b: (W, [[1.0]], b), ArgumentTypeError, r"^U must be a torch.Tensor"),
        (lambda W, U, b: (W, U, torch.randn(5, dtype=F64)), ShapeError, r"^b must have 4 entries"),
        (lambda W, U, b: (W, U, torch.randn(4, 1, 1, dtype=F64)), ShapeError, r"^b must be 1-D or 2-D"),
        (lambda W, U, b: (W, U, 0.0), ArgumentTypeError, r"^b must be a torch.Tensor"),
        # batch mismatches: W unbatched but U / b batched, and batched with different B
        (lambda W, U, b: (W, U.expand(3, 4, 2), b), ShapeError, r"^U has a batch of 3 networks but W has none"),
        (lambda W, U, b: (W, U, b.expand(3, 4)), ShapeError, r"^b has a batch of 3 networks but W has none"),
        (lambda W, U, b: (W.expand(2, 4, 4), U.expand(3, 4, 2), b.expand(2, 4)), ShapeError, r"^U has a batch of 3"),
        (lambda W, U, b: (W.expand(2, 4, 4), U.expand(2, 4, 2), b.expand(3, 4)), ShapeError, r"^b has a batch of 3"),
        # dtype mismatches
        (lambda W, U, b: (W, U.float(), b), ArgumentTypeError, r"^U is torch.float32 on cpu but W is torch.float64"),
        (lambda W, U, b: (W, U, b.float()), ArgumentTypeError, r"^b is torch.float32 on cpu but W is torch.float64"),
        (lambda W, U, b: (W.float(), U, b), ArgumentTypeError, r"^U is torch.float64 on cpu but W is torch.float32"),
    ],
)
def test_constructor_errors(make, exc, match):
    W, U, b = make(*_ok())
    with pytest.raises(exc, match=match):
        VanillaRNN(W, U, b)


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
@pytest.mark.parametrize("layout", ["coo", "csr"])
def test_sparse_weights_are_refused_naming_the_argument(layout):
    # a sparse reservoir W made torch's finiteness check fail with NotImplementedError, naming nothing
    W, U, b = _ok()
    sparse = W.to_sparse() if layout == "coo" else W.to_sparse_csr()
    with pytest.raises(ArgumentTypeError, match=r"^W must be a dense tensor, got layout .*W.to_dense\(\)"):
        VanillaRNN(sparse, U, b)


@pytest.mark.parametrize("arg", ["W", "U", "b"])
def test_to_a_dtype_too_narrow_for_the_weights_names_the_weight(arg):
    # float64 weights beyond float32's range became ±inf in the cast and were reported as non-finite *inputs*
    tensors = dict(zip(("W", "U", "b"), _ok(), strict=True))
    tensors[arg] = tensors[arg] * 1e300
    message = rf"^{arg} does not fit in float32: its largest entry is [0-9.]+e\+(299|300)"
    with pytest.raises(InvalidArgumentError, match=message):
        VanillaRNN(**tensors).to(dtype=torch.float32)


@pytest.mark.parametrize("method", ["run", "run_preactivation"])
def test_inputs_and_h0_too_large_for_the_dtype_are_refused(method):
    # cast to a float32 network they became inf: run returned inf/NaN states without a word, and jacobian_norms
    # reported an exploding state "at step 1: use at most 0 steps"
    rnn = VanillaRNN(*(t.float() for t in _ok()))
    x = _x(T=3, m=2)
    with pytest.raises(InvalidArgumentError, match=r"^x does not fit in float32"):
        getattr(rnn, method)(x * 1e300)
    with pytest.raises(InvalidArgumentError, match=r"^h0 does not fit in float32"):
        getattr(rnn, method)(x, h0=torch.full((4,), 1e39, dtype=F64))
    assert torch.isfinite(getattr(rnn, method)(x * 1e30)).all()  # large but representable: fine


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("arg", ["W", "U", "b"])
def test_constructor_non_finite(arg, bad):
    tensors = dict(zip(("W", "U", "b"), _ok(), strict=True))
    tensors[arg] = tensors[arg].clone()
    tensors[arg].view(-1)[1] = bad
    with pytest.raises(NonFiniteError, match=rf"^{arg} holds 1 non-finite"):
        VanillaRNN(**tensors)


def test_constructor_bad_activation():
    with pytest.raises(InvalidArgumentError, match=r"unknown activation 'tanhh'.*tanh"):
        VanillaRNN(*_ok(), activation="tanhh")


# ---------------------------------------------------------------------------------------------------------------
# input errors (run and run_preactivation share them)


@pytest.mark.parametrize("method", ["run", "run_preactivation"])
@pytest.mark.parametrize(
    ("x", "exc", "match"),
    [
        (torch.randn(5, 2, dtype=F64), ShapeError, r"^x must be 3-D"),
        (torch.randn(1, 3, 5, 2, dtype=F64), ShapeError, r"^x must be 3-D"),
        (torch.randn(3, 0, 2, dtype=F64), ShapeError, r"^x has T = 0 time steps"),
        (torch.randn(3, 5, 4, dtype=F64), ShapeError, r"^x must have input size 2"),
        (torch.randn(0, 5, 2, dtype=F64), ShapeError, r"^x has an empty batch"),
        (torch.full((3, 5, 2), float("nan"), dtype=F64), NonFiniteError, r"^x holds 30 non-finite"),
        (torch.ones(3, 5, 2, dtype=torch.int64), ArgumentTypeError, r"^x must be a floating-point"),
        (np.ones((3, 5, 2)), ArgumentTypeError, r"^x must be a torch.Tensor"),
    ],
)
def test_input_errors(method, x, exc, match):
    rnn = VanillaRNN(*_ok())
    with pytest.raises(exc, match=match):
        getattr(rnn, method)(x)


@pytest.mark.parametrize("method", ["run", "run_preactivation"])
def test_input_error_batch_versus_networks(method):
    W, U, b = _ok()
    rnn = VanillaRNN(W.expand(3, 4, 4), U.expand(3, 4, 2), b.expand(3, 4))
    with pytest.raises(ShapeError, match=r"^x has a batch of 2 sequences but W holds 3 networks"):
        getattr(rnn, method)(torch.randn(2, 5, 2, dtype=F64))


def test_input_error_autonomous_network_hints_at_zero_inputs():
    W, _, b = _ok()
    with pytest.raises(ShapeError, match=r"^x must have input size 0.*torch.zeros\(batch, T, 0\)"):
        VanillaRNN(W, None, b).run(torch.randn(2, 5, 1, dtype=F64))


@pytest.mark.parametrize("method", ["run", "run_preactivation"])
@pytest.mark.parametrize(
    ("h0", "exc", "match"),
    [
        (torch.zeros(5, dtype=F64), ShapeError, r"^h0 must be \(4,\) or \(3, 4\)"),
        (torch.zeros(2, 4, dtype=F64), ShapeError, r"^h0 must be \(4,\) or \(3, 4\)"),
        (torch.zeros(1, 3, 4, dtype=F64), ShapeError, r"^h0 must be 1-D or 2-D"),
        (torch.tensor([0.0, float("nan"), 0.0, 0.0], dtype=F64), NonFiniteError, r"^h0 holds 1 non-finite"),
        ([0.0] * 4, ArgumentTypeError, r"^h0 must be a torch.Tensor"),
    ],
)
def test_h0_errors(method, h0, exc, match):
    rnn = VanillaRNN(*_ok())
    with pytest.raises(exc, match=match):
        getattr(rnn, method)(torch.randn(3, 5, 2, dtype=F64), h0=h0)


# ---------------------------------------------------------------------------------------------------------------
# from_torch / to_torch errors


@pytest.mark.parametrize(
    ("module", "match"),
    [
        (torch.nn.GRU(2, 4), r"got GRU; GRU and LSTM are gated"),
        (torch.nn.LSTM(2, 4), r"got LSTM; GRU and LSTM are gated"),
        (torch.nn.Linear(2, 4), r"needs a torch.nn.RNN .*got Linear"),
    ],
)
def test_from_torch_rejects_non_rnn(module, match):
    with pytest.raises(ArgumentTypeError, match=match):
        VanillaRNN.from_torch(module)


@pytest.mark.parametrize(("num_layers", "layer"), [(1, 1), (2, 2), (2, -1), (1, 5)])
def test_from_torch_bad_layer(num_layers, layer):
    module = torch.nn.RNN(2, 4, num_layers=num_layers)
    with pytest.raises(InvalidArgumentError, match=rf"^layer must be in \[0, {num_layers - 1}\], got {layer}"):
        VanillaRNN.from_torch(module, layer=layer)


def test_from_torch_reverse_needs_bidirectional():
    with pytest.raises(InvalidArgumentError, match=r"^reverse=True needs a bidirectional"):
        VanillaRNN.from_torch(torch.nn.RNN(2, 4), reverse=True)


def test_from_torch_unsupported_nonlinearity():
    module = torch.nn.RNN(2, 4)
    module.nonlinearity = "sigmoid"  # nn.RNN itself refuses this at construction; simulate a tampered module
    with pytest.raises(InvalidArgumentError, match=r"^unsupported nonlinearity 'sigmoid'"):
        VanillaRNN.from_torch(module)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (
            lambda W, U, b: VanillaRNN(W.expand(2, 4, 4), U.expand(2, 4, 2), b.expand(2, 4)),
            r"got a batch of 2 networks",
        ),
        (lambda W, U, b: VanillaRNN(W, None, b), r"m = 0"),
        (lambda W, U, b: VanillaRNN(W, U, b, activation="sigmoid"), r"activation 'sigmoid'"),
        (
            lambda W, U, b: VanillaRNN(W, U, b, activation=get_activation("tanh", gamma=0.5)),
            r"activation 'tanh\[γ=0.5\]'",
        ),
    ],
)
def test_to_torch_errors(make, match):
    rnn = make(*_ok())
    with pytest.raises(InvalidArgumentError, match=rf"^to_torch needs one network.*{match}"):
        rnn.to_torch()


def test_from_torch_refuses_a_non_integer_layer():
    with pytest.raises(ArgumentTypeError, match="layer must be an integer"):
        VanillaRNN.from_torch(torch.nn.RNN(3, 4), layer="0")


def test_to_torch_refuses_a_user_callable_that_is_only_named_tanh():
    def tanh(x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(2.0 * x)

    W, U = torch.eye(3, dtype=torch.float64) * 0.5, torch.ones(3, 1, dtype=torch.float64)
    with pytest.raises(InvalidArgumentError, match="activation 'tanh'"):
        VanillaRNN(W, U, activation=tanh).to_torch()
    # torch.tanh itself, passed as a callable, is nn.RNN's tanh
    x = torch.randn(2, 5, 1, dtype=torch.float64)
    rnn = VanillaRNN(W, U, activation=torch.tanh)
    torch.testing.assert_close(rnn.to_torch()(x)[0], rnn.run(x), rtol=1e-15, atol=1e-15)


@pytest.mark.parametrize("name", ["tanh", "relu"])
def test_to_torch_takes_the_scaled_family_at_its_own_gamma_and_refuses_any_other(name):
    # get_activation("tanh", gamma=1.0) is tanh itself, yet to_torch refused it by name
    W, U = torch.eye(3, dtype=torch.float64) * 0.5, torch.ones(3, 1, dtype=torch.float64)
    x = torch.randn(2, 5, 1, dtype=torch.float64)
    rnn = VanillaRNN(W, U, activation=get_activation(name, gamma=1.0))
    assert rnn.activation.name == f"{name}[γ=1]"
    torch.testing.assert_close(rnn.to_torch()(x)[0], rnn.run(x), rtol=1e-15, atol=1e-15)
    with pytest.raises(InvalidArgumentError, match=rf"activation '{name}\[γ=0.5\]'"):
        VanillaRNN(W, U, activation=get_activation(name, gamma=0.5)).to_torch()
