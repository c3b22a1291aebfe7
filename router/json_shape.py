"""The shape of a JSON document read from its bytes, before anything parses it.

How deep it nests and how many values (containers, elements), objects and strings it holds,
fed in whatever pieces the bytes arrive: a document of millions of tiny values grows ~20x
as Python objects, so its shape is what decides whether it is parsed at all. Client bodies
(gateway.door.inflight) and miner replies (router.reply_shape) are both read this way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

OPEN_ARRAY, CLOSE_ARRAY, OPEN_OBJECT, CLOSE_OBJECT, QUOTE, BACKSLASH, COMMA = b'[]{}"\\,'
WIDE = 0x80  # a UTF-8 byte of a non-ASCII character
SCAN_CHUNK = 256 * 1024


@dataclass(slots=True)
class JsonShape:
    """How deep a JSON document nests and about how many values it holds."""

    depth: int = 0
    values: int = 0  # containers plus commas outside strings
    objects: int = 0
    arrays: int = 0
    strings: int = 0  # keys included
    wide: int = 0  # bytes of non-ASCII characters (only strings hold them)
    escapes: int = 0  # backslashes (only strings hold them)
    # Carried from one chunk to the next.
    level: int = 0
    in_string: bool = False
    backslashes: int = 0

    def feed(self, data: bytes) -> JsonShape:
        """Read the next bytes of the document, in whatever pieces they come."""
        for start in range(0, len(data), SCAN_CHUNK):
            count = min(SCAN_CHUNK, len(data) - start)
            self._scan(np.frombuffer(data, dtype=np.uint8, count=count, offset=start))
        return self

    def _scan(self, code: np.ndarray[Any, np.dtype[np.uint8]]) -> None:
        quotes = code == QUOTE
        if self.backslashes or BACKSLASH in code:
            self.escapes += int(np.count_nonzero(code == BACKSLASH))
            # A quote after an odd run of backslashes is escaped (they only occur in strings).
            index = np.arange(code.size, dtype=np.int32)
            carried = -1 - self.backslashes  # where the byte before the carried run was
            last_plain = np.maximum.accumulate(np.where(code == BACKSLASH, carried, index))
            run = index - np.concatenate(([carried], last_plain[:-1])) - 1
            quotes &= run % 2 == 0
            self.backslashes = int(code.size - 1 - last_plain[-1])
        else:
            self.backslashes = 0
        inside = (np.cumsum(quotes, dtype=np.int32) % 2).astype(bool) ^ self.in_string
        objects = (code == OPEN_OBJECT) & ~inside
        arrays = (code == OPEN_ARRAY) & ~inside
        opens = objects | arrays
        closes = ((code == CLOSE_ARRAY) | (code == CLOSE_OBJECT)) & ~inside
        step = opens.astype(np.int8) - closes.astype(np.int8)
        levels = self.level + np.cumsum(step, dtype=np.int32)
        self.depth = max(self.depth, int(levels.max(initial=0)))
        self.level = int(levels[-1])
        # A string opens at a quote that is not inside one before it.
        self.strings += int(np.count_nonzero(quotes & inside))
        self.in_string = bool(inside[-1])
        self.objects += int(np.count_nonzero(objects))
        self.arrays += int(np.count_nonzero(arrays))
        self.wide += int(np.count_nonzero(code >= WIDE))
        self.values += int(np.count_nonzero(opens)) + int(
            np.count_nonzero((code == COMMA) & ~inside)
        )


def json_shape(body: bytes) -> JsonShape:
    """How deep `body` nests objects and arrays, and its containers plus commas.

    Brackets and commas inside strings do not count. Vectorised over chunks of the body:
    a few MiB of scratch memory, whatever the shape of the document. Meant for valid JSON;
    on invalid JSON the figures are wrong, and the parser refuses the body anyway.
    """
    return JsonShape().feed(body)
