"""Tests of rnnstab.audit against closed forms: linear RNNs W = a·I (‖J_t‖₂ = a^t), a 2 × 2 Jordan-type block
(‖W^t‖₂ and Henrici's index in closed form), Haar-orthogonal W (‖W‖₂ = ρ = 1, normal), and the report files."""

from __future__ import annotations

import dataclasses
import errno
import json
import math

import numpy as np
import pytest
import torch

from rnnstab import (
    ArgumentTypeError,
    Audit,
    AuditSubject,
    InvalidArgumentError,
    ShapeError,
    Stat,
    StateOverflowError,
    VanillaRNN,
    audit,
    audit_plots,
    audit_schemes,
    write_audit_report,
)
from rnnstab._io import atomic_write, finite_or_none
from rnnstab.theory import late_rate


def _linear(W: torch.Tensor, steps: int, *, inputs: int = 0, batch: int = 1) -> AuditSubject:
    """An identity-activation RNN: J_t = W^t whatever the inputs."""
    W = W.to(torch.float64)
    n = W.shape[-1]
    U = torch.ones(*W.shape[:-2], n, inputs, dtype=torch.float64)
    x = torch.randn(batch, steps, inputs, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return AuditSubject("linear", VanillaRNN(W, U, None, "identity"), x)


def _jordan_norms(a: float, b: float, steps: int) -> np.ndarray:
    """‖W^t‖₂ for W = [[a, b], [0, a]], t = 1..steps: W^t = [[p, q], [0, p]] with p = a^t, q = t·a^(t-1)·b, whose
    largest singular value is (|q| + √(q² + 4p²))/2 (σ₁σ₂ = p², σ₁² + σ₂² = 2p² + q²)."""
    t = np.arange(1, steps + 1, dtype=float)
    p, q = a**t, t * a ** (t - 1) * b
    return (np.abs(q) + np.sqrt(q * q + 4 * p * p)) / 2


@pytest.mark.parametrize(("steps", "kind"), [(50, "measured"), (20, "extrapolated")])
def test_memory_horizon_of_a_scaled_identity(steps, kind):
    # ‖J_t‖₂ = 0.8^t ≤ 1e-3 first at t = ⌈log(1e-3)/log(0.8)⌉ = ⌈30.96⌉ = 31, both measured and extrapolated.
    row = audit([_linear(0.8 * torch.eye(5, dtype=torch.float64), steps, inputs=2, batch=2)]).rows[0]
    assert row.memory_horizon_kind == kind
    assert row.memory_horizon_steps.mean == 31
    assert row.memory_horizon_steps.spread == 0.0  # every trajectory has the same J_t
    assert row.rate_per_step.mean == pytest.approx(math.log(0.8), abs=1e-12)
    assert row.spectral_norm.mean == pytest.approx(0.8, abs=1e-15) and row.spectral_radius.mean == pytest.approx(0.8)
    assert row.vanishing_guaranteed and row.regime == "guaranteed vanishing"
    assert row.bound_holds  # ‖J_t‖₂ = δ^t: the bound is tight and must not be reported as broken
    np.testing.assert_allclose(row.log_norm_mean.numpy(), np.arange(1, steps + 1) * math.log(0.8), atol=1e-12)


@pytest.mark.parametrize(("a", "regime"), [(1.0, "marginal"), (1.1, "exploding")])
def test_memory_horizon_is_unbounded_when_the_norm_does_not_decay(a, regime):
    row = audit([_linear(a * torch.eye(3, dtype=torch.float64), 30)]).rows[0]
    assert row.memory_horizon_kind == "unbounded" and math.isinf(row.memory_horizon_steps.mean)
    assert row.regime == regime and not row.vanishing_guaranteed
    assert row.to_dict()["memory_horizon_steps"]["mean"] == "unbounded"


def test_memory_horizon_drop_is_configurable():
    row = audit([_linear(0.5 * torch.eye(2, dtype=torch.float64), 20)], horizon_drop=0.1).rows[0]
    assert row.memory_horizon_steps.mean == 4  # 0.5^4 = 0.0625 ≤ 0.1 < 0.5^3


def test_jordan_block_transient_growth_henrici_and_horizon():
    a, b, steps = 0.8, 1.0, 80
    reference = _jordan_norms(a, b, steps)
    row = audit([_linear(torch.tensor([[a, b], [0.0, a]], dtype=torch.float64), steps)]).rows[0]
    # n = 2: the Krylov space is all of ℝ², so every norm is exact to rounding
    assert row.transient_growth.mean == pytest.approx(reference.max(), rel=1e-12)
    assert row.transient_peak_step.mean == int(reference.argmax()) + 1
    assert row.nonnormality.mean == pytest.approx(b / math.sqrt(2 * a * a + b * b), rel=1e-12)
    assert row.spectral_radius.mean == pytest.approx(a, rel=1e-7)  # a double eigenvalue: error ~ √ε
    assert row.spectral_norm.mean == pytest.approx(reference[0], rel=1e-14)
    np.testing.assert_allclose(row.log_norm_mean.numpy(), np.log(reference), atol=1e-12)
    assert row.memory_horizon_steps.mean == int(np.argmax(reference <= 1e-3)) + 1
    expected_rate = float(late_rate(torch.from_numpy(np.log(reference))[None])[0])
    assert row.rate_per_step.mean == pytest.approx(expected_rate, abs=1e-12)
    # ρ = 0.8 < 1 ≤ ‖W‖₂ = 1.5: the eigenvalues hide the norm
    assert row.radius_hides_norm and not row.vanishing_guaranteed
    assert "eigenvalues understate ‖W‖₂" in row.verdict


def test_samples_on_both_sides_of_the_threshold_are_not_called_above_it():
    # δ = 0.5, 0.5, 1.2: the mean 0.733 is below 1, yet one sample escapes the bound
    scales = torch.tensor([0.5, 0.5, 1.2], dtype=torch.float64)
    row = audit([_linear(scales[:, None, None] * torch.eye(3, dtype=torch.float64), 10)]).rows[0]
    assert row.delta.mean == pytest.approx(2.2 / 3) and not row.vanishing_guaranteed
    assert row.verdict.startswith("the bound does not apply to every sample (δ = γ‖W‖₂ ≥ 1 in 1 of 3, up to 1.2;")
    assert "0.733 > 1" not in row.verdict


def test_orthogonal_scheme_is_normal_with_unit_norm_and_radius():
    row = audit_schemes(16, "tanh", schemes=["orthogonal"], samples=3, jacobian_samples=1, steps=10, batch=1)[
        "orthogonal"
    ]
    assert row.spectral_norm.mean == pytest.approx(1.0, abs=1e-13)
    assert row.spectral_radius.mean == pytest.approx(1.0, abs=1e-13)
    assert row.nonnormality.mean == 0.0  # below the eigenvalues' rounding the index is exactly 0
    assert row.transient_growth.mean == pytest.approx(1.0, abs=1e-12) and row.transient_peak_step.mean == 1
    assert not row.vanishing_guaranteed  # δ = 1 bounds the gradients but does not make them vanish
    assert row.verdict.startswith("δ = γ‖W‖₂ = 1: the bound ‖J_t‖₂ ≤ 1 rules out growth, not vanishing")
    assert row.samples == 3 and row.jacobian_samples == 1 and row.trajectories == 1


def test_per_sample_input_weights_pair_each_sample_with_its_own_trajectories():
    # Trajectory k runs sample k // batch: auditing two samples together must give the mean of auditing each.
    gen = torch.Generator().manual_seed(1)
    n, m, batch, steps = 6, 2, 2, 15
    W = 0.4 * torch.randn(2, n, n, generator=gen, dtype=torch.float64)
    U = torch.randn(2, n, m, generator=gen, dtype=torch.float64)
    x = torch.randn(batch, steps, m, generator=gen, dtype=torch.float64)
    both = audit([AuditSubject("both", VanillaRNN(W, U, None, "tanh"), x)]).rows[0]
    alone = [audit([AuditSubject("one", VanillaRNN(W[i], U[i], None, "tanh"), x)]).rows[0] for i in range(2)]
    assert both.rate_per_step.mean == pytest.approx(np.mean([r.rate_per_step.mean for r in alone]), abs=1e-12)
    assert both.spectral_norm.mean == pytest.approx(np.mean([r.spectral_norm.mean for r in alone]), abs=1e-14)
    assert alone[0].spectral_norm.spread is None  # a single sample has no spread


def test_spectral_radius_scheme_is_flagged_where_the_radius_hides_the_norm():
    result = audit_schemes(
        32, "tanh", schemes=["spectral_radius", "spectral_norm"], samples=2, jacobian_samples=1, steps=8, batch=1
    )
    assert result["spectral_radius"].radius_hides_norm  # ρ = 0.9 exactly, ‖W‖₂ ≈ 1.6
    assert result["spectral_radius"].spectral_radius.mean == pytest.approx(0.9, abs=1e-12)
    assert result["spectral_norm"].vanishing_guaranteed and not result["spectral_norm"].radius_hides_norm


def test_audit_schemes_passes_parameters_and_reproduces():
    kwargs = dict(schemes=["gaussian"], samples=2, jacobian_samples=1, steps=6, batch=1, seed=3)
    one = audit_schemes(12, "relu", params={"gaussian": {"gain": 0.5}}, **kwargs)
    two = audit_schemes(12, "relu", params={"gaussian": {"gain": 0.5}}, **kwargs)
    default = audit_schemes(12, "relu", **kwargs)
    assert one.to_dict() == two.to_dict()
    assert one["gaussian"].spectral_norm.mean == pytest.approx(0.5 * default["gaussian"].spectral_norm.mean)
    assert one["gaussian"].details["parameters"] == {"gain": 0.5}


def test_report_for_subjects_of_different_size_and_gamma(tmp_path):
    gen = torch.Generator().manual_seed(2)
    small = AuditSubject(
        "layer 0",
        VanillaRNN(0.3 * torch.randn(4, 4, generator=gen, dtype=torch.float64), torch.ones(4, 2, dtype=torch.float64)),
        torch.randn(3, 12, 2, generator=gen, dtype=torch.float64),
        details={"keys": "weight_hh_l0, weight_ih_l0"},
    )
    large = AuditSubject(
        "layer 1 (reverse)",
        VanillaRNN(torch.randn(6, 6, generator=gen, dtype=torch.float64), None, None, "sigmoid"),
        torch.zeros(1, 12, 0, dtype=torch.float64),
    )
    result = audit([small, large])
    assert [r.gamma for r in result.rows] == [1.0, 0.25] and [r.hidden for r in result.rows] == [4, 6]
    report = write_audit_report(result, tmp_path / "out", title="two layers", parameters={"checkpoint": "m.pt"})
    markdown = report.markdown.read_text()
    assert markdown.startswith("# two layers") and "weight_hh_l0, weight_ih_l0" in markdown
    # each layer is one matrix: its ‖W‖₂ has nothing to spread over, and every cell of it read "± —"
    assert "± —" not in markdown and "Each subject is one matrix" in markdown
    assert f"| {result.rows[1].spectral_norm.mean:.4g} |" in markdown
    assert "Spectral radius against spectral norm" in markdown
    page = report.html.read_text()
    assert page.count("data:image/png;base64,") == 3 and "layer 1 (reverse)" in page
    for figure in report.figures:
        assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads(report.summary_json.read_text())
    assert set(summary["subjects"]) == {"layer 0", "layer 1 (reverse)"}
    entry = summary["subjects"]["layer 1 (reverse)"]
    assert entry["spectral_norm"]["spread"] is None and entry["hidden"] == 6 and entry["gamma"] == 0.25
    for field in ("spectral_norm", "spectral_radius", "delta", "nonnormality", "transient_growth", "rate_per_step"):
        assert set(entry[field]) == {"mean", "spread"}
    assert summary["parameters"] == {"checkpoint": "m.pt"} and summary["bound_holds"] is True
    assert list(report.table["name"]) == ["layer 0", "layer 1 (reverse)"]
    assert report.conclusions["layer 0"] == [result.rows[0].verdict]
    assert not [p for p in (tmp_path / "out").rglob("*.tmp")]


def test_a_report_whose_figure_fails_leaves_the_earlier_report_whole(tmp_path, monkeypatch):
    # the figures and documents were written one by one: a failure left this audit's first figures beside the
    # earlier report, which then described other numbers than its figures show
    first = audit([_linear(torch.eye(2, dtype=torch.float64), 5)])
    write_audit_report(first, tmp_path, title="first", parameters={})
    before = {str(p.relative_to(tmp_path)): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}

    def disk_full(rows, *, path, **kwargs):
        def write(handle):
            raise OSError(errno.ENOSPC, "No space left on device", handle.name)

        atomic_write(path, write)

    monkeypatch.setattr(audit_plots, "plot_jacobian_curves", disk_full)
    second = audit([_linear(2 * torch.eye(2, dtype=torch.float64), 5)])
    with pytest.raises(OSError) as caught:
        write_audit_report(second, tmp_path, title="second", parameters={})
    assert caught.value.filename == str(tmp_path / "figures" / "jacobian_norms.png")
    after = {str(p.relative_to(tmp_path)): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before and not [p for p in tmp_path.rglob("*.tmp")]


def test_to_dict_is_json_ready():
    result = audit([_linear(torch.eye(2, dtype=torch.float64), 5)])
    text = json.dumps(finite_or_none(result.to_dict()), allow_nan=False)
    assert '"linear"' in text and "Henrici" in text


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: audit(
                [_linear(torch.eye(2, dtype=torch.float64), 3), _linear(torch.eye(2, dtype=torch.float64), 3)]
            ),
            InvalidArgumentError,
            "repeated",
        ),
        (
            lambda: audit([_linear(torch.eye(2, dtype=torch.float64), 3)], horizon_drop=1.0),
            InvalidArgumentError,
            "horizon_drop",
        ),
        (
            lambda: audit([_linear(torch.eye(2, dtype=torch.float64), 3)], horizon_drop=0.0),
            InvalidArgumentError,
            "horizon_drop",
        ),
        (
            lambda: audit([_linear(torch.eye(2, dtype=torch.float64), 3)], jacobian_samples=0),
            InvalidArgumentError,
            "jacobian_samples",
        ),
        (lambda: audit(["W"]), ArgumentTypeError, "AuditSubject"),  # type: ignore[list-item]
        (
            lambda: audit([AuditSubject("s", VanillaRNN(torch.eye(2, dtype=torch.float64)), torch.zeros(1, 3, 2))]),
            ShapeError,
            r"inputs of 's' must be \(batch ≥ 1, T ≥ 1, 0\)",
        ),
        (lambda: audit_schemes(8, "tanh", schemes=["nope"]), InvalidArgumentError, "unknown scheme.*valid names"),
        (
            lambda: audit_schemes(8, "tanh", params={"foo": {"rho": 1.0}}),
            InvalidArgumentError,
            r"^params: unknown scheme\(s\) 'foo'; valid names: gaussian, orthogonal",
        ),
        (
            lambda: audit_schemes(8, "tanh", schemes=["gaussian"], params={"orthogonal": {"gain": 2.0}}),
            InvalidArgumentError,
            "not audited: orthogonal",
        ),
        (
            lambda: audit_schemes(8, "tanh", schemes=["gaussian"], params={"gaussian": {"rho": 2.0}}),
            InvalidArgumentError,
            "'gaussian' has no parameter 'rho'",
        ),
        (lambda: audit_schemes(8, "tanh", input_scale=-1.0), InvalidArgumentError, "input_scale"),
        (lambda: audit_schemes(0, "tanh"), InvalidArgumentError, "hidden"),
        (lambda: write_audit_report(Audit((), 1e-3), ".", title="", parameters={}), InvalidArgumentError, "no subj"),
    ],
)
def test_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_a_dead_relu_network_has_a_zero_jacobian_and_says_so(tmp_path):
    # Autonomous relu from h_0 = 0: every pre-activation is 0, relu'(0) = 0, so J_t = 0 from the first step.
    rnn = VanillaRNN(torch.eye(3, dtype=torch.float64)[None].repeat(2, 1, 1), None, None, "relu")
    row = audit([AuditSubject("dead", rnn, torch.zeros(1, 6, 0, dtype=torch.float64))]).rows[0]
    assert row.rate_per_step.mean == -math.inf and row.memory_horizon_steps.mean == 1
    assert "exactly zero" in row.verdict
    report = write_audit_report(Audit((row,), 1e-3), tmp_path, title="dead", parameters={})
    assert "−∞ ± —" in report.markdown.read_text()


