"""The labelled evaluation set: its shape, its variety, and that it matches its sources."""

from __future__ import annotations

import json
from collections import Counter

from ranking.evalset import (
    CANDIDATES,
    EVAL_FILE,
    WORSE_KINDS,
    build_items,
    load_items,
    load_topics,
)


def test_the_set_has_at_least_300_prompts_of_ten_candidates_with_one_best() -> None:
    items = load_items()
    assert len(items) >= 300
    assert len({i.id for i in items}) == len(items)
    for item in items:
        kinds = [c["kind"] for c in item.candidates]
        assert len(kinds) == CANDIDATES
        assert kinds.count("best") == 1
        assert item.candidates[item.best]["kind"] == "best"
        assert set(kinds) - {"best"} <= set(WORSE_KINDS)
        assert len(set(kinds)) == CANDIDATES  # nine different kinds of worse reply
        assert item.messages[-1]["role"] == "user"
        assert item.candidates[item.best]["text"].strip()


def test_every_kind_of_worse_reply_is_well_represented() -> None:
    counts = Counter(c["kind"] for i in load_items() for c in i.candidates)
    for kind in WORSE_KINDS:
        assert counts[kind] >= 250, kind


def test_the_writing_is_varied() -> None:
    items = load_items()
    topics = Counter(i.topic for i in items)
    assert len(topics) >= 10 and max(topics.values()) <= 40
    assert sum(1 for i in items if len(i.messages) > 1) >= 15  # system prompts, several turns
    lengths = [len(i.candidates[i.best]["text"].split()) for i in items]
    assert min(lengths) < 25 and max(lengths) > 100
    assert len({i.candidates[i.best]["text"] for i in items}) == len(items)
    best_positions = Counter(i.best for i in items)
    assert len(best_positions) == CANDIDATES  # the best reply is not always in one place


def test_there_is_a_dev_split_for_tuning_and_a_larger_held_out_split() -> None:
    dev, test = load_items(split="dev"), load_items(split="test")
    assert 80 <= len(dev) < len(test)
    assert not {i.id for i in dev} & {i.id for i in test}


def test_the_jsonl_is_what_the_topic_files_build() -> None:
    built = build_items(load_topics())
    on_disk = [json.loads(line) for line in EVAL_FILE.read_text().splitlines()]
    assert [i.id for i in built] == [row["id"] for row in on_disk]
    assert [i.candidates for i in built] == [row["candidates"] for row in on_disk]
