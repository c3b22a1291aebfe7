"""Blends, fallback chains and the ranker registry: normalisation, weights, masks, failures."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from gateway.config import ConfigError, Settings, load_pools_file
from ranking.base import Candidate, Prompt, RankerUnavailable, Ranking
from ranking.blend import BlendRanker, FallbackRanker, FilteredRanker, normalise
from ranking.embedding import EmbeddingModel
from ranking.filters import Filters
from ranking.registry import (
    BUILT_IN,
    RankerConfigError,
    RankerSpec,
    build_rankers,
    check_names,
    depends_on,
)

QUESTION = "What is the capital of Australia?"
PROMPT = Prompt(QUESTION, QUESTION, ({"role": "user", "content": QUESTION},))
GOOD = "The capital of Australia is Canberra, chosen as a compromise between Sydney and Melbourne."
OTHER = "Canberra became the capital because Sydney and Melbourne both wanted the title."
REFUSAL = "I'm sorry, but I can't help with that."
SPECS = TypeAdapter(dict[str, RankerSpec])


class Fixed:
    """A ranker that gives preset rewards (a stand-in reward model with a known scale)."""

    def __init__(self, name: str, rewards: Sequence[float]) -> None:
        self.name = name
        self.rewards = list(rewards)
        self.calls = 0

    async def score(self, prompt: Prompt, candidates: Sequence[Candidate]) -> Ranking:
        self.calls += 1
        return Ranking(self.rewards[: len(candidates)], [[] for _ in candidates])


class Down:
    """A ranker that is unavailable, for a stated reason."""

    def __init__(self, name: str, reason: str = "timeout") -> None:
        self.name = name
        self.reason = reason

    async def score(self, prompt: Prompt, candidates: Sequence[Candidate]) -> Ranking:
        raise RankerUnavailable(self.name, self.reason)


def candidates(*texts: str) -> list[Candidate]:
    """Replies as candidates with uids 0, 1, …"""
    return [Candidate(i, t, "stop") for i, t in enumerate(texts)]


def test_normalising_puts_the_best_at_one_and_keeps_zero() -> None:
    assert normalise([2.0, 4.0, 1.0]) == [0.5, 1.0, 0.25]
    assert normalise([-1.0, 1.0]) == [0.0, 1.0]
    assert normalise([0.7, 0.7]) == [1.0, 1.0]
    assert normalise([0.0, 0.0]) == [0.0, 0.0]
    assert normalise([]) == []


async def test_weights_decide_between_components_on_different_scales() -> None:
    # A reward model on a 0-100 scale prefers reply 1; a 0-1 model prefers reply 0.
    big = Fixed("big", [10.0, 90.0])
    small = Fixed("small", [0.9, 0.1])
    three = candidates(GOOD, OTHER)
    favour_small = await BlendRanker("b", [(big, 0.3), (small, 0.7)]).score(PROMPT, three)
    favour_big = await BlendRanker("b", [(big, 0.7), (small, 0.3)]).score(PROMPT, three)
    assert favour_small.rewards[0] > favour_small.rewards[1]
    assert favour_big.rewards[1] > favour_big.rewards[0]
    assert favour_small.rewards == pytest.approx([0.3 / 9 + 0.7, 0.3 + 0.7 / 9])


async def test_filters_multiply_the_blend_and_their_reasons_show() -> None:
    blend = BlendRanker("b", [(Fixed("m", [0.2, 0.9]), 1.0)], Filters())
    ranking = await blend.score(PROMPT, candidates(GOOD, REFUSAL))
    assert ranking.rewards[0] > ranking.rewards[1]
    assert ranking.reasons[0] == []
    assert "refusal" in ranking.reasons[1]


async def test_an_unavailable_component_is_dropped_and_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[tuple[str, str]] = []
    blend = BlendRanker(
        "b",
        [(Down("rm", "http_5xx"), 0.8), (Fixed("m", [0.1, 0.6]), 0.2)],
        on_fallback=lambda r, why: seen.append((r, why)),
    )
    with caplog.at_level(logging.WARNING):
        ranking = await blend.score(PROMPT, candidates(GOOD, OTHER))
    assert ranking.rewards == pytest.approx([1 / 6, 1.0])  # the rest renormalised
    assert ranking.label("b") == "b (without rm: http 5xx)"
    assert seen == [("rm", "http_5xx")]
    assert "rm" in caplog.text and "http_5xx" in caplog.text


async def test_a_blend_with_every_component_down_is_itself_unavailable() -> None:
    blend = BlendRanker("b", [(Down("a"), 1.0), (Down("c"), 1.0)])
    with pytest.raises(RankerUnavailable) as info:
        await blend.score(PROMPT, candidates(GOOD))
    assert info.value.reason == "no_component"
    assert info.value.why == "timeout"  # the first component's reason, for the client


async def test_fallback_chain_uses_the_first_ranker_that_answers() -> None:
    seen: list[tuple[str, str]] = []
    backup = Fixed("backup", [0.3, 0.8])
    chain = FallbackRanker("rm", [Down("rm", "timeout"), backup], lambda r, w: seen.append((r, w)))
    ranking = await chain.score(PROMPT, candidates(GOOD, OTHER))
    assert ranking.rewards == [0.3, 0.8]
    assert ranking.label("rm") == "backup (rm unavailable: timeout)"
    assert seen == [("rm", "timeout")]
    answered = await FallbackRanker("m", [Fixed("m", [0.5])]).score(PROMPT, candidates(GOOD))
    assert answered.label("m") == "m"
    with pytest.raises(RankerUnavailable):
        await FallbackRanker("x", [Down("a"), Down("b")]).score(PROMPT, candidates(GOOD))


async def test_filters_alone_rank_clean_replies_above_degenerate_ones() -> None:
    ranking = await FilteredRanker("filters", None, Filters()).score(
        PROMPT, candidates(GOOD, "", REFUSAL)
    )
    assert ranking.rewards[0] == 1.0 > ranking.rewards[2] > ranking.rewards[1] == 0.0
    assert ranking.reasons[1] == ["empty"]


async def test_registry_builds_built_ins_and_definitions_and_falls_back_to_heuristic() -> None:
    specs = SPECS.validate_python(
        {"mine": {"kind": "blend", "weights": {"heuristic": 1.0}, "filters": {"min_words": 3}}}
    )
    seen: list[tuple[str, str]] = []
    model = EmbeddingModel()  # never loaded: embedding rankers must fall back
    rankers = build_rankers(specs, None, model, lambda r, w: seen.append((r, w)))
    assert set(BUILT_IN) | {"mine"} == set(rankers)
    ranking = await rankers["blend"].score(PROMPT, candidates(GOOD, REFUSAL))
    assert ranking.rewards[0] > ranking.rewards[1]
    assert ("static", "loading") in seen
    assert ranking.label("blend") == "heuristic (blend unavailable: loading)"
    embedded = await rankers["embedding"].score(PROMPT, candidates(GOOD, REFUSAL))
    assert ("embedding", "loading") in seen
    assert embedded.label("embedding") == "heuristic (embedding unavailable: loading)"
    mine = await rankers["mine"].score(PROMPT, candidates(GOOD, "Canberra."))
    assert "too_short" in mine.reasons[1]


def test_the_full_model_is_wanted_only_where_a_ranker_uses_it() -> None:
    specs = SPECS.validate_python(
        {
            "mixed": {"kind": "blend", "weights": {"heuristic": 1.0}, "fallback": ["deep"]},
            "deep": {"kind": "blend", "weights": {"embedding": 1.0}},
        }
    )
    assert not depends_on({}, ["blend", "heuristic"], "embedding")
    assert depends_on({}, ["blend"], "static")
    assert depends_on(specs, ["mixed"], "embedding")  # through a fallback and a blend


def test_registry_refuses_unknown_names_cycles_and_bad_settings() -> None:
    with pytest.raises(RankerConfigError, match="nope"):
        check_names({}, ["nope"])
    loop = SPECS.validate_python(
        {
            "a": {"kind": "blend", "weights": {"b": 1.0}},
            "b": {"kind": "blend", "weights": {"a": 1.0}},
        }
    )
    with pytest.raises(RankerConfigError, match="refer to each other"):
        build_rankers(loop, None, EmbeddingModel())
    with pytest.raises(ValidationError):
        SPECS.validate_python({"x": {"kind": "blend", "weights": {"heuristic": -1.0}}})
    with pytest.raises(ValidationError):
        SPECS.validate_python(
            {"x": {"kind": "blend", "weights": {"a": 1}, "filters": {"blocklist": ["("]}}}
        )
    with pytest.raises(ValidationError):
        SPECS.validate_python(
            {"x": {"kind": "remote", "url": "http://h", "model": "m", "api": "chat"}}
        )


def write_pools(tmp_path: Path, ranker: str) -> Path:
    """A pools file with one pool and a `rankers:` section."""
    (tmp_path / "sn1.json").write_text('{"netuid": 1, "neurons": []}')
    path = tmp_path / "pools.yaml"
    path.write_text(
        "rankers:\n"
        "  rm: {kind: remote, url: 'http://127.0.0.1:9', model: reward, api: score}\n"
        "  strict: {kind: blend, weights: {rm: 0.6, embedding: 0.3, heuristic: 0.1},\n"
        "           filters: {blocklist: ['(?i)buy now']}, fallback: [heuristic]}\n"
        "pools:\n"
        f"  - metagraph: sn1.json\n    ranker: {ranker}\n"
    )
    return path


def test_a_pools_file_defines_blends_per_pool(tmp_path: Path) -> None:
    path = write_pools(tmp_path, "strict")
    pools = load_pools_file(path)
    assert pools.pools[0].ranker == "strict"
    strict = pools.rankers["strict"]
    assert strict.kind == "blend" and strict.weights["rm"] == 0.6
    settings = Settings(pools=path)
    assert set(settings.ranker_specs()) == {"rm", "strict"}


async def test_the_gateway_refuses_a_pool_ranker_nobody_defined(tmp_path: Path) -> None:
    from gateway.app import start_state

    settings = Settings(pools=write_pools(tmp_path, "missing"))
    with pytest.raises(ConfigError, match="missing"):
        await asyncio.wait_for(start_state(settings), 10)
