"""The benchmark's child commands are ones the CLI accepts (a renamed module broke make bench)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from load.bench.run import Load, command
from tests.support import ROOT

# Port 9 on loopback: nothing listens, every request is a quick connection error.
TARGET = "http://127.0.0.1:9/v1"


def test_a_benchmark_load_is_a_command_the_cli_accepts(tmp_path: Path) -> None:
    load = Load(concurrency=1, warmup_s=0, duration_s=0.3, timeout_s=1)
    argv = command(TARGET, "sim", load, tmp_path, {})
    # The command as the benchmark runs it, for 0.3 s: every flag parsed and used.
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["summary"]["ok"] == 0 and report["summary"]["errors"] > 0
