"""OpenAI request models, the `bitgate` request block, and the error body."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Strategy = Literal["best_of", "race"]


class OpenAIModel(BaseModel):
    """Base of the OpenAI models: unknown fields are kept and passed on to miners."""

    model_config = ConfigDict(extra="allow")


class BitgateOptions(BaseModel):
    """Per-request routing options, sent in the body as `bitgate` (`extra_body` in clients)."""

    model_config = ConfigDict(extra="forbid")

    top_k: int | None = Field(default=None, ge=1, le=1024)
    sample: int | None = Field(default=None, ge=1, le=1024)
    strategy: Strategy | None = None
    timeout_s: float | None = Field(default=None, gt=0, le=600)
    ranker: str | None = Field(default=None, min_length=1)
    explore: float | None = Field(default=None, ge=0, le=1)


class ChatMessage(OpenAIModel):
    """One turn of a conversation."""

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None


class SamplingFields(OpenAIModel):
    """Fields shared by chat and completion requests that the gateway checks itself."""

    model: str = Field(min_length=1)
    stream: bool | None = False
    n: Literal[1] | None = 1
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    bitgate: BitgateOptions | None = None


class ChatCompletionRequest(SamplingFields):
    """`POST /v1/chat/completions`."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)


class CompletionRequest(SamplingFields):
    """`POST /v1/completions`."""

    prompt: str | list[str] = Field(min_length=1)

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, prompt: str | list[str]) -> str | list[str]:
        if isinstance(prompt, list) and len(prompt) != 1:
            raise ValueError("the gateway ranks one prompt per request; send a string")
        return prompt


class ErrorDetail(BaseModel):
    """The fields of an OpenAI error."""

    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    """Every error the gateway returns: `{"error": {message, type, param, code}}`."""

    error: ErrorDetail
