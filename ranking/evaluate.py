"""Scoring rankers on the labelled set: top-1, pairwise accuracy, latency, losses by kind."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ranking.base import Candidate, Prompt, Ranker, Ranking, ToolCall
from ranking.constraints import call_text, constraints_of
from ranking.evalset import EvalItem


class RandomRanker:
    """The baseline: a uniformly random reward per candidate (seeded)."""

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)

    async def score(self, prompt: Prompt, candidates: Sequence[Candidate]) -> Ranking:
        """Random rewards."""
        return Ranking([self.rng.random() for _ in candidates], [[] for _ in candidates])


@dataclass(slots=True)
class Report:
    """How one ranker did on a set of items."""

    name: str
    items: int = 0
    top1: float = 0.0
    pairwise: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    losses: Counter[str] = field(default_factory=Counter)
    kind_counts: Counter[str] = field(default_factory=Counter)
    fallbacks: int = 0

    def percentile(self, q: float) -> float:
        """A latency percentile in milliseconds."""
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else 0.0

    def loss_rate(self, kind: str) -> float:
        """Share of items where a reply of this kind scored at least as high as the best."""
        return self.losses[kind] / self.kind_counts[kind] if self.kind_counts[kind] else 0.0


def prompt_of(item: EvalItem) -> Prompt:
    """The item's conversation as the gateway would flatten it."""
    turns = [m["content"] for m in item.messages]
    messages: tuple[dict[str, object], ...] = tuple(dict(m) for m in item.messages)
    constraints = constraints_of(item.request) if item.request else None
    return Prompt("\n".join(turns), item.last_user, messages, constraints)


def candidates_of(item: EvalItem) -> list[Candidate]:
    """The item's replies as miner candidates (tool calls shown as the gateway shows them)."""
    out = []
    for i, c in enumerate(item.candidates):
        calls = tuple(ToolCall(t["name"], t["arguments"]) for t in c.get("tool_calls", ()))
        text = "\n".join(p for p in (c["text"], call_text(calls)) if p)
        content = c["text"] if calls else None
        out.append(Candidate(i, text, c.get("finish_reason"), tool_calls=calls, content=content))
    return out


def judge(rewards: Sequence[float], best: int) -> tuple[float, float, list[int]]:
    """Top-1 credit (ties share it), pairwise accuracy (ties half), indexes that beat or tie."""
    mine = rewards[best]
    others = [i for i in range(len(rewards)) if i != best]
    ties = sum(1 for i in others if rewards[i] == mine)
    top1 = 0.0 if any(rewards[i] > mine for i in others) else 1.0 / (1 + ties)
    pairs = [1.0 if mine > rewards[i] else 0.5 if mine == rewards[i] else 0.0 for i in others]
    return top1, sum(pairs) / len(pairs), [i for i in others if rewards[i] >= mine]


async def evaluate(
    ranker: Ranker,
    items: Sequence[EvalItem],
    before_each: Callable[[], None] | None = None,
    fallbacks: Callable[[], int] | None = None,
) -> Report:
    """Score every item with the ranker, one request at a time, and tally."""
    report = Report(ranker.name)
    start_fallbacks = fallbacks() if fallbacks else 0
    top1_sum = pair_sum = 0.0
    for item in items:
        if before_each is not None:
            before_each()
        prompt, candidates = prompt_of(item), candidates_of(item)
        started = time.perf_counter()
        ranking = await ranker.score(prompt, candidates)
        report.latencies_ms.append((time.perf_counter() - started) * 1000.0)
        top1, pairwise, beaten_by = judge(ranking.rewards, item.best)
        top1_sum += top1
        pair_sum += pairwise
        for i, c in enumerate(item.candidates):
            if i != item.best:
                report.kind_counts[c["kind"]] += 1
        for i in beaten_by:
            report.losses[item.candidates[i]["kind"]] += 1
    report.items = len(items)
    if items:
        report.top1 = top1_sum / len(items)
        report.pairwise = pair_sum / len(items)
    if fallbacks:
        report.fallbacks = fallbacks() - start_fallbacks
    return report
