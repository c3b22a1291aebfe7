"""Every miner fault under every strategy, over real sockets.

Beside a healthy miner, a faulty one never costs the client the healthy reply; alone, it
gives a clean 502/504 (or, once a stream has begun, an OpenAI error event), never a 500 or
a silently cut stream. Each fault is recorded as what it was (a 429 as back-pressure, not a
failure), and no task, socket or file descriptor outlives the request.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
import yaml

from gateway.app import create_app
from gateway.config import Settings
from router.axon_policy import LOOPBACK
from router.stats import MinerStats
from tests.integration.faults import miners as m
from tests.support import LoopThread, eventually, free_port

pytestmark = pytest.mark.integration

DEADLINE_S = 1.0
HEALTHY_UID, FAULTY_UID = 0, 1
QUESTION = [{"role": "user", "content": "Why is the sky blue?"}]
REPLY_CAP = 1024 * 1024


@dataclass(frozen=True)
class Fault:
    """A fault, and the status its miner's reply must get (to a JSON, and a stream request)."""

    name: str
    json_status: str
    stream_status: str | tuple[str, ...]

    def expected(self, stream: bool) -> tuple[str, ...]:
        """The statuses its reply may have."""
        status = self.stream_status if stream else self.json_status
        return status if isinstance(status, tuple) else (status,)


FAULTS = [
    Fault("refused", "error", "error"),
    Fault("reset_mid_body", "error", ("error", "invalid")),
    Fault("hang_before_headers", "timeout", "timeout"),
    Fault("one_byte_a_tick", "timeout", "timeout"),
    Fault("fifty_megabytes", "invalid", "invalid"),
    Fault("long_sse_line", "invalid", "ok"),
    Fault("invalid_json", "invalid", "invalid"),
    Fault("wrong_shape", "invalid", "invalid"),
    Fault("redirect", "error", "error"),
    Fault("busy", "busy", "busy"),
    Fault("server_error", "error", "error"),
    Fault("no_done", "invalid", "invalid"),
    Fault("endless", "timeout", "timeout"),
]
# (strategy, the client streams): the miners are asked for a stream only in a race stream.
MODES = [("best_of", False), ("best_of", True), ("race", False), ("race", True)]
ALONE_MODES = [("best_of", False), ("race", True)]


def pool_name(fault: Fault, strategy: str, stream: bool, alone: bool) -> str:
    """One pool per case: its scores, and its faulty miner's back-off, are its own."""
    return f"{fault.name}-{strategy}-{'stream' if stream else 'json'}{'-alone' if alone else ''}"


@dataclass
class Matrix:
    """The gateway under test, in this process, and what it needs."""

    base_url: str
    app: Any
    loop: LoopThread
    internal: m.FaultServer  # what a redirect points at; must never be called
    baseline: tuple[int, int] = (0, 0)  # tasks and fds with the gateway idle, warmed up


def _fault_handler(name: str, internal_port: int) -> m.Fault:
    if name == "redirect":
        return m.redirect_to(internal_port)
    handler: m.Fault = getattr(m, name)
    return handler


def _write_pools(workdir: Path, healthy_port: int, fault_ports: dict[str, int]) -> Path:
    pools = []
    for name, port in fault_ports.items():
        faulty = {"uid": FAULTY_UID, "hotkey": f"faulty-{name}", "incentive": 0.5}
        faulty["axon"] = {"ip": "127.0.0.1", "port": port}
        neurons = [faulty]
        if not name.endswith("-alone"):
            healthy = {"uid": HEALTHY_UID, "hotkey": f"healthy-{name}", "incentive": 0.5}
            healthy["axon"] = {"ip": "127.0.0.1", "port": healthy_port}
            neurons.append(healthy)
        path = workdir / f"{name}.json"
        path.write_bytes(orjson.dumps({"name": name, "neurons": neurons}))
        pools.append({"name": name, "metagraph": str(path), "ranker": "heuristic"})
    pools_file = workdir / "pools.yaml"
    pools_file.write_text(yaml.safe_dump({"pools": pools}))
    return pools_file


