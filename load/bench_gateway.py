"""The gateway benchmark: instant sim miners, the gateway, the loadgen; writes BENCHMARKS.md."""

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

import orjson

from load import bench_clients, profiling
from load.bench_report import Figures, Scenario, render
from load.loadgen import Summary, chat_body
from load.procs import (
    CHAT_PATH,
    Gateway,
    ProcessError,
    SimPool,
    gateway,
    sim_pool,
    wait_quiet,
)

ALL_TEN = {"top_k": 10, "sample": 10}
QUIET_CORES = 0.25


@dataclass(frozen=True, slots=True)
class BenchConfig:
    """How long and how hard each scenario runs."""

    concurrency: int = 16
    warmup_s: float = 2.0
    duration_s: float = 10.0
    client_warmup_s: float = 1.0
    client_duration_s: float = 5.0
    profile_s: int = 0
    ranker: str | None = None
    profile_out: Path = Path("gateway-profile.txt")
    workdir: Path = Path(".")


def run_loadgen(
    config: BenchConfig, url: str, body: bytes, watch: dict[str, int], label: str
) -> Summary:
    """One loadgen process against `url`; its JSON summary."""
    body_file = config.workdir / f"{label}.body.json"
    body_file.write_bytes(body)
    out = config.workdir / f"{label}.summary.json"
    command = [sys.executable, "-m", "load.loadgen", "--url", url, "--body-file", str(body_file)]
    command += ["--concurrency", str(config.concurrency), "--warmup-s", str(config.warmup_s)]
    command += ["--duration-s", str(config.duration_s), "--json-out", str(out)]
    for name, pid in watch.items():
        command += ["--watch", f"{name}={pid}"]
    limit = config.warmup_s + config.duration_s + 120
    subprocess.run(command, check=True, timeout=limit, stdout=subprocess.DEVNULL)
    return Summary.from_json(orjson.loads(out.read_bytes()))


def scenarios(pool: SimPool, gw: Gateway, ranker: str | None) -> list[tuple[str, str, bytes]]:
    """(label, url, body) of each load scenario, the direct-miner baseline first."""
    routing: dict[str, object] = {**ALL_TEN, **({"ranker": ranker} if ranker else {})}
    return [
        ("one sim miner, direct (baseline)", pool.urls[0] + CHAT_PATH, chat_body(pool.name)),
        (
            "gateway best_of, 10 of 10 sampled",
            gw.url + CHAT_PATH,
            chat_body(pool.name, {**routing, "strategy": "best_of"}),
        ),
        (
            "gateway race, 10 of 10 sampled",
            gw.url + CHAT_PATH,
            chat_body(pool.name, {**routing, "strategy": "race"}),
        ),
    ]


def run_all(config: BenchConfig) -> tuple[Figures, list[str]]:
    """Start the pool and the gateway, run every scenario, stop everything."""
    with (
        sim_pool(config.workdir) as pool,
        gateway(pool.metagraph, config.workdir / "gateway.log") as gw,
    ):
        watch = {"gateway": gw.proc.pid, "miners": pool.proc.pid}
        runs = []
        for index, (label, url, body) in enumerate(scenarios(pool, gw, config.ranker)):
            print(f"running: {label} ...", file=sys.stderr, flush=True)
            summary = run_loadgen(config, url, body, watch, f"s{index}")
            runs.append(Scenario(label, summary))
        print("running: client comparison ...", file=sys.stderr, flush=True)
        windows = (config.client_warmup_s, config.client_duration_s)
        clients = bench_clients.run_comparison(
            pool.urls, pool.name, config.concurrency, windows, pool.proc.pid
        )
        profile = profile_gateway(config, pool, gw) if config.profile_s else []
    return Figures(runs, clients, config.concurrency, len(pool.urls)), profile


def profile_gateway(config: BenchConfig, pool: SimPool, gw: Gateway) -> list[str]:
    """Sample the gateway with py-spy under the best_of load; the hot-spot report lines."""
    body = scenarios(pool, gw, config.ranker)[1][2]
    body_file = config.workdir / "profile.body.json"
    body_file.write_bytes(body)
    command = [sys.executable, "-m", "load.loadgen", "--url", gw.url + CHAT_PATH]
    command += ["--body-file", str(body_file), "--concurrency", str(config.concurrency)]
    command += ["--warmup-s", "1", "--duration-s", str(config.profile_s + 3)]
    out = config.profile_out
    print(f"profiling the gateway for {config.profile_s}s ...", file=sys.stderr, flush=True)
    load = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    try:
        time.sleep(2.0)
        profiling.record(gw.proc.pid, config.profile_s, out)
    finally:
        load.wait(config.profile_s + 60)
    return profile_lines(out)


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


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's arguments."""
    parser = argparse.ArgumentParser(prog="python -m load.bench_gateway", description=__doc__)
    parser.add_argument("--out", type=Path, help="write the Markdown report here")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--warmup-s", type=float, default=2.0)
    parser.add_argument("--duration-s", type=float, default=10.0)
    parser.add_argument("--client-duration-s", type=float, default=5.0)
    parser.add_argument("--ranker", help="ranker asked for per request (default: the pool's)")
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the report, and write it to `--out`."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.concurrency < 1 or args.duration_s <= 0 or args.warmup_s < 0:
        parser.error("--concurrency and --duration-s must be positive, --warmup-s not negative")
    # SIGTERM unwinds like Ctrl-C, so every child process is stopped on the way out.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    command = shlex.join(["python", "-m", "load.bench_gateway", *(argv or sys.argv[1:])])
    try:
        report = run_report(args, command)
    except (ProcessError, subprocess.SubprocessError) as exc:
        print(f"bench_gateway: error: {exc}", file=sys.stderr)
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
        config = BenchConfig(
            concurrency=args.concurrency,
            warmup_s=args.warmup_s,
            duration_s=args.duration_s,
            client_duration_s=args.client_duration_s,
            profile_s=args.profile_s,
            ranker=args.ranker,
            profile_out=args.profile_out,
            workdir=Path(workdir),
        )
        figures, profile = run_all(config)
        report = render(figures, machine(), command, config.warmup_s, config.duration_s)
        if profile:
            report += "\n## Gateway profile (py-spy, best_of load)\n\n```\n"
            report += "\n".join(profile) + "\n```\n"
        print(report)
    return report


if __name__ == "__main__":
    sys.exit(main())
