"""A closed-loop HTTP load generator for loopback targets: N workers, warm-up, exact percentiles."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import math
import sys
import time
from array import array
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from load.procs import cpu_at, cpu_snapshot, cpu_spent

OVERHEAD_HEADER = "x-bitgate-overhead-ms"
JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
MAX_DURATION_S = 3600.0
MAX_REQUESTS = 10_000_000
QUANTILES = (0.5, 0.9, 0.99)
DEFAULT_PROMPT = "What is the capital of France?"


class TargetError(ValueError):
    """A target the load generator refuses: not http, or not a loopback address."""


def require_loopback(url: str) -> str:
    """`url` unchanged when it is http(s) to a loopback host, else `TargetError`."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetError(f"{url!r} is not an http URL")
    if parts.hostname == "localhost":
        return url
    try:
        loopback = ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise TargetError(f"{url!r}: only loopback targets (127.0.0.0/8, ::1) are allowed")
    return url


def chat_body(model: str, options: dict[str, Any] | None = None) -> bytes:
    """A small chat request; `options` rides in the body as the `bitgate` block."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": DEFAULT_PROMPT}],
    }
    if options:
        body["bitgate"] = options
    return orjson.dumps(body)


@dataclass(frozen=True, slots=True)
class LoadConfig:
    """One closed-loop run: target, body, workers and its bounds."""

    url: str
    body: bytes
    concurrency: int = 16
    warmup_s: float = 2.0
    duration_s: float = 10.0
    requests: int | None = None
    timeout_s: float = 30.0
    watch: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class Recorder:
    """Per-request samples of the measured phase."""

    latency_ms: array[float] = field(default_factory=lambda: array("d"))
    overhead_ms: array[float] = field(default_factory=lambda: array("d"))
    e2e_overhead_ms: array[float] = field(default_factory=lambda: array("d"))
    statuses: Counter[int] = field(default_factory=Counter)
    rankers: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)


def percentile(ordered: array[float] | list[float], q: float) -> float | None:
    """The exact nearest-rank `q`-quantile of sorted values; None when empty."""
    if not ordered:
        return None
    return ordered[max(math.ceil(q * len(ordered)) - 1, 0)]


def distribution(values: array[float]) -> dict[str, float | None]:
    """p50, p90, p99, max and mean of the values, in their unit."""
    ordered = sorted(values)
    stats: dict[str, float | None] = {
        f"p{round(q * 100)}": percentile(ordered, q) for q in QUANTILES
    }
    stats["max"] = ordered[-1] if ordered else None
    stats["mean"] = sum(ordered) / len(ordered) if ordered else None
    return stats


@dataclass(slots=True)
class Summary:
    """What a run measured: throughput, latency and overhead distributions, errors, CPU."""

    url: str
    concurrency: int
    requests: int
    ok: int
    elapsed_s: float
    rps: float
    latency_ms: dict[str, float | None]
    overhead_ms: dict[str, float | None]
    e2e_overhead_ms: dict[str, float | None]
    errors: dict[str, int]
    statuses: dict[str, int]
    rankers: dict[str, int]
    cpu_s: dict[str, float | None]

    def to_json(self) -> dict[str, Any]:
        """A plain dict for JSON."""
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Summary:
        """Rebuild from `to_json`'s dict."""
        return cls(**raw)

    def line(self) -> str:
        """One human line."""
        lat, ovh = self.latency_ms, self.overhead_ms
        return (
            f"{self.url}: {self.requests} requests in {self.elapsed_s:.2f}s, "
            f"{self.rps:.1f} rps; latency p50 {_ms(lat['p50'])} p99 {_ms(lat['p99'])} "
            f"max {_ms(lat['max'])}; overhead p50 {_ms(ovh['p50'])} p99 {_ms(ovh['p99'])}; "
            f"errors {sum(self.errors.values())} {dict(self.errors) or ''}"
        ).rstrip()


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}ms"


def ranker_of(document: Any) -> str | None:
    """The ranker a gateway reply names in its `bitgate` block."""
    block = document.get("bitgate") if isinstance(document, dict) else None
    ranker = block.get("ranker") if isinstance(block, dict) else None
    return ranker if isinstance(ranker, str) else None


