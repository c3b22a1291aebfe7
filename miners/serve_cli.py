"""`bitgate miner serve`: a real miner in front of vLLM (given, or started here)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from miners.body_gate import DEFAULT_DEADLINE_S, DEFAULT_LIMIT
from miners.epistula_verify import DEFAULT_SKEW_S, DEFAULT_WINDOW_S, Verifier
from miners.fit import DEFAULT_MAX_TOKENS
from miners.keys import HotkeyError, is_ss58, load_hotkey
from miners.server import MinerConfig, MinerServer, start_miner
from miners.signers import DEFAULT_MIN_STAKE, SignerPolicy
from miners.vllm_launch import VllmError, VllmOptions, VllmProcess, pick_port
from miners.vllm_version import VLLM_VERSION, tool_call_parser_for
from router.metagraph import MetagraphError

logger = logging.getLogger(__name__)

HOTKEY_FILE_ENV = "BITGATE_MINER_HOTKEY_FILE"
MNEMONIC_ENV = "BITGATE_MINER_HOTKEY_MNEMONIC"
UPSTREAM_KEY_ENV = "BITGATE_MINER_UPSTREAM_API_KEY"
DEFAULT_PORT = 8091


class UsageError(ValueError):
    """Arguments that do not make a miner."""


def add_serve_parser(commands: Any) -> None:
    """The `serve` subcommand's arguments."""
    serve = commands.add_parser("serve", help="serve a real miner in front of vLLM")
    where = serve.add_mutually_exclusive_group(required=True)
    where.add_argument("--upstream", help="base URL of a running vLLM (OpenAI) server")
    where.add_argument("--launch-vllm", action="store_true", help="start `vllm serve` here")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help="the axon port")
    serve.add_argument("--model", help="model to launch; with --upstream, the served model id")
    serve.add_argument("--served-model-name", help="model id vLLM serves (default --model)")
    serve.add_argument("--max-model-len", type=int, help="vLLM --max-model-len")
    serve.add_argument("--gpu-memory-utilization", type=float, help="vLLM's GPU memory share")
    serve.add_argument("--vllm-port", type=int, default=0, help="vLLM's port (0: a free one)")
    serve.add_argument("--vllm-bin", default="vllm", help="the vllm executable")
    serve.add_argument(
        "--vllm-arg", action="append", default=[], help="extra vllm argument (repeatable)"
    )
    serve.add_argument(
        "--tool-call-parser",
        default="auto",
        help="vLLM's tool-call parser for --launch-vllm (auto: by model family; none: off)",
    )
    serve.add_argument(
        "--vllm-any-version",
        action="store_true",
        help=f"launch a vLLM other than the pinned {VLLM_VERSION}",
    )
    serve.add_argument(
        "--default-max-tokens",
        type=int,
        default=DEFAULT_MAX_TOKENS,
        help="max_tokens for a request that sets none (vLLM would fill the context)",
    )
    serve.add_argument("--startup-timeout-s", type=float, default=900.0)
    serve.add_argument("--hotkey-file", type=Path, help=f"hotkey file (or ${HOTKEY_FILE_ENV})")
    serve.add_argument("--allow-hotkey", action="append", default=[], metavar="SS58")
    serve.add_argument("--metagraph", type=Path, help="metagraph whose staked hotkeys may sign")
    serve.add_argument(
        "--min-stake",
        type=float,
        help=f"stake a metagraph signer needs (default {DEFAULT_MIN_STAKE:g}, as on SN1)",
    )
    serve.add_argument("--allow-any-signer", action="store_true", help="any valid signature")
    serve.add_argument("--epistula-window-s", type=float, default=DEFAULT_WINDOW_S)
    serve.add_argument("--epistula-skew-s", type=float, default=DEFAULT_SKEW_S)
    serve.add_argument("--max-in-flight", type=int, default=32, help="beyond this, 429")
    serve.add_argument(
        "--max-unverified", type=int, default=DEFAULT_LIMIT, help="bodies read before checking"
    )
    serve.add_argument(
        "--body-timeout-s", type=float, default=DEFAULT_DEADLINE_S, help="unverified body deadline"
    )
    serve.add_argument("--retry-after-s", type=float, default=1.0)
    serve.add_argument("--timeout-s", type=float, default=60.0, help="per-request deadline")
    serve.add_argument("--log-level", default="info")
    serve.set_defaults(run=serve_main)


def build_policy(args: argparse.Namespace) -> SignerPolicy:
    """Who may sign requests, from the arguments."""
    bad = [hotkey for hotkey in args.allow_hotkey if not is_ss58(hotkey)]
    if bad:
        raise UsageError(f"--allow-hotkey {bad[0]!r} is not an SS58 address")
    if args.min_stake is not None and args.metagraph is None:
        raise UsageError("--min-stake needs --metagraph")
    if not (args.allow_hotkey or args.metagraph or args.allow_any_signer):
        raise UsageError(
            "say who may sign: --allow-hotkey SS58, --metagraph FILE, or --allow-any-signer"
        )
    min_stake = DEFAULT_MIN_STAKE if args.min_stake is None else args.min_stake
    return SignerPolicy(args.allow_hotkey, args.metagraph, min_stake, args.allow_any_signer)


