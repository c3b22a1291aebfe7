"""`bitgate load …`: the load generator and the benchmarks from the command line."""

from __future__ import annotations

import importlib
import sys

# Subcommand → module with main(argv), imported only when used.
COMMANDS = {
    "run": ("load.loadgen", "closed-loop load against one loopback URL"),
    "bench": ("load.bench_gateway", "the gateway benchmark (writes BENCHMARKS.md with --out)"),
    "clients": ("load.bench_clients", "fan-out throughput of each candidate HTTP client"),
}


def usage() -> str:
    """The subcommands, one a line."""
    lines = ["usage: bitgate load {" + ",".join(COMMANDS) + "} ...", ""]
    lines += [f"  {name:<8} {about}" for name, (_, about) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Run a `load` subcommand; returns the exit status."""
    if not argv or argv[0] not in COMMANDS:
        print(usage(), file=sys.stderr if argv else sys.stdout)
        return 2 if argv else 0
    module = importlib.import_module(COMMANDS[argv[0]][0])
    return int(module.main(argv[1:]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
