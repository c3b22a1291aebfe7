"""The chat page and the leaderboard: HTML pages and their static assets from gateway/web."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import get_args

from fastapi import APIRouter, Request
from starlette.exceptions import HTTPException
from starlette.responses import Response

from gateway.protocol import Strategy
from gateway.serving.responses import JSONBytes
from gateway.state import GatewayState

WEB = Path(__file__).resolve().parent

# Scripts, styles and connections only from the gateway itself; no inline script or style,
# no plugins, no framing. Images: the gateway's own and data: URLs (none come from replies).
CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "manifest-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}
# Vendored files carry their version in their name, so they never change: cache for a year.
# The page's own files revalidate on each load (a 304 while their ETag holds).
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}

pages = APIRouter(include_in_schema=False)


@dataclass(frozen=True, slots=True)
class Asset:
    """One file of gateway/web, read once: its bytes, type, ETag and cache policy."""

    body: bytes
    media_type: str
    etag: str
    cache_control: str


@cache
def assets() -> dict[str, Asset]:
    """Every servable file under gateway/web/assets by its path there (an allowlist)."""
    root = WEB / "assets"
    found: dict[str, Asset] = {}
    for path in sorted(root.rglob("*")):
        media_type = MEDIA_TYPES.get(path.suffix)
        if media_type is None or not path.is_file():
            continue
        name = path.relative_to(root).as_posix()
        body = path.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        policy = IMMUTABLE if name.startswith("vendor/") else REVALIDATE
        found[name] = Asset(body, media_type, etag, policy)
    return found


@cache
def page(name: str) -> bytes:
    """An HTML page of gateway/web."""
    return (WEB / name).read_bytes()


def _html(name: str) -> Response:
    return Response(page(name), media_type=MEDIA_TYPES[".html"], headers=PAGE_HEADERS)


@pages.get("/")
async def chat_page() -> Response:
    """The chat page."""
    return _html("index.html")


@pages.get("/leaderboard")
async def leaderboard_page() -> Response:
    """The miner leaderboard page."""
    return _html("leaderboard.html")


@pages.get("/assets/{name:path}")
async def asset(name: str, request: Request) -> Response:
    """A static file of the pages, with an ETag and a cache policy."""
    found = assets().get(name)
    if found is None:
        raise HTTPException(404, f"No asset '{name}'.")
    headers = {
        "ETag": found.etag,
        "Cache-Control": found.cache_control,
        "X-Content-Type-Options": "nosniff",
    }
    if request.headers.get("if-none-match") == found.etag:
        return Response(status_code=304, headers=headers)
    return Response(found.body, media_type=found.media_type, headers=headers)


@pages.get("/ui/options")
async def options(request: Request) -> JSONBytes:
    """What the chat page may offer per conversation: strategies and ranker names."""
    state: GatewayState = request.app.state.gateway
    rankers = sorted(state.planner.rankers)
    return JSONBytes({"strategies": list(get_args(Strategy)), "rankers": rankers})
