"""`bitgate serve`: the gateway under uvicorn, its settings from the environment and the flags."""

from __future__ import annotations

import argparse
import logging
import sys

from pydantic import BaseModel, ValidationError
from pydantic_settings import SettingsError

from gateway.config import ConfigError, RoutingDefaults, Settings
from gateway.settings import ServerSettings
from router.metagraph import MetagraphError, describe_validation_error, load_metagraph

ROUTING_FLAGS = ("top_k", "sample", "strategy", "ranker", "timeout_s", "explore", "miner_model")
SETTINGS_FLAGS = ("metagraph", "pools", "host", "port", "redis_url", "seed", "axon_allow")


def default(field: str, model: type[BaseModel] = ServerSettings) -> object:
    """A setting's default, for help strings: the value is said once, in its group."""
    return model.model_fields[field].default


def register(parser: argparse.ArgumentParser) -> None:
    """`bitgate serve` flags: each one, when given, wins over its `BITGATE_*` variable."""
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--metagraph", help="metagraph JSON file of one pool")
    source.add_argument("--pools", help="pools file (YAML or JSON) of several pools")
    parser.add_argument("--host", help=f"bind address (default: {default('host')})")
    parser.add_argument("--port", type=int, help=f"port (default: {default('port')})")
    parser.add_argument("--redis-url", help="Redis URL shared by replicas (default: in memory)")
    routing = RoutingDefaults
    parser.add_argument(
        "--top-k", type=int, help=f"miners considered (default: {default('top_k', routing)})"
    )
    parser.add_argument("--sample", type=int, help="miners asked per request (default: top-k)")
    parser.add_argument(
        "--strategy",
        choices=["best_of", "race"],
        help=f"default: {default('strategy', routing)}",
    )
    parser.add_argument("--ranker", help=f"ranker name (default: {default('ranker', routing)})")
    parser.add_argument(
        "--timeout-s",
        type=float,
        help=f"per-request deadline (default: {default('timeout_s', routing)})",
    )
    parser.add_argument(
        "--explore",
        type=float,
        help=f"uniform share of the draw (default: {default('explore', routing)})",
    )
    parser.add_argument("--miner-model", help="model id sent to miners (default: none)")
    parser.add_argument("--seed", type=int, help="seed of the miner sampling")
    parser.add_argument(
        "--axon-allow",
        help="private networks whose miners may be dialled, CIDRs, comma-separated "
        "(default: public addresses only; e.g. 127.0.0.0/8 for miners on this machine)",
    )
    parser.add_argument("--log-level", default="info")
    parser.set_defaults(run=serve)


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings from `BITGATE_*` variables, overridden by the flags given."""
    given = {k: v for k, v in vars(args).items() if v is not None}
    routing = {k: given[k] for k in ROUTING_FLAGS if k in given}
    settings = Settings(**{k: given[k] for k in SETTINGS_FLAGS if k in given})
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
    from gateway.door.auth import check_exposure
    from gateway.door.request_log import install_request_log
    from gateway.runtime.heap import return_large_buffers
    from gateway.runtime.server import uvicorn_options

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
    return_large_buffers()
    uvicorn.run(create_app(settings), **uvicorn_options(settings), log_level=args.log_level)
    return 0
