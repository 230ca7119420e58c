"""The segment-wise tokenization proof (`models/segmentation.py`) against the tokenizers library.

Each claim the proof rests on is checked on the library's own pre-tokenizers and tokenizers, and
the whole prompt is tokenized by the HF tokenizer (the model card's way), never by the server.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import AddedToken, Regex, Tokenizer, normalizers, pre_tokenizers
from transformers import AutoTokenizer

from reranker_server.models import LoadOptions, load_backend
from reranker_server.models.segmentation import (
    KNOWN_SPLIT_PATTERNS,
    tokenizer_spec,
    why_segments_may_merge,
)

# The model card's template, written out here independently of the server's own constants.
CARD_PREFIX_END = "\n<Document>:"
CARD_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"

# Characters whose pre-token rules differ: letters (Latin, CJK, Cyrillic), digits, punctuation,
# every kind of whitespace, a combining mark, an emoji with ZWJ, apostrophes for contractions,
# and the pieces of the special tokens.
AWKWARD = list("aZs'tdlmvre09:.,!?-<>|/_ \t\n\r\u00a0\u2003\u0301é東京данные🙂\u200d")
PIECES = ["<|im_end|>", "<|im_start|>", "<|im_", "|>", "<think>", "'s", "'ll", "\r\n", "  "]
texts = st.lists(st.sampled_from(AWKWARD + PIECES), max_size=12).map("".join)
prefix_ends = st.lists(st.sampled_from(AWKWARD + PIECES), max_size=6).map(
    lambda parts: "".join(parts) + CARD_PREFIX_END
)


def _spans(pre, text: str, shift: int = 0) -> list[tuple[int, int]]:
    return [(a + shift, b + shift) for _, (a, b) in pre.pre_tokenize_str(text)]


def _pre_tokenizer(name: str):
    if name == "gpt2":  # ByteLevel applies GPT-2's pattern itself
        return pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    split = pre_tokenizers.Split(Regex(KNOWN_SPLIT_PATTERNS[name]), behavior="isolated")
    return pre_tokenizers.Sequence(
        [split, pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    )


@pytest.mark.parametrize("name", sorted(KNOWN_SPLIT_PATTERNS))
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prefix=prefix_ends, text=texts)
def test_known_patterns_split_at_a_non_space_before_a_space(name, prefix, text):
    """Claim 3: with the prefix ending in ':' and the document segment starting with ' ', the
    pre-tokens of the whole are the prefix's alone then the segment's alone."""
    pre = _pre_tokenizer(name)
    segment = " " + text
    whole = _spans(pre, prefix + segment)
    assert whole == _spans(pre, prefix) + _spans(pre, segment, shift=len(prefix))


def test_the_known_pattern_is_the_tiny_models_and_qwens(tiny_qwen3_path):
    from reranker_devtools.tiny_models import QWEN_SPLIT_PATTERN

    assert QWEN_SPLIT_PATTERN == KNOWN_SPLIT_PATTERNS["qwen2"]
    tok = AutoTokenizer.from_pretrained(tiny_qwen3_path)
    assert (
        why_segments_may_merge(
            tokenizer_spec(tok.backend_tokenizer),
            prefix=CARD_PREFIX_END,
            document_start=" ",
            suffix=CARD_SUFFIX,
        )
        is None
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(query=texts, text=texts)
def test_proven_tokenizer_gives_the_whole_prompts_tokens(tiny_qwen3_tokenizer, query, text):
    """The proof's conclusion on a real tokenizer: the HF tokenizer on the whole prompt equals
    the three segments tokenized apart, for any query and document."""
    tok = tiny_qwen3_tokenizer
    prefix = f"<|im_start|>user\n<Query>: {query}{CARD_PREFIX_END}"

    def ids(s: str) -> list[int]:
        return tok(s, add_special_tokens=False)["input_ids"]

    assert ids(prefix + " " + text + CARD_SUFFIX) == ids(prefix) + ids(" " + text) + ids(
        CARD_SUFFIX
    )


@pytest.fixture(scope="module")
def tiny_qwen3_tokenizer(tiny_qwen3_path):
    return AutoTokenizer.from_pretrained(tiny_qwen3_path)


def test_backend_skips_the_check_only_where_proven(tiny_qwen3_path, tmp_path_factory):
    """The backend's `/info` shortcut says which way it tokenizes, and why not where it checks."""
    from reranker_devtools.tiny_models import build_qwen3_reranker

    proven = load_backend(LoadOptions(model=str(tiny_qwen3_path), device="cpu", dtype="float32"))
    cut = {s.name: s for s in proven.shortcuts()}["segmentwise_tokens"]
    assert cut.in_force and cut.reason is None and not proven.verify_segmentation
    path = build_qwen3_reranker(tmp_path_factory.mktemp("nosplit-proof"), split_pattern=None)
    unproven = load_backend(LoadOptions(model=str(path), device="cpu", dtype="float32"))
    cut = {s.name: s for s in unproven.shortcuts()}["segmentwise_tokens"]
    assert not cut.in_force and "pre-tokenizer" in cut.reason and unproven.verify_segmentation


def _qwen_like(added: list[AddedToken], normalizer=None) -> Tokenizer:
    """The tiny Qwen3 tokenizer's structure with a changed normalizer or added vocabulary."""
    from tokenizers import models

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizer or normalizers.NFC()
    tok.pre_tokenizer = _pre_tokenizer("qwen2")
    tok.add_tokens([AddedToken(c, special=True) for c in ("<|im_start|>", "<|im_end|>")])
    tok.add_tokens(added)
    return tok


@pytest.mark.parametrize(
    ("added", "normalizer", "reason"),
    [
        ([], normalizers.NFKC(), "normalizer is NFKC"),
        ([AddedToken("x<|im", special=False)], None, "across the document's end"),
        ([AddedToken(": x", special=False)], None, "across the document's start"),
        ([AddedToken(">: ", special=False)], None, "across the document's start"),
        ([AddedToken("word", single_word=True)], None, "single_word"),
    ],
)
def test_unsafe_tokenizers_are_named(added, normalizer, reason):
    tok = _qwen_like(added, normalizer)
    why = why_segments_may_merge(
        tokenizer_spec(tok), prefix=CARD_PREFIX_END, document_start=" ", suffix=CARD_SUFFIX
    )
    assert why is not None and reason in why
    assert (
        why_segments_may_merge(
            tokenizer_spec(_qwen_like([])),
            prefix=CARD_PREFIX_END,
            document_start=" ",
            suffix=CARD_SUFFIX,
        )
        is None
    )


def test_a_straddling_added_token_really_merges():
    """The reason is real: such a token gives the whole prompt other tokens than the segments."""
    tok = _qwen_like([AddedToken("x<|im", normalized=False)])  # matched beside the specials
    doc, suffix = " a x", CARD_SUFFIX
    whole = tok.encode(doc + suffix, add_special_tokens=False).ids
    apart = (
        tok.encode(doc, add_special_tokens=False).ids
        + tok.encode(suffix, add_special_tokens=False).ids
    )
    assert whole != apart
