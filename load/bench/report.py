"""The gateway benchmark's Markdown report: machine, command, figures, ratios, client comparison."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from load.bench.clients import ClientResult, table
from load.bench.run import Scenario
from load.prompts import SHORT

TARGET_RPS = 300.0
TARGET_OVERHEAD_P50_MS = 10.0
BOUND_SHARE = 0.9  # a single-threaded process above this share of a core limits the run
NOISE_SHARE = 0.1  # other processes' share of a core above which a run is flagged


@dataclass(frozen=True, slots=True)
class Figures:
    """Everything one benchmark run measured."""

    scenarios: list[Scenario]
    clients: list[ClientResult]
    concurrency: int
    miners: int


def _f(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def errors_text(run: Scenario) -> str:
    """The error count and kinds of a run, or 0."""
    count = run.summary["errors"]
    return f"{count} {run.report['errors']}" if count else "0"


def cpu_pct(run: Scenario, name: str) -> str:
    """A process's share of one core over the measured phase."""
    spent, elapsed = run.cpu_s.get(name), run.summary["elapsed_s"]
    if spent is None or not elapsed:
        return "-"
    return f"{100.0 * spent / elapsed:.0f}%"


def others_share(run: Scenario) -> float | None:
    """Share of a core that processes outside the benchmark used during the measured phase."""
    cpu, elapsed = run.cpu_s, run.summary["elapsed_s"]
    machine = cpu.get("machine")
    ours = [cpu.get(name) for name in ("gateway", "miners", "loadgen") if name in cpu]
    if machine is None or None in ours or not elapsed:
        return None
    return float(max(machine - sum(x for x in ours if x is not None), 0.0) / elapsed)


def cpu_per_request_ms(run: Scenario, name: str) -> str:
    """A process's CPU milliseconds per measured request."""
    spent, requests = run.cpu_s.get(name), run.summary["requests"]
    return "-" if spent is None or not requests else f"{1000 * spent / requests:.2f}"


def _pct(share: float | None) -> str:
    return "-" if share is None else f"{100 * share:.0f}%"


def noise_lines(scenarios: Sequence[Scenario]) -> list[str]:
    """A warning when other processes took CPU during a scenario."""
    noisy = [
        f"{s.label} ({_pct(share)})"
        for s in scenarios
        if (share := others_share(s)) is not None and share > NOISE_SHARE
    ]
    if not noisy:
        return []
    return [
        "**Warning:** processes outside the benchmark used CPU during: "
        + "; ".join(noisy)
        + ". Those figures are low; rerun on a quiet machine.",
        "",
    ]


