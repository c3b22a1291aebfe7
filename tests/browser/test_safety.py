"""A hostile miner reply renders as text and runs nothing; the page never leaves its origin."""

from __future__ import annotations

from playwright.sync_api import expect

from miners.sim.questions import HOSTILE
from tests.browser.conftest import Site, Tab
from tests.browser.test_chat import ask, last_reply, open_chat


def test_a_hostile_reply_renders_as_text_and_runs_nothing(tab: Tab, site: Site) -> None:
    page = tab.page
    blocked: list[str] = []
    page.on("console", lambda m: blocked.append(m.text) if "Content Security" in m.text else None)
    open_chat(page, site, "hostile")
    ask(page, "Tell me a story.")
    body = last_reply(page).locator(".body")
    expect(body.locator("strong")).to_have_text("formatted")  # Markdown still renders
    # The raw HTML is shown to the reader as it was written.
    expect(body).to_contain_text("<script>window.__pwned = 'script'</script>")
    expect(body).to_contain_text("<img src=x onerror=")
    expect(body).to_contain_text("<iframe src=")
    body.hover()
    body.get_by_text("click me").click()
    page.wait_for_timeout(300)  # give anything that might have been planted a moment to run
    assert page.evaluate("window.__pwned") is None
    for tag in ("script", "img", "iframe", "div"):
        expect(body.locator(tag)).to_have_count(0)
    hrefs = body.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert not [h for h in hrefs if h and h.lower().startswith("javascript")]
    handlers = body.evaluate(
        "b => [...b.querySelectorAll('*')].flatMap(e => e.getAttributeNames())"
        ".filter(n => n.startsWith('on') || n === 'style')"
    )
    assert handlers == []
    assert "127.0.0.2" not in " ".join(tab.requests)
    assert blocked == []  # nothing even tried to break the policy
    assert "javascript:" in HOSTILE  # the sim miner really sent the payloads


def test_every_request_of_the_pages_stays_on_the_gateway(tab: Tab, site: Site) -> None:
    page = tab.page
    open_chat(page, site, "sim")
    ask(page, "Why is the sky blue?")
    last_reply(page)
    page.goto(site.base_url + "/leaderboard")
    expect(page.locator("#miners tbody tr").first).to_be_visible()
    paths = {url.removeprefix(site.base_url).split("?")[0] for url in tab.requests}
    assert {"/", "/leaderboard", "/v1/models", "/v1/chat/completions"} <= paths
    assert any(p.startswith("/assets/vendor/") for p in paths)
    # close_tab checks that every one of them went to the gateway's origin.


def test_code_blocks_render_with_a_copy_button(tab: Tab, site: Site) -> None:
    page = tab.page
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.goto(site.base_url + "/")
    page.evaluate(
        """async () => {
            const { renderMarkdown } = await import('/assets/markdown.js');
            const target = document.createElement('div');
            target.id = 'rendered';
            document.body.prepend(target);
            renderMarkdown(target, 'Run:\\n\\n```python\\nprint("hi")\\n```\\n');
        }"""
    )
    block = page.locator("#rendered .code-block")
    expect(block.locator("pre code")).to_have_text('print("hi")')
    block.locator("button.copy").click()
    expect(block.locator("button.copy")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == 'print("hi")\n'
