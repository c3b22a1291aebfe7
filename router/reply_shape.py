"""A bound on what parsing a miner's reply may cost in memory, read from its bytes as they come.

A 2 MiB reply of `[{}, {}, …]` grew the gateway 35 MiB once parsed. Each reply is scanned
as it arrives (router.json_shape) and the Python objects it would become are estimated
(`COST_*`, bytes per object, array, value, string, non-ASCII byte and escape; measured with
tracemalloc, never under what a reply parses to); past `multiple` × its bytes + `FREE_BYTES`,
or nested deeper than `MAX_DEPTH`, it is refused before it is parsed, and before the rest of
it is read. A JSON reply may cost `REPLY_MULTIPLE` × its bytes (the densest real one, a
logprobs reply of one-character tokens with 20 alternatives each, is estimated at ~12.3× and
costs ~7.4×; the densest shape accepted, `[-1e9]`, costs ~13.7×); a stream `STREAM_MULTIPLE`
(each chunk is a few small objects: ~11× its bytes as a matter of course).

Only one reply is parsed at a time (on the event loop), and what is kept of it is its bytes
and its answer (`router.miner_client.Reply`), so the multiple bounds a moment, not a request.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from router.json_shape import JsonShape
from router.sse import StreamTooLarge

REPLY_MULTIPLE = 14
STREAM_MULTIPLE = 24
FREE_BYTES = 256 * 1024
MAX_DEPTH = 64
COST_OBJECT = 200  # a small dict, beyond the value it is
COST_VALUE = 32  # an element or container: its pointer and a small object
COST_ARRAY = 32  # a list, beyond the value it is (its header and spare slots)
COST_STRING = 32  # beyond its characters (which the multiple's bytes already hold)
# A string with a non-ASCII character has a larger header (and 2 or 4 bytes a character):
# counted by its UTF-8 bytes, or its escapes (`\u00e9`), so one-character strings are not
# underestimated.
COST_WIDE = 10
COST_ESCAPE = 24
# Below this, a piece that starts at rest is counted with bytes.count, without numpy's
# per-call cost; brackets inside its strings count too, which only overestimates.
SHORT_PIECE = 512


class ReplyTooComplex(StreamTooLarge):
    """A reply whose parsed objects would cost more memory than its bound."""


@dataclass(slots=True)
class ReplyShape:
    """The bytes of one reply (or one stream's data lines) seen so far, and their shape."""

    multiple: int = REPLY_MULTIPLE
    size: int = 0
    shape: JsonShape = field(default_factory=JsonShape)

    @property
    def estimate(self) -> int:
        """About how many bytes of Python objects what was fed would parse into."""
        s = self.shape
        return (
            COST_VALUE * s.values
            + COST_OBJECT * s.objects
            + COST_ARRAY * s.arrays
            + COST_STRING * s.strings
            + COST_WIDE * s.wide
            + COST_ESCAPE * s.escapes
        )

    def feed(self, data: bytes) -> None:
        """Count the next bytes; `ReplyTooComplex` once the reply is past its bound."""
        self.size += len(data)
        s = self.shape
        objects, arrays = data.count(b"{"), data.count(b"[")
        if (
            len(data) < SHORT_PIECE
            and data.isascii()
            and b"\\" not in data
            and s.level == 0
            and not s.in_string
            and (
                objects + arrays <= MAX_DEPTH  # so it cannot nest deeper either
            )
        ):
            s.objects += objects
            s.arrays += arrays
            s.values += objects + arrays + data.count(b",")
            s.strings += (data.count(b'"') + 1) // 2
        else:
            s.feed(data)
        if s.depth > MAX_DEPTH:
            raise ReplyTooComplex(f"reply nests JSON deeper than {MAX_DEPTH} levels")
        if self.estimate > self.multiple * self.size + FREE_BYTES:
            raise ReplyTooComplex(
                f"reply would cost over {self.multiple}x its bytes once parsed "
                f"({s.values} values in {self.size} bytes)"
            )
