"""Recurrent layers read from saved models: ``torch.save`` files, safetensors, ``.npy``/``.npz`` arrays.

Every format ends as a list of :class:`RecurrentLayer` — one per layer and direction of each vanilla RNN found —
holding W (n, n), U (n, m), b = b_ih + b_hh, the activation and the keys the numbers came from.

Formats:

- ``.pt``, ``.pth``, ``.ckpt``, ``.bin``, ``.tar``: read with
  ``torch.load(path, weights_only=True, map_location="cpu")``. A ``state_dict`` of ``torch.nn.RNN`` (keys
  ``weight_hh_l<k>``, ``weight_ih_l<k>``, ``bias_ih_l<k>``, ``bias_hh_l<k>``, ``…_reverse``) under any prefix
  (``rnn.weight_hh_l0``), or a checkpoint dict nesting one at any depth (``{"model_state_dict": {...}, "epoch": 3}``).
  A whole pickled module needs ``trust_pickle=True``: unpickling runs whatever code the file names, so only do it
  for files from a source you trust.
- ``.safetensors``: the same keys, flat.
- ``.npz``: either arrays with ``nn.RNN`` keys (as a state_dict), or a recurrent matrix under ``W`` (or
  ``weight_hh``) with optional input weights ``U`` (or ``weight_ih``) and bias ``b`` (or ``bias``); a file holding
  one array only is read as W whatever its name.
- ``.npy``: one square recurrent matrix W.
- A bare matrix in a torch or safetensors file: ``torch.save(W, path)``, or a dict with those W/U/b keys at the top
  level and no ``nn.RNN`` keys (``torch.save({"W": W, "U": U}, path)``).

``torch.nn.RNNCell`` weights (``weight_hh``, ``weight_ih``, ``bias_ih``, ``bias_hh``, saved or pickled) are read as
a one-layer network. A weight under weight normalisation — ``parametrizations.weight_hh_l0.original0/1`` of
``torch.nn.utils.parametrizations.weight_norm``, or ``weight_hh_l0_g``/``_v`` of the older
``torch.nn.utils.weight_norm`` — is rebuilt as g·v/‖v‖ in its own dtype. Any other parametrization stores only its
unconstrained ``original``, not the weight the network uses, and is refused with what to save instead.

A state_dict does not record the nonlinearity of ``nn.RNN``: it is tanh unless ``activation`` says relu. A pickled
module records it (a different ``activation`` is an error). Bare matrices (``.npy``, W/U/b in any format) record
none: ``activation`` is required, any registered name. A matrix saved without U is driven by inputs added straight
to the pre-activation (U = I, m = n).
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from rnnstab import _checks
from rnnstab.activations import activation_names, get_activation
from rnnstab.exceptions import ArgumentTypeError, InvalidArgumentError, RnnstabWarning, ShapeError
from rnnstab.rnn import VanillaRNN, module_weights

TORCH_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".tar")  # .tar: the checkpoint convention of the torch tutorials
SUPPORTED = (
    "torch.nn.RNN or nn.RNNCell (tanh or relu, any number of layers, bidirectional, weight norm allowed) saved as "
    "a state_dict, a checkpoint dict "
    f"nesting one, or a pickled module ({'/'.join(TORCH_SUFFIXES)}); the same keys in .safetensors or .npz; "
    "a recurrent matrix W (torch.save(W), .npy, or W/U/b keys in any of these formats) with an activation"
)
#: Keys of a bare-matrix ``.npz``, first match wins.
NPZ_KEYS = {"W": ("W", "weight_hh"), "U": ("U", "weight_ih"), "b": ("b", "bias")}
_RNN_KEY = re.compile(r"^(?P<prefix>(?:.*\.)?)weight_hh_l(?P<layer>\d+)(?P<reverse>_reverse)?$")
_RNN_WEIGHT = r"(?:weight|bias)_(?:ih|hh|hr)(?:_l\d+(?:_reverse)?)?"  # nn.RNN's, or an nn.RNNCell's (no _l<k>)
_PARAMETRIZED = re.compile(rf"^(?P<prefix>(?:.*\.)?)parametrizations\.(?P<name>{_RNN_WEIGHT})\.original(?P<part>\d*)$")
# torch.nn.utils.weight_norm keeps <name>_g and <name>_v; torch.nn.utils.spectral_norm <name>_orig, _u and _v
_LEGACY_HOOK = re.compile(rf"^(?P<name>(?:.*\.)?{_RNN_WEIGHT})_(?P<part>[gv]|orig|u)$")
_CELL_KEY = re.compile(r"^(?P<prefix>(?:.*\.)?)(?P<kind>weight_ih|weight_hh|bias_ih|bias_hh)$")
_CELL_MODES = ((torch.nn.GRUCell, "GRU"), (torch.nn.LSTMCell, "LSTM"))
# torch.load(weights_only=True) met a class ("Unsupported global: GLOBAL m.C") or a blocked module's function
# ("Trying to load unsupported GLOBAL posix.system whose module posix is blocked")
_REFUSED_GLOBAL = re.compile(r"unsupported global:? (?:GLOBAL )?(\S+)", re.IGNORECASE)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # torch colours parts of its messages
_TORCH_NONLINEARITIES = ("tanh", "relu")
_GATES = {3: "GRU", 4: "LSTM"}
_PICKLE_RISK = (
    "unpickling runs any code the file names, so pass --trust-pickle (trust_pickle=True) only for a file from a "
    "source you trust, or save model.state_dict() instead"
)


@dataclass(frozen=True)
class RecurrentLayer:
    """One layer (one direction) of a vanilla RNN g_t = σ(W g_{t-1} + U x_t + b) read from a file or module.

    Attributes:
        name: ``"layer 0"``, ``"encoder layer 1 (reverse)"``: the network prefix, the layer, the direction.
        W: recurrent weights (n, n), in the dtype they were saved in.
        U: input weights (n, m); ``None`` for a bare matrix (inputs are then added to the pre-activation).
        b: bias b_ih + b_hh (n,), summed in float64; ``None`` when the network has none.
        activation: the registry name of σ.
        activation_source: where the activation came from (the module, the caller, or nn.RNN's default).
        keys: the keys (or array names) W, U and b were read from.
        network: the prefix of the RNN in its file (``"encoder"``), ``""`` at the top level.
        layer: the layer index k (layer k > 0 is driven by the outputs of layer k − 1).
        reverse: the backward direction of a bidirectional RNN (it reads the sequence time-reversed).
        directions: 2 for a bidirectional RNN, else 1 (layer k > 0 then sees both directions concatenated).

    Example:
        >>> layer = layers_from_module(torch.nn.RNN(2, 3))[0]
        >>> layer.name, layer.keys[:2], tuple(layer.to_rnn().W.shape), layer.to_rnn().dtype
        ('layer 0', ('weight_hh_l0', 'weight_ih_l0'), (3, 3), torch.float64)
    """

    name: str
    W: torch.Tensor
    U: torch.Tensor | None
    b: torch.Tensor | None
    activation: str
    activation_source: str
    keys: tuple[str, ...]
    network: str = ""
    layer: int = 0
    reverse: bool = False
    directions: int = 1

    @property
    def hidden_size(self) -> int:
        return int(self.W.shape[0])

    @property
    def input_size(self) -> int:
        """m, the size of x_t; n for a bare matrix (x_t is added to the pre-activation)."""
        return int(self.W.shape[0] if self.U is None else self.U.shape[1])

    def to_rnn(self, *, dtype: torch.dtype = torch.float64) -> VanillaRNN:
        """This layer as a :class:`~rnnstab.VanillaRNN` in ``dtype`` (U = I when the file had none)."""
        W = self.W.to(dtype)
        U = torch.eye(self.hidden_size, dtype=dtype) if self.U is None else self.U.to(dtype)
        b = None if self.b is None else self.b.to(dtype)
        return VanillaRNN(W, U, b, activation=self.activation)

    def details(self) -> dict[str, Any]:
        """Provenance for reports: keys, sizes, activation and its source."""
        return {
            "keys": ", ".join(self.keys),
            "hidden_size": self.hidden_size,
            "input_size": self.input_size,
            "input_weights": "from the file" if self.U is not None else "none saved: x_t is added to W g + b (U = I)",
            "activation": f"{self.activation} ({self.activation_source})",
            "stored_dtype": str(self.W.dtype).removeprefix("torch."),
        }


def load_recurrent_layers(
    path: str | os.PathLike[str], *, activation: str | None = None, trust_pickle: bool = False
) -> list[RecurrentLayer]:
    """Read every vanilla-RNN layer (and direction) saved in ``path``.

    Args:
        path: a ``.pt/.pth/.ckpt/.bin/.tar`` (torch.save), ``.safetensors``, ``.npy`` or ``.npz`` file (see the module
            docstring for the layouts).
        activation: σ. For ``nn.RNN`` weights tanh (default) or relu; must match a pickled module's own; required
            for bare matrices (any name of :func:`~rnnstab.activation_names`).
        trust_pickle: allow unpickling arbitrary objects (a whole ``nn.Module``). Unsafe: a malicious file runs
            code on load. By default only tensors and plain containers are read.

    Returns:
        The layers, network by network, layer 0 first, the forward direction before the reverse one.

    Raises:
        InvalidArgumentError: missing, unreadable, corrupted or truncated file; unknown extension; a TorchScript
            archive; a pickled object without ``trust_pickle``, or with it a pickled class that cannot be imported
            here; no RNN weights; GRU/LSTM weights only; a wrong activation.
        ShapeError: a non-square recurrent matrix, or sizes that do not fit together.
        NonFiniteError: NaN or Inf in a weight.

    Example:
        >>> import tempfile, torch
        >>> path = tempfile.mkdtemp() + "/rnn.pt"
        >>> torch.save(torch.nn.RNN(3, 5, num_layers=2).state_dict(), path)
        >>> [(layer.name, layer.activation, layer.keys[0]) for layer in load_recurrent_layers(path)]
        [('layer 0', 'tanh', 'weight_hh_l0'), ('layer 1', 'tanh', 'weight_hh_l1')]
    """
    file = _existing_file(path)
    suffix = file.suffix.lower()
    if suffix in TORCH_SUFFIXES:
        tensors, modules = _read_torch(file, trust_pickle=trust_pickle)
        bare = None if modules else _bare(tensors)
        if bare is None:
            return layers_from_tensors(tensors, activation=activation, modules=modules, source=file.name)
        return [_bare_layer(bare, _bare_roles(bare, file.name), activation=activation, source=file.name)]
    if suffix == ".safetensors":
        tensors = _read_safetensors(file)
        bare = _bare(tensors)
        if bare is None:
            return layers_from_tensors(tensors, activation=activation, source=file.name)
        return [_bare_layer(bare, _bare_roles(bare, file.name), activation=activation, source=file.name)]
    if suffix == ".npy":
        return [_bare_layer({"W": _read_npy(file)}, {"W": "W"}, activation=activation, source=file.name)]
    if suffix == ".npz":
        arrays = _read_npz(file)
        if _rnn_keyed(arrays):
            return layers_from_tensors(arrays, activation=activation, source=file.name)
        return [_bare_layer(arrays, _bare_roles(arrays, file.name), activation=activation, source=file.name)]
    raise InvalidArgumentError(
        f"cannot tell the format of {file.name} from its extension {suffix or '(none)'!r}: expected "
        f"{', '.join(TORCH_SUFFIXES)}, .safetensors, .npy or .npz"
    )


def layers_from_module(module: torch.nn.Module, *, activation: str | None = None) -> list[RecurrentLayer]:
    """The layers of every ``torch.nn.RNN`` inside ``module`` (itself one, or a model holding some).

    Args:
        module: a ``torch.nn.RNN`` or any module containing them.
        activation: optional; must equal each RNN's own nonlinearity.

    Returns:
        As :func:`load_recurrent_layers` on the module saved to a file, in any format.

    Raises:
        ArgumentTypeError: ``module`` is not a ``torch.nn.Module``.
        InvalidArgumentError: no ``nn.RNN`` inside (GRU/LSTM are not vanilla RNNs), or a contradicting activation.

    Example:
        >>> rnn = torch.nn.RNN(2, 4, nonlinearity="relu", bidirectional=True)
        >>> [layer.name for layer in layers_from_module(rnn)], layers_from_module(rnn)[0].activation
        (['layer 0', 'layer 0 (reverse)'], 'relu')
    """
    if not isinstance(module, torch.nn.Module):
        raise ArgumentTypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    tensors: dict[str, torch.Tensor] = {}
    modules: dict[str, str] = {}
    _flatten(module, "", tensors, modules)
    return layers_from_tensors(tensors, activation=activation, modules=modules, source=type(module).__name__)


def layers_from_tensors(
    tensors: Mapping[str, torch.Tensor | np.ndarray],
    *,
    activation: str | None = None,
    modules: Mapping[str, str] | None = None,
    source: str = "the state_dict",
) -> list[RecurrentLayer]:
    """The ``nn.RNN`` layers in a flat ``state_dict``-like mapping, grouped into networks by key prefix.

    Args:
        tensors: key → tensor (or numpy array), e.g. ``model.state_dict()``.
        activation: tanh (default) or relu; when ``modules`` names a network's nonlinearity it must agree.
        modules: network prefix (``"encoder."``, ``""``) → the recorded ``nn.RNNBase.mode`` (``"RNN_TANH"``,
            ``"RNN_RELU"``, ``"GRU"``, ``"LSTM"``), as found in a pickled module.
        source: the file or object name used in error messages.

    Returns:
        The layers, as :func:`load_recurrent_layers`. GRU/LSTM networks next to vanilla ones are skipped with an
        :class:`~rnnstab.RnnstabWarning` naming them.

    Raises:
        ArgumentTypeError: ``tensors`` is not a mapping.
        InvalidArgumentError, ShapeError, NonFiniteError: as :func:`load_recurrent_layers`.

    Example:
        >>> sd = torch.nn.RNN(3, 4, bias=False).state_dict()
        >>> layer, = layers_from_tensors({"enc." + k: v for k, v in sd.items()}, activation="relu")
        >>> layer.name, layer.keys, layer.b
        ('enc layer 0', ('enc.weight_hh_l0', 'enc.weight_ih_l0'), None)
    """
    if not isinstance(tensors, Mapping):
        raise ArgumentTypeError(
            f"tensors must be a mapping of names to tensors (such as model.state_dict()), got {type(tensors).__name__}"
        )
    modules = modules or {}
    tensors = _effective_weights(tensors, source)
    networks = _networks(tensors)
    if not networks:
        shown = ", ".join(list(tensors)[:6]) + (", …" if len(tensors) > 6 else "")
        raise InvalidArgumentError(
            f"{source} holds no RNN weights: no key ends in weight_hh_l<k> (nn.RNN) or weight_hh (nn.RNNCell) "
            f"among its {len(tensors)} tensors"
            f"{' (' + shown + ')' if shown else ''}; supported: {SUPPORTED}"
        )
    layers: list[RecurrentLayer] = []
    gated: list[str] = []
    for prefix in sorted(networks):
        kind = _gated_kind(prefix, networks[prefix], tensors, modules.get(prefix))
        if kind is not None:
            gated.append(f"{prefix.rstrip('.') or 'the top level'} ({kind})")
            continue
        module_type = _module_type(prefix, networks[prefix])
        act, act_source = _network_activation(prefix, module_type, activation, modules.get(prefix), source)
        layers += _network_layers(prefix, networks[prefix], tensors, act, act_source, source)
    one = len(gated) == 1
    if gated and not layers:
        raise InvalidArgumentError(
            f"{source}: {', '.join(gated)} {'is a gated RNN' if one else 'are gated RNNs'}, "
            f"not a vanilla one: rnnstab analyses {SUPPORTED}"
        )
    if gated:
        warnings.warn(
            f"{source}: skipped only {', '.join(gated)}: {'a gated RNN' if one else 'gated RNNs'}, not "
            f"{'a vanilla one' if one else 'vanilla ones'}; the rest of {source} is analysed",
            RnnstabWarning,
            stacklevel=2,
        )
    return layers


def load_inputs(path: str | os.PathLike[str]) -> torch.Tensor:
    """Read input sequences for :func:`~rnnstab.analyze` from a ``.pt``/``.pth`` tensor or a ``.npy`` array.

    Args:
        path: a file holding one floating array of shape (batch, T, m), or (T, m) for a single sequence
            (batch first, as ``nn.RNN(batch_first=True)``).

    Returns:
        A float64 tensor of shape (batch, T, m).

    Raises:
        InvalidArgumentError: unreadable file, not one array, wrong number of dimensions, NaN/Inf.

    Example:
        >>> import tempfile, numpy as np
        >>> path = tempfile.mkdtemp() + "/x.npy"
        >>> np.save(path, np.zeros((7, 3)))
        >>> tuple(load_inputs(path).shape)
        (1, 7, 3)
    """
    file = _existing_file(path, option="--inputs")
    suffix = file.suffix.lower()
    if suffix != ".npy" and suffix not in TORCH_SUFFIXES:
        raise InvalidArgumentError(f"--inputs {file.name}: expected a .npy or {'/'.join(TORCH_SUFFIXES)} file")
    try:
        value: object = _read_npy(file) if suffix == ".npy" else _load_torch(file, trust_pickle=False)
    except InvalidArgumentError as err:  # the readers' messages are those of analyze's PATH, the model
        raise InvalidArgumentError(f"--inputs {file.name}: {err}") from None
    tensor = _as_tensor(f"--inputs {file.name}", value)
    if tensor.dim() == 2:
        tensor = tensor[None]
    tensor = _checks.tensor(f"--inputs {file.name}", tensor, ndims=(3,))
    return tensor.to(torch.float64)


def _existing_file(path: str | os.PathLike[str], *, option: str = "PATH") -> Path:
    if not isinstance(path, (str, os.PathLike)):  # only from the library: the CLI passes strings
        raise ArgumentTypeError(f"path must be a path (a str or os.PathLike), got {type(path).__name__}")
    file = Path(path)
    if not file.exists():
        raise InvalidArgumentError(f"{option} {file}: no such file")
    if not file.is_file():
        raise InvalidArgumentError(f"{option} {file} is not a file")
    return file


def _read_torch(file: Path, *, trust_pickle: bool) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    tensors: dict[str, torch.Tensor] = {}
    modules: dict[str, str] = {}
    _flatten(_load_torch(file, trust_pickle=trust_pickle), "", tensors, modules)
    return tensors, modules


def _load_torch(file: Path, *, trust_pickle: bool) -> object:
    if _is_torchscript(file):
        raise InvalidArgumentError(
            f"{file.name} is a TorchScript archive (torch.jit.save), not a torch.save file: save its weights with "
            f"torch.save(torch.jit.load({file.name!r}).state_dict(), 'state_dict.pt') and analyse that (the state_dict "
            "does not record the nonlinearity: pass --activation relu for a relu RNN)"
        )
    try:
        if trust_pickle:
            return torch.load(file, weights_only=False, map_location="cpu", pickle_module=_CLASS_NAMING_PICKLE)
        return torch.load(file, weights_only=True, map_location="cpu")
    except _MissingClass as err:
        raise InvalidArgumentError(
            f"{file.name} pickles the class {err}, which cannot be imported here ({type(err.__cause__).__name__}: "
            f"{err.__cause__}); save model.state_dict() instead, or load the file from code that can import the class"
        ) from None
    except pickle.UnpicklingError as err:
        refused = _REFUSED_GLOBAL.search(str(err))
        if not trust_pickle and refused and refused[1].startswith("numpy"):
            raise InvalidArgumentError(
                f"{file.name} holds numpy arrays pickled by torch.save, which the safe loader refuses ({refused[1]}): "
                "save torch tensors instead (torch.save({k: torch.from_numpy(v) for k, v in arrays.items()}, path)) "
                f"or the arrays with numpy.savez; {_PICKLE_RISK}"
            ) from None
        if not trust_pickle and refused:
            raise InvalidArgumentError(
                f"{file.name} holds pickled Python objects ({refused[1]}) that the safe loader refuses: a whole "
                f"nn.Module, or code to run; {_PICKLE_RISK}"
            ) from None
        raise _unreadable(file, "a torch.save file", err) from None
    except Exception as err:  # torch raises RuntimeError, EOFError, KeyError, … for damaged files
        raise _unreadable(file, "a torch.save file", err) from None


def _is_torchscript(file: Path) -> bool:
    """A zip archive with TorchScript's ``constants.pkl`` (torch.load would hand it to torch.jit.load, warning)."""
    try:
        with zipfile.ZipFile(file) as archive:
            return any(name.split("/", 1)[-1] == "constants.pkl" for name in archive.namelist())
    except (OSError, zipfile.BadZipFile):  # a legacy (non-zip) torch.save file, or a damaged one: torch.load decides
        return False


class _MissingClass(Exception):
    """A class named in a trusted pickle that cannot be imported; its message is ``module.name``."""


class _ClassNamingUnpickler(pickle.Unpickler):
    # pickle's ModuleNotFoundError names the module but not the class; here both are known, and the failure is
    # told apart from a damaged file
    def find_class(self, module: str, name: str) -> Any:
        try:
            return super().find_class(module, name)
        except (AttributeError, ImportError) as err:
            raise _MissingClass(f"{module}.{name}") from err


#: what ``torch.load(pickle_module=...)`` uses: its ``Unpickler`` for the objects, ``load`` for the header
_CLASS_NAMING_PICKLE = SimpleNamespace(__name__="pickle", Unpickler=_ClassNamingUnpickler, load=pickle.load)


def _read_safetensors(file: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(file, device="cpu")
    except Exception as err:  # SafetensorError for a bad header, OSError for a short read
        raise _unreadable(file, "a safetensors file", err) from None


def _read_npy(file: Path) -> np.ndarray:
    try:
        return np.asarray(np.load(file, allow_pickle=False))
    except Exception as err:
        raise _unreadable(file, "a .npy array (read without pickle)", err) from None


def _read_npz(file: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(file, allow_pickle=False) as archive:
            return {key: np.asarray(archive[key]) for key in archive.files}
    except Exception as err:  # BadZipFile, ValueError (pickled objects), EOFError, …
        raise _unreadable(file, "a .npz archive (read without pickle)", err) from None


def _unreadable(file: Path, what: str, err: BaseException) -> InvalidArgumentError:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    # torch's own messages run on with advice about other causes: its first sentence is the fact
    first = _ANSI.sub("", lines[0]).split(". ")[0].rstrip(".") if lines else ""
    reason = ": " + first[:200] if first else ""
    return InvalidArgumentError(
        f"cannot read {file.name} as {what}, is it corrupted or truncated? ({type(err).__name__}{reason})"
    )


def _flatten(
    value: object,
    prefix: str,
    tensors: dict[str, torch.Tensor],
    modules: dict[str, str],
    parents: frozenset[int] = frozenset(),
) -> None:
    """Collect every tensor under nested dicts/lists/modules as ``"a.b.c"`` keys; record each RNN's mode."""
    if id(value) in parents:  # a container holding itself (possible in a trusted pickle)
        return
    inside = parents | {id(value)}
    if isinstance(value, torch.Tensor):
        tensors[prefix.removesuffix(".")] = value
    elif isinstance(value, torch.nn.Module):
        for name, sub in value.named_modules():
            if isinstance(sub, (torch.nn.RNNBase, torch.nn.RNNCellBase)):
                at = f"{prefix}{name}." if name else prefix
                modules[at] = sub.mode if isinstance(sub, torch.nn.RNNBase) else _cell_mode(sub)
                # the attributes, not state_dict(): they are the effective weights under a parametrization
                for weight, tensor in module_weights(sub, _rnn_weight_names(sub)).items():
                    tensors[at + weight] = tensor
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _flatten(item, f"{prefix}{key}.", tensors, modules, inside)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _flatten(item, f"{prefix}{index}.", tensors, modules, inside)


def _effective_weights(
    tensors: Mapping[str, torch.Tensor | np.ndarray], source: str
) -> dict[str, torch.Tensor | np.ndarray]:
    """Replace weight-normalised RNN weights (both torch APIs) by the weight g·v/‖v‖ the network uses.

    Raises:
        InvalidArgumentError: an RNN weight under another parametrization.
        ShapeError: a magnitude g that does not fit its direction v.
    """
    parts: dict[str, dict[str, str]] = {}  # effective key → {"g": key, "v": key}; other roles: not weight norm
    for key in tensors:
        if match := _PARAMETRIZED.match(key):
            role = {"0": "g", "1": "v"}.get(match["part"], match["part"] or "original")
            parts.setdefault(match["prefix"] + match["name"], {})[role] = key
        elif match := _LEGACY_HOOK.match(key):
            parts.setdefault(match["name"], {})[match["part"]] = key
    if not parts:
        return dict(tensors)
    result = {key: value for key, value in tensors.items() if not any(key in p.values() for p in parts.values())}
    for name, roles in parts.items():
        if set(roles) != {"g", "v"}:
            weight = repr(name.rsplit(".", 1)[-1])
            # the older hook API is undone by its own function: remove_parametrizations refuses its modules
            undo = (
                f"torch.nn.utils.remove_spectral_norm(module, {weight})"
                if "orig" in roles
                else f"torch.nn.utils.parametrize.remove_parametrizations(module, {weight})"
            )
            raise InvalidArgumentError(
                f"{source}: {name} is under a parametrization other than weight normalisation "
                f"({', '.join(sorted(roles.values()))}); the file holds its unconstrained original, not the weight "
                f"the network uses: call {undo} on the RNN module that holds it, then save the state_dict again"
            )
        g = _as_tensor(f"{source}: {roles['g']}", tensors[roles["g"]])
        v = _as_tensor(f"{source}: {roles['v']}", tensors[roles["v"]])
        if g.dim() != v.dim() or any(a not in (1, b) for a, b in zip(g.shape, v.shape, strict=True)):
            raise ShapeError(
                f"{source}: {roles['g']} of shape {tuple(g.shape)} is not the magnitude g of {roles['v']} of shape "
                f"{tuple(v.shape)} (weight normalisation keeps one g per slice of v)"
            )
        summed = [d for d in range(v.dim()) if g.shape[d] == 1]
        result[name] = v * (g / torch.linalg.vector_norm(v, dim=summed, keepdim=True))
    return result


def _networks(tensors: Mapping[str, object]) -> dict[str, dict[tuple[int, bool], str]]:
    """Network prefix → {(layer, reverse): key of its recurrent matrix}.

    An ``nn.RNNCell``'s ``weight_hh`` is layer 0 of its network, unless ``nn.RNN`` keys share its prefix.
    """
    networks: dict[str, dict[tuple[int, bool], str]] = {}
    for key in tensors:
        if match := _RNN_KEY.match(key):
            networks.setdefault(match["prefix"], {})[(int(match["layer"]), bool(match["reverse"]))] = key
    for key in tensors:
        if (match := _CELL_KEY.match(key)) and match["kind"] == "weight_hh" and match["prefix"] not in networks:
            networks[match["prefix"]] = {(0, False): key}
    return networks


def _module_type(prefix: str, keys: Mapping[tuple[int, bool], str]) -> str:
    """``"nn.RNNCell"`` for a network saved with a cell's keys (``weight_hh``, no ``_l0``), else ``"nn.RNN"``."""
    return "nn.RNNCell" if keys.get((0, False)) == f"{prefix}weight_hh" else "nn.RNN"


def _cell_mode(cell: torch.nn.RNNCellBase) -> str:
    """The ``nn.RNNBase.mode`` an ``nn.RNN`` with this cell's gates and nonlinearity would have."""
    for kind, mode in _CELL_MODES:
        if isinstance(cell, kind):
            return mode
    return "RNN_RELU" if getattr(cell, "nonlinearity", "tanh") == "relu" else "RNN_TANH"


def _rnn_weight_names(module: torch.nn.RNNBase | torch.nn.RNNCellBase) -> list[str]:
    """The weights the module may have (:func:`~rnnstab.rnn.module_weights` keeps those it has)."""
    if isinstance(module, torch.nn.RNNCellBase):
        return ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
    kinds = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")
    directions = ("", "_reverse")[: 2 if module.bidirectional else 1]
    return [f"{kind}_l{k}{d}" for k in range(module.num_layers) for d in directions for kind in kinds]


def _as_tensor(key: str, value: object) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        if not np.issubdtype(value.dtype, np.floating):
            raise ArgumentTypeError(f"{key} must hold floating-point numbers, got dtype {value.dtype}")
        value = torch.from_numpy(np.ascontiguousarray(value))
    if not isinstance(value, torch.Tensor):
        raise ArgumentTypeError(f"{key} must be one array or tensor, got {type(value).__name__}")
    if not value.is_floating_point():
        raise ArgumentTypeError(f"{key} must hold floating-point numbers, got dtype {value.dtype}")
    return value.detach()


def _weight(
    tensors: Mapping[str, torch.Tensor | np.ndarray], key: str, shape: tuple[int, ...], source: str
) -> torch.Tensor:
    tensor = _as_tensor(f"{source}: {key}", tensors[key])
    if tuple(tensor.shape) != shape:
        raise ShapeError(f"{source}: {key} must have shape {shape}, got {tuple(tensor.shape)}")
    _checks.finite(f"{source}: {key}", tensor)
    return tensor


def _gated_kind(
    prefix: str, keys: dict[tuple[int, bool], str], tensors: Mapping[str, Any], mode: str | None
) -> str | None:
    """'GRU'/'LSTM' when the network is gated (from the module, or weight_hh with 3n/4n rows), else None."""
    if mode in _GATES.values():
        return mode
    if f"{prefix}weight_hr_l0" in tensors:  # LSTM with proj_size
        return "LSTM"
    shape = tuple(getattr(tensors[keys[min(keys)]], "shape", ()))
    if len(shape) == 2 and shape[1] > 0 and shape[0] != shape[1] and shape[0] % shape[1] == 0:
        return _GATES.get(shape[0] // shape[1])
    return None


def _network_activation(
    prefix: str, module_type: str, activation: str | None, mode: str | None, source: str
) -> tuple[str, str]:
    name = prefix.rstrip(".") or f"the top-level {module_type}"
    if mode is not None:
        recorded = mode.removeprefix("RNN_").lower()
        if activation is not None and activation != recorded:
            raise InvalidArgumentError(
                f"activation: {activation!r} contradicts {name} in {source}, an {module_type} module with "
                f"nonlinearity={recorded!r}: drop --activation or pass {recorded}"
            )
        return recorded, f"recorded in the {module_type} module"
    if activation is None:
        return "tanh", f"{module_type}'s default: a state_dict does not record the nonlinearity"
    if activation not in _TORCH_NONLINEARITIES:
        raise InvalidArgumentError(
            f"activation: {activation!r} is not an {module_type} nonlinearity: the weights of {name} in {source} "
            f"follow {module_type}'s layout, which runs {' or '.join(_TORCH_NONLINEARITIES)}"
        )
    return activation, "given by the caller"


def _network_layers(
    prefix: str,
    keys: dict[tuple[int, bool], str],
    tensors: Mapping[str, torch.Tensor | np.ndarray],
    activation: str,
    activation_source: str,
    source: str,
) -> list[RecurrentLayer]:
    num_layers = max(layer for layer, _ in keys) + 1
    directions = 2 if any(reverse for _, reverse in keys) else 1
    wanted = [(layer, reverse) for layer in range(num_layers) for reverse in (False, True)[:directions]]
    missing = [_suffix(layer, reverse) for layer, reverse in wanted if (layer, reverse) not in keys]
    if missing:
        raise InvalidArgumentError(
            f"{source}: the RNN {prefix.rstrip('.') or 'at the top level'} has "
            f"{', '.join(sorted(keys[k] for k in keys))} but no {prefix}weight_hh{missing[0]}: layers must run "
            "from l0 without gaps, with both directions in every layer of a bidirectional RNN"
        )
    W0 = _as_tensor(f"{source}: {keys[(0, False)]}", tensors[keys[(0, False)]])
    if W0.dim() != 2 or W0.shape[0] != W0.shape[1]:
        raise ShapeError(
            f"{source}: {keys[(0, False)]} must be a square (n, n) recurrent matrix, got {tuple(W0.shape)}"
        )
    n = int(W0.shape[0])
    if n == 0:
        raise ShapeError(f"{source}: {keys[(0, False)]} is empty (hidden size 0)")
    network = prefix.removesuffix(".")
    layers = []
    for layer, reverse in wanted:
        suffix = keys[(layer, reverse)].removeprefix(f"{prefix}weight_hh")  # "_l1_reverse"; "" for an nn.RNNCell
        ih = f"{prefix}weight_ih{suffix}"
        if ih not in tensors:
            raise InvalidArgumentError(f"{source}: found {keys[(layer, reverse)]} but no {ih} (the input weights)")
        U = _as_tensor(f"{source}: {ih}", tensors[ih])
        m = int(U.shape[-1]) if layer == 0 and U.dim() > 0 else directions * n
        biases = [f"{prefix}{kind}{suffix}" for kind in ("bias_ih", "bias_hh") if f"{prefix}{kind}{suffix}" in tensors]
        used = [keys[(layer, reverse)], ih, *biases]
        b = None
        for key in biases:  # in float64: the sum of two float32 biases is then exact, as nn.RNN in float64 has it
            term = _weight(tensors, key, (n,), source).to(torch.float64)
            b = term if b is None else b + term
        layers.append(
            RecurrentLayer(
                name=f"{network + ' ' if network else ''}layer {layer}{' (reverse)' if reverse else ''}",
                W=_weight(tensors, keys[(layer, reverse)], (n, n), source),
                U=_weight(tensors, ih, (n, m), source),
                b=b,
                activation=activation,
                activation_source=activation_source,
                keys=tuple(used),
                network=network,
                layer=layer,
                reverse=reverse,
                directions=directions,
            )
        )
    return layers


def _suffix(layer: int, reverse: bool) -> str:
    return f"_l{layer}" + ("_reverse" if reverse else "")


def _rnn_keyed(keys: Iterable[str]) -> bool:
    """Whether ``keys`` name nn.RNN weights, or an nn.RNNCell's (its biases tell it from a bare matrix saved as
    weight_hh/weight_ih)."""
    return any(_RNN_KEY.match(key) or _PARAMETRIZED.match(key) or key.endswith(("bias_ih", "bias_hh")) for key in keys)


def _bare(tensors: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """A bare recurrent matrix saved with torch.save or safetensors, keyed as in a bare .npz, or ``None``:
    ``torch.save(W)`` (flattened to the key ""), or a dict holding W/weight_hh and no nn.RNN keys."""
    if set(tensors) == {""}:
        return {"W": tensors[""]}
    if _rnn_keyed(tensors) or not any(key in tensors for key in NPZ_KEYS["W"]):
        return None
    return tensors


def _bare_roles(arrays: Mapping[str, np.ndarray], source: str) -> dict[str, str]:
    """Which array of a bare-matrix mapping (.npz, or a torch.save/safetensors dict) is W, U, b."""
    roles = {role: next((key for key in names if key in arrays), None) for role, names in NPZ_KEYS.items()}
    if roles["W"] is None:
        if len(arrays) != 1:
            raise InvalidArgumentError(
                f"{source} holds the arrays {', '.join(arrays) or '(none)'} but none named "
                f"{' or '.join(NPZ_KEYS['W'])}, the recurrent matrix (optional: {'/'.join(NPZ_KEYS['U'])} input "
                f"weights, {'/'.join(NPZ_KEYS['b'])} bias); nor nn.RNN keys such as weight_hh_l0"
            )
        roles["W"] = next(iter(arrays))
    return {role: key for role, key in roles.items() if key is not None}


def _bare_layer(
    arrays: Mapping[str, Any], roles: Mapping[str, str], *, activation: str | None, source: str
) -> RecurrentLayer:
    if activation is None:
        raise InvalidArgumentError(
            f"{source} is a bare recurrent matrix, which does not record its nonlinearity: pass --activation "
            f"(one of {', '.join(activation_names())})"
        )
    get_activation(activation)  # an unknown name fails here, listing the valid ones
    W = _as_tensor(f"{source}: {roles['W']}", arrays[roles["W"]])
    if W.dim() != 2 or W.shape[0] != W.shape[1]:
        raise ShapeError(f"{source}: the recurrent matrix {roles['W']} must be square (n, n), got {tuple(W.shape)}")
    n = int(W.shape[0])
    if n == 0:
        raise ShapeError(f"{source}: the recurrent matrix {roles['W']} is empty (hidden size 0)")
    _checks.finite(f"{source}: {roles['W']}", W)
    U_key, b_key = roles.get("U"), roles.get("b")
    U = None
    if U_key is not None:
        U = _as_tensor(f"{source}: {U_key}", arrays[U_key])
        if U.dim() != 2 or U.shape[0] != n:
            raise ShapeError(f"{source}: the input weights {U_key} must be (n, m) = ({n}, m), got {tuple(U.shape)}")
        _checks.finite(f"{source}: {U_key}", U)
    b = None if b_key is None else _weight(arrays, b_key, (n,), source)
    return RecurrentLayer(
        name="layer 0",
        W=W,
        U=U,
        b=b,
        activation=activation,
        activation_source="given by the caller",
        keys=tuple(roles.values()),
    )
