"""The bundled server's request limits and timeouts (spec.server.maxRequestBytes, ...,
spec.server.auth.rateLimit.authFailuresPerMinute): each one set on a RerankerService arrives in
the settings the server loads from the rendered env; a bad value is refused naming the field."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest

from render_helpers import VLLM_SPEC, make_cr
from reranker_contract import Env
from reranker_operator.api.crd import load_crd, openapi_schema
from reranker_operator.api.spec import InvalidSpecError, parse_spec
from reranker_operator.render.manifests import render_children
from reranker_server.config import Settings, load_settings

# spec.server field -> (a value other than the default, the server setting, its env variable)
SERVER_FIELDS: dict[str, tuple[int, str, Env]] = {
    "maxRequestBytes": (2 * 1024 * 1024, "max_request_bytes", Env.MAX_REQUEST_BYTES),
    "maxRequestTokens": (100000, "max_request_tokens", Env.MAX_REQUEST_TOKENS),
    "maxQueuedTokens": (400000, "max_queued_tokens", Env.MAX_QUEUED_TOKENS),
    "headerTimeoutSeconds": (5, "header_timeout_seconds", Env.HEADER_TIMEOUT_SECONDS),
    "bodyTimeoutSeconds": (45, "body_timeout_seconds", Env.BODY_TIMEOUT_SECONDS),
}
AUTH_FAILURES = (7, "auth_failures_per_minute", Env.AUTH_FAILURES_PER_MINUTE)
ALL = [*SERVER_FIELDS.values(), AUTH_FAILURES]


def _server_env(spec: dict[str, Any]) -> dict[str, str]:
    """The plain env of the rendered server container."""
    (deployment,) = [c for c in render_children(make_cr(spec)) if c["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def _limits_spec() -> dict[str, Any]:
    server: dict[str, Any] = {name: value for name, (value, _, _) in SERVER_FIELDS.items()}
    server["auth"] = {"rateLimit": {"authFailuresPerMinute": AUTH_FAILURES[0]}}
    return {"model": {"name": "BAAI/bge-reranker-base"}, "server": server}


def test_each_setting_reaches_the_server() -> None:
    env = _server_env(_limits_spec())
    settings = load_settings({}, env=env)
    for value, setting, variable in ALL:
        assert env[variable] == str(value)
        assert getattr(settings, setting) == value, setting


def test_defaults_are_the_servers_defaults() -> None:
    env = _server_env({"model": {"name": "BAAI/bge-reranker-base"}})
    settings, server_defaults = load_settings({}, env=env), Settings()
    for _, setting, variable in ALL:
        assert variable in env  # rendered always, like MAX_CLIENT_BATCH_SIZE
        assert getattr(settings, setting) == getattr(server_defaults, setting), setting


def test_vllm_accepts_and_ignores_them() -> None:
    """Like maxClientBatchSize: bare vLLM has no such limits, so nothing of them is rendered;
    behind the front they are the front's."""
    spec = copy.deepcopy(VLLM_SPEC)
    limits = _limits_spec()["server"]
    spec["server"] = {**spec.get("server", {}), **limits}
    spec["vllm"] = {**spec["vllm"], "front": False}
    rendered = str(render_children(make_cr(spec)))
    for _, _, variable in ALL:
        assert str(variable) not in rendered
    spec["vllm"]["front"] = True
    [deployment] = [c for c in render_children(make_cr(spec)) if c["kind"] == "Deployment"]
    front = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"] for e in front["env"]}
    assert {str(variable) for _, _, variable in ALL} <= env


BAD = [
    ({"maxRequestBytes": 1023}, "server.maxRequestBytes", "greater than or equal to 1024"),
    ({"maxRequestBytes": 512 * 1024 * 1024}, "server.maxRequestBytes", "less than or equal"),
    ({"maxRequestTokens": 0}, "server.maxRequestTokens", "greater than or equal to 1"),
    ({"maxQueuedTokens": 0}, "server.maxQueuedTokens", "greater than or equal to 1"),
    ({"headerTimeoutSeconds": 0}, "server.headerTimeoutSeconds", "greater than or equal to 1"),
    ({"headerTimeoutSeconds": 301}, "server.headerTimeoutSeconds", "less than or equal"),
    ({"bodyTimeoutSeconds": 3601}, "server.bodyTimeoutSeconds", "less than or equal"),
    (
        {"auth": {"rateLimit": {"authFailuresPerMinute": -1}}},
        "server.auth.rateLimit.authFailuresPerMinute",
        "greater than or equal to 0",
    ),
    (
        {"maxRequestTokens": 500000, "maxQueuedTokens": 400000},
        "server.maxQueuedTokens",
        "must be >= server.maxRequestTokens (400000 < 500000)",
    ),
]


@pytest.mark.parametrize(("server", "field", "words"), BAD, ids=[b[1] for b in BAD])
def test_bad_values_are_refused_naming_the_field(
    server: dict[str, Any], field: str, words: str
) -> None:
    spec = {"model": {"name": "m"}, "server": server}
    with pytest.raises(InvalidSpecError) as err:
        parse_spec(spec)
    assert err.value.field == field
    assert words in err.value.message


@pytest.mark.parametrize(
    ("server", "field"), [(b[0], b[1]) for b in BAD[:-1]], ids=[b[1] for b in BAD[:-1]]
)
def test_the_crd_refuses_out_of_range_values(server: dict[str, Any], field: str) -> None:
    """The API server's openAPI bounds refuse them too (the cross-field rule: test_cel_rules)."""
    root = openapi_schema(load_crd())
    with pytest.raises(jsonschema.ValidationError) as err:
        jsonschema.validate({"spec": {"model": {"name": "m"}, "server": server}}, root)
    assert list(err.value.absolute_path) == ["spec", *field.split(".")]
