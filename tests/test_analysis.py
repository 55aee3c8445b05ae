import copy
import dataclasses

import numpy as np
import pytest
import torch

import rnnstab
from rnnstab.analysis import layer_inputs
from tests.problems import save_formats, trained_rnn

SMALL = {"steps": 30, "batch": 3, "seed": 1}


@pytest.fixture(scope="module")
def shallow_relu():
    rnn, (before, after) = trained_rnn(nonlinearity="relu", seed=1)
    assert after < before
    return rnn


def assert_same_numbers(got, expected) -> None:
    """Every number of every audit row identical (bitwise); names and provenance may differ (key prefixes)."""
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        for field in dataclasses.fields(a):
            if field.name in ("name", "details"):
                continue
            x, y = getattr(a, field.name), getattr(b, field.name)
            if isinstance(x, torch.Tensor):
                assert torch.equal(x, y), field.name
            else:
                assert x == y, field.name


def test_layer_inputs_reproduce_the_torch_forward_pass(deep):
    reference = copy.deepcopy(deep).double()
    x = torch.randn(3, 15, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    output, final = reference(x)
    layers = rnnstab.layers_from_module(deep)
    n = deep.hidden_size
    for layer, seen in zip(layers, layer_inputs(layers, x), strict=True):
        g = layer.to_rnn().run(seen)
        # h_n holds the last state of every layer and direction; for a reverse direction "last" is time step 0
        torch.testing.assert_close(g[:, -1], final[2 * layer.layer + layer.reverse], rtol=0, atol=1e-12)
        if layer.layer == deep.num_layers - 1:
            top = g.flip(1) if layer.reverse else g
            torch.testing.assert_close(top, output[..., n:] if layer.reverse else output[..., :n], rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ["state_dict", "checkpoint", "module", "safetensors", "npz"])
def test_saved_file_analysis_equals_the_live_module_bitwise(deep, shallow_relu, tmp_path, kind):
    for rnn, activation in ((deep, None), (shallow_relu, "relu")):
        path = save_formats(rnn, tmp_path)[kind]
        trust = kind == "module"
        layers = rnnstab.load_recurrent_layers(path, activation=None if trust else activation, trust_pickle=trust)
        live = rnnstab.analyze_module(rnn, **SMALL)
        assert_same_numbers(rnnstab.analyze(layers, **SMALL).rows, live.rows)
        assert [row.activation for row in live.rows] == [rnn.nonlinearity] * len(live.rows)
        assert live.bound_holds


def test_bare_npy_matrix_equals_a_module_with_identity_input_weights(tmp_path):
    rnn, _ = trained_rnn(inputs=6, bias=False, steps=15, seed=2)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.eye(6))  # what a bare matrix means: x_t added to the pre-activation
    np.save(tmp_path / "W.npy", rnn.weight_hh_l0.detach().numpy())
    layers = rnnstab.load_recurrent_layers(tmp_path / "W.npy", activation="tanh")
    assert_same_numbers(rnnstab.analyze(layers, **SMALL).rows, rnnstab.analyze_module(rnn, **SMALL).rows)


def test_npz_w_u_b_equals_the_live_module(shallow_relu, tmp_path):
    rnn = shallow_relu
    b = (rnn.bias_ih_l0.double() + rnn.bias_hh_l0.double()).detach().numpy()
    np.savez(tmp_path / "layer.npz", W=rnn.weight_hh_l0.detach().numpy(), U=rnn.weight_ih_l0.detach().numpy(), b=b)
    layers = rnnstab.load_recurrent_layers(tmp_path / "layer.npz", activation="relu")
    assert_same_numbers(rnnstab.analyze(layers, **SMALL).rows, rnnstab.analyze_module(rnn, **SMALL).rows)


