"""One mechanism to borrow a model's BatchNorm layers and give them back exactly as they were.

Everything in dmbn that runs a model for its statistics changes BN state on the way: PreciseBN
sets momentum 1 and runs train-mode forwards, recalibration loads statistics layer by layer,
test-batch evaluation puts only the BN layers in train mode, and the estimator bank replaces
every BN buffer by a view into one shared vector and adds forward hooks. ``preserved(model)``
(or a ``BNState`` held open, as the bank does between ``attach()`` and ``close()``) saves what
they change and restores it:

* every BN layer's buffer *objects* ``running_mean``, ``running_var`` and ``num_batches_tracked``
  (so a layer gets its own unshared tensors back, not views) and their values, bitwise;
* every BN layer's ``momentum`` (``None`` included);
* every module's own ``training`` flag (a partly frozen model stays partly frozen);
* the forward hooks registered through it (``BNState.hook``); nobody else's hooks are touched.

Which layers dmbn estimates: those that track running statistics. A layer built with
``track_running_stats=False`` normalises every batch with its own statistics in both modes and has
nothing to estimate: it is left alone, as ``torch.optim.swa_utils.update_bn`` leaves it, and
``checked_layers`` names it in a warning. A layer dmbn cannot handle is refused naming it.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import Callable, Iterator

import torch
from torch import Tensor, nn
from torch.nn.parameter import UninitializedBuffer
from torch.utils.hooks import RemovableHandle

BatchNorm = nn.modules.batchnorm._BatchNorm
BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def all_batchnorms(model: nn.Module) -> list[tuple[str, BatchNorm]]:
    """Every BatchNorm layer (``nn.BatchNorm1d/2d/3d``, ``SyncBatchNorm``, lazy and subclasses)."""
    return [(name or "<model>", m) for name, m in model.named_modules() if isinstance(m, BatchNorm)]


def tracked_layers(model: nn.Module) -> list[tuple[str, BatchNorm]]:
    """The BN layers with running statistics, in registration (= forward) order; silent."""
    return [(name, bn) for name, bn in all_batchnorms(model) if bn.track_running_stats]


def checked_layers(model: nn.Module) -> list[tuple[str, BatchNorm]]:
    """``tracked_layers``, after warning about the layers left alone (no running statistics) and
    refusing, by name, a layer whose statistics dmbn cannot estimate."""
    untracked = [name for name, bn in all_batchnorms(model) if not bn.track_running_stats]
    if untracked:
        warnings.warn(f"BatchNorm layers without running statistics are left alone: {', '.join(untracked)} "
                      "(track_running_stats=False: they normalise every batch with its own statistics)",
                      stacklevel=3)
    layers = tracked_layers(model)
    for name, bn in layers:
        if isinstance(bn.running_mean, UninitializedBuffer):
            raise ValueError(f"BatchNorm layer {name!r} is a lazy layer not initialised yet: run one "
                             "forward through the model first")
        if bn.running_mean is None or bn.running_var is None:
            raise ValueError(f"BatchNorm layer {name!r} tracks running statistics but has no running_mean/"
                             "running_var buffers: build it with track_running_stats=True, or set "
                             "track_running_stats=False to leave it alone")
    return layers


class BNState:
    """The saved BN state of ``model`` (module docstring); ``restore()`` puts it back and removes
    the hooks registered through ``hook``. Restoring twice is harmless."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.layers = [bn for _, bn in all_batchnorms(model)]
        self.modes = [(m, m.training) for m in model.modules()]
        self.momenta = [bn.momentum for bn in self.layers]
        # the tensors themselves (a layer gets its own objects back) and copies of their values
        self.buffers = [{b: bn._buffers.get(b) for b in BUFFERS} for bn in self.layers]
        self.values = [{b: t.detach().clone() for b, t in saved.items() if _materialised(t)}
                       for saved in self.buffers]
        self.handles: list[RemovableHandle] = []

    def hook(self, module: nn.Module, pre_hook: Callable) -> RemovableHandle:
        """Register a forward pre-hook that ``restore()`` removes."""
        handle = module.register_forward_pre_hook(pre_hook)
        self.handles.append(handle)
        return handle

    @torch.no_grad()
    def restore(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()
        for bn, momentum, buffers, values in zip(self.layers, self.momenta, self.buffers, self.values):
            bn.momentum = momentum
            for name, tensor in buffers.items():
                if name in bn._buffers:
                    bn._buffers[name] = tensor
                if name in values:
                    tensor.copy_(values[name])
        for module, training in self.modes:
            module.training = training


def _materialised(tensor: Tensor | None) -> bool:
    return tensor is not None and not isinstance(tensor, UninitializedBuffer)


@contextmanager
def preserved(model: nn.Module) -> Iterator[BNState]:
    """Whatever the block does to BN buffers, momenta, counters, modes (and the hooks it registers
    through the yielded ``BNState``) is undone when it ends, however it ends."""
    state = BNState(model)
    try:
        yield state
    finally:
        state.restore()


class CallCounter:
    """Forward pre-hooks (through ``state``) counting, per layer, the calls since ``reset()`` (only
    calls in train mode when ``training_only``: eval forwards leave running statistics alone) and
    the values per channel of the layer's last input (samples x positions)."""

    def __init__(self, state: BNState, named_layers: list[tuple[str, BatchNorm]],
                 training_only: bool = False) -> None:
        self.names = [name for name, _ in named_layers]
        self.calls = [0] * len(named_layers)
        self.elements = [0] * len(named_layers)
        self.counting = True
        self.handles = [state.hook(bn, self._counter(i, training_only)) for i, (_, bn) in enumerate(named_layers)]

    def _counter(self, index: int, training_only: bool):
        def pre_hook(module: nn.Module, inputs: tuple[Tensor, ...]) -> None:
            if training_only and not module.training:
                return
            x = inputs[0]
            if self.counting:
                self.calls[index] += 1
            self.elements[index] = x.numel() // x.shape[1]
        return pre_hook

    def stop_counting(self) -> None:
        """Keep only the values per channel from now on. Under ``torch.compile`` a call count, a
        Python int that changes every step, is a guard that fails every step: the step would be
        recompiled until Dynamo's recompile limit and then run eagerly for good."""
        self.counting = False

    def reset(self) -> None:
        self.calls = [0] * len(self.calls)

    def ran_once(self, since: str) -> list[bool]:
        """Whether each layer ran in the forward(s) ``since`` describes; a layer that ran more than
        once is refused: its buffers keep only its last call's statistics."""
        for name, calls in zip(self.names, self.calls):
            if calls > 1:
                raise ValueError(f"BatchNorm layer {name!r} ran {calls} times {since}: its running statistics "
                                 "keep only the last call's, so dmbn cannot estimate them (a layer shared "
                                 "within one forward is not supported; give each use its own layer)")
        return [calls == 1 for calls in self.calls]

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def warn_not_run(names: list[str], where: str) -> None:
    """Name the layers that never ran, whose statistics stay as they were."""
    if names:
        warnings.warn(f"BatchNorm layers that did not run {where} keep their own statistics: "
                      f"{', '.join(names)}", stacklevel=3)
