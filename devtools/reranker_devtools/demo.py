"""`make demo`: the whole product on one machine, no cluster and no GPU.

What is real: the CRD, the operator (kopf, our handlers, run as `reranker-operator run`), the
rendered children, `kubectl`, the inference server (`reranker-server`) and its scoring code.
What is emulated: the Kubernetes API server (kmock's emulator, extended in
`reranker_devtools.devcluster`), the Deployment controller and kubelet (we set the Deployment's
status as a rollout would), and the model: a tiny Qwen3-architecture reranker with random weights
built offline, so its ranking is arbitrary.

The server is started with the environment the operator rendered into the Deployment, except the
model path (the tiny model instead of the hub id), the device (cpu) and the port.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import yaml

from reranker_devtools import REPO
from reranker_operator.api.constants import CRD_GROUP, CRD_PLURAL, CRD_VERSION

T = TypeVar("T")

EXAMPLE = "examples/qwen3-reranker-0.6b.yaml"
QUERY = "What is the capital of France?"
DOCUMENTS = [
    "Paris is the capital and largest city of France.",
    "Berlin is the capital of Germany.",
    "The Eiffel Tower is in Paris.",
    "Bananas are rich in potassium.",
]
NAMESPACE = "default"


def say(title: str) -> None:
    """Print a step heading."""
    print(f"\n\033[1m==> {title}\033[0m", flush=True)


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(what: str, probe: Callable[[], T | None], timeout_s: float = 60.0) -> T:
    """Poll `probe` until it returns something truthy; fail with `what` after the timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.2)
    raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what}")


