"""Tests for ranking.pattern_size: a schema's pattern is sized before `regex` compiles it."""

from __future__ import annotations

import re

import pytest

from ranking.pattern_size import MAX_PATTERN_UNITS, PatternTooLarge, pattern_units
from ranking.schema import SchemaRefused, compile_budget, compile_schema


@pytest.mark.parametrize(
    ("pattern", "units"),
    [
        ("abc", 3),
        ("a{3}", 3),
        ("(ab){2}", 4),
        ("(?:a|bc){2}", 6),
        ("a{0,65535}", 1),  # an upper bound is not written out
        ("a{2,}", 2),
        ("a*+b++", 2),
        ("(?>ab){3}", 6),
        ("(?=a{4})b", 5),
        ("(?!a{4})b", 5),
        ("(a)(?(1)b{3}|c{2})", 6),
        ("(a{10}){10}", 100),
        ("^\\d{4}-\\d{2}-\\d{2}$", 12),
        # A group, branch, lookaround or atomic group adds to the items before it.
        ("x(ab)", 3),
        ("x(?:a|bc)", 4),
        ("x(?=ab)", 3),
        ("x(?>ab)", 3),
    ],
)
def test_a_pattern_counts_its_items_each_repeat_its_minimum_times(pattern: str, units: int) -> None:
    assert pattern_units(pattern) == units


@pytest.mark.parametrize(
    "pattern",
    ["a{10000000}", "(a{1000}){1000}", "(?:(?:a{30}){30}){30}", "a{4294967296}", "x{60000,}"],
)
def test_a_pattern_that_compiles_large_is_refused_before_it_compiles(pattern: str) -> None:
    with pytest.raises(PatternTooLarge):
        pattern_units(pattern)
    schema = {"type": "string", "pattern": pattern}
    with pytest.raises(SchemaRefused, match="a pattern of the schema is too large"):
        compile_schema(schema, False, 100)
    properties = {"type": "object", "patternProperties": {pattern: {}}}
    with pytest.raises(SchemaRefused, match="too large"):
        compile_schema(properties, False, 100)


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("a{4294967296}", "a repeat count is too large"),
        (f"a{{{MAX_PATTERN_UNITS + 1}}}", f"it would compile into over {MAX_PATTERN_UNITS} items"),
    ],
)
def test_a_large_patterns_refusal_says_why(pattern: str, why: str) -> None:
    # A client reads this in its 400 reply.
    with pytest.raises(SchemaRefused) as refused:
        compile_schema({"type": "string", "pattern": pattern}, False, 100)
    assert str(refused.value) == f"a pattern of the schema is too large: {why}"


def test_the_limit_is_inclusive() -> None:
    assert pattern_units(f"a{{{MAX_PATTERN_UNITS}}}") == MAX_PATTERN_UNITS
    with pytest.raises(PatternTooLarge):
        pattern_units(f"a{{{MAX_PATTERN_UNITS + 1}}}")
    with pytest.raises(PatternTooLarge):
        pattern_units("a" * (MAX_PATTERN_UNITS + 1))


def test_a_pattern_python_cannot_read_is_left_to_the_meta_schema() -> None:
    with pytest.raises(re.error):
        pattern_units("[")
    with pytest.raises(SchemaRefused, match="not valid JSON Schema"):
        compile_schema({"type": "string", "pattern": "["}, False, 100)


def test_a_miners_string_whose_regex_format_overflows_does_not_conform() -> None:
    compiled = compile_schema({"type": "string", "format": "regex"}, False, 100)
    assert not compiled.conforms("a{4294967296}", compile_budget())
    assert compiled.conforms("a{3}", compile_budget())


def test_a_requests_patterns_share_one_budget_of_items() -> None:
    budget = compile_budget()
    schema = {"type": "string", "pattern": "(a{100}){90}"}  # 9,000 items
    for _ in range(5):
        compile_schema(schema, False, 100, budget)
    with pytest.raises(SchemaRefused, match="too large or complex"):
        compile_schema(schema, False, 100, budget)


def _resident_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20


def test_a_clients_patterns_are_not_kept_once_its_schemas_are_gone() -> None:
    # Failed before: `regex` kept its last 500 patterns; at 9,000 items each is ~1.3 MiB.
    before = _resident_mib()
    for i in range(100):
        schema = {"type": "string", "pattern": f"(a{{100}}){{90}}b{i}"}
        assert compile_schema(schema, False, 100).conforms("a" * 9000 + f"b{i}", compile_budget())
    assert _resident_mib() - before < 40
