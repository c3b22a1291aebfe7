"""`bitgate load` end to end: a sim pool directly, a gateway, compare, capacity, Locust."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.commands.cli import main as bitgate
from miners.sim.pool import SimPool
from tests.support import ROOT, GatewayProcess, profiles

pytestmark = pytest.mark.integration

PNG = b"\x89PNG\r\n\x1a\n"
StartPool = Callable[..., tuple[SimPool, Path]]


def read(folder: Path) -> dict[str, Any]:
    document: dict[str, Any] = orjson.loads((folder / "report.json").read_bytes())
    return document


def assert_counts_add_up(document: dict[str, Any]) -> None:
    s = document["summary"]
    assert s["requests"] == s["ok"] + s["errors"] == sum(document["statuses"].values())
    assert s["errors"] == sum(document["errors"].values())
    assert s["sent"] + s["not_sent"] == s["requests"]
    series = document["timeseries"]
    assert sum(series["done"]) == s["requests"] and sum(series["sent"]) == s["sent"]


def assert_plots(folder: Path, names: tuple[str, ...]) -> None:
    page = (folder / "report.html").read_text()
    for name in names:
        png = folder / "plots" / f"{name}.png"
        assert png.read_bytes()[:8] == PNG and png.stat().st_size > 5_000
        assert f"plots/{name}.png" in page


def test_a_pool_directly_with_failures_and_streams(sim_pool: StartPool, tmp_path: Path) -> None:
    _, metagraph = sim_pool(
        profiles({"latency": 5}, {"latency": 5}, {"failure": "error", "latency": 5})
    )
    out = tmp_path / "pool"
    argv = [
        "--target", str(metagraph), "--concurrency", "4", "--requests", "90",
        "--duration", "5", "--stream", "0.5", "--prompts", "mixed", "--out", str(out),
    ]  # fmt: skip
    assert bitgate(["load", *argv]) == 0
    document = read(out)
    assert_counts_add_up(document)
    s = document["summary"]
    assert s["requests"] == 90 and s["errors"] == 30 and document["errors"] == {"http_500": 30}
    assert s["ttft_ms"]["p50"] is not None and s["tokens"] > 0
    miners = {m["uid"]: m for m in document["miners"]}
    assert [miners[u]["chosen"] for u in (0, 1, 2)] == [30, 30, 30]
    assert miners[2]["error_rate"] == 1.0 and miners[0]["errors"] == 0
    assert miners[0]["url"].endswith("/v1")
    assert_plots(out, ("latency_over_time", "latency_cdf", "throughput", "errors", "miners"))


def test_a_gateway_open_loop_then_compare_and_capacity(
    sim_pool: StartPool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, metagraph = sim_pool(profiles({"latency": 5}, {"latency": 20}, {"latency": 40}))
    gateway = GatewayProcess("--metagraph", str(metagraph), "--ranker", "heuristic")
    try:
        url = gateway.base_url + "/v1"
        out = tmp_path / "gw"
        argv = [
            "run", "--target", url, "--model", "sim", "--rate", "40", "--arrival", "uniform",
            "--duration", "1.5", "--warmup", "0.5", "--stream", "0.5", "--out", str(out),
            "--bitgate", '{"strategy": "best_of", "wait": "all"}',
        ]  # fmt: skip
        assert bitgate(["load", *argv]) == 0
        capacity = tmp_path / "cap"
        argv = [
            "capacity", "--target", url, "--model", "sim", "--start", "10", "--factor", "2",
            "--max-rate", "20", "--step-s", "0.5", "--refine", "0", "--out", str(capacity),
        ]  # fmt: skip
        assert bitgate(["load", *argv]) == 0
    finally:
        gateway.stop()
    document = read(out)
    assert_counts_add_up(document)
    s = document["summary"]
    assert (
        s["requests"] == 59 and s["errors"] == 0 and s["offered_rps"] == pytest.approx(39.3, 0.01)
    )
    assert document["warmup"]["sent"] == 19
    assert s["overhead_ms"]["p50"] is not None and s["ttft_ms"]["p99"] is not None
    miners = {m["uid"]: m for m in document["miners"]}
    assert sorted(miners) == [0, 1, 2]
    assert sum(m["won"] for m in miners.values()) == s["ok"]
    assert all(m["chosen"] == s["ok"] for m in miners.values())  # best_of asks all three
    assert miners[2]["latency_ms"]["p50"] > miners[0]["latency_ms"]["p50"]
    assert_plots(out, ("latency_over_time", "latency_cdf", "throughput", "errors", "miners"))

    found = orjson.loads((capacity / "capacity.json").read_bytes())
    assert [step["rate"] for step in found["targets"][0]["steps"]] == [10, 20]
    assert found["targets"][0]["capacity_rps"] == 20
    assert (capacity / "capacity.png").read_bytes()[:8] == PNG

    capsys.readouterr()
    assert bitgate(["load", "compare", str(out), str(out / "report.json")]) == 0
    table = capsys.readouterr().out
    assert "| requests | 59 | 59 | 1.00x |" in table and "latency p99 ms" in table


def test_the_locustfile_drives_the_same_scenario(sim_pool: StartPool, tmp_path: Path) -> None:
    _, metagraph = sim_pool(profiles({"latency": 5}, {"latency": 5}))
    scenario = tmp_path / "s.yaml"
    scenario.write_text(f"target: {metagraph}\nstream: 0.5\nconcurrency: 2\n")
    locust = Path(sys.executable).parent / "locust"
    command = [str(locust), "-f", str(ROOT / "load" / "locustfile.py"), "--headless"]
    # No --only-summary: with it, Locust 2.47 writes the CSV with no requests in it.
    command += ["-u", "2", "-r", "2", "-t", "2s", "--csv", str(tmp_path / "l")]
    env = {**os.environ, "BITGATE_SCENARIO": str(scenario)}
    subprocess.run(command, env=env, cwd=ROOT, timeout=60, check=True, capture_output=True)
    stats = (tmp_path / "l_stats.csv").read_text()
    assert "miner 0 json" in stats and "miner 1 stream" in stats and "TTFT" in stats
    aggregated = stats.strip().splitlines()[-1].split(",")
    assert int(aggregated[2]) > 10 and int(aggregated[3]) == 0  # requests, failures


def test_the_locustfile_imports_without_a_scenario() -> None:
    code = "import sys, load.locustfile as f; "
    code += "print(hasattr(f, 'BitgateUser'), 'gevent' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["False", "False"]
