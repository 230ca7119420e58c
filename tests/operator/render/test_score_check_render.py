"""spec.scoreCheck rendered: the <name>-score-probes ConfigMap holds the spec's probes as JSON
(hostile strings stay data), and the server container gets the mounts and env the server reads
(reranker_contract.score_check) present and absent as the spec says; engine vllm gets nothing
new; every rendered object is strictly valid Kubernetes."""

from __future__ import annotations

import copy
import json
from typing import Any

import kubernetes_validate
import pytest
from test_render_injection import HOSTILE, shape

from render_helpers import VLLM_SPEC, make_cr
from reranker_contract.score_check import (
    PROBES_DIR,
    PROBES_KEY,
    RECORD_DIR,
    RECORD_KEY,
    BuiltinCheck,
    ScoreCheckEnv,
)
from reranker_operator.api.spec import parse_spec
from reranker_operator.render.manifests import render_children

NAME = "demo"
MODEL = {"name": "BAAI/bge-reranker-v2-m3"}
PROBES: list[dict[str, Any]] = [
    {
        "name": "capital",
        "query": "What is the capital of France?",
        "documents": ["Paris is the capital of France.", "Pandas eat bamboo."],
        "instruction": "Find the answer",
        "expect": {"top": 0, "order": [0, 1], "scores": [0.9, 0.1], "tolerance": 0.2},
    },
    {"name": "plain", "query": "q", "documents": ["a", "b", "c"]},
]
CHECK_ENV = {str(e) for e in ScoreCheckEnv}


def rendered(check: dict[str, Any] | None, base: dict[str, Any] | None = None) -> dict[str, Any]:
    spec = copy.deepcopy(base or {"model": MODEL})
    if check is not None:
        spec["scoreCheck"] = check
    return {(c["kind"], c["metadata"]["name"]): c for c in render_children(make_cr(spec))}


def probes_map(kids: dict[str, Any]) -> dict[str, Any] | None:
    return kids.get(("ConfigMap", f"{NAME}-score-probes"))


