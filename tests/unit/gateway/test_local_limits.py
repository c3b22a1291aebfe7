"""The limits one replica keeps alone while Redis is down, and the headers a decision gives."""

from __future__ import annotations

import pytest

from gateway.door.auth import Identity
from gateway.door.limits import KeyLease, LocalLimits, duration, limit_keys


def admit(limits: LocalLimits, who: Identity, tokens: int = 0) -> KeyLease:
    decision = KeyLease(who, reserved=tokens)
    limits.admit(decision)
    return decision


def test_a_replica_admits_its_share_of_requests_per_minute_then_says_when_to_retry() -> None:
    limits = LocalLimits(0.5)
    who = Identity("ann", rpm=8)  # this replica's share: 4 a minute
    decisions = [admit(limits, who) for _ in range(5)]
    assert [d.refused for d in decisions] == [None, None, None, None, "requests"]
    assert [d.remaining["requests_left"] for d in decisions] == ["3", "2", "1", "0", "0"]
    assert all(d.local and d.lease is None for d in decisions)
    refused = decisions[-1]
    assert 14.0 < refused.retry_after_s <= 15.0  # the next of 4 a minute frees in 15 s
    assert 59.0 < float(refused.remaining["requests_reset"]) <= 60.0  # the four taken


def test_tokens_are_charged_as_reserved_and_a_request_over_the_rest_is_refused() -> None:
    limits = LocalLimits(1.0)
    who = Identity("bo", tpm=100)
    first = admit(limits, who, tokens=60)
    second = admit(limits, who, tokens=60)
    assert (first.refused, first.remaining["tokens_left"]) == (None, "40")
    assert second.refused == "tokens" and 11.0 < second.retry_after_s <= 12.0  # 20 tokens
    assert second.remaining["tokens_left"] == "40"
    assert 35.0 < float(second.remaining["tokens_reset"]) <= 36.0
    limits.adjust(who, -50)  # the first used 10 of its 60
    assert admit(limits, who, tokens=60).refused is None


def test_a_reservation_over_the_whole_limit_is_charged_the_limit() -> None:
    limits = LocalLimits(1.0)
    decision = admit(limits, Identity("cy", tpm=100), tokens=1000)
    assert (decision.refused, decision.remaining["tokens_left"]) == (None, "0")


def test_concurrency_holds_a_slot_per_request_until_released() -> None:
    limits = LocalLimits(0.5)
    who = Identity("di", concurrency=4)  # a share of 2
    held = [admit(limits, who), admit(limits, who)]
    assert [d.lease for d in held] == ["local", "local"]
    third = admit(limits, who)
    assert (third.refused, third.retry_after_s, third.lease) == ("concurrency", 1.0, None)
    limits.release(held[0])
    assert admit(limits, who).refused is None
    for decision in (*held, third, third):
        limits.release(decision)
    assert limits.inflight["di"] == 0


def test_a_share_never_rounds_a_limit_to_nothing() -> None:
    limits = LocalLimits(0.1)
    who = Identity("ed", rpm=3, concurrency=2)
    assert admit(limits, who).refused is None
    assert admit(limits, who).refused == "requests"
    unlimited = Identity("fay")
    assert [admit(limits, unlimited).refused for _ in range(50)] == [None] * 50
    limits.adjust(unlimited, 10**6)
    assert admit(limits, unlimited).remaining == {}


def test_headers_are_openais_with_retry_after_on_a_refusal() -> None:
    who = Identity("gus", rpm=60, tpm=1000)
    decision = KeyLease(who, refused="tokens", retry_after_s=1.2)
    decision.remaining = {
        "requests_left": "59",
        "requests_reset": "1.0",
        "tokens_left": "0",
        "tokens_reset": "0.02",
    }
    assert decision.headers() == {
        "x-ratelimit-limit-requests": "60",
        "x-ratelimit-remaining-requests": "59",
        "x-ratelimit-reset-requests": "1s",
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-tokens": "20ms",
        "retry-after": "2",
        "retry-after-ms": "1200",
    }
    admitted = KeyLease(Identity("hal", tpm=5), remaining={"tokens_left": "5", "tokens_reset": "0"})
    assert admitted.headers() == {
        "x-ratelimit-limit-tokens": "5",
        "x-ratelimit-remaining-tokens": "5",
        "x-ratelimit-reset-tokens": "0ms",
    }
    brief = KeyLease(Identity("ivy"), refused="concurrency", retry_after_s=0.0001)
    assert brief.headers() == {"retry-after": "1", "retry-after-ms": "1"}


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.9994, "999ms"), (1.0, "1s"), (59.4, "59.4s"), (61, "1m1s")]
)
def test_reset_times_at_their_edges(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_a_keys_limits_share_one_cluster_slot() -> None:
    keys = limit_keys("k1")
    assert keys == [
        "bitgate:limit:{k1}:requests",
        "bitgate:limit:{k1}:tokens",
        "bitgate:limit:{k1}:inflight",
    ]
