"""Optimizers as explicit update rules (SGD, momentum, the running average, Adam), and the identities they obey:
momentum and the running average (EMA) are the same update, the EMA's unrolled weights, and its bias (Adam's
correction).

The rules, for a gradient g_t at step t = 1, 2, … and a rate ``lr``:

- ``sgd``: θ ← θ − lr·g_t.
- ``momentum``: v_t = α v_{t-1} + lr·g_t, θ ← θ − v_t (lr is ε; torch.optim.SGD's buffer is v_t/lr).
- ``ema``: u_t = β u_{t-1} + (1−β) g_t, θ ← θ − lr·u_t (lr is δ; ≡ momentum with ε = δ(1−β)).
- ``adam``: m_t = β₁ m_{t-1} + (1−β₁) g_t, v_t = β₂ v_{t-1} + (1−β₂) g_t², m̂ = m_t/(1−β₁^t),
  v̂ = v_t/(1−β₂^t), θ ← θ − lr·m̂/(√v̂ + ε); without bias correction m̂ = m_t and v̂ = v_t.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import torch

from rnnstab import _checks
from rnnstab._identity import IdentityCheck, eps, problem, rnn_loss, unit_interval, verdict
from rnnstab.exceptions import ArgumentTypeError, InvalidArgumentError

OPTIMIZERS = ("sgd", "momentum", "ema", "adam")
#: the coefficients of :func:`make_optimizer` that each rule reads; it has no use for the others.
COEFFICIENTS: dict[str, tuple[str, ...]] = {
    "sgd": (),
    "momentum": ("momentum",),
    "ema": ("momentum",),
    "adam": ("momentum", "beta2", "bias_correction"),
}


class Optimizer:
    """An explicit update rule over a fixed list of parameters (see the module docstring for the rules).

    ``step(grads)`` advances t by one and updates every parameter in place, outside autograd.

    Attributes:
        params: the tensors updated in place.
        lr: the rate (ε for momentum, δ for the running average).
        t: the number of steps taken.
    """

    name = "sgd"

    def __init__(self, params: Sequence[torch.Tensor], *, lr: float) -> None:
        # torch.optim takes a lone tensor for an iterable too, and then updates its rows one by one
        if isinstance(params, torch.Tensor) or not isinstance(params, Iterable):  # type: ignore[unreachable]
            raise ArgumentTypeError(f"params must be a list of tensors, got {type(params).__name__}")
        self.params = list(params)
        for i, param in enumerate(self.params):
            if not isinstance(param, torch.Tensor):
                raise ArgumentTypeError(f"params[{i}] must be a torch.Tensor, got {type(param).__name__}")
        self.lr = _checks.positive_float("lr", lr)
        self.t = 0

    def step(self, grads: Sequence[torch.Tensor]) -> None:
        """Apply one update θ ← θ − Δθ with Δθ from :meth:`delta`, for each parameter and its gradient."""
        self.t += 1
        with torch.no_grad():
            for i, (param, grad) in enumerate(zip(self.params, grads, strict=True)):
                param -= self.delta(i, grad)

    def delta(self, i: int, grad: torch.Tensor) -> torch.Tensor:
        """The step Δθ of parameter ``i`` given its gradient (updating the rule's state)."""
        return self.lr * grad


class Momentum(Optimizer):
    """v_t = α v_{t-1} + lr·g_t, θ ← θ − v_t."""

    name = "momentum"

    def __init__(self, params: Sequence[torch.Tensor], *, lr: float, alpha: float) -> None:
        super().__init__(params, lr=lr)
        self.alpha = unit_interval("momentum", alpha)
        self.velocity = [torch.zeros_like(p) for p in self.params]

    def delta(self, i: int, grad: torch.Tensor) -> torch.Tensor:
        self.velocity[i] = self.alpha * self.velocity[i] + self.lr * grad
        return self.velocity[i]


class RunningAverage(Optimizer):
    """u_t = β u_{t-1} + (1−β) g_t, θ ← θ − lr·u_t (no bias correction: u_t is biased towards 0 early on)."""

    name = "ema"

    def __init__(self, params: Sequence[torch.Tensor], *, lr: float, beta: float) -> None:
        super().__init__(params, lr=lr)
        self.beta = unit_interval("beta", beta)
        self.average = [torch.zeros_like(p) for p in self.params]

    def delta(self, i: int, grad: torch.Tensor) -> torch.Tensor:
        self.average[i] = self.beta * self.average[i] + (1 - self.beta) * grad
        return self.lr * self.average[i]


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015), with or without the bias correction 1/(1−β^t) of both moments."""

    name = "adam"

    def __init__(
        self,
        params: Sequence[torch.Tensor],
        *,
        lr: float,
        beta1: float,
        beta2: float,
        bias_correction: bool = True,
        eps: float = 1e-8,
    ) -> None:
        super().__init__(params, lr=lr)
        self.beta1, self.beta2 = unit_interval("beta", beta1), unit_interval("beta2", beta2)
        self.bias_correction = _checks.boolean("bias_correction", bias_correction)
        self.eps = _checks.positive_float("eps", eps)
        self.first = [torch.zeros_like(p) for p in self.params]
        self.second = [torch.zeros_like(p) for p in self.params]

    def moments(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(m̂_t, v̂_t) of parameter ``i`` after step t: the moments divided by 1 − β^t, or raw without correction."""
        m, v = self.first[i], self.second[i]
        if self.bias_correction:
            return m / (1 - self.beta1**self.t), v / (1 - self.beta2**self.t)
        return m, v

    def delta(self, i: int, grad: torch.Tensor) -> torch.Tensor:
        self.first[i] = self.beta1 * self.first[i] + (1 - self.beta1) * grad
        self.second[i] = self.beta2 * self.second[i] + (1 - self.beta2) * grad * grad
        m, v = self.moments(i)
        return self.lr * m / (v.sqrt() + self.eps)


