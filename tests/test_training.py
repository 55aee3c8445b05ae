"""Tests of rnnstab.training and the explicit optimizers of rnnstab.optimizers.

References are independent of the code under test: torch.optim and closed forms for the optimizers, a forward pass
written here with zero offsets added to every hidden state for ∂L/∂g_t, the Pythagorean growth law for weight
normalisation, and exact matrix identities for the orthogonal parametrisation. Everything is float64 unless the
test is about float32.
"""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch

from rnnstab import (
    SCHEMES,
    InvalidArgumentError,
    get_activation,
    get_task,
    init_weights,
    load_training_log,
    make_optimizer,
    train,
)
from rnnstab.training import TIMING_FIELDS, initial_model, loss_and_gradients
from rnnstab.weightnorm import norm_growth

F64 = torch.float64
SMALL = {"length": 8, "hidden": 6, "batch_size": 5, "dtype": F64}


def start(task: str, *, param: str, init: str, seed: int, hidden: int = 6):
    """The network train() starts from with these options (tanh)."""
    return initial_model(
        get_task(task), hidden=hidden, activation=get_activation("tanh"), init=init, param=param, seed=seed
    )


def gradients(steps: int, shape: tuple[int, ...] = (3, 4), seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=generator, dtype=F64) for _ in range(steps)]


def run_ours(name: str, grads: list[torch.Tensor], **options: object) -> torch.Tensor:
    theta = torch.zeros_like(grads[0])
    opt = make_optimizer(name, [theta], **options)  # type: ignore[arg-type]
    for g in grads:
        opt.step([g])
    return theta


def run_torch(opt_class: type, grads: list[torch.Tensor], **options: object) -> torch.Tensor:
    theta = torch.zeros_like(grads[0], requires_grad=True)
    opt = opt_class([theta], **options)
    for g in grads:
        theta.grad = g.clone()
        opt.step()
    return theta.detach()


# --- optimizers -------------------------------------------------------------------------------------------------------


def test_sgd_and_momentum_match_torch_optim_sgd():
    # torch's buffer b_t = α b_{t-1} + g_t with θ −= ε b_t is our v_t/ε (v_t = α v_{t-1} + ε g_t): same trajectory.
    grads = gradients(25)
    sgd = run_ours("sgd", grads, lr=0.3)
    assert torch.allclose(sgd, run_torch(torch.optim.SGD, grads, lr=0.3), rtol=1e-14, atol=1e-14)
    ours = run_ours("momentum", grads, lr=0.3, momentum=0.8)
    theirs = run_torch(torch.optim.SGD, grads, lr=0.3, momentum=0.8)
    assert torch.allclose(ours, theirs, rtol=1e-12, atol=1e-13)  # a few ulps per step, 25 steps


def test_adam_matches_torch_optim_adam():
    grads = gradients(30, seed=1)
    ours = run_ours("adam", grads, lr=0.01, momentum=0.85, beta2=0.99)
    theirs = run_torch(torch.optim.Adam, grads, lr=0.01, betas=(0.85, 0.99), eps=1e-8)
    assert torch.allclose(ours, theirs, rtol=1e-12, atol=1e-15)


def test_closed_forms_under_a_constant_gradient():
    g, t = torch.tensor([2.0, -0.5], dtype=F64), 12
    grads = [g] * t
    # momentum: v_s = ε g (1−α^s)/(1−α); θ_t = −Σ_s v_s.
    alpha, eps = 0.7, 0.1
    expected = -eps * g * sum((1 - alpha**s) / (1 - alpha) for s in range(1, t + 1))
    assert torch.allclose(run_ours("momentum", grads, lr=eps, momentum=alpha), expected, rtol=1e-13)
    # ema: u_s = (1−β^s) g; θ_t = −δ g (t − β(1−β^t)/(1−β)).
    beta, delta = 0.9, 0.05
    expected = -delta * g * (t - beta * (1 - beta**t) / (1 - beta))
    assert torch.allclose(run_ours("ema", grads, lr=delta, momentum=beta), expected, rtol=1e-13)
    # adam with correction: m̂ = g, v̂ = g², so every step is lr·g/(|g| + ε).
    expected = -t * 0.01 * g / (g.abs() + 1e-8)
    assert torch.allclose(run_ours("adam", grads, lr=0.01), expected, rtol=1e-13)
    # without correction: step s is lr (1−β₁^s) g / (√(1−β₂^s)|g| + ε) — much smaller early on.
    b1, b2 = 0.9, 0.999
    expected = -sum(0.01 * (1 - b1**s) * g / (math.sqrt(1 - b2**s) * g.abs() + 1e-8) for s in range(1, t + 1))
    raw = run_ours("adam", grads, lr=0.01, bias_correction=False)
    assert torch.allclose(raw, expected, rtol=1e-12)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"name": "rmsprop", "lr": 0.1}, "valid names: sgd, momentum, ema, adam"),
        ({"name": "sgd", "lr": 0.0}, "lr must be a finite number > 0"),
        ({"name": "adam", "lr": -1.0}, "lr must be a finite number > 0"),
        ({"name": "momentum", "lr": 0.1, "momentum": 1.0}, "momentum must lie in the open interval"),
        ({"name": "ema", "lr": 0.1, "momentum": 0.0}, "momentum must lie in the open interval"),
        ({"name": "adam", "lr": 0.1, "beta2": 1.5}, "beta2 must lie in the open interval"),
        ({"name": "sgd", "lr": 0.1, "bias_correction": False}, "only be turned off for adam"),
    ],
)
def test_optimizer_errors(options, message):
    with pytest.raises(InvalidArgumentError, match=message):
        make_optimizer(params=[torch.zeros(2)], **options)


