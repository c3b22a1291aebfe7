"""The chat page and the leaderboard on a phone (390 px wide): nothing clipped or overflowing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import API_KEY, Site, Tab, close_tab, open_tab
from tests.browser.test_chat import QUESTION, ask, last_reply, open_chat
from tests.browser.test_leaderboard import _serve_requests

WIDTH = 390
LATER = "ranked after the answer"


@pytest.fixture
def phone(browser: Browser, site: Site, request: pytest.FixtureRequest) -> Iterator[Tab]:
    """A tab 390 px wide, like a phone held upright."""
    opened = open_tab(browser, API_KEY)
    opened.page.set_viewport_size({"width": WIDTH, "height": 844})
    yield opened
    close_tab(opened, request.node.name, site.base_url)


def page_width(page: Page) -> int:
    """How wide the page's content is: more than the viewport means it scrolls sideways."""
    return int(page.evaluate("document.documentElement.scrollWidth"))


def assert_inside(page: Page, selector: str) -> None:
    """The element is shown whole within the viewport's width."""
    box = page.locator(selector).bounding_box()
    assert box is not None, selector
    assert box["x"] >= 0 and box["x"] + box["width"] <= WIDTH + 0.5, (selector, box)


def test_the_chat_fits_a_phone_and_a_race_says_when_rewards_come(phone: Tab, site: Site) -> None:
    page = phone.page
    open_chat(page, site, "sim", "race")
    for selector in ("#prompt", "#send", "#new-chat", "#pool", "#messages"):
        assert_inside(page, selector)
    conversation = page.locator(".conversation").bounding_box()
    assert conversation is not None and conversation["width"] >= WIDTH - 40  # no sidebar beside it
    ask(page, QUESTION)
    reply = last_reply(page)
    expect(reply.locator(".body")).not_to_be_empty()
    reply.locator(".candidates summary").click()
    rewards = reply.locator(".candidates-table td.reward").all_inner_texts()
    statuses = reply.locator(".candidates-table .status").all_inner_texts()
    assert rewards and all(
        reward == LATER
        for reward, status in zip(rewards, statuses, strict=True)
        if status in ("ok", "pending")
    ), (rewards, statuses)
    expect(reply.locator(".candidates summary")).to_contain_text(f"reward {LATER}")
    assert page_width(page) <= WIDTH
    assert_inside(page, ".message.assistant")


def test_the_leaderboard_fits_a_phone_and_hides_unset_weights(phone: Tab, site: Site) -> None:
    _serve_requests(site, 1)
    page = phone.page
    page.goto(site.base_url + "/leaderboard?pool=sim")
    expect(page.locator("#miners tbody tr")).to_have_count(3)
    assert page_width(page) <= WIDTH
    scroller = page.locator(".table-scroll")
    assert scroller.evaluate("box => box.scrollWidth > box.clientWidth")  # it scrolls in its box
    assert_inside(page, ".table-scroll")
    # No epoch has set weights in this pool: the column would be all zeros, so it says why.
    expect(page.locator("#miners th[data-key=weight]")).to_have_count(0)
    expect(page.locator("#weight-note")).to_be_visible()
