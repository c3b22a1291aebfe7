"""The Makefile installs system packages with apt as root, and through sudo for anyone else."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from tests.support import ROOT

PRINT_SUDO = "print-sudo: ; @echo [$(SUDO)]"


def sudo_as(*prefix: str) -> str:
    """What the Makefile's SUDO is for the user `prefix` runs make as."""
    done = subprocess.run(
        [*prefix, "make", "-s", "--no-print-directory", "--eval", PRINT_SUDO, "print-sudo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout.strip()


def test_every_apt_get_goes_through_sudo() -> None:
    makefile = (ROOT / "Makefile").read_text()
    before = [makefile[: m.start()] for m in re.finditer(r"apt-get ", makefile)]
    assert len(before) >= 6  # update and install, for each package target
    assert all(re.search(r"\$\(SUDO\)( env DEBIAN_FRONTEND=\S+)? $", b) for b in before)


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root")
def test_sudo_is_used_only_by_a_user_who_is_not_root() -> None:
    assert sudo_as() == "[]"
    assert sudo_as("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups") == "[sudo]"
