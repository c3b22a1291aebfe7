"""`make mutation`: mutmut over each defence module, its score printed per module.

Each module is mutated in its own copy of the tree, against the unit tests that guard it
(tests run in process, where mutmut can see which test reaches which function).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MUTMUT = Path(sys.executable).with_name("mutmut")
LEFT_OUT = shutil.ignore_patterns(
    ".git", ".venv", "__pycache__", "*_cache", ".hypothesis", "*.egg-info", "mutants", "report"
)
GATEWAY_TESTS = (
    "tests/unit/gateway/test_bounds.py",
    "tests/unit/gateway/test_request_properties.py",
)
CLIENT_TESTS = (
    "tests/unit/router/test_miner_client.py",
    "tests/unit/router/test_sse_properties.py",
    "tests/unit/router/test_reply_shapes.py",
    "tests/unit/router/test_sse_lines.py",
)
# The defences and the tests that guard them.
MODULES: dict[str, tuple[str, ...]] = {
    "gateway/door/bounds.py": GATEWAY_TESTS,
    "gateway/door/inflight.py": (
        *GATEWAY_TESTS,
        "tests/unit/gateway/test_admission.py",
        "tests/unit/gateway/test_api.py",
        "tests/unit/gateway/test_access.py",
    ),
    "gateway/door/limits.py": (
        "tests/unit/gateway/test_limits.py",
        "tests/unit/gateway/test_local_limits.py",
        "tests/unit/gateway/test_access.py",
    ),
    "router/miner_client.py": CLIENT_TESTS,
    "router/sse.py": CLIENT_TESTS,
    "router/axon_policy.py": ("tests/unit/router/test_axon_policy.py",),
    "ranking/schema.py": (
        "tests/unit/ranking/test_schema.py",
        "tests/unit/ranking/test_pattern_size.py",
    ),
    "ranking/pattern_size.py": ("tests/unit/ranking/test_pattern_size.py",),
    "ranking/request_filters.py": ("tests/unit/ranking/test_request_filters.py",),
}
KILLED = {"killed", "timeout", "caught by type check", "segfault"}
TARGET = 0.8


def config(module: str, tests: tuple[str, ...]) -> str:
    """mutmut's setup.cfg section for one module."""
    # Workers forked from a server that only collected the tests, not from the process that
    # ran them: a verdict a test left cached (the axon policy's) would hide every mutant.
    lines = ["[mutmut]", f"source_paths={module}", "process_isolation=forkserver"]
    lines += ["pytest_add_cli_args_test_selection="]
    lines += [f"    {test}" for test in tests]
    lines += ["also_copy="] + [f"    {top}" for top in ("gateway", "router", "ranking", "miners")]
    lines += ["    load", "    tests"]
    return "\n".join(lines) + "\n"


def statuses(tree: Path, module: str) -> Counter[str]:
    """How the module's mutants ended, by mutmut's status names."""
    from mutmut.stats import status_by_exit_code

    meta = json.loads((tree / "mutants" / f"{module}.meta").read_text())
    return Counter(status_by_exit_code[code] for code in meta["exit_code_by_key"].values())


def mutate(module: str, tests: tuple[str, ...], children: int) -> dict[str, object]:
    """Run mutmut over one module in a copy of the tree; its counts and score."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        shutil.copytree(ROOT, tree, ignore=LEFT_OUT)
        (tree / "setup.cfg").write_text(config(module, tests))
        started = time.monotonic()
        done = subprocess.run(
            [str(MUTMUT), "run", "--max-children", str(children)],
            cwd=tree,
            capture_output=True,
            text=True,
            timeout=3600,
            check=False,
        )
        if done.returncode != 0:
            sys.stderr.write(done.stdout[-2000:] + done.stderr[-3000:])
        counts = statuses(tree, module)
        seconds = round(time.monotonic() - started)
        survivors = subprocess.run(
            [str(MUTMUT), "results"], cwd=tree, capture_output=True, text=True, check=False
        ).stdout
    judged = sum(n for status, n in counts.items() if status != "skipped")
    killed = sum(counts[status] for status in KILLED)
    return {
        "module": module,
        "mutants": judged,
        "killed": killed,
        "score": round(killed / judged, 3) if judged else None,
        "statuses": dict(counts),
        "seconds": seconds,
        "survivors": [line.strip() for line in survivors.splitlines() if ":" in line],
    }


def main(argv: list[str] | None = None) -> int:
    """Mutate each module (or those named), print the scores; 1 if any is under 80%."""
    parser = argparse.ArgumentParser(prog="python -m tests.mutation", description=__doc__)
    parser.add_argument("modules", nargs="*", help=f"default: {', '.join(MODULES)}")
    parser.add_argument("--children", type=int, default=2, help="mutants tested at once")
    parser.add_argument("--json", type=Path, help="also write every figure and survivor here")
    args = parser.parse_args(argv)
    print(f"{'module':28} {'mutants':>8} {'killed':>7} {'score':>6} {'seconds':>8}", flush=True)
    rows = []
    for module in args.modules or MODULES:
        row = mutate(module, MODULES[module], args.children)
        rows.append(row)
        score = f"{row['score']:.0%}" if row["score"] is not None else "-"
        print(
            f"{row['module']:28} {row['mutants']:>8} {row['killed']:>7} {score:>6}"
            f" {row['seconds']:>8}",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    low = [row for row in rows if row["score"] is None or float(str(row["score"])) < TARGET]
    return 1 if low else 0


if __name__ == "__main__":
    sys.exit(main())
