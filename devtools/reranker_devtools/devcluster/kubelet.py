"""A stand-in kubelet for the rolling-update mode (devcluster.rolling): each pod gets an address
on the loopback range, a process the test's runtime starts for it, and a readiness decided by
really probing it.

- Addresses: 127.77.x.y (on Linux all of 127.0.0.0/8 reaches `lo`), chosen so that the pod's
  container ports are free there; a real server bound to that address and the container port
  answers as the pod would.
- Volumes: each ConfigMap volume the container mounts is written to a directory of its own (the
  ConfigMap's keys as files; an optional one that is missing is an empty directory), emptyDir
  volumes are empty directories; the container's env values, command and args that name a
  mount path are rewritten to the directory.
- The process: `Runtime(launch)` starts it (a `PodLaunch`: the pod's address, its container,
  env and directories) and returns the function that stops it; the kubelet stops it when the
  pod is deleted.
- Readiness: an HTTP GET of the container's readinessProbe.httpGet path at the pod's address
  and the probe's port (a name resolves against the container's ports) every period; Ready
  after `successThreshold` successes in a row (2xx or 3xx), not ready after
  `failureThreshold` failures. A pod without a readinessProbe is ready once started.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import random
import socket
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reranker_devtools.devcluster.common import PODS, Ref
from reranker_devtools.devcluster.rollout import pod_status

CONFIGMAPS = Ref("", "v1", "configmaps")
KUBELET = "kubelet"
ADDRESS_PREFIX = "127.77"


@dataclass(frozen=True)
class PodLaunch:
    """What a runtime needs to start a pod's (first) container as a local process."""

    namespace: str
    name: str
    ip: str
    container: dict[str, Any]  # as rendered, command/args rewritten to the local directories
    env: dict[str, str]  # the container's env (literal values and pod fields), rewritten
    mounts: dict[str, Path]  # mountPath -> the local directory standing for it
    workdir: Path  # the pod's own directory (logs may go here)

    def port(self, name_or_number: int | str) -> int:
        """A container port by name or number."""
        return container_port(self.container, name_or_number)


Stop = Callable[[], None]
Runtime = Callable[[PodLaunch], Stop]  # starts the pod's process; returns how to stop it


def container_port(container: Mapping[str, Any], name_or_number: int | str) -> int:
    """A port of a container by name (its ports list) or number."""
    if isinstance(name_or_number, int) or str(name_or_number).isdigit():
        return int(name_or_number)
    for port in container.get("ports") or []:
        if port.get("name") == name_or_number:
            return int(port["containerPort"])
    raise KeyError(f"container {container.get('name')!r} has no port named {name_or_number!r}")


def _free_on(ip: str, ports: list[int]) -> bool:
    for port in ports:
        with socket.socket() as s:
            try:
                s.bind((ip, port))
            except OSError:
                return False
    return True


def _rewrite(text: str, mounts: Mapping[str, Path]) -> str:
    for mount_path, local in sorted(mounts.items(), key=lambda kv: -len(kv[0])):
        if text == mount_path or text.startswith(mount_path.rstrip("/") + "/"):
            return str(local) + text[len(mount_path.rstrip("/")) :]
    return text


def _field(pod: Mapping[str, Any], path: str, ip: str) -> str | None:
    """A fieldRef's value (the ones a container commonly reads)."""
    meta = pod["metadata"]
    values = {
        "status.podIP": ip,
        "metadata.name": meta["name"],
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": (pod.get("spec") or {}).get("nodeName", ""),
    }
    return values.get(path)


@dataclass
class _PodRun:
    ip: str
    stop: Stop | None = None
    prober: asyncio.Task[None] | None = None


