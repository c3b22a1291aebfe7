"""Tests for the model-free heuristic ranker."""

from __future__ import annotations

import pytest

from ranking.base import Candidate, Prompt, Ranker, Ranking
from ranking.heuristic import HeuristicRanker, _cached_stem, stem

CAPITAL = "What is the capital of Australia?"
CAPITAL_ANSWER = (
    "The capital of Australia is Canberra. It was chosen as a compromise between Sydney "
    "and Melbourne and became the seat of the federal parliament in 1927."
)

REVERSE = "How do I reverse a list in Python?"
REVERSE_ANSWER = (
    "In Python you can reverse a list in place with `items.reverse()`, or build a reversed "
    "copy with slicing, `items[::-1]`, which leaves the original list unchanged."
)

BOIL = "Why does water boil at a lower temperature at high altitude?"
BOIL_ANSWER = (
    "At high altitude the air pressure is lower, so water needs less energy for its vapour "
    "pressure to match it. That is why water boils at a lower temperature, around 90 °C "
    "at 3,000 metres instead of 100 °C at sea level."
)

SQL = (
    "I have an orders table with a customer_id column. How can I count the rows per "
    "customer in SQL and then sort the customers by that count, highest first?"
)
SQL_ANSWER = (
    "Group the orders table by the customer_id column, count the rows in each group, and "
    "sort by that count descending so the highest comes first:\n\n"
    "```sql\nSELECT customer_id, COUNT(*) AS row_count\nFROM orders\n"
    "GROUP BY customer_id\nORDER BY row_count DESC;\n```"
)


def prompt(question: str) -> Prompt:
    """A one-turn conversation."""
    return Prompt(
        text=f"user: {question}",
        last_user=question,
        messages=({"role": "user", "content": question},),
    )


def rank(question: str, *texts: str, finish: tuple[str | None, ...] = ()) -> Ranking:
    """Rank replies to one question; `finish` gives each reply's finish_reason."""
    reasons = finish or ("stop",) * len(texts)
    candidates = [
        Candidate(uid=i, text=t, finish_reason=f)
        for i, (t, f) in enumerate(zip(texts, reasons, strict=True))
    ]
    return HeuristicRanker().rank(prompt(question), candidates)


def assert_first_wins(ranking: Ranking) -> None:
    """The first candidate's reward is strictly the highest."""
    assert ranking.rewards[0] == max(ranking.rewards)
    assert all(ranking.rewards[0] > r for r in ranking.rewards[1:])


def test_correct_answer_beats_off_topic() -> None:
    off_topic = (
        "Bananas are an excellent source of potassium and fibre, and they ripen faster "
        "when stored next to apples because of the ethylene the apples release."
    )
    ranking = rank(CAPITAL, CAPITAL_ANSWER, off_topic)
    assert_first_wins(ranking)
    assert ranking.reasons == [[], []]


def test_long_rambling_off_topic_reply_does_not_win() -> None:
    ramble = " ".join(
        f"Consider point {n}: gardening in spring rewards patience and good soil."
        for n in range(60)
    )
    ranking = rank(BOIL, BOIL_ANSWER, ramble)
    assert_first_wins(ranking)


def test_correct_answer_beats_echo_of_the_question() -> None:
    echo = (
        "So you have an orders table with a customer_id column, and you want to know how to "
        "count the rows per customer in SQL and then sort the customers by that count, "
        "highest first."
    )
    ranking = rank(SQL, SQL_ANSWER, echo)
    assert_first_wins(ranking)
    assert "echo" in ranking.reasons[1]
    assert ranking.rewards[1] < ranking.rewards[0] / 2  # a penalty, not a tie-break
    assert ranking.reasons[0] == []


@pytest.mark.parametrize(
    "refusal",
    [
        "I'm sorry, but I can't help with reversing a list in Python, because writing or "
        "explaining code that changes a list is outside what I am allowed to do here.",
        "As an AI language model, I cannot run Python, but you can reverse a list in place "
        "with `items.reverse()` or get a reversed copy with `items[::-1]`.",
        "I cannot help with that request. Reversing a list in Python is a programming task, "
        "and programming help is something I must decline in this conversation.",
    ],
)
def test_correct_answer_beats_refusal(refusal: str) -> None:
    ranking = rank(REVERSE, REVERSE_ANSWER, refusal)
    assert_first_wins(ranking)
    assert ranking.reasons[1] == ["refusal"]
    assert ranking.rewards[1] < ranking.rewards[0] / 2  # a penalty, not a tie-break


@pytest.mark.parametrize("empty", ["", "   \n", "Canberra", "..."])
def test_empty_reply_scores_zero(empty: str) -> None:
    ranking = rank(CAPITAL, CAPITAL_ANSWER, empty)
    assert_first_wins(ranking)
    assert ranking.rewards[1] == 0.0
    assert ranking.reasons[1] == ["empty"]


def test_correct_answer_beats_reply_cut_off_by_length_limit() -> None:
    cut = (
        "At high altitude the air pressure is lower, so water needs less energy for its "
        "vapour pressure to match it; water therefore boils at a lower temperature, and "
        "at the summit of Everest"
    )
    ranking = rank(BOIL, BOIL_ANSWER, cut, finish=("stop", "length"))
    assert_first_wins(ranking)
    assert ranking.reasons[1] == ["truncated"]


