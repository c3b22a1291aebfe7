"""`make gpu-check`: a real miner on a real vLLM, end to end, in one run with one summary line.

Needs vLLM (the pinned version) and a model directory; nothing is downloaded. It starts
`bitgate miner serve --launch-vllm` and checks health, `/v1/models`, chat and completions
(streamed and not, signed and unsigned), tool calls, structured output, a context overflow,
40 parallel requests, a connection reused after vLLM's keep-alive, and a clean stop that frees
the GPU's memory. `--vllm-bin` may name a stand-in (the tests run it against the vLLM double).
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson

from miners.keys import new_keypair, write_hotkey_file
from miners.vllm_launch import pick_port
from router.epistula import Signer

SERVED = "gpu-check"
QUESTION = [{"role": "user", "content": "Name three primary colours."}]
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
SCHEMA = {"type": "object", "properties": {"colour": {"type": "string"}}, "required": ["colour"]}
PARALLEL = 40
FREED_MIB = 1024  # GPU memory left in use after the stop, at most, beyond what was before


def gpu_memory_mib() -> int | None:
    """Memory in use on the GPUs (MiB), or None without nvidia-smi."""
    if shutil.which("nvidia-smi") is None:
        return None
    out = subprocess.run(
        ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    numbers = [int(line) for line in out.stdout.split() if line.strip().isdigit()]
    return sum(numbers) if numbers else None


class Check:
    """One miner under test: signs requests, records each check's outcome."""

    def __init__(self, url: str, signer: Signer, hotkey: str) -> None:
        self.url = url
        self.signer = signer
        self.hotkey = hotkey
        self.client = httpx.Client(timeout=120)
        self.results: dict[str, bool] = {}
        self.notes: dict[str, str] = {}

    def post(self, path: str, body: dict[str, Any], signed: bool = True) -> httpx.Response:
        """POST a body, signed for the miner unless told not to."""
        raw = orjson.dumps(body)
        headers = {"Content-Type": "application/json"}
        if signed:
            headers.update(self.signer(raw, self.hotkey))
        return self.client.post(self.url + path, content=raw, headers=headers)

    def run(self, name: str, probe: Callable[[], bool]) -> None:
        """Record whether `probe` held (an exception is a failure, named in the notes)."""
        try:
            self.results[name] = bool(probe())
        except Exception as exc:
            self.results[name] = False
            self.notes[name] = f"{type(exc).__name__}: {str(exc)[:120]}"


def _streamed(reply: httpx.Response) -> bool:
    lines = [line for line in reply.text.splitlines() if line.startswith("data: ")]
    return reply.status_code == 200 and lines[-1] == "data: [DONE]" and len(lines) > 2


def run_checks(check: Check, context: int) -> None:
    """Every check, in order; results land on `check`."""
    chat = {"messages": QUESTION, "max_tokens": 32}
    check.run("health", lambda: check.client.get(check.url + "/health").status_code == 200)
    check.run("livez", lambda: check.client.get(check.url + "/livez").status_code == 200)
    check.run("models", lambda: _models(check) == [(SERVED, context)])
    check.run("chat", lambda: bool(check.post("/v1/chat/completions", chat).json()["choices"]))
    check.run(
        "chat_stream",
        lambda: _streamed(check.post("/v1/chat/completions", {**chat, "stream": True})),
    )
    prompt = {"prompt": "The three primary colours are", "max_tokens": 16}
    check.run("completion", lambda: bool(check.post("/v1/completions", prompt).json()["choices"]))
    check.run(
        "completion_stream",
        lambda: _streamed(check.post("/v1/completions", {**prompt, "stream": True})),
    )
    check.run(
        "unsigned_401",
        lambda: check.post("/v1/chat/completions", chat, signed=False).status_code == 401,
    )
    check.run("tools", lambda: _tools(check, chat))
    check.run("structured", lambda: _structured(check, chat))
    overflow = {**chat, "max_tokens": context}
    check.run(
        "overflow_400",
        lambda: (
            check.post("/v1/chat/completions", overflow).json()["error"]["param"] == "max_tokens"
        ),
    )
    check.run("parallel_40", lambda: _parallel(check, chat))
    time.sleep(6.0)  # past vLLM's 5 s keep-alive: the miner's idle connection must not be used
    check.run("idle_reuse", lambda: check.post("/v1/chat/completions", chat).status_code == 200)


def _models(check: Check) -> list[tuple[str, int | None]]:
    cards = check.client.get(check.url + "/v1/models").json()["data"]
    return [(card["id"], card.get("max_model_len")) for card in cards]


