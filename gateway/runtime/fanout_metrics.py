"""Metrics of the adaptive fan-out: width and why, queue wait, replies waited for, stops."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

WIDTH_BUCKETS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 24, 32)
QUEUE_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class FanoutMetrics:
    """How wide requests went, how long they queued and waited, and why waiting stopped."""

    def __init__(self, r: CollectorRegistry) -> None:
        self.width = Histogram(
            "bitgate_fanout_width",
            "Miners asked per request, by why that many (full, pool, load, floor).",
            ["pool", "why"],
            buckets=WIDTH_BUCKETS,
            registry=r,
        )
        self.queue_wait = Histogram(
            "bitgate_queue_wait_seconds",
            "Time a request waited for a miner with room before its fan-out.",
            ["pool"],
            buckets=QUEUE_BUCKETS,
            registry=r,
        )
        self.queue_refusals = Counter(
            "bitgate_queue_refusals",
            "Requests refused (503) because no miner had room within the queue's bounds.",
            ["pool"],
            registry=r,
        )
        self.waited = Histogram(
            "bitgate_replies_waited",
            "Replies heard before the answer was chosen.",
            ["pool", "strategy"],
            buckets=WIDTH_BUCKETS,
            registry=r,
        )
        self.stops = Counter(
            "bitgate_wait_stops",
            "Why waiting stopped (all, confident, budget, deadline, first).",
            ["pool", "strategy", "reason"],
            registry=r,
        )
        self.agreement = Counter(
            "bitgate_early_stop_agreement",
            "Early-stopped requests, by whether hearing every miner picked the same winner "
            "(true), one as good within the stop rule's margin (tied), or a better one (false).",
            ["pool", "same"],
            registry=r,
        )
        self.concurrency = Gauge(
            "bitgate_miner_concurrency_limit",
            "Each miner's learned concurrency limit (this replica), as of its last request.",
            ["pool", "uid"],
            registry=r,
        )
