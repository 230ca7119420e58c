"""One table of child kinds (reranker_operator.render.kinds): the renderer, the handlers, RBAC, the
status and the emulator all take their kinds from it."""

from __future__ import annotations

from importlib import resources

from reranker_devtools.devcluster import DevCluster
from reranker_operator.controller import status as st
from reranker_operator.controller.kube import API_PERMISSIONS, ref_for
from reranker_operator.render.kinds import (
    CHILD_KINDS,
    CHILDREN,
    OPTIONAL_KINDS,
    child_kind,
    kind_named,
)


def test_every_child_has_a_template_and_a_params_builder() -> None:
    root = resources.files("reranker_templates")
    for child in CHILDREN:
        assert root.joinpath(child.template).is_file(), child.template
        assert child.kind in CHILD_KINDS, child.role
    assert len({c.role for c in CHILDREN}) == len(CHILDREN)
    assert {c.kind for c in CHILDREN} == set(CHILD_KINDS)
    assert len({k.kind for k in CHILD_KINDS}) == len(CHILD_KINDS)
    assert child_kind("apps/v1", "Deployment") is kind_named("Deployment")
    assert ref_for("apps/v1", "Deployment").path("ns", "d") == (
        "/apis/apps/v1/namespaces/ns/deployments/d"
    )


def test_every_kind_is_permitted() -> None:
    rules = {(p.group, p.resource): set(p.verbs) for p in API_PERMISSIONS}
    for kind in CHILD_KINDS:  # watched: see test_kubectl_rbac_probe
        assert {"list", "watch", "patch", "delete"} <= rules[(kind.group, kind.plural)], kind


def test_optional_kinds_give_their_conditions_and_can_be_left_unserved() -> None:
    optional = (
        "ResourceClaimTemplate",
        "ScaledObject",
        "InterceptorRoute",
        "HTTPScaledObject",
        "ServiceMonitor",
        "PrometheusRule",
    )
    assert tuple(k.kind for k in OPTIONAL_KINDS) == optional
    assert st.CONDITION_TYPES[4:-1] == st.OPTIONAL_CONDITIONS == optional
    assert st.CONDITION_TYPES[3] == st.MODEL_CACHE
    assert st.CONDITION_TYPES[-1] == st.SCALED_TO_ZERO
    for kind in OPTIONAL_KINDS:
        assert st.optional_api_condition(kind.kind, True).reason == kind.optional.missing_reason
    with DevCluster(unserved=[k.kind for k in OPTIONAL_KINDS]) as cluster:
        served = {(r.group, r.plural) for r in cluster.emulator.resources}
        assert not [k for k in OPTIONAL_KINDS if (k.group, k.plural) in served]
        assert all((k.group, k.plural) in served for k in CHILD_KINDS if not k.optional)