def test_a_zero_jacobian_on_some_trajectories_is_counted_not_generalised():
    # relu, W = ½I, U = I: input +1 keeps every unit active (J_t = ½^t), input −1 switches them all off (J_t = 0)
    eye = torch.eye(2, dtype=torch.float64)
    x = torch.stack([torch.ones(6, 2), -torch.ones(6, 2)]).to(torch.float64)
    row = audit([AuditSubject("half dead", VanillaRNN(0.5 * eye, eye, None, "relu"), x)]).rows[0]
    assert row.rate_per_step.mean == -math.inf
    assert "the Jacobian became exactly zero on 1 of 2 trajectories" in row.verdict
    everywhere = audit([AuditSubject("dead", VanillaRNN(0.5 * eye, eye, None, "relu"), x[1:])]).rows[0]
    assert "the Jacobian became exactly zero on every trajectory" in everywhere.verdict


def test_a_delta_just_above_one_is_not_printed_as_one(tmp_path):
    # W = [[a, b], [0, a]] with a = ½ and b chosen so that ‖W‖₂ = 1.0004 (σ₁ = (b + √(b² + 4a²))/2): ρ = ½
    a, norm = 0.5, 1.0004
    W = torch.tensor([[a, (norm**2 - a**2) / norm], [0.0, a]], dtype=torch.float64)
    row = audit([_linear(W, 10)]).rows[0]
    assert row.delta.mean == pytest.approx(norm, rel=1e-14)
    assert "(δ = γ‖W‖₂ = 1.0004 > 1) although γρ(W) = 0.5 < 1" in row.verdict
    markdown = write_audit_report(Audit((row,), 1e-3), tmp_path, title="t", parameters={}).markdown.read_text()
    assert "δ = γ‖W‖₂ = 1.0004 ≥ 1" in markdown and "= 1 ≥ 1" not in markdown


