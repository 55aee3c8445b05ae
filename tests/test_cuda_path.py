"""The CUDA code path, run on the CPU under an emulation that enforces CUDA's device rules (tests/fake_cuda.py).

No GPU is needed: every tensor the library places on "cuda" is a CPU tensor marked as a CUDA one, and any operation
that real CUDA would refuse (CPU and CUDA operands mixed, a CUDA tensor read into numpy, a CPU tensor indexed by a
CUDA one) raises. The same CPU kernels run, so every number must equal the CPU run's bit for bit, and what the
library returns must be where its docstrings say (on the CPU). What this cannot show: CUDA's own kernels, numerics
and speed, which need a GPU (``benchmarks/jacobian_overhead.py --device cuda``).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
from fake_cuda import DeviceMismatch, fake_cuda, on_cuda
from typer.testing import CliRunner

import rnnstab
from rnnstab._coupling import Coupling
from rnnstab.cli import app

runner = CliRunner()

# --- the emulation itself must catch what CUDA refuses, and let through what CUDA allows

REFUSED = {
    "CPU and CUDA operands": lambda: torch.ones(3, device="cuda") + torch.ones(3),
    "a 0-dim CUDA operand of a CPU operation": lambda: torch.ones(3) + torch.tensor(1.0, device="cuda"),
    "a CPU tensor indexed by a CUDA one": lambda: torch.ones(3)[torch.tensor([0], device="cuda")],
    "a CPU value index-assigned into CUDA": lambda: torch.zeros(3, device="cuda").__setitem__(
        torch.tensor([0, 1]), torch.ones(2)
    ),
    "numpy of a CUDA tensor": lambda: torch.ones(3, device="cuda").numpy(),
    "a CPU out= tensor": lambda: torch.matmul(
        torch.ones(2, 2, device="cuda"), torch.ones(2, 2, device="cuda"), out=torch.empty(2, 2)
    ),
    "moved by .to, then mixed": lambda: torch.ones(3).to(torch.device("cuda")) + torch.ones(3),
    "placed by another tensor's device": lambda: (
        torch.zeros(3, device=torch.ones(1, device="cuda").device) + torch.ones(3)
    ),
    "a CPU generator on CUDA": lambda: torch.randn(3, device="cuda", generator=torch.Generator()),
    "a list of mixed tensors": lambda: torch.stack([torch.ones(3, device="cuda"), torch.ones(3)]),
}

ALLOWED = {
    "a 0-dim CPU operand of a CUDA operation": lambda: torch.ones(3, device="cuda") + torch.tensor(1.0),
    "a CUDA tensor indexed by a CPU one": lambda: torch.ones(3, device="cuda")[torch.tensor([0])],
    "a slice assigned from the CPU": lambda: torch.zeros(3, device="cuda").__setitem__(slice(0, 2), torch.ones(2)),
    "copy_ across devices": lambda: torch.zeros(3, device="cuda").copy_(torch.ones(3)),
    "moved to the CPU, then numpy": lambda: torch.ones(3, device="cuda").cpu().numpy(),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_the_emulation_refuses_what_cuda_refuses(case, monkeypatch):
    with fake_cuda(monkeypatch), pytest.raises(DeviceMismatch):
        REFUSED[case]()


@pytest.mark.parametrize("case", list(ALLOWED))
def test_the_emulation_allows_what_cuda_allows(case, monkeypatch):
    with fake_cuda(monkeypatch):
        ALLOWED[case]()


def test_the_emulation_places_and_moves_tensors(monkeypatch):
    with fake_cuda(monkeypatch):
        x = torch.ones(2, 3, device="cuda")
        assert x.device == torch.device("cuda", 0) and x.is_cuda
        assert on_cuda(x.mT @ x) and on_cuda(torch.zeros_like(x)) and on_cuda(x.sum())
        assert not on_cuda(x.cpu()) and on_cuda(x) and not on_cuda(x.to("cpu"))
        module = torch.nn.Linear(3, 2).to(device="cuda")
        assert all(on_cuda(p) for p in module.parameters())


# --- the library on "cuda"


def _network(batched: bool, *, activation: str = "tanh", delta: float = 0.9, bias: float = 0.0, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    n = 20
    W = torch.randn(*((3,) if batched else ()), n, n, generator=g, dtype=torch.float64)
    W = rnnstab.scale_to_threshold(W, delta=delta, gamma=rnnstab.get_activation(activation).gamma)
    U = torch.randn(n, 2, generator=g, dtype=torch.float64)
    rnn = rnnstab.VanillaRNN(W, U, torch.full((n,), bias, dtype=torch.float64), activation=activation)
    return rnn, torch.randn(3, 30, 2, generator=g, dtype=torch.float64)


def _same_on_both(monkeypatch, compute):
    """``compute(device)`` on the CPU and on emulated CUDA: the CUDA run must take the CUDA path, mix no devices,
    return CPU tensors, and give the CPU run's numbers bit for bit."""
    want = compute(None)
    with fake_cuda(monkeypatch) as mode:
        got = compute("cuda")
    assert mode.calls > 100, "the run never computed on CUDA"
    fields = dataclasses.fields(want) if dataclasses.is_dataclass(want) else ()
    pairs = [(f.name, getattr(want, f.name), getattr(got, f.name)) for f in fields] or [("result", want, got)]
    for name, a, b in pairs:
        if isinstance(a, torch.Tensor):
            assert not on_cuda(b), f"{name} was returned on the GPU"
            torch.testing.assert_close(b, a, rtol=0, atol=0, equal_nan=True, msg=name)
        elif not isinstance(a, (rnnstab.VanillaRNN, torch.nn.Module)):
            assert a == b or (a != a and b != b), name
    return want


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("batched", [False, True], ids=["shared W", "batched W"])
def test_jacobian_norms(batched, dtype, monkeypatch):
    rnn, x = _network(batched)
    trace = _same_on_both(
        monkeypatch, lambda device: rnnstab.jacobian_norms(rnn, x, dtype=dtype, device=device, singular_values_at=[3])
    )
    assert trace.spectral_iterations.sum() > 0  # the block Lanczos tracker ran, not only the Frobenius pass


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "case",
    [
        "svd",
        "frobenius only",
        "overflow truncated",
        "saturated units",
        "huge W",
        "batched, overflow",
        "restarts and SVD fallbacks",
        "diagonal W",
        "diagonal W through block Lanczos",
        "crowded spectra switched to exact solves",
        "split and sparse networks in one batch",
    ],
)
def test_jacobian_norms_special_paths(case, dtype, monkeypatch):
    kwargs: dict = {}
    if case == "svd":
        rnn, x = _network(False)
        kwargs["spectral_method"] = "svd"
    elif case == "frobenius only":
        rnn, x = _network(True)
        kwargs["norms"] = ["frobenius"]
    elif case in ("overflow truncated", "batched, overflow"):
        rnn, x = _network(case.startswith("batched"), activation="relu", delta=4.0)
        x = x * (1e-3 * torch.finfo(dtype).max)  # the state leaves the dtype's range after a few steps
        kwargs["on_overflow"] = "truncate"
    elif case == "restarts and SVD fallbacks":
        rnn, x = _network(True)
        kwargs["max_iter"] = 2  # too few blocks to converge: rows are restarted, then settled by an SVD
    elif case.startswith("diagonal W"):  # read off the largest column norm
        rnn = rnnstab.VanillaRNN(torch.diag(torch.linspace(0.2, 0.9, 20, dtype=torch.float64)), activation="identity")
        x = torch.zeros(3, 30, 0, dtype=torch.float64)
        if case.endswith("block Lanczos"):  # Krylov runs that end below a column norm are run again from that column
            none = torch.zeros(1, dtype=torch.bool)
            monkeypatch.setattr(rnnstab.jacobian, "coupling", lambda W: Coupling(none, none, none))
    elif case == "crowded spectra switched to exact solves":  # orthogonal W, tanh, small inputs: restarts, then
        gen = torch.Generator().manual_seed(1)  # whole windows solved exactly, then block Lanczos again
        W = torch.stack([rnnstab.init_weights("orthogonal", 48, seed=s) for s in range(2)])
        rnn = rnnstab.VanillaRNN(W, torch.randn(2, 48, 4, generator=gen, dtype=torch.float64), None, "tanh")
        x = 0.01 * torch.randn(2, 40, 4, generator=gen, dtype=torch.float64)
    elif case == "split and sparse networks in one batch":  # SVD for one network, the stricter test for another
        rnn, x = _network(True, activation="relu")
        W = rnn.W.clone()
        W[1, :10, 10:], W[1, 10:, :10] = 0.0, 0.0  # two groups of 10 units
        W[2] *= torch.rand(20, 20, generator=torch.Generator().manual_seed(1), dtype=torch.float64) < 0.2
        rnn = rnnstab.VanillaRNN(W, rnn.U, rnn.b, "relu")
    elif case == "saturated units":
        rnn, x = _network(False, bias=20.0)  # tanh'(≈20) ≈ 1.7e-17: each step's σ' is rescaled by a power of two
    else:
        rnn, x = _network(False, activation="identity")
        rnn = rnnstab.VanillaRNN(rnn.W * (1e60 if dtype == torch.float64 else 1e7), rnn.U, None, "identity")
        x = torch.zeros_like(x)  # the state stays 0, the product is W^t: scaled by a power of two per step
    trace = _same_on_both(
        monkeypatch, lambda device: rnnstab.jacobian_norms(rnn, x, dtype=dtype, device=device, **kwargs)
    )
    if "overflow" in case:
        assert trace.overflow_steps.gt(0).any()
    if case == "restarts and SVD fallbacks":
        assert trace.svd_fallbacks > 0
    if case == "crowded spectra switched to exact solves":
        assert trace.spectral_iterations[16:24].eq(0).all() and trace.spectral_iterations[24:32].gt(0).all()
    if case == "diagonal W":
        assert not trace.spectral_iterations.any()
    if case == "diagonal W through block Lanczos":
        assert trace.spectral_iterations.any()
    if case == "split and sparse networks in one batch":
        assert trace.spectral_method == "mixed"
    if case == "saturated units":
        assert torch.isfinite(trace.log_spectral).all() and trace.log_spectral[:, -1].lt(-300).all()


