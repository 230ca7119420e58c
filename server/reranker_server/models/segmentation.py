"""Whether a prompt's segments may be tokenized apart.

The causal backend tokenizes the shared prefix once per request, each document on its own and
the suffix once per model. That equals tokenizing each whole prompt (the model card's way, and
vLLM's) only where no token forms across a segment boundary. `why_segments_may_merge` proves
it for every document from the tokenizer's own definition, or says why it cannot, in which case
the backend re-tokenizes the whole prompts to check (twice the tokenizing).

The proof, for a prompt `prefix + document_start + text + suffix`:

1. Added (special) tokens are split out of the text first, by leftmost-longest match. The
   suffix begins with one; no added token may straddle either boundary (checked below against
   the added vocabulary), and none is `single_word` (its match would depend on the character
   before the segment). The pieces between added tokens are then tokenized independently.
2. The normalizer is none or NFC. NFC of a concatenation is the concatenation of NFCs when the
   second part begins with a character that is stable and never composes with what precedes
   it, as U+0020 is. Before the suffix, the added-token split already separates the pieces.
3. The pre-tokenizer is a regular expression from `KNOWN_SPLIT_PATTERNS`. None of them has a
   look-behind, an anchor or a word boundary, so matching from a position depends only on the
   text after it. And in none of them can one match hold a non-whitespace character followed by
   U+0020. The prefix ends with a non-whitespace character and the document segment begins
   with a space, so a match ends exactly at the boundary, whatever follows. The matches before
   it are those of the prefix alone; those after it, the document segment's alone.
4. The model (BPE, WordPiece, Unigram) then works within one pre-token at a time, and the
   byte-level step maps bytes one to one.
"""

from __future__ import annotations

import json
from typing import Any

from tokenizers import Tokenizer

# Qwen2/Qwen3 (and the tiny test models'); Llama 3's, which differs in `\p{N}{1,3}`; GPT-2's,
# which `ByteLevel(use_regex=True)` applies itself. Each is checked against the claim in 3 by
# tests/server/models/test_segmentation.py.
QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
KNOWN_SPLIT_PATTERNS = {"qwen2": QWEN2_PATTERN, "llama3": LLAMA3_PATTERN, "gpt2": GPT2_PATTERN}
SAFE_NORMALIZERS = (None, "NFC")


def tokenizer_spec(rust: Tokenizer | None) -> dict[str, Any] | None:
    """The fast tokenizer's definition (its tokenizer.json), parsed once for the proofs here
    and in `token_floor`; None for a slow tokenizer."""
    return None if rust is None else json.loads(rust.to_str())


def why_segments_may_merge(
    spec: dict[str, Any] | None, *, prefix: str, document_start: str, suffix: str
) -> str | None:
    """None when tokens(prefix + document_start + text + suffix) equal the segments' tokens,
    concatenated, for every text, for the tokenizer `spec` defines (`tokenizer_spec`; the
    module's proof); else the first reason the proof fails."""
    if spec is None:
        return "the tokenizer is a slow (Python) one"
    if document_start != " " or not prefix or prefix[-1].isspace():
        return "the prompt's document boundary is not a non-space character before a space"
    why = why_text_steps_unknown(spec)
    if why is not None:
        return why
    return _why_added_tokens_straddle(
        spec.get("added_tokens") or [], prefix, document_start, suffix
    )


def why_text_steps_unknown(spec: dict[str, Any]) -> str | None:
    """None when the normalizer and pre-tokenizer are ones claims 2 and 3 cover."""
    normalizer = (spec.get("normalizer") or {}).get("type")
    if normalizer not in SAFE_NORMALIZERS:
        return f"the tokenizer's normalizer is {normalizer}, not NFC"
    return _why_pre_tokenizer_unknown(spec.get("pre_tokenizer"))


def _why_pre_tokenizer_unknown(pre: dict[str, Any] | None) -> str | None:
    """None for a Split by a known pattern then a non-splitting ByteLevel, or GPT-2's ByteLevel."""
    if pre is None:
        return "the tokenizer has no pre-tokenizer: merges may cross the boundary"
    if pre.get("type") == "ByteLevel":
        if pre.get("use_regex") and not pre.get("add_prefix_space"):
            return None
        return "the tokenizer's ByteLevel pre-tokenizer does not split words"
    steps = pre.get("pretokenizers") if pre.get("type") == "Sequence" else None
    if not steps or len(steps) != 2:
        return f"the tokenizer's pre-tokenizer ({pre.get('type')}) is not one this proof covers"
    split, byte_level = steps
    pattern = (split.get("pattern") or {}).get("Regex")
    if (
        split.get("type") != "Split"
        or split.get("behavior") != "Isolated"
        or split.get("invert")
        or pattern not in KNOWN_SPLIT_PATTERNS.values()
    ):
        return "the tokenizer's split pattern is not one this proof covers"
    if byte_level.get("type") != "ByteLevel" or byte_level.get("add_prefix_space"):
        return "the tokenizer's pre-tokenizer does not end in a plain ByteLevel step"
    if byte_level.get("use_regex"):
        return "the tokenizer splits words twice (ByteLevel with its own regex)"
    return None


def _why_added_tokens_straddle(
    added: list[dict[str, Any]], prefix: str, document_start: str, suffix: str
) -> str | None:
    """None when the suffix begins with an added token and none can match across a boundary."""
    if any(t.get("single_word") for t in added):
        return "an added token is single_word: its match depends on the text before it"
    first = max(
        (t for t in added if suffix.startswith(t["content"])),
        key=lambda t: len(t["content"]),
        default=None,
    )
    if first is None or first.get("lstrip"):
        return "the suffix does not begin with an added token that leaves the text before it"
    for token in added:
        c = token["content"]
        for k in range(1, len(c)):
            head, tail = c[:k], c[k:]
            if suffix.startswith(tail):  # would start in the document and end in the suffix
                return f"added token {c!r} can match across the document's end"
            ends_prefix = prefix.endswith(head) if k <= len(prefix) else head.endswith(prefix)
            if ends_prefix and tail.startswith(document_start):
                return f"added token {c!r} can match across the document's start"
    return None