# --- per-timestep gradient norms -----------------------------------------------------------------------------------


def independent_state_gradient_norms(model, task, x, y) -> torch.Tensor:
    """mean_b ‖∂ℓ_b/∂g_t‖ from a forward pass written here, with zero offsets e_t added to every g_t."""
    W = model.recurrent_weight().detach()
    U, b, C, c = (p.detach() for p in (model.U, model.b, model.C, model.c))
    batch, steps, _ = x.shape
    offsets = torch.zeros(batch, steps, W.shape[0], dtype=F64, requires_grad=True)
    state = torch.tanh(torch.zeros(batch, W.shape[0], dtype=F64))
    states = []
    for t in range(steps):
        state = torch.tanh(state @ W.T + x[:, t] @ U.T + b) + offsets[:, t]
        states.append(state)
    outputs = torch.stack(states, dim=1) @ C.T + c
    # ℓ_b depends on sequence b only, so ∂(Σ_b ℓ_b)/∂e_t^(b) = ∂ℓ_b/∂g_t^(b).
    (grad,) = torch.autograd.grad(task.loss(outputs, y).sum(), offsets)
    return grad.norm(dim=-1).mean(0)


@pytest.mark.parametrize(
    ("task_name", "param"), [("adding", "plain"), ("copy", "weight_norm"), ("adding", "orthogonal")]
)
def test_state_gradient_norms_match_an_independent_autograd_computation(task_name, param):
    task = get_task(task_name)
    model = start(task_name, param=param, init="gaussian", seed=3, hidden=7)
    x, y = task.generate(6, 12, torch.Generator().manual_seed(5))
    _, _, norms = loss_and_gradients(model, task, x, y)
    reference = independent_state_gradient_norms(model, task, x, y)
    assert norms.shape == (12,)
    assert torch.allclose(norms, reference, rtol=1e-10, atol=0)


def test_train_records_the_state_gradient_norms_of_its_first_batch():
    # Step 1 is computed on the initial network and the first batch of the data stream (seed + 2).
    run = train("adding", seed=4, steps=1, init="gaussian", **SMALL)
    task = get_task("adding")
    model = start("adding", param="plain", init="gaussian", seed=4)
    x, y = task.generate(5, 8, torch.Generator().manual_seed(6))
    reference = independent_state_gradient_norms(model, task, x, y)
    assert torch.allclose(torch.tensor(run.records[0].state_grad_norms, dtype=F64), reference, rtol=1e-10)


# --- weight normalisation, clipping, the orthogonal parametrisation ---------------------------------------------


def test_weight_norm_v_grows_by_the_pythagorean_law_under_sgd():
    snapshots = []
    run = train(
        "adding",
        param="weight_norm",
        optimizer="sgd",
        lr=2.0,
        steps=6,
        callback=lambda record, model: snapshots.append(model.v.detach().clone()),
        **SMALL,
    )
    vs = [start("adding", param="weight_norm", init="orthogonal", seed=0).v.detach(), *snapshots]
    growth = []
    for before, after in itertools.pairwise(vs):
        for row_before, row_after in zip(before, after, strict=True):
            actual, predicted = norm_growth(row_before, row_after - row_before)
            assert actual == pytest.approx(predicted, rel=1e-12)
            growth.append(actual / float(row_before.norm()) - 1)
    assert max(growth) > 1e-4  # the law is tested on real growth, not on a standing v
    for record, v in zip(run.records, snapshots, strict=True):
        assert record.wn_v_norm == pytest.approx(float(v.norm()) / math.sqrt(6), rel=1e-12)


