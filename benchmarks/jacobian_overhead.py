"""How much does ``rnnstab.jacobian_norms`` cost over the bare GEMM loop, and how much faster is it than torch.func?

For a vanilla tanh RNN g_t = tanh(W g_{t-1} + U x_t + b) with W Gaussian scaled to ‖W‖₂ = δ = 0.9, U of shape
(n, 4) and inputs x ~ N(0, 1) of shape (B, T, 4), this prints one Markdown table, measured in one run, for
(n=128, T=200, B=16) and (n=512, T=100, B=2), each in float32 and float64. Columns:

* bare: the bare loop of the batched matmuls the library performs, one per step: P (B, n, n),
  ``torch.matmul(P, Wt, out=buf)`` with Wt = Wᵀ contiguous, swapping buffers, T times;
* spectral: ``jacobian_norms(rnn, x, norms=("spectral", "frobenius"))`` and its ratio to bare (target ≤ 1.5);
* frobenius: ``jacobian_norms(rnn, x, norms=("frobenius",))`` and its ratio to bare (target ≤ 1.15);
* Krylov floor: the bare loop plus, at every step, only the thin products (a block of three rows × P, alternately
  P and Pᵀ) that the spectral run's measured number of Krylov blocks needs (one for the start block and two per
  block added, rounded to the nearest whole number of products), over bare: what any per-step block Lanczos with
  that block count must cost at least, before any orthogonalisation, Ritz value or bookkeeping;
* torch.func jacrev: what a user would otherwise write: for each t = 1..T,
  ``J_t = vmap(jacrev(f_t))(g0, x)`` with f_t running the RNN t steps from g0 for one sequence, then
  ``torch.linalg.matrix_norm(J_t, ord=2)``; and its ratio to our spectral time (target ≥ 30). This path costs
  O(T²), so it is timed on k sampled horizons (the centre of every block of 10 steps) and extrapolated to all t
  (see the footnote the script prints);
* torch.func jacfwd: the strongest torch.func alternative, ``vmap(jacfwd(g0 ↦ (g_1, …, g_T)))`` for the whole
  trajectory at once, then ``matrix_norm(·, ord=2)`` for every t; and its ratio to our spectral time.

Timing: ``time.perf_counter``; bare, ours and the Krylov floor are warmed up once, then timed in 5 rounds that run
each once in turn. The seconds shown are medians over the rounds; every ratio is the median over the rounds of the
ratio within a round, so that the machine speeding up or slowing down between rounds (seen: the same bare loop
0.094 s in one run, 0.166 s in another) does not enter the ratios. The torch.func paths are warmed up on a
one-step problem and timed once. The thread count is torch's default.
Subnormal floats are flushed to zero for the whole run: the library's product is renormalised every step and never
goes subnormal, but the unnormalised products of the baselines decay like ρ(W)^t ≈ 0.45^t and would otherwise
time subnormal-arithmetic stalls (float32) instead of GEMM throughput.

A correctness guard compares our log‖J_t‖₂ with the log of torch.func's ``matrix_norm`` at the sampled t in float64
(must agree to < 1e-8 for n=128).

Run (about 1–2 minutes on a 2-core CPU)::

    python benchmarks/jacobian_overhead.py              # the full table on the CPU
    python benchmarks/jacobian_overhead.py --quick      # T divided by 4, a smoke test
    python benchmarks/jacobian_overhead.py --device cuda
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import torch

import rnnstab

CONFIGS = ((128, 200, 16), (512, 100, 2))  # (n, T, B)
DTYPES = (torch.float32, torch.float64)
INPUT_SIZE = 4
DELTA = 0.9
GAMMA = 1.0  # sup|tanh'|
REPEATS = 5
SAMPLE_STRIDE = 10
SPECTRAL_TARGET = 1.5
FROBENIUS_TARGET = 1.15
TORCH_FUNC_TARGET = 30.0
GUARD_TOLERANCE = 1e-8
Result = TypeVar("Result")
GUARD_CONFIG = (128, torch.float64)  # (n, dtype) whose agreement must be within GUARD_TOLERANCE


@dataclass(frozen=True)
class Problem:
    n: int
    steps: int
    batch: int
    dtype: torch.dtype
    device: torch.device
    rnn: rnnstab.VanillaRNN
    x: torch.Tensor
    g0: torch.Tensor


@dataclass(frozen=True)
class Row:
    problem: Problem
    bare: float
    spectral: float
    frobenius: float
    spectral_ratio: float  # median over the rounds of spectral ÷ bare in the same round
    frobenius_ratio: float
    floor_ratio: float  # bare loop + the thin products of the measured Krylov blocks alone, ÷ bare
    krylov_blocks: float  # mean Krylov blocks added per time step in the spectral run
    jacrev_total: float  # extrapolated to every t = 1..T
    jacrev_measured: float  # sum over the sampled horizons
    jacrev_affine: float  # cross-check: least-squares a + c·t over the samples, summed over t = 1..T
    samples: tuple[int, ...]
    jacfwd: float
    gap_jacrev: float  # max |log‖J_t‖₂ ours − torch.func| over the samples and the batch
    underflow_jacrev: int  # entries left out of gap_jacrev: torch.func's J_t near underflow (see log_gap)
    gap_jacfwd: float  # the same over every t, against jacfwd
    underflow_jacfwd: int


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="divide every horizon T by 4 (smoke test)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where to compute (default cpu)")
    return parser.parse_args(argv)


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_once(fn: Callable[[], Result], device: torch.device) -> tuple[float, Result]:
    """Seconds of one call of ``fn`` (synchronised on CUDA), and what it returned."""
    synchronize(device)
    start = time.perf_counter()
    result = fn()
    synchronize(device)
    return time.perf_counter() - start, result


def time_interleaved(
    runs: dict[str, Callable[[], object]], device: torch.device, repeats: int = REPEATS
) -> tuple[dict[str, float], dict[str, float]]:
    """Time every run ``repeats`` times, in rounds that take each once in turn (after one warm-up round).

    Returns (median seconds of each run, median over the rounds of each run's time ÷ the first run's time in the
    same round). A ratio from one round compares timings taken seconds apart, so it does not move when the machine
    speeds up or slows down between rounds, as a ratio of separately taken medians does.
    """
    for run in runs.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            times[name].append(time_once(run, device)[0])
    base = next(iter(runs))
    ratios = {name: statistics.median(t / b for t, b in zip(times[name], times[base], strict=True)) for name in runs}
    return {name: statistics.median(seconds) for name, seconds in times.items()}, ratios


def make_problem(n: int, steps: int, batch: int, dtype: torch.dtype, device: torch.device) -> Problem:
    generator = torch.Generator().manual_seed(n)
    W = rnnstab.scale_to_threshold(rnnstab.init_weights("gaussian", n, seed=n), delta=DELTA, gamma=GAMMA)
    U = torch.randn(n, INPUT_SIZE, generator=generator, dtype=torch.float64) / math.sqrt(INPUT_SIZE)
    b = 0.1 * torch.randn(n, generator=generator, dtype=torch.float64)
    x = torch.randn(batch, steps, INPUT_SIZE, generator=generator, dtype=torch.float64)
    W, U, b, x = (t.to(dtype=dtype, device=device) for t in (W, U, b, x))
    rnn = rnnstab.VanillaRNN(W, U, b, activation="tanh")
    g0 = torch.tanh(torch.zeros(batch, n, dtype=dtype, device=device))  # the library's default h0 = 0
    return Problem(n, steps, batch, dtype, device, rnn, x, g0)


def bare_loop(problem: Problem) -> Callable[[], torch.Tensor]:
    """The library's per-step GEMM alone: P ← P·Wᵀ for T steps on (B, n, n), ping-ponging two buffers."""
    Wt = problem.rnn.W.T.contiguous()
    start = Wt.expand(problem.batch, problem.n, problem.n).clone()

    def run() -> torch.Tensor:
        P, buf = start, torch.empty_like(start)
        for _ in range(problem.steps):
            torch.matmul(P, Wt, out=buf)
            P, buf = buf, P
        return P

    return run


