"""How much cheaper are the top k Lyapunov exponents than the full spectrum, and what does the QR interval buy?

For a vanilla tanh RNN g_t = tanh(W g_{t-1} + U x_t) with W_ij ~ N(0, g²/n), g = 1 (the edge of chaos), U of shape
(n, 4) with N(0, 1/4) entries, inputs x ~ N(0, 1) and h_0 ~ N(0, 1), one trajectory, this times
:func:`rnnstab.lyapunov_spectrum` in one run and prints a Markdown table (``--weights orthogonal --input-scale 0.1``:
W Haar orthogonal and small inputs instead, a narrow spectrum where the QR interval can grow):

* full spectrum (k = n) with the automatic QR interval, and with QR every step;
* top 32 exponents (k = 32) with the automatic interval, and with QR every step;
* the ratios top-32 ÷ full (automatic interval; target ≤ 0.1) and every-step ÷ automatic (the speed-up the interval
  rule buys), and the largest difference between the every-step and automatic exponents (target ≤ 1e-6 in
  float64), and between the top 32 and the first 32 of the full spectrum.

Timing: ``time.perf_counter`` after a 20-step warm-up run of each shape; median of 2 repetitions for the full
spectrum (tens of seconds each), of 3 for the top k, the automatic and every-step runs interleaved so that a change
in the machine's load hits both. The thread count is torch's default.

Run::

    python benchmarks/lyapunov_speed.py                     # n = 1024, T = 500 (a few minutes on 2 cores)
    python benchmarks/lyapunov_speed.py --hidden 256 --steps 200   # scaled down
    python benchmarks/lyapunov_speed.py --weights orthogonal --input-scale 0.1   # a narrow spectrum
    python benchmarks/lyapunov_speed.py --device cuda
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import time
from collections.abc import Callable

import torch

import rnnstab

INPUT_SIZE = 4
GAIN = 1.0
TOP = 32
REPEATS = 3
FULL_REPEATS = 2
RATIO_TARGET = 0.1
AGREEMENT_TARGET = 1e-6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--top", type=int, default=TOP)
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--weights", choices=("gaussian", "orthogonal"), default="gaussian")
    parser.add_argument("--input-scale", type=float, default=1.0)
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)
    device = torch.device(args.device)
    n, steps = args.hidden, args.steps

    generator = torch.Generator().manual_seed(0)
    if args.weights == "gaussian":
        W = GAIN * torch.randn(n, n, generator=generator, dtype=torch.float64) / math.sqrt(n)
    else:
        W = GAIN * rnnstab.init_weights("orthogonal", n, seed=0)
    U = torch.randn(n, INPUT_SIZE, generator=generator, dtype=torch.float64) / math.sqrt(INPUT_SIZE)
    x = args.input_scale * torch.randn(1, steps, INPUT_SIZE, generator=generator, dtype=torch.float64)
    h0 = torch.randn(1, n, generator=generator, dtype=torch.float64)
    rnn = rnnstab.VanillaRNN(W, U, None, "tanh").to(dtype=dtype, device=device)

    def run(k: int | None, qr_every: int | str) -> rnnstab.LyapunovSpectrum:
        return rnnstab.lyapunov_spectrum(rnn, x, k=k, qr_every=qr_every, h0=h0, dtype=dtype)

    for k in (None, args.top):  # warm-up of each shape: allocator, BLAS/LAPACK workspaces and threads
        rnnstab.lyapunov_spectrum(rnn, x[:, :20], k=k, qr_every=1, h0=h0, dtype=dtype)

    (full_auto, t_full_auto), (full_every, t_full_every) = _interleaved(
        lambda: run(None, "auto"), lambda: run(None, 1), FULL_REPEATS
    )
    (top_auto, t_top_auto), (top_every, t_top_every) = _interleaved(
        lambda: run(args.top, "auto"), lambda: run(args.top, 1), REPEATS
    )

    ratio = t_top_auto / t_full_auto
    agreement_full = float((full_every.exponents - full_auto.exponents).abs().max())
    agreement_top = float((top_every.exponents - top_auto.exponents).abs().max())
    # Compare in frame (Benettin) order: after sorting, a full spectrum's top k can take in an estimate from beyond
    # column k where finite-time estimates of nearby exponents cross.
    top_vs_full = float((top_auto.in_frame_order() - full_auto.in_frame_order()[:, : args.top]).abs().max())

    print(f"# Lyapunov speed: n = {n}, T = {steps}, {args.dtype}, {device}")
    print()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}; "
        f"tanh RNN, W {'with i.i.d. N(0, 1/n) entries' if args.weights == 'gaussian' else 'Haar orthogonal'}, "
        f"inputs × {args.input_scale:g}, one trajectory, warm-up T/10"
    )
    print()
    print("| run | QR interval | QRs (rejected intervals) | largest log-spread | time (s) |")
    print("|---|---|---|---|---|")
    for label, result, seconds in (
        (f"full spectrum (k = {n})", full_auto, t_full_auto),
        (f"full spectrum (k = {n})", full_every, t_full_every),
        (f"top {args.top}", top_auto, t_top_auto),
        (f"top {args.top}", top_every, t_top_every),
    ):
        print(
            f"| {label} | {result.qr_every} | {result.qr_count} ({result.rejected_intervals}) | "
            f"{result.max_log_spread:.3g} (limit {result.log_spread_limit:.3g}) | {seconds:.3f} |"
        )
    print()
    print("| measure | value | target |")
    print("|---|---|---|")
    print(f"| top-{args.top} ÷ full time (auto) | {ratio:.4f} | ≤ {RATIO_TARGET} ({_verdict(ratio <= RATIO_TARGET)}) |")
    print(f"| every-step ÷ auto time, full spectrum | {t_full_every / t_full_auto:.2f} | speed-up |")
    print(f"| every-step ÷ auto time, top {args.top} | {t_top_every / t_top_auto:.2f} | speed-up |")
    for label, agreement in (("full", agreement_full), (f"top {args.top}", agreement_top)):
        # The 1e-6 target is for float64; float32 rounding alone is ~1e-6 per exponent.
        met = _verdict(agreement <= AGREEMENT_TARGET)
        target = f"≤ {AGREEMENT_TARGET:g} ({met})" if dtype == torch.float64 else "—"
        print(f"| max |λ(every) − λ(auto)|, {label} | {agreement:.2e} | {target} |")
    print(f"| max |top-{args.top} − full[:{args.top}]|, frame order | {top_vs_full:.2e} | rounding |")
    if full_auto.sum_rule_residual is not None:
        print(f"| sum-rule residual (auto) | {float(full_auto.sum_rule_residual.abs().max()):.2e} | rounding |")
    print(
        f"| λ₁, λ_{args.top}, λ_n (auto) | {float(full_auto.exponents[0, 0]):.5f}, "
        f"{float(full_auto.exponents[0, args.top - 1]):.5f}, {float(full_auto.exponents[0, -1]):.5f} | nats/step |"
    )


Timed = tuple[rnnstab.LyapunovSpectrum, float]


def _interleaved(
    first: Callable[[], rnnstab.LyapunovSpectrum], second: Callable[[], rnnstab.LyapunovSpectrum], repeats: int
) -> tuple[Timed, Timed]:
    """Run first, second, first, second, …; return each one's last result and median time."""
    runs: list[list[float]] = [[], []]
    results: list[rnnstab.LyapunovSpectrum] = []
    for _ in range(repeats):
        results = []
        for times, run in zip(runs, (first, second), strict=True):
            start = time.perf_counter()
            results.append(run())
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    return (results[0], statistics.median(runs[0])), (results[1], statistics.median(runs[1]))


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


if __name__ == "__main__":
    main()
