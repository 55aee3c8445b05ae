"""‖J_t‖₂ at every step of a streamed product, by warm-restarted Golub–Kahan–Lanczos bidiagonalisation.

J_t = D_t W J_{t-1} is held transposed, P = J_tᵀ (times a known scale), so both J·q and Jᵀ·p are a row vector
times P: memory-bound thin products, cheap next to the step's GEMM. Lanczos on JᵀJ converges like the square
root of power iteration's rate, which matters early on, when the top singular values of a random product are
still packed together. Later the top right singular vector converges (Oseledets) and each step is warm-started
from the previous Ritz vector v. Its image J_t v is formed afresh from P, one thin product: carried through the
step's D_t W instead, its rounding error would keep its size while the image itself shrinks by the smallest
derivatives (saturated units, where σ' spans orders of magnitude), and the bidiagonal built from it would stop
being a projection of J_t — Ritz values above ‖J_t‖₂ (seen: 3 % in float32).

Every estimate is the top singular value of the projected bidiagonal matrix B (the top eigenvalue of BᵀB; its
eigenvector, the Ritz vector, is computed once per run, at each row's last step), a Ritz value, hence never above
‖J_t‖₂. A step ends when two successive Ritz values agree to ``rtol``; one that does not within ``max_iter``
Lanczos steps falls back to an exact SVD.

That test can be fooled by a plateau: a warm start with almost no component along the new top direction converges
to a lower singular value (every J_t diagonal, W = I with tanh: when the top unit changes, Lanczos stays on the old
one). The largest column norm max_i ‖J e_i‖, which the Frobenius pass gives for free, is a second lower bound of
‖J_t‖₂; a Ritz value below it proves the run stopped short, and the row is run again with e_i mixed into its start.
"""

from __future__ import annotations

import torch

_MAX_KRYLOV = 40
_MIN_BASIS = 4  # orthogonalise against at least this many rows (see _allocate)
_DGKS = 2**-0.5  # a second Gram–Schmidt pass for rows left with less than this fraction of their norm
_GENERIC_WEIGHT = 0.05