def test_the_jacobian_figure_says_where_a_zero_jacobian_cuts_its_line(tmp_path):
    from rnnstab.audit_plots import plot_jacobian_curves

    eye = torch.eye(2, dtype=torch.float64)
    x = torch.stack([torch.ones(6, 2), -torch.ones(6, 2)]).to(torch.float64)
    rows = audit([AuditSubject("half dead", VanillaRNN(0.5 * eye, eye, None, "relu"), x)]).rows
    figure = plot_jacobian_curves(rows, path=tmp_path / "j.png", horizon_drop=1e-3)
    labels = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert "half dead (some J_t = 0 from t = 1)" in labels
    assert figure.axes[0].get_xlim() == (1.0, 6.0)  # not matplotlib's ±0.05 around nothing


def test_audit_schemes_takes_one_name_as_a_string_and_refuses_what_is_not_a_name():
    # list("orthogonal") is its letters: a bare name must mean that one scheme, not "unknown scheme(s) 'o', 'r', …"
    result = audit_schemes(4, "tanh", schemes="orthogonal", samples=1, steps=2, batch=1)
    assert result.names == ["orthogonal"]
    with pytest.raises(ArgumentTypeError, match="schemes must be registry names"):
        audit_schemes(4, "tanh", schemes=[["orthogonal"]], samples=1, steps=2, batch=1)  # type: ignore[list-item]
    with pytest.raises(ArgumentTypeError, match="params must map scheme names to"):
        audit_schemes(4, "tanh", schemes=["orthogonal"], params={"orthogonal": 2.0}, steps=2)  # type: ignore[dict-item]