def server(kids: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pod spec, server container) of the Deployment."""
    pod = kids[("Deployment", NAME)]["spec"]["template"]["spec"]
    return pod, pod["containers"][0]


def check_env(kids: dict[str, Any]) -> dict[str, str]:
    _, container = server(kids)
    return {e["name"]: e["value"] for e in container["env"] if e["name"] in CHECK_ENV}


def volumes(kids: dict[str, Any]) -> dict[str, dict[str, Any]]:
    pod, _ = server(kids)
    return {v["name"]: v for v in pod["volumes"]}


def mounts(kids: dict[str, Any]) -> dict[str, str]:
    _, container = server(kids)
    return {m["name"]: m["mountPath"] for m in container["volumeMounts"]}


def test_the_config_map_holds_the_specs_probes_as_json() -> None:
    kids = rendered({"probes": PROBES})
    config_map = probes_map(kids)
    assert config_map is not None
    assert set(config_map["data"]) == {PROBES_KEY}
    assert json.loads(config_map["data"][PROBES_KEY]) == PROBES
    assert config_map["metadata"]["ownerReferences"][0]["name"] == NAME
    # applied before the Deployment that mounts it
    order = list(kids)
    assert order.index(("ConfigMap", f"{NAME}-score-probes")) < order.index(("Deployment", NAME))


def test_defaults_check_with_every_builtin_and_the_record_and_no_probe_file() -> None:
    kids = rendered(None)
    assert probes_map(kids) is None
    env = check_env(kids)
    assert env == {
        "SCORE_CHECK": "on",
        "SCORE_CHECK_BUILTINS": ",".join(BuiltinCheck),
        "SERVER_IMAGE": server(kids)[1]["image"],
        "SCORE_RECORD_FILE": f"{RECORD_DIR}/{RECORD_KEY}",
    }
    assert mounts(kids)["score-record"] == RECORD_DIR
    assert volumes(kids)["score-record"]["configMap"] == {
        "name": f"{NAME}-score-record",
        "items": [{"key": RECORD_KEY, "path": RECORD_KEY}],
        "optional": True,
    }
    assert "score-probes" not in volumes(kids) and "score-probes" not in mounts(kids)


def test_inline_and_config_map_probes_share_one_projected_volume() -> None:
    kids = rendered({"probes": PROBES, "probesConfigMap": {"name": "more", "key": "set.json"}})
    env = check_env(kids)
    files = env["SCORE_PROBES_FILE"].split(",")
    assert files == [f"{PROBES_DIR}/{PROBES_KEY}", f"{PROBES_DIR}/configmap-probes.json"]
    assert mounts(kids)["score-probes"] == PROBES_DIR
    sources = volumes(kids)["score-probes"]["projected"]["sources"]
    assert sources == [
        {
            "configMap": {
                "name": f"{NAME}-score-probes",
                "items": [{"key": PROBES_KEY, "path": PROBES_KEY}],
            }
        },
        {
            "configMap": {
                "name": "more",
                "items": [{"key": "set.json", "path": "configmap-probes.json"}],
            }
        },
    ]
    # the file names the env lists are the paths the volume projects
    projected = {i["path"] for s in sources for i in s["configMap"]["items"]}
    assert {f.removeprefix(f"{PROBES_DIR}/") for f in files} == projected


def test_config_map_probes_alone_render_no_config_map_of_ours() -> None:
    kids = rendered({"probesConfigMap": {"name": "more"}})
    assert probes_map(kids) is None
    assert check_env(kids)["SCORE_PROBES_FILE"] == f"{PROBES_DIR}/configmap-probes.json"
    (source,) = volumes(kids)["score-probes"]["projected"]["sources"]
    assert source["configMap"]["name"] == "more"
    assert source["configMap"]["items"] == [{"key": PROBES_KEY, "path": "configmap-probes.json"}]


def test_relevance_off_and_tolerance_overrides() -> None:
    kids = rendered(
        {
            "builtins": {"relevance": False},
            "parity": {"tolerances": {"dtype": 0.08, "engine": 0.01}},
        }
    )
    env = check_env(kids)
    assert env["SCORE_CHECK_BUILTINS"] == "finite,spread,consistent"
    assert json.loads(env["SCORE_PARITY_TOLERANCES"]) == {"engine": 0.01, "dtype": 0.08}


def test_parity_off_mounts_no_record() -> None:
    kids = rendered({"probes": PROBES, "parity": {"enabled": False, "tolerances": {"dtype": 0.1}}})
    env = check_env(kids)
    assert "SCORE_RECORD_FILE" not in env and "SCORE_PARITY_TOLERANCES" not in env
    assert "score-record" not in volumes(kids) and "score-record" not in mounts(kids)
    assert "score-probes" in volumes(kids)


def test_check_off_renders_the_switch_alone() -> None:
    kids = rendered({"enabled": False, "probes": PROBES, "probesConfigMap": {"name": "more"}})
    assert check_env(kids) == {"SCORE_CHECK": "off"}
    assert probes_map(kids) is None
    assert not {"score-probes", "score-record"} & (set(volumes(kids)) | set(mounts(kids)))


def test_bare_vllm_renders_nothing_of_the_check() -> None:
    bare = {**VLLM_SPEC, "vllm": {**VLLM_SPEC["vllm"], "front": False}}
    kids = rendered({"probes": PROBES, "probesConfigMap": {"name": "more"}}, bare)
    assert probes_map(kids) is None
    text = json.dumps(list(kids.values()))
    assert not any(name in text for name in CHECK_ENV)
    assert "score-record" not in text and "score-probes" not in text


def test_vllm_behind_the_front_checks_through_vllm() -> None:
    kids = rendered({"probes": PROBES, "probesConfigMap": {"name": "more"}}, VLLM_SPEC)
    assert probes_map(kids) is not None
    env = check_env(kids)
    assert env["SCORE_CHECK"] == "on" and "SCORING_ENGINE" not in env  # ENGINE_URL tells
    assert {"score-probes", "score-record"} <= set(mounts(kids))


def test_changed_probes_restart_the_pods() -> None:
    def config_hash(check: dict[str, Any]) -> str:
        deployment = rendered(check)[("Deployment", NAME)]
        return deployment["spec"]["template"]["metadata"]["annotations"]["rerankers.io/config-hash"]

    other = copy.deepcopy(PROBES)
    other[1]["documents"].append("d")
    assert config_hash({"probes": PROBES}) == config_hash({"probes": copy.deepcopy(PROBES)})
    assert config_hash({"probes": PROBES}) != config_hash({"probes": other})


@pytest.mark.parametrize("hostile", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_probe_text_stays_data(hostile: str) -> None:
    def with_text(text: str) -> list[dict[str, Any]]:
        probes = copy.deepcopy(PROBES)
        probes[0].update(query=text, instruction=text)
        probes[1]["documents"][2] = text
        return probes

    benign = render_children(make_cr({"model": MODEL, "scoreCheck": {"probes": with_text("x")}}))
    probes = with_text(hostile)
    children = render_children(make_cr({"model": MODEL, "scoreCheck": {"probes": probes}}))
    assert shape(children) == shape(benign)
    (config_map,) = [c for c in children if c["metadata"]["name"] == f"{NAME}-score-probes"]
    assert (
        json.loads(config_map["data"][PROBES_KEY])
        == parse_spec({"model": MODEL, "scoreCheck": {"probes": probes}}).score_check.model_dump(
            mode="json", by_alias=True, exclude_none=True
        )["probes"]
    )
    assert json.loads(config_map["data"][PROBES_KEY])[0]["query"] == hostile


@pytest.mark.parametrize("version", ["1.30", "1.37"])
def test_rendered_objects_are_strictly_valid(version: str) -> None:
    checks = [
        {"probes": PROBES, "probesConfigMap": {"name": "more"}},
        {"probes": PROBES, "parity": {"enabled": False}},
        {"enabled": False},
        None,
    ]
    for check in checks:
        for child in rendered(check).values():
            if child["apiVersion"] in ("v1", "apps/v1"):
                kubernetes_validate.validate(child, version, strict=True)
