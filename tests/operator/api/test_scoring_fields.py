"""spec.server.scoreCache and spec.model.attentionImplementation: fields, not `spec.env`. They
render into the env names of the contract, the server reads them back as the values set, the CRD's
enum is the server's list, and engine vllm (which has neither) refuses them naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from reranker_contract import ATTN_IMPLEMENTATIONS, Env
from reranker_operator.api.crdgen import build_crd
from reranker_operator.api.spec import InvalidSpecError, parse_spec
from reranker_operator.render.manifests import render_children
from reranker_server.config import Settings, load_settings


def _env(spec: dict[str, Any]) -> dict[str, str]:
    cr = {
        "apiVersion": "rerankers.io/v1alpha1",
        "kind": "RerankerService",
        "metadata": {"name": "s", "namespace": "ml", "uid": "u"},
        "spec": spec,
    }
    [deployment] = [c for c in render_children(cr) if c["kind"] == "Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def _spec_schema() -> dict[str, Any]:
    crd = build_crd()
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]


@pytest.mark.parametrize("kernel", ATTN_IMPLEMENTATIONS)
def test_the_attention_kernel_reaches_the_server(kernel: str) -> None:
    spec = {"model": {"name": "m", "attentionImplementation": kernel}, "resources": {"gpus": 1}}
    env = _env(spec)
    assert env[Env.ATTN_IMPLEMENTATION] == kernel
    assert load_settings({}, env=env).attn_implementation == kernel


def test_unset_fields_leave_the_servers_defaults() -> None:
    env = _env({"model": {"name": "m"}})
    assert Env.ATTN_IMPLEMENTATION not in env and Env.SCORE_CACHE_SIZE not in env
    settings = load_settings({}, env=env)
    assert (settings.attn_implementation, settings.score_cache_size) == ("sdpa", 0)


def test_the_crd_enum_is_the_servers_list() -> None:
    prop = _spec_schema()["properties"]["model"]["properties"]["attentionImplementation"]
    choices = next(
        f for f in Settings.__dataclass_fields__.values() if f.name == "attn_implementation"
    ).metadata["choices"]
    assert prop["enum"] == list(choices) == list(ATTN_IMPLEMENTATIONS)


def test_compiled_kernels_reach_the_server_only_when_asked() -> None:
    env = _env({"model": {"name": "m"}, "server": {"compileKernels": True}})
    assert env[Env.COMPILE_KERNELS] == "true"
    assert load_settings({}, env=env).compile_kernels is True
    default = _env({"model": {"name": "m"}})
    assert Env.COMPILE_KERNELS not in default
    assert load_settings({}, env=default).compile_kernels is False


def test_the_score_cache_size_reaches_the_server() -> None:
    env = _env({"model": {"name": "m"}, "server": {"scoreCache": {"enabled": True, "size": 777}}})
    assert load_settings({}, env=env).score_cache_size == 777
    default = _env({"model": {"name": "m"}, "server": {"scoreCache": {"enabled": True}}})
    assert int(default[Env.SCORE_CACHE_SIZE]) == 100_000  # the documented default
    off = _env({"model": {"name": "m"}, "server": {"scoreCache": {"enabled": False, "size": 9}}})
    assert load_settings({}, env=off).score_cache_size == 0


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (
            {
                "model": {"name": "m", "attentionImplementation": "sdpa"},
                "engine": "vllm",
                "resources": {"gpus": 1},
            },
            "model.attentionImplementation",
        ),
        (
            {
                "model": {"name": "m"},
                "engine": "vllm",
                "resources": {"gpus": 1},
                "vllm": {"front": False},  # behind the front the cache is the front's
                "server": {"scoreCache": {"enabled": True}},
            },
            "server.scoreCache.enabled",
        ),
        (
            {"model": {"name": "m", "attentionImplementation": "flash_attention_2"}},
            "model.attentionImplementation",
        ),
        (
            {"model": {"name": "m", "attentionImplementation": "xformers"}},
            "model.attentionImplementation",
        ),
        (
            {"model": {"name": "m"}, "server": {"scoreCache": {"enabled": True, "size": 0}}},
            "server.scoreCache.size",
        ),
        (
            {"model": {"name": "m"}, "resources": {"gpus": 1}, "server": {"compileKernels": True}},
            "server.compileKernels",
        ),
        (
            {
                "model": {"name": "m"},
                "engine": "vllm",
                "resources": {"gpus": 1},
                "server": {"compileKernels": True},
            },
            "server.compileKernels",
        ),
    ],
    ids=str,
)
def test_refused_naming_the_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidSpecError) as caught:
        parse_spec(spec)
    assert caught.value.field == field, caught.value
