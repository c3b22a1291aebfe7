"""The local stack (deploy/compose.yaml): valid Compose, and its parts point at each other."""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import pytest
import yaml

from gateway.commands.cli import build_parser as gateway_parser
from tests.unit.deploy.manifests import (
    DEPLOY,
    MissingVariable,
    interpolate,
    settings_env_names,
)

COMPOSE = DEPLOY / "compose.yaml"
# Vendored from github.com/compose-spec/compose-spec (schema/compose-spec.json, Apache-2.0).
SCHEMA = Path(__file__).parent / "schemas" / "compose-spec.json"
ENV = {"BITGATE_API_KEYS": "sk-test-1,sk-test-2"}
GATEWAYS = ("gateway-1", "gateway-2")


def raw() -> dict[str, Any]:
    """The compose file as written."""
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return document


@pytest.fixture
def stack() -> dict[str, Any]:
    """The compose file with its required variables set."""
    document: dict[str, Any] = interpolate(raw(), ENV)
    return document


def host_path(volume: str) -> tuple[str, str]:
    """A `source:target[:mode]` volume as (source, target)."""
    source, target = volume.split(":")[:2]
    return source, target


def flag(command: list[str], name: str) -> str:
    """The value after `name` in an argument list."""
    return command[command.index(name) + 1]


def test_compose_file_matches_the_compose_spec_schema(stack: dict[str, Any]) -> None:
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    for document in (raw(), stack):
        errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(document)]
        assert not errors, errors
    broken = {**stack, "services": {**stack["services"], "lb": {"imag": "nginx"}}}
    assert list(validator.iter_errors(broken))


def references(stack: dict[str, Any]) -> list[str]:
    """What `docker compose config` refuses past the schema: a service that depends on a
    service, or uses a network, named volume, config or secret, the file does not declare."""
    wrong = []
    for name, service in stack["services"].items():
        for other in service.get("depends_on", []):
            if other not in stack["services"]:
                wrong.append(f"{name}: depends_on {other}")
        for network in service.get("networks", []):
            if network != "default" and network not in stack.get("networks", {}):
                wrong.append(f"{name}: network {network}")
        for mount in service.get("volumes", []):
            source = mount.split(":")[0] if isinstance(mount, str) else mount.get("source", "")
            if source and source[0] not in "./~$" and source not in stack.get("volumes", {}):
                wrong.append(f"{name}: volume {source}")
        for kind in ("configs", "secrets"):
            for item in service.get(kind, []):
                ref = item if isinstance(item, str) else item["source"]
                if ref not in stack.get(kind, {}):
                    wrong.append(f"{name}: {kind} {ref}")
    return wrong


def compose_cli() -> str | None:
    """The docker client, when it has the compose plugin."""
    docker = shutil.which("docker")
    if docker is None:
        return None
    probe = subprocess.run(
        [docker, "compose", "version"], capture_output=True, text=True, timeout=30, check=False
    )
    return docker if probe.returncode == 0 else None


def test_docker_compose_accepts_the_file(tmp_path: Path, stack: dict[str, Any]) -> None:
    # Without the compose plugin (Debian ships none), its reference checks in Python; the
    # schema and the interpolation have their own tests here.
    assert references(stack) == []
    broken = {**stack, "services": {**stack["services"], "lb": {"depends_on": ["gateway-3"]}}}
    broken["services"]["redis"] = {"networks": ["backend"], "volumes": ["cache:/data"]}
    assert len(references(broken)) == 3
    docker = compose_cli()
    if docker is None:
        return
    result = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(tmp_path), **ENV},
    )
    assert result.returncode == 0, result.stderr


def test_the_api_keys_variable_is_required_and_named() -> None:
    with pytest.raises(MissingVariable, match="BITGATE_API_KEYS"):
        interpolate(raw(), {})