def floor_loop(problem: Problem, products: int) -> Callable[[], torch.Tensor]:
    """The bare loop plus ``products`` thin products (B, 3, n) × P or Pᵀ per step: a per-step block Lanczos's
    floor."""
    Wt = problem.rnn.W.T.contiguous()
    start = Wt.expand(problem.batch, problem.n, problem.n).clone()
    row = torch.ones(problem.batch, 3, problem.n, dtype=problem.dtype, device=problem.device) / problem.n**0.5

    def run() -> torch.Tensor:
        P, buf = start, torch.empty_like(start)
        for _ in range(problem.steps):
            torch.matmul(P, Wt, out=buf)
            P, buf = buf, P
            for i in range(products):
                torch.bmm(row, P if i % 2 else P.mT)
        return P

    return run


def ours(problem: Problem, norms: tuple[str, ...]) -> Callable[[], rnnstab.JacobianTrace]:
    return lambda: rnnstab.jacobian_norms(problem.rnn, problem.x, dtype=problem.dtype, norms=norms)


def rollout(problem: Problem, g0: torch.Tensor, xs: torch.Tensor, steps: int) -> torch.Tensor:
    """g_steps for ONE sequence (g0: (n,), xs: (T, m)), written the way a torch.func user would."""
    W, U, b = problem.rnn.W, problem.rnn.U, problem.rnn.b
    g = g0
    for t in range(steps):
        g = torch.tanh(W @ g + U @ xs[t] + b)
    return g