def test_given_inputs_drive_every_layer(deep):
    x = torch.randn(2, 12, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    layers = rnnstab.layers_from_module(deep)
    result = rnnstab.analyze(layers, inputs=x)
    assert [row.steps for row in result.rows] == [12] * 4 and [row.trajectories for row in result.rows] == [2] * 4
    assert result.rows[3].details["inputs"] == "given; the outputs of layer 0, time-reversed"
    single = rnnstab.analyze(layers[:2], inputs=x[0])  # (T, m): one sequence
    assert [row.trajectories for row in single.rows] == [1, 1]


def test_synthetic_inputs_follow_the_seed(shallow_relu):
    first = rnnstab.analyze_module(shallow_relu, **SMALL)
    assert_same_numbers(rnnstab.analyze_module(shallow_relu, **SMALL).rows, first.rows)
    other = rnnstab.analyze_module(shallow_relu, steps=30, batch=3, seed=2)
    assert not torch.equal(other.rows[0].log_norm_mean, first.rows[0].log_norm_mean)
    assert first.rows[0].details["inputs"] == "synthetic N(0, 1²), seed 1; the inputs"


def test_several_networks_each_get_their_own_inputs():
    model = torch.nn.ModuleDict({"a": torch.nn.RNN(2, 3), "b": torch.nn.RNN(5, 4, nonlinearity="relu")})
    result = rnnstab.analyze_module(model, **SMALL)
    assert result.names == ["a layer 0", "b layer 0"]
    assert_same_numbers(rnnstab.analyze_module(model["a"], **SMALL).rows, result.rows[:1])


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"inputs": torch.zeros(2, 5, 4)}, rnnstab.ShapeError, r"size 4 .* layer 0 takes m = 3 \(weight_ih_l0 is"),
        ({"inputs": torch.zeros(2, 5, 3), "steps": 5}, rnnstab.InvalidArgumentError, "^steps: this .* leave it unset"),
        ({"inputs": torch.zeros(2, 5, 3), "seed": 0}, rnnstab.InvalidArgumentError, r"^seed: this describes"),
        (
            {"inputs": torch.zeros(2, 5, 3), "steps": 5, "seed": 0},
            rnnstab.InvalidArgumentError,
            "^steps, seed: these describe .* leave them unset",
        ),
        ({"input_scale": -1.0}, rnnstab.InvalidArgumentError, "input_scale must be a finite number ≥ 0"),
        ({"steps": 0}, rnnstab.InvalidArgumentError, "steps"),
        ({"seed": 2**63}, rnnstab.InvalidArgumentError, r"^seed must be ≤ 2\^63 - 1, got"),
        ({"seed": -1}, rnnstab.InvalidArgumentError, r"^seed must be ≥ 0, got -1$"),
        ({"inputs": torch.zeros(2, 0, 3)}, rnnstab.ShapeError, r"^inputs must hold at least one sequence of at least"),
        ({"inputs": torch.zeros(0, 5, 3)}, rnnstab.ShapeError, r"^inputs must hold at least one sequence of at least"),
    ],
)
def test_bad_analysis_arguments(deep, kwargs, error, message):
    with pytest.raises(error, match=message):
        rnnstab.analyze(rnnstab.layers_from_module(deep), **kwargs)


def test_layer_inputs_needs_one_complete_network(deep):
    layers = rnnstab.layers_from_module(deep)
    with pytest.raises(rnnstab.InvalidArgumentError, match="complete stack"):
        layer_inputs(layers[1:], torch.zeros(1, 4, 3))
    with pytest.raises(rnnstab.InvalidArgumentError, match="no layers"):
        rnnstab.analyze([])


def test_layers_given_as_a_generator_are_all_analysed(deep):
    layers = rnnstab.layers_from_module(deep)
    result = rnnstab.analyze((layer for layer in layers), **SMALL)
    # every layer and direction, with its own ‖W‖₂ straight from the module's parameters
    expected = {(k, r): getattr(deep, f"weight_hh_l{k}{'_reverse' if r else ''}") for k in (0, 1) for r in (0, 1)}
    assert len(result.rows) == len(expected)
    for row, weight in zip(result.rows, expected.values(), strict=True):
        norm = torch.linalg.matrix_norm(weight.detach().double(), ord=2)
        assert row.spectral_norm.mean == pytest.approx(float(norm), rel=1e-12)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda deep, layers: layers[0], r"got RecurrentLayer$"),
        (lambda deep, layers: deep, r"got RNN; for a torch module call analyze_module\(module\)"),
        (lambda deep, layers: "rnn.pt", r"got str$"),
    ],
)
def test_layers_that_are_not_a_list_of_layers_are_named(deep, wrong, message):
    layers = wrong(deep, rnnstab.layers_from_module(deep))
    with pytest.raises(rnnstab.ArgumentTypeError, match=r"^layers must be a list of RecurrentLayer .*" + message):
        rnnstab.analyze(layers, **SMALL)
