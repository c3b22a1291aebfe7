"""`bitgate load capacity`: the highest rate a gateway, or each miner of a pool, sustains."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from load import report
from load.capacity import Objective, Plan, Search, Step, StepFigures, search
from load.engine import Run, open_session
from load.prompts import PromptError
from load.run_cli import add_scenario_flags, scenario_from
from load.scenario import MAX_RATE, Scenario, ScenarioError
from load.targets import Target, TargetError, resolve


def register(parser: argparse.ArgumentParser) -> None:
    """`bitgate load capacity` arguments."""
    add_scenario_flags(parser)
    parser.add_argument("--out", type=Path, required=True, help="folder for capacity.json/.png")
    parser.add_argument("--start", type=float, default=10.0, help="first rate, req/s")
    parser.add_argument("--factor", type=float, default=1.5, help="each next rate = rate × this")
    parser.add_argument("--step", type=float, help="each next rate = rate + this (not ×)")
    parser.add_argument("--max-rate", type=float, default=5000.0, help="never offer more")
    parser.add_argument("--max-steps", type=int, default=20, help="rates tried before refining")
    parser.add_argument("--refine", type=int, default=2, help="bisections after the break")
    parser.add_argument("--step-s", type=float, default=10.0, help="seconds at each rate")
    parser.add_argument("--p99-ms", type=float, default=2000.0, help="latency objective")
    parser.add_argument("--error-budget", type=float, default=0.01, help="share of errors allowed")
    parser.add_argument(
        "--max-miners", type=int, default=16, help="a pool: search this many miners, by uid"
    )
    parser.set_defaults(run=capacity)


def step_scenario(base: Scenario, rate: float, seconds: float) -> Scenario:
    """The base scenario at a fixed open-loop rate for `seconds`."""
    fields = base.model_dump()
    fields.update(rate=rate, rate_to=None, concurrency=None, duration_s=seconds, requests=None)
    return Scenario.model_validate(fields)


async def measure(base: Scenario, target: Target, rate: float, seconds: float) -> StepFigures:
    """One step: an open loop at `rate` against `target`."""
    scenario = step_scenario(base, rate, seconds)
    async with open_session(scenario) as session:
        result = await Run(scenario, target, session).run()
    rec = result.recorder
    return StepFigures(
        requests=rec.requests,
        errors=sum(rec.errors.values()),
        p50_ms=rec.latency.percentile(50),
        p99_ms=rec.latency.percentile(99),
        rps=rec.requests / result.elapsed_s if result.elapsed_s else 0.0,
    )


def targets(base: Scenario, max_miners: int) -> list[tuple[str, Target]]:
    """The gateway, or each of the first `max_miners` miners of a pool on its own."""
    target = resolve(base.target, base.allow_remote)
    if not target.direct:
        return [(base.target, target)]
    return [
        (f"miner {e.uid}", Target((e,), "pool", target.pool)) for e in target.endpoints[:max_miners]
    ]


def _print_step(label: str, step: Step) -> None:
    f = step.figures
    p99 = "-" if f.p99_ms is None else f"{f.p99_ms:.0f} ms"
    verdict = "held" if step.held else f"broke: {step.broke}"
    print(
        f"{label}: {step.rate:8.1f} req/s → {f.rps:8.1f} done/s, p99 {p99}, "
        f"errors {f.errors}/{f.requests}; {verdict}",
        file=sys.stderr,
        flush=True,
    )


async def run_all(
    base: Scenario, objective: Objective, plan: Plan, step_s: float, max_miners: int = 16
) -> list[Search]:
    """Search every target in turn."""
    found = []
    for label, target in targets(base, max_miners):

        async def at(rate: float, target: Target = target) -> StepFigures:
            return await measure(base, target, rate, step_s)

        found.append(await search(label, at, objective, plan, _print_step))
    return found


def plot(searches: list[Search], objective: Objective, path: Path) -> Path:
    """p99 latency against offered rate per target, the objective as a line."""
    fig, ax = plt.subplots(figsize=(8, 4), dpi=110)
    for found in searches[:20]:
        steps = sorted(found.steps, key=lambda s: s.rate)
        ax.plot([s.rate for s in steps], [s.figures.p99_ms or 0 for s in steps], "o-",
                ms=4, label=f"{found.label}: {found.capacity or 0:g} req/s")  # fmt: skip
        broken = [s for s in steps if not s.held]
        ax.plot([s.rate for s in broken], [s.figures.p99_ms or 0 for s in broken], "x",
                color="#d62728", ms=9)  # fmt: skip
    ax.axhline(objective.p99_ms, color="#d62728", ls="--", lw=1, label="p99 objective")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("offered rate, req/s (log)")
    ax.set_ylabel("p99 latency, ms (log)")
    ax.set_title("Capacity search (x: objective broken)", loc="left", fontsize=11)
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def summary_lines(searches: list[Search], objective: Objective) -> list[str]:
    """One line per target: the highest rate that held and what broke above it."""
    lines = [
        f"objective: p99 ≤ {objective.p99_ms:g} ms, errors ≤ {100 * objective.error_budget:g}%"
    ]
    for found in searches:
        held = "none held" if found.capacity is None else f"{found.capacity:g} req/s held"
        broke = found.broke
        after = "" if broke is None else f"; broke at {broke.rate:g} req/s ({broke.broke})"
        lines.append(f"  {found.label}: {held}{after}")
    return lines


def capacity(args: argparse.Namespace) -> int:
    """Run the search and write capacity.json and capacity.png."""
    try:
        base = scenario_from(args)
        objective = Objective(args.p99_ms, args.error_budget)
        plan = Plan(args.start, args.factor, args.step, args.max_rate, args.max_steps, args.refine)
        if not 0 < args.step_s <= 600 or args.start <= 0 or (args.factor <= 1 and not args.step):
            raise ScenarioError("--step-s must be in (0, 600], --start > 0, --factor > 1")
        if args.step is not None and args.step <= 0:
            raise ScenarioError("--step must be > 0")
        if max(args.start, args.max_rate) > MAX_RATE:
            raise ScenarioError(f"--start and --max-rate must be at most {MAX_RATE:g} req/s")
        if not 1 <= args.max_miners <= 1024:
            raise ScenarioError("--max-miners must be between 1 and 1024")
        searches = asyncio.run(run_all(base, objective, plan, args.step_s, args.max_miners))
    except (ScenarioError, TargetError, PromptError) as exc:
        print(f"bitgate load capacity: error: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    document: dict[str, Any] = {
        "objective": {"p99_ms": objective.p99_ms, "error_budget": objective.error_budget},
        "step_s": args.step_s,
        "scenario": base.model_dump(mode="json"),
        "targets": [found.to_json() for found in searches],
    }
    report.write(document, args.out / "capacity.json")
    plot(searches, objective, args.out / "capacity.png")
    print("\n".join(summary_lines(searches, objective)))
    return 0
