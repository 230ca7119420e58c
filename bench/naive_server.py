"""The naive baseline: a minimal FastAPI reranker as in published Kubernetes reranker guides.

Each request is scored with one padded forward over all its (query, document) pairs; the
endpoint is a plain `def`, so FastAPI runs the forward in its default threadpool. Modes:

* `qwen3`: Qwen3-Reranker prompt strings, `tokenizer(..., padding=True, truncation=True)`,
  `model(**inputs).logits[:, -1, :]`, softmax over the [no, yes] logits.
* `cross`: `AutoModelForSequenceClassification`, one padded forward, sigmoid.
* `st-cross`: sentence-transformers `CrossEncoder(...).predict` (sigmoid activation).

Run: `python bench/naive_server.py --mode qwen3 --model DIR --port 8001`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

import torch
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel, Field

QWEN3_PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query "
    'and the Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n'
    "<|im_start|>user\n"
)
QWEN3_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
DEFAULT_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"

Scorer = Callable[[str, Sequence[str], "str | None"], list[float]]


def qwen3_prompt(instruction: str, query: str, document: str) -> str:
    """The full Qwen3-Reranker prompt of one (query, document) pair."""
    return (
        f"{QWEN3_PREFIX}<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {document}"
        f"{QWEN3_SUFFIX}"
    )


def qwen3_scorer(model_dir: str, dtype: torch.dtype = torch.float32, device: str = "cpu") -> Scorer:
    """Score with a causal LM: P(yes) from softmax over the last position's [no, yes] logits."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(device).eval()
    yes_id = tokenizer.convert_tokens_to_ids("yes")
    no_id = tokenizer.convert_tokens_to_ids("no")
    if yes_id is None or no_id is None:
        raise ValueError(f"model {model_dir}: 'yes'/'no' are not single tokens of its tokenizer")

    def score(query: str, documents: Sequence[str], instruction: str | None) -> list[float]:
        texts = [qwen3_prompt(instruction or DEFAULT_INSTRUCTION, query, d) for d in documents]
        inputs = tokenizer(texts, padding=True, truncation=True, return_tensors="pt").to(device)
        with torch.no_grad():
            logits = model(**inputs).logits[:, -1, :]
            pair = torch.stack([logits[:, no_id], logits[:, yes_id]], dim=1).float()
            return torch.softmax(pair, dim=1)[:, 1].tolist()

    return score


def cross_scorer(model_dir: str, dtype: torch.dtype = torch.float32, device: str = "cpu") -> Scorer:
    """Score with a sequence classifier (num_labels=1): sigmoid of its logit."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, dtype=dtype)
    model.to(device).eval()

    def score(query: str, documents: Sequence[str], instruction: str | None) -> list[float]:
        inputs = tokenizer(
            [query] * len(documents),
            list(documents),
            padding=True,
            truncation=True,
            return_tensors="pt",
        ).to(device)
        with torch.no_grad():
            return torch.sigmoid(model(**inputs).logits.squeeze(-1).float()).tolist()

    return score


def st_cross_scorer(
    model_dir: str, dtype: torch.dtype = torch.float32, device: str = "cpu"
) -> Scorer:
    """Score with sentence-transformers' CrossEncoder (sigmoid for one label)."""
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(
        model_dir, device=device, local_files_only=True, model_kwargs={"dtype": dtype}
    )

    def score(query: str, documents: Sequence[str], instruction: str | None) -> list[float]:
        pairs = [(query, d) for d in documents]
        scores = model.predict(pairs, batch_size=max(1, len(pairs)), show_progress_bar=False)
        return [float(s) for s in scores]

    return score


SCORERS: dict[str, Callable[[str], Scorer]] = {
    "qwen3": qwen3_scorer,
    "cross": cross_scorer,
    "st-cross": st_cross_scorer,
}


class RerankRequest(BaseModel):
    """Cohere-shaped rerank request."""

    query: str = Field(min_length=1)
    documents: list[str] = Field(min_length=1)
    top_n: int | None = Field(default=None, ge=1)
    instruction: str | None = None
    model: str | None = None


def build_app(scorer: Scorer, model_name: str) -> FastAPI:
    """The FastAPI app: `/ready` and Cohere-shaped `/v1/rerank` (also `/v2/rerank`)."""
    app = FastAPI(title="naive reranker")

    @app.get("/ready")
    def ready() -> dict:
        return {"status": "ready"}

    def rerank(req: RerankRequest) -> dict:
        scores = scorer(req.query, req.documents, req.instruction)
        order = sorted(range(len(scores)), key=lambda i: scores[i], reverse=True)
        top = order[: req.top_n] if req.top_n else order
        return {
            "results": [{"index": i, "relevance_score": scores[i]} for i in top],
            "model": model_name,
        }

    app.post("/v1/rerank")(rerank)
    app.post("/v2/rerank")(rerank)
    return app


def main(argv: Sequence[str] | None = None) -> None:
    """Load the model, then serve it with a single uvicorn worker."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", required=True, choices=sorted(SCORERS))
    parser.add_argument("--model", required=True, help="local model directory")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    args = parser.parse_args(argv)
    scorer = SCORERS[args.mode](args.model, getattr(torch, args.dtype))
    uvicorn.run(
        build_app(scorer, args.model),
        host=args.host,
        port=args.port,
        workers=1,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
