"""`python -m load.soak`: a sim pool with faulty miners, a gateway, and the soak between them."""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
from pathlib import Path

import yaml

from load.procs import gateway, sim_pool
from load.soak.run import soak
from load.soak.watch import write_plot

# Four good miners and one of each fault; a request samples four of the ten.
POOL = [
    *(
        {
            "name": f"good-{i}",
            "latency": {"kind": "normal", "ms": 120, "sd_ms": 30, "tokens_per_s": 200},
        }
        for i in range(4)
    ),
    {
        "name": "slow",
        "latency": {"kind": "lognormal", "ms": 600, "max_ms": 2500, "tokens_per_s": 60},
    },
    {"name": "error", "failure": "error", "failure_rate": 0.5, "latency": 50},
    {"name": "hang", "failure": "hang", "failure_rate": 0.2, "latency": 50},
    {"name": "malformed", "failure": "malformed", "failure_rate": 0.3, "latency": 50},
    {"name": "drop-stream", "failure": "drop_stream", "failure_rate": 0.3, "latency": 50},
    {"name": "busy", "capacity": 2, "latency": 300},
]
GATEWAY_ARGS = ("--top-k", "10", "--sample", "4", "--timeout-s", "3", "--ranker", "heuristic")
GATEWAY_ENV = {"BITGATE_EMBEDDING_MODEL": "false", "BITGATE_AXON_ALLOW": "127.0.0.0/8"}


def main(argv: list[str] | None = None) -> int:
    """Run the soak, write `report.json` and `soak.png` under --out; 1 if it failed, and why."""
    parser = argparse.ArgumentParser(prog="python -m load.soak", description=__doc__)
    parser.add_argument("--duration-s", type=float, default=1800.0)
    parser.add_argument("--warmup-s", type=float, default=180.0)
    parser.add_argument("--interval-s", type=float, default=10.0)
    parser.add_argument("--probe-s", type=float, default=20.0, help="capacity probe length")
    parser.add_argument("--rate", type=float, help="req/s to drive (default: half of capacity)")
    parser.add_argument("--out", type=Path, default=Path("load/soak/report"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        profiles = workdir / "soak-pool.yaml"
        profiles.write_text(yaml.safe_dump({"miners": POOL}))
        with (
            sim_pool(workdir, len(POOL), profiles=profiles) as pool,
            gateway(pool.metagraph, workdir / "gateway.log", GATEWAY_ARGS, GATEWAY_ENV) as gw,
        ):
            report = asyncio.run(
                soak(
                    gw.url,
                    pool.name,
                    gw.proc.pid,
                    duration_s=args.duration_s,
                    warmup_s=args.warmup_s,
                    interval_s=args.interval_s,
                    probe_s=args.probe_s,
                    rate=args.rate,
                )
            )
        if not report["passed"]:
            shutil.copy(workdir / "gateway.log", args.out / "gateway.log")
    (args.out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    write_plot(report, args.out / "soak.png")
    verdict = "held" if report["passed"] else "FAILED"
    print(f"soak {verdict}: {args.out / 'report.json'}, {args.out / 'soak.png'}")
    judged = report["under_load"].get("judged", [])
    for name, figure in report["under_load"].get("growth", {}).items():
        note = "" if name in judged else ", reported only"
        print(
            f"  under load {name}: {figure['start']} -> {figure['end']} "
            f"(allowed {figure['allowed']}{note})"
        )
    for name, figure in report["idle"]["growth"].items():
        print(f"  idle {name}: {figure['start']} -> {figure['end']} (allowed {figure['allowed']})")
    print(f"  unexpected answers: {report['totals'].get('unexpected', 0)}")
    for reason in report["reasons"]:
        print(f"  failed: {reason}")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
