"""The live progress line on a terminal: elapsed, sent, rate, errors, recent p50/p99."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import TextIO

from load.recorder import Recorder

TICK_S = 1.0


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}ms"


def line(recorder: Recorder, elapsed_s: float, limit_s: float, rate: float) -> str:
    """One status line."""
    recent = recorder.take_recent()
    errors = sum(recorder.errors.values())
    share = min(elapsed_s / limit_s, 1.0) if limit_s else 0.0
    bar = "#" * int(share * 20)
    return (
        f"[{bar:<20}] {elapsed_s:5.1f}s  done {recorder.requests}  {rate:7.1f} req/s  "
        f"errors {errors}  p50 {_ms(recent.percentile(50))}  p99 {_ms(recent.percentile(99))}"
    )


async def show(recorder: Recorder, start: float, limit_s: float, out: TextIO | None) -> None:
    """Rewrite the progress line every second until cancelled; silent off a terminal."""
    stream = out or sys.stderr
    if not stream.isatty():
        return
    last_count, last_at = recorder.requests, time.perf_counter()
    try:
        while True:
            await asyncio.sleep(TICK_S)
            now = time.perf_counter()
            rate = (recorder.requests - last_count) / max(now - last_at, 1e-9)
            last_count, last_at = recorder.requests, now
            text = line(recorder, max(now - start, 0.0), limit_s, rate)
            stream.write("\r" + text + "\x1b[K")
            stream.flush()
    finally:
        stream.write("\n")
        stream.flush()