def _tools(check: Check, chat: dict[str, Any]) -> bool:
    """Tools with tool_choice auto are served (a 400 means vLLM runs without tool calling)."""
    body = {**chat, "tools": [TOOL], "max_tokens": 64}
    reply = check.post("/v1/chat/completions", body)
    if reply.status_code != 200:
        check.notes["tools"] = reply.text[:120]
        return False
    calls = reply.json()["choices"][0]["message"].get("tool_calls") or []
    check.notes["tool_calls"] = str(len(calls))
    return True


def _structured(check: Check, chat: dict[str, Any]) -> bool:
    body = {**chat, "max_tokens": 64, "structured_outputs": {"json": SCHEMA}}
    content = check.post("/v1/chat/completions", body).json()["choices"][0]["message"]["content"]
    return "colour" in orjson.loads(content)


def _parallel(check: Check, chat: dict[str, Any]) -> bool:
    started = time.monotonic()
    with ThreadPoolExecutor(PARALLEL) as pool:
        statuses = list(
            pool.map(
                lambda _: check.post("/v1/chat/completions", chat).status_code, range(PARALLEL)
            )
        )
    check.notes["parallel_40_s"] = f"{time.monotonic() - started:.1f}"
    return statuses == [200] * PARALLEL


def start_miner(args: argparse.Namespace, workdir: Path) -> tuple[subprocess.Popen[bytes], Check]:
    """`bitgate miner serve --launch-vllm` on the model; the process and its check."""
    validator, hotkey = new_keypair(), new_keypair()
    write_hotkey_file(workdir / "miner-hotkey", hotkey)
    port = pick_port()
    command = [
        *(sys.executable, "-m", "gateway", "miner", "serve", "--launch-vllm"),
        *("--model", args.model, "--served-model-name", SERVED),
        *("--max-model-len", str(args.max_model_len), "--vllm-bin", args.vllm_bin),
        *("--gpu-memory-utilization", str(args.gpu_memory_utilization), "--port", str(port)),
        *("--hotkey-file", str(workdir / "miner-hotkey"), "--allow-hotkey", validator.ss58_address),
        *("--tool-call-parser", args.tool_call_parser, "--startup-timeout-s", str(args.startup_s)),
    ]
    log = (workdir / "miner.log").open("wb")
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    return proc, Check(f"http://127.0.0.1:{port}", Signer(validator), hotkey.ss58_address)


def wait_healthy(proc: subprocess.Popen[bytes], check: Check, timeout_s: float) -> bool:
    """Poll the miner's `/health` until 200, the process exits, or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if check.client.get(check.url + "/health", timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(1.0)
    return False


def stop(proc: subprocess.Popen[bytes], timeout_s: float = 60.0) -> int | None:
    """SIGTERM the miner (it stops vLLM); its exit status, or None if it had to be killed."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


def main(argv: list[str] | None = None) -> int:
    """Run the check; print one summary line; 0 if every check held."""
    parser = argparse.ArgumentParser(prog="gpu-check", description=__doc__)
    parser.add_argument("--model", required=True, help="a local model directory vLLM can load")
    parser.add_argument("--vllm-bin", default="vllm")
    parser.add_argument("--max-model-len", type=int, default=4096)
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.5)
    parser.add_argument("--tool-call-parser", default="auto")
    parser.add_argument("--startup-s", type=float, default=420.0)
    args = parser.parse_args(argv)
    before = gpu_memory_mib()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        proc, check = start_miner(args, Path(tmp))
        try:
            healthy = wait_healthy(proc, check, args.startup_s + 30)
            startup_s = time.monotonic() - started
            if healthy:
                run_checks(check, args.max_model_len)
            else:
                check.results["startup"] = False
                check.notes["log"] = (
                    (Path(tmp) / "miner.log").read_text()[-300:].replace("\n", " | ")
                )
        finally:
            status = stop(proc)
            check.client.close()
    check.results["clean_stop"] = status == 0
    time.sleep(2.0)
    after = gpu_memory_mib()
    if before is not None and after is not None:
        check.results["gpu_memory_freed"] = after <= before + FREED_MIB
    passed = sum(check.results.values())
    failed = [name for name, ok in check.results.items() if not ok]
    notes = " ".join(f"{k}={v}" for k, v in check.notes.items())
    print(
        f"gpu-check {'PASS' if not failed else 'FAIL'} {passed}/{len(check.results)} "
        f"startup_s={startup_s:.0f} total_s={time.monotonic() - started:.0f} "
        f"gpu_mib_before={before} gpu_mib_after={after} failed={','.join(failed) or '-'} {notes}",
        flush=True,
    )
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
