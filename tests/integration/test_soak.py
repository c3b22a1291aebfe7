"""The short soak: three minutes of mixed traffic, and nothing the gateway holds grows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT

pytestmark = pytest.mark.integration


@pytest.mark.timeout(420)
def test_three_minutes_of_mixed_traffic_leave_nothing_growing(tmp_path: Path) -> None:
    flags = ["--duration-s", "180", "--warmup-s", "60", "--interval-s", "10", "--probe-s", "10"]
    run = subprocess.run(
        [sys.executable, "-m", "load.soak", *flags, "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=400,
    )
    report = json.loads((tmp_path / "report.json").read_text())
    assert run.returncode == 0, run.stdout + run.stderr
    assert report["passed"]
    assert report["totals"]["unexpected"] == 0
    assert report["under_load"]["growth"]["rss_mib"]["ok"]
    assert all(figure["ok"] for figure in report["idle"]["growth"].values())
    assert (tmp_path / "soak.png").stat().st_size > 0