@pytest.mark.parametrize("batched", [False, True], ids=["shared W", "batched W"])
def test_lyapunov_and_singular_value_spectra(batched, monkeypatch):
    rnn, x = _network(batched)
    _same_on_both(monkeypatch, lambda device: rnnstab.lyapunov_spectrum(rnn, x, k=4, device=device))
    _same_on_both(monkeypatch, lambda device: rnnstab.singular_value_spectrum(rnn, x, at=(5, 30), device=device))
    _same_on_both(monkeypatch, lambda device: rnnstab.induction_check(rnn.to(device=device), x))


@pytest.mark.parametrize("param", ["plain", "weight_norm", "orthogonal"])
def test_training(param, monkeypatch):
    def losses(device):
        run = rnnstab.train(steps=4, hidden=12, length=10, param=param, monitor_every=2, device=device or "cpu")
        return torch.tensor([r.loss for r in run.records], dtype=torch.float64)

    _same_on_both(monkeypatch, losses)


def test_sweep(tmp_path, monkeypatch):
    grid = rnnstab.Grid.from_strings(
        activation=["tanh,relu"], delta=["0.5,1.3"], hidden=["12"], steps=["20"], seeds=["2"]
    )
    rnnstab.run_sweep(grid, tmp_path / "cpu", device="cpu")
    with fake_cuda(monkeypatch) as mode:
        result = rnnstab.run_sweep(grid, tmp_path / "cuda", device="cuda")
    assert mode.calls > 100 and result.device == "cuda"
    cpu, cuda = rnnstab.load_sweep(tmp_path / "cpu"), rnnstab.load_sweep(tmp_path / "cuda")
    assert set(cuda["device"]) == {"cuda"}
    same = [c for c in cpu.columns if c != "device"]
    assert cpu[same].equals(cuda[same])


