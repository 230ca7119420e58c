"""Long documents through the HTTP API, on both model families: truncate (today's scores,
counted) or chunk (overlapping windows that fit, the document scoring the max of its windows).

The windows are computed here from the tokenizer and the documented rule (docs/server.md, "Long
documents: truncate or chunk"), not from the server's code, and scored one by one through the
plain API as short documents."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from qwen_card import CARD_SUFFIX, before_document
from transformers import AutoTokenizer

from reranker_devtools.tiny_models import single_token_words
from server_helpers import running_client, settings_for

QUERY = "what is the capital of France"
OVERLAP = 8  # CHUNK_OVERLAP_TOKENS of the servers here
CHUNK = {"query": QUERY, "long_documents": "chunk"}
EXACT = 1e-5  # a window scored inside its document's request vs alone, float32 logits
# max sequence length per family: a few windows for a document of a hundred words
MAX_LENGTH = {"qwen3-causal": 100, "cross-encoder": 40}


@dataclass
class Family:
    """A served tiny model and what the test computes itself from its tokenizer."""

    name: str
    client: TestClient
    tok: Any
    max_length: int

    def doc_ids(self, doc: str) -> list[int]:
        """The document's tokens as the prompt holds them (Qwen3: after '<Document>:', so with
        the space before it)."""
        text = " " + doc if self.name == "qwen3-causal" else doc
        return self.tok(text, add_special_tokens=False)["input_ids"]

    def fixed(self, query: str = QUERY) -> int:
        """Tokens of a sequence that are not the document's."""
        if self.name == "qwen3-causal":
            prefix = before_document(query)
            return sum(len(self.doc_tokens(t)) for t in (prefix, CARD_SUFFIX))
        pair = self.tok(query, "x")["input_ids"]  # [CLS] query [SEP] x [SEP]
        return len(pair) - len(self.doc_tokens("x"))

    def doc_tokens(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=False)["input_ids"]

    @property
    def room(self) -> int:
        return self.max_length - self.fixed()

    def text_of(self, ids: list[int]) -> str:
        """The short document whose tokens in the prompt are `ids` (checked to round-trip)."""
        text = self.tok.decode(ids)
        if self.name == "qwen3-causal":
            assert text.startswith(" ")
            text = text[1:]
        assert self.doc_ids(text) == ids, "test documents must round-trip through the tokenizer"
        return text

    def windows(self, doc: str) -> list[str]:
        """The documented windows: `room` tokens every `room - overlap` tokens (overlap at most a
        quarter window), the last one ending at the document's end."""
        ids, size = self.doc_ids(doc), self.room
        assert len(ids) > size
        step = size - min(OVERLAP, size // 4)
        starts, start = [], 0
        while start + size < len(ids):
            starts.append(start)
            start += step
        starts.append(len(ids) - size)
        return [self.text_of(ids[s : s + size]) for s in starts]

    def head(self, doc: str) -> str:
        """What truncation keeps of `doc`: its first `room` tokens."""
        return self.text_of(self.doc_ids(doc)[: self.room])

    def raw(self, texts: list[str], **fields: Any) -> list[float]:
        """Raw scores (TEI shape), in input order (16 documents a request at most)."""
        out = []
        for start in range(0, len(texts), 16):
            body = {"query": QUERY, "texts": texts[start : start + 16], "raw_scores": True}
            r = self.client.post("/rerank", json={**body, **fields})
            assert r.status_code == 200, r.text
            out += [x["score"] for x in sorted(r.json(), key=lambda x: x["index"])]
        return out


def words(family: Family, count: int, seed: int) -> str:
    rng = random.Random(seed)
    vocab = single_token_words(family.tok)
    return " ".join(rng.choice(vocab) for _ in range(count))


def with_windows(family: Family, windows: int, seed: int) -> str:
    """A document of single-token words that the documented rule cuts into `windows` windows."""
    for count in range(family.room, 40 * family.room):
        doc = words(family, count, seed)
        if len(family.doc_ids(doc)) > family.room and len(family.windows(doc)) == windows:
            return doc
    raise AssertionError(f"no document of {windows} windows")


def _family(request, overrides: dict[str, Any]) -> Iterator[Family]:
    name = request.param
    path = request.getfixturevalue(
        "tiny_qwen3_path" if name == "qwen3-causal" else "tiny_cross_encoder_path"
    )
    settings = settings_for(
        path,
        max_sequence_length=MAX_LENGTH[name],
        chunk_overlap_tokens=OVERLAP,
        score_check_builtins="finite,spread,consistent",
        **overrides,
    )
    tok = AutoTokenizer.from_pretrained(path)
    for client in running_client(settings):
        yield Family(name, client, tok, MAX_LENGTH[name])


@pytest.fixture(scope="module", params=list(MAX_LENGTH))
def family(request) -> Iterator[Family]:
    """Each family served with LONG_DOCUMENTS left at its default (truncate)."""
    yield from _family(request, {})


@pytest.fixture(scope="module", params=list(MAX_LENGTH))
def bounded(request) -> Iterator[Family]:
    """Each family served with small bounds: 4 windows per document, 6 per request, 7 whole
    sequences' tokens per request. (LONG_DOCUMENTS stays truncate: the score check's probes,
    longer than these max lengths, would be chunked beyond 6 windows a request.)"""
    yield from _family(
        request,
        {
            "max_chunks_per_document": 4,
            "max_chunks_per_request": 6,
            "max_request_tokens": 7 * MAX_LENGTH[request.param],
        },
    )


def test_chunked_score_is_the_max_of_its_windows_scored_alone(family: Family):
    long = with_windows(family, 4, seed=1)
    short = words(family, 5, seed=2)
    windows = family.windows(long)
    alone = family.raw(windows)
    got = family.raw([short, long], long_documents="chunk")
    assert abs(got[1] - max(alone)) <= EXACT, (got, alone)
    assert abs(got[0] - family.raw([short])[0]) <= EXACT  # a document that fits is unchanged
    mean = family.raw([long], long_documents="chunk", chunk_aggregate="mean")[0]
    assert abs(mean - sum(alone) / len(alone)) <= EXACT
    assert len(set(round(x, 4) for x in alone)) > 1  # the windows really differ


def test_truncate_is_unchanged(family: Family):
    long = with_windows(family, 3, seed=3)
    head = family.raw([family.head(long)])[0]  # what truncation always scored: the head alone
    for fields in ({}, {"long_documents": "truncate"}):
        assert abs(family.raw([long], **fields)[0] - head) <= EXACT
    r = family.client.post("/v1/rank", json={"query": QUERY, "docs": [long, "Paris"]})
    assert r.json()["long_documents"] == {
        "mode": "truncate",
        "truncated_documents": 1,
        "chunked_documents": 0,
        "chunk_windows": 0,
    }


def test_a_passage_deep_in_a_long_document_ranks_it_first(family: Family):
    """Documents share a long filler and differ only past it (beyond the max length): cut, they
    tie; chunked, the one whose passage's window scores highest ranks first, with exactly that
    window's score. With random weights a filler window may outscore every passage: the test
    looks for a filler (among a few) whose windows the best passage's window outranks."""
    for seed in range(4, 24):
        filler = with_windows(family, 3, seed=seed)
        docs = [f"{filler} {words(family, 6, seed=100 + k)}" for k in range(8)]
        last = [family.windows(d)[-1] for d in docs]  # the window holding each passage
        scores_of_last = family.raw(last)
        best = max(range(len(docs)), key=scores_of_last.__getitem__)
        others = {w for d in docs for w in family.windows(d)} - {last[best]}
        if scores_of_last[best] > max(family.raw(sorted(others))) + 1e-3:
            break
    else:
        raise AssertionError("no filler whose windows a passage's window outranks")
    cut = family.raw(docs)
    assert max(cut) - min(cut) <= EXACT  # truncated, the passages are lost: a tie
    chunked = family.raw(docs, long_documents="chunk")
    assert max(range(len(docs)), key=chunked.__getitem__) == best
    assert abs(chunked[best] - scores_of_last[best]) <= EXACT


def test_every_shape_with_room_reports_the_long_documents(family: Family):
    long = with_windows(family, 3, seed=5)
    docs = [long, long + " Paris", "Paris"]
    want = {"mode": "chunk", "truncated_documents": 0, "chunked_documents": 2}
    body = {"query": QUERY, "long_documents": "chunk"}
    cohere = family.client.post("/v2/rerank", json={**body, "documents": docs}).json()
    simple = family.client.post("/rerank", json={**body, "documents": docs}).json()
    rank = family.client.post("/v1/rank", json={**body, "docs": docs}).json()
    for report in (
        cohere["meta"]["long_documents"],
        simple["long_documents"],
        rank["long_documents"],
    ):
        assert report.items() >= want.items()
        assert report["chunk_windows"] == sum(len(family.windows(d)) for d in docs[:2])
    # the windows are billed: the prompt tokens are every window's sequence
    windows = sum(len(family.windows(d)) for d in docs[:2])
    assert cohere["usage"]["prompt_tokens"] > windows * family.fixed()


def _counter(client: TestClient, name: str, **labels: str) -> float:
    total = 0.0
    for metric in text_string_to_metric_families(client.get("/metrics").text):
        for sample in metric.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def test_the_metrics_count_chunked_documents_and_windows(family: Family):
    long = with_windows(family, 3, seed=6)
    names = (
        "reranker_chunked_documents_total",
        "reranker_chunk_windows_total",
        "reranker_truncated_documents_total",
    )
    before = [_counter(family.client, n) for n in names]
    family.raw([long, long + " Paris"], long_documents="chunk")
    family.raw([long])  # truncated
    after = [_counter(family.client, n) for n in names]
    windows = len(family.windows(long)) + len(family.windows(long + " Paris"))
    assert [a - b for a, b in zip(after, before)] == [2, windows, 1]


def _refused(r, setting: str, field: str) -> None:
    assert r.status_code == 413, r.text
    error = r.json()["error"]
    assert error["setting"] == setting and error["field"] == field
    assert setting in error["message"]


def test_bounds_give_413_naming_the_setting(bounded: Family):
    client = bounded.client
    five, four = with_windows(bounded, 5, seed=7), with_windows(bounded, 4, seed=8)
    three, two = with_windows(bounded, 3, seed=9), with_windows(bounded, 2, seed=10)
    fits = words(bounded, bounded.room, seed=11)  # one whole sequence, not chunked
    assert len(bounded.doc_ids(fits)) == bounded.room
    refused = _counter(client, "reranker_requests_refused_total", limit="max_chunks_per_document")
    r = client.post("/rerank", json={**CHUNK, "texts": ["Paris", five]})
    _refused(r, "max_chunks_per_document", "texts[1]")
    assert (
        _counter(client, "reranker_requests_refused_total", limit="max_chunks_per_document")
        == refused + 1
    )
    r = client.post("/v2/rerank", json={**CHUNK, "documents": [four, three, "Paris"]})
    _refused(r, "max_chunks_per_request", "documents")
    # the windows count toward the request's tokens (7 whole sequences here): 6 windows are
    # within the chunk bounds, but with two more whole sequences beyond max_request_tokens
    r = client.post("/v1/rank", json={**CHUNK, "docs": [four, fits]})
    assert r.status_code == 200, r.text
    r = client.post("/v1/rank", json={**CHUNK, "docs": [four, two, fits, fits]})
    _refused(r, "max_request_tokens", "docs")
    # truncated (the server's setting here), the same document is one sequence
    r = client.post("/rerank", json={"query": QUERY, "texts": [five]})
    assert r.status_code == 200, r.text


def test_tei_truncate_false_refuses_a_long_document_unless_it_is_chunked(family: Family):
    long = with_windows(family, 2, seed=12)
    body = {"query": QUERY, "texts": [long], "truncate": False}
    assert family.client.post("/rerank", json=body).status_code == 413
    r = family.client.post("/rerank", json={**body, "long_documents": "chunk"})
    assert r.status_code == 200, r.text  # chunked, nothing is cut
