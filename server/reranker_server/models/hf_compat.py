"""The few transformers interfaces the shortcuts lean on, spelled for the installed version.

transformers 5.24 renamed the decoder's KV-cache argument and output from `past_key_values` to
`cache` (the old name still works there, with a FutureWarning, until its removal in 5.40). The
shortcuts pass and read the cache through these helpers, which ask the model itself which name
its `forward` declares, so they use the supported name on every version in the declared range.
"""

from __future__ import annotations

import dataclasses
import inspect
from functools import lru_cache
from typing import Any

import torch

NEW_CACHE_NAME = "cache"  # transformers >= 5.24
OLD_CACHE_NAME = "past_key_values"  # transformers < 5.24 (deprecated from 5.24)


@lru_cache(maxsize=64)
def _forward_cache_name(module_type: type) -> str:
    params = inspect.signature(module_type.forward).parameters  # follows functools.wraps
    return NEW_CACHE_NAME if NEW_CACHE_NAME in params else OLD_CACHE_NAME


def cache_argument(module: torch.nn.Module) -> str:
    """The keyword `module.forward` takes its KV cache under (`cache` or `past_key_values`)."""
    return _forward_cache_name(type(module))


def output_cache(output: Any) -> Any:
    """The KV cache a model output carries (None when the forward returned none)."""
    names = {f.name for f in dataclasses.fields(output)} if dataclasses.is_dataclass(output) else ()
    return getattr(output, NEW_CACHE_NAME if NEW_CACHE_NAME in names else OLD_CACHE_NAME, None)