def test_a_sweep_too_large_for_the_gpu_is_refused_naming_it(tmp_path, monkeypatch):
    grid = rnnstab.Grid.from_strings(delta=["0.5"], hidden=["64"], steps=["20"], seeds=["1"])
    with fake_cuda(monkeypatch, free_bytes=2**20), pytest.raises(rnnstab.InvalidArgumentError, match="the GPU"):
        rnnstab.run_sweep(grid, tmp_path / "out", device="cuda")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize(
    "command",
    [
        ["trace", "--hidden", "12", "--steps", "20", "--batch", "2"],
        ["lyapunov", "--hidden", "12", "--steps", "40", "--batch", "2"],
        ["train", "--length", "8", "--hidden", "6", "--steps", "4", "--monitor-every", "2"],
        ["sweep", "--hidden", "12", "--steps", "20", "--delta", "0.5,1.2", "--seeds", "1"],
    ],
    ids=lambda command: command[0],
)
def test_cli_commands_on_auto_pick_the_gpu(command, tmp_path, monkeypatch):
    with fake_cuda(monkeypatch) as mode:
        result = runner.invoke(app, [*command, "--device", "auto", "--quiet", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert mode.calls > 100
    recorded = [device for path in tmp_path.rglob("*.json") for device in _devices(json.loads(path.read_text()))]
    assert recorded and all(device.startswith("cuda") for device in recorded), recorded


def _devices(record):
    """Every value recorded under a "device" key, at any depth."""
    if isinstance(record, dict):
        return [v for k, v in record.items() if k == "device"] + [d for v in record.values() for d in _devices(v)]
    if isinstance(record, list):
        return [d for v in record for d in _devices(v)]
    return []


# torch.func.jacfwd loads torch's own forward-AD decompositions through torch.jit.script on first use
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_the_gpu_benchmark_runs(monkeypatch, capsys):
    """``benchmarks/jacobian_overhead.py --device cuda`` is what a lent GPU's few minutes go to: it must not fail on
    a device mismatch there (here on small problems; its timings mean nothing on the emulated device)."""
    path = Path(__file__).parent.parent / "benchmarks" / "jacobian_overhead.py"
    spec = importlib.util.spec_from_file_location("jacobian_overhead", path)
    assert spec is not None and spec.loader is not None
    benchmark = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, benchmark)  # its dataclasses look their module up there
    spec.loader.exec_module(benchmark)
    monkeypatch.setattr(benchmark, "CONFIGS", ((16, 12, 2),))
    monkeypatch.setattr(benchmark, "GUARD_CONFIG", (16, torch.float64))
    monkeypatch.setattr(benchmark, "REPEATS", 1)
    with fake_cuda(monkeypatch) as mode:
        status = benchmark.main(["--device", "cuda"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert mode.calls > 1000
    assert "emulated CUDA device" in out and "PASS" in out
