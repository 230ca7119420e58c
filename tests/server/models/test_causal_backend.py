"""The causal (Qwen3-Reranker style) backend against an independent plain-transformers reference."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from reranker_server.contracts import InputTooLongError, RerankError, RerankInput
from reranker_server.models import LoadOptions, load_backend
from scoring_helpers import score_full, score_with_prefix
from tolerance import assert_scores_close, fp32_tolerance

# The model card's template, written out here independently of the server's own constants.
CARD_PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the "
    'Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
)
CARD_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
CARD_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"

AWKWARD_DOCS = [
    "Paris is the capital of France.",
    "  leading spaces",
    "trailing spaces   ",
    "12345 numbers 3.14 and 50%",
    "...punctuation first!?",
    "unicode: café naïve 東京 данные — «quotes»",
    "line one\nline two\n\nline four",
    "\nstarts with newline",
    "",
    " ",
    "ends with newline\n",
    "tabs\tand\tmore",
    "'s contraction first",
    "emoji 🙂 and ZWJ 👩‍💻",
    "<|im_end|> fake special",
    "ends in a partial special <|im_",
    "\r\nwindows line end, e\u0301 combining",
]


def card_prompt(query: str, doc: str, instruction: str = CARD_INSTRUCTION) -> str:
    return (
        f"{CARD_PREFIX}<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {doc}{CARD_SUFFIX}"
    )


@pytest.fixture(scope="module")
def backend(tiny_qwen3_path):
    return load_backend(LoadOptions(model=str(tiny_qwen3_path), device="cpu", dtype="float32"))


@pytest.fixture(scope="module")
def reference(tiny_qwen3_path):
    tok = AutoTokenizer.from_pretrained(tiny_qwen3_path)
    model = AutoModelForCausalLM.from_pretrained(tiny_qwen3_path, dtype=torch.float32).eval()
    no_id, yes_id = tok.convert_tokens_to_ids("no"), tok.convert_tokens_to_ids("yes")

    def score(query: str, doc: str, instruction: str = CARD_INSTRUCTION) -> float:
        ids = tok(card_prompt(query, doc, instruction), return_tensors="pt")
        with torch.no_grad():
            logits = model(**ids).logits[0, -1]
        return torch.softmax(logits[[no_id, yes_id]], dim=0)[1].item()

    return tok, score


def test_family_and_limits(backend):
    assert backend.family == "qwen3-causal"
    assert backend.prefix_cache_in_force is True
    assert backend.max_length == 4096  # capped at the tiny model's max_position_embeddings
    assert backend.device == "cpu" and backend.dtype == "float32"


def test_segmentation_equals_whole_prompt_tokenization(backend, reference):
    """Without the whole-prompt check (`models/segmentation.py` proves this tokenizer safe)."""
    assert not backend.verify_segmentation
    tok, _ = reference
    query = "what is the capital of France?"
    enc = backend.encode(RerankInput(query=query, documents=AWKWARD_DOCS))
    assert enc.prompt_tokens == sum(len(enc.prefix_ids) + len(p.input_ids) for p in enc.pairs)
    for doc, pair in zip(AWKWARD_DOCS, enc.pairs):
        assert list(enc.prefix_ids) + pair.input_ids == tok(card_prompt(query, doc))["input_ids"], (
            repr(doc)
        )
    # the shared prefix is the whole system + instruction + query + "\n<Document>:" part
    assert tok.decode(list(enc.prefix_ids)).endswith("\n<Document>:")
    assert enc.truncated == [False] * len(AWKWARD_DOCS)


def test_scores_match_reference(backend, reference, tiny_qwen3_path):
    _, ref = reference
    query = "capital of France"
    enc = backend.encode(RerankInput(query=query, documents=AWKWARD_DOCS))
    raw = score_full(backend, enc.prefix_ids, enc.pairs)
    expected = [ref(query, d) for d in AWKWARD_DOCS]
    got = [1 / (1 + math.exp(-r)) for r in raw]
    assert_scores_close(got, expected, tiny_qwen3_path)
    assert max(expected) - min(expected) > 0.05  # the tiny model's scores actually spread


def test_custom_instruction_matches_reference(backend, reference, tiny_qwen3_path):
    _, ref = reference
    inst = "Find passages about geography"
    enc = backend.encode(
        RerankInput(query="rivers", documents=["the river flows", "a dog"], instruction=inst)
    )
    raw = score_full(backend, enc.prefix_ids, enc.pairs)
    want = [ref("rivers", doc, inst) for doc in ["the river flows", "a dog"]]
    assert_scores_close([1 / (1 + math.exp(-r)) for r in raw], want, tiny_qwen3_path)
    default = backend.encode(RerankInput(query="rivers", documents=["a dog"]))
    assert default.prefix_key != enc.prefix_key


def test_batched_equals_single(backend, tiny_qwen3_path):
    enc = backend.encode(RerankInput(query="which fruit is green?", documents=AWKWARD_DOCS))
    batched = score_full(backend, enc.prefix_ids, enc.pairs)
    single = [score_full(backend, enc.prefix_ids, [p])[0] for p in enc.pairs]
    assert_scores_close(batched, single, tiny_qwen3_path, "logit", "same_kernel")


def test_score_with_prefix_equals_full(backend, tiny_qwen3_path):
    pytest.importorskip("reranker_server.models.prefix_kv")
    enc = backend.encode(RerankInput(query="which fruit is green?", documents=AWKWARD_DOCS[:8]))
    full = score_full(backend, enc.prefix_ids, enc.pairs)
    cached = score_with_prefix(backend, enc.prefix_ids, enc.pairs)
    # a different attention path (cached keys/values): counted as another implementation
    assert_scores_close(cached, full, tiny_qwen3_path, "logit")


def _doc_tokens(tok, doc: str) -> list[int]:
    return tok(" " + doc, add_special_tokens=False)["input_ids"]


def test_max_tokens_per_doc_right_and_left(backend, reference):
    tok, _ = reference
    doc = "one two three four five six seven eight nine ten apple banana orange"
    full_doc = _doc_tokens(tok, doc)
    suffix = tok(CARD_SUFFIX, add_special_tokens=False)["input_ids"]
    assert len(full_doc) > 5
    for direction, kept in (("right", full_doc[:5]), ("left", full_doc[-5:])):
        enc = backend.encode(
            RerankInput(
                query="q",
                documents=[doc, "short"],
                max_tokens_per_doc=5,
                truncation_direction=direction,
            )
        )
        assert enc.pairs[0].input_ids == kept + suffix  # template suffix intact
        assert enc.truncated == [True, False]


def test_max_length_truncates_document_only(tiny_qwen3_path, reference):
    tok, _ = reference
    small = load_backend(
        LoadOptions(model=str(tiny_qwen3_path), device="cpu", dtype="float32", max_length=120)
    )
    assert small.max_length == 120
    long_doc = "apple banana orange " * 100
    enc = small.encode(RerankInput(query="fruit", documents=[long_doc, "short doc"]))
    assert len(enc.prefix_ids) + len(enc.pairs[0].input_ids) == 120
    suffix = tok(CARD_SUFFIX, add_special_tokens=False)["input_ids"]
    assert enc.pairs[0].input_ids[-len(suffix) :] == suffix
    assert enc.truncated == [True, False]
    # the query stays whole: the prefix is exactly the query's prompt prefix
    prefix_text = f"{CARD_PREFIX}<Instruct>: {CARD_INSTRUCTION}\n<Query>: fruit\n<Document>:"
    assert list(enc.prefix_ids) == tok(prefix_text, add_special_tokens=False)["input_ids"]
    with pytest.raises(InputTooLongError) as err:
        small.encode(RerankInput(query="fruit", documents=["short", long_doc], truncate=False))
    assert err.value.field == "documents[1]" and err.value.limit == 120 and err.value.tokens > 120
    assert err.value.status_code == 413
    with pytest.raises(InputTooLongError) as err:
        small.encode(RerankInput(query="word " * 200, documents=["doc"]))
    assert err.value.field == "query" and err.value.tokens > 120


def test_non_string_document_names_index(backend):
    with pytest.raises(RerankError) as err:
        backend.encode(RerankInput(query="q", documents=["ok", 3]))  # type: ignore[list-item]
    assert err.value.field == "documents[1]"


def test_fallback_when_segmentation_differs(tmp_path_factory):
    """A BPE without word splitting merges across ': ' so segment-wise tokens differ from the
    whole prompt's; encode must then move the split and still equal the whole-prompt tokens."""
    from reranker_devtools.tiny_models import build_qwen3_reranker, default_corpus

    docs = ["the dog", "Paris", "apple pie", "12", "...", "x"]
    corpus = default_corpus(0) + ["<Document>: " + d for d in docs[:5]] * 30
    path = build_qwen3_reranker(
        tmp_path_factory.mktemp("nosplit"), split_pattern=None, vocab_corpus=corpus
    )
    tok = AutoTokenizer.from_pretrained(path)
    query = "q"
    prefix_text = f"{CARD_PREFIX}<Instruct>: {CARD_INSTRUCTION}\n<Query>: {query}\n<Document>:"
    prefix = tok(prefix_text, add_special_tokens=False)["input_ids"]
    suffix = tok(CARD_SUFFIX, add_special_tokens=False)["input_ids"]
    wholes = [tok(card_prompt(query, d))["input_ids"] for d in docs]
    segmentwise = [
        prefix + tok(" " + d, add_special_tokens=False)["input_ids"] + suffix for d in docs
    ]
    assert any(w != s for w, s in zip(wholes, segmentwise))  # the situation this test is about

    backend = load_backend(LoadOptions(model=str(path), device="cpu", dtype="float32"))
    enc = backend.encode(RerankInput(query=query, documents=docs))
    assert len(enc.prefix_ids) < len(prefix)
    for whole, pair in zip(wholes, enc.pairs):
        assert list(enc.prefix_ids) + pair.input_ids == whole
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    no_id, yes_id = tok.convert_tokens_to_ids("no"), tok.convert_tokens_to_ids("yes")
    raw = score_full(backend, enc.prefix_ids, enc.pairs)
    for r, whole in zip(raw, wholes):
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([whole])).logits[0, -1]
        expected = torch.softmax(logits[[no_id, yes_id]], dim=0)[1].item()
        assert abs(1 / (1 + math.exp(-r)) - expected) <= fp32_tolerance(path)


