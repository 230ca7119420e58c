"""The word floor under a text's tokens (`models/token_floor.py`) against the tokenizers library,
and the causal backend refusing a request from it before tokenizing."""

from __future__ import annotations

import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import AddedToken, Regex, Tokenizer, models, pre_tokenizers
from transformers import AutoTokenizer

from reranker_server.contracts import EncodeBudget, RerankInput, TooManyTokensError
from reranker_server.models import LoadOptions, load_backend
from reranker_server.models.segmentation import KNOWN_SPLIT_PATTERNS, tokenizer_spec
from reranker_server.models.token_floor import why_no_word_floor, words

# every character `str.split` splits on, from the whole of Unicode
SPLIT_WHITESPACE = [chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()]
SEPARATORS_SPLIT_ONLY = ["\x1c", "\x1d", "\x1e", "\x1f"]
SIDES = list("aZ09!.'<é東🙂") + ["'s", "\u0301"]
AWKWARD = SIDES + SPLIT_WHITESPACE + ["<|im_end|>", "\r\n"]
texts = st.lists(st.sampled_from(AWKWARD), max_size=16).map("".join)


def _pre_tokenizer(name: str):
    if name == "gpt2":
        return pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    return pre_tokenizers.Split(Regex(KNOWN_SPLIT_PATTERNS[name]), behavior="isolated")


def _spans(pre, text: str) -> list[str]:
    return [text[a:b] for _, (a, b) in pre.pre_tokenize_str(text)]


@pytest.mark.parametrize("name", sorted(KNOWN_SPLIT_PATTERNS))
def test_every_split_whitespace_ends_a_pre_token(name):
    """str.split's whitespace (but the four separators) is whitespace to the patterns: no
    pre-token holds characters from both sides of it."""
    pre = _pre_tokenizer(name)
    for space in SPLIT_WHITESPACE:
        for left in SIDES:
            for right in SIDES:
                text = left + space + right
                if space in SEPARATORS_SPLIT_ONLY:
                    continue
                for piece in _spans(pre, text):
                    assert len(piece.split()) <= 1, (name, text, piece)


def test_the_four_separators_are_why_words_gives_up():
    """They are words' separators to str.split but not to the patterns: a floor from them
    would be wrong, so `words` refuses such a text."""
    pre = _pre_tokenizer("qwen2")
    assert any(len(p.split()) > 1 for p in _spans(pre, "!\x1c!"))
    assert all(words(f"a{c}b") is None for c in SEPARATORS_SPLIT_ONLY)
    assert words("a b\tc\u3000d") == 4


ASCII = [chr(c) for c in range(128)]


@settings(max_examples=500, deadline=None)
@given(
    text=st.lists(
        st.sampled_from(ASCII) | st.sampled_from([" ", "\t", "\r\n", "\x0b\x0c", "word"]),
        max_size=40,
    ).map("".join)
)
def test_ascii_texts_are_counted_as_str_split_counts_them(text):
    """The byte-level count of ASCII text is `str.split`'s, and gives up on the same texts."""
    separated = any(c in text for c in SEPARATORS_SPLIT_ONLY)
    assert words(text) == (None if separated else len(text.split()))


@pytest.mark.parametrize("name", sorted(KNOWN_SPLIT_PATTERNS))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts)
def test_pre_tokens_never_hold_two_words(name, text):
    if words(text) is None:
        return
    for piece in _spans(_pre_tokenizer(name), text):
        assert len(piece.split()) <= 1, piece


@pytest.fixture(scope="module")
def tiny_tokenizer(tiny_qwen3_path):
    return AutoTokenizer.from_pretrained(tiny_qwen3_path)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts)
def test_tokens_are_at_least_words(tiny_tokenizer, text):
    """The conclusion on a real tokenizer: its own count never falls below the words."""
    floor = words(text)
    if floor is not None:
        assert len(tiny_tokenizer(text, add_special_tokens=False)["input_ids"]) >= floor


def test_which_tokenizers_the_floor_covers(tiny_qwen3_path, tiny_cross_encoder_path):
    assert (
        why_no_word_floor(
            tokenizer_spec(AutoTokenizer.from_pretrained(tiny_qwen3_path).backend_tokenizer)
        )
        is None
    )
    bert = AutoTokenizer.from_pretrained(tiny_cross_encoder_path).backend_tokenizer
    assert "normalizer" in why_no_word_floor(tokenizer_spec(bert))
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = _pre_tokenizer("gpt2")
    assert why_no_word_floor(tokenizer_spec(tok)) is None
    tok.add_tokens([AddedToken("two words")])
    assert "holds whitespace" in why_no_word_floor(tokenizer_spec(tok))
    assert "slow" in why_no_word_floor(None)


@pytest.fixture(scope="module")
def backend(tiny_qwen3_path):
    return load_backend(LoadOptions(model=str(tiny_qwen3_path), device="cpu", dtype="float32"))


def test_a_request_far_over_the_budget_is_refused_before_tokenizing(backend, monkeypatch):
    tokenized: list[int] = []
    real = backend._tokenize
    monkeypatch.setattr(
        backend, "_tokenize", lambda texts: tokenized.append(len(texts)) or real(texts)
    )
    docs = ["word " * 800] * 1000
    with pytest.raises(TooManyTokensError) as err:
        backend.encode(RerankInput(query="q", documents=docs), EncodeBudget(262144))
    assert tokenized == [1]  # the prefix only
    assert err.value.limit == 262144 and err.value.tokens > 262144
    assert "at least" in str(err.value) and "max_request_tokens" in str(err.value)
    assert {s.name: s.in_force for s in backend.shortcuts()}["word_floor"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    docs=st.lists(texts, min_size=1, max_size=6),
    cap=st.one_of(st.none(), st.integers(1, 8)),
    chunk=st.booleans(),
)
def test_the_floor_never_refuses_a_request_that_fits(backend, docs, cap, chunk):
    """With the budget set to exactly what tokenizing spends, the floor lets the request by."""
    from reranker_server.engine.config import EngineConfig

    chunking = EngineConfig().chunking if chunk else None
    inp = RerankInput(query="q", documents=docs, max_tokens_per_doc=cap, chunking=chunking)
    exact = EncodeBudget(None)
    backend.encode(inp, exact)
    backend.encode(inp, EncodeBudget(exact.spent))  # no TooManyTokensError
    with pytest.raises(TooManyTokensError):
        backend.encode(inp, EncodeBudget(exact.spent - 1))


def test_the_floor_is_exact_where_each_word_is_one_token(backend, tiny_tokenizer):
    """On words the vocabulary holds whole, tokens == words: a budget one token short of the
    request is refused from the floor alone, and the exact budget passes."""
    from reranker_devtools.tiny_models import single_token_words

    vocab = single_token_words(tiny_tokenizer)
    assert len(vocab) >= 8
    docs = [" ".join(vocab[i:] + vocab[:i]) for i in range(8)]  # not empty: " " is a token
    inp = RerankInput(query="q", documents=docs)
    exact = EncodeBudget(None)
    backend.encode(inp, exact)
    backend.encode(inp, EncodeBudget(exact.spent))
    with pytest.raises(TooManyTokensError, match="at least"):
        backend.encode(inp, EncodeBudget(exact.spent - 1))
