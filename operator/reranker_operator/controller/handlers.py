"""kopf wiring: which events start a reconcile pass of a RerankerService.

- create / update / resume of a RerankerService, and a resync timer, run a pass on the body
  kopf hands the handler;
- any event on a child (or one of its pods) labelled as ours runs a pass of its parent, so a
  Deployment's status flows into the parent's status and hand edits or deletions are reverted;
  the parent's body comes from kopf's index of RerankerServices (what the watch last saw); the
  echo of our own apply (the event carrying the resourceVersion the apply returned) runs none;
- a liveness probe reports the passes done and the last failure;
- with `metrics_address`, `/metrics` and `/readyz` are served on their own port
  (reranker_operator.controller.metrics).

`register(registry, config)` adds the handlers to a registry (the resync interval is part of the
config, so tests can make it short). Passes of one RerankerService never overlap and bursts of
child events are coalesced into one pass. kopf and the passes share one API session: the login
handler hands kopf the session of our client.
"""

from __future__ import annotations

import asyncio
import copy
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf

from reranker_operator.api.constants import (
    CRD_GROUP,
    CRD_PLURAL,
    CRD_VERSION,
    LABEL_INSTANCE,
    LABEL_MANAGED_BY,
    MANAGER,
)
from reranker_operator.controller.kube import KubeApiError, KubeClient, load_credentials
from reranker_operator.controller.metrics import CONTROLLER, OperatorMetrics, pass_timer, serve
from reranker_operator.controller.peering import ensure_peering, leadership
from reranker_operator.controller.reconcile import ApiDiscovery, PassOutcome, reconcile_service
from reranker_operator.controller.score_gate import ScoreGate
from reranker_operator.render.kinds import CHILD_KINDS

Key = tuple[str, str]  # (namespace, name)


@dataclass
class OperatorConfig:
    """Tunables; `from_env` reads RERANKER_RESYNC_SECONDS, RERANKER_DISCOVERY_TTL_SECONDS,
    RERANKER_RETRY_SECONDS."""

    resync_seconds: float = 60.0
    discovery_ttl_seconds: float = 30.0
    retry_seconds: float = 10.0
    kubeconfig: str | None = None
    namespaces: tuple[str, ...] = ()  # where a namespaced --peering creates its KopfPeering
    metrics_address: str | None = None  # "HOST:PORT" of /metrics and /readyz; None = off
    leadership_poll_seconds: float = 5.0  # how often a peered replica reads who leads

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorConfig:
        env = os.environ if env is None else env
        values = {}
        for attr, var in (
            ("resync_seconds", "RERANKER_RESYNC_SECONDS"),
            ("discovery_ttl_seconds", "RERANKER_DISCOVERY_TTL_SECONDS"),
            ("retry_seconds", "RERANKER_RETRY_SECONDS"),
        ):
            if env.get(var):
                try:
                    values[attr] = float(env[var])
                except ValueError as exc:
                    raise ValueError(
                        f"{var} must be a number of seconds, not {env[var]!r}"
                    ) from exc
                if values[attr] <= 0:
                    raise ValueError(f"{var} must be positive, not {env[var]!r}")
        return cls(**values)


def _child_key(child: Mapping[str, Any]) -> tuple[str, str, str]:
    meta = child.get("metadata") or {}
    return (child.get("kind", ""), meta.get("namespace", ""), meta.get("name", ""))


def _resource_version(body: Mapping[str, Any]) -> int | None:
    try:
        return int((body.get("metadata") or {}).get("resourceVersion"))
    except (TypeError, ValueError):
        return None


def newest(
    seen: Iterable[Mapping[str, Any]],
    written: Mapping[str, Any] | None,
) -> Mapping[str, Any] | None:
    """The freshest body of a RerankerService: the newest kopf has seen, or the answer of our
    last status patch when it is newer still (the watch has not delivered it yet).

    None when kopf sees no such object (it was deleted). Resource versions are compared as
    integers (Kubernetes 1.35+ guarantees they are ordered); when either is not an integer,
    kopf's view wins.
    """
    best: Mapping[str, Any] | None = None
    for body in seen:
        if best is None or (_resource_version(body) or 0) > (_resource_version(best) or 0):
            best = body
    if best is None or written is None:
        return best
    mine, theirs = _resource_version(written), _resource_version(best)
    return written if mine is not None and theirs is not None and mine > theirs else best


