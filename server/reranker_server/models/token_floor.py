"""A floor under a text's token count without tokenizing it: its whitespace-separated words.

A request far over `max_request_tokens` is refused from this floor in a few milliseconds, where
tokenizing up to the bound took a CPU for ~0.2 s (a 4 MB body of 1,000 long documents, tiny
Qwen3 tokenizer, Intel Xeon): the one cost a client could make the server pay at will.

The floor holds for a tokenizer that `why_no_word_floor` accepts:

1. Added tokens are split out first; none holds whitespace, so each lies within one word.
2. The normalizer is none or NFC, which maps whitespace to whitespace and nothing else to it.
3. The pre-tokenizer is one of `segmentation.KNOWN_SPLIT_PATTERNS`. In each, a match's
   non-whitespace characters are contiguous (whitespace only leads or trails a match: the
   optional first character of a letter run, the optional space before punctuation, the line
   ends after it, or all-whitespace matches). So no pre-token holds characters of two words.
4. The model is a BPE, which gives every non-empty pre-token at least one token.

So every word yields at least one token of its own: tokens >= words. Words are counted by
`str.split()`, whose whitespace equals the patterns' `\\s` (Unicode White_Space) except for the
four separators U+001C-U+001F, which `str.split` splits on and the patterns do not; a text that
holds one of them gets no floor (`words` returns None).

An ASCII text (most of what clients send, and what a body made to cost the most is) is counted
without `str.split`: its bytes are mapped once (whitespace 0, the separators 2, all else 1) and
the word starts are the 0-to-1 steps, counted in C with no string made per word. Same count,
about 2.5x faster on a 4 MB body, and without the ~800,000 short-lived strings `split` makes
there: the floor exists to be cheap when a client makes it run.
"""

from __future__ import annotations

from typing import Any

from reranker_server.models.segmentation import why_text_steps_unknown

_SPLIT_ONLY_SEPARATORS = ("\x1c", "\x1d", "\x1e", "\x1f")
# ASCII byte -> 0 where `str.split` splits (bar the separators), 2 for a separator, 1 otherwise
_ASCII_CLASSES = bytes(
    2 if chr(b) in _SPLIT_ONLY_SEPARATORS else 0 if chr(b).isspace() else 1 for b in range(256)
)


def why_no_word_floor(spec: dict[str, Any] | None) -> str | None:
    """None when tokens >= words for every text the tokenizer `spec` defines encodes
    (`segmentation.tokenizer_spec`; the module's proof); else why not."""
    if spec is None:
        return "the tokenizer is a slow (Python) one"
    why = why_text_steps_unknown(spec)
    if why is not None:
        return why
    model = (spec.get("model") or {}).get("type")
    if model != "BPE":
        return f"the tokenizer's model is {model}, not BPE"
    for token in spec.get("added_tokens") or []:
        if any(c.isspace() for c in token["content"]):
            return f"added token {token['content']!r} holds whitespace"
    return None


def words(text: str) -> int | None:
    """Whitespace-separated words of `text` (a floor under its tokens where the proof holds),
    or None where `str.split`'s whitespace differs from the tokenizer's."""
    if text.isascii():  # a flag CPython keeps: no scan
        classes = text.encode("ascii").translate(_ASCII_CLASSES)
        if b"\x02" in classes:
            return None
        return classes.count(b"\x00\x01") + classes.startswith(b"\x01")
    if any(c in text for c in _SPLIT_ONLY_SEPARATORS):
        return None
    return len(text.split())
