"""The structured-output split: requests with a JSON schema or tools, and replies of known kinds.

Each item is one request that asks for JSON (`response_format` json_schema, some `strict`) or
offers tools (`tool_choice` auto, required or named), with ten candidates: the right one
(conforming JSON with the right facts, or the right call) and nine worse:

| kind          | JSON schema request                  | tools request                        |
|---------------|--------------------------------------|--------------------------------------|
| prose         | a fluent, correct answer in prose    | a fluent answer in prose             |
| broken        | the right JSON cut off               | the right function, arguments cut    |
| missing_field | a required field left out            | a required argument left out         |
| wrong_type    | a field of the wrong type            | an argument of the wrong type        |
| extra_field   | an extra field (forbidden)           | an extra argument (forbidden)        |
| wrong_enum    | a value outside the field's enum     | an argument outside its enum         |
| not_object    | a JSON array of the values           | a function that was not offered      |
| wrong_values  | conforming, another entity's facts   | the right function, another entity   |
| refusal       | a refusal                            | a refusal                            |

`python -m ranking.evalset_structured` writes ranking/data/structured.jsonl, read by
`bitgate eval ranking --split structured`.
"""

from __future__ import annotations

import json
import random
import sys
import zlib
from typing import Any

from ranking.evalset import DATA, EvalItem, write_items

STRUCTURED_FILE = DATA / "structured.jsonl"
STRUCTURED_KINDS = (
    "prose",
    "broken",
    "missing_field",
    "wrong_type",
    "extra_field",
    "wrong_enum",
    "not_object",
    "wrong_values",
    "refusal",
)

# name, capital, continent, population in millions, official languages
COUNTRIES = (
    ("France", "Paris", "Europe", 68, ["French"]),
    ("Japan", "Tokyo", "Asia", 124, ["Japanese"]),
    ("Kenya", "Nairobi", "Africa", 55, ["Swahili", "English"]),
    ("Brazil", "Brasilia", "South America", 203, ["Portuguese"]),
    ("Canada", "Ottawa", "North America", 40, ["English", "French"]),
    ("Australia", "Canberra", "Oceania", 27, ["English"]),
    ("Egypt", "Cairo", "Africa", 105, ["Arabic"]),
    ("India", "New Delhi", "Asia", 1430, ["Hindi", "English"]),
    ("Germany", "Berlin", "Europe", 84, ["German"]),
    ("Mexico", "Mexico City", "North America", 129, ["Spanish"]),
    ("Peru", "Lima", "South America", 34, ["Spanish", "Quechua", "Aymara"]),
    ("Norway", "Oslo", "Europe", 5, ["Norwegian"]),
    ("Vietnam", "Hanoi", "Asia", 100, ["Vietnamese"]),
    ("Morocco", "Rabat", "Africa", 37, ["Arabic", "Berber"]),
    ("Chile", "Santiago", "South America", 20, ["Spanish"]),
    ("New Zealand", "Wellington", "Oceania", 5, ["English", "Maori"]),
)
CONTINENTS = ["Africa", "Asia", "Europe", "North America", "Oceania", "South America"]
COUNTRY_SCHEMA = {
    "type": "object",
    "properties": {
        "country": {"type": "string"},
        "capital": {"type": "string"},
        "continent": {"enum": CONTINENTS},
        "population_millions": {"type": "integer", "minimum": 0},
        "languages": {"type": "array", "items": {"type": "string"}, "minItems": 1},
    },
    "required": ["country", "capital", "continent", "population_millions", "languages"],
    "additionalProperties": False,
}
WEATHER = {
    "name": "get_weather",
    "description": "Current weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer", "minimum": 1, "maximum": 7},
        },
        "required": ["city", "unit", "days"],
        "additionalProperties": False,
    },
}
FLIGHTS = {
    "name": "search_flights",
    "description": "Flights between two cities on a date.",
    "parameters": {
        "type": "object",
        "properties": {
            "origin": {"type": "string"},
            "destination": {"type": "string"},
            "date": {"type": "string", "format": "date"},
            "cabin": {"enum": ["economy", "business"]},
        },
        "required": ["origin", "destination", "date", "cabin"],
        "additionalProperties": False,
    },
}
REFUSALS = (
    "I'm sorry, but I can't help with that.",
    "As an AI language model, I cannot provide real-time information.",
    "I am unable to assist with this request.",
)


def _country_json(c: tuple[Any, ...]) -> dict[str, Any]:
    name, capital, continent, population, languages = c
    return {
        "country": name,
        "capital": capital,
        "continent": continent,
        "population_millions": population,
        "languages": languages,
    }


def _country_prose(c: tuple[Any, ...]) -> str:
    name, capital, continent, population, languages = c
    spoken = " and ".join(languages)
    verb = "languages are" if len(languages) > 1 else "language is"
    return (
        f"{name} is a country in {continent} whose capital is {capital}. It has about "
        f"{population} million people, and its official {verb} {spoken}."
    )


