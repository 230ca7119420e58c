"""bench/hostile.py runs (so it cannot rot): a short run against the real server on the tiny
Qwen3 model, every hostile kind mixed in, in its three configurations (default; per-client
limits behind a trusted ingress; the same with API keys required); no 5xx, /ready 200
throughout, the capacity measured, the well-behaved load offered below it, the hostile clients
paced, a control round of well-behaved clients alone at the hostile round's server CPU, the
report written."""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

import hostile  # noqa: E402  (bench/ is a folder of scripts)


def test_hostile_bench_short_run(tiny_qwen3_path: Path, tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    argv = [
        sys.executable,
        str(REPO / "bench" / "hostile.py"),
        *("--model", str(tiny_qwen3_path), "--duration", "6", "--rounds", "2"),
        *("--clients", "2", "--docs", "4", "--slowloris", "2", "--settle", "0.5"),
        *("--calibrate", "1.5", "--load", "0.5", "--hostile-rate", "4", "--hostile-mbps", "40"),
        *("--out-dir", str(tmp_path), "--log-dir", str(tmp_path / "logs"), "--control"),
        *("--hostile-lead", "0.5"),
    ]
    cpus = sorted(os.sched_getaffinity(0))
    pinned = len(cpus) >= 2  # the server on one CPU, the clients on another
    if pinned:
        argv += ["--server-cpus", str(cpus[-1]), "--client-cpus", str(cpus[0])]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "CPU: " in done.stdout and "limits in force: max_request_bytes=" in done.stdout
    (report,) = tmp_path.glob("hostile-*.json")
    assert report.with_suffix(".md").exists()
    result = json.loads(report.read_text())
    assert "capacity: " in done.stdout and result["calibration"]["capacity_rps"] > 0
    offered = result["calibration"]["offered_rps"]
    # both figures are reported to 2 decimals, the offer computed from the unrounded capacity
    assert abs(offered - 0.5 * result["calibration"]["capacity_rps"]) <= 0.01
    configs = result["configurations"]
    assert result["environment"]["client_cpus"] == (str(cpus[0]) if pinned else "all")
    assert list(configs) == ["default", "per-client-limits", "api-keys"]
    text = report.with_suffix(".md").read_text()
    assert result["settings"]["hostile_lead"] == 0.5 and "before each hostile round" in text
    assert "| api-keys | control | " in text.split("Per round")[1]
    for config in configs.values():
        summary, proc = config["summary"], config["hostile_process"]
        # every thread of each configuration's server on the CPU it was given, and no other
        assert config["server_cpus"] == (str(cpus[-1]) if pinned else ",".join(map(str, cpus)))
        assert summary["server_errors"] == 0 and summary["ready_always_200"]
        answers, intensity = proc["answers"], proc["intensity"]
        assert proc["nice"] == 19 and proc["rate_per_client"] == 4.0
        assert answers["body_20mb"].get("413", 0) > 0
        malformed = {kind: got for kind, got in answers.items() if kind.startswith("malformed:")}
        assert malformed and all(code.startswith("4") for got in malformed.values() for code in got)
        # scored where the server takes anyone; where it wants keys, a spoofer holds none and
        # is refused (401, then 429 once its address is backed off)
        if config is configs["api-keys"]:
            assert answers["xff_spoofed"] and set(answers["xff_spoofed"]) <= {"401", "429"}
        else:
            assert answers["xff_spoofed"].get("200", 0) > 0
        assert 0 < intensity["xff_spoofed"]["attempts_per_s"] <= 2 * 4.0  # two clients, paced
        assert intensity["body_20mb_chunked"]["mb_per_s"] <= 40.0
        # the control round: well-behaved clients alone, at a rate raised by the hostile
        # round's extra server CPU (never below the offered one)
        assert list(config["runs"]) == ["clean", "hostile", "control"]
        assert summary["control_offered_rps"] >= offered - 0.01
        assert summary["control_p95_ratio"] > 0 and summary["control_server_cpu_vs_hostile"] > 0
        assert summary["control_5xx"] == 0 and summary["control_ready_always_200"]
        # each ratio with its interval over resampled round pairs, and what that says of 1.2
        for key in ("p95_ratio", "control_p95_ratio"):
            low, high = summary[f"{key}_interval90"]
            assert 0 < low <= high
        assert summary["p95_target_verdict"].split(":")[0] in ("met", "missed", "undecided")
        for run in config["runs"].values():
            good = run["well_behaved"]
            assert good["requests_ok"] > 0 and run["server_rss_peak_mib"] > 0
            assert run["steal_cpu_s"] >= 0 and len(run["steal_cpu_s_per_round"]) == 2
            assert len(good["p95_s_per_round"]) == len(run["server_cpu_s_per_round"]) == 2
            assert good["requests_scheduled"] > 0 and good["offered_rps"] > 0
    # behind the trusted ingress, limits 3 x one well-behaved client's offer: each client is
    # its own address, so no well-behaved request is refused, whatever the hostile ones spend
    per_client, limited = result["per_client_limits"], configs["per-client-limits"]
    client_rpm = offered / 2 * 60
    assert per_client["requests_per_minute"] == math.ceil(3 * client_rpm)
    assert per_client["pairs_per_minute"] == 4 * per_client["requests_per_minute"]
    assert limited["limits"]["trusted_proxies"] == "127.0.0.1"
    assert limited["limits"]["rate_limit_pairs_per_minute"] == per_client["pairs_per_minute"]
    tokens = result["calibration"]["tokens_per_request"]  # the server's usage, averaged
    assert tokens > 4  # four pairs, each at least its prompt's tokens
    assert per_client["tokens_per_minute"] == math.ceil(3 * client_rpm * tokens)
    assert limited["limits"]["rate_limit_tokens_per_minute"] == per_client["tokens_per_minute"]
    assert limited["well_behaved_addresses"] == ["10.0.0.1", "10.0.0.2"]
    assert limited["hostile_process"]["client_addresses"]["xff_spoofed"] == ["10.1.0.6", "10.1.0.7"]
    for run in limited["runs"].values():
        assert "429" not in run["well_behaved"]["other_answers"]
    # with keys: each well-behaved client is its key, none refused; the spoofers guess keys and
    # are turned away before their bodies are read; the other hostile clients are tenants,
    # each with a key of its own, whose requests the server reads and works on
    keyed = configs["api-keys"]
    assert keyed["well_behaved_keys"] == 2
    assert keyed["limits"]["rate_limit_tokens_per_minute"] == per_client["tokens_per_minute"]
    credentials = keyed["hostile_process"]["credentials"]
    assert credentials["xff_spoofed"] == ["guessed", "guessed"]
    assert credentials["abandoned_large"] == ["key", "key"] and "slowloris" not in credentials
    answers = keyed["hostile_process"]["answers"]
    assert "401" not in answers["abandoned_large"] and "401" not in answers["body_near_limit"]
    assert answers["malformed:lone_surrogate_doc"] == {
        "422": sum(answers["malformed:lone_surrogate_doc"].values())
    }
    for run in keyed["runs"].values():
        assert not run["well_behaved"]["other_answers"], run["well_behaved"]["other_answers"]


def test_cpu_lists_read_as_taskset_takes_them() -> None:
    assert hostile.parse_cpus("1") == {1}
    assert hostile.parse_cpus("0,2-4") == {0, 2, 3, 4}
    assert hostile.cpu_list(frozenset({3, 1, 2})) == "1,2,3" and hostile.cpu_list(None) is None
    for bad in ("", "x", "1-", "-1", "1,,2", "4-2", "1-2-3"):
        with pytest.raises(argparse.ArgumentTypeError, match="not a CPU list"):
            hostile.parse_cpus(bad)


def test_cpus_the_machine_lacks_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    missing = max(os.sched_getaffinity(0)) + 1
    with pytest.raises(SystemExit):
        hostile.parse_args(["--server-cpus", str(missing)])
    assert f"--server-cpus: CPUs {missing} are not this machine's" in capsys.readouterr().err
