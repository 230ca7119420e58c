"""Tiny models broken (or changed) on purpose for the score-check tests, and report helpers."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from fastapi.testclient import TestClient

from reranker_operator.controller.score_gate import record_from
from server_helpers import running_client, settings_for


def edited_qwen(source: Path, out: Path, edit: Callable[[Any, Any], None]) -> Path:
    """A copy of the tiny Qwen3 reranker at `source` with `edit(model, tokenizer)` applied to
    its weights (a plain transformers load and save: the server's code is not involved)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32).eval()
    with torch.no_grad():
        edit(model, tokenizer)
    if out.exists():
        shutil.rmtree(out)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def equal_yes_no_rows(model: Any, tokenizer: Any) -> None:
    """The first guide's 0.5 bug in the weights: lm_head's rows for "yes" and "no" are equal,
    so logit(yes) - logit(no) is 0 and every document scores sigmoid(0) = 0.5."""
    yes, no = tokenizer.convert_tokens_to_ids("yes"), tokenizer.convert_tokens_to_ids("no")
    model.lm_head.weight[yes] = model.lm_head.weight[no]


def perturb_weights(model: Any, _tokenizer: Any) -> None:
    """A loader change (vLLM #19978-style): the same model id, slightly different weights."""
    gen = torch.Generator().manual_seed(7)
    for param in model.parameters():
        param.add_(torch.randn(param.shape, generator=gen) * 0.02)


def serve(path: Path, **settings: Any) -> Iterator[TestClient]:
    """The app on the model at `path` (score check without relevance unless overridden)."""
    yield from running_client(settings_for(path, **settings))


def record_of(report: dict[str, Any], *, model: str | None = None) -> dict[str, Any]:
    """The record the operator writes from a pod's report (its own code: score_gate), with the
    identity's model replaced by `model` when given."""
    record = record_from(report, "reranker-0", "2026-01-01T00:00:00Z")
    if model is not None:
        record["identity"] = {**record["identity"], "model": model}
    return record


def write_json(path: Path, data: Any) -> str:
    path.write_text(json.dumps(data))
    return str(path)


def gauge(metrics_text: str, name: str) -> float | None:
    """The value of an unlabelled gauge in Prometheus text, None when absent."""
    match = re.search(rf"^{name} (\S+)$", metrics_text, re.MULTILINE)
    return float(match.group(1)) if match else None


def check(report: dict[str, Any], name: str) -> dict[str, Any]:
    """The report's entry of the check `name`."""
    return next(c for c in report["checks"] if c["name"] == name)
