"""Pure pieces of the reconciler: drift detection, the desired-hash, status conditions, events,
configuration and the runner's argument checks."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from reranker_operator import status as st
from reranker_devtools.devcluster import deployment_status, pod_status
from reranker_operator.handlers import OperatorConfig
from reranker_operator.reconcile import (
    DESIRED_HASH_ANNOTATION,
    desired_hash,
    drift,
    instance_selector,
    owned_by,
    with_hash,
)
from reranker_operator.runner import run

MANIFEST = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "r", "namespace": "default", "labels": {"a": "1"}},
    "spec": {"replicas": 2, "template": {"spec": {"containers": [
        {"name": "c", "image": "img:1", "resources": {"limits": {"cpu": "1000m",
                                                                 "memory": "1024Mi"}}}]}}},
}


def test_drift_ignores_fields_only_the_live_object_has() -> None:
    live = copy.deepcopy(MANIFEST)
    live["metadata"].update(uid="u", resourceVersion="9", labels={"a": "1", "extra": "x"})
    live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = "IfNotPresent"
    live["status"] = {"replicas": 2}
    assert drift(MANIFEST, live) is None


def test_drift_names_the_first_differing_path() -> None:
    live = copy.deepcopy(MANIFEST)
    live["spec"]["replicas"] = 5
    assert drift(MANIFEST, live) == ".spec.replicas"
    live = copy.deepcopy(MANIFEST)
    live["spec"]["template"]["spec"]["containers"][0]["image"] = "img:2"
    assert drift(MANIFEST, live) == ".spec.template.spec.containers[0].image"
    live = copy.deepcopy(MANIFEST)
    del live["metadata"]["labels"]["a"]
    assert drift(MANIFEST, live) == ".metadata.labels.a"
    live = copy.deepcopy(MANIFEST)
    live["spec"]["template"]["spec"]["containers"].append({"name": "sidecar"})
    assert drift(MANIFEST, live) == ".spec.template.spec.containers"


def test_drift_accepts_normalised_quantities_only_when_equal() -> None:
    live = copy.deepcopy(MANIFEST)
    live["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] = {
        "cpu": "1", "memory": "1Gi"}
    assert drift(MANIFEST, live) is None
    live["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = "2"
    assert drift(MANIFEST, live) == ".spec.template.spec.containers[0].resources.limits.cpu"


def test_desired_hash_changes_when_a_field_is_dropped_and_ignores_key_order() -> None:
    reordered = {"spec": MANIFEST["spec"], "metadata": MANIFEST["metadata"],
                 "kind": "Deployment", "apiVersion": "apps/v1"}
    assert desired_hash(reordered) == desired_hash(MANIFEST)
    dropped = copy.deepcopy(MANIFEST)
    del dropped["spec"]["replicas"]
    assert desired_hash(dropped) != desired_hash(MANIFEST)
    # A manifest without a field is a subset of the live one that still has it: only the
    # hash annotation reveals the change, so drift() must see a different annotation.
    live = with_hash(MANIFEST)
    assert drift(with_hash(dropped), live) == f".metadata.annotations.{DESIRED_HASH_ANNOTATION}"
    assert with_hash(MANIFEST)["metadata"]["annotations"][DESIRED_HASH_ANNOTATION] == \
        desired_hash(with_hash(MANIFEST))


def test_owned_by_and_selector() -> None:
    obj = {"metadata": {"ownerReferences": [{"uid": "u1"}, {"uid": "u2"}]}}
    assert owned_by(obj, "u2") and not owned_by(obj, "u3") and not owned_by(obj, None)
    assert not owned_by({"metadata": {}}, "u1")
    assert instance_selector("x") == ("app.kubernetes.io/managed-by=reranker-operator,"
                                      "app.kubernetes.io/instance=x")


def _deployment(phase: str | None, replicas: int = 2, generation: int = 1) -> dict:
    dep = {"metadata": {"name": "r", "generation": generation}, "spec": {"replicas": replicas}}
    if phase is not None:
        dep["status"] = deployment_status(dep, phase)
    return dep


def _pod(phase: str) -> dict:
    spec = {"initContainers": [{"name": "model-download"}], "containers": [{"name": "reranker"}]}
    return {"metadata": {"name": "p"}, "status": pod_status(spec, phase)}


def _reasons(conditions: list[st.Condition]) -> dict[str, tuple[bool, str]]:
    return {c.type: (c.status, c.reason) for c in conditions}


@pytest.mark.parametrize("phase,pods,expected", [
    (None, [], {"Ready": (False, "DeploymentProgressing"),
                "Progressing": (True, "DeploymentProgressing"),
                "Degraded": (False, "DeploymentProgressing")}),
    ("init", ["init"], {"Ready": (False, "ModelDownloading"),
                        "Progressing": (True, "ModelDownloading"),
                        "Degraded": (False, "ModelDownloading")}),
    ("starting", ["starting"], {"Ready": (False, "DeploymentProgressing"),
                                "Progressing": (True, "DeploymentProgressing"),
                                "Degraded": (False, "DeploymentProgressing")}),
    ("ready", ["ready"], {"Ready": (True, "Available"), "Progressing": (False, "Available"),
                          "Degraded": (False, "Available")}),
    ("failed", ["failed"], {"Ready": (False, "DeploymentUnavailable"),
                            "Progressing": (False, "DeploymentUnavailable"),
                            "Degraded": (True, "DeploymentUnavailable")}),
])
def test_rollout_conditions(phase: str | None, pods: list[str], expected: dict) -> None:
    rollout = st.Rollout.of(_deployment(phase), [_pod(p) for p in pods])
    assert _reasons(st.rollout_conditions(rollout)) == expected


def test_a_new_generation_is_progressing_until_observed() -> None:
    dep = _deployment("ready", generation=1)
    dep["metadata"]["generation"] = 2  # spec changed, controller has not caught up
    assert _reasons(st.rollout_conditions(st.Rollout.of(dep, [])))["Progressing"] == (
        True, "DeploymentProgressing")
    # The old replicas still serve, so Ready stays True during the rolling update.
    assert _reasons(st.rollout_conditions(st.Rollout.of(dep, [])))["Ready"] == (True, "Available")


def test_replicas_lost_after_a_complete_rollout_is_degraded() -> None:
    dep = _deployment("ready")
    dep["status"].update(readyReplicas=1, availableReplicas=1)
    assert _reasons(st.rollout_conditions(st.Rollout.of(dep, []))) == {
        "Ready": (False, "DeploymentUnavailable"), "Progressing": (False, "DeploymentUnavailable"),
        "Degraded": (True, "DeploymentUnavailable")}


def test_pods_initializing() -> None:
    assert st.pods_initializing([_pod("init")])
    assert not st.pods_initializing([_pod("starting"), _pod("ready")])
    failed_init = _pod("starting")
    failed_init["status"]["initContainerStatuses"][0]["state"] = {"terminated": {"exitCode": 1}}
    assert st.pods_initializing([failed_init])


def test_transition_time_moves_only_when_the_status_flips() -> None:
    old = [{"type": "Ready", "status": "False", "reason": "ModelDownloading",
            "lastTransitionTime": "2020-01-01T00:00:00Z"}]
    same = st.with_transition_times([st.Condition("Ready", False, "DeploymentProgressing", "m")],
                                    old, "2030-01-01T00:00:00Z")
    assert same[0]["lastTransitionTime"] == "2020-01-01T00:00:00Z"
    flipped = st.with_transition_times([st.Condition("Ready", True, "Available", "m")],
                                       old, "2030-01-01T00:00:00Z")
    assert flipped[0]["lastTransitionTime"] == "2030-01-01T00:00:00Z"
    assert flipped[0] == {"type": "Ready", "status": "True", "reason": "Available",
                          "message": "m", "lastTransitionTime": "2030-01-01T00:00:00Z"}


def test_status_patch_is_none_when_nothing_changed() -> None:
    current = {"replicas": 1, "conditions": [{"type": "Ready"}], "other": "kept"}
    assert st.status_patch(current, {"replicas": 1, "conditions": [{"type": "Ready"}]}) is None
    assert st.status_patch(current, {"replicas": 2, "conditions": [{"type": "Ready"}]}) == {
        "replicas": 2}


def test_events_on_transitions() -> None:
    old = [{"type": "Ready", "status": "False", "reason": "ModelDownloading"},
           {"type": "Degraded", "status": "False", "reason": "ModelDownloading"}]
    new = [{"type": "Ready", "status": "True", "reason": "Available", "message": "ok"},
           {"type": "Degraded", "status": "False", "reason": "Available", "message": "ok"}]
    assert st.transitions(old, new) == [("Normal", "Available", "Ready=True: ok")]
    assert st.transitions(new, new) == []
    bad = [{"type": "Ready", "status": "False", "reason": "InvalidSpec", "message": "spec.x"},
           {"type": "Degraded", "status": "True", "reason": "InvalidSpec", "message": "spec.x"}]
    assert st.transitions(new, bad) == [("Warning", "InvalidSpec", "Ready=False: spec.x"),
                                        ("Warning", "InvalidSpec", "Degraded=True: spec.x")]


def test_ready_status_fields() -> None:
    cr = {"metadata": {"name": "r", "namespace": "ns", "generation": 3},
          "spec": {"model": {"name": "BAAI/bge-reranker-base"}, "service": {"port": 9000}}}
    status = st.ready_status(cr, _deployment("ready", replicas=3), [],
                             optional_apis={"PrometheusRule": False, "ServiceMonitor": True},
                             now="2030-01-01T00:00:00Z")
    assert {k: v for k, v in status.items() if k != "conditions"} == {
        "observedGeneration": 3, "replicas": 3, "readyReplicas": 3, "replicaSummary": "3/3",
        "selector": "app.kubernetes.io/name=reranker,app.kubernetes.io/instance=r",
        "endpoint": "http://r.ns.svc.cluster.local:9000", "model": "BAAI/bge-reranker-base"}
    types = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert types["Ready"] == ("True", "Available")
    assert types["ServiceMonitor"] == ("False", "ServiceMonitorCRDMissing")
    assert types["PrometheusRule"] == ("True", "Available")
    assert [c["type"] for c in status["conditions"]] == [
        "Ready", "Progressing", "Degraded", "ServiceMonitor", "PrometheusRule"]
    plain = st.ready_status(cr, _deployment("ready", replicas=3), [], now="2030-01-01T00:00:00Z")
    assert [c["type"] for c in plain["conditions"]] == ["Ready", "Progressing", "Degraded"]


@pytest.mark.parametrize("kind", ["ServiceMonitor", "PrometheusRule"])
def test_missing_optional_api_condition_and_warning(kind: str) -> None:
    missing = st.optional_api_condition(kind, True)
    assert (missing.type, missing.status, missing.reason) == (kind, False, f"{kind}CRDMissing")
    assert f"monitoring.coreos.com/v1 {kind} API is not served" in missing.message
    assert "Ready is not affected" in missing.message
    ok = st.optional_api_condition(kind, False)
    assert (ok.status, ok.reason) == (True, "Available")
    new = [{"type": kind, "status": "False", "reason": missing.reason, "message": "m"}]
    assert st.transitions([], new) == [("Warning", missing.reason, f"{kind}=False: m")]
    assert st.transitions([], [{**new[0], "status": "True", "reason": "Available"}]) == []


def test_config_from_env() -> None:
    assert OperatorConfig.from_env({}) == OperatorConfig()
    assert OperatorConfig.from_env({"RERANKER_RESYNC_SECONDS": "2.5"}).resync_seconds == 2.5
    with pytest.raises(ValueError, match="RERANKER_RESYNC_SECONDS"):
        OperatorConfig.from_env({"RERANKER_RESYNC_SECONDS": "soon"})
    with pytest.raises(ValueError, match="RERANKER_RETRY_SECONDS"):
        OperatorConfig.from_env({"RERANKER_RETRY_SECONDS": "0"})


@pytest.mark.parametrize("kwargs,field", [
    ({"namespaces": ["a"], "all_namespaces": True, "standalone": True, "peering": None},
     "namespaces"),
    ({"namespaces": [], "all_namespaces": False, "standalone": True, "peering": None},
     "namespaces"),
    ({"namespaces": ["a"], "all_namespaces": False, "standalone": True, "peering": "p"},
     "peering"),
])
def test_run_rejects_contradictory_arguments(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}:"):
        run(liveness=None, verbose=False, **kwargs)


def test_kopf_settings_keep_state_out_of_status_and_stop_timers_promptly() -> None:
    import kopf
    from reranker_operator.runner import build_settings

    settings = build_settings()
    assert isinstance(settings.persistence.progress_storage, kopf.AnnotationsProgressStorage)
    assert isinstance(settings.persistence.diffbase_storage, kopf.AnnotationsDiffBaseStorage)
    assert settings.persistence.finalizer == "rerankers.io/kopf-finalizer"
    # kopf's default would re-check a stopping resync timer only once a minute, holding up
    # the deletion of a RerankerService whose pass was in flight.
    assert settings.background.cancellation_polling <= 1.0
    assert settings.scanning.disabled is False and build_settings(scanning=False).scanning.disabled


def _api_server_normalised(obj: Any) -> Any:
    """What a real API server hands back for a manifest: quantities in canonical form (written
    here by hand per value), numbers in quantity fields as strings, int ports kept as given but
    numeric-string ports read back as ints, and empty values dropped (Go `omitempty`)."""
    canonical = {"1000m": "1", "2000m": "2", "1024Mi": "1Gi", "2048Mi": "2Gi", "500m": "500m"}
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            if value in ("", [], {}, None):
                continue
            if key in ("requests", "limits") and isinstance(value, dict):
                out[key] = {k: canonical.get(str(v), str(v)) for k, v in value.items()}
            elif key in ("targetPort", "port", "containerPort") and isinstance(value, str) \
                    and value.isdigit():
                out[key] = int(value)
            else:
                out[key] = _api_server_normalised(value)
        return out
    if isinstance(obj, list):
        return [_api_server_normalised(v) for v in obj]
    return obj


NORMALISED = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "r", "namespace": "default", "annotations": {}},
    "spec": {"template": {"spec": {
        "containers": [{"name": "c", "image": "img:1", "args": [],
                        "env": [{"name": "EMPTY", "value": ""}],
                        "ports": [{"name": "http", "containerPort": "8080"}],
                        "resources": {"requests": {"cpu": "1000m", "memory": "1024Mi"},
                                      "limits": {"cpu": 2, "memory": "2048Mi"}}}]}},
             "strategy": {}},
}
SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "r"},
           "spec": {"ports": [{"name": "http", "port": 8080, "targetPort": "8080"}]}}


@pytest.mark.parametrize("manifest", [NORMALISED, SERVICE], ids=["deployment", "service"])
def test_the_api_servers_normalisation_is_not_drift(manifest: dict) -> None:
    """A resync must not write just because the server spells our values differently."""
    live = _api_server_normalised(copy.deepcopy(manifest))
    assert live != manifest  # the normalisation really changed something
    assert drift(manifest, live) is None


def test_real_changes_behind_normalised_fields_are_still_drift() -> None:
    live = _api_server_normalised(copy.deepcopy(NORMALISED))
    container = ".spec.template.spec.containers[0]"
    edits = [
        (lambda o: o["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]
         .update(cpu="2"), f"{container}.resources.requests.cpu"),
        (lambda o: o["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
         .update(memory="2Gi1"), f"{container}.resources.limits.memory"),
        (lambda o: o["spec"]["template"]["spec"]["containers"][0]["ports"][0]
         .update(containerPort=8081), f"{container}.ports[0].containerPort"),
        (lambda o: o["spec"]["template"]["spec"]["containers"][0]["env"][0]
         .update(value="x"), f"{container}.env[0].value"),
    ]
    for edit, path in edits:
        edited = copy.deepcopy(live)
        edit(edited)
        assert drift(NORMALISED, edited) == path
    # Only ports and quantities compare across types: elsewhere "1" is not 1, nor True 1.
    assert drift({"spec": {"replicas": 1}}, {"spec": {"replicas": "1"}}) == ".spec.replicas"
    assert drift({"a": {"value": "1000m"}}, {"a": {"value": "1"}}) == ".a.value"
    assert drift({"a": True}, {"a": 1}) == ".a"