def test_wrong_last_token_shortcut_is_caught_on_first_use(tiny_qwen3_path, reference, monkeypatch):
    """Fault injection: a shortcut that returns wrong hidden states is detected by the first-call
    comparison with a plain forward, turned off, and the scores stay right."""
    from reranker_server.models import last_token

    fresh = load_backend(LoadOptions(model=str(tiny_qwen3_path), device="cpu", dtype="float32"))
    assert fresh._last_only  # the tiny Qwen3 takes the shortcut
    real = last_token.last_token_hidden
    monkeypatch.setattr(last_token, "last_token_hidden", lambda *a: real(*a) + 0.5)
    _, ref = reference
    docs = AWKWARD_DOCS[:4]
    enc = fresh.encode(RerankInput(query="capital of France", documents=docs))
    raw = score_full(fresh, enc.prefix_ids, enc.pairs)
    got = [1 / (1 + math.exp(-r)) for r in raw]
    assert_scores_close(got, [ref("capital of France", d) for d in docs], tiny_qwen3_path)
    assert not fresh._last_only


def test_last_token_shortcut_is_kept_when_it_agrees(tiny_qwen3_path):
    fresh = load_backend(LoadOptions(model=str(tiny_qwen3_path), device="cpu", dtype="float32"))
    enc = fresh.encode(RerankInput(query="q", documents=["a b c", "d"]))
    score_full(fresh, enc.prefix_ids, enc.pairs)
    assert fresh._last_only and fresh._last_only_verified


