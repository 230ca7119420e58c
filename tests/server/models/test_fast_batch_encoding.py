"""`encode_texts` (tokenizers' batch encoding without character offsets) gives the ids the
tokenizer's own encoding gives, on text that exercises normalisation and byte fallback."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from reranker_server.models.rust_tokenizer import encode_texts, private_rust_tokenizer

TEXTS = [
    "The Seine flows through Paris.",
    "  leading and   repeated   spaces\tand\ttabs\n\nnew lines  ",
    "naïve café déjà vu — e\u0301 (combining) ﬁ ligature",
    "北京是中国的首都。東京は日本の首都です。",
    "emoji 🙂🚀 and flags 🇫🇷 and zero\u200bwidth",
    "",
    "x" * 3000,
]


@pytest.mark.parametrize("which", ["tiny_qwen3_path", "tiny_cross_encoder_path"])
def test_fast_batch_encoding_equals_the_tokenizers_ids(which, request) -> None:
    tokenizer = AutoTokenizer.from_pretrained(request.getfixturevalue(which))
    rust = private_rust_tokenizer(tokenizer)
    assert rust is not None
    got = [e.ids for e in encode_texts(rust, TEXTS)]
    want = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in TEXTS]
    assert got == want
    assert [len(e) for e in encode_texts(rust, TEXTS)] == [len(w) for w in want]
