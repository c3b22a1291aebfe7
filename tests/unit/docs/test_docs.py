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
