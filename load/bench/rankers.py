"""Every ranker on real-traffic-like load (each request a new question), beside its eval top-1.

Ten instant sim miners of mixed quality and one gateway; a closed loop of clients in this
process asks each ranker in turn (`bitgate.ranker`), every request a question no request
asked before, so the miners' replies differ every time and no cache helps a model. The
gateway's CPU per request comes from /proc. Top-1 and pairwise accuracy come from
`bitgate eval ranking --split test`, run first on its own.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from load.bench.throughput import QUALITIES, mixed_pool
from load.procs import Gateway, cpu_seconds, gateway
from miners.sim.questions import QUESTIONS

# `embedding+filters` is the full MiniLM times the filters: the default before `static`.
RANKERS = ("heuristic", "filters", "static", "blend", "embedding+filters")
DEFINITIONS = {"embedding+filters": {"kind": "blend", "weights": {"embedding": 1.0}}}
CONCURRENCY = 16
ROUNDS = 3
LOAD_TIMEOUT_S = 180.0


@dataclass(slots=True)
class Row:
    """One ranker's load figures and its accuracy on the held-out split."""

    ranker: str
    ok: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    cpu_s: float | None = None
    stand_ins: int = 0  # replies whose `bitgate.ranker` named another ranker
    top1: float | None = None
    pairwise: float | None = None

    @property
    def rps(self) -> float:
        """Requests per second over the measured window."""
        return self.ok / self.seconds if self.seconds else 0.0

    def percentile(self, q: int) -> float:
        """A latency percentile in ms."""
        if len(self.latencies_ms) < 2:
            return self.latencies_ms[0] if self.latencies_ms else 0.0
        return statistics.quantiles(self.latencies_ms, n=100)[q - 1]

    @property
    def cpu_ms(self) -> float | None:
        """Gateway CPU milliseconds per request."""
        return self.cpu_s * 1000.0 / self.ok if self.cpu_s is not None and self.ok else None


