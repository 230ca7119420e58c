"""A backend that scores through a vLLM engine process on the same pod (ENGINE_URL).

The front keeps everything above the forward: the HTTP shapes, access control, rate limits, the
playground, the score cache, the metrics and the engine's queue. This backend owns what a family
backend owns below it, minus the weights: it tokenizes with the model's own tokenizer files (the
same model id, from the shared model cache), bounds each request's tokens and cuts long
documents to fit, or splits them into windows (`long_documents: chunk`), where vLLM would refuse
the whole request, and reports both like the bundled engine. Each forward is one `/score` call
carrying the documents as text; a cut document or a window is sent as the span of its text its
kept tokens cover.

How it fits the scheduler (`engine/scheduler.py`, no hook added): the engine's planner still cuts
the queue into batches, but a batch is now one call, not a forward. Up to `model_workers` calls
(default `DEFAULT_CALLS`) are in flight at once, each of at most `batch_size` pairs and
`max_batch_tokens` tokens; vLLM's continuous batching merges the calls in flight into its own
forwards, so nothing is batched twice: our "batch" only sizes a call. The bound on calls in
flight is the point: vLLM always has work to batch (size it so that calls x pairs per call is
about vLLM's `--max-num-seqs`), while what it could not start yet waits in our queue, where
admission (429), per-client fairness, cancellation of queued pairs and the queued-pairs gauge
the autoscaler reads all still apply. Forwarding every request at once would empty our queue
into vLLM's, and the gauge would read zero under any load. A call already sent is not stopped
when its clients leave (vLLM scores it; the scores are dropped).

vLLM listens on localhost only (the operator renders it so): the front is its one client, and
the front's /metrics relays vLLM's own series (`engine_metrics`).

Scores: vLLM is asked for raw logits (`use_activation: false`), the engine's `raw_scores`; the
engine's sigmoid then gives vLLM's own `/score` value (to float rounding).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from reranker_contract import DEFAULT_INSTRUCTION, ModelFamily, served_model_name
from reranker_contract.score_check import ScoringEngine
from reranker_server.contracts import (
    BackendReport,
    EncodeBudget,
    EncodedRequest,
    ForwardPass,
    InputTooLongError,
    PairTokens,
    RerankError,
    RerankInput,
    Scored,
    Shortcut,
)
from reranker_server.engine_metrics import ReadMetrics
from reranker_server.models import qwen_prompt
from reranker_server.models.chunking import WindowLedger
from reranker_server.models.flops import FlopModel
from reranker_server.models.rust_tokenizer import private_rust_tokenizer
from reranker_server.models.truncation import tokenized_in_chunks
from reranker_server.models.vllm_client import VllmClient

log = logging.getLogger(__name__)

ENGINE_NAME = str(ScoringEngine.VLLM)
ENGINE_SERIES_PREFIX = "vllm:"  # vLLM's own series, relayed through the front's /metrics
DEFAULT_CALLS = 8  # calls in flight to vLLM when model_workers is 0 (auto)
START_TIMEOUT_S = 3600.0  # how long the loader waits for vLLM's /health before failing
# tokens left free when a document is cut: vLLM tokenizes the cut text again, and a token at
# the cut may split or merge differently than inside the whole document
CUT_MARGIN = 2


@dataclass(frozen=True)
class RemotePair(PairTokens):
    """A pair as the front counts it (`input_ids`) and as vLLM gets it (text)."""

    query: str = ""
    document: str = ""  # the document, or the span of it that fits
    instruction: str | None = None  # causal families: the prompt's instruction


class RemoteVllmBackend:
    """`ModelBackend` whose forwards are /score calls to vLLM."""

    device = ENGINE_NAME  # no device of its own: the engine process holds the model
    # vLLM packs the sequences of the calls in flight itself: the planner keeps arrival order
    pads_batches = False

    def __init__(
        self,
        client: VllmClient,
        tokenizer: Any,
        *,
        family: ModelFamily,
        model_name: str,
        engine_model: str,
        engine_version: str,
        max_length: int,
        default_instruction: str | None,
        dtype: str = "auto",
        flop_model: FlopModel | None = None,
    ) -> None:
        rust = private_rust_tokenizer(tokenizer)
        if rust is None:
            raise ValueError("tokenizer: a fast (tokenizers-backed) tokenizer is required")
        self._rust = rust
        self.client = client
        self.family = family
        self.model_name = model_name
        self.engine_model = engine_model
        self.engine_version = engine_version
        self.max_length = max_length
        self.causal = family == ModelFamily.QWEN3_CAUSAL
        self.default_instruction = (
            (default_instruction or DEFAULT_INSTRUCTION) if self.causal else None
        )
        self.flop_model = flop_model
        # the configured dtype (DTYPE), which vLLM's --dtype is given too: vLLM loads the weights
        self.dtype = dtype
        self.dtype_reason = (
            f"vLLM {engine_version} at {client.base_url} loads the weights (its --dtype)"
        )
        self._suffix_ids = self._ids([qwen_prompt.SUFFIX])[0] if self.causal else []

    def engine_answers(self) -> bool:
        """Whether vLLM answers its /health now (the front's /ready asks on every probe, so a
        pod whose vLLM died leaves the Service's endpoints)."""
        return self.client.healthy()

    @property
    def engine_info(self) -> dict[str, str]:
        """What /info may show of the engine behind the front."""
        return {
            "engine": ENGINE_NAME,
            "url": self.client.base_url,
            "version": self.engine_version,
            "model": self.engine_model,
        }

    @property
    def engine_metrics(self) -> tuple[ReadMetrics, str]:
        """How the front's /metrics relays vLLM's own series (reranker_server.engine_metrics):
        vLLM listens on localhost only, so Prometheus reaches them through the front."""
        return self.client.metrics_text, ENGINE_SERIES_PREFIX

    # -- tokenization ---------------------------------------------------------------------
    def _ids(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self._rust.encode_batch_fast(texts, add_special_tokens=False)]

    def _fixed(self, query: str, instruction: str | None) -> list[int]:
        """The tokens around the document: what a pair costs besides it."""
        if self.causal:
            assert instruction is not None
            prefix = self._ids([qwen_prompt.prefix_text(instruction, query)])[0]
            return prefix + self._suffix_ids
        ids = self._ids([query])[0]
        return ids + [0] * self._rust.num_special_tokens_to_add(True)

    def encode(self, inp: RerankInput, budget: EncodeBudget | None = None) -> EncodedRequest:
        """Count each pair's tokens as vLLM will see them; a document that does not fit (or
        exceeds max_tokens_per_doc) is cut, or with `inp.chunking` split into windows, each sent
        as the span of its text the kept tokens cover."""
        docs = list(inp.documents)
        for i, doc in enumerate(docs):
            if not isinstance(doc, str):
                raise RerankError("must be a string", document=i)
        instruction = None
        if self.causal:
            instruction = (
                inp.instruction if inp.instruction is not None else self.default_instruction
            )
        fixed = self._fixed(inp.query, instruction)
        room = self.max_length - len(fixed)
        if room < 1:
            raise InputTooLongError(
                f"query: takes {len(fixed)} tokens with the prompt around it; max length "
                f"{self.max_length} leaves no room for a document",
                field="query",
                tokens=len(fixed),
                limit=self.max_length,
            )
        # what a cut span may hold: vLLM tokenizes the cut text again (CUT_MARGIN)
        fits = max(1, room - CUT_MARGIN)
        texts = [qwen_prompt.document_text(d) if self.causal else d for d in docs]
        pairs: list[PairTokens] = []
        truncated: list[bool] = []
        windows: list[int] = []
        ledger = WindowLedger(inp.chunking) if inp.chunking is not None else None
        encode = lambda batch: self._rust.encode_batch(batch, add_special_tokens=False)  # noqa: E731
        for i, enc in enumerate(tokenized_in_chunks(encode, texts, budget)):
            n = len(enc.ids)
            keep = n if inp.max_tokens_per_doc is None else min(n, inp.max_tokens_per_doc)
            if ledger is None and not inp.truncate and n > room:
                raise InputTooLongError(
                    f"{len(fixed) + n} tokens exceed max length {self.max_length} and truncate "
                    "is false",
                    document=i,
                    tokens=len(fixed) + n,
                    limit=self.max_length,
                )
            lo, hi = (0, keep) if inp.truncation_direction == "right" else (n - keep, n)
            if keep > room and ledger is None:  # cut to fit
                lo, hi = (lo, lo + fits) if inp.truncation_direction == "right" else (hi - fits, hi)
            spans = [(0, hi - lo)]
            if keep > room and ledger is not None:  # windows that fit
                spans = ledger.spans(i, hi - lo, fits)
            whole = (lo, hi) == (0, n) and len(spans) == 1
            for a, b in spans:
                if budget is not None:
                    budget.spend(len(fixed) + b - a)
                span = docs[i] if whole else _text_of(texts[i], enc, lo + a, lo + b, self.causal)
                pairs.append(
                    RemotePair(
                        input_ids=fixed + enc.ids[lo + a : lo + b],
                        query=inp.query,
                        document=span,
                        instruction=instruction,
                    )
                )
            truncated.append(hi - lo < n)  # tokens left out (windows leave none)
            windows.append(len(spans))
        return EncodedRequest(
            prefix_ids=(),
            pairs=pairs,
            prefix_key=(self.family, self.model_name, instruction, inp.query),
            prompt_tokens=sum(len(p.input_ids) for p in pairs),
            truncated=truncated,
            windows=windows if len(pairs) > len(docs) else [],
        )

    # -- scoring --------------------------------------------------------------------------
    @property
    def prefix_cache_in_force(self) -> bool:
        return False  # vLLM keeps its own prefix cache; the planner packs whole pairs

    def shortcuts(self) -> tuple[Shortcut, ...]:
        return ()

    def score_mixed(self, prefixes: Sequence[Sequence[int]], pairs: Sequence[PairTokens]) -> Scored:
        """One /score call per instruction among the pairs (one call in practice)."""
        raw: list[float] = [0.0] * len(pairs)
        groups: dict[str | None, list[int]] = {}
        for i, pair in enumerate(pairs):
            if not isinstance(pair, RemotePair):
                raise TypeError("the remote backend scores only the pairs it encoded")
            groups.setdefault(pair.instruction, []).append(i)
        for instruction, positions in groups.items():
            chosen = [pairs[i] for i in positions]
            scores = self.client.score(
                self.engine_model,
                [p.query for p in chosen],  # type: ignore[attr-defined]
                [p.document for p in chosen],  # type: ignore[attr-defined]
                instruction,
            )
            for i, score in zip(positions, scores):
                raw[i] = score
        lengths = [len(p.input_ids) + len(q) for p, q in zip(pairs, prefixes)]
        flops = self.flop_model.sequences(lengths) if self.flop_model is not None else 0.0
        call = ForwardPass("full", len(pairs), sum(lengths), sum(lengths), flops)
        return Scored(raw, BackendReport((call,)))

    def score(
        self,
        prefix_ids: Sequence[int],
        pairs: Sequence[PairTokens],
        sub_batches: Sequence[Sequence[int]],
    ) -> Scored:
        """As `score_mixed` (the prefix path is never in force here)."""
        return self.score_mixed([prefix_ids] * len(pairs), pairs)


def _text_of(text: str, enc: Any, start: int, stop: int, causal: bool) -> str:
    """The span of `text` tokens [start, stop) of its encoding cover. A causal document segment
    starts with the prompt's space, which the score template adds again."""
    offsets = enc.offsets
    span = text[offsets[start][0] if start else 0 : offsets[stop - 1][1]]
    return span[1:] if causal and span.startswith(" ") else span


def load_remote_backend(settings: Any) -> RemoteVllmBackend:
    """Wait for vLLM at `settings.engine_url`, then build the backend with the model's tokenizer
    and config (`settings.model`, read from the shared model cache)."""
    from transformers import AutoConfig, AutoTokenizer

    from reranker_server.models.cross_encoder import CrossEncoderBackend
    from reranker_server.models.loading import (
        LoadOptions,
        ModelLoadError,
        detect_family,
        hub_kwargs,
    )

    workers = settings.model_workers or DEFAULT_CALLS
    client = VllmClient(
        settings.engine_url,
        timeout_s=settings.request_timeout_seconds + 5,
        connections=2 * workers,
    )
    client.wait_until_healthy(START_TIMEOUT_S)
    version = client.version()
    served = client.served_model()
    hub = hub_kwargs(
        LoadOptions(
            model=settings.model,
            revision=settings.revision,
            cache_dir=settings.cache_dir,
            trust_remote_code=settings.trust_remote_code,
        )
    )
    try:
        config = AutoConfig.from_pretrained(settings.model, **hub)
        tokenizer = AutoTokenizer.from_pretrained(settings.model, **hub)
    except OSError as exc:
        raise ModelLoadError(
            f"model: the front needs the tokenizer of {settings.model!r}: {exc}"
        ) from exc
    family = detect_family(config, tokenizer, settings.model_family)
    limits = [settings.max_sequence_length]
    if served.max_model_len:
        limits.append(served.max_model_len)
    if family == ModelFamily.CROSS_ENCODER:
        limits.append(CrossEncoderBackend._model_limit(config, tokenizer))
    elif getattr(config, "max_position_embeddings", None):
        limits.append(int(config.max_position_embeddings))
    backend = RemoteVllmBackend(
        client,
        tokenizer,
        family=family,
        model_name=served_model_name(settings.model, settings.served_model_name),
        engine_model=served.name,
        engine_version=version,
        max_length=min(limits),
        default_instruction=settings.default_instruction,
        dtype=settings.dtype,
        flop_model=FlopModel.of(config),
    )
    log.info(
        "scoring through vLLM %s at %s (model %s, family %s, max length %d)",
        version,
        client.base_url,
        served.name,
        family,
        backend.max_length,
    )
    return backend
