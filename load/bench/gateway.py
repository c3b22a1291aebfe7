"""The benchmark suite: core overhead, rankers, stragglers, fan-out and pool size, memory."""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from load import profiling
from load.bench import adaptive as bench_adaptive
from load.bench import adaptive_plots as bench_adaptive_plots
from load.bench import clients as bench_clients
from load.bench import memory as bench_memory
from load.bench import plots as bench_plots
from load.bench import rankers as bench_rankers
from load.bench import run as bench_run
from load.bench import scale as bench_scale
from load.bench import stragglers as bench_stragglers
from load.bench.report import Figures, render
from load.bench.run import Load
from load.procs import (
    Gateway,
    ProcessError,
    SimPool,
    gateway,
    sim_pool,
    wait_quiet,
)

ALL_TEN = {"top_k": 10, "sample": 10}
QUIET_CORES = 0.25
SECTIONS = ("core", "rankers", "stragglers", "scale", "memory", "adaptive", "tail")


@dataclass(frozen=True, slots=True)
class BenchConfig:
    """How long and how hard each scenario runs, and which sections run."""

    concurrency: int = 16
    warmup_s: float = 2.0
    duration_s: float = 10.0
    client_warmup_s: float = 1.0
    client_duration_s: float = 5.0
    suite_duration_s: float = 5.0
    profile_s: int = 0
    sections: tuple[str, ...] = SECTIONS
    profile_out: Path = Path("gateway-profile.txt")
    workdir: Path = Path(".")
    plots: Path = Path("load/bench")


def core_scenarios() -> list[tuple[str, str, dict[str, object]]]:
    """(label, target kind, gateway options) of the core rows, the direct baseline first."""
    heuristic = {**ALL_TEN, "ranker": "heuristic"}
    return [
        ("one sim miner, direct (baseline)", "miner", {}),
        ("gateway best_of, 10 of 10, heuristic", "gateway", {**heuristic, "strategy": "best_of"}),
        ("gateway race, 10 of 10, heuristic", "gateway", {**heuristic, "strategy": "race"}),
        (
            "gateway best_of, 10 of 10, blend (default ranker)",
            "gateway",
            {**ALL_TEN, "ranker": "blend", "strategy": "best_of"},
        ),
    ]


def run_core(config: BenchConfig) -> tuple[Figures, list[str]]:
    """Start the pool and the gateway, run every core scenario, stop everything."""
    with (
        sim_pool(config.workdir) as pool,
        gateway(pool.metagraph, config.workdir / "gateway.log") as gw,
    ):
        watch = {"gateway": gw.proc.pid, "miners": pool.proc.pid}
        runs = []
        for label, kind, options in core_scenarios():
            target = pool.urls[0] + "/v1" if kind == "miner" else gw.url + "/v1"
            load = Load(config.concurrency, None, config.warmup_s, config.duration_s, 30.0, options)
            runs.append(bench_run.run(label, target, pool.name, load, config.workdir, watch))
        print("running: client comparison ...", file=sys.stderr, flush=True)
        windows = (config.client_warmup_s, config.client_duration_s)
        clients = bench_clients.run_comparison(
            pool.urls, pool.name, config.concurrency, windows, pool.proc.pid
        )
        profile = profile_gateway(config, pool, gw) if config.profile_s else []
    return Figures(runs, clients, config.concurrency, len(pool.urls)), profile


def run_suites(config: BenchConfig) -> list[str]:
    """Every other section that was asked for, as Markdown, with its plots written."""
    lines: list[str] = []
    seconds, workdir = config.suite_duration_s, config.workdir
    if "rankers" in config.sections:
        # As long as a core run: the rankers' ratios are the figures read side by side.
        ranked = bench_rankers.measure(workdir, config.duration_s, config.warmup_s)
        lines += bench_rankers.section(ranked, config.duration_s, config.warmup_s)
    if "stragglers" in config.sections:
        rows = bench_stragglers.run_all(workdir, seconds)
        deadline_ms = bench_stragglers.DEADLINE_S * 1000
        bench_plots.stragglers(rows, deadline_ms, config.plots / "stragglers.png")
        lines += bench_stragglers.section(rows, seconds)
    if "scale" in config.sections:
        widths = bench_scale.fanout(workdir, seconds)
        pools = bench_scale.pool_sizes(workdir, seconds)
        bench_plots.scale(widths, pools, config.plots / "scale.png")
        lines += bench_scale.section(widths, pools, seconds)
    if "adaptive" in config.sections:
        points = bench_adaptive.under_load(workdir, seconds)
        bench_adaptive_plots.under_load(points, config.plots / "adaptive-load.png")
        lines += bench_adaptive.load_section(points, seconds)
    if "tail" in config.sections:
        tail_rows = bench_adaptive.tail(workdir, max(seconds, 10.0))
        bench_adaptive_plots.tail(tail_rows, config.plots / "adaptive-tail.png")
        demo_rows = bench_adaptive.demo(workdir, max(seconds, 10.0))
        lines += bench_adaptive.tail_section(tail_rows, max(seconds, 10.0), demo_rows)
    if "memory" in config.sections:
        memory = bench_memory.measure(workdir, seconds)
        bench_plots.memory(memory, config.plots / "memory.png")
        lines += bench_memory.section(memory, seconds)
    return lines


