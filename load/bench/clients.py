"""Which HTTP client fans out fastest: a closed loop of ten-miner fan-outs, per candidate client."""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import httpx
import orjson

from load.client import JSON_HEADERS
from load.hist import Latency
from load.procs import CHAT_PATH, cpu_at, cpu_snapshot, cpu_spent, sim_pool
from load.targets import TargetError, is_loopback

Post = Callable[[str, bytes], Awaitable[tuple[int, bytes]]]
ClientFactory = Callable[[int], AbstractAsyncContextManager[Post]]
TIMEOUT_S = 10.0


@asynccontextmanager
async def aiohttp_client(pool_size: int) -> AsyncIterator[Post]:
    """One shared `aiohttp.ClientSession`."""
    connector = aiohttp.TCPConnector(limit=pool_size, limit_per_host=0)
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def post(url: str, body: bytes) -> tuple[int, bytes]:
            async with session.post(url, data=body, headers=JSON_HEADERS) as resp:
                return resp.status, await resp.read()

        yield post


def _httpx_post(client: httpx.AsyncClient) -> Post:
    async def post(url: str, body: bytes) -> tuple[int, bytes]:
        resp = await client.post(url, content=body, headers=JSON_HEADERS)
        return resp.status_code, resp.content

    return post


@asynccontextmanager
async def httpx_client(pool_size: int) -> AsyncIterator[Post]:
    """One shared `httpx.AsyncClient`, its pool sized for the fan-out."""
    limits = httpx.Limits(max_connections=pool_size, max_keepalive_connections=pool_size)
    async with httpx.AsyncClient(limits=limits, timeout=TIMEOUT_S) as client:
        yield _httpx_post(client)


@asynccontextmanager
async def httpx_aiohttp_client(pool_size: int) -> AsyncIterator[Post]:
    """One shared `httpx.AsyncClient` on httpx-aiohttp's transport over a sized session."""
    from httpx_aiohttp import AiohttpTransport

    connector = aiohttp.TCPConnector(limit=pool_size, limit_per_host=0)
    transport = AiohttpTransport(client=aiohttp.ClientSession(connector=connector))
    async with httpx.AsyncClient(transport=transport, timeout=TIMEOUT_S) as client:
        yield _httpx_post(client)


def candidates() -> tuple[dict[str, ClientFactory], dict[str, str]]:
    """The clients to compare, and the ones skipped with the reason."""
    clients: dict[str, ClientFactory] = {
        f"aiohttp {_version('aiohttp')} ClientSession": aiohttp_client,
        f"httpx {_version('httpx')} AsyncClient": httpx_client,
    }
    skipped: dict[str, str] = {}
    version = _version("httpx-aiohttp")
    if version is None:
        skipped["httpx + httpx-aiohttp transport"] = "httpx-aiohttp is not installed"
    else:
        clients[f"httpx + httpx-aiohttp {version} transport"] = httpx_aiohttp_client
    return clients, skipped


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


@dataclass(slots=True)
class ClientResult:
    """One client's fan-out throughput and latency."""

    client: str
    fanouts: int = 0
    elapsed_s: float = 0.0
    latency_ms: Latency = field(default_factory=Latency)
    errors: Counter[str] = field(default_factory=Counter)
    cpu_s: dict[str, float | None] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Fan-outs per second."""
        return self.fanouts / self.elapsed_s if self.elapsed_s else 0.0

    def quantile(self, q: float) -> float | None:
        """The `q`-quantile (0-1) of the fan-out latency, in ms, from its HDR histogram."""
        return self.latency_ms.percentile(100.0 * q)

    def cpu_share(self, name: str) -> str:
        """A process's share of one core over the measured phase (`others`: the rest)."""
        cpu = self.cpu_s
        if name == "others":
            parts = [cpu.get("machine"), cpu.get("loadgen"), cpu.get("miners")]
            if None in parts:
                return "-"
            machine, client, miners = (x or 0.0 for x in parts)
            spent: float | None = max(machine - client - miners, 0.0)
        else:
            spent = cpu.get(name)
        if spent is None or not self.elapsed_s:
            return "-"
        return f"{100 * spent / self.elapsed_s:.0f}%"


def check(status: int, payload: bytes) -> str | None:
    """Why a miner reply is unusable, or None."""
    if status != 200:
        return f"http_{status}"
    try:
        document = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return "invalid_json"
    return None if isinstance(document, dict) and document.get("choices") else "no_choices"


async def fan_out(post: Post, urls: Sequence[str], body: bytes) -> list[str]:
    """One request to every miner at once; the errors of the replies."""
    results = await asyncio.gather(*(post(url, body) for url in urls), return_exceptions=True)
    errors = []
    for result in results:
        if isinstance(result, BaseException):
            errors.append(type(result).__name__)
        elif (kind := check(*result)) is not None:
            errors.append(kind)
    return errors


