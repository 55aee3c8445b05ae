"""How much does ``rnnstab sweep`` cost over the bare batched matmuls its configurations need?

For two grids — the default grid of ``rnnstab sweep`` and a 200-configuration grid at n = 128, T = 200 (40 values
of δ in 0.5..1.5 × 5 values of γ, one seed, tanh) — this runs the whole sweep (planning, network construction,
batched ``jacobian_norms`` calls, verdicts, ‖W‖₂ and ρ(W), atomic record writes, metadata) into a fresh temporary
directory, then the report, and prints one Markdown table, measured in one run:

* bare: one bare batched-matmul loop of the shape one configuration × seed needs — P of shape (batch, n, n),
  ``torch.matmul(P, Wt, out=buf)`` with a per-network Wt of the same shape (as the sweep's stacked W), T times,
  ping-ponging two buffers (orthogonal W, so nothing under- or overflows); median of 3 after a warm-up;
* sweep: wall time of :func:`rnnstab.run_sweep`, split into the time inside ``jacobian_norms`` and the machinery
  (everything else: planning, building and stacking the networks, verdicts, ‖W‖₂ and ρ(W), records, metadata);
* ratio = sweep ÷ (configurations × seeds × bare), also split into its Jacobian and machinery parts (target for
  the total ≤ 1.3; the Jacobian part is the spectral-norm engine's cost, outside the sweep's control);
* report: wall time of :func:`rnnstab.write_report` (figures, HTML, Markdown, JSON), reported separately.

Run (a few minutes on a 2-core CPU; the machine should be otherwise idle)::

    python benchmarks/sweep_overhead.py            # both grids
    python benchmarks/sweep_overhead.py --quick    # T divided by 4, a smoke test
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass

import torch

import rnnstab

REPEATS = 3
TARGET = 1.3


@dataclass(frozen=True)
class Case:
    name: str
    grid: rnnstab.Grid


@dataclass(frozen=True)
class Row:
    case: Case
    tasks: int
    calls: int
    bare: float
    sweep: float
    jacobian: float
    report: float


def cases(quick: bool) -> list[Case]:
    default = rnnstab.Grid()
    big = rnnstab.Grid.from_strings(
        delta=["0.5:1.5:40"], gamma=["0.5,0.75,1,1.5,2"], hidden=["128"], steps=["200"], seeds=["1"]
    )
    if quick:
        default = rnnstab.Grid.from_strings(steps=[str(default.steps[0] // 4)])
        big = rnnstab.Grid.from_strings(
            delta=["0.5:1.5:40"], gamma=["0.5,0.75,1,1.5,2"], hidden=["128"], steps=["50"], seeds=["1"]
        )
    return [Case("default grid", default), Case("200 configurations, n = 128, T = 200", big)]


def bare_loop(batch: int, n: int, steps: int) -> float:
    """Median seconds of T steps of P ← P·Wᵀ on (batch, n, n) with a per-network W."""
    Wt = rnnstab.init_weights("orthogonal", n, batch=batch, seed=0).mT.contiguous()
    start = torch.eye(n, dtype=torch.float64).expand(batch, n, n).clone()

    def run() -> None:
        P, buf = start.clone(), torch.empty_like(start)
        for _ in range(steps):
            torch.matmul(P, Wt, out=buf)
            P, buf = buf, P

    run()
    times = []
    for _ in range(REPEATS):
        begin = time.perf_counter()
        run()
        times.append(time.perf_counter() - begin)
    return statistics.median(times)


def warm_up() -> None:
    """A tiny sweep and report first: what a process pays once — scipy.optimize, imported by the first γ search of
    a scaled activation (0.2–0.7 s), matplotlib, first kernel calls — is not the machinery of the sweeps timed."""
    grid = rnnstab.Grid(delta=(0.5,), hidden=(8,), steps=(4,), seeds=(0,), batch=2)
    with tempfile.TemporaryDirectory() as out:
        rnnstab.run_sweep(grid, out)
        rnnstab.write_report(out)


def measure(case: Case) -> Row:
    grid = case.grid
    bare = bare_loop(grid.batch, grid.hidden[0], grid.steps[0])
    with tempfile.TemporaryDirectory() as out:
        result = rnnstab.run_sweep(grid, out)
        begin = time.perf_counter()
        rnnstab.write_report(out)
        report = time.perf_counter() - begin
    return Row(case, result.tasks_total, result.chunks, bare, result.seconds_total, result.seconds_jacobian, report)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="divide every horizon T by 4 (smoke test)")
    args = parser.parse_args()
    print(f"rnnstab {rnnstab.__version__}, torch {torch.__version__}, {torch.get_num_threads()} threads, ", end="")
    print(f"{platform.processor() or platform.machine()}, float64, CPU\n")
    print(
        "| grid | configs × seeds | batched calls | bare loop (one config) | sweep | in jacobian_norms | machinery "
        "| ratio total | ratio jacobian | ratio machinery | report |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    warm_up()
    for case in cases(args.quick):
        row = measure(case)
        g = case.grid
        denominator = row.tasks * row.bare
        machinery = row.sweep - row.jacobian
        print(
            f"| {case.name} (n = {g.hidden[0]}, T = {g.steps[0]}, batch {g.batch}) | {row.tasks} | {row.calls} "
            f"| {row.bare * 1e3:.1f} ms | {row.sweep:.2f} s | {row.jacobian:.2f} s | {machinery:.2f} s "
            f"| {row.sweep / denominator:.2f} | {row.jacobian / denominator:.2f} | {machinery / denominator:.3f} "
            f"| {row.report:.2f} s |",
            flush=True,
        )
    print(f"\nratio = sweep ÷ (configurations × seeds × bare loop); target for the total ≤ {TARGET}.")


if __name__ == "__main__":
    main()
