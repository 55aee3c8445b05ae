"""Audit recurrent weights: their spectra, and what gradients do along input-driven trajectories.

For each subject — S matrices W of one initialisation scheme, or one trained layer (S = 1) — an audit measures

- ‖W‖₂ (exact largest singular value) and ρ(W) = max|λ(W)|, and δ = γ‖W‖₂ with γ = sup|σ'|;
- whether the sufficient condition for vanishing gradients holds: δ < 1 gives ‖J_t‖₂ ≤ δ^t → 0;
- Henrici's departure from normality, relative: dep(W) = √(‖W‖_F² − Σ|λ_i|²) / ‖W‖_F ∈ [0, 1] (0 exactly for a
  normal W, where ‖W‖₂ = ρ(W); close to 1 when the eigenvalues say almost nothing about the norm);
- the transient growth max_{1≤t≤T} ‖W^t‖₂ of the linear map, and the step where it peaks: ‖W^t‖₂^{1/t} → ρ(W)
  (Gelfand), but a non-normal W can amplify for a while first; for ρ(W) > 1 the norm still grows at t = T, and
  the maximum is the horizon's cut-off (a lower bound), not a peak — counted, so that the report can say so;
- the measured gradient rate: the late-half slope of log‖J_t‖₂ (:func:`rnnstab.theory.late_rate`) along the
  trajectories g_t = σ(W g_{t-1} + U x_t + b), in nats per step;
- the memory horizon: the first t with ‖J_t‖₂ ≤ ``horizon_drop`` (default 10⁻³), see :class:`AuditRow`;
- a regime (:func:`rnnstab.theory.regime_of`) and a verdict in words.

Spectra use every sample; the Jacobian part (rate, horizon, transient growth) uses the first ``jacobian_samples``
samples (all by default), each driven by every input sequence, because it costs T matrix products per trajectory.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from rnnstab import _checks
from rnnstab.activations import Activation, get_activation
from rnnstab.exceptions import ArgumentTypeError, InvalidArgumentError, ShapeError, StateOverflowError
from rnnstab.jacobian import jacobian_norms, memory_estimate
from rnnstab.rnn import VanillaRNN
from rnnstab.theory import DEFAULT_RATE_TOL, bound_violations, late_rate, regime_of
from rnnstab.weights import _power_of_two_scaled

if TYPE_CHECKING:
    import os

    from rnnstab.report import Report

#: δ below 1 by less than this is rounding of an exact δ = 1 (an orthogonal W), not a guarantee of decay.
_DELTA_ROUNDING = 1e-12

#: |rate| below this (nats/step) is rounding of a norm-preserving network (orthogonal, linear), not a decay.
_RATE_ROUNDING = 1e-9

HORIZON_KINDS = ("measured", "extrapolated", "unbounded")


@dataclass(frozen=True)
class AuditSubject:
    """What to audit: recurrent weights with the inputs that drive their trajectories.

    Attributes:
        name: shown in tables and figures (a scheme's registry name, or e.g. ``"layer 0"``); unique in an audit.
        rnn: the network; W may be (S, n, n) — S samples of one scheme — with U (n, m) or (S, n, m), b (n,) or (S, n).
        inputs: (batch, T, m) input sequences; every sample is driven by every sequence (S·batch trajectories).
        details: free-form provenance shown in the report (e.g. ``{"keys": "weight_hh_l0, weight_ih_l0"}``).
    """

    name: str
    rnn: VanillaRNN
    inputs: torch.Tensor
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Stat:
    """A mean over samples (or trajectories) with its spread: the sample standard deviation (ddof = 1), ``None``
    when there is a single value."""

    mean: float
    spread: float | None

    @classmethod
    def of(cls, values: torch.Tensor) -> Stat:
        v = values.detach().to(torch.float64).reshape(-1)
        if v.numel() == 0:
            raise InvalidArgumentError("a statistic needs at least one value")
        # in units of a power of two (exact): the sum inside the mean of values near 1e308 overflows to inf
        finite = v[torch.isfinite(v)].abs()
        unit = 2.0 ** math.floor(math.log2(float(finite.max()))) if finite.numel() and bool(finite.max() > 0) else 1.0
        mean = float((v / unit).mean()) * unit
        if v.numel() == 1:
            return cls(mean, None)
        spread = float((v / unit).std()) * unit if bool(torch.isfinite(v).all()) else math.nan
        return cls(mean, spread)

    def to_dict(self) -> dict[str, float | None]:
        return {"mean": self.mean, "spread": self.spread}


@dataclass(frozen=True)
class AuditRow:
    """The audit of one subject. Logs are natural; rates in nats per step; horizons in steps.

    Attributes:
        name, details: from the :class:`AuditSubject`.
        activation: the activation's name; gamma: γ = sup|σ'|.
        hidden: n; steps: T; samples: S (spectra); jacobian_samples: samples whose Jacobians were traced;
            trajectories: jacobian_samples × input sequences.
        spectral_norm, spectral_radius, delta: ‖W‖₂, ρ(W), δ = γ‖W‖₂ over the S samples.
        vanishing_guaranteed: every sample has δ < 1 (by more than float rounding): ‖J_t‖₂ ≤ δ^t → 0 is proven.
            δ = 1 exactly (orthogonal W, γ = 1) bounds the gradients but does not make them vanish.
        nonnormality: Henrici's relative departure from normality √(‖W‖_F² − Σ|λ|²)/‖W‖_F over the samples.
        transient_growth: max_{1≤t≤T} ‖W^t‖₂ over the Jacobian samples; transient_peak_step: the t of that max;
            log_transient_growth: its natural log, finite where the growth itself overflows (ρ(W) > 1, long T).
        transient_still_growing: how many of the Jacobian samples have ‖W^t‖₂ still growing at t = T (its maximum
            first reached at T, above ‖W^(T−1)‖₂ by more than rounding; ‖W^0‖₂ = 1): for those the maximum is
            where the horizon cut the growth off, a lower bound of max_t ‖W^t‖₂, not a peak.
        rate_per_step: late-half slope of log‖J_t‖₂ over the trajectories (:func:`rnnstab.theory.late_rate`).
        memory_horizon_steps: steps until ‖J_t‖₂ falls to ``horizon_drop``, for the mean curve m_t (the mean over
            trajectories of log‖J_t‖₂): ``measured`` — the first t ≤ T with m_t ≤ log(horizon_drop);
            ``extrapolated`` — not reached within T but the mean curve's late-half rate r is negative:
            T + (log(horizon_drop) − m_T)/r, rounded up; ``unbounded`` (mean = inf) — not reached and r ≥ 0
            (rates within 1e-9 nats/step of 0 count as 0: rounding of a norm-preserving network).
            The spread is the standard deviation of the trajectories' own horizons (same rule), ``None`` when any
            of them is unbounded or there is one trajectory.
        memory_horizon_kind: one of :data:`HORIZON_KINDS`.
        regime: :func:`rnnstab.theory.regime_of` of (max δ, the mean curve's rate).
        verdict: a sentence in words.
        bound_holds: no trajectory exceeded ‖J_t‖₂ ≤ δ^t beyond float rounding (``False`` is a bug in rnnstab).
        eigenvalues: (S, n) complex128 eigenvalues of each sample.
        singular_values: (S, n) float64 singular values of each sample, descending.
        log_norm_mean, log_norm_spread: (T,) mean and standard deviation over trajectories of log‖J_t‖₂
            (spread 0 for one trajectory; -inf entries when a Jacobian became exactly zero).
        log_transient: (T,) mean over the Jacobian samples of log‖W^t‖₂.
    """

    name: str
    details: Mapping[str, Any]
    activation: str
    gamma: float
    hidden: int
    steps: int
    samples: int
    jacobian_samples: int
    trajectories: int
    spectral_norm: Stat
    spectral_radius: Stat
    delta: Stat
    vanishing_guaranteed: bool
    nonnormality: Stat
    transient_growth: Stat
    transient_peak_step: Stat
    log_transient_growth: Stat
    transient_still_growing: int
    rate_per_step: Stat
    memory_horizon_steps: Stat
    memory_horizon_kind: str
    regime: str
    verdict: str
    bound_holds: bool
    eigenvalues: torch.Tensor
    singular_values: torch.Tensor
    log_norm_mean: torch.Tensor
    log_norm_spread: torch.Tensor
    log_transient: torch.Tensor

    @property
    def radius_hides_norm(self) -> bool:
        """γ·ρ(W) < 1 ≤ γ‖W‖₂ on average: the eigenvalues look contracting but the bound does not apply.

        Both sides within 1e-12 of 1 count as 1 (as for :attr:`AuditRow.vanishing_guaranteed`): an orthogonal W has
        ρ(W) = ‖W‖₂ = 1, which rounding can turn into ρ = 1 − 1e-16 < 1 ≤ ‖W‖₂, not a radius that hides the norm."""
        return self.gamma * self.spectral_radius.mean < 1 - _DELTA_ROUNDING <= self.delta.mean

    @property
    def transient_cut_off(self) -> bool:
        """‖W^t‖₂ still grows at t = T for most Jacobian samples: the transient growth and its step are where the
        horizon stopped the growth (growth cut off, t = T), not a transient peak."""
        return 2 * self.transient_still_growing > self.jacobian_samples

    def to_dict(self) -> dict[str, Any]:
        """The scalar results, JSON-ready (each statistic as ``{"mean", "spread"}``; no per-sample arrays)."""
        horizon: dict[str, Any] = {**self.memory_horizon_steps.to_dict()}
        horizon["kind"] = self.memory_horizon_kind
        if self.memory_horizon_kind == "unbounded":
            horizon["mean"] = "unbounded"
        return {
            "activation": self.activation,
            "gamma": self.gamma,
            "hidden": self.hidden,
            "steps": self.steps,
            "samples": self.samples,
            "jacobian_samples": self.jacobian_samples,
            "trajectories": self.trajectories,
            "spectral_norm": self.spectral_norm.to_dict(),
            "spectral_radius": self.spectral_radius.to_dict(),
            "delta": self.delta.to_dict(),
            "vanishing_guaranteed": self.vanishing_guaranteed,
            "radius_below_threshold_norm_above": self.radius_hides_norm,
            "nonnormality": self.nonnormality.to_dict(),
            "transient_growth": self.transient_growth.to_dict(),
            "transient_peak_step": self.transient_peak_step.to_dict(),
            "log_transient_growth": self.log_transient_growth.to_dict(),
            "transient_still_growing": self.transient_still_growing,
            "transient_cut_off": self.transient_cut_off,
            "rate_per_step": self.rate_per_step.to_dict(),
            "memory_horizon_steps": horizon,
            "regime": self.regime,
            "verdict": self.verdict,
            "bound_holds": self.bound_holds,
            "details": dict(self.details),
        }


@dataclass(frozen=True)
class Audit:
    """The rows of an audit, in the order of the subjects.

    Attributes:
        rows: one :class:`AuditRow` per subject.
        horizon_drop: the factor by which ‖J_t‖₂ must fall for the memory horizon.
    """

    rows: tuple[AuditRow, ...]
    horizon_drop: float

    @property
    def names(self) -> list[str]:
        return [row.name for row in self.rows]

    def __getitem__(self, name: str) -> AuditRow:
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(name)

    @property
    def bound_holds(self) -> bool:
        return all(row.bound_holds for row in self.rows)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: units, the horizon drop, and one entry per subject under its name."""
        return {
            "units": "natural log; rates in nats per step; horizons and peaks in steps",
            "nonnormality_index": "Henrici's relative departure from normality √(‖W‖_F² − Σ|λ|²)/‖W‖_F",
            "spread": "sample standard deviation over samples (null for one sample)",
            "horizon_drop": self.horizon_drop,
            "subjects": {row.name: row.to_dict() for row in self.rows},
        }


def audit(
    subjects: Sequence[AuditSubject],
    *,
    horizon_drop: float = 1e-3,
    jacobian_samples: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> Audit:
    """Audit each subject's recurrent weights and its gradients along input-driven trajectories (float64).

    Args:
        subjects: what to audit (names must be unique).
        horizon_drop: the memory horizon is the first t with ‖J_t‖₂ ≤ horizon_drop, 0 < horizon_drop < 1.
        jacobian_samples: trace the Jacobians of only the first this many samples of each subject (all by default);
            the spectra always use every sample.
        progress: called with each subject's name before it is audited.

    Returns:
        An :class:`Audit`.

    Raises:
        ArgumentTypeError: ``subjects`` is not a list of :class:`AuditSubject`.
        InvalidArgumentError: duplicate names, horizon_drop outside (0, 1), jacobian_samples < 1.
        ShapeError, NonFiniteError: inputs that do not fit the subject's network.

    Example:
        >>> import torch
        >>> rnn = VanillaRNN(0.5 * torch.eye(3, dtype=torch.float64)[None], activation="identity")
        >>> row = audit([AuditSubject("half", rnn, torch.zeros(1, 20, 0, dtype=torch.float64))]).rows[0]
        >>> row.spectral_norm.mean, row.memory_horizon_steps.mean, row.memory_horizon_kind  # 0.5^10 ≤ 1e-3
        (0.5, 10.0, 'measured')
    """
    drop = _checks.positive_float("horizon_drop", horizon_drop)
    if drop >= 1:
        raise InvalidArgumentError(f"horizon_drop must be in (0, 1), got {drop}")
    if jacobian_samples is not None:
        jacobian_samples = _checks.positive_int("jacobian_samples", jacobian_samples)
    if isinstance(subjects, (str, AuditSubject)) or not isinstance(subjects, Iterable):
        raise ArgumentTypeError(f"subjects must be a list of AuditSubject, got {type(subjects).__name__}")
    subjects = list(subjects)
    for subject in subjects:
        if not isinstance(subject, AuditSubject):
            raise ArgumentTypeError(f"audit needs AuditSubject entries, got {type(subject).__name__}")
    names = [s.name for s in subjects]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InvalidArgumentError(f"subject names must be unique, repeated: {', '.join(duplicates)}")
    rows = []
    for subject in subjects:
        if progress is not None:
            progress(subject.name)
        rows.append(_audit_one(subject, math.log(drop), jacobian_samples))
    return Audit(rows=tuple(rows), horizon_drop=drop)


def audit_schemes(
    hidden: int,
    activation: str | Activation,
    *,
    schemes: Sequence[str] | None = None,
    samples: int = 20,
    jacobian_samples: int = 4,
    steps: int = 100,
    batch: int = 2,
    inputs: int = 4,
    input_scale: float = 1.0,
    seed: int = 0,
    params: Mapping[str, Mapping[str, float]] | None = None,
    horizon_drop: float = 1e-3,
    progress: Callable[[str], None] | None = None,
) -> Audit:
    """Audit initialisation schemes of :func:`rnnstab.init_weights` at hidden size n for one activation.

    Each scheme draws ``samples`` matrices (seed ``seed``); the sweep's conventions drive the trajectories:
    U ~ N(0, 1/m) entries, b = 0, inputs x ~ N(0, input_scale²) of shape (batch, T, m) — the same U and inputs
    for every scheme, so that schemes differ only in W. The Jacobian part uses the first ``jacobian_samples``
    samples × ``batch`` inputs (with the defaults, all 15 schemes at n = 256 take about 50 s of CPU on one thread).

    Args:
        hidden: n.
        activation: a name or an :class:`~rnnstab.Activation` (scaled families included).
        schemes: registry names (default: every registered scheme, in registry order).
        samples: S matrices per scheme for the spectra.
        jacobian_samples: samples whose Jacobians are traced (at most ``samples``).
        steps: horizon T.
        batch: input sequences per sample.
        inputs: input size m.
        input_scale: standard deviation of the inputs (0: autonomous trajectories from g_0 = σ(0)).
        seed: seed of the weights (per scheme) and of U and the inputs.
        params: scheme name → parameter overrides, e.g. ``{"spectral_radius": {"rho": 0.9}}``.
        horizon_drop: see :func:`audit`.
        progress: see :func:`audit`.

    Raises:
        InvalidArgumentError: unknown scheme or parameter, bad sizes (naming the argument).

    Example:
        >>> a = audit_schemes(16, "tanh", schemes=["orthogonal"], samples=2, jacobian_samples=1, steps=5, batch=1)
        >>> round(a["orthogonal"].spectral_norm.mean, 12), round(a["orthogonal"].nonnormality.mean, 6)
        (1.0, 0.0)
    """
    from rnnstab.weights import SCHEMES, init_weights

    act = get_activation(activation)
    hidden = _checks.positive_int("hidden", hidden)
    samples = _checks.positive_int("samples", samples)
    jacobian_samples = min(_checks.positive_int("jacobian_samples", jacobian_samples), samples)
    steps = _checks.positive_int("steps", steps)
    batch = _checks.positive_int("batch", batch)
    inputs = _checks.positive_int("inputs", inputs)
    input_scale = _checks.non_negative_float("input_scale", input_scale)
    seed = _checks.seed("seed", seed)
    if isinstance(schemes, str):  # one name: list("orthogonal") would be its letters
        schemes = [schemes]
    if schemes is not None and not all(isinstance(s, str) for s in schemes):
        raise ArgumentTypeError(f"schemes must be registry names (strings), got {list(schemes)!r}")
    if params is not None and not (
        isinstance(params, Mapping) and all(isinstance(p, Mapping) for p in params.values())
    ):
        raise ArgumentTypeError(f"params must map scheme names to {{parameter: value}} mappings, got {params!r}")
    chosen = list(SCHEMES) if schemes is None else list(dict.fromkeys(schemes))
    overrides = dict(params or {})
    valid = f"valid names: {', '.join(SCHEMES)}"
    unknown = [s for s in chosen if s not in SCHEMES]
    if unknown or not chosen:
        raise InvalidArgumentError(f"unknown scheme(s) {', '.join(map(repr, unknown)) or '(none given)'}; {valid}")
    unknown = [s for s in overrides if s not in SCHEMES]
    if unknown:  # not "given for schemes not audited", which would read as if they were schemes
        raise InvalidArgumentError(f"params: unknown scheme(s) {', '.join(map(repr, unknown))}; {valid}")
    stray = [s for s in overrides if s not in chosen]
    if stray:
        raise InvalidArgumentError(f"parameters given for scheme(s) not audited: {', '.join(stray)}")
    for name in chosen:  # every parameter is checked before any work starts
        SCHEMES[name].resolve(overrides.get(name, {}))
    # Refused before anything is allocated: torch would fail deep inside (a traceback, not a line) or swap.
    _checks.check_memory(
        audit_memory(hidden, samples, jacobian_samples, steps, batch, inputs),
        torch.device("cpu"),
        "reduce hidden, samples, jacobian_samples, batch, steps or inputs",
    )
    generator = _checks.generator(seed, 1)
    U = torch.randn(hidden, inputs, generator=generator, dtype=torch.float64) / math.sqrt(inputs)
    x = float(input_scale) * torch.randn(batch, steps, inputs, generator=generator, dtype=torch.float64)
    _checks.synthetic_inputs(x, input_scale)
    b = torch.zeros(hidden, dtype=torch.float64)
    subjects = []
    for name in chosen:
        W = init_weights(name, hidden, batch=samples, seed=seed, activation=act, **overrides.get(name, {}))
        scheme = SCHEMES[name]
        details = {
            "summary": scheme.summary,
            "‖W‖₂": scheme.norm_guarantee,
            "ρ(W)": scheme.radius_guarantee,
            "parameters": scheme.resolve(overrides.get(name, {})),
        }
        subjects.append(AuditSubject(name, VanillaRNN(W, U, b, act), x, details))
    return audit(subjects, horizon_drop=horizon_drop, jacobian_samples=jacobian_samples, progress=progress)


def audit_memory(hidden: int, samples: int, traced: int, steps: int, batch: int, inputs: int) -> int:
    """Bytes the audit of one subject holds at once (float64): the samples with their factorisation workspace, W
    repeated per traced trajectory, U and the inputs (once shared, once repeated per traced sample), the Jacobian
    products of every trajectory, and the per-step norms it keeps (about ten float64 numbers per trajectory and
    step)."""
    trajectories = traced * batch
    weights = (3 * samples + trajectories) * hidden * hidden
    data = hidden * inputs + (1 + traced) * batch * steps * inputs
    jacobians = (
        memory_estimate(trajectories, hidden, torch.float64) // 8 + memory_estimate(traced, hidden, torch.float64) // 8
    )
    return 8 * (weights + data + jacobians + 10 * (trajectories + traced) * steps)


def write_audit_report(
    audit: Audit, directory: str | os.PathLike[str], *, title: str, parameters: Mapping[str, Any]
) -> Report:
    """Write report.md, a self-contained report.html, summary.json and three figures for an audit.

    See :func:`rnnstab.audit_report.write_audit_report` for the files and the returned :class:`~rnnstab.Report`
    (matplotlib is imported only when a report is written).

    Example:
        >>> import tempfile
        >>> a = audit_schemes(8, "tanh", schemes=["orthogonal"], samples=1, steps=4, batch=1)
        >>> report = write_audit_report(a, tempfile.mkdtemp(), title="inits", parameters={"n": 8})
        >>> sorted(p.name for p in (report.markdown, report.html, report.summary_json))
        ['report.html', 'report.md', 'summary.json']
    """
    from rnnstab import audit_report

    return audit_report.write_audit_report(audit, directory, title=title, parameters=parameters)


def henrici(W: torch.Tensor, eigenvalues: torch.Tensor) -> torch.Tensor:
    """Henrici's relative departure from normality √(‖W‖_F² − Σ|λ_i|²)/‖W‖_F for (S, n, n) W, (S,) float64.

    0 for a normal W (Schur: ‖W‖_F² = Σ|λ_i|² + ‖strictly upper part of the Schur form‖_F²), 0 for W = 0;
    differences within rounding of the eigenvalues (8·n·ε·‖W‖_F²) count as 0.

    Example:
        >>> W = torch.tensor([[[0.0, 1.0], [0.0, 0.0]]], dtype=torch.float64)  # nilpotent: every λ = 0
        >>> henrici(W, torch.linalg.eigvals(W)).tolist(), henrici(1e200 * W, torch.linalg.eigvals(1e200 * W)).tolist()
        ([1.0], [1.0])
    """
    # The index is scale-free: divided by a power of two (exact), ‖W‖_F² neither overflows for entries beyond
    # 1e154 nor underflows below 1e-154, either of which would turn the index into a spurious 0.
    W, scale = _power_of_two_scaled(W)
    fro2 = torch.linalg.matrix_norm(W, ord="fro") ** 2
    gap = fro2 - ((eigenvalues.abs() / scale[..., None]) ** 2).sum(-1)
    # Backward-stable eigenvalues carry errors of order n·ε·‖W‖_F, so a gap below that is rounding (of either sign):
    # without this cut-off the square root would turn it into a spurious index of order √(n·ε) ≈ 1e-7.
    gap = torch.where(gap > 8 * W.shape[-1] * torch.finfo(torch.float64).eps * fro2, gap, 0.0)
    return torch.where(fro2 > 0, torch.sqrt(gap / torch.where(fro2 > 0, fro2, 1.0)), 0.0)


def _audit_one(subject: AuditSubject, log_drop: float, jacobian_samples: int | None) -> AuditRow:
    rnn = subject.rnn
    if not isinstance(rnn, VanillaRNN):
        raise ArgumentTypeError(f"subject {subject.name!r}: rnn must be a VanillaRNN, got {type(rnn).__name__}")
    x = _checks.tensor(f"inputs of {subject.name!r}", subject.inputs, ndims=(3,))
    if x.shape[-1] != rnn.input_size or x.shape[0] == 0 or x.shape[1] == 0:
        raise ShapeError(
            f"inputs of {subject.name!r} must be (batch ≥ 1, T ≥ 1, {rnn.input_size}) for a network with "
            f"{rnn.input_size} inputs, got {tuple(x.shape)}"
        )
    W = rnn.W.detach().to(dtype=torch.float64, device="cpu")
    W = W if W.dim() == 3 else W[None]
    samples, n = W.shape[0], W.shape[-1]
    largest = W.abs().amax(dim=(-2, -1))
    tiny = torch.finfo(torch.float64).tiny
    if bool(((largest > 0) & (largest < tiny)).any()):
        # LAPACK's Lanczos step inside jacobian_norms fails to converge on such a W, with a bare LinAlgError
        raise InvalidArgumentError(
            f"{subject.name!r}: W is subnormal (its largest entry is {float(largest[largest > 0].min()):.3g}, below "
            f"float64's smallest normal number {tiny:.3g}), too few significant bits to trace its gradients; "
            "rescale W (for an init scheme: a larger gain, scale, rho, sigma or g)"
        )
    gamma = rnn.activation.gamma
    # divided by a power of two (exact): LAPACK's factorisations fail on entries near float64's overflow
    unit, scale = _power_of_two_scaled(W)
    eigenvalues = torch.linalg.eigvals(unit) * scale[:, None]
    singular_values = torch.linalg.svdvals(unit) * scale[:, None]
    norms = singular_values[:, 0]
    if not bool(torch.isfinite(norms).all()):
        raise InvalidArgumentError(
            f"{subject.name!r}: ‖W‖₂ overflows float64 (entries up to {float(largest.max()):.3g}); rescale W"
        )
    radii = eigenvalues.abs().max(dim=-1).values
    deltas = gamma * norms

    traced = samples if jacobian_samples is None else min(jacobian_samples, samples)
    batch, steps = x.shape[0], x.shape[1]
    try:
        trace = jacobian_norms(_trajectories(rnn.to(dtype=torch.float64), traced, batch), x.repeat(traced, 1, 1))
    except StateOverflowError as err:
        # Name the subject, and the sample and input sequence of its own: the trajectory index k = sample·batch +
        # sequence that jacobian_norms reports is internal to this audit and says neither which subject nor which W.
        sample, sequence = divmod(err.sequence, batch)
        detail = str(err).replace(f" of input sequence {err.sequence}:", ":", 1)
        raise StateOverflowError(
            f"{subject.name!r} (sample {sample}, input sequence {sequence}): {detail}", step=err.step, sequence=sequence
        ) from None
    assert trace.log_spectral is not None  # "spectral" is among jacobian_norms' default norms
    log_norms = trace.log_spectral  # (traced·batch, T): trajectory k is sample k // batch, input k % batch
    # δ = 0 (W = 0) makes every J_t exactly 0, within the bound δ^t of any δ > 0, the smallest positive one
    # included; bound_violations takes only δ > 0.
    per_trajectory_delta = deltas[:traced].clamp(min=tiny).repeat_interleave(batch)
    bound_holds = not bound_violations(trace, delta=per_trajectory_delta)

    powers = jacobian_norms(
        VanillaRNN(W[:traced], activation="identity"),
        torch.zeros(traced, steps, 0, dtype=torch.float64),
        norms=("spectral",),
    ).log_spectral
    assert powers is not None
    peak_log = powers.max(dim=-1).values
    # The first t within rounding of the maximum: for an orthogonal W every ‖W^t‖₂ is 1 up to the last bit.
    peak_index = (powers >= peak_log[:, None] - 1e-9).to(torch.int64).argmax(dim=-1)
    # A maximum first reached at t = T is above ‖W^(T−1)‖₂ by more than rounding: still growing when the horizon
    # stops it. T = 1 compares with ‖W^0‖₂ = ‖I‖₂ = 1 (log 0): ‖W‖₂ = 2 grows, ‖W‖₂ = 0.9 peaks at t = 1.
    still_growing = (peak_index == steps - 1) & (peak_log > (powers[:, -2] if steps > 1 else 0.0) + 1e-9)

    mean_curve = log_norms.mean(dim=0)
    rate = float(late_rate(mean_curve[None])[0])
    horizon, kind = _horizon(mean_curve, rate, log_drop)
    own = [_horizon(curve, float(r), log_drop)[0] for curve, r in zip(log_norms, late_rate(log_norms), strict=True)]
    horizon_spread = None
    if len(own) > 1 and all(math.isfinite(h) for h in own):
        horizon_spread = float(torch.tensor(own, dtype=torch.float64).std())
    guaranteed = bool((deltas < 1 - _DELTA_ROUNDING).all())
    regime = regime_of(float(deltas.max()) if guaranteed else max(float(deltas.max()), 1.0), rate)
    row_stats = {
        "spectral_norm": Stat.of(norms),
        "spectral_radius": Stat.of(radii),
        "delta": Stat.of(deltas),
        "nonnormality": Stat.of(henrici(W, eigenvalues)),
        "rate_per_step": Stat.of(late_rate(log_norms)),
    }
    return AuditRow(
        name=subject.name,
        details=dict(subject.details),
        activation=rnn.activation.name,
        gamma=gamma,
        hidden=n,
        steps=steps,
        samples=samples,
        jacobian_samples=traced,
        trajectories=traced * batch,
        vanishing_guaranteed=guaranteed,
        transient_growth=Stat.of(peak_log.exp()),
        transient_peak_step=Stat.of((peak_index + 1).to(torch.float64)),
        log_transient_growth=Stat.of(peak_log),
        transient_still_growing=int(still_growing.sum()),
        memory_horizon_steps=Stat(horizon, horizon_spread),
        memory_horizon_kind=kind,
        regime=regime,
        verdict=_verdict(regime, deltas, radii * gamma, rate, horizon, kind, torch.isneginf(log_norms).any(-1)),
        bound_holds=bound_holds,
        eigenvalues=eigenvalues,
        singular_values=singular_values,
        log_norm_mean=mean_curve,
        log_norm_spread=log_norms.std(dim=0) if log_norms.shape[0] > 1 else torch.zeros_like(mean_curve),
        log_transient=powers.mean(dim=0),
        **row_stats,
    )


def format_against_one(value: float) -> str:
    """``value`` to 3 significant digits, or as many more as it takes not to print 1 for a number that is not 1
    (a verdict reading "δ = 1 > 1" for δ = 1.0004 contradicts itself); within 1e-12 of 1 (rounding of an exact 1,
    such as ‖W‖₂ of an orthogonal W), "1".

    Example:
        >>> format_against_one(1.2345), format_against_one(1.0004), format_against_one(0.99996), format_against_one(1.0)
        ('1.23', '1.0004', '0.99996', '1')
        >>> format_against_one(1.0000000000000002)
        '1'
    """
    if abs(value - 1) <= _DELTA_ROUNDING:
        return "1"
    for digits in range(3, 18):
        text = f"{value:.{digits}g}"
        if value == 1 or float(text) != 1:
            return text
    return repr(value)


def _trajectories(rnn: VanillaRNN, samples: int, batch: int) -> VanillaRNN:
    """One network per trajectory: sample j of W (with its U and b if those are per sample) repeated ``batch``
    times, so that trajectory k = j·batch + i runs sample j on input sequence i."""
    W = rnn.W if rnn.W.dim() == 3 else rnn.W[None]
    U = rnn.U[:samples].repeat_interleave(batch, dim=0) if rnn.U.dim() == 3 else rnn.U
    b = rnn.b[:samples].repeat_interleave(batch, dim=0) if rnn.b.dim() == 2 else rnn.b
    return VanillaRNN(W[:samples].repeat_interleave(batch, dim=0), U, b, rnn.activation)


def _horizon(curve: torch.Tensor, rate: float, log_drop: float) -> tuple[float, str]:
    """(steps, kind) until the log-norm curve (T,) first falls to ``log_drop``; see :class:`AuditRow`."""
    reached = (curve <= log_drop).nonzero()
    if reached.numel():
        return float(reached[0, 0] + 1), "measured"
    if rate < -_RATE_ROUNDING:
        steps = curve.shape[0]
        return float(steps + math.ceil((log_drop - float(curve[-1])) / rate)), "extrapolated"
    return math.inf, "unbounded"


def _verdict(
    regime: str,
    deltas: torch.Tensor,
    gamma_radii: torch.Tensor,
    rate: float,
    horizon: float,
    kind: str,
    dead: torch.Tensor,
) -> str:
    """One sentence: what the bound proves, what was measured, how long gradients carry memory."""
    delta = float(deltas.mean())
    above = int((deltas >= 1 - _DELTA_ROUNDING).sum())
    if regime == "guaranteed vanishing":
        lead = f"vanishing guaranteed: δ = γ‖W‖₂ = {format_against_one(delta)} < 1, so ‖J_t‖₂ ≤ δ^t"
    else:
        if abs(delta - 1) <= 1e-12:
            lead = "δ = γ‖W‖₂ = 1: the bound ‖J_t‖₂ ≤ 1 rules out growth, not vanishing"
        elif above < deltas.numel():
            # samples on both sides of 1: their mean, which may lie below 1, says nothing about the guarantee
            lead = (
                f"the bound does not apply to every sample (δ = γ‖W‖₂ ≥ 1 in {above} of {deltas.numel()}, up to "
                f"{format_against_one(float(deltas.max()))}; mean {format_against_one(delta)})"
            )
        else:
            lead = f"the bound does not apply (δ = γ‖W‖₂ = {format_against_one(delta)} > 1)"
        if float(gamma_radii.mean()) < 1 - _DELTA_ROUNDING:  # ρ = 1 of an orthogonal W may round to just below
            radius = format_against_one(float(gamma_radii.mean()))
            lead += f" although γρ(W) = {radius} < 1: the eigenvalues understate ‖W‖₂"
        lead += f"; measured {regime}"
    if rate == -math.inf:
        # one dead trajectory makes the mean log-norm -inf: say how many there were, not imply all
        where = "on every trajectory" if bool(dead.all()) else f"on {int(dead.sum())} of {dead.numel()} trajectories"
        cause = "W = 0" if float(deltas.max()) == 0 else "σ' = 0 on every unit: dead or saturated units"
        measured = f"the Jacobian became exactly zero {where} ({cause})"
    elif rate < -DEFAULT_RATE_TOL:
        measured = f"rate {rate:+.3g} nats/step (half-life {math.log(2) / -rate:.3g} steps)"
    elif rate > DEFAULT_RATE_TOL:
        measured = f"rate {rate:+.3g} nats/step (doubling every {math.log(2) / rate:.3g} steps)"
    else:
        measured = f"rate {rate:+.2g} nats/step (|rate| ≤ {DEFAULT_RATE_TOL:g}: marginal)"
    memory = (
        "memory unbounded within the horizon"
        if kind == "unbounded"
        else f"memory horizon {horizon:.0f} step{'' if round(horizon) == 1 else 's'}"
        f"{' (extrapolated)' if kind == 'extrapolated' else ''}"
    )
    return f"{lead}; {measured}; {memory}."