@pytest.mark.parametrize("sizes", [{"steps": 10**13}, {"batch": 10**13}, {"inputs": 10**13}, {"samples": 10**12}])
def test_audit_schemes_refuses_sizes_beyond_memory_before_allocating(sizes):
    # torch would fail deep inside torch.randn with a RuntimeError (a traceback in the CLI), or the machine swap;
    # sizes far beyond any machine, so that the test never allocates them
    kwargs = {"samples": 1, "jacobian_samples": 1, "steps": 2, "batch": 1, "inputs": 1, **sizes}
    with pytest.raises(InvalidArgumentError, match=r"this needs about .* GiB.*: reduce hidden, samples"):
        audit_schemes(8, "tanh", schemes=["identity"], **kwargs)


def test_a_state_overflow_names_the_subject_its_sample_and_input_sequence():
    # identity activation, W = 3I driven by ones: the state grows as 3^t and overflows float64 near t = 646, only
    # in sample 1 (sample 0 is ½I); trajectory k = 2 of the audit is sample 1's input sequence 0
    W = torch.stack([0.5 * torch.eye(2), 3.0 * torch.eye(2)]).to(torch.float64)
    rnn = VanillaRNN(W, torch.ones(2, 1, dtype=torch.float64), None, "identity")
    with pytest.raises(StateOverflowError) as caught:
        audit([AuditSubject("big", rnn, torch.ones(2, 700, 1, dtype=torch.float64))])
    message = str(caught.value)
    assert message.startswith("'big' (sample 1, input sequence 0): the forward pass overflowed float64 at step t = ")
    assert "input sequence 2" not in message and caught.value.sequence == 0


