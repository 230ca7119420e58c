"""The cross-encoder backend against a plain BertForSequenceClassification forward."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from reranker_server.contracts import InputTooLongError, RerankInput
from reranker_server.models import LoadOptions, load_backend
from scoring_helpers import score_full, score_with_prefix
from tolerance import assert_scores_close

DOCS = [
    "Paris is the capital of France.",
    "the quick brown fox jumps over the lazy dog",
    "12345 numbers 3.14 and 50%",
    "unicode: café naïve",
    "",
    "machine learning model server on a kubernetes cluster",
]


@pytest.fixture(scope="module")
def backend(tiny_cross_encoder_path):
    return load_backend(
        LoadOptions(model=str(tiny_cross_encoder_path), device="cpu", dtype="float32")
    )


@pytest.fixture(scope="module")
def reference(tiny_cross_encoder_path):
    tok = AutoTokenizer.from_pretrained(tiny_cross_encoder_path)
    model = AutoModelForSequenceClassification.from_pretrained(
        tiny_cross_encoder_path, dtype=torch.float32
    ).eval()

    def score(query: str, doc: str) -> float:
        with torch.no_grad():
            return torch.sigmoid(
                model(**tok([query], [doc], return_tensors="pt")).logits[0, 0]
            ).item()

    return tok, score


def test_family(backend):
    assert backend.family == "cross-encoder"
    assert backend.prefix_cache_in_force is False
    assert backend.max_length == 512


def test_pair_encoding_matches_tokenizer(backend, reference):
    tok, _ = reference
    enc = backend.encode(RerankInput(query="capital of France", documents=DOCS))
    assert enc.prefix_ids == ()
    for doc, pair in zip(DOCS, enc.pairs):
        expected = tok(
            ["capital of France"], [doc]
        )  # batch form: an empty doc still counts as a pair
        assert pair.input_ids == expected["input_ids"][0]
        assert pair.token_type_ids == expected["token_type_ids"][0]
    assert enc.prompt_tokens == sum(len(p.input_ids) for p in enc.pairs)


def test_scores_match_reference_and_batching(backend, reference, tiny_cross_encoder_path):
    _, ref = reference
    enc = backend.encode(RerankInput(query="capital of France", documents=DOCS))
    raw = score_full(backend, enc.prefix_ids, enc.pairs)
    got = [1 / (1 + math.exp(-r)) for r in raw]
    expected = [ref("capital of France", d) for d in DOCS]
    assert_scores_close(got, expected, tiny_cross_encoder_path)
    assert max(expected) - min(expected) > 0.01
    single = [score_full(backend, (), [p])[0] for p in enc.pairs]
    assert_scores_close(raw, single, tiny_cross_encoder_path, "logit", "same_kernel")
    # an encoder has no prefix: the same one forward of whole pairs
    assert_scores_close(
        score_with_prefix(backend, (), enc.pairs),
        raw,
        tiny_cross_encoder_path,
        "logit",
        "same_kernel",
    )


def test_truncation(tiny_cross_encoder_path, reference):
    tok, _ = reference
    small = load_backend(
        LoadOptions(
            model=str(tiny_cross_encoder_path), device="cpu", dtype="float32", max_length=24
        )
    )
    doc = "one two three four five six seven eight nine ten " * 5
    doc_ids = tok(doc, add_special_tokens=False)["input_ids"]
    q_ids = tok("fruit", add_special_tokens=False)["input_ids"]
    cls_id, sep_id = tok.cls_token_id, tok.sep_token_id
    enc = small.encode(RerankInput(query="fruit", documents=[doc, "ten"]))
    keep = 24 - len(q_ids) - 3
    assert enc.pairs[0].input_ids == [cls_id, *q_ids, sep_id, *doc_ids[:keep], sep_id]
    assert enc.truncated == [True, False]
    left = small.encode(
        RerankInput(
            query="fruit", documents=[doc], max_tokens_per_doc=4, truncation_direction="left"
        )
    )
    assert left.pairs[0].input_ids == [cls_id, *q_ids, sep_id, *doc_ids[-4:], sep_id]
    with pytest.raises(InputTooLongError) as err:
        small.encode(RerankInput(query="fruit", documents=[doc], truncate=False))
    assert err.value.field == "documents[0]"
    with pytest.raises(InputTooLongError) as err:
        small.encode(RerankInput(query="apple " * 30, documents=["x"]))
    assert err.value.field == "query"