@pytest.fixture(scope="module")
def matrix(loop_thread: LoopThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Matrix]:
    """Fault miners, one per case, a healthy miner, and a gateway over them all."""
    workdir = tmp_path_factory.mktemp("faults")
    run = loop_thread.run
    healthy = run(m.FaultServer(m.healthy, delay_s=0).start())
    internal = run(m.FaultServer(m.healthy, delay_s=0).start())
    servers = [healthy, internal]
    fault_ports: dict[str, int] = {}
    cases = [(f, s, st, False) for f in FAULTS for s, st in MODES]
    cases += [(f, s, st, True) for f in FAULTS for s, st in ALONE_MODES]
    for fault, strategy, stream, alone in cases:
        name = pool_name(fault, strategy, stream, alone)
        if fault.name == "refused":
            fault_ports[name] = free_port()  # nothing listens there
            continue
        server = run(m.FaultServer(_fault_handler(fault.name, internal.port)).start())
        servers.append(server)
        fault_ports[name] = server.port
    settings = Settings(
        pools=_write_pools(workdir, healthy.port, fault_ports),
        axon_allow=[LOOPBACK],
        embedding_model=False,
        cooldown_after=1000,  # a faulty miner is asked in every case, never cooled down
        max_reply_bytes=REPLY_CAP,
        metagraph_poll_s=60.0,
        routing={"timeout_s": DEADLINE_S, "top_k": 2},
    )
    app = create_app(settings)
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, loop="none", log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    serving = asyncio.run_coroutine_threadsafe(server.serve(), loop_thread.loop)
    assert eventually(lambda: server.started, True, timeout=20.0)
    yield Matrix(f"http://127.0.0.1:{port}", app, loop_thread, internal)
    server.should_exit = True
    serving.result(timeout=20.0)
    for fault_server in servers:
        run(fault_server.stop())


def resources(matrix: Matrix) -> tuple[int, int]:
    """Tasks on the gateway's loop, and file descriptors open in this process."""

    async def tasks() -> int:
        return len(asyncio.all_tasks())

    return matrix.loop.run(tasks()), len(os.listdir("/proc/self/fd"))


def assert_nothing_left(matrix: Matrix) -> None:
    """Once the request and its settling are over, no more tasks or fds than at the start."""

    def back() -> bool:
        tasks, fds = resources(matrix)
        return tasks <= matrix.baseline[0] and fds <= matrix.baseline[1]

    assert eventually(back, True, timeout=10.0), (
        f"left behind: {resources(matrix)} vs {matrix.baseline} (tasks, fds)"
    )


def stats_of(matrix: Matrix, pool: str) -> dict[int, MinerStats]:
    """The gateway's local view of a pool's miners."""

    async def read() -> dict[int, MinerStats]:
        return dict(matrix.app.state.gateway.scoreboard.stats(pool))

    return matrix.loop.run(read())


@pytest.fixture(scope="module")
def api(matrix: Matrix) -> Iterator[httpx.Client]:
    """One HTTP client (one kept-alive connection), warmed up."""
    with httpx.Client(base_url=matrix.base_url, timeout=15.0) as client:
        client.get("/healthz")
        matrix.baseline = resources(matrix)
        yield client


def ask(api: httpx.Client, pool: str, strategy: str, stream: bool) -> tuple[int, list[Any]]:
    """One chat request: the status, and the JSON body or the stream's events in order."""
    body = {"model": pool, "messages": QUESTION, "stream": stream}
    # best_of hears every miner, so the faulty one is judged before the answer: only a race
    # may leave it `pending`.
    body["bitgate"] = (
        {"strategy": strategy, "wait": "all"} if strategy == "best_of" else {"strategy": strategy}
    )
    with api.stream("POST", "/v1/chat/completions", json=body) as resp:
        raw = resp.read()
        if not resp.headers.get("content-type", "").startswith("text/event-stream"):
            return resp.status_code, [orjson.loads(raw)]
    events: list[Any] = []
    for line in raw.split(b"\n"):
        if line.startswith(b"data: "):
            data = line[6:]
            events.append("[DONE]" if data == b"[DONE]" else orjson.loads(data))
    return resp.status_code, events


def stream_text(events: list[Any]) -> str:
    """The text a stream carried."""
    return "".join(
        (choice.get("delta") or {}).get("content") or ""
        for event in events
        if isinstance(event, dict)
        for choice in event.get("choices") or []
    )