def test_a_rounded_orthogonal_spectrum_is_not_a_radius_that_hides_the_norm():
    # ρ(W) = ‖W‖₂ = 1 for orthogonal W; eigvals can return ρ = 1 − 1e-16 (seen at n = 3), which read literally is
    # γρ < 1 ≤ δ: the report then listed orthogonal among the W whose eigenvalues "look contracting"
    row = audit_schemes(4, "tanh", schemes=["orthogonal"], samples=1, steps=2, batch=1)["orthogonal"]
    rounded = dataclasses.replace(row, spectral_radius=Stat(1 - 2**-53, None), delta=Stat(1.0, None))
    assert not rounded.radius_hides_norm and not rounded.to_dict()["radius_below_threshold_norm_above"]
    truly = dataclasses.replace(row, spectral_radius=Stat(0.999, None), delta=Stat(1.0, None))
    assert truly.radius_hides_norm


def test_the_terminal_table_does_not_print_a_delta_above_one_as_one():
    from rnnstab.audit_report import table_rows

    row = audit_schemes(4, "tanh", schemes=["orthogonal"], samples=1, steps=2, batch=1)["orthogonal"]
    above = dataclasses.replace(row, delta=Stat(1.003, None))
    header, body = table_rows(Audit((above, row), 1e-3), compact=True)
    column = header.index("δ = γ‖W‖₂")
    assert [line[column] for line in body] == ["1.003", "1"]  # not "1" for both: only one is bounded by 1


