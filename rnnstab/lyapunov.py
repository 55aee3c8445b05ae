"""Lyapunov spectra of the tangent dynamics along input-driven trajectories (Benettin's QR method).

The exponents λ₁ ≥ λ₂ ≥ … ≥ λ_n are the growth rates, in nats per step, of the singular values of
J_T = D_T W ⋯ D_1 W as T → ∞ (Oseledets): λ_i = lim (1/T) log σ_i(J_T). They say how fast gradients actually
vanish or explode, where the δ^T bound only says when vanishing is guaranteed: λ₁ ≤ log δ always.

Method (Benettin, Galgani, Giorgilli & Strelcyn 1980; Shimada & Nagashima 1979). An orthonormal frame
Q₀ (n × k) is pushed through the tangent maps and re-orthonormalised, F = J_{t+s}⋯J_{t+1} Q_t = Q_{t+s} R, with
R upper triangular and its diagonal made positive (the sign-normalised QR is unique, so the frame does not depend
on LAPACK's sign conventions, nor on the device). The QR is Householder's with the rows sorted by decreasing norm,
which keeps it accurate when D_t nearly switches units off (see ``_Benettin._orthonormalise``). Since the diagonal
of a product of triangular matrices is the product of their diagonals, Σ log R_ii over the run is the same — in
exact arithmetic — whether QR is done every step or every s steps; the interval only changes rounding. The
exponents are those sums divided by the number of measured steps, after a warm-up that lets the frame align with the
Oseledets subspaces and the trajectory forget h_0.

Cost: with a frame of k columns each step is one (batch·k × n)·(n × n) product, O(n²k), plus a QR of an n × k
matrix, O(nk²), every s steps — O(T·n²·k) in all. The top k exponents never form an n × n product.

**The QR interval rule** (``qr_every="auto"``). Between two QRs the columns of F grow at different rates; after s
steps the spread of log R_ii is about s·(λ₁ − λ_k), and the condition number of F (= that of R) is e^{spread}
times a factor set by the angles between the covariant Lyapunov vectors, which does not grow with s. Householder
QR is column-wise backward stable, so R_jj comes out with relative error about ε·‖f_j‖/R_jj ≈ ε·e^{spread}
(ε the unit roundoff). The rule aims at a spread of L = ½·ln(1/ε) per interval (18.0 in float64, 8.0 in float32),
i.e. a relative error ≲ √ε (1.5e-8 in float64) in each log R_ii per QR, which the averaging over the run divides
further. Measured against QR every step (tanh, n = 256, fixed intervals): spreads up to 21 nats cost < 1e-9 nats per
step, 28 nats 2e-7, 35 nats 7e-4 — the e^{spread} law. The rule:

- start with s = 1; after every QR estimate the per-step spread Δ as the largest of the spread of the running
  exponent estimates (all steps so far) and the spreads per step of the last 4 intervals, all maxima over the
  batch, and the per-step magnitude μ = max|log R_ii|/s the same way;
- next s = min(⌊L/Δ⌋, ⌊L/μ⌋, 2·s_previous, 64), at least 1 — it shrinks at once when the dynamics change and grows
  by at most ×2 per QR; the μ term keeps every column within e^{±L} of unit norm, far from overflow/underflow;
- a QR is also forced at the end of the warm-up, at every block boundary, and at T;
- an interval whose spread passes the limit ⅔·ln(1/ε) (24.0 in float64, where the per-QR error ε·e^{spread} would
  reach ε^{1/3} ≈ 6e-6) — a fluctuation beyond the margin, e.g. a unit saturating — is rejected and redone from the
  frame at the previous QR with a QR every step (the tangent maps of the interval are kept for this).

So no accepted interval of more than one step exceeds the limit; the largest spread met is reported
(:attr:`LyapunovSpectrum.max_log_spread`, single steps included), with the number of rejected intervals. A dead
direction (σ' = 0, e.g. relu units off) makes Δ infinite and the rule falls back to QR every step; such an exponent
comes out as −inf when the product is exactly rank-deficient in floating point, otherwise near the rounding floor
log(ε)·(QRs per step).

Error bars: the measured window is split into ``blocks`` contiguous blocks; the standard error is the standard
deviation of the block means over √blocks (valid when blocks are longer than the correlation time; it does not
include the O(1/T) bias of a finite horizon).
"""

from __future__ import annotations

import math
import warnings
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from rnnstab import _checks
from rnnstab._checks import check_memory
from rnnstab._tangent import CHUNK_STEPS, apply_tangent, derivative_chunks
from rnnstab.exceptions import ArgumentTypeError, InvalidArgumentError, RnnstabWarning, ShapeError
from rnnstab.jacobian import jacobian_norms
from rnnstab.rnn import VanillaRNN, check_rnn

QR_AUTO = "auto"
_MAX_INTERVAL = 64
_HISTORY_POINTS = 100
_RECENT_INTERVALS = 4
_F64 = torch.float64


