"""What the deploy tests share: compose interpolation, kustomize rendering, the PrometheusRule.

`python -m tests.unit.deploy.manifests prometheusrule > k8s/monitoring/prometheusrule.yaml`
writes the PrometheusRule from deploy/prometheus/alerts.yml.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from gateway.config import Settings
from tests.support import ROOT

DEPLOY = ROOT / "deploy"
K8S = ROOT / "k8s"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
PROMETHEUS_RULE = K8S / "monitoring" / "prometheusrule.yaml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "bitgate.json"
VARIABLE = re.compile(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}")
RULE_HEADER = """\
# deploy/prometheus/alerts.yml as a PrometheusRule: the same groups (a test fails when they
# differ). After editing alerts.yml, regenerate this file:
#   python -m tests.unit.deploy.manifests prometheusrule > k8s/monitoring/prometheusrule.yaml
"""


def settings_env_names() -> set[str]:
    """Every environment variable name Settings reads (nested routing fields with `__`)."""
    return Settings.variables()


class MissingVariable(KeyError):
    """A `${VAR:?message}` whose variable is not set."""


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?error}` over a parsed document."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        name, kind, rest = match.groups()
        if env.get(name):
            return env[name]
        if kind == ":?":
            raise MissingVariable(f"{name}: {rest}")
        return rest or ""

    return VARIABLE.sub(one, value)


def kustomize_command() -> list[str] | None:
    """`kustomize build` or `kubectl kustomize`, whichever is installed; None if neither."""
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


def render(directory: Path) -> list[dict[str, Any]]:
    """The manifests kustomize builds from `directory`."""
    command = kustomize_command()
    assert command is not None
    result = subprocess.run(
        [*command, str(directory)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc is not None]


def prometheus_rule() -> dict[str, Any]:
    """The PrometheusRule holding the alert rules file's groups."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "bitgate",
            "namespace": "bitgate",
            "labels": {
                "app.kubernetes.io/name": "bitgate-gateway",
                "app.kubernetes.io/part-of": "bitgate",
            },
        },
        "spec": {"groups": yaml.safe_load(ALERTS.read_text())["groups"]},
    }


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (PromQL) as `|` blocks."""


def _string(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_BlockDumper.add_representer(str, _string)


def prometheus_rule_yaml() -> str:
    """The PrometheusRule file's text."""
    body = yaml.dump(prometheus_rule(), Dumper=_BlockDumper, sort_keys=False, width=100)
    return RULE_HEADER + body


if __name__ == "__main__":
    if sys.argv[1:] != ["prometheusrule"]:
        sys.exit("usage: python -m tests.unit.deploy.manifests prometheusrule")
    sys.stdout.write(prometheus_rule_yaml())
