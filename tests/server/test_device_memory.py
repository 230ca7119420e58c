"""The device memory the server reports: /info's device_memory and the
reranker_device_memory_bytes gauge. On a CPU (these tests) every figure is None with the reason
and the gauge has no samples; the CUDA reading is checked through the function it goes
through, fed a cudaMemGetInfo-shaped reading."""

from __future__ import annotations

from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from reranker_contract import Metric
from reranker_server import device_memory, metrics

QUERY = "what is a reranker"
DOCS = ["a reranker orders documents", "bananas are yellow"]


def samples(name: str) -> list[tuple[dict[str, str], float]]:
    text = generate_latest(REGISTRY).decode()
    return [
        (s.labels, s.value)
        for family in text_string_to_metric_families(text)
        if family.name == name
        for s in family.samples
    ]


def test_info_says_there_is_no_device_memory_on_cpu(qwen_client) -> None:
    info = qwen_client.get("/info").json()
    assert info["device"] == "cpu"
    mem = info["device_memory"]
    assert mem["device"] == "cpu"
    assert mem["total_bytes"] is None and mem["free_bytes"] is None and mem["used_bytes"] is None
    assert "cpu" in mem["note"]


def test_gauge_is_exported_without_samples_on_cpu(qwen_client) -> None:
    qwen_client.post("/v1/rerank", json={"query": QUERY, "documents": DOCS})
    assert metrics.DEVICE_MEMORY.device == "cpu"  # set when the model loaded
    text = generate_latest(REGISTRY).decode()
    assert f"# TYPE {Metric.DEVICE_MEMORY} gauge" in text
    assert samples(Metric.DEVICE_MEMORY) == []


def test_a_cuda_reading_gives_total_used_and_free() -> None:
    calls = []

    def mem_get_info(index: int) -> tuple[int, int]:  # torch.cuda.mem_get_info's shape
        calls.append(index)
        return 15 * 2**30, 18 * 2**30

    reading = device_memory.read("cuda:0", 0, mem_get_info)
    assert calls == [0]
    assert reading.total_bytes == 18 * 2**30 and reading.free_bytes == 15 * 2**30
    assert reading.used_bytes == 3 * 2**30
    assert reading.as_json()["used_bytes"] == 3 * 2**30


def test_readings_without_a_device_say_why() -> None:
    assert device_memory.current(None).note == "no model loaded yet"
    assert device_memory.current("cpu").total_bytes is None
    cuda = device_memory.current("cuda:0")  # this machine has no CUDA
    assert cuda.total_bytes is None and "not available" in cuda.note


def test_collector_reads_nothing_off_cuda() -> None:
    collector = device_memory.DeviceMemoryCollector()
    for device in (None, "cpu", "cuda:0"):  # cuda:0 without a CUDA context: no reading
        collector.device = device
        (family,) = collector.collect()
        assert family.name == Metric.DEVICE_MEMORY and family.samples == []
