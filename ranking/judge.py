"""An LLM judge: one chat completion grades every candidate; robust to how it answers.

The judge is any OpenAI-compatible server (`POST {url}/v1/chat/completions`). It is shown
the conversation and the numbered replies and asked for JSON `{"scores": [s1, ..., sn]}`
with each score from 0 to 10. The answer is parsed leniently: the first JSON object with a
`scores` list of the right length, else a JSON list, else lines like `3: 7` or
`Reply 3 - 7/10`. Anything else, and every transport failure, raises `RankerUnavailable`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import aiohttp

from ranking.base import Candidate, Prompt, RankerUnavailable, Ranking
from ranking.remote import HttpRanker

MAX_REPLY_CHARS = 2000
MAX_SCORE = 10.0
SYSTEM = (
    "You are a strict grader of assistant replies. Given a conversation and several candidate "
    "replies to its last user message, grade each reply from 0 (useless, wrong, empty, "
    "off-topic, refusing or cut off) to 10 (correct, complete, relevant and clear). Answer "
    'with JSON only, in the form {"scores": [s1, s2, ...]}, one score per reply, in order.'
)
_LINE = re.compile(
    r"^\s*(?:reply|candidate|answer|response)?\s*#?\[?(\d+)\]?\s*[:.)\-=]\s*"
    r"(?:score\s*[:=]?\s*)?(\d+(?:\.\d+)?)",
    re.IGNORECASE | re.MULTILINE,
)


def judge_messages(prompt: Prompt, candidates: Sequence[Candidate]) -> list[dict[str, str]]:
    """The grading request: instructions, the conversation, and the numbered replies."""
    conversation = (
        "\n".join(f"{m.get('role', 'user')}: {m.get('content', '')}" for m in prompt.messages)
        or f"user: {prompt.last_user or prompt.text}"
    )
    replies = "\n\n".join(
        f"[{i + 1}]\n{c.text[:MAX_REPLY_CHARS] or '(empty)'}" for i, c in enumerate(candidates)
    )
    user = (
        f"Conversation:\n{conversation}\n\nCandidate replies:\n{replies}\n\n"
        f"Grade all {len(candidates)}."
    )
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def _numbers(values: Any, n: int) -> list[float] | None:
    if not isinstance(values, list) or len(values) != n:
        return None
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float | str):
            return None
        try:
            out.append(float(v))
        except ValueError:
            return None
    return out


def parse_scores(text: str, n: int) -> list[float] | None:
    """Scores for n replies from the judge's text, or None if they cannot be found."""
    for match in re.finditer(r"\{.*?\}|\{.*\}", text, re.DOTALL):
        try:
            obj = json.loads(match.group(0))
        except ValueError:
            continue
        if isinstance(obj, dict):
            found = _numbers(obj.get("scores"), n)
            if found is not None:
                return found
    for match in re.finditer(r"\[[^\[\]]*\]", text):
        try:
            found = _numbers(json.loads(match.group(0)), n)
        except ValueError:
            continue
        if found is not None:
            return found
    by_index = {int(i): float(s) for i, s in _LINE.findall(text)}
    if sorted(by_index) == list(range(1, n + 1)):
        return [by_index[i] for i in range(1, n + 1)]
    return None


class JudgeRanker(HttpRanker):
    """Asks an OpenAI-compatible model to grade all candidates in one call."""

    def __init__(
        self,
        name: str,
        url: str,
        model: str,
        session: aiohttp.ClientSession,
        api_key: str | None = None,
        timeout_s: float = 20.0,
    ) -> None:
        super().__init__(name, url, model, session, timeout_s)
        self.api_key = api_key

    async def score(self, prompt: Prompt, candidates: Sequence[Candidate]) -> Ranking:
        """Rewards = grades / 10, in candidate order."""
        if not candidates:
            return Ranking([], [])
        payload = {
            "model": self.model,
            "messages": judge_messages(prompt, candidates),
            "temperature": 0,
            "max_tokens": 32 + 8 * len(candidates),
        }
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else None
        path = "/chat/completions" if self.url.endswith("/v1") else "/v1/chat/completions"
        body = await self.post(path, payload, headers)
        try:
            text = body["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError) as exc:
            raise RankerUnavailable(self.name, "bad_shape", "no choices[0].message") from exc
        scores = parse_scores(str(text), len(candidates))
        if scores is None:
            raise RankerUnavailable(self.name, "bad_shape", "no grades in the judge's answer")
        rewards = [min(1.0, max(0.0, s / MAX_SCORE)) for s in scores]
        return Ranking(rewards, [[] for _ in candidates])
