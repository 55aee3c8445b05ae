"""Reference systems with answers that do not come from rnnstab's own code."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
from torch.func import jacrev

import rnnstab

F64 = torch.float64


def random_rnn(
    n: int,
    *,
    activation: str = "tanh",
    delta: float = 0.9,
    m: int = 3,
    seed: int = 0,
    batch_networks: int | None = None,
    bias: bool = True,
) -> rnnstab.VanillaRNN:
    """A float64 RNN with Gaussian W scaled to γ‖W‖₂ = δ, Gaussian U and b."""
    gen = torch.Generator().manual_seed(seed)
    shape = (n, n) if batch_networks is None else (batch_networks, n, n)
    act = rnnstab.get_activation(activation)
    W = torch.randn(*shape, generator=gen, dtype=F64)
    W = W * (delta / act.gamma) / torch.linalg.matrix_norm(W, ord=2)[..., None, None]
    U = torch.randn(*shape[:-1], m, generator=gen, dtype=F64) / m**0.5
    b = 0.1 * torch.randn(*shape[:-1], generator=gen, dtype=F64) if bias else None
    return rnnstab.VanillaRNN(W, U, b, activation=act)


def explicit_jacobians(rnn: rnnstab.VanillaRNN, x: torch.Tensor) -> torch.Tensor:
    """(batch, T, n, n) products D_t W ⋯ D_1 W formed naively in float64 from an independent forward loop."""
    W = rnn.W.to(F64)
    U = rnn.U.to(F64)
    b = rnn.b.to(F64)
    act = rnn.activation
    x = x.to(F64)
    batch, steps, _ = x.shape
    n = rnn.hidden_size
    Wb = W.expand(batch, n, n) if W.dim() == 2 else W
    Ub = U.expand(batch, *U.shape) if U.dim() == 2 else U
    bb = b.expand(batch, n) if b.dim() == 1 else b
    g = act.fn(torch.zeros(batch, n, dtype=F64))
    J = torch.eye(n, dtype=F64).expand(batch, n, n)
    out = []
    for t in range(steps):
        pre = torch.einsum("bij,bj->bi", Wb, g) + torch.einsum("bij,bj->bi", Ub, x[:, t]) + bb
        g = act.fn(pre)
        J = act.derivative(pre)[:, :, None] * (Wb @ J)
        out.append(J)
    return torch.stack(out, dim=1)


def jacrev_jacobians(rnn: rnnstab.VanillaRNN, x: torch.Tensor) -> torch.Tensor:
    """(batch, T, n, n): ∂g_t/∂g_0 by reverse-mode autodiff (torch.func.jacrev) of the plain recursion."""
    W, U, b, fn = rnn.W.to(F64), rnn.U.to(F64), rnn.b.to(F64), rnn.activation.fn
    x = x.to(F64)
    batch, steps, _ = x.shape
    n = rnn.hidden_size
    rows = []
    for i in range(batch):
        Wi = W if W.dim() == 2 else W[i]
        Ui = U if U.dim() == 2 else U[i]
        bi = b if b.dim() == 1 else b[i]

        def trajectory(g0: torch.Tensor, Wi=Wi, Ui=Ui, bi=bi, xi=x[i]) -> torch.Tensor:
            states, g = [], g0
            for t in range(steps):
                g = fn(Wi @ g + Ui @ xi[t] + bi)
                states.append(g)
            return torch.stack(states)

        g0 = fn(torch.zeros(n, dtype=F64))
        rows.append(jacrev(trajectory)(g0))  # (T, n, n)
    return torch.stack(rows)


def non_normal_linear(n: int, *, radius: float, shear: float, seed: int = 0) -> torch.Tensor:
    """W = S Λ S⁻¹ with real eigenvalues in [radius/2, radius] (ρ(W) = radius) and an ill-conditioned S,
    so that ‖W‖₂ ≫ ρ(W)."""
    gen = torch.Generator().manual_seed(seed)
    eig = torch.linspace(radius / 2, radius, n, dtype=F64)
    S = torch.eye(n, dtype=F64) + shear * torch.triu(torch.randn(n, n, generator=gen, dtype=F64), diagonal=1)
    return S @ torch.diag(eig) @ torch.linalg.inv(S)


def trained_rnn(
    *,
    nonlinearity: str = "tanh",
    num_layers: int = 1,
    bidirectional: bool = False,
    bias: bool = True,
    hidden: int = 6,
    inputs: int = 3,
    steps: int = 30,
    seed: int = 0,
) -> tuple[torch.nn.RNN, list[float]]:
    """An nn.RNN (float32, batch_first) trained briefly with Adam to output the running mean of its first input.

    Returns the module and the loss before and after training (the second must be lower: it really trained).
    """
    torch.manual_seed(seed)
    rnn = torch.nn.RNN(
        inputs,
        hidden,
        num_layers=num_layers,
        nonlinearity=nonlinearity,
        bidirectional=bidirectional,
        bias=bias,
        batch_first=True,
    )
    head = torch.nn.Linear(hidden * (2 if bidirectional else 1), 1)
    optimiser = torch.optim.Adam([*rnn.parameters(), *head.parameters()], lr=0.02)
    x = torch.randn(32, 10, inputs)
    target = x[:, :, :1].cumsum(1) / torch.arange(1, 11).reshape(1, 10, 1)
    losses = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: extra threads only spin against the other test processes
    try:
        for _ in range(steps):
            optimiser.zero_grad()
            loss = torch.nn.functional.mse_loss(head(rnn(x)[0]), target)
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
    finally:
        torch.set_num_threads(threads)
    return rnn, [losses[0], losses[-1]]


def save_formats(rnn: torch.nn.RNN, directory: Path) -> dict[str, Path]:
    """Save ``rnn`` in every layout rnnstab analyse reads; the checkpoint nests it under model_state_dict.rnn."""
    from safetensors.torch import save_file

    state = rnn.state_dict()
    paths = {
        "state_dict": directory / "rnn.pt",
        "checkpoint": directory / "checkpoint.ckpt",
        "module": directory / "module.pth",
        "safetensors": directory / "rnn.safetensors",
        "npz": directory / "rnn.npz",
    }
    torch.save(state, paths["state_dict"])
    checkpoint = {"model_state_dict": {f"rnn.{k}": v for k, v in state.items()}, "epoch": 30, "loss": 0.1}
    torch.save(checkpoint, paths["checkpoint"])
    torch.save(rnn, paths["module"])
    save_file(state, paths["safetensors"])
    np.savez(paths["npz"], **{k: v.numpy() for k, v in state.items()})
    return paths


@functools.cache
def batch_rounds_by_position() -> bool:
    """Whether this machine's batched matrix products or small symmetric eigensolvers round a matrix according to its
    place in the batch. MKL does on an AMD EPYC (torch 2.13): a torch.bmm of four (9, 20)·(20, 3) products rounds
    those at odd positions unlike a batch of one, as LAPACK's eigh does for odd sizes. There a network's last bits
    depend on its batch mates through the tracker's thin products, whatever rnnstab does; on the Intel CPUs of this
    project's earlier test runs they did not."""
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(4, 9, 20, generator=gen, dtype=F64), torch.randn(4, 20, 3, generator=gen, dtype=F64)
    together = torch.bmm(a, b)
    gram = torch.randn(4, 7, 7, generator=gen, dtype=F64)
    gram = gram @ gram.mT
    vectors = torch.linalg.eigh(gram).eigenvectors
    return not all(
        torch.equal(together[i], torch.bmm(a[i : i + 1], b[i : i + 1])[0])
        and torch.equal(vectors[i], torch.linalg.eigh(gram[i : i + 1]).eigenvectors[0])
        for i in range(4)
    )


def assert_same_whatever_the_batch(apart: torch.Tensor, together: torch.Tensor) -> None:
    """A sequence's float64 log-norms traced with some batch mates against others: equal bit for bit, or, where the
    linear algebra itself rounds by batch position (:func:`batch_rounds_by_position`), within 1e-13 nats — a few
    units in the last place of log-norms of order 10 to 100 (seen: 7e-15)."""
    if batch_rounds_by_position():
        torch.testing.assert_close(apart, together, rtol=0, atol=1e-13, equal_nan=True)
    else:
        assert torch.equal(apart, together)
