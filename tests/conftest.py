"""Shared fixtures: tiny random models built offline once per test session."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# kubectl caches API discovery per host:port under ~/.kube/cache for hours; the emulators in
# these tests reuse ports with other resource sets, so a stale cache would answer for them.
os.environ["KUBECACHEDIR"] = tempfile.mkdtemp(prefix="kube-cache-")


@pytest.fixture(autouse=True)
def isolated_kubectl_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each test's kubectl calls get a discovery cache of their own (see KUBECACHEDIR above)."""
    monkeypatch.setenv("KUBECACHEDIR", str(tmp_path_factory.mktemp("kube-cache")))


@pytest.fixture(scope="session")
def tiny_qwen3_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Qwen3ForCausalLM reranker dir (hidden 64, 2 layers, yes/no single tokens)."""
    from reranker_devtools.tiny_models import build_qwen3_reranker

    return build_qwen3_reranker(tmp_path_factory.mktemp("tiny-qwen3"))


@pytest.fixture(scope="session")
def tiny_cross_encoder_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BertForSequenceClassification(num_labels=1) dir with a WordPiece tokenizer."""
    from reranker_devtools.tiny_models import build_cross_encoder

    return build_cross_encoder(tmp_path_factory.mktemp("tiny-cross-encoder"))
