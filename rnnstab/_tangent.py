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

import math
from collections.abc import Iterator

import torch

from rnnstab.exceptions import StateOverflowError
from rnnstab.rnn import VanillaRNN

CHUNK_STEPS = 128
_SATURATED = 2.0**-32


def derivative_chunks(
    rnn: VanillaRNN,
    x: torch.Tensor,
    *,
    h0: torch.Tensor | None = None,
    chunk_steps: int = CHUNK_STEPS,
    overflow_steps: torch.Tensor | None = None,
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor | None]]:
    """Yield (start, 2^{-e_t}·σ'(h_t), e_t) for t = start+1 .. start+len, from g_0 = σ(h_0).

    The derivatives are (batch, len, n), the integers e_t (batch, len) as float64 on the CPU, or ``None`` where every
    e_t of the chunk is 0 (the rule). A step whose largest σ' is below 2^-32 (saturated units: tanh' of 60 is
    e^-118) has it brought into [½, 1) by the power of two: a product scaled by that σ' would have entries whose
    squares underflow (a float32 norm of exactly 0, read as a dead Jacobian), and in float32 σ' itself underflows to
    0 for |h| ≳ 52, so such steps are recomputed in float64 first. So has a step whose largest σ' is above 2^32 (the
    scaled family at γ = 1e300), whose squares would overflow. Powers of two scale exactly. The e_t are yielded as
    integers, not as e_t·log 2, so that a consumer can add exponents before it rounds: e_t = −997 against a W
    carried as W/2^997 (γ = 1e-300) would otherwise cancel to 10⁻¹³, not to 0. A step whose σ' all underflow even
    float64 (tanh beyond |h| ≈ 373) takes them from the activation's ``log_derivative`` where it has one, divided
    by the largest, whose log (in units of log 2, not a whole number) is e_t.

    ``x`` must already be checked (:meth:`VanillaRNN.check_inputs`) and on the RNN's device and dtype. A state that
    leaves the dtype's range raises :class:`StateOverflowError`; given ``overflow_steps`` instead (a (batch,) int64
    tensor of zeros on the CPU), each sequence's first such step t is written into it, and its σ' from t on is
    yielded as 0, which ends its Jacobian product there (the other sequences are unaffected).
    """
    for start, pre in _preactivation_chunks(rnn, x, h0, chunk_steps):
        derivative = _derivative(rnn, pre, start, overflow_steps)
        # by magnitude: σ' is negative on part of the line for gelu, silu and sin, and the signed maximum of a step
        # whose σ' are all negative is the one nearest 0, whose power of two would overflow the others
        largest = derivative.abs().amax(dim=-1)  # (batch, len)
        low = (largest < _SATURATED) | (largest > 1 / _SATURATED)
        if not bool(low.any()):
            yield start, derivative, None
            continue
        pre64 = pre.to(torch.float64)
        wide = _derivative(rnn, pre64, start, overflow_steps)
        peak = wide.abs().amax(dim=-1)
        exponent = torch.where(low, torch.frexp(peak).exponent, 0)
        scaled = torch.where(low[..., None], torch.ldexp(wide, -exponent[..., None]).to(derivative.dtype), derivative)
        exponents = exponent.to(torch.float64)
        log_derivative = rnn.activation.log_derivative
        under = low & (peak == 0) & torch.isfinite(pre64).all(dim=-1)  # every σ' below float64's range, none dead
        if log_derivative is not None and bool(under.any()):
            # from log σ' (tanh beyond |h| ≈ 373), relative to the step's largest: that one becomes 1, and its log
            # goes into the exponent, in units of log 2 and not a whole number (past |h| ~ 10⁹ a power of two fit to
            # log σ' would lose its bits to the rounding of log σ' itself)
            logs = log_derivative(pre64)
            top = logs.amax(dim=-1)
            exponents = torch.where(under, top / math.log(2), exponents)
            rescued = torch.exp(logs - top[..., None])
            if overflow_steps is not None:  # the steps an overflow ended stay ended
                rescued = _stop_at_overflow(rescued, pre64, start, overflow_steps)
            scaled = torch.where(under[..., None], rescued.to(derivative.dtype), scaled)
        yield start, scaled, exponents.cpu()


def _preactivation_chunks(
    rnn: VanillaRNN, x: torch.Tensor, h0: torch.Tensor | None, chunk_steps: int
) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield (start, h_t for t = start+1 .. start+len) as (batch, len, n): the forward pass, a chunk at a time.

    The chunk is stored time-major (a (batch, len, n) view of (len, batch, n) memory): each step writes its state in
    place and reads it back contiguously, and σ' of the chunk, computed elementwise, keeps that layout, so the
    consumers' per-step slices ``derivatives[:, i]`` are contiguous too."""
    g = rnn.activation.fn(rnn.initial_preactivation(x.shape[0], h0))
    for start in range(0, x.shape[1], chunk_steps):
        drive = rnn.drive(x[:, start : start + chunk_steps]).transpose(0, 1).contiguous()
        pre = torch.empty_like(drive)
        for t in range(drive.shape[0]):
            g = rnn.activation.fn(rnn.recur(g, drive[t], out=pre[t]))
        yield start, pre.transpose(0, 1)


def _derivative(rnn: VanillaRNN, pre: torch.Tensor, start: int, overflow_steps: torch.Tensor | None) -> torch.Tensor:
    """σ'(pre) for the chunk starting after step ``start``, with non-finite states refused or ended (see above)."""
    if overflow_steps is None:
        _check_finite(pre, start)
        return rnn.activation.derivative(pre)
    return _stop_at_overflow(rnn.activation.derivative(pre), pre, start, overflow_steps)


def _stop_at_overflow(
    derivative: torch.Tensor, pre: torch.Tensor, start: int, overflow_steps: torch.Tensor
) -> torch.Tensor:
    """``derivative`` with 0 at and after each sequence's first non-finite state; records new first steps."""
    bad = ~torch.isfinite(pre).all(dim=-1)  # (batch, steps)
    # before this chunk: a step recorded by the chunk's own first pass (derivative_chunks takes a second, in float64,
    # for steps with huge or tiny σ') must not end its earlier steps too (seen: log‖J_1‖₂ = −inf, t = 2 overflowing)
    earlier = ((overflow_steps > 0) & (overflow_steps <= start)).to(bad.device)
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
    # at t = 1 no step count helps: the first state is already out of range
    first_step = "The very first step overflows: use" + (" float64," if wider else "")
    fewer = f"Use at most {t - 1} steps{wider}, or" if t > 1 else first_step
    raise StateOverflowError(
        f"the forward pass overflowed {dtype} at step t = {t} of input sequence {row}: the hidden state explodes, "
        f"and ∂g_t/∂g_0 is not defined from there. {fewer} smaller inputs, U, b or h0, or a smaller δ",
        step=t,
        sequence=row,
    )


def apply_tangent(F: torch.Tensor, Wt: torch.Tensor, d: torch.Tensor, *, out: torch.Tensor) -> torch.Tensor:
    """out = F Wᵀ diag(d) for rows F (batch, r, n), Wᵀ (n, n) or (batch, n, n), d (batch, n); returns ``out``."""
    torch.matmul(F, Wt, out=out)
    return out.mul_(d[:, None, :])
