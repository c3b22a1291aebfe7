"""The one vLLM version miners run, what it expects of a request, and its tool-call parsers."""

from __future__ import annotations

import asyncio
import re
from typing import Any

# Pinned everywhere: deploy/compose.miner.yaml, k8s/miner/miner.yaml, miners/GPU.md and the
# launcher's check (tests/unit/deploy/test_miner_deploy.py holds them to this).
VLLM_VERSION = "0.33.0"
VLLM_IMAGE = f"vllm/vllm-openai:v{VLLM_VERSION}"
VERSION_CHECK_TIMEOUT_S = 120.0

# `guided_*` were folded into `structured_outputs` and, from v0.12, are ignored (200, prose).
GUIDED_FIELDS = {
    "guided_json": "json",
    "guided_regex": "regex",
    "guided_choice": "choice",
    "guided_grammar": "grammar",
}

# `--tool-call-parser` by model family, first match wins (vLLM's tool calling docs).
TOOL_CALL_PARSERS: tuple[tuple[str, str], ...] = (
    (r"qwen3.*coder", "qwen3_coder"),
    (r"qwen|qwq|hermes", "hermes"),
    (r"llama-?4", "llama4_pythonic"),
    (r"llama", "llama3_json"),
    (r"mistral|mixtral|ministral|devstral", "mistral"),
    (r"deepseek-?v3", "deepseek_v3"),
    (r"granite", "granite"),
    (r"internlm", "internlm"),
    (r"gpt-oss", "openai"),
)
DEFAULT_TOOL_CALL_PARSER = "hermes"


def tool_call_parser_for(model: str) -> str:
    """The parser vLLM needs for this model's tool calls, from its name."""
    name = model.lower()
    for pattern, parser in TOOL_CALL_PARSERS:
        if re.search(pattern, name):
            return parser
    return DEFAULT_TOOL_CALL_PARSER


def honours_guided(version: str) -> bool:
    """Whether a vLLM of this version still reads the `guided_*` fields."""
    found = re.match(r"v?(\d+)\.(\d+)", version.strip())
    return found is not None and (int(found[1]), int(found[2])) < (0, 12)


def structured_for_vllm(payload: dict[str, Any]) -> bool:
    """Move `guided_*` fields into `structured_outputs`, which the pinned vLLM reads.

    A request that already has `structured_outputs` keeps it; whether anything changed.
    """
    found = {field: payload.pop(field) for field in list(GUIDED_FIELDS) if field in payload}
    if not found:
        return False
    if not isinstance(payload.get("structured_outputs"), dict):
        payload["structured_outputs"] = {GUIDED_FIELDS[k]: v for k, v in found.items()}
    return True


async def installed_version(executable: str, timeout_s: float = VERSION_CHECK_TIMEOUT_S) -> str:
    """What `vllm --version` prints (its last line), or '' if it cannot say."""
    try:
        proc = await asyncio.create_subprocess_exec(
            executable,
            "--version",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
    except OSError:
        return ""
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return ""
    lines = out.decode("utf-8", "replace").strip().splitlines()
    return lines[-1].strip() if lines else ""
