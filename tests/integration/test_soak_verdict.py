"""The soak's verdict can fail: a gateway killed mid-run, or one that answers 503 to all."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from load.procs import Gateway, SimPool, gateway, sim_pool
from load.soak.run import IDLE_SETTLE_S, soak

pytestmark = pytest.mark.integration

ARGS = ("--top-k", "4", "--sample", "2", "--timeout-s", "3", "--ranker", "heuristic")
ENV = {"BITGATE_EMBEDDING_MODEL": "false"}
# Warm-up 2 s, a drain of about 7 s, then 10 s measured: a kill at 13 s lands mid-measure.
SHORT = {"duration_s": 12.0, "warmup_s": 2.0, "interval_s": 1.0, "probe_s": 0.0, "rate": 16.0}
KILL_AT_S = 13.0


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[SimPool]:
    with sim_pool(tmp_path, 4) as running:
        yield running
    assert running.proc.stdout is not None
    running.proc.stdout.close()


def run_soak(gw: Gateway, pool: SimPool) -> dict[str, Any]:
    return asyncio.run(
        soak(gw.url, pool.name, gw.proc.pid, **SHORT, idle_wait_s=IDLE_SETTLE_S)  # type: ignore[arg-type]
    )


@pytest.mark.timeout(90)
def test_the_soak_fails_when_its_gateway_is_killed_mid_run(pool: SimPool, tmp_path: Path) -> None:
    with gateway(pool.metagraph, tmp_path / "gw.log", ARGS, ENV) as gw:
        kill = threading.Timer(KILL_AT_S, os.kill, (gw.proc.pid, signal.SIGKILL))
        kill.start()
        try:
            report = run_soak(gw, pool)
        finally:
            kill.cancel()
    assert not report["passed"]
    assert any("died or was restarted" in reason for reason in report["reasons"]), report["reasons"]
    assert any("client-side" in reason for reason in report["reasons"])
    served = sum(n for key, n in report["totals"].items() if key.endswith(":200"))
    assert served > 0  # it ran, then died


@pytest.mark.timeout(90)
def test_the_soak_fails_when_the_gateway_answers_503_to_everything(
    pool: SimPool, tmp_path: Path
) -> None:
    # No range allows the loopback miners: every request is a 503 no_eligible_miner.
    env = {**ENV, "BITGATE_AXON_ALLOW": "10.0.0.0/8"}
    with gateway(pool.metagraph, tmp_path / "gw.log", ARGS, env) as gw:
        report = run_soak(gw, pool)
    assert not report["passed"]
    assert report["totals"].get("unexpected", 0) == 0  # 503 is an answer a request may get
    assert [r for r in report["reasons"] if "502/503/504" in r], report["reasons"]
    assert report["totals"].get("best_of:503", 0) > 0
