"""The embedding ranker: relevance, agreement and prompt-copy signals from sentence embeddings.

Each candidate's reward, in [0, 1]:

    reward = on_topic * agreement * completeness

- on_topic: the cosine similarity of the reply with the conversation's query (the last user
  turn, preceded by the turn or two before it when there are any), divided by
  ON_TOPIC_COSINE and capped at 1. Relevance works as a gate: any on-topic reply passes in
  full, off-topic ones (a cosine near 0) are scaled towards 0. Beyond "on topic" a higher
  cosine says little about quality; replies that restate the question score highest of all.
- agreement (self-consistency): the reply's mean cosine similarity with the other replies,
  each witness weighted by its own on_topic, and replies that copy the prompt not counted,
  so the reply that the other on-topic replies agree with scores highest.
- completeness: 0.5 + 0.5 * min(1, words / COMPLETE_WORDS). Embeddings cannot tell a full
  answer from a vague or terse one that points the same way (a vague reply sits at the
  centre of the others and agrees with all of them), so replies under COMPLETE_WORDS words
  lose up to half their reward. COMPLETE_WORDS is the heuristic ranker's FULL_ANSWER_WORDS.
- a reply whose embedding nearly equals the last user turn's (cosine >= DUPLICATE_COSINE) is
  a copy of the prompt: its reward is multiplied by DUPLICATE_FACTOR, reason
  `prompt_duplicate`.

The first version added 0.6 relevance and 0.4 agreement (relevance-squared witnesses); on the
evaluation set's dev split that let wrong answers, which restate the question, win too
often, so the gate above replaced it; completeness was added after a vague sim-miner reply
won a demo question. See ranking/EVALUATION.md for the dev and held-out figures of each step.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ranking.base import (
    DISABLED,
    LOADING,
    READY,
    Candidate,
    Prompt,
    RankerUnavailable,
    Ranking,
    message_text,
)
from ranking.batcher import MicroBatcher
from ranking.heuristic import FULL_ANSWER_WORDS
from ranking.minilm import INSTALL_HINT, ModelMissing, load_error, unavailable_reason

logger = logging.getLogger(__name__)
_WORD = re.compile(r"\w+")

ON_TOPIC_COSINE = 0.5
COMPLETE_WORDS = FULL_ANSWER_WORDS
DUPLICATE_COSINE = 0.95
DUPLICATE_FACTOR = 0.2
NEUTRAL = 0.5
CONTEXT_TURNS = 2  # earlier turns prepended to the last user turn
CONTEXT_CHARS = 300  # of each earlier turn


def query_text(prompt: Prompt) -> str:
    """What replies should be relevant to: the last user turn, after a little context."""
    turns = [
        message_text(m.get("content"))
        for m in prompt.messages
        if m.get("role") in {"user", "assistant"}
    ]
    if len(turns) <= 1:
        return prompt.last_user or prompt.text
    context = [t[:CONTEXT_CHARS] for t in turns[-1 - CONTEXT_TURNS : -1]]
    return "\n".join([*context, prompt.last_user])


class EmbeddingModel:
    """all-MiniLM-L6-v2 loaded once, in the background; serves embeddings through a batcher."""

    def __init__(
        self, quantize: bool = True, threads: int | None = None, enabled: bool = True
    ) -> None:
        self.quantize = quantize
        self.enabled = enabled
        self.threads = threads
        self.batcher: MicroBatcher | None = None
        self.error: str | None = None
        self.load_seconds: float | None = None
        self.encoder: Any = None

    @property
    def ready(self) -> bool:
        """Whether embeddings can be served now."""
        return self.batcher is not None

    def state(self) -> str:
        """`ready`, `loading`, `disabled` or `failed: why`."""
        if not self.enabled:
            return DISABLED
        if self.error is not None:
            return f"failed: {self.error}"
        return READY if self.ready else LOADING

    def load_sync(self) -> None:
        """Build or read the ONNX model and open a session (seconds; blocks the caller)."""
        from ranking.encoder import Encoder

        started = time.perf_counter()
        try:
            self.encoder = Encoder(quantize=self.quantize, threads=self.threads)
        except Exception as exc:
            self.error = load_error(exc)
            hint = f"; run `{INSTALL_HINT}`" if isinstance(exc, ModelMissing) else ""
            logger.error("embedding model failed to load: %s%s", self.error, hint)
            raise
        self.batcher = MicroBatcher(self.encoder.encode)
        self.load_seconds = time.perf_counter() - started
        logger.info("embedding model ready in %.1fs (%s)", self.load_seconds, self.encoder.path)

    async def load(self) -> None:
        """Load in a worker thread; the loop keeps serving meanwhile. Errors are logged, kept."""
        with contextlib.suppress(Exception):  # logged in load_sync; rankers report `failed`
            await asyncio.to_thread(self.load_sync)

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit embeddings, or RankerUnavailable while loading or after a failed load."""
        if self.batcher is None:
            reason = unavailable_reason(self.enabled, self.error)
            raise RankerUnavailable("embedding", reason, self.error or "")
        return await self.batcher.embed(texts)

    async def aclose(self) -> None:
        """Stop the batcher's worker and its thread."""
        if self.batcher is not None:
            await self.batcher.aclose()

    async def aclose_worker(self) -> None:
        """Stop the batcher's worker task only (the model stays usable from another loop)."""
        if self.batcher is not None:
            await self.batcher.stop_worker()