@contextmanager
def background(
    cmd: Sequence[str],
    env: Mapping[str, str],
    log_path: Path,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `cmd` with its output in `log_path`; terminate it (kill after 15 s) on exit."""
    with log_path.open("w") as log:
        proc = subprocess.Popen(list(cmd), env=dict(env), stdout=log, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def repo_root() -> Path:
    """The checkout (examples/ and crds/ live there)."""
    return REPO


class Kubectl:
    """kubectl against the emulated API server."""

    def __init__(self, kubeconfig: Path) -> None:
        # a discovery cache of its own: kubectl keeps one per host:port for hours, and an
        # earlier emulator on the same port may have served other resources
        self.env = dict(
            os.environ,
            KUBECONFIG=str(kubeconfig),
            KUBECACHEDIR=str(kubeconfig.parent / "kube-cache"),
        )

    def __call__(self, *args: str, show: bool = True) -> str:
        cmd = ["kubectl", *args]
        if show:
            print(f"$ {' '.join(cmd)}", flush=True)
        out = subprocess.run(cmd, env=self.env, capture_output=True, text=True, check=False)
        text = out.stdout + out.stderr
        if show:
            print(text.rstrip(), flush=True)
        if out.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {text.strip()}")
        return out.stdout


def conditions_table(status: Mapping[str, Any]) -> str:
    """The status conditions as aligned text."""
    rows = [("TYPE", "STATUS", "REASON", "MESSAGE")]
    rows += [
        (c.get("type", ""), c.get("status", ""), c.get("reason", ""), c.get("message", ""))
        for c in status.get("conditions") or []
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join("  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3] for r in rows)


def http_json(method: str, url: str, body: Any = None, timeout: float = 30.0) -> Any:
    """One JSON request with the standard library."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read() or b"null")


def server_ready(base: str) -> bool:
    """True once the server's readiness endpoint answers 200."""
    try:
        with urllib.request.urlopen(f"{base}/ready", timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def server_env(
    deployment: Mapping[str, Any], model_dir: Path, port: int, cache_dir: Path
) -> dict[str, str]:
    """The server container's plain env from the rendered Deployment, adapted to this machine."""
    from reranker_devtools.tiny_models import UNTRAINED_BUILTINS

    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container.get("env") or [] if "value" in e}
    env.update(
        MODEL_NAME=str(model_dir),
        DEVICE="cpu",
        DTYPE="float32",
        PORT=str(port),
        HOST="127.0.0.1",
        HF_HOME=str(cache_dir),
        HF_HUB_OFFLINE="1",
        SCORE_CHECK_BUILTINS=UNTRAINED_BUILTINS,  # random weights: no relevance check
    )
    return env


def run_operator_part(work: Path) -> dict[str, Any]:
    """Emulated API + real operator + kubectl; returns the rendered server Deployment."""
    from reranker_devtools.devcluster import DevCluster

    root = repo_root()
    example = yaml.safe_load((root / EXAMPLE).read_text())
    name = example["metadata"]["name"]
    with DevCluster() as cluster:
        kubeconfig = cluster.write_kubeconfig(work / "kubeconfig", namespace=NAMESPACE)
        kubectl = Kubectl(kubeconfig)
        say(f"Emulated Kubernetes API server on {cluster.url} (kmock; not a real cluster)")
        kubectl("apply", "--validate=false", "-f", str(root / "crds" / "rerankerservices.yaml"))

        say("Starting the real operator: reranker-operator run -n default --standalone")
        with background(
            [sys.executable, "-m", "reranker_operator.cli", "run", "-n", NAMESPACE, "--standalone"],
            dict(os.environ, KUBECONFIG=str(kubeconfig)),
            work / "operator.log",
        ):
            say(f"kubectl apply -f {EXAMPLE}")
            kubectl("apply", "--validate=false", "-f", str(root / EXAMPLE))
            rs = f"{CRD_GROUP}/{CRD_VERSION}/{CRD_PLURAL}"
            wait_for(
                "the operator's first pass (status.observedGeneration)",
                lambda: ((cluster.get(rs, NAMESPACE, name) or {}).get("status") or {}).get(
                    "observedGeneration"
                ),
            )
            deployment = cluster.get("apps/v1/deployments", NAMESPACE, name)
            say("What the operator created")
            kubectl("get", "rerankers")
            kubectl(
                "get",
                "deployments,services,persistentvolumeclaims,horizontalpodautoscalers",
                "-l",
                f"app.kubernetes.io/instance={name}",
            )

            for phase, note, reason in (
                ("init", "pods in the init container: downloading the model", "ModelDownloading"),
                ("starting", "model downloaded, server loading it", "DeploymentProgressing"),
                ("ready", "all replicas ready", "Available"),
            ):
                say(f"Simulated rollout: {note}")
                cluster.simulate_rollout(NAMESPACE, name, phase)
                status = wait_for(
                    f"Ready's reason to become {reason}",
                    lambda reason=reason: _status_with(cluster.get(rs, NAMESPACE, name), reason),
                    timeout_s=30,
                )
                print(conditions_table(status))
            kubectl(
                "get",
                "rerankers",
                name,
                "-o",
                'jsonpath={.status.endpoint}{"  "}{.status.replicaSummary}{"\\n"}',
            )
            deployment = cluster.get("apps/v1/deployments", NAMESPACE, name) or deployment
    return deployment


def _status_with(cr: Mapping[str, Any] | None, reason: str) -> dict[str, Any] | None:
    """The parent's status once its Ready condition carries `reason`, else None."""
    status = (cr or {}).get("status") or {}
    ready = [c for c in status.get("conditions") or [] if c.get("type") == "Ready"]
    return status if ready and ready[0].get("reason") == reason else None


def run_server_part(work: Path, deployment: Mapping[str, Any]) -> None:
    """Build a tiny offline model, start the real server with the rendered env, query it."""
    say("Building a tiny Qwen3-architecture reranker offline (random weights)")
    model_dir = work / "tiny-qwen3-reranker"
    from reranker_devtools.tiny_models import build_tiny_model

    build_tiny_model("qwen3", model_dir)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, **server_env(deployment, model_dir, port, work / "hf-cache"))
    say(f"Starting the real server with the Deployment's env: reranker-server serve on {base}")
    with background(
        [sys.executable, "-m", "reranker_server.cli", "serve"], env, work / "server.log"
    ) as server:
        wait_for(
            "the server to be ready",
            lambda: (
                server.poll() is None
                and server_ready(base)
                or _fail_if_exited(server, work / "server.log")
            ),
            timeout_s=120,
        )
        body = {"query": QUERY, "documents": DOCUMENTS, "top_n": 3, "return_documents": True}
        say("curl -s localhost/v1/rerank -d '" + json.dumps(body) + "'")
        answer = http_json("POST", f"{base}/v1/rerank", body)
        for rank, result in enumerate(answer["results"], 1):
            print(
                f"  {rank}. [{result['index']}] {result['relevance_score']:.4f}  "
                f"{result['document']['text']}"
            )
        print("  (random weights: the order is arbitrary; a real model ranks Paris first)")
        info = http_json("GET", f"{base}/info")
        print(
            f"  /info: family={info.get('family')} dtype={info.get('dtype')} "
            f"device={info.get('device')} max_length={info.get('max_length')}"
        )


def _fail_if_exited(proc: subprocess.Popen[bytes], log: Path) -> None:
    if proc.poll() is not None:
        raise RuntimeError(f"the server exited ({proc.returncode}):\n{log.read_text()[-3000:]}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; returns the exit code."""
    del argv
    if shutil.which("kubectl") is None:
        print("the demo needs kubectl on PATH", file=sys.stderr)
        return 2
    print(__doc__)
    work = Path(tempfile.mkdtemp(prefix="reranker-demo-"))
    try:
        deployment = run_operator_part(work)
        run_server_part(work, deployment)
    except (RuntimeError, TimeoutError, OSError, KeyError, subprocess.CalledProcessError) as exc:
        print(f"\ndemo failed: {exc}\nlogs in {work}", file=sys.stderr)
        return 1
    say("Done. Emulated: the API server, the Deployment controller, the model weights.")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
