"""`bitgate demo` as a newcomer runs it: the usage, then one line per request."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile

import httpx
import pytest

from tests.support import ROOT, free_port, wait_http

pytestmark = pytest.mark.integration

CHAT = {"model": "sim", "messages": [{"role": "user", "content": "Why is the sky blue?"}]}


def demo_output(*flags: str, requests: int = 2) -> str:
    """Run the demo with `flags`, send `requests` chat requests, stop it; what it printed."""
    port = free_port()
    cmd = [sys.executable, "-m", "gateway", "demo", "--port", str(port), "--miners", "3"]
    with tempfile.TemporaryFile() as output:
        proc = subprocess.Popen([*cmd, *flags], cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)
        try:
            wait_http(f"http://127.0.0.1:{port}/healthz", timeout=60, proc=proc)
            for _ in range(requests):
                reply = httpx.post(
                    f"http://127.0.0.1:{port}/v1/chat/completions", json=CHAT, timeout=30
                )
                assert reply.status_code == 200, reply.text
        finally:
            proc.terminate()
            proc.wait(20)
        output.seek(0)
        return output.read().decode(errors="replace")


def request_lines(printed: str) -> list[dict[str, object]]:
    """The per-request JSON lines of the demo's output."""
    return [json.loads(line) for line in printed.splitlines() if line.startswith('{"request_id"')]


def test_the_demo_logs_one_line_per_request_by_default() -> None:
    printed = demo_output()
    assert "responses.create" in printed  # the usage shows the Responses API too
    lines = request_lines(printed)
    assert len(lines) == 2, printed
    assert all(line["path"] == "/v1/chat/completions" and line["status"] == 200 for line in lines)


def test_quiet_turns_the_request_lines_off() -> None:
    assert request_lines(demo_output("--quiet", requests=1)) == []


def test_a_port_in_use_is_named_and_nothing_starts() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cmd = [sys.executable, "-m", "gateway", "demo", "--port", str(port), "--miners", "3"]
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"port {port} is in use" in done.stderr
