"""The requests of a run: which endpoint, which prompt, streamed or not; bodies built once."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import orjson

from load.prompts import Prompt
from load.scenario import Scenario
from load.targets import PATHS, Target


@dataclass(frozen=True, slots=True)
class Planned:
    """One request to send."""

    url: str
    body: bytes
    stream: bool
    uid: int | None


def body(scenario: Scenario, prompt: Prompt, stream: bool, direct: bool) -> bytes:
    """An OpenAI request body for one prompt (the `bitgate` block only for gateways)."""
    document: dict[str, Any] = {}
    if scenario.model:
        document["model"] = scenario.model
    if scenario.endpoint == "chat":
        document["messages"] = list(prompt.messages)
    else:
        document["prompt"] = prompt.text
    max_tokens = prompt.max_tokens or scenario.max_tokens
    if max_tokens is not None:
        document["max_tokens"] = max_tokens
    if stream:
        document["stream"] = True
        document["stream_options"] = {"include_usage": True}
    if scenario.bitgate and not direct:
        document["bitgate"] = scenario.bitgate
    return orjson.dumps(document)


class Planner:
    """Seeded choices of prompt and streaming; miners of a pool taken in turn."""

    def __init__(self, scenario: Scenario, target: Target, prompts: list[Prompt]) -> None:
        self.rng = random.Random(scenario.seed)
        self.share = scenario.stream
        self.endpoints = target.endpoints
        path = PATHS[scenario.endpoint]
        self.urls = [endpoint.url + path for endpoint in target.endpoints]
        self.bodies = [
            (body(scenario, p, False, target.direct), body(scenario, p, True, target.direct))
            for p in prompts
        ]
        self.index = 0

    def next(self) -> Planned:
        """The next request of the run."""
        which = self.index % len(self.endpoints)
        self.index += 1
        plain, streamed = self.bodies[self.rng.randrange(len(self.bodies))]
        stream = self.share > 0 and self.rng.random() < self.share
        return Planned(
            self.urls[which], streamed if stream else plain, stream, self.endpoints[which].uid
        )