def test_a_wrong_cached_forward_never_reaches_the_scores(tiny_qwen3_path, reference):
    """Fault injection on the server's own path: a decoder that mishandles the KV cache (its
    first layer's output shifted whenever a cache object is passed, whatever the installed
    transformers calls the argument) is caught by the first-use check; the request is answered
    from a full recompute and equals the independent reference."""
    from transformers import Cache

    from reranker_server.models import packed_decoder
    from reranker_server.models.prefix_kv import prefix_cache_unsupported

    fresh = load_backend(LoadOptions(model=str(tiny_qwen3_path), device="cpu", dtype="float32"))
    # the plain cached path, whose forwards run the modules (the packed one is tested apart)
    packed_decoder.disable(fresh.base, "test: the plain cached path")

    def corrupt_cached(_module, _args, kwargs, output):
        if any(isinstance(value, Cache) for value in kwargs.values()):
            return (output[0] + 1.0, *output[1:]) if isinstance(output, tuple) else output + 1.0
        return output

    fresh.base.layers[0].register_forward_hook(corrupt_cached, with_kwargs=True)
    _, ref = reference
    docs = AWKWARD_DOCS[:5]
    enc = fresh.encode(RerankInput(query="capital of France", documents=docs))
    got = [1 / (1 + math.exp(-r)) for r in score_with_prefix(fresh, enc.prefix_ids, enc.pairs)]
    assert "differs from a full recompute" in prefix_cache_unsupported[fresh.base]
    assert_scores_close(got, [ref("capital of France", d) for d in docs], tiny_qwen3_path)


def test_the_cache_is_passed_under_the_name_the_model_declares(backend):
    """No deprecated cache argument: transformers >= 5.24 warns on `past_key_values` (removed in
    5.40); the shortcuts use whatever name the installed model's forward declares."""
    import warnings

    enc = backend.encode(RerankInput(query="capital of France", documents=AWKWARD_DOCS[:6]))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        score_with_prefix(backend, enc.prefix_ids, enc.pairs)
        score_full(backend, enc.prefix_ids, enc.pairs)
    deprecated = [str(w.message) for w in seen if "deprecated" in str(w.message).lower()]
    assert not deprecated, deprecated
