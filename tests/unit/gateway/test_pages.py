"""The chat page and leaderboard: pages with a strict CSP, assets with cache headers."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.config import Settings
from gateway.web.pages import WEB, assets
from tests.support import ROOT, profiles


@pytest.fixture
def client(sim_pool: Callable[..., Any]) -> Iterator[TestClient]:
    """A gateway over one sim miner, with an API key (the pages themselves need none)."""
    _, metagraph = sim_pool(profiles("good"))
    settings = Settings(metagraph=metagraph, api_keys=["sk-1"], embedding_model=False)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.mark.parametrize(("path", "script"), [("/", "chat.js"), ("/leaderboard", "leaderboard.js")])
def test_pages_load_without_a_key_under_a_strict_policy(
    client: TestClient, path: str, script: str
) -> None:
    resp = client.get(path)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    assert f'src="/assets/{script}"' in resp.text
    header = resp.headers["content-security-policy"]
    policy = dict(part.split(" ", 1) for part in header.split("; "))
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'" and policy["connect-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert resp.headers["x-content-type-options"] == "nosniff"


def test_pages_have_no_inline_script_or_style() -> None:
    for page in WEB.glob("*.html"):
        text = page.read_text()
        assert re.search(r"<script(?![^>]*\ssrc=)", text) is None  # every script is a file
        assert "<style" not in text and "style=" not in text
        assert re.search(r"\son[a-z]+\s*=", text) is None  # no onclick= and the like


def test_own_assets_revalidate_and_vendored_ones_are_cached_for_good(client: TestClient) -> None:
    own = client.get("/assets/chat.js")
    assert own.status_code == 200
    assert own.headers["content-type"].startswith("text/javascript")
    assert own.headers["cache-control"] == "no-cache"
    again = client.get("/assets/chat.js", headers={"if-none-match": own.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    vendored = client.get("/assets/vendor/purify-3.5.0.es.mjs")
    assert vendored.status_code == 200
    assert "immutable" in vendored.headers["cache-control"]
    assert b"DOMPurify" in vendored.content


@pytest.mark.parametrize(
    "name", ["nope.js", "../pages.py", "..%2Fpages.py", "vendor/../../pages.py", "%2e%2e/app.py"]
)
def test_unknown_or_escaping_asset_paths_are_an_openai_404(client: TestClient, name: str) -> None:
    resp = client.get(f"/assets/{name}")
    assert resp.status_code == 404
    assert set(resp.json()["error"]) == {"message", "type", "param", "code"}


def test_page_options_name_the_strategies_and_rankers(client: TestClient) -> None:
    options = client.get("/ui/options").json()
    assert options["strategies"] == ["best_of", "race", "cascade"]
    assert "heuristic" in options["rankers"] and "blend" in options["rankers"]


def test_every_asset_ships_in_the_package() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = config["tool"]["setuptools"]["package-data"]["gateway"]
    shipped = {p for g in globs for p in (ROOT / "gateway").glob(g) if p.is_file()}
    wanted = {WEB / "assets" / name for name in assets()} | set(WEB.glob("*.html"))
    assert wanted <= shipped
    assert {"chat.js", "leaderboard.js", "app.css", "vendor/marked-18.2.1.esm.js"} <= set(assets())