def test_reply_stopping_mid_sentence_is_truncated_even_without_length_finish() -> None:
    cut = (
        "The capital of Australia is Canberra. It was chosen as a compromise between Sydney "
        "and Melbourne, the two largest cities, and the federal parliament first sat there in"
    )
    ranking = rank(CAPITAL, CAPITAL_ANSWER, cut)
    assert_first_wins(ranking)
    assert ranking.reasons[1] == ["truncated"]


def test_finished_code_block_is_not_truncated() -> None:
    ranking = rank(SQL, SQL_ANSWER)
    assert ranking.reasons == [[]]


def test_correct_answer_beats_repetitive_one() -> None:
    looping = " ".join(["The capital of Australia is Canberra."] * 5)
    ranking = rank(CAPITAL, CAPITAL_ANSWER, looping)
    assert_first_wins(ranking)
    assert ranking.reasons[1] == ["repetitive"]
    assert ranking.rewards[1] < ranking.rewards[0] / 2  # a penalty, not a tie-break


def test_sentence_said_twice_is_repetitive() -> None:
    twice = (
        "In Python, use slicing with a negative step to reverse the list. Slicing returns a "
        "new list and leaves the original untouched, whereas the reverse method mutates it in "
        "place and returns None. In Python, use slicing with a negative step to reverse the list."
    )
    ranking = rank(REVERSE, REVERSE_ANSWER, twice)
    assert_first_wins(ranking)
    assert "repetitive" in ranking.reasons[1]


def test_complete_answer_beats_terse_but_right_one() -> None:
    terse = "Python: list.reverse()."
    ranking = rank(REVERSE, REVERSE_ANSWER, terse)
    assert_first_wins(ranking)
    assert ranking.reasons == [[], []]
    assert ranking.rewards[1] > 0.0


def test_reply_agreeing_with_the_others_beats_a_lone_dissenter() -> None:
    question = "Who wrote the novel Pride and Prejudice?"
    agreeing = "Pride and Prejudice was written by Jane Austen and published in 1813."
    also_agreeing = "Jane Austen wrote Pride and Prejudice; it first appeared in 1813."
    dissenting = "Pride and Prejudice was written by Charlotte Bronte and published in 1847."
    ranking = rank(question, agreeing, dissenting, also_agreeing)
    assert ranking.rewards[0] > ranking.rewards[1]
    assert ranking.rewards[2] > ranking.rewards[1]


def test_best_of_a_mixed_pool_is_the_full_answer() -> None:
    texts = (
        BOIL_ANSWER,
        "Water boils at lower temperature at altitude.",
        "Why does water boil at a lower temperature at high altitude?",
        "I'm sorry, but I can't answer questions about boiling water.",
        "",
        "Because pressure is lower. " * 6,
        "Lower air pressure at high altitude means water boils before it gets as",
    )
    ranking = rank(BOIL, *texts, finish=("stop",) * 6 + ("length",))
    assert_first_wins(ranking)
    assert ranking.reasons[2:] == [["echo"], ["refusal"], ["empty"], ["repetitive"], ["truncated"]]


@pytest.mark.parametrize(
    ("question", "texts"),
    [
        (CAPITAL, (CAPITAL_ANSWER, "", "Canberra.", "I cannot help with that.")),
        ("hi", ("Hello! How can I help you today?", "hi hi hi hi hi hi hi hi hi")),
        (SQL, (SQL_ANSWER, SQL, "x " * 800)),
    ],
)
def test_rewards_are_one_per_candidate_within_unit_interval(
    question: str, texts: tuple[str, ...]
) -> None:
    ranking = rank(question, *texts)
    assert len(ranking.rewards) == len(texts)
    assert len(ranking.reasons) == len(texts)
    assert all(0.0 <= r <= 1.0 for r in ranking.rewards)


async def test_score_matches_rank_and_handles_no_candidates() -> None:
    ranker = HeuristicRanker()
    candidates = [Candidate(uid=1, text=CAPITAL_ANSWER), Candidate(uid=2, text="Sydney, maybe")]
    assert await ranker.score(prompt(CAPITAL), candidates) == ranker.rank(
        prompt(CAPITAL), candidates
    )
    assert await ranker.score(prompt(CAPITAL), []) == Ranking(rewards=[], reasons=[])


def test_is_a_ranker() -> None:
    ranker = HeuristicRanker()
    assert isinstance(ranker, Ranker)
    assert ranker.name == "heuristic"


def test_only_short_words_are_cached_by_the_stemmer() -> None:
    before = _cached_stem.cache_info().currsize
    for i in range(50):
        assert stem("x" * 1000 + f"{i}ings") == "x" * 1000 + f"{i}ing"
    assert _cached_stem.cache_info().currsize == before
    stem("replying")
    assert _cached_stem.cache_info().currsize <= before + 1


@pytest.mark.parametrize(
    ("words", "root"),
    [(("list", "lists", "listed", "listing"), "list"), (("reverse", "reversed"), "revers")],
)
def test_stem_maps_word_forms_together(words: tuple[str, ...], root: str) -> None:
    assert {stem(w) for w in words} == {root}
