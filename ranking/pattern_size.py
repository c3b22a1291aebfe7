"""How large a schema's regular expression grows once the `regex` module compiles it.

`regex` writes a counted repeat out in full: `a{10000000}` took 5 s and 2.6 GiB to compile,
and nested counts multiply (`(a{1000}){1000}`: 0.4 s, 260 MiB), from a 20-byte pattern. So a
pattern is read first with Python's own parser (`re._parser`, which builds a tree without
writing anything out), and its size is the sum of its items, each repeat counting its
minimum times what it repeats (`a{0,65535}` stays small; `a{60000,}` does not).
"""

from __future__ import annotations

from re import _constants as C  # type: ignore[attr-defined]
from re import _parser  # type: ignore[attr-defined]
from typing import Any

MAX_PATTERN_UNITS = 10_000  # `(a{100}){100}`: ~1.5 ms to compile
REPEATS = (C.MAX_REPEAT, C.MIN_REPEAT, C.POSSESSIVE_REPEAT)


class PatternTooLarge(Exception):
    """A pattern that would compile into more than `MAX_PATTERN_UNITS` items."""


def pattern_units(pattern: str, limit: int = MAX_PATTERN_UNITS) -> int:
    """Items the pattern compiles into; `PatternTooLarge` past `limit`; `re.error` if the
    pattern is not one Python reads (the schema check refuses those on its own)."""
    try:
        parsed = _parser.parse(pattern)
    except OverflowError:  # a count over 2**32 - 1
        raise PatternTooLarge("a repeat count is too large") from None
    return _units(list(parsed), limit)


def _units(items: list[tuple[Any, Any]], limit: int) -> int:
    total = 0
    for op, arg in items:
        if op in REPEATS:
            low, _, sub = arg
            total += max(low, 1) * _units(list(sub), limit)
        elif op is C.SUBPATTERN:
            total += _units(list(arg[-1]), limit)
        elif op is C.BRANCH:
            total += sum(_units(list(branch), limit) for branch in arg[1])
        elif op in (C.ASSERT, C.ASSERT_NOT):
            total += _units(list(arg[1]), limit)
        elif op is C.ATOMIC_GROUP:
            total += _units(list(arg), limit)
        elif op is C.GROUPREF_EXISTS:
            total += sum(_units(list(branch), limit) for branch in arg[1:] if branch)
        else:
            total += 1
        if total > limit:
            raise PatternTooLarge(f"it would compile into over {limit} items")
    return total