def make_optimizer(
    name: str,
    params: Sequence[torch.Tensor],
    *,
    lr: float,
    momentum: float = 0.9,
    beta2: float = 0.999,
    bias_correction: bool = True,
) -> Optimizer:
    """The optimizer ``name`` (one of :data:`OPTIMIZERS`) over ``params``.

    Args:
        name: ``sgd``, ``momentum``, ``ema`` or ``adam``.
        params: the tensors to update in place.
        lr: the rate, > 0 (ε for momentum, δ for ema).
        momentum: α for momentum, β for ema, β₁ for adam; in (0, 1). Unused by sgd.
        beta2: β₂ for adam, in (0, 1).
        bias_correction: adam only; False drops the 1/(1−β^t) factors.

    Returns:
        An :class:`Optimizer`.

    Raises:
        InvalidArgumentError: an unknown name, lr ≤ 0, a coefficient outside (0, 1), or bias_correction=False with
            an optimizer other than adam.
        ArgumentTypeError: bias_correction not a bool.

    Example:
        >>> theta = torch.zeros(2, dtype=torch.float64)
        >>> opt = make_optimizer("momentum", [theta], lr=0.1, momentum=0.5)
        >>> for _ in range(2):
        ...     opt.step([torch.ones(2, dtype=torch.float64)])
        >>> theta.tolist()  # v₁ = 0.1, v₂ = 0.5·0.1 + 0.1 = 0.15
        [-0.25, -0.25]
    """
    if name not in OPTIMIZERS:
        # named as train() and the CLI know the argument, so that the CLI names its option (--optimizer)
        raise InvalidArgumentError(f"optimizer: unknown optimizer {name!r}; valid names: {', '.join(OPTIMIZERS)}")
    if not _checks.boolean("bias_correction", bias_correction) and "bias_correction" not in COEFFICIENTS[name]:
        raise InvalidArgumentError(f"bias_correction: can only be turned off for adam, not {name}")
    if "momentum" in COEFFICIENTS[name]:  # checked here so that the error names this argument, not the optimizer's
        momentum = unit_interval("momentum", momentum)
    if name == "momentum":
        return Momentum(params, lr=lr, alpha=momentum)
    if name == "ema":
        return RunningAverage(params, lr=lr, beta=momentum)
    if name == "adam":
        return Adam(params, lr=lr, beta1=momentum, beta2=beta2, bias_correction=bias_correction)
    return Optimizer(params, lr=lr)