def waited_ms(document: Any) -> float | None:
    """The miner time a gateway reply waited on: the winner's (race) or the slowest (best_of)."""
    block = document.get("bitgate") if isinstance(document, dict) else None
    if not isinstance(block, dict):
        return None
    latencies: dict[Any, float] = {
        c.get("uid"): float(c["latency_ms"])
        for c in block.get("candidates", ())
        if isinstance(c, dict) and isinstance(c.get("latency_ms"), int | float)
    }
    if not latencies:
        return None
    if block.get("strategy") == "race":
        winner = block.get("miner")
        return latencies.get(winner.get("uid")) if isinstance(winner, dict) else None
    return max(latencies.values())


def check_reply(status: int, payload: bytes) -> tuple[str | None, Any]:
    """An error kind (None if fine) and the parsed reply."""
    if status != 200:
        return f"http_{status}", None
    try:
        document = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return "invalid_json", None
    if not isinstance(document, dict) or not document.get("choices"):
        return "no_choices", document
    return None, document


def error_kind(exc: BaseException) -> str:
    """A short name for a failed request's exception."""
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "connect"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "disconnected"
    return type(exc).__name__


class LoadRun:
    """The closed loop: each worker sends its next request when the last one ends."""

    def __init__(self, config: LoadConfig, session: aiohttp.ClientSession) -> None:
        self.config = config
        self.session = session
        self.recorder = Recorder()
        self.started = 0
        self.measure_from = 0.0
        self.stop_at = 0.0
        self.last_end = 0.0

    def _may_start(self, now: float) -> bool:
        """Whether a worker may send another request."""
        limit = self.config.requests
        return now < self.stop_at and (limit is None or self.started < limit)

    async def _one(self) -> None:
        """Send one request; record it when it started in the measured phase."""
        start = time.perf_counter()
        measured = start >= self.measure_from
        if measured:
            self.started += 1
        kind: str | None = None
        header: str | None = None
        try:
            async with self.session.post(
                self.config.url, data=self.config.body, headers=JSON_HEADERS
            ) as resp:
                payload = await resp.read()
                status, header = resp.status, resp.headers.get(OVERHEAD_HEADER)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            status, payload, kind = 0, b"", error_kind(exc)
        end = time.perf_counter()
        if measured:
            self._record((end - start) * 1000.0, status, payload, kind, header)
            self.last_end = max(self.last_end, end)

    def _record(
        self, latency: float, status: int, payload: bytes, kind: str | None, header: str | None
    ) -> None:
        rec = self.recorder
        rec.latency_ms.append(latency)
        rec.statuses[status] += 1
        document = None
        if kind is None:
            kind, document = check_reply(status, payload)
        if kind is not None:
            rec.errors[kind] += 1
            return
        if header is not None:
            rec.overhead_ms.append(float(header))
        ranker = ranker_of(document)
        if ranker is not None:
            rec.rankers[ranker] += 1
        waited = waited_ms(document)
        if waited is not None:
            rec.e2e_overhead_ms.append(latency - waited)

    async def _worker(self) -> None:
        while self._may_start(time.perf_counter()):
            await self._one()

    async def run(self) -> Summary:
        """Warm up, measure, and summarise."""
        now = time.perf_counter()
        self.measure_from = now + self.config.warmup_s
        self.stop_at = self.measure_from + self.config.duration_s
        workers = [self._worker() for _ in range(self.config.concurrency)]
        cpu_base = asyncio.ensure_future(cpu_at(self.measure_from, self.config.watch))
        await asyncio.gather(*workers)
        return self._summary(cpu_spent(await cpu_base, cpu_snapshot(self.config.watch)))

    def _summary(self, cpu_s: dict[str, float | None]) -> Summary:
        rec = self.recorder
        count = len(rec.latency_ms)
        elapsed = max(self.last_end - self.measure_from, 1e-9) if count else 0.0
        return Summary(
            url=self.config.url,
            concurrency=self.config.concurrency,
            requests=count,
            ok=count - sum(rec.errors.values()),
            elapsed_s=elapsed,
            rps=count / elapsed if count else 0.0,
            latency_ms=distribution(rec.latency_ms),
            overhead_ms=distribution(rec.overhead_ms),
            e2e_overhead_ms=distribution(rec.e2e_overhead_ms),
            errors=dict(rec.errors),
            statuses={str(k): v for k, v in sorted(rec.statuses.items())},
            rankers=dict(rec.rankers),
            cpu_s=cpu_s,
        )


