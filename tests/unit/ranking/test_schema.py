"""Checking replies against a client's JSON schema: the keywords, strict mode, and the bounds."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from ranking.schema import (
    MAX_SCHEMA_BYTES,
    MAX_SCHEMA_DEPTH,
    Budget,
    CompiledSchema,
    SchemaRefused,
    compile_schema,
)


def compiled(schema: Any, strict: bool = False) -> CompiledSchema:
    """The schema, compiled as the gateway compiles a client's."""
    return compile_schema(schema, strict, len(orjson.dumps(schema)))


def ok(schema: Any, instance: Any, strict: bool = False) -> bool:
    """Whether the instance conforms, with the default budget."""
    return compiled(schema, strict).conforms(instance, Budget())


PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "age": {"type": "integer", "minimum": 0},
        "role": {"enum": ["admin", "user"]},
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "zip": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
    },
    "required": ["name", "age"],
    "additionalProperties": False,
}
ADA = {"name": "Ada", "age": 36, "role": "admin", "address": {"city": "London"}, "tags": ["x"]}


@pytest.mark.parametrize(
    ("instance", "expected"),
    [
        (ADA, True),
        ({"name": "Ada", "age": 36}, True),
        ({"name": "Ada", "age": "36"}, False),  # type
        ({"name": "Ada", "age": 36.5}, False),  # integer, not number
        ({"name": "Ada"}, False),  # required
        ({**ADA, "email": "a@b.c"}, False),  # additionalProperties
        ({**ADA, "role": "root"}, False),  # enum
        ({**ADA, "address": {"zip": "N1"}}, False),  # nested required
        ({**ADA, "address": {"city": "London", "x": 1}}, False),  # nested additionalProperties
        ({**ADA, "address": {"city": 7}}, False),  # nested type
        ({**ADA, "tags": ["a", "b", "c", "d"]}, False),  # maxItems
        ({**ADA, "tags": [1]}, False),  # items
        ({**ADA, "age": -1}, False),  # minimum
        ([ADA], False),  # not an object
    ],
)
def test_the_keywords_decide_conformance(instance: Any, expected: bool) -> None:
    assert ok(PERSON, instance) is expected


def test_formats_are_checked() -> None:
    schema = {"type": "object", "properties": {"when": {"type": "string", "format": "date-time"}}}
    assert ok(schema, {"when": "2026-11-30T05:00:00Z"})
    assert not ok(schema, {"when": "yesterday at noon"})
    assert not ok({"type": "string", "format": "email"}, "not an address")
    assert ok({"type": "string", "format": "ipv4"}, "127.0.0.1")


def test_local_refs_resolve() -> None:
    schema = {
        "$defs": {"point": {"type": "object", "required": ["x"]}},
        "type": "array",
        "items": {"$ref": "#/$defs/point"},
    }
    assert ok(schema, [{"x": 1}])
    assert not ok(schema, [{"y": 1}])


def test_strict_closes_objects_and_requires_every_property() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "days": {}}}
    assert ok(schema, {"city": "Paris"})
    assert ok(schema, {"city": "Paris", "days": 3, "extra": True})
    assert not ok(schema, {"city": "Paris"}, strict=True)
    assert not ok(schema, {"city": "Paris", "days": 3, "extra": True}, strict=True)
    assert ok(schema, {"city": "Paris", "days": 3}, strict=True)


@pytest.mark.parametrize(
    ("schema", "why"),
    [
        ({"type": "no-such-type"}, "not valid JSON Schema"),
        ({"$ref": "http://127.0.0.1:9/schema.json"}, "refers outside itself"),
        ({"type": "string", "pattern": "(unclosed"}, "regex"),
        ([1, 2], "must be a JSON object"),
        (
            {"patternProperties": {"^a": {}}, "unevaluatedProperties": False},
            "not supported",
        ),
    ],
)
def test_unusable_schemas_are_refused(schema: Any, why: str) -> None:
    with pytest.raises(SchemaRefused, match=why):
        compiled(schema)


def test_a_big_schema_is_refused_by_size() -> None:
    with pytest.raises(SchemaRefused, match="bytes"):
        compile_schema({"type": "object"}, False, MAX_SCHEMA_BYTES + 1)