def trajectory(problem: Problem, g0: torch.Tensor, xs: torch.Tensor, steps: int) -> torch.Tensor:
    """(g_1, …, g_steps) stacked, (steps, n), for ONE sequence."""
    W, U, b = problem.rnn.W, problem.rnn.U, problem.rnn.b
    states = []
    g = g0
    for t in range(steps):
        g = torch.tanh(W @ g + U @ xs[t] + b)
        states.append(g)
    return torch.stack(states)


def jacrev_norm(problem: Problem, steps: int) -> torch.Tensor:
    """‖∂g_t/∂g_0‖₂ at t = ``steps`` for every sequence: vmap(jacrev(f_t)) then matrix_norm, (B,)."""
    jac = torch.func.vmap(torch.func.jacrev(lambda g0, xs: rollout(problem, g0, xs, steps)))(problem.g0, problem.x)
    return torch.linalg.matrix_norm(jac, ord=2)


def jacfwd_norms(problem: Problem, steps: int) -> torch.Tensor:
    """‖∂g_t/∂g_0‖₂ for every t ≤ ``steps`` at once: vmap(jacfwd(trajectory)) then matrix_norm, (B, steps)."""
    jac = torch.func.vmap(torch.func.jacfwd(lambda g0, xs: trajectory(problem, g0, xs, steps)))(problem.g0, problem.x)
    return torch.linalg.matrix_norm(jac, ord=2)


