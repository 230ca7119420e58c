"""Fuzzing the JSON layer with what a schema-driven fuzzer never sends: raw bytes, lone
surrogates, huge and negative integers, deep nesting, wrong types in every field, on every
scoring route of the real app (tiny Qwen3). Whatever arrives, the answer is 200 or a 4xx with the
uniform error body; never a 5xx.

Derandomized (a fixed sequence of examples), so a failure reproduces in CI and locally alike.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROUTES = {
    "/v1/rerank": "documents",
    "/v2/rerank": "documents",
    "/rerank": "documents",
    "/v1/rank": "docs",
}
TEI = "texts"
FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

SURROGATES = st.sampled_from(["\\ud800", "\\udfff", "\\ud83d", "x\\udc00y"])
# JSON text of a string: printable, escapes and lone surrogates, written as JSON escapes
JSON_STRING = st.one_of(
    st.text(max_size=40).map(json.dumps),
    SURROGATES.map(lambda s: f'"{s}"'),
)
SCALAR = st.one_of(
    JSON_STRING,
    st.integers(min_value=-(10**40), max_value=10**40).map(str),
    st.sampled_from(["true", "false", "null", "1e400", "-0", "0.5", "NaN", "Infinity"]),
    st.integers(min_value=25, max_value=6000).map(lambda n: "9" * n),
)
VALUE = st.recursive(
    SCALAR,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda xs: "[" + ",".join(xs) + "]"),
        st.dictionaries(JSON_STRING, inner, max_size=3).map(
            lambda d: "{" + ",".join(f"{k}:{v}" for k, v in d.items()) + "}"
        ),
    ),
    max_leaves=12,
)
FIELDS = [
    "query",
    "documents",
    "docs",
    TEI,
    "top_n",
    "top_k",
    "max_tokens_per_doc",
    "return_documents",
    "instruction",
    "model",
    "truncate",
    "truncation_direction",
]


def _answer_is_clean(response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:300])
    if response.status_code != 200:
        error = response.json()["error"]
        assert error["message"] and "type" in error


@FUZZ
@given(path=st.sampled_from(sorted(ROUTES)), raw=st.binary(max_size=600))
def test_raw_bytes(qwen_client, path, raw) -> None:
    response = qwen_client.post(path, content=raw, headers={"content-type": "application/json"})
    _answer_is_clean(response)


@FUZZ
@given(
    path=st.sampled_from(sorted(ROUTES)),
    fields=st.dictionaries(st.sampled_from(FIELDS), VALUE, min_size=1, max_size=6),
    depth=st.sampled_from([0, 0, 0, 50, 5000, 200000]),
)
def test_hostile_json_values(qwen_client, path, fields, depth) -> None:
    body = "{" + ",".join(f'"{k}":{v}' for k, v in fields.items()) + "}"
    body = "[" * depth + body + "]" * depth
    response = qwen_client.post(
        path, content=body.encode(), headers={"content-type": "application/json"}
    )
    _answer_is_clean(response)


@FUZZ
@given(
    path=st.sampled_from(sorted(ROUTES)),
    query=JSON_STRING,
    documents=st.lists(st.one_of(JSON_STRING, SCALAR), min_size=0, max_size=5),
)
def test_well_shaped_bodies_with_hostile_strings(qwen_client, path, query, documents) -> None:
    """The right fields with hostile contents: scored (200) or refused naming a field."""
    field = ROUTES[path]
    body = f'{{"query":{query},"{field}":[{",".join(documents)}]}}'
    response = qwen_client.post(
        path, content=body.encode(), headers={"content-type": "application/json"}
    )
    _answer_is_clean(response)
    if response.status_code in (400, 422, 413):
        assert response.json()["error"]["field"], response.text
