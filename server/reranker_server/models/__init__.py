"""Model backends: load a reranker (causal yes/no or cross-encoder) behind `ModelBackend`."""

from __future__ import annotations

import logging
import os
from typing import Any

from reranker_contract import served_model_name
from reranker_server.contracts import ModelBackend
from reranker_server.models.families import BackendSettings, registered
from reranker_server.models.loading import (
    LoadOptions,
    ModelLoadError,
    check_attn_implementation,
    detect_family,
    hub_kwargs,
    quantization_config,
    resolve_device,
    resolve_dtype_choice,
)

log = logging.getLogger(__name__)


def _dtype_kwarg(dtype: Any) -> dict[str, Any]:
    import transformers

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return {"dtype": dtype} if (major, minor) >= (4, 56) else {"torch_dtype": dtype}


def load_backend(opts: LoadOptions) -> ModelBackend:
    """Load tokenizer + model per `opts` and wrap them in the backend of the detected family
    (`reranker_server.models.families`)."""
    import transformers
    from transformers import AutoConfig, AutoTokenizer

    # The engine tokenizes on threads of its own (encode workers, the low-priority bulk thread):
    # the tokenizers library's thread pool would run outside their priorities and fight torch's
    # threads for the cores. An explicit TOKENIZERS_PARALLELISM in the pod's env wins.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    device = resolve_device(opts.device)
    dtype, dtype_reason = resolve_dtype_choice(opts.dtype, device)
    attn = check_attn_implementation(opts.attn_implementation, device)
    quant = quantization_config(opts.quantization, device, dtype)
    hub = hub_kwargs(opts)
    try:
        config = AutoConfig.from_pretrained(opts.model, **hub)
        tokenizer = AutoTokenizer.from_pretrained(opts.model, **hub)
    except OSError as exc:
        raise ModelLoadError(f"model: cannot load {opts.model!r}: {exc}") from exc
    family = registered()[detect_family(config, tokenizer, opts.family)]
    cls = getattr(transformers, family.auto_class)
    kwargs: dict[str, Any] = {**hub, **_dtype_kwarg(dtype), "attn_implementation": attn}
    if quant is not None:
        kwargs["quantization_config"] = quant
        kwargs["device_map"] = {"": 0}
    try:
        model = cls.from_pretrained(opts.model, **kwargs)
    except ValueError as exc:
        if "attn" in str(exc).lower() or "attention" in str(exc).lower():
            raise ModelLoadError(
                f"attn_implementation: {attn} is not supported by this model: {exc}"
            ) from exc
        raise ModelLoadError(f"model: cannot load {opts.model!r}: {exc}") from exc
    if quant is None:
        model = model.to(device)
    model.eval()
    name = served_model_name(opts.model, opts.served_model_name)
    settings = BackendSettings(name, opts.max_length, opts.default_instruction)
    backend = family.build(model, tokenizer, settings)
    backend.dtype_reason = dtype_reason
    if opts.compile_kernels:
        use_compiled_kernels(backend, opts)
    return backend


def use_compiled_kernels(backend: Any, opts: LoadOptions) -> None:
    """COMPILE_KERNELS: the backend's packed decoder forwards through `elementwise.compiled()`
    (compiled on the first forwards, during warm-up, into TORCHINDUCTOR_CACHE_DIR, by default
    under the model cache, which survives restarts on a volume). ModelLoadError where no
    compiler is there. A causal backend whose packed path is off says why in its shortcuts;
    other families (cross-encoders) have no such path, which is logged as a warning."""
    from reranker_server.models import elementwise, packed_decoder

    why = elementwise.why_no_compiler()
    if why is not None:
        raise ModelLoadError(f"compile_kernels: {why}")
    cache = opts.cache_dir or os.environ.get("HF_HOME")
    if cache and "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(cache, "torchinductor")
    from reranker_server.models.causal import CausalRerankerBackend

    if isinstance(backend, CausalRerankerBackend):
        packed_decoder.use_kernels(backend.base, elementwise.compiled())
    else:
        log.warning(
            "compile_kernels: %s has no packed decoder path (causal rerankers only); its forwards "
            "run as they would without it",
            type(backend).__name__,
        )


__all__ = ["LoadOptions", "ModelLoadError", "detect_family", "load_backend"]
