"""Request ids and the one JSON log line of each request."""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from gateway.door.usage import chosen_tokens, fanout_tokens

if TYPE_CHECKING:
    from gateway.serving.plan import Plan
    from router.miner_client import Reply

REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/+=@-]{1,128}$")
MAX_LOGGED_PROMPT_CHARS = 2000
access_logger = logging.getLogger("bitgate.requests")

# The request being served; tasks it starts (a race settling later) see it too.
CURRENT: ContextVar[RequestRecord | None] = ContextVar("bitgate_request", default=None)


def request_id(given: str | None) -> str:
    """The client's `x-request-id` when it is short and plain, else a new one."""
    if given is not None and REQUEST_ID.match(given):
        return given
    return uuid.uuid4().hex


@dataclass(slots=True)
class RequestRecord:
    """What one request did, filled in as it goes and logged once it is over."""

    id: str
    method: str
    path: str
    log_prompt: bool = False
    started: float = field(default_factory=time.perf_counter)
    key: str | None = None
    status: int = 0
    latency_ms: float | None = None
    pool: str | None = None
    strategy: str | None = None
    miner: int | None = None
    candidates: list[dict[str, Any]] = field(default_factory=list)
    winner_tokens: int = 0
    fanout_tokens: int = 0
    prompt: str | None = None
    # The adaptive fan-out: width and why, queue wait, replies waited for, why waiting stopped.
    fanout: dict[str, Any] = field(default_factory=dict)
    settled: bool = False
    logged: bool = False
    # The replies returned to the client (n > 1: every choice), once a result is made.
    chosen: list[Reply] = field(default_factory=list)
    # Called once the fan-out is settled, with the record filled in (usage, limits).
    on_settle: Callable[[RequestRecord], None] | None = None

    def settle(self, plan: Plan, replies: Sequence[Reply], winner: Reply | None) -> None:
        """Note the fan-out's outcome: pool, chosen miner, every candidate, tokens."""
        if self.settled:
            return
        self.settled = True
        self.pool, self.strategy = plan.pool.name, plan.strategy
        self.miner = winner.neuron.uid if winner is not None else None
        self.candidates = [
            {"uid": r.neuron.uid, "status": r.status, "latency_ms": round(r.latency_ms, 3)}
            for r in replies
        ]
        sent = len(plan.body)
        returned = self.chosen or ([winner] if winner is not None else [])
        if returned:
            self.winner_tokens = chosen_tokens(returned, plan.prompt.text, sent).total
        self.fanout_tokens = fanout_tokens(replies, plan.prompt.text, sent).total
        if self.log_prompt:
            self.prompt = plan.prompt.text[:MAX_LOGGED_PROMPT_CHARS]
        if self.on_settle is not None:
            self.on_settle(self)
        if self.latency_ms is not None:
            self.log()

    def responded(self, status: int, settle_follows: bool) -> None:
        """The response is sent; log now unless a race's settling is still to come."""
        self.status = status
        self.latency_ms = round((time.perf_counter() - self.started) * 1000.0, 3)
        if self.settled or not settle_follows:
            self.log()

    def log(self) -> None:
        """The request's JSON line (once)."""
        if self.logged or not access_logger.isEnabledFor(logging.INFO):
            return
        self.logged = True
        line: dict[str, Any] = {
            "request_id": self.id,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "key": self.key,
            "pool": self.pool,
            "strategy": self.strategy,
            "miner": self.miner,
            "candidates": self.candidates,
            "latency_ms": self.latency_ms,
            "winner_tokens": self.winner_tokens,
            "fanout_tokens": self.fanout_tokens,
        }
        if self.fanout:
            line["fanout"] = self.fanout
        if self.prompt is not None:
            line["prompt"] = self.prompt
        access_logger.info(orjson.dumps(line).decode())


def chose(replies: Sequence[Reply]) -> None:
    """Tell the current request (if any) which replies it returns (what its key is charged)."""
    record = CURRENT.get()
    if record is not None:
        record.chosen = list(replies)


def settled(plan: Plan, replies: Sequence[Reply], winner: Reply | None) -> None:
    """Tell the current request (if any) how its fan-out ended."""
    record = CURRENT.get()
    if record is not None:
        record.settle(plan, replies, winner)


def install_request_log(level: str = "INFO") -> None:
    """Write request lines to stdout as bare JSON, one per line (for `bitgate serve`);
    they are INFO records, so `--log-level warning` turns them off."""
    if any(getattr(h, "bitgate", False) for h in access_logger.handlers):
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.bitgate = True  # type: ignore[attr-defined]
    access_logger.addHandler(handler)
    access_logger.setLevel(level.upper())
    access_logger.propagate = False
