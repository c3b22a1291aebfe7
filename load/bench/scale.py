"""How the gateway's cost grows with fan-out width and with pool size (instant miners)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from load.bench.report import cpu_pct, cpu_per_request_ms
from load.bench.run import Load, Scenario, run
from load.procs import gateway, rss_kib, sim_pool

WIDTHS = (1, 5, 10, 20)
POOL_SIZES = (16, 256, 1024)
POOL_FANOUT = 10
CONCURRENCY = 16


@dataclass(frozen=True, slots=True)
class Point:
    """One width or pool size and what its load measured."""

    size: int
    run: Scenario
    rss_kib: int | None = None


def _load(size: int, duration_s: float) -> Load:
    options = {"strategy": "best_of", "top_k": size, "sample": size, "ranker": "heuristic"}
    return Load(CONCURRENCY, None, 1.0, duration_s, 30.0, options)


def fanout(workdir: Path, duration_s: float) -> list[Point]:
    """best_of over 1, 5, 10 and 20 of 20 instant miners, one gateway."""
    points = []
    with (
        sim_pool(workdir, max(WIDTHS)) as pool,
        gateway(pool.metagraph, workdir / "gateway-fanout.log") as gw,
    ):
        watch = {"gateway": gw.proc.pid, "miners": pool.proc.pid}
        for width in WIDTHS:
            label = f"fan-out width {width}"
            found = run(label, gw.url + "/v1", pool.name, _load(width, duration_s), workdir, watch)
            points.append(Point(width, found))
    return points


def pool_sizes(workdir: Path, duration_s: float) -> list[Point]:
    """best_of over the top 10 of pools of 16, 256 and 1,024 instant miners."""
    points = []
    for size in POOL_SIZES:
        with (
            sim_pool(workdir, size) as pool,
            gateway(pool.metagraph, workdir / f"gateway-pool-{size}.log") as gw,
        ):
            watch = {"gateway": gw.proc.pid, "miners": pool.proc.pid}
            load = _load(POOL_FANOUT, duration_s)
            found = run(f"pool of {size}", gw.url + "/v1", pool.name, load, workdir, watch)
            points.append(Point(size, found, rss_kib(gw.proc.pid)))
    return points


def _f(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _row(name: str, point: Point, calls: int) -> str:
    s = point.run.summary
    lat, ovh = s["latency_ms"], s["overhead_ms"]
    per_call = point.run.cpu_s.get("gateway")
    per_call_ms = (
        "-"
        if per_call is None or not s["requests"]
        else (f"{1000 * per_call / (s['requests'] * calls):.3f}")
    )
    rss = "-" if point.rss_kib is None else f"{point.rss_kib / 1024:.0f}"
    return (
        f"| {name} | {s['rps']:.1f} | {_f(lat['p50'])} | {_f(lat['p99'])} | {_f(ovh['p50'])} "
        f"| {cpu_pct(point.run, 'gateway')} | {cpu_per_request_ms(point.run, 'gateway')} "
        f"| {per_call_ms} | {rss} | {s['errors']} |"
    )


HEADER = [
    "| {what} | rps | p50 ms | p99 ms | overhead p50 ms | CPU gateway | gateway CPU ms/request "
    "| per miner call | gateway RSS MiB | errors |",
    "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
]


def section(widths: list[Point], pools: list[Point], duration_s: float) -> list[str]:
    """The Markdown section."""
    lines = [
        "## Cost of fan-out width and pool size",
        "",
        f"Instant sim miners, `best_of` with the heuristic ranker, closed loop of {CONCURRENCY} "
        f"clients, 1 s warm-up, {duration_s:g} s measured. Width: `top_k` = `sample` = width "
        f"over a pool of {max(WIDTHS)}. Pool size: the top {POOL_FANOUT} of 16, 256 and 1,024 "
        "miners (one sim process each), so only selection and the metagraph grow. The gateway "
        "is CPU-bound in every row, so gateway CPU per request is the cost figure.",
        "",
        HEADER[0].format(what="width"),
        HEADER[1],
        *(_row(str(p.size), p, p.size) for p in widths),
        "",
        HEADER[0].format(what="pool"),
        HEADER[1],
        *(_row(f"{p.size:,}", p, POOL_FANOUT) for p in pools),
        "",
        "![gateway CPU per request against fan-out width and pool size](bench/scale.png)",
        "",
    ]
    return lines
