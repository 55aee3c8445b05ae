"""A built-in suite of reference checks against results from the literature (``rnnstab validate``).

Each check runs rnnstab on a system whose answer is known independently — exactly (linear RNNs, products of
Gaussian matrices, the determinant identity, the δ^T bound, a separate computation from autograd Jacobians) or
asymptotically (mean-field theory at large n) — and compares one number, the worst case over the quantities it covers,
with a stated tolerance derived from the source's error model. The sizes are small enough that the whole suite runs
in seconds on a laptop CPU.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from scipy.special import digamma, polygamma

from rnnstab import _checks
from rnnstab.activations import get_activation
from rnnstab.jacobian import jacobian_norms
from rnnstab.lyapunov import initial_frame_draw, lyapunov_spectrum, product_lyapunov_spectrum
from rnnstab.rnn import VanillaRNN
from rnnstab.theory import bound_violations, mean_field
from rnnstab.weights import init_weights, scale_to_threshold, spectral_norm

_F64 = torch.float64

SOURCES = {
    "oseledets": "V. I. Oseledets, 'A multiplicative ergodic theorem', Trans. Moscow Math. Soc. 19, 197 (1968): for a "
    "constant matrix the Lyapunov exponents are the log-moduli of its eigenvalues (Gelfand's formula for λ₁)",
    "benettin": "G. Benettin, L. Galgani, A. Giorgilli, J.-M. Strelcyn, 'Lyapunov characteristic exponents for smooth "
    "dynamical systems…', Meccanica 15, 9 and 21 (1980): the QR method used here",
    "determinant": "Σᵢλᵢ = lim (1/T) log|det J_T| (Oseledets 1968; J.-P. Eckmann, D. Ruelle, 'Ergodic theory of chaos "
    "and strange attractors', Rev. Mod. Phys. 57, 617 (1985)); here det J_t = det W·Πⱼσ'(h_tj)",
    "newman": "C. M. Newman, 'The distribution of Lyapunov exponents: exact results for random matrices', "
    "Commun. Math. Phys. 103, 121 (1986): entries N(0, σ²/n) give λᵢ = log σ + ½[ln(2/n) + ψ((n−i+1)/2)], and the "
    "per-step log R_ii are independent with variance ¼ψ'((n−i+1)/2)",
    "pascanu": "R. Pascanu, T. Mikolov, Y. Bengio, 'On the difficulty of training recurrent neural networks', ICML "
    "2013: ‖∂g_t/∂g_0‖₂ ≤ (γ‖W‖₂)^t = δ^t, hence λ₁ ≤ log δ",
    "mean_field": "B. Poole et al., 'Exponential expressivity in deep neural networks through transient chaos', "
    "NeurIPS 2016 (q*, χ); L. Molgedey, J. Schuchhardt, H. G. Schuster, 'Suppressing chaos in neural networks by "
    "noise', Phys. Rev. Lett. 69, 3717 (1992) (discrete-time random tanh RNN: λ_max = ½ log χ, input noise lowers it)",
}


@dataclass(frozen=True)
class ValidationCheck:
    """One reference check: ``measured`` against ``expected`` within ``tolerance``.

    Attributes:
        name: short title.
        quantity: what the two numbers are (natural logs; exponents in nats per step).
        expected: the reference value (for ``comparison`` "≤", an upper bound).
        measured: rnnstab's value — the worst case over everything the check covers.
        tolerance: allowed |measured − expected| (or excess over the bound), with its justification in ``details``.
        comparison: ``"="`` (|measured − expected| ≤ tolerance) or ``"≤"`` (measured ≤ expected + tolerance).
        passed: the verdict.
        source: the reference the expected value comes from.
        details: sizes, and why the tolerance is what it is.
    """

    name: str
    quantity: str
    expected: float
    measured: float
    tolerance: float
    comparison: str
    passed: bool
    source: str
    details: str


def run_validation(
    *, quick: bool = False, seed: int = 0, progress: Callable[[str], None] | None = None
) -> list[ValidationCheck]:
    """Run every reference check; returns them in order (see :data:`SOURCES` for the references).

    Args:
        quick: smaller sizes (used by the test suite): looser statistical tolerances, same logic.
        seed: seed of every random draw.
        progress: called with each check's name before it runs.

    Returns:
        A list of :class:`ValidationCheck`; all pass on a correct installation.

    Raises:
        InvalidArgumentError: a seed outside [0, 2^63 − 1].
        ArgumentTypeError: a seed that is not an integer.

    Example:
        >>> checks = run_validation(quick=True)
        >>> all(c.passed for c in checks), len(checks)
        (True, 11)
    """
    # network j is drawn from seed + j: refuse here, not seconds later in the middle of the suite
    seed = _checks.seed("seed", seed)
    checks: list[ValidationCheck] = []
    for name, run in _SUITE:
        if progress is not None:
            progress(name)
        checks.extend(run(quick, seed))
    return checks


def _check(
    name: str,
    quantity: str,
    expected: float,
    measured: float,
    tolerance: float,
    source: str,
    details: str,
    *,
    le: bool = False,
) -> ValidationCheck:
    ok = measured <= expected + tolerance if le else abs(measured - expected) <= tolerance
    return ValidationCheck(
        name=name,
        quantity=quantity,
        expected=float(expected),
        measured=float(measured),
        tolerance=float(tolerance),
        comparison="≤" if le else "=",
        passed=bool(ok and math.isfinite(measured)),
        source=SOURCES[source],
        details=details,
    )


def _linear(W: torch.Tensor, steps: int, warmup: int, name: str, what: str) -> ValidationCheck:
    """λ_i of the linear RNN g_t = W g_{t-1} against sorted log|eig W|, worst i."""
    result = lyapunov_spectrum(VanillaRNN(W, activation="identity"), torch.zeros(1, steps, 0), warmup=warmup)
    eigenvalues, vectors = torch.linalg.eig(W)
    expected = torch.sort(eigenvalues.abs().log(), descending=True).values
    worst = int((result.exponents[0] - expected).abs().argmax())
    log_condition = math.log(float(torch.linalg.cond(vectors)))
    measured_steps = steps - warmup
    tolerance = 2.0 * (1.0 + log_condition) / measured_steps
    return _check(
        name,
        f"λ_{worst + 1} against log|μ_{worst + 1}(W)| (the worst of all n)",
        float(expected[worst]),
        float(result.exponents[0, worst]),
        tolerance,
        "oseledets",
        f"{what}; n = {W.shape[0]}, T = {steps}, warm-up {warmup}. Tolerance 2(1 + log κ(V))/(T − warm-up) with "
        f"κ(V) = {math.exp(log_condition):.3g} the eigenvector condition number: ‖W^t v‖ stays within a factor κ(V) "
        "of its eigen-rate, an O(1/T) transient at each end of the window.",
    )


def _linear_normal(quick: bool, seed: int) -> ValidationCheck:
    n, steps = (12, 1500) if quick else (16, 4000)
    W = init_weights("gaussian", n, seed=seed)
    return _linear(W, steps, steps // 10, "linear RNN, random W", "W with i.i.d. N(0, 1/n) entries")


def _linear_non_normal(quick: bool, seed: int) -> ValidationCheck:
    n, steps = (10, 1500) if quick else (12, 4000)
    generator = _checks.generator(seed)
    eigenvalues = torch.linspace(0.45, 0.9, n, dtype=_F64)
    S = torch.eye(n, dtype=_F64) + 3.0 * torch.triu(torch.randn(n, n, generator=generator, dtype=_F64), diagonal=1)
    W = S @ torch.diag(eigenvalues) @ torch.linalg.inv(S)
    norm = float(spectral_norm(W))
    return _linear(
        W,
        steps,
        steps // 10,
        "linear RNN, non-normal W",
        f"W = SΛS⁻¹, eigenvalues in [0.45, 0.9] but ‖W‖₂ = {norm:.3g} (the δ^T bound is loose by (ρ/‖W‖₂)^T)",
    )


def _orthogonal(quick: bool, seed: int) -> ValidationCheck:
    n, steps = (16, 500) if quick else (64, 2000)
    W = init_weights("orthogonal", n, seed=seed)
    result = lyapunov_spectrum(VanillaRNN(W, activation="identity"), torch.zeros(1, steps, 0))
    worst = float(result.exponents.abs().max())
    return _check(
        "orthogonal linear RNN",
        "max_i |λ_i| (every exponent is 0)",
        0.0,
        worst,
        1e-12,
        "oseledets",
        f"Haar orthogonal W, n = {n}, T = {steps}: every |eigenvalue| is 1. Tolerance 1e-12: rounding only "
        "(each QR perturbs log R_ii by ~√n·ε ≈ 2e-15, averaging down over the run).",
    )


def _sum_rule(quick: bool, seed: int) -> ValidationCheck:
    n, steps, batch = (12, 300, 2) if quick else (32, 1000, 3)
    rnn = _random_rnn(n, activation="tanh", delta=2.0, seed=seed)
    x = torch.randn(batch, steps, rnn.input_size, generator=_checks.generator(seed, 1), dtype=_F64)
    result = lyapunov_spectrum(rnn, x)
    assert result.sum_rule_residual is not None and result.sum_rule_expected is not None  # k = n
    worst = int(result.sum_rule_residual.abs().argmax())
    tolerance = n * math.exp(result.max_log_spread) * torch.finfo(_F64).eps
    return _check(
        "sum rule Σλ = log|det W| + ⟨Σ log|σ'|⟩",
        "Σᵢλᵢ against log|det W| + (1/T)Σ_t Σⱼ log|σ'(h_tj)| (worst trajectory)",
        float(result.sum_rule_expected[worst]),
        float(result.exponents[worst].sum()),
        tolerance,
        "determinant",
        f"tanh RNN with inputs, γ‖W‖₂ = 2, n = {n}, T = {steps}, {batch} trajectories. The identity is exact at "
        "every T (Σ log R_ii = log|det| of the product), so only rounding remains: each QR's log R_ii carry a "
        "relative error ≲ ε·e^{spread} (the spread of log R_ii over the interval), so the tolerance is n·ε·e^{spread} "
        f"with the largest spread met, {result.max_log_spread:.3g} nats.",
    )


def _autograd(quick: bool, seed: int) -> ValidationCheck:
    n, steps, batch = (8, 200, 2) if quick else (16, 600, 2)
    worst = (-1.0, 0.0, 0.0, "")  # |λ_i − reference|, reference, λ_i, where
    tolerance = 0.0
    for j, activation in enumerate(_AUTOGRAD_ACTIVATIONS):
        rnn = _random_rnn(n, activation=activation, delta=2.0, seed=seed + j)
        generator = _checks.generator(seed, j)
        x = torch.randn(batch, steps, rnn.input_size, generator=generator, dtype=_F64)
        h0 = torch.randn(batch, n, generator=generator, dtype=_F64)
        result = lyapunov_spectrum(rnn, x, h0=h0, seed=seed)
        reference = _autograd_benettin(rnn, x, h0, initial_frame_draw(seed, batch, n, n), result.warmup)
        gaps = (result.exponents - reference).abs()
        b, i = divmod(int(gaps.argmax()), n)
        if float(gaps[b, i]) > worst[0]:
            where = f"λ_{i + 1} of the {activation} network, trajectory {b}"
            worst = (float(gaps[b, i]), float(reference[b, i]), float(result.exponents[b, i]), where)
        tolerance = max(tolerance, n * math.exp(result.max_log_spread) * torch.finfo(_F64).eps)
    return _check(
        "RNN exponents against autograd Jacobians",
        f"{worst[3]} against Benettin's method on the step Jacobians ∂g_t/∂g_(t−1) from autograd (the worst of all)",
        worst[1],
        worst[2],
        tolerance,
        "benettin",
        f"γ‖W‖₂ = 2 with inputs and bias, {', '.join(_AUTOGRAD_ACTIVATIONS)}; n = {n}, T = {steps}, {batch} "
        "trajectories. The reference recomputes the trajectory, takes each step's Jacobian by autograd (not σ') "
        "and re-orthonormalises after every step with numpy, from the same initial frame: only rounding separates "
        "the two, so the tolerance is that of the sum rule, n·ε·e^{spread}. A W where Wᵀ belongs, or σ' taken one "
        "step off, passes every other check here.",
    )


def _autograd_benettin(
    rnn: VanillaRNN, x: torch.Tensor, h0: torch.Tensor, frames: torch.Tensor, warmup: int
) -> torch.Tensor:
    """(batch, n) exponents, descending: QR after every step of the autograd Jacobians of g ↦ σ(W g + U x_t + b)."""
    exponents = []
    for b in range(x.shape[0]):
        g = rnn.activation.fn(h0[b])
        Q = np.linalg.qr(frames[b].numpy())[0]
        total = np.zeros(Q.shape[1])
        for t in range(x.shape[1]):
            step = partial(_next_state, rnn=rnn, drive=rnn.U @ x[b, t] + rnn.b)
            Q, R = np.linalg.qr(torch.func.jacrev(step)(g).numpy() @ Q)
            g = step(g)
            if t >= warmup:
                total += np.log(np.abs(np.diag(R)))
        exponents.append(np.sort(total)[::-1] / (x.shape[1] - warmup))
    return torch.from_numpy(np.stack(exponents))


def _next_state(g: torch.Tensor, *, rnn: VanillaRNN, drive: torch.Tensor) -> torch.Tensor:
    return rnn.activation.fn(rnn.W @ g + drive)


def _newman(quick: bool, seed: int) -> tuple[ValidationCheck, ValidationCheck]:
    n, steps, batch, sigma = (8, 1500, 2, 1.3) if quick else (10, 5000, 4, 1.3)
    generator = _checks.generator(seed)
    scale = sigma / math.sqrt(n)
    result = product_lyapunov_spectrum(
        lambda t: scale * torch.randn(batch, n, n, generator=generator, dtype=_F64), steps=steps
    )
    i = torch.arange(1, n + 1, dtype=_F64)
    half = ((n - i + 1) / 2).numpy()
    expected = math.log(sigma) + 0.5 * (math.log(2.0 / n) + torch.from_numpy(digamma(half)))
    per_step_sd = 0.5 * torch.from_numpy(polygamma(1, half)).sqrt()
    stderr = per_step_sd / math.sqrt(steps * batch)
    measured = result.exponents.mean(dim=0)
    z = (measured - expected) / stderr
    worst = int(z.abs().argmax())
    exponents = _check(
        "products of Gaussian matrices (Newman)",
        f"λ_{worst + 1} (the worst in units of its exact standard error)",
        float(expected[worst]),
        float(measured[worst]),
        float(5.0 * stderr[worst]),
        "newman",
        f"M_t with i.i.d. N(0, σ²/n) entries, σ = {sigma}, n = {n}, T = {steps}, mean of {batch} products. "
        f"Tolerance 5 exact standard errors ½√(ψ'((n−i+1)/2)/(B·T)) (worst |z| = {float(z.abs().max()):.2f}).",
    )
    ratio = float((result.exponents_stderr / (per_step_sd / math.sqrt(steps))).mean())
    blocks = result.block_exponents.shape[1]
    # A sample standard deviation underestimates σ on average by the factor c₄(blocks) (Gaussian block means).
    c4 = math.sqrt(2.0 / (blocks - 1)) * math.exp(math.lgamma(blocks / 2) - math.lgamma((blocks - 1) / 2))
    # Each block estimate of a standard error has relative s.d. ≈ 1/√(2(blocks − 1)); averaged over B·n of them.
    spread = 3.0 / math.sqrt(2.0 * (blocks - 1) * batch * n)
    error_bars = _check(
        "error bars from block means",
        "mean of (block-means standard error ÷ exact standard error) over all exponents, against c₄",
        c4,
        ratio,
        spread,
        "newman",
        f"the same products, {blocks} blocks: the per-step log R_ii are independent (Newman), so the exact "
        f"standard error is known; a sample s.d. of {blocks} Gaussian block means averages c₄ = {c4:.4f} of the true "
        "one. Tolerance 3/√(2(blocks − 1)·B·n): three s.d. of the averaged ratio.",
    )
    return exponents, error_bars


def _bound_lyapunov(quick: bool, seed: int) -> ValidationCheck:
    n, steps = (16, 200) if quick else (48, 500)
    worst = -math.inf
    for j, (activation, delta) in enumerate(_BOUND_CASES):
        rnn = _random_rnn(n, activation=activation, delta=delta, seed=seed + j)
        x = torch.randn(3, steps, rnn.input_size, generator=_checks.generator(seed, j), dtype=_F64)
        result = lyapunov_spectrum(rnn, x, k=1)
        worst = max(worst, float(result.exponents[:, 0].max()) - math.log(delta))
    return _check(
        "δ^T bound on the top exponent",
        "max over networks of λ₁ − log δ (must be ≤ 0)",
        0.0,
        worst,
        1e-12,
        "pascanu",
        f"W scaled to γ‖W‖₂ = δ ∈ {{0.8, 1.3}}: Gaussian W with tanh, relu, sigmoid, gelu, and orthogonal W with the "
        f"identity (where the bound is tight: λ₁ = log δ); n = {n}, T = {steps}, 3 input sequences each. The "
        "estimate is (1/T) log‖J q‖ ≤ (1/T) log‖J‖₂ ≤ log δ at every T, so only rounding (1e-12) is allowed.",
        le=True,
    )


def _bound_norms(quick: bool, seed: int) -> ValidationCheck:
    n, steps = (16, 100) if quick else (48, 300)
    worst = -math.inf
    violations = 0
    for j, (activation, delta) in enumerate(_BOUND_CASES):
        rnn = _random_rnn(n, activation=activation, delta=delta, seed=seed + j)
        x = torch.randn(3, steps, rnn.input_size, generator=_checks.generator(seed, j), dtype=_F64)
        trace = jacobian_norms(rnn, x, norms=("spectral",))
        assert trace.log_spectral is not None
        t = torch.arange(1, steps + 1, dtype=_F64)
        excess = trace.log_spectral - t * math.log(delta)
        worst = max(worst, float(excess.max()))
        violations += len(bound_violations(trace, delta=delta))
    tolerance = float(trace.float_tolerance()[-1])
    return _check(
        "δ^T bound at every step",
        "max over networks and t of log‖J_t‖₂ − t·log δ (must be ≤ 0)",
        0.0,
        worst if violations == 0 else math.inf,
        tolerance,
        "pascanu",
        f"the networks above (tight for the scaled orthogonal linear ones), exact spectral norms for t = 1..{steps}; "
        "tolerance: the float64 rounding allowance "
        f"16·√n·2ε·(t + 1) at t = T ({violations} violations).",
        le=True,
    )


def _mean_field(quick: bool, seed: int, input_variance: float) -> ValidationCheck:
    n, steps, networks, gain = (300, 600, 3, 2.0) if quick else (600, 1000, 4, 2.0)
    generator = _checks.generator(seed)
    W = gain * torch.randn(networks, n, n, generator=generator, dtype=_F64) / math.sqrt(n)
    if input_variance > 0:
        U = torch.eye(n, dtype=_F64).expand(networks, n, n)
        x = math.sqrt(input_variance) * torch.randn(networks, steps, n, generator=generator, dtype=_F64)
    else:
        U, x = None, torch.zeros(networks, steps, 0, dtype=_F64)
    h0 = torch.randn(networks, n, generator=generator, dtype=_F64)
    result = lyapunov_spectrum(VanillaRNN(W, U, None, "tanh"), x, k=1, h0=h0, warmup=100)
    rates = result.exponents[:, 0]
    predicted = mean_field("tanh", gain=gain, input_variance=input_variance)
    spread = float(rates.std(correction=1)) / math.sqrt(networks)
    tolerance = 3.0 * spread + 4.0 / n
    noise = f", inputs with variance σ²_in = {input_variance} per unit" if input_variance > 0 else ", no input"
    return _check(
        "mean-field λ_max, random tanh RNN" + (" with input noise" if input_variance > 0 else ""),
        "λ₁ (mean over networks) against ½ log χ, χ = g²E[tanh'(√q* z)²]",
        predicted.lyapunov_max_per_step,
        float(rates.mean()),
        tolerance,
        "mean_field",
        f"W_ij ~ N(0, g²/n), g = {gain} (chaotic: χ = {predicted.chi:.4f}, q* = {predicted.q_star:.4f}){noise}, "
        f"n = {n}, T = {steps}, {networks} networks, h_0 ~ N(0, 1). The theory holds as n → ∞ and ignores the reuse "
        "of W; tolerance 3 s.e. between networks + 4/n (the finite-size deficit measured for n = 100…800 at g = 2 "
        "is ≈ 2/n).",
    )


_AUTOGRAD_ACTIVATIONS = ("tanh", "gelu")
_BOUND_CASES = [(a, d) for a in ("tanh", "relu", "sigmoid", "gelu", "identity") for d in (0.8, 1.3)]


def _random_rnn(n: int, *, activation: str, delta: float, seed: int) -> VanillaRNN:
    """Gaussian W (orthogonal for the identity, where the δ^T bound is then tight) scaled to γ‖W‖₂ = δ."""
    act = get_activation(activation)
    scheme = "orthogonal" if activation == "identity" else "gaussian"
    W = scale_to_threshold(init_weights(scheme, n, seed=seed), delta=delta, gamma=act.gamma)
    generator = _checks.generator(seed, 10_000)
    U = torch.randn(n, 3, generator=generator, dtype=_F64) / math.sqrt(3)
    b = 0.1 * torch.randn(n, generator=generator, dtype=_F64)
    return VanillaRNN(W, U, b, activation=act)


_SUITE: list[tuple[str, Callable[[bool, int], list[ValidationCheck]]]] = [
    ("linear RNN, random W", lambda quick, seed: [_linear_normal(quick, seed)]),
    ("linear RNN, non-normal W", lambda quick, seed: [_linear_non_normal(quick, seed)]),
    ("orthogonal linear RNN", lambda quick, seed: [_orthogonal(quick, seed)]),
    ("sum rule", lambda quick, seed: [_sum_rule(quick, seed)]),
    ("RNN exponents against autograd Jacobians", lambda quick, seed: [_autograd(quick, seed)]),
    ("products of Gaussian matrices (Newman)", lambda quick, seed: list(_newman(quick, seed))),
    ("δ^T bound: top exponent", lambda quick, seed: [_bound_lyapunov(quick, seed)]),
    ("δ^T bound: every step", lambda quick, seed: [_bound_norms(quick, seed)]),
    ("mean-field λ_max", lambda quick, seed: [_mean_field(quick, seed, 0.0)]),
    ("mean-field λ_max with input noise", lambda quick, seed: [_mean_field(quick, seed, 0.25)]),
]

#: The number of checks :func:`run_validation` returns.
SUITE_SIZE = 11
