"""What a miner call cost, request ids, and the usage ledger when Redis is away."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from gateway.door.request_log import request_id
from gateway.door.usage import UsageLedger, fanout_tokens, reply_tokens
from gateway.runtime.metrics import Metrics
from router.metagraph import Axon, Neuron
from router.miner_client import Reply
from router.wire import Answer, usage_of
from tests.support import free_port

NEURON = Neuron(uid=3, hotkey="hk3", axon=Axon(ip="127.0.0.1", port=9100))


def reply(
    status: Any = "ok", text: str = "", body: Any = None, chunks: list[Any] | None = None
) -> Reply:
    """A reply whose usage is read from its body or chunks as the miner client reads them."""
    sources = [body, *reversed(chunks or [])]
    usage = next((u for u in map(usage_of, sources) if u is not None), None)
    return Reply(NEURON, status, 10.0, Answer(text, usage=usage))


def test_reported_usage_is_taken_as_is_from_a_body_or_a_stream() -> None:
    usage = {"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42}
    assert reply_tokens(reply(body={"usage": usage}), "ignored").total == 42
    chunks = [{"choices": []}, {"choices": [], "usage": usage}]
    streamed = reply_tokens(reply(chunks=chunks), "ignored")
    assert (streamed.prompt, streamed.completion, streamed.estimated) == (12, 30, False)


def test_a_reply_without_usage_is_estimated_and_a_failure_costs_nothing_known() -> None:
    guessed = reply_tokens(reply(text="x" * 40), "p" * 20)
    assert (guessed.prompt, guessed.completion, guessed.estimated) == (5, 10, True)
    assert reply_tokens(reply("timeout"), "p" * 20).total == 0
    bogus = reply_tokens(reply(body={"usage": {"prompt_tokens": -1, "completion_tokens": "9"}}), "")
    assert bogus.estimated


def test_the_fanout_adds_every_call() -> None:
    usage = {"prompt_tokens": 10, "completion_tokens": 5}
    replies = [reply(body={"usage": usage}), reply(body={"usage": usage}), reply("error")]
    block = fanout_tokens(replies, "").block(len(replies))
    assert block == {
        "prompt_tokens": 20,
        "completion_tokens": 10,
        "total_tokens": 30,
        "calls": 3,
        "estimated": False,
    }


async def test_usage_is_kept_while_redis_is_unreachable() -> None:
    dead = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.2)
    ledger = UsageLedger(dead, Metrics())
    ledger.record("alice", "sim", winner=3, fanout=9)
    await ledger.flush()
    ledger.record("alice", "sim", winner=1, fanout=2)
    assert ledger.pending[("alice", "sim")] == [2, 4, 11]
    await dead.aclose()


def test_request_ids_are_kept_when_plain_and_replaced_otherwise() -> None:
    assert request_id("abc-123_x.y:z") == "abc-123_x.y:z"
    for bad in (None, "", "has space", "x" * 129, "new\nline"):
        fresh = request_id(bad)
        assert fresh != bad and len(fresh) == 32
