"""pyproject.toml's licence is an SPDX expression, which setuptools reads without warnings."""

from __future__ import annotations

import tomllib

from tests.support import ROOT


def test_the_licence_is_an_spdx_string_and_setuptools_knows_the_form() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = pyproject["project"]
    assert project["license"] == "MIT"
    assert not any(c.startswith("License ::") for c in project.get("classifiers", []))
    # SPDX strings need setuptools 77 or later; older ones want the table form.
    assert "setuptools>=77" in pyproject["build-system"]["requires"]
