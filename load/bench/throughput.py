"""Gateway throughput with each ranker under concurrent clients, every request a new prompt.

    python -m load.bench.throughput [--concurrency 16] [--duration-s 15] [--ranker NAME ...]

Starts ten zero-latency sim miners of mixed quality (`bitgate miner sim --profiles`) and one
`bitgate serve` (load/procs.py starts and stops both), waits until the embedding model is
loaded, then runs a closed loop of `--concurrency` clients per ranker, the ranker chosen per
request. Every request asks a different question, so the miners' replies differ too and no
embedding comes from the cache: the model does the work of real traffic. (The load tool's
loadgen sends one fixed body, whose ten replies the encoder would cache after the first.)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import yaml

from load.hist import Latency
from load.procs import Gateway, gateway, stop
from miners.sim.questions import QUESTIONS

QUALITIES = (
    "good",
    "good",
    "partial",
    "wrong",
    "off_topic",
    "truncated",
    "repetitive",
    "refusal",
    "echo",
    "empty",
)
LOADING = re.compile(r'bitgate_ranker_fallbacks_total\{ranker="embedding",reason="loading"\} (\S+)')


@contextlib.contextmanager
def mixed_pool(workdir: Path) -> Iterator[Path]:
    """Ten instant sim miners of mixed quality; yields their metagraph file."""
    profiles = workdir / "profiles.yaml"
    profiles.write_text(yaml.safe_dump({"miners": [{"quality": q} for q in QUALITIES]}))
    metagraph = workdir / "sim-metagraph.json"
    command = [sys.executable, "-m", "gateway", "miner", "sim", "--profiles", str(profiles)]
    command += ["--base-port", "0", "--metagraph-out", str(metagraph)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "metagraph" in line:
                break
        yield metagraph
    finally:
        stop(proc)


async def loading_fallbacks(session: aiohttp.ClientSession, url: str) -> float:
    """How often the embedding ranker has answered `loading` so far."""
    async with session.get(url + "/metrics") as resp:
        match = LOADING.search(await resp.text())
    return float(match.group(1)) if match else 0.0


async def run_load(
    session: aiohttp.ClientSession, url: str, ranker: str, concurrency: int, duration_s: float
) -> tuple[int, int, list[float]]:
    """Closed loop: (ok, errors, latencies in ms) over the measured window."""
    counter = itertools.count()
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration_s

    async def worker() -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            n = next(counter)
            question = QUESTIONS[n % len(QUESTIONS)].prompt
            body = {
                "model": "sim",
                # A unique leading word: the sim miners build their replies from the first
                # words of the prompt, so every reply differs from every earlier one.
                "messages": [{"role": "user", "content": f"Case{n}{ranker} {question}"}],
                "bitgate": {"ranker": ranker},
            }
            started = time.perf_counter()
            async with session.post(url + "/v1/chat/completions", json=body) as resp:
                await resp.read()
                if resp.status == 200:
                    latencies.append((time.perf_counter() - started) * 1000.0)
                else:
                    errors += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(latencies), errors, latencies


async def bench(gw: Gateway, rankers: list[str], concurrency: int, duration_s: float) -> None:
    """Warm up until the model is loaded, then measure each ranker in turn."""
    connector = aiohttp.TCPConnector(limit=concurrency * 2)
    async with aiohttp.ClientSession(connector=connector) as session:
        previous = -1.0
        for _ in range(200):
            await run_load(session, gw.url, "embedding", 2, 0.3)
            now = await loading_fallbacks(session, gw.url)
            if now == previous:
                break
            previous = now
        print(f"{'ranker':<12} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
        for ranker in rankers:
            await run_load(session, gw.url, ranker, concurrency, 2.0)  # warm-up
            ok, errors, latencies = await run_load(session, gw.url, ranker, concurrency, duration_s)
            latency = Latency.of(latencies)
            p50, p99 = (latency.percentile(q) or 0.0 for q in (50, 99))
            print(f"{ranker:<12} {ok / duration_s:>8.1f} {p50:>8.1f} {p99:>8.1f} {errors:>7d}")
        still_loading = await loading_fallbacks(session, gw.url) - max(previous, 0.0)
        print(f"embedding 'loading' fallbacks during the measured runs: {still_loading:.0f}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one line per ranker."""
    parser = argparse.ArgumentParser(prog="python -m load.bench.throughput", description=__doc__)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration-s", type=float, default=15.0)
    parser.add_argument("--ranker", action="append", help="default: heuristic and blend")
    args = parser.parse_args(argv)
    rankers = args.ranker or ["heuristic", "blend"]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        # The full MiniLM loads only when asked for; `--ranker embedding` should measure it.
        env = {"BITGATE_EMBEDDING_MODEL": "true"}
        log = workdir / "gateway.log"
        with mixed_pool(workdir) as metagraph, gateway(metagraph, log, env=env) as gw:
            print(f"10 instant sim miners ({', '.join(QUALITIES)}); {args.concurrency} clients")
            asyncio.run(bench(gw, rankers, args.concurrency, args.duration_s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
