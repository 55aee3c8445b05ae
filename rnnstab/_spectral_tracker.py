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

A row has converged when its Ritz value grew by at most ``rtol`` with the last block and by far less than with the
block before (geometric convergence, not a crawl through a cluster of close singular values, which can raise the
value by less than rtol a block while it is still well below the top: seen 2.5e-4 low in float32), and its second
Ritz value grew by at most 10⁻³ of the top one (a top value pinned at a lower singular value, whose exact singular
vector the start block holds, does not move while the second climbs towards the true top). A run that
fills the Krylov basis (40 rows) without converging restarts from its Ritz vectors; a step that does not converge
within ``max_iter`` blocks falls back to an exact SVD.

The largest column norm max_i ‖J e_i‖, which the Frobenius pass gives for free, is a second lower bound of ‖J_t‖₂;
a Ritz value below it proves the run stopped short (every J_t diagonal, W = I with tanh: when the top unit changes
to one the start rows miss), and the row is run again with e_i in its start block.
"""

from __future__ import annotations

import torch

_MAX_KRYLOV = 40
_BLOCK = 3  # rows per Krylov block
_WARM = 2  # of the start block, the previous step's top Ritz vectors; the rest generic
_GENERIC = 16  # generic start vectors, used in turn
_MIN_BASIS = 4  # orthogonalise against at least this many rows (see _allocate)
_FAST = 0.01  # converged: the Ritz value's last growth is at most this fraction of the one before (and ≤ rtol)
_ROUNDING = 2**-42  # or a growth this small relative to the value: rounding in the float64 Gram matrix
_SECOND = 1e-3  # and the second Ritz value grew by at most this fraction of the top one
_DGKS = 2**-0.5  # a second Gram–Schmidt pass for rows left with less than this fraction of their norm


def memory(batch: int, n: int, dtype: torch.dtype) -> int:
    """Bytes a :class:`SpectralTracker` holds for a (batch, n, n) product: its basis (in the product's dtype), the
    basis's images and their Gram matrix (float64)."""
    size = min(n, _MAX_KRYLOV)
    return batch * size * (n * (torch.finfo(dtype).bits // 8) + 8 * (n + size))


class SpectralTracker:
    """Top singular value of P (batch, n, n) after each multiplicative update P ← P Wᵀ diag(d).

    Each row of the batch converges on its own (converged rows are frozen while the others go on, and every row
    starts from the same generic vectors), so a network's numbers do not depend on which networks share its batch.

    At n ≈ 128 a Krylov block costs about as much in tensor-call overhead as in arithmetic, so the buffers and every
    slice of them the loop touches are made once, and convergence is bookkept with few calls.
    """

    def __init__(self, *, rtol: float, max_iter: int) -> None:
        self.rtol, self.max_iter = rtol, max_iter
        self.warm: torch.Tensor | None = None  # the previous step's top Ritz vectors (batch, keep, n)
        self.iterations: list[int] = []
        self.fallbacks = 0

    def _allocate(self, P: torch.Tensor) -> None:
        batch, n, _ = P.shape
        size = min(n, _MAX_KRYLOV)  # Krylov dimension ≤ n: more vectors cannot be orthogonal
        self.block, self.keep = min(_BLOCK, size), min(_WARM, size)
        self.noise = n * torch.finfo(P.dtype).eps  # relative size of rounding in one thin product
        V = self.basis = torch.zeros(batch, size, n, dtype=P.dtype, device=P.device)
        self.images64 = torch.zeros(batch, size, n, dtype=torch.float64, device=P.device)
        self.gram = torch.zeros(batch, size, size, dtype=torch.float64, device=P.device)
        # Blocks are whole, but for a last one that completes ℝⁿ (the Ritz values are then exact): a part-block of
        # rows from the last images alone can add almost nothing while the value is still far off, and read as
        # converged (seen: 2e-8 low in float64, rtol 1e-10).
        last = size if size == n else size - size % self.block
        self.ends = [min(k + self.block, last) for k in range(0, last, self.block)]
        self.v_row = [V[:, j : j + 1] for j in range(size)]
        # Bases of fewer than _MIN_BASIS rows are padded with rows kept at zero, which add exact zeros: torch's
        # bmm runs such thin shapes through a slow generic loop, and through BLAS from _MIN_BASIS rows on.
        self.v_upto = [V[:, : max(j, min(_MIN_BASIS, size))] for j in range(size)]
        generic = torch.randn(_GENERIC, n, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        self.generic = (generic / generic.norm(dim=-1, keepdim=True)).to(dtype=P.dtype, device=P.device)

    def _start(self, warm: torch.Tensor | None, batch: int, run: int) -> torch.Tensor:
        """The start block of a step's ``run``-th run: ``warm`` rows, then generic ones. Which generic ones depends
        on the step and the run alone, not on the other rows of the batch; they change from step to step, so that
        one nearly orthogonal to the top singular vector is not used at every step."""
        count = self.block - (0 if warm is None else warm.shape[1])
        index = (torch.arange(count) + len(self.iterations) + run) % _GENERIC
        generic = self.generic[index.to(self.generic.device)].expand(batch, -1, -1)
        return generic if warm is None else torch.cat([warm, generic], dim=1)

    def update(self, P: torch.Tensor, fro: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
        """‖P‖₂ (batch,) of the product's new value P; ``fro`` = ‖P‖_F (0 marks a dead product) and ``columns``
        (batch, n) the norms of P's rows, the columns J e_i of J."""
        if self.warm is None:
            self._allocate(P)
        bound = columns.amax(dim=-1)  # a lower bound of ‖J‖₂
        run_sigma, spent, done, run_warm = self._krylov(P, self._start(self.warm, P.shape[0], 0), fro, self.max_iter)
        short = self._short(run_sigma, bound)
        # σ = 0 for a non-zero product means the start fell into J's null space: only an SVD can say more.
        done &= ((run_sigma > 0) | (fro == 0)) & ~short
        if bool(done.all()):  # the common case: one run settles every row
            self.warm = run_warm
            self.iterations.append(spent)
            return run_sigma
        sigma = torch.where(done, run_sigma, 0.0)
        warm = run_warm  # the pending rows' are replaced below
        pending = ~done
        run = 0
        while spent < self.max_iter and not bool((run_sigma[pending] == 0).any()):
            run += 1
            if bool(short.any()):  # the top Ritz vector and the column that beat it
                run_warm = torch.where(
                    short[:, None, None],
                    torch.cat([run_warm[:, :1], _top_column(columns, run_warm[:, :1])], dim=1)[:, : self.keep],
                    run_warm,
                )
            start = self._start(run_warm, P.shape[0], run)
            run_sigma, steps, done, run_warm = self._krylov(P, start, fro, self.max_iter - spent)
            spent += steps
            short = self._short(run_sigma, bound)
            done &= pending & ((run_sigma > 0) | (fro == 0)) & ~short
            sigma = torch.where(done, run_sigma, sigma)
            warm = torch.where(done[:, None, None], run_warm, warm)
            pending &= ~done
            if not bool(pending.any()):
                break
        self.iterations.append(spent)
        if bool(pending.any()):
            self.fallbacks += 1
            rows = pending.nonzero().flatten()
            _, sigma_all, right = torch.linalg.svd(P[rows].mT)  # right: J's right singular vectors, as rows
            sigma = sigma.index_copy(0, rows, sigma_all[:, 0])
            warm = warm.index_copy(0, rows, right[:, : self.keep])
        self.warm = warm
        return sigma

    def _short(self, sigma: torch.Tensor, bound: torch.Tensor) -> torch.Tensor:
        """Rows whose Ritz value is below ``bound`` (the largest column norm of J) beyond rounding and rtol: the run
        stopped short."""
        return bound > sigma * (1 + self.rtol + 4 * self.noise)

    def _krylov(
        self, P: torch.Tensor, start: torch.Tensor, fro: torch.Tensor, budget: int
    ) -> tuple[torch.Tensor, int, torch.Tensor, torch.Tensor]:
        """One block Krylov run from the rows ``start`` (batch, block, n).

        Returns (σ, blocks added after the start block, which rows converged, each row's top ``keep`` Ritz vectors).
        A row converges at the first block that passes the test above; its basis is cut there, so later
        blocks (added for other rows) leave it unchanged."""
        floor = (self.noise * fro)[:, None, None]
        self.basis.zero_()  # rows past the current block pad the Gram–Schmidt bases (see _allocate)
        (sigma, second), last = self._add_block(P, start, 0, self.ends[0], torch.full_like(floor, self.noise))
        done = torch.zeros_like(fro, dtype=torch.bool)
        cut = torch.full_like(fro, self.ends[0], dtype=torch.int64)  # each row's basis size when it converged
        growth = torch.zeros_like(sigma)  # by how much the last block raised each row's Ritz value
        spent = 0
        for previous, end in zip(self.ends[:-1], self.ends[1:], strict=True):
            if spent == budget:
                break
            spent += 1
            # The next block spans JᵀJ times the last one: Jᵀ ŷ with ŷ the last images, normalised (or zeroed where
            # they are rounding noise, the Krylov space exhausted), so that the floor below applies at unit scale.
            norm = torch.linalg.vector_norm(last, dim=-1, keepdim=True)
            unit = last / torch.where(norm > floor, norm, torch.inf)
            (ritz, ritz2), last = self._add_block(P, torch.bmm(unit, P.mT), previous, end, floor)
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
            done |= (step <= torch.minimum(self.rtol * ritz, torch.maximum(_FAST * growth, _ROUNDING * ritz))) & (
                ritz2 - second <= _SECOND * ritz
            )
            second = torch.where(running, ritz2, second)
            growth = torch.where(running, step, growth)
            sigma = torch.where(running, ritz, sigma)
            if bool(done.all()):
                break
        if cut.max() == P.shape[-1]:
            done[:] = True  # the Krylov space is all of ℝⁿ: the Ritz values are exact
        return sigma.to(P.dtype), spent, done, self._ritz_vectors(cut)

    def _add_block(
        self, P: torch.Tensor, rows: torch.Tensor, k: int, end: int, floor: torch.Tensor
    ) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        """Orthonormalise ``rows`` against the basis (rows < k) into basis rows k..end-1, form their images and
        Gram entries; return the top Ritz value of the basis so far (batch,), float64, and the block's images.

        A row left at the rounding floor after orthogonalisation is rounding noise (the Krylov space is exhausted,
        an invariant subspace found, e.g. dead relu units) and is zeroed: normalised, it would be blown up to unit
        size, and the Gram matrix would stop being a projection of JᵀJ — or, in float32, overflow once it
        underflows."""
        xs = []
        for i in range(end - k):
            x = rows[:, i : i + 1].clone()  # contiguous: bmm takes a slow path for strided operands
            norm = _orthogonalise(x, self.v_upto[k + i])
            x /= torch.where(norm > floor, norm, torch.inf)
            self.v_row[k + i].copy_(x)  # the next row is orthogonalised against this one too
            xs.append(x)
        block = torch.cat(xs, dim=1)
        images = torch.bmm(block, P)
        wide = self.images64[:, :end]
        wide[:, k:end] = images
        gram = self.gram[:, :end, :end]
        gram[:, k:end] = torch.bmm(wide[:, k:end], wide.mT)  # eigvalsh reads the lower triangle only
        # σ₁² is the top eigenvalue of Y Yᵀ (accurate to rounding relative to itself, so σ₁ is too). Its vectors are
        # needed only at each row's cut, so they are found once after the run: LAPACK costs 1–6 µs per small
        # matrix however many are batched, and values alone cost half as much as values with vectors.
        top = torch.linalg.eigvalsh(gram)[:, -2:].clamp_min(0.0).sqrt()
        return (top[:, -1], top[:, 0]), images

    def _ritz_vectors(self, cut: torch.Tensor) -> torch.Tensor:
        """Each row's top ``keep`` Ritz vectors (batch, keep, n), from its basis cut at ``cut`` rows.

        Rows are grouped by their cut, so that a row's vectors come from its own cut-sized Gram matrix and basis, in
        products whose shapes do not depend on what the other rows of the batch did."""
        cuts = sorted(set(cut.tolist()))
        if len(cuts) == 1:  # the common case: every row stopped at the same block
            return self._top(self.gram[:, : cuts[0], : cuts[0]], self.basis[:, : cuts[0]])
        warm = torch.empty_like(self.basis[:, : self.keep])
        for m in cuts:
            rows = (cut == m).nonzero().flatten()
            warm.index_copy_(0, rows, self._top(self.gram[rows, :m, :m], self.basis[rows, :m]))
        return warm

    def _top(self, gram: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
        """The top ``keep`` Ritz vectors, largest first, of the basis rows ``basis`` with Gram matrix ``gram``."""
        coefficients = torch.linalg.eigh(gram).eigenvectors[:, :, -self.keep :].flip(-1)
        return torch.bmm(coefficients.mT.to(basis.dtype), basis)


def _top_column(columns: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """e_i (batch, 1, n) for i the largest column J e_i of J: ‖J e_i‖ is the lower bound the run fell short of."""
    return torch.zeros_like(like).scatter_(-1, columns.argmax(dim=-1)[:, None, None], 1.0)


def _orthogonalise(x: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """Remove from the rows x their components along the orthonormal rows of ``basis``, in place; return ‖x‖.

    Classical Gram–Schmidt with the Daniel–Gragg–Kaufman–Stewart test: a row left with less than 1/√2 of its norm
    lost most of itself to cancellation and gets a second pass ("twice is enough"). When the Krylov space is
    exhausted (a rank-deficient J, e.g. dead relu units) x is pure rounding noise, one pass leaves it far from
    orthogonal after normalising, and the basis would stop being orthonormal, its Ritz values free to exceed
    ‖J‖₂. Whether a row gets the second pass depends on that row alone (batch independence); the pass is skipped
    altogether when no row needs it.
    """
    before = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    x.baddbmm_(torch.bmm(x, basis.mT), basis, alpha=-1)
    after = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    again = after < before.mul_(_DGKS)
    if bool(again.any()):
        x.copy_(torch.where(again, x.baddbmm(torch.bmm(x, basis.mT), basis, alpha=-1), x))
        after = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    return after
