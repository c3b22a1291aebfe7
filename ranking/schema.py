"""JSON Schema checks of miners' replies against a client's schema, bounded in size, depth and time.

A schema comes from the client and a reply from a miner: both are hostile. A schema is
refused when it is bigger than `MAX_SCHEMA_BYTES`, nests deeper than `MAX_SCHEMA_DEPTH`, is
not a valid 2020-12 schema, or refers outside itself. Checking a request's schemas against
the meta-schema, and a reply against a schema, costs at most `budget.steps` keyword
evaluations (uniqueness and patterns included) and `budget.seconds` of time (a schema of
small size can still ask for exponential work through `$ref`s); over budget, the schema is
refused and the reply does not conform.
Regular expressions (`pattern`, `patternProperties`) run under the `regex` module's timeout,
so a pattern with catastrophic backtracking cannot hang the event loop.
"""

from __future__ import annotations

import contextvars
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import attrs
import jsonschema
import regex
from jsonschema import Draft202012Validator, FormatChecker, ValidationError
from jsonschema.exceptions import SchemaError
from jsonschema.protocols import Validator
from referencing.exceptions import Unresolvable

from ranking.meta_schema import flat_meta_schema
from ranking.pattern_size import PatternTooLarge, pattern_units

MAX_SCHEMA_BYTES = 64 * 1024
MAX_SCHEMA_DEPTH = 32
REGEX_TIMEOUT_S = 0.005
DEFAULT_STEPS = 20_000
DEFAULT_SECONDS = 0.02
# Checking a request's schemas against the meta-schema, all of them together.
COMPILE_STEPS = 50_000
COMPILE_SECONDS = 0.1
_TIME_EVERY = 64
MAX_FORMAT_CHARS = 4096

Keyword = Callable[[Any, Any, Any, Mapping[str, Any]], Iterator[ValidationError] | None]


class SchemaRefused(ValueError):
    """A client schema that will not be used: too big, too deep, invalid or not self-contained."""


class OverBudget(Exception):
    """A check ran past its step or time budget."""


@dataclass(slots=True)
class Budget:
    """How much work one check may do."""

    steps: int = DEFAULT_STEPS
    seconds: float = DEFAULT_SECONDS
    _deadline: float = field(default=0.0, init=False)

    def start(self) -> None:
        """Start the clock."""
        self._deadline = time.perf_counter() + self.seconds

    def spend_many(self, steps: int) -> None:
        """Work of many steps done at once (a pattern compiled); the clock read each time."""
        self.steps -= steps
        if self.steps < 0:
            raise OverBudget("step budget spent")
        if time.perf_counter() > self._deadline:
            raise OverBudget("time budget spent")

    def spend(self) -> None:
        """One keyword evaluated; raise `OverBudget` when out of steps or time."""
        self.steps -= 1
        if self.steps < 0:
            raise OverBudget("step budget spent")
        if self.steps % _TIME_EVERY == 0 and time.perf_counter() > self._deadline:
            raise OverBudget("time budget spent")


_BUDGET: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("schema_budget")
# The client's patterns, compiled once per schema: never into `regex`'s own cache, where 500
# of a client's patterns (1.5 MiB each at 10,000 items) would stay for good.
_PATTERNS: contextvars.ContextVar[Mapping[str, regex.Pattern[str]] | None] = contextvars.ContextVar(
    "schema_patterns", default=None
)


def _spend() -> None:
    """Charge one step to the current check's budget (if any)."""
    budget = _BUDGET.get(None)
    if budget is not None:
        budget.spend()


def _search(pattern: str, text: str) -> bool:
    """`regex.search` under a timeout and one budget step; a pattern that times out raises
    `OverBudget` (the whole check fails, whatever `not` surrounds the pattern)."""
    _spend()
    compiled = (_PATTERNS.get() or {}).get(pattern)
    try:
        if compiled is None:  # the meta-schema's own patterns, which `regex` may cache
            return regex.search(pattern, text, timeout=REGEX_TIMEOUT_S) is not None
        return compiled.search(text, timeout=REGEX_TIMEOUT_S) is not None
    except TimeoutError:
        raise OverBudget("regular expression timed out") from None


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not _search(pattern, instance):
        yield ValidationError(f"{instance[:80]!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: Mapping[str, Any], instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if _search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(
    validator: Any, allowed: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    known = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    extras = [k for k in instance if k not in known and not any(_search(p, k) for p in patterns)]
    if validator.is_type(allowed, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], allowed, path=extra)
    elif not allowed and extras:
        yield ValidationError(f"additional properties are not allowed ({sorted(extras)[:5]})")


