"""The `bitgate` command: `serve`, `demo`, and the programs that live beside the gateway."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Any

from pydantic import ValidationError
from pydantic_settings import SettingsError

from gateway.config import ConfigError, Settings
from router.metagraph import MetagraphError, describe_validation_error, load_metagraph

# Subcommands owned by other programs, imported only when used: words → module with main(argv).
# The longest matching prefix wins; `subnet simulate` drives gateways, so it lives here.
PROGRAMS = {
    ("miner",): "miners.cli",
    ("subnet",): "router.subnet.cli",
    ("subnet", "simulate"): "gateway.simulate",
    ("load",): "load.cli",
    ("eval",): "ranking.cli",
    ("keys",): "gateway.keys_cli",
}
ROUTING_FLAGS = ("top_k", "sample", "strategy", "ranker", "timeout_s", "explore", "miner_model")


def _serve_parser(sub: Any) -> None:
    serve = sub.add_parser("serve", help="serve one pool (--metagraph) or several (--pools)")
    source = serve.add_mutually_exclusive_group()
    source.add_argument("--metagraph", help="metagraph JSON file of one pool")
    source.add_argument("--pools", help="pools file (YAML or JSON) of several pools")
    serve.add_argument("--host", help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8000)")
    serve.add_argument("--redis-url", help="Redis URL shared by replicas (default: in memory)")
    serve.add_argument("--top-k", type=int, help="miners considered, by incentive (default 10)")
    serve.add_argument("--sample", type=int, help="miners asked per request (default: top-k)")
    serve.add_argument("--strategy", choices=["best_of", "race"], help="default best_of")
    serve.add_argument("--ranker", help="ranker name (default blend)")
    serve.add_argument("--timeout-s", type=float, help="per-request deadline (default 20)")
    serve.add_argument("--explore", type=float, help="uniform share of the draw (default 0.2)")
    serve.add_argument("--miner-model", help="model id sent to miners (default: none)")
    serve.add_argument("--seed", type=int, help="seed of the miner sampling")
    serve.add_argument("--log-level", default="info")


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings from `BITGATE_*` variables, overridden by the flags given."""
    flags = {k: v for k, v in vars(args).items() if v is not None}
    routing = {k: flags.pop(k) for k in ROUTING_FLAGS if k in flags}
    top = {
        k: flags[k]
        for k in ("metagraph", "pools", "host", "port", "redis_url", "seed")
        if k in flags
    }
    settings = Settings(**top)
    if routing:
        merged = settings.routing.model_dump() | routing
        settings.routing = type(settings.routing).model_validate(merged)
    return settings


def _check_sources(settings: Settings) -> None:
    """Fail early, with one line, on a bad pools file or metagraph (unless Redis may help)."""
    for config in settings.pool_configs():
        if config.metagraph is None:  # a chain pool: synced in the background
            continue
        try:
            load_metagraph(config.metagraph)
        except MetagraphError:
            if not settings.redis_url:
                raise


def serve(args: argparse.Namespace) -> int:
    """Run the gateway under uvicorn with uvloop and httptools."""
    import uvicorn

    from gateway.app import create_app
    from gateway.auth import check_exposure
    from gateway.request_log import install_request_log

    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = settings_from(args)
        check_exposure(settings)
        _check_sources(settings)
    except ValidationError as exc:
        print(f"bitgate: bad settings: {describe_validation_error(exc)}", file=sys.stderr)
        return 2
    except (ConfigError, MetagraphError, SettingsError) as exc:
        print(f"bitgate: {exc}", file=sys.stderr)
        return 2
    install_request_log(args.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level=args.log_level,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser; other programs' subcommands are listed but parsed by them."""
    parser = argparse.ArgumentParser(prog="bitgate", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    demo = sub.add_parser("demo", help="a simulated miner pool with a gateway in front")
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--miners", type=int, default=8)
    for words in PROGRAMS:
        if len(words) == 1:
            sub.add_parser(words[0], help=f"see `bitgate {words[0]} --help`", add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `bitgate` command."""
    argv = sys.argv[1:] if argv is None else argv
    for words in sorted(PROGRAMS, key=len, reverse=True):
        if tuple(argv[: len(words)]) == words:
            program = importlib.import_module(PROGRAMS[words])
            return int(program.main(argv[len(words) :]))
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from gateway.demo import run_demo

        return run_demo(port=args.port, miners=args.miners)
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())
