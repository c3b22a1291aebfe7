"""A gateway with a hotkey signs every miner request (Epistula v2); verifying miners serve it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import openai
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from bittensor_wallet import Keypair

from miners.epistula_verify import Verifier
from miners.keys import new_keypair, write_hotkey_file
from miners.server import MinerConfig, MinerServer, start_miner
from miners.signers import SignerPolicy
from miners.sim.pool import SimPool
from router.epistula import Signer
from router.metagraph import Axon, Metagraph, Neuron
from router.miner_client import MinerClient, open_session
from tests.support import GatewayProcess, LoopThread, free_port, profiles

pytestmark = pytest.mark.integration

QUESTION = [{"role": "user", "content": "Why is the sky blue?"}]
POOL = "sn1"
CHAT_BODY = orjson.dumps({"model": POOL, "messages": QUESTION})


@pytest.fixture(scope="module")
def validator() -> Keypair:
    """The gateway's hotkey."""
    return new_keypair()


@pytest.fixture
def hotkey_file(tmp_path: Path, validator: Keypair) -> Path:
    """The gateway's hotkey as a btcli hotkey file."""
    path = tmp_path / "validator-hotkey"
    write_hotkey_file(path, validator)
    return path


@pytest.fixture
def verifying_pool(
    sim_pool: Callable[..., tuple[SimPool, Path]], validator: Keypair
) -> tuple[SimPool, Path]:
    """Three good sim miners that take only requests the validator signed for them."""
    pool, path = sim_pool(profiles("good", "good", "partial"), name=POOL)
    pool.require_epistula(SignerPolicy([validator.ss58_address]), name=POOL)
    return pool, path


@pytest.fixture
def gateway(verifying_pool: tuple[SimPool, Path], hotkey_file: Path) -> Iterator[GatewayProcess]:
    """`bitgate serve` signing with the validator's hotkey file."""
    _, path = verifying_pool
    process = GatewayProcess(
        "--metagraph", str(path), env={"BITGATE_HOTKEY_FILE": str(hotkey_file)}
    )
    try:
        yield process
    finally:
        process.stop()


def api(gateway: GatewayProcess) -> openai.OpenAI:
    """An OpenAI client for the gateway."""
    return openai.OpenAI(base_url=gateway.base_url + "/v1", api_key="-", max_retries=0)


def test_signed_gateway_is_served_by_verifying_miners(
    gateway: GatewayProcess, verifying_pool: tuple[SimPool, Path]
) -> None:
    pool, _ = verifying_pool
    with api(gateway) as client:
        every = {"bitgate": {"wait": "all"}}  # every miner heard: each one verified the signature
        reply = client.chat.completions.create(model=POOL, messages=QUESTION, extra_body=every)
        chunks = list(client.chat.completions.create(model=POOL, messages=QUESTION, stream=True))
        raced = list(
            client.chat.completions.create(
                model=POOL,
                messages=QUESTION,
                stream=True,
                extra_body={"bitgate": {"strategy": "race"}},
            )
        )
        completion = client.completions.create(model=POOL, prompt="Why is the sky blue?")
    block = (reply.model_extra or {})["bitgate"]
    assert {c["status"] for c in block["candidates"]} == {"ok"}
    assert "scatter" in (reply.choices[0].message.content or "").lower()
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "scatter" in text.lower()
    assert "".join(c.choices[0].delta.content or "" for c in raced if c.choices).strip()
    assert completion.choices[0].text.strip()
    assert min(pool.request_counts()) >= 3


def test_gateway_logs_its_address_but_never_its_secret(
    verifying_pool: tuple[SimPool, Path], hotkey_file: Path, validator: Keypair
) -> None:
    _, path = verifying_pool
    secret = orjson.loads(hotkey_file.read_bytes())
    process = GatewayProcess(
        "--metagraph", str(path), env={"BITGATE_HOTKEY_FILE": str(hotkey_file)}
    )
    with api(process) as client:
        client.chat.completions.create(model=POOL, messages=QUESTION)
    printed = process.stop()
    assert validator.ss58_address in printed
    for field in ("secretPhrase", "secretSeed", "privateKey"):
        assert secret[field] not in printed


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "stranger"])
def test_miners_refuse_a_gateway_they_do_not_allow(
    verifying_pool: tuple[SimPool, Path], signed: bool
) -> None:
    pool, path = verifying_pool
    env = {"BITGATE_HOTKEY_MNEMONIC": Keypair.generate_mnemonic()} if signed else {}
    process = GatewayProcess("--metagraph", str(path), env=env)
    try:
        with api(process) as client, pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(model=POOL, messages=QUESTION)
    finally:
        process.stop()
    assert caught.value.status_code == 502
    assert pool.request_counts() == [0, 0, 0]