@dataclass
class Controller:
    """What the handlers share: the API client, discovery cache, per-object locks, counters."""

    config: OperatorConfig
    client: KubeClient | None = None
    default_namespace: str | None = None
    discovery: ApiDiscovery | None = None
    locks: dict[Key, asyncio.Lock] = field(default_factory=dict)
    pending: dict[Key, list[Mapping[str, Any]]] = field(default_factory=dict)  # child events
    written: dict[Key, dict[str, Any]] = field(default_factory=dict)
    # (kind, namespace, name) -> resourceVersion our last apply of that child left
    applied: dict[tuple[str, str, str], str] = field(default_factory=dict)
    echoes: int = 0  # child events skipped as echoes of our own applies
    post_event: Callable[..., None] = kopf.event  # kopf posts it (needs kopf's context)
    passes: int = 0
    failures: int = 0
    last_error: str | None = None
    last_pass_at: float | None = None
    metrics: OperatorMetrics = field(default_factory=OperatorMetrics)
    gate: ScoreGate = field(default_factory=ScoreGate)  # the pods' score-check reports
    metrics_port: int | None = None  # where /metrics and /readyz listen (once started)
    started: bool = False  # the start-up handlers finished
    seen: kopf.Index | None = None  # kopf's index of RerankerServices (metrics read it)
    leader: bool | None = None  # whether this replica works (peered: read from the peering)
    leadership_task: asyncio.Task | None = None

    async def connect(self, trust_env: bool = False) -> KubeClient:
        """The client, on a new session when there is none or kopf closed it (re-login)."""
        if self.client is None or self.client.closed:
            info = load_credentials(self.config.kubeconfig, trust_env=trust_env)
            self.client = KubeClient.open(info, trace=self.metrics.tracer())
            self.default_namespace = info.default_namespace
            if self.discovery is None:
                self.discovery = ApiDiscovery(self.client, ttl=self.config.discovery_ttl_seconds)
            self.discovery.client = self.client
        return self.client

    async def run_pass(
        self, key: Key, seen: kopf.Index | None, hint: Mapping[str, Any] | None = None
    ) -> PassOutcome | None:
        """Reconcile the freshest body of `key`; None when it is gone or being deleted, or when
        a child's pass is not needed.

        `seen` is kopf's index of RerankerService bodies (read once the lock is held, so a
        pass that waited sees what arrived meanwhile); `hint` the body a handler was given.
        """
        client = await self.connect()
        assert self.discovery is not None
        self.seen = seen if seen is not None else self.seen
        lock = self.locks.setdefault(key, asyncio.Lock())
        waited = pass_timer()
        self.metrics.adds.labels(CONTROLLER).inc()
        self.metrics.depth.labels(CONTROLLER).inc()
        try:
            await lock.acquire()
        finally:
            self.metrics.depth.labels(CONTROLLER).dec()
        self.metrics.queue_duration.labels(CONTROLLER).observe(waited())
        try:
            triggers = self.pending.pop(key, None)
            # A child's pass is not needed when a pass that started after its event already
            # ran (it took the triggers), or when every trigger was the echo of our own apply.
            if hint is None and (not triggers or all(self.echo(child) for child in triggers)):
                return None
            bodies = [
                *(seen.get(key, ()) if seen is not None else ()),
                *([hint] if hint is not None else []),
            ]
            cr = newest(bodies, self.written.get(key))
            if cr is None or cr["metadata"].get("deletionTimestamp"):
                self.written.pop(key, None)
                if cr is None:
                    self.locks.pop(key, None)  # gone: forget it
                    self.gate.forget(key)
                return None
            if cr is not self.written.get(key):
                self.written.pop(key, None)  # the watch has caught up with our last write
            took = pass_timer()
            with self.metrics.active.labels(CONTROLLER).track_inprogress():
                outcome = await reconcile_service(
                    client, self.discovery, cr, self.remember, self.metrics, self.gate
                )
            self.metrics.pass_done(took(), error=outcome.error, invalid=outcome.invalid is not None)
            if outcome.written is not None:
                self.written[key] = outcome.written
        finally:
            lock.release()
        self.passes += 1
        self.last_pass_at = time.time()
        if outcome.error is not None:
            self.failures += 1
            self.last_error = str(outcome.error)
        for event_type, reason, message in outcome.events:
            self.post_event(dict(cr), type=event_type, reason=reason, message=message)
        return outcome

    def remember(self, child: Mapping[str, Any]) -> None:
        """Note the resourceVersion an apply of ours left on a child (see `echo`)."""
        meta = child.get("metadata") or {}
        self.applied[_child_key(child)] = meta.get("resourceVersion", "")

    def echo(self, child: Mapping[str, Any]) -> bool:
        """Whether a child's event only reports our own last apply of it (nothing to do)."""
        version = (child.get("metadata") or {}).get("resourceVersion")
        key = _child_key(child)
        if version is not None and self.applied.get(key) == version:
            del self.applied[key]
            self.echoes += 1
            return True
        return False

    async def kick(self, key: Key, seen: kopf.Index, child: Mapping[str, Any]) -> None:
        """Run a pass unless one is already waiting for this object (coalesces bursts)."""
        if key in self.pending:
            self.pending[key].append(child)
            self.metrics.adds.labels(CONTROLLER).inc()  # coalesced into the waiting pass
            return
        self.pending[key] = [child]
        await self.run_pass(key, seen)

    def services(self) -> list[Mapping[str, Any]]:
        """The freshest body of every watched RerankerService (for the metrics)."""
        if self.seen is None:
            return []
        found = (newest(self.seen.get(key, ()), self.written.get(key)) for key in self.seen)
        return [body for body in found if body is not None]

    def readiness(self) -> dict[str, Any]:
        """Ready = the start-up handlers finished and the watch of RerankerServices answered
        (a standby is ready too: it watches, to take over); `leader` says whether this replica
        works (None: not known yet)."""
        watching = self.metrics.watch_answered
        return {
            "ready": self.started and watching,
            "started": self.started,
            "watching": watching,
            "leader": self.leader,
        }

    def set_leader(self, leads: bool | None) -> None:
        self.leader = leads
        self.metrics.leader.set(1 if leads else 0)

    async def follow_leadership(self, settings: kopf.OperatorSettings) -> None:
        """Read, every `leadership_poll_seconds`, whether this replica leads its peering (its
        own task: kopf pauses a standby's handlers, not this)."""
        peering = settings.peering
        while True:
            if self.client is not None:
                self.set_leader(
                    await leadership(
                        self.client,
                        peering.name,
                        peering.priority,
                        clusterwide=peering.clusterwide,
                        namespaces=self.config.namespaces,
                    )
                )
            await asyncio.sleep(self.config.leadership_poll_seconds)

    def probe(self) -> dict[str, Any]:
        return {
            "passes": self.passes,
            "failures": self.failures,
            "lastError": self.last_error,
            "secondsSinceLastPass": None
            if self.last_pass_at is None
            else round(time.time() - self.last_pass_at, 3),
        }


