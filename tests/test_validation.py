import dataclasses

import pytest
import torch

import rnnstab
from rnnstab import lyapunov, validation
from rnnstab._tangent import apply_tangent


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_quick_suite_passes(seed):
    checks = rnnstab.run_validation(quick=True, seed=seed)
    assert len(checks) == validation.SUITE_SIZE
    failed = [(c.name, c.expected, c.measured, c.tolerance) for c in checks if not c.passed]
    assert not failed


@pytest.mark.slow
def test_full_suite_passes():
    seen: list[str] = []
    checks = rnnstab.run_validation(seed=0, progress=seen.append)
    assert all(c.passed for c in checks), [c for c in checks if not c.passed]
    assert len(seen) == len(validation._SUITE)


def test_every_check_cites_its_source():
    checks = {c.name: c for c in rnnstab.run_validation(quick=True)}
    newman = checks["products of Gaussian matrices (Newman)"]
    assert "Commun. Math. Phys. 103" in newman.source and "ψ((n−i+1)/2)" in newman.source
    assert "Poole" in checks["mean-field λ_max, random tanh RNN"].source
    assert "Molgedey" in checks["mean-field λ_max, random tanh RNN with input noise"].source
    assert "Pascanu" in checks["δ^T bound at every step"].source
    assert all(c.source and c.details and c.comparison in ("=", "≤") for c in checks.values())


def test_the_suite_catches_a_biased_engine(monkeypatch):
    # An engine whose exponents are 1 % too large must fail the exact references — the suite has teeth.
    real = validation.lyapunov_spectrum

    def biased(*args, **kwargs):
        result = real(*args, **kwargs)
        return dataclasses.replace(result, exponents=result.exponents * 1.01 + 1e-3)

    monkeypatch.setattr(validation, "lyapunov_spectrum", biased)
    failed = {c.name for c in rnnstab.run_validation(quick=True) if not c.passed}
    assert {"orthogonal linear RNN", "δ^T bound on the top exponent"} <= failed
    assert "sum rule Σλ = log|det W| + ⟨Σ log|σ'|⟩" in failed


def _transposed_w(monkeypatch):
    def transposed(F, Wt, d, *, out):
        return apply_tangent(F, Wt.mT, d, out=out)

    monkeypatch.setattr(lyapunov, "apply_tangent", transposed)


def _derivative_one_step_late(monkeypatch):
    real = lyapunov.derivative_chunks

    def late(rnn, x, h0=None):
        previous = None
        for start, derivatives, log_scales in real(rnn, x, h0=h0):
            assert log_scales is None  # no saturated step in these networks
            first = derivatives[:, :1] if previous is None else previous
            previous = derivatives[:, -1:]
            yield start, torch.cat([first, derivatives[:, :-1]], dim=1), None

    monkeypatch.setattr(lyapunov, "derivative_chunks", late)


@pytest.mark.parametrize("bug", [_transposed_w, _derivative_one_step_late])
def test_the_suite_catches_wrong_tangent_maps(monkeypatch, bug):
    # Both leave linear networks, the sum rule, the δ^T bound and the mean-field λ_max as they were (Wᵀ has W's
    # eigenvalues, determinant, norm and statistics), so every check but the autograd one passed them.
    bug(monkeypatch)
    check = validation._autograd(quick=True, seed=0)
    assert not check.passed and abs(check.measured - check.expected) > 100 * check.tolerance


@pytest.mark.parametrize(("seed", "bound"), [(-1, "≥ 0"), (2**63, r"≤ 2\^63 - 1"), (2**64 - 1, r"≤ 2\^63 - 1")])
def test_a_seed_the_suite_cannot_use_is_refused_before_any_check_and_as_given(seed, bound):
    # the suite draws from seed + 1 … seed + 9 and refused such seeds midway, naming seed + j, not the seed given
    started = []
    with pytest.raises(rnnstab.InvalidArgumentError, match=rf"^seed must be {bound}, got {seed}$"):
        validation.run_validation(quick=True, seed=seed, progress=started.append)
    assert started == []
