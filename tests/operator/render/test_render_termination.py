"""spec.termination and spec.server.requestTimeoutSeconds in the rendered pods of both engines:
the preStop sleep, the grace period, and what each server is told (the bundled server's env,
vLLM's --shutdown-timeout). tests/server/test_termination.py runs the sequence for real."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from render_helpers import VLLM_SPEC, make_cr
from reranker_operator.api.spec import InvalidSpecError, parse_spec
from reranker_operator.render.manifests import render_children

SERVER_SPEC: dict[str, Any] = {"model": {"name": "BAAI/bge-reranker-v2-m3"}}


def deployment(spec: dict[str, Any]) -> dict[str, Any]:
    [dep] = [c for c in render_children(make_cr(spec)) if c["kind"] == "Deployment"]
    return dep


def pod(spec: dict[str, Any]) -> dict[str, Any]:
    return deployment(spec)["spec"]["template"]["spec"]


def with_times(
    spec: dict[str, Any],
    pre_stop: int | None = None,
    drain: int | None = None,
    timeout: int | None = None,
) -> dict[str, Any]:
    out = {**spec}
    termination = {
        k: v for k, v in (("preStopSeconds", pre_stop), ("drainSeconds", drain)) if v is not None
    }
    if termination:
        out["termination"] = termination
    if timeout is not None:
        out["server"] = {**spec.get("server", {}), "requestTimeoutSeconds": timeout}
    return out


ENGINES = {
    "transformers": SERVER_SPEC,
    "vllm": VLLM_SPEC,  # behind the front
    "vllm-bare": {**VLLM_SPEC, "vllm": {**VLLM_SPEC["vllm"], "front": False}},
}


def vllm_of(p: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in p["containers"] if c.get("command") == ["vllm", "serve"])


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_defaults_sleep_15_s_and_cover_drain_and_longest_request(engine: str) -> None:
    p = pod(ENGINES[engine])
    container = p["containers"][0]  # the serving container: the Service's
    assert container["lifecycle"] == {"preStop": {"sleep": {"seconds": 15}}}
    assert p["terminationGracePeriodSeconds"] == 15 + 5 + 60 + 5  # preStop, drain, request, margin
    if engine == "vllm":  # vLLM outlives its front: preStop, drain, the longest request
        assert vllm_of(p)["lifecycle"] == {"preStop": {"sleep": {"seconds": 15 + 5 + 60}}}


@pytest.mark.parametrize("engine", sorted(ENGINES))
@pytest.mark.parametrize(("pre_stop", "drain", "timeout"), [(20, 7, 120), (0, 0, 1), (45, 10, 600)])
def test_grace_period_from_the_spec(engine: str, pre_stop: int, drain: int, timeout: int) -> None:
    spec = with_times(ENGINES[engine], pre_stop, drain, timeout)
    dep = deployment(spec)
    p = dep["spec"]["template"]["spec"]
    container = p["containers"][0]
    assert p["terminationGracePeriodSeconds"] == pre_stop + drain + timeout + 5
    if pre_stop:
        assert container["lifecycle"] == {"preStop": {"sleep": {"seconds": pre_stop}}}
    else:
        assert "lifecycle" not in container  # no hook at all rather than a 0 s sleep
    if engine != "transformers":
        assert f"--shutdown-timeout={timeout}" in vllm_of(p)["args"]
    if engine == "vllm":
        outlive = pre_stop + drain + timeout
        assert vllm_of(p)["lifecycle"] == {"preStop": {"sleep": {"seconds": outlive}}}
    if engine != "vllm-bare":
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert (env["DRAIN_SECONDS"], env["REQUEST_TIMEOUT_SECONDS"]) == (str(drain), str(timeout))
    for version in ("1.30", "1.37"):  # sleep is a 1.30 LifecycleHandler field
        kubernetes_validate.validate(dep, version, strict=True)


def test_both_engines_get_the_same_hook_and_grace_period() -> None:
    times = {"pre_stop": 30, "drain": 3, "timeout": 90}
    server, vllm = (pod(with_times(s, **times)) for s in (SERVER_SPEC, VLLM_SPEC))
    assert server["terminationGracePeriodSeconds"] == vllm["terminationGracePeriodSeconds"]
    assert server["containers"][0]["lifecycle"] == vllm["containers"][0]["lifecycle"]


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"termination": {"preStopSeconds": -1}}, "termination.preStopSeconds"),
        ({"termination": {"drainSeconds": 3601}}, "termination.drainSeconds"),
        ({"termination": {"gracePeriodSeconds": 30}}, "termination.gracePeriodSeconds"),
        ({"server": {"requestTimeoutSeconds": 0}}, "server.requestTimeoutSeconds"),
    ],
)
def test_bad_times_name_the_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidSpecError) as err:
        parse_spec({**SERVER_SPEC, **spec})
    assert err.value.field == field


def test_vllm_extra_args_may_not_set_the_shutdown_timeout() -> None:
    spec = {**VLLM_SPEC, "vllm": {**VLLM_SPEC["vllm"], "extraArgs": ["--shutdown-timeout=0"]}}
    with pytest.raises(InvalidSpecError) as err:
        parse_spec(spec)
    assert err.value.field.startswith("vllm.extraArgs")
