"""`create_app(settings)`: the lifespan builds the gateway's parts and tears them down."""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import aiohttp
from fastapi import FastAPI

from gateway.config import ConfigError, Settings
from gateway.door.access import AccessMiddleware, close_access, open_access
from gateway.door.inflight import InFlightGate
from gateway.errors import install_error_handlers
from gateway.runtime.context_cap import watch_contexts
from gateway.runtime.metrics import Metrics
from gateway.runtime.pools import ChainAccess, Pool, open_pools
from gateway.runtime.supervisor import Supervisor
from gateway.runtime.telemetry import setup_tracing
from gateway.serving.plan import Planner
from gateway.serving.rank import Judge
from gateway.serving.result import Results
from gateway.serving.routes import routes
from gateway.serving.settle import Settler
from gateway.serving.strategies.registry import Stages, Strategies
from gateway.state import GatewayState
from gateway.web.pages import pages
from miners.keys import load_hotkey
from ranking import registry
from ranking.base import Ranker
from ranking.embedding import EmbeddingModel, serve_embeddings
from ranking.static import StaticModel, load_if_built, serve_static
from router.availability import watch_availability
from router.backpressure import Backpressure
from router.concurrency import ConcurrencyLimits
from router.epistula import Signer
from router.miner_client import AddressHook, MinerClient, open_session
from router.scores import Scoreboard
from router.store import StateStore, open_store
from router.subnet.loops import run_epochs, watch_chain, watch_metagraphs

logger = logging.getLogger(__name__)


def check_rankers(settings: Settings) -> None:
    """Fail at startup, with one line, when a pool names a ranker nobody defined."""
    wanted = [settings.routing.ranker, *(c.ranker for c in settings.pool_configs())]
    try:
        registry.check_names(settings.ranker_specs(), wanted)
    except registry.RankerConfigError as exc:
        raise ConfigError(str(exc)) from None


def build_rankers(
    settings: Settings,
    session: aiohttp.ClientSession,
    metrics: Metrics,
    model: EmbeddingModel,
    static: StaticModel,
) -> dict[str, Ranker]:
    """The rankers a pool or a request may name (ranking/registry.py); fallbacks are counted."""

    def fallback(ranker: str, reason: str) -> None:
        metrics.ranker_fallbacks.labels(ranker, reason).inc()

    return registry.build_rankers(settings.ranker_specs(), session, model, fallback, static)


def wants_minilm(settings: Settings) -> bool:
    """Whether to load the full MiniLM: as configured, else if a configured ranker uses it."""
    if settings.ranking.embedding_model is not None:
        return settings.ranking.embedding_model
    specs = settings.ranker_specs()
    roots = [*specs, *(c.ranker for c in settings.pool_configs())]
    return registry.depends_on(specs, roots, "embedding")


def build_signer(settings: Settings) -> Signer | None:
    """The Epistula v2 signer of miner requests, when the gateway is given a hotkey."""
    mnemonic = settings.hotkey_mnemonic
    keypair = load_hotkey(settings.hotkey_file, mnemonic.get_secret_value() if mnemonic else None)
    if keypair is None:
        return None
    logger.info("signing miner requests (Epistula v2) as hotkey %s", keypair.ss58_address)
    return Signer(keypair)


async def start_state(
    settings: Settings, chain: ChainAccess | None = None, address_hook: AddressHook | None = None
) -> GatewayState:
    """Open the store, pools, client session and strategies; start the supervised loops.

    `address_hook` hears every address the miner session would dial, and may refuse it (tests).
    """
    check_rankers(settings)
    signer = build_signer(settings)
    store = open_store(settings.redis_url)
    scoring = settings.scoring
    scoreboard = Scoreboard(store, scoring.policy(), sync_interval_s=scoring.store_sync_s)
    axon_policy = settings.axon_policy()
    backpressure = Backpressure()
    try:
        pools = await open_pools(settings.pool_configs(), store, chain, axon_policy)
    except BaseException:
        await store.close()
        raise
    metrics = Metrics()
    session = open_session(settings.server.max_connections, axon_policy, address_hook)
    limits = ConcurrencyLimits()
    client = MinerClient(
        session, settings.limits.max_reply_bytes, signer, backpressure, axon_policy, limits
    )
    rng = random.Random(settings.seed)
    embedding = EmbeddingModel(enabled=wants_minilm(settings))
    static = StaticModel()
    static_built = await load_if_built(static)
    rankers = build_rankers(settings, session, metrics, embedding, static)
    judge = Judge(metrics, rankers["heuristic"])
    settler = Settler(scoreboard, metrics, judge)
    state = GatewayState(
        settings=settings,
        pools=pools,
        store=store,
        scoreboard=scoreboard,
        session=session,
        planner=Planner(
            pools, rankers, scoreboard, rng, settings.sse_keepalive_s, backpressure, limits
        ),
        settler=settler,
        strategies=Strategies(client, Stages(judge, Results(metrics), settler)),
        metrics=metrics,
    )
    limits.listeners.append(state.queue.wake)
    await scoreboard.sync(list(pools))
    if embedding.enabled:
        # Until the model is loaded, embedding rankers fall back to the heuristic ranker.
        state.supervisor.start("embeddings", partial(serve_embeddings, embedding))
    if not static_built:  # built (about a minute) or found missing in the background
        state.supervisor.start("static-table", partial(serve_static, static))
    state.supervisor.start("availability", partial(watch_availability, backpressure, session))
    state.supervisor.start("miner-context", partial(watch_contexts, pools, session))
    start_loops(state.supervisor, pools, scoreboard, store, metrics, settings.metagraph_poll_s)
    return state


def start_loops(
    supervisor: Supervisor,
    pools: dict[str, Pool],
    scoreboard: Scoreboard,
    store: StateStore,
    metrics: Metrics,
    metagraph_poll_s: float,
) -> None:
    """The loops that keep scores and pools current: store sync, metagraphs, epochs, chain."""
    supervisor.start("store-sync", partial(scoreboard.run, lambda: list(pools)))
    supervisor.start(
        "metagraphs", partial(watch_metagraphs, pools.values(), store, metrics, metagraph_poll_s)
    )
    for pool in pools.values():
        epochs = partial(run_epochs, pool, scoreboard, store, metrics)
        supervisor.start(f"epochs:{pool.name}", epochs)
        if pool.config.chain is not None:
            watch = partial(watch_chain, pool, store, metrics, pool.config.chain.sync_s)
            supervisor.start(f"chain:{pool.name}", watch)


async def stop_state(state: GatewayState) -> None:
    """Cancel background work, write what is left to the store, close connections."""
    await state.supervisor.stop()
    await state.settler.stop()
    await state.scoreboard.sync(list(state.pools))
    await state.session.close()
    await state.store.close()


def create_app(
    settings: Settings, chain: ChainAccess | None = None, address_hook: AddressHook | None = None
) -> FastAPI:
    """The gateway as an ASGI app; `chain` replaces the bittensor SDK, `address_hook` hears
    every miner address dialled (tests)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.gateway = await start_state(settings, chain, address_hook)
        app.state.access = await open_access(settings, app.state.gateway.metrics)
        try:
            yield
        finally:
            await close_access(app.state.access)
            await stop_state(app.state.gateway)

    app = FastAPI(
        title="bitgate",
        summary="Query-routing inference gateway for Bittensor-style miner pools",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(routes)
    app.include_router(pages)
    # Outermost last: the key from the headers (access), then a slot and the body (admission).
    app.add_middleware(InFlightGate, gateway=lambda: app.state.gateway)
    setup_tracing(app, settings)
    app.add_middleware(AccessMiddleware)
    return app
