"""The vLLM score template that reproduces the Qwen3-Reranker model card's prompt.

vLLM's pooling runner renders a score template with two messages (roles `query` and
`document`) and the request's `chat_template_kwargs` as variables (a request's `instruction`
arrives as the variable `instruction`). Without a template vLLM scores the bare query and
document text, which is where users see scores of 0.5 everywhere or a mismatch with transformers.

The template is built as one jinja2 output expression of string literals, so no whitespace is
trimmed or added around block tags (jinja drops a template's final newline and a `{% %}` tag eats
the newline after it: the prompt must end with `</think>\\n\\n`). The default instruction is data:
it enters as a jinja string literal in which every character outside printable ASCII, and the
quote and the backslash, is a `\\U` escape, so no text can end the literal or open a tag.
"""

from __future__ import annotations

from reranker_contract import DEFAULT_INSTRUCTION

# The model card's prompt around the instruction, the query and the document.
SYSTEM = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and "
    'the Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n'
    "<|im_start|>user\n"
)
SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"


def jinja_string(text: str) -> str:
    """`text` as a double-quoted jinja2 string literal (jinja decodes it as unicode-escape)."""
    out = []
    for ch in text:
        if " " <= ch <= "~" and ch not in '"\\':
            out.append(ch)
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


def qwen3_score_template(default_instruction: str | None = None) -> str:
    """The template text; `default_instruction` (else the model card's) applies when a request
    names none."""
    instruction = jinja_string(default_instruction or DEFAULT_INSTRUCTION)
    parts = [
        jinja_string(SYSTEM + "<Instruct>: "),
        f"(instruction if instruction is defined and instruction is not none else {instruction})",
        jinja_string("\n<Query>: "),
        'messages[0]["content"]',
        jinja_string("\n<Document>: "),
        'messages[1]["content"]',
        jinja_string(SUFFIX),
    ]
    return "{{ " + " ~ ".join(parts) + " }}"
