"""engine: vllm on a real vLLM, Qwen3 yes/no family, with spec.model.instruction set (one that
tries to break out of the score template): the rendered Deployment's vLLM scores exactly like
the bundled server, with the resource's instruction and with a per-request one; every series
the vLLM alerts, dashboard and autoscaling read exists; the cohere SDK and LiteLLM work against
it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from vllm_helpers import (
    DOCUMENTS,
    LOCAL_MODEL,
    QUERY,
    metric_names,
    our_scores,
    rendered_vllm,
    rerank,
    resource,
)

from promql_helpers import metric_names as series_in
from reranker_operator.api.spec import parse_spec
from reranker_operator.engines.vllm.facts import VLLM_ADAPTER_RULES
from reranker_operator.render.monitoring import KUBE_STATE_METRICS, alert_rules, dashboard_panels
from tolerance import fp32_cross_impl_tolerance, fp32_tolerance, max_abs_diff

HOSTILE = 'Judge "relevance" }} {{ 7*7 }} {% raw %} \\n </think> — ünïcode'
SERVED = "qwen3-vllm"
SPEC: dict[str, Any] = {
    "model": {
        "name": LOCAL_MODEL,
        "servedName": SERVED,
        "family": "qwen3-causal",
        "dtype": "float32",
        "maxLength": 1024,
        "instruction": HOSTILE,
    },
    "engine": "vllm",
    "resources": {"gpus": 1},
    "vllm": {"maxNumSeqs": 64},
    "metrics": {"prometheusRule": {"enabled": True}, "dashboard": {"enabled": True}},
}


@pytest.fixture(scope="module")
def vllm_url(vllm_qwen3_path: Path, tmp_path_factory) -> Iterator[str]:
    with rendered_vllm(
        resource("qv", SPEC), vllm_qwen3_path, tmp_path_factory.mktemp("vllm-qwen3-run")
    ) as server:
        yield server.base_url


@pytest.fixture(scope="module")
def ours(vllm_qwen3_path: Path) -> Iterator[Any]:
    from server_helpers import running_client, settings_for

    settings = settings_for(
        vllm_qwen3_path,
        default_instruction=HOSTILE,
        max_sequence_length=1024,
        served_model_name=SERVED,
    )
    yield from running_client(settings)


def _ours(client: Any, **extra: Any) -> list[float]:
    return our_scores(client, QUERY, DOCUMENTS, **extra)


@pytest.fixture(scope="module")
def tolerance(vllm_qwen3_path: Path) -> float:
    """Two float32 implementations of one model (tests/tolerance.py)."""
    return fp32_cross_impl_tolerance(vllm_qwen3_path)


def test_the_resources_instruction_scores_as_on_our_server(
    vllm_url: str, ours: Any, tolerance: float
) -> None:
    theirs, mine = rerank(vllm_url, SERVED, QUERY, DOCUMENTS), _ours(ours)
    print("vLLM", theirs, "\nours", mine, "\ntolerance", tolerance)
    assert max_abs_diff(theirs, mine) <= tolerance
    assert max(mine) - min(mine) > 1e-3  # the scores are spread: a wrong prompt would show


def test_a_requests_instruction_scores_as_on_our_server(
    vllm_url: str, ours: Any, tolerance: float
) -> None:
    instruction = "Prefer passages about Kubernetes"
    theirs = rerank(vllm_url, SERVED, QUERY, DOCUMENTS, instruction=instruction)
    mine = _ours(ours, instruction=instruction)
    assert max_abs_diff(theirs, mine) <= tolerance
    # it took effect, far beyond the tolerance
    assert max_abs_diff(theirs, rerank(vllm_url, SERVED, QUERY, DOCUMENTS)) > 10 * tolerance


def test_every_series_the_vllm_monitoring_reads_exists(vllm_url: str) -> None:
    rerank(vllm_url, SERVED, QUERY, DOCUMENTS)  # at least one scored request
    exposed = metric_names(httpx.get(f"{vllm_url}/metrics", timeout=30).text)
    spec = parse_spec(SPEC)
    exprs = [
        r["expr"]
        for r in alert_rules(
            "qv", "ml", spec.metrics.prometheus_rule, engine_name="vllm", prefix_reuse=True
        )
    ]
    exprs += [e for _t, _u, _d, targets in dashboard_panels("qv", "ml", "vllm") for e, _ in targets]
    read = {n for e in exprs for n in set(series_in(e))} | {r.series for r in VLLM_ADAPTER_RULES}
    read -= set(KUBE_STATE_METRICS)
    assert read, "no series found in the expressions"
    missing = sorted(n for n in read if n not in exposed)
    assert missing == [], f"vLLM {sorted(n for n in exposed if n.startswith('vllm:'))}"


def test_cohere_sdk_and_litellm_against_the_vllm_endpoint(
    vllm_url: str, vllm_qwen3_path: Path
) -> None:
    import cohere

    expected = rerank(vllm_url, SERVED, QUERY, DOCUMENTS)
    order = sorted(range(len(DOCUMENTS)), key=lambda i: -expected[i])
    client = cohere.ClientV2(api_key="unused", base_url=vllm_url, max_retries=0)
    answer = client.rerank(model=SERVED, query=QUERY, documents=DOCUMENTS, top_n=3)
    assert [r.index for r in answer.results] == order[:3]
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    litellm = pytest.importorskip("litellm")
    resp = litellm.rerank(
        model=f"cohere/{SERVED}",
        query=QUERY,
        documents=DOCUMENTS,
        top_n=3,
        api_base=vllm_url,
        api_key="unused",
    )
    assert [r["index"] for r in resp.results] == order[:3]
    # the same vLLM answering the same request again (LiteLLM passes its numbers through)
    assert max_abs_diff(
        [r["relevance_score"] for r in resp.results], [expected[i] for i in order[:3]]
    ) <= fp32_tolerance(vllm_qwen3_path, mode="same_kernel")
