"""Every Prometheus metric of the gateway, on a registry owned by the app."""

from __future__ import annotations

import collections
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gateway.runtime.fanout_metrics import FanoutMetrics
from router.axon_policy import REASONS

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60)
OVERHEAD_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1)
AUTH_FAILURE_REASONS = ("missing", "unknown", "revoked", "expired")
REWARD_BUCKETS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


class Metrics:
    """The gateway's metrics; one instance per app, so tests never share state."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._miner_series: dict[tuple[str, int, str], tuple[Any, Any, Any, Any]] = {}
        r = self.registry
        self.requests = Counter(
            "bitgate_requests",
            "Requests by pool, strategy and HTTP status.",
            ["pool", "strategy", "status"],
            registry=r,
        )
        self.request_latency = Histogram(
            "bitgate_request_latency_seconds",
            "End-to-end request latency.",
            ["pool", "strategy"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.overhead = Histogram(
            "bitgate_overhead_seconds",
            "Gateway time beyond the slowest awaited miner (best_of) or the winner (race).",
            ["pool"],
            buckets=OVERHEAD_BUCKETS,
            registry=r,
        )
        self.miner_latency = Histogram(
            "bitgate_miner_latency_seconds",
            "Latency of miners' valid replies (failures are counted in bitgate_miner_outcomes).",
            ["pool", "uid"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.miner_outcomes = Counter(
            "bitgate_miner_outcomes",
            "Miner replies by outcome (ok, timeout, error, invalid, busy).",
            ["pool", "uid", "status"],
            registry=r,
        )
        self.miner_chosen = Counter(
            "bitgate_miner_chosen",
            "How often each miner was selected for a request.",
            ["pool", "uid"],
            registry=r,
        )
        self.miner_wins = Counter(
            "bitgate_miner_wins",
            "How often each miner's reply was returned.",
            ["pool", "uid"],
            registry=r,
        )
        self.rewards = Histogram(
            "bitgate_reward",
            "Rewards given to valid replies, by ranker.",
            ["pool", "ranker"],
            buckets=REWARD_BUCKETS,
            registry=r,
        )
        self.ranking_latency = Histogram(
            "bitgate_ranking_latency_seconds",
            "Time spent ranking one request's replies.",
            ["pool", "ranker"],
            buckets=OVERHEAD_BUCKETS,
            registry=r,
        )
        self.store_sync_seconds = Gauge(
            "bitgate_state_store_sync_seconds",
            "How long the last sync round with the state store took (slow: over 1 s).",
            registry=r,
        )
        self.store_up = Gauge(
            "bitgate_state_store_up", "1 when the state store answers, else 0.", registry=r
        )
        self.miners_refused = Gauge(
            "bitgate_miners_refused",
            "Miners the axon policy will not dial, by reason (link_local, private, …).",
            ["pool", "reason"],
            registry=r,
        )
        self.metagraph_neurons = Gauge(
            "bitgate_metagraph_neurons", "Neurons in each pool's metagraph.", ["pool"], registry=r
        )
        self.metagraph_reload_errors = Counter(
            "bitgate_metagraph_reload_errors",
            "Metagraph reloads that failed.",
            ["pool"],
            registry=r,
        )
        self.metagraph_sync_failures = Counter(
            "bitgate_metagraph_sync_failures",
            "Chain metagraph syncs that failed after every retry (the last good one stays).",
            ["pool"],
            registry=r,
        )
        self.metagraph_sync_age = Gauge(
            "bitgate_metagraph_sync_age_seconds",
            "Seconds since a chain pool's metagraph was last synced.",
            ["pool"],
            registry=r,
        )
        self.epochs = Counter(
            "bitgate_epochs",
            "Local Yuma Consensus epochs this replica ran.",
            ["pool"],
            registry=r,
        )
        self.weights_set = Counter(
            "bitgate_weights_set",
            "set_weights calls on chain, by result (ok, error).",
            ["pool", "result"],
            registry=r,
        )
        self.rankings = Counter(
            "bitgate_rankings",
            "Rankings by the ranker asked for and the ranker that actually ranked.",
            ["ranker", "ranked_by"],
            registry=r,
        )
        self.ranker_fallbacks = Counter(
            "bitgate_ranker_fallbacks",
            "Times a ranker could not score (loading, timeout, 5xx, bad shape); the next one did.",
            ["ranker", "reason"],
            registry=r,
        )
        # Keys and limits: `key` is always the key's name, never its secret.
        self.ratelimit_rejections = Counter(
            "bitgate_ratelimit_rejections",
            "Requests refused by a key's limit (requests, tokens, concurrency).",
            ["key", "limit"],
            registry=r,
        )
        self.key_requests = Counter(
            "bitgate_key_requests",
            "Requests served per key and pool (those that reached the miners).",
            ["key", "pool"],
            registry=r,
        )
        self.key_tokens = Counter(
            "bitgate_key_tokens",
            "Tokens per key and pool: the reply returned (winner), every miner call (fanout).",
            ["key", "pool", "scope"],
            registry=r,
        )
        self.auth_failures = Counter(
            "bitgate_auth_failures",
            "Requests refused for their key (missing, unknown, revoked, expired).",
            ["reason"],
            registry=r,
        )
        for reason in AUTH_FAILURE_REASONS:  # every series from the start: rate() sees the first
            self.auth_failures.labels(reason)
        self.fanout = FanoutMetrics(r)

    def observe_refusals(self, pool: str, refused: Mapping[int, str]) -> None:
        """How many of a pool's miners the axon policy refuses, by reason."""
        counts = collections.Counter(refused.values())
        for reason in REASONS:
            self.miners_refused.labels(pool, reason).set(counts.get(reason, 0))

    def observe_miner(self, pool: str, uid: int, status: str, latency_s: float, won: bool) -> None:
        """Count one miner reply: chosen, its outcome and latency, and whether it won."""
        key = (pool, uid, status)
        series = self._miner_series.get(key)
        if series is None:  # labels() costs ~7 µs a call; ten miners a request add up
            label = str(uid)
            series = self._miner_series[key] = (
                self.miner_chosen.labels(pool, label),
                self.miner_outcomes.labels(pool, label, status),
                self.miner_latency.labels(pool, label) if status == "ok" else None,
                self.miner_wins.labels(pool, label),
            )
        chosen, outcomes, latency, wins = series
        chosen.inc()
        outcomes.inc()
        if latency is not None:
            latency.observe(latency_s)
        if won:
            wins.inc()

    # The pool loops' events (router.subnet.loops.PoolEvents).

    def neurons_changed(self, pool: str, count: int) -> None:
        """The pool now serves `count` neurons."""
        self.metagraph_neurons.labels(pool).set(count)

    def reload_failed(self, pool: str) -> None:
        """A metagraph file reload failed."""
        self.metagraph_reload_errors.labels(pool).inc()

    def chain_synced(self, pool: str, ok: bool) -> None:
        """A chain sync ended: a failure is counted, a success resets the sync age."""
        if ok:
            self.metagraph_sync_age.labels(pool).set(0)
        else:
            self.metagraph_sync_failures.labels(pool).inc()

    def epoch_ran(self, pool: str) -> None:
        """This replica ran a local epoch."""
        self.epochs.labels(pool).inc()

    def weights_submitted(self, pool: str, ok: bool) -> None:
        """A set_weights call ended."""
        self.weights_set.labels(pool, "ok" if ok else "error").inc()
