"""Feeding any loader's batches to a model: tensors, tuples and lists, dicts, or anything a
``call_fn(model, batch)`` knows how to call the model with.

The default call is ``torch.optim.swa_utils.update_bn``'s: the model is called with the batch's
first tensor (a tensor batch itself; in a tuple or list, its first tensor, as ``(x, y)`` gives
``x``; in a dict, its first tensor value in insertion order; nested containers depth first).
Before any call every tensor of the batch moves to the model's device; the default call also
casts its floating-point input to the model's floating dtype (float64 batches into a float32
model). A custom ``call_fn`` gets the moved batch and does the rest itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable

import torch
from torch import Tensor, nn

CallFn = Callable[[nn.Module, Any], Any]


def placement(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """The device of the model's first parameter (or buffer) and its first floating dtype."""
    tensors = list(model.parameters()) + list(model.buffers())
    if not tensors:
        raise ValueError("the model has neither parameters nor buffers: nothing says its device")
    dtype = next((t.dtype for t in tensors if t.is_floating_point()), torch.get_default_dtype())
    return tensors[0].device, dtype


def to_device(batch: Any, device: torch.device) -> Any:
    """``batch`` with every tensor in it (nested in tuples, lists, dicts) on ``device``."""
    if isinstance(batch, Tensor):
        return batch.to(device)
    if isinstance(batch, Mapping):
        moved = {k: to_device(v, device) for k, v in batch.items()}
        try:
            return type(batch)(moved)
        except TypeError:  # a mapping type that is not built from a dict
            return moved
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # a named tuple
        return type(batch)(*(to_device(v, device) for v in batch))
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def first_tensor(batch: Any) -> Tensor | None:
    """The batch's first tensor, depth first (None if it holds none)."""
    if isinstance(batch, Tensor):
        return batch
    items = batch.values() if isinstance(batch, Mapping) else batch if isinstance(batch, (tuple, list)) else ()
    return next((t for t in map(first_tensor, items) if t is not None), None)


def call_with_first_tensor(model: nn.Module, batch: Any) -> Any:
    """The default call: ``model(first tensor of the batch)``, cast to the model's floating dtype."""
    x = first_tensor(batch)
    if x is None:
        raise TypeError(f"a batch of type {type(batch).__name__} holds no tensor to call the model with: "
                        "pass call_fn=lambda model, batch: model(...) to say how")
    _, dtype = placement(model)
    return model(x.to(dtype) if x.is_floating_point() else x)


def forward(model: nn.Module, batch: Any, call_fn: CallFn | None = None) -> Any:
    """Move ``batch`` to the model's device and call the model with it (``call_fn`` or the default)."""
    device, _ = placement(model)
    return (call_fn or call_with_first_tensor)(model, to_device(batch, device))
