"""loadtest's device headroom: from the server's reranker_device_memory_bytes before and after
a run. Against the real server on this CPU machine it says there is none to measure; the
arithmetic is checked on expositions shaped like a CUDA server's."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import asdict

import pytest

from reranker_contract import Metric
from reranker_operator import cli
from reranker_operator.tools.loadtest import metrics, report
from reranker_operator.tools.promtext import parse_by_label
from server_helpers import serving

GIB = 2**30


@pytest.fixture(scope="module")
def url(tiny_qwen3_path) -> Iterator[str]:
    yield from serving(tiny_qwen3_path)


def exposition(total: int, used: int) -> str:
    name = Metric.DEVICE_MEMORY
    return (
        f"# TYPE {name} gauge\n"
        f'{name}{{kind="total"}} {total}\n{name}{{kind="used"}} {used}\n'
        f'{name}{{kind="free"}} {total - used}\n'
    )


def scrape_of(text: str) -> metrics.Scrape:
    return metrics.Scrape({}, {}, parse_by_label(text, str(Metric.DEVICE_MEMORY), "kind"))


def test_headroom_is_the_lower_free_memory_around_the_run() -> None:
    before = scrape_of(exposition(18 * GIB, 2 * GIB))
    after = scrape_of(exposition(18 * GIB, 6 * GIB))  # the allocator kept the peak batches
    room = metrics.headroom(before, after)
    assert room is not None
    assert (room.total_bytes, room.free_before_bytes, room.free_after_bytes) == (
        18 * GIB,
        16 * GIB,
        12 * GIB,
    )
    assert room.headroom_bytes == 12 * GIB and room.headroom_share == pytest.approx(2 / 3)
    line = report._device(asdict(room))
    assert line.startswith("12.00 GiB of 18.00 GiB free (67% headroom")


def test_no_device_memory_no_headroom() -> None:
    cpu = scrape_of("")
    assert metrics.headroom(cpu, cpu) is None
    assert metrics.headroom(None, scrape_of(exposition(GIB, 0))) is None
    assert "no device memory reported" in report._device(None)


def test_loadtest_against_a_cpu_server_reports_no_headroom(url: str) -> None:
    out = io.StringIO()
    assert cli.main(["loadtest", url, "-n", "8", "--documents", "5", "--json"], stdout=out) == 0
    fig = json.loads(out.getvalue())
    assert fig["server"] is not None and fig["server"]["device"] is None
    text = io.StringIO()
    assert cli.main(["loadtest", url, "-n", "4", "--documents", "5"], stdout=text) == 0
    assert "device      no device memory reported (a CPU server)" in text.getvalue()
