"""A reward model served by vLLM (or any server with the same API), asked over HTTP.

Two of vLLM's documented APIs are supported, chosen with `api`:

- `pooling` (reward models, e.g. `vllm serve <reward-model>` with the pooling runner):
  one `POST {url}/pooling` per candidate, concurrently, with
  `{"model": M, "messages": [...conversation, {"role": "assistant", "content": reply}]}`
  so the server applies the model's chat template. The answer is
  `{"data": [{"index": 0, "data": <floats>}]}`; the reward is the last number of `data`
  (flattened: a scalar head gives one number, a per-token head gives the last token's),
  squashed to [0, 1] with the logistic function.
- `score` (cross-encoders / rerankers served with the score task): one `POST {url}/score` with
  `{"model": M, "text_1": <last user turn>, "text_2": [replies]}`, answered by
  `{"data": [{"index": i, "score": s}, ...]}`; scores are used as given, clipped to [0, 1].

Timeouts, connection errors, HTTP errors and answers of the wrong shape raise
`RankerUnavailable`, so a fallback chain or a blend moves on without this ranker.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import Any, Literal

import aiohttp

from ranking.base import Candidate, Prompt, RankerUnavailable, Ranking

RemoteApi = Literal["pooling", "score"]


async def post_json(
    session: aiohttp.ClientSession,
    url: str,
    payload: dict[str, Any],
    timeout_s: float,
    ranker: str,
    headers: dict[str, str] | None = None,
) -> Any:
    """POST JSON and return the decoded answer, or raise RankerUnavailable saying why."""
    try:
        async with asyncio.timeout(timeout_s):
            async with session.post(url, json=payload, headers=headers) as resp:
                if resp.status >= 500:
                    raise RankerUnavailable(ranker, "http_5xx", f"{resp.status} from {url}")
                if resp.status >= 400:
                    raise RankerUnavailable(ranker, "http_4xx", f"{resp.status} from {url}")
                try:
                    return await resp.json(content_type=None)
                except ValueError as exc:
                    raise RankerUnavailable(ranker, "bad_shape", "not JSON") from exc
    except TimeoutError as exc:
        raise RankerUnavailable(ranker, "timeout", f"no answer in {timeout_s}s") from exc
    except aiohttp.ClientError as exc:
        raise RankerUnavailable(ranker, "unreachable", str(exc)) from exc


def _last_number(value: Any) -> float | None:
    """The last number of a (possibly nested) list, or the number itself."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list) and value:
        return _last_number(value[-1])
    return None


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, x))))


class HttpRanker:
    """What rankers behind an HTTP server share: its URL, the model, one session, a deadline."""

    def __init__(
        self, name: str, url: str, model: str, session: aiohttp.ClientSession, timeout_s: float
    ) -> None:
        self.name = name
        self.url = url.rstrip("/")
        self.model = model
        self.session = session
        self.timeout_s = timeout_s

    async def post(
        self, path: str, payload: dict[str, Any], headers: dict[str, str] | None = None
    ) -> Any:
        """POST JSON to `{url}{path}`; the decoded answer, or RankerUnavailable saying why."""
        url = f"{self.url}{path}"
        return await post_json(self.session, url, payload, self.timeout_s, self.name, headers)


class RemoteRewardRanker(HttpRanker):
    """Asks a vLLM reward model (`/pooling`) or scorer (`/score`) to reward each reply."""

    def __init__(
        self,
        name: str,
        url: str,
        model: str,
        session: aiohttp.ClientSession,
        api: RemoteApi = "pooling",
        timeout_s: float = 5.0,
    ) -> None:
        super().__init__(name, url, model, session, timeout_s)
        self.api = api

    async def score(self, prompt: Prompt, candidates: Sequence[Candidate]) -> Ranking:
        """Rewards in [0, 1] from the remote model, in candidate order."""
        if not candidates:
            return Ranking([], [])
        if self.api == "score":
            rewards = await self._score_api(prompt, candidates)
        else:
            rewards = list(await asyncio.gather(*(self._pool(prompt, c) for c in candidates)))
        return Ranking(rewards, [[] for _ in candidates])

    async def _pool(self, prompt: Prompt, candidate: Candidate) -> float:
        """One conversation with the candidate's reply, through `/pooling`."""
        history = [dict(m) for m in prompt.messages] or [
            {"role": "user", "content": prompt.last_user or prompt.text}
        ]
        payload = {
            "model": self.model,
            "messages": [*history, {"role": "assistant", "content": candidate.text}],
        }
        body = await self.post("/pooling", payload)
        try:
            value = _last_number(body["data"][0]["data"])
        except (KeyError, IndexError, TypeError):
            value = None
        if value is None or not math.isfinite(value):
            raise RankerUnavailable(self.name, "bad_shape", "pooling answer without data")
        return _sigmoid(value)

    async def _score_api(self, prompt: Prompt, candidates: Sequence[Candidate]) -> list[float]:
        """Every reply against the last user turn, in one `/score` call."""
        payload = {
            "model": self.model,
            "text_1": prompt.last_user or prompt.text,
            "text_2": [c.text for c in candidates],
        }
        body = await self.post("/score", payload)
        scores: dict[int, float] = {}
        try:
            for row in body["data"]:
                scores[int(row["index"])] = float(row["score"])
        except (KeyError, TypeError, ValueError) as exc:
            raise RankerUnavailable(self.name, "bad_shape", "score answer malformed") from exc
        if sorted(scores) != list(range(len(candidates))):
            raise RankerUnavailable(self.name, "bad_shape", "scores do not match the replies")
        return [min(1.0, max(0.0, scores[i])) for i in range(len(candidates))]
