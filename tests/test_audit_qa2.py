"""A user's QA pass over ``rnnstab analyze`` and ``rnnstab inits``: extreme weights, odd option values, error lines
that name the option, and figures that show what they claim to."""

import json

import numpy as np
import pytest
import torch
from matplotlib.image import imread
from typer.testing import CliRunner

import rnnstab
from rnnstab.audit import Stat, henrici
from rnnstab.cli import app

runner = CliRunner()
SMALL = ["inits", "--hidden", "4", "--samples", "2", "--jacobian-samples", "1", "--steps", "5", "--batch", "1"]
TAB_BLUE = np.array([0x1F, 0x77, 0xB4]) / 255


def _one_error_line(result, message):
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], result.stderr
    assert "Traceback" not in result.output


def _blue_pixels(path):
    rgb = imread(path)[..., :3]
    return int((np.abs(rgb - TAB_BLUE).max(axis=-1) < 0.08).sum())


@pytest.mark.parametrize("scale", [1e200, 1e-200])
def test_henrici_index_does_not_depend_on_the_scale_of_w(scale):
    # ‖W‖_F² overflowed (or underflowed) to inf (0) and the index of a far-from-normal W came out as exactly 0
    W = torch.tensor([[[0.0, 1.0], [0.0, 0.0]], [[1.0, 2.0], [0.0, 3.0]]], dtype=torch.float64)
    expected = [1.0, (4 / 14) ** 0.5]  # nilpotent: every λ = 0; triangular: √(‖W‖_F² − 1 − 9)/‖W‖_F
    scaled = scale * W
    assert henrici(scaled, torch.linalg.eigvals(scaled)).tolist() == pytest.approx(expected, rel=1e-12)


def test_inits_with_a_subnormal_w_is_one_error_line(tmp_path):
    # was a LinAlgError traceback from the Lanczos step of the Jacobian tracker (exit 1)
    args = [*SMALL, "--scheme", "scaled_identity", "--param", "scaled_identity.scale=1e-310"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "out")])
    _one_error_line(result, "'scaled_identity': W is subnormal")
    assert not (tmp_path / "out").exists()


