"""The score gate, operator side: what the pods' score checks say, in the status, and the record
of the scores a Ready revision gave (reranker_contract.score_check).

- A pod that runs but is not Ready may be held by its score check: the pass reads its report
  (`GET SCORE_CHECK_PATH` at the pod's address and its readiness port, a short timeout, a few
  pods at once) and a report that says `failed` becomes the status (status.score_check_conditions:
  Degraded=True, Progressing=False, reason ScoreCheckFailed, naming the pod, the failed check and
  what the pod scored). A pod that does not answer, or answers anything else, tells nothing:
  an unknown is never a failure.
- Once the Deployment is rolled out and Ready, the report of one ready pod is the revision's
  record: the ConfigMap `<name>-score-record` (RECORD_KEY: the record JSON), owned by the
  RerankerService (garbage-collected with it) and mounted by the pods (optional) for parity.
  It is written when missing or when the report's identity, setup or probe scores differ from
  it, with a ScoresRecorded Event, and a ScoreRecordReset Event when the model or revision
  changed. It is not a rendered child: the pass never prunes it (reconcile.prune).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from reranker_contract.score_check import (
    RECORD_KEY,
    SCORE_CHECK_PATH,
    SCORE_RECORD_RESET_REASON,
    SCORE_RECORDED_REASON,
    CheckState,
)
from reranker_operator.api.constants import CRD_GROUP, CRD_KIND, CRD_VERSION
from reranker_operator.controller.kube import KubeClient, ResourceRef
from reranker_operator.controller.status import now_rfc3339
from reranker_operator.render.labels import score_record_config_map_name

REPORT_TIMEOUT = aiohttp.ClientTimeout(total=2.0, sock_connect=1.0)
MAX_PODS_READ = 4  # reports read in one pass (a held rollout has at most maxSurge new pods)
CONFIG_MAPS = ResourceRef("v1", "configmaps")
RECORD_LABEL = f"{CRD_GROUP}/score-record-of"  # not our instance labels: never listed as a child
Event = tuple[str, str, str]  # (type, reason, message)


@dataclass(frozen=True)
class Hold:
    """A pod's failed score check."""

    pod: str
    failed: str
    message: str

    def sentence(self) -> str:
        return f"pod {self.pod}: score check {self.failed!r} failed: {self.message}"


def _condition(pod: Mapping[str, Any], type_: str) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == type_ and c.get("status") == "True" for c in conditions)


def _live(pod: Mapping[str, Any]) -> bool:
    return not (pod.get("metadata") or {}).get("deletionTimestamp")


