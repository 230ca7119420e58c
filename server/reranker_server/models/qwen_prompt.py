"""The Qwen3-Reranker prompt (as on the model card), split into a shared prefix and per-document text.

The default instruction is the contract's (`reranker_contract.DEFAULT_INSTRUCTION`)."""

from __future__ import annotations

SYSTEM_PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and "
    'the Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
)
SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
PREFIX_END = "\n<Document>:"  # the prefix's last characters, whatever the instruction and query
DOCUMENT_START = " "  # the document segment's first character


def prefix_text(instruction: str, query: str) -> str:
    """Everything before the document: system prompt, instruction, query and '\\n<Document>:'."""
    return f"{SYSTEM_PREFIX}<Instruct>: {instruction}\n<Query>: {query}{PREFIX_END}"


def document_text(document: str) -> str:
    """The document segment: the space after '<Document>:' belongs to it (byte-level BPE split)."""
    return f"{DOCUMENT_START}{document}"