@dataclass
class Kubelet:
    """The pods' processes and probes (one per emulator, owned by devcluster.rolling)."""

    runtime: Runtime | None
    probe_period_s: float | None = None  # overrides every readinessProbe's periodSeconds
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="devkubelet-")))
    runs: dict[str, _PodRun] = field(default_factory=dict)  # pod uid -> its run
    errors: list[str] = field(default_factory=list)  # what a probe loop failed on
    _counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _rng: random.Random = field(default_factory=random.Random)
    _session: Any = None

    def _address(self, ports: list[int]) -> str:
        used = {run.ip for run in self.runs.values()}
        for _ in range(1000):
            ip = f"{ADDRESS_PREFIX}.{self._rng.randrange(0, 256)}.{self._rng.randrange(1, 255)}"
            if ip not in used and _free_on(ip, ports):
                return ip
        raise RuntimeError("no free loopback address for a pod")

    def _launch(self, emu: Any, pod: Mapping[str, Any], ip: str) -> PodLaunch:
        meta, spec = pod["metadata"], pod.get("spec") or {}
        container = copy.deepcopy((spec.get("containers") or [{}])[0])
        podir = self.workdir / f"{meta['name']}-{next(self._counter)}"
        volumes = {v["name"]: v for v in spec.get("volumes") or []}
        mounts: dict[str, Path] = {}
        for mount in container.get("volumeMounts") or []:
            volume = volumes.get(mount["name"]) or {}
            local = podir / "volumes" / mount["name"]
            local.mkdir(parents=True, exist_ok=True)
            source = volume.get("configMap")
            if source is not None:
                cm = emu.live(CONFIGMAPS, meta["namespace"], source["name"]) or {}
                data = dict(cm.get("data") or {})
                items = source.get("items")
                chosen = (
                    {i["path"]: data[i["key"]] for i in items if i["key"] in data}
                    if items
                    else data
                )
                for key, value in chosen.items():
                    (local / key).parent.mkdir(parents=True, exist_ok=True)
                    (local / key).write_text(value)
            mounts[mount["mountPath"]] = local
        env: dict[str, str] = {}
        for var in container.get("env") or []:
            if "value" in var:
                env[var["name"]] = _rewrite(str(var["value"]), mounts)
            elif ref := ((var.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath"):
                value = _field(pod, ref, ip)
                if value is not None:
                    env[var["name"]] = value
        for key in ("command", "args"):
            if key in container:
                container[key] = [_rewrite(str(a), mounts) for a in container[key]]
        return PodLaunch(meta["namespace"], meta["name"], ip, container, env, mounts, podir)

    async def start(self, emu: Any, pod: Mapping[str, Any]) -> dict[str, Any]:
        """Give a new pod its address and process, and start probing it (under the emulator's
        lock); returns the pod's first status."""
        container = ((pod.get("spec") or {}).get("containers") or [{}])[0]
        ports = [int(p["containerPort"]) for p in container.get("ports") or []]
        ip = self._address(ports)
        run = _PodRun(ip)
        uid = pod["metadata"]["uid"]
        self.runs[uid] = run
        if self.runtime is not None:
            launch = self._launch(emu, pod, ip)
            run.stop = await asyncio.to_thread(self.runtime, launch)
        status = started_status(pod, ip)
        run.prober = asyncio.get_running_loop().create_task(self._probe_loop(emu, pod, run))
        return status

    async def stop(self, uid: str) -> None:
        """Stop a pod's probes and process (its pod is gone or going)."""
        run = self.runs.pop(uid, None)
        if run is None:
            return
        if run.prober is not None:
            run.prober.cancel()
        if run.stop is not None:
            await asyncio.to_thread(run.stop)

    async def close(self) -> None:
        """Stop every pod's process."""
        await asyncio.gather(*(self.stop(uid) for uid in list(self.runs)))
        if self._session is not None:
            await self._session.close()

    async def _get(self, url: str, timeout_s: float) -> bool:
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.get(
                url, timeout=aiohttp.ClientTimeout(total=timeout_s), allow_redirects=False
            ) as response:
                return 200 <= response.status < 400
        except (aiohttp.ClientError, TimeoutError, OSError):
            return False

    async def _probe_loop(self, emu: Any, pod: Mapping[str, Any], run: _PodRun) -> None:
        try:
            await self._probe(emu, pod, run)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001  # kept for the test to show
            self.errors.append(f"probing {pod['metadata']['name']}: {type(exc).__name__}: {exc}")
            raise

    async def _probe(self, emu: Any, pod: Mapping[str, Any], run: _PodRun) -> None:
        meta = pod["metadata"]
        container = ((pod.get("spec") or {}).get("containers") or [{}])[0]
        probe = container.get("readinessProbe") or {}
        get = probe.get("httpGet")
        period = self.probe_period_s or float(probe.get("periodSeconds", 10))
        timeout = min(float(probe.get("timeoutSeconds", 1)), max(period, 0.5))
        successes_needed = int(probe.get("successThreshold", 1))
        failures_allowed = int(probe.get("failureThreshold", 3))
        url = (
            f"http://{run.ip}:{container_port(container, get['port'])}{get.get('path', '/')}"
            if get
            else None
        )
        ready, successes, failures = False, 0, 0
        while True:
            ok = True if url is None else await self._get(url, timeout)
            successes, failures = (successes + 1, 0) if ok else (0, failures + 1)
            if ok and successes >= successes_needed:
                now = True
            elif not ok and failures >= failures_allowed:
                now = False
            else:
                now = ready
            if now != ready:
                ready = now
                async with emu._lock:
                    live = emu.live(PODS, meta["namespace"], meta["name"])
                    if live is None or live["metadata"].get("uid") != meta["uid"]:
                        return
                    status = with_readiness(live.get("status") or {}, ready)
                    await emu.update_object(
                        PODS, live, dict(live, status=status), "status", manager=KUBELET
                    )
            await asyncio.sleep(period)


def started_status(pod: Mapping[str, Any], ip: str) -> dict[str, Any]:
    """A started pod's status: Running at its address, init containers done, not ready yet."""
    status = pod_status(pod.get("spec") or {}, "starting")
    status.update(podIP=ip, podIPs=[{"ip": ip}], hostIP="127.0.0.1")
    status["conditions"] = [
        {"type": "PodScheduled", "status": "True"},
        *status["conditions"],
    ]
    return status


def with_readiness(status: Mapping[str, Any], ready: bool) -> dict[str, Any]:
    """`status` with its Ready / ContainersReady conditions and containers' ready set."""
    value = "True" if ready else "False"
    new = copy.deepcopy(dict(status))
    new["conditions"] = [
        dict(c, status=value) if c.get("type") in ("Ready", "ContainersReady") else c
        for c in new.get("conditions") or []
    ]
    new["containerStatuses"] = [dict(c, ready=ready) for c in new.get("containerStatuses") or []]
    return new
