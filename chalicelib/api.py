"""The HTTP contract: the seed's `status`/`data`/`message` envelope, and error mapping.

Every route goes through `json_api`, the one place where the exception
hierarchy of chalicelib.errors becomes HTTP status codes and messages.
"""
from __future__ import annotations

import functools
import json
import logging
from typing import Any, Callable

from chalice.app import Request, Response

from chalicelib.errors import StocksyncError

log = logging.getLogger(__name__)

CORS_HEADERS = {"Access-Control-Allow-Origin": "*"}


def json_response(payload: Any, status_code: int) -> Response:
    # Chinese as UTF-8 rather than \u escapes: readable in curl and logs alike.
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return Response(body=body, status_code=status_code,
                    headers={**CORS_HEADERS, "Content-Type": "application/json; charset=utf-8"})


def language(request: Request | None) -> str:
    """Chinese unless the caller asks for English (`?lang=en` or Accept-Language)."""
    if request is None:
        return "zh"
    params = request.query_params or {}
    if params.get("lang"):
        return "en" if params["lang"].lower().startswith("en") else "zh"
    accept = (request.headers or {}).get("accept-language", "")
    first = accept.split(",")[0].strip().lower()
    return "en" if first.startswith("en") else "zh"


def success(data: Any, status_code: int = 200) -> Response:
    return json_response({"status": "success", "data": data}, status_code)


def error_response(error: StocksyncError, lang: str) -> Response:
    body: dict[str, Any] = {"status": "error", "message": error.message(lang), "code": error.code}
    if error.data is not None:
        body["data"] = error.data
    return json_response(body, error.status_code)


def json_api(get_request: Callable[[], Request]) -> Callable[[Callable[..., Any]], Callable[..., Response]]:
    """Wrap a view: its return value is the `data`; a StocksyncError is the error answer."""
    def decorate(view: Callable[..., Any]) -> Callable[..., Response]:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Response:
            try:
                return success(view(*args, **kwargs))
            except StocksyncError as error:
                if error.status_code >= 500:
                    log.error("%s: %s", error.code, error.__cause__ or error)
                return error_response(error, language(get_request()))
        return wrapper
    return decorate