def test_clip_bounds_the_gradient_of_every_step():
    lr, clip = 0.1, 0.5
    run = train("adding", optimizer="sgd", lr=lr, clip=clip, steps=8, **SMALL)
    assert any(r.clipped for r in run.records) and all(r.grad_norm > 0 for r in run.records)
    for r in run.records:
        # Under SGD the step is lr times the gradient actually applied.
        assert r.clipped == (r.grad_norm > clip)
        assert r.update_norm == pytest.approx(lr * min(r.grad_norm, clip), rel=1e-12)
    unclipped = train("adding", optimizer="sgd", lr=lr, steps=1, **SMALL).records[0]
    assert unclipped.update_norm == pytest.approx(lr * unclipped.grad_norm, rel=1e-12) and unclipped.grad_norm > clip


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_orthogonal_parametrisation_stays_orthogonal(dtype):
    seen = []

    def keep(record, model):
        skew = (model.skew - model.skew.T).detach().to(F64)
        seen.append((model.recurrent_weight().detach().to(F64), float(torch.linalg.matrix_norm(skew, ord=2))))

    run = train(
        "adding",
        param="orthogonal",
        init="gaussian",
        optimizer="sgd",
        lr=5.0,
        steps=6,
        length=8,
        hidden=6,
        dtype=dtype,
        monitor_every=1,
        callback=keep,
    )
    assert float((seen[-1][0] - seen[0][0]).abs().max()) > 1e-3  # W really moved
    eps = torch.finfo(dtype).eps
    for W, skew_norm in seen:
        # exp(S) by scaling and squaring loses about n·ε per squaring, and squarings grow like log₂‖S‖: 10·n·ε·(1+‖S‖)
        # is a generous, dtype-aware bound that a non-orthogonal W (error ~ 1) misses by orders of magnitude.
        tolerance = 10 * 6 * eps * (1 + skew_norm)
        assert float((W.T @ W - torch.eye(6, dtype=F64)).abs().max()) < tolerance
    for r, (_, skew_norm) in zip(run.records, seen, strict=True):
        tolerance = 10 * 6 * eps * (1 + skew_norm)
        assert r.spectral_norm_W == pytest.approx(1.0, abs=tolerance)
        assert r.spectral_radius_W == pytest.approx(1.0, abs=tolerance)
        assert r.jacobian_rate <= tolerance  # tanh with ‖W‖₂ = 1: δ = 1, so the rate cannot be positive


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_every_scheme_of_the_catalogue_can_start_training(scheme):
    # critical needs the activation (its gain is σ's mean-field critical gain): the model must pass it on
    W = start("adding", param="plain", init=scheme, seed=3).W.detach()
    assert torch.equal(W, init_weights(scheme, W.shape[0], seed=3, activation=get_activation("tanh")))


@pytest.mark.parametrize("param", ["weight_norm", "orthogonal"])
@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_every_scheme_starts_a_parametrised_network_or_says_why_not(scheme, param):
    # a sparse draw at small n has zero rows, which w_i = g_i·v_i/‖v_i‖ cannot normalise: the refusal names both sides
    for hidden in (2, 4, 8):
        try:
            model = start("adding", param=param, init=scheme, seed=0, hidden=hidden)
        except InvalidArgumentError as err:
            assert param == "weight_norm", err
            assert str(err).startswith(f"param: weight_norm cannot start from init {scheme!r} (hidden {hidden}, ")
            W = init_weights(scheme, hidden, seed=0, activation=get_activation("tanh"))
            assert bool((W.norm(dim=1) == 0).any())
        else:
            assert bool(torch.isfinite(model.recurrent_weight()).all())


def test_the_smallest_normal_rate_still_trains():
    tiny = torch.finfo(torch.float32).tiny  # the edge: a normal number, so not refused as underflowing
    run = train("adding", lr=tiny, steps=1, length=4, hidden=3, batch_size=2, dtype=torch.float32)
    assert run.status == "finished" and run.parameters["lr"] == tiny


def test_monitor_steps_and_exact_norms():
    run = train("adding", steps=7, monitor_every=3, init="gaussian", **SMALL)
    assert [r.step for r in run.records if r.spectral_norm_W is not None] == [1, 3, 6, 7]
    W = start("adding", param="plain", init="gaussian", seed=0).W.detach()
    first = run.records[0]  # measured after the first update: not the initial W, but close to it
    assert first.spectral_norm_W == pytest.approx(float(torch.linalg.matrix_norm(W, ord=2)), rel=0.1)
    assert math.isfinite(first.jacobian_rate) and first.wn_v_norm is None