def _raise_for(outcome: PassOutcome | None, retry_seconds: float) -> None:
    """Tell kopf: an API failure is retried; an invalid spec is permanent (no retry loop)."""
    if outcome is None:
        return
    if outcome.error is not None:
        raise kopf.TemporaryError(str(outcome.error), delay=retry_seconds)
    if outcome.invalid is not None:
        raise kopf.PermanentError(str(outcome.invalid))


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> Controller:
    """Add every handler to `registry`; returns the shared Controller."""
    ctl = Controller(config)
    crd: dict[str, Any] = {
        "group": CRD_GROUP,
        "version": CRD_VERSION,
        "plural": CRD_PLURAL,
        "registry": registry,
    }
    ours = {LABEL_MANAGED_BY: MANAGER, LABEL_INSTANCE: kopf.PRESENT}
    ctl.metrics.watch_services(ctl.services)
    ctl.metrics.score_gate_holds.set_function(lambda: len(ctl.gate.holding))

    if config.metrics_address:

        @kopf.on.startup(registry=registry, id="metrics")
        async def metrics_server(memo: kopf.Memo, logger: Any, **_: Any) -> None:
            runner, ctl.metrics_port = await serve(
                ctl.metrics, config.metrics_address or "", ctl.readiness
            )
            memo["metrics_runner"] = runner
            logger.info(f"metrics and /readyz on port {ctl.metrics_port}")

        @kopf.on.cleanup(registry=registry, id="metrics-stop")
        async def metrics_stop(memo: kopf.Memo, **_: Any) -> None:
            if "metrics_runner" in memo:
                await memo["metrics_runner"].cleanup()

    @kopf.on.startup(registry=registry, id="connect")
    async def connect(settings: kopf.OperatorSettings, logger: Any, **_: Any) -> None:
        client = await ctl.connect(trust_env=settings.networking.trust_env)
        peering = settings.peering
        if peering.mandatory and not peering.standalone and peering.name:
            try:
                created = await ensure_peering(
                    client,
                    peering.name,
                    clusterwide=peering.clusterwide,
                    namespaces=ctl.config.namespaces,
                )
            except KubeApiError as exc:  # e.g. 404 while the peering CRD is being established
                raise kopf.TemporaryError(
                    f"cannot create the peering object: {exc}", delay=2
                ) from exc
            for what in created:
                logger.info(f"created the peering object {what}")
            if ctl.leadership_task is None:
                ctl.leadership_task = asyncio.create_task(ctl.follow_leadership(settings))
        else:
            ctl.set_leader(True)
        ctl.started = True

    @kopf.on.login(registry=registry, id="login")
    async def login(settings: kopf.OperatorSettings, **_: Any) -> kopf.AiohttpSession:
        client = await ctl.connect(trust_env=settings.networking.trust_env)
        return kopf.AiohttpSession(
            aiohttp_session=client.session,
            server=client.server,
            default_namespace=ctl.default_namespace,
        )

    @kopf.on.cleanup(registry=registry, id="disconnect")
    async def disconnect(**_: Any) -> None:
        if ctl.leadership_task is not None:
            ctl.leadership_task.cancel()
        await ctl.gate.close()
        if ctl.client is not None:
            await ctl.client.close()

    @kopf.index(**crd, id="rerankers")
    def rerankers(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict[Key, Any]:
        return {(namespace, name): copy.deepcopy(dict(body))}

    @kopf.on.resume(**crd, id="reconcile")
    @kopf.on.create(**crd, id="reconcile")
    @kopf.on.update(**crd, id="reconcile")
    async def reconcile(
        namespace: str, name: str, body: kopf.Body, rerankers: kopf.Index, **_: Any
    ) -> None:
        outcome = await ctl.run_pass((namespace, name), rerankers, dict(body))
        _raise_for(outcome, ctl.config.retry_seconds)

    @kopf.timer(
        **crd, id="resync", interval=config.resync_seconds, initial_delay=config.resync_seconds
    )
    async def resync(
        namespace: str, name: str, body: kopf.Body, rerankers: kopf.Index, **_: Any
    ) -> None:
        # errors are in the status; the next tick retries
        await ctl.run_pass((namespace, name), rerankers, dict(body))

    async def child_changed(
        namespace: str, labels: Mapping[str, str], body: kopf.Body, rerankers: kopf.Index, **_: Any
    ) -> None:
        await ctl.kick((namespace, labels[LABEL_INSTANCE]), rerankers, dict(body))

    for child in CHILD_KINDS:
        kopf.on.event(
            child.api_version,
            child.plural,
            labels=ours,
            registry=registry,
            id=f"child-{child.plural}",
        )(child_changed)
    kopf.on.event("v1", "pods", labels=ours, registry=registry, id="pods")(child_changed)

    @kopf.on.probe(id="reconciler", registry=registry)
    def reconciler(**_: Any) -> dict[str, Any]:
        return ctl.probe()

    return ctl
