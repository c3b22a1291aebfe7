"""The shipped deploy/ and k8s/ configs, rendered for loopback: addresses, ports and paths only.

Prometheus's timing (scrape and evaluation intervals, each rule's `for:`) is scaled by one
factor so the run fits in minutes; every other value is the shipped one.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
NGINX = ROOT / "deploy" / "nginx.conf"
COMPOSE = ROOT / "deploy" / "compose.yaml"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
SENTINEL_DIR = ROOT / "k8s" / "redis" / "sentinel"
HAPROXY = SENTINEL_DIR / "haproxy.cfg"
MASTER_SET = "bitgate"


@dataclass(frozen=True, slots=True)
class Ports:
    """Every loopback port of the topology."""

    redis: list[int]
    sentinels: list[int]
    haproxy: int
    haproxy_health: int
    gateways: list[int]
    nginx: int
    prometheus: int


def _sub(text: str, old: str, new: str, count: int = 1) -> str:
    """Replace `old` exactly `count` times; a shipped file that changed shape fails loudly."""
    found = text.count(old)
    if found != count:
        raise ValueError(f"expected {count} of {old!r} in a shipped config, found {found}")
    return text.replace(old, new)


def nginx(ports: Ports, workdir: Path) -> str:
    """deploy/nginx.conf: listen on loopback, the gateways' ports, pid and temp files here."""
    text = NGINX.read_text()
    text = _sub(text, "pid /tmp/nginx.pid;", f"pid {workdir}/nginx.pid;")
    text = _sub(text, "listen 8000;", f"listen 127.0.0.1:{ports.nginx};")
    servers = re.findall(r"server (gateway-\d+):8000", text)
    if len(servers) != len(ports.gateways):
        raise ValueError(f"nginx.conf names {servers}, the run has {len(ports.gateways)} gateways")
    for name, port in zip(servers, ports.gateways, strict=True):
        text = _sub(text, f"server {name}:8000", f"server 127.0.0.1:{port}")
    temps = "".join(
        f"    {kind}_temp_path {workdir}/nginx-{kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return _sub(text, "http {\n", "http {\n" + temps)


def haproxy(ports: Ports) -> str:
    """k8s/redis/sentinel/haproxy.cfg: binds on loopback, one server line per local Redis."""
    text = HAPROXY.read_text()
    text = _sub(text, "bind :6379", f"bind 127.0.0.1:{ports.haproxy}")
    text = _sub(text, "bind :8404", f"bind 127.0.0.1:{ports.haproxy_health}")
    lines = text.splitlines()
    servers = [i for i, line in enumerate(lines) if line.strip().startswith("server redis-")]
    if len(servers) < len(ports.redis):
        raise ValueError("haproxy.cfg has fewer Redis servers than the run")
    for i, port in zip(servers, ports.redis + [0] * len(servers), strict=False):
        name = lines[i].split()[1]
        lines[i] = f"    server {name} 127.0.0.1:{port}" if port else ""
    return "\n".join(line for line in lines if line) + "\n"


def _script_vars(self_name: str, master: str) -> dict[str, str]:
    return {"SELF": self_name, "MASTER_SET": MASTER_SET, "master": master, "MAXMEMORY": "400mb"}


def _expand(text: str, values: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        return values[match.group(1) or match.group(2)]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", one, text)


def redis_args(port: int, master_port: int | None, workdir: Path) -> list[str]:
    """start-redis.sh's `redis-server` arguments, on a loopback port with its own dir."""
    script = (SENTINEL_DIR / "start-redis.sh").read_text().replace("\\\n", " ")
    found = re.findall(r'set -- ("\$@" )?(--[^\n]*)', script)
    if len(found) != 2:
        raise ValueError("start-redis.sh no longer sets its arguments in two `set --` lines")
    values = _script_vars("127.0.0.1", "127.0.0.1")
    args = shlex.split(_expand(found[0][1], values))
    if master_port is not None:
        replica = shlex.split(_expand(found[1][1], values))
        args += [replica[0], replica[1], str(master_port)]
    args = [str(workdir) if a == "/data" else a for a in args]
    return [*args, "--port", str(port), "--bind", "127.0.0.1", "--daemonize", "no"]


def sentinel_conf(port: int, master_port: int, workdir: Path) -> str:
    """The sentinel.conf start-sentinel.sh writes, for one local Sentinel."""
    script = (SENTINEL_DIR / "start-sentinel.sh").read_text()
    match = re.search(r"<<CONF\n(.*?)\nCONF\n", script, re.S)
    if match is None:
        raise ValueError("start-sentinel.sh no longer writes sentinel.conf from a heredoc")
    text = _expand(match.group(1), _script_vars("127.0.0.1", "127.0.0.1"))
    text = _sub(text, "port 26379", f"port {port}\nbind 127.0.0.1")
    text = _sub(text, "dir /sentinel", f"dir {workdir}")
    return _sub(text, "127.0.0.1 6379 2", f"127.0.0.1 {master_port} 2") + "\n"


def gateway_command(port: int, metagraph: Path) -> tuple[list[str], dict[str, str]]:
    """deploy/compose.yaml's gateway command and environment, for one loopback replica."""
    compose: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    spec = compose["x-gateway"]
    values = {"/var/lib/bitgate/sim.json": str(metagraph), "0.0.0.0": "127.0.0.1"}
    command = [values.get(a, a) for a in spec["command"]]
    command = _set_flag(command, "--port", str(port))
    env = {k: str(v) for k, v in spec["environment"].items()}
    env["BITGATE_REDIS_URL"] = _sub(env["BITGATE_REDIS_URL"], "redis:6379", "{redis}")
    env["BITGATE_AXON_ALLOW"] = "127.0.0.0/8"
    env.pop("BITGATE_API_KEYS")  # ${…:?} is compose's: the run sets its own
    return command, env


def _set_flag(command: list[str], flag: str, value: str) -> list[str]:
    i = command.index(flag)
    return [*command[: i + 1], value, *command[i + 2 :]]


def _seconds(value: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", value):
        total += float(number) * units[unit]
    return total


def _scaled(value: str, scale: float) -> str:
    return f"{max(1, round(_seconds(value) * scale * 1000))}ms"


def prometheus(ports: Ports, alerts: Path, scale: float) -> str:
    """deploy/prometheus/prometheus.yml: the gateways' ports, the rendered rules, time scaled."""
    config: dict[str, Any] = yaml.safe_load(PROMETHEUS.read_text())
    for field in ("scrape_interval", "evaluation_interval"):
        config["global"][field] = _scaled(config["global"][field], scale)
    config["rule_files"] = [str(alerts)]
    (job,) = config["scrape_configs"]
    (targets,) = job["static_configs"]
    if len(targets["targets"]) != len(ports.gateways):
        raise ValueError("prometheus.yml scrapes a different number of gateways than the run")
    targets["targets"] = [f"127.0.0.1:{p}" for p in ports.gateways]
    return yaml.safe_dump(config, sort_keys=False)


def alert_rules(scale: float) -> tuple[str, dict[str, float]]:
    """deploy/prometheus/alerts.yml with each `for:` scaled, and each alert's scaled window."""
    rules: dict[str, Any] = yaml.safe_load(ALERTS.read_text())
    windows = {}
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = _scaled(rule["for"], scale)
                windows[rule["alert"]] = _seconds(rule["for"])
    return yaml.safe_dump(rules, sort_keys=False), windows


def scrape_interval_s(scale: float) -> float:
    """The rendered scrape interval, in seconds."""
    config: dict[str, Any] = yaml.safe_load(PROMETHEUS.read_text())
    return _seconds(_scaled(config["global"]["scrape_interval"], scale))
