"""The SSE line reader: lines however the bytes are cut, and a cap on the whole stream."""

from __future__ import annotations

from typing import cast

import aiohttp
import pytest

from router.sse import READ_CHUNK, StreamTooLarge, sse_lines


class Pieces:
    """A byte source whose every read returns the next piece, as a socket may cut them."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = list(pieces)

    async def read(self, n: int) -> bytes:
        assert n == READ_CHUNK
        return self.pieces.pop(0) if self.pieces else b""


async def lines_of(pieces: list[bytes], cap: int = 1 << 20) -> list[bytes]:
    """What `sse_lines` yields from `pieces`, one read each."""
    source = cast(aiohttp.StreamReader, Pieces(pieces))
    return [line async for line in sse_lines(source, cap)]


@pytest.mark.parametrize(
    "pieces",
    [
        [b"data: a\r\n\r\ndata: b\n\ndata: [DONE]"],
        [b"da", b"ta: a\r", b"\n\r\nda", b"ta: b\n", b"\ndata: [DONE]"],
        [b"data: a\r\n", b"\r\n", b"data: b\n\n", b"data: [DONE]"],
    ],
)
async def test_lines_come_whole_without_their_ends_however_the_bytes_are_cut(
    pieces: list[bytes],
) -> None:
    assert await lines_of(pieces) == [b"data: a", b"", b"data: b", b"", b"data: [DONE]"]


async def test_a_line_longer_than_a_read_is_one_line() -> None:
    long = b"data: " + b"x" * (3 * READ_CHUNK)
    assert await lines_of([long[:100], long[100:] + b"\n", b"tail\r\n"]) == [long, b"tail"]


async def test_a_stream_at_the_cap_is_read_and_one_byte_more_is_refused() -> None:
    body = b"data: " + b"y" * 94  # 100 bytes, no newline at all
    assert await lines_of([body[:50], body[50:]], cap=100) == [body]
    with pytest.raises(StreamTooLarge):
        await lines_of([body[:50], body[50:] + b"\n"], cap=100)


async def test_only_a_carriage_return_is_taken_off_a_line_end() -> None:
    pieces = [b"data: X \r\n", b"data: XX\r\n\rlast X \r"]
    assert await lines_of(pieces) == [b"data: X ", b"data: XX", b"\rlast X "]


async def test_the_cap_says_what_it_refused() -> None:
    with pytest.raises(StreamTooLarge) as caught:
        await lines_of([b"x" * 101], cap=100)
    assert str(caught.value) == "stream is over the size cap"
