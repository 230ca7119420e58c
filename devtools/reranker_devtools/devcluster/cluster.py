"""DevCluster: the emulator served on 127.0.0.1 from a background thread, with a synchronous
API for tests and the demo (its helpers act on the store directly; they are never `calls`)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Collection, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from reranker_devtools.devcluster.common import OUTAGE, ApiCall, Ref
from reranker_devtools.devcluster.emulator import (
    check_unserved,
    declare_resources,
    emulator_class,
    read_crd,
)
from reranker_devtools.devcluster.kubeconfig import KubeconfigFile
from reranker_devtools.devcluster.kubelet import Runtime
from reranker_devtools.devcluster.patches import merge_patch, strategic_merge_patch
from reranker_devtools.devcluster.rollout import ROLLOUT_PHASES, roll_out

T = TypeVar("T")
USER = "devcluster-user"  # the field manager of the helpers' writes (a person with kubectl)


class DevCluster:
    """The emulator served on 127.0.0.1 from a background thread, with a synchronous API.

    Use as a context manager, or call start()/stop(). `unserved` names optional child kinds
    (reranker_operator.render.kinds.OPTIONAL_KINDS, e.g. "ServiceMonitor") whose API is left out of
    discovery, as on a cluster without the Prometheus Operator's CRDs.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        unserved: Collection[str] = (),
        crd_path: Path | None = None,
    ) -> None:
        check_unserved(unserved)
        self.port_wanted = port
        self.unserved = tuple(unserved)
        self.crd = read_crd(crd_path)
        self.emulator: Any = None
        self._server: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.url = ""

    # --- lifecycle

    def start(self) -> DevCluster:
        """Start serving; returns when the port is open."""
        self._thread = threading.Thread(target=self._main, name="devcluster", daemon=True)
        self._thread.start()
        self._ready.wait(timeout=30)
        if self._error is not None:
            raise RuntimeError(f"the dev cluster failed to start: {self._error}") from self._error
        if not self.url:
            raise RuntimeError("the dev cluster did not start within 30 s")
        return self

    def stop(self) -> None:
        """Stop serving and join the thread."""
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(timeout=30)

    def __enter__(self) -> DevCluster:  # noqa: PYI034
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # noqa: BLE001  # reported to start()
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        import kmock

        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        emulator = emulator_class()()
        declare_resources(emulator, self.crd, self.unserved)
        self.emulator = emulator
        async with emulator, kmock.Server(emulator, port=self.port_wanted) as server:
            self._server = server
            self.url = f"http://127.0.0.1:{server.port}"
            self._ready.set()
            await self._stopping.wait()
            if emulator.rolling is not None:
                await emulator.rolling.close()

    def _run(self, coro_fn: Callable[[], Any]) -> Any:
        if self._loop is None:
            raise RuntimeError("the dev cluster is not running")

        async def wrapper() -> Any:
            async with self.emulator._lock:
                return await coro_fn()

        return asyncio.run_coroutine_threadsafe(wrapper(), self._loop).result(timeout=30)

    # --- reading

    @property
    def calls(self) -> list[ApiCall]:
        """Every API call served so far (a copy)."""
        return list(self.emulator.calls)

    def get(self, ref: Ref | str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The stored object, or None."""
        ref = Ref.parse(ref) if isinstance(ref, str) else ref
        return self._run(lambda: _const(self.emulator.live(ref, namespace, name)))

    def list(
        self, ref: Ref | str, namespace: str | None = None, selector: str | None = None
    ) -> list[dict[str, Any]]:
        """Stored objects of a kind, optionally in a namespace and matching a label selector."""
        ref = Ref.parse(ref) if isinstance(ref, str) else ref
        return self._run(lambda: _const(self.emulator._items(ref, namespace, selector)))

    def each(
        self, ref: Ref | str, namespace: str | None, fn: Callable[[Mapping[str, Any]], T]
    ) -> list[T]:
        """`fn` of every stored object of a kind (read-only, uncopied: cheap for large counts)."""
        ref = Ref.parse(ref) if isinstance(ref, str) else ref

        async def go() -> list[T]:
            emu = self.emulator
            objs = emu._live.get(emu._key(ref, namespace, "")[0], {})
            return [
                fn(raw) for k, raw in list(objs.items()) if namespace is None or k[1] == namespace
            ]

        return self._run(go)

    # --- writing (as a user or a controller would; not recorded as API calls)

    def create(
        self, obj: Mapping[str, Any], namespace: str | None = None, *, manager: str = USER
    ) -> dict[str, Any]:
        """Create an object from a manifest (apiVersion + kind decide the resource)."""
        ref = self.ref_for(obj["apiVersion"], obj["kind"])
        return self._run(lambda: self.emulator.create_object(ref, namespace, obj, manager=manager))

    def patch(
        self,
        ref: Ref | str,
        namespace: str | None,
        name: str,
        patch: Mapping[str, Any],
        subresource: str | None = None,
        *,
        manager: str | None = USER,
        strategic: bool = False,
    ) -> dict[str, Any]:
        """A JSON merge patch as `kubectl patch --type=merge --field-manager=MANAGER` does, or a
        strategic merge patch (lists of containers, volumes, ... merge by name). `manager=None`
        is the API server itself rewriting stored values: no field changes hands."""
        ref = Ref.parse(ref) if isinstance(ref, str) else ref
        apply_patch = strategic_merge_patch if strategic else merge_patch

        async def go() -> Any:
            live = self.emulator.live(ref, namespace, name)
            if live is None:
                raise KeyError(f"{ref.plural}/{name} not found")
            return await self.emulator.update_object(
                ref, live, apply_patch(live, patch), subresource, manager=manager
            )

        return self._run(go)

    def delete(self, ref: Ref | str, namespace: str | None, name: str) -> None:
        """Delete an object (finalizers respected; dependents garbage-collected)."""
        ref = Ref.parse(ref) if isinstance(ref, str) else ref

        async def go() -> Any:
            live = self.emulator.live(ref, namespace, name)
            if live is not None:
                await self.emulator.delete_object(ref, live)

        self._run(go)

    def ref_for(self, api_version: str, kind: str) -> Ref:
        """The resource serving a kind, from the declared resources."""
        group, _, version = api_version.rpartition("/")
        for res in self.emulator.resources:
            info = self.emulator.resources[res]
            if res.group == group and res.version == version and info.kind == kind:
                return Ref(res.group, res.version, res.plural)
        raise KeyError(f"no resource serves {api_version} {kind}")

    @contextlib.contextmanager
    def outage(self) -> Iterator[None]:
        """An API outage while the block runs: every request is answered 503 and open watch
        streams end (clients must reconnect and list again afterwards)."""

        async def down() -> None:
            self.emulator.down = True
            for bus in list(self.emulator._buses.values()):
                await bus.put({"type": OUTAGE})

        async def up() -> None:
            self.emulator.down = False

        self._run(down)
        try:
            yield
        finally:
            self._run(up)

    def fail(
        self,
        verb: str,
        ref: Ref | str,
        status: int = 500,
        times: int = 1,
        subresource: str | None = None,
    ) -> None:
        """Answer the next `times` API calls of `verb` on a resource with an error `status`."""
        ref = Ref.parse(ref) if isinstance(ref, str) else ref
        resource = ref.plural + (f"/{subresource}" if subresource else "")
        self.emulator.failures.append([verb, ref.group, resource, status, times])

    # --- the Deployment controller, on request

    def simulate_rollout(self, namespace: str, name: str, phase: str) -> dict[str, Any]:
        """Act as the Deployment controller for one Deployment and its pods.

        Phases: 'init' (pods in their init containers, e.g. downloading the model),
        'starting' (init done, containers not ready), 'ready' (all replicas available),
        'failed' (progress deadline exceeded). Returns the Deployment.
        """
        if phase not in ROLLOUT_PHASES:
            raise ValueError(f"phase must be one of {ROLLOUT_PHASES}, not {phase!r}")

        return self._run(lambda: roll_out(self.emulator, namespace, name, phase))

    def auto_rollout(self, phase: str | None) -> None:
        """From now on act as the Deployment controller for every Deployment: each new spec
        (generation) is rolled out to `phase` right after it is written. None stops it."""
        if phase is not None and phase not in ROLLOUT_PHASES:
            raise ValueError(f"phase must be one of {ROLLOUT_PHASES}, not {phase!r}")
        self.emulator.rollout_phase = phase

    # --- real rolling updates (devcluster.rolling, devcluster.kubelet)

    def rolling_updates(
        self,
        runtime: Runtime | None = None,
        *,
        probe_period_s: float | None = None,
        progress_deadline_s: float | None = None,
        tick_s: float = 0.05,
    ) -> None:
        """From now on act as the Deployment and ReplicaSet controllers and the kubelet, for
        real: one ReplicaSet per pod template, pods replaced as strategy.rollingUpdate allows,
        each pod at its own loopback address with the process `runtime` starts for it, ready
        when its readinessProbe really answers (every `probe_period_s`, or the probe's own
        period). `progress_deadline_s` overrides progressDeadlineSeconds. Instead of (not
        with) `auto_rollout`."""
        from reranker_devtools.devcluster.kubelet import Kubelet
        from reranker_devtools.devcluster.rolling import RollingUpdates

        if self.emulator.rollout_phase is not None:
            raise ValueError("auto_rollout is on: the rolling-update mode replaces it")

        async def go() -> None:
            if self.emulator.rolling is not None:
                raise ValueError("the rolling-update mode is already on")
            kubelet = Kubelet(runtime, probe_period_s=probe_period_s)
            rolling = RollingUpdates(
                kubelet, tick_s=tick_s, progress_deadline_s=progress_deadline_s
            )
            self.emulator.rolling = rolling
            rolling.start(self.emulator)

        self._run(go)

    # --- EndpointSlices and graceful pod deletion (devcluster.endpoints)

    def endpoint_slices(self, lag_s: float = 0.0) -> None:
        """From now on act as the EndpointSlice controller: every Service's slices list its
        pods as they were `lag_s` seconds ago (the propagation to kube-proxy on a big cluster)."""
        from reranker_devtools.devcluster.endpoints import EndpointSlices

        async def go() -> None:
            if self.emulator.endpoint_slices is not None:
                self.emulator.endpoint_slices.stop()
            self.emulator.endpoint_slices = EndpointSlices(lag_s)

        self._run(go)

    def begin_pod_deletion(
        self, namespace: str, name: str, grace_s: int | None = None
    ) -> dict[str, Any]:
        """A graceful DELETE of a pod: deletionTimestamp set, the pod stays (terminating) until
        `delete` removes it, as its kubelet does once the containers exited."""
        from reranker_devtools.devcluster.endpoints import begin_pod_deletion

        return self._run(lambda: begin_pod_deletion(self.emulator, namespace, name, grace_s))

    # --- nodes, scheduling and volume attachment (devcluster.nodes)

    def add_node(
        self,
        name: str,
        *,
        gpus: int = 0,
        cpu: str = "16",
        memory: str = "64Gi",
        labels: Mapping[str, str] | None = None,
        taints: Collection[Mapping[str, str]] = (),
    ) -> None:
        """Declare a node. Until the first one, pods run without nodes (no scheduling, no
        attachment); from then on pods are scheduled onto the declared nodes and their
        volumes attached there, as devcluster.nodes describes."""
        from reranker_devtools.devcluster.nodes import add_node, make_node

        node = make_node(name, cpu=cpu, memory=memory, gpus=gpus, labels=labels, taints=taints)
        self._run(lambda: add_node(self.emulator, node))

    # --- kubectl

    def write_kubeconfig(self, path: str | Path, namespace: str = "default") -> Path:
        """Write a kubeconfig for kubectl / the operator that points at this cluster."""
        return KubeconfigFile(self.url, namespace).write(path)


def _const(value: Any) -> Any:
    async def done() -> Any:
        return value

    return done()
