"""Pure pieces of the reconciler: drift judged by owned fields, the freshest body, status
conditions, events, configuration and the runner's argument checks."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from reranker_devtools.devcluster import deployment_status, pod_status
from reranker_operator.controller import status as st
from reranker_operator.controller.drift import drift, owned_fields
from reranker_operator.controller.handlers import Controller, OperatorConfig, newest
from reranker_operator.controller.reconcile import apply_needed, instance_selector, owned_by
from reranker_operator.controller.runner import run
from reranker_operator.render.service import parse_service

MANIFEST = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "r", "namespace": "default", "labels": {"a": "1"}},
    "spec": {
        "replicas": 2,
        "template": {
            "spec": {
                "containers": [
                    {
                        "name": "c",
                        "image": "img:1",
                        "resources": {"limits": {"cpu": "1000m", "memory": "1024Mi"}},
                    }
                ]
            }
        },
    },
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
        "cpu": "1",
        "memory": "1Gi",
    }
    assert drift(MANIFEST, live) is None
    live["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = "2"
    assert drift(MANIFEST, live) == ".spec.template.spec.containers[0].resources.limits.cpu"


# What a real API server records for MANIFEST applied by us: leaves and keyed list items, no
# name / namespace / apiVersion / kind (stripped), "." on an item that also has fields.
OWNED = {
    "f:metadata": {"f:labels": {"f:a": {}}},
    "f:spec": {
        "f:replicas": {},
        "f:template": {
            "f:spec": {
                "f:containers": {
                    'k:{"name":"c"}': {
                        ".": {},
                        "f:image": {},
                        "f:name": {},
                        "f:resources": {"f:limits": {"f:cpu": {}, "f:memory": {}}},
                    }
                }
            }
        },
    },
}


def test_a_field_we_stopped_setting_is_drift_by_ownership() -> None:
    # A manifest without a field is a subset of the live object that still has it: only the
    # fields we own reveal that applying it would remove the field.
    dropped = copy.deepcopy(MANIFEST)
    del dropped["spec"]["replicas"]
    assert drift(MANIFEST, MANIFEST, OWNED) is None
    assert drift(dropped, MANIFEST, OWNED) == ".spec.replicas"
    assert drift(dropped, MANIFEST) is None  # values alone cannot tell
    no_container = copy.deepcopy(MANIFEST)
    no_container["spec"]["template"]["spec"]["containers"] = []
    assert drift(no_container, MANIFEST, OWNED) == ".spec.template.spec.containers"


def _with_mesh_sidecar(obj: dict) -> dict:
    """`obj` as a mesh webhook (another field manager) leaves it: a sidecar container, an env
    var and a volume mount in ours, a volume, an annotation, a defaulted field."""
    out = copy.deepcopy(obj)
    pod = out["spec"]["template"]["spec"]
    pod["containers"].insert(0, {"name": "mesh-proxy", "image": "mesh:1"})
    ours = pod["containers"][1]
    ours["env"] = [{"name": "MESH", "value": "on"}]
    ours["volumeMounts"] = [{"name": "mesh-certs", "mountPath": "/certs"}]
    ours["terminationMessagePath"] = "/dev/termination-log"
    pod["volumes"] = [{"name": "mesh-certs", "emptyDir": {}}]
    out["metadata"]["annotations"] = {"mesh/injected": "true"}
    return out


def test_what_other_managers_add_is_not_drift() -> None:
    live = _with_mesh_sidecar(MANIFEST)
    assert drift(MANIFEST, live, OWNED) is None
    assert drift(MANIFEST, live) == ".spec.template.spec.containers"  # by value it differs
    live["spec"]["template"]["spec"]["containers"][1]["image"] = "img:2"
    assert drift(MANIFEST, live, OWNED) == ".spec.template.spec.containers[0].image"


def test_fields_we_set_but_do_not_own_are_drift() -> None:
    # Someone else changed our replicas (ownership moved to them), even back to our value.
    taken = copy.deepcopy(OWNED)
    del taken["f:spec"]["f:replicas"]
    assert drift(MANIFEST, MANIFEST, taken) == ".spec.replicas"
    gone = copy.deepcopy(OWNED)
    gone["f:spec"]["f:template"]["f:spec"]["f:containers"] = {'k:{"name":"other"}': {}}
    assert drift(MANIFEST, MANIFEST, gone) == ".spec.template.spec.containers[0]"
    assert apply_needed(MANIFEST, MANIFEST) == ".metadata.managedFields"  # nothing owned yet
    live = dict(
        MANIFEST,
        metadata={
            **MANIFEST["metadata"],
            "managedFields": [
                {
                    "manager": "reranker-operator",
                    "operation": "Apply",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": OWNED,
                }
            ],
        },
    )
    assert owned_fields(live, "reranker-operator") == OWNED
    assert apply_needed(MANIFEST, live) is None


def test_keyed_items_match_across_port_spellings_and_atomic_lists_by_value() -> None:
    want = {
        "spec": {
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "args": ["a"],
            "finalizers": ["x"],
        }
    }
    owned = {
        "f:spec": {
            "f:ports": {
                'k:{"port":8080,"protocol":"TCP"}': {
                    ".": {},
                    "f:name": {},
                    "f:port": {},
                    "f:protocol": {},
                }
            },
            "f:args": {},
            "f:finalizers": {'v:"x"': {}},
        }
    }
    live = {
        "spec": {
            "ports": [
                {"name": "metrics", "port": 9090, "protocol": "TCP"},
                {"name": "http", "port": "8080", "protocol": "TCP"},
            ],
            "args": ["a"],
            "finalizers": ["y", "x"],
        }
    }
    assert drift(want, live, owned) is None
    live["spec"]["args"] = ["a", "b"]  # an atomic list we own is compared whole
    assert drift(want, live, owned) == ".spec.args"
    live["spec"]["args"] = ["a"]
    live["spec"]["finalizers"] = ["y"]
    assert drift(want, live, owned) == ".spec.finalizers[0]"


def test_only_the_exact_echo_of_our_apply_is_skipped() -> None:
    ctl = Controller(OperatorConfig())
    ctl.applied[("Deployment", "ns", "d")] = "7"

    def event(rv: str) -> dict:
        return {
            "kind": "Deployment",
            "metadata": {"namespace": "ns", "name": "d", "resourceVersion": rv},
        }

    assert not ctl.echo(event("8"))  # someone else's write after ours: a pass
    assert ctl.echo(event("7")) and ctl.echoes == 1
    assert not ctl.echo(event("7"))  # once only
    assert not ctl.echo(
        {"kind": "Service", "metadata": {"namespace": "ns", "name": "d", "resourceVersion": "7"}}
    )


def test_the_freshest_body_wins_by_resource_version() -> None:
    def body(rv: str) -> dict:
        return {"metadata": {"name": "r", "resourceVersion": rv}}

    assert newest([body("5"), body("7")], None)["metadata"]["resourceVersion"] == "7"
    assert newest([body("5")], body("6"))["metadata"]["resourceVersion"] == "6"
    assert newest([body("8")], body("6"))["metadata"]["resourceVersion"] == "8"
    assert newest([], body("6")) is None  # kopf no longer sees it: deleted
    assert newest([body("opaque")], body("6"))["metadata"]["resourceVersion"] == "opaque"


def test_owned_by_and_selector() -> None:
    obj = {"metadata": {"ownerReferences": [{"uid": "u1"}, {"uid": "u2"}]}}
    assert owned_by(obj, "u2") and not owned_by(obj, "u3") and not owned_by(obj, None)
    assert not owned_by({"metadata": {}}, "u1")
    assert instance_selector("x") == (
        "app.kubernetes.io/managed-by=reranker-operator,app.kubernetes.io/instance=x"
    )


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


@pytest.mark.parametrize(
    "phase,pods,expected",
    [
        (
            None,
            [],
            {
                "Ready": (False, "DeploymentProgressing"),
                "Progressing": (True, "DeploymentProgressing"),
                "Degraded": (False, "DeploymentProgressing"),
            },
        ),
        (
            "init",
            ["init"],
            {
                "Ready": (False, "ModelDownloading"),
                "Progressing": (True, "ModelDownloading"),
                "Degraded": (False, "ModelDownloading"),
            },
        ),
        (
            "starting",
            ["starting"],
            {
                "Ready": (False, "DeploymentProgressing"),
                "Progressing": (True, "DeploymentProgressing"),
                "Degraded": (False, "DeploymentProgressing"),
            },
        ),
        (
            "ready",
            ["ready"],
            {
                "Ready": (True, "Available"),
                "Progressing": (False, "Available"),
                "Degraded": (False, "Available"),
            },
        ),
        (
            "failed",
            ["failed"],
            {
                "Ready": (False, "DeploymentUnavailable"),
                "Progressing": (False, "DeploymentUnavailable"),
                "Degraded": (True, "DeploymentUnavailable"),
            },
        ),
    ],
)
def test_rollout_conditions(phase: str | None, pods: list[str], expected: dict) -> None:
    rollout = st.Rollout.of(_deployment(phase), [_pod(p) for p in pods])
    assert _reasons(st.rollout_conditions(rollout)) == expected


def test_a_new_generation_is_progressing_until_observed() -> None:
    dep = _deployment("ready", generation=1)
    dep["metadata"]["generation"] = 2  # spec changed, controller has not caught up
    assert _reasons(st.rollout_conditions(st.Rollout.of(dep, [])))["Progressing"] == (
        True,
        "DeploymentProgressing",
    )
    # The old replicas still serve, so Ready stays True during the rolling update.
    assert _reasons(st.rollout_conditions(st.Rollout.of(dep, [])))["Ready"] == (True, "Available")


def test_replicas_lost_after_a_complete_rollout_is_degraded() -> None:
    dep = _deployment("ready")
    dep["status"].update(readyReplicas=1, availableReplicas=1)
    assert _reasons(st.rollout_conditions(st.Rollout.of(dep, []))) == {
        "Ready": (False, "DeploymentUnavailable"),
        "Progressing": (False, "DeploymentUnavailable"),
        "Degraded": (True, "DeploymentUnavailable"),
    }


def test_pods_initializing() -> None:
    assert st.pods_initializing([_pod("init")])
    assert not st.pods_initializing([_pod("starting"), _pod("ready")])
    failed_init = _pod("starting")
    failed_init["status"]["initContainerStatuses"][0]["state"] = {"terminated": {"exitCode": 1}}
    assert st.pods_initializing([failed_init])


def test_transition_time_moves_only_when_the_status_flips() -> None:
    old = [
        {
            "type": "Ready",
            "status": "False",
            "reason": "ModelDownloading",
            "lastTransitionTime": "2020-01-01T00:00:00Z",
        }
    ]
    same = st.with_transition_times(
        [st.Condition("Ready", False, "DeploymentProgressing", "m")], old, "2030-01-01T00:00:00Z"
    )
    assert same[0]["lastTransitionTime"] == "2020-01-01T00:00:00Z"
    flipped = st.with_transition_times(
        [st.Condition("Ready", True, "Available", "m")], old, "2030-01-01T00:00:00Z"
    )
    assert flipped[0]["lastTransitionTime"] == "2030-01-01T00:00:00Z"
    assert flipped[0] == {
        "type": "Ready",
        "status": "True",
        "reason": "Available",
        "message": "m",
        "lastTransitionTime": "2030-01-01T00:00:00Z",
    }


def test_status_patch_is_none_when_nothing_changed() -> None:
    current = {"replicas": 1, "conditions": [{"type": "Ready"}], "other": "kept"}
    assert st.status_patch(current, {"replicas": 1, "conditions": [{"type": "Ready"}]}) is None
    assert st.status_patch(current, {"replicas": 2, "conditions": [{"type": "Ready"}]}) == {
        "replicas": 2
    }


def test_events_on_transitions() -> None:
    old = [
        {"type": "Ready", "status": "False", "reason": "ModelDownloading"},
        {"type": "Degraded", "status": "False", "reason": "ModelDownloading"},
    ]
    new = [
        {"type": "Ready", "status": "True", "reason": "Available", "message": "ok"},
        {"type": "Degraded", "status": "False", "reason": "Available", "message": "ok"},
    ]
    assert st.transitions(old, new) == [("Normal", "Available", "Ready=True: ok")]
    assert st.transitions(new, new) == []
    bad = [
        {"type": "Ready", "status": "False", "reason": "InvalidSpec", "message": "spec.x"},
        {"type": "Degraded", "status": "True", "reason": "InvalidSpec", "message": "spec.x"},
    ]
    assert st.transitions(new, bad) == [
        ("Warning", "InvalidSpec", "Ready=False: spec.x"),
        ("Warning", "InvalidSpec", "Degraded=True: spec.x"),
    ]


def test_ready_status_fields() -> None:
    cr = {
        "metadata": {"name": "r", "namespace": "ns", "generation": 3},
        "spec": {"model": {"name": "BAAI/bge-reranker-base"}, "service": {"port": 9000}},
    }
    svc = parse_service(cr)
    facts = {
        "generation": svc.generation,
        "model": svc.spec.model.name,
        "endpoint": svc.endpoint,
        "selector": svc.selector,
        "previous": [],
        "now": "2030-01-01T00:00:00Z",
    }
    rollout = st.Rollout.of(_deployment("ready", replicas=3), [])
    status = st.ready_status(
        rollout, **facts, optional_apis={"PrometheusRule": False, "ServiceMonitor": True}
    )
    assert {k: v for k, v in status.items() if k != "conditions"} == {
        "observedGeneration": 3,
        "replicas": 3,
        "readyReplicas": 3,
        "replicaSummary": "3/3",
        "selector": "app.kubernetes.io/name=reranker,app.kubernetes.io/instance=r",
        "endpoint": "http://r.ns.svc.cluster.local:9000",
        "model": "BAAI/bge-reranker-base",
    }
    types = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert types["Ready"] == ("True", "Available")
    assert types["ServiceMonitor"] == ("False", "ServiceMonitorCRDMissing")
    assert types["PrometheusRule"] == ("True", "Available")
    assert [c["type"] for c in status["conditions"]] == [
        "Ready",
        "Progressing",
        "Degraded",
        "ServiceMonitor",
        "PrometheusRule",
    ]
    plain = st.ready_status(rollout, **facts, optional_apis={})
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


@pytest.mark.parametrize(
    "kwargs,field",
    [
        (
            {"namespaces": ["a"], "all_namespaces": True, "standalone": True, "peering": None},
            "namespaces",
        ),
        (
            {"namespaces": [], "all_namespaces": False, "standalone": True, "peering": None},
            "namespaces",
        ),
        (
            {"namespaces": ["a"], "all_namespaces": False, "standalone": True, "peering": "p"},
            "peering",
        ),
    ],
)
def test_run_rejects_contradictory_arguments(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}:"):
        run(liveness=None, verbose=False, **kwargs)


def test_kopf_settings_keep_state_out_of_status_and_stop_timers_promptly() -> None:
    import kopf

    from reranker_operator.controller.runner import build_settings

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
            elif (
                key in ("targetPort", "port", "containerPort")
                and isinstance(value, str)
                and value.isdigit()
            ):
                out[key] = int(value)
            else:
                out[key] = _api_server_normalised(value)
        return out
    if isinstance(obj, list):
        return [_api_server_normalised(v) for v in obj]
    return obj


NORMALISED = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "r", "namespace": "default", "annotations": {}},
    "spec": {
        "template": {
            "spec": {
                "containers": [
                    {
                        "name": "c",
                        "image": "img:1",
                        "args": [],
                        "env": [{"name": "EMPTY", "value": ""}],
                        "ports": [{"name": "http", "containerPort": "8080"}],
                        "resources": {
                            "requests": {"cpu": "1000m", "memory": "1024Mi"},
                            "limits": {"cpu": 2, "memory": "2048Mi"},
                        },
                    }
                ]
            }
        },
        "strategy": {},
    },
}
SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "r"},
    "spec": {"ports": [{"name": "http", "port": 8080, "targetPort": "8080"}]},
}


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
        (
            lambda o: o["spec"]["template"]["spec"]["containers"][0]["resources"][
                "requests"
            ].update(cpu="2"),
            f"{container}.resources.requests.cpu",
        ),
        (
            lambda o: o["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"].update(
                memory="2Gi1"
            ),
            f"{container}.resources.limits.memory",
        ),
        (
            lambda o: o["spec"]["template"]["spec"]["containers"][0]["ports"][0].update(
                containerPort=8081
            ),
            f"{container}.ports[0].containerPort",
        ),
        (
            lambda o: o["spec"]["template"]["spec"]["containers"][0]["env"][0].update(value="x"),
            f"{container}.env[0].value",
        ),
    ]
    for edit, path in edits:
        edited = copy.deepcopy(live)
        edit(edited)
        assert drift(NORMALISED, edited) == path
    # Only ports and quantities compare across types: elsewhere "1" is not 1, nor True 1.
    assert drift({"spec": {"replicas": 1}}, {"spec": {"replicas": "1"}}) == ".spec.replicas"
    assert drift({"a": {"value": "1000m"}}, {"a": {"value": "1"}}) == ".a.value"
    assert drift({"a": True}, {"a": 1}) == ".a"