def test_the_initial_record_measures_the_network_before_any_update(tmp_path):
    log = tmp_path / "run.jsonl"
    run = train("adding", steps=2, init="gaussian", log_path=log, **SMALL)
    W = start("adding", param="plain", init="gaussian", seed=0).W.detach().to(torch.float64)
    assert run.initial["spectral_norm_W"] == pytest.approx(float(torch.linalg.matrix_norm(W, ord=2)), rel=1e-12)
    assert run.initial["spectral_radius_W"] == pytest.approx(float(torch.linalg.eigvals(W).abs().max()), rel=1e-12)
    assert run.initial["spectral_norm_W"] != run.records[0].spectral_norm_W  # step 1's record is after its update
    assert math.isfinite(run.initial["jacobian_rate"])
    assert load_training_log(log).attrs["header"]["initial"] == run.initial
    # a dead initial Jacobian's rate, -inf, is written as null, as in the step lines, and read back as -inf
    lines = log.read_text().splitlines()
    header = json.loads(lines[0])
    header["initial"]["jacobian_rate"] = None
    log.write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")
    assert load_training_log(log).attrs["header"]["initial"]["jacobian_rate"] == -math.inf


# --- stops, logs, reproducibility --------------------------------------------------------------------------------


def test_huge_learning_rate_stops_with_the_reason_and_keeps_the_log(tmp_path):
    log = tmp_path / "runs" / "big.jsonl"
    run = train("adding", optimizer="sgd", lr=1e4, steps=50, log_path=log, **SMALL)
    assert run.status == "stopped" and len(run.records) < 50
    k = len(run.records)
    assert run.stop_reason.startswith(f"stopped at step {k}: ")
    assert ("NaN" in run.stop_reason or "Inf" in run.stop_reason) and "--clip" in run.stop_reason
    frame = load_training_log(log)
    assert len(frame) == k and frame.attrs["status"] == "stopped" and frame.attrs["end"]["reason"] == run.stop_reason
    assert json.loads(log.read_text().splitlines()[-1])["type"] == "end"


def test_a_forced_nan_stops_at_the_next_step(tmp_path):
    def poison(record, model):
        if record.step == 3:
            with torch.no_grad():
                model.C[0, 0] = math.nan  # the readout: the RNN itself stays finite, the loss does not

    run = train("adding", steps=10, callback=poison, log_path=tmp_path / "nan.jsonl", **SMALL)
    assert run.status == "stopped" and run.stop_reason.startswith("stopped at step 4: loss is NaN")
    assert len(run.records) == 4 and math.isnan(run.records[-1].loss)
    frame = load_training_log(tmp_path / "nan.jsonl")
    assert len(frame) == 4 and math.isnan(frame["loss"].iloc[-1])  # null in JSON, NaN in the frame


def test_same_seed_same_log_bitwise(tmp_path):
    def stripped(path):
        lines = []
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            for name in TIMING_FIELDS:
                entry.pop(name, None)
            lines.append(json.dumps(entry))
        return lines

    options = {"param": "weight_norm", "steps": 6, "monitor_every": 2, "length": 12, "hidden": 6, "batch_size": 5}
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        train("copy", seed=seed, log_path=tmp_path / f"{name}.jsonl", **options)
    assert stripped(tmp_path / "a.jsonl") == stripped(tmp_path / "b.jsonl")
    assert stripped(tmp_path / "a.jsonl")[1:] != stripped(tmp_path / "c.jsonl")[1:]


def test_keyboard_interrupt_leaves_a_usable_log(tmp_path):
    def interrupt(record, model):
        if record.step == 3:
            raise KeyboardInterrupt

    log = tmp_path / "interrupted.jsonl"
    with pytest.raises(KeyboardInterrupt):
        train("adding", steps=100, callback=interrupt, log_path=log, **SMALL)
    frame = load_training_log(log)
    assert list(frame["step"]) == [1, 2, 3] and frame.attrs["status"] == "interrupted"
    assert frame.attrs["header"]["parameters"]["steps"] == 100


def test_a_log_cut_short_by_a_kill_loads(tmp_path):
    log = tmp_path / "run.jsonl"
    train("adding", steps=3, log_path=log, **SMALL)
    lines = log.read_text().splitlines()
    log.write_text("\n".join(lines[:3]) + "\n" + lines[3][:40])  # header, 2 steps, half of step 3, no end line
    frame = load_training_log(log)
    assert list(frame["step"]) == [1, 2] and frame.attrs["status"] == "killed" and frame.attrs["end"] is None


