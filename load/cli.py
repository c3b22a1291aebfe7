"""`bitgate load …`: load runs, comparisons, capacity searches, and the benchmarks."""

from __future__ import annotations

import importlib
import sys

# Subcommand → module with main(argv), imported only when used.
COMMANDS = {
    "run": ("load.run_cli", "load a gateway or a pool and write a report (the default)"),
    "compare": ("load.compare", "two report.json files side by side, with ratios"),
    "capacity": ("load.capacity_cli", "the highest rate that meets a latency objective"),
    "bench": ("load.bench.gateway", "the benchmark suite (writes BENCHMARKS.md with --out)"),
    "clients": ("load.bench.clients", "fan-out throughput of each candidate HTTP client"),
}


def usage() -> str:
    """The subcommands, one a line."""
    lines = [
        "usage: bitgate load [run] [SCENARIO.yaml] --target URL|METAGRAPH [--model M]",
        "                    [--concurrency N | --rate R[:R2]] [--requests N | --duration S]",
        "                    --out DIR",
        "       bitgate load {" + ",".join(COMMANDS) + "} ...",
        "",
    ]
    lines += [f"  {name:<9} {about}" for name, (_, about) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Run a `load` subcommand (a bare `bitgate load …` is `run`); returns the exit status."""
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    name, rest = (argv[0], argv[1:]) if argv[0] in COMMANDS else ("run", argv)
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
