"""The static embedding ranker: MiniLM's judgement at the cost of a table lookup.

A text's embedding is the mean of its tokens' rows in a table distilled from the full
MiniLM (ranking/static_table.py); the rewards come from the same formula as the full
model's (ranking.embedding.rank_embeddings). Ten replies cost about a millisecond, so it
ranks inline, like the heuristic ranker. On the evaluation set's held-out split it ranks
as well as the full model does (ranking/EVALUATION.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Sequence

import numpy as np

from ranking.base import DISABLED, LOADING, READY, Candidate, Prompt, RankerUnavailable, Ranking
from ranking.embedding import rank_replies, ranking_texts
from ranking.minilm import INSTALL_HINT, ModelMissing, load_error, model_dir, unavailable_reason
from ranking.wordpiece import WordPiece

logger = logging.getLogger(__name__)

# Tokens of a text that count; the rest of a long reply says little more about its topic.
MAX_TOKENS = 512
# Characters read to find them (a token is rarely over 8), so a huge prompt costs no more.
MAX_CHARS = MAX_TOKENS * 8


class StaticModel:
    """The distilled token table and MiniLM's tokenizer; loads (or builds) once."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.table: np.ndarray | None = None
        self.tokenizer: WordPiece | None = None
        self.error: str | None = None
        self.load_seconds: float | None = None

    def state(self) -> str:
        """`ready`, `loading`, `disabled` or `failed: why`."""
        if not self.enabled:
            return DISABLED
        if self.error is not None:
            return f"failed: {self.error}"
        return READY if self.table is not None else LOADING

    def load_sync(self) -> None:
        """Read the table, building it first when this machine has none (about a minute)."""
        from ranking.static_table import build_table

        started = time.perf_counter()
        try:
            source = model_dir()
            table = np.load(build_table(source)).astype(np.float32)
            vocab = json.loads((source / "tokenizer.json").read_text())["model"]["vocab"]
            tokenizer = WordPiece(vocab)
        except Exception as exc:
            self.error = load_error(exc)
            hint = f"; run `{INSTALL_HINT}`" if isinstance(exc, ModelMissing) else ""
            logger.error("static embedding ranker unavailable: %s%s", self.error, hint)
            raise
        self.tokenizer, self.table = tokenizer, table
        self.load_seconds = time.perf_counter() - started
        logger.info("static embedding table ready in %.2fs", self.load_seconds)

    async def load(self) -> None:
        """Load in a worker thread; errors are logged and kept in `state()`."""
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.load_sync)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit embeddings, one row per text (zeros for a text with no tokens)."""
        if self.table is None or self.tokenizer is None:
            reason = unavailable_reason(self.enabled, self.error)
            raise RankerUnavailable("static", reason, self.error or "")
        ids = [self.tokenizer.ids(text[:MAX_CHARS], MAX_TOKENS) for text in texts]
        out = np.zeros((len(texts), self.table.shape[1]), dtype=np.float32)
        rows = [row for row, found in enumerate(ids) if found]
        if rows:
            flat = np.fromiter((i for row in rows for i in ids[row]), dtype=np.int64)
            starts = np.cumsum([0, *(len(ids[row]) for row in rows[:-1])])
            # The mean's scale does not matter: the rows are normalised below.
            out[rows] = np.add.reduceat(self.table[flat], starts, axis=0)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        unit: np.ndarray = out / np.maximum(norms, 1e-12)
        return unit


class StaticRanker:
    """Ranks replies by static-embedding relevance and agreement, inline."""

    name = "static"

    def __init__(self, model: StaticModel) -> None:
        self.model = model

    def state(self) -> str:
        """The table's state."""
        return self.model.state()

    async def score(self, prompt: Prompt, candidates: Sequence[Candidate]) -> Ranking:
        """Reward each candidate in [0, 1]; a lookup and a mean, no thread hop."""
        if not candidates:
            return Ranking([], [])
        heads, texts = ranking_texts(prompt, candidates)
        return rank_replies(self.model.embed(texts), heads, candidates)


async def load_if_built(model: StaticModel) -> bool:
    """Load the table now when this machine has it (a fraction of a second); else False."""
    from ranking.static_table import table_path

    try:
        built = table_path().exists()
    except Exception:  # no weights: serve_static records why
        return False
    if built:
        await model.load()
    return built


async def serve_static(model: StaticModel) -> None:
    """Background task: load (or build) the table once, then hold until cancelled."""
    if model.enabled and model.table is None and model.error is None:
        await model.load()
    await asyncio.Event().wait()
