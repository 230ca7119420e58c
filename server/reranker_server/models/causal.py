"""Qwen3-Reranker style backend: a causal LM scored by P(yes) vs P(no) at the last position.

Only the base model runs; the last real token's final hidden state is projected with the two
lm_head rows of `no` and `yes` (never the full vocabulary). raw = logit_yes - logit_no.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch

from reranker_contract import DEFAULT_INSTRUCTION, ModelFamily
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
    TooManyTokensError,
)
from reranker_server.models import (
    cancel_points,
    last_token,
    packed_decoder,
    qwen_prompt,
    segmentation,
    token_floor,
)
from reranker_server.models.chunking import WindowLedger
from reranker_server.models.families import BackendSettings, Family, architectures, register
from reranker_server.models.flops import FlopModel
from reranker_server.models.loading import ModelLoadError
from reranker_server.models.rust_tokenizer import encode_texts, private_rust_tokenizer
from reranker_server.models.truncation import common_prefix_len, cut, tokenized_in_chunks

log = logging.getLogger(__name__)


def yes_no_ids(tokenizer: Any) -> tuple[int, int] | None:
    """(no_id, yes_id) when both are single vocabulary tokens, else None."""
    vocab = tokenizer.get_vocab()
    if "yes" in vocab and "no" in vocab:
        return vocab["no"], vocab["yes"]
    return None


def is_yes_no_causal_lm(config: Any, tokenizer: Any) -> bool:
    """A *ForCausalLM whose tokenizer has single 'yes' and 'no' tokens (without them, an error)."""
    if not any(a.endswith("ForCausalLM") for a in architectures(config)):
        return False
    if yes_no_ids(tokenizer) is None:
        raise ModelLoadError(
            "model_family: causal model's tokenizer lacks single 'yes'/'no' tokens; it is not a yes/no reranker"
        )
    return True


class CausalRerankerBackend:
    """ModelBackend for yes/no causal rerankers (family qwen3-causal)."""

    family = ModelFamily.QWEN3_CAUSAL
    dtype_reason: str | None = None  # set by load_backend

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        model_name: str,
        max_length: int,
        default_instruction: str | None = None,
        verify_segmentation: bool = True,
    ) -> None:
        ids = yes_no_ids(tokenizer)
        if ids is None:
            raise ValueError(
                "tokenizer: 'yes' and 'no' must be single tokens for a causal reranker"
            )
        self.no_id, self.yes_id = ids
        self.tokenizer = tokenizer
        self._rust = private_rust_tokenizer(tokenizer)
        self.base = model.base_model
        head = model.get_output_embeddings()
        rows = torch.tensor([self.no_id, self.yes_id], device=head.weight.device)
        self.head_weight = head.weight.detach().index_select(0, rows).float().clone()
        bias = getattr(head, "bias", None)
        self.head_bias = (
            bias.detach().index_select(0, rows).float().clone() if bias is not None else None
        )
        self.model_name = model_name
        limit = getattr(model.config, "max_position_embeddings", None) or max_length
        self.max_length = min(max_length, int(limit))
        self.default_instruction = default_instruction or DEFAULT_INSTRUCTION
        spec = segmentation.tokenizer_spec(self._rust)  # parsed once for both proofs
        # None: the segment-wise tokens are proven equal to the whole prompt's
        self._segments_may_merge = segmentation.why_segments_may_merge(
            spec,
            prefix=qwen_prompt.PREFIX_END,
            document_start=qwen_prompt.DOCUMENT_START,
            suffix=qwen_prompt.SUFFIX,
        )
        # None: a request's words bound its tokens from below (refused early from them)
        self._word_floor_missing = token_floor.why_no_word_floor(spec)
        # re-tokenize whole prompts to check the segment-wise tokens where no proof holds
        self.verify_segmentation = verify_segmentation and self._segments_may_merge is not None
        param = next(self.base.parameters())
        self.device = str(param.device)
        self.dtype = str(param.dtype).removeprefix("torch.")
        pad = (
            tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        )
        self.pad_id = int(pad if pad is not None else 0)
        self.suffix_ids = self._tokenize([qwen_prompt.SUFFIX])[0]
        self.flop_model = FlopModel.of(model.config)
        self._last_only = last_token.supported(self.base)
        self._last_only_verified = False
        self._last_only_reason: str | None = None
        # layers a forward may stop before once its requests are all cancelled
        self.cancel_points = cancel_points.install(self.base)

    # -- tokenization ---------------------------------------------------------------------
    def _tokenize(self, texts: list[str]) -> list[list[int]]:
        if not texts:
            return []
        if self._rust is not None:
            return [e.ids for e in encode_texts(self._rust, texts)]
        return [list(x) for x in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]

    def encode(self, inp: RerankInput, budget: EncodeBudget | None = None) -> EncodedRequest:
        """Prefix = system + instruction + query + '\\n<Document>:'; pair = ' doc' + suffix
        (truncated; or, with `inp.chunking`, one pair per window of a document that does not
        fit)."""
        instruction = inp.instruction if inp.instruction is not None else self.default_instruction
        docs = list(inp.documents)
        for i, doc in enumerate(docs):
            if not isinstance(doc, str):
                raise RerankError("must be a string", document=i)
        pre_text = qwen_prompt.prefix_text(instruction, inp.query)
        prefix_ids = self._tokenize([pre_text])[0]
        fixed = len(prefix_ids) + len(self.suffix_ids)
        room = self.max_length - fixed
        if room < 1:
            raise InputTooLongError(
                f"query: instruction and query take {fixed} tokens with the prompt template; "
                f"max length {self.max_length} leaves no room for a document",
                field="query",
                tokens=fixed,
                limit=self.max_length,
            )
        cap = room if inp.max_tokens_per_doc is None else min(room, inp.max_tokens_per_doc)
        # a document's tokens counted against the budget: cut to `cap`; chunked, every window
        self._refuse_from_words(
            docs, fixed, cap if inp.chunking is None else inp.max_tokens_per_doc, budget
        )
        sequences: list[list[int] | None] = []
        truncated: list[bool] = []
        doc_ids: list[list[int]] = []  # the untruncated documents' tokens ([] for the others)
        ledger = WindowLedger(inp.chunking) if inp.chunking is not None else None
        chunked: dict[int, list[list[int]]] = {}  # document -> its windows' sequences
        for i, ids in enumerate(
            tokenized_in_chunks(
                self._tokenize, [qwen_prompt.document_text(d) for d in docs], budget
            )
        ):
            doc_ids.append(ids if len(ids) <= cap else [])
            keep = len(ids) if inp.max_tokens_per_doc is None else inp.max_tokens_per_doc
            if ledger is not None and min(len(ids), keep) > room:  # one sequence per window
                kept = cut(ids, keep, inp.truncation_direction)
                windows = [kept[a:b] for a, b in ledger.spans(i, len(kept), room)]
                if budget is not None:
                    for window in windows:
                        budget.spend(fixed + len(window))
                chunked[i] = [prefix_ids + window + self.suffix_ids for window in windows]
                sequences.append(chunked[i][0])
                truncated.append(len(kept) < len(ids))  # max_tokens_per_doc cut it first
                continue
            if not inp.truncate and len(ids) > room:
                raise InputTooLongError(
                    f"{fixed + len(ids)} tokens exceed max length {self.max_length} "
                    "and truncate is false",
                    document=i,
                    tokens=fixed + len(ids),
                    limit=self.max_length,
                )
            if budget is not None:
                budget.spend(fixed + min(len(ids), cap))
            if len(ids) > cap:
                sequences.append(
                    prefix_ids + cut(ids, cap, inp.truncation_direction) + self.suffix_ids
                )
                truncated.append(True)
            else:
                sequences.append(None)
                truncated.append(False)
        self._fill_untruncated(sequences, pre_text, docs, prefix_ids, doc_ids)
        seqs: list[list[int]] = []
        for i, s in enumerate(sequences):
            seqs.extend(chunked[i] if i in chunked else [s] if s is not None else [])
        shared = min((common_prefix_len(s, prefix_ids) for s in seqs), default=len(prefix_ids))
        shared = min(shared, min((len(s) - 1 for s in seqs), default=shared))
        prefix = tuple(prefix_ids[:shared])
        return EncodedRequest(
            prefix_ids=prefix,
            pairs=[PairTokens(input_ids=s[shared:]) for s in seqs],
            prefix_key=(self.family, self.model_name, prefix),
            prompt_tokens=sum(len(s) for s in seqs),
            truncated=truncated,
            windows=[len(chunked.get(i, ())) or 1 for i in range(len(docs))] if chunked else [],
        )

    def _refuse_from_words(
        self, docs: list[str], fixed: int, kept: int | None, budget: EncodeBudget | None
    ) -> None:
        """TooManyTokensError before any document is tokenized when the documents' words alone
        (a floor under their tokens, `token_floor`; `kept`: the most tokens of one that count,
        None: all) take the request past the budget."""
        limit = None if budget is None else budget.max_tokens
        if limit is None or self._word_floor_missing is not None:
            return

        def counted(n: int) -> int:
            return fixed + (n if kept is None else min(n, kept))

        if sum(counted(len(doc)) for doc in docs) <= limit:  # characters >= words: it fits
            return
        floor = 0
        for i, doc in enumerate(docs):
            floor += counted(token_floor.words(doc) or 0)
            if floor > limit:
                raise TooManyTokensError(
                    f"at least {floor} tokens after truncation in the first {i + 1} of "
                    f"{len(docs)} documents (counted from their words, before tokenizing) "
                    f"exceed max_request_tokens {limit}; send fewer or shorter documents "
                    "(or max_tokens_per_doc)",
                    tokens=floor,
                    limit=limit,
                )

    def _fill_untruncated(
        self,
        sequences: list[list[int] | None],
        pre_text: str,
        docs: list[str],
        prefix_ids: list[int],
        doc_ids: list[list[int]],
    ) -> None:
        """Untruncated documents: the segment-wise tokens, or (where `segmentation` proves
        nothing) the whole prompt's tokens where they differ."""
        todo = [i for i, s in enumerate(sequences) if s is None]
        if not todo:
            return
        segmentwise = {i: prefix_ids + doc_ids[i] + self.suffix_ids for i in todo}
        if self.verify_segmentation:
            whole = self._tokenize(
                [pre_text + qwen_prompt.document_text(docs[i]) + qwen_prompt.SUFFIX for i in todo]
            )
            for i, ids in zip(todo, whole):
                if ids != segmentwise[i] and len(ids) <= self.max_length:
                    segmentwise[i] = ids
        for i in todo:
            sequences[i] = segmentwise[i]

    # -- forward --------------------------------------------------------------------------
    @property
    def prefix_cache_in_force(self) -> bool:
        from reranker_server.models.prefix_kv import prefix_cache_unsupported

        return self.base not in prefix_cache_unsupported

    def shortcuts(self) -> tuple[Shortcut, ...]:
        from reranker_server.models.prefix_kv import prefix_cache_unsupported

        why = prefix_cache_unsupported.get(self.base)
        last_why = (
            None
            if self._last_only
            else (
                self._last_only_reason or "the model's last layer is not one this shortcut computes"
            )
        )
        packed_why = packed_decoder.why_not(self.base)
        merge_why, floor_why = self._segments_may_merge, self._word_floor_missing
        return (
            Shortcut("segmentwise_tokens", merge_why is None, merge_why),
            Shortcut("word_floor", floor_why is None, floor_why),
            Shortcut("prefix_kv", why is None, why),
            Shortcut("last_token", self._last_only, last_why),
            Shortcut("packed_decoder", why is None and packed_why is None, why or packed_why),
        ) + self._compiled_kernels_shortcut(why or packed_why)

    def _compiled_kernels_shortcut(self, packed_why: str | None) -> tuple[Shortcut, ...]:
        """Whether the packed decoder's elementwise chains run compiled, where COMPILE_KERNELS
        asked for them (an opt-in: not listed otherwise)."""
        if not packed_decoder.kernels_of(self.base).compiled:
            return ()
        if packed_why is not None:
            return (
                Shortcut("compiled_kernels", False, f"the packed decoder is off: {packed_why}"),
            )
        return (Shortcut("compiled_kernels", True),)

    def _project(self, hidden: torch.Tensor) -> list[float]:
        weight = self.head_weight.to(hidden.device)
        logits = hidden.float() @ weight.T
        if self.head_bias is not None:
            logits = logits + self.head_bias.to(hidden.device)
        return (logits[:, 1] - logits[:, 0]).tolist()

    def _forward(
        self,
        path: str,
        lengths: Sequence[int],
        width: int,
        *,
        context: int = 0,
        last_only: bool = False,
        packed: bool = False,
    ) -> ForwardPass:
        return ForwardPass(
            path=path,  # type: ignore[arg-type]
            sequences=len(lengths),
            real_tokens=sum(lengths),
            padded_tokens=sum(lengths) if packed else len(lengths) * width,
            flops=self.flop_model.sequences(lengths, context=context, last_layer_one_row=last_only),
        )

    def score_mixed(self, prefixes: Sequence[Sequence[int]], pairs: Sequence[PairTokens]) -> Scored:
        """One left-padded forward of `prefixes[i] + pairs[i]`; raw = logit_yes - logit_no.

        The last decoder layer runs for the final token only (`models.last_token`)."""
        if not pairs:
            return Scored([], BackendReport(()))
        seqs = [list(pre) + list(p.input_ids) for pre, p in zip(prefixes, pairs, strict=True)]
        width = max(len(s) for s in seqs)
        device = next(self.base.parameters()).device
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, width - len(s) :] = torch.tensor(s, dtype=torch.long)
            mask[i, width - len(s) :] = 1
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        inputs = {
            "input_ids": ids.to(device),
            "attention_mask": mask.to(device),
            "position_ids": positions.to(device),
            "use_cache": False,
        }
        lengths = [len(s) for s in seqs]
        with torch.inference_mode():
            if self._last_only:  # the last layer runs for the final column only
                last = torch.full((len(seqs),), width - 1, dtype=torch.long, device=device)
                hidden = last_token.last_token_hidden(self.base, inputs, last, None)
                if self._last_only_verified or self._confirm_last_only(seqs[0], hidden[0]):
                    forward = self._forward("full", lengths, width, last_only=True)
                    return Scored(
                        self._project(hidden), BackendReport((forward,), last_layer_shortcut=True)
                    )
            hidden = self.base(**inputs).last_hidden_state[:, -1]
            forward = self._forward("full", lengths, width)
            return Scored(self._project(hidden), BackendReport((forward,)))

    def _confirm_last_only(self, sequence: list[int], hidden_row: torch.Tensor) -> bool:
        """First call: the last-token shortcut must equal a plain forward, else it is turned off."""
        from reranker_server.models.prefix_kv import full_recompute_mismatch

        diff = full_recompute_mismatch(self.base, sequence, hidden_row, pad_token_id=self.pad_id)
        if diff is not None:
            log.warning("last-token forward disabled: differs from a full forward by %.3g", diff)
            self._last_only = False
            self._last_only_reason = f"differed from a full forward by {diff:.3g} on first use"
            return False
        self._last_only_verified = True
        return True

    def score(
        self,
        prefix_ids: Sequence[int],
        pairs: Sequence[PairTokens],
        sub_batches: Sequence[Sequence[int]],
    ) -> Scored:
        """Scores from one KV cache of the prefix, one forward per sub-batch
        (reranker_server.models.prefix_kv)."""
        if not pairs:
            return Scored([], BackendReport(()))
        if not prefix_ids:
            parts = [self.score_mixed([()] * len(g), [pairs[i] for i in g]) for g in sub_batches]
            return _reassemble(sub_batches, parts, len(pairs))
        from reranker_server.models.prefix_kv import last_hidden_with_prefix

        with torch.inference_mode():
            run = last_hidden_with_prefix(
                self.base,
                list(prefix_ids),
                [list(p.input_ids) for p in pairs],
                pad_token_id=self.pad_id,
                sub_batches=sub_batches,
            )
            raw = self._project(run.hidden)
        forwards = tuple(
            self._forward(
                shape.path,
                shape.lengths,
                shape.width,
                context=shape.context,
                # the packed path runs the prefix's last layer for its last token too
                last_only=run.last_only and (shape.path == "continuation" or shape.packed),
                packed=shape.packed,
            )
            for shape in run.shapes
        )
        reused = (len(pairs) - 1) * len(prefix_ids) if run.used_cache else 0
        report = BackendReport(
            forwards,
            prefix_kv=run.used_cache,
            prefix_tokens_reused=reused,
            last_layer_shortcut=run.used_cache and run.last_only,
        )
        return Scored(raw, report)


def _reassemble(sub_batches: Sequence[Sequence[int]], parts: Sequence[Scored], n: int) -> Scored:
    """Scores in pair order from per-sub-batch results; the reports' forwards concatenated."""
    raw = [0.0] * n
    for group, part in zip(sub_batches, parts, strict=True):
        for i, value in zip(group, part.raw_scores, strict=True):
            raw[i] = value
    forwards = tuple(f for part in parts for f in part.report.forwards)
    shortcut = bool(parts) and all(part.report.last_layer_shortcut for part in parts)
    return Scored(raw, BackendReport(forwards, last_layer_shortcut=shortcut))


def _build(model: Any, tokenizer: Any, settings: BackendSettings) -> CausalRerankerBackend:
    return CausalRerankerBackend(
        model,
        tokenizer,
        model_name=settings.model_name,
        max_length=settings.max_length,
        default_instruction=settings.default_instruction,
    )


register(Family(ModelFamily.QWEN3_CAUSAL, "AutoModelForCausalLM", is_yes_no_causal_lm, _build))
