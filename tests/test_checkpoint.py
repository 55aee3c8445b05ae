import os
import sys
import types
import warnings

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import rnnstab
from rnnstab.checkpoint import RecurrentLayer, layers_from_module, layers_from_tensors, load_inputs
from tests.problems import save_formats, trained_rnn


@pytest.fixture(scope="module")
def saved(deep, tmp_path_factory):
    return save_formats(deep, tmp_path_factory.mktemp("formats"))


def _expected(rnn: torch.nn.RNN) -> list[tuple[int, bool, torch.Tensor, torch.Tensor, torch.Tensor | None]]:
    """(layer, reverse, W, U, b_ih + b_hh) read straight from the module's parameters."""
    rows = []
    for layer in range(rnn.num_layers):
        for reverse in (False, True)[: 2 if rnn.bidirectional else 1]:
            suffix = f"_l{layer}" + ("_reverse" if reverse else "")
            b = (
                getattr(rnn, "bias_ih" + suffix).double() + getattr(rnn, "bias_hh" + suffix).double()
                if rnn.bias
                else None
            )
            rows.append((layer, reverse, getattr(rnn, "weight_hh" + suffix), getattr(rnn, "weight_ih" + suffix), b))
    return rows


def _assert_layers_equal(layers: list[RecurrentLayer], rnn: torch.nn.RNN, activation: str) -> None:
    expected = _expected(rnn)
    assert len(layers) == len(expected)
    for got, (layer, reverse, W, U, b) in zip(layers, expected, strict=True):
        assert (got.layer, got.reverse, got.activation) == (layer, reverse, activation)
        assert torch.equal(got.W, W.detach()) and torch.equal(got.U, U.detach())
        assert (got.b is None and b is None) or torch.equal(got.b, b.detach())


@pytest.mark.parametrize("kind", ["state_dict", "checkpoint", "module", "safetensors", "npz"])
def test_every_format_reads_the_live_modules_weights_bitwise(deep, saved, kind):
    layers = rnnstab.load_recurrent_layers(saved[kind], trust_pickle=kind == "module")
    _assert_layers_equal(layers, deep, "tanh")
    prefix = "model_state_dict.rnn " if kind == "checkpoint" else ""
    assert [layer.name for layer in layers] == [
        f"{prefix}layer 0",
        f"{prefix}layer 0 (reverse)",
        f"{prefix}layer 1",
        f"{prefix}layer 1 (reverse)",
    ]
    keys_prefix = "model_state_dict.rnn." if kind == "checkpoint" else ""
    assert layers[3].keys == tuple(
        f"{keys_prefix}{k}_l1_reverse" for k in ("weight_hh", "weight_ih", "bias_ih", "bias_hh")
    )
    assert layers[2].U.shape == (6, 12)  # layer 1 reads both directions of layer 0


def test_a_tar_checkpoint_as_in_the_torch_tutorials_is_read(deep, tmp_path):
    # pytorch.org's "saving and loading a general checkpoint" recipe saves to .tar (and ImageNet's to .pth.tar)
    torch.save({"epoch": 3, "model_state_dict": deep.state_dict()}, tmp_path / "checkpoint.pth.tar")
    _assert_layers_equal(rnnstab.load_recurrent_layers(tmp_path / "checkpoint.pth.tar"), deep, "tanh")


def test_live_module_layers_match_from_torch(deep):
    for layer in layers_from_module(deep):
        reference = rnnstab.VanillaRNN.from_torch(deep, layer=layer.layer, reverse=layer.reverse)
        rnn = layer.to_rnn(dtype=torch.float32)
        assert torch.equal(rnn.W, reference.W) and torch.equal(rnn.U, reference.U) and torch.equal(rnn.b, reference.b)


def test_nonlinearity_state_dict_default_tanh_module_records_it(tmp_path):
    rnn, _ = trained_rnn(nonlinearity="relu", bias=False, steps=5)
    paths = save_formats(rnn, tmp_path)
    plain = rnnstab.load_recurrent_layers(paths["state_dict"])
    assert plain[0].activation == "tanh" and "default" in plain[0].activation_source
    _assert_layers_equal(rnnstab.load_recurrent_layers(paths["state_dict"], activation="relu"), rnn, "relu")
    _assert_layers_equal(rnnstab.load_recurrent_layers(paths["module"], trust_pickle=True), rnn, "relu")
    with pytest.raises(rnnstab.InvalidArgumentError, match=r"contradicts .* nonlinearity='relu'"):
        rnnstab.load_recurrent_layers(paths["module"], trust_pickle=True, activation="tanh")
    with pytest.raises(rnnstab.InvalidArgumentError, match=r"not an nn.RNN nonlinearity"):
        rnnstab.load_recurrent_layers(paths["state_dict"], activation="sigmoid")