def running_not_ready(pods: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Pods whose containers run but that are not Ready (where a score check may hold them)."""
    return [
        p
        for p in pods
        if _live(p)
        and (p.get("status") or {}).get("phase") == "Running"
        and (p.get("status") or {}).get("podIP")
        and not _condition(p, "Ready")
    ]


def ready_pods(pods: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [
        p
        for p in pods
        if _live(p) and (p.get("status") or {}).get("podIP") and _condition(p, "Ready")
    ]


def report_url(pod: Mapping[str, Any]) -> str | None:
    """Where the pod's server answers the report: its readiness probe's port (the port of
    `/ready`, the same server), at the pod's address."""
    ip = (pod.get("status") or {}).get("podIP")
    containers = (pod.get("spec") or {}).get("containers") or []
    for container in containers:
        port = ((container.get("readinessProbe") or {}).get("httpGet") or {}).get("port")
        if port is None:
            continue
        if isinstance(port, str) and not port.isdigit():
            named = [p for p in container.get("ports") or [] if p.get("name") == port]
            if not named:
                return None
            port = named[0]["containerPort"]
        host = f"[{ip}]" if ":" in str(ip) else ip
        return f"http://{host}:{int(port)}{SCORE_CHECK_PATH}"
    return None


def hold_of(pods_and_reports: Sequence[tuple[str, Mapping[str, Any] | None]]) -> Hold | None:
    """The first failed report (pods in name order), or None."""
    for pod, report in sorted(pods_and_reports, key=lambda pr: pr[0]):
        if report is not None and report.get("state") == CheckState.FAILED:
            return Hold(
                pod,
                str(report.get("failed") or "unknown"),
                str(report.get("message") or "no message"),
            )
    return None


def record_from(report: Mapping[str, Any], pod: str, at: str) -> dict[str, Any]:
    """The record (RECORD_KEY's JSON) of a passed report."""
    return {
        "identity": report.get("identity"),
        "setup": report.get("setup"),
        "recordedAt": at,
        "pod": pod,
        "probes": [
            {k: probe.get(k) for k in ("name", "query", "documents", "instruction", "scores")}
            for probe in report.get("probes") or []
        ],
    }


def same_scores(record: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Whether `record` already holds `new`'s identity, setup and probe scores."""
    if record is None:
        return False
    return all(record.get(k) == new.get(k) for k in ("identity", "setup", "probes"))


def _identity_text(identity: Mapping[str, Any] | None) -> str:
    identity = identity or {}
    revision = identity.get("revision")
    return f"{identity.get('model')}" + (f"@{revision}" if revision else "")


def record_events(
    old: Mapping[str, Any] | None, new: Mapping[str, Any], service: str
) -> list[Event]:
    """The Events of writing `new` over `old`: ScoreRecordReset when the identity changed,
    then ScoresRecorded."""
    events: list[Event] = []
    if old is not None and old.get("identity") != new.get("identity"):
        events.append(
            (
                "Normal",
                SCORE_RECORD_RESET_REASON,
                f"the score record of {_identity_text(old.get('identity'))} was reset: the "
                f"model is now {_identity_text(new.get('identity'))}, whose scores are not "
                "comparable; parity starts again from this revision's scores",
            )
        )
    setup = new.get("setup") or {}
    what = ", ".join(f"{k} {v}" for k, v in sorted(setup.items()) if v is not None)
    events.append(
        (
            "Normal",
            SCORE_RECORDED_REASON,
            f"recorded the scores of {len(new.get('probes') or [])} probes from pod "
            f"{new.get('pod')} ({_identity_text(new.get('identity'))}; {what}) in ConfigMap "
            f"{score_record_config_map_name(service)}",
        )
    )
    return events


def parse_record(config_map: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The record a ConfigMap holds, None when missing or unreadable."""
    text = ((config_map or {}).get("data") or {}).get(RECORD_KEY)
    if not text:
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def record_manifest(
    namespace: str, service: str, uid: str, record: Mapping[str, Any]
) -> dict[str, Any]:
    """The record ConfigMap, owned by the RerankerService."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": score_record_config_map_name(service),
            "namespace": namespace,
            "labels": {RECORD_LABEL: service},
            "ownerReferences": [
                {
                    "apiVersion": f"{CRD_GROUP}/{CRD_VERSION}",
                    "kind": CRD_KIND,
                    "name": service,
                    "uid": uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "data": {RECORD_KEY: json.dumps(record, indent=1, sort_keys=True)},
    }


@dataclass
class ScoreGate:
    """Reads the pods' reports on its own session (never the API server's credentials) and
    remembers which Deployment generation's record is known to be current."""

    timeout: aiohttp.ClientTimeout = REPORT_TIMEOUT
    recorded: dict[tuple[str, str], str] = field(default_factory=dict)  # key -> marker
    holding: set[tuple[str, str]] = field(default_factory=set)  # services held now
    _session: aiohttp.ClientSession | None = None

    async def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def report(self, pod: Mapping[str, Any]) -> dict[str, Any] | None:
        """The pod's report, None when it does not answer one (unknown, not a failure)."""
        url = report_url(pod)
        if url is None:
            return None
        session = await self.session()
        try:
            async with session.get(url) as response:
                if response.status != 200:
                    return None
                answer = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError, OSError, UnicodeDecodeError):
            return None
        return answer if isinstance(answer, dict) else None

    async def hold(self, key: tuple[str, str], pods: Sequence[Mapping[str, Any]]) -> Hold | None:
        """The failed check holding the rollout of `key`, read from its not-ready pods."""
        waiting = sorted(running_not_ready(pods), key=lambda p: p["metadata"]["name"])
        waiting = waiting[:MAX_PODS_READ]
        answers = await asyncio.gather(*(self.report(p) for p in waiting), return_exceptions=True)
        reports = [a if isinstance(a, dict) else None for a in answers]  # errors: unknown
        found = hold_of([(p["metadata"]["name"], r) for p, r in zip(waiting, reports, strict=True)])
        if found is None:
            self.holding.discard(key)
        else:
            self.holding.add(key)
        return found

    def needs_record(self, key: tuple[str, str], marker: str) -> bool:
        """Whether the record of this Deployment generation has not been checked yet."""
        return self.recorded.get(key) != marker

    def forget(self, key: tuple[str, str]) -> None:
        self.recorded.pop(key, None)
        self.holding.discard(key)

    async def record(
        self,
        client: KubeClient,
        *,
        namespace: str,
        service: str,
        uid: str,
        pods: Sequence[Mapping[str, Any]],
        marker: str,
    ) -> list[Event]:
        """Write the record from one ready pod's passed report when it differs (Events)."""
        key = (namespace, service)
        for pod in sorted(ready_pods(pods), key=lambda p: p["metadata"]["name"]):
            report = await self.report(pod)
            if report is None:
                continue
            if report.get("state") != CheckState.PASSED or not report.get("probes"):
                self.recorded[key] = marker  # disabled or nothing scored: nothing to record
                return []
            new = record_from(report, pod["metadata"]["name"], now_rfc3339())
            live = await client.get(CONFIG_MAPS, namespace, score_record_config_map_name(service))
            old = parse_record(live)
            events: list[Event] = []
            if not same_scores(old, new):
                await client.apply(record_manifest(namespace, service, uid, new))
                events = record_events(old, new, service)
            self.recorded[key] = marker
            return events
        return []  # no ready pod answered: tried again on the next pass
