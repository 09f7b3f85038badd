"""Limits on what a request may bring, checked before the web server reads it: an ASGI middleware
for the page's server (app.py; starlette comes with gradio).

Gradio reads a request's whole body before the app sees any of it: a 16 MB first line took 5.8 s and
left the server hundreds of MB larger, though the app refuses anything over MAX_TEXT at once. And a
URL over httpx's 65,536 characters (gradio parses each request's URL with it) was a bare HTTP 500.
Both are refused here, with a message, before any work.
"""

from __future__ import annotations

from starlette.datastructures import URL, Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from .song_request import MAX_LINK, MAX_TEXT

MAX_URL = 65_536  # httpx's limit, which gradio meets on every request's address
# Bytes of a request's body: a /generate call with a first line of MAX_TEXT characters, each written
# as a JSON escape, is under 30 kB; the page sends less.
MAX_BODY = 256 * 1024


class RequestLimits:
    """Answers a URL longer than MAX_URL with 414, a body longer than MAX_BODY with 413, and a body of
    unstated length (chunked) with 411, each with a plain-text message; passes the rest on."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = refuse(scope) if scope["type"] == "http" else None
        if refusal is None:
            await self.app(scope, receive, send)
        else:
            await PlainTextResponse(refusal[1], status_code=refusal[0])(scope, receive, send)


def refuse(scope: Scope) -> tuple[int, str] | None:
    """(HTTP status, message) for a request over a limit, else None."""
    url = len(str(URL(scope=scope)))  # the address as gradio reads it (its request.url)
    if url > MAX_URL:
        return 414, (f"This address is too long to open: {url:,} characters, where the server takes at most "
                     f"{MAX_URL:,}. A LyricGPT song's link is at most {MAX_LINK:,}.")
    headers = Headers(scope=scope)
    if "transfer-encoding" in headers:
        return 411, "LyricGPT takes a request's body only with its length stated (Content-Length)."
    length = headers.get("content-length", "0")
    if not length.isdigit() or int(length) > MAX_BODY:
        return 413, (f"This request is too large: {length[:20]} bytes, where LyricGPT takes at most "
                     f"{MAX_BODY:,} (a first line is at most {MAX_TEXT:,} characters).")
    return None