def test_pickled_module_refused_without_trust(saved):
    with pytest.raises(rnnstab.InvalidArgumentError, match="--trust-pickle") as err:
        rnnstab.load_recurrent_layers(saved["module"])
    assert "runs any code" in str(err.value) and "\n" not in str(err.value)


def test_a_torchscript_archive_is_named_with_the_way_out(tmp_path):
    rnn = torch.nn.RNN(2, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated, yet such files are about
        torch.jit.script(rnn).save(tmp_path / "scripted.pt")
        scripted = torch.jit.load(tmp_path / "scripted.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch.load's own warning about TorchScript must not reach the user
        with pytest.raises(rnnstab.InvalidArgumentError, match=r"scripted.pt is a TorchScript archive") as err:
            rnnstab.load_recurrent_layers(tmp_path / "scripted.pt")
    assert "corrupted" not in str(err.value) and "torch.jit.load('scripted.pt').state_dict()" in str(err.value)
    torch.save(scripted.state_dict(), tmp_path / "state_dict.pt")  # the way out the message gives
    _assert_layers_equal(rnnstab.load_recurrent_layers(tmp_path / "state_dict.pt"), rnn, "tanh")


class _RunsCode:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # unpickling it would call os.system: the safe loader must refuse, and name why
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_would_run_code_is_refused_as_such_not_as_damage(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pt"
    torch.save({"weight_hh_l0": torch.eye(2), "payload": _RunsCode(str(marker))}, path)
    with pytest.raises(rnnstab.InvalidArgumentError, match=r"evil.pt holds pickled Python objects \(\S*system") as err:
        rnnstab.load_recurrent_layers(path)
    assert "corrupted" not in str(err.value) and "--trust-pickle" in str(err.value)
    assert not marker.exists()


class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = torch.nn.RNN(2, 3)


@pytest.mark.parametrize(
    ("module", "cause"), [("__main__", "AttributeError"), ("my_training_code", "ModuleNotFoundError")]
)
def test_a_pickled_class_that_cannot_be_imported_is_named_not_called_corrupted(tmp_path, monkeypatch, module, cause):
    # as torch.save(Net()) from the script (or a module of the user's) that defines class Net
    net = type("Net", (_Net,), {"__module__": module})
    with monkeypatch.context() as patch:
        if module == "__main__":
            patch.setattr(sys.modules["__main__"], "Net", net, raising=False)
        else:
            patch.setitem(sys.modules, module, types.ModuleType(module))
            patch.setattr(sys.modules[module], "Net", net, raising=False)
        torch.save(net(), tmp_path / "net_module.pt")
    with pytest.raises(rnnstab.InvalidArgumentError) as err:
        rnnstab.load_recurrent_layers(tmp_path / "net_module.pt", trust_pickle=True)
    message = str(err.value)
    assert message.startswith(f"net_module.pt pickles the class {module}.Net, which cannot be imported here ({cause}")
    assert "save model.state_dict() instead" in message and "corrupted" not in message and "\n" not in message


def test_several_rnns_in_one_model_are_named_by_prefix(tmp_path):
    model = torch.nn.ModuleDict(
        {"encoder": torch.nn.RNN(3, 4, nonlinearity="relu"), "decoder": torch.nn.RNN(4, 5, bidirectional=True)}
    )
    torch.save({"model": model}, tmp_path / "model.pt")
    layers = rnnstab.load_recurrent_layers(tmp_path / "model.pt", trust_pickle=True)
    assert [(layer.name, layer.activation) for layer in layers] == [
        ("model.decoder layer 0", "tanh"),
        ("model.decoder layer 0 (reverse)", "tanh"),
        ("model.encoder layer 0", "relu"),
    ]
    assert [layer.name for layer in layers_from_module(model)][-1] == "encoder layer 0"


@pytest.mark.parametrize(("module", "kind"), [(torch.nn.GRU(3, 4), "GRU"), (torch.nn.LSTM(3, 4, proj_size=2), "LSTM")])
def test_gated_rnns_are_refused_naming_what_is_supported(tmp_path, module, kind):
    torch.save({"net.": module.state_dict()}, tmp_path / "gated.pt")
    with pytest.raises(rnnstab.InvalidArgumentError, match=f"({kind}).*not a vanilla one.*torch.nn.RNN"):
        rnnstab.load_recurrent_layers(tmp_path / "gated.pt")
    with pytest.raises(rnnstab.InvalidArgumentError, match=f"({kind})"):
        layers_from_module(module)


def test_gated_rnn_next_to_a_vanilla_one_is_skipped_with_a_warning():
    tensors = {
        **{f"gru.{k}": v for k, v in torch.nn.GRU(3, 4).state_dict().items()},
        **{f"rnn.{k}": v for k, v in torch.nn.RNN(3, 4).state_dict().items()},
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        layers = layers_from_tensors(tensors)
    assert [layer.name for layer in layers] == ["rnn layer 0"]
    assert len(caught) == 1 and caught[0].category is rnnstab.RnnstabWarning
    # only the GRU is skipped, not the whole file
    assert str(caught[0].message).startswith("the state_dict: skipped only gru (GRU): a gated RNN")


def test_bare_npy_needs_an_activation_and_has_no_input_weights(tmp_path):
    W = np.random.default_rng(0).standard_normal((5, 5)).astype(np.float32)
    np.save(tmp_path / "W.npy", W)
    with pytest.raises(rnnstab.InvalidArgumentError, match=r"pass --activation .*sigmoid"):
        rnnstab.load_recurrent_layers(tmp_path / "W.npy")
    with pytest.raises(rnnstab.InvalidArgumentError, match="unknown activation 'tan'"):
        rnnstab.load_recurrent_layers(tmp_path / "W.npy", activation="tan")
    (layer,) = rnnstab.load_recurrent_layers(tmp_path / "W.npy", activation="sigmoid")
    assert layer.U is None and layer.b is None and layer.input_size == 5 and layer.keys == ("W",)
    rnn = layer.to_rnn()
    assert torch.equal(rnn.W, torch.from_numpy(W).double()) and torch.equal(rnn.U, torch.eye(5, dtype=torch.float64))


def test_npz_with_w_u_b_or_one_array(tmp_path):
    rng = np.random.default_rng(1)
    W, U, b = rng.standard_normal((4, 4)), rng.standard_normal((4, 2)), rng.standard_normal(4)
    np.savez(tmp_path / "wub.npz", weight_hh=W, U=U, b=b, notes=np.zeros(3))
    (layer,) = rnnstab.load_recurrent_layers(tmp_path / "wub.npz", activation="relu")
    assert layer.keys == ("weight_hh", "U", "b") and layer.input_size == 2
    assert np.array_equal(layer.W.numpy(), W) and np.array_equal(layer.U.numpy(), U) and np.array_equal(layer.b, b)
    np.savez(tmp_path / "one.npz", recurrent=W)
    assert rnnstab.load_recurrent_layers(tmp_path / "one.npz", activation="tanh")[0].keys == ("recurrent",)
    np.savez(tmp_path / "two.npz", A=W, B=W)
    with pytest.raises(rnnstab.InvalidArgumentError, match="arrays A, B but none named W or weight_hh"):
        rnnstab.load_recurrent_layers(tmp_path / "two.npz", activation="tanh")


def test_bare_matrix_in_a_torch_save_or_safetensors_file(tmp_path):
    from safetensors.torch import save_file

    rng = torch.Generator().manual_seed(2)
    W, U, b = torch.randn(4, 4, generator=rng), torch.randn(4, 3, generator=rng), torch.randn(4, generator=rng)
    torch.save(W, tmp_path / "W.pt")  # a bare tensor
    (layer,) = rnnstab.load_recurrent_layers(tmp_path / "W.pt", activation="tanh")
    assert layer.keys == ("W",) and torch.equal(layer.W, W) and layer.U is None and layer.b is None
    with pytest.raises(rnnstab.InvalidArgumentError, match=r"W.pt is a bare recurrent matrix.*pass --activation"):
        rnnstab.load_recurrent_layers(tmp_path / "W.pt")
    torch.save({"W": W, "U": U, "b": b, "epoch": torch.tensor(3)}, tmp_path / "wub.pt")
    save_file({"weight_hh": W, "weight_ih": U, "bias": b}, tmp_path / "wub.safetensors")
    for name, keys in (("wub.pt", ("W", "U", "b")), ("wub.safetensors", ("weight_hh", "weight_ih", "bias"))):
        (layer,) = rnnstab.load_recurrent_layers(tmp_path / name, activation="relu")
        assert layer.keys == keys and layer.activation == "relu"
        assert torch.equal(layer.W, W) and torch.equal(layer.U, U) and torch.equal(layer.b, b)
    torch.save(torch.zeros(4, 3), tmp_path / "wide.pt")
    with pytest.raises(
        rnnstab.ShapeError, match=r"wide.pt: the recurrent matrix W must be square \(n, n\), got \(4, 3\)"
    ):
        rnnstab.load_recurrent_layers(tmp_path / "wide.pt", activation="tanh")


def test_numpy_arrays_pickled_by_torch_save_get_their_own_message(tmp_path):
    torch.save({"W": np.eye(3)}, tmp_path / "np.pt")
    with pytest.raises(
        rnnstab.InvalidArgumentError, match=r"np.pt holds numpy arrays pickled by torch.save.*numpy.savez"
    ):
        rnnstab.load_recurrent_layers(tmp_path / "np.pt", activation="tanh")


@pytest.mark.parametrize(
    ("tensors", "error", "message"),
    [
        ({"weight_hh_l0": torch.zeros(4, 5), "weight_ih_l0": torch.zeros(4, 2)}, rnnstab.ShapeError, "square"),
        ({"weight_hh_l0": torch.zeros(4, 4)}, rnnstab.InvalidArgumentError, "no weight_ih_l0"),
        (
            {"weight_hh_l0": torch.zeros(2, 2), "weight_ih_l0": torch.zeros(2, 1), "weight_hh_l2": torch.zeros(2, 2)},
            rnnstab.InvalidArgumentError,
            "no weight_hh_l1",
        ),
        (
            {"weight_hh_l0": torch.full((2, 2), float("nan")), "weight_ih_l0": torch.zeros(2, 1)},
            rnnstab.NonFiniteError,
            "weight_hh_l0 holds 4 non-finite",
        ),
        (
            {"weight_hh_l0": torch.zeros(2, 2, dtype=torch.int64), "weight_ih_l0": torch.zeros(2, 1)},
            rnnstab.ArgumentTypeError,
            "floating",
        ),
        (
            {"weight_hh_l0": torch.zeros(2, 2), "weight_ih_l0": torch.zeros(2, 1), "bias_ih_l0": torch.zeros(3)},
            rnnstab.ShapeError,
            r"bias_ih_l0 must have shape \(2,\)",
        ),
        ({"fc.weight": torch.zeros(2, 2)}, rnnstab.InvalidArgumentError, "no RNN weights.*fc.weight"),
    ],
)
def test_bad_state_dicts(tensors, error, message):
    with pytest.raises(error, match=message):
        layers_from_tensors(tensors)


def test_unreadable_files_give_one_line(tmp_path, saved):
    data = saved["state_dict"].read_bytes()
    cases = {
        "truncated.pt": data[: len(data) // 2],
        "garbage.pth": b"not a checkpoint at all",
        "empty.ckpt": b"",
        "bad.safetensors": b"\x10\x00\x00\x00\x00\x00\x00\x00{broken",
        "bad.npy": b"\x93NUMPY nonsense",
        "bad.npz": b"PK\x03\x04 truncated",
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(rnnstab.InvalidArgumentError, match=f"cannot read {name} as .*corrupted or truncated") as e:
            rnnstab.load_recurrent_layers(tmp_path / name, activation="tanh")
        assert "\n" not in str(e.value)
    (tmp_path / "weights.txt").write_text("1 2 3")
    with pytest.raises(rnnstab.InvalidArgumentError, match=r"extension '\.txt'.*\.safetensors"):
        rnnstab.load_recurrent_layers(tmp_path / "weights.txt")
    with pytest.raises(rnnstab.InvalidArgumentError, match="no such file"):
        rnnstab.load_recurrent_layers(tmp_path / "missing.pt")


def test_safetensors_reads_its_own_keys(tmp_path):
    state = {f"body.rnn.{k}": v for k, v in torch.nn.RNN(2, 3, num_layers=2).state_dict().items()}
    save_file(state, tmp_path / "model.safetensors")
    layers = rnnstab.load_recurrent_layers(tmp_path / "model.safetensors", activation="relu")
    assert [layer.name for layer in layers] == ["body.rnn layer 0", "body.rnn layer 1"]
    assert all(torch.equal(layer.W, state[layer.keys[0]]) for layer in layers)


def test_load_inputs(tmp_path):
    x = np.random.default_rng(2).standard_normal((7, 3))
    np.save(tmp_path / "x.npy", x)
    loaded = load_inputs(tmp_path / "x.npy")
    assert loaded.shape == (1, 7, 3) and loaded.dtype == torch.float64 and np.array_equal(loaded[0].numpy(), x)
    torch.save(torch.ones(2, 5, 3, dtype=torch.float32), tmp_path / "x.pt")
    assert load_inputs(tmp_path / "x.pt").shape == (2, 5, 3)
    np.save(tmp_path / "flat.npy", np.zeros(4))
    with pytest.raises(rnnstab.ShapeError, match=r"--inputs flat.npy must be 3-D"):
        load_inputs(tmp_path / "flat.npy")
    np.save(tmp_path / "ints.npy", np.zeros((2, 3), dtype=np.int64))
    with pytest.raises(rnnstab.ArgumentTypeError, match="floating"):
        load_inputs(tmp_path / "ints.npy")
    torch.save({"x": torch.zeros(2, 3)}, tmp_path / "dict.pt")
    with pytest.raises(rnnstab.ArgumentTypeError, match="one array or tensor, got dict"):
        load_inputs(tmp_path / "dict.pt")


def test_a_parametrized_module_gives_its_effective_weights():
    rnn = torch.nn.utils.parametrizations.weight_norm(torch.nn.RNN(2, 3), name="weight_hh_l0")
    (layer,) = layers_from_module(torch.nn.ModuleDict({"rnn": rnn}))
    assert torch.equal(layer.W, rnn.weight_hh_l0.detach()) and layer.keys[0] == "rnn.weight_hh_l0"


def test_a_checkpoint_that_contains_itself_is_read_once(tmp_path):
    checkpoint = {"model": torch.nn.RNN(2, 3).state_dict()}
    checkpoint["self"] = checkpoint
    torch.save(checkpoint, tmp_path / "loop.pt")
    (layer,) = rnnstab.load_recurrent_layers(tmp_path / "loop.pt")
    assert layer.name == "model layer 0"


@pytest.mark.parametrize("api", ["parametrizations", "legacy"])
def test_a_weight_normalised_state_dict_gives_the_weight_the_network_uses(tmp_path, api):
    torch.manual_seed(3)
    rnn = torch.nn.RNN(2, 5, num_layers=2, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.nn.utils.weight_norm is deprecated
        for name in ("weight_hh_l0", "weight_ih_l1"):
            if api == "parametrizations":
                torch.nn.utils.parametrizations.weight_norm(rnn, name=name)
            else:
                torch.nn.utils.weight_norm(rnn, name=name)
    with torch.no_grad():  # g away from ‖v‖, so that a missed g/‖v‖ factor shows
        for parameter_name, parameter in rnn.named_parameters():
            if parameter_name.endswith(("original0", "_g")):
                parameter.mul_(1.7)
    torch.save(rnn.state_dict(), tmp_path / "wn.pt")
    layers = rnnstab.load_recurrent_layers(tmp_path / "wn.pt")
    rnn(torch.zeros(1, 1, 2, dtype=torch.float64))  # the legacy API recomputes its weights in a forward pre-hook
    # the module's own effective weights, from torch's weight-norm code
    expected = {(0, "W"): rnn.weight_hh_l0, (1, "U"): rnn.weight_ih_l1, (1, "W"): rnn.weight_hh_l1}
    for (layer, role), weight in expected.items():
        torch.testing.assert_close(getattr(layers[layer], role), weight.detach(), rtol=1e-14, atol=0)
    assert layers[0].keys[0] == "weight_hh_l0"


@pytest.mark.parametrize("parametrization", ["orthogonal", "spectral_norm"])
def test_another_parametrization_is_refused_with_advice_that_works(tmp_path, parametrization):
    torch.manual_seed(5)
    model = torch.nn.ModuleDict({"rnn": torch.nn.RNN(2, 3)})
    getattr(torch.nn.utils.parametrizations, parametrization)(model["rnn"], name="weight_hh_l0")
    model.eval()  # spectral_norm runs no power iteration in eval mode: the weight stays put
    with pytest.raises(rnnstab.InvalidArgumentError) as err:
        layers_from_tensors(model.state_dict())
    message = str(err.value)
    assert "rnn.weight_hh_l0 is under a parametrization other than weight normalisation" in message
    assert "torch.nn.utils.parametrize.remove_parametrizations(module, 'weight_hh_l0')" in message
    # torch refuses to pickle a parametrized module, so that cannot be the advice
    assert "pickle" not in message
    with pytest.raises(RuntimeError, match="parametrized modules is only supported through state_dict"):
        torch.save(model, tmp_path / "module.pt")
    # the advice, followed, gives the weight the network used
    W = model["rnn"].weight_hh_l0.detach().clone()
    torch.nn.utils.parametrize.remove_parametrizations(model["rnn"], "weight_hh_l0")
    torch.save(model.state_dict(), tmp_path / "removed.pt")
    (layer,) = rnnstab.load_recurrent_layers(tmp_path / "removed.pt")
    assert torch.equal(layer.W, W)


def test_the_older_spectral_norm_is_refused_with_its_own_undo(tmp_path):
    torch.manual_seed(5)
    model = torch.nn.ModuleDict({"rnn": torch.nn.RNN(2, 3)})
    torch.nn.utils.spectral_norm(model["rnn"], name="weight_hh_l0")  # the hook API: weight_hh_l0_orig, _u, _v
    model.eval()  # no power iteration in eval mode: the weight stays put
    model["rnn"](torch.zeros(1, 1, 2))  # the hook recomputes the weight in a forward pre-hook
    with pytest.raises(rnnstab.InvalidArgumentError) as err:
        layers_from_tensors(model.state_dict())
    message = str(err.value)
    assert "(rnn.weight_hh_l0_orig, rnn.weight_hh_l0_u, rnn.weight_hh_l0_v)" in message
    assert "call torch.nn.utils.remove_spectral_norm(module, 'weight_hh_l0')" in message
    # remove_parametrizations, the advice for the parametrization API, refuses the hook API
    with pytest.raises(ValueError, match="does not have a parametrization on weight_hh_l0"):
        torch.nn.utils.parametrize.remove_parametrizations(model["rnn"], "weight_hh_l0")
    # the advice, followed, gives the weight the network used
    W = model["rnn"].weight_hh_l0.detach().clone()
    torch.nn.utils.remove_spectral_norm(model["rnn"], "weight_hh_l0")
    torch.save(model.state_dict(), tmp_path / "removed.pt")
    (layer,) = rnnstab.load_recurrent_layers(tmp_path / "removed.pt")
    assert torch.equal(layer.W, W)


def test_reading_a_live_spectral_norm_module_in_training_gives_the_weight_it_used_and_changes_nothing():
    torch.manual_seed(6)
    model = torch.nn.ModuleDict({"rnn": torch.nn.RNN(2, 5, batch_first=True)})
    torch.nn.utils.parametrizations.spectral_norm(model["rnn"], name="weight_hh_l0")
    x = torch.randn(3, 8, 2)
    output, _ = model["rnn"](x)  # training mode: one power-iteration step, then the forward pass with its weight
    state = {key: value.clone() for key, value in model.state_dict().items()}
    rnn = rnnstab.VanillaRNN.from_torch(model["rnn"])
    (layer,) = layers_from_module(model)
    assert model.training and model["rnn"].parametrizations.weight_hh_l0[0].training
    for key, value in model.state_dict().items():  # the power iteration's u and v included
        assert torch.equal(value, state[key]), key
    torch.testing.assert_close(rnn.run(x), output.detach(), rtol=0, atol=1e-6)
    assert torch.equal(layer.W, rnn.W)


def test_a_weight_that_is_not_weight_norm_is_refused():
    g = torch.ones(2, 3)  # one g per row would be (3, 1): this is not weight norm of a 3×3 v
    with pytest.raises(rnnstab.ShapeError, match=r"weight_hh_l0_g of shape \(2, 3\) is not the magnitude g"):
        layers_from_tensors({"weight_hh_l0_g": g, "weight_hh_l0_v": torch.ones(3, 3)})


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_rnn_cells_are_one_layer_networks_under_their_own_keys(tmp_path, nonlinearity):
    torch.manual_seed(4)
    cell = torch.nn.RNNCell(3, 4, nonlinearity=nonlinearity)
    as_rnn = torch.nn.RNN(3, 4, nonlinearity=nonlinearity)
    with torch.no_grad():
        for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(as_rnn, f"{kind}_l0").copy_(getattr(cell, kind))
    torch.save(cell.state_dict(), tmp_path / "cell.pt")
    torch.save({"encoder": cell}, tmp_path / "module.pt")
    np.savez(tmp_path / "cell.npz", **{k: v.numpy() for k, v in cell.state_dict().items()})
    cell_keys = ("weight_hh", "weight_ih", "bias_ih", "bias_hh")
    for path, options, prefix, activation, source in (
        ("cell.pt", {}, "", "tanh", "nn.RNNCell's default"),
        ("cell.npz", {"activation": nonlinearity}, "", nonlinearity, "given by the caller"),
        ("module.pt", {"trust_pickle": True}, "encoder", nonlinearity, "recorded in the nn.RNNCell module"),
    ):
        (layer,) = rnnstab.load_recurrent_layers(tmp_path / path, **options)
        assert layer.name == f"{prefix + ' ' if prefix else ''}layer 0"
        # the keys the file really holds, not the nn.RNN names
        assert layer.keys == tuple(f"{prefix + '.' if prefix else ''}{key}" for key in cell_keys)
        assert layer.activation_source.startswith(source)
        _assert_layers_equal([layer], as_rnn, activation)
    torch.save({"gate": torch.nn.GRUCell(3, 4)}, tmp_path / "gru.pt")
    with pytest.raises(rnnstab.InvalidArgumentError, match=r"gate \(GRU\) is a gated RNN"):
        rnnstab.load_recurrent_layers(tmp_path / "gru.pt", trust_pickle=True)


def test_a_weight_normalised_cell_without_bias_gives_its_effective_weight():
    cell = torch.nn.utils.parametrizations.weight_norm(torch.nn.RNNCell(2, 3, bias=False), name="weight_hh")
    (layer,) = layers_from_tensors({f"cell.{k}": v for k, v in cell.state_dict().items()})
    assert layer.keys == ("cell.weight_hh", "cell.weight_ih") and layer.b is None
    torch.testing.assert_close(layer.W, cell.weight_hh.detach())


@pytest.mark.parametrize(("nonlinearity", "bias"), [("tanh", True), ("relu", True), ("tanh", False)])
def test_from_torch_reproduces_an_rnn_cell_step_by_step(nonlinearity, bias):
    torch.manual_seed(6)
    cell = torch.nn.RNNCell(4, 8, bias=bias, nonlinearity=nonlinearity, dtype=torch.float64)
    rnn = rnnstab.VanillaRNN.from_torch(cell)
    assert rnn.activation.name == nonlinearity and (bias or not rnn.b.any())
    x = torch.randn(3, 20, 4, dtype=torch.float64)
    h = torch.zeros(3, 8, dtype=torch.float64)
    expected = []
    with torch.no_grad():
        for t in range(x.shape[1]):
            h = cell(x[:, t], h)
            expected.append(h)
    torch.testing.assert_close(rnn.run(x), torch.stack(expected, dim=1), rtol=1e-14, atol=1e-15)


def test_from_torch_names_gated_rnns_only_for_gated_modules():
    cell = torch.nn.RNNCell(4, 8)
    with pytest.raises(rnnstab.InvalidArgumentError, match=r"layer must be in \[0, 0\], got 1"):
        rnnstab.VanillaRNN.from_torch(cell, layer=1)
    with pytest.raises(rnnstab.InvalidArgumentError, match="reverse=True needs a bidirectional"):
        rnnstab.VanillaRNN.from_torch(cell, reverse=True)
    for module in (torch.nn.GRUCell(4, 8), torch.nn.LSTMCell(4, 8), torch.nn.GRU(4, 8)):
        with pytest.raises(rnnstab.ArgumentTypeError, match="GRU and LSTM are gated"):
            rnnstab.VanillaRNN.from_torch(module)
    with pytest.raises(rnnstab.ArgumentTypeError, match=r"needs a torch.nn.RNN or nn.RNNCell .*got Linear$"):
        rnnstab.VanillaRNN.from_torch(torch.nn.Linear(4, 8))


def test_library_errors_name_python_arguments_not_cli_flags():
    with pytest.raises(rnnstab.InvalidArgumentError, match=r"^steps: this describes synthetic inputs") as err:
        rnnstab.analyze_module(torch.nn.RNN(2, 3), inputs=torch.zeros(1, 4, 2), steps=5)
    assert "--" not in str(err.value)
