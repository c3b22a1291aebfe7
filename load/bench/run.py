"""One benchmark load: `bitgate load run` in its own process, its report.json read back."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from load import report

GRACE_S = 120.0


@dataclass(frozen=True, slots=True)
class Load:
    """How one benchmark scenario loads its target."""

    concurrency: int | None = 16
    rate: float | None = None
    warmup_s: float = 2.0
    duration_s: float = 10.0
    timeout_s: float = 30.0
    bitgate: dict[str, Any] = field(default_factory=dict)
    stream: float = 0.0
    arrival: str = "uniform"
    good_uids: tuple[int, ...] = ()  # a sim pool's good miners: the good-answer share


@dataclass(frozen=True, slots=True)
class Scenario:
    """One benchmark row: its name and what the load run measured."""

    label: str
    report: dict[str, Any]

    @property
    def summary(self) -> dict[str, Any]:
        """The report's summary block."""
        return dict(self.report["summary"])

    @property
    def cpu_s(self) -> dict[str, float | None]:
        """CPU seconds per watched process over the measured phase."""
        return dict(self.report.get("cpu_s") or {})


def command(
    target: str, model: str | None, load: Load, out: Path, watch: dict[str, int]
) -> list[str]:
    """The `bitgate load run` command line of one scenario."""
    cmd = [sys.executable, "-m", "gateway", "load", "run"]
    cmd += ["--target", target, "--out", str(out)]
    cmd += ["--no-plots", "--prompts", "short", "--max-tokens", "64", "--seed", "1"]
    if model:
        cmd += ["--model", model]
    if load.rate is not None:
        cmd += ["--rate", f"{load.rate:g}", "--arrival", load.arrival]
    else:
        cmd += ["--concurrency", str(load.concurrency)]
    cmd += ["--warmup", f"{load.warmup_s:g}", "--duration", f"{load.duration_s:g}"]
    cmd += ["--timeout", f"{load.timeout_s:g}", "--stream", f"{load.stream:g}"]
    if load.good_uids:
        cmd += ["--good-uids", ",".join(str(u) for u in load.good_uids)]
    if load.bitgate:
        cmd += ["--bitgate", orjson.dumps(load.bitgate).decode()]
    for name, pid in watch.items():
        cmd += ["--watch", f"{name}={pid}"]
    return cmd


def run(
    label: str,
    target: str,
    model: str | None,
    load: Load,
    workdir: Path,
    watch: dict[str, int] | None = None,
) -> Scenario:
    """Run one scenario in a loadgen process; bounded by its own length plus a grace."""
    print(f"running: {label} ...", file=sys.stderr, flush=True)
    out = workdir / f"run-{abs(hash(label)) % 10**8}"
    limit = load.warmup_s + load.duration_s + load.timeout_s + GRACE_S
    subprocess.run(
        command(target, model, load, out, watch or {}),
        check=True,
        timeout=limit,
        stdout=subprocess.DEVNULL,
    )
    return Scenario(label, report.read(out / "report.json"))
