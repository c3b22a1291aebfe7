"""The gateway benchmark's Markdown report: machine, command, figures, ratios, client comparison."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from load.bench_clients import ClientResult, table
from load.loadgen import Summary

TARGET_RPS = 300.0
TARGET_OVERHEAD_P50_MS = 10.0
BOUND_SHARE = 0.9  # a single-threaded process above this share of a core limits the run
NOISE_SHARE = 0.1  # other processes' share of a core above which a run is flagged


@dataclass(frozen=True, slots=True)
class Scenario:
    """One load scenario's name and what the loadgen measured."""

    label: str
    summary: Summary


@dataclass(frozen=True, slots=True)
class Figures:
    """Everything one benchmark run measured."""

    scenarios: list[Scenario]
    clients: list[ClientResult]
    concurrency: int
    miners: int


def _f(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _errors(summary: Summary) -> str:
    count = sum(summary.errors.values())
    return f"{count} {summary.errors}" if count else "0"


def _cpu_pct(summary: Summary, name: str) -> str:
    spent = summary.cpu_s.get(name)
    if spent is None or not summary.elapsed_s:
        return "-"
    return f"{100.0 * spent / summary.elapsed_s:.0f}%"


def others_share(summary: Summary) -> float | None:
    """Share of a core that processes outside the benchmark used during the measured phase."""
    cpu = summary.cpu_s
    machine = cpu.get("machine")
    ours = [cpu.get(name) for name in ("gateway", "miners", "loadgen") if name in cpu]
    if machine is None or None in ours or not summary.elapsed_s:
        return None
    return max(machine - sum(x for x in ours if x is not None), 0.0) / summary.elapsed_s


def _cpu_per_request_ms(summary: Summary, name: str) -> str:
    spent = summary.cpu_s.get(name)
    return (
        "-" if spent is None or not summary.requests else f"{1000 * spent / summary.requests:.2f}"
    )


def _rankers(summary: Summary) -> str:
    """`, ranker X` when the gateway named the ranker it used."""
    names = ", ".join(sorted(summary.rankers))
    return f", ranker {names}" if names else ""


def _pct(share: float | None) -> str:
    return "-" if share is None else f"{100 * share:.0f}%"


def noise_lines(scenarios: Sequence[Scenario]) -> list[str]:
    """A warning when other processes took CPU during a scenario."""
    noisy = [
        f"{s.label} ({_pct(share)})"
        for s in scenarios
        if (share := others_share(s.summary)) is not None and share > NOISE_SHARE
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
        m, lat = s.summary, s.summary.latency_ms
        rows.append(
            f"| {s.label}{_rankers(m)} | {m.requests} | {m.rps:.1f} | {_f(lat['p50'])} "
            f"| {_f(lat['p90'])} | {_f(lat['p99'])} | {_f(lat['max'])} | {_errors(m)} |"
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
        m, ovh, e2e = s.summary, s.summary.overhead_ms, s.summary.e2e_overhead_ms
        rows.append(
            f"| {s.label} | {_f(ovh['p50'])} / {_f(ovh['p90'])} / {_f(ovh['p99'])} "
            f"| {_f(e2e['p50'])} / {_f(e2e['p99'])} | {_cpu_pct(m, 'gateway')} "
            f"| {_cpu_pct(m, 'miners')} | {_cpu_pct(m, 'loadgen')} "
            f"| {_pct(others_share(m))} | {_cpu_per_request_ms(m, 'gateway')} |"
        )
    return rows


def ratio_lines(scenarios: Sequence[Scenario]) -> list[str]:
    """Each gateway scenario's latency and throughput against the direct-miner baseline."""
    base = scenarios[0].summary
    lines = []
    for s in scenarios[1:]:
        m = s.summary
        p50 = _ratio(m.latency_ms["p50"], base.latency_ms["p50"])
        p99 = _ratio(m.latency_ms["p99"], base.latency_ms["p99"])
        rps = _ratio(base.rps, m.rps)
        lines.append(
            f"- {s.label}: latency p50 {p50}x, p99 {p99}x the direct miner's; "
            f"throughput 1/{rps} of it."
        )
    return lines


def bound_lines(scenarios: Sequence[Scenario]) -> list[str]:
    """Which process limited each scenario: the one above `BOUND_SHARE` of a core."""
    lines = []
    for s in scenarios:
        m = s.summary
        bound = [
            f"{name} {_cpu_pct(m, name)}"
            for name in ("gateway", "miners", "loadgen")
            if (spent := m.cpu_s.get(name)) is not None
            and m.elapsed_s
            and spent / m.elapsed_s > BOUND_SHARE
        ]
        if bound:
            lines.append(f"- {s.label}: CPU-bound in {', '.join(bound)} of a core.")
    return lines


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or not b else f"{a / b:.1f}"


def target_lines(best_of: Summary) -> list[str]:
    """The issue's target, checked against the best_of run."""
    p50 = best_of.overhead_ms["p50"]
    errors = sum(best_of.errors.values())
    checks = [
        (f"at least {TARGET_RPS:.0f} requests/s", f"{best_of.rps:.1f}", best_of.rps >= TARGET_RPS),
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
        "# Gateway benchmark",
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores; {machine['python']}; "
        f"{machine['os']}; run {machine['date']}.",
        "",
        f"Command: `{command}`",
        "",
        f"{figures.miners} instant sim miners (one process), the gateway (`bitgate serve`; "
        "each gateway row names the ranker that served it), and the loadgen (aiohttp + uvloop) "
        "each in its own process, sharing "
        f"the machine. Closed loop, {figures.concurrency} concurrent clients, "
        f"{warmup_s:g} s warm-up, then {duration_s:g} s measured. Percentiles are exact "
        "(nearest rank) over every measured request. Overhead (header) is the gateway's "
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
        "Target (best_of, all ten sampled):",
        "",
        *target_lines(runs[1].summary),
        "",
        f"## HTTP clients: one fan-out to {figures.miners} instant miners, "
        f"{figures.concurrency} concurrent, in one process",
        "",
        *table(figures.clients),
        "",
    ]
    return "\n".join(parts)