def _json_item(index: int, rng: random.Random) -> tuple[dict[str, Any], str, list[dict[str, Any]]]:
    country = COUNTRIES[index]
    other = COUNTRIES[(index + 5) % len(COUNTRIES)]
    right = _country_json(country)
    strict = index % 2 == 0
    request = {
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "country", "schema": COUNTRY_SCHEMA, "strict": strict},
        }
    }
    question = (
        f"Give the capital, continent, population in millions and official languages of "
        f"{country[0]} as JSON."
    )
    dropped = rng.choice(list(right))
    missing = {k: v for k, v in right.items() if k != dropped}
    texts = {
        "best": json.dumps(right),
        "prose": _country_prose(country),
        "broken": json.dumps(right)[: rng.randint(20, 60)],
        "missing_field": json.dumps(missing),
        "wrong_type": json.dumps({**right, "population_millions": f"{country[3]} million"}),
        "extra_field": json.dumps({**right, "currency": "unknown"}),
        "wrong_enum": json.dumps({**right, "continent": country[2].lower() + "n"}),
        "not_object": json.dumps(list(right.values())),
        "wrong_values": json.dumps({**_country_json(other), "country": country[0]}),
        "refusal": rng.choice(REFUSALS),
    }
    return (
        request,
        question,
        [{"kind": k, "text": t, "finish_reason": "stop"} for k, t in texts.items()],
    )


def _call(name: str, arguments: Any, raw: str | None = None) -> dict[str, Any]:
    text = raw if raw is not None else json.dumps(arguments)
    return {
        "kind": "",
        "text": "",
        "finish_reason": "tool_calls",
        "tool_calls": [{"name": name, "arguments": text}],
    }


def _tool_item(index: int, rng: random.Random) -> tuple[dict[str, Any], str, list[dict[str, Any]]]:
    country = COUNTRIES[index]
    other = COUNTRIES[(index + 3) % len(COUNTRIES)]
    choice: Any = ["auto", "required", {"type": "function", "function": {"name": ""}}][index % 3]
    if index % 2 == 0:
        tool, unit, days = WEATHER, rng.choice(["celsius", "fahrenheit"]), rng.randint(1, 7)
        question = f"What will the weather be in {country[1]} over the next {days} days, in {unit}?"
        right = {"city": country[1], "unit": unit, "days": days}
        wrong_type = {**right, "days": f"{days} days"}
        wrong_enum = {**right, "unit": "kelvin"}
        wrong_values = {**right, "city": other[1]}
        prose = f"In {country[1]} it should be mild over the next {days} days; check a forecast."
    else:
        tool, cabin = FLIGHTS, rng.choice(["economy", "business"])
        question = f"Find {cabin} flights from {country[1]} to {other[1]} on 2026-03-14."
        right = {
            "origin": country[1],
            "destination": other[1],
            "date": "2026-03-14",
            "cabin": cabin,
        }
        wrong_type = {**right, "date": "next March"}
        wrong_enum = {**right, "cabin": "first class"}
        wrong_values = {**right, "origin": other[1], "destination": country[1]}
        prose = f"There are usually several {cabin} flights from {country[1]} to {other[1]}."
    if isinstance(choice, dict):
        choice["function"]["name"] = tool["name"]
    request = {"tools": [{"type": "function", "function": t} for t in (WEATHER, FLIGHTS)]}
    request["tool_choice"] = choice
    name = str(tool["name"])
    dropped = rng.choice(list(right))
    missing = {k: v for k, v in right.items() if k != dropped}
    full = json.dumps(right)
    candidates = {
        "best": _call(name, right),
        "prose": {"kind": "", "text": prose, "finish_reason": "stop"},
        "broken": _call(name, None, full[: rng.randint(8, len(full) - 4)]),
        "missing_field": _call(name, missing),
        "wrong_type": _call(name, wrong_type),
        "extra_field": _call(name, {**right, "note": "please hurry"}),
        "wrong_enum": _call(name, wrong_enum),
        "not_object": _call("lookup_" + name, right),
        "wrong_values": _call(name, wrong_values),
        "refusal": {"kind": "", "text": rng.choice(REFUSALS), "finish_reason": "stop"},
    }
    return request, question, [{**c, "kind": k} for k, c in candidates.items()]


def build_structured() -> list[EvalItem]:
    """Two items per country (one JSON schema, one tools); deterministic."""
    items = []
    for index in range(len(COUNTRIES)):
        for kind, make in (("json", _json_item), ("tools", _tool_item)):
            item_id = f"structured-{kind}-{index:03d}"
            rng = random.Random(zlib.crc32(item_id.encode()))
            request, question, candidates = make(index, rng)
            rng.shuffle(candidates)
            best = next(i for i, c in enumerate(candidates) if c["kind"] == "best")
            messages = [{"role": "user", "content": question}]
            items.append(EvalItem(item_id, kind, "structured", messages, candidates, best, request))
    return items


def main() -> int:
    """Rebuild structured.jsonl."""
    items = build_structured()
    write_items(items, STRUCTURED_FILE)
    print(f"wrote {len(items)} items to {STRUCTURED_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
