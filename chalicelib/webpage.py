"""The sync page: static files in chalicelib/page/, served by the API function itself.

Plain HTML, CSS and JavaScript, no build step. The page calls the API with
paths relative to its own address, so the same files work at `/sync-status`
locally and at `/{stage}/sync-status` behind API Gateway.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from chalice.app import Request, Response

from chalicelib.api import error_response, language
from chalicelib.errors import NotFound

PAGE_DIR = Path(__file__).parent / "page"

# Every file the page is made of; nothing else in the directory is served.
CONTENT_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "page.js": "text/javascript; charset=utf-8",
    "page.css": "text/css; charset=utf-8",
}

# Own scripts and styles only; the API may be elsewhere (`?api=`), so any connect-src.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; "
                           "img-src 'self' data:; connect-src *; base-uri 'none'; "
                           "form-action 'none'; frame-ancestors 'none'")


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


def asset_response(name: str, request: Request | None) -> Response:
    """The file as the answer; an unknown name is the API's 404 error."""
    try:
        asset = load_asset(name)
    except NotFound as error:
        return error_response(error, language(request))
    return Response(body=asset.body, status_code=200, headers={
        "Content-Type": asset.content_type,
        # Small files, changed by deploys: revalidate rather than serve a stale page.
        "Cache-Control": "no-cache",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    })
