"""‖J_t‖₂ at every step of a streamed product, by warm-started block Lanczos: block Krylov with Rayleigh–Ritz.

J_t = D_t W J_{t-1} is held transposed, P = J_tᵀ (times a known scale), so both J·v and Jᵀ·y are rows times P:
memory-bound thin products that read P once however many rows they carry, so a block of three rows costs about
what one row does. Each step builds an orthonormal basis V of the block Krylov space of JᵀJ, a block of three rows
at a time (full reorthogonalisation), from a start block of the previous step's top two Ritz vectors (the top right
singular vector converges as t grows, by Oseledets' theorem) and one generic vector, a different one of a fixed set
at each step. A single warm vector — the single-vector Lanczos this replaced — misses the top two singular values
changing places (it converges to the old top value, now the second: seen 6 % low in float32 at n = 32), and a single
fixed start vector can be nearly orthogonal to the top singular vector of some J (seen at t = 1: a component of
1e-4, a cluster of close singular values, 5.6e-4 low in float64).

The images Y = J V are formed afresh from P, one thin product per block, never through a recurrence: carried
through D_t W, their rounding error would keep its size while the images themselves shrink by the smallest
derivatives (saturated units, where σ' spans orders of magnitude), and the estimate would stop being a projection of
J_t (seen: 3 % too high in float32). The estimate is σ₁(Y) — the square root of the top eigenvalue of the Gram
matrix Y Yᵀ, formed in float64 — a Ritz value, hence never above ‖J_t‖₂ beyond rounding.

A row has converged when its Ritz value grew by at most ``rtol`` with the last block and by far less than with the block
before (geometric convergence, not a crawl through a cluster of close singular values, which can raise the value by less
than rtol a block while it is still well below the top: seen 2.5e-4 low in float32), and its second Ritz value grew by
at most 10⁻³ of the top one (a top value pinned at a lower singular value, whose exact singular vector the start block
holds, does not move while the second climbs towards the true top). Sequences marked ``strict`` (a sparse W, see
:mod:`rnnstab._coupling`) need the two Ritz values below the top to have grown by at most rtol/10 of it, as does every
sequence whose second Ritz value lies within 10⁻³ of the top (a cluster, where all of the block's must), and they run in
blocks of four rows, two of the start block generic: on a sparse W the one generic row of three can be nearly orthogonal
to a top singular vector that weak links keep apart (a leaky relu chain: a component of 3e-5, 1.1e-3 nats low), and four
runs of live units can make four nearly equal top singular values (1.8e-8 low at t = 1). Sequences marked ``exact`` are
solved by an SVD at every step instead, and those marked ``diagonal`` (a diagonal W, so that every J_t is diagonal) take
‖J_t‖₂ as their largest column norm, exactly and at no cost. A run that fills the Krylov basis (40 rows) without
converging restarts from its Ritz vectors; a step that does not converge within ``max_iter`` blocks falls back to an
exact solve (the top eigenvalue of JᵀJ, in float64), as does one whose block of Ritz values ends in a crowded cluster of
top singular values, too close together for a block to tell apart (see ``SpectralTracker._crowded``). A sequence with
half of a window's steps slow — restarted or solved exactly — has its next window solved exactly outright, then tries
block Lanczos again, and stays switched for twice as long each time it is still slow there (see
``SpectralTracker._back_off``): along an orthogonal W with tanh and small inputs nearly every step is slow, and a row
spent 50 blocks, 2 ms at n = 128, where the exact solve costs 0.7 ms.

Steps are taken a window at a time: the products of up to :func:`window` consecutive steps are kept where they were
formed, and all their rows run as one stack, each from the top Ritz vectors of the step before the window. At
n ≈ 128 a Krylov block costs far more in tensor-call overhead (and LAPACK's per-matrix cost) than in arithmetic,
and a window shares the overhead among its steps. Once at most half of a stack is still running, the running rows
are gathered into a smaller one, so that a few slow rows do not carry the rest through their blocks. A start up to
a window stale costs a row more blocks, not accuracy: the stopping test does not trust the start. (In A/B runs in one
process, n = 128, float32, batch 16: windows of 8 steps took 0.55–0.65 × the time of one step at a time.)

The largest column norm max_i ‖J e_i‖, which the Frobenius pass gives for free, is a second lower bound of ‖J_t‖₂;
a Ritz value below it proves the run stopped short (every J_t diagonal, W = I with tanh: when the top unit changes
to one the start rows miss), and the row is run again with e_i in its start block.
"""

from __future__ import annotations

import itertools

import torch