def block_of(events: list[Any]) -> dict[str, Any]:
    """The `bitgate` block of a reply or stream."""
    blocks = [e["bitgate"] for e in events if isinstance(e, dict) and "bitgate" in e]
    assert len(blocks) == 1
    block: dict[str, Any] = blocks[0]
    return block


def settled(matrix: Matrix, pool: str, expected_faulty: tuple[str, ...], alone: bool) -> bool:
    """Whether the pool's outcomes are recorded (race settles in the background)."""
    stats = stats_of(matrix, pool)
    healthy_done = alone or (HEALTHY_UID in stats and stats[HEALTHY_UID].requests == 1)
    if expected_faulty == ("busy",):
        return healthy_done
    faulty = stats.get(FAULTY_UID)
    return healthy_done and faulty is not None and faulty.requests == 1


def check_recorded(stats: dict[int, MinerStats], expected: tuple[str, ...]) -> None:
    """The faulty miner's outcome went into its stats as what it was."""
    faulty = stats.get(FAULTY_UID)
    if expected == ("busy",):  # back-pressure: no request counted, no score lost
        assert faulty is None or (faulty.requests, faulty.failures) == (0, 0)
        return
    assert faulty is not None
    if expected == ("ok",):
        assert (faulty.successes, faulty.failures) == (1, 0)
    elif "ok" not in expected:
        assert (faulty.successes, faulty.failures) == (0, 1)


@pytest.mark.parametrize(("strategy", "stream"), MODES, ids=[f"{s}-{st}" for s, st in MODES])
@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_beside_a_healthy_miner(
    matrix: Matrix, api: httpx.Client, fault: Fault, strategy: str, stream: bool
) -> None:
    pool = pool_name(fault, strategy, stream, alone=False)
    expected = fault.expected(stream=strategy == "race" and stream)
    status, events = ask(api, pool, strategy, stream)

    assert status == 200
    if stream:
        assert events[-1] == "[DONE]"
        text = stream_text(events)
    else:
        text = events[0]["choices"][0]["message"]["content"]
    block = block_of(events)
    winner = block["miner"]["uid"]
    assert winner == HEALTHY_UID or "ok" in expected
    if winner == HEALTHY_UID:
        assert text == m.HEALTHY_TEXT
    candidates = {c["uid"]: c for c in block["candidates"]}
    # best_of hears every miner out; only a race may return while the faulty one is pending.
    pending = ("pending",) if strategy == "race" else ()
    assert candidates[FAULTY_UID]["status"] in (*expected, *pending)
    assert "Error" not in str(candidates[FAULTY_UID].get("error"))  # no exception names

    assert eventually(lambda: settled(matrix, pool, expected, False), True, timeout=10.0)
    check_recorded(stats_of(matrix, pool), expected)
    assert_nothing_left(matrix)
    assert matrix.internal.requests == 0  # no redirect was ever followed

    if fault.name == "busy":  # until its Retry-After, the miner is not asked again
        status, events = ask(api, pool, strategy, stream)
        assert status == 200
        assert [c["uid"] for c in block_of(events)["candidates"]] == [HEALTHY_UID]


@pytest.mark.parametrize(
    ("strategy", "stream"), ALONE_MODES, ids=[f"{s}-{st}" for s, st in ALONE_MODES]
)
@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_alone(
    matrix: Matrix, api: httpx.Client, fault: Fault, strategy: str, stream: bool
) -> None:
    pool = pool_name(fault, strategy, stream, alone=True)
    expected = fault.expected(stream=strategy == "race" and stream)
    status, events = ask(api, pool, strategy, stream)

    if expected == ("ok",):
        assert (status, events[-1]) == (200, "[DONE]")
    elif status == 200:
        # The stream had begun when its only miner failed: it ends with an OpenAI error.
        assert stream
        last = events[-1]
        assert isinstance(last, dict) and set(last["error"]) >= {"message", "type", "code"}
        assert last["bitgate"]["miner"]["uid"] == FAULTY_UID
    else:
        # A busy pool is full, not failed: 503 with Retry-After once the queue gave up.
        wanted = {("timeout",): 504, ("busy",): 503}.get(expected, 502)
        assert status == wanted
        assert set(events[0]["error"]) == {"message", "type", "param", "code"}

    assert eventually(lambda: settled(matrix, pool, expected, True), True, timeout=10.0)
    check_recorded(stats_of(matrix, pool), expected)
    assert_nothing_left(matrix)