async def run_load(config: LoadConfig) -> Summary:
    """Run one closed-loop load against a loopback target."""
    require_loopback(config.url)
    connector = aiohttp.TCPConnector(limit=config.concurrency, limit_per_host=0)
    timeout = aiohttp.ClientTimeout(total=config.timeout_s)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, cookie_jar=aiohttp.DummyCookieJar()
    ) as session:
        return await LoadRun(config, session).run()


def build_parser() -> argparse.ArgumentParser:
    """The load generator's arguments."""
    parser = argparse.ArgumentParser(prog="python -m load.loadgen", description=__doc__)
    parser.add_argument("--url", required=True, help="loopback URL to POST to")
    body = parser.add_mutually_exclusive_group()
    body.add_argument("--body", help="request body (JSON text)")
    body.add_argument("--body-file", type=Path, help="file holding the request body")
    parser.add_argument("--model", default="sim", help="model of the default chat body")
    parser.add_argument("--concurrency", type=int, default=16, help="closed-loop workers")
    parser.add_argument("--warmup-s", type=float, default=2.0, help="unrecorded warm-up")
    parser.add_argument("--duration-s", type=float, default=10.0, help="measured phase")
    parser.add_argument("--requests", type=int, help="stop after this many measured requests")
    parser.add_argument("--timeout-s", type=float, default=30.0, help="per-request timeout")
    parser.add_argument("--json-out", type=Path, help="write the summary as JSON here")
    parser.add_argument(
        "--watch",
        action="append",
        default=[],
        metavar="NAME=PID",
        help="also report this process's CPU seconds over the measured phase (repeatable)",
    )
    return parser


def config_from(args: argparse.Namespace) -> LoadConfig:
    """A checked `LoadConfig` from parsed arguments."""
    if not 1 <= args.concurrency <= 4096:
        raise TargetError("--concurrency must be between 1 and 4096")
    if not 0 < args.duration_s <= MAX_DURATION_S or not 0 <= args.warmup_s <= MAX_DURATION_S:
        raise TargetError(f"--duration-s and --warmup-s must be at most {MAX_DURATION_S:.0f}")
    if args.requests is not None and not 1 <= args.requests <= MAX_REQUESTS:
        raise TargetError(f"--requests must be between 1 and {MAX_REQUESTS}")
    if args.body_file is not None:
        body = args.body_file.read_bytes()
    else:
        body = args.body.encode() if args.body is not None else chat_body(args.model)
    return LoadConfig(
        url=require_loopback(args.url),
        body=body,
        concurrency=args.concurrency,
        warmup_s=args.warmup_s,
        duration_s=args.duration_s,
        requests=args.requests,
        timeout_s=args.timeout_s,
        watch=parse_watch(args.watch),
    )


def parse_watch(items: list[str]) -> dict[str, int]:
    """`NAME=PID` arguments as a dict."""
    watch: dict[str, int] = {}
    for item in items:
        name, _, pid = item.partition("=")
        if not name or not pid.isdigit():
            raise TargetError(f"--watch wants NAME=PID, got {item!r}")
        watch[name] = int(pid)
    return watch


def main(argv: list[str] | None = None) -> int:
    """Run the load generator; prints one line and optionally writes JSON."""
    import uvloop

    args = build_parser().parse_args(argv)
    try:
        config = config_from(args)
    except (TargetError, OSError) as exc:
        print(f"loadgen: error: {exc}", file=sys.stderr)
        return 2
    summary = uvloop.run(run_load(config))
    print(summary.line(), flush=True)
    if args.json_out is not None:
        args.json_out.write_bytes(orjson.dumps(summary.to_json(), option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
