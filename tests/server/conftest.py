"""Server test fixtures: reference scorers (plain transformers), running apps and real backends
(3-layer Qwen3 reranker, BERT cross-encoder) on tiny models."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from server_helpers import running_client, serving, settings_for
from tolerance import fp32_cross_impl_tolerance

CARD_PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the "
    'Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
)
CARD_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
CARD_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"


def card_prompt(query: str, doc: str, instruction: str = CARD_INSTRUCTION) -> str:
    """The Qwen3-Reranker model card prompt, written independently of the server code."""
    return (
        f"{CARD_PREFIX}<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {doc}{CARD_SUFFIX}"
    )


class QwenReference:
    """Plain AutoModelForCausalLM on one whole prompt: softmax over [no, yes] of the last logits."""

    def __init__(self, path) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        self.no_id = self.tok.convert_tokens_to_ids("no")
        self.yes_id = self.tok.convert_tokens_to_ids("yes")
        # how far the server's float32 scores may be from these (tests/tolerance.py)
        self.tol = fp32_cross_impl_tolerance(path)
        self.logit_tol = fp32_cross_impl_tolerance(path, "logit")

    def tokens(self, query: str, doc: str, instruction: str = CARD_INSTRUCTION) -> list[int]:
        return self.tok(card_prompt(query, doc, instruction))["input_ids"]

    def score(self, query: str, doc: str, instruction: str = CARD_INSTRUCTION) -> float:
        ids = torch.tensor([self.tokens(query, doc, instruction)])
        with torch.no_grad():
            logits = self.model(input_ids=ids).logits[0, -1]
        return torch.softmax(logits[[self.no_id, self.yes_id]], dim=0)[1].item()


class CrossEncoderReference:
    """Plain BertForSequenceClassification forward of one pair: sigmoid of the logit."""

    def __init__(self, path) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForSequenceClassification.from_pretrained(
            path, dtype=torch.float32
        ).eval()
        self.tol = fp32_cross_impl_tolerance(path)  # tests/tolerance.py

    def score(self, query: str, doc: str) -> float:
        with torch.no_grad():
            return torch.sigmoid(
                self.model(**self.tok([query], [doc], return_tensors="pt")).logits[0, 0]
            ).item()


@pytest.fixture(scope="session")
def qwen_ref(tiny_qwen3_path) -> QwenReference:
    return QwenReference(tiny_qwen3_path)


@pytest.fixture(scope="session")
def bert_ref(tiny_cross_encoder_path) -> CrossEncoderReference:
    return CrossEncoderReference(tiny_cross_encoder_path)


@pytest.fixture(scope="module")
def qwen_client(tiny_qwen3_path) -> Iterator[TestClient]:
    """The app serving the tiny Qwen3 reranker, model pinned as 'tiny-qwen'."""
    yield from running_client(settings_for(tiny_qwen3_path, served_model_name="tiny-qwen"))


@pytest.fixture(scope="module")
def bert_client(tiny_cross_encoder_path) -> Iterator[TestClient]:
    yield from running_client(settings_for(tiny_cross_encoder_path))


@pytest.fixture(scope="module")
def uvicorn_url(tiny_qwen3_path) -> Iterator[str]:
    """The tiny Qwen3 reranker behind a real uvicorn server, API key 'secret-key'."""
    yield from serving(tiny_qwen3_path, api_key="secret-key")


@pytest.fixture(scope="session")
def qwen3_3l_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Qwen3 reranker with 3 layers (the prefix-KV checks want >= 3)."""
    from reranker_devtools.tiny_models import build_qwen3_reranker

    return build_qwen3_reranker(tmp_path_factory.mktemp("engine-qwen3"), num_layers=3, seed=5)


@pytest.fixture(scope="session")
def causal_backend(qwen3_3l_path: Path):
    from reranker_server.models import LoadOptions, load_backend

    return load_backend(LoadOptions(model=str(qwen3_3l_path), device="cpu", dtype="float32"))


@pytest.fixture(scope="session")
def cross_backend(tiny_cross_encoder_path: Path):
    from reranker_server.models import LoadOptions, load_backend

    return load_backend(
        LoadOptions(model=str(tiny_cross_encoder_path), device="cpu", dtype="float32")
    )


async def _wait_for(predicate, *, what: str, max_iterations: int = 4000) -> None:
    """Yield to the loop until `predicate()` holds (bounded by iterations; no timing assertion)."""
    for _ in range(max_iterations):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"never happened: {what}")


@pytest.fixture
async def engine_factory():
    """`await engine_factory(backend, **EngineConfig fields)`: a started engine, stopped after
    the test."""
    from reranker_server.engine import EngineConfig, build_engine

    engines = []

    async def make(backend, **cfg):
        engine = build_engine(backend, EngineConfig(**cfg))
        await engine.start()
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        await engine.stop()


@pytest.fixture
def wait_for():
    """`await wait_for(predicate, what=...)`: let worker threads and the loop make progress."""
    return _wait_for