def log_spread_limits(dtype: torch.dtype) -> tuple[float, float]:
    """(target, limit) = (½·ln(1/ε), ⅔·ln(1/ε)) for ``dtype``: the automatic QR interval aims at the target spread of
    log R_ii between two QRs (per-QR relative error ≲ √ε); beyond the limit the error ε·e^{spread} passes ε^{1/3}.

    Example:
        >>> [round(v, 2) for v in log_spread_limits(torch.float64)]
        [18.02, 24.03]
        >>> [round(v, 2) for v in log_spread_limits(torch.float32)]
        [7.97, 10.63]
    """
    roundoff = math.log(1.0 / torch.finfo(dtype).eps)
    return roundoff / 2.0, 2.0 * roundoff / 3.0


@dataclass(frozen=True)
class LyapunovSpectrum:
    """Lyapunov exponents of a batch of trajectories, natural log per step, float64 on the CPU.

    Attributes:
        exponents: (batch, k) λ₁ ≥ … ≥ λ_k in nats per step, sorted descending in each row.
        exponents_stderr: (batch, k) standard error of each exponent from ``blocks`` block means (NaN with one
            block).
        frame_index: (batch, k) the frame column (0-based) each sorted exponent came from: the sort is not the
            identity where finite-time estimates of nearby exponents cross (their gap is within the error bars).
        block_exponents: (batch, blocks, k) the exponents measured over each block alone.
        history_steps: the steps t (counted from the start, warm-up included) of the convergence history: the first
            QR at or after each of up to 100 evenly spaced points of the measured window.
        history: (batch, len(history_steps), k) the running estimates at those steps.
        hidden_size: n.
        steps: the horizon T.
        warmup: steps discarded before measuring (the frame was still propagated and orthonormalised).
        qr_every: the requested interval, an int or ``"auto"``.
        qr_count: QR factorisations done (rejected ones included).
        rejected_intervals: automatic intervals whose spread exceeded ``log_spread_limit`` and were redone with a
            QR every step.
        max_log_spread: the largest spread max_i log R_ii − min_i log R_ii of any one accepted interval (a lower
            bound on log κ(R), the conditioning the rounding of each QR is exposed to); compare with
            ``log_spread_limit`` (a single step can exceed it: nothing smaller can be factorised).
        log_spread_target: ½·ln(1/ε) for ``dtype``, the spread per interval the automatic rule aims at.
        log_spread_limit: ⅔·ln(1/ε), where the per-QR error ε·e^{spread} would reach ε^{1/3}.
        sum_rule_expected: (batch,) the time average of log|det J_t| over the measured steps, which Σᵢλᵢ equals
            when k = n; for an RNN log|det W| + ⟨Σⱼ log|σ'(h_tj)|⟩. ``None`` when not computed.
        dtype: the dtype the frame was propagated in.
    """

    exponents: torch.Tensor
    exponents_stderr: torch.Tensor
    frame_index: torch.Tensor
    block_exponents: torch.Tensor
    history_steps: tuple[int, ...]
    history: torch.Tensor
    hidden_size: int
    steps: int
    warmup: int
    qr_every: int | str
    qr_count: int
    rejected_intervals: int
    max_log_spread: float
    log_spread_target: float
    log_spread_limit: float
    sum_rule_expected: torch.Tensor | None
    dtype: torch.dtype

    @property
    def batch_size(self) -> int:
        return int(self.exponents.shape[0])

    @property
    def num_exponents(self) -> int:
        """k, the number of exponents computed."""
        return int(self.exponents.shape[1])

    @property
    def measured_steps(self) -> int:
        """T − warmup, the steps the exponents average over."""
        return self.steps - self.warmup

    @property
    def sum_rule_measured(self) -> torch.Tensor | None:
        """(batch,) Σᵢ λᵢ when the full spectrum was computed (k = n), else ``None``."""
        if self.num_exponents != self.hidden_size:
            return None
        return self.exponents.sum(dim=-1)

    @property
    def sum_rule_residual(self) -> torch.Tensor | None:
        """(batch,) Σᵢ λᵢ − ⟨log|det J_t|⟩: zero up to rounding (a self-check), ``None`` unless k = n.

        The identity is exact at every finite T — Σ log R_ii = log|det| of the measured product — so a residual
        beyond rounding is a bug, never a finding. It is NaN when ⟨log|det J_t|⟩ is −inf (σ' = 0 somewhere).
        """
        measured = self.sum_rule_measured
        if measured is None or self.sum_rule_expected is None:
            return None
        expected = self.sum_rule_expected
        return torch.where(torch.isfinite(expected), measured - expected, math.nan)

    def in_frame_order(self) -> torch.Tensor:
        """(batch, k) the exponents in the order of the frame's columns (Benettin's order, before sorting): the
        first k of a full spectrum in this order are exactly what a top-k run with the same seed computes."""
        return torch.empty_like(self.exponents).scatter_(-1, self.frame_index, self.exponents)

    def batch_mean(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean over the batch, its standard error), each (k,): the trajectories are independent estimates, so the
        error is √(Σ_b s.e._b²)/batch from each one's block-means error (NaN with a single block)."""
        return self.exponents.mean(dim=0), self.exponents_stderr.pow(2).sum(dim=0).sqrt() / self.batch_size

    def kaplan_yorke_dimension(self) -> torch.Tensor:
        """(batch,) the Kaplan–Yorke dimension of each row's spectrum; see :func:`kaplan_yorke_dimension`.

        Partial sums within rounding of 0 (16·ε of the dtype per exponent) count as 0: every λ = 0 (an orthogonal
        linear RNN) measures as ±1e-17, and the dimension must not hang on that sign."""
        atol = 16 * torch.finfo(self.dtype).eps * self.exponents.shape[-1]
        return kaplan_yorke_dimension(self.exponents, hidden_size=self.hidden_size, atol=atol)