def test_corrupted_or_foreign_logs_are_refused(tmp_path):
    log = tmp_path / "run.jsonl"
    train("adding", steps=2, log_path=log, **SMALL)
    lines = log.read_text().splitlines()
    (tmp_path / "bad.jsonl").write_text("\n".join([lines[0], "{not json", *lines[1:]]))
    (tmp_path / "foreign.jsonl").write_text('{"a": 1}\n')
    with pytest.raises(InvalidArgumentError, match="line 2 is not valid JSON"):
        load_training_log(tmp_path / "bad.jsonl")
    with pytest.raises(InvalidArgumentError, match="no header line"):
        load_training_log(tmp_path / "foreign.jsonl")
    with pytest.raises(InvalidArgumentError, match="cannot read"):
        load_training_log(tmp_path / "missing.jsonl")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"lr": 0.0}, "lr must be a finite number > 0"),
        ({"lr": -0.1}, "lr must be a finite number > 0"),
        ({"lr": math.nan}, "lr must be a finite number > 0"),
        ({"momentum": 1.0}, "momentum must lie in the open interval"),
        ({"momentum": -0.5}, "momentum must lie in the open interval"),
        ({"beta2": 1.0}, "beta2 must lie in the open interval"),
        ({"task": "parity"}, "unknown task 'parity'; valid names: adding, copy"),
        ({"optimizer": "rmsprop"}, "unknown optimizer 'rmsprop'; valid names"),
        ({"param": "spectral"}, "unknown parametrization 'spectral'; valid names: plain, weight_norm, orthogonal"),
        ({"init": "nope"}, "unknown init scheme 'nope'; valid names"),
        ({"activation": "nope"}, "nope"),
        ({"clip": 0.0}, "clip must be a finite number > 0"),
        ({"length": 1}, "length must be ≥ 2 for the adding task"),
        ({"steps": 0}, "steps must be ≥ 1"),
        ({"batch_size": 0}, "batch_size must be ≥ 1"),
        ({"bias_correction": False, "optimizer": "sgd"}, "only be turned off for adam"),
        # sizes whose graph cannot fit: refused with the memory needed, not a traceback from torch's allocator (or
        # the kernel's OOM killer once the allocation succeeds on an overcommitting system)
        ({"length": 10**9}, r"this needs about .* GiB .*reduce the batch size, the sequence length"),
        ({"batch_size": 10**9}, r"this needs about .* GiB"),
        ({"task": "copy", "symbols": 10**9, "length": 20}, r"this needs about .* GiB .*the copy task's alphabet"),
        # 0 or subnormal once cast to the training dtype: every update lr·g would round to zero
        ({"lr": 1e-50}, r"^lr: 1e-50 underflows in float32: .* becomes 0, so every update lr·g would round to zero"),
        ({"lr": 1e-39}, r"^lr: 1e-39 underflows in float32: .* becomes the subnormal 1e-39"),
        ({"lr": 1e-320, "dtype": F64}, r"^lr: 1e-320 underflows in float64: .* smallest normal number 2.23e-308"),
        (
            {"init": "sparse_echo_state", "param": "weight_norm", "hidden": 4},
            r"^param: weight_norm cannot start from init 'sparse_echo_state' \(hidden 4, seed 0\): rows? [0-9, ]+ of "
            r"its 4 (is|are) zero",
        ),
    ],
)
def test_bad_arguments_are_refused_before_training(tmp_path, options, message):
    options = {"task": "adding", **options}
    with pytest.raises(InvalidArgumentError, match=message):
        train(options.pop("task"), log_path=tmp_path / "log.jsonl", **options)
    assert not (tmp_path / "log.jsonl").exists()


def test_a_dead_jacobians_rate_reads_back_from_the_log_as_minus_infinity(tmp_path):
    # lr 2·10⁴ turns every relu unit off: σ' = 0 exactly, ∂g_t/∂g_0 = 0, rate -inf; JSON writes it as null. (A
    # saturated tanh is not dead: its σ' comes from log σ' beyond float64's range, and its rate is finite.)
    log = tmp_path / "dead.jsonl"
    run = train("adding", optimizer="sgd", lr=2e4, steps=4, monitor_every=3, log_path=log, activation="relu", **SMALL)
    assert [r.jacobian_rate for r in run.records] == [-math.inf, None, -math.inf, -math.inf]
    frame = load_training_log(log)
    assert (
        frame["jacobian_rate"].tolist()[::2] == [-math.inf, -math.inf] and frame["jacobian_rate"].iloc[3] == -math.inf
    )
    assert math.isnan(frame["jacobian_rate"].iloc[1])  # step 2 was not measured: NaN, not -inf