def profile_gateway(config: BenchConfig, pool: SimPool, gw: Gateway) -> list[str]:
    """Sample the gateway with py-spy under the best_of load; the hot-spot report lines."""
    options = core_scenarios()[1][2]
    load = Load(config.concurrency, None, 1.0, config.profile_s + 3.0, 30.0, options)
    out = config.workdir / "profile-run"
    command = bench_run.command(gw.url + "/v1", pool.name, load, out, {})
    print(f"profiling the gateway for {config.profile_s}s ...", file=sys.stderr, flush=True)
    loadgen = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    try:
        time.sleep(2.0)
        profiling.record(gw.proc.pid, config.profile_s, config.profile_out)
    finally:
        loadgen.wait(config.profile_s + 60)
    return profile_lines(config.profile_out)


def profile_lines(raw: Path) -> list[str]:
    """Top frames by self time, then the project's frames by inclusive time."""
    every = profiling.read_stacks(raw)
    stacks = profiling.busy(every)
    lines = [
        f"py-spy samples: {sum(every.values())}, {sum(stacks.values())} busy "
        f"(idle thread-pool waits left out); raw stacks: {raw}",
        "",
        "self time, % of busy samples:",
    ]
    lines += [f"  {s.self_pct:5.1f}%  {s.frame}" for s in profiling.top_self(stacks, 20)]
    lines += ["", "project frames, inclusive (self):"]
    lines += [
        f"  {s.inclusive_pct:5.1f}% ({s.self_pct:4.1f}%)  {s.frame}"
        for s in profiling.hot_spots(stacks, 25, project_only=True)
    ]
    return lines


def machine() -> dict[str, Any]:
    """CPU model, cores and Python of this machine."""
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "os": platform.platform(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def register(parser: argparse.ArgumentParser) -> None:
    """The benchmark's arguments (`bitgate load bench`, `python -m load.bench.gateway`)."""
    parser.add_argument("--out", type=Path, help="write the Markdown report here")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--warmup-s", type=float, default=2.0)
    parser.add_argument("--duration-s", type=float, default=10.0)
    parser.add_argument("--client-duration-s", type=float, default=5.0)
    parser.add_argument(
        "--suite-duration-s", type=float, default=5.0, help="measured seconds of each suite run"
    )
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated sections to run (default all: {','.join(SECTIONS)})",
    )
    parser.add_argument(
        "--quiet-wait-s",
        type=float,
        default=60.0,
        help="first wait up to this long for other processes to go quiet",
    )
    parser.add_argument(
        "--profile-s", type=int, default=0, help="then sample the gateway with py-spy (seconds)"
    )
    parser.add_argument(
        "--profile-out",
        type=Path,
        default=Path(tempfile.gettempdir()) / "bitgate-gateway-profile.txt",
        help="where py-spy's raw stacks go",
    )
    parser.set_defaults(run=bench, command_line=None)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m load.bench.gateway`: the same as `bitgate load bench`."""
    parser = argparse.ArgumentParser(prog="python -m load.bench.gateway", description=__doc__)
    register(parser)
    args = parser.parse_args(argv)
    flags = sys.argv[1:] if argv is None else list(argv)
    args.command_line = shlex.join(["python", "-m", "load.bench.gateway", *flags])
    return bench(args)


def bench(args: argparse.Namespace) -> int:
    """Run the benchmark, print the report, and write it to `--out`."""
    if args.concurrency < 1 or args.duration_s <= 0 or args.warmup_s < 0:
        print(
            "bench: --concurrency and --duration-s must be positive, --warmup-s not negative",
            file=sys.stderr,
        )
        return 2
    # SIGTERM unwinds like Ctrl-C, so every child process is stopped on the way out.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    command = args.command_line or shlex.join(["bitgate", *sys.argv[1:]])
    try:
        report = run_report(args, command)
    except (ProcessError, subprocess.SubprocessError) as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 1
    if args.out is not None:
        args.out.write_text(report)
    return 0


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def run_report(args: argparse.Namespace, command: str) -> str:
    """Run every scenario in a scratch folder; print and return the report."""
    busy = wait_quiet(args.quiet_wait_s, QUIET_CORES)
    if busy is not None and busy >= QUIET_CORES:
        print(f"note: the machine is busy ({busy:.2f} cores in use)", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="bitgate-bench-") as workdir:
        sections = tuple(name.strip() for name in args.sections.split(",") if name.strip())
        unknown = set(sections) - set(SECTIONS)
        if unknown:
            raise ProcessError(f"unknown sections {sorted(unknown)}; choose from {SECTIONS}")
        out_dir = args.out.parent if args.out is not None else Path(workdir)
        config = BenchConfig(
            concurrency=args.concurrency,
            warmup_s=args.warmup_s,
            duration_s=args.duration_s,
            client_duration_s=args.client_duration_s,
            suite_duration_s=args.suite_duration_s,
            profile_s=args.profile_s,
            sections=sections,
            profile_out=args.profile_out,
            workdir=Path(workdir),
            plots=out_dir / "bench",
        )
        started = time.monotonic()
        report = ""
        if "core" in sections:
            figures, profile = run_core(config)
            report = render(figures, machine(), command, config.warmup_s, config.duration_s)
            if profile:
                report += "\n### Gateway profile (py-spy, best_of load)\n\n```\n"
                report += "\n".join(profile) + "\n```\n"
        else:
            report = f"# Gateway benchmarks\n\nCommand: `{command}`\n\n"
        report += "\n".join(run_suites(config))
        report += f"\nWhole suite: {time.monotonic() - started:.0f} s.\n"
        print(report)
    return report


if __name__ == "__main__":
    sys.exit(main())
