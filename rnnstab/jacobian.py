"""Exact Jacobian products J_t = ∂g_t/∂g_0 = D_t W ⋯ D_1 W of a vanilla RNN, streamed and carried in log space.

The product is formed exactly (no sampling, no linearisation beyond the chain rule itself) with one batched
matmul per step; only O(B·n²) memory is held whatever the horizon T. Underflow and overflow are avoided by
carrying J_t = exp(s_t)·P_t with ‖P_t‖_F = 1: the normalising factor is folded into the next step's diagonal D,
so the renormalisation costs no extra pass, and the log scales s_t accumulate in float64.

The spectral norm ‖J_t‖₂ at every t comes from block Lanczos (block Krylov with Rayleigh–Ritz) on J_tᵀJ_t, a
window of up to 8 steps solved as one stack, each step warm-started from the top two Ritz vectors of the step before
the window (the top right singular vector converges as t grows, by Oseledets' theorem) plus a generic vector, and
run until the Ritz value stops growing (by at most ``rtol``, and geometrically); a step that does not converge
within ``max_iter`` blocks falls back to an exact solve (the top eigenvalue of J_tᵀJ_t in float64), as do whole
windows of a sequence whose steps keep needing restarts. Every estimate is a Ritz value, hence never above the true
norm, and a run that ends below the largest column norm ‖J_t e_i‖ (also a lower bound, free from the Frobenius
pass) is run again (see ``rnnstab/_spectral_tracker.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch

from rnnstab import _checks
from rnnstab._checks import check_memory
from rnnstab._coupling import coupling
from rnnstab._spectral_tracker import SpectralTracker, window
from rnnstab._spectral_tracker import memory as tracker_memory
from rnnstab._tangent import CHUNK_STEPS, apply_tangent, derivative_chunks
from rnnstab.exceptions import ArgumentTypeError, InvalidArgumentError
from rnnstab.rnn import VanillaRNN, check_rnn
from rnnstab.weights import binary_exponent

NORMS = ("spectral", "frobenius")
SPECTRAL_METHODS = ("lanczos", "svd")
OVERFLOW_POLICIES = ("raise", "truncate")
_DEFAULT_RTOL = {torch.float64: 1e-10, torch.float32: 1e-6}
_SUM_BLOCK = 64
# A float32 product whose Frobenius norm is below this may have rows whose squares are subnormal (entries below
# 1e-19), where a float32 sum of squares is off by 1e-5 at 1e-21 and by 0.3 % at 1e-22: its norms are taken again,
# accumulated in float64. Renormalised every step, the product gets there only by shrinking 2^40-fold in one step.
_TINY = 2.0**-40


@dataclass(frozen=True)
class JacobianTrace:
    """Log-norms of J_t = ∂g_t/∂g_0 for t = 1..T, natural log, float64 on the CPU.

    Attributes:
        log_spectral: (batch, T) log‖J_t‖₂ (column t-1 is step t), or ``None`` if not requested.
        log_frobenius: (batch, T) log‖J_t‖_F, or ``None`` if not requested.
        singular_value_steps: the steps t at which all singular values were computed.
        log_singular_values: (batch, len(singular_value_steps), n) log σ_i(J_t), descending, or ``None``.
            Each σ_i is exact to about n·ε·σ₁ (ε the dtype's roundoff), as for any SVD of a product formed in
            that dtype; σ_i far below ε·σ₁ are rounding noise (the Lyapunov spectrum resolves those).
        dtype: the dtype the product was computed in.
        weights_dtype: the dtype the RNN's weights were stored in (their rounding bounds how far γ‖W‖₂ can sit
            above a requested δ).
        hidden_size: n.
        spectral_iterations: (T,) Krylov blocks added at each step t after its start block, by the step's slowest
            sequence (each two thin products of three rows; a diagnostic, 0 when the spectral norm was not asked
            for).
        svd_fallbacks: steps where an exact solve (the top eigenvalue of J_tᵀJ_t, in float64) was used for some
            sequence: block Lanczos did not converge within ``max_iter`` blocks, or its block of Ritz values lay in
            one cluster of top singular values, within 10⁻³ of each other yet wider than rtol, which a block cannot
            tell apart (see the README's "Known limits"), or the sequence's steps had kept needing restarts, and its
            next windows were solved exactly outright (see the README's "How the Jacobian norms are computed").
        spectral_method: how ``log_spectral`` was computed: ``"lanczos"``, ``"svd"`` (asked for, or chosen for a
            W that splits into independent sub-networks; see :func:`jacobian_norms`), or ``"mixed"``: a batched W
            of which some networks split, their sequences by SVD, the others' by block Lanczos.
        overflow_steps: (batch,) int64: with ``on_overflow="truncate"``, the first step t at which the sequence's
            hidden state left the dtype's range (its log-norms are NaN from t on: ∂g_t/∂g_0 is undefined there),
            0 for a sequence that stayed finite.

    A norm of exactly 0 (a dead Jacobian, e.g. every relu unit off) is reported as log = -inf.
    """

    log_spectral: torch.Tensor | None
    log_frobenius: torch.Tensor | None
    singular_value_steps: tuple[int, ...]
    log_singular_values: torch.Tensor | None
    dtype: torch.dtype
    weights_dtype: torch.dtype
    hidden_size: int
    spectral_iterations: torch.Tensor
    svd_fallbacks: int
    overflow_steps: torch.Tensor
    spectral_method: str

    @property
    def steps(self) -> int:
        """The horizon T."""
        return int(self.spectral_iterations.shape[0])

    @property
    def batch_size(self) -> int:
        curve = self.log_spectral if self.log_spectral is not None else self.log_frobenius
        assert curve is not None  # the constructor below always fills one of them
        return int(curve.shape[0])

    def float_tolerance(self) -> torch.Tensor:
        """(T,) slack in log space that rounding in ``dtype`` can account for at each step t.

        Each step multiplies by D_t W in ``dtype``; the relative rounding of one such product is at most about
        √n·ε (ε the unit roundoff), and the errors add in log space. Storing W in ``weights_dtype`` moves ‖W‖₂
        by up to √n·ε_W relative, which compounds the same way. We allow 16·√n·(ε + ε_W)·(t + 1).
        """
        eps = torch.finfo(self.dtype).eps + torch.finfo(self.weights_dtype).eps
        t = torch.arange(1, self.steps + 1, dtype=torch.float64)
        return 16.0 * math.sqrt(self.hidden_size) * eps * (t + 1.0)


@torch.no_grad()  # weights taken from a model being trained may require grad; nothing here is differentiated
def jacobian_norms(
    rnn: VanillaRNN,
    x: torch.Tensor,
    *,
    norms: Iterable[str] = NORMS,
    singular_values_at: Iterable[int] = (),
    h0: torch.Tensor | None = None,
    dtype: torch.dtype | str = torch.float64,
    device: torch.device | str | None = None,
    spectral_method: str = "lanczos",
    rtol: float | None = None,
    max_iter: int = 50,
    on_overflow: str = "raise",
    progress: Callable[[int], None] | None = None,
) -> JacobianTrace:
    """Exact ‖∂g_t/∂g_0‖ for every t = 1..T along the trajectory driven by ``x``, in log space.

    J_t = D_t W J_{t-1}, J_0 = I, D_t = diag σ'(W g_{t-1} + U x_t + b), started from g_0 = σ(h_0).

    Args:
        rnn: the network (one W, or a batch of B networks).
        x: inputs (batch, T, m); with a batched W, sequence i runs on network i.
        norms: any of ``"spectral"`` (‖J_t‖₂) and ``"frobenius"`` (‖J_t‖_F).
        singular_values_at: steps t (1 ≤ t ≤ T) at which to compute every singular value of J_t exactly (SVD).
        h0: initial pre-activation, (n,) or (batch, n); zeros by default.
        dtype: dtype of the product (the RNN is run in it too); log scales are always accumulated in float64.
        device: where to compute; ``None`` means the RNN's device.
        spectral_method: ``"lanczos"`` (default: warm-started block Lanczos, a few times the cost of the bare
            matmul loop; see the README's performance table) or ``"svd"`` (an exact SVD at every step: 10–40× a
            matmul per step). A network whose W splits into sub-networks (its units fall into groups linked by no weight
            above 1 % of its largest) is traced by SVD whatever is asked: every J_t splits the same way, or
            nearly, and a Krylov method sees a group only through its start's components there
            (``trace.spectral_method`` says which was used). A diagonal W makes every J_t diagonal, and ‖J_t‖₂ is then
            read off its largest column exactly (``spectral_method`` still says ``"lanczos"``); a sparse
            one (more than 10 % of its pairs of units unlinked) gets a stricter stopping test and a start block of
            four rows, as dead or leaky units can cut or weaken its few links at some steps (see the README's "Known
            limits").
        rtol: block Lanczos stopping tolerance (default 1e-10 in float64, 1e-6 in float32): a step ends when its
            Ritz value grew by at most rtol (relative) with the last block and by at most 1 % of the growth with
            the block before, and the second Ritz value by at most 10⁻³ of the top one (for a sparse W, or where
            the second lies within 10⁻³ of the top, the two below the top by at most rtol/10 of it). The estimates
            are lower bounds of ‖J_t‖₂ accurate to about rtol. A looser rtol saves blocks but lets a run stop
            sooner on a plateau, after the top two singular values of J_t change places.
        max_iter: Krylov blocks allowed per time step before falling back to an exact solve for that step.
        on_overflow: what to do when the hidden state of a sequence overflows the dtype (an exploding network
            with an unbounded activation): ``"raise"`` :class:`~rnnstab.StateOverflowError` (default), or
            ``"truncate"`` that sequence's trace: NaN from the overflow step on, the step in
            ``trace.overflow_steps``, the other sequences unaffected.
        progress: called with the number of steps just completed, after each chunk of steps.

    Returns:
        A :class:`JacobianTrace`.

    Raises:
        InvalidArgumentError: unknown norm name, a singular-value step outside 1..T, bad dtype/device/rtol/on_overflow.
        ArgumentTypeError: ``norms`` given as one string, ``progress`` not callable, ``rnn`` not a VanillaRNN.
        ShapeError, NonFiniteError: bad inputs (see :meth:`VanillaRNN.check_inputs`).
        StateOverflowError: a hidden state overflowed the dtype, with ``on_overflow="raise"``.

    Example:
        >>> import torch, rnnstab
        >>> W = rnnstab.scale_to_threshold(rnnstab.init_weights("orthogonal", 8), delta=0.5, gamma=1.0)
        >>> rnn = rnnstab.VanillaRNN(W, activation="identity")  # J_t = W^t, ‖J_t‖₂ = 0.5^t exactly
        >>> trace = rnnstab.jacobian_norms(rnn, torch.zeros(1, 3, 0))
        >>> (trace.log_spectral / math.log(0.5)).round(decimals=9).tolist()
        [[1.0, 2.0, 3.0]]
    """
    if isinstance(norms, str) or not isinstance(norms, Iterable):  # tuple("spectral") would be its letters
        hint = f" (for one, pass [{norms!r}])" if isinstance(norms, str) else ""
        raise ArgumentTypeError(f"norms must be a list of norm names, got {type(norms).__name__} {norms!r}{hint}")
    wanted = tuple(norms)
    unknown = [name for name in wanted if name not in NORMS]
    if unknown or not wanted:
        raise InvalidArgumentError(f"norms must be a non-empty subset of {NORMS}, got {wanted}")
    dtype = _checks.dtype("dtype", dtype)
    weights_dtype = check_rnn(rnn).dtype
    rnn = rnn.to(dtype=dtype, device=device)
    x = rnn.check_inputs(x)
    batch, steps, _ = x.shape
    sv_steps = _checks.steps("singular_values_at", singular_values_at, steps)
    if spectral_method not in SPECTRAL_METHODS:
        raise InvalidArgumentError(
            f"spectral_method must be one of {', '.join(SPECTRAL_METHODS)}, got {spectral_method!r}"
        )
    rtol = _DEFAULT_RTOL[dtype] if rtol is None else _checks.positive_float("rtol", rtol)
    max_iter = _checks.positive_int("max_iter", max_iter)
    if on_overflow not in OVERFLOW_POLICIES:
        raise InvalidArgumentError(f"on_overflow must be one of {', '.join(OVERFLOW_POLICIES)}, got {on_overflow!r}")
    if progress is not None and not callable(progress):  # found out only after the first chunk's work otherwise
        raise ArgumentTypeError(f"progress must be a callable taking a step count, got {type(progress).__name__}")
    overflow_steps = torch.zeros(batch, dtype=torch.int64)

    check_memory(memory_estimate(batch, rnn.hidden_size, dtype), rnn.device)
    tracker: SpectralTracker | _ExactSpectral | None = None
    if "spectral" in wanted and spectral_method == "svd":
        tracker = _ExactSpectral()
    elif "spectral" in wanted:
        links = coupling(rnn.W)  # per network; a shared W's one verdict holds for every sequence
        split, sparse, diagonal = links.split, links.sparse, links.diagonal
        if rnn.W.dim() == 2:
            split, sparse, diagonal = split.expand(batch), sparse.expand(batch), diagonal.expand(batch)
        if bool(split.all()):
            tracker = _ExactSpectral()
        else:
            exact = split if bool(split.any()) else None
            tracker = SpectralTracker(
                rtol=rtol,
                max_iter=max_iter,
                strict=sparse,
                exact=exact,
                diagonal=diagonal if bool(diagonal.any()) else None,
            )
    engine = _Engine(rnn, batch, tracker)
    sv_rows: list[torch.Tensor] = []
    chunks = derivative_chunks(rnn, x, h0=h0, overflow_steps=overflow_steps if on_overflow == "truncate" else None)
    for start, derivatives, exponents in chunks:
        for i in range(derivatives.shape[1]):
            engine.step(start + i, derivatives[:, i], None if exponents is None else exponents[:, i])
            if start + i + 1 in sv_steps:
                sv_rows.append(engine.log_singular_values())
        if progress is not None:
            progress(derivatives.shape[1])
    log_sv = torch.stack(sv_rows, dim=1) if sv_rows else None
    return engine.result(wanted, sv_steps, log_sv, weights_dtype, overflow_steps)


def memory_estimate(batch: int, n: int, dtype: torch.dtype) -> int:
    """Bytes :func:`jacobian_norms` holds at once: the spectral tracker's window of (batch, n, n) products (at
    least two), one SVD workspace of the same size, the tracker's Krylov basis, and a chunk of the forward pass —
    independent of T."""
    itemsize = torch.finfo(dtype).bits // 8
    products = window(n) + 1
    return itemsize * (products * batch * n * n + 4 * batch * CHUNK_STEPS * n) + tracker_memory(batch, n, dtype)


class _ExactSpectral:
    """‖P‖₂ by a full SVD at every step (``spectral_method="svd"``)."""

    def __init__(self) -> None:
        self.iterations: list[int] = []
        self.fallbacks = 0
        self.sigma: list[torch.Tensor] = []

    def update(self, slots: torch.Tensor, fro: torch.Tensor, columns: torch.Tensor) -> None:
        self.sigma.append(torch.linalg.matrix_norm(slots[len(self.iterations) % slots.shape[0]], ord=2))
        self.iterations.append(0)

    def finish(self, slots: torch.Tensor) -> torch.Tensor:
        return torch.stack(self.sigma)


class _Engine:
    """The streaming product Pₜ = J_tᵀ/scale (stored transposed so the shared-W update is one folded GEMM).

    Step t's product is formed in ``slots[t % len(slots)]``, the block Lanczos tracker's window (two slots without
    it), so that the tracker reads a window's products where they were formed."""

    def __init__(self, rnn: VanillaRNN, batch: int, tracker: SpectralTracker | _ExactSpectral | None) -> None:
        n, dtype, device = rnn.hidden_size, rnn.dtype, rnn.device
        self.rnn = rnn
        slots = window(n) if isinstance(tracker, SpectralTracker) else 2
        self.slots = torch.empty(slots, batch, n, n, dtype=dtype, device=device)
        self.P = self.slots[0]
        # float32 norms accumulated in float64 only for products below _TINY: always, it would cost a third of the
        # GEMM at n = 128 on the CPU; the test is one host sync a step
        self.check_tiny = dtype == torch.float32
        self.fro_rows: list[torch.Tensor] = []
        self.no_scale = torch.zeros(batch, dtype=torch.float64)
        self.derivative_exponents: list[torch.Tensor] = []  # the power of two each step's σ' was divided by
        self.prev_fro = torch.ones(batch, dtype=dtype, device=device)
        self.one = torch.ones((), dtype=dtype, device=device)  # a tensor: torch.where wraps a Python 1.0 every call
        # J_t = 2^{et} Π D_s (W/2^e). Norms square the entries, so a W of scale beyond 2^±(log2(max)/8) (2^±127 in
        # float64, 2^±15 in float32: δ = 1e200, or 1e6 in float32) could overflow or underflow them: such a W is
        # multiplied in as W/2^e, exactly (a power of two, applied in float64 so that the factor itself cannot
        # overflow), with e·log 2 per step added to the log scale. Any other W is used as it is. The exponents are
        # added to σ''s before they are multiplied by log 2: a W scaled by 2^1000 with σ' scaled by 2^-1000 (γ = 1e-300)
        # would otherwise leave 10⁻¹³ of rounding a step, more than the bound's tolerance.
        largest = rnn.W.abs().amax(dim=(-2, -1)).expand(batch).to(torch.float64)
        exponent = binary_exponent(largest)
        self.Wt = rnn._Wt
        self.w_exponent = torch.zeros(batch, dtype=torch.float64)
        if bool((exponent.abs() > int(math.log2(torch.finfo(dtype).max)) // 8).any()):
            factor = torch.exp2(-exponent).to(device)
            scaled = rnn._Wt.to(torch.float64) * (factor[0] if rnn.W.dim() == 2 else factor[:, None, None])
            self.Wt = scaled.to(dtype)
            self.w_exponent = exponent.cpu()
        self.tracker = tracker

    def step(self, t: int, derivative: torch.Tensor, exponent: torch.Tensor | None) -> None:
        """Multiply in step t's D_t, given as σ'(h_t)/2^{e_t} with ``exponent`` = e_t (``None``: all 0)."""
        self.derivative_exponents.append(self.no_scale if exponent is None else exponent)
        d = derivative / self.prev_fro[:, None]
        slot = self.slots[t % self.slots.shape[0]]
        if t == 0:
            torch.mul(self.Wt, d[:, None, :], out=slot)
        else:
            apply_tangent(self.P, self.Wt, d, out=slot)
        self.P = slot
        # in two levels, the norm of the column norms: one norm over all n² entries of a sequence is cut among the
        # threads when the batch is small, so that its rounding would depend on the batch (and in float32 it is
        # less accurate: 1e-5 apart at n = 512)
        columns = torch.linalg.vector_norm(self.P, dim=-1)  # ‖J e_i‖: P's rows are J's columns
        fro = torch.linalg.vector_norm(columns, dim=-1)
        if self.check_tiny and fro.min().item() < _TINY:
            # again for those sequences alone: the others' rounding must not depend on them
            tiny = (fro < _TINY).nonzero().flatten()
            wide = torch.linalg.vector_norm(self.P[tiny], dim=-1, dtype=torch.float64)
            columns[tiny], fro[tiny] = wide.to(fro.dtype), torch.linalg.vector_norm(wide, dim=-1).to(fro.dtype)
        if self.tracker is not None:
            self.tracker.update(self.slots, fro, columns)
        self.fro_rows.append(fro)
        self.prev_fro = torch.where(fro > 0, fro, self.one)  # a dead (zero) product stays zero

    def log_singular_values(self) -> torch.Tensor:
        """log σ_i(J_t) at the current step t, for every i, exact (SVD), in float64: (batch, n)."""
        # Σ_{s<t} (log‖P_s‖ + (e + e_s) log 2) + (e + e_t) log 2, summed without subtracting (a dead product
        # would give −∞ − (−∞) = NaN)
        previous = self.fro_rows[:-1]
        before = self._log_steps(previous)[-1] if previous else torch.zeros_like(self.w_exponent)
        scale = before + (self.w_exponent + self.derivative_exponents[-1]) * math.log(2)
        return torch.log(torch.linalg.svdvals(self.P).to(torch.float64).cpu()) + scale[:, None]

    def _log_scales(self) -> torch.Tensor:
        """(t, batch) cumulative log ‖P̃_s‖_F — that is, log‖J_s‖_F — for the steps done so far."""
        return self._log_steps(self.fro_rows)

    def _log_steps(self, fro_rows: list[torch.Tensor]) -> torch.Tensor:
        exponents = self.w_exponent + torch.stack(self.derivative_exponents[: len(fro_rows)])
        return _running_sum(torch.log(torch.stack(fro_rows).to(torch.float64).cpu()) + exponents * math.log(2))

    def _method(self) -> str:
        """How the spectral norms were computed (see :class:`JacobianTrace`)."""
        if isinstance(self.tracker, _ExactSpectral):
            return "svd"
        return "mixed" if self.tracker is not None and self.tracker.exact is not None else "lanczos"

    def result(
        self,
        wanted: tuple[str, ...],
        sv_steps: tuple[int, ...],
        log_sv: torch.Tensor | None,
        weights_dtype: torch.dtype,
        overflow_steps: torch.Tensor,
    ) -> JacobianTrace:
        log_fro = self._log_scales()  # (T, batch)
        log_spec = None
        if self.tracker is not None:
            spec = self.tracker.finish(self.slots).to(torch.float64).cpu()
            fro = torch.stack(self.fro_rows).to(torch.float64).cpu()
            ratio = torch.where(fro > 0, spec / fro, 0.0)  # ‖J_t‖₂/‖J_t‖_F: a dead product stays at −inf
            log_spec = (log_fro + torch.log(ratio)).T.contiguous()
        log_fro = log_fro.T.contiguous()
        if bool(overflow_steps.any()):
            # the product was ended (σ' = 0) at the overflow step: its −inf there means undefined, not dead
            t = torch.arange(1, log_fro.shape[1] + 1)
            undefined = (overflow_steps[:, None] > 0) & (t >= overflow_steps[:, None])
            for curve in (log_fro, log_spec):
                if curve is not None:
                    curve.masked_fill_(undefined, math.nan)
            if log_sv is not None:
                at = torch.tensor(sv_steps)
                log_sv.masked_fill_(
                    ((overflow_steps[:, None] > 0) & (at >= overflow_steps[:, None]))[..., None], math.nan
                )
        return JacobianTrace(
            log_spectral=log_spec if "spectral" in wanted else None,
            log_frobenius=log_fro if "frobenius" in wanted else None,
            singular_value_steps=sv_steps,
            log_singular_values=log_sv,
            dtype=self.P.dtype,
            weights_dtype=weights_dtype,
            hidden_size=self.P.shape[-1],
            spectral_iterations=torch.tensor(self.tracker.iterations if self.tracker else [0] * len(self.fro_rows)),
            svd_fallbacks=self.tracker.fallbacks if self.tracker else 0,
            overflow_steps=overflow_steps,
            spectral_method=self._method(),
        )


def _running_sum(terms: torch.Tensor) -> torch.Tensor:
    """Prefix sums along dim 0 of float64 ``terms`` (T, batch), accurate to a few ε·|s_t| whatever T.

    A plain cumsum rounds each partial sum s_t, an error of ε·|s_t| per step that adds up to ~ε·|s_T|·T: at δ = 0.5
    and T = 10⁴ (|s_T| ≈ 6931) that is 10⁻⁹, far beyond the bound's rounding allowance, and a float64 trace read as
    violating the bound. Neumaier's compensated summation carries what each addition loses. To keep the Python loop
    short, the steps are cut into blocks of 64 summed side by side, then the block totals are carried across blocks:
    64 + T/64 vectorised steps. The blocks start at step 1 whatever T, so a longer run's first t sums are those of a
    run of t steps, bit for bit. A −∞ term (a dead product) makes every later sum −∞."""
    x = terms.numpy()
    steps, rest = x.shape[0], x.shape[1:]
    block = min(steps, _SUM_BLOCK)
    padded = np.concatenate([x, np.zeros(((-steps) % block, *rest))]).reshape(-1, block, *rest)
    within, within_carry = np.empty_like(padded), np.empty_like(padded)
    total, carry = np.zeros_like(padded[:, 0]), np.zeros_like(padded[:, 0])
    for i in range(block):  # every block at once
        total, carry = _compensated_add(total, carry, padded[:, i])
        within[:, i], within_carry[:, i] = total, carry
    offsets, offsets_carry = np.empty_like(total), np.empty_like(total)
    total, carry = np.zeros(rest), np.zeros(rest)
    for b in range(padded.shape[0]):  # the sums of the earlier blocks
        offsets[b], offsets_carry[b] = total, carry
        total, carry = _compensated_add(total, carry + within_carry[b, -1], within[b, -1])
    sums = (offsets[:, None] + within) + (offsets_carry[:, None] + within_carry)
    return torch.from_numpy(sums.reshape(-1, *rest)[:steps].copy())


def _compensated_add(total: np.ndarray, carry: np.ndarray, term: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(total + term, carry + what that addition rounded away); nothing is carried once a sum is infinite."""
    new = total + term
    with np.errstate(invalid="ignore"):
        lost = np.where(np.abs(total) >= np.abs(term), (total - new) + term, (term - new) + total)
    return new, carry + np.where(np.isfinite(new), lost, 0.0)
