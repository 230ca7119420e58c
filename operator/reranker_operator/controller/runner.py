"""Start kopf with our handlers and settings (`reranker-operator run` calls `run`)."""

from __future__ import annotations

import dataclasses
import logging
import random

import kopf

from reranker_operator.api.constants import CRD_GROUP
from reranker_operator.controller.handlers import Controller, OperatorConfig, register


def build_settings(*, scanning: bool = True) -> kopf.OperatorSettings:
    """kopf settings: progress and diff-base in our annotations (never in .status), our own
    finalizer name, only warnings posted as Events (our transitions are posted explicitly, so a
    steady state writes nothing), and a prompt stop of the resync timer on deletion."""
    settings = kopf.OperatorSettings()
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=CRD_GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=CRD_GROUP, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{CRD_GROUP}/kopf-finalizer"
    settings.posting.level = logging.WARNING
    # Deleting a RerankerService waits for its resync timer to stop: let a pass in flight
    # finish (instant exit), then re-check every second instead of kopf's default minute.
    settings.background.instant_exit_timeout = 5.0
    settings.background.cancellation_polling = 1.0
    settings.scanning.disabled = not scanning
    return settings


def build(
    config: OperatorConfig | None = None,
    *,
    scanning: bool = True,
) -> tuple[kopf.OperatorRegistry, kopf.OperatorSettings, Controller]:
    """A registry holding our handlers, the settings, and the handlers' shared Controller."""
    registry = kopf.OperatorRegistry()
    controller = register(registry, config or OperatorConfig.from_env())
    return registry, build_settings(scanning=scanning), controller


PRIORITY_RANGE = (1, 2**31 - 1)


def peering_priority(priority: int | None, peering: str | None) -> int | None:
    """The kopf priority of this replica: the given one, else a random one when peered.

    kopf pauses every peer on a priority tie, so replicas must not share the default 0.
    """
    if priority is not None:
        if not isinstance(priority, int) or isinstance(priority, bool):
            raise ValueError(f"priority: must be an integer, not {priority!r}")
        return priority
    if peering is None:
        return None
    return random.SystemRandom().randint(*PRIORITY_RANGE)


def run(
    namespaces: list[str] | None,
    all_namespaces: bool,
    liveness: str | None,
    standalone: bool,
    peering: str | None,
    verbose: bool,
    priority: int | None = None,
    metrics_address: str | None = None,
) -> None:
    """Run the operator until it is signalled to stop.

    namespaces: watch only these; all_namespaces: watch the whole cluster (exactly one of the
    two); liveness: e.g. "http://0.0.0.0:8080/healthz"; standalone: no peering; peering: the
    KopfPeering name for several replicas (active/standby), created at start-up when missing;
    verbose: debug logging; priority: kopf peering priority (default: random when peered);
    metrics_address: "HOST:PORT" where /metrics and /readyz are served (None: not served).
    """
    if namespaces and all_namespaces:
        raise ValueError("namespaces: give either namespaces or all_namespaces, not both")
    if not namespaces and not all_namespaces:
        raise ValueError("namespaces: give at least one namespace, or all_namespaces=True")
    if standalone and peering:
        raise ValueError("peering: a standalone operator takes no peering name")
    config = dataclasses.replace(
        OperatorConfig.from_env(),
        namespaces=tuple(namespaces or ()),
        metrics_address=metrics_address,
    )
    registry, settings, _controller = build(config)
    kopf.configure(verbose=verbose, debug=verbose)
    kopf.run(
        registry=registry,
        settings=settings,
        standalone=standalone or peering is None,
        peering_name=peering,
        namespaces=list(namespaces or []),
        clusterwide=all_namespaces,
        liveness_endpoint=liveness,
        priority=peering_priority(priority, None if standalone else peering),
    )
