"""The leaderboard page: fills from the pool's miners, sorts, refreshes itself."""

from __future__ import annotations

import httpx
from playwright.sync_api import expect

from tests.browser.conftest import API_KEY, Site, Tab


def _serve_requests(site: Site, count: int) -> None:
    """Send a few chats through the gateway so the miners have scores and latencies."""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    body = {"model": "sim", "messages": [{"role": "user", "content": "What is a hash table?"}]}
    for _ in range(count):
        response = httpx.post(
            site.base_url + "/v1/chat/completions", json=body, headers=headers, timeout=30
        )
        assert response.status_code == 200


def _column(tab: Tab, key: str) -> list[str]:
    index = tab.page.locator("#miners thead th").evaluate_all(
        f"ths => ths.findIndex(th => th.dataset.key === '{key}')"
    )
    return tab.page.locator(f"#miners tbody td:nth-child({index + 1})").all_inner_texts()


def test_the_leaderboard_fills_sorts_and_refreshes(tab: Tab, site: Site) -> None:
    _serve_requests(site, 2)
    page = tab.page
    page.goto(site.base_url + "/leaderboard?pool=sim&refresh_ms=500")
    rows = page.locator("#miners tbody tr")
    expect(rows).to_have_count(3)
    metagraph = site.pools["sim"].metagraph(name="sim")
    assert sorted(_column(tab, "hotkey")) == sorted(n.hotkey for n in metagraph.neurons)
    scores = [float(s) for s in _column(tab, "score")]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0  # best score first

    page.click("#miners th[data-key=uid] button")
    expect(page.locator("#miners th[data-key=uid]")).to_have_attribute("aria-sort", "ascending")
    assert _column(tab, "uid") == ["0", "1", "2"]
    page.click("#miners th[data-key=uid] button")
    assert _column(tab, "uid") == ["2", "1", "0"]
    page.click("#miners th[data-key=p50_latency_ms] button")
    latencies = [float(v) for v in _column(tab, "p50_latency_ms")]
    assert latencies == sorted(latencies, reverse=True)

    # It refreshes itself: each refresh adds a point to every miner's score chart.
    expect(page.locator("#miners svg.score polyline")).to_have_count(3)
    after = [float(v) for v in _column(tab, "p50_latency_ms")]
    assert after == sorted(after, reverse=True)  # the chosen order survives a refresh