def test_gateways_serve_the_sim_pools_metagraph_with_keys_required(
    stack: dict[str, Any],
) -> None:
    services = stack["services"]
    sim = services["sim"]
    sim_args = gateway_parser().parse_args(sim["command"][1:])
    assert sim["command"][:3] == ["bitgate", "miner", "sim"] and sim_args.miner_command == "sim"
    written = PurePosixPath(str(sim_args.metagraph_out))
    sim_volume = dict(host_path(v) for v in sim["volumes"])
    for name in GATEWAYS:
        gateway = services[name]
        args = gateway_parser().parse_args(gateway["command"][1:])
        assert (args.command, args.host) == ("serve", "0.0.0.0")
        read = PurePosixPath(args.metagraph)
        volumes = dict(host_path(v) for v in gateway["volumes"])
        # The same named volume, mounted where each side expects the file.
        (volume,) = [v for v, target in volumes.items() if PurePosixPath(target) in read.parents]
        assert read.relative_to(volumes[volume]) == written.relative_to(sim_volume[volume])
        env = gateway["environment"]
        assert (
            env["BITGATE_AUTH"] == "required" and env["BITGATE_API_KEYS"] == ENV["BITGATE_API_KEYS"]
        )
        unknown = set(env) - settings_env_names()
        assert not unknown, f"not Settings fields: {sorted(unknown)}"
        assert env["BITGATE_REDIS_URL"].startswith("redis://redis:6379")
        assert gateway["depends_on"]["sim"]["condition"] == "service_healthy"
        assert gateway["depends_on"]["redis"]["condition"] == "service_healthy"
    assert str(written) in sim["healthcheck"]["test"]


def test_sim_miners_listen_where_the_gateways_may_dial_them(stack: dict[str, Any]) -> None:
    services = stack["services"]
    sim = services["sim"]
    host = ipaddress.ip_address(flag(sim["command"], "--host"))
    # The metagraph advertises the address the miners listen on: the container's fixed one.
    assert host == ipaddress.ip_address(sim["networks"]["bitgate"]["ipv4_address"])
    (subnet,) = stack["networks"]["bitgate"]["ipam"]["config"]
    assert host in ipaddress.ip_network(subnet["subnet"])
    for name in GATEWAYS:
        allowed = services[name]["environment"]["BITGATE_AXON_ALLOW"].split(",")
        assert any(host in ipaddress.ip_network(cidr) for cidr in allowed)
        assert "bitgate" in services[name]["networks"]


def test_load_balancer_spreads_over_both_gateways(stack: dict[str, Any]) -> None:
    services = stack["services"]
    lb = services["lb"]
    (volume,) = lb["volumes"]
    source, target = host_path(volume)
    assert target == "/etc/nginx/nginx.conf"
    conf = (DEPLOY / source).read_text()
    upstream = re.search(r"upstream (\w+) \{(.*?)\}", conf, re.S)
    assert upstream
    servers = set(re.findall(r"server ([\w-]+):(\d+)", upstream.group(2)))
    ports = {int(flag(services[name]["command"], "--port")) for name in GATEWAYS}
    assert servers == {(name, str(port)) for name in GATEWAYS for port in ports}
    assert f"proxy_pass http://{upstream.group(1)};" in conf
    assert "proxy_buffering off;" in conf  # streams pass event by event
    listen = re.search(r"listen (\d+);", conf)
    assert listen and lb["ports"] == [f"127.0.0.1:{listen.group(1)}:{listen.group(1)}"]


def test_every_published_port_is_on_loopback(stack: dict[str, Any]) -> None:
    for name, service in stack["services"].items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port}"


def test_prometheus_scrapes_both_gateways_and_loads_the_rules(stack: dict[str, Any]) -> None:
    services = stack["services"]
    prometheus = services["prometheus"]
    mounts = {target: DEPLOY / source for source, target in map(host_path, prometheus["volumes"])}
    config_path = next(
        arg.split("=", 1)[1] for arg in prometheus["command"] if arg.startswith("--config.file=")
    )
    config = yaml.safe_load(mounts[config_path].read_text())
    (job,) = config["scrape_configs"]
    targets = set(job["static_configs"][0]["targets"])
    expected = {f"{name}:{flag(services[name]['command'], '--port')}" for name in GATEWAYS}
    assert targets == expected and job["metrics_path"] == "/metrics"
    (rules,) = config["rule_files"]
    assert mounts[rules] == DEPLOY / "prometheus" / "alerts.yml"


def test_grafana_is_provisioned_with_the_dashboard_and_prometheus(stack: dict[str, Any]) -> None:
    grafana = stack["services"]["grafana"]
    mounts = {target: DEPLOY / source for source, target in map(host_path, grafana["volumes"])}
    provisioning = mounts["/etc/grafana/provisioning"]
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "bitgate.yaml").read_text())[
        "providers"
    ]
    dashboards = mounts[provider["options"]["path"]]
    dashboard = json.loads((dashboards / "bitgate.json").read_text())
    assert dashboard["uid"] == "bitgate" and dashboard["panels"]
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())[
        "datasources"
    ]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert PurePosixPath(home).parent == PurePosixPath(provider["options"]["path"])


def test_promtool_accepts_the_prometheus_config() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed; `make test` installs it")
    result = subprocess.run(
        [promtool, "check", "config", "--syntax-only", "prometheus.yml"],
        cwd=DEPLOY / "prometheus",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
