"""Fitting a request to the vLLM behind a miner: its structured-output fields and its context."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from miners.vllm_version import structured_for_vllm

# A prompt's tokens, estimated from its characters (about four to a token in English); the
# miner has no tokenizer, so this only refuses what cannot fit and leaves vLLM the last word.
CHARS_PER_TOKEN = 4
DEFAULT_MAX_TOKENS = 1024


class DoesNotFit(ValueError):
    """A request this miner's context cannot hold: a 400 naming the parameter."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True, slots=True)
class Context:
    """What the model behind the miner holds, and how much it writes when not told."""

    max_model_len: int | None = None
    default_max_tokens: int = DEFAULT_MAX_TOKENS


def prompt_chars(payload: dict[str, Any]) -> int:
    """The characters of a chat's messages or a completion's prompt."""
    messages = payload.get("messages")
    if isinstance(messages, list):
        return sum(len(str(m.get("content") or "")) for m in messages if isinstance(m, dict))
    prompt = payload.get("prompt")
    if isinstance(prompt, str):
        return len(prompt)
    if isinstance(prompt, list):
        return sum(len(str(part)) for part in prompt)
    return 0


def _asked_tokens(payload: dict[str, Any]) -> tuple[str, int | None]:
    """Which field asks for completion tokens, and how many (None: not asked, or not a number)."""
    for name in ("max_completion_tokens", "max_tokens"):
        value = payload.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            return name, None  # vLLM answers this one
        if isinstance(value, float) and not value.is_integer():
            return name, None
        return name, int(value)
    return "max_tokens", None


def fit(payload: dict[str, Any], context: Context) -> bool:
    """Make the request one the pinned vLLM serves as asked; whether it changed.

    `guided_*` move into `structured_outputs`; a request with no token limit gets the
    miner's default; one whose limit cannot fit the context is clamped, or refused
    (`DoesNotFit`) when its prompt alone fills it.
    """
    changed = structured_for_vllm(payload)
    name, asked = _asked_tokens(payload)
    if asked is None and name in payload:
        return changed
    limit = context.max_model_len
    if limit is None:
        if asked is None:
            payload[name] = context.default_max_tokens
            return True
        return changed
    prompt_tokens = prompt_chars(payload) // CHARS_PER_TOKEN
    room = limit - prompt_tokens
    if room <= 0:
        raise DoesNotFit(
            f"the prompt (about {prompt_tokens} tokens) fills this miner's context of "
            f"{limit} tokens",
            "messages" if "messages" in payload else "prompt",
        )
    if asked is not None and asked >= limit:
        raise DoesNotFit(
            f"{name} is {asked}: this miner's context holds {limit} tokens, prompt included",
            name,
        )
    wanted = asked if asked is not None else context.default_max_tokens
    if wanted <= room and asked is not None:
        return changed
    payload[name] = min(wanted, room)
    return True
