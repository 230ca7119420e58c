"""spec.server.longDocuments, chunkOverlapTokens and maxChunksPerDocument: set on a
RerankerService they reach the settings the server loads from the rendered env; left at their
defaults nothing is rendered (renders unchanged); engine vllm chunks in the front, and bare vLLM
(vllm.front false) refuses chunk, naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from render_helpers import make_cr
from reranker_contract import Env
from reranker_operator.api.spec import InvalidSpecError, parse_spec
from reranker_operator.render.manifests import render_children
from reranker_server.config import Settings, load_settings

NAMES = (Env.LONG_DOCUMENTS, Env.CHUNK_OVERLAP_TOKENS, Env.MAX_CHUNKS_PER_DOCUMENT)


def _server_env(spec: dict[str, Any]) -> dict[str, str]:
    (deployment,) = [c for c in render_children(make_cr(spec)) if c["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def test_each_field_reaches_the_server() -> None:
    server = {"longDocuments": "chunk", "chunkOverlapTokens": 32, "maxChunksPerDocument": 8}
    env = _server_env({"model": {"name": "BAAI/bge-reranker-base"}, "server": server})
    settings = load_settings({}, env=env)
    assert (
        settings.long_documents,
        settings.chunk_overlap_tokens,
        settings.max_chunks_per_document,
    ) == ("chunk", 32, 8)


def test_defaults_render_nothing_and_are_the_servers() -> None:
    env = _server_env({"model": {"name": "BAAI/bge-reranker-base"}})
    assert not set(map(str, NAMES)) & set(env)
    settings, defaults = load_settings({}, env=env), Settings()
    for name in ("long_documents", "chunk_overlap_tokens", "max_chunks_per_document"):
        assert getattr(settings, name) == getattr(defaults, name)


@pytest.mark.parametrize(
    ("server", "field"),
    [
        ({"longDocuments": "split"}, "server.longDocuments"),
        ({"chunkOverlapTokens": -1}, "server.chunkOverlapTokens"),
        ({"maxChunksPerDocument": 0}, "server.maxChunksPerDocument"),
    ],
)
def test_bad_values_are_refused_naming_the_field(server: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidSpecError) as caught:
        parse_spec({"model": {"name": "m"}, "server": server})
    assert caught.value.field == field, caught.value


def test_bare_vllm_refuses_chunk_and_the_front_chunks() -> None:
    vllm = {"model": {"name": "m"}, "engine": "vllm", "resources": {"gpus": 1}}
    bare = {**vllm, "vllm": {"front": False}}
    parse_spec({**bare, "server": {"longDocuments": "truncate"}})
    with pytest.raises(InvalidSpecError) as caught:
        parse_spec({**bare, "server": {"longDocuments": "chunk"}})
    assert caught.value.field == "server.longDocuments" and "vllm.front" in str(caught.value)
    kids = render_children(make_cr({**vllm, "server": {"longDocuments": "chunk"}}))
    [deployment] = [c for c in kids if c["kind"] == "Deployment"]
    front = deployment["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "LONG_DOCUMENTS", "value": "chunk"} in front["env"]
