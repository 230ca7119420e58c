"""spec.scoreCheck: its defaults (as parse_spec and the API server's defaulting give them), and
each bad value refused naming its field, by the CRD (schema and CEL, as the API server checks
them), by parse_spec, and by the operator on a live resource (a check no CRD can state)."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest
from test_cel_rules import failing_rules

from operator_helpers import children, condition, example, wait_for
from reranker_contract.score_check import PARITY_TOLERANCES, BuiltinCheck, ScoreChange
from reranker_devtools.devcluster import RERANKERS, DevCluster
from reranker_devtools.devcluster.schema import apply_defaults
from reranker_operator.api.score_check import MAX_PROBES_JSON_BYTES
from reranker_operator.api.spec import InvalidSpecError, parse_spec
from reranker_operator.controller.handlers import Controller

M = {"name": "m"}


def probe(name: str = "p", **fields: Any) -> dict[str, Any]:
    return {"name": name, "query": "q", "documents": ["a", "b", "c"], **fields}


def spec_with(check: dict[str, Any]) -> dict[str, Any]:
    return {"model": M, "scoreCheck": check}


def test_defaults_check_everything_with_the_contract_tolerances(
    spec_schema: dict[str, Any],
) -> None:
    check = parse_spec({"model": M}).score_check
    assert check.enabled and check.parity.enabled and check.builtins.relevance
    assert check.probes == [] and check.probes_config_map is None
    assert check.builtins.enabled() == list(BuiltinCheck)
    assert check.parity.tolerances.overrides() == {}
    defaulted = apply_defaults(spec_schema, {"model": M})["scoreCheck"]
    assert defaulted == {
        "enabled": True,
        "builtins": {"relevance": True},
        "parity": {"enabled": True},
    }
    tolerances = spec_schema["properties"]["scoreCheck"]["properties"]["parity"]["properties"][
        "tolerances"
    ]["properties"]
    for kind, node in tolerances.items():  # the CRD states each default from the contract
        assert f"(default {PARITY_TOLERANCES[ScoreChange(kind)]})" in node["description"]
    assert set(tolerances) == {k.value for k in ScoreChange} - {"none"}


def test_a_valid_check_parses_to_the_contract_shape() -> None:
    check = parse_spec(
        spec_with(
            {
                "builtins": {"relevance": False},
                "probes": [
                    probe("a", instruction="Judge", expect={"top": 2, "order": [2, 0]}),
                    probe("b", expect={"scores": [0.9, 0.1, 0], "tolerance": 0.01}),
                ],
                "probesConfigMap": {"name": "more-probes"},
                "parity": {"tolerances": {"dtype": 0.08, "image": 0.002}},
            }
        )
    ).score_check
    assert BuiltinCheck.RELEVANCE not in check.builtins.enabled()
    assert check.probes_config_map is not None and check.probes_config_map.key == "probes.json"
    assert [p.as_json() for p in check.probes] == [
        {
            "name": "a",
            "query": "q",
            "documents": ["a", "b", "c"],
            "instruction": "Judge",
            "expect": {"top": 2, "order": [2, 0]},
        },
        {
            "name": "b",
            "query": "q",
            "documents": ["a", "b", "c"],
            "expect": {"scores": [0.9, 0.1, 0.0], "tolerance": 0.01},
        },
    ]
    assert check.parity.tolerances.overrides() == {"image": 0.002, "dtype": 0.08}


# (scoreCheck, the field named, the CRD's CEL message or None where the schema refuses it)
BAD: list[tuple[dict[str, Any], str, str | None]] = [
    ({"probes": [probe(), probe()]}, "scoreCheck.probes", "probe names must be unique"),
    (
        {"probes": [probe(expect={"top": 3})]},
        "scoreCheck.probes[0].expect.top",
        "expect.top must be the index",
    ),
    (
        {"probes": [probe("ok"), probe(expect={"order": [0, 3]})]},
        "scoreCheck.probes[1].expect.order",
        "expect.order must list indexes",
    ),
    (
        {"probes": [probe(expect={"order": [1, 0, 1]})]},
        "scoreCheck.probes[0].expect.order",
        "order lists each document index at most once",
    ),
    (
        {"probes": [probe(expect={"scores": [0.5, 0.4]})]},
        "scoreCheck.probes[0].expect.scores",
        "expect.scores needs one score per document",
    ),
    (
        {"probes": [probe(expect={"top": 0, "tolerance": 0.1})]},
        "scoreCheck.probes[0].expect.tolerance",
        "tolerance applies to scores",
    ),
    ({"probes": [probe(documents=["only one"])]}, "scoreCheck.probes[0].documents", None),
    ({"probes": [probe(documents=["d"] * 33)]}, "scoreCheck.probes[0].documents", None),
    ({"probes": [probe(documents=["a", ""])]}, "scoreCheck.probes[0].documents[1]", None),
    ({"probes": [probe(name="Not A Name")]}, "scoreCheck.probes[0].name", None),
    ({"probes": [probe(query="")]}, "scoreCheck.probes[0].query", None),
    (
        {"probes": [probe(expect={"scores": [0.5, 1.5, 0]})]},
        "scoreCheck.probes[0].expect.scores[1]",
        None,
    ),
    (
        {"probes": [probe(f"p{i}") for i in range(17)]},
        "scoreCheck.probes",
        None,
    ),
    ({"probes": [probe(unknown=1)]}, "scoreCheck.probes[0].unknown", None),
    ({"probesConfigMap": {"name": "Bad_Name"}}, "scoreCheck.probesConfigMap.name", None),
    ({"probesConfigMap": {"name": "c", "key": "a/b"}}, "scoreCheck.probesConfigMap.key", None),
    ({"parity": {"tolerances": {"dtype": 0}}}, "scoreCheck.parity.tolerances.dtype", None),
    ({"parity": {"tolerances": {"image": 1.5}}}, "scoreCheck.parity.tolerances.image", None),
    ({"parity": {"tolerances": {"none": 0.1}}}, "scoreCheck.parity.tolerances.none", None),
    ({"builtins": {"relevance": "no"}}, "scoreCheck.builtins.relevance", None),
]


@pytest.mark.parametrize(("check", "field", "cel"), BAD, ids=[b[1] for b in BAD])
def test_each_bad_value_names_its_field(
    spec_schema: dict[str, Any], check: dict[str, Any], field: str, cel: str | None
) -> None:
    spec = spec_with(check)
    with pytest.raises(InvalidSpecError) as err:
        parse_spec(spec)
    assert err.value.field == field, err.value
    if cel is None:  # the schema refuses it at the field (unknown fields are pruned, not refused)
        if not field.endswith((".unknown", ".none")):
            with pytest.raises(jsonschema.ValidationError) as refused:
                jsonschema.validate(spec, spec_schema)
            path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in refused.value.path)
            assert path.lstrip(".") == field
        assert failing_rules(spec_schema, spec) == []
    else:
        jsonschema.validate(spec, spec_schema)  # the schema alone lets it through: CEL refuses
        (message,) = failing_rules(spec_schema, spec)
        assert message.startswith(cel) or cel in message, message


def test_good_probes_pass_the_schema_and_every_rule(spec_schema: dict[str, Any]) -> None:
    spec = spec_with(
        {
            "probes": [
                probe("a", expect={"top": 2, "order": [2, 1, 0], "scores": [0, 0.5, 1]}),
                probe("b"),
                probe("c", expect={"scores": [0, 0.5, 1], "tolerance": 1}),
            ],
            "parity": {"enabled": False, "tolerances": {"quantization": 1}},
        }
    )
    jsonschema.validate(spec, spec_schema)
    assert failing_rules(spec_schema, spec) == []
    parse_spec(spec)


def huge_probes() -> list[dict[str, Any]]:
    """Probes within every bound whose JSON is larger than a rendered ConfigMap may hold."""
    return [probe(f"p{i}", documents=["x" * 1024] * 32) for i in range(16)]


def test_probes_too_large_for_their_config_map_are_refused(spec_schema: dict[str, Any]) -> None:
    spec = spec_with({"probes": huge_probes()})
    jsonschema.validate(spec, spec_schema)  # no CRD bound can state the total size
    assert failing_rules(spec_schema, spec) == []
    with pytest.raises(InvalidSpecError) as err:
        parse_spec(spec)
    assert err.value.field == "scoreCheck.probes"
    assert f"at most {MAX_PROBES_JSON_BYTES}" in err.value.message
    smaller = spec_with({"probes": huge_probes()[:8]})
    parse_spec(smaller)


def test_the_operator_reports_the_field_on_a_live_resource(
    cluster: DevCluster, operator: Controller
) -> None:
    manifest = example("bge-reranker-cpu.yaml")
    manifest["spec"]["scoreCheck"] = {"probes": huge_probes()}
    name, ns = manifest["metadata"]["name"], manifest["metadata"]["namespace"]
    cluster.create(copy.deepcopy(manifest))

    def ready() -> dict[str, Any] | None:
        return condition(cluster.get(RERANKERS, ns, name), "Ready")

    cond = wait_for(lambda: (c := ready()) and c["reason"] == "InvalidSpec" and c, "InvalidSpec")
    assert cond["status"] == "False"
    assert "spec.scoreCheck.probes" in cond["message"]
    assert children(cluster, name) == {}
