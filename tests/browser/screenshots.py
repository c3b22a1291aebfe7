"""The README's screenshots from a real `bitgate demo` run (`make screenshots`)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect, sync_playwright

from tests.browser.conftest import CHROMIUM_ARGS, chromium_path
from tests.support import ROOT, free_port, wait_http

QUESTIONS = ("Why is the sky blue?", "What is a hash table?")
WARM_UP = ("What is photosynthesis?", "How do vaccines work?", "What causes tides?")


def chat(page: Page, base_url: str) -> None:
    """Ask the demo pool a few questions and open the last reply's candidate panel."""
    page.goto(base_url + "/")
    expect(page.locator("#pool option")).not_to_have_count(0)
    for question in QUESTIONS:
        page.fill("#prompt", question)
        page.press("#prompt", "Enter")
        expect(page.locator("#send")).to_be_visible(timeout=30_000)
    page.locator(".message.assistant .candidates summary").last.click()


def leaderboard(page: Page, base_url: str) -> None:
    """Open the leaderboard and serve a few requests while it refreshes."""
    page.goto(base_url + "/leaderboard?pool=sim&refresh_ms=600")
    expect(page.locator("#miners tbody tr").first).to_be_visible()
    for question in WARM_UP * 2:
        body = {"model": "sim", "messages": [{"role": "user", "content": question}]}
        httpx.post(base_url + "/v1/chat/completions", json=body, timeout=30).raise_for_status()
        page.wait_for_timeout(700)


def main() -> int:
    """Start the demo, take the two screenshots, stop the demo."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    path = chromium_path()
    if path is None:
        print("chromium is not installed (make chromium)", file=sys.stderr)
        return 2
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    demo = subprocess.Popen(
        [sys.executable, "-m", "gateway", "demo", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_http(base_url + "/healthz", timeout=60)
        args.out.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 760})
            chat(page, base_url)
            page.screenshot(path=args.out / "chat-page.png")
            leaderboard(page, base_url)
            page.set_viewport_size({"width": 1280, "height": 470})
            page.screenshot(path=args.out / "leaderboard.png")
            browser.close()
    finally:
        demo.terminate()
        demo.wait(10)
    print(f"wrote {args.out / 'chat-page.png'} and {args.out / 'leaderboard.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
