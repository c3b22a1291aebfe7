"""The supervisor of the gateway's long-lived loops: restarts, reports, stops."""

from __future__ import annotations

import asyncio

import pytest

from gateway.runtime.supervisor import Supervisor
from tests.unit.gateway.strategies.fakes import until


async def test_a_loop_that_dies_is_restarted_and_its_error_is_reported() -> None:
    supervisor = Supervisor(first_backoff_s=0.0)
    runs: list[int] = []

    async def flaky() -> None:
        runs.append(1)
        if len(runs) < 3:
            raise RuntimeError(f"boom {len(runs)}")
        await asyncio.Event().wait()

    supervisor.start("flaky", flaky)
    await until(lambda: len(runs) == 3)
    assert supervisor.report() == {
        "flaky": {"state": "running", "restarts": 2, "last_error": "RuntimeError('boom 2')"}
    }
    assert supervisor.down() == []
    await supervisor.stop()


async def test_a_loop_that_returns_is_restarted_too() -> None:
    supervisor = Supervisor(first_backoff_s=0.0)
    runs: list[int] = []

    async def once() -> None:
        runs.append(1)
        if len(runs) > 1:
            await asyncio.Event().wait()

    supervisor.start("once", once)
    await until(lambda: len(runs) == 2)
    assert supervisor.report()["once"]["last_error"] == "returned"
    await supervisor.stop()


async def test_a_loop_waiting_out_its_backoff_is_down() -> None:
    supervisor = Supervisor(first_backoff_s=3600.0)

    async def crash() -> None:
        raise RuntimeError("boom")

    supervisor.start("crash", crash)
    await until(lambda: supervisor.down() == ["crash"])
    assert supervisor.report()["crash"]["state"] == "restarting"
    await supervisor.stop()


async def test_stop_cancels_every_loop() -> None:
    supervisor = Supervisor()
    stopped: list[str] = []

    async def forever(name: str) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            stopped.append(name)

    supervisor.start("a", lambda: forever("a"))
    supervisor.start("b", lambda: forever("b"))
    await asyncio.sleep(0)
    await supervisor.stop()
    assert sorted(stopped) == ["a", "b"]


async def test_two_loops_may_not_share_a_name() -> None:
    supervisor = Supervisor()
    supervisor.start("a", lambda: asyncio.Event().wait())
    with pytest.raises(ValueError, match="already supervised"):
        supervisor.start("a", lambda: asyncio.Event().wait())
    await supervisor.stop()