def test_direct_requests_must_be_signed_untampered_and_fresh(
    verifying_pool: tuple[SimPool, Path], validator: Keypair
) -> None:
    pool, _ = verifying_pool
    neuron = pool.metagraph(POOL).neurons[0]
    url = neuron.base_url + "/v1/chat/completions"
    headers = Signer(validator)(CHAT_BODY, neuron.hotkey)
    unsigned = httpx.post(url, content=CHAT_BODY)
    tampered = httpx.post(url, content=CHAT_BODY.replace(b"blue", b"gray"), headers=headers)
    accepted = httpx.post(url, content=CHAT_BODY, headers=headers)
    replayed = httpx.post(url, content=CHAT_BODY, headers=headers)
    assert [r.status_code for r in (unsigned, tampered, accepted, replayed)] == [401, 401, 200, 401]
    codes = [r.json()["error"]["code"] for r in (unsigned, tampered, replayed)]
    assert codes == ["epistula_missing_header", "epistula_bad_signature", "epistula_replay"]
    assert "Epistula" in unsigned.json()["error"]["message"]


@pytest.fixture
def real_miners(
    sim_pool: Callable[..., tuple[SimPool, Path]],
    loop_thread: LoopThread,
    validator: Keypair,
    tmp_path: Path,
) -> Iterator[Path]:
    """Two `miner serve` servers with real hotkeys in front of sim upstreams; their metagraph."""
    upstreams, _ = sim_pool(profiles("good", "good"))
    runners: list[web.AppRunner] = []
    neurons = []
    try:
        for uid, upstream in enumerate(upstreams.urls):
            hotkey = new_keypair().ss58_address
            verifier = Verifier(hotkey, SignerPolicy([validator.ss58_address]))
            server = MinerServer(MinerConfig(upstream=upstream, model="sim"), verifier)
            port = free_port()
            runners.append(loop_thread.run(start_miner(server, "127.0.0.1", port)))
            axon = Axon(ip="127.0.0.1", port=port)
            neurons.append(Neuron(uid=uid, hotkey=hotkey, coldkey=hotkey, axon=axon, incentive=0.5))
        path = tmp_path / "real.json"
        path.write_text(Metagraph(netuid=1, name="real", neurons=neurons).model_dump_json())
        yield path
    finally:
        for runner in runners:
            loop_thread.run(runner.cleanup())


def test_gateway_is_served_by_real_miner_servers(real_miners: Path, hotkey_file: Path) -> None:
    process = GatewayProcess(
        "--metagraph", str(real_miners), env={"BITGATE_HOTKEY_FILE": str(hotkey_file)}
    )
    try:
        with api(process) as client:
            reply = client.chat.completions.create(model="real", messages=QUESTION)
            chunks = list(
                client.chat.completions.create(model="real", messages=QUESTION, stream=True)
            )
    finally:
        process.stop()
    block = (reply.model_extra or {})["bitgate"]
    assert [c["status"] for c in block["candidates"]] == ["ok", "ok"]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip()


async def test_miner_client_signs_each_request_for_its_miner(validator: Keypair) -> None:
    seen: list[tuple[dict[str, str], bytes]] = []

    async def record(request: web.Request) -> web.StreamResponse:
        seen.append((dict(request.headers), await request.read()))
        if request.headers.get("Accept") == "text/event-stream":
            return web.Response(body=b"data: [DONE]\n\n", content_type="text/event-stream")
        reply = {"choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}]}
        return web.json_response(reply)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", record)
    hotkeys = [new_keypair().ss58_address for _ in range(2)]
    async with TestServer(app) as server:
        assert server.port is not None
        neurons = [
            Neuron(uid=i, hotkey=hk, coldkey=hk, axon=Axon(ip="127.0.0.1", port=server.port))
            for i, hk in enumerate(hotkeys)
        ]
        session = open_session(10)
        try:
            plain = MinerClient(session, 4096)
            signing = MinerClient(session, 4096, Signer(validator))
            deadline = asyncio.get_running_loop().time() + 10
            await plain.complete(neurons[0], "chat", CHAT_BODY, deadline)
            for neuron in neurons:
                assert (await signing.complete(neuron, "chat", CHAT_BODY, deadline)).ok
            assert (await signing.stream(neurons[1], "chat", CHAT_BODY, deadline)).ok
        finally:
            await session.close()
    assert not any(h.lower().startswith("epistula") for h in seen[0][0])
    for (headers, body), hotkey in zip(seen[1:], [*hotkeys, hotkeys[1]], strict=True):
        verifier = Verifier(hotkey, SignerPolicy([validator.ss58_address]))
        assert verifier.verify(headers, body) == validator.ss58_address
        assert headers["Epistula-Signed-For"] == hotkey
