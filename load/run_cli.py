"""`bitgate load [run]`: a scenario from YAML and flags, run, and its report written."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from load import html, plots, report
from load.engine import RunResult, run_scenario
from load.prompts import PromptError
from load.scenario import Scenario, ScenarioError, load_scenario, parse_scenario
from load.targets import TargetError


def add_scenario_flags(parser: argparse.ArgumentParser) -> None:
    """Flags that set (or override) scenario fields."""
    parser.add_argument("scenario", nargs="?", type=Path, help="scenario YAML file")
    parser.add_argument("--target", help="OpenAI base URL (http://host:port/v1) or metagraph file")
    parser.add_argument("--model", help="model id (the gateway's pool)")
    parser.add_argument("--endpoint", choices=["chat", "completions"])
    parser.add_argument("--prompts", help="built-in set (short, long, mixed) or a .jsonl file")
    parser.add_argument("--max-tokens", type=int)
    parser.add_argument("--stream", type=float, help="share of streaming requests, 0 to 1")
    loop = parser.add_mutually_exclusive_group()
    loop.add_argument("--concurrency", type=int, help="closed loop: this many clients")
    loop.add_argument("--rate", help="open loop: requests/s, or FROM:TO for a linear ramp")
    parser.add_argument("--arrival", choices=["poisson", "uniform"], help="open-loop spacing")
    parser.add_argument("--requests", type=int, help="stop after this many requests")
    parser.add_argument("--duration", type=float, dest="duration_s", help="measured seconds")
    parser.add_argument("--warmup", type=float, dest="warmup_s", help="unrecorded seconds first")
    parser.add_argument("--timeout", type=float, dest="timeout_s", help="per-request seconds")
    parser.add_argument("--max-in-flight", type=int, help="open loop: requests outstanding at most")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--bitgate", help='gateway options as JSON, e.g. \'{"strategy":"race"}\'')
    parser.add_argument("--header", action="append", default=[], metavar="NAME:VALUE")
    parser.add_argument("--allow-remote", action="store_true", default=None)
    parser.add_argument(
        "--good-uids", help="sim uids that answer well, comma-separated: the good-answer share"
    )


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Scenario fields given as flags (None where not given)."""
    fields: dict[str, Any] = {
        key: getattr(args, key)
        for key in (
            "target", "model", "endpoint", "prompts", "max_tokens", "stream", "concurrency",
            "arrival", "requests", "duration_s", "warmup_s", "timeout_s", "max_in_flight",
            "seed", "allow_remote",
        )
    }  # fmt: skip
    if args.rate is not None:
        start, _, end = str(args.rate).partition(":")
        fields["rate"] = _number(start, "--rate")
        fields["rate_to"] = _number(end, "--rate") if end else None
    if args.bitgate is not None:
        try:
            fields["bitgate"] = orjson.loads(args.bitgate)
        except orjson.JSONDecodeError:
            raise ScenarioError("--bitgate: not valid JSON") from None
    if getattr(args, "good_uids", None):
        try:
            fields["good_uids"] = [int(u) for u in str(args.good_uids).split(",") if u.strip()]
        except ValueError:
            raise ScenarioError("--good-uids wants comma-separated integers") from None
    if args.header:
        pairs = [h.partition(":") for h in args.header]
        if any(not sep or not name.strip() for name, sep, _ in pairs):
            raise ScenarioError("--header wants NAME:VALUE")
        fields["headers"] = {name.strip(): value.strip() for name, _, value in pairs}
    return fields


def _number(text: str, flag: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ScenarioError(f"{flag}: {text!r} is not a number") from None


def scenario_from(args: argparse.Namespace) -> Scenario:
    """The scenario the flags (and file, if given) describe."""
    fields = overrides(args)
    if args.scenario is not None:
        return load_scenario(args.scenario, fields)
    return parse_scenario({k: v for k, v in fields.items() if v is not None}, "flags")


def register(parser: argparse.ArgumentParser) -> None:
    """`bitgate load [run]` arguments."""
    add_scenario_flags(parser)
    parser.add_argument("--out", type=Path, required=True, help="folder for report.json and plots")
    parser.add_argument("--no-plots", action="store_true", help="report.json only")
    parser.add_argument("--watch", action="append", default=[], metavar="NAME=PID",
                        help="also report this process's CPU seconds (repeatable)")  # fmt: skip
    parser.set_defaults(run=run)


def parse_watch(items: Sequence[str]) -> dict[str, int]:
    """`NAME=PID` arguments as a dict."""
    watch: dict[str, int] = {}
    for item in items:
        name, _, pid = item.partition("=")
        if not name or not pid.isdigit():
            raise ScenarioError(f"--watch wants NAME=PID, got {item!r}")
        watch[name] = int(pid)
    return watch


def write_report(result: RunResult, out: Path, with_plots: bool = True) -> dict[str, Any]:
    """report.json, and unless told not to, the PNG plots and report.html."""
    document = report.build(result)
    report.write(document, out / "report.json")
    if with_plots:
        drawn = plots.draw_all(document, out / "plots")
        html.write(document, drawn, out)
    return document


def _loop_run(scenario: Scenario, watch: dict[str, int]) -> RunResult:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(run_scenario(scenario, watch))
    return uvloop.run(run_scenario(scenario, watch))


def run(args: argparse.Namespace) -> int:
    """Run a scenario and write its report; 2 on a bad scenario or target."""
    try:
        scenario = scenario_from(args)
        watch = parse_watch(args.watch)
        print(f"load: {scenario.describe()}", file=sys.stderr, flush=True)
        result = _loop_run(scenario, watch)
    except (ScenarioError, TargetError, PromptError) as exc:
        print(f"bitgate load: error: {exc}", file=sys.stderr)
        return 2
    document = write_report(result, args.out, not args.no_plots)
    print(report.line(document), flush=True)
    print(f"report: {args.out / ('report.json' if args.no_plots else 'report.html')}", flush=True)
    return 0
