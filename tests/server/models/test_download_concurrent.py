"""A shared (ReadWriteMany) model cache is filled by whichever pods start first: several
`reranker-server download` processes writing one cache at once must leave it whole. The Hub
client (huggingface_hub) takes a file lock per blob, downloads to a process-unique temporary
file and renames it into place; this runs the real command, four processes at once, against a
local stand-in for the Hub that serves the tiny model's files slowly, so the downloads overlap."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO, SHA = "acme/tiny-reranker", "0123456789abcdef0123456789abcdef01234567"
FILLERS = 4


class FakeHub(ThreadingHTTPServer):
    """The Hub endpoints snapshot_download calls: the revision, its file tree, and each file by
    its resolve URL (HEAD for its metadata, GET for its bytes)."""

    daemon_threads = True

    def __init__(self, model_dir: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files = {
            p.relative_to(model_dir).as_posix(): p.read_bytes()
            for p in sorted(model_dir.rglob("*"))
            if p.is_file()
        }
        self.gets: Counter[str] = Counter()
        self.lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    server: FakeHub

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def _file(self) -> tuple[str, bytes] | None:
        prefix = f"/{REPO}/resolve/"
        if not self.path.startswith(prefix):
            return None
        name = self.path[len(prefix) :].split("/", 1)[1].split("?")[0]
        data = self.server.files.get(name)
        return None if data is None else (name, data)

    def _headers(self, data: bytes) -> None:
        self.send_response(200)
        self.send_header("X-Repo-Commit", SHA)
        self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()

    def _json(self, value: object) -> None:
        body = json.dumps(value).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self) -> None:
        found = self._file()
        if found is None:
            self.send_error(404)
            return
        self._headers(found[1])

    def do_GET(self) -> None:
        if self.path.split("?")[0] in (
            f"/api/models/{REPO}/revision/main",
            f"/api/models/{REPO}/revision/{SHA}",
        ):
            self._json(
                {"id": REPO, "sha": SHA, "siblings": [{"rfilename": n} for n in self.server.files]}
            )
            return
        if self.path.split("?")[0] == f"/api/models/{REPO}/tree/{SHA}":
            self._json(
                [
                    {
                        "type": "file",
                        "path": n,
                        "size": len(d),
                        "oid": hashlib.sha1(b"blob %d\0" % len(d) + d).hexdigest(),
                    }
                    for n, d in self.server.files.items()
                ]
            )
            return
        found = self._file()
        if found is None:
            self.send_error(404)
            return
        name, data = found
        with self.server.lock:
            self.server.gets[name] += 1
        self._headers(data)
        step = max(1, len(data) // 8)
        for i in range(0, len(data), step):  # slowly: the fillers overlap
            self.wfile.write(data[i : i + step])
            self.wfile.flush()
            time.sleep(0.02)


@pytest.fixture
def hub(tiny_qwen3_path: Path) -> Iterator[FakeHub]:
    server = FakeHub(tiny_qwen3_path)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def test_concurrent_fillers_leave_one_whole_cache(hub: FakeHub, tmp_path: Path) -> None:
    cache = tmp_path / "models-cache"
    env = {
        **os.environ,
        "HF_ENDPOINT": f"http://127.0.0.1:{hub.server_address[1]}",
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HOME": str(cache),
    }
    env.update(HF_HUB_OFFLINE="0", TRANSFORMERS_OFFLINE="0")  # the suite runs offline
    cmd = [
        sys.executable,
        "-c",
        "import sys; from reranker_server.cli import main; sys.exit(main())",
        "download",
        f"--model={REPO}",
        "--revision=main",
        f"--cache-dir={cache}",
    ]
    procs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(FILLERS)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * FILLERS, [err[-2000:] for _o, err in outs]
    paths = {out.strip().splitlines()[-1] for out, _err in outs}
    assert len(paths) == 1  # one snapshot, the same for every filler
    snapshot = Path(paths.pop())
    assert snapshot.name == SHA
    for name, data in hub.files.items():
        assert (snapshot / name).read_bytes() == data, name
    assert not [p for p in cache.rglob("*") if p.name.endswith(".incomplete")]
    # the per-blob lock held on this file system: each file crossed the network once
    assert hub.gets == Counter(dict.fromkeys(hub.files, 1))
