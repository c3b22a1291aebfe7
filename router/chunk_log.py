"""A stream's chunks kept as the bytes they came in, parsed again only when read.

A parsed chunk costs up to ~24x its bytes in Python objects (`router.reply_shape`), so a
stream that must be kept (to rank it, or replay it) keeps its data lines instead: one
growing buffer, a newline between lines (a data line never holds one), about 1x its bytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

SEPARATOR = b"\n"


class ChunkLog:
    """The data lines of one event stream, in order."""

    __slots__ = ("_count", "_data", "_last")

    def __init__(self) -> None:
        self._data = bytearray()
        self._count = 0
        self._last = 0

    def append(self, data: bytes) -> None:
        """Keep one chunk's JSON bytes (already checked to parse)."""
        if self._count:
            self._data += SEPARATOR
        self._last = len(self._data)
        self._data += data
        self._count += 1

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """Each chunk, parsed one at a time."""
        start = 0
        for _ in range(self._count):
            end = self._data.find(SEPARATOR, start)
            end = len(self._data) if end < 0 else end
            yield orjson.loads(memoryview(self._data)[start:end])
            start = end + 1

    def last(self) -> dict[str, Any] | None:
        """The newest chunk, parsed; None when there is none."""
        if not self._count:
            return None
        parsed: dict[str, Any] = orjson.loads(memoryview(self._data)[self._last :])
        return parsed

    @property
    def size(self) -> int:
        """Bytes kept."""
        return len(self._data)