def test_figures_show_eigenvalues_on_the_unit_circle_and_tell_lines_apart(tmp_path):
    from matplotlib.colors import to_rgb

    from rnnstab.audit_plots import plot_eigenvalues, plot_jacobian_curves, plot_singular_values

    names = ["orthogonal", "gaussian", "identity"]
    rows = audit_schemes(4, "tanh", schemes=names, samples=1, steps=3, batch=1).rows
    ax = plot_eigenvalues(rows, path=tmp_path / "e.png").axes[0]
    # orthogonal: every eigenvalue lies on |λ| = 1; with γ = 1 that is also |λ| = 1/γ: one circle, under the points
    assert len(ax.lines) == 1 and ax.lines[0].get_label() == "|λ| = 1 = 1/γ"
    assert ax.collections[0].get_zorder() > ax.lines[0].get_zorder()
    ax = plot_singular_values(rows, path=tmp_path / "s.png").axes[0]
    threshold = next(line for line in ax.lines if line.get_label().startswith("1/γ"))
    assert all(line.get_zorder() > threshold.get_zorder() for line in ax.lines if line is not threshold)
    rows = audit_schemes(4, "tanh", schemes=None, samples=1, steps=2, batch=1).rows  # 15 schemes
    lines = plot_jacobian_curves(rows, path=tmp_path / "j.png", horizon_drop=1e-3).axes[0].lines[: len(rows)]
    styles = [(to_rgb(line.get_color()), line.get_linestyle()) for line in lines]
    assert len(set(styles)) == len(rows)
    # tab20 drew gaussian and orthogonal, the first two, in two blues 0.1 apart
    assert np.abs(np.subtract(styles[0][0], styles[1][0])).max() > 0.3


