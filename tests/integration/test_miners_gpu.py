"""A real miner on a GPU: `vllm serve` launched for it, signed requests through it.

Runs only where vLLM is installed, a GPU is present and `BITGATE_TEST_VLLM_MODEL` names a
model vLLM can load without downloading (a local path or a cached hub id).
"""

from __future__ import annotations

import importlib.util
import os
import shutil

import aiohttp
import orjson
import pytest

from miners.epistula_verify import Verifier
from miners.keys import new_keypair
from miners.server import MinerConfig, MinerServer, start_miner
from miners.signers import SignerPolicy
from miners.vllm_launch import VllmOptions, VllmProcess
from router.epistula import Signer
from tests.support import free_port

MODEL = os.environ.get("BITGATE_TEST_VLLM_MODEL", "")
VLLM = shutil.which("vllm")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.integration,
    pytest.mark.skipif(
        importlib.util.find_spec("vllm") is None or VLLM is None, reason="vLLM is not installed"
    ),
    pytest.mark.skipif(shutil.which("nvidia-smi") is None, reason="no GPU"),
    pytest.mark.skipif(not MODEL, reason="BITGATE_TEST_VLLM_MODEL is not set"),
    pytest.mark.timeout(1200),
]


async def test_signed_requests_through_a_launched_vllm() -> None:
    assert VLLM is not None
    validator, hotkey = new_keypair(), new_keypair()
    options = VllmOptions(
        model=MODEL,
        port=free_port(),
        served_model_name="gpu-test",
        max_model_len=2048,
        gpu_memory_utilization=0.4,
        executable=VLLM,
    )
    signer = Signer(validator)
    verifier = Verifier(hotkey.ss58_address, SignerPolicy([validator.ss58_address]))
    server = MinerServer(MinerConfig(upstream=options.url, model="gpu-test"), verifier)
    port = free_port()
    async with VllmProcess(options, startup_timeout_s=900) as _:
        runner = await start_miner(server, "127.0.0.1", port)
        try:
            async with aiohttp.ClientSession() as session:
                url = f"http://127.0.0.1:{port}/v1/chat/completions"
                for stream in (False, True):
                    body = orjson.dumps(
                        {
                            "messages": [{"role": "user", "content": "Say hello."}],
                            "max_tokens": 16,
                            "stream": stream,
                        }
                    )
                    headers = {
                        "Content-Type": "application/json",
                        **signer(body, hotkey.ss58_address),
                    }
                    async with session.post(url, data=body, headers=headers) as resp:
                        raw = await resp.read()
                    assert resp.status == 200, raw[:500]
                    assert (b"data: [DONE]" in raw) if stream else orjson.loads(raw)["choices"]
        finally:
            await runner.cleanup()
