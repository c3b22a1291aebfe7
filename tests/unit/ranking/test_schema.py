"""Checking replies against a client's JSON schema: the keywords, strict mode, and the bounds."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import jsonschema
import orjson
import pytest
from jsonschema import Draft202012Validator, ValidationError

import ranking.schema
from ranking.schema import (
    _TIME_EVERY,
    COMPILE_SECONDS,
    COMPILE_STEPS,
    MAX_FORMAT_CHARS,
    MAX_SCHEMA_BYTES,
    MAX_SCHEMA_DEPTH,
    Budget,
    CompiledSchema,
    OverBudget,
    SchemaRefused,
    _budgeted,
    closed,
    compile_budget,
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


# `regex` backtracks on this one exponentially: without the timeout it runs for hours.
# (`^(\\w+\\s?)*$`, tested here before, `regex` answers at once: it never reached the timeout.)
BACKTRACKING = "^(a|aa)+$"
HOSTILE = "a" * 40 + "b"


@pytest.mark.parametrize(
    ("schema", "instance"),
    [
        ({"type": "string", "pattern": BACKTRACKING}, HOSTILE),
        # Timing out fails the whole check: it is not "does not match", which `not` would pass.
        ({"not": {"pattern": BACKTRACKING}}, HOSTILE),
        ({"type": "object", "patternProperties": {BACKTRACKING: {}}}, {HOSTILE: 1}),
        # additionalProperties comes first: its own test of the patterns times out.
        ({"additionalProperties": False, "patternProperties": {BACKTRACKING: {}}}, {HOSTILE: 1}),
    ],
)
def test_a_backtracking_pattern_times_out_instead_of_hanging(schema: Any, instance: Any) -> None:
    assert ok({"type": "string", "pattern": BACKTRACKING}, "aaaa")
    check = compiled(schema)
    started = time.perf_counter()
    assert check.conforms(instance, Budget(seconds=5.0)) is False
    assert time.perf_counter() - started < 1.0


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
    with pytest.raises(SchemaRefused) as refused:
        compiled({"anyOf": [{}] * 21000})
    assert str(refused.value) == "the schema is too large or complex to check"


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
    # Time enough for the steps: under a tracer (mutmut's) 3,000 items outlast 20 ms.
    assert schema.conforms([*range(3000), "s"], Budget(steps=5_000, seconds=5.0))
    assert not schema.conforms([*range(3000), "s"], Budget(steps=1_000, seconds=5.0))


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


def test_unique_items_false_or_on_a_non_array_constrains_nothing() -> None:
    assert ok({"uniqueItems": False}, [1, 1])
    assert ok({"uniqueItems": True}, "aa")
    assert ok({"uniqueItems": True}, {"a": 1, "b": 1})


def test_a_format_string_of_exactly_the_limit_is_still_checked() -> None:
    schema = compiled({"type": "string", "format": "regex"})
    at_limit = "a" * MAX_FORMAT_CHARS
    assert schema.conforms(at_limit, Budget(seconds=5.0))
    assert not schema.conforms(at_limit + "a", Budget(seconds=5.0))


def test_additional_properties_as_a_schema_checks_only_the_extras() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {}},
        "patternProperties": {"^x-": {}},
        "additionalProperties": {"type": "integer"},
    }
    assert ok(schema, {"a": "s", "x-y": "s", "b": 1})
    assert not ok(schema, {"a": "s", "b": "s"})
    assert ok({"additionalProperties": True}, {"b": "s"})


def test_pattern_properties_search_the_name_and_check_every_match() -> None:
    schema = {"patternProperties": {"id$": {"type": "integer"}, "^user": {"minimum": 10}}}
    assert ok(schema, {"user_id": 12, "name": "x"})
    assert not ok(schema, {"user_id": "12"})  # id$ matches anywhere at the end
    assert not ok(schema, {"user_id": 3})  # both patterns match: both apply
    assert ok(schema, {"id_user": "x"})  # neither matches: unconstrained


# Strict mode


def test_strict_closes_objects_inside_lists_and_objects_without_a_type() -> None:
    schema = {"anyOf": [{"properties": {"a": {"type": "integer"}}}]}
    assert ok(schema, {"a": 1, "b": 2})
    assert not ok(schema, {"a": 1, "b": 2}, strict=True)
    assert not ok(schema, {}, strict=True)
    assert ok(schema, {"a": 1}, strict=True)


def test_closing_keeps_the_clients_own_required_names() -> None:
    schema = {"type": "object", "properties": {"a": {}}, "required": ["b"]}
    assert closed(schema) == {
        "type": "object",
        "properties": {"a": {}},
        "required": ["a", "b"],
        "additionalProperties": False,
    }


def test_closing_leaves_a_schema_of_another_type_alone() -> None:
    schema = {"type": "array", "properties": {"a": {}}, "items": {"type": "string"}}
    assert closed(schema) == schema


# The refusals, word for word: a client reads them in its 400 reply.


def nested_objects(depth: int) -> dict[str, Any]:
    """A schema `depth` levels deep: objects in objects, the innermost empty."""
    schema: dict[str, Any] = {}
    for _ in range(depth - 1):
        schema = {"not": schema}
    return schema


def nested_arrays(depth: int) -> dict[str, Any]:
    """A schema `depth` levels deep: an object, then arrays in arrays (an `enum` value)."""
    value: list[Any] = []
    for _ in range(depth - 3):
        value = [value]
    return {"enum": [value]}


@pytest.mark.parametrize("nested", [nested_objects, nested_arrays])
def test_a_schema_of_exactly_the_depth_limit_is_accepted(nested: Any) -> None:
    compiled(nested(MAX_SCHEMA_DEPTH))
    with pytest.raises(SchemaRefused) as refused:
        compiled(nested(MAX_SCHEMA_DEPTH + 1))
    assert str(refused.value) == f"the schema nests deeper than {MAX_SCHEMA_DEPTH} levels"


def test_a_schema_of_exactly_the_size_limit_is_accepted() -> None:
    compile_schema({"type": "object"}, False, MAX_SCHEMA_BYTES)
    with pytest.raises(SchemaRefused) as refused:
        compile_schema({"type": "object"}, False, MAX_SCHEMA_BYTES + 1)
    expected = (
        f"the schema is {MAX_SCHEMA_BYTES + 1} bytes; at most {MAX_SCHEMA_BYTES} are accepted"
    )
    assert str(refused.value) == expected


LONG_REF = "https://example.com/" + "s" * 200


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ([1, 2], "the schema must be a JSON object"),
        ({"$ref": LONG_REF}, f"the schema refers outside itself ({LONG_REF[:80]!r})"),
        (
            {"$dynamicRef": "https://example.com/s#meta"},
            "the schema refers outside itself ('https://example.com/s#meta')",
        ),
        (
            {"patternProperties": {"^a": {}}, "allOf": [{"unevaluatedProperties": False}]},
            "patternProperties with unevaluatedProperties is not supported",
        ),
        (
            {"pattern": "(unclosed"},
            "the schema is not valid JSON Schema: '(unclosed' is not a 'regex'",
        ),
        # The meta-schema's own patterns and uniqueItems, under the same budget.
        (
            {"$anchor": "1st"},
            "the schema is not valid JSON Schema:"
            " '1st' does not match '^[A-Za-z_][-A-Za-z0-9._]*$'",
        ),
        (
            {"required": ["a", "a"]},
            "the schema is not valid JSON Schema: ['a', 'a'] has non-unique elements",
        ),
        (
            {"pattern": "a" * (MAX_FORMAT_CHARS + 1)},
            "the schema is not valid JSON Schema:"
            f" a 'regex' string of {MAX_FORMAT_CHARS + 1} characters is too long",
        ),
    ],
)
def test_a_refusal_says_why(schema: Any, message: str) -> None:
    with pytest.raises(SchemaRefused) as refused:
        compiled(schema)
    assert str(refused.value) == message


def test_a_schema_the_meta_schemas_patterns_accept_is_used() -> None:
    assert ok({"$anchor": "point", "type": "object"}, {})


def test_a_pattern_nested_past_pythons_recursion_limit_is_refused() -> None:
    # Python's own parser reads a pattern recursively, one level a group.
    with pytest.raises(SchemaRefused) as refused:
        compiled({"type": "string", "pattern": "(" * 2000 + "a" + ")" * 2000})
    reason = "the schema cannot be used: maximum recursion depth exceeded"
    assert str(refused.value).startswith(reason)


def test_an_invalid_schemas_reason_is_cut_to_200_characters() -> None:
    prefix = "the schema is not valid JSON Schema: "
    with pytest.raises(SchemaRefused) as refused:
        compiled({"type": "x" * 300})
    assert str(refused.value).startswith(prefix + "'xxx")
    assert len(str(refused.value)) == len(prefix) + 200


# The budget: steps and time


class Clock:
    """A `time.perf_counter` the test moves; it counts its reads."""

    def __init__(self) -> None:
        self.now = 100.0
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(ranking.schema, "time", SimpleNamespace(perf_counter=fake))
    return fake


def test_a_budget_of_n_steps_allows_exactly_n(clock: Clock) -> None:
    budget = Budget(steps=3, seconds=1.0)
    budget.start()
    for _ in range(3):
        budget.spend()
    with pytest.raises(OverBudget) as over:
        budget.spend()
    assert str(over.value) == "step budget spent"


def test_the_time_budget_is_spent_only_past_its_deadline(clock: Clock) -> None:
    budget = Budget(steps=_TIME_EVERY * 3, seconds=0.5)
    budget.start()
    clock.now = 100.5  # exactly the deadline: not past it
    for _ in range(_TIME_EVERY):
        budget.spend()
    clock.now = 100.5001
    with pytest.raises(OverBudget) as over:
        for _ in range(_TIME_EVERY):  # noticed within this many steps
            budget.spend()
    assert str(over.value) == "time budget spent"


def test_a_step_reads_the_clock_only_once_every_few_steps(clock: Clock) -> None:
    # The clock is the costly part of a step: it is read every _TIME_EVERY steps.
    budget = Budget(steps=_TIME_EVERY * 10, seconds=1.0)
    budget.start()
    clock.reads = 0
    for _ in range(_TIME_EVERY * 10):
        budget.spend()
    assert clock.reads == 10


def test_work_of_many_steps_at_once_allows_exactly_the_budget(clock: Clock) -> None:
    budget = Budget(steps=10, seconds=1.0)
    budget.start()
    budget.spend_many(4)
    budget.spend_many(6)
    with pytest.raises(OverBudget) as over:
        budget.spend_many(1)
    assert str(over.value) == "step budget spent"


def test_work_of_many_steps_at_once_reads_the_clock_each_time(clock: Clock) -> None:
    budget = Budget(steps=100, seconds=0.5)
    budget.start()
    clock.now = 100.5  # exactly the deadline: not past it
    budget.spend_many(1)
    clock.now = 100.5001
    with pytest.raises(OverBudget) as over:
        budget.spend_many(1)
    assert str(over.value) == "time budget spent"


def test_a_requests_schemas_share_the_compile_budget(clock: Clock) -> None:
    budget = compile_budget()
    assert (budget.steps, budget.seconds) == (COMPILE_STEPS, COMPILE_SECONDS)


def test_each_keyword_and_each_unique_item_costs_one_step() -> None:
    budget = Budget(steps=100, seconds=5.0)
    assert compiled({"type": "array", "uniqueItems": True}).conforms([1, 2, 3], budget)
    assert budget.steps == 100 - 2 - 3


def test_a_budgeted_keyword_charges_a_step_then_runs_the_keyword() -> None:
    # The keywords of `compile_schema`'s validator are wrapped once, on import; wrapped here,
    # the wrapper itself is under test.
    calls: list[tuple[Any, Any, Any]] = []

    def at_least(validator: Any, value: Any, instance: Any, schema: Any) -> Any:
        calls.append((value, instance, schema))
        if validator.is_type(instance, "number") and instance < value:
            yield ValidationError(f"{instance} < {value}")

    def noted(validator: Any, value: Any, instance: Any, schema: Any) -> None:
        calls.append((value, instance, schema))  # a keyword may return None: no errors

    keywords = {"minimum": _budgeted(at_least), "$comment": _budgeted(noted)}
    schema = {"minimum": 3, "$comment": "note"}
    check = CompiledSchema(jsonschema.validators.extend(Draft202012Validator, keywords)(schema))
    budget = Budget(steps=10, seconds=5.0)
    assert check.conforms(5, budget)
    assert budget.steps == 8
    assert calls == [(3, 5, schema), ("note", 5, schema)]
    assert not check.conforms(2, Budget(steps=10, seconds=5.0))
    calls.clear()
    assert not check.conforms(5, Budget(steps=0, seconds=5.0))
    assert calls == []  # charged first: over budget, the keyword does not run