def check_momentum_ema(
    *,
    alpha: float = 0.9,
    epsilon: float = 0.01,
    beta: float = 0.9,
    delta: float = 0.1,
    steps: int = 20,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> IdentityCheck:
    """Momentum and the running-average (EMA) rule give the same parameter trajectory when α = β, ε = δ(1−β).

    Momentum: v_t = α v_{t-1} + ε g_t, θ_t = θ_{t-1} − v_t. EMA: u_t = β u_{t-1} + (1−β) g_t, θ_t = θ_{t-1} − δ u_t.
    With α = β and ε = δ(1−β), v_t = δ u_t for every t by induction, so the two trajectories coincide. The two rules
    are :class:`Momentum` and :class:`RunningAverage`, as ``rnnstab train`` uses them; they train the same tanh RNN on
    the same batch for ``steps`` steps from the same start, with autograd gradients.

    Args:
        alpha: momentum coefficient, in (0, 1).
        epsilon: momentum learning rate, > 0.
        beta: running-average coefficient, in (0, 1).
        delta: running-average learning rate, > 0.
        steps: number of training steps.
        seed: seed of the network and the data.
        dtype: torch.float64 or torch.float32.

    Tolerance: ``steps`` · eps · (1 + max |θ|), one rounding unit (eps of the dtype) of the largest parameter per
    step. Each step rounds θ − Δθ in both trajectories (half an ulp of |θ| each) and the two updates αv + εg and
    δ(βu + (1−β)g) differ by a few ulps of |Δθ| ≪ |θ|; these errors add up over the steps, and the gradient feedback
    between the trajectories is negligible at these small rates. Measured over seeds 0–99 the gap stays below
    5 % of the tolerance in float64 and float32, while ε off by 0.1 % (a gap ≈ 0.1 % of the distance travelled)
    exceeds it at least 20-fold in float32 and 10¹⁰-fold in float64.

    Returns:
        An :class:`IdentityCheck`; discrepancy = max over steps and parameters of |θ_t^momentum − θ_t^EMA|.

    Raises:
        InvalidArgumentError: a rate ≤ 0, α or β outside (0, 1), steps < 1, or a seed outside [0, 2^63 − 1].
        ArgumentTypeError: a seed that is not an integer.

    Example:
        >>> check_momentum_ema(alpha=0.9, epsilon=0.01, beta=0.9, delta=0.1).passed
        True
        >>> check_momentum_ema(alpha=0.9, epsilon=0.02, beta=0.9, delta=0.1).passed
        False
    """
    alpha, beta = unit_interval("alpha", alpha), unit_interval("beta", beta)
    epsilon, delta = _checks.positive_float("epsilon", epsilon), _checks.positive_float("delta", delta)
    steps = _checks.positive_int("steps", steps)
    dtype = _checks.dtype("dtype", dtype)
    start, x, y = problem(seed, dtype)

    def train(rule: Callable[[list[torch.Tensor]], Optimizer]) -> torch.Tensor:
        theta = [p.clone().requires_grad_(True) for p in start]
        optimizer, path = rule(theta), []
        for _ in range(steps):
            optimizer.step(torch.autograd.grad(rnn_loss(theta, x, y), theta))
            path.append(torch.cat([p.detach().flatten() for p in theta]))
        return torch.stack(path)

    momentum = train(lambda theta: Momentum(theta, lr=epsilon, alpha=alpha))
    ema = train(lambda theta: RunningAverage(theta, lr=delta, beta=beta))
    gap = float((momentum - ema).abs().max())
    moved = float((momentum[-1] - torch.cat([p.flatten() for p in start])).abs().max())
    scale = 1.0 + float(momentum.abs().max())
    return verdict(
        "momentum-ema",
        "momentum (v=αv+εg, Δθ=−v) ≡ running average (v=βv+(1−β)g, Δθ=−δv) when α=β, ε=δ(1−β)",
        gap,
        steps * eps(dtype) * scale,
        unit="max |θ_t^momentum − θ_t^EMA| over steps and parameters",
        tolerance_reason="steps × eps × (1 + max |θ|): each step rounds θ − Δθ by ≤ ½ ulp of |θ| in each trajectory",
        alpha=alpha,
        epsilon=epsilon,
        beta=beta,
        delta=delta,
        epsilon_minus_delta_one_minus_beta=epsilon - delta * (1 - beta),
        steps=steps,
        max_parameter_change=moved,
    )


def check_ema_unrolled(
    *, beta: float = 0.9, steps: int = 10, seed: int = 0, dtype: torch.dtype = torch.float64
) -> IdentityCheck:
    """The running average v_t = β v_{t-1} + (1−β) g_t, v_0 = 0, equals Σ_{i=1..t} (1−β) β^{t−i} g_i.

    v_t is the state of :class:`RunningAverage` (the ``ema`` rule of ``rnnstab train``) after t steps.

    The weights (1−β)β^{t−i} are reported (oldest first); they sum to 1 − β^t, not 1 — the source of the bias.

    Args:
        beta: running-average coefficient, in (0, 1).
        steps: t, the number of averaged gradients.
        seed: seed of the random problem.
        dtype: torch.float64 or torch.float32 (or their names).

    Returns:
        An :class:`IdentityCheck`; discrepancy = max |v_t − Σ weights·g_i|, tolerance 2 · steps · eps · max |g_i|:
        both sides stay below max |g_i| in size, and each step of either (a multiply-add, or one weighted term of
        the sum) rounds by at most one ulp of that. Over seeds 0–99 the gap stays below 2 % of the tolerance.

    Raises:
        InvalidArgumentError: β outside (0, 1), steps < 1, an unsupported dtype, or a seed outside [0, 2^63 − 1].
        ArgumentTypeError: a seed that is not an integer.

    Example:
        >>> c = check_ema_unrolled(beta=0.5, steps=3)
        >>> c.passed, c.details["weights"]
        (True, [0.125, 0.25, 0.5])
    """
    beta = unit_interval("beta", beta)
    steps = _checks.positive_int("steps", steps)
    dtype = _checks.dtype("dtype", dtype)
    gen = _checks.generator(seed)
    g = torch.randn(steps, 6, generator=gen, dtype=torch.float64).to(dtype)
    ema = RunningAverage([torch.zeros(6, dtype=dtype)], lr=1.0, beta=beta)
    for t in range(steps):
        ema.step([g[t]])
    v = ema.average[0]
    weights = (1 - beta) * beta ** torch.arange(steps - 1, -1, -1, dtype=torch.float64)
    unrolled = (weights.to(dtype)[:, None] * g).sum(0)
    return verdict(
        "ema-unrolled",
        "v_t = Σ_i (1−β) β^(t−i) g_i (running average unrolled)",
        float((v - unrolled).abs().max()),
        2 * steps * eps(dtype) * float(g.abs().max()),
        unit="max |v_t − Σ weights·g_i|",
        tolerance_reason="2 × steps × eps × max |g_i|: each step of either side rounds by ≤ 1 ulp of max |g_i|",
        beta=beta,
        weights=weights.tolist(),
        weights_sum=float(weights.sum()),
        one_minus_beta_t=1 - beta**steps,
    )


def check_ema_bias(
    *,
    beta: float = 0.9,
    steps: int = 10,
    samples: int = 100_000,
    mean: float = 1.0,
    z: float = 4.0,
    bias_correction: bool = True,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> IdentityCheck:
    """Monte-Carlo check that E[v_t] = (1−β^t) E[g] and that v_t / (1−β^t) is unbiased (Adam's bias correction).

    Draws ``samples`` independent sequences g_1..g_t ~ N(mean, 1) and feeds them to :class:`Adam` with β₁ = β: its
    first moment is the running average v_t (from v_0 = 0), and its corrected first moment m̂_t is the v_t/(1−β^t)
    that Adam steps with. Builds ``z``-standard-error confidence intervals for E[v_t] and E[m̂_t]. The check passes
    when (1−β^t)·mean lies in the first interval and mean lies in the second. With ``bias_correction=False`` Adam's
    m̂_t is the raw v_t, so the second claim is made about v_t — a false claim, which the check reports as a failure.

    Returns:
        An :class:`IdentityCheck`; discrepancy = the larger |estimate − claim| in units of its standard error,
        tolerance = ``z``.

    Args:
        beta: running-average coefficient, in (0, 1).
        steps: t.
        samples: number of Monte-Carlo sequences, ≥ 2 (a standard error needs two).
        mean: E[g], finite.
        z: half-width of the confidence intervals in standard errors (4: a false alarm about once in 16 000).
        bias_correction: divide by 1 − β^t before the unbiasedness claim (False makes a false claim).
        seed: seed of the random problem.
        dtype: torch.float64 or torch.float32 (or their names).

    Raises:
        InvalidArgumentError: β outside (0, 1), steps < 1, samples < 2, a non-finite mean, z ≤ 0, an unsupported
            dtype, or a seed outside [0, 2^63 − 1].
        ArgumentTypeError: a seed that is not an integer, or bias_correction not a bool.

    Example:
        >>> check_ema_bias().passed, check_ema_bias(bias_correction=False).passed
        (True, False)
    """
    beta = unit_interval("beta", beta)
    steps, samples = _checks.positive_int("steps", steps), _checks.positive_int("samples", samples)
    if samples < 2:
        raise InvalidArgumentError(f"samples must be ≥ 2 to estimate a standard error, got {samples}")
    mean = _checks.real("mean", mean)
    if not math.isfinite(mean):
        raise InvalidArgumentError(f"mean must be a finite number, got {mean}")
    z = _checks.positive_float("z", z)
    bias_correction = _checks.boolean("bias_correction", bias_correction)
    dtype = _checks.dtype("dtype", dtype)
    gen = _checks.generator(seed)
    g = (mean + torch.randn(samples, steps, generator=gen, dtype=torch.float64)).to(dtype)
    # only the first moment is read: lr and β₂ play no part
    adam = Adam([torch.zeros(samples, dtype=dtype)], lr=1.0, beta1=beta, beta2=beta, bias_correction=bias_correction)
    for t in range(steps):
        adam.step([g[:, t]])
    v, corrected = adam.first[0], adam.moments(0)[0]
    scores, intervals = [], []
    for values, claim in ((v, (1 - beta**steps) * mean), (corrected, mean)):
        values64 = values.double()
        est, se = float(values64.mean()), float(values64.std() / samples**0.5)
        scores.append(abs(est - claim) / se)
        intervals.append({"estimate": est, "ci": [est - z * se, est + z * se], "claim": claim})
    return verdict(
        "ema-bias",
        "E[v_t] = (1−β^t) E[g], and Adam's corrected v_t/(1−β^t) is unbiased (Monte Carlo)",
        max(scores),
        z,
        unit="standard errors between the Monte-Carlo estimate and the claimed mean",
        tolerance_reason=f"a {z}-standard-error confidence interval",
        beta=beta,
        steps=steps,
        samples=samples,
        bias_correction=bias_correction,
        raw=intervals[0],
        corrected=intervals[1],
    )
