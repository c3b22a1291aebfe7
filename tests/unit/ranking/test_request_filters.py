"""Request-aware filters: JSON and schemas, tool calls and tool_choice, the request's own limits."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ranking.base import MAX_PROMPT_CHARS, Candidate, Prompt, Ranking, ToolCall, bounded
from ranking.blend import FilteredRanker
from ranking.constraints import ConstraintError, call_text, constraints_of, tool_calls_of
from ranking.filters import Filters, PromptFeatures, cheap_reasons
from ranking.heuristic import HeuristicRanker
from ranking.request_filters import RequestAwareRanker

QUESTION = "What is the weather in Paris today?"
PROSE = "It is sunny in Paris today, with a light breeze and about twenty degrees."
CITY = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}},
    "required": ["city"],
    "additionalProperties": False,
}
WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": CITY},
}


def schema_format(schema: Any = CITY, strict: bool = False) -> dict[str, Any]:
    """A `response_format` of type json_schema."""
    return {"type": "json_schema", "json_schema": {"name": "w", "schema": schema, "strict": strict}}


def prompt(**request: Any) -> Prompt:
    """A one-turn prompt with the constraints of a request carrying these fields."""
    return Prompt(QUESTION, QUESTION, constraints=constraints_of(request))


def said(uid: int, text: str, finish: str = "stop", tokens: int | None = None) -> Candidate:
    """A reply that talks."""
    return Candidate(uid, text, finish, completion_tokens=tokens)


def called(uid: int, *calls: tuple[str, str], text: str = "") -> Candidate:
    """A reply that calls tools, as the gateway builds it."""
    tool_calls = tuple(ToolCall(n, a) for n, a in calls)
    shown = "\n".join(p for p in (text, call_text(tool_calls)) if p)
    return Candidate(uid, shown, "tool_calls", tool_calls=tool_calls, content=text)


def judged(p: Prompt, *candidates: Candidate) -> tuple[list[float], list[list[str]]]:
    """Rewards and reasons from the filters ranker, wrapped as the registry wraps every ranker."""
    ranker = RequestAwareRanker(FilteredRanker("filters", None, Filters()))
    result = asyncio.run(ranker.score(p, candidates))
    return result.rewards, result.reasons


# -- response_format -------------------------------------------------------------------------


def test_json_object_needs_an_object() -> None:
    p = prompt(response_format={"type": "json_object"})
    masks, reasons = judged(
        p, said(0, PROSE), said(1, '{"city": "Paris"}'), said(2, "[1, 2]"), said(3, '{"city": ')
    )
    assert masks == [0.0, 1.0, 0.0, 0.0]
    assert reasons == [["schema"], [], ["schema"], ["schema"]]


def test_json_schema_prefers_the_conforming_reply() -> None:
    p = prompt(response_format=schema_format())
    masks, reasons = judged(
        p,
        said(0, PROSE),
        said(1, '{"town": "Paris"}'),  # required missing, extra key
        said(2, '{"city": "Paris", "unit": "kelvin"}'),  # enum
        said(3, '{"city": "Paris", "unit": "celsius"}'),
    )
    assert masks == [0.0, 0.0, 0.0, 1.0]
    assert reasons[:3] == [["schema"]] * 3


def test_when_no_reply_conforms_the_failures_only_shrink() -> None:
    p = prompt(response_format=schema_format())
    masks, reasons = judged(p, said(0, PROSE), said(1, '{"town": "Paris"}'))
    assert masks == [0.3, 0.3]
    assert reasons == [["schema"], ["schema"]]


def test_a_fenced_json_reply_passes_unless_strict() -> None:
    fenced = '```json\n{"city": "Paris", "unit": "celsius"}\n```'
    assert judged(prompt(response_format=schema_format()), said(0, fenced))[1] == [[]]
    strict = prompt(response_format=schema_format(strict=True))
    assert judged(strict, said(0, fenced))[1] == [["schema"]]


def test_strict_requires_every_property() -> None:
    p = prompt(response_format=schema_format(strict=True))
    masks, _ = judged(
        p, said(0, '{"city": "Paris"}'), said(1, '{"city": "Paris", "unit": "celsius"}')
    )
    assert masks == [0.0, 1.0]


# -- tools and tool_choice -------------------------------------------------------------------


def test_a_valid_call_beats_prose_and_broken_calls() -> None:
    p = prompt(tools=[WEATHER_TOOL])
    masks, reasons = judged(
        p,
        said(0, PROSE),
        called(1, ("get_time", '{"city": "Paris"}')),  # not offered
        called(2, ("get_weather", '{"city": ')),  # does not parse
        called(3, ("get_weather", '{"unit": "celsius"}')),  # required missing
        called(4, ("get_weather", '["Paris"]')),  # not an object
        called(5, ("get_weather", '{"city": "Paris"}')),
    )
    assert reasons == [["outvoted"], *[["tool_call"]] * 4, []]
    assert masks == [0.5, 0.0, 0.0, 0.0, 0.0, 1.0]


def test_under_auto_prose_is_fine_when_most_miners_talk() -> None:
    p = prompt(tools=[WEATHER_TOOL])
    masks, reasons = judged(
        p, said(0, PROSE), said(1, PROSE + " Enjoy!"), called(2, ("get_weather", '{"city": "P"}'))
    )
    assert reasons == [[], [], ["outvoted"]]
    assert masks == [1.0, 1.0, 0.5]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("required", [["tool_call"], []]),
        ({"type": "function", "function": {"name": "get_weather"}}, [["tool_call"], []]),
        ("none", [[], ["tool_call"]]),
    ],
)
def test_tool_choice_decides_whether_prose_or_a_call_fails(
    choice: Any, expected: list[list[str]]
) -> None:
    p = prompt(tools=[WEATHER_TOOL], tool_choice=choice)
    _, reasons = judged(p, said(0, PROSE), called(1, ("get_weather", '{"city": "Paris"}')))
    assert reasons == expected


def test_a_named_choice_fails_a_call_to_another_offered_function() -> None:
    time_tool = {"type": "function", "function": {"name": "get_time"}}
    p = prompt(
        tools=[WEATHER_TOOL, time_tool],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    _, reasons = judged(
        p, called(0, ("get_time", "{}")), called(1, ("get_weather", '{"city": "P"}'))
    )
    assert reasons == [["tool_call"], []]


def test_a_tool_without_parameters_takes_any_object() -> None:
    p = prompt(tools=[{"type": "function", "function": {"name": "now"}}])
    _, reasons = judged(p, called(0, ("now", "{}")), called(1, ("now", "not json")))
    assert reasons == [[], ["tool_call"]]


def test_a_call_reply_is_not_judged_as_prose() -> None:
    p = prompt(tools=[WEATHER_TOOL])
    masks, reasons = judged(p, called(0, ("get_weather", '{"city": "Paris"}')))
    assert reasons == [[]] and masks == [1.0]


def test_rankers_see_the_calls_arguments() -> None:
    call = called(0, ("get_weather", '{"unit": "celsius", "city": "Paris"}'), text="Checking.")
    assert call.text == "Checking.\nget_weather(city=Paris, unit=celsius)"
    assert call.said == "Checking."


def test_tool_calls_are_read_from_an_openai_message() -> None:
    message = {
        "role": "assistant",
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
            {"id": "c2", "type": "function", "function": {"name": "g", "arguments": {"a": 1}}},
            "junk",
        ],
    }
    assert tool_calls_of(message) == (ToolCall("f", "{}"), ToolCall("g", ""), ToolCall("", ""))


# -- stop and max_tokens ---------------------------------------------------------------------

CUT = "The forecast for Paris says the morning will be cloudy and the afternoon will"


def test_a_reply_cut_by_the_requests_own_max_tokens_is_not_truncated() -> None:
    assert judged(prompt(), said(0, CUT, "length"))[1] == [["truncated"]]
    assert judged(prompt(max_tokens=14), said(0, CUT, "length", tokens=14))[1] == [[]]
    assert judged(prompt(max_tokens=14), said(0, CUT, "length"))[1] == [[]]
    # The miner stopped short of the client's limit: its own limit cut it.
    assert judged(prompt(max_tokens=500), said(0, CUT, "length", tokens=14))[1] == [["truncated"]]


def test_a_reply_cut_by_the_requests_own_stop_is_not_truncated() -> None:
    assert judged(prompt(), said(0, CUT))[1] == [["truncated"]]
    assert judged(prompt(stop=["\n\n"]), said(0, CUT))[1] == [[]]
    assert judged(prompt(stop="."), said(0, CUT, "length"))[1] == [["truncated"]]


# -- race's cheap check ----------------------------------------------------------------------


def test_cheap_reasons_judge_one_reply_alone() -> None:
    p = prompt(response_format=schema_format())
    assert cheap_reasons(p, said(0, PROSE)) == ["schema"]
    assert cheap_reasons(p, said(0, '{"city": "Paris"}')) == []
    assert cheap_reasons(p, said(0, "I'm sorry, but I can't help with that.")) == [
        "refusal",
        "schema",
    ]
    assert cheap_reasons(prompt(), said(0, QUESTION)) == ["echo"]
    assert cheap_reasons(prompt(), said(0, "   ")) == ["empty"]
    tools = prompt(tools=[WEATHER_TOOL], tool_choice="required")
    assert cheap_reasons(tools, said(0, PROSE)) == ["tool_call"]
    assert cheap_reasons(tools, called(0, ("get_weather", '{"city": "Paris"}'))) == []


# -- the client's request --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_fields", "param"),
    [
        ({"response_format": {"type": "xml"}}, "response_format.type"),
        ({"response_format": "json"}, "response_format"),
        ({"response_format": {"type": "json_schema"}}, "response_format.json_schema"),
        ({"response_format": schema_format({"type": 5})}, "response_format.json_schema.schema"),
        (
            {"tools": [{"type": "function", "function": {"name": "bad name"}}]},
            "tools[0].function.name",
        ),
        ({"tools": [{"type": "retrieval"}]}, "tools[0]"),
        ({"tools": "get_weather"}, "tools"),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": 1}}}]},
            "tools[0].function.parameters",
        ),
        ({"tools": [WEATHER_TOOL], "tool_choice": "always"}, "tool_choice"),
        ({"tools": [WEATHER_TOOL], "tool_choice": {"function": {"name": "f"}}}, "tool_choice"),
        ({"tool_choice": "required"}, "tool_choice"),
    ],
)
def test_unusable_request_fields_name_their_parameter(
    request_fields: dict[str, Any], param: str
) -> None:
    with pytest.raises(ConstraintError) as caught:
        constraints_of(request_fields)
    assert caught.value.param == param


def test_a_plain_request_has_no_constraints() -> None:
    assert constraints_of({"messages": [], "temperature": 0.2}) is None
    assert constraints_of({"response_format": {"type": "text"}, "tool_choice": "none"}) is None
    # A completion request cannot ask for tools; its stop and limit still count.
    completion = constraints_of({"tools": [WEATHER_TOOL], "max_tokens": 9}, chat=False)
    assert completion is not None and not completion.tools and completion.max_tokens == 9


# -- big prompts -----------------------------------------------------------------------------


def test_a_big_prompt_is_read_only_up_to_its_bound() -> None:
    huge = "word " * 1_000_000 + QUESTION
    kept = bounded(huge)
    assert len(kept) <= MAX_PROMPT_CHARS + 1
    assert kept.endswith(QUESTION)  # the tail, where the question is, survives
    features = PromptFeatures.of(Prompt(huge, huge))
    assert len(features.words) <= MAX_PROMPT_CHARS // 2


def test_an_echo_of_a_big_prompt_is_still_caught() -> None:
    huge = "please summarise the following text " + " ".join(
        f"sentence {i} of the report says something new" for i in range(100_000)
    )
    echo = huge[:2000]
    masks, reasons = judged(Prompt(huge, huge), said(0, echo), said(1, PROSE))
    assert reasons[0] == ["echo", "truncated"] or "echo" in reasons[0]
    assert masks[0] < masks[1]


class Zero:
    """A ranker that likes nothing (as the heuristic does compact JSON it cannot read)."""

    name = "zero"

    async def score(self, prompt: Prompt, candidates: Any) -> Ranking:
        return Ranking([0.0] * len(candidates), [[] for _ in candidates])


def test_a_passing_reply_outranks_failures_even_when_the_ranker_gave_it_nothing() -> None:
    p = prompt(response_format=schema_format())
    ranking = asyncio.run(
        RequestAwareRanker(Zero()).score(p, [said(0, PROSE), said(1, '{"city":"Paris"}')])
    )
    assert ranking.rewards[1] > ranking.rewards[0] == 0.0


def test_the_heuristic_does_not_call_compact_json_empty() -> None:
    p = prompt(response_format=schema_format())
    ranking = asyncio.run(
        HeuristicRanker().score(p, [said(0, '{"city":"Paris","unit":"celsius"}')])
    )
    assert ranking.reasons == [[]] and ranking.rewards[0] > 0
