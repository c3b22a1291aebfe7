"""`bitgate demo`: a simulated miner pool and a gateway in front of it, in one process."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import sys
import tempfile
from pathlib import Path

import uvicorn

from gateway.app import create_app
from gateway.config import RoutingDefaults, Settings
from gateway.door.request_log import install_request_log
from gateway.settings import ServerSettings
from miners.sim.pool import start_pool
from miners.sim.profiles import build_mix
from router.axon_policy import LOOPBACK

POOL = "sim"
DEMO_DEADLINE_S = 4.0
DEMO_MINERS = 8


def register(parser: argparse.ArgumentParser) -> None:
    """`bitgate demo` flags."""
    port = ServerSettings.model_fields["port"].default
    parser.add_argument("--port", type=int, default=port, help="gateway port")
    parser.add_argument("--miners", type=int, default=DEMO_MINERS, help="sim miners")
    parser.add_argument("--quiet", action="store_true", help="no line per request (warnings only)")
    parser.set_defaults(
        run=lambda args: run_demo(port=args.port, miners=args.miners, quiet=args.quiet)
    )


def usage(base_url: str) -> str:
    """How to call the demo gateway."""
    return f"""chat page: {base_url}/
bitgate demo: gateway on {base_url}, pool model id '{POOL}'

  curl {base_url}/v1/chat/completions -H 'content-type: application/json' \\
    -d '{{"model": "{POOL}", "messages": [{{"role": "user", "content": "Why is the sky blue?"}}]}}'

  python -c "from openai import OpenAI; c = OpenAI(base_url='{base_url}/v1', api_key='-'); \\
print(c.chat.completions.create(model='{POOL}', \\
messages=[{{'role': 'user', 'content': 'Why is the sky blue?'}}]).choices[0].message.content)"

  python -c "from openai import OpenAI; c = OpenAI(base_url='{base_url}/v1', api_key='-'); \\
print(c.responses.create(model='{POOL}', input='Why is the sky blue?').output_text)"

  leaderboard: {base_url}/leaderboard    as JSON: {base_url}/v1/pools/{POOL}/miners
  metrics: {base_url}/metrics
One line per request follows (--quiet: none). Ctrl-C stops it."""


async def _demo(listener: socket.socket, miners: int, workdir: Path) -> None:
    port = listener.getsockname()[1]
    pool = await start_pool(build_mix("demo", miners), seed=7)
    try:
        metagraph = workdir / "metagraph.json"
        pool.write_metagraph(metagraph, name=POOL)
        # The demo pool has a slow miner (lognormal tail); a short deadline keeps answers snappy.
        routing = RoutingDefaults(timeout_s=DEMO_DEADLINE_S)
        # The simulated miners listen on loopback, which the axon policy refuses by default.
        settings = Settings(
            metagraph=metagraph,
            server=ServerSettings(port=port),
            routing=routing,
            axon_allow=[LOOPBACK],
        )
        config = uvicorn.Config(
            create_app(settings),
            host=settings.server.host,
            port=port,
            access_log=False,
            log_level="warning",
            loop="none",
        )
        server = uvicorn.Server(config)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, lambda: setattr(server, "should_exit", True))
        serving = loop.create_task(server.serve(sockets=[listener]))
        while not server.started and not serving.done():  # noqa: ASYNC110 (uvicorn has no event)
            await asyncio.sleep(0.05)
        if server.started:
            print(usage(f"http://{settings.server.host}:{port}"), flush=True)
        await serving
    finally:
        await pool.stop()


def listen(host: str, port: int) -> socket.socket | None:
    """A socket listening on `host:port`, or None when the port is in use. Bound before the
    miners start, so none of them can take the gateway's port."""
    sock = socket.socket()
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        return None
    return sock


def run_demo(port: int, miners: int, quiet: bool = False) -> int:
    """Run the demo until interrupted; one JSON line per request unless `quiet`."""
    import uvloop

    listener = listen("127.0.0.1", port)
    if listener is None:
        print(f"bitgate demo: port {port} is in use; pick another with --port", file=sys.stderr)
        return 2

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    install_request_log("warning" if quiet else "info")
    with listener, tempfile.TemporaryDirectory(prefix="bitgate-demo-") as workdir:
        uvloop.run(_demo(listener, miners, Path(workdir)))
    return 0