class SpectralTracker:
    """Top singular value of P (batch, n, n) after each multiplicative update P ← P Wᵀ diag(d).

    Each row of the batch converges on its own (finished rows are frozen while the others go on, and all start
    from the same fixed vector), so a network's numbers do not depend on which networks share its batch.

    At n ≈ 128 a Lanczos step costs about as much in tensor-call overhead as in arithmetic, so the buffers and
    every slice of them the loop touches are made once, and convergence is bookkept with few calls.
    """

    def __init__(self, *, rtol: float, max_iter: int) -> None:
        self.rtol, self.max_iter = rtol, max_iter
        self.v: torch.Tensor | None = None  # the warm start (rows), set at the first update
        self.generic = torch.empty(0)  # the fixed generic start vector (rows), set at the first update
        self.iterations: list[int] = []
        self.fallbacks = 0

    def _allocate(self, P: torch.Tensor) -> torch.Tensor:
        batch, n, _ = P.shape
        size = self.size = min(n, _MAX_KRYLOV)  # Krylov dimension m ≤ n: more vectors cannot be orthogonal
        self.noise = n * torch.finfo(P.dtype).eps  # relative size of rounding in one thin product
        Q = self.right = torch.zeros(batch, size, n, dtype=P.dtype, device=P.device)  # q_j: input space
        L = self.left = torch.zeros_like(Q)  # p_j: output space
        B = self.bidiagonal = torch.zeros(batch, size, size, dtype=torch.float64, device=P.device)
        self.top = torch.zeros(batch, size, 1, dtype=torch.float64, device=P.device)
        self.bidiagonal_diagonal = B.diagonal(0, 1, 2)
        self.bidiagonal_superdiagonal = B.diagonal(1, 1, 2)
        self.q_row = [Q[:, j : j + 1] for j in range(size)]
        self.l_row = [L[:, j : j + 1] for j in range(size)]
        # Bases of fewer than _MIN_BASIS rows are padded with rows kept at zero, which add exact zeros: torch's
        # bmm runs such thin shapes through a slow generic loop, and through BLAS from _MIN_BASIS rows on.
        self.q_upto = [Q[:, : max(j, min(_MIN_BASIS, size))] for j in range(size)]
        self.l_upto = [L[:, : max(j, min(_MIN_BASIS, size))] for j in range(size)]
        self.b_upto = [B[:, : j + 1, : j + 1] for j in range(size)]
        self.diagonal = [B[:, j, j] for j in range(size)]
        self.superdiagonal = [B[:, j - 1, j] for j in range(1, size)]
        start = torch.randn(n, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        return (start / start.norm()).to(dtype=P.dtype, device=P.device).expand(batch, 1, n).contiguous()

    def update(self, P: torch.Tensor, fro: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
        """‖P‖₂ (batch,) of the product's new value P; ``fro`` = ‖P‖_F (0 marks a dead product) and ``columns``
        (batch, n) the norms of P's rows, the columns J e_i of J."""
        if self.v is None:
            v = self.generic = self._allocate(P)
        else:
            # Mix the generic start into the warm start: when the top singular vector jumps to a direction the old
            # one has no component along (every J_t diagonal, W = I: the top unit changes), a pure warm start stays
            # in its invariant subspace and the Ritz value stops growing short of ‖J_t‖₂.
            v = torch.add(self.v, self.generic, alpha=_GENERIC_WEIGHT)
            v /= torch.linalg.vector_norm(v, dim=-1, keepdim=True)
        image = torch.bmm(v, P)
        run_sigma, spent, done, run_v, run_image = self._lanczos(P, v, image, fro, self.max_iter)
        short = self._short(run_sigma, columns)
        # σ = 0 for a non-zero product means v fell into J's null space: only an SVD can say more.
        done &= ((run_sigma > 0) | (fro == 0)) & ~short
        if bool(done.all()):  # the common case: one run settles every row
            self.v = run_v
            self.iterations.append(spent)
            return run_sigma
        sigma = torch.where(done, run_sigma, 0.0)
        v = torch.where(done[:, None, None], run_v, v)
        pending = ~done
        while spent < self.max_iter and not bool((run_sigma[pending] == 0).any()):
            run_v, run_image = _with_top_column(P, run_v, run_image, columns, short)
            run_sigma, steps, done, run_v, run_image = self._lanczos(P, run_v, run_image, fro, self.max_iter - spent)
            spent += steps
            short = self._short(run_sigma, columns)
            done &= pending & ((run_sigma > 0) | (fro == 0)) & ~short
            sigma = torch.where(done, run_sigma, sigma)
            v = torch.where(done[:, None, None], run_v, v)
            pending &= ~done
            if not bool(pending.any()):
                break
        self.iterations.append(spent)
        if bool(pending.any()):
            self.fallbacks += 1
            _, sigma_all, right = torch.linalg.svd(P.mT)
            sigma = torch.where(pending, sigma_all[:, 0], sigma)
            v = torch.where(pending[:, None, None], right[:, :1], v)
        self.v = v
        return sigma

    def _top_vectors(self, cut: torch.Tensor) -> None:
        """Each row's top right singular vector c of its bidiagonal cut at step ``cut`` (zero past it), into
        ``self.top``. Rows are grouped by their cut, so that a row's c comes from its own (cut+1)-sized matrix,
        whatever the other rows of the batch did."""
        for j in sorted(set(cut.tolist())):
            if j == 0:
                continue  # c = e₁, set at the start of the run
            rows = (cut == j).nonzero().flatten()
            bidiagonal = self.b_upto[j][rows]
            vector = torch.linalg.eigh(bidiagonal.mT @ bidiagonal).eigenvectors[:, :, -1:]
            self.top.index_copy_(0, rows, torch.nn.functional.pad(vector, (0, 0, 0, self.size - j - 1)))

    def _short(self, sigma: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
        """Rows whose Ritz value is below a column norm of J (beyond rounding and rtol): Lanczos stopped short."""
        return columns.amax(dim=-1) > sigma * (1 + self.rtol + 4 * self.noise)

    def _lanczos(
        self, P: torch.Tensor, start: torch.Tensor, image: torch.Tensor, fro: torch.Tensor, budget: int
    ) -> tuple[torch.Tensor, int, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One Lanczos run from (start, image = J start).

        Returns (σ, Lanczos steps taken, which rows converged, each row's top Ritz vector v, and J v). A row
        converges at the first step j where its Ritz value grew by at most rtol; its bidiagonal is cut there, so
        later steps (taken for other rows) leave it unchanged."""
        floor = (self.noise * fro)[:, None, None]
        Pt = P.mT
        alpha = torch.linalg.vector_norm(image, dim=-1, keepdim=True)
        self.right[:, 1:_MIN_BASIS].zero_()
        self.left[:, 1:_MIN_BASIS].zero_()
        self.q_row[0].copy_(start)
        _normalise(image, alpha, floor, out=self.l_row[0])
        self.bidiagonal.zero_()
        self.diagonal[0].copy_(alpha.view(-1))
        sigma = alpha.view(-1).to(torch.float64)  # each row's Ritz value, frozen once it converged
        self.top.zero_()
        self.top[:, 0] = 1.0  # each row's top right singular vector c of its bidiagonal, zero past its cut
        done = torch.zeros_like(fro, dtype=torch.bool)
        cut = torch.zeros_like(fro, dtype=torch.int64)  # each row's last Lanczos step: where its bidiagonal ends
        j = 0
        for j in range(1, min(budget, self.size - 1) + 1):
            q, p, q_next, p_next = self.q_row[j - 1], self.l_row[j - 1], self.q_row[j], self.l_row[j]
            r = torch.bmm(p, Pt).addcmul_(q, alpha, value=-1)  # Jᵀ p_{j-1} − α q_{j-1}
            beta = _orthogonalise(r, self.q_upto[j])
            _normalise(r, beta, floor, out=q_next)
            s = torch.bmm(q_next, P).addcmul_(p, beta, value=-1)  # J q_j − β p_{j-1}
            alpha = _orthogonalise(s, self.l_upto[j])
            _normalise(s, alpha, floor, out=p_next)
            self.superdiagonal[j - 1].copy_(beta.view(-1))
            self.diagonal[j].copy_(alpha.view(-1))
            # σ₁² is the top eigenvalue of BᵀB (accurate to rounding relative to itself, so σ₁ is too). Its vector
            # c is needed only at each row's cut, so it is found once after the loop: LAPACK costs 3–6 µs per small
            # matrix however many are batched, and values alone cost half as much as values with vectors.
            bidiagonal = self.b_upto[j]
            ritz = torch.linalg.eigvalsh(bidiagonal.mT @ bidiagonal)[:, -1].clamp_min(0.0).sqrt()
            running = ~done
            cut = torch.where(running, j, cut)
            # Ritz values only grow with j; a dead product (fro = 0) has 0 = 0 and converges at once.
            done |= (ritz - sigma) <= self.rtol * ritz
            sigma = torch.where(running, ritz, sigma)
            if bool(done.all()):
                break
        m = j + 1
        if m == self.right.shape[-1]:
            done[:] = True  # the Krylov space is all of ℝⁿ: the Ritz values are exact
        self._top_vectors(cut)
        # J Q_m = L_m B_m, so the Ritz vector v = Q_m c has J v = L_m (B_m c), for any c: the next step's first
        # estimate ‖J v‖ stays a Ritz value. B c is formed entrywise (two terms a row, in a fixed order).
        c = self.top[:, :m, 0]
        image_c = self.bidiagonal_diagonal[:, :m] * c
        image_c[:, :-1].addcmul_(self.bidiagonal_superdiagonal[:, : m - 1], c[:, 1:])
        dtype = P.dtype
        v = _combine(c.to(dtype), self.q_row)
        image = _combine(image_c.to(dtype), self.l_row)
        return sigma.to(dtype), j, done, v, image


def _with_top_column(
    P: torch.Tensor, v: torch.Tensor, image: torch.Tensor, columns: torch.Tensor, rows: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """For the rows marked, (v ± e_i, J v ± J e_i) normalised, i the largest column of J; the others unchanged.

    J e_i is row i of P, so the image stays exact; the sign follows v_i, so that v ± e_i has norm ≥ 1."""
    if not bool(rows.any()):
        return v, image
    top = columns.argmax(dim=-1)[:, None, None]  # (batch, 1, 1)
    sign = torch.where(torch.gather(v, -1, top) < 0, -1.0, 1.0).to(v.dtype)
    unit = torch.zeros_like(v).scatter_(-1, top, sign)
    column = torch.gather(P, 1, top.expand(-1, 1, P.shape[-1])) * sign
    mixed, mixed_image = v + unit, image + column
    length = torch.linalg.vector_norm(mixed, dim=-1, keepdim=True)
    marked = rows[:, None, None]
    return torch.where(marked, mixed / length, v), torch.where(marked, mixed_image / length, image)


def _combine(coefficients: torch.Tensor, rows: list[torch.Tensor]) -> torch.Tensor:
    """Σ_i c_i x_i for coefficients (batch, m) and rows[i] (batch, 1, n), summed in the order i = 0..m-1.

    Zero coefficients past a row's own cut then add exact zeros to exactly that row's own sum. A reduction kernel
    (``sum`` over the Krylov index, or a GEMM) may regroup the terms depending on m, which depends on the other
    rows of the batch."""
    weights = coefficients[:, :, None, None]
    total = rows[0] * weights[:, 0]
    for i in range(1, coefficients.shape[1]):
        total.addcmul_(rows[i], weights[:, i])
    return total


def _orthogonalise(x: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """Remove from the rows x their components along the orthonormal rows of ``basis``, in place; return ‖x‖.

    Classical Gram–Schmidt with the Daniel–Gragg–Kaufman–Stewart test: a row left with less than 1/√2 of its norm
    lost most of itself to cancellation and gets a second pass ("twice is enough"). When the Krylov space is
    exhausted (a rank-deficient J, e.g. dead relu units) x is pure rounding noise, one pass leaves it far from
    orthogonal after normalising, and the bidiagonal stops being a projection of J, whose Ritz values could then
    exceed ‖J‖₂. Whether a row gets the second pass depends on that row alone (batch independence); the pass is
    skipped altogether when no row needs it, the common case.
    """
    before = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    x.baddbmm_(torch.bmm(x, basis.mT), basis, alpha=-1)
    after = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    again = after < before.mul_(_DGKS)
    if bool(again.any()):
        x.copy_(torch.where(again, x.baddbmm(torch.bmm(x, basis.mT), basis, alpha=-1), x))
        after = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    return after


def _normalise(x: torch.Tensor, norm: torch.Tensor, floor: torch.Tensor, *, out: torch.Tensor) -> None:
    """out = x/‖x‖, or 0 where ‖x‖ is at the rounding floor: the Krylov space is exhausted there (an invariant
    subspace was found) and normalising rounding noise would blow it up to unit size — or, in float32, to overflow
    once ‖x‖ underflows."""
    torch.div(x, torch.where(norm > floor, norm, torch.inf), out=out)
