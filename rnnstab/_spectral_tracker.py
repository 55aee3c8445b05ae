"""‖J_t‖₂ at every step of a streamed product, by warm-restarted Golub–Kahan–Lanczos bidiagonalisation.

J_t = D_t W J_{t-1} is held transposed, P = J_tᵀ (times a known scale), so both J·q and Jᵀ·p are a row vector
times P: memory-bound thin products, cheap next to the step's GEMM. Lanczos on JᵀJ converges like the square
root of power iteration's rate, which matters early on, when the top singular values of a random product are
still packed together. Later the top right singular vector converges (Oseledets) and each step is warm-started
from the previous Ritz vector v, whose image J_t v is carried forward through the dynamics with a thin product
by W instead of by P.

Every estimate is the top singular value of the projected bidiagonal matrix, a Ritz value, hence never above
‖J_t‖₂. A step ends when two successive Ritz values agree to ``rtol``; one that does not within ``max_iter``
Lanczos steps falls back to an exact SVD.
"""

from __future__ import annotations

import torch

_MAX_KRYLOV = 40
_GENERIC_WEIGHT = 0.05


class SpectralTracker:
    """Top singular value of P (batch, n, n) after each multiplicative update P ← P Wᵀ diag(d).

    Each row of the batch converges on its own (finished rows are frozen while the others go on, and all start
    from the same fixed vector), so a network's numbers do not depend on which networks share its batch.
    """

    def __init__(self, *, rtol: float, max_iter: int) -> None:
        self.rtol, self.max_iter = rtol, max_iter
        self.v: torch.Tensor | None = None  # the warm start (rows), set at the first update
        self.generic = torch.empty(0)  # the fixed generic start vector (rows), set at the first update
        self.image: torch.Tensor | None = None  # J v, rows
        self.iterations: list[int] = []
        self.fallbacks = 0

    def _allocate(self, P: torch.Tensor) -> torch.Tensor:
        batch, n, _ = P.shape
        self.size = min(n, _MAX_KRYLOV)  # Krylov dimension m ≤ n: more vectors cannot be orthogonal
        self.noise = n * torch.finfo(P.dtype).eps  # relative size of rounding in one thin product
        self.right = torch.zeros(batch, self.size, n, dtype=P.dtype, device=P.device)  # q_j: input space
        self.left = torch.zeros_like(self.right)  # p_j: output space
        self.bidiagonal = torch.zeros(batch, self.size, self.size, dtype=torch.float64, device=P.device)
        start = torch.randn(n, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        return (start / start.norm()).to(dtype=P.dtype, device=P.device).expand(batch, 1, n).contiguous()

    def update(self, P: torch.Tensor, Wt: torch.Tensor, d: torch.Tensor, fro: torch.Tensor) -> torch.Tensor:
        """‖P‖₂ (batch,) after P was multiplied by Wᵀ diag(d); ``fro`` = ‖P‖_F (0 marks a dead product)."""
        if self.v is None or self.image is None:
            self.generic = self._allocate(P)
            run_v, run_image = self.generic, torch.bmm(self.generic, P)
        else:
            # Mix the generic start into the warm start: when the top singular vector jumps to a direction the old
            # one has no component along (every J_t diagonal, W = I: the top unit changes), a pure warm start stays
            # in its invariant subspace and the Ritz value stops growing short of ‖J_t‖₂.
            carried = torch.matmul(self.image, Wt).mul_(d[:, None, :])  # J_t v from J_{t-1} v
            run_v = self.v + _GENERIC_WEIGHT * self.generic
            run_image = carried.add_(torch.bmm(self.generic, P), alpha=_GENERIC_WEIGHT)
            length = torch.linalg.vector_norm(run_v, dim=-1, keepdim=True)
            run_v, run_image = run_v / length, run_image / length
        sigma = torch.zeros(P.shape[0], dtype=P.dtype, device=P.device)
        v, image = run_v, run_image
        pending = torch.ones_like(fro, dtype=torch.bool)
        spent = 0
        while spent < self.max_iter:
            run_sigma, steps, done, run_v, run_image = self._lanczos(P, run_v, run_image, fro, self.max_iter - spent)
            spent += steps
            # σ = 0 for a non-zero product means v fell into J's null space: only an SVD can say more.
            done &= pending & ((run_sigma > 0) | (fro == 0))
            sigma = torch.where(done, run_sigma, sigma)
            v = torch.where(done[:, None, None], run_v, v)
            image = torch.where(done[:, None, None], run_image, image)
            pending &= ~done
            if not bool(pending.any()) or bool((run_sigma[pending] == 0).any()):
                break
        self.iterations.append(spent)
        if bool(pending.any()):
            self.fallbacks += 1
            _, sigma_all, right = torch.linalg.svd(P.mT)
            sigma = torch.where(pending, sigma_all[:, 0], sigma)
            v = torch.where(pending[:, None, None], right[:, :1], v)
            image = torch.where(pending[:, None, None], torch.bmm(right[:, :1].contiguous(), P), image)
        self.v, self.image = v, image
        return sigma

    def _lanczos(
        self, P: torch.Tensor, start: torch.Tensor, image: torch.Tensor, fro: torch.Tensor, budget: int
    ) -> tuple[torch.Tensor, int, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One Lanczos run from (start, image = J start).

        Returns (σ, Lanczos steps taken, which rows converged, each row's top Ritz vector v, and J v). A row
        converges at the first step j where its Ritz value grew by at most rtol; its bidiagonal is cut there, so
        later steps (taken for other rows) leave it unchanged."""
        Q, L, B = self.right, self.left, self.bidiagonal
        floor = (self.noise * fro)[:, None, None]
        alpha = torch.linalg.vector_norm(image, dim=-1, keepdim=True)
        Q[:, :1] = start
        _normalise(image, alpha, floor, out=L[:, :1])
        B.zero_()
        B[:, 0, 0] = alpha[:, 0, 0]
        estimate = alpha[:, 0, 0].to(torch.float64)
        done = torch.zeros_like(fro, dtype=torch.bool)
        cut = torch.zeros_like(fro, dtype=torch.long)  # each row's last Lanczos step
        j = 0
        for j in range(1, min(budget, self.size - 1) + 1):
            r = torch.bmm(L[:, j - 1 : j], P.mT).addcmul_(Q[:, j - 1 : j], alpha, value=-1)  # Jᵀ p_{j-1} − α q_{j-1}
            _orthogonalise(r, Q[:, :j])
            beta = torch.linalg.vector_norm(r, dim=-1, keepdim=True)
            _normalise(r, beta, floor, out=Q[:, j : j + 1])
            s = torch.bmm(Q[:, j : j + 1], P).addcmul_(L[:, j - 1 : j], beta, value=-1)  # J q_j − β p_{j-1}
            _orthogonalise(s, L[:, :j])
            alpha = torch.linalg.vector_norm(s, dim=-1, keepdim=True)
            _normalise(s, alpha, floor, out=L[:, j : j + 1])
            B[:, j - 1, j] = beta[:, 0, 0]
            B[:, j, j] = alpha[:, 0, 0]
            ritz = torch.linalg.svdvals(B[:, : j + 1, : j + 1])[:, 0]
            # Ritz values only grow with j; a dead product (fro = 0) has 0 = 0 and converges at once.
            newly = ~done & ((ritz - estimate) <= self.rtol * ritz)
            cut = torch.where(newly, j, cut)
            done |= newly
            estimate = ritz
            if bool(done.all()):
                break
        m = j + 1
        cut = torch.where(done, cut, j)  # a row still running keeps the whole bidiagonal
        if m == Q.shape[-1]:
            done[:] = True  # the Krylov space is all of ℝⁿ: the Ritz values are exact
        sigma = torch.empty_like(fro)
        v, image = torch.empty_like(start), torch.empty_like(image)
        cuts = torch.unique(cut).tolist()
        for last in cuts:
            # Rows cut at the same step share one SVD of exactly their size: a padded matrix would change the
            # last bits, and a network's numbers must not depend on its batch-mates.
            rows = slice(None) if len(cuts) == 1 else (cut == last).nonzero()[:, 0]
            size = last + 1
            U, S, Vh = torch.linalg.svd(B[rows, :size, :size])
            # J Q_m = L_m B_m, so the top Ritz vector v = Q_m c has J v = σ₁ L_m u (c, u: B_m's singular vectors).
            v[rows] = torch.bmm(Vh[:, :1].to(P.dtype), Q[rows, :size])
            image[rows] = torch.bmm((U[:, :, :1].mT * S[:, :1, None]).to(P.dtype), L[rows, :size])
            sigma[rows] = S[:, 0].to(P.dtype)
        return sigma, j, done, v, image


def _orthogonalise(x: torch.Tensor, basis: torch.Tensor) -> None:
    """Remove from the rows x their components along the orthonormal rows of ``basis``, in place.

    Two passes of classical Gram–Schmidt ("twice is enough"): when the Krylov space is exhausted (a rank-deficient
    J, e.g. dead relu units) x is pure rounding noise, one pass leaves it far from orthogonal after normalising,
    and the bidiagonal stops being a projection of J, whose Ritz values could then exceed ‖J‖₂.
    """
    for _ in range(2):
        x.baddbmm_(torch.bmm(x, basis.mT), basis, alpha=-1)


def _normalise(x: torch.Tensor, norm: torch.Tensor, floor: torch.Tensor, *, out: torch.Tensor) -> None:
    """out = x/‖x‖, or 0 where ‖x‖ is at the rounding floor: the Krylov space is exhausted there (an invariant
    subspace was found) and normalising rounding noise would blow it up to unit size — or, in float32, to overflow
    once ‖x‖ underflows."""
    torch.div(x, torch.where(norm > floor, norm, torch.inf), out=out)