def sampled_horizons(steps: int, stride: int = SAMPLE_STRIDE) -> tuple[int, ...]:
    """The centre of every block of ``stride`` steps in 1..T: 5, 15, …, 195 for T = 200."""
    centres = []
    for low in range(1, steps + 1, stride):
        high = min(steps, low + stride - 1)
        centres.append((low + high) // 2)
    return tuple(centres)


def extrapolate(samples: tuple[int, ...], seconds: list[float], steps: int) -> tuple[float, float]:
    """Total cost over t = 1..T from the sampled costs: (proportional-to-t estimate, affine-fit estimate)."""
    all_t = steps * (steps + 1) / 2
    proportional = sum(seconds) * all_t / sum(samples)
    if len(samples) < 2:
        return proportional, proportional
    t = torch.tensor(samples, dtype=torch.float64)
    y = torch.tensor(seconds, dtype=torch.float64)
    slope = float(((t - t.mean()) * (y - y.mean())).sum() / ((t - t.mean()) ** 2).sum())
    intercept = float(y.mean()) - slope * float(t.mean())
    return proportional, steps * intercept + slope * all_t


def log_gap(ours_log: torch.Tensor, norms: torch.Tensor) -> tuple[float, int]:
    """max |ours − log norms| where torch.func's norm is far from underflow, and how many entries are not.

    Unnormalised float32 Jacobians decay like ρ(W)^t ≈ 0.45^t and reach the subnormal range (flushed to zero
    here) at large t, where their norm is garbage; entries with a norm below √tiny of their dtype (1e-19 in
    float32, 1e-154 in float64) are left out and counted rather than reported as a disagreement.
    """
    floor = math.sqrt(torch.finfo(norms.dtype).tiny)
    norms = norms.to(torch.float64).cpu()
    usable = torch.isfinite(norms) & (norms >= floor)
    gap = (ours_log - torch.log(norms.clamp_min(floor))).abs()
    return float(gap[usable].max()) if bool(usable.any()) else math.nan, int((~usable).sum())


def measure(problem: Problem) -> Row:
    device = problem.device
    trace = ours(problem, ("spectral", "frobenius"))()
    assert trace.log_spectral is not None
    ours_log = trace.log_spectral  # (B, T), float64 on the CPU
    krylov_blocks = float(trace.spectral_iterations.double().mean())
    runs = {
        "bare": bare_loop(problem),
        "spectral": ours(problem, ("spectral", "frobenius")),
        "frobenius": ours(problem, ("frobenius",)),
        "floor": floor_loop(problem, round(1 + 2 * krylov_blocks)),
    }
    seconds_of, ratio_of = time_interleaved(runs, device)

    samples = sampled_horizons(problem.steps)
    jacrev_norm(problem, 1)  # warm-up
    seconds, sampled_norms = [], []
    for t in samples:
        took, norm = time_once(functools.partial(jacrev_norm, problem, t), device)
        seconds.append(took)
        sampled_norms.append(norm)
    jacrev_total, jacrev_affine = extrapolate(samples, seconds, problem.steps)
    columns = [t - 1 for t in samples]
    gap_jacrev, underflow_jacrev = log_gap(ours_log[:, columns], torch.stack(sampled_norms, dim=1))

    jacfwd_norms(problem, 1)  # warm-up
    jacfwd, norms = time_once(lambda: jacfwd_norms(problem, problem.steps), device)
    gap_jacfwd, underflow_jacfwd = log_gap(ours_log, norms)
    return Row(
        problem,
        seconds_of["bare"],
        seconds_of["spectral"],
        seconds_of["frobenius"],
        ratio_of["spectral"],
        ratio_of["frobenius"],
        ratio_of["floor"],
        krylov_blocks,
        jacrev_total,
        sum(seconds),
        jacrev_affine,
        samples,
        jacfwd,
        gap_jacrev,
        underflow_jacrev,
        gap_jacfwd,
        underflow_jacfwd,
    )


def mark(ok: bool) -> str:
    return "✓" if ok else "✗"


def print_header(device: torch.device, quick: bool) -> None:
    print("# rnnstab.jacobian_norms overhead benchmark\n")
    print(f"- torch {torch.__version__}, rnnstab {rnnstab.__version__}, Python {platform.python_version()}")
    print(f"- CPU: {cpu_model()}; torch threads: {torch.get_num_threads()} (torch default, unchanged)")
    if device.type == "cuda":
        print(f"- device: {torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})")
    else:
        print("- device: cpu")
    print(
        f"- tanh RNN, W Gaussian scaled to ‖W‖₂ = {DELTA}, U (n, {INPUT_SIZE}), x ~ N(0, 1) (B, T, {INPUT_SIZE}); "
        f"subnormals flushed to zero; bare/ours: warm-up + {REPEATS} interleaved rounds, ratios within rounds; "
        "torch.func: warm-up + 1 run"
    )
    print(
        f"- load average (1, 5, 15 min) at start: {load_average()} on {os.cpu_count()} CPUs "
        "(other busy processes distort these timings)"
    )
    if quick:
        print("- **--quick**: every T divided by 4 (smoke test, not the reference numbers)")
    print()


def print_table(rows: list[Row], device: torch.device) -> None:
    cuda = device.type == "cuda"
    columns = [
        "n",
        "T",
        "B",
        "dtype",
        "bare [s]",
        "spectral [s]",
        f"spectral/bare (≤ {SPECTRAL_TARGET})",
        "frobenius [s]",
        f"frobenius/bare (≤ {FROBENIUS_TARGET})",
        "Krylov blocks per t",
        "Krylov floor/bare",
        "torch.func jacrev¹ [s]",
        f"jacrev/spectral (≥ {TORCH_FUNC_TARGET:g})",
        "torch.func jacfwd² [s]",
        "jacfwd/spectral",
    ]
    if cuda:
        columns += ["cuBLAS fraction, spectral³", "cuBLAS fraction, frobenius³"]
    print("| " + " | ".join(columns) + " |")
    print("|" + "|".join("---:" for _ in columns) + "|")
    for row in rows:
        p = row.problem
        spectral_ratio, frobenius_ratio = row.spectral_ratio, row.frobenius_ratio
        jacrev_ratio, jacfwd_ratio = row.jacrev_total / row.spectral, row.jacfwd / row.spectral
        cells = [
            str(p.n),
            str(p.steps),
            str(p.batch),
            str(p.dtype).removeprefix("torch."),
            f"{row.bare:.4f}",
            f"{row.spectral:.4f}",
            f"{spectral_ratio:.2f} {mark(spectral_ratio <= SPECTRAL_TARGET)}",
            f"{row.frobenius:.4f}",
            f"{frobenius_ratio:.2f} {mark(frobenius_ratio <= FROBENIUS_TARGET)}",
            f"{row.krylov_blocks:.1f}",
            f"{row.floor_ratio:.2f}",
            f"{row.jacrev_total:.2f}",
            f"{jacrev_ratio:.1f} {mark(jacrev_ratio >= TORCH_FUNC_TARGET)}",  # .1f: 29.9 would print as "30 ✗"
            f"{row.jacfwd:.3f}",
            f"{jacfwd_ratio:.1f}",
        ]
        if cuda:
            cells += [f"{1 / row.spectral_ratio:.2f}", f"{1 / row.frobenius_ratio:.2f}"]
        print("| " + " | ".join(cells) + " |")
    print()


def print_footnotes(rows: list[Row], device: torch.device) -> None:
    print(
        "¹ **Extrapolated**, not measured over every t: vmap(jacrev(f_t)) + matrix_norm(ord=2) costs ∝ t, so it was "
        f"timed once at k sampled horizons, the centre of every block of {SAMPLE_STRIDE} steps "
        "(t = 5, 15, 25, …), and the sum over t = 1..T is estimated as "
        "(measured sum) × (T(T+1)/2) / (Σ sampled t). Cross-check: a least-squares fit a + c·t to the sampled "
        "times, summed over t = 1..T."
    )
    for row in rows:
        p = row.problem
        factor = (p.steps * (p.steps + 1) / 2) / sum(row.samples)
        print(
            f"   - n={p.n}, T={p.steps}, {str(p.dtype).removeprefix('torch.')}: k = {len(row.samples)} horizons "
            f"({row.samples[0]}…{row.samples[-1]}), measured {row.jacrev_measured:.2f} s × {factor:.2f} "
            f"= {row.jacrev_total:.2f} s (affine fit: {row.jacrev_affine:.2f} s)"
        )
    print(
        "\n² Measured over all t at once: vmap(jacfwd(g0 ↦ (g_1, …, g_T))) then matrix_norm(ord=2) of every J_t "
        "(the strongest torch.func alternative; it holds all T Jacobians, B·T·n² numbers)."
    )
    print(
        "\nKrylov floor/bare: the bare loop plus only the thin products (three rows × P or Pᵀ) of the measured "
        "Krylov blocks — one for the start block, two per block added — over bare: a lower bound for any per-step "
        "block Lanczos that needs that many blocks."
    )
    if device.type == "cuda":
        print("\n³ bare time / ours: the fraction of the bare cuBLAS batched-matmul throughput that we reach.")
    print()


def gap_cell(gap: float, underflowed: int) -> str:
    return f"{gap:.2e}" + (f" ({underflowed} near underflow, left out)" if underflowed else "")


def print_guard(rows: list[Row]) -> bool:
    """Print the agreement with torch.func; return False if the guarded configuration misses the tolerance."""
    print("## Correctness: max |log‖J_t‖₂ (ours) − log matrix_norm(J_t, ord=2) (torch.func)| over the batch\n")
    print("| n | T | dtype | vs jacrev, sampled t | vs jacfwd, every t | guard |")
    print("|---:|---:|---|---:|---:|---|")
    ok = True
    for row in rows:
        p = row.problem
        guarded = (p.n, p.dtype) == GUARD_CONFIG
        passed = row.gap_jacrev < GUARD_TOLERANCE and row.underflow_jacrev == 0  # NaN compares False
        if guarded:
            ok = ok and passed
        guard = f"< {GUARD_TOLERANCE:g}: {'PASS' if passed else 'FAIL'}" if guarded else "informative"
        cells = [
            str(p.n),
            str(p.steps),
            str(p.dtype).removeprefix("torch."),
            gap_cell(row.gap_jacrev, row.underflow_jacrev),
            gap_cell(row.gap_jacfwd, row.underflow_jacfwd),
            guard,
        ]
        print("| " + " | ".join(cells) + " |")
    print(
        "\nfloat32 rows are informative only: float32 rounding alone allows up to 16·√n·ε·(t+1) "
        "(JacobianTrace.float_tolerance), and torch.func's unnormalised J_t (‖J_t‖ ~ 0.45^t) underflows at large t "
        "(norms below √tiny are left out), where the renormalised product does not."
    )
    return ok


def busy_cpu_seconds() -> float | None:
    """CPU seconds every process on the machine has spent busy since boot (/proc/stat), or None off Linux."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def load_average() -> str:
    try:
        return ", ".join(f"{load:.2f}" for load in os.getloadavg())
    except OSError:
        return "n/a"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda was requested but CUDA is not available here", file=sys.stderr)
        return 2
    device = torch.device(args.device)
    flushed = torch.set_flush_denormal(True)
    print_header(device, args.quick)
    if not flushed:
        print("(note: this CPU cannot flush subnormals to zero; float32 baselines may include subnormal stalls)\n")
    rows = []
    busy_before, own_before = busy_cpu_seconds(), time.process_time()
    begin = time.perf_counter()
    for n, steps, batch in CONFIGS:
        steps = max(1, steps // 4) if args.quick else steps
        for dtype in DTYPES:
            rows.append(measure(make_problem(n, steps, batch, dtype, device)))
            print(
                f"[{time.perf_counter() - begin:6.1f} s] done n={n} T={steps} B={batch} {dtype}",
                file=sys.stderr,
                flush=True,
            )
    torch.set_flush_denormal(False)
    print_table(rows, device)
    print_footnotes(rows, device)
    ok = print_guard(rows)
    wall = time.perf_counter() - begin
    print(f"\nTotal wall time: {wall:.0f} s; load average at the end: {load_average()}")
    busy_after = busy_cpu_seconds()
    if busy_before is not None and busy_after is not None:
        others = max(0.0, (busy_after - busy_before) - (time.process_time() - own_before))
        print(
            f"CPU time used by other processes during the run: {others:.0f} s of {wall * (os.cpu_count() or 1):.0f} "
            "CPU-seconds available (near 0 means the timings were not disturbed)"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