@torch.no_grad()  # weights taken from a model being trained may require grad; nothing here is differentiated
def lyapunov_spectrum(
    rnn: VanillaRNN,
    x: torch.Tensor,
    *,
    k: int | None = None,
    qr_every: int | str = QR_AUTO,
    warmup: int | None = None,
    blocks: int = 10,
    h0: torch.Tensor | None = None,
    dtype: torch.dtype | str = torch.float64,
    device: torch.device | str | None = None,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> LyapunovSpectrum:
    """The top k Lyapunov exponents of the tangent dynamics along each trajectory driven by ``x``.

    J_t = D_t W with D_t = diag σ'(W g_{t-1} + U x_t + b), started from g_0 = σ(h_0); λ_i = lim (1/T) log σ_i of
    J_T ⋯ J_1, estimated by Benettin's QR method (see the module docstring for the QR interval rule).

    Args:
        rnn: the network (one W shared by the batch, or a batch of B networks).
        x: inputs (batch, T, m); with a batched W, sequence i runs on network i.
        k: how many exponents (the top k); ``None`` for all n. Costs O(T·n²·k).
        qr_every: re-orthonormalise every this many steps, or ``"auto"`` for the conditioning rule. A fixed interval
            over which log R_ii spread past :attr:`LyapunovSpectrum.log_spread_limit` gives a :class:`RnnstabWarning`.
        warmup: steps before measuring; ``None`` means T // 10.
        blocks: number of blocks of the measured window for the error bars (fewer if the window is shorter).
        h0: initial pre-activation (n,) or (batch, n); zeros by default.
        dtype: dtype of the trajectory and the frame; the log R_ii are accumulated in float64.
        device: where to compute; ``None`` means the RNN's device.
        seed: trajectory b's initial frame is drawn from seed + b (with numpy on the CPU, so results do not depend
            on the device, and the top k use the same frame as the first k of the full spectrum).
        progress: called with the number of steps just completed, after each chunk of steps.

    Returns:
        A :class:`LyapunovSpectrum` with ``.exponents`` of shape (batch, k), nats per step, descending.

    Raises:
        InvalidArgumentError: k outside 1..n, warmup outside 0..T−1, bad qr_every/blocks/dtype/device/seed.
        ShapeError, NonFiniteError: bad inputs (see :meth:`VanillaRNN.check_inputs`).

    Example:
        >>> import torch, rnnstab
        >>> W = torch.diag(torch.tensor([2.0, 0.5, -0.25], dtype=torch.float64))
        >>> rnn = rnnstab.VanillaRNN(W, activation="identity")  # linear: λ_i = log|eig W|
        >>> result = rnnstab.lyapunov_spectrum(rnn, torch.zeros(1, 200, 0))
        >>> [round(v, 6) for v in result.exponents[0].tolist()]
        [0.693147, -0.693147, -1.386294]
    """
    dtype = _checks.dtype("dtype", dtype)
    rnn = check_rnn(rnn).to(dtype=dtype, device=device)
    x = rnn.check_inputs(x)
    batch, steps, _ = x.shape
    n = rnn.hidden_size
    options = _Options.check(n=n, steps=steps, k=k, qr_every=qr_every, warmup=warmup, blocks=blocks, seed=seed)
    check_memory(_memory_estimate(batch, n, options.k, dtype), rnn.device)
    engine = _Benettin(batch, n, options, dtype, rnn.device)
    log_det_w = torch.linalg.slogdet(rnn.W.to(_F64))[1].to(rnn.device) if options.k == n else None
    log_det_sum = torch.zeros(batch, dtype=_F64, device=rnn.device)
    # Steps of saturated units come as σ'/2^e (see derivative_chunks): the frame would underflow otherwise.
    for start, derivatives, exponents in derivative_chunks(rnn, x, h0=h0):
        scales = None if exponents is None else (exponents * math.log(2)).to(rnn.device)
        if log_det_w is not None:
            skip = max(options.warmup - start, 0)
            log_det_sum += torch.log(derivatives[:, skip:].abs().to(_F64)).sum(dim=(1, 2))
            if scales is not None:
                log_det_sum += n * scales[:, skip:].sum(dim=1)
        for i in range(derivatives.shape[1]):
            scale = None if scales is None else scales[:, i]
            engine.step(partial(apply_tangent, Wt=rnn._Wt, d=derivatives[:, i]), scale)
        if progress is not None:
            progress(derivatives.shape[1])
    expected = None
    if log_det_w is not None:
        expected = (log_det_w + log_det_sum / (steps - options.warmup)).cpu()
    return engine.result(expected)


def product_lyapunov_spectrum(
    matrices: Callable[[int], torch.Tensor],
    *,
    steps: int,
    k: int | None = None,
    qr_every: int | str = QR_AUTO,
    warmup: int = 0,
    blocks: int = 10,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> LyapunovSpectrum:
    """Lyapunov exponents of a product M_T ⋯ M_2 M_1 of matrices supplied one step at a time.

    The same engine as :func:`lyapunov_spectrum`, for tangent maps that are not an RNN's: products of random
    matrices (the reference checks of :func:`rnnstab.run_validation`), Jacobians of other models.

    Args:
        matrices: called with t = 0..T−1, returns M_{t+1} as (n, n) or (batch, n, n); its dtype (float32/64) and
            device are used throughout and must not change between calls.
        steps: T.
        k, qr_every, blocks, seed, progress: as for :func:`lyapunov_spectrum`.
        warmup: steps before measuring (default 0: a product of i.i.d. matrices has no transient to forget).

    Returns:
        A :class:`LyapunovSpectrum`; ``sum_rule_expected`` is ⟨log|det M_t|⟩ when k = n.

    Raises:
        ArgumentTypeError: ``matrices`` is not callable or returns something other than a floating tensor.
        ShapeError: a matrix that is not square, or whose shape changes between steps.
        InvalidArgumentError: as for :func:`lyapunov_spectrum`.

    Example:
        >>> import torch, rnnstab
        >>> M = torch.tensor([[2.0, 1.0], [0.0, 0.5]], dtype=torch.float64)
        >>> result = rnnstab.product_lyapunov_spectrum(lambda t: M, steps=400, warmup=50)
        >>> [round(v, 3) for v in result.exponents[0].tolist()]
        [0.693, -0.693]
    """
    if not callable(matrices):
        raise ArgumentTypeError(f"matrices must be a callable t -> (batch, n, n) tensor, got {type(matrices)}")
    steps = _checks.positive_int("steps", steps)
    first = _factor(matrices, 0, None)
    batch, n = first.shape[0], first.shape[-1]
    options = _Options.check(n=n, steps=steps, k=k, qr_every=qr_every, warmup=warmup, blocks=blocks, seed=seed)
    check_memory(_memory_estimate(batch, n, options.k, first.dtype), first.device)
    engine = _Benettin(batch, n, options, first.dtype, first.device)
    log_det_sum = torch.zeros(batch, dtype=_F64, device=first.device)
    done = 0
    for t in range(steps):
        M = first if t == 0 else _factor(matrices, t, first)
        if options.k == n and t >= options.warmup:
            log_det_sum += torch.linalg.slogdet(M.to(_F64))[1]
        engine.step(partial(_times_transpose, M=M))
        if progress is not None and (t + 1 - done >= CHUNK_STEPS or t + 1 == steps):
            progress(t + 1 - done)
            done = t + 1
    expected = (log_det_sum / (steps - options.warmup)).cpu() if options.k == n else None
    return engine.result(expected)


def kaplan_yorke_dimension(
    exponents: torch.Tensor, *, hidden_size: int | None = None, atol: float = 0.0
) -> torch.Tensor:
    """D_KY = j + (λ₁ + … + λ_j)/|λ_{j+1}|, with j the largest index whose partial sum λ₁ + … + λ_j is ≥ 0.

    Kaplan & Yorke (1979): the dimension of the attractor estimated from the exponents. 0 when λ₁ < 0 (a stable
    trajectory); n when every partial sum is ≥ 0.

    Args:
        exponents: (k,) or (batch, k), in any order (they are sorted here).
        hidden_size: n; when the spectrum is truncated (k < n) and all k partial sums are ≥ 0 the dimension is not
            determined by the top k and NaN is returned.
        atol: partial sums ≥ −atol count as ≥ 0 (the rounding level of measured exponents).

    Returns:
        A float64 tensor of shape () or (batch,).

    Raises:
        ArgumentTypeError: ``exponents`` is not a tensor.
        ShapeError: ``exponents`` is not (k,) or (batch, k) with k ≥ 1.

    Example:
        >>> kaplan_yorke_dimension(torch.tensor([0.5, -0.2, -1.0]))
        tensor(2.3000, dtype=torch.float64)
    """
    if not isinstance(exponents, torch.Tensor):
        raise ArgumentTypeError(f"exponents must be a torch.Tensor, got {type(exponents).__name__}")
    if exponents.dim() not in (1, 2) or exponents.shape[-1] == 0:
        raise ShapeError(f"exponents must be (k,) or (batch, k) with k ≥ 1, got shape {tuple(exponents.shape)}")
    values = exponents.detach().to(dtype=_F64, device="cpu")
    # The partial sums are of the ordered spectrum; frame order (LyapunovSpectrum.in_frame_order) is not sorted.
    rows = torch.sort(values.reshape(-1, values.shape[-1]), dim=-1, descending=True).values
    k = rows.shape[-1]
    out = torch.empty(rows.shape[0], dtype=_F64)
    for b, row in enumerate(rows):
        sums = torch.cumsum(row, dim=0)
        non_negative = (sums >= -atol).nonzero()
        if non_negative.numel() == 0:
            out[b] = 0.0
            continue
        j = int(non_negative[-1]) + 1  # partial sums of a descending sequence rise, then fall: the last ≥ 0
        if j == k:
            out[b] = float(k) if hidden_size is None or hidden_size == k else math.nan
        else:
            out[b] = j + max(float(sums[j - 1]), 0.0) / abs(float(row[j]))
    return out.reshape(values.shape[:-1])


@dataclass(frozen=True)
class SingularValueSpectrum:
    """All singular values of J_t at chosen steps t (the dynamical-isometry view), natural log, float64.

    Attributes:
        steps: the steps t, ascending.
        log_singular_values: (batch, len(steps), n) log σ_i(J_t), descending.
        dtype: the dtype the product was formed in.
        hidden_size: n.

    Each σ_i is exact to about n·ε·σ₁ (an SVD of the product formed in ``dtype``): values far below
    :meth:`log_rounding_floor` are rounding noise. The Lyapunov spectrum resolves those directions instead.
    """

    steps: tuple[int, ...]
    log_singular_values: torch.Tensor
    dtype: torch.dtype
    hidden_size: int

    def log_rounding_floor(self) -> torch.Tensor:
        """(batch, len(steps)) log(n·ε·σ₁(J_t)): singular values below this are not resolved."""
        eps = torch.finfo(self.dtype).eps
        return self.log_singular_values[..., 0] + math.log(self.hidden_size * eps)

    def finite_time_exponents(self) -> torch.Tensor:
        """(batch, len(steps), n) (1/t)·log σ_i(J_t): these tend to the Lyapunov exponents as t → ∞."""
        t = torch.tensor(self.steps, dtype=_F64)
        return self.log_singular_values / t[None, :, None]

    def isometry_summary(self) -> dict[str, list[float] | list[int]]:
        """Per step t, pooled over the batch: the statistics of the resolved singular values — those at or above
        their own trajectory's :meth:`log_rounding_floor` — and how many fell below it.

        A value below the floor is rounding noise: its log says only that σ_i < n·ε·σ₁, so a mean or spread taken
        with it would describe the noise (at t = 100 of a tanh network with n = 32, g = 1.5, 99 of 128 values are
        below, and they pulled the mean log σ from −27.7 down to −46.9). Keys, each a list over ``steps``:

        - ``mean_log_singular_value``, ``std_log_singular_value``: over the resolved values (NaN when none is, i.e.
          J_t = 0 exactly in every trajectory);
        - ``num_resolved``, ``num_below_rounding_floor``: how many of the batch·n values were used and left out
          (σ_i = 0 exactly counts as below);
        - ``fraction_within_factor_e``: of all batch·n values, those resolved with |log σ| ≤ 1.

        Dynamical isometry is std → 0 with mean ≈ 0, every value resolved and within a factor e of 1.
        """
        floors = self.log_rounding_floor()[..., None]
        resolved = torch.isfinite(self.log_singular_values) & (self.log_singular_values >= floors)
        resolved = resolved.transpose(0, 1).reshape(len(self.steps), -1)
        logs = self.log_singular_values.transpose(0, 1).reshape(len(self.steps), -1)
        logs = torch.where(resolved, logs, math.nan)
        count = resolved.sum(dim=1)
        return {
            "step": [int(t) for t in self.steps],
            "mean_log_singular_value": torch.nanmean(logs, dim=1).tolist(),
            "std_log_singular_value": _nanstd(logs).tolist(),
            "num_resolved": count.tolist(),
            "num_below_rounding_floor": (resolved.shape[1] - count).tolist(),
            "fraction_within_factor_e": (logs.abs() <= 1.0).to(_F64).mean(dim=1).tolist(),
        }


def singular_value_spectrum(
    rnn: VanillaRNN,
    x: torch.Tensor,
    *,
    at: tuple[int, ...] | list[int],
    h0: torch.Tensor | None = None,
    dtype: torch.dtype | str = torch.float64,
    device: torch.device | str | None = None,
    progress: Callable[[int], None] | None = None,
) -> SingularValueSpectrum:
    """Every singular value of J_t = ∂g_t/∂g_0 at the steps ``at``, by an exact SVD of the streamed product.

    This runs :func:`rnnstab.jacobian_norms` (Frobenius only, so no Lanczos) over the first max(at) steps of x.

    Args:
        rnn, x, h0, dtype, device, progress: as for :func:`rnnstab.jacobian_norms`.
        at: the steps t, each in 1..T.

    Returns:
        A :class:`SingularValueSpectrum`.

    Raises:
        ArgumentTypeError: ``at`` is not a collection of steps (a bare int, say).
        InvalidArgumentError: ``at`` empty or holding steps outside 1..T.

    Example:
        >>> import torch, rnnstab
        >>> W = rnnstab.init_weights("orthogonal", 6)
        >>> spectrum = rnnstab.singular_value_spectrum(rnnstab.VanillaRNN(W, activation="identity"),
        ...                                            torch.zeros(1, 50, 0), at=[10, 50])
        >>> float(spectrum.log_singular_values.abs().max()) < 1e-12  # products of orthogonal matrices
        True
    """
    steps = check_rnn(rnn).check_inputs(x).shape[1]
    wanted = _checks.steps("at", at, steps)
    if not wanted:
        raise InvalidArgumentError(f"at must hold integer steps in 1..{steps}, got {list(at)}")
    trace = jacobian_norms(
        rnn,
        x[:, : max(wanted)],
        norms=("frobenius",),
        singular_values_at=wanted,
        h0=h0,
        dtype=dtype,
        device=device,
        progress=progress,
    )
    assert trace.log_singular_values is not None  # requested above
    return SingularValueSpectrum(
        steps=wanted, log_singular_values=trace.log_singular_values, dtype=trace.dtype, hidden_size=trace.hidden_size
    )


@dataclass(frozen=True)
class _Options:
    k: int
    steps: int
    warmup: int
    qr_every: int | str
    blocks: int
    seed: int

    @classmethod
    def check(
        cls, *, n: int, steps: int, k: object, qr_every: object, warmup: object, blocks: object, seed: object
    ) -> _Options:
        size = n if k is None else _checks.positive_int("k", k)
        if size > n:
            raise InvalidArgumentError(f"k must be in 1..{n} (the hidden size), got {size}")
        skip = steps // 10 if warmup is None else warmup
        skip = _checks.integer("warmup", skip)
        if not 0 <= skip < steps:
            raise InvalidArgumentError(f"warmup must be in 0..{steps - 1} (T = {steps} steps), got {skip}")
        interval: int | str = QR_AUTO
        if qr_every != QR_AUTO:
            if isinstance(qr_every, str):
                raise InvalidArgumentError(f"qr_every must be a positive integer or {QR_AUTO!r}, got {qr_every!r}")
            interval = _checks.positive_int("qr_every", qr_every)
        count = min(_checks.positive_int("blocks", blocks), steps - skip)
        seed = _checks.seed("seed", seed)
        return cls(k=size, steps=steps, warmup=skip, qr_every=interval, blocks=count, seed=seed)


def _memory_estimate(batch: int, n: int, k: int, dtype: torch.dtype) -> int:
    """Bytes held at once: the frame at the last QR and two work frames, the QR's output and workspace, a forward
    chunk."""
    itemsize = torch.finfo(dtype).bits // 8
    return itemsize * (5 * batch * n * k + 4 * batch * CHUNK_STEPS * n)


def _factor(matrices: Callable[[int], torch.Tensor], t: int, first: torch.Tensor | None) -> torch.Tensor:
    M = matrices(t)
    name = f"matrices({t})"
    if not isinstance(M, torch.Tensor) or not M.is_floating_point():
        got = f"dtype {M.dtype}" if isinstance(M, torch.Tensor) else type(M).__name__
        raise ArgumentTypeError(f"{name} must return a floating-point torch.Tensor, got {got}")
    M = _checks.tensor(name, M, ndims=(2, 3))
    if M.shape[-1] != M.shape[-2]:
        raise ShapeError(f"{name} must be square (n, n) or (batch, n, n), got shape {tuple(M.shape)}")
    _checks.dtype(f"the dtype of {name}", M.dtype)
    M = M if M.dim() == 3 else M[None]
    if first is not None and (M.shape != first.shape or M.dtype != first.dtype or M.device != first.device):
        raise ShapeError(
            f"{name} is {tuple(M.shape)} {M.dtype} on {M.device} but matrices(0) was "
            f"{tuple(first.shape)} {first.dtype} on {first.device}: every factor must match"
        )
    return M


class _Benettin:
    """The frame F = Qᵀ (batch, k, n) (rows: the orthonormal frame vectors) and the float64 accumulators."""

    def __init__(self, batch: int, n: int, options: _Options, dtype: torch.dtype, device: torch.device) -> None:
        self.options = options
        start = torch.linalg.qr(initial_frame_draw(options.seed, batch, options.k, n))[0]
        self.F = start.mT.to(dtype=dtype, device=device).contiguous()
        self.checkpoint = self.F  # the frame at the last QR: never written to, so an interval can be redone
        self.work = (torch.empty_like(self.F), torch.empty_like(self.F))  # the frame ping-pongs between these
        self.pending: list[Callable[..., torch.Tensor]] = []  # the tangent maps since the last QR (auto only)
        self.scales: list[torch.Tensor | None] = []  # the log factor each of them was divided by (None: 0)
        self.auto = options.qr_every == QR_AUTO
        self.rejected = 0
        self.t = 0
        self.since_qr = 0
        self.interval = 1 if options.qr_every == QR_AUTO else int(options.qr_every)
        self.target, self.limit = log_spread_limits(dtype)
        self.recent: deque[tuple[float, float]] = deque(maxlen=_RECENT_INTERVALS)
        self.max_spread = 0.0
        self.max_interval_spread = 0.0  # the same over intervals of more than one step: only those can be shortened
        self.qr_count = 0
        steps, warmup, blocks = options.steps, options.warmup, options.blocks
        measured = steps - warmup
        self.block_ends = [warmup + round(measured * (j + 1) / blocks) for j in range(blocks)]
        history_points = min(_HISTORY_POINTS, measured)
        # History points do not force QRs (that would cap the interval): each is recorded at the next QR.
        self.history_points = sorted(
            {warmup + round(measured * (j + 1) / history_points) for j in range(history_points)}
        )
        self.history_steps: list[int] = []
        self.forced = sorted({warmup, *self.block_ends} - {0})
        self.next_forced = 0
        zeros = torch.zeros(batch, options.k, dtype=_F64, device=device)
        self.total_all = zeros.clone()  # Σ log R_ii over every step so far, warm-up included (drives the rule)
        self.total = zeros.clone()  # over the measured steps only
        self.blocks = torch.zeros(blocks, batch, options.k, dtype=_F64, device=device)
        self.block = 0
        self.history: list[torch.Tensor] = []

    def step(self, apply: Callable[..., torch.Tensor], log_scale: torch.Tensor | None = None) -> None:
        """Advance the frame by one tangent map M: ``apply(F, out=...)`` writes F·Mᵀ into ``out``.

        ``log_scale`` (batch,): M is the true map divided by e^{log_scale}, which every exponent gets back."""
        self._advance(apply)
        self.scales.append(log_scale)
        if self.auto:
            self.pending.append(apply)
        self.since_qr += 1
        forced = self.next_forced < len(self.forced) and self.forced[self.next_forced] == self.t
        if forced:
            self.next_forced += 1
        if forced or self.since_qr >= self.interval:
            self._end_interval()

    def _advance(self, apply: Callable[..., torch.Tensor]) -> None:
        out = self.work[0] if self.F is not self.work[0] else self.work[1]
        apply(self.F, out=out)
        self.F = out
        self.t += 1

    def _end_interval(self) -> None:
        steps, start = self.since_qr, self.checkpoint
        self.since_qr = 0
        logs = self._orthonormalise()
        if self.auto and steps > 1 and self._spread(logs) > self.limit:
            # Too ill-conditioned to trust (a fluctuation beyond the margin): redo the interval one step at a time
            # from the frame at the previous QR. The rejected factorisation is counted but not used.
            self.rejected += 1
            self.F, self.t = start, self.t - steps
            for apply, scale in zip(self.pending, self.scales, strict=True):
                self._advance(apply)
                self._account(self._orthonormalise(), 1, [scale])
        else:
            self._account(logs, steps, self.scales)
        self.pending.clear()
        self.scales.clear()

    def _orthonormalise(self) -> torch.Tensor:
        """QR of the frame; the frame becomes Q (with a positive R diagonal); returns log|R_ii| in float64.

        The rows of the n × k matrix (one per hidden unit) are sorted by decreasing norm first: R is unchanged by a
        row permutation, and Householder QR with sorted rows is row-wise backward stable (Powell & Reid 1969; Cox &
        Higham 1998), so a unit that σ' ≈ 0 nearly switches off (one tiny row of D_t W Q) is still resolved —
        unsorted, the error, relative to the column norms, swamps that row (seen: gelu, one step spanning 66 nats).
        """
        norms = torch.linalg.vector_norm(self.F, dim=1)  # (batch, n): the rows of the n × k frame
        index = torch.argsort(norms, dim=-1, descending=True)[:, None, :].expand_as(self.F)
        q, r = torch.linalg.qr(self.F.gather(2, index).mT)
        diagonal = torch.diagonal(r, dim1=-2, dim2=-1)
        # Positive R diagonal: the unique QR, so the frame is a continuous function of the data on every backend.
        sign = torch.where(diagonal < 0, -1.0, 1.0).to(q.dtype)
        rows = q.mT * sign[:, :, None]  # (batch, k, n), rows still in the sorted order
        self.F = self.checkpoint = torch.empty_like(rows).scatter_(2, index, rows)
        self.qr_count += 1
        return torch.log(diagonal.abs().to(_F64))

    @staticmethod
    def _spread(logs: torch.Tensor) -> float:
        """max over the batch of max_i log R_ii − min_i log R_ii (+inf for a dead direction)."""
        return float(_nan_to_inf(logs.amax(dim=-1) - logs.amin(dim=-1)).amax())

    def _account(self, logs: torch.Tensor, steps: int, scales: list[torch.Tensor | None]) -> None:
        """Add an accepted interval of ``steps`` steps ending at self.t to the sums, blocks and history.

        ``logs`` are those of the frame as computed (they drive the interval rule); the sums get each step's
        ``scales`` back."""
        spread = self._spread(logs)
        magnitude = float(_nan_to_inf(logs.abs().amax()))
        for scale in scales:
            if scale is not None:
                logs = logs + scale[:, None]
        self.total_all += logs
        self.max_spread = max(self.max_spread, spread)
        if steps > 1:
            self.max_interval_spread = max(self.max_interval_spread, spread)
        if self.t > self.options.warmup:
            self.total += logs
            self.blocks[self.block] += logs
            if self.t == self.block_ends[self.block]:
                self.block = min(self.block + 1, self.options.blocks - 1)
            if self.history_points and self.history_points[0] <= self.t:
                self.history_points = [p for p in self.history_points if p > self.t]
                self.history_steps.append(self.t)
                self.history.append(self.total / (self.t - self.options.warmup))
        if self.auto:
            self._choose_interval(spread / steps, magnitude / steps)

    def _choose_interval(self, spread_last: float, magnitude_last: float) -> None:
        self.recent.append((spread_last, magnitude_last))
        rates = self.total_all / self.t
        spread = max(float(_nan_to_inf(rates.amax(dim=-1) - rates.amin(dim=-1)).amax()), *(r[0] for r in self.recent))
        magnitude = max(float(_nan_to_inf(rates.abs().amax())), *(r[1] for r in self.recent))
        allowed = min(_fits(self.target, spread), _fits(self.target, magnitude), 2 * self.interval, _MAX_INTERVAL)
        self.interval = max(1, allowed)

    def result(self, sum_rule_expected: torch.Tensor | None) -> LyapunovSpectrum:
        options = self.options
        if self.max_interval_spread > self.limit:
            # Only a fixed interval gets here (the automatic rule redoes such intervals): its exponents below the top
            # are off by up to ε·e^{spread} per QR, which past the limit is nats per step, not rounding.
            warnings.warn(
                f"qr_every={options.qr_every} let log R_ii spread over {self.max_interval_spread:.3g} nats between two "
                f"QRs, past the limit {self.limit:.3g} for {str(self.F.dtype).removeprefix('torch.')} "
                "(⅔·ln(1/ε)): the smaller exponents are dominated by rounding. Use qr_every='auto' or a shorter "
                "interval",
                RnnstabWarning,
                stacklevel=3,
            )
        measured = options.steps - options.warmup
        exponents = (self.total / measured).cpu()
        lengths = torch.tensor(
            [end - begin for begin, end in zip([options.warmup, *self.block_ends[:-1]], self.block_ends, strict=True)],
            dtype=_F64,
        )
        block_means = (self.blocks.cpu() / lengths[:, None, None]).permute(1, 0, 2)  # (batch, blocks, k)
        if options.blocks > 1:
            stderr = block_means.std(dim=1, correction=1) / math.sqrt(options.blocks)
        else:
            stderr = torch.full_like(exponents, math.nan)
        order = torch.argsort(exponents, dim=-1, descending=True, stable=True)
        history = torch.stack(self.history, dim=1).cpu() if self.history else exponents[:, None, :0]
        return LyapunovSpectrum(
            exponents=exponents.gather(-1, order),
            exponents_stderr=stderr.gather(-1, order),
            frame_index=order,
            block_exponents=block_means.gather(-1, order[:, None, :].expand_as(block_means)),
            history_steps=tuple(self.history_steps),
            history=history.gather(-1, order[:, None, :].expand_as(history)),
            hidden_size=int(self.F.shape[-1]),
            steps=options.steps,
            warmup=options.warmup,
            qr_every=options.qr_every,
            qr_count=self.qr_count,
            rejected_intervals=self.rejected,
            max_log_spread=self.max_spread,
            log_spread_target=self.target,
            log_spread_limit=self.limit,
            sum_rule_expected=sum_rule_expected,
            dtype=self.F.dtype,
        )


def initial_frame_draw(seed: int, batch: int, k: int, n: int) -> torch.Tensor:
    """(batch, n, k) float64 on the CPU: trajectory b's initial frame before orthonormalisation (its QR's Q).

    Column j is the j-th row of a standard normal (n, n) draw seeded with seed + b. QR is Gram–Schmidt (its first k
    columns depend only on the first k vectors), so the top k exponents follow the same frames as the first k of the
    full spectrum, and row b of a batch is the run of network b alone with seed + b.
    """
    rows = [np.random.default_rng(seed + b).standard_normal((k, n)) for b in range(batch)]
    return torch.from_numpy(np.stack(rows)).mT


def _times_transpose(F: torch.Tensor, M: torch.Tensor, *, out: torch.Tensor) -> torch.Tensor:
    return torch.matmul(F, M.mT, out=out)


def _fits(limit: float, rate: float) -> int:
    """The most steps s with s·rate ≤ limit (a huge number for a zero rate)."""
    if not rate > 0:
        return _MAX_INTERVAL if rate == 0 else 1
    return int(min(limit / rate, _MAX_INTERVAL))


def _nan_to_inf(value: torch.Tensor) -> torch.Tensor:
    """−inf − (−inf) is NaN: a dead direction makes the spread unbounded, so read NaN as +inf."""
    return torch.where(torch.isnan(value), math.inf, value)


def _nanstd(values: torch.Tensor) -> torch.Tensor:
    mean = torch.nanmean(values, dim=1, keepdim=True)
    return torch.sqrt(torch.nanmean((values - mean) ** 2, dim=1))
