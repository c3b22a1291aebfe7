"""The validator filters: each fires on its degenerate reply, says why, and spares good ones."""

from __future__ import annotations

import pytest

from ranking.base import Candidate, Prompt
from ranking.filters import FACTORS, FilterConfig, Filters, is_refusal, is_truncated

QUESTION = "Why does ice float on water?"
GOOD = (
    "Ice is less dense than liquid water. When water freezes, hydrogen bonds lock the "
    "molecules into an open lattice that takes up about 9% more volume, so ice floats."
)


def prompt(question: str = QUESTION) -> Prompt:
    """A one-turn conversation."""
    return Prompt(
        text=question, last_user=question, messages=({"role": "user", "content": question},)
    )


def reasons(
    text: str, finish: str | None = "stop", config: FilterConfig | None = None
) -> list[str]:
    """The reasons the filters give for one reply."""
    result = Filters(config).apply(prompt(), [Candidate(0, text, finish)])
    return result.reasons[0]


def mask(text: str, finish: str | None = "stop") -> float:
    """The mask the filters give one reply."""
    return Filters().apply(prompt(), [Candidate(0, text, finish)]).masks[0]


def test_a_good_reply_passes_untouched() -> None:
    assert reasons(GOOD) == []
    assert mask(GOOD) == 1.0


@pytest.mark.parametrize("text", ["", "   ", "\n\n", "...", "?!"])
def test_empty_replies_are_zeroed(text: str) -> None:
    assert reasons(text) == ["empty"]
    assert mask(text) == 0.0


def test_a_one_word_reply_is_too_short_but_not_zero() -> None:
    assert reasons("Density.") == ["too_short"]
    assert 0 < mask("Density.") < 1


def test_echo_of_the_prompt_is_caught() -> None:
    assert "echo" in reasons(QUESTION)
    assert "echo" in reasons(f"You asked: {QUESTION}")
    assert "echo" not in reasons(GOOD)


def test_repetition_loops_are_caught() -> None:
    first = "Ice is less dense than liquid water."
    assert "repetitive" in reasons(" ".join([first] * 5))
    assert "repetitive" in reasons(" ".join(["ice floats on water because"] * 8))
    assert "repetitive" in reasons(f"{GOOD}\n\n{GOOD}")


@pytest.mark.parametrize(
    "text",
    [
        "I'm sorry, but I can't help with that.",
        "As an AI language model, I don't have the ability to provide that information.",
        "I am unable to assist with this request. Please consult a professional.",
        "Unfortunately, I cannot provide an answer to that question.",
        "I apologize, but I won\u2019t be able to answer questions about physics.",
    ],
)
def test_refusal_boilerplate_is_caught(text: str) -> None:
    assert "refusal" in reasons(text)
    assert mask(text) <= FACTORS["refusal"]


def test_an_apology_that_goes_on_to_help_is_not_a_refusal() -> None:
    text = "Sorry about that! Check your spam folder; reset emails can take ten minutes."
    assert "refusal" not in reasons(text)


def test_truncation_by_finish_reason_or_mid_sentence() -> None:
    cut = "Ice is less dense than liquid water. When water freezes, hydrogen bonds lock the"
    assert "truncated" in reasons(cut)
    assert "truncated" in reasons(GOOD, finish="length")
    assert "truncated" in reasons("Here is the code:\n\n```python\nitems.reverse()\n")


def test_endings_that_are_not_cut_off_are_left_alone() -> None:
    email = "Thank you for the invitation; I can't attend at that time.\n\nBest regards,\nDaniel"
    assert "truncated" not in reasons(email)
    assert "truncated" not in reasons("Use this:\n\n```python\nitems.reverse()\n```")
    assert "truncated" not in reasons(
        "In a vacuum, the speed of light in metres per second is 299792458"
    )


def test_the_blocklist_zeroes_matching_replies_and_can_be_configured() -> None:
    config = FilterConfig(blocklist=(r"buy now", r"https?://spam\.example"))
    spam = "Ice floats because it is less dense. Buy now at a discount, today only!"
    assert reasons(spam, config=config) == ["blocked"]
    assert Filters(config).apply(prompt(), [Candidate(0, spam)]).masks == [0.0]
    assert reasons(GOOD, config=config) == []


def test_disabled_filters_do_not_fire() -> None:
    config = FilterConfig(disabled=frozenset({"refusal"}))
    assert reasons("I'm sorry, but I can't help with that.", config=config) == []


def test_several_filters_multiply() -> None:
    looping_refusal = " ".join(["I'm sorry, but I can't help with that."] * 5)
    fired = reasons(looping_refusal)
    assert {"refusal", "repetitive"} <= set(fired)
    assert mask(looping_refusal) == pytest.approx(FACTORS["refusal"] * FACTORS["repetitive"])


@pytest.mark.parametrize(
    ("text", "refused"),
    [
        ("I can't give you an exact number, but Tokyo has about 14 million people.", False),
        ("I cannot provide legal advice; however, the general rule is that leases renew.", False),
        ("I'm sorry, but I can't help with that.", True),
        ("I must decline this request.", True),
        ("I'm not going to help with that.", True),
    ],
)
def test_hedged_answers_are_not_refusals(text: str, refused: bool) -> None:
    assert is_refusal(text) is refused


def test_a_finished_list_or_code_answer_is_not_truncated() -> None:
    steps = "To reset it:\n1. Open the settings page\n2. Choose the network tab and press reset"
    assert not is_truncated(steps, len(steps.split()), "stop")
    assert is_truncated(steps, len(steps.split()), "length")
    cut = "The capital of France is Paris, which is also the largest city in"
    assert is_truncated(cut, len(cut.split()), "stop")
