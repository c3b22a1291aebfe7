"""Shared fixtures: a real Redis server, miner pools on loopback ports, gateways."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from miners.sim.pool import SimPool, start_pool
from miners.sim.profiles import MinerProfile
from router.axon_policy import LOOPBACK
from router.store import MemoryStore, RedisStore, StateStore
from tests.support import LoopThread, RedisServer


@pytest.fixture(scope="session", autouse=True)
def loopback_miners() -> Iterator[None]:
    """Every gateway a test builds may dial miners on loopback, where test miners listen;
    nothing else off the public internet (tests never leave 127.0.0.0/8)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BITGATE_AXON_ALLOW", LOOPBACK)
        yield


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis: `BITGATE_TEST_REDIS_URL`, or a server started on a free port."""
    given = os.environ.get("BITGATE_TEST_REDIS_URL")
    if given:
        yield given
        return
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server.url
    server.stop()


@pytest.fixture
def clean_redis(redis_url: str) -> Iterator[str]:
    """The Redis URL with bitgate's keys removed before and after the test."""
    client = redis.Redis.from_url(redis_url)

    def wipe() -> None:
        keys = list(client.scan_iter("bitgate:*"))
        if keys:
            client.delete(*keys)

    wipe()
    yield redis_url
    wipe()
    client.close()


@pytest.fixture(scope="session")
def loop_thread() -> Iterator[LoopThread]:
    """An event loop in a thread, for sim miner pools that sync tests talk to."""
    thread = LoopThread()
    yield thread
    thread.close()


@pytest.fixture
def sim_pool(
    loop_thread: LoopThread, tmp_path: Path
) -> Iterator[Callable[..., tuple[SimPool, Path]]]:
    """Start sim miners on loopback ports; returns the pool and its metagraph file."""
    started: list[SimPool] = []

    def start(
        profiles: list[MinerProfile], name: str = "sim", **overrides: Any
    ) -> tuple[SimPool, Path]:
        pool = loop_thread.run(start_pool(profiles, seed=len(started)))
        started.append(pool)
        path = tmp_path / f"{name}-{len(started)}.json"
        metagraph = pool.metagraph(name=name)
        if overrides:
            metagraph = metagraph.model_copy(update=overrides)
        path.write_text(metagraph.model_dump_json())
        return pool, path

    yield start
    for pool in started:
        loop_thread.run(pool.stop())


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[StateStore]:
    """Each state store implementation; Redis is the real one from `clean_redis`."""
    if request.param == "memory":
        yield MemoryStore()
        return
    redis_store = RedisStore(request.getfixturevalue("clean_redis"))
    yield redis_store
    await redis_store.close()
