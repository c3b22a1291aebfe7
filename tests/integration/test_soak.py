"""The short soak: three minutes of mixed traffic, then idle past every keep-alive: no growth."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT

pytestmark = pytest.mark.integration


@pytest.mark.timeout(540)
def test_three_minutes_of_mixed_traffic_leave_nothing_growing(tmp_path: Path) -> None:
    flags = ["--duration-s", "180", "--warmup-s", "60", "--interval-s", "10", "--probe-s", "10"]
    run = subprocess.run(
        [sys.executable, "-m", "load.soak", *flags, "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=520,
    )
    report = json.loads((tmp_path / "report.json").read_text())
    assert run.returncode == 0, run.stdout + run.stderr
    assert report["passed"] and report["reasons"] == []
    assert report["totals"]["unexpected"] == 0 and report["totals"]["client_errors"] == 0
    assert report["under_load"]["growth"]["rss_mib"]["ok"]
    # At idle, past every keep-alive: fds, sockets, tasks and miner connections all judged.
    idle = report["idle"]["growth"]
    assert set(idle) == {"tasks", "fds", "sockets", "miner_conns", "close_wait"}
    assert all(figure["ok"] for figure in idle.values())
    assert all(sample["alive"] and not sample["missing"] for sample in report["samples"])
    assert (tmp_path / "soak.png").stat().st_size > 0