@dataclass(frozen=True, slots=True)
class FanOutLoad:
    """The closed loop every client runs: miners, body, workers, windows, watched processes."""

    urls: Sequence[str]
    body: bytes
    concurrency: int
    windows: tuple[float, float]
    watch: dict[str, int] = field(default_factory=dict)


async def measure(name: str, post: Post, load: FanOutLoad) -> ClientResult:
    """A closed loop of `concurrency` workers fanning out; warm-up then measured seconds."""
    result = ClientResult(name)
    urls, body = load.urls, load.body
    warmup_s, duration_s = load.windows
    measure_from = time.perf_counter() + warmup_s
    stop_at = measure_from + duration_s
    last_end = measure_from

    async def worker() -> None:
        nonlocal last_end
        while (start := time.perf_counter()) < stop_at:
            errors = await fan_out(post, urls, body)
            end = time.perf_counter()
            if start >= measure_from:
                result.fanouts += 1
                result.latency_ms.record((end - start) * 1000.0)
                result.errors.update(errors)
                last_end = max(last_end, end)

    cpu_base = asyncio.ensure_future(cpu_at(measure_from, load.watch))
    await asyncio.gather(*(worker() for _ in range(load.concurrency)))
    result.cpu_s = cpu_spent(await cpu_base, cpu_snapshot(load.watch))
    result.elapsed_s = last_end - measure_from
    return result


async def compare(load: FanOutLoad) -> list[ClientResult]:
    """Measure every candidate client against the same miners, one after the other."""
    clients, _ = candidates()
    results = []
    for name, factory in clients.items():
        async with factory(load.concurrency * len(load.urls)) as post:
            results.append(await measure(name, post, load))
    return results


def run_comparison(
    urls: Sequence[str],
    model: str,
    concurrency: int = 16,
    windows: tuple[float, float] = (1, 5),
    miners_pid: int | None = None,
) -> list[ClientResult]:
    """`compare` on a fresh uvloop event loop, as the gateway runs."""
    import uvloop

    endpoints = [require_loopback(url + CHAT_PATH) for url in urls]
    watch = {} if miners_pid is None else {"miners": miners_pid}
    load = FanOutLoad(endpoints, chat_body(model), concurrency, windows, watch)
    return uvloop.run(compare(load))


def require_loopback(url: str) -> str:
    """`url` unchanged when its host is loopback, else `TargetError`."""
    host = urlsplit(url).hostname or ""
    if not is_loopback(host):
        raise TargetError(f"{url!r}: the client comparison runs against loopback miners only")
    return url


def chat_body(model: str) -> bytes:
    """A small chat request."""
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    return orjson.dumps({"model": model, "messages": messages})


def table(results: Sequence[ClientResult]) -> list[str]:
    """The comparison as Markdown table rows, fastest first."""
    rows = [
        "| client | fan-outs/s | p50 ms | p99 ms | fan-outs | errors "
        "| CPU client | CPU miners | CPU others |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in sorted(results, key=lambda r: -r.rate):
        errors = sum(r.errors.values())
        detail = f" {dict(r.errors)}" if errors else ""
        rows.append(
            f"| {r.client} | {_rate(r)} | {_fmt(r.quantile(0.5))} | {_fmt(r.quantile(0.99))} "
            f"| {r.fanouts} | {errors}{detail} | {r.cpu_share('loadgen')} "
            f"| {r.cpu_share('miners')} | {r.cpu_share('others')} |"
        )
    rows += [f"| {name} | skipped: {why} | | | | | | | |" for name, why in candidates()[1].items()]
    return rows


def _rate(result: ClientResult) -> str:
    """Fan-outs per second, or why there is no figure."""
    if not result.fanouts:
        return "none started in the window (each took longer than the warm-up)"
    return f"{result.rate:.1f}"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def register(parser: argparse.ArgumentParser) -> None:
    """The comparison's arguments (`bitgate load clients`, `python -m load.bench.clients`)."""
    parser.add_argument("--miners", type=int, default=10, help="instant sim miners")
    parser.add_argument("--concurrency", type=int, default=16, help="closed-loop workers")
    parser.add_argument("--warmup-s", type=float, default=1.0)
    parser.add_argument("--duration-s", type=float, default=5.0)
    parser.set_defaults(run=run)


def main(argv: list[str] | None = None) -> int:
    """`python -m load.bench.clients`: the same as `bitgate load clients`."""
    parser = argparse.ArgumentParser(prog="python -m load.bench.clients", description=__doc__)
    register(parser)
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Start an instant sim pool, compare the clients, print the table."""
    with (
        tempfile.TemporaryDirectory(prefix="bitgate-bench-") as workdir,
        sim_pool(Path(workdir), args.miners) as pool,
    ):
        windows = (args.warmup_s, args.duration_s)
        results = run_comparison(pool.urls, pool.name, args.concurrency, windows, pool.proc.pid)
    print("\n".join(table(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
