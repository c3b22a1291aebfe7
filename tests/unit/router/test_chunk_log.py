"""Tests for router.chunk_log: a stream kept as its bytes, read back as its chunks."""

from __future__ import annotations

import tracemalloc

import orjson

from router.chunk_log import ChunkLog


def chunk(i: int) -> dict[str, object]:
    return {"choices": [{"index": 0, "delta": {"content": f"w{i}"}}], "x": [1.5] * (i % 3)}


def test_chunks_come_back_in_order_and_the_last_on_its_own() -> None:
    log = ChunkLog()
    assert (len(log), list(log), log.last()) == (0, [], None)
    chunks = [chunk(i) for i in range(5)]
    for c in chunks:
        log.append(orjson.dumps(c))
    assert len(log) == 5
    assert list(log) == chunks
    assert list(log) == chunks  # read again, the same
    assert log.last() == chunks[-1]


def test_an_empty_object_chunk_survives_between_others() -> None:
    log = ChunkLog()
    for data in (b"{}", b'{"a":1}', b"{}"):
        log.append(data)
    assert list(log) == [{}, {"a": 1}, {}]
    assert log.last() == {}


def test_a_log_holds_about_its_bytes_not_its_objects() -> None:
    lines = [orjson.dumps({"choices": [{"delta": {"content": "a"}}], "x": [1.5] * 20})] * 5000
    size = sum(map(len, lines))
    tracemalloc.start()
    try:
        log = ChunkLog()
        for data in lines:
            log.append(data)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert log.size == size + len(lines) - 1
    assert held < 1.3 * size  # parsed, the same chunks hold ~9x
