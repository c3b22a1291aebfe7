"""`make chaos` runs the shipped configs: its rendering changes addresses, ports and paths only
(and, for Prometheus, timing), so a setting changed in deploy/ or k8s/ is the setting it tests."""

from __future__ import annotations

from pathlib import Path

import yaml

from load.chaos import render

PORTS = render.Ports([7001, 7002], [7011, 7012, 7013], 7020, 7021, [7031, 7032], 7040, 7050)
WORKDIR = Path("/tmp/chaos-render")


def changed(shipped: str, rendered: str) -> tuple[set[str], set[str]]:
    """Lines only in the shipped file, lines only in the rendered one (stripped)."""
    old = {line.strip() for line in shipped.splitlines() if line.strip()}
    new = {line.strip() for line in rendered.splitlines() if line.strip()}
    return old - new, new - old


def test_nginx_changes_only_its_listen_upstream_pid_and_temp_paths() -> None:
    gone, added = changed(render.NGINX.read_text(), render.nginx(PORTS, WORKDIR))
    assert {line.split()[0] for line in gone} == {"listen", "server", "pid"}
    temps = {f"{k}_temp_path" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")}
    assert {line.split()[0] for line in added} <= {"listen", "server", "pid", *temps}
    assert all("127.0.0.1" in line for line in added if line.startswith(("listen", "server")))


def test_haproxy_changes_only_binds_and_server_addresses() -> None:
    gone, added = changed(render.HAPROXY.read_text(), render.haproxy(PORTS))
    assert {line.split()[0] for line in gone} == {"bind", "server"}
    assert {line.split()[0] for line in added} == {"bind", "server"}
    assert all("127.0.0.1:" in line for line in added)
    assert "tcp-check expect string role:master" in render.haproxy(PORTS)


def test_sentinel_and_redis_keep_the_shipped_settings() -> None:
    conf = render.sentinel_conf(7011, 7001, WORKDIR)
    assert "sentinel down-after-milliseconds bitgate 5000" in conf
    assert "sentinel monitor bitgate 127.0.0.1 7001 2" in conf
    args = render.redis_args(7002, 7001, WORKDIR)
    assert args[args.index("--replicaof") + 2] == "7001"
    assert args[args.index("--appendonly") + 1] == "yes"


def test_alert_rules_differ_only_in_their_scaled_for_windows() -> None:
    shipped = yaml.safe_load(render.ALERTS.read_text())
    text, windows = render.alert_rules(0.05)
    rendered = yaml.safe_load(text)
    for old, new in zip(shipped["groups"][0]["rules"], rendered["groups"][0]["rules"], strict=True):
        assert {k: v for k, v in old.items() if k != "for"} == {
            k: v for k, v in new.items() if k != "for"
        }
    assert windows["BitgateGatewayDown"] == 6.0  # 2m / 20
    assert windows["BitgateStateStoreDown"] == 3.0  # 1m / 20


def test_the_gateways_run_the_compose_command_against_haproxy() -> None:
    command, env = render.gateway_command(7031, WORKDIR / "sim.json")
    assert command[:2] == ["bitgate", "serve"]
    assert command[command.index("--port") + 1] == "7031"
    assert env["BITGATE_AUTH"] == "required"
    assert env["BITGATE_REDIS_URL"] == "redis://{redis}/0"