def test_inits_with_a_huge_norm_writes_its_figures(tmp_path):
    # matplotlib's tick locator overflowed on an axis spanning ±1.08e308: a ValueError traceback while saving
    args = [*SMALL, "--scheme", "spectral_norm", "--param", "spectral_norm.sigma=1e308", "--json"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    entry = json.loads(result.stdout)["subjects"]["spectral_norm"]
    assert entry["spectral_norm"]["mean"] == pytest.approx(1e308, rel=1e-12)
    assert entry["nonnormality"]["mean"] > 0.1  # a rescaled Gaussian matrix is far from normal (was 0)
    for figure in ("eigenvalues", "singular_values", "jacobian_norms"):
        assert (tmp_path / "figures" / f"{figure}.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("command", [SMALL, ["analyze"]])
def test_an_input_scale_that_overflows_names_the_option(tmp_path, command):
    # was "inputs of 'gaussian' holds 7 non-finite value(s)": inputs the user never gave, and no option named
    args = [*command, "--input-scale", "1e308", "--out", str(tmp_path / "out")]
    if command[0] == "analyze":
        torch.save(torch.nn.RNN(2, 3).state_dict(), tmp_path / "rnn.pt")
        args.insert(1, str(tmp_path / "rnn.pt"))
    _one_error_line(runner.invoke(app, args), "--input-scale is too large")


def test_analyze_a_zero_recurrent_matrix(tmp_path):
    # W = 0 was refused with "delta must be a finite number > 0, got 0.0", an option the command does not have
    np.save(tmp_path / "W.npy", np.zeros((3, 3)))
    args = ["analyze", str(tmp_path / "W.npy"), "--activation", "tanh", "--steps", "6", "--batch", "2", "--json"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    entry = json.loads(result.stdout)["subjects"]["layer 0"]
    assert entry["spectral_norm"]["mean"] == 0.0 and entry["vanishing_guaranteed"] and entry["bound_holds"]
    assert entry["memory_horizon_steps"]["mean"] == 1.0  # J_1 = D_1 W = 0
    assert "(W = 0)" in entry["verdict"] and "dead" not in entry["verdict"]  # tanh'(0) = 1: no unit is dead
    assert "memory horizon 1 step." in entry["verdict"]  # one step, not "1 steps"


def test_a_critical_gain_lost_to_saturating_inputs_names_the_input_variance(tmp_path):
    # inputs of variance 1e308 saturate every tanh unit: χ < 1 at every gain, through no fault of the activation
    result = runner.invoke(
        app, [*SMALL, "--scheme", "critical", "--param", "critical.input_variance=1e308", "--out", str(tmp_path / "o")]
    )
    _one_error_line(result, "'tanh' with input_variance=1e+308 has no mean-field critical gain")
    assert not (tmp_path / "o").exists()


def test_analyze_refuses_a_network_too_large_for_memory_before_allocating():
    # was killed by the system for memory (exit 137, no message) while converting and factorising W
    n = 100_000
    W = torch.zeros(()).expand(n, n)  # a view: no n × n storage
    layer = rnnstab.RecurrentLayer("layer 0", W, torch.zeros(()).expand(n, 2), None, "tanh", "test", ("W", "U"))
    with pytest.raises(rnnstab.InvalidArgumentError, match=r"^this needs about \d+\.\d+ GiB"):
        rnnstab.analyze([layer], steps=2, batch=1)


@pytest.mark.parametrize(
    ("make", "args", "message"),
    [
        # each named neither the option nor the file
        ("state_dict", ["--activation", "sigmoid"], "error: --activation: 'sigmoid' is not an nn.RNN nonlinearity"),
        (
            "state_dict",
            ["--inputs", "x.npy"],
            "error: --inputs must match the input size of layer 0 in their last dimension, got size 5",
        ),
        ("nan", [], "error: rnn.pt: weight_hh_l0 holds 1 non-finite value(s)"),
        ("empty npy", ["--activation", "tanh"], "error: W.npy: the recurrent matrix W is empty"),
    ],
)
def test_analyze_errors_name_the_option_or_the_file(tmp_path, make, args, message):
    np.save(tmp_path / "x.npy", np.zeros((1, 4, 5)))
    state = {k: v.clone() for k, v in torch.nn.RNN(2, 3).state_dict().items()}
    if make == "nan":
        state["weight_hh_l0"][0, 1] = float("nan")
    torch.save(state, tmp_path / "rnn.pt")
    np.save(tmp_path / "W.npy", np.zeros((0, 0)))
    path = tmp_path / ("W.npy" if make == "empty npy" else "rnn.pt")
    args = [arg if arg != "x.npy" else str(tmp_path / arg) for arg in args]
    result = runner.invoke(app, ["analyze", str(path), *args, "--out", str(tmp_path / "out")])
    _one_error_line(result, message)
    assert result.stderr.startswith(message), result.stderr


def test_singular_values_of_a_one_unit_network_are_drawn(tmp_path):
    # n = 1: each sample's single σ₁ was a line through one point, which draws nothing — empty panels
    audit = rnnstab.audit_schemes(1, "tanh", schemes=["gaussian"], samples=1, steps=3, batch=1)
    report = rnnstab.write_audit_report(audit, tmp_path, title="n = 1", parameters={})
    assert _blue_pixels(report.directory / "figures" / "singular_values.png") >= 15


def test_the_few_eigenvalues_of_one_trained_layer_are_drawn_in_full_colour(tmp_path):
    # one 5 × 5 layer: five faint 4-point dots at alpha 0.5, barely visible against the white panel
    torch.manual_seed(0)
    audit = rnnstab.analyze_module(torch.nn.RNN(2, 5), steps=3, batch=1)
    report = rnnstab.write_audit_report(audit, tmp_path, title="one layer", parameters={})
    assert _blue_pixels(report.directory / "figures" / "eigenvalues.png") >= 5 * 8


def test_stat_of_values_near_the_largest_float():
    # the mean of [1e308, 1.6e308] overflowed inside its sum: reported as ∞ (null in summary.json)
    stat = Stat.of(torch.tensor([1e308, 1.6e308], dtype=torch.float64))
    assert stat.mean == pytest.approx(1.3e308, rel=1e-12)
    assert stat.spread == pytest.approx(0.6e308 / 2**0.5, rel=1e-12)
