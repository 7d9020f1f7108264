"""The sync page: static files in chalicelib/page/, served by the API function itself.

Plain HTML, CSS and JavaScript modules, no build step. The page calls the API
with paths relative to its own address, so the same files work at
`/sync-status` locally and at `/{stage}/sync-status` behind API Gateway.
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence
from urllib.parse import urlencode, urlsplit

from chalice.app import Request, Response

from chalicelib.api import error_response, language
from chalicelib.errors import NotFound

PAGE_DIR = Path(__file__).parent / "page"

HTML = "text/html; charset=utf-8"
CSS = "text/css; charset=utf-8"
JS = "text/javascript; charset=utf-8"

# Every file the page is made of; nothing else in the directory is served. A new module
# is added here (tests/test_page.py checks that every module the page imports is listed).
CONTENT_TYPES = {
    "index.html": HTML,
    "page.css": CSS,
    "main.js": JS,
    "dom.js": JS,
    "dates.js": JS,
    "messages-zh.js": JS,
    "messages-en.js": JS,
    "i18n.js": JS,
    "bus.js": JS,
    "announcer.js": JS,
    "api.js": JS,
    "auth.js": JS,
    "form.js": JS,
    "progress.js": JS,
    "calendar.js": JS,
    "calendar-keys.js": JS,
    "day-detail.js": JS,
    "fill-gaps.js": JS,
    "history.js": JS,
    "job-controls.js": JS,
    "skips.js": JS,
    "progress-view.js": JS,
    "live.js": JS,
}

# The page reads the origins its `?api=` may name from this tag, filled in when served.
ORIGINS_META = '<meta name="stocksync-api-origins" content="">'
# And the WebSocket URL of pushed progress (LIVE_WEBSOCKET_URL; empty: the page polls).
LIVE_META = '<meta name="stocksync-live-url" content="">'

# The page uses no device features; nothing it loads may ask for them.
PERMISSIONS_POLICY = ("accelerometer=(), camera=(), geolocation=(), gyroscope=(), "
                      "magnetometer=(), microphone=(), payment=(), usb=()")
HSTS = "max-age=31536000; includeSubDomains"


def websocket_origin(url: str | None) -> str | None:
    """`wss://host[:port]` of the WebSocket URL: what the CSP's connect-src must name."""
    if not url:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(api_origins: Sequence[str], live_url: str | None = None) -> str:
    """Own scripts and styles only; the API at the page's origin or a configured one, and
    the WebSocket API of pushed progress."""
    live = websocket_origin(live_url)
    connect = " ".join(["'self'", *api_origins, *([live] if live else [])])
    return ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            f"connect-src {connect}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


@dataclass(frozen=True)
class Asset:
    name: str
    body: str
    content_type: str


@lru_cache(maxsize=None)
def load_asset(name: str) -> Asset:
    if name not in CONTENT_TYPES:
        raise NotFound(f"页面文件不存在: {name}", f"No such page file: {name}")
    return Asset(name, (PAGE_DIR / name).read_text(encoding="utf-8"), CONTENT_TYPES[name])


def served_over_https(request: Request | None) -> bool:
    """API Gateway (and CloudFront, load balancers) say how the browser connected."""
    headers = request.headers if request is not None and request.headers else {}
    proto = headers.get("x-forwarded-proto", "")
    return proto.split(",")[0].strip().lower() == "https"


def security_headers(request: Request | None, api_origins: Sequence[str],
                     live_url: str | None = None) -> dict[str, str]:
    headers = {
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": content_security_policy(api_origins, live_url),
        # The address holds nothing secret (the token's fragment is removed at once), but no
        # other site needs to learn which API a visitor uses.
        "Referrer-Policy": "no-referrer",
        "Permissions-Policy": PERMISSIONS_POLICY,
    }
    if served_over_https(request):
        headers["Strict-Transport-Security"] = HSTS
    return headers


def _addressed_as_a_folder(request: Request | None) -> bool:
    """`.../sync-status/` or `.../sync-status/index.html`: the page's relative paths would then
    resolve under `.../sync-status/sync-status/` and load neither its styles nor its scripts
    (API Gateway and chalice local route both to the page all the same)."""
    # requestContext.path: API Gateway's (with the stage) and chalice local's address as asked.
    context = request.context if request is not None else {}
    path = str(context.get("path") or (request.to_original_event().get("path") if request else "") or "")
    return path.endswith("/") or path.endswith("/index.html")


def _to_the_page(request: Request) -> Response:
    """A redirect to the page's own address, relative (so under any stage prefix), the query
    kept; a browser keeps the fragment (`#token=...`) across it."""
    params = request.query_params
    query = urlencode([(k, v) for k in params for v in params.getlist(k)]) if params else ""
    return Response(body="", status_code=302, headers={
        "Location": "../sync-status" + ("?" + query if query else ""), "Cache-Control": "no-cache"})


def asset_response(name: str, request: Request | None,
                   api_origins: Sequence[str] = (), live_url: str | None = None) -> Response:
    """The file as the answer; an unknown name is the API's 404 error."""
    if name == "index.html" and request is not None and _addressed_as_a_folder(request):
        return _to_the_page(request)
    try:
        asset = load_asset(name)
    except NotFound as error:
        return error_response(error, language(request))
    body = asset.body
    if name == "index.html":
        body = body.replace(ORIGINS_META, '<meta name="stocksync-api-origins" content="%s">'
                            % html.escape(" ".join(api_origins), quote=True))
        body = body.replace(LIVE_META, '<meta name="stocksync-live-url" content="%s">'
                            % html.escape(live_url or "", quote=True))
    return Response(body=body, status_code=200, headers={
        "Content-Type": asset.content_type,
        # Small files, changed by deploys: revalidate rather than serve a stale page.
        "Cache-Control": "no-cache",
        **security_headers(request, api_origins, live_url),
    })
