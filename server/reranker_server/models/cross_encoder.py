"""Cross-encoder backend: a sequence classifier with one label; raw = logit, score = sigmoid(logit)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from reranker_contract import ModelFamily
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
from reranker_server.models import cancel_points, packed_encoder
from reranker_server.models.chunking import WindowLedger
from reranker_server.models.encoder_cls import classifier_logits
from reranker_server.models.families import BackendSettings, Family, architectures, register
from reranker_server.models.flops import FlopModel
from reranker_server.models.loading import ModelLoadError
from reranker_server.models.resource_errors import is_device_failure
from reranker_server.models.rust_tokenizer import encode_texts, private_rust_tokenizer
from reranker_server.models.truncation import tokenized_in_chunks

_POSITION_OFFSET_TYPES = {"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert"}


def is_one_label_classifier(config: Any, tokenizer: Any) -> bool:
    """A *ForSequenceClassification with one label (with more, an error)."""
    if not any(a.endswith("ForSequenceClassification") for a in architectures(config)):
        return False
    labels = getattr(config, "num_labels", None)
    if labels != 1:
        raise ModelLoadError(
            f"model_family: sequence classifier has num_labels={labels}; a cross-encoder reranker needs 1"
        )
    return True


class CrossEncoderBackend:
    """ModelBackend for (query, document) pair classifiers (family cross-encoder)."""

    family = ModelFamily.CROSS_ENCODER
    dtype_reason: str | None = None  # set by load_backend

    def __init__(self, model: Any, tokenizer: Any, *, model_name: str, max_length: int) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.model_name = model_name
        rust = private_rust_tokenizer(tokenizer)
        if rust is None:
            raise ValueError("tokenizer: a fast (tokenizers-backed) tokenizer is required")
        self._rust = rust
        self.specials = self._rust.num_special_tokens_to_add(True)
        self.use_token_types = "token_type_ids" in getattr(tokenizer, "model_input_names", [])
        self.max_length = min(max_length, self._model_limit(model.config, tokenizer))
        param = next(model.parameters())
        self.device = str(param.device)
        self.dtype = str(param.dtype).removeprefix("torch.")
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else 0)
        self.flop_model = FlopModel.of(model.config)
        # layers a forward may stop before once its requests are all cancelled
        self.cancel_points = cancel_points.install(model)

    @staticmethod
    def _model_limit(config: Any, tokenizer: Any) -> int:
        limit = int(getattr(config, "max_position_embeddings", None) or 512)
        if getattr(config, "model_type", "") in _POSITION_OFFSET_TYPES:
            limit -= int(getattr(config, "pad_token_id", 1) or 0) + 1
        tok_limit = getattr(tokenizer, "model_max_length", None)
        if isinstance(tok_limit, int) and 0 < tok_limit < 1_000_000:
            limit = min(limit, tok_limit)
        return limit

    def encode(self, inp: RerankInput, budget: EncodeBudget | None = None) -> EncodedRequest:
        """Pair encodings `[CLS] query [SEP] doc [SEP]`; only the document is ever truncated (or,
        with `inp.chunking`, split into windows that fit: one pair per window)."""
        docs = list(inp.documents)
        for i, doc in enumerate(docs):
            if not isinstance(doc, str):
                raise RerankError("must be a string", document=i)
        query = self._rust.encode(inp.query, add_special_tokens=False)
        fixed = len(query.ids) + self.specials
        room = self.max_length - fixed
        if room < 1:
            raise InputTooLongError(
                f"query: takes {fixed} tokens with special tokens; max length {self.max_length} "
                "leaves no room for a document",
                field="query",
                tokens=fixed,
                limit=self.max_length,
            )
        cap = room if inp.max_tokens_per_doc is None else min(room, inp.max_tokens_per_doc)
        pairs: list[PairTokens] = []
        truncated: list[bool] = []
        ledger = WindowLedger(inp.chunking) if inp.chunking is not None else None
        windows: list[int] = []  # per document, its pairs
        encodings = tokenized_in_chunks(lambda texts: encode_texts(self._rust, texts), docs, budget)
        for i, enc in enumerate(encodings):
            n = len(enc)
            keep = n if inp.max_tokens_per_doc is None else min(n, inp.max_tokens_per_doc)
            if ledger is not None and keep > room:
                if keep < n:  # max_tokens_per_doc cuts it first
                    enc.truncate(keep, direction=inp.truncation_direction)
                ids = list(enc.ids)
                spans = ledger.spans(i, keep, room)
                if budget is not None:
                    budget.spend(sum(fixed + b - a for a, b in spans))
                pairs.extend(self._windows(query, enc, ids, spans))
                truncated.append(keep < n)
                windows.append(len(spans))
                continue
            windows.append(1)
            if not inp.truncate and n > room:
                raise InputTooLongError(
                    f"{fixed + n} tokens exceed max length {self.max_length} and truncate is false",
                    document=i,
                    tokens=fixed + n,
                    limit=self.max_length,
                )
            if budget is not None:
                budget.spend(fixed + min(n, cap))
            truncated.append(n > cap)
            if n > cap:
                enc.truncate(cap, direction=inp.truncation_direction)
            full = self._rust.post_process(query, enc, add_special_tokens=True)
            pairs.append(
                PairTokens(
                    input_ids=list(full.ids),
                    token_type_ids=list(full.type_ids) if self.use_token_types else None,
                )
            )
        return EncodedRequest(
            prefix_ids=(),
            pairs=pairs,
            prefix_key=(self.family, self.model_name),
            prompt_tokens=sum(len(p.input_ids) for p in pairs),
            truncated=truncated,
            windows=windows if len(pairs) > len(docs) else [],
        )

    def _windows(
        self, query: Any, document: Any, ids: list[int], spans: list[tuple[int, int]]
    ) -> list[PairTokens]:
        """One pair per window `ids[a:b]` of `document` (its encoding, whose tokens are `ids`):
        the tokenizer's pair template (special tokens, type ids) built once around the whole
        document, its tokens swapped for each window's."""
        full = self._rust.post_process(query, document, add_special_tokens=True)
        doc = [k for k, seq in enumerate(full.sequence_ids) if seq == 1]
        head, tail = doc[0], doc[-1] + 1
        doc_type = full.type_ids[head]
        pairs = []
        for a, b in spans:
            input_ids = [*full.ids[:head], *ids[a:b], *full.ids[tail:]]
            types = [*full.type_ids[:head], *[doc_type] * (b - a), *full.type_ids[tail:]]
            pairs.append(
                PairTokens(
                    input_ids=input_ids, token_type_ids=types if self.use_token_types else None
                )
            )
        return pairs

    @property
    def prefix_cache_in_force(self) -> bool:
        return False  # an encoder attends both ways: no prefix to cache

    @property
    def pads_batches(self) -> bool:
        """False while pairs run packed (`packed_encoder`): the planner need not group them by
        length."""
        return packed_encoder.why_not(self.model) is not None

    def shortcuts(self) -> tuple[Shortcut, ...]:
        from reranker_server.models.encoder_cls import why_not_in_force

        why = why_not_in_force(self.model)
        packed_why = packed_encoder.why_not(self.model)
        return (
            Shortcut("cls_only", why is None, why),
            Shortcut("packed_encoder", packed_why is None, packed_why),
        )

    def score_mixed(self, prefixes: Sequence[Sequence[int]], pairs: Sequence[PairTokens]) -> Scored:
        """One forward over all pairs; raw = the single logit.

        On a CPU the pairs run packed, without padding (`packed_encoder`); otherwise as one
        right-padded batch whose last layer runs for the [CLS] row only where the model allows
        (`encoder_cls`)."""
        if not pairs:
            return Scored([], BackendReport(()))
        seqs = [list(pre) + list(p.input_ids) for pre, p in zip(prefixes, pairs, strict=True)]
        lengths = [len(s) for s in seqs]
        logits = self._packed(prefixes, pairs, seqs)
        if logits is not None:
            cls_only, padded_tokens = True, sum(lengths)
        else:
            logits, cls_only = classifier_logits(self.model, self._padded(prefixes, pairs, seqs))
            padded_tokens = len(seqs) * max(lengths)
        forward = ForwardPass(
            path="full",
            sequences=len(seqs),
            real_tokens=sum(lengths),
            padded_tokens=padded_tokens,
            flops=self.flop_model.sequences(lengths, last_layer_one_row=cls_only),
        )
        return Scored(
            logits[:, 0].float().tolist(), BackendReport((forward,), last_layer_shortcut=cls_only)
        )

    def _packed(
        self,
        prefixes: Sequence[Sequence[int]],
        pairs: Sequence[PairTokens],
        seqs: list[list[int]],
    ) -> torch.Tensor | None:
        """The packed path's logits (`packed_encoder`); None where it is not in force. Its first
        call per model is checked against the padded forward, which runs first: an input the
        model cannot take at all fails the batch there and leaves the path on; a packed forward
        that raises or differs where the padded one did not turns it off."""
        model = self.model
        if packed_encoder.why_not(model) is not None:
            return None
        types = None
        if self.use_token_types:  # a prefix, if any, is segment 0
            types = [
                [0] * len(pre) + list(p.token_type_ids or [0] * len(p.input_ids))
                for pre, p in zip(prefixes, pairs, strict=True)
            ]
        if packed_encoder.verified(model):
            return packed_encoder.packed_logits(model, seqs, types)
        with torch.inference_mode():
            reference = model(**self._padded(prefixes, pairs, seqs)).logits
        try:
            logits = packed_encoder.packed_logits(model, seqs, types)
        except (TypeError, ValueError, AttributeError, RuntimeError, KeyError, IndexError) as exc:
            if is_device_failure(exc):
                raise  # a resource error, not a property of the model
            packed_encoder.turn_off(model, f"{type(exc).__name__}: {exc}")
            return None
        return logits if packed_encoder.check(model, logits, reference) else None

    def _padded(
        self,
        prefixes: Sequence[Sequence[int]],
        pairs: Sequence[PairTokens],
        seqs: list[list[int]],
    ) -> dict[str, torch.Tensor]:
        """The model's inputs for `seqs` as one right-padded batch."""
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        types = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, (s, pre, p) in enumerate(zip(seqs, prefixes, pairs)):
            ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
            mask[i, : len(s)] = 1
            if p.token_type_ids is not None:  # a prefix, if any, is segment 0
                types[i, len(pre) : len(s)] = torch.tensor(p.token_type_ids, dtype=torch.long)
        device = next(self.model.parameters()).device
        kwargs = {"input_ids": ids.to(device), "attention_mask": mask.to(device)}
        if self.use_token_types:
            kwargs["token_type_ids"] = types.to(device)
        return kwargs

    def score(
        self,
        prefix_ids: Sequence[int],
        pairs: Sequence[PairTokens],
        sub_batches: Sequence[Sequence[int]],
    ) -> Scored:
        """No KV reuse for encoders: each sub-batch is one plain forward of whole pairs."""
        raw = [0.0] * len(pairs)
        forwards: list[ForwardPass] = []
        shortcut = True
        for group in sub_batches:
            part = self.score_mixed([prefix_ids] * len(group), [pairs[i] for i in group])
            for i, value in zip(group, part.raw_scores, strict=True):
                raw[i] = value
            forwards += part.report.forwards
            shortcut = shortcut and part.report.last_layer_shortcut
        return Scored(
            raw, BackendReport(tuple(forwards), last_layer_shortcut=shortcut and bool(forwards))
        )


def _build(model: Any, tokenizer: Any, settings: BackendSettings) -> CrossEncoderBackend:
    return CrossEncoderBackend(
        model, tokenizer, model_name=settings.model_name, max_length=settings.max_length
    )


register(
    Family(
        ModelFamily.CROSS_ENCODER,
        "AutoModelForSequenceClassification",
        is_one_label_classifier,
        _build,
    )
)
