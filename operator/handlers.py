"""kopf wiring: which events start a reconcile pass of a RerankerService.

- create / update / resume of a RerankerService, and a resync timer, run a pass;
- any event on a child (or one of its pods) labelled as ours runs a pass of its parent, so a
  Deployment's status flows into the parent's status and hand edits or deletions are reverted;
- a liveness probe reports the passes done and the last failure.

`register(registry, config)` adds the handlers to a registry (the resync interval is part of the
config, so tests can make it short). Passes of one RerankerService never overlap and bursts of
child events are coalesced into one pass.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf
from reranker_operator.constants import (
    CHILD_RESOURCES,
    CRD_GROUP,
    CRD_PLURAL,
    CRD_VERSION,
    LABEL_INSTANCE,
    LABEL_MANAGED_BY,
    MANAGER,
)
from reranker_operator.kube import (
    RERANKER_SERVICES,
    KubeApiError,
    KubeClient,
    connection_info,
)
from reranker_operator.peering import ensure_peering
from reranker_operator.reconcile import ApiDiscovery, PassOutcome, reconcile_service


@dataclass
class OperatorConfig:
    """Tunables; `from_env` reads RERANKER_RESYNC_SECONDS, RERANKER_DISCOVERY_TTL_SECONDS,
    RERANKER_RETRY_SECONDS."""

    resync_seconds: float = 60.0
    discovery_ttl_seconds: float = 30.0
    retry_seconds: float = 10.0
    kubeconfig: str | None = None
    namespaces: tuple[str, ...] = ()  # where a namespaced --peering creates its KopfPeering

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorConfig:
        env = os.environ if env is None else env
        values = {}
        for attr, var in (("resync_seconds", "RERANKER_RESYNC_SECONDS"),
                          ("discovery_ttl_seconds", "RERANKER_DISCOVERY_TTL_SECONDS"),
                          ("retry_seconds", "RERANKER_RETRY_SECONDS")):
            if env.get(var):
                try:
                    values[attr] = float(env[var])
                except ValueError as exc:
                    raise ValueError(f"{var} must be a number of seconds, not {env[var]!r}") from exc
                if values[attr] <= 0:
                    raise ValueError(f"{var} must be positive, not {env[var]!r}")
        return cls(**values)


@dataclass
class Controller:
    """What the handlers share: the API client, discovery cache, per-object locks, counters."""

    config: OperatorConfig
    client: KubeClient | None = None
    discovery: ApiDiscovery | None = None
    locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)
    pending: set[tuple[str, str]] = field(default_factory=set)
    passes: int = 0
    failures: int = 0
    last_error: str | None = None
    last_pass_at: float | None = None

    def connect(self) -> None:
        if self.client is None:
            self.client = KubeClient.from_config(self.config.kubeconfig)
            self.discovery = ApiDiscovery(self.client, ttl=self.config.discovery_ttl_seconds)

    async def run_pass(self, namespace: str, name: str) -> PassOutcome | None:
        """Fetch the RerankerService fresh and reconcile it; None when it is gone or deleting."""
        self.connect()
        assert self.client is not None and self.discovery is not None
        key = (namespace, name)
        lock = self.locks.setdefault(key, asyncio.Lock())
        async with lock:
            self.pending.discard(key)
            cr = await self.client.get(RERANKER_SERVICES, namespace, name)
            if cr is None or cr["metadata"].get("deletionTimestamp"):
                return None
            outcome = await reconcile_service(self.client, self.discovery, cr)
        self.passes += 1
        self.last_pass_at = time.time()
        if outcome.error is not None:
            self.failures += 1
            self.last_error = str(outcome.error)
        for event_type, reason, message in outcome.events:
            kopf.event(cr, type=event_type, reason=reason, message=message)
        return outcome

    async def kick(self, namespace: str, name: str) -> None:
        """Run a pass unless one is already waiting for this object (coalesces bursts)."""
        key = (namespace, name)
        if key in self.pending:
            return
        self.pending.add(key)
        await self.run_pass(namespace, name)

    def probe(self) -> dict[str, Any]:
        return {"passes": self.passes, "failures": self.failures, "lastError": self.last_error,
                "secondsSinceLastPass": None if self.last_pass_at is None
                else round(time.time() - self.last_pass_at, 3)}


def _raise_for(outcome: PassOutcome | None, retry_seconds: float) -> None:
    """Tell kopf: an invalid spec is permanent (no retry loop); an API failure is retried."""
    if outcome is None:
        return
    if outcome.invalid is not None:
        raise kopf.PermanentError(str(outcome.invalid))
    if outcome.error is not None:
        raise kopf.TemporaryError(str(outcome.error), delay=retry_seconds)


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> Controller:
    """Add every handler to `registry`; returns the shared Controller."""
    ctl = Controller(config)
    crd: dict[str, Any] = {"group": CRD_GROUP, "version": CRD_VERSION, "plural": CRD_PLURAL,
                           "registry": registry}
    ours = {LABEL_MANAGED_BY: MANAGER, LABEL_INSTANCE: kopf.PRESENT}

    @kopf.on.startup(registry=registry, id="connect")
    async def connect(settings: kopf.OperatorSettings, logger: Any, **_: Any) -> None:
        ctl.connect()
        assert ctl.client is not None
        peering = settings.peering
        if peering.mandatory and not peering.standalone and peering.name:
            try:
                created = await ensure_peering(ctl.client, peering.name,
                                               clusterwide=peering.clusterwide,
                                               namespaces=ctl.config.namespaces)
            except KubeApiError as exc:  # e.g. 404 while the peering CRD is being established
                raise kopf.TemporaryError(f"cannot create the peering object: {exc}",
                                          delay=2) from exc
            for what in created:
                logger.info(f"created the peering object {what}")

    @kopf.on.login(registry=registry, id="login")
    def login(settings: kopf.OperatorSettings, **_: Any) -> kopf.ConnectionInfo:
        ctl.connect()
        assert ctl.client is not None
        return connection_info(ctl.client.api, trust_env=settings.networking.trust_env)

    @kopf.on.cleanup(registry=registry, id="disconnect")
    async def disconnect(**_: Any) -> None:
        if ctl.client is not None:
            ctl.client.close()

    @kopf.on.resume(**crd, id="reconcile")
    @kopf.on.create(**crd, id="reconcile")
    @kopf.on.update(**crd, id="reconcile")
    async def reconcile(namespace: str, name: str, **_: Any) -> None:
        _raise_for(await ctl.run_pass(namespace, name), ctl.config.retry_seconds)

    @kopf.timer(**crd, id="resync", interval=config.resync_seconds,
                initial_delay=config.resync_seconds)
    async def resync(namespace: str, name: str, **_: Any) -> None:
        await ctl.run_pass(namespace, name)  # errors are in the status; the next tick retries

    async def child_changed(namespace: str, labels: Mapping[str, str], **_: Any) -> None:
        await ctl.kick(namespace, labels[LABEL_INSTANCE])

    for child in CHILD_RESOURCES:
        kopf.on.event(child.api_version, child.plural, labels=ours, registry=registry,
                      id=f"child-{child.plural}")(child_changed)
    kopf.on.event("v1", "pods", labels=ours, registry=registry, id="pods")(child_changed)

    @kopf.on.probe(id="reconciler", registry=registry)
    def reconciler(**_: Any) -> dict[str, Any]:
        return ctl.probe()

    return ctl
