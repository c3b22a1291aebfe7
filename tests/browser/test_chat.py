"""The chat page in headless Chromium, talking to sim miners through the gateway."""

from __future__ import annotations

from playwright.sync_api import Browser, Locator, Page, expect

from miners.sim.questions import answer
from tests.browser.conftest import API_KEY, Site, Tab, close_tab, open_tab
from tests.support import eventually

QUESTION = "Why is the sky blue?"


def open_chat(page: Page, site: Site, pool: str, strategy: str = "") -> None:
    """Load the chat page and pick a pool and strategy for the conversation."""
    page.goto(site.base_url + "/")
    expect(page.locator("#pool option")).not_to_have_count(0)
    page.select_option("#pool", pool)
    page.select_option("#strategy", strategy)


def ask(page: Page, text: str) -> None:
    """Type a message and press Enter."""
    page.fill("#prompt", text)
    page.press("#prompt", "Enter")


def last_reply(page: Page) -> Locator:
    """The newest assistant message, once the page is ready for the next one."""
    expect(page.locator("#send")).to_be_visible()
    return page.locator(".message.assistant").last


def test_page_loads_with_pools_strategies_and_a_strict_csp(tab: Tab, site: Site) -> None:
    response = tab.page.goto(site.base_url + "/")
    assert response is not None
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe" not in csp
    expect(tab.page).to_have_title("bitgate · chat")
    expect(tab.page.locator("#pool option")).to_have_text(list(site.pools))
    strategies = ["pool default", "best_of", "race", "cascade"]
    expect(tab.page.locator("#strategy option")).to_have_text(strategies)
    expect(tab.page.locator("#ranker option").first).to_have_text("pool default")
    expect(tab.page.locator("#messages .empty")).to_be_visible()


def test_a_message_streams_a_reply_that_stays_after_a_reload(tab: Tab, site: Site) -> None:
    page = tab.page
    open_chat(page, site, "sim", "race")
    page.fill("#prompt", QUESTION)
    page.press("#prompt", "Shift+Enter")
    expect(page.locator("#prompt")).to_have_value(QUESTION + "\n")
    expect(page.locator(".message")).to_have_count(0)
    page.press("#prompt", "Enter")

    # Text shows while the miner is still streaming: the reply arrives piece by piece.
    partial = page.wait_for_function(
        """() => {
            const body = document.querySelector('.message.assistant.streaming .body');
            return body && body.innerText.trim() ? body.innerText.trim() : null;
        }"""
    ).json_value()
    expected = answer(QUESTION, "good").text
    assert expected.startswith(partial) and len(partial) < len(expected)
    reply = last_reply(page)
    expect(reply.locator(".body")).to_have_text(expected)
    expect(page.locator("#send")).to_be_enabled()

    page.reload()
    expect(page.locator(".message.user")).to_have_text([QUESTION])
    expect(page.locator(".message.assistant .body")).to_have_text([expected])
    page.click("#new-chat")
    expect(page.locator(".message")).to_have_count(0)
    expect(page.locator("#conversations li")).to_have_count(2)
    page.locator("#conversations li .open", has_text=QUESTION).click()
    expect(page.locator(".message.user")).to_have_text([QUESTION])


def test_the_candidate_panel_lists_every_sampled_miner(tab: Tab, site: Site) -> None:
    page = tab.page
    open_chat(page, site, "sim", "best_of")
    ask(page, "What is a hash table?")
    reply = last_reply(page)
    reply.locator(".candidates summary").click()
    rows = reply.locator(".candidates-table tbody tr")
    expect(rows).to_have_count(3)
    metagraph = site.pools["sim"].metagraph(name="sim")
    hotkeys = sorted(rows.locator(".hotkey").all_inner_texts())
    assert hotkeys == sorted(n.hotkey for n in metagraph.neurons)
    # best_of stops waiting once the miners still out cannot win: those rows say pending.
    statuses = rows.locator(".status").all_inner_texts()
    assert "ok" in statuses and set(statuses) <= {"ok", "pending"}
    rewards = dict(zip(statuses, rows.locator("td:nth-child(5)").all_inner_texts(), strict=True))
    assert float(rewards["ok"]) >= 0
    assert rewards.get("pending", "ranked after the answer") == "ranked after the answer"
    expect(reply.locator("tr.winner")).to_have_count(1)
    expect(reply.locator(".candidates summary")).to_contain_text("best_of")


def test_stop_cancels_the_miner_calls(tab: Tab, site: Site) -> None:
    page = tab.page
    slow = site.pools["slow"]
    before = slow.cancelled_counts()
    open_chat(page, site, "slow")
    ask(page, QUESTION)
    assert eventually(slow.in_flight, [1, 1], timeout=10)
    page.click("#stop")
    expect(page.locator(".message.assistant .note")).to_have_text("Stopped.")
    expect(page.locator("#send")).to_be_visible()
    # The miners see their caller hang up: the gateway let go of them.
    assert eventually(slow.cancelled_counts, [before[0] + 1, before[1] + 1], timeout=10)
    assert slow.in_flight() == [0, 0]


def test_errors_read_plainly_and_the_page_recovers(tab: Tab, site: Site) -> None:
    page = tab.page
    open_chat(page, site, "nobody")
    page.evaluate("window.sameDocument = true")
    ask(page, QUESTION)
    expect(last_reply(page).locator(".error")).to_have_text(
        "No miner of pool 'nobody' can take a request now."
    )

    page.select_option("#pool", "dead")
    ask(page, QUESTION)
    deadline = last_reply(page).locator(".error")
    expect(deadline).to_contain_text("No miner answered before the deadline")

    page.select_option("#pool", "sim")
    ask(page, QUESTION)
    expect(last_reply(page).locator(".body")).to_have_text(answer(QUESTION, "good").text)
    assert page.evaluate("window.sameDocument") is True


def test_the_page_asks_for_a_key_and_keeps_it(browser: Browser, site: Site) -> None:
    tab = open_tab(browser, api_key=None)
    page = tab.page
    page.goto(site.base_url + "/")
    dialog = page.locator("#key-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator(".key-reason")).to_have_text("This gateway needs an API key.")
    dialog.locator("input").fill("sk-wrong")
    dialog.locator("button[value=save]").click()
    expect(dialog.locator(".key-reason")).to_contain_text("The API key was refused.")
    dialog.locator("input").fill(API_KEY)
    dialog.locator("button[value=save]").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#pool option")).to_have_count(len(site.pools))
    assert page.evaluate("localStorage.getItem('bitgate.key')") == API_KEY
    page.select_option("#pool", "sim")
    ask(page, QUESTION)
    expect(last_reply(page).locator(".body")).to_have_text(answer(QUESTION, "good").text)
    close_tab(tab, "test_the_page_asks_for_a_key_and_keeps_it", site.base_url)
