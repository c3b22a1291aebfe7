"""Which of a client's fields reach the miners: an allow-list per pool.

A client may send any field (OpenAI clients tolerate extras, so does the gateway), but only
the fields a pool allows are forwarded; the rest stay at the gateway. The default lists are
the OpenAI chat and completion fields, and the sampling extras vLLM's server understands.
"""

from __future__ import annotations

from router.miner_client import Kind

# Fields of both endpoints: OpenAI's, then vLLM's sampling extras.
SHARED_FIELDS = frozenset(
    {
        "model",
        "stream",
        "stream_options",
        "max_tokens",
        "n",
        "temperature",
        "top_p",
        "stop",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "user",
        "response_format",
        # vLLM
        "top_k",
        "min_p",
        "repetition_penalty",
        "length_penalty",
        "min_tokens",
        "stop_token_ids",
        "include_stop_str_in_output",
        "ignore_eos",
        "skip_special_tokens",
        "spaces_between_special_tokens",
        "truncate_prompt_tokens",
        "prompt_logprobs",
        "guided_json",
        "guided_regex",
        "guided_choice",
        "guided_grammar",
        "structured_outputs",
    }
)
CHAT_FIELDS = SHARED_FIELDS | {
    "messages",
    "max_completion_tokens",
    "top_logprobs",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "reasoning_effort",
    # vLLM
    "add_generation_prompt",
    "continue_final_message",
    "chat_template_kwargs",
    "documents",
}
COMPLETION_FIELDS = SHARED_FIELDS | {"prompt", "suffix", "echo", "best_of"}
# Without these a miner cannot answer at all, whatever a pool's list says.
ESSENTIAL = {
    "chat": frozenset({"messages", "stream"}),
    "completion": frozenset({"prompt", "stream"}),
}


def allowed_fields(kind: Kind, pool_fields: list[str] | None) -> frozenset[str]:
    """The fields forwarded to a pool's miners: the pool's own list, else the default."""
    if pool_fields is not None:
        return frozenset(pool_fields) | ESSENTIAL[kind]
    return CHAT_FIELDS if kind == "chat" else COMPLETION_FIELDS
