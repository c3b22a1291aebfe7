"""`create_app(settings)`: the lifespan builds the gateway's parts and tears them down."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from gateway.api import router
from gateway.config import Settings
from gateway.errors import install_error_handlers
from gateway.metrics import Metrics
from gateway.pipeline import Pipeline
from gateway.plan import Planner
from gateway.pools import open_pools, watch_metagraphs
from gateway.state import GatewayState
from ranking.base import Ranker
from ranking.heuristic import HeuristicRanker
from router.fanout import MinerClient, open_session
from router.scores import Scoreboard
from router.stats import ScorePolicy
from router.store import open_store

logger = logging.getLogger(__name__)


def build_rankers() -> dict[str, Ranker]:
    """The rankers a pool or a request may name."""
    heuristic = HeuristicRanker()
    return {heuristic.name: heuristic}


async def start_state(settings: Settings) -> GatewayState:
    """Open the store, pools, client session and pipeline; start the background tasks."""
    store = open_store(settings.redis_url)
    policy = ScorePolicy(
        alpha=settings.ema_alpha,
        cooldown_after=settings.cooldown_after,
        cooldown_s=settings.cooldown_s,
    )
    scoreboard = Scoreboard(store, policy, sync_interval_s=settings.store_sync_s)
    try:
        pools = await open_pools(settings.pool_configs(), store)
    except BaseException:
        await store.close()
        raise
    metrics = Metrics()
    session = open_session(settings.max_connections)
    background: set[asyncio.Task[Any]] = set()
    client = MinerClient(session, settings.max_reply_bytes)
    rng = random.Random(settings.seed)
    state = GatewayState(
        settings=settings,
        pools=pools,
        store=store,
        scoreboard=scoreboard,
        session=session,
        planner=Planner(pools, build_rankers(), scoreboard, rng),
        pipeline=Pipeline(client, scoreboard, metrics, background),
        metrics=metrics,
        background=background,
    )
    await scoreboard.sync(list(pools))
    loop = asyncio.get_running_loop()
    background.add(loop.create_task(scoreboard.run(lambda: list(pools))))
    background.add(
        loop.create_task(watch_metagraphs(pools, store, metrics, settings.metagraph_poll_s))
    )
    return state


async def stop_state(state: GatewayState) -> None:
    """Cancel background work, write what is left to the store, close connections."""
    for task in list(state.background):
        task.cancel()
    await asyncio.gather(*state.background, return_exceptions=True)
    await state.scoreboard.sync(list(state.pools))
    await state.session.close()
    await state.store.close()


def create_app(settings: Settings) -> FastAPI:
    """The gateway as an ASGI app."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.gateway = await start_state(settings)
        try:
            yield
        finally:
            await stop_state(app.state.gateway)

    app = FastAPI(
        title="bitgate",
        summary="Query-routing inference gateway for Bittensor-style miner pools",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(router)
    return app