def eval_figures(workdir: Path, rankers: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Top-1 and pairwise of each ranker on the test split, from `bitgate eval ranking`."""
    out = workdir / "eval.json"
    command = [sys.executable, "-m", "gateway", "eval", "ranking", "--split", "test"]
    command += ["--json", str(out), *(a for r in rankers for a in ("--ranker", r))]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return {r["ranker"]: r for r in json.loads(out.read_text())}


async def _wait_loaded(session: aiohttp.ClientSession, url: str, rankers: tuple[str, ...]) -> None:
    """Until /readyz says every ranker measured here is ready (the full MiniLM loads last)."""
    deadline = time.monotonic() + LOAD_TIMEOUT_S
    while time.monotonic() < deadline:
        async with session.get(url + "/readyz") as resp:
            states = (await resp.json())["rankers"]["states"]
        if all(states.get(r) == "ready" for r in rankers):
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"rankers did not load in {LOAD_TIMEOUT_S:.0f} s: {states}")


async def _closed_loop(
    session: aiohttp.ClientSession, url: str, row: Row, seconds: float, tag: str
) -> None:
    """CONCURRENCY clients asking new questions of one ranker for `seconds`."""
    counter = itertools.count()
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        while time.perf_counter() < deadline:
            n = next(counter)
            question = QUESTIONS[n % len(QUESTIONS)].prompt
            body = {
                "model": "sim",
                # A unique first word: the sim miners build replies from the prompt's words.
                "messages": [{"role": "user", "content": f"Case{n}{tag} {question}"}],
                "bitgate": {"ranker": row.ranker},
            }
            started = time.perf_counter()
            async with session.post(url + "/v1/chat/completions", json=body) as resp:
                raw = await resp.read()
            if resp.status != 200:
                row.errors += 1
                continue
            row.latencies_ms.append((time.perf_counter() - started) * 1000.0)
            row.ok += 1
            if json.loads(raw)["bitgate"]["ranker"] != row.ranker:
                row.stand_ins += 1

    await asyncio.gather(*(client() for _ in range(CONCURRENCY)))


async def _measure(
    gw: Gateway, rankers: tuple[str, ...], warmup_s: float, seconds: float
) -> list[Row]:
    """Wait for every model, warm each ranker up, then measure them in interleaved rounds."""
    connector = aiohttp.TCPConnector(limit=CONCURRENCY * 2)
    async with aiohttp.ClientSession(connector=connector) as session:
        await _wait_loaded(session, gw.url, rankers)
        rows = {ranker: Row(ranker, cpu_s=0.0) for ranker in rankers}
        for ranker in rankers:
            await _closed_loop(session, gw.url, Row(ranker), warmup_s, f"w{ranker}")
        # Round by round, so that whatever else the machine does hits every ranker alike.
        for round_ in range(ROUNDS):
            for ranker, row in rows.items():
                before = cpu_seconds(gw.proc.pid)
                started = time.perf_counter()
                await _closed_loop(session, gw.url, row, seconds / ROUNDS, f"{ranker}r{round_}")
                row.seconds += time.perf_counter() - started
                after = cpu_seconds(gw.proc.pid)
                if before is None or after is None or row.cpu_s is None:
                    row.cpu_s = None
                else:
                    row.cpu_s += after - before
        return list(rows.values())


def measure(
    workdir: Path, seconds: float, warmup_s: float = 2.0, rankers: tuple[str, ...] = RANKERS
) -> list[Row]:
    """Eval figures first, then each ranker under load against one gateway."""
    figures = eval_figures(workdir, rankers)
    env = {"BITGATE_RANKERS": json.dumps(DEFINITIONS)}
    with (
        mixed_pool(workdir) as metagraph,
        gateway(metagraph, workdir / "gateway-rankers.log", env=env) as gw,
    ):
        rows = asyncio.run(_measure(gw, rankers, warmup_s, seconds))
    for row in rows:
        found = figures.get(row.ranker, {})
        row.top1, row.pairwise = found.get("top1"), found.get("pairwise")
    return rows


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def section(rows: list[Row], seconds: float, warmup_s: float = 2.0) -> list[str]:
    """The Markdown section."""
    base = next((r.rps for r in rows if r.ranker == "heuristic"), 0.0)
    lines = [
        "## Rankers on unique prompts: speed beside quality",
        "",
        f"10 instant sim miners ({', '.join(QUALITIES)}), one gateway, {CONCURRENCY} "
        f"closed-loop clients in the benchmark process; per ranker {warmup_s:g} s warm-up, "
        f"then {seconds:g} s measured in {ROUNDS} interleaved rounds (each ranker in turn, "
        "round after round, so machine noise hits them alike). Every request "
        "asks a new question, so every reply is new and no embedding comes from a cache. "
        "`best_of` over all ten. Top-1 and pairwise: `bitgate eval ranking --split test` "
        "(185 held-out prompts, ten candidates each). Stand-ins: replies whose "
        "`bitgate.ranker` named another ranker (a fallback). `embedding+filters` is the full "
        "MiniLM times the filters, the default before `static`; `blend` is the default.",
        "",
        "| ranker | req/s | vs heuristic | p50 ms | p99 ms | gateway CPU ms/request "
        "| errors | stand-ins | eval top-1 | eval pairwise |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ratio = f"{r.rps / base:.2f}x" if base else "-"
        lines.append(
            f"| {r.ranker} | {r.rps:.1f} | {ratio} | {r.percentile(50):.1f} "
            f"| {r.percentile(99):.1f} | {_fmt(r.cpu_ms, 2)} | {r.errors} | {r.stand_ins} "
            f"| {_fmt(r.top1, 3)} | {_fmt(r.pairwise, 3)} |"
        )
    lines.append("")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run the section alone and print it: `python -m load.bench.rankers [SECONDS]`."""
    import tempfile

    args = sys.argv[1:] if argv is None else argv
    seconds = float(args[0]) if args else 10.0
    with tempfile.TemporaryDirectory(prefix="bitgate-rankers-") as tmp:
        print("\n".join(section(measure(Path(tmp), seconds), seconds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
