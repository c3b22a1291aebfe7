"""A gateway over sim pools, and Debian's Chromium driven by Playwright, for the page tests."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Playwright, Request, sync_playwright

from miners.sim.pool import SimPool, start_pool
from tests.support import ROOT, GatewayProcess, LoopThread, profiles

API_KEY = "sk-browser-test"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
SCREENSHOTS = ROOT / "out" / "browser"
PACED = {"ms": 50, "tokens_per_s": 20}
# Each pool is one situation a person can meet on the page.
POOLS: dict[str, tuple[list[dict[str, Any]], dict[str, Any]]] = {
    "sim": (
        [
            {"quality": "good", "latency": PACED},
            {"quality": "good", "latency": {**PACED, "ms": 150}},
            {"quality": "refusal", "latency": {**PACED, "ms": 100}},
        ],
        {},
    ),
    "slow": ([{"latency": 60_000}, {"latency": 60_000}], {"timeout_s": 50}),
    "hostile": ([{"quality": "hostile"}], {}),
    "dead": ([{"failure": "hang"}, {"failure": "hang"}], {"timeout_s": 0.5}),
    "nobody": ([{"quality": "good"}], {}),
}


def chromium_path() -> str | None:
    """Debian's Chromium (or `BITGATE_CHROMIUM`); `make test` installs it."""
    return os.environ.get("BITGATE_CHROMIUM") or shutil.which("chromium")


@dataclass
class Site:
    """The gateway under test and the sim pools behind it, by pool name."""

    base_url: str
    pools: dict[str, SimPool]
    loop: LoopThread


@dataclass
class Tab:
    """A page with every request it made and every script error it hit."""

    page: Page
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _write_pools(workdir: Path, pools: dict[str, SimPool]) -> Path:
    entries = []
    for name, pool in pools.items():
        metagraph = pool.metagraph(name=name).model_dump(mode="json")
        if name == "nobody":
            # Every axon at 0.0.0.0: registered, but no miner serves.
            for neuron in metagraph["neurons"]:
                neuron["axon"]["ip"] = "0.0.0.0"
        path = workdir / f"{name}.json"
        path.write_text(json.dumps(metagraph))
        entries.append({"name": name, "metagraph": str(path), "explore": 0, **POOLS[name][1]})
    pools_file = workdir / "pools.json"
    pools_file.write_text(json.dumps({"pools": entries}))
    return pools_file


# Package scope, not session: while Playwright's sync driver lives, its event loop counts as
# running in this thread, and the async tests of other folders could not start theirs.
@pytest.fixture(scope="package")
def site(loop_thread: LoopThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """One gateway, with API keys, over one sim pool per situation."""
    pools: dict[str, SimPool] = {}
    gateway = None
    try:
        for seed, (name, (specs, _)) in enumerate(POOLS.items()):
            pools[name] = loop_thread.run(start_pool(profiles(*specs), seed=seed))
        pools_file = _write_pools(tmp_path_factory.mktemp("browser"), pools)
        env = {"BITGATE_API_KEYS": API_KEY, "BITGATE_EMBEDDING_MODEL": "false"}
        gateway = GatewayProcess("--pools", str(pools_file), env=env)
        yield Site(gateway.base_url, pools, loop_thread)
    finally:
        if gateway is not None:
            gateway.stop()
        for pool in pools.values():
            loop_thread.run(pool.stop())


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    """Playwright's driver."""
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Headless Chromium from the system, never a downloaded one."""
    path = chromium_path()
    if path is None:
        pytest.skip("chromium is not installed; `make test` installs it")
    browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


def open_tab(browser: Browser, api_key: str | None) -> Tab:
    """A fresh browser context (empty storage), holding `api_key` when one is given."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(15_000)
    if api_key is not None:
        context.add_init_script(f"localStorage.setItem('bitgate.key', {json.dumps(api_key)})")
    tab = Tab(context.new_page())

    def seen(request: Request) -> None:
        tab.requests.append(request.url)

    tab.page.on("request", seen)
    tab.page.on("pageerror", lambda error: tab.errors.append(str(error)))
    return tab


def close_tab(tab: Tab, name: str, base_url: str) -> None:
    """Save a screenshot; every request stayed on the gateway's origin; no script broke."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    tab.page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)
    tab.page.context.close()
    strays = [url for url in tab.requests if not url.startswith(base_url + "/")]
    assert strays == [], f"requests left the gateway's origin: {strays}"
    assert tab.errors == []


@pytest.fixture
def tab(browser: Browser, site: Site, request: pytest.FixtureRequest) -> Iterator[Tab]:
    """A page that holds the gateway's API key; screenshot and origin check when done."""
    opened = open_tab(browser, API_KEY)
    yield opened
    close_tab(opened, request.node.name, site.base_url)
