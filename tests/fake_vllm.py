"""A stand-in for the `vllm` executable: `serve MODEL --host H --port P ...` runs the vLLM double.

It writes its arguments and pid to `$FAKE_VLLM_RECORD`; `$FAKE_VLLM_MODE` picks a behaviour:
`ok` (default), `exit` (fails at once), `unhealthy` (`/health` answers 503), `stubborn`
(ignores SIGTERM). `--version` prints `$FAKE_VLLM_VERSION` (the pinned version by default);
`$FAKE_VLLM_LOAD_S` is how long the model takes to "load".
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys

from aiohttp import web

from miners.vllm_version import VLLM_VERSION
from tests.vllm_double import HOLD_IDLE_S, VllmDouble, VllmShape


async def unhealthy(request: web.Request) -> web.Response:
    """A `/health` that never turns healthy."""
    return web.Response(status=503)


def main(argv: list[str]) -> int:
    """Parse vLLM's arguments and serve like it would."""
    version = os.environ.get("FAKE_VLLM_VERSION", VLLM_VERSION)
    if argv[:1] in (["--version"], ["-v"]):
        print(version)
        return 0
    parser = argparse.ArgumentParser(prog="vllm")
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("model")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--served-model-name")
    parser.add_argument("--max-model-len", type=int, default=2048)
    parser.add_argument("--enable-auto-tool-choice", action="store_true")
    parser.add_argument("--tool-call-parser")
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
        shape = VllmShape(
            served_model_name=args.served_model_name or args.model,
            max_model_len=args.max_model_len,
            version=version,
            auto_tool_choice=args.enable_auto_tool_choice and bool(args.tool_call_parser),
            tool_call_parser=args.tool_call_parser,
            load_s=float(os.environ.get("FAKE_VLLM_LOAD_S", "0")),
        )
        app = VllmDouble(shape).app()
    if mode == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    web.run_app(
        app,
        host=args.host,
        port=args.port,
        print=None,
        access_log=None,
        keepalive_timeout=HOLD_IDLE_S,
        handle_signals=mode != "stubborn",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
