"""Stragglers: lognormal miners, some hanging; best_of and race against the deadline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from load.bench.run import Load, Scenario, run
from load.procs import gateway, sim_pool

DEADLINE_S = 1.0
RATE = 30.0
LOGNORMAL = {"kind": "lognormal", "ms": 80, "sigma": 0.6, "max_ms": 5000}
VARIANTS: dict[str, list[dict[str, Any]]] = {
    "1 of 10 miners always hangs": [
        *({"name": f"lognormal-{i}", "latency": LOGNORMAL} for i in range(9)),
        {"name": "hangs", "latency": LOGNORMAL, "failure": "hang"},
    ],
    "each miner hangs on 10% of requests": [
        {"name": f"flaky-{i}", "latency": LOGNORMAL, "failure": "hang", "failure_rate": 0.1}
        for i in range(10)
    ],
}


def run_all(workdir: Path, duration_s: float) -> list[tuple[str, str, Scenario]]:
    """(variant, strategy, run) for each variant and strategy; a fresh gateway per run."""
    rows = []
    for index, (variant, miners) in enumerate(VARIANTS.items()):
        profiles = workdir / f"stragglers-{index}.yaml"
        profiles.write_text(yaml.safe_dump({"miners": miners}))
        with sim_pool(workdir, len(miners), profiles=profiles) as pool:
            for strategy in ("best_of", "race"):
                log = workdir / f"gateway-stragglers-{index}-{strategy}.log"
                with gateway(pool.metagraph, log, ["--ranker", "heuristic"]) as gw:
                    options: dict[str, Any] = {"strategy": strategy, "top_k": 10}
                    options.update(sample=10, timeout_s=DEADLINE_S)
                    load = Load(None, RATE, 1.0, duration_s, DEADLINE_S + 10, options)
                    label = f"stragglers: {variant}, {strategy}"
                    found = run(label, gw.url + "/v1", pool.name, load, workdir)
                    rows.append((variant, strategy, found))
    return rows


def at_deadline(run_: Scenario, deadline_ms: float) -> float | None:
    """Share of requests that took at least 95% of the deadline, from the report's CDF."""
    points = run_.report["cdf"]["latency_ms"]
    if not points:
        return None
    below = [share for ms, share in points if ms < 0.95 * deadline_ms]
    return 1.0 - (max(below) if below else 0.0)


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def section(rows: list[tuple[str, str, Scenario]], duration_s: float) -> list[str]:
    """The Markdown section."""
    deadline_ms = DEADLINE_S * 1000
    lines = [
        "## Stragglers: lognormal miners, some hanging, against a 1 s deadline",
        "",
        f"10 sim miners with lognormal latency (median {LOGNORMAL['ms']} ms, sigma "
        f"{LOGNORMAL['sigma']}); the gateway asks all ten (`top_k` = `sample` = 10, heuristic "
        f"ranker) with `timeout_s` {DEADLINE_S:g}. Open loop at {RATE:g} req/s, 1 s warm-up, "
        f"{duration_s:g} s measured; a fresh gateway per row. `best_of` waits for every miner "
        "or the deadline; `race` returns the first usable reply. A miner that always hangs is "
        "put in cool-down after three failures (the warm-up absorbs that); a miner that hangs "
        "on a tenth of its requests never is.",
        "",
        "| variant | strategy | requests | errors | p50 ms | p90 ms | p99 ms | max ms "
        "| at the deadline |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for variant, strategy, found in rows:
        s = found.summary
        lat = s["latency_ms"]
        share = at_deadline(found, deadline_ms)
        shown = "-" if share is None else f"{100 * share:.0f}%"
        lines.append(
            f"| {variant} | {strategy} | {s['requests']} | {s['errors']} | {_f(lat['p50'])} "
            f"| {_f(lat['p90'])} | {_f(lat['p99'])} | {_f(lat['max'])} | {shown} |"
        )
    lines += ["", "![straggler latency CDFs](bench/stragglers.png)", ""]
    return lines
