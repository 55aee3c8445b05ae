"""Run CPU code as if some of its tensors lived on a CUDA device, and fail where real CUDA would refuse to mix them.

No GPU is needed. Inside :func:`fake_cuda`, a tensor created for a CUDA device (``device="cuda"``, ``.to("cuda")``,
``.cuda()``) is an ordinary CPU tensor marked as a CUDA one: it reports ``device == cuda:0`` and ``is_cuda``, and
what is computed from it is marked too. Every torch call is checked against the rules CUDA enforces:

* the tensors of an operation share one device, except that a 0-dim CPU tensor may join a CUDA operation (torch
  treats it as a scalar); an ``out=`` tensor counts as an operand;
* advanced indexing of a CUDA tensor may use CPU indices, but a CPU tensor may not be indexed with CUDA ones, and
  index-assigned values share the indexed tensor's device (``copy_`` and slice assignment copy across devices);
* ``.numpy()`` of a CUDA tensor fails, and a CPU generator cannot draw CUDA random numbers.

A breach raises :class:`DeviceMismatch` naming the call, so a test of the CUDA path proves that the code keeps its
devices apart, and that what it returns is where its docstring says. What this cannot check: kernels that CUDA
lacks, numerical differences between the devices, and speed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch.overrides import TorchFunctionMode

CUDA = torch.device("cuda", 0)
_MARK = "_fake_cuda_device"
_INDEXING = {torch.Tensor.__getitem__, torch.Tensor.__setitem__}
_TO_CPU = {torch.Tensor.cpu}
_TO_CUDA = {torch.Tensor.cuda}
_COPIES = {torch.Tensor.copy_}  # copy_ moves data across devices
# nn.Module.to parses its place (which must stay CUDA) and compares each parameter with its moved copy
_INSPECTIONS = {torch._C._nn._parse_to, torch._has_compatible_shallow_copy_type}


class DeviceMismatch(AssertionError):
    """An operation that real CUDA would refuse: tensors on two devices."""


def on_cuda(t: torch.Tensor) -> bool:
    """Whether ``t`` is marked as a CUDA tensor; inside torch.func transforms, whether it or what it wraps is."""
    return _place(t) is True


def _place(t: torch.Tensor) -> bool | None:
    """True: CUDA, False: CPU, None: unknown — a tensor that torch.func's transforms made in C++ from unmarked ones
    (their batching and autograd internals), which the checks leave out."""
    wrapped = False
    while not getattr(t, _MARK, False):
        if not torch._C._functorch.is_functorch_wrapped_tensor(t):
            return None if wrapped else False
        t, wrapped = torch._C._functorch.get_unwrapped(t), True
    return True


def _mark(value: Any, cuda: bool) -> Any:
    """Mark (or unmark) every tensor in a result, which may be a tuple or a named tuple of tensors."""
    if isinstance(value, torch.Tensor):
        if cuda:
            setattr(value, _MARK, True)
        elif on_cuda(value):
            delattr(value, _MARK)
    elif isinstance(value, (tuple, list)):
        for item in value:
            _mark(item, cuda)
    return value


def _tensors(value: Any) -> Iterator[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _tensors(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)


def _is_cuda(value: Any) -> bool | None:
    """Whether a device argument names CUDA (None: not a device)."""
    if isinstance(value, torch.device):
        return value.type == "cuda"
    if isinstance(value, str):
        try:
            return torch.device(value).type == "cuda"
        except RuntimeError:
            return None
    return None


def _target(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool | None:
    """For a call that places its result (factories, ``.to``), whether the place is CUDA (None: not such a call)."""
    if "device" in kwargs and kwargs["device"] is not None:
        return bool(_is_cuda(kwargs["device"]))
    if func is torch.Tensor.to:
        for arg in args[1:]:
            if isinstance(arg, torch.Tensor):
                return on_cuda(arg)
            found = _is_cuda(arg)
            if found is not None:
                return found
    return None


def _name(func: Any) -> str:
    return getattr(func, "__qualname__", None) or getattr(func, "__name__", repr(func))


class FakeCuda(TorchFunctionMode):
    """The mode :func:`fake_cuda` enters; ``calls`` counts the torch calls made on CUDA tensors."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        kwargs = dict(kwargs or {})
        self.calls += any(on_cuda(t) for t in _tensors((args, kwargs)))
        if func == torch.Tensor.device.__get__:  # a new method-wrapper at every access: compare, not `is`
            return CUDA if on_cuda(args[0]) else func(*args, **kwargs)
        if func == torch.Tensor.is_cuda.__get__:
            return on_cuda(args[0])
        if func in _INSPECTIONS:  # they read metadata and compute nothing
            return func(*args, **kwargs)
        if func == torch.Tensor.data.__set__:  # how nn.Module.to moves a parameter: the object takes the new place
            func(*args, **kwargs)
            _mark(args[0], on_cuda(args[1]))
            return None
        if func is torch.Tensor.numpy and on_cuda(args[0]):
            raise DeviceMismatch("can't convert a cuda:0 tensor to numpy: copy it to the CPU first (.cpu())")
        if func in _TO_CPU or func in _TO_CUDA:
            return _mark(func(*args, **kwargs).clone(), func in _TO_CUDA)
        target = _target(func, args, kwargs)
        if target is not None:
            if "device" in kwargs:
                kwargs["device"] = "cpu"
            generator = kwargs.get("generator")
            if target and generator is not None and generator.device.type != "cuda":
                raise DeviceMismatch(f"{_name(func)}: a CPU generator cannot draw on a CUDA device")
            if func is torch.Tensor.to:  # .to(device, …) with the device positional
                args = tuple("cpu" if _is_cuda(a) is not None else a for a in args)
            result = func(*args, **kwargs)
            source = args[0] if func is torch.Tensor.to else None
            if isinstance(source, torch.Tensor) and result is source and on_cuda(source) != target:
                result = result.clone()  # a real move makes a new tensor; the source keeps its own device
            return _mark(result, target)
        self._check(func, args, kwargs)
        result = func(*args, **kwargs)
        if args and result is args[0]:
            return result  # in place: its device does not change
        if func in _INDEXING:
            return _mark(result, on_cuda(args[0]))
        return _mark(result, any(on_cuda(t) for t in _tensors((args, kwargs))))

    @staticmethod
    def _check(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if func in _COPIES:
            return
        if func in _INDEXING:
            indexed, index = args[0], args[1]
            if any(on_cuda(t) for t in _tensors(index)) and not on_cuda(indexed):
                raise DeviceMismatch(f"{_name(func)}: a CPU tensor indexed with a CUDA tensor")
            value = args[2] if len(args) > 2 else None
            advanced = any(True for _ in _tensors(index))  # basic indexing assigns by copy_, across devices
            scalar = isinstance(value, torch.Tensor) and value.dim() == 0 and not on_cuda(value)
            if advanced and isinstance(value, torch.Tensor) and not scalar and on_cuda(value) != on_cuda(indexed):
                raise DeviceMismatch(f"{_name(func)}: a tensor index-assigned a value from another device")
            return
        devices = {_place(t) for t in _tensors((args, kwargs)) if t.dim() > 0 or on_cuda(t)} - {None}
        if len(devices) > 1:
            shapes = [(tuple(t.shape), "cuda" if on_cuda(t) else "cpu") for t in _tensors((args, kwargs))]
            raise DeviceMismatch(f"{_name(func)} mixes CPU and CUDA tensors: {shapes}")


@contextlib.contextmanager
def fake_cuda(monkeypatch: pytest.MonkeyPatch, free_bytes: int = 16 * 2**30) -> Iterator[FakeCuda]:
    """Within the block, one CUDA device with ``free_bytes`` of free memory appears to exist (see the module)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free_bytes, 2 * free_bytes))
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "emulated CUDA device")
    with FakeCuda() as mode:
        yield mode
