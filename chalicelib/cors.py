"""Cross-origin access: closed unless `CORS_ALLOW_ORIGINS` names the origin.

The page is served by the API itself, so it needs no CORS at all. A listed origin
gets its own name back in `Access-Control-Allow-Origin` (never `*`, never
credentials: the token travels in a header a page must set itself), and every
answer says `Vary: Origin` so a cache never hands one origin's answer to another.
Chalice's `CORSConfig` holds a single origin, so preflights are answered here, by an
OPTIONS view per path (app.py registers them).

A browser sends `Origin` on every cross-site POST, even a "simple" text/plain one
that needs no preflight. Such a request can start nothing anyway (it carries no
token), and a write whose `Origin` is neither this API's own nor listed is refused
as well (403 `origin_not_allowed`), whatever it carries.
"""
from __future__ import annotations

from typing import Iterable, Mapping

from chalicelib.config import normalize_origin

ALLOWED_REQUEST_HEADERS = "Authorization, Content-Type, Accept-Language"
EXPOSED_HEADERS = "Retry-After, WWW-Authenticate, X-Request-Id"
PREFLIGHT_MAX_AGE_S = 600


class CorsPolicy:
    def __init__(self, allowed_origins: Iterable[str]):
        self._allowed = frozenset(normalize_origin(o) for o in allowed_origins)

    def allows(self, origin: str | None) -> bool:
        return origin is not None and normalize_origin(origin) in self._allowed

    def response_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """What an answer adds: the caller's origin only when it is listed."""
        origin = headers.get("origin")
        added = {"Vary": "Origin"}
        if self.allows(origin):
            added["Access-Control-Allow-Origin"] = origin.strip()
            added["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
        return added

    def preflight_headers(self, headers: Mapping[str, str], methods: Iterable[str]) -> dict[str, str] | None:
        """The preflight answer's headers for a listed origin; None for any other."""
        if not self.allows(headers.get("origin")):
            return None
        return {**self.response_headers(headers),
                "Access-Control-Allow-Methods": ", ".join(sorted({*methods, "OPTIONS"})),
                "Access-Control-Allow-Headers": ALLOWED_REQUEST_HEADERS,
                "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE_S)}

    def write_allowed(self, headers: Mapping[str, str]) -> bool:
        """A write from no page at all (curl, the CLI), from this API's own page, or a listed one."""
        origin = headers.get("origin")
        if origin is None:
            return True
        if self.allows(origin):
            return True
        host = (headers.get("host") or "").strip().lower()
        scheme, _, rest = normalize_origin(origin).partition("://")
        return scheme in ("http", "https") and bool(host) and rest == host
