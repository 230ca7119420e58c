"""`reranker-operator loadtest` against the real server on a tiny model."""

from __future__ import annotations

import io
import json
import math
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reranker_operator import cli
from reranker_operator.tools.loadtest.report import percentile
from reranker_operator.tools.promtext import histogram_quantile
from server_helpers import serving


@pytest.fixture(scope="module")
def url(tiny_qwen3_path) -> Iterator[str]:
    yield from serving(tiny_qwen3_path, api_key="lt-key-0001", max_client_batch_size=64)


@pytest.fixture(scope="module")
def narrow_url(tiny_qwen3_path) -> Iterator[str]:
    """A server that admits one request at a time (more: 429)."""
    yield from serving(tiny_qwen3_path, max_concurrent_requests=1, max_client_batch_size=64)


def loadtest(*args: str) -> tuple[int, dict]:
    out = io.StringIO()
    status = cli.main(["loadtest", *args, "--json"], stdout=out)
    return status, json.loads(out.getvalue())


def test_figures_agree_with_the_servers_own_metrics(url: str) -> None:
    status, fig = loadtest(
        url, "-c", "4", "-n", "24", "--documents", "5", "--api-key", "lt-key-0001"
    )
    assert status == 0
    assert (fig["requests"], fig["ok"], fig["rejected"], fig["failed"]) == (24, 24, 0, 0)
    assert fig["by_status"] == {"200": 24}
    assert math.isclose(fig["pairs_per_s"] * fig["wall_s"], 24 * 5, rel_tol=1e-9)
    server = fig["server"]
    assert server["requests"] == 24 and server["documents"] == 24 * 5
    # tokens: the sum of the answers' usage equals what the server counted
    assert math.isclose(fig["tokens_per_s"] * fig["wall_s"], server["tokens"], rel_tol=1e-9)
    assert server["queue_time_mean_s"] is not None and server["queue_time_mean_s"] >= 0
    lat = fig["latency_s"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p95"] <= lat["p99"]


def test_429s_are_counted_apart_under_overload(narrow_url: str) -> None:
    status, fig = loadtest(narrow_url, "-c", "8", "-n", "48", "--documents", "4")
    assert status == 0
    assert fig["rejected"] > 0 and fig["ok"] > 0 and fig["failed"] == 0
    assert fig["ok"] + fig["rejected"] == 48 == fig["requests"]
    assert fig["by_status"]["429"] == fig["rejected"]
    assert fig["server"]["requests"] == fig["ok"]  # the server scored only what it admitted


@pytest.mark.parametrize("api", ["v2", "tei", "rank"])
def test_every_api_shape(url: str, api: str) -> None:
    status, fig = loadtest(
        url, "--api", api, "-c", "2", "-n", "4", "--documents", "3", "--api-key", "lt-key-0001"
    )
    assert status == 0 and fig["ok"] == 4
    assert fig["server"]["documents"] == 12
    assert fig["tokens_per_s"] is not None and fig["tokens_per_s"] > 0


def test_a_wrong_key_is_a_failure_not_a_success(url: str) -> None:
    status, fig = loadtest(url, "-c", "2", "-n", "4", "--api-key", "wrong")
    assert status == 1 and fig["ok"] == 0 and fig["failed"] == 4
    assert fig["by_status"] == {"401": 4}


def test_a_duration_bounds_the_run(url: str) -> None:
    status, fig = loadtest(
        url, "-c", "2", "-d", "1.5", "--documents", "2", "--api-key", "lt-key-0001"
    )
    assert status == 0 and fig["requests"] > 0
    assert fig["wall_s"] < 1.5 + 10  # the last requests in flight finish, nothing new starts


def test_target_p95_ramps_and_sizes(url: str) -> None:
    status, fig = loadtest(
        url,
        "--target-p95",
        "60",
        "--peak-pairs-per-second",
        "10000",
        "--max-concurrency",
        "4",
        "--step-requests",
        "8",
        "--documents",
        "4",
        "--api-key",
        "lt-key-0001",
    )
    assert status == 0
    assert [s["concurrency"] for s in fig["steps"]] == [1, 2, 4]
    best = fig["sustained"]
    assert best["pairs_per_s"] == max(s["pairs_per_s"] for s in fig["steps"])
    assert fig["replicas"] == math.ceil(10000 / best["pairs_per_s"])
    scaling = fig["autoscaling"]
    assert scaling["maxReplicas"] == fig["replicas"]
    # the pairs one replica drains in a quarter of the 60 s target, at its sustained rate
    assert scaling["queuedPairsPerPod"] == max(1, round(0.25 * 60 * best["pairs_per_s"]))
    assert scaling["p95LatencySeconds"] == "60"


def test_an_unreachable_target_says_so(url: str) -> None:
    status, fig = loadtest(
        url,
        "--target-p95",
        "0.000001",
        "--max-concurrency",
        "2",
        "--step-requests",
        "4",
        "--api-key",
        "lt-key-0001",
    )
    assert status == 1 and fig["sustained"] is None and fig["replicas"] is None
    assert [s["concurrency"] for s in fig["steps"]] == [1]


def test_ctrl_c_prints_the_figures_so_far(url: str) -> None:
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("reranker-operator")),
            "loadtest",
            url,
            "-d",
            "120",
            "-c",
            "2",
            "--documents",
            "2",
            "--api-key",
            "lt-key-0001",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    time.sleep(4)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.startswith("interrupted after"), out
    assert "requests/s" in out and "pairs/s" in out


def test_percentiles_and_histogram_quantile_by_hand() -> None:
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 50) == 3.0
    assert math.isclose(percentile([1.0, 2.0, 3.0, 4.0, 5.0], 90), 4.6)
    assert percentile([], 95) is None
    # 10 observations: 4 <= 0.1, 9 <= 0.5, all <= 1; the 95th (9.5th) lies halfway in (0.5, 1]
    assert math.isclose(histogram_quantile(0.95, {0.1: 4, 0.5: 9, 1.0: 10, float("inf"): 10}), 0.75)
