"""One request body's cost in gateway memory: `python -m load.bench.body_memory`.

A body of tiny JSON elements grows many times over once parsed (each element is a Python
object); this measures the gateway's peak RSS growth for one such request at each size,
which is what the body cap (`BITGATE_MAX_BODY_BYTES`) bounds.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from load.procs import CHAT_PATH, gateway, rss_kib, sim_pool

MIB = 1024 * 1024
# Filler elements, each as small as JSON allows: what makes a body grow most once parsed.
SHAPES = {"ints": b"0", "objects": b"{}", "arrays": b"[]", "strings": b'""'}
SAMPLE_S = 0.005


def body(size: int, element: bytes, model: str) -> bytes:
    """A chat request of about `size` bytes whose extra field is a list of `element`."""
    head = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]})
    prefix = head[:-1].encode() + b',"metadata":['
    count = max((size - len(prefix) - 2) // (len(element) + 1), 1)
    return prefix + b",".join([element] * count) + b"]}"


def peak_growth_kib(url: str, pid: int, payload: bytes) -> tuple[int, int]:
    """The gateway's peak RSS growth while it takes one request, and the status it answered."""
    base = rss_kib(pid) or 0
    peak = base
    status: list[int] = []

    def send() -> None:
        request = urllib.request.Request(
            url + CHAT_PATH, data=payload, headers={"content-type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as resp:
                status.append(resp.status)
        except urllib.error.HTTPError as exc:
            status.append(exc.code)

    sender = threading.Thread(target=send)
    sender.start()
    while sender.is_alive():
        peak = max(peak, rss_kib(pid) or 0)
        time.sleep(SAMPLE_S)
    sender.join()
    return peak - base, status[0] if status else 0


def table(workdir: Path, sizes: list[float], env: dict[str, str]) -> None:
    """One gateway with `env`; a row per body size, a column per shape."""
    print("| body | " + " | ".join(SHAPES) + " |")
    print("|---|" + "---|" * len(SHAPES))
    env = {"BITGATE_MAX_BODY_BYTES": str(int(max(sizes) * MIB) + 4096), **env}
    with (
        sim_pool(workdir, 2) as pool,
        gateway(pool.metagraph, workdir / "gw.log", env=env) as gw,
    ):
        for size in sizes:
            cells = []
            for element in SHAPES.values():
                payload = body(int(size * MIB), element, pool.name)
                growth, status = peak_growth_kib(gw.url, gw.proc.pid, payload)
                ratio = growth / (len(payload) / 1024)
                cells.append(f"{growth / 1024:.0f} MiB ({ratio:.0f}x, {status})")
            print(f"| {size:g} MiB | " + " | ".join(cells) + " |", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Peak RSS growth per body size and shape: with no bound on JSON values, then with it."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes-mib", default="0.5,1,2,8")
    args = parser.parse_args(argv)
    sizes = [float(s) for s in args.sizes_mib.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        print("Values unbounded (BITGATE_MAX_JSON_VALUES=1000000000):\n")
        table(Path(tmp), sizes, {"BITGATE_MAX_JSON_VALUES": "1000000000"})
        print("\nDefault bounds:\n")
        table(Path(tmp), sizes, {})
    return 0


if __name__ == "__main__":
    sys.exit(main())