def test_a_deep_schema_is_refused() -> None:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(MAX_SCHEMA_DEPTH):
        schema = {"type": "object", "properties": {"a": schema}}
    with pytest.raises(SchemaRefused, match="deeper"):
        compiled(schema)


def test_an_exponential_schema_stops_at_its_budget() -> None:
    # Each level refers twice to the next: 2**40 evaluations if nothing stopped it.
    defs: dict[str, Any] = {
        f"d{i}": {"allOf": [{"$ref": f"#/$defs/d{i + 1}"}] * 2} for i in range(40)
    }
    defs["d40"] = {"type": "object"}
    schema = {"$defs": defs, "$ref": "#/$defs/d0"}
    check = compiled(schema)
    budget = Budget(steps=5_000, seconds=5.0)
    assert check.conforms({}, budget) is False
    assert budget.steps < 0  # it ran out of steps, it did not finish


def test_a_backtracking_pattern_times_out_instead_of_hanging() -> None:
    schema = {"type": "string", "pattern": "^(\\w+\\s?)*$"}
    hostile = "an innocent looking sentence that goes on " * 4 + "!"
    assert ok(schema, "short words only")
    assert compiled(schema).conforms(hostile, Budget()) is False


def test_patterns_in_property_names_use_the_bounded_engine() -> None:
    schema = {
        "type": "object",
        "patternProperties": {"^x-": {"type": "integer"}},
        "additionalProperties": False,
    }
    assert ok(schema, {"x-count": 3})
    assert not ok(schema, {"x-count": "3"})
    assert not ok(schema, {"other": 3})


def test_a_schema_too_costly_to_check_is_refused_within_the_budget() -> None:
    # Failed before: the meta-schema check ran unbudgeted and accepted it after seconds.
    with pytest.raises(SchemaRefused, match="too large or complex"):
        compiled({"anyOf": [{}] * 21000})


def test_one_requests_schemas_share_one_budget() -> None:
    budget = Budget(steps=200, seconds=5.0)
    budget.start()
    small = {"type": "object", "properties": {"a": {"type": "string"}}}
    with pytest.raises(SchemaRefused):
        for _ in range(100):
            compile_schema(small, False, 60, budget)


@pytest.mark.parametrize(
    ("items", "unique"),
    [
        ([1, 1.0], False),
        ([1, True], True),
        ([0, False, None, ""], True),
        ([{"a": [1]}, {"a": [1.0]}], False),
        ([{"a": 1}, {"a": 2}], True),
        ([[1, 2], [2, 1]], True),
        ([*range(50), "s", 7], False),
    ],
)
def test_unique_items_is_jsonschemas_equality(items: list[Any], unique: bool) -> None:
    assert ok({"type": "array", "uniqueItems": True}, items) is unique


def test_unique_items_spends_a_step_per_item() -> None:
    # Failed before: one step for the whole O(n^2) comparison.
    schema = compiled({"type": "array", "uniqueItems": True})
    assert schema.conforms([*range(3000), "s"], Budget(steps=5_000))
    assert not schema.conforms([*range(3000), "s"], Budget(steps=1_000))


def test_a_subschema_naming_another_dialect_stays_in_the_budget() -> None:
    # Failed before: `$schema` in a subschema switched jsonschema to an unbudgeted validator.
    inner = {"$schema": "http://json-schema.org/draft-07/schema#", "items": {"type": "integer"}}
    schema = compiled({"type": "object", "properties": {"xs": inner}})
    assert schema.conforms({"xs": list(range(100))}, Budget())
    assert not schema.conforms({"xs": list(range(100))}, Budget(steps=20))


def test_a_format_is_not_checked_on_a_string_of_megabytes() -> None:
    # Failed before: `format: regex` compiled a miner's 2 MB string (seconds of CPU).
    pattern = {"type": "string", "format": "regex"}
    schema = compiled({"type": "object", "properties": {"p": pattern}})
    assert schema.conforms({"p": "[a-z]+"}, Budget())
    assert not schema.conforms({"p": "("}, Budget())
    assert not schema.conforms({"p": "[a-z]" * 1000}, Budget())
