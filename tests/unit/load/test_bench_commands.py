"""The benchmark's child commands are ones the CLI accepts (a renamed module broke make bench)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from load.bench.run import Load, command
from tests.support import ROOT


def test_a_benchmark_load_is_a_command_the_cli_accepts(tmp_path: Path) -> None:
    argv = command("http://127.0.0.1:9/v1", "sim", Load(), tmp_path, {})
    # The same program and options, asking only for help: nothing is sent anywhere.
    done = subprocess.run(
        [*argv, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "--concurrency" in done.stdout
