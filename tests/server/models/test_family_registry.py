"""The server's family registry: every ModelFamily is registered and detected, and a family is
added with one module (`toy_family_backend.py`) and nothing else."""

from __future__ import annotations

import dataclasses
import sys

import pytest
import transformers
from transformers import AutoConfig, AutoTokenizer

from reranker_contract import ModelFamily
from reranker_server.contracts import RerankInput
from reranker_server.models import LoadOptions, ModelLoadError, families, load_backend
from reranker_server.models.loading import detect_family
from scoring_helpers import score_full

TOY_MODULE = "toy_family_backend"


def test_every_model_family_is_registered_once():
    found = families.registered()
    assert list(found) == list(ModelFamily)
    for name, family in found.items():
        assert family.name is name and callable(family.detects) and callable(family.build)
        assert hasattr(transformers, family.auto_class)


def test_detection_maps_each_tiny_model_to_its_family(tiny_qwen3_path, tiny_cross_encoder_path):
    tiny = {
        ModelFamily.QWEN3_CAUSAL: tiny_qwen3_path,
        ModelFamily.CROSS_ENCODER: tiny_cross_encoder_path,
    }
    assert set(tiny) == set(ModelFamily)  # a new family brings its tiny model here
    for family, path in tiny.items():
        config, tokenizer = AutoConfig.from_pretrained(path), AutoTokenizer.from_pretrained(path)
        assert detect_family(config, tokenizer) is family
        backend = load_backend(LoadOptions(model=str(path), device="cpu", dtype="float32"))
        assert backend.family is family


@pytest.fixture
def toy(monkeypatch):
    """The toy family's module listed, its registration undone afterwards."""
    monkeypatch.setattr(families, "FAMILY_MODULES", (*families.FAMILY_MODULES, TOY_MODULE))
    monkeypatch.setattr(families, "_registered", dict(families._registered))
    monkeypatch.delitem(sys.modules, TOY_MODULE, raising=False)
    families.registered()
    yield sys.modules[TOY_MODULE]
    monkeypatch.delitem(sys.modules, TOY_MODULE, raising=False)


def test_a_third_family_needs_only_its_module(toy, tiny_cross_encoder_path):
    names = list(families.registered())
    assert names == [*ModelFamily, toy.ToyFamily.TOY]
    config = AutoConfig.from_pretrained(tiny_cross_encoder_path)
    config.architectures = [toy.TOY_ARCHITECTURE]
    assert detect_family(config, None) == "toy-classifier"
    with pytest.raises(ModelLoadError, match="or toy-classifier; got 'bogus'"):
        detect_family(config, None, "bogus")

    opts = LoadOptions(model=str(tiny_cross_encoder_path), device="cpu", dtype="float32")
    plain = load_backend(opts)
    backend = load_backend(dataclasses.replace(opts, family="toy-classifier"))
    assert isinstance(backend, toy.ToyBackend) and backend.family == "toy-classifier"
    assert backend.dtype_reason == "as configured"
    inp = RerankInput(query="capital of France", documents=["Paris", "a fox"])
    plain_enc, toy_enc = plain.encode(inp), backend.encode(inp)
    assert toy_enc.pairs == plain_enc.pairs
    assert score_full(backend, (), toy_enc.pairs) == score_full(plain, (), plain_enc.pairs)


def test_unregistered_toy_leaves_no_trace():
    assert "toy-classifier" not in families.registered()
