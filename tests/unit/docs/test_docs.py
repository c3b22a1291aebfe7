"""The README and docs/ stand alone: every folder listed, every path and link they name exists."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.support import ROOT

README = ROOT / "README.md"
PATHS_CHECKED = (README, *sorted((ROOT / "docs").glob("*.md")))
LINKED = (README, *sorted((ROOT / "docs").glob("*.md")))
CODE_PATH = re.compile(r"`((?:gateway|router|ranking|miners|load|deploy|k8s|docs|tests)/[\w./-]*)`")
LINK = re.compile(r"\]\(([^)#]+)(?:#[^)]*)?\)")


def top_level_folders() -> set[str]:
    """Folders at the repository's top level that git tracks (hidden ones aside)."""
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return {path.split("/")[0] for path in tracked if "/" in path and not path.startswith(".")}


def test_the_layout_table_lists_every_top_level_folder() -> None:
    layout = README.read_text().split("## Layout", 1)[1]
    listed = set(re.findall(r"^\| `(\w+)/` \|", layout, re.MULTILINE))
    assert top_level_folders() | {"docs"} <= listed


@pytest.mark.parametrize("page", PATHS_CHECKED, ids=lambda p: p.name)
def test_every_code_path_named_exists(page: Path) -> None:
    missing = [p for p in CODE_PATH.findall(page.read_text()) if not (ROOT / p).exists()]
    assert missing == []


@pytest.mark.parametrize("page", LINKED, ids=lambda p: p.name)
def test_every_relative_link_exists(page: Path) -> None:
    links = [link for link in LINK.findall(page.read_text()) if "://" not in link]
    assert links
    assert [link for link in links if not (page.parent / link).exists()] == []


def test_the_readme_points_only_at_files_a_clone_has() -> None:
    assert "shared/" not in README.read_text()


ARCHITECTURE = ROOT / "docs" / "architecture.md"
MODULE_PATH = re.compile(r"\b((?:gateway|router|ranking|miners|load)/[\w/]*\.py)\b")


def test_every_module_the_request_diagram_names_exists() -> None:
    named = set(MODULE_PATH.findall(ARCHITECTURE.read_text()))
    assert len(named) > 20
    assert sorted(p for p in named if not (ROOT / p).exists()) == []


def test_every_gateway_module_is_on_the_architecture_page() -> None:
    text = ARCHITECTURE.read_text()
    modules = [
        p for p in (ROOT / "gateway").rglob("*.py") if p.name not in {"__init__.py", "__main__.py"}
    ]
    missing = sorted(str(p.relative_to(ROOT)) for p in modules if p.name not in text)
    assert missing == []
