"""The vanilla RNN in its two forms, batched over independent networks and input sequences.

Post-activation form (what ``torch.nn.RNN`` computes):  g_t = σ(W g_{t-1} + U x_t + b)
Pre-activation form:                                     h_t = W σ(h_{t-1}) + U x_t + b
Started from g_0 = σ(h_0), induction gives σ(h_t) = g_t for every t.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from rnnstab import _checks
from rnnstab.activations import Activation, TensorFn, get_activation
from rnnstab.exceptions import ArgumentTypeError, InvalidArgumentError, ShapeError
from rnnstab.weights import spectral_norm

_TORCH_ACTIVATIONS = ("tanh", "relu")


class VanillaRNN:
    """A vanilla RNN g_t = σ(W g_{t-1} + U x_t + b), possibly a batch of B independent networks.

    Args:
        W: recurrent weights, (n, n) shared by every input sequence, or (B, n, n): network i runs sequence i.
        U: input weights (n, m) or (B, n, m); ``None`` for an autonomous network (inputs then have m = 0).
        b: bias (n,) or (B, n); ``None`` for no bias.
        activation: a registry name, an :class:`~rnnstab.Activation`, or an elementwise callable.

    All tensors must share one floating dtype and one device. The default initial state is h_0 = 0, g_0 = σ(0).

    Raises:
        ShapeError, NonFiniteError, ArgumentTypeError, InvalidArgumentError: naming the offending argument.

    Example:
        >>> rnn = VanillaRNN(torch.eye(3) * 0.5, U=torch.ones(3, 1), activation="identity")
        >>> rnn.run(torch.ones(1, 2, 1))[0, :, 0].tolist()
        [1.0, 1.5]
    """

    def __init__(
        self,
        W: torch.Tensor,
        U: torch.Tensor | None = None,
        b: torch.Tensor | None = None,
        activation: str | Activation | TensorFn = "tanh",
    ) -> None:
        W = _checks.tensor("W", W, ndims=(2, 3))
        n = W.shape[-1]
        if W.shape[-2] != n:
            raise ShapeError(f"W must be square (n, n) or (B, n, n), got shape {tuple(W.shape)}")
        if n == 0 or (W.dim() == 3 and W.shape[0] == 0):
            raise ShapeError(f"W must hold at least one unit and one network, got shape {tuple(W.shape)}")
        batch = W.shape[0] if W.dim() == 3 else None
        if U is None:
            U = torch.zeros(*W.shape[:-1], 0, dtype=W.dtype, device=W.device)
        U = _checks.tensor("U", U, ndims=(2, 3))
        if U.shape[-2] != n:
            raise ShapeError(f"U must have {n} rows (hidden size of W), got shape {tuple(U.shape)}")
        if b is None:
            b = torch.zeros(n, dtype=W.dtype, device=W.device)
        b = _checks.tensor("b", b, ndims=(1, 2))
        if b.shape[-1] != n:
            raise ShapeError(f"b must have {n} entries (hidden size of W), got shape {tuple(b.shape)}")
        for name, t in (("U", U), ("b", b)):
            t_batch = t.shape[0] if t.dim() == (3 if name == "U" else 2) else None
            if t_batch is not None and t_batch != batch:
                raise ShapeError(
                    f"{name} has a batch of {t_batch} networks but W has "
                    f"{'none (it is (n, n))' if batch is None else batch}: batch sizes must match"
                )
            if t.dtype != W.dtype or t.device != W.device:
                raise ArgumentTypeError(
                    f"{name} is {t.dtype} on {t.device} but W is {W.dtype} on {W.device}: use one dtype and device"
                )
        self.W, self.U, self.b = W, U, b
        self.activation = get_activation(activation)
        self._Wt = W.mT.contiguous()  # a row vector times a contiguous matrix is BLAS's fast path
        self._Ut = U.mT.contiguous()

    @property
    def hidden_size(self) -> int:
        return int(self.W.shape[-1])

    @property
    def input_size(self) -> int:
        return int(self.U.shape[-1])

    @property
    def num_networks(self) -> int | None:
        """B for a batch of networks, ``None`` when one W is shared by every input sequence."""
        return int(self.W.shape[0]) if self.W.dim() == 3 else None

    @property
    def dtype(self) -> torch.dtype:
        return self.W.dtype

    @property
    def device(self) -> torch.device:
        return self.W.device

    def to(self, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> VanillaRNN:
        """Return a copy with every tensor cast to ``dtype`` and moved to ``device`` (``None``: unchanged).

        Raises:
            InvalidArgumentError: a bad dtype or device, or weights too large for ``dtype`` (they would overflow it).
        """
        dtype = self.dtype if dtype is None else _checks.dtype("dtype", dtype)
        device = self.device if device is None else _checks.device("device", device)
        if dtype == self.dtype and device == self.device:
            return self
        W, U, b = (_checks.cast(name, t, dtype, device) for name, t in (("W", self.W), ("U", self.U), ("b", self.b)))
        return VanillaRNN(W, U, b, activation=self.activation)

    def delta(self) -> torch.Tensor:
        """δ = γ‖W‖₂ (exact, float64): shape () for one network, (B,) for a batch. δ < 1 ⇒ gradients vanish."""
        return self.activation.gamma * spectral_norm(self.W)

    def check_inputs(self, x: torch.Tensor, *, name: str = "x") -> torch.Tensor:
        """Validate inputs of shape (batch, T, m) and return them on this RNN's device and dtype.

        Raises:
            ShapeError: not 3-D, T = 0, wrong input size m, or a batch that does not match W's batch.
            NonFiniteError: NaN or Inf in the inputs.
            InvalidArgumentError: inputs too large for this RNN's dtype (float64 values beyond float32's range).
        """
        x = _checks.tensor(name, x, ndims=(3,))
        batch, steps, m = x.shape
        if steps == 0:
            raise ShapeError(f"{name} has T = 0 time steps (shape {tuple(x.shape)}): need at least one step")
        if m != self.input_size:
            hint = " (the network has no inputs: pass torch.zeros(batch, T, 0))" if self.input_size == 0 else ""
            raise ShapeError(
                f"{name} must have input size {self.input_size} in its last dimension, got shape {tuple(x.shape)}{hint}"
            )
        if self.num_networks is not None and batch != self.num_networks:
            raise ShapeError(
                f"{name} has a batch of {batch} sequences but W holds {self.num_networks} networks: "
                "with a batched W, sequence i runs on network i, so the batch sizes must match"
            )
        if batch == 0:
            raise ShapeError(f"{name} has an empty batch (shape {tuple(x.shape)})")
        return _checks.cast(name, x, self.dtype, self.device)

    def initial_preactivation(self, batch: int, h0: torch.Tensor | None = None) -> torch.Tensor:
        """h_0 as a (batch, n) tensor: zeros by default, or ``h0`` of shape (n,) or (batch, n) broadcast."""
        if h0 is None:
            return torch.zeros(batch, self.hidden_size, dtype=self.dtype, device=self.device)
        h0 = _checks.tensor("h0", h0, ndims=(1, 2))
        if h0.shape[-1] != self.hidden_size or (h0.dim() == 2 and h0.shape[0] != batch):
            raise ShapeError(
                f"h0 must be ({self.hidden_size},) or ({batch}, {self.hidden_size}), got {tuple(h0.shape)}"
            )
        return _checks.cast("h0", h0, self.dtype, self.device).expand(batch, self.hidden_size).clone()

    def drive(self, x: torch.Tensor) -> torch.Tensor:
        """U x_t + b for every t: (batch, T, n), for inputs already checked by :meth:`check_inputs`."""
        bias = self.b if self.b.dim() == 1 else self.b[:, None, :]
        return torch.matmul(x, self._Ut) + bias  # matmul broadcasts a shared (m, n) or per-network (B, m, n) Uᵀ

    def recur(self, state: torch.Tensor, drive_t: torch.Tensor, *, out: torch.Tensor | None = None) -> torch.Tensor:
        """W·state + drive_t for a (batch, n) state: the pre-activation of the next step (written into ``out``, a
        contiguous (batch, n) tensor, if given; ``out`` is for no-grad loops, as out= does not record autograd)."""
        if self.num_networks is None:
            return torch.addmm(drive_t, state, self._Wt, out=out)
        if out is None:
            return torch.baddbmm(drive_t[:, None, :], state[:, None, :], self._Wt)[:, 0, :]
        torch.baddbmm(drive_t[:, None, :], state[:, None, :], self._Wt, out=out[:, None, :])
        return out

    def run(self, x: torch.Tensor, *, h0: torch.Tensor | None = None) -> torch.Tensor:
        """Post-activation form from g_0 = σ(h_0): returns g_1 … g_T as (batch, T, n)."""
        x = self.check_inputs(x)
        drive = self.drive(x)
        g = self.activation.fn(self.initial_preactivation(x.shape[0], h0))
        out = torch.empty_like(drive)
        for t in range(x.shape[1]):
            g = self.activation.fn(self.recur(g, drive[:, t]))
            out[:, t] = g
        return out

    def run_preactivation(self, x: torch.Tensor, *, h0: torch.Tensor | None = None) -> torch.Tensor:
        """Pre-activation form h_t = W σ(h_{t-1}) + U x_t + b: returns h_1 … h_T as (batch, T, n)."""
        x = self.check_inputs(x)
        drive = self.drive(x)
        h = self.initial_preactivation(x.shape[0], h0)
        out = torch.empty_like(drive)
        for t in range(x.shape[1]):
            h = self.recur(self.activation.fn(h), drive[:, t])
            out[:, t] = h
        return out

    @classmethod
    def from_torch(cls, module: torch.nn.Module, *, layer: int = 0, reverse: bool = False) -> VanillaRNN:
        """The RNN of one layer (and direction) of a ``torch.nn.RNN``, or of an ``nn.RNNCell``, with b = b_ih + b_hh.

        For a layer above the first, its inputs are the outputs of the layer below; for the reverse direction of
        a bidirectional module, feed the sequence flipped in time. A cell is one layer, one direction. Parametrized
        weights are read as the forward pass uses them, without changing the module (:func:`module_weights`).

        Raises:
            ArgumentTypeError: ``module`` is neither a ``torch.nn.RNN`` nor an ``nn.RNNCell`` (GRU and LSTM are not
                vanilla RNNs), or ``layer`` is not an integer.
            InvalidArgumentError: no such layer/direction, or a nonlinearity other than tanh/relu.
        """
        reverse = _checks.boolean("reverse", reverse)
        if isinstance(module, torch.nn.RNN):
            num_layers, bidirectional = module.num_layers, module.bidirectional
            suffix = f"_l{layer}" + ("_reverse" if reverse else "")
        elif isinstance(module, torch.nn.RNNCell):
            num_layers, bidirectional, suffix = 1, False, ""  # a cell names its weights without _l<k>
        else:
            gated = isinstance(module, (torch.nn.GRU, torch.nn.LSTM, torch.nn.GRUCell, torch.nn.LSTMCell))
            raise ArgumentTypeError(
                f"from_torch needs a torch.nn.RNN or nn.RNNCell (tanh or relu), got {type(module).__name__}"
                + ("; GRU and LSTM are gated, not vanilla RNNs, and are not supported" if gated else "")
            )
        if module.nonlinearity not in _TORCH_ACTIVATIONS:
            raise InvalidArgumentError(f"unsupported nonlinearity {module.nonlinearity!r}")
        layer = _checks.integer("layer", layer)
        if not 0 <= layer < num_layers:
            raise InvalidArgumentError(f"layer must be in [0, {num_layers - 1}], got {layer}")
        if reverse and not bidirectional:
            raise InvalidArgumentError("reverse=True needs a bidirectional nn.RNN")
        weights = module_weights(module, [kind + suffix for kind in ("weight_hh", "weight_ih", "bias_ih", "bias_hh")])
        b = weights["bias_ih" + suffix] + weights["bias_hh" + suffix] if module.bias else None
        return cls(weights["weight_hh" + suffix], weights["weight_ih" + suffix], b, activation=module.nonlinearity)

    def to_torch(self) -> torch.nn.RNN:
        """An equivalent single-layer ``torch.nn.RNN`` (batch_first=True, bias_hh = 0).

        Raises:
            InvalidArgumentError: batched networks, no inputs, or an activation other than torch.tanh/torch.relu
                (nn.RNN has only those).
        """
        name = self.activation.name.split("[")[0]  # "tanh[γ=1]", the scaled family at its own γ, is tanh itself
        # By σ itself, not its name: a user's callable called "tanh" (say tanh(2x)) gets that name from __name__.
        native = {"tanh": torch.tanh, "relu": torch.relu}.get(name) is self.activation.fn
        if self.num_networks is not None or self.input_size == 0 or not native:
            raise InvalidArgumentError(
                "to_torch needs one network (W of shape (n, n)) with inputs and a tanh or relu activation, got "
                f"{'a batch of ' + str(self.num_networks) + ' networks' if self.num_networks else 'one network'}, "
                f"m = {self.input_size}, activation {self.activation.name!r}"
            )
        module = torch.nn.RNN(
            self.input_size, self.hidden_size, nonlinearity=name, batch_first=True, dtype=self.dtype, device=self.device
        )
        params = dict(module.named_parameters())
        with torch.no_grad():
            params["weight_hh_l0"].copy_(self.W)
            params["weight_ih_l0"].copy_(self.U)
            params["bias_ih_l0"].copy_(self.b)
            params["bias_hh_l0"].zero_()
        return module


def module_weights(module: torch.nn.Module, names: Iterable[str]) -> dict[str, torch.Tensor]:
    """Detached copies of the weights ``names`` of ``module`` (those it has), as its forward pass uses them.

    A parametrized weight is evaluated with the module in eval mode, which is then restored: in training mode
    ``spectral_norm`` runs a power-iteration step at every read, so reading would change the live model and give a
    different weight each time; in eval mode it gives the weight of the last training step, and changes nothing.
    """
    modes = {sub: sub.training for sub in module.modules()}
    module.eval()
    try:
        found = {name: getattr(module, name, None) for name in names}
    finally:
        for sub, training in modes.items():
            sub.training = training
    return {name: value.detach().clone() for name, value in found.items() if isinstance(value, torch.Tensor)}


def check_rnn(rnn: object) -> VanillaRNN:
    """``rnn`` itself when it is a :class:`VanillaRNN`; a clear error otherwise (a bare W is the usual slip).

    Raises:
        ArgumentTypeError: naming the type received and how to build a VanillaRNN.
    """
    if not isinstance(rnn, VanillaRNN):
        raise ArgumentTypeError(
            f"rnn must be a rnnstab.VanillaRNN, got {type(rnn).__name__}: wrap the weights as "
            "rnnstab.VanillaRNN(W, U, b, activation=...)"
        )
    return rnn