class EmbeddingRanker:
    """Ranks replies by embedding relevance and agreement; needs a loaded EmbeddingModel."""

    name = "embedding"

    def __init__(self, model: EmbeddingModel) -> None:
        self.model = model

    def state(self) -> str:
        """The model's state."""
        return self.model.state()

    async def score(self, prompt: Prompt, candidates: Sequence[Candidate]) -> Ranking:
        """Reward each candidate in [0, 1]; the model runs in the batcher's thread."""
        if not candidates:
            return Ranking([], [])
        heads, texts = ranking_texts(prompt, candidates)
        return rank_replies(await self.model.embed(texts), heads, candidates)


def ranking_texts(prompt: Prompt, candidates: Sequence[Candidate]) -> tuple[int, list[str]]:
    """The texts to embed: the query, the last user turn when it differs, then each reply."""
    query = query_text(prompt)
    last = prompt.last_user or prompt.text
    heads = [query] if query == last else [query, last]
    return len(heads), [*heads, *(c.text for c in candidates)]


def rank_replies(vectors: np.ndarray, heads: int, candidates: Sequence[Candidate]) -> Ranking:
    """Rewards from the unit vectors of `ranking_texts`, in the same order."""
    words = [len(_WORD.findall(c.text)) for c in candidates]
    return rank_embeddings(vectors[0], vectors[heads - 1], vectors[heads:], words)


def rank_embeddings(
    query: np.ndarray, last_user: np.ndarray, replies: np.ndarray, words: Sequence[int]
) -> Ranking:
    """Rewards and reasons from unit vectors of the query, last user turn and replies."""
    on_topic = np.minimum(1.0, np.clip(replies @ query, 0.0, 1.0) / ON_TOPIC_COSINE)
    similarity = replies @ replies.T
    copies = (replies @ last_user) >= DUPLICATE_COSINE
    witness = np.where(copies, 0.0, on_topic)
    # Each reply's witness-weighted mean similarity with the others (itself left out).
    weight = witness.sum() - witness
    agreed = similarity @ witness - np.diag(similarity) * witness
    agreement = np.where(weight > 1e-9, agreed / np.maximum(weight, 1e-9), NEUTRAL)
    completeness = 0.5 + 0.5 * np.minimum(1.0, np.asarray(words, dtype=np.float64) / COMPLETE_WORDS)
    reward = on_topic * np.maximum(agreement, 0.0) * completeness
    reward = np.where(copies, reward * DUPLICATE_FACTOR, reward)
    rewards = np.clip(reward, 0.0, 1.0).tolist()
    reasons = [["prompt_duplicate"] if copy else [] for copy in copies.tolist()]
    return Ranking(rewards, reasons)


async def serve_embeddings(model: EmbeddingModel) -> None:
    """Background task: load the model, hold it until cancelled, then stop its worker thread."""
    try:
        await model.load()
        await asyncio.Event().wait()
    finally:
        await model.aclose()
