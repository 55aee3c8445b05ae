"""How a network's units are coupled through W, which decides how its products' spectral norms are traced.

Block Lanczos sees J_t's singular vectors only through its start block's components. Where W's units fall into
groups that no weight links, every J_t splits into the same blocks, and a start that holds singular vectors of a
lower block pins the run below the top while its one generic row searches every other block alone (seen: 7.7e-3
nats low at n = 32, relu, 2×2 blocks). Groups linked by weak weights alone behave the same (2×2 rotation blocks linked
by noise of 10⁻⁶: 2.0e-6 nats low in float64 with relu, W = I + 10⁻⁶·noise: 3.8e-7; noise of 10⁻³ and more: within
10⁻¹⁰). Such a network is traced by an exact SVD at every step.

A sparse W whose groups are linked can still split at some steps: a relu unit whose σ' is 0 cuts its links, and where
a few links join groups, J_t falls apart into blocks whose top singular values tie or nearly tie (orthogonal 2×2 to
8×8 blocks joined by one link each, relu: up to 0.16 nats low at t = 2 … 24, in 5 to 10 of 32 networks). Such a
network is traced with a stricter stopping test and a start block of four rows, two of them generic
(:class:`~rnnstab._spectral_tracker.SpectralTracker`'s ``strict``), which settled all of them, and chains λI + shift
cut by relu or weakened by leaky relu too. On sparse echo-state networks the test cost 11–42 % more time and the
fourth row 10–22 % more again (separate A/B runs), against 3–9× for an SVD.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from scipy.sparse import csr_array
from scipy.sparse.csgraph import connected_components

#: A weight of at most this fraction of its network's largest |w| does not link two units.
WEAK_LINK = 1e-2
#: A W with more than this fraction of its pairs of units unlinked (in both directions) is sparse.
SPARSE = 0.1


@dataclass(frozen=True)
class Coupling:
    """Per network of a W (n, n) or (B, n, n): ``split`` (B,) bool, its units fall into two or more groups that no
    weight above :data:`WEAK_LINK` links (a diagonal W excepted); ``sparse`` (B,) bool, not split and more than
    :data:`SPARSE` of its pairs unlinked; ``diagonal`` (B,) bool, no weight off the diagonal at all: every J_t is
    diagonal, and ‖J_t‖₂ its largest column norm. On the CPU."""

    split: torch.Tensor
    sparse: torch.Tensor
    diagonal: torch.Tensor


def coupling(W: torch.Tensor) -> Coupling:
    """How the units of each network of ``W`` are coupled (see :class:`Coupling`)."""
    n = W.shape[-1]
    W = W.reshape(-1, n, n)
    eye = torch.eye(n, dtype=torch.bool, device=W.device)
    size = W.abs()
    strong = size > WEAK_LINK * size.amax(dim=(-2, -1), keepdim=True)
    linked = (strong | strong.mT) & ~eye
    unlinked = 1 - linked.flatten(1).sum(dim=1) / max(1, n * (n - 1))
    hub = (linked | eye).all(dim=-1).any(dim=-1)  # a unit linked to all others: one group, without a graph search
    diagonal = ~((W != 0) & ~eye).flatten(1).any(dim=1)
    split = torch.zeros(W.shape[0], dtype=torch.bool)
    for i in (~hub & ~diagonal).nonzero().flatten().tolist():
        split[i] = connected_components(csr_array(linked[i].cpu().numpy()), directed=False)[0] > 1
    diagonal = diagonal.cpu()
    sparse = (unlinked > SPARSE).cpu() & ~split & ~diagonal
    return Coupling(split, sparse, diagonal)