def test_the_report_says_the_transient_growth_spreads_over_the_traced_samples_only(tmp_path):
    # max_t ‖W^t‖₂ is computed for the jacobian_samples only: "over samples" claimed all of them
    result = audit_schemes(4, "tanh", schemes=["gaussian"], samples=3, jacobian_samples=2, steps=3, batch=1)
    markdown = write_audit_report(result, tmp_path, title="t", parameters={}).markdown.read_text()
    assert "for the transient growth, over the samples whose Jacobians were traced" in markdown


def test_transient_growth_beyond_float64_is_kept_as_its_log(tmp_path):
    # ‖(2I)^t‖₂ = 2^t overflows float64 from t = 1024: the row said inf (null in JSON) and the report "inf"
    row = audit([_linear(2.0 * torch.eye(2, dtype=torch.float64), 1100)]).rows[0]
    assert math.isinf(row.transient_growth.mean)
    assert row.log_transient_growth.mean == pytest.approx(1100 * math.log(2.0), rel=1e-12)
    assert row.to_dict()["log_transient_growth"]["mean"] == row.log_transient_growth.mean
    markdown = write_audit_report(Audit((row,), 1e-3), tmp_path, title="t", parameters={}).markdown.read_text()
    # 2^t still grows at t = T = 1100: a lower bound cut off by the horizon, not a peak "(t ≈ 1100)"
    assert f"≥ e^{1100 * math.log(2.0):.4g}, still growing at T = 1100" in markdown


@pytest.mark.parametrize(("scales", "growing", "cut_off"), [((1.5,), 1, True), ((1.5, 0.5), 1, False)])
def test_growth_cut_off_by_the_horizon_is_not_called_a_peak(tmp_path, scales, growing, cut_off):
    # ‖(1.5I)^t‖₂ = 1.5^t grows up to t = T: the table read "57.7 (t ≈ 10)", a peak that is the horizon's cut-off
    from rnnstab.audit_report import summary_table, table_rows

    W = torch.tensor(scales, dtype=torch.float64)[:, None, None] * torch.eye(2, dtype=torch.float64)
    row = audit([_linear(W, 10)]).rows[0]
    assert row.transient_still_growing == growing and row.transient_cut_off is cut_off
    assert row.to_dict()["transient_still_growing"] == growing and row.to_dict()["transient_cut_off"] is cut_off
    table = summary_table(Audit((row,), 1e-3))
    assert table["transient_still_growing"][0] == growing and table["transient_cut_off"][0] == cut_off
    header, body = table_rows(Audit((row,), 1e-3), compact=True)
    cell = body[0][header.index("max_t ‖W^t‖₂ (at t)")]
    mean = np.mean([scale**10 if scale > 1 else scale for scale in scales])
    if cut_off:
        assert cell == f"≥ {mean:.3g}, still growing at T = 10"
    else:  # the mean of a lower bound and a peak is a lower bound; the peak step is the mean of 10 and 1
        assert cell == f"≥ {mean:.3g} (t ≈ 6; 1 of 2 still growing at T = 10)"
    markdown = write_audit_report(Audit((row,), 1e-3), tmp_path, title="t", parameters={}).markdown.read_text()
    assert "still growing at T = 10" in markdown and "(t ≈ 10)" not in markdown


