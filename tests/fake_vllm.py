"""A stand-in for the `vllm` executable: `serve MODEL --host H --port P ...` runs one sim miner.

It writes its arguments and pid to `$FAKE_VLLM_RECORD`; `$FAKE_VLLM_MODE` picks a behaviour:
`ok` (default), `exit` (fails at once), `unhealthy` (`/health` answers 503), `stubborn`
(ignores SIGTERM).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys

from aiohttp import web

from miners.sim.miner import SimMiner
from miners.sim.profiles import MinerProfile


async def unhealthy(request: web.Request) -> web.Response:
    """A `/health` that never turns healthy."""
    return web.Response(status=503)


def main(argv: list[str]) -> int:
    """Parse vLLM's arguments and serve like it would."""
    parser = argparse.ArgumentParser(prog="vllm")
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("model")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--served-model-name")
    args, _ = parser.parse_known_args(argv)
    record = os.environ.get("FAKE_VLLM_RECORD")
    if record:
        with open(record, "w", encoding="utf-8") as file:
            json.dump({"argv": argv, "pid": os.getpid(), "env": sorted(os.environ)}, file)
    mode = os.environ.get("FAKE_VLLM_MODE", "ok")
    if mode == "exit":
        print("fake vllm: failing on purpose", file=sys.stderr)
        return 3
    if mode == "unhealthy":
        app = web.Application()
        app.router.add_get("/health", unhealthy)
    else:
        profile = MinerProfile(model=args.served_model_name or args.model)
        app = SimMiner(profile, random.Random(0)).app()
    if mode == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    web.run_app(
        app,
        host=args.host,
        port=args.port,
        print=None,
        access_log=None,
        handle_signals=mode != "stubborn",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
