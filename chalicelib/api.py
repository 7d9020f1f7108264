"""The HTTP contract: the seed's `status`/`data`/`message` envelope, and error mapping.

Every API route goes through `JsonApi` (`@json_api(role=...)` in app.py), the one
place where a request is checked (token and role, origin of a write, body size)
before the view runs, and where the exception hierarchy of chalicelib.errors
becomes HTTP status codes and messages. Anything else a view raises becomes a 500
in the same envelope, with a request id that is also in the one log line written
about it. `middleware` puts the envelope on the errors Chalice answers itself
(405, 415, ...) and the request id and CORS headers on every answer.
"""
from __future__ import annotations

import functools
import inspect
import json
import logging
import re
import traceback
import uuid
from typing import Any, Callable

from chalice.app import Request, Response

from chalicelib.auth import PUBLIC, Authenticator
from chalicelib.cors import CorsPolicy
from chalicelib.errors import (Forbidden, InternalError, PayloadTooLarge, StocksyncError,
                               ValidationError, shorten)
from chalicelib.secrecy import redact

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-Id"
_REQUEST_ID = re.compile(r"[A-Za-z0-9-]{8,64}")
_CONTEXT_KEY = "stocksync_request_id"
READ_METHODS = {"GET", "HEAD", "OPTIONS"}
# The attribute a view's access rule is kept in (the 401/403 tests read it).
ACCESS_ATTRIBUTE = "stocksync_access"
PREFLIGHT = "preflight"


def json_response(payload: Any, status_code: int, headers: dict[str, str] | None = None) -> Response:
    # Chinese as UTF-8 rather than \u escapes: readable in curl and logs alike.
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return Response(body=body, status_code=status_code,
                    headers={**(headers or {}), "Content-Type": "application/json; charset=utf-8"})


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
    return json_response(body, error.status_code, error.headers)


def request_id(request: Request | None) -> str:
    """API Gateway's id for the request when there is one (its logs use it too), else a new one."""
    if request is None:
        return uuid.uuid4().hex
    context = request.context
    if _CONTEXT_KEY not in context:
        given = context.get("requestId")
        context[_CONTEXT_KEY] = given if isinstance(given, str) and _REQUEST_ID.fullmatch(given) \
            else uuid.uuid4().hex
    return context[_CONTEXT_KEY]


def access_of(view: Callable[..., Any]) -> str | None:
    """The role a route's view requires, `public`, `preflight`, or None when it declares none."""
    return getattr(view, ACCESS_ATTRIBUTE, None)


def public(view: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a view as open to anyone (the page's own static files)."""
    setattr(view, ACCESS_ATTRIBUTE, PUBLIC)
    return view


def internal_error(request: Request | None, exc: BaseException) -> Response:
    """A 500 in the envelope; the one log line about it carries the id and the cause."""
    rid = request_id(request)
    where = f"{request.method} {request.context.get('resourcePath', '?')}" if request else "?"
    cause = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    log.error("request %s: unexpected %s in %s\n%s", rid, exc.__class__.__name__, where,
              redact(cause))
    return error_response(InternalError.unexpected(rid), language(request))


class JsonApi:
    """`json_api(role=...)`: the decorator every API view carries, next to its route."""

    def __init__(self, get_request: Callable[[], Request],
                 get_authenticator: Callable[[], Authenticator],
                 get_cors: Callable[[], CorsPolicy],
                 get_max_body_bytes: Callable[[], int]):
        self._get_request = get_request
        self._get_authenticator = get_authenticator
        self._get_cors = get_cors
        self._get_max_body_bytes = get_max_body_bytes

    def __call__(self, role: str) -> Callable[[Callable[..., Any]], Callable[..., Response]]:
        def decorate(view: Callable[..., Any]) -> Callable[..., Response]:
            wants_principal = "principal" in inspect.signature(view).parameters

            @functools.wraps(view)
            def wrapper(*args: Any, **kwargs: Any) -> Response:
                request = self._get_request()
                try:
                    # Before anything else, and so before any database access.
                    principal = self._get_authenticator().authorize(request.headers, role)
                    self._check_request(request)
                    if wants_principal:
                        kwargs["principal"] = principal
                    return success(view(*args, **kwargs))
                except StocksyncError as error:
                    if error.status_code >= 500:
                        log.error("request %s: %s: %s", request_id(request), error.code,
                                  redact(str(error.__cause__ or error)))
                    return error_response(error, language(request))
                except Exception as exc:  # noqa: BLE001 - the catch-all: nothing leaks as a bare 500
                    return internal_error(request, exc)
            setattr(wrapper, ACCESS_ATTRIBUTE, role)
            return wrapper
        return decorate

    def _check_request(self, request: Request) -> None:
        if request.method not in READ_METHODS and not self._get_cors().write_allowed(request.headers):
            raise Forbidden.origin()
        size = len(request.raw_body or b"")
        limit = self._get_max_body_bytes()
        if size > limit:
            raise PayloadTooLarge.body(size, limit)

    def preflight(self, methods: list[str]) -> Callable[..., Response]:
        """The OPTIONS view of a path whose other methods are `methods`."""
        def view(**_: Any) -> Response:
            request = self._get_request()
            headers = self._get_cors().preflight_headers(request.headers, methods)
            if headers is None:
                return error_response(Forbidden.origin_cors(), language(request))
            return Response(body="", status_code=204, headers=headers)
        setattr(view, ACCESS_ATTRIBUTE, PREFLIGHT)
        return view


def _chalice_error(response: Response, request: Request) -> Response:
    """Chalice's own `{"Code": ..., "Message": ...}` answers, in the API's envelope."""
    code = response.body.get("Code", "")
    if response.status_code >= 500:
        return error_response(InternalError.unexpected(request_id(request)), language(request))
    if code == "MethodNotAllowedError":
        method = shorten(request.method, 16)
        error = ValidationError("method_not_allowed", f"此地址不支持 {method} 请求",
                                f"{method} is not allowed here")
    elif code == "UnsupportedMediaType":
        kind = shorten((request.headers or {}).get("content-type", ""), 80)
        error = ValidationError("unsupported_media_type", f"不支持的请求体类型: {kind}",
                                f"Unsupported Content-Type: {kind}")
    else:
        detail = shorten(str(response.body.get("Message", "")), 120)
        error = ValidationError("bad_request", f"请求无效: {detail}", f"Bad request: {detail}")
    error.status_code = response.status_code
    error.headers = {k: v for k, v in response.headers.items() if k.lower() == "allow"}
    return error_response(error, language(request))


def middleware(get_cors: Callable[[], CorsPolicy]) -> Callable[..., Response]:
    """Chalice HTTP middleware: envelope, request id and CORS on every answer."""
    def handle(event: Request, get_response: Callable[[Request], Response]) -> Response:
        rid = request_id(event)
        try:
            response = get_response(event)
            if isinstance(response.body, dict) and "Code" in response.body:
                response = _chalice_error(response, event)
            cors = get_cors().response_headers(event.headers or {})
        except Exception as exc:  # noqa: BLE001 - a broken setting, say: still the envelope
            response = internal_error(event, exc)
            cors = {"Vary": "Origin"}
        for name, value in cors.items():
            response.headers.setdefault(name, value)
        response.headers[REQUEST_ID_HEADER] = rid
        return response
    return handle
