"""Each proof docs/reliability.md cites fails when the defence it guards is broken.

A copy of the tree gets one break at a time (tests/breaks.py); the cited test runs there in
its own process and must fail, its failure an assertion or an error raised by the test,
never a test that was not found.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.breaks import BREAKS, Break
from tests.support import ROOT

pytestmark = pytest.mark.integration

LEFT_OUT = shutil.ignore_patterns(
    ".git", ".venv", "__pycache__", "*_cache", ".hypothesis", "*.egg-info", "report", "*.png"
)
RUN_S = 150
PYTEST = (sys.executable, "-m", "pytest", "-xq", "-p", "no:cacheprovider", "--hypothesis-seed=0")
PYTEST_FAILED = 1  # 2-5: interrupted, internal error, usage error, nothing collected


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    copy = tmp_path_factory.mktemp("breaks") / "tree"
    shutil.copytree(ROOT, copy, ignore=LEFT_OUT)
    yield copy


def test_every_break_names_a_test_the_reliability_doc_cites() -> None:
    doc = (ROOT / "docs" / "reliability.md").read_text()
    assert not [b.name for b in BREAKS if b.cited not in doc]
    assert len({b.name for b in BREAKS}) == len(BREAKS)


@pytest.mark.timeout(RUN_S + 30)
@pytest.mark.parametrize("broken", BREAKS, ids=[b.name.replace(" ", "-") for b in BREAKS])
def test_the_cited_test_fails_on_its_break(tree: Path, broken: Break) -> None:
    target = tree / broken.path
    original = target.read_text()
    assert original.count(broken.old) == 1, f"{broken.path} no longer holds the guarded code"
    target.write_text(original.replace(broken.old, broken.new))
    try:
        done = subprocess.run(
            [*PYTEST, broken.test],
            cwd=tree,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
            capture_output=True,
            text=True,
            timeout=RUN_S,
            check=False,
        )
    finally:
        target.write_text(original)
    tail = done.stdout[-3000:] + done.stderr[-2000:]
    assert done.returncode == PYTEST_FAILED, tail
    assert " failed" in done.stdout, tail
