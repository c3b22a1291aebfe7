"""Sampling a running gateway with py-spy and reading the hot spots out of its raw stacks."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

# Frames from these folders are the project's own; the rest is libraries and the runtime.
PROJECT_PARTS = ("gateway/", "router/", "ranking/")
# Leaf frames of threads that wait for work (thread-pool workers idling between jobs).
IDLE_LEAVES = ("Condition.wait (threading.py", "_worker (concurrent/futures/thread.py")


def py_spy() -> str | None:
    """The py-spy binary: next to this Python, or on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def record(pid: int, seconds: int, out: Path, rate: int = 100) -> None:
    """Sample `pid` for `seconds` into collapsed stacks, one frame per function."""
    binary = py_spy()
    if binary is None:
        raise FileNotFoundError("py-spy is not installed (pip install py-spy)")
    command = [binary, "record", "--pid", str(pid), "--duration", str(seconds)]
    command += ["--rate", str(rate), "--format", "raw", "--output", str(out), "--function"]
    subprocess.run(command, check=True, capture_output=True, timeout=seconds + 30)


@dataclass(frozen=True, slots=True)
class HotSpot:
    """One frame's share of the samples: alone (self) and with its callees (inclusive)."""

    frame: str
    self_pct: float
    inclusive_pct: float


def read_stacks(path: Path) -> Counter[tuple[str, ...]]:
    """Collapsed stacks (`a;b;c COUNT` lines) as a counter of frame tuples."""
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[tuple(stack.split(";"))] += int(count)
    return stacks


def busy(stacks: Counter[tuple[str, ...]]) -> Counter[tuple[str, ...]]:
    """The stacks less those of threads idling in a wait."""
    return Counter({f: c for f, c in stacks.items() if not f[-1].startswith(IDLE_LEAVES)})


def hot_spots(
    stacks: Counter[tuple[str, ...]], top: int = 15, project_only: bool = False
) -> list[HotSpot]:
    """The frames with the most inclusive samples (project frames only, if asked)."""
    total = sum(stacks.values()) or 1
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, count in stacks.items():
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    chosen = [f for f, _ in inclusive.most_common() if not project_only or _is_project(f)][:top]
    return [HotSpot(f, 100.0 * own[f] / total, 100.0 * inclusive[f] / total) for f in chosen]


def top_self(stacks: Counter[tuple[str, ...]], top: int = 15) -> list[HotSpot]:
    """The frames where the most samples land (self time), any code."""
    total = sum(stacks.values()) or 1
    own: Counter[str] = Counter()
    for frames, count in stacks.items():
        own[frames[-1]] += count
    return [HotSpot(f, 100.0 * c / total, 0.0) for f, c in own.most_common(top)]


def _is_project(frame: str) -> bool:
    """Whether a frame (`func (path:line)`) is in the gateway, router or ranking packages."""
    path = frame.rpartition("(")[2]
    return path.startswith(PROJECT_PARTS)
