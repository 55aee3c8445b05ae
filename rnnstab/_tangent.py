"""The tangent dynamics of a vanilla RNN along one trajectory: the code shared by jacobian.py and lyapunov.py.

Along the trajectory driven by x, step t maps a perturbation of g_{t-1} to one of g_t by J_t = D_t W, with
D_t = diag σ'(h_t) and h_t = W g_{t-1} + U x_t + b. Both consumers push a stack of r row vectors F (batch, r, n)
through it, F ← F Wᵀ D_t, which is (D_t W Fᵀ)ᵀ: the Jacobian product (r = n) is kept as J_tᵀ, a Lyapunov frame
(r = k) as its k orthonormal columns transposed. Stored by rows, a W shared by the batch makes each update one
GEMM over batch·r rows (torch folds the batch into the rows of a contiguous operand), a batch of W one bmm.

The forward pass runs ahead of the tangent updates in chunks of :data:`CHUNK_STEPS` steps: the recursion is
sequential (a thin product per step) but σ' is applied to a whole chunk at once, and only a chunk of
pre-activations is held, whatever the horizon T.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import torch

from rnnstab.exceptions import InvalidArgumentError, StateOverflowError
from rnnstab.rnn import VanillaRNN

CHUNK_STEPS = 128


def derivative_chunks(
    rnn: VanillaRNN,
    x: torch.Tensor,
    *,
    h0: torch.Tensor | None = None,
    chunk_steps: int = CHUNK_STEPS,
    overflow_steps: torch.Tensor | None = None,
) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield (start, σ'(h_t) for t = start+1 .. start+len) as (batch, len, n), from g_0 = σ(h_0).

    ``x`` must already be checked (:meth:`VanillaRNN.check_inputs`) and on the RNN's device and dtype. A state that
    leaves the dtype's range raises :class:`StateOverflowError`; given ``overflow_steps`` instead (a (batch,) int64
    tensor of zeros on the CPU), each sequence's first such step t is written into it, and its σ' from t on is
    yielded as 0, which ends its Jacobian product there (the other sequences are unaffected).
    """
    g = rnn.activation.fn(rnn.initial_preactivation(x.shape[0], h0))
    for start in range(0, x.shape[1], chunk_steps):
        drive = rnn.drive(x[:, start : start + chunk_steps])
        pre = torch.empty_like(drive)
        for t in range(drive.shape[1]):
            pre[:, t] = rnn.recur(g, drive[:, t])
            g = rnn.activation.fn(pre[:, t])
        if overflow_steps is None:
            _check_finite(pre, start)
            yield start, rnn.activation.derivative(pre)
        else:
            yield start, _stop_at_overflow(rnn.activation.derivative(pre), pre, start, overflow_steps)


def _stop_at_overflow(
    derivative: torch.Tensor, pre: torch.Tensor, start: int, overflow_steps: torch.Tensor
) -> torch.Tensor:
    """``derivative`` with 0 at and after each sequence's first non-finite state; records new first steps."""
    bad = ~torch.isfinite(pre).all(dim=-1)  # (batch, steps)
    earlier = (overflow_steps > 0).to(bad.device)
    if not bool(bad.any()) and not bool(earlier.any()):
        return derivative
    # once gone, a state stays gone even if σ maps it back into range (relu(−inf) = 0)
    gone = bad.cummax(dim=1).values | earlier[:, None]
    new = bad.any(dim=1) & ~earlier
    first = bad.to(torch.int8).argmax(dim=1) + start + 1
    overflow_steps.copy_(torch.where(new, first, overflow_steps.to(first.device)).cpu())
    return derivative.masked_fill(gone[..., None], 0.0)


def _check_finite(pre: torch.Tensor, start: int) -> None:
    """Refuse a trajectory whose state left the dtype's range: σ' of NaN would pass for a dead unit (relu'(NaN) = 0),
    and an exploding network would be reported as vanishing."""
    finite = torch.isfinite(pre).all(dim=-1)  # (batch, steps)
    if bool(finite.all()):
        return
    first = (~finite).to(torch.int8).argmax(dim=1)  # each sequence's first bad step (0 if none)
    rows = (~finite.all(dim=1)).nonzero().flatten()
    row = int(rows[first[rows].argmin()])
    t = start + int(first[row]) + 1
    dtype = str(pre.dtype).removeprefix("torch.")
    wider = "" if pre.dtype == torch.float64 else ", float64"
    raise StateOverflowError(
        f"the forward pass overflowed {dtype} at step t = {t} of input sequence {row}: the hidden state explodes, "
        f"and ∂g_t/∂g_0 is not defined from there. Use at most {t - 1} steps{wider}, or a smaller δ or input scale",
        step=t,
        sequence=row,
    )


def apply_tangent(F: torch.Tensor, Wt: torch.Tensor, d: torch.Tensor, *, out: torch.Tensor) -> torch.Tensor:
    """out = F Wᵀ diag(d) for rows F (batch, r, n), Wᵀ (n, n) or (batch, n, n), d (batch, n); returns ``out``."""
    torch.matmul(F, Wt, out=out)
    return out.mul_(d[:, None, :])


def check_memory(needed: int, device: torch.device) -> None:
    """Refuse a run that would need more than 80 % of the memory available on ``device``.

    Raises:
        InvalidArgumentError: saying how much is needed and how much is there.
    """
    if device.type == "cuda":
        available, _ = torch.cuda.mem_get_info(device)
        where = "the GPU"
    else:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        where = "this machine"
    if needed > 0.8 * available:
        raise InvalidArgumentError(
            f"this needs about {needed / 2**30:.2f} GiB ({where} has {available / 2**30:.2f} GiB available): "
            "reduce the batch or the hidden size, or use float32"
        )
