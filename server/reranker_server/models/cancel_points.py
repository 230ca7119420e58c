"""Layer boundaries where a running forward stops once nobody waits for its scores.

A forward pre-hook on every layer of a model's layer stack calls
`contracts.forward_checkpoint()`: inert (one thread-local read) unless the engine runs the
forward inside `stoppable_forwards` and the batch's last request was cancelled, when it raises
`ForwardCancelled` before the next layer. A batch whose clients all left then costs at most
one layer more, not the rest of the forward.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch

from reranker_server.contracts import forward_checkpoint

_installed: weakref.WeakSet[torch.nn.Module] = weakref.WeakSet()


def _checkpoint(_module: torch.nn.Module, _args: tuple) -> None:
    forward_checkpoint()


def layer_stacks(model: torch.nn.Module) -> list[torch.nn.ModuleList]:
    """The model's repeated blocks: the ModuleLists as long as its config's layer count."""
    layers = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    if not isinstance(layers, int) or layers < 1:
        return []
    return [m for m in model.modules() if isinstance(m, torch.nn.ModuleList) and len(m) == layers]


def install(model: Any) -> int:
    """Checkpoints before every layer of `model`'s layer stacks, once per model; the number of
    layers that have one (0: no stack found, forwards of this model run to the end)."""
    hooked = 0
    for stack in layer_stacks(model):
        for layer in stack:
            if layer not in _installed:
                layer.register_forward_pre_hook(_checkpoint)
                _installed.add(layer)
            hooked += 1
    return hooked
