"""The production topology as loopback processes, every one stopped on exit (even on failure)."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from load.chaos import render
from load.procs import miner_urls

START_TIMEOUT_S = 40.0
# Below Linux's ephemeral range (32768-60999), where bind-to-0 listeners (the sim's miners,
# other tests) and outgoing connections take their ports: a port picked here stays ours.
PORT_RANGE = (20000, 32000)
SETTLE_S = 0.3  # a process that found its port taken exits within this
STOP_TIMEOUT_S = 5.0
POLL_S = 0.1
# Miners that take a second or so, so that requests are in flight when a gateway dies.
SIM_MINERS = """miners:
  - name: steady
    latency: {kind: normal, ms: 1000, sd_ms: 250, tokens_per_s: 60}
"""


class TopologyError(RuntimeError):
    """A process of the topology that did not start."""


def pick_ports(count: int) -> list[int]:
    """`count` distinct loopback ports, free now, outside the ephemeral range."""
    ports: list[int] = []
    for _ in range(count * 50):
        port = random.randrange(*PORT_RANGE)
        if port in ports:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
        if len(ports) == count:
            return ports
    raise TopologyError(f"no {count} free loopback ports in {PORT_RANGE}")


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


@dataclass
class Topology:
    """Redis master + replica, three Sentinels, HAProxy, two gateways, nginx, Prometheus."""

    workdir: Path
    scale: float
    gateways: int = 2
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ports: render.Ports | None = None
    metagraph: Path | None = None
    model: str = ""
    windows: dict[str, float] = field(default_factory=dict)

    @property
    def p(self) -> render.Ports:
        """The ports (set by `start`)."""
        assert self.ports is not None
        return self.ports

    def spawn(self, name: str, command: list[str], env: dict[str, str] | None = None) -> None:
        """Start one process in its own group, its output in `logs/<name>.log`."""
        log = (self.workdir / "logs" / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        log.close()

    def wait_until(self, name: str, ready: object, what: str) -> None:
        """Poll `ready()` until true; fails if the process exits or the time runs out."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while not ready():  # type: ignore[operator]
            proc = self.procs[name]
            if proc.poll() is not None or time.monotonic() > deadline:
                raise TopologyError(f"{name} is not {what}; see {self.workdir}/logs/{name}.log")
            time.sleep(POLL_S)
        time.sleep(SETTLE_S)  # what answers must be this process, not another on its port
        if self.procs[name].poll() is not None:
            raise TopologyError(f"{name} exited; see {self.workdir}/logs/{name}.log")

    def start(self) -> None:
        """Render every config and start every process, in dependency order."""
        w = self.workdir
        for sub in ("logs", "redis-0", "redis-1", "prometheus", "conf"):
            (w / sub).mkdir(parents=True, exist_ok=True)
        free = pick_ports(9 + self.gateways)
        self.ports = render.Ports(
            redis=free[0:2],
            sentinels=free[2:5],
            haproxy=free[5],
            haproxy_health=free[6],
            gateways=free[9:],
            nginx=free[7],
            prometheus=free[8],
        )
        p = self.ports
        for i, port in enumerate(p.redis):
            master = None if i == 0 else p.redis[0]
            args = render.redis_args(port, master, w / f"redis-{i}")
            self.spawn(f"redis-{i}", ["redis-server", *args])
            self.wait_until(f"redis-{i}", lambda port=port: _listening(port), "listening")
        for i, port in enumerate(p.sentinels):
            conf = w / "conf" / f"sentinel-{i}.conf"
            (w / f"sentinel-{i}").mkdir(exist_ok=True)
            conf.write_text(render.sentinel_conf(port, p.redis[0], w / f"sentinel-{i}"))
            self.spawn(f"sentinel-{i}", ["redis-sentinel", str(conf)])
        for i, port in enumerate(p.sentinels):
            self.wait_until(f"sentinel-{i}", lambda port=port: _listening(port), "listening")
        haproxy_cfg = w / "conf" / "haproxy.cfg"
        haproxy_cfg.write_text(render.haproxy(p))
        self.spawn("haproxy", ["haproxy", "-db", "-f", str(haproxy_cfg)])
        self.wait_until("haproxy", lambda: _listening(p.haproxy), "listening")
        self._start_sim()
        for i in range(self.gateways):
            self.start_gateway(i)
        for i in range(self.gateways):
            self.wait_gateway(i)
        self._start_nginx()
        self._start_prometheus()

    def _start_sim(self) -> None:
        self.metagraph = self.workdir / "sim.json"
        profiles = self.workdir / "conf" / "miners.yaml"
        profiles.write_text(SIM_MINERS)
        command = [sys.executable, "-m", "gateway", "miner", "sim", "--count", "4"]
        command += ["--base-port", "0", "--metagraph-out", str(self.metagraph)]
        command += ["--profiles", str(profiles)]
        self.spawn("sim", command)
        self.wait_until("sim", lambda: self.metagraph is not None and self.metagraph.exists(), "up")
        time.sleep(0.5)  # the file is written once every miner listens
        self.model, _ = miner_urls(self.metagraph)

    def gateway_url(self, i: int) -> str:
        """One gateway replica's own URL (not through nginx)."""
        return f"http://127.0.0.1:{self.p.gateways[i]}"

    def start_gateway(self, i: int) -> None:
        """`bitgate serve` as deploy/compose.yaml runs it, on its loopback port."""
        assert self.metagraph is not None
        command, env = render.gateway_command(self.p.gateways[i], self.metagraph)
        env["BITGATE_REDIS_URL"] = env["BITGATE_REDIS_URL"].format(
            redis=f"127.0.0.1:{self.p.haproxy}"
        )
        env.update(self.gateway_env)
        if command[0] == "bitgate":
            command = [sys.executable, "-m", "gateway", *command[1:]]
        self.spawn(f"gateway-{i}", command, env)

    gateway_env: dict[str, str] = field(default_factory=dict)

    @property
    def fallback_share(self) -> float:
        """The share of a key's limit the replicas together may grant alone while Redis is
        down: each enforces BITGATE_LIMITS_FALLBACK_SHARE (shipped: 1/replicas) by itself."""
        assert self.metagraph is not None
        _, env = render.gateway_command(0, self.metagraph)
        share = float({**env, **self.gateway_env}.get("BITGATE_LIMITS_FALLBACK_SHARE", 1.0))
        return round(share * self.gateways, 3)

    def wait_gateway(self, i: int) -> None:
        """Until the replica answers /readyz."""
        url = self.gateway_url(i) + "/readyz"
        self.wait_until(f"gateway-{i}", lambda: _http_ok(url), "ready")

    def _start_nginx(self) -> None:
        conf = self.workdir / "conf" / "nginx.conf"
        conf.write_text(render.nginx(self.p, self.workdir))
        error_log = str(self.workdir / "logs" / "nginx-startup.log")
        command = ["nginx", "-p", str(self.workdir), "-e", error_log, "-c", str(conf)]
        self.spawn("nginx", [*command, "-g", "daemon off;"])
        self.wait_until("nginx", lambda: _listening(self.p.nginx), "listening")

    def _start_prometheus(self) -> None:
        alerts = self.workdir / "conf" / "alerts.yml"
        text, self.windows = render.alert_rules(self.scale)
        alerts.write_text(text)
        config = self.workdir / "conf" / "prometheus.yml"
        config.write_text(render.prometheus(self.p, alerts, self.scale))
        command = ["prometheus", f"--config.file={config}"]
        command += [f"--storage.tsdb.path={self.workdir / 'prometheus'}"]
        command += [f"--web.listen-address=127.0.0.1:{self.p.prometheus}"]
        self.spawn("prometheus", command)
        url = f"http://127.0.0.1:{self.p.prometheus}/-/ready"
        self.wait_until("prometheus", lambda: _http_ok(url), "ready")

    def restart_redis(self, i: int, master_port: int) -> None:
        """Start a killed Redis again as start-redis.sh would: a replica of the current master."""
        port = self.p.redis[i]
        self.spawn(
            f"redis-{i}",
            ["redis-server", *render.redis_args(port, master_port, self.workdir / f"redis-{i}")],
        )
        self.wait_until(f"redis-{i}", lambda: _listening(port), "listening")

    def kill(self, name: str) -> None:
        """SIGKILL one process (the fault)."""
        proc = self.procs[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait(STOP_TIMEOUT_S)

    def stop(self) -> None:
        """Stop every process: SIGTERM to its group, SIGKILL after a bounded wait."""
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(STOP_TIMEOUT_S)
