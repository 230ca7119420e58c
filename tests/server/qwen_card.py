"""The Qwen3-Reranker model card's prompt pieces, written independently of the server code: the
text before a document (up to '<Document>:') and after it."""

from __future__ import annotations

CARD_PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query "
    'and the Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n'
    "<|im_start|>user\n"
)
CARD_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
CARD_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"


def before_document(query: str, instruction: str = CARD_INSTRUCTION) -> str:
    """Everything before a document's text, '<Document>:' included (its space is the document's)."""
    return f"{CARD_PREFIX}<Instruct>: {instruction}\n<Query>: {query}\n<Document>:"
