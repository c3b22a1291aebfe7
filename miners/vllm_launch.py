"""Starting `vllm serve` for a miner: the command, waiting for its health, stopping it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Self

import aiohttp

from miners.vllm_version import VLLM_VERSION, installed_version

logger = logging.getLogger(__name__)

HEALTH_POLL_S = 0.5
DEFAULT_STARTUP_TIMEOUT_S = 900.0
DEFAULT_STOP_GRACE_S = 30.0


class VllmError(RuntimeError):
    """vLLM did not start, or died."""


@dataclass(frozen=True, slots=True)
class VllmOptions:
    """How to run `vllm serve`: the model, where it listens, and its share of the GPU."""

    model: str
    port: int
    host: str = "127.0.0.1"
    served_model_name: str | None = None
    max_model_len: int | None = None
    gpu_memory_utilization: float | None = None
    executable: str = "vllm"
    extra_args: tuple[str, ...] = field(default_factory=tuple)
    # vLLM's parser for this model family's tool calls; None leaves tool calling off.
    tool_call_parser: str | None = None

    @property
    def url(self) -> str:
        """The base URL of the server it starts."""
        return f"http://{self.host}:{self.port}"

    @property
    def served_name(self) -> str:
        """The model id clients must send."""
        return self.served_model_name or self.model


def build_command(options: VllmOptions) -> list[str]:
    """The `vllm serve` command line for these options."""
    command = [
        options.executable,
        "serve",
        options.model,
        "--host",
        options.host,
        "--port",
        str(options.port),
        "--served-model-name",
        options.served_name,
    ]
    if options.max_model_len is not None:
        command += ["--max-model-len", str(options.max_model_len)]
    if options.gpu_memory_utilization is not None:
        command += ["--gpu-memory-utilization", f"{options.gpu_memory_utilization:g}"]
    if options.tool_call_parser is not None:
        command += ["--enable-auto-tool-choice", "--tool-call-parser", options.tool_call_parser]
    return command + list(options.extra_args)


# vLLM runs third-party code (model repos, plugins): it gets no secret of the miner's.
SECRET_MARKERS = ("MNEMONIC", "SECRET_PHRASE", "PRIVATE_KEY", "PASSWORD")


async def check_version(executable: str) -> None:
    """`VllmError` unless `executable --version` is the pinned VLLM_VERSION."""
    found = await installed_version(executable)
    if found.removeprefix("v") != VLLM_VERSION:
        raise VllmError(
            f"{executable} is vLLM {found or '(unknown)'}, not the pinned {VLLM_VERSION}: "
            f"pip install vllm=={VLLM_VERSION}, or pass --vllm-any-version"
        )


def child_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment vLLM starts with: ours, less the miner's settings and anything secret
    (the hotkey mnemonic above all); HF_TOKEN and the CUDA and VLLM settings stay."""
    return {
        name: value
        for name, value in environ.items()
        if not name.upper().startswith("BITGATE_")
        and not any(marker in name.upper() for marker in SECRET_MARKERS)
    }


def pick_port(host: str = "127.0.0.1") -> int:
    """A port free on `host` right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class VllmProcess:
    """A `vllm serve` child process in its own process group, healthy once started."""

    def __init__(
        self,
        options: VllmOptions,
        startup_timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S,
        stop_grace_s: float = DEFAULT_STOP_GRACE_S,
        any_version: bool = True,
    ) -> None:
        self.options = options
        # False: refuse to start a vLLM other than the pinned VLLM_VERSION.
        self.any_version = any_version
        self.startup_timeout_s = startup_timeout_s
        self.stop_grace_s = stop_grace_s
        self.proc: asyncio.subprocess.Process | None = None
        self._stopped = False

    async def start(self) -> None:
        """Spawn vLLM and wait until `/health` answers 200; `VllmError` if it dies or is late."""
        command = build_command(self.options)
        if not self.any_version:
            await check_version(self.options.executable)
        logger.info("starting vLLM: %s", " ".join(redact(command)))
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *command, start_new_session=True, env=child_environment(os.environ)
            )
        except OSError as exc:
            raise VllmError(f"cannot run {command[0]!r}: {exc.strerror}") from None
        try:
            async with asyncio.timeout(self.startup_timeout_s):
                await self._wait_healthy(self.proc)
        except TimeoutError:
            await self.stop()
            raise VllmError(f"vLLM was not healthy within {self.startup_timeout_s:g} s") from None
        except BaseException:
            await self.stop()
            raise
        logger.info("vLLM is healthy on %s", self.options.url)

    async def _wait_healthy(self, proc: asyncio.subprocess.Process) -> None:
        """Poll `/health` until it answers 200, failing when the process exits."""
        url = self.options.url + "/health"
        probe = aiohttp.ClientTimeout(total=2.0)
        async with aiohttp.ClientSession(timeout=probe) as session:
            while proc.returncode is None:
                with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                    async with session.get(url) as resp:
                        if resp.status == 200:
                            return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), HEALTH_POLL_S)
        raise VllmError(f"vLLM exited with status {proc.returncode} before it was healthy")

    async def wait(self) -> int:
        """Wait until the process exits; its status."""
        if self.proc is None:
            raise VllmError("vLLM was not started")
        return await self.proc.wait()

    async def stop(self) -> None:
        """SIGTERM the process group, then SIGKILL it after the grace period.

        The group is signalled even when vLLM's main process has exited: its workers may
        still be alive, holding GPU memory.
        """
        proc = self.proc
        if proc is None or self._stopped:
            return
        self._stopped = True  # the group id may be reused once the group is gone
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), self.stop_grace_s)
        except TimeoutError:
            logger.warning("vLLM ignored SIGTERM for %g s; killing it", self.stop_grace_s)
        _signal_group(proc.pid, signal.SIGKILL)
        await proc.wait()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


SECRET_FLAGS = frozenset({"--api-key", "--hf-token", "--token"})


def redact(command: list[str]) -> list[str]:
    """The command with the values of secret-bearing flags hidden, for logs."""
    shown: list[str] = []
    for i, part in enumerate(command):
        flag, eq, _ = part.partition("=")
        if eq and flag in SECRET_FLAGS:
            shown.append(f"{flag}=***")
        elif i > 0 and command[i - 1] in SECRET_FLAGS:
            shown.append("***")
        else:
            shown.append(part)
    return shown


def _signal_group(pid: int, signum: signal.Signals) -> None:
    """Signal the process group led by `pid` (vLLM's workers with it)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signum)