def build_verifier(args: argparse.Namespace, policy: SignerPolicy) -> Verifier:
    """The Epistula verifier for this miner's hotkey."""
    path = args.hotkey_file or (Path(p) if (p := os.environ.get(HOTKEY_FILE_ENV)) else None)
    keypair = load_hotkey(path, os.environ.get(MNEMONIC_ENV))
    if keypair is None:
        raise UsageError(f"give the miner's hotkey: --hotkey-file FILE or ${MNEMONIC_ENV}")
    return Verifier(keypair.ss58_address, policy, args.epistula_window_s, args.epistula_skew_s)


def vllm_options(args: argparse.Namespace) -> VllmOptions:
    """The `vllm serve` options, from the arguments."""
    if not args.model:
        raise UsageError("--launch-vllm needs --model")
    return VllmOptions(
        model=args.model,
        port=args.vllm_port or pick_port(),
        served_model_name=args.served_model_name,
        max_model_len=args.max_model_len,
        gpu_memory_utilization=args.gpu_memory_utilization,
        executable=args.vllm_bin,
        extra_args=tuple(args.vllm_arg),
        tool_call_parser=tool_call_parser(args.tool_call_parser, args.model),
    )


def tool_call_parser(choice: str, model: str) -> str | None:
    """vLLM's tool-call parser: as given, by model family (`auto`), or None (`none`)."""
    if choice == "none":
        return None
    return tool_call_parser_for(model) if choice == "auto" else choice


def miner_config(args: argparse.Namespace, upstream: str, model: str | None) -> MinerConfig:
    """The miner server's config, from the arguments."""
    return MinerConfig(
        upstream=upstream,
        model=model,
        max_in_flight=args.max_in_flight,
        retry_after_s=args.retry_after_s,
        timeout_s=args.timeout_s,
        upstream_api_key=os.environ.get(UPSTREAM_KEY_ENV) or None,
        max_unverified=args.max_unverified,
        body_timeout_s=args.body_timeout_s,
        max_model_len=args.max_model_len,
        default_max_tokens=args.default_max_tokens,
    )


async def run_serve(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM (or until the vLLM it started exits)."""
    options = vllm_options(args) if args.launch_vllm else None
    policy = build_policy(args)
    verifier = build_verifier(args, policy)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    vllm: VllmProcess | None = None
    if options is not None:
        vllm = VllmProcess(
            options,
            startup_timeout_s=args.startup_timeout_s,
            any_version=args.vllm_any_version,
        )
        upstream, model = options.url, options.served_name
    else:
        upstream, model = args.upstream, args.served_model_name or args.model
    jobs = (policy.watch,) if policy.source is not None else ()
    server = MinerServer(miner_config(args, upstream, model), verifier, jobs)
    try:
        if vllm is not None and not await _started_unless_stopped(vllm, stop):
            return 0
        return await _serve_until_stopped(server, args, stop, vllm)
    finally:
        if vllm is not None:
            await vllm.stop()


async def _started_unless_stopped(vllm: VllmProcess, stop: asyncio.Event) -> bool:
    """Start vLLM, giving up at once if SIGINT or SIGTERM comes first (startup takes minutes)."""
    starting = asyncio.ensure_future(vllm.start())
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait((starting, stopping), return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if starting.done():
        starting.result()  # raises VllmError if vLLM failed to start
        return True
    starting.cancel()
    await asyncio.gather(starting, return_exceptions=True)
    return False


async def _serve_until_stopped(
    server: MinerServer, args: argparse.Namespace, stop: asyncio.Event, vllm: VllmProcess | None
) -> int:
    """Serve until `stop` is set; 1 if the launched vLLM died first."""
    runner = await start_miner(server, args.host, args.port)
    hotkey = server.verifier.hotkey if server.verifier else "-"
    print(
        f"miner {hotkey} on {args.host}:{args.port}, forwarding to {server.config.upstream}",
        flush=True,
    )
    waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(stop.wait())]
    if vllm is not None:
        waits.append(asyncio.ensure_future(vllm.wait()))
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waits:
            waiter.cancel()
        await runner.cleanup()
    if not stop.is_set():
        logger.error("vLLM exited; the miner stops")
        return 1
    return 0


def serve_main(args: argparse.Namespace) -> int:
    """Run `miner serve`; returns the exit status."""
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        return asyncio.run(run_serve(args))
    except (UsageError, HotkeyError, MetagraphError) as exc:
        print(f"bitgate miner serve: error: {exc}", file=sys.stderr, flush=True)
        return 2
    except (VllmError, OSError) as exc:
        print(f"bitgate miner serve: error: {exc}", file=sys.stderr, flush=True)
        return 1
