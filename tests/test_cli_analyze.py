import json
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

import rnnstab
from rnnstab._io import finite_or_none
from rnnstab.cli import app
from tests.problems import save_formats, trained_rnn

runner = CliRunner()
SMALL = ["--steps", "25", "--batch", "2", "--seed", "3"]


@pytest.fixture(scope="module")
def deep():
    rnn, (before, after) = trained_rnn(num_layers=2, bidirectional=True, steps=20, seed=4)
    assert after < before
    return rnn


@pytest.fixture(scope="module")
def saved(deep, tmp_path_factory):
    return save_formats(deep, tmp_path_factory.mktemp("formats"))


def assert_same_audit(printed: dict, live: rnnstab.Audit, *, details: bool = False) -> None:
    """The audit in the printed JSON equals the live one's, number for number (provenance too if ``details``)."""
    expected = json.loads(json.dumps(finite_or_none(live.to_dict()), ensure_ascii=False))
    got = json.loads(json.dumps({key: printed[key] for key in expected}))  # a copy: details are popped below
    if not details:  # a state_dict's σ is nn.RNN's default, a module's is recorded: the wording differs
        for record in (got, expected):
            for subject in record["subjects"].values():
                subject.pop("details")
    assert got == expected


@pytest.mark.parametrize("kind", ["state_dict", "module"])  # every format: tests/test_analysis.py
def test_json_audit_of_the_file_equals_the_live_module(deep, saved, tmp_path, kind):
    args = ["analyze", str(saved[kind]), *SMALL, "--out", str(tmp_path), "--json"]
    result = runner.invoke(app, [*args, "--trust-pickle"] if kind == "module" else args)
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    live = rnnstab.analyze_module(deep, steps=25, batch=2, seed=3)
    assert_same_audit(printed, live, details=kind == "module")
    assert [layer["keys"].split(", ")[0] for layer in printed["layers"]] == [
        "weight_hh_l0",
        "weight_hh_l0_reverse",
        "weight_hh_l1",
        "weight_hh_l1_reverse",
    ]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary == {key: value for key, value in printed.items() if key != "layers"}
    assert summary["parameters"]["path"] == str(saved[kind]) and summary["parameters"]["input_scale"] == 1.0
    assert "weight_hh_l1_reverse" in (tmp_path / "report.md").read_text()
    assert (tmp_path / "report.html").read_text().count("data:image/png;base64") == 3
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_human_output_names_keys_table_and_report(saved, tmp_path):
    result = runner.invoke(app, ["analyze", str(saved["checkpoint"]), *SMALL, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "model_state_dict.rnn layer 1 (reverse): model_state_dict.rnn.weight_hh_l1_reverse" in out
    assert "tanh: nn.RNN's default: a state_dict does not record the nonlinearity" in out
    assert "rnnstab analyze (natural logs" in out and "report:" in out and str(tmp_path) in out.replace("\n", "")
    assert result.stderr == ""


def test_user_inputs_file(deep, saved, tmp_path):
    x = np.random.default_rng(0).standard_normal((2, 9, 3))
    np.save(tmp_path / "x.npy", x)
    result = runner.invoke(
        app, ["analyze", str(saved["npz"]), "--inputs", str(tmp_path / "x.npy"), "--out", str(tmp_path), "--json"]
    )
    assert result.exit_code == 0, result.output
    live = rnnstab.analyze_module(deep, inputs=torch.from_numpy(x))
    printed = json.loads(result.stdout)
    assert_same_audit(printed, live)
    assert printed["parameters"]["inputs"] == str(tmp_path / "x.npy") and "seed" not in printed["parameters"]


def test_help_explains_formats_and_the_pickle_risk():
    result = runner.invoke(app, ["analyze", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    for phrase in (".safetensors", ".npy", ".npz", "state_dict", "--trust-pickle", "UNSAFE", "weights_only=True"):
        assert phrase in text, phrase


def _bad_files(directory, saved):
    """name → (arguments, expected fragment of the error line)."""
    data = saved["state_dict"].read_bytes()
    (directory / "truncated.pt").write_bytes(data[: len(data) // 3])
    (directory / "corrupt.pth").write_bytes(b"\x80\x02 definitely not a checkpoint")
    torch.save({"head.weight": torch.zeros(2, 2), "epoch": 3}, directory / "no_rnn.pt")
    np.save(directory / "rect.npy", np.zeros((3, 4)))
    state = {k: v.clone() for k, v in torch.nn.RNN(2, 3).state_dict().items()}
    state["weight_hh_l0"][1, 2] = float("nan")
    torch.save(state, directory / "nan.pt")
    np.save(directory / "W.npy", np.eye(3))
    torch.save(torch.nn.GRU(2, 3).state_dict(), directory / "gru.pt")
    save_file(torch.nn.LSTM(2, 3).state_dict(), directory / "lstm.safetensors")
    (directory / "weights.txt").write_text("1 2 3")
    np.save(directory / "x_wrong.npy", np.zeros((2, 5, 4)))
    np.save(directory / "x_empty.npy", np.zeros((2, 0, 3)))
    d = str(directory)
    return {
        "truncated": ([f"{d}/truncated.pt"], "cannot read truncated.pt as a torch.save file"),
        "corrupt": ([f"{d}/corrupt.pth"], "cannot read corrupt.pth"),
        "no rnn weights": ([f"{d}/no_rnn.pt"], "holds no RNN weights"),
        "non-square": ([f"{d}/rect.npy", "--activation", "tanh"], "must be square (n, n), got (3, 4)"),
        "nan": ([f"{d}/nan.pt"], "weight_hh_l0 holds 1 non-finite value(s)"),
        "npy without activation": ([f"{d}/W.npy"], "pass --activation"),
        "npy wrong activation": ([f"{d}/W.npy", "--activation", "tanhh"], "unknown activation 'tanhh'"),
        "state_dict wrong activation": ([str(saved["state_dict"]), "--activation", "gelu"], "tanh or relu"),
        "module wrong activation": (
            [str(saved["module"]), "--trust-pickle", "--activation", "relu"],
            "nonlinearity='tanh'",
        ),
        "pickle not trusted": ([str(saved["module"])], "--trust-pickle"),
        "gru": ([f"{d}/gru.pt"], "(GRU) is a gated RNN"),
        "lstm": ([f"{d}/lstm.safetensors"], "(LSTM) is a gated RNN"),
        "extension": ([f"{d}/weights.txt"], "extension '.txt'"),
        "missing": ([f"{d}/missing.pt"], "no such file"),
        "inputs size": ([str(saved["state_dict"]), "--inputs", f"{d}/x_wrong.npy"], "takes m = 3"),
        # "cannot read corrupt.pth as a torch.save file", as if it were PATH, the model
        "inputs unreadable": (
            [str(saved["state_dict"]), "--inputs", f"{d}/corrupt.pth"],
            "error: --inputs corrupt.pth: cannot read corrupt.pth as a torch.save file",
        ),
        "inputs and steps": (
            [str(saved["state_dict"]), "--inputs", f"{d}/W.npy", "--steps", "5"],
            "error: --steps: this describes synthetic inputs and has no effect when inputs are given; leave it unset",
        ),
        "inputs and seed": (
            [str(saved["state_dict"]), "--inputs", f"{d}/W.npy", "--seed", "1"],
            "--seed: this describes synthetic inputs",
        ),
        "steps": ([str(saved["state_dict"]), "--steps", "0"], "steps"),
        # beyond torch.Generator's range torch fails with a bare ValueError
        "seed too large": ([str(saved["state_dict"]), "--seed", str(2**63)], "--seed must be ≤ 2^63 - 1"),
        "inputs without steps": (
            [str(saved["state_dict"]), "--inputs", f"{d}/x_empty.npy"],
            "--inputs must hold at least one sequence of at least one step, got shape (2, 0, 3)",
        ),
    }


def test_every_bad_input_gives_one_line_and_exit_2(saved, tmp_path):
    for case, (args, fragment) in _bad_files(tmp_path, saved).items():
        out = tmp_path / "out"
        result = runner.invoke(app, ["analyze", *args, "--out", str(out)])
        lines = result.stderr.strip().splitlines()
        assert result.exit_code == 2, (case, result.output)
        assert len(lines) == 1 and lines[0].startswith("error:"), (case, result.stderr)
        assert fragment in lines[0], (case, lines[0])
        assert "Traceback" not in result.output, case
        assert not (out / "summary.json").exists(), case


def test_a_cell_is_shown_with_the_keys_of_its_file_and_a_gated_neighbour_is_skipped_alone(tmp_path):
    torch.save(torch.nn.RNNCell(3, 4).state_dict(), tmp_path / "cell.pt")
    torch.save({"rnn": torch.nn.RNN(3, 4).state_dict(), "lstm": torch.nn.LSTM(3, 4).state_dict()}, tmp_path / "mix.pt")
    result = runner.invoke(app, ["analyze", str(tmp_path / "cell.pt"), *SMALL, "--out", str(tmp_path / "cell")])
    assert result.exit_code == 0, result.output
    assert "layer 0: weight_hh, weight_ih, bias_ih, bias_hh (n = 4, m = 3; tanh: nn.RNNCell's default" in result.stdout
    assert "_l0" not in result.stdout
    result = runner.invoke(app, ["analyze", str(tmp_path / "mix.pt"), *SMALL, "--out", str(tmp_path / "mix")])
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("warning: mix.pt: skipped only lstm (LSTM): a gated RNN, not a vanilla one; ")
    assert "rnn layer 0: rnn.weight_hh_l0" in result.stdout
    # and in the machine-readable summary, which had no word of it
    (note,) = json.loads((tmp_path / "mix" / "summary.json").read_text())["parameters"]["warnings"]
    assert note.startswith("mix.pt: skipped only lstm (LSTM)")
    assert "skipped only lstm" in (tmp_path / "mix" / "report.md").read_text()


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = torch.nn.RNN(2, 3)


def test_a_module_pickled_from_the_users_script_is_not_called_corrupted(tmp_path, monkeypatch):
    with monkeypatch.context() as patch:  # as torch.save(Net()) in the script that defines class Net
        patch.setattr(Net, "__module__", "__main__")
        patch.setattr(sys.modules["__main__"], "Net", Net, raising=False)
        torch.save(Net(), tmp_path / "net_module.pt")
    result = runner.invoke(app, ["analyze", str(tmp_path / "net_module.pt"), "--trust-pickle", "--out", str(tmp_path)])
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: net_module.pt pickles the class __main__.Net, which cannot be imported here")
    assert "save model.state_dict() instead" in line and "corrupted" not in line


def test_weights_on_the_meta_device_are_refused_by_name(tmp_path):
    # a model built with device="meta" and saved before its weights were loaded: "Tensor.item() cannot be called on
    # meta tensors", a traceback and exit code 1
    path = tmp_path / "meta.pt"
    torch.save(torch.nn.RNN(3, 8, device="meta").state_dict(), path)
    result = runner.invoke(app, ["analyze", str(path), "--steps", "5", "--batch", "2", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert (
        len(lines) == 1
        and lines[0].startswith("error: meta.pt: ")
        and "on the meta device and holds no values" in lines[0]
    )
    assert not (tmp_path / "o").exists()
    with pytest.raises(rnnstab.InvalidArgumentError, match="W is on the meta device"):
        rnnstab.VanillaRNN(torch.empty(3, 3, device="meta"))


def test_an_integer_matrix_is_refused_naming_its_file(tmp_path):
    path = tmp_path / "Wint.npy"
    np.save(path, np.arange(16).reshape(4, 4))
    result = runner.invoke(app, ["analyze", str(path), "--activation", "identity", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: Wint.npy: W must hold floating-point numbers, got dtype int64"


def test_header_and_report_show_no_spread_over_samples_a_layer_does_not_have(tmp_path):
    # each layer is one matrix: the header claimed "means over samples", and report.md filled every cell with "± —"
    torch.manual_seed(0)
    torch.save(torch.nn.RNN(4, 16).state_dict(), tmp_path / "rnn.pt")
    result = runner.invoke(app, ["analyze", str(tmp_path / "rnn.pt"), *SMALL, "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert (
        "rnnstab analyze (natural logs; one matrix per subject; rate and memory horizon: means over trajectories — "
        "spreads in the report)" in " ".join(result.stdout.split())
    )
    assert "means over samples" not in result.stdout and "±" not in result.stdout
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "± —" not in markdown and "Each subject is one matrix" in markdown
    row = next(line for line in markdown.splitlines() if line.startswith("| layer 0 |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert "±" not in cells[3] and " ± " in cells[9]  # ‖W‖₂ is one value; the rate spreads over the 2 sequences