@pytest.mark.parametrize(("a", "steps", "growing"), [(0.9, 1, 0), (2.0, 1, 1), (1.0, 5, 0), (0.5, 5, 0)])
def test_growth_at_the_horizon_needs_a_norm_above_the_step_before(a, steps, growing):
    # T = 1 compares ‖W‖₂ with ‖W^0‖₂ = 1; a constant ‖W^t‖₂ = 1 (identity) peaks at t = 1, it does not grow
    row = audit([_linear(a * torch.eye(2, dtype=torch.float64), steps)]).rows[0]
    assert row.transient_still_growing == growing and row.transient_cut_off is bool(growing)


def test_the_report_shows_no_spread_where_there_is_a_single_value(tmp_path):
    from rnnstab.audit_report import format_stat

    assert format_stat(Stat(0.9, None)) == "0.9"  # was "0.9 ± —"
    assert format_stat(Stat(-math.inf, math.nan)) == "−∞ ± —"  # several values, but no standard deviation
    row = audit([_linear(0.5 * torch.eye(3, dtype=torch.float64), 12, inputs=1, batch=3)]).rows[0]
    markdown = write_audit_report(Audit((row,), 1e-3), tmp_path, title="t", parameters={}).markdown.read_text()
    assert "± —" not in markdown and "| 0.5 | 0.5 | 0.5 | yes |" in markdown
    assert "| -0.693 ± " in markdown and "| 10 ± 0 |" in markdown  # these two are over the three trajectories


def test_terminal_note_says_what_the_compact_table_shows():
    from rnnstab.audit_report import table_rows, terminal_note

    layer = audit([_linear(0.5 * torch.eye(3, dtype=torch.float64), 12, inputs=1, batch=3)])
    assert terminal_note(layer) == (
        "natural logs; one matrix per subject; rate and memory horizon: means over trajectories — spreads in the report"
    )
    alone = audit([_linear(0.5 * torch.eye(3, dtype=torch.float64), 12)])
    assert terminal_note(alone) == "natural logs; one matrix per subject"
    schemes = audit([_linear(torch.stack([0.5 * torch.eye(3), 0.6 * torch.eye(3)]), 12, inputs=1, batch=2)])
    assert terminal_note(schemes) == (
        "natural logs; means over samples, over trajectories for the rate and memory horizon — spreads in the report"
    )
    # means only: the memory horizon printed "19 ± 1.2" under a caption that said spreads were in the report
    assert not any("±" in cell for line in table_rows(schemes, compact=True)[1] for cell in line)


def test_the_jacobian_figure_tells_fifteen_curves_and_coinciding_ones_apart(tmp_path):
    from matplotlib.colors import to_rgb

    from rnnstab.audit_plots import plot_jacobian_curves

    rows = audit_schemes(8, "tanh", schemes=None, samples=2, steps=12, batch=1).rows  # 15 schemes
    figure = plot_jacobian_curves(rows, path=tmp_path / "j.png", horizon_drop=1e-3)
    ax = figure.axes[0]
    lines = ax.lines[: len(rows)]
    # tab10 drew subjects k and k + 10 in one colour
    assert len({to_rgb(line.get_color()) for line in lines}) == len(rows)
    # gaussian, xavier_normal and critical (tanh, no input variance: gain 1) draw the same W: one line showed
    names = [row.name for row in rows]
    for name in ("xavier_normal", "critical"):
        line = lines[names.index(name)]
        assert line.get_label() == f"{name} (coincides with gaussian)"
        assert line.get_linestyle() == "None" and line.get_marker() not in (None, "None", "")
    markers = [lines[names.index(name)].get_marker() for name in ("xavier_normal", "critical")]
    assert markers[0] != markers[1]
    assert lines[names.index("gaussian")].get_linestyle() == "-"
    # the legend runs from the axes' top down, right of the axes, inside the figure (it ran above the axes)
    renderer = figure.canvas.get_renderer()
    legend, box = ax.get_legend().get_window_extent(renderer), ax.get_window_extent(renderer)
    assert legend.y1 <= box.y1 + 1 and legend.x0 >= box.x1 and legend.x1 <= figure.bbox.x1
    assert len(ax.get_legend().get_texts()) == len(rows) + 1  # every subject and the horizon level
