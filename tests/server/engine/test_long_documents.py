"""Long documents chunked in the engine, on both real tiny backends: the windows (computed here
from the tokenizer and the documented rule), their scores against an independent forward, how
they batch with the rest of the request, the mode's resolution and the score cache."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from qwen_card import CARD_SUFFIX, before_document
from transformers import AutoTokenizer

from reranker_server.contracts import Chunking, RerankInput, TooManyChunksError
from reranker_server.engine.scheduler import BatchRecord
from reranker_server.models import LoadOptions, load_backend
from reranker_server.models.chunking import window_count, window_spans

QUERY = "what is the capital of France?"
OVERLAP = 16
EXACT = 1e-5  # float32 logits: a window in a padded batch vs alone
# subwords, digits and punctuation: windows start and end inside words
LONG = (
    "Kubernetes operators reconcile 12345 resources; the cross-encoder's tokenizer splits "
    "unusual words like pneumonoultramicroscopic or Donaudampfschiffahrt into pieces. "
) * 6
SHORT = "Paris is the capital of France."


def documented_spans(length: int, size: int, overlap: int) -> list[tuple[int, int]]:
    """docs/server.md: windows of `size` tokens every `size - min(overlap, size // 4)` tokens,
    the last one ending at the document's end."""
    step = size - min(overlap, size // 4)
    spans, start = [], 0
    while start + size < length:
        spans.append((start, start + size))
        start += step
    return [*spans, (length - size, length)]


@pytest.mark.parametrize(
    ("length", "size", "overlap"), [(100, 30, 8), (31, 30, 8), (1000, 64, 64), (90, 30, 0)]
)
def test_window_spans_follow_the_documented_rule(length: int, size: int, overlap: int):
    spans = window_spans(length, size, overlap)
    assert spans == documented_spans(length, size, overlap)
    assert window_count(length, size, overlap) == len(spans)
    covered = set().union(*(range(a, b) for a, b in spans))
    assert covered == set(range(length)) and all(b - a == size for a, b in spans)
    assert window_spans(size, size, overlap) == [(0, size)]  # a document that fits: one


class Reference:
    """An independent scorer of whole token sequences (plain transformers, one at a time)."""

    def __init__(self, family: str, path: Path) -> None:
        from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

        self.family, self.tok = family, AutoTokenizer.from_pretrained(path)
        if family == "qwen3-causal":
            self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
            self.yes = self.tok.convert_tokens_to_ids("yes")
            self.no = self.tok.convert_tokens_to_ids("no")
        else:
            self.model = AutoModelForSequenceClassification.from_pretrained(
                path, dtype=torch.float32
            ).eval()

    def ids(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=False)["input_ids"]

    def around(self, query: str) -> tuple[list[int], list[int]]:
        """The tokens before and after a document's."""
        if self.family == "qwen3-causal":
            prefix = before_document(query)
            return self.ids(prefix), self.ids(CARD_SUFFIX)
        cls, sep = self.tok.cls_token_id, self.tok.sep_token_id
        return [cls, *self.ids(query), sep], [sep]

    def doc_ids(self, doc: str) -> list[int]:
        return self.ids(" " + doc if self.family == "qwen3-causal" else doc)

    def raw(self, query: str, doc_ids: list[int]) -> float:
        head, tail = self.around(query)
        ids = torch.tensor([head + doc_ids + tail])
        with torch.inference_mode():
            if self.family == "qwen3-causal":
                logits = self.model(input_ids=ids).logits[0, -1]
                return float(logits[self.yes] - logits[self.no])
            types = torch.tensor([[0] * len(head) + [1] * (ids.shape[1] - len(head))])
            return float(self.model(input_ids=ids, token_type_ids=types).logits[0, 0])

    def windows(self, query: str, doc: str, max_length: int) -> list[list[int]]:
        ids = self.doc_ids(doc)
        head, tail = self.around(query)
        size = max_length - len(head) - len(tail)
        return [ids[a:b] for a, b in documented_spans(len(ids), size, OVERLAP)]


MAX_LENGTH = {"qwen3-causal": 160, "cross-encoder": 64}


@pytest.fixture(scope="module", params=list(MAX_LENGTH))
def family(request, qwen3_3l_path: Path, tiny_cross_encoder_path: Path):
    """(backend with a short max length, independent reference)."""
    name = request.param
    path = qwen3_3l_path if name == "qwen3-causal" else tiny_cross_encoder_path
    backend = load_backend(
        LoadOptions(model=str(path), device="cpu", dtype="float32", max_length=MAX_LENGTH[name])
    )
    return backend, Reference(name, path)


CHUNKING = Chunking(overlap_tokens=OVERLAP)


async def test_a_chunked_document_scores_the_max_of_its_windows(family, engine_factory):
    backend, ref = family
    engine = await engine_factory(backend, long_documents="chunk", chunking=CHUNKING)
    records: list[BatchRecord] = []
    engine.add_batch_listener(records.append)
    out = await engine.rerank(RerankInput(query=QUERY, documents=[SHORT, LONG, SHORT + " Berlin"]))
    windows = ref.windows(QUERY, LONG, backend.max_length)
    assert len(windows) >= 3
    alone = [ref.raw(QUERY, w) for w in windows]
    assert abs(out.raw_scores[1] - max(alone)) <= EXACT, (out.raw_scores, alone)
    assert abs(out.raw_scores[0] - ref.raw(QUERY, ref.doc_ids(SHORT))) <= EXACT
    assert (out.chunked_documents, out.chunk_windows, out.truncated_documents) == (
        1,
        len(windows),
        0,
    )
    # the windows are pairs of the same request: one batch with the other documents (on the
    # shared prefix's KV cache for the causal model)
    assert len(records) == 1 and len(records[0].request_ids) == len(windows) + 2
    if backend.prefix_cache_in_force:
        assert records[0].kind == "prefix" and records[0].report.prefix_kv
    head, tail = ref.around(QUERY)
    assert out.prompt_tokens == sum(
        len(head) + len(ids) + len(tail) for ids in [ref.doc_ids(SHORT), *windows]
    ) + len(head) + len(ref.doc_ids(SHORT + " Berlin")) + len(tail)
    mean = await engine.rerank(RerankInput(query=QUERY, documents=[LONG], chunk_aggregate="mean"))
    assert abs(mean.raw_scores[0] - sum(alone) / len(alone)) <= EXACT


async def test_the_request_overrides_the_setting_and_truncate_is_unchanged(family, engine_factory):
    backend, ref = family
    truncating = await engine_factory(backend)  # LONG_DOCUMENTS default: truncate
    chunking = await engine_factory(backend, long_documents="chunk", chunking=CHUNKING)
    head = ref.windows(QUERY, LONG, backend.max_length)[0]  # what truncation keeps
    before = ref.raw(QUERY, head)
    for engine, mode in ((truncating, None), (chunking, "truncate")):
        out = await engine.rerank(RerankInput(query=QUERY, documents=[LONG], long_documents=mode))
        assert abs(out.raw_scores[0] - before) <= EXACT
        assert (out.truncated_documents, out.chunked_documents) == (1, 0)
    out = await truncating.rerank(
        RerankInput(query=QUERY, documents=[LONG], long_documents="chunk")
    )
    assert out.chunked_documents == 1


async def test_the_score_cache_keeps_the_modes_apart(family, engine_factory):
    backend, _ = family
    engine = await engine_factory(backend, score_cache_size=16, chunking=CHUNKING)
    cut = await engine.rerank(RerankInput(query=QUERY, documents=[LONG]))
    whole = await engine.rerank(RerankInput(query=QUERY, documents=[LONG], long_documents="chunk"))
    assert whole.chunked_documents == 1 and whole.raw_scores != cut.raw_scores
    again = await engine.rerank(RerankInput(query=QUERY, documents=[LONG], long_documents="chunk"))
    assert again.raw_scores == whole.raw_scores and again.chunked_documents == 0  # from the cache


async def test_bounds_refuse_before_scoring(family, engine_factory):
    backend, ref = family
    count = len(ref.windows(QUERY, LONG, backend.max_length))
    tight = Chunking(overlap_tokens=OVERLAP, max_per_document=count - 1)
    engine = await engine_factory(backend, long_documents="chunk", chunking=tight)
    with pytest.raises(TooManyChunksError) as caught:
        await engine.rerank(RerankInput(query=QUERY, documents=[SHORT, LONG]))
    assert (caught.value.setting, caught.value.document, caught.value.chunks) == (
        "max_chunks_per_document",
        1,
        count,
    )
    per_request = Chunking(overlap_tokens=OVERLAP, max_per_request=2 * count - 1)
    engine = await engine_factory(backend, long_documents="chunk", chunking=per_request)
    with pytest.raises(TooManyChunksError) as caught:
        await engine.rerank(RerankInput(query=QUERY, documents=[LONG, SHORT, LONG]))
    assert caught.value.setting == "max_chunks_per_request" and caught.value.document is None
