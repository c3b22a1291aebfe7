"""The soak's verdict: every way a run can fail, each with the reason the report gives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# A request fails only when every miner it sampled failed; the gateway ranks the faulty
# miners down, so the 30-minute soak saw no 502, 503 or 504 in 106,775 served answers.
# More than this share of answered requests failing is the gateway failing, not its miners.
MAX_FAILED_SHARE = 0.02
FAILED = frozenset({502, 503, 504})
# Kinds that ask for a reply (deep_json is refused by design; leave_early rarely waits).
ASKING = ("best_of", "race", "stream", "stream_then_leave", "big_prompt", "leave_early")
# A sampler late by more than this many intervals has lost samples.
SAMPLE_SLACK = 1


def start_ticks(pid: int) -> int | None:
    """When a running process started (clock ticks since boot); None once it is gone or dead
    (a killed child reads as a zombie until its parent reaps it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; the fields after its ')' are plain.
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else int(fields[19])


def failed_share(totals: dict[str, int]) -> tuple[int, int]:
    """Answers that were 502/503/504, and answers with any status, over the asking kinds."""
    failed = answered = 0
    for key, count in totals.items():
        kind, _, status = key.partition(":")
        if kind not in ASKING or not status.isdigit() or status == "0":
            continue
        answered += count
        failed += count if int(status) in FAILED else 0
    return failed, answered


def reasons(
    samples: list[dict[str, Any]],
    totals: dict[str, int],
    *,
    expected_samples: int,
    under_load: dict[str, Any],
    idle: dict[str, Any],
) -> list[str]:
    """Why the run failed; empty when it held."""
    why: list[str] = []
    gone = [s["t_s"] for s in samples if not s.get("alive", True)]
    if gone:
        why.append(f"the gateway process died or was restarted (first seen at t={gone[0]} s)")
    missing = [s["t_s"] for s in samples if s.get("missing")]
    if missing:
        why.append(f"{len(missing)} samples missing a figure (first at t={missing[0]} s)")
    measured = sum(1 for s in samples if s["phase"] == "measured")
    if measured < expected_samples - SAMPLE_SLACK:
        why.append(f"{measured} samples under load, expected {expected_samples}")
    if totals.get("client_errors", 0):
        why.append(f"{totals['client_errors']} client-side connection errors or timeouts")
    if totals.get("unexpected", 0):
        why.append(f"{totals['unexpected']} answers no request of their kind should get")
    failed, answered = failed_share(totals)
    if answered == 0:
        why.append("no request was answered")
    elif failed / answered > MAX_FAILED_SHARE:
        why.append(
            f"{failed} of {answered} answers were 502/503/504 "
            f"({failed / answered:.1%}, more than the {MAX_FAILED_SHARE:.0%} faulty miners explain)"
        )
    if not under_load.get("passed"):
        grew = [n for n, g in under_load.get("growth", {}).items() if not g["ok"]]
        judged = [n for n in grew if n in under_load.get("judged", [])]
        why.append(under_load.get("reason") or f"grew under load: {judged}")
    if not idle.get("passed"):
        grew = [n for n, g in idle.get("growth", {}).items() if not g["ok"]]
        why.append(f"not back to idle after the drain: {grew}")
    return why