def latency_table(scenarios: Sequence[Scenario]) -> list[str]:
    """Throughput, latency and errors, one row per scenario."""
    rows = [
        "| scenario | requests | rps | p50 ms | p90 ms | p99 ms | max ms | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for s in scenarios:
        m = s.summary
        lat = m["latency_ms"]
        rows.append(
            f"| {s.label} | {m['requests']} | {m['rps']:.1f} | {_f(lat['p50'])} "
            f"| {_f(lat['p90'])} | {_f(lat['p99'])} | {_f(lat['max'])} | {errors_text(s)} |"
        )
    return rows


def overhead_table(scenarios: Sequence[Scenario]) -> list[str]:
    """Gateway overhead (its header, and seen by the client) and CPU use, per scenario."""
    rows = [
        "| scenario | overhead p50 / p90 / p99 ms (header) | client-side overhead p50 / p99 ms "
        "| CPU gateway | CPU miners | CPU loadgen | CPU others | gateway CPU ms/request |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in scenarios:
        ovh, e2e = s.summary["overhead_ms"], s.summary["client_overhead_ms"]
        rows.append(
            f"| {s.label} | {_f(ovh['p50'])} / {_f(ovh['p90'])} / {_f(ovh['p99'])} "
            f"| {_f(e2e['p50'])} / {_f(e2e['p99'])} | {cpu_pct(s, 'gateway')} "
            f"| {cpu_pct(s, 'miners')} | {cpu_pct(s, 'loadgen')} "
            f"| {_pct(others_share(s))} | {cpu_per_request_ms(s, 'gateway')} |"
        )
    return rows


def ratio_lines(scenarios: Sequence[Scenario]) -> list[str]:
    """Each gateway scenario's latency and throughput against the direct-miner baseline."""
    base = scenarios[0].summary
    lines = []
    for s in scenarios[1:]:
        m = s.summary
        p50 = _ratio(m["latency_ms"]["p50"], base["latency_ms"]["p50"])
        p99 = _ratio(m["latency_ms"]["p99"], base["latency_ms"]["p99"])
        rps = _ratio(base["rps"], m["rps"])
        lines.append(
            f"- {s.label}: latency p50 {p50}x, p99 {p99}x the direct miner's; "
            f"throughput 1/{rps} of it."
        )
    return lines


def bound_lines(scenarios: Sequence[Scenario]) -> list[str]:
    """Which process limited each scenario: the one above `BOUND_SHARE` of a core."""
    lines = []
    for s in scenarios:
        elapsed = s.summary["elapsed_s"]
        bound = [
            f"{name} {cpu_pct(s, name)}"
            for name in ("gateway", "miners", "loadgen")
            if (spent := s.cpu_s.get(name)) is not None
            and elapsed
            and spent / elapsed > BOUND_SHARE
        ]
        if bound:
            lines.append(f"- {s.label}: CPU-bound in {', '.join(bound)} of a core.")
    return lines


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or not b else f"{a / b:.1f}"


def target_lines(best_of: Scenario) -> list[str]:
    """The issue's target, checked against the best_of run."""
    m = best_of.summary
    p50, errors, rps = m["overhead_ms"]["p50"], m["errors"], m["rps"]
    checks = [
        (f"at least {TARGET_RPS:.0f} requests/s", f"{rps:.1f}", rps >= TARGET_RPS),
        (
            f"p50 overhead under {TARGET_OVERHEAD_P50_MS:.0f} ms (header)",
            f"{_f(p50)} ms",
            p50 is not None and p50 < TARGET_OVERHEAD_P50_MS,
        ),
        ("zero errors", str(errors), errors == 0),
    ]
    return [f"- {goal}: {got} — {'met' if ok else 'NOT met'}" for goal, got, ok in checks]


def render(
    figures: Figures, machine: dict[str, Any], command: str, warmup_s: float, duration_s: float
) -> str:
    """The whole report."""
    runs = figures.scenarios
    parts = [
        "# Gateway benchmarks",
        "",
        "Regenerated by `make bench`. Sections: the core benchmark (overhead and throughput), "
        "every ranker on unique prompts beside its eval accuracy, stragglers against the "
        "deadline, fan-out width and pool size, and gateway memory under 1,000 concurrent "
        "requests. Every load but the rankers' is `bitgate load` in its own process; every "
        "target is on loopback.",
        "",
        "## Core: 10 instant miners, best_of and race over all ten",
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores; {machine['python']}; "
        f"{machine['os']}; run {machine['date']}.",
        "",
        f"Command: `{command}`",
        "",
        f"{figures.miners} instant sim miners (one process), the gateway (`bitgate serve`; "
        "each gateway row names the ranker it asked for), and the loadgen (aiohttp + uvloop) "
        "each in its own process, sharing "
        f"the machine. Closed loop, {figures.concurrency} concurrent clients, "
        f"{warmup_s:g} s warm-up, then {duration_s:g} s measured. Percentiles come from HDR "
        "histograms of every measured request (3 significant digits). The target figure is "
        "for the heuristic ranker; the blend row shows the default ranker. "
        f"Requests cycle through the {len(SHORT)} built-in short prompts, so replies repeat and a "
        "ranker with a cache (the blend row) ranks mostly from it: for unique-prompt "
        "traffic read the rankers section. "
        "Overhead (header) is the gateway's "
        "`x-bitgate-overhead-ms`: time from fan-out start to the result, less the slowest "
        "miner (best_of) or the winner (race). Client-side overhead is the loadgen's latency "
        "less that same miner latency from the `bitgate` block, so it also counts reading, "
        "validating and planning the request, writing the reply, and queueing on the loop. "
        "CPU is each process's share of one core over the measured phase; CPU others is "
        "what the rest of the machine used meanwhile (noise).",
        "",
        *latency_table(runs),
        "",
        *overhead_table(runs),
        "",
        *noise_lines(runs),
        "Gateway against the direct miner:",
        "",
        *ratio_lines(runs),
        "",
        "What limited each run (a one-loop process near a full core):",
        "",
        *bound_lines(runs),
        "",
        "Target (best_of, all ten sampled, heuristic ranker):",
        "",
        *target_lines(runs[1]),
        "",
        f"### HTTP clients: one fan-out to {figures.miners} instant miners, "
        f"{figures.concurrency} concurrent, in one process",
        "",
        *table(figures.clients),
        "",
    ]
    return "\n".join(parts)