_MAX_KRYLOV = 40
_BLOCK = 3  # rows per Krylov block
_STRICT_BLOCK = 4  # for ``strict`` sequences: two warm rows and two generic ones
_WARM = 2  # of the start block, the previous step's top Ritz vectors; the rest generic
_GENERIC = 16  # generic start vectors, used in turn
_MIN_BASIS = 4  # orthogonalise against at least this many rows (see _Workspace)
_FAST = 0.01  # converged: the Ritz value's last growth is at most this fraction of the one before (and ≤ rtol)
_ROUNDING = 2**-42  # or a growth this small relative to the value: rounding in the float64 Gram matrix
_SECOND = 1e-3  # and the second Ritz value grew by at most this fraction of the top one
_STRICT = 0.1  # with ``strict``: and the two Ritz values below the top grew by at most this × rtol of it
_CLUSTER = 1e-3  # a second Ritz value within this fraction of the top one: a cluster, held to the strict limits
_WINDOW = 8  # at most this many steps a window
_WINDOW_ENTRIES = 2**21  # and at most this many product entries per sequence (a window of 8 up to n = 512)
_MAX_BACK_OFF = 16  # windows a slow sequence is solved exactly at most before block Lanczos is tried again


def window(n: int) -> int:
    """Steps a :class:`SpectralTracker` takes at once for n×n products: at least two, so that the product being
    formed and the one it is formed from never share a slot. It depends on n alone, never on the batch, so that the
    tracker treats a sequence alike whatever else shares its batch."""
    return max(2, min(_WINDOW, _WINDOW_ENTRIES // (n * n)))


def memory(batch: int, n: int, dtype: torch.dtype) -> int:
    """Bytes a :class:`SpectralTracker` holds for a (batch, n, n) product, beside the window of products: its basis
    (in the product's dtype), the basis's images and their Gram matrix (float64), for every row of a window, and the
    float64 copies of a batch of products and of their Gram matrices that an exact solve takes."""
    size = min(n, _MAX_KRYLOV)
    return window(n) * batch * size * (n * (torch.finfo(dtype).bits // 8) + 8 * (n + size)) + 16 * batch * n * n


class SpectralTracker:
    """Top singular value of each step's product P (batch, n, n), P ← P Wᵀ diag(d), a window of steps at a time.

    The caller holds ``slots`` (window(n), batch, n, n), forms step t's product in ``slots[t % window(n)]``, and then
    calls :meth:`update`; a full window is solved at once, and :meth:`finish` solves the rest and returns every step's
    ‖P‖₂. Each row of a stack converges on its own (converged rows are frozen while the others go on, and a row's
    start depends on its own sequence and step alone), so the tracker's work on a network does not depend on which
    networks share its batch.
    """

    def __init__(
        self,
        *,
        rtol: float,
        max_iter: int,
        strict: torch.Tensor | None = None,
        exact: torch.Tensor | None = None,
        diagonal: torch.Tensor | None = None,
    ) -> None:
        """``strict`` (batch,) bool: sequences held to the stricter stopping test (see :mod:`rnnstab._coupling`);
        ``exact`` (batch,) bool: sequences whose every step is solved by an exact SVD instead; ``diagonal`` (batch,)
        bool: sequences of a diagonal W, whose every J_t is diagonal, so that ‖J_t‖₂ is its largest column norm, read
        off exactly. All on the CPU."""
        self.rtol, self.max_iter = rtol, max_iter
        self.strict, self.exact, self.diagonal = strict, exact, diagonal
        self.strict_limit = min(_SECOND, _STRICT * rtol)  # how far a lower Ritz value may grow under the strict test
        self.warm: torch.Tensor | None = None  # the top Ritz vectors of the last step solved (batch, keep, n)
        self.iterations: list[int] = []  # per step: the Krylov blocks its slowest row added
        self.fallbacks = 0
        self.sigma: list[torch.Tensor] = []  # ‖P‖₂ of each step solved, (batch,)
        self.waiting: list[tuple[torch.Tensor, torch.Tensor]] = []  # (fro, columns) of the window's steps so far
        self.workspace: _Workspace | None = None

    def update(self, slots: torch.Tensor, fro: torch.Tensor, columns: torch.Tensor) -> None:
        """Take the next step, whose product is in its slot; ``fro`` = ‖P‖_F (0 marks a dead product) and ``columns``
        (batch, n) the norms of P's rows, the columns J e_i of J."""
        if self.workspace is None:
            self._setup(slots)
        self.waiting.append((fro, columns))
        taken = len(self.sigma) + len(self.waiting)
        # windows of 1, 1, 2, 4, … steps at first, where the top singular vectors still move fast, then full ones;
        # none wraps around the slots
        if taken % slots.shape[0] == 0 or (taken < slots.shape[0] and taken & (taken - 1) == 0):
            self._solve_window(slots)

    def finish(self, slots: torch.Tensor) -> torch.Tensor:
        """‖P‖₂ (steps, batch) of every step taken."""
        if self.waiting:
            self._solve_window(slots)
        return torch.stack(self.sigma)

    def _setup(self, slots: torch.Tensor) -> None:
        window, batch, n, _ = slots.shape
        size = min(n, _MAX_KRYLOV)  # Krylov dimension ≤ n: more vectors cannot be orthogonal
        self.keep = min(_WARM, size)
        self.noise = n * torch.finfo(slots.dtype).eps  # relative size of rounding in one thin product
        # how far rounding can put a column norm above a Ritz value of the same J: each is a norm of n products
        # rounded in the dtype, off by about √n·ε relative. 4·n·ε, the allowance before, let a float32 run along a
        # diagonal J (silu, n = 256), whose top column norm is ‖J‖₂ itself, stop 1.1e-4 low.
        self.bound_rounding = 4 * n**0.5 * torch.finfo(slots.dtype).eps
        self.spread = max(self.rtol, self.bound_rounding)  # a cluster of Ritz values wider than this is crowded
        generic = torch.randn(_GENERIC, n, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        self.generic = (generic / generic.norm(dim=-1, keepdim=True)).to(dtype=slots.dtype, device=slots.device)
        self.workspace = _Workspace.empty(window * batch, slots)
        # How far each lower Ritz value (the block's, below the top, lowest first) may grow at the block that
        # converges, relative to the top one: 1 leaves a value free, as it never exceeds the top one.
        dense = torch.ones(min(_BLOCK, size) - 1, dtype=torch.float64)
        dense[-1:] = _SECOND
        strict = torch.full((min(_STRICT_BLOCK, size) - 1,), self.strict_limit, dtype=torch.float64)
        strict[:1] = 1.0
        self.shapes = {
            _DENSE: _Shape(n, size, dense.to(slots.device)),
            _STRICT_KIND: _Shape(n, size, strict.to(slots.device)),
        }
        kinds = torch.full((batch,), _DENSE, dtype=torch.int64)
        if self.strict is not None:
            kinds[self.strict] = _STRICT_KIND
        if self.exact is not None:
            kinds[self.exact] = _EXACT
        if self.diagonal is not None:
            kinds[self.diagonal] = _DIAGONAL
        self.kinds, self.batch = kinds, batch
        self.backoff = torch.zeros(batch, dtype=torch.int64)  # windows each sequence is still solved exactly
        self.penalty = torch.ones(batch, dtype=torch.int64)  # and how many windows its next switch will last

    def _solve_window(self, slots: torch.Tensor) -> None:
        steps, batch, n = len(self.waiting), slots.shape[1], slots.shape[-1]
        first = len(self.sigma)
        at = first % slots.shape[0]
        P = slots[at : at + steps].reshape(steps * batch, n, n)  # a view: row k·batch + i is sequence i, k-th step
        fro = torch.cat([f for f, _ in self.waiting])
        columns = torch.cat([c for _, c in self.waiting])
        step = torch.arange(first, first + steps).repeat_interleave(batch)
        start = None if self.warm is None else self.warm.repeat(steps, 1, 1)
        kept = torch.zeros(steps * batch, dtype=torch.bool, device=P.device)
        kept[-batch:] = True  # the next window starts from the last step's Ritz vectors; the others' go unused
        switched = self.backoff > 0
        kinds = torch.where(switched, _SWITCHED, self.kinds)
        present = sorted(set(kinds.tolist()))
        slow = torch.zeros(steps * batch, dtype=torch.bool)
        svd = torch.zeros(steps * batch, dtype=torch.bool)
        if len(present) == 1 and present[0] in self.shapes:  # the common case: one kind of network
            sigma, blocks, warm, slow, svd = self._solve(P, fro, columns, start, step, kept, self.shapes[present[0]])
        else:
            kinds = kinds.repeat(steps)
            sigma = torch.empty_like(fro)
            blocks = torch.zeros(steps * batch, dtype=torch.int64)
            warm = torch.zeros(steps * batch, self.keep, n, dtype=P.dtype, device=P.device)
            for kind in present:
                rows = (kinds == kind).nonzero().flatten()
                on = rows.to(P.device)
                if kind == _EXACT:
                    sigma[on] = torch.linalg.matrix_norm(P[on], ord=2)
                elif kind == _DIAGONAL:
                    sigma[on] = columns[on].amax(dim=-1)
                elif kind == _SWITCHED:
                    sigma[on], warm[on] = self._exact(P[on], kept[on])
                    svd[rows] = True
                else:
                    sigma[on], blocks[rows], warm[on], slow[rows], svd[rows] = self._solve(
                        P[on],
                        fro[on],
                        columns[on],
                        None if start is None else start[on],
                        step[rows],
                        kept[on],
                        self.shapes[kind],
                    )
        self.warm = warm[-batch:]
        self.sigma.extend(sigma.view(steps, batch).unbind(0))
        self.iterations.extend(blocks.view(steps, batch).amax(dim=1).tolist())
        self.fallbacks += int(svd.view(steps, batch).any(dim=1).sum())
        self._back_off(switched, slow.view(steps, batch).sum(dim=0), steps, full=steps == slots.shape[0])
        self.waiting = []

    def _back_off(self, switched: torch.Tensor, slow: torch.Tensor, steps: int, *, full: bool) -> None:
        """Choose which sequences the next windows solve exactly (:meth:`_exact`): those with at least half of this
        window's steps, and two, slow — restarted, or solved exactly. Where the top singular values of J_t crowd
        together along a stretch of steps (an orthogonal W with tanh and small inputs: relative gaps of 10⁻⁷–10⁻²,
        against a spread of the spectrum up to 1), a row takes 50 blocks, 2 ms at n = 128, to an exact solve's
        0.7 ms, and the next steps' rows do the same. A switched sequence returns to block Lanczos, warm-started from
        the exact singular vectors, after 1 window, then after 2, 4, … up to 16 while it is still slow there; a window
        with no slow step resets that to 1. Only full windows count: in the first ones, of 1, 1, 2 and 4 steps, the
        top singular vectors still turn fast and restarts are the rule (at n = 512 they had switched a Gaussian
        network's steps 5–8, to exact solves of 16 ms each: 0.47 s for the run instead of 0.39)."""
        self.backoff = torch.where(switched, self.backoff - 1, self.backoff)
        enter = ~switched & (slow >= max(2, (steps + 1) // 2)) & full
        self.backoff = torch.where(enter, self.penalty, self.backoff)
        calm = ~switched & (slow == 0)
        self.penalty = torch.where(enter, (2 * self.penalty).clamp(max=_MAX_BACK_OFF), self.penalty)
        self.penalty = torch.where(calm, 1, self.penalty)

    def _solve(
        self,
        P: torch.Tensor,
        fro: torch.Tensor,
        columns: torch.Tensor,
        warm: torch.Tensor | None,
        step: torch.Tensor,
        kept: torch.Tensor,
        shape: _Shape,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(‖P‖₂, the Krylov blocks each row added, the top Ritz vectors of the ``kept`` rows, which rows were
        slow — restarted or solved exactly — and which were solved exactly) of a stack of rows: one run from the warm
        start, then, for the rare rows it did not settle, restarts from their Ritz vectors (gathered, so that the
        settled rows cost nothing more), and an exact solve (:meth:`_exact`) for any row still pending after
        ``max_iter`` blocks. The Ritz vectors of the other rows are left at zero. The two masks are on the CPU."""
        bound = columns.amax(dim=-1)  # a lower bound of ‖J‖₂
        start = self._start(warm, step, 0, shape)
        sigma, blocks, done, warm, crowded = self._krylov(P, start, fro, bound, self.max_iter, kept, shape)
        crowded &= done
        svd = crowded.cpu()
        if bool(svd.any()):
            sigma, warm = self._solve_exactly(P, crowded, sigma, warm)
        if bool(done.all()):  # the common case: one run settles every row
            return sigma, blocks, warm, svd, svd
        rows = (~done).nonzero().flatten()
        on_cpu = rows.cpu()  # ``step`` and ``blocks`` are bookkeeping, kept on the CPU
        spent = int(blocks[on_cpu].max())
        short = self._short(sigma[rows], bound[rows])
        settled, spent, settled_warm, settled_svd = self._settle(
            P[rows], fro[rows], columns[rows], step[on_cpu], sigma[rows], warm[rows], short, spent, shape
        )
        return (
            sigma.index_copy(0, rows, settled),
            blocks.index_fill(0, on_cpu, spent),
            warm.index_copy(0, rows, settled_warm),
            svd | (~done).cpu(),
            svd.index_copy(0, on_cpu, settled_svd),
        )

    def _start(self, warm: torch.Tensor | None, step: torch.Tensor, run: int, shape: _Shape) -> torch.Tensor:
        """The start block of a row's ``run``-th run at its ``step``: its ``warm`` rows, then generic ones. Which
        generic ones depends on the step and the run alone, not on the other rows of the batch; they change from
        step to step, so that one nearly orthogonal to the top singular vector is not used at every step.

        The rows must be linearly independent (they are: orthonormal Ritz vectors, or e_i, and random generic rows).
        A dependent row is zeroed as rounding noise, each later block then carries a zero row too, and a basis that
        reaches n rows without spanning ℝⁿ would be taken as exact (seen: 2 % low at n = 7, with a start that
        repeated a generic row)."""
        count = shape.block - (0 if warm is None else warm.shape[1])
        index = (torch.arange(count)[None, :] + step[:, None] + run) % _GENERIC
        generic = self.generic[index.to(self.generic.device)]
        return generic if warm is None else torch.cat([warm, generic], dim=1)

    def _settle(
        self,
        P: torch.Tensor,
        fro: torch.Tensor,
        columns: torch.Tensor,
        step: torch.Tensor,
        run_sigma: torch.Tensor,
        run_warm: torch.Tensor,
        short: torch.Tensor,
        spent: int,
        shape: _Shape,
    ) -> tuple[torch.Tensor, int, torch.Tensor, torch.Tensor]:
        """(‖P‖₂, blocks spent, top Ritz vectors, which rows were solved exactly, on the CPU) of rows whose first run
        (σ ``run_sigma``, Ritz vectors ``run_warm``, ``spent`` blocks) did not settle them."""
        bound = columns.amax(dim=-1)
        sigma = torch.zeros_like(run_sigma)
        warm = run_warm  # the pending rows' are replaced below
        pending = torch.ones_like(short)
        exact = torch.zeros_like(short)  # rows whose run ended in a crowded cluster
        run = 0
        while bool(pending.any()) and spent < self.max_iter and not bool((run_sigma[pending] == 0).any()):
            run += 1
            if bool(short.any()):  # the top Ritz vector and the column that beat it
                run_warm = torch.where(
                    short[:, None, None],
                    torch.cat([run_warm[:, :1], _top_column(columns, run_warm[:, :1])], dim=1)[:, : self.keep],
                    run_warm,
                )
            start = self._start(run_warm, step, run, shape)
            run_sigma, blocks, done, run_warm, crowded = self._krylov(
                P, start, fro, bound, self.max_iter - spent, None, shape
            )
            spent += int(blocks.max())
            short = self._short(run_sigma, bound)
            done &= pending
            exact |= done & crowded
            sigma = torch.where(done, run_sigma, sigma)
            warm = torch.where(done[:, None, None], run_warm, warm)
            pending &= ~done
        svd = pending | exact
        if bool(svd.any()):
            sigma, warm = self._solve_exactly(P, svd, sigma, warm)
        return sigma, spent, warm, svd.cpu()

    def _solve_exactly(
        self, P: torch.Tensor, rows: torch.Tensor, sigma: torch.Tensor, warm: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``sigma`` and ``warm`` with the ``rows`` (a mask) replaced by :meth:`_exact`'s norms and vectors."""
        rows = rows.nonzero().flatten()
        values, vectors = self._exact(P[rows], torch.ones_like(rows, dtype=torch.bool))
        return sigma.index_copy(0, rows, values), warm.index_copy(0, rows, vectors)

    def _exact(self, P: torch.Tensor, kept: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(‖P‖₂, exact, the top right singular vectors of J for the ``kept`` rows, zero for the others) of a stack of
        rows: σ₁² as the top eigenvalue of JᵀJ = P Pᵀ formed in float64, accurate to about n·ε₆₄ relative, and its
        eigenvectors. LAPACK takes 0.6 ms for the eigenvalues of one 128×128 matrix, an SVD 1.0–1.4 ms, with vectors
        1.0 and 2.1 ms; and float32's SVD with vectors can fail to converge on the products that get here (a leaky
        relu chain, n = 100), where float64's eigensolver does not. Taken a batch of rows at a time, so that the
        float64 copies take no more memory than :func:`memory` counts, whatever the window."""
        sigma = torch.empty(P.shape[0], dtype=torch.float64, device=P.device)
        warm = torch.zeros(P.shape[0], self.keep, P.shape[-1], dtype=P.dtype, device=P.device)
        for part in torch.split(torch.arange(P.shape[0], device=P.device), self.batch):
            wide = P[part].to(torch.float64)
            gram = torch.bmm(wide, wide.mT)  # JᵀJ: P = Jᵀ
            del wide
            rows, others = kept[part].nonzero().flatten(), (~kept[part]).nonzero().flatten()
            if len(rows):
                values, vectors = torch.linalg.eigh(gram[rows])
                sigma[part[rows]] = values[:, -1]
                warm[part[rows]] = vectors[:, :, -self.keep :].flip(-1).mT.to(P.dtype)
            if len(others):
                sigma[part[others]] = torch.linalg.eigvalsh(gram[others])[:, -1]
        return sigma.clamp_min(0.0).sqrt().to(P.dtype), warm

    def _crowded(self, sigma: torch.Tensor, lower: torch.Tensor) -> torch.Tensor:
        """Rows whose block of Ritz values (top ``sigma``, ``lower`` below it, lowest first) lies in one cluster,
        within 10⁻³ of the top, yet spread wider than rtol (or 4·√n·ε, the rounding that separates Ritz values): the
        block is too small to tell the cluster's top apart, and a crawl through it stops short (an orthogonal W plus
        noise of 10⁻⁷, relu, t = 1: 4.8e-9 low in float64; singular values in [1 − 10⁻⁵, 1]: 6.6e-7; in float32, with
        n·ε as the rounding, an orthogonal W plus noise of 4e-5 at n = 256 stopped 1.6e-4 low). A cluster narrower
        than that is exact to rtol."""
        if lower.shape[1] == 0:  # a block of one row: n = 1
            return torch.zeros_like(sigma, dtype=torch.bool)
        lowest = lower[:, 0]
        return (lowest >= (1 - _CLUSTER) * sigma) & (sigma - lowest > self.spread * sigma)

    def _short(self, sigma: torch.Tensor, bound: torch.Tensor) -> torch.Tensor:
        """Rows whose Ritz value is below ``bound`` (the largest column norm of J) beyond rounding and rtol: the run
        stopped short."""
        return bound > sigma * (1 + self.rtol + self.bound_rounding)

    def _krylov(
        self,
        P: torch.Tensor,
        start: torch.Tensor,
        fro: torch.Tensor,
        bound: torch.Tensor,
        budget: int,
        kept: torch.Tensor | None,
        shape: _Shape,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One block Krylov run from the rows ``start`` (rows, block, n), in blocks of ``shape``.

        Returns (σ, the blocks each row added after the start block, which rows it settled, the top ``keep`` Ritz
        vectors of the ``kept`` rows (all if ``None``) and of every row not settled, zero for the others, and which
        rows ended in a crowded cluster, to be solved exactly; see :meth:`_crowded`). A row
        converges at the first block that passes the test above; its basis is cut there, so later blocks (added for
        other rows) leave it unchanged. It is settled if it converged, did not stop short of ``bound`` (the largest
        column norm of its J) and, for a live product, found σ > 0: σ = 0 means the start fell into J's null space,
        where only an exact solve can say more. Once at most half the stack is still running, the running rows are
        gathered into a smaller stack (their products, basis and state), and the Ritz vectors the others need are
        taken first: a window's slowest rows then no longer carry every other row through their blocks."""
        total = P.shape[0]
        ws = self._workspace(P)
        floor = (self.noise * fro)[:, None, None]
        ends, limits = shape.ends, shape.limits.expand(total, -1)
        (sigma, second), last = self._add_block(
            ws, P, start, 0, ends[0], torch.full_like(floor, self.noise), shape.block
        )
        done = torch.zeros_like(fro, dtype=torch.bool)
        cut = torch.full_like(fro, ends[0], dtype=torch.int64)  # each row's basis size when it converged
        growth = torch.zeros_like(sigma)  # by how much the last block raised each row's Ritz value
        index = torch.arange(total, device=P.device)  # the rows of the stack, as rows of the first one
        out_sigma, out_cut, out_done = torch.empty_like(sigma), torch.empty_like(cut), torch.empty_like(done)
        out_crowded = torch.empty_like(done)
        out_warm = torch.zeros_like(ws.basis[:, : self.keep])
        kept = torch.ones_like(done) if kept is None else kept
        for spent, (previous, end) in enumerate(itertools.pairwise(ends), start=1):
            if spent > budget:
                break
            # The next block spans JᵀJ times the last one: Jᵀ ŷ with ŷ the last images, normalised (or zeroed where
            # they are rounding noise, the Krylov space exhausted), so that the floor below applies at unit scale.
            norm = torch.linalg.vector_norm(last, dim=-1, keepdim=True)
            unit = last / torch.where(norm > floor, norm, torch.inf)
            (ritz, ritz2), last = self._add_block(ws, P, torch.bmm(unit, P.mT), previous, end, floor, shape.block)
            running = ~done
            cut = torch.where(running, end, cut)
            # Ritz values only grow with the basis (Cauchy interlacing: each Gram matrix borders the last). A row has
            # converged when its value grew by at most rtol, and by far less than at the block before — or by
            # rounding alone (a dead product, 0 = 0, or one whose top singular value the start block held). Small
            # steps alone are not enough: through a cluster of close singular values the value can creep up by
            # less than rtol a block while still well below the top (seen: 2.5e-4 low in float32 at t = 1). Nor is
            # a top value that did not move at all while the second one still climbs: a warm vector that is an exact
            # singular vector of J_t (W block-diagonal, whose blocks J_t keeps apart) pins the top value at a lower
            # singular value until the generic row's Krylov vectors, climbing below it, pass it (seen: 8 % low).
            step = ritz - sigma
            if end - previous == shape.block:
                # Not at a part-block (the last, completing ℝⁿ): it carries only the first rows' continuations, which
                # can be chains already run out (zero rows), so that it adds nothing while the Krylov space is not
                # exhausted. Such a run is judged below, by whether its basis spans ℝⁿ.
                # inside a cluster at the top the lower values settle as the top one does: a crawl through it had
                # read as settled (W orthogonal with singular values 1 and 0.999, leaky relu, n = 64: 2.2e-4 low at
                # t = 1 in float32, 2.5e-8 in float64, where no warm start helps)
                clustered = ritz2[:, -1:] >= (1 - _CLUSTER) * ritz[:, None]
                limit = torch.where(clustered, torch.clamp(limits, max=self.strict_limit), limits)
                done |= (step <= torch.minimum(self.rtol * ritz, torch.maximum(_FAST * growth, _ROUNDING * ritz))) & (
                    (ritz2 - second <= limit * ritz[:, None]).all(dim=-1)
                )
            second = torch.where(running[:, None], ritz2, second)
            growth = torch.where(running, step, growth)
            sigma = torch.where(running, ritz, sigma)
            left = int((~done).sum())
            if left == 0:
                break
            if 2 * left <= done.shape[0] and spent < budget and end < ends[-1]:
                finished, keep = done.nonzero().flatten(), (~done).nonzero().flatten()
                at = index[finished]
                settled = self._settled(sigma[finished].to(P.dtype), fro[finished], bound[finished])
                out_sigma[at], out_cut[at], out_done[at] = sigma[finished], cut[finished], settled
                out_crowded[at] = self._crowded(sigma[finished], second[finished])
                used = finished[kept[finished] | ~settled]
                out_warm[index[used]] = self._ritz_vectors(ws, cut, used)
                ws = ws.gather(keep)
                P, index, fro, bound, kept = P[keep], index[keep], fro[keep], bound[keep], kept[keep]
                floor, last, sigma, second, growth = floor[keep], last[keep], sigma[keep], second[keep], growth[keep]
                done, cut, limits = done[keep], cut[keep], limits[keep]
        if cut.max() == ws.basis.shape[-1]:
            done |= _spans_everything(ws.basis)  # the Ritz values are exact
        done &= self._settled(sigma.to(P.dtype), fro, bound)  # judged on σ as returned
        out_sigma[index], out_cut[index], out_done[index] = sigma, cut, done
        out_crowded[index] = self._crowded(sigma, second)
        used = (kept | ~done).nonzero().flatten()
        if len(used) == len(index):
            out_warm[index] = self._ritz_vectors(ws, cut, None)
        elif len(used):
            out_warm[index[used]] = self._ritz_vectors(ws, cut, used)
        return out_sigma.to(P.dtype), shape.block_count[out_cut.cpu()], out_done, out_warm, out_crowded

    def _settled(self, sigma: torch.Tensor, fro: torch.Tensor, bound: torch.Tensor) -> torch.Tensor:
        """Which converged rows are settled: not short of ``bound``, and σ > 0 unless the product is dead."""
        return ((sigma > 0) | (fro == 0)) & ~self._short(sigma, bound)

    def _workspace(self, P: torch.Tensor) -> _Workspace:
        """A workspace for the stack P: the window's own, made once, or a new one for a stack of another size."""
        assert self.workspace is not None
        if self.workspace.rows == P.shape[0]:
            # only the padding rows of the first Gram–Schmidt bases are read before this run writes them
            self.workspace.basis[:, :_MIN_BASIS].zero_()
            return self.workspace
        return _Workspace.empty(P.shape[0], P)

    def _add_block(
        self, ws: _Workspace, P: torch.Tensor, rows: torch.Tensor, k: int, end: int, floor: torch.Tensor, values: int
    ) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        """Orthonormalise ``rows`` against the basis (rows < k) into basis rows k..end-1, form their images and
        Gram entries; return the top ``values`` Ritz values of the basis so far, float64 — the top one (rows,) and the
        others (rows, values − 1), lowest first — and the block's images.

        A row left at the rounding floor after orthogonalisation is rounding noise (the Krylov space is exhausted,
        an invariant subspace found, e.g. dead relu units) and is zeroed: normalised, it would be blown up to unit
        size, and the Gram matrix would stop being a projection of JᵀJ — or, in float32, overflow once it
        underflows."""
        xs = []
        for i in range(end - k):
            x = rows[:, i : i + 1].clone()  # contiguous: bmm takes a slow path for strided operands
            norm = _orthogonalise(x, ws.v_upto[k + i])
            x /= torch.where(norm > floor, norm, torch.inf)
            ws.v_row[k + i].copy_(x)  # the next row is orthogonalised against this one too
            xs.append(x)
        block = torch.cat(xs, dim=1)
        images = torch.bmm(block, P)
        wide = ws.images64[:, :end]
        wide[:, k:end] = images
        gram = ws.gram[:, :end, :end]
        gram[:, k:end] = torch.bmm(wide[:, k:end], wide.mT)  # eigvalsh reads the lower triangle only
        # σ₁² is the top eigenvalue of Y Yᵀ (accurate to rounding relative to itself, so σ₁ is too). Its vectors are
        # needed only at each row's cut, so they are found once after the run: LAPACK costs 1–6 µs per small
        # matrix however many are batched, and values alone cost half as much as values with vectors.
        top = torch.linalg.eigvalsh(gram)[:, -values:].clamp_min(0.0).sqrt()
        return (top[:, -1], top[:, :-1]), images

    def _ritz_vectors(self, ws: _Workspace, cut: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
        """The top ``keep`` Ritz vectors (rows, keep, n) of the workspace's ``rows`` (all if ``None``), each from its
        basis cut at ``cut`` rows (``cut`` given for every row of the workspace).

        Rows are grouped by their cut, so that a row's vectors come from its own cut-sized Gram matrix and basis, in
        products whose shapes do not depend on what the other rows of the batch did."""
        if rows is not None:
            cut = cut[rows]
        cuts = sorted(set(cut.tolist()))
        if rows is None and len(cuts) == 1:  # the common case: every row stopped at the same block
            return self._top(ws.gram[:, : cuts[0], : cuts[0]], ws.basis[:, : cuts[0]])
        every = torch.arange(ws.rows, device=cut.device) if rows is None else rows
        warm = torch.empty(len(every), self.keep, ws.basis.shape[-1], dtype=ws.basis.dtype, device=ws.basis.device)
        for m in cuts:
            group = (cut == m).nonzero().flatten()
            members = every[group]
            warm.index_copy_(0, group, self._top(ws.gram[members, :m, :m], ws.basis[members, :m]))
        return warm

    def _top(self, gram: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
        """The top ``keep`` Ritz vectors, largest first, of the basis rows ``basis`` with Gram matrix ``gram``."""
        coefficients = torch.linalg.eigh(gram).eigenvectors[:, :, -self.keep :].flip(-1)
        return torch.bmm(coefficients.mT.to(basis.dtype), basis)


# how a sequence's steps are solved (see SpectralTracker); _SWITCHED: exactly for a while, after slow steps
_DENSE, _STRICT_KIND, _EXACT, _SWITCHED, _DIAGONAL = 0, 1, 2, 3, 4


class _Shape:
    """The block layout of one kind of sequence: rows per block, the basis size at the end of each block, the blocks
    added after the start block by basis size, and the ``limits`` on its lower Ritz values (block − 1,)."""

    def __init__(self, n: int, size: int, limits: torch.Tensor) -> None:
        self.block = limits.shape[0] + 1
        self.limits = limits
        # Blocks are whole, but for a last one that completes ℝⁿ (the Ritz values are then exact): a part-block of
        # rows from the last images alone can add almost nothing while the value is still far off, and read as
        # converged (seen: 2e-8 low in float64, rtol 1e-10).
        last = size if size == n else size - size % self.block
        self.ends = [min(k + self.block, last) for k in range(0, last, self.block)]
        self.block_count = torch.zeros(n + 1, dtype=torch.int64)
        self.block_count[self.ends] = torch.arange(len(self.ends))


class _Workspace:
    """The Krylov basis of a stack of rows, its images and their Gram matrix (float64), and the slices of the basis
    that the loop touches, made once: at n ≈ 128 a block costs about as much in tensor-call overhead as in
    arithmetic."""

    def __init__(self, basis: torch.Tensor, images64: torch.Tensor, gram: torch.Tensor) -> None:
        rows, size, _ = basis.shape
        self.rows = rows
        V = self.basis = basis
        self.images64, self.gram = images64, gram
        self.v_row = [V[:, j : j + 1] for j in range(size)]
        # Bases of fewer than _MIN_BASIS rows are padded with rows kept at zero, which add exact zeros: torch's
        # bmm runs such thin shapes through a slow generic loop, and through BLAS from _MIN_BASIS rows on.
        self.v_upto = [V[:, : max(j, min(_MIN_BASIS, size))] for j in range(size)]

    @classmethod
    def empty(cls, rows: int, like: torch.Tensor) -> _Workspace:
        """A workspace for ``rows`` rows of n-vectors (n, dtype and device those of ``like``)."""
        n, size = like.shape[-1], min(like.shape[-1], _MAX_KRYLOV)
        return cls(
            torch.zeros(rows, size, n, dtype=like.dtype, device=like.device),
            torch.zeros(rows, size, n, dtype=torch.float64, device=like.device),
            torch.zeros(rows, size, size, dtype=torch.float64, device=like.device),
        )

    def gather(self, rows: torch.Tensor) -> _Workspace:
        """A workspace of the given rows of this one: their basis, images and Gram matrix, copied."""
        return _Workspace(self.basis[rows], self.images64[rows], self.gram[rows])


def _spans_everything(basis: torch.Tensor) -> torch.Tensor:
    """Which rows' bases (rows, n, n), each basis row unit or zeroed, span ℝⁿ: none of their n rows was zeroed. A
    zeroed row marks an invariant subspace of JᵀJ that a chain of the block ran into (W block-diagonal, whose blocks
    every J_t keeps apart); the Ritz values are then exact only within the space the other rows span, whose top can
    be below ‖J‖₂ (seen: 2.2e-3 nats low in float64 at n = 16, 2×2 rotation blocks, tanh)."""
    return (torch.linalg.vector_norm(basis, dim=-1) > 0.5).all(dim=-1)


def _top_column(columns: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """e_i (batch, 1, n) for i the largest column J e_i of J: ‖J e_i‖ is the lower bound the run fell short of."""
    return torch.zeros_like(like).scatter_(-1, columns.argmax(dim=-1)[:, None, None], 1.0)


def _orthogonalise(x: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """Remove from the rows x their components along the orthonormal rows of ``basis``, in place; return ‖x‖.

    Classical Gram–Schmidt, three times: one pass leaves a row that lost most of itself to cancellation far from
    orthogonal — and a Krylov row Jᵀ(J q) lies mostly in the span of the basis it came from — and when the Krylov
    space is exhausted (a rank-deficient J, e.g. dead relu units) x is pure rounding noise, which one pass leaves far
    from orthogonal after normalising, so that the basis would stop being orthonormal and its Ritz values be free to
    exceed ‖J‖₂. Nearly every call had some row that needed the second pass (80 % of calls, 70–80 % of rows, on the
    benchmark's networks), so it is taken always, without the test that chose it. "Twice is enough" failed in
    float32 where a row normalised from a remainder near the rounding floor kept its overlap: Ritz values 1.2e-4
    above ‖J_t‖₂ (a shift W, n = 45, tanh, rank 2 at t = 43); a third pass only for rows that had lost most of their
    norm fixed one such case or another, not all. Always taken, it costs 0–3 % of a run."""
    for _ in range(3):
        x.baddbmm_(torch.bmm(x, basis.mT), basis, alpha=-1)
    # accumulated in float64: a float32 row of a product that shrank by 1e-20 in one step has subnormal squares, and
    # its float32 norm is off by 1e-3 (a shift W, rank 2 at t = 43: basis rows of norm 1.001, Ritz values 5e-4 above)
    return torch.linalg.vector_norm(x, dim=-1, keepdim=True, dtype=torch.float64).to(x.dtype)
