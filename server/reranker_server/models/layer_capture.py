"""Run a model's layer stack up to its last layer and return that layer's input.

Rerankers read one row per sequence (the scored token, or [CLS]), so the last layer can be
computed by hand for that row alone. A forward pre-hook on the last layer raises once the stack
reaches it, carrying the layer's positional/keyword input; the hook is installed once per layer
and is inert unless the calling thread asked for a capture.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any

import torch

_hooked: weakref.WeakSet[torch.nn.Module] = weakref.WeakSet()
_hook_lock = threading.Lock()
_local = threading.local()


class _Captured(Exception):
    def __init__(self, hidden: torch.Tensor, kwargs: dict) -> None:
        super().__init__("captured")
        self.hidden, self.kwargs = hidden, kwargs


def _hook(_module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
    if getattr(_local, "active", False):
        raise _Captured(args[0] if args else kwargs["hidden_states"], kwargs)


def input_of_last_layer(
    last_layer: torch.nn.Module, run_stack: Callable[[], Any]
) -> tuple[torch.Tensor, dict]:
    """(hidden states, keyword arguments) that `run_stack()` passes to `last_layer`."""
    with _hook_lock:
        if last_layer not in _hooked:
            last_layer.register_forward_pre_hook(_hook, with_kwargs=True)
            _hooked.add(last_layer)
    _local.active = True
    try:
        run_stack()
    except _Captured as cap:
        return cap.hidden, cap.kwargs
    finally:
        _local.active = False
    raise RuntimeError("the last layer was never called")
