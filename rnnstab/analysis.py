"""Audit the recurrent layers of a real, trained RNN along the trajectories the real network runs.

Each layer (and direction) becomes one :class:`~rnnstab.audit.AuditSubject` whose inputs are exactly those it sees
inside the network: layer 0 reads the given sequences; layer k > 0 reads the outputs of layer k − 1 (both
directions concatenated, forward first, as ``torch.nn.RNN`` does); a reverse direction reads its input sequence
time-reversed. Every network starts from h_0 = 0, as ``nn.RNN`` does without an ``hx``. Trajectories run in float64.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch

from rnnstab import _checks
from rnnstab.audit import Audit, AuditSubject, audit, audit_memory
from rnnstab.checkpoint import RecurrentLayer, layers_from_module
from rnnstab.exceptions import ArgumentTypeError, InvalidArgumentError, ShapeError

DEFAULT_STEPS = 200
DEFAULT_BATCH = 8


def layer_inputs(layers: Sequence[RecurrentLayer], inputs: torch.Tensor) -> list[torch.Tensor]:
    """The input sequence each layer of one network sees when the network runs on ``inputs``.

    Args:
        layers: the layers of one network, as :func:`~rnnstab.load_recurrent_layers` returns them (layer 0 first,
            forward before reverse).
        inputs: (batch, T, m) sequences for layer 0, m its input size.

    Returns:
        One float64 tensor (batch, T, m_k) per layer, ordered layer 0, layer 0 (reverse), layer 1, …, each in
        that layer's own time order (reversed for a reverse direction): running the layer on it gives its outputs
        inside the network.

    Raises:
        InvalidArgumentError: layers from several networks, or not a complete stack.
        ShapeError: ``inputs`` not (batch ≥ 1, T ≥ 1, m) with m the input size of layer 0.

    Example:
        >>> rnn = torch.nn.RNN(2, 3, num_layers=2, bidirectional=True)
        >>> [tuple(x.shape) for x in layer_inputs(layers_from_module(rnn), torch.zeros(4, 5, 2))]
        [(4, 5, 2), (4, 5, 2), (4, 5, 6), (4, 5, 6)]
    """
    stack = _stack(layers)
    x = _checks.tensor("inputs", inputs, ndims=(3,)).to(torch.float64)
    if 0 in x.shape[:2]:
        raise ShapeError(f"inputs must hold at least one sequence of at least one step, got shape {tuple(x.shape)}")
    first = stack[0][0]
    if x.shape[-1] != first.input_size:
        why = f"{first.keys[1]} is {tuple(first.U.shape)}" if first.U is not None else "U = I for a bare matrix"
        raise ShapeError(
            f"inputs must match the input size of {first.name} in their last dimension, got size {x.shape[-1]} "
            f"(shape {tuple(x.shape)}) but {first.name} takes m = {first.input_size} ({why})"
        )
    seen: list[torch.Tensor] = []
    for k, directions in enumerate(stack):
        outputs = []
        for layer in directions:
            sequence = x.flip(1) if layer.reverse else x
            seen.append(sequence)
            if k + 1 < len(stack):
                out = layer.to_rnn().run(sequence)
                outputs.append(out.flip(1) if layer.reverse else out)
        if outputs:
            x = torch.cat(outputs, dim=-1)
    return seen


def analyze(
    layers: Sequence[RecurrentLayer],
    *,
    inputs: torch.Tensor | None = None,
    input_scale: float | None = None,
    steps: int | None = None,
    batch: int | None = None,
    seed: int | None = None,
    horizon_drop: float = 1e-3,
    progress: Callable[[str], None] | None = None,
) -> Audit:
    """Audit every layer of real RNN weights along the trajectories of the real network.

    Args:
        layers: from :func:`~rnnstab.load_recurrent_layers` or :func:`~rnnstab.layers_from_module`; layers of
            several networks are grouped by their ``network`` prefix, each network driven by its own inputs.
        inputs: (batch, T, m) or (T, m) sequences for layer 0 (every network must then take the same m). Default:
            synthetic i.i.d. N(0, input_scale²) inputs of shape (batch, steps, m), drawn from ``seed`` per network.
        input_scale: standard deviation of the synthetic inputs (≥ 0, default 1; 0 runs the network on its biases
            alone); with ``inputs``, leave ``None``.
        steps: T of the synthetic inputs (default 200); with ``inputs``, leave ``None``.
        batch: number of synthetic sequences (default 8); with ``inputs``, leave ``None``.
        seed: seed of the synthetic inputs (default 0); with ``inputs``, leave ``None``.
        horizon_drop, progress: passed to :func:`~rnnstab.audit.audit`.

    Returns:
        The :class:`~rnnstab.audit.Audit`, one row per layer and direction, named as the layers.

    Raises:
        ArgumentTypeError: ``layers`` is not a list of :class:`~rnnstab.RecurrentLayer` (a module: see
            :func:`analyze_module`).
        InvalidArgumentError: no layers; ``input_scale``/``steps``/``batch``/``seed`` with ``inputs``; a bad scale,
            steps, batch, or a seed outside [0, 2^63 − 1].
        ShapeError: ``inputs`` that do not fit layer 0, or with no sequence or no step.

    Example:
        >>> rnn = torch.nn.RNN(2, 3, num_layers=2)
        >>> result = analyze(layers_from_module(rnn), steps=20, batch=2)
        >>> [row.name for row in result.rows]
        ['layer 0', 'layer 1']
    """
    if inputs is not None:
        synthetic = {"input_scale": input_scale, "steps": steps, "batch": batch, "seed": seed}
        given = [name for name, value in synthetic.items() if value is not None]
        if given:
            one = len(given) == 1
            raise InvalidArgumentError(
                f"{', '.join(given)}: {'this describes' if one else 'these describe'} synthetic inputs and "
                f"{'has' if one else 'have'} no effect when inputs are given; leave {'it' if one else 'them'} unset"
            )
        inputs = _checks.tensor("inputs", inputs, ndims=(2, 3))
        inputs = inputs[None] if inputs.dim() == 2 else inputs
    scale = _checks.non_negative_float("input_scale", 1.0 if input_scale is None else input_scale)
    shape = (
        _checks.positive_int("batch", DEFAULT_BATCH if batch is None else batch),
        _checks.positive_int("steps", DEFAULT_STEPS if steps is None else steps),
    )
    seed = _checks.seed("seed", 0 if seed is None else seed)
    networks = _networks(layers)
    # Refused before anything is allocated: a large hidden size would otherwise be killed by the system for memory
    # (no message at all) or swap for hours in the eigenvalue solver.
    _checks.check_memory(
        _memory([layer for network in networks for layer in network], *(shape if inputs is None else inputs.shape[:2])),
        torch.device("cpu"),
        "analyse fewer or shorter input sequences (batch, steps), or a smaller network",
    )
    subjects = []
    for network in networks:
        stack = [layer for directions in _stack(network) for layer in directions]
        if inputs is None:
            generator = torch.Generator().manual_seed(seed)  # per network: its inputs do not depend on the others
            x = scale * torch.randn((*shape, stack[0].input_size), generator=generator, dtype=torch.float64)
            _checks.synthetic_inputs(x, scale)
            source = f"synthetic N(0, {scale:g}²), seed {seed}"
        else:
            x, source = inputs, "given"
        for layer, seen in zip(stack, layer_inputs(stack, x), strict=True):
            driven = "the inputs" if layer.layer == 0 else f"the outputs of layer {layer.layer - 1}"
            details = {
                **layer.details(),
                "inputs": f"{source}; {driven}" + (", time-reversed" if layer.reverse else ""),
            }
            subjects.append(AuditSubject(name=layer.name, rnn=layer.to_rnn(), inputs=seen, details=details))
    return audit(subjects, horizon_drop=horizon_drop, progress=progress)


def analyze_module(
    module: torch.nn.Module,
    *,
    inputs: torch.Tensor | None = None,
    input_scale: float | None = None,
    steps: int | None = None,
    batch: int | None = None,
    seed: int | None = None,
    horizon_drop: float = 1e-3,
    progress: Callable[[str], None] | None = None,
) -> Audit:
    """:func:`analyze` of a live ``torch.nn.RNN`` (or a module holding some): the same numbers as its saved file.

    Args:
        module: a ``torch.nn.RNN``, or any module containing some (each analysed, named by its attribute path).
        inputs, input_scale, steps, batch, seed, horizon_drop, progress: as :func:`analyze`.

    Returns:
        The :class:`~rnnstab.audit.Audit`, bitwise equal to that of the module saved as a state_dict, checkpoint,
        pickle, safetensors or npz and read back.

    Raises:
        ArgumentTypeError: ``module`` is not a ``torch.nn.Module``.
        InvalidArgumentError, ShapeError: no ``nn.RNN`` inside, or bad inputs (see :func:`analyze`).

    Example:
        >>> result = analyze_module(torch.nn.RNN(2, 3, nonlinearity="relu"), steps=20, batch=2)
        >>> [row.name for row in result.rows]
        ['layer 0']
    """
    return analyze(
        layers_from_module(module),
        inputs=inputs,
        input_scale=input_scale,
        steps=steps,
        batch=batch,
        seed=seed,
        horizon_drop=horizon_drop,
        progress=progress,
    )


def _memory(layers: Sequence[RecurrentLayer], batch: int, steps: int) -> int:
    """Bytes :func:`analyze` holds at once (float64): every layer's W, U and input sequences, and the largest
    layer's audit (:func:`~rnnstab.audit.audit_memory`)."""
    held = sum(n * n + n * m + batch * steps * m for n, m in ((la.hidden_size, la.input_size) for la in layers))
    return 8 * held + max(audit_memory(la.hidden_size, 1, 1, steps, batch, la.input_size) for la in layers)


