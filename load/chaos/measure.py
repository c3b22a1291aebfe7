"""The figures of a chaos run, from the requests as the client saw them, and its plot."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

from load.chaos.traffic import CUT, UNREACHABLE, Sent
from load.chaos.watch import Watcher


def in_flight(sent: Sent, at: float) -> bool:
    """Whether the request was on its way when the fault struck."""
    return sent.start <= at <= sent.end


def answers(sent: list[Sent], at: float, exclude_in_flight: bool) -> dict[str, Any]:
    """The share answered (a reply or a 429) and the 5xx count; optionally leaving out the
    failures in flight at the fault (they may have been on the killed gateway)."""
    counted = [s for s in sent if not (exclude_in_flight and s.failed and in_flight(s, at))]
    answered = sum(s.answered for s in counted)
    return {
        "answered_share": round(answered / len(counted), 4) if counted else 0.0,
        "failed_5xx": sum(s.status >= 500 for s in sent),
    }


def overshoot(sent: list[Sent], limits: dict[str, int]) -> float:
    """How far past its limit a key was admitted, as a share of the limit (0: never).

    A fresh GCRA key admits at most `rpm` at once plus `rpm` a minute after: by a request
    sent t seconds after the key's first, rpm + rpm*t/60 in all.
    """
    worst = 0.0
    for key, rpm in limits.items():
        admitted = sorted(s.start for s in sent if s.key == key and s.status not in (429, 0))
        if not admitted:
            continue
        first = min(s.start for s in sent if s.key == key)
        for n, t in enumerate(admitted, 1):
            worst = max(worst, (n - rpm - rpm * (t - first) / 60) / rpm)
    return round(worst, 3)


def usage_lost(sent: list[Sent], recorded: dict[str, int]) -> int:
    """Requests the client got a reply to that no usage record in Redis counts."""
    served = Counter(s.key for s in sent if s.status in (200, CUT))
    return sum(max(0, n - recorded.get(key, 0)) for key, n in served.items())


def since(t: float | None, at: float) -> float | None:
    """Seconds from the fault to `t`, or None when it never came."""
    return None if t is None else round(t - at, 2)


def gateway_recovery(sent: list[Sent], at: float) -> float:
    """Seconds from the fault to the end of the last failed request (0: none failed)."""
    ends = [s.end for s in sent if s.failed and s.end >= at]
    return round(max(ends) - at, 2) if ends else 0.0


def fired_in_time(fault: dict[str, Any], slack_s: float) -> bool:
    """The fault's alert fired within its `for:` (plus detection slack) and then resolved."""
    firing, resolved = fault.get("firing"), fault.get("resolved")
    if firing is None or resolved is None:
        return False
    return bool(firing - fault["at"] <= fault["for_s"] + slack_s)


def statuses(sent: list[Sent]) -> dict[str, int]:
    """How many requests got each answer."""
    names = {CUT: "stream_cut", UNREACHABLE: "no_answer"}
    return dict(Counter(names.get(s.status, str(s.status)) for s in sent))


def plot(path: Path, sent: list[Sent], watcher: Watcher, faults: list[dict[str, Any]]) -> None:
    """Requests per second by answer, each fault, and when its alert was pending and firing."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    end = math.ceil(max((s.end for s in sent), default=1.0)) + 1
    bins: dict[str, list[int]] = {k: [0] * end for k in ("200", "429", "failed")}
    for s in sent:
        kind = "200" if s.status == 200 else "429" if s.status == 429 else "failed"
        bins[kind][int(s.end)] += 1
    fig, (top, low) = plt.subplots(2, 1, figsize=(10, 5.5), sharex=True, height_ratios=[3, 1.4])
    xs = list(range(end))
    top.stackplot(xs, bins["200"], bins["429"], bins["failed"], step="post",
                  labels=["200", "429 (key over its limit)", "5xx / cut / no answer"],
                  colors=["#4c9f70", "#e0b040", "#d04040"])  # fmt: skip
    for fault in faults:
        label = "SIGKILL " + ("Redis master" if "Store" in fault["alert"] else "gateway-1")
        for ax in (top, low):
            ax.axvline(fault["at"], color="black", linestyle="--", linewidth=1)
        top.annotate(label, (fault["at"], top.get_ylim()[1] * 0.92), xytext=(4, 0),
                     textcoords="offset points", fontsize=8)  # fmt: skip
    top.set_ylabel("requests / s (by end)")
    top.legend(loc="lower left", fontsize=8)
    names = [f["alert"] for f in faults]
    for row, name in enumerate(names):
        for state, color in (("pending", "#f0c080"), ("firing", "#d04040")):
            spans = [t for t, alerts in watcher.alerts if alerts.get(name) == state]
            low.scatter(spans, [row] * len(spans), s=6, color=color, marker="s")
    stores = [(t, sum(s in ("down", "slow") for s in states)) for t, states in watcher.stores]
    low.step([t for t, _ in stores], [len(names) - 0.5 + 0.4 * n / 2 for _, n in stores],
             where="post", color="#555555", linewidth=1)  # fmt: skip
    low.set_yticks([*range(len(names)), len(names) - 0.3], [*names, "gateways w/o Redis"])
    low.set_xlabel("seconds into the run (alerts: orange pending, red firing)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