def _canonical(value: Any) -> Any:
    """A hashable form of a JSON value, equal exactly when jsonschema calls two values equal
    (1 and 1.0 alike, true and 1 not); linear in the value's size."""
    if isinstance(value, bool) or value is None:
        return ("b", value)
    if isinstance(value, int | float):
        return ("n", value)
    if isinstance(value, str):
        return ("s", value)
    if isinstance(value, list):
        return ("a", tuple(_canonical(item) for item in value))
    if isinstance(value, dict):
        return ("o", frozenset((k, _canonical(v)) for k, v in value.items()))
    return ("?", repr(value))


def _unique_items(
    validator: Any, unique: Any, instance: Any, schema: Any
) -> Iterator[ValidationError]:
    # jsonschema's own check is O(n^2) on unhashable or mixed items: 6,700 numbers and a
    # string took 20 s. Hashing canonical forms is linear; each item is a budget step.
    if not unique or not validator.is_type(instance, "array"):
        return
    seen: set[Any] = set()
    for item in instance:
        _spend()
        key = _canonical(item)
        if key in seen:
            yield ValidationError(f"{str(instance)[:80]} has non-unique elements")
            return
        seen.add(key)


def _format(validator: Any, format: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    # Formats are checked by parsers (`regex` compiles the string) whose cost grows with it:
    # no format this validator knows needs more than a few KiB.
    if isinstance(instance, str) and len(instance) > MAX_FORMAT_CHARS:
        yield ValidationError(f"a {format!r} string of {len(instance)} characters is too long")
        return
    yield from _JSONSCHEMA_FORMAT(validator, format, instance, schema) or ()


def _budgeted(keyword: Keyword) -> Keyword:
    """The keyword, charging one step of the current check's budget first."""

    def check(validator: Any, value: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
        _spend()
        errors = keyword(validator, value, instance, schema)
        if errors is not None:
            yield from errors

    return check


_JSONSCHEMA_FORMAT: Keyword = Draft202012Validator.VALIDATORS["format"]
_OWN: dict[str, Keyword] = {
    "pattern": _pattern,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional_properties,
    "uniqueItems": _unique_items,
    "format": _format,
}
BoundedValidator = jsonschema.validators.extend(
    Draft202012Validator,
    {
        name: _budgeted(_OWN.get(name, keyword))
        for name, keyword in Draft202012Validator.VALIDATORS.items()
    },
)


def _evolve_bounded(self: Any, **changes: Any) -> Any:
    """jsonschema's `evolve`, minus its switch to the class a subschema's `$schema` names:
    that class is unbudgeted (and its patterns use `re`), so a `$schema` anywhere in a schema,
    the meta-schema's own vocabularies included, escaped the budget."""
    cls = self.__class__
    # Every init field not changed is carried over, `schema` included (jsonschema's own
    # `evolve` set it first only to pick the class from it).
    for spec in attrs.fields(cls):
        if spec.init and spec.alias not in changes:
            changes[spec.alias] = getattr(self, spec.name)
    return cls(**changes)


BoundedValidator.evolve = _evolve_bounded
_META = BoundedValidator(flat_meta_schema(), format_checker=Draft202012Validator.FORMAT_CHECKER)


def _depth_and_refs(schema: Any) -> tuple[int, list[str]]:
    """How deep the document nests, and every `$ref`/`$dynamicRef` in it (iteratively)."""
    deepest, refs = 0, []
    stack: list[tuple[Any, int]] = [(schema, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_SCHEMA_DEPTH:
            break
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("$ref", "$dynamicRef") and isinstance(value, str):
                    refs.append(value)
                stack.append((value, depth + 1))
        elif isinstance(node, list):
            stack.extend((item, depth + 1) for item in node)
    return deepest, refs


def closed(schema: Any) -> Any:
    """The schema as OpenAI's strict mode reads it: objects closed, every property required."""
    if isinstance(schema, list):
        return [closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: closed(v) for k, v in schema.items()}
    if isinstance(out.get("properties"), dict) and (
        out.get("type") == "object" or "type" not in out
    ):
        out.setdefault("additionalProperties", False)
        required = out.get("required")
        listed = [r for r in required if isinstance(r, str)] if isinstance(required, list) else []
        out["required"] = sorted({*listed, *out["properties"]})
    return out


@dataclass(frozen=True, slots=True)
class CompiledSchema:
    """A client schema, checked once per request, ready to check replies."""

    validator: Validator
    patterns: Mapping[str, regex.Pattern[str]] = field(default_factory=dict)

    def conforms(self, instance: Any, budget: Budget) -> bool:
        """Whether the instance validates, within the budget (over budget: it does not)."""
        budget.start()
        token = _BUDGET.set(budget)
        patterns = _PATTERNS.set(self.patterns)
        try:
            return next(iter(self.validator.iter_errors(instance)), None) is None
        except (OverBudget, RecursionError, Unresolvable, OverflowError):
            return False  # OverflowError: `format: regex` on a count over 2**32 - 1
        finally:
            _PATTERNS.reset(patterns)
            _BUDGET.reset(token)


def compile_schema(
    schema: Any, strict: bool, size: int, budget: Budget | None = None
) -> CompiledSchema:
    """Check a client schema (`size`: its JSON length) and build its validator, or refuse it;
    the check spends `budget` (one request's schemas share one, `compile_budget()`)."""
    if size > MAX_SCHEMA_BYTES:
        raise SchemaRefused(f"the schema is {size} bytes; at most {MAX_SCHEMA_BYTES} are accepted")
    if not isinstance(schema, dict | bool):
        raise SchemaRefused("the schema must be a JSON object")
    depth, refs = _depth_and_refs(schema)
    if depth > MAX_SCHEMA_DEPTH:
        raise SchemaRefused(f"the schema nests deeper than {MAX_SCHEMA_DEPTH} levels")
    outside = [r for r in refs if not r.startswith("#")]
    if outside:
        raise SchemaRefused(f"the schema refers outside itself ({outside[0][:80]!r})")
    patterns = list(_patterns(schema))
    if patterns and _has_key(schema, "unevaluatedProperties"):
        # jsonschema checks those patterns with `re`, which no timeout bounds.
        raise SchemaRefused("patternProperties with unevaluatedProperties is not supported")
    if strict:
        schema = closed(schema)
    if budget is None:
        budget = compile_budget()
    token = _BUDGET.set(budget)
    compiled: dict[str, regex.Pattern[str]] = {}
    try:
        for pattern in patterns:  # before anything compiles one
            _sized(pattern, budget)
        # Against the meta-schema with the budgeted validator: jsonschema's `check_schema`
        # is unbounded (anyOf of 21,000 empty schemas took 7.7 s of the event loop).
        error = next(iter(_META.iter_errors(schema)), None)
        if error is not None:
            raise SchemaError(error.message)
        for pattern in patterns:
            compiled[pattern] = regex.compile(pattern, cache_pattern=False)
    except SchemaError as exc:
        raise SchemaRefused(f"the schema is not valid JSON Schema: {exc.message[:200]}") from None
    except OverBudget:
        raise SchemaRefused("the schema is too large or complex to check") from None
    except (regex.error, RecursionError, Unresolvable) as exc:
        raise SchemaRefused(f"the schema cannot be used: {str(exc)[:200]}") from None
    except PatternTooLarge as exc:
        raise SchemaRefused(f"a pattern of the schema is too large: {exc}") from None
    finally:
        _BUDGET.reset(token)
    return CompiledSchema(BoundedValidator(schema, format_checker=FormatChecker()), compiled)


def _sized(pattern: str, budget: Budget) -> None:
    """`PatternTooLarge` for a pattern that would compile too large; else a budget step for
    each item it compiles into (a request's patterns share 50,000: ~10 ms, ~10 MiB)."""
    try:
        units = pattern_units(pattern)
    except re.error:
        units = 1  # not a pattern Python reads: the meta-schema's `format: regex` refuses it
    budget.spend_many(units)


def compile_budget() -> Budget:
    """The budget of checking one request's schemas (all of them together), started."""
    budget = Budget(steps=COMPILE_STEPS, seconds=COMPILE_SECONDS)
    budget.start()
    return budget


def _has_key(schema: Any, key: str) -> bool:
    """Whether any object in the document has `key`."""
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if key in node:
                return True
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def _patterns(schema: Any) -> Iterator[str]:
    """Every regular expression the schema holds."""
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("pattern"), str):
                yield node["pattern"]
            if isinstance(node.get("patternProperties"), dict):
                yield from node["patternProperties"]
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