def _networks(layers: Iterable[RecurrentLayer]) -> list[list[RecurrentLayer]]:
    """Group layers by network, in first-seen order."""
    if isinstance(layers, (RecurrentLayer, torch.nn.Module, str, bytes)) or not isinstance(layers, Iterable):
        hint = "; for a torch module call analyze_module(module)" if isinstance(layers, torch.nn.Module) else ""
        raise ArgumentTypeError(
            f"layers must be a list of RecurrentLayer (from load_recurrent_layers or layers_from_module), got "
            f"{type(layers).__name__}{hint}"
        )
    layers = list(layers)  # a generator would be used up by the checks below and leave nothing to analyse
    if not layers:
        raise InvalidArgumentError("no layers to analyse")
    for layer in layers:
        if not isinstance(layer, RecurrentLayer):
            raise ArgumentTypeError(f"layers must hold RecurrentLayer objects, got {type(layer).__name__}")
    networks: dict[str, list[RecurrentLayer]] = {}
    for layer in layers:
        networks.setdefault(layer.network, []).append(layer)
    return list(networks.values())


def _stack(layers: Sequence[RecurrentLayer]) -> list[list[RecurrentLayer]]:
    """Layers of one network as [[forward, reverse?] per layer k], checked complete."""
    networks = _networks(layers)
    if len(networks) != 1:
        raise InvalidArgumentError(
            f"layer_inputs takes the layers of one network, got {len(networks)}: "
            f"{', '.join(repr(net[0].network) for net in networks)}"
        )
    directions = networks[0][0].directions
    ordered = sorted(networks[0], key=lambda layer: (layer.layer, layer.reverse))
    expected = [(k, reverse) for k in range(len(ordered) // directions) for reverse in (False, True)[:directions]]
    if [(layer.layer, layer.reverse) for layer in ordered] != expected:
        raise InvalidArgumentError(
            "the layers do not form a complete stack (layers 0, 1, … each with "
            f"{directions} direction(s)): got {', '.join(layer.name for layer in ordered)}"
        )
    return [ordered[k * directions : (k + 1) * directions] for k in range(len(ordered) // directions)]
