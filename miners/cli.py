"""`bitgate miner …`: a simulated miner pool (`sim`), a real miner (`serve`), keys (`keygen`)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from miners.epistula_verify import DEFAULT_WINDOW_S
from miners.keys import HotkeyError, is_ss58, load_hotkey_file, new_keypair, write_hotkey_file
from miners.serve_cli import UsageError, add_serve_parser
from miners.signers import SignerPolicy
from miners.sim.pool import start_pool
from miners.sim.profiles import MIXES, MinerProfile, ProfileError, build_mix, fill, load_profiles

DEFAULT_COUNT = 10


def register(parser: argparse.ArgumentParser) -> None:
    """`bitgate miner`: its subcommands `sim`, `serve` and `keygen`."""
    commands = parser.add_subparsers(dest="miner_command", required=True, metavar="COMMAND")
    sim = commands.add_parser("sim", help="run a simulated miner pool on loopback ports")
    sim.add_argument(
        "--count", type=int, help=f"number of miners (default {DEFAULT_COUNT}, or the file's)"
    )
    sim.add_argument("--base-port", type=int, default=0, help="first port; 0 picks free ports")
    sim.add_argument("--host", default="127.0.0.1", help="address to listen on")
    sim.add_argument("--mix", choices=sorted(MIXES), default="demo", help="named profile mix")
    sim.add_argument("--profiles", type=Path, help="YAML file of miner profiles (overrides --mix)")
    sim.add_argument(
        "--metagraph-out",
        type=Path,
        help="metagraph JSON to write (default ./{name}-metagraph.json)",
    )
    sim.add_argument("--name", default="sim", help="pool name: the metagraph's name")
    sim.add_argument("--netuid", type=int, default=1, help="the metagraph's netuid")
    sim.add_argument(
        "--seed", type=int, default=0, help="seed of the miners' random latencies and failures"
    )
    sim.add_argument(
        "--verify-epistula", action="store_true", help="refuse requests not signed (Epistula v2)"
    )
    sim.add_argument(
        "--allow-hotkey", action="append", default=[], metavar="SS58", help="allowed signer"
    )
    sim.add_argument("--epistula-window-s", type=float, default=DEFAULT_WINDOW_S)
    sim.set_defaults(run=sim_main)
    add_serve_parser(commands)
    keygen = commands.add_parser("keygen", help="write a new hotkey file (btcli's format)")
    keygen.add_argument("path", type=Path, help="file to write; an existing file is kept")
    keygen.set_defaults(run=keygen_main)


def choose_profiles(args: argparse.Namespace) -> list[MinerProfile]:
    """The profiles the arguments ask for: a file (cycled to --count) or a mix."""
    if args.profiles is not None:
        profiles = load_profiles(args.profiles)
        return profiles if args.count is None else fill(profiles, args.count)
    return build_mix(args.mix, DEFAULT_COUNT if args.count is None else args.count)


def format_ports(ports: list[int]) -> str:
    """Ports as compact ranges: `9100-9109` or `9100,9102-9103`."""
    spans: list[list[int]] = []
    for port in ports:
        if spans and port == spans[-1][1] + 1:
            spans[-1][1] = port
        else:
            spans.append([port, port])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


async def run_sim(args: argparse.Namespace, profiles: list[MinerProfile]) -> None:
    """Serve the pool, write its metagraph, and wait for SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    out = args.metagraph_out or Path(f"{args.name}-metagraph.json")
    pool = await start_pool(profiles, host=args.host, base_port=args.base_port, seed=args.seed)
    try:
        if args.verify_epistula:
            policy = SignerPolicy(args.allow_hotkey)
            pool.require_epistula(policy, args.name, args.epistula_window_s)
        pool.write_metagraph(out, name=args.name, netuid=args.netuid)
        print(
            f"sim pool {args.name!r}: {len(profiles)} miners on {args.host} "
            f"ports {format_ports(pool.ports)}; metagraph {out}",
            flush=True,
        )
        await stop.wait()
    finally:
        await pool.stop()


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def check_sim_signers(args: argparse.Namespace) -> None:
    """`--verify-epistula` needs allowed signers, each an SS58 address."""
    if not args.verify_epistula:
        return
    if not args.allow_hotkey:
        raise UsageError("--verify-epistula needs at least one --allow-hotkey SS58")
    bad = [hotkey for hotkey in args.allow_hotkey if not is_ss58(hotkey)]
    if bad:
        raise UsageError(f"--allow-hotkey {bad[0]!r} is not an SS58 address")


def keygen_main(args: argparse.Namespace) -> int:
    """Write a new hotkey file and print its SS58 address (never its secret)."""
    try:
        write_hotkey_file(args.path, new_keypair())
        print(load_hotkey_file(args.path).ss58_address)
    except (HotkeyError, OSError) as exc:
        print(f"bitgate miner keygen: error: {exc}", file=sys.stderr)
        return 1
    return 0


def sim_main(args: argparse.Namespace) -> int:
    """Run `miner sim` until SIGINT or SIGTERM; returns the exit status."""
    try:
        check_sim_signers(args)
        profiles = choose_profiles(args)
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(run_sim(args, profiles))
    except (ProfileError, HotkeyError, UsageError, OSError) as exc:
        print(f"bitgate miner sim: error: {exc}", file=sys.stderr)
        return 1
    return 0
