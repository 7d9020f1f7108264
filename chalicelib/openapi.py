"""The API's OpenAPI 3 description, served at GET /api/v1/openapi.json.

Paths and methods come from Chalice's route table and each operation's security
from the role its view declares, so neither can drift from the code; what each
operation takes and answers is described in OPERATIONS below. The test suite
fuzzes every operation from this document (tests/test_fuzz.py).
"""
from __future__ import annotations

from typing import Any, Mapping

from chalicelib.api import PREFLIGHT, access_of
from chalicelib.auth import OPERATOR, READER
from chalicelib.datasets import DATASETS, DEFAULT_DATASETS

BATCH = "/api/v1/sync-status/sync/batch"
DATE_PATTERN = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
TASK_ID = {"name": "task_id", "in": "path", "required": True,
           "schema": {"type": "string", "maxLength": 64,
                      "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}_[0-9]{4}-[0-9]{2}-[0-9]{2}_[0-9]{1,12}$"},
           "description": "start_end_epochseconds, as the start answer gave it"}
LANG = {"name": "lang", "in": "query", "required": False,
        "schema": {"type": "string", "enum": ["zh", "en"]},
        "description": "messages in English with `en` (also Accept-Language); Chinese by default"}

ERROR_CODES = {
    "400": "the request names what is wrong (`code`, `message`)",
    "401": "no token, or one that is not valid (`WWW-Authenticate: Bearer`)",
    "403": "the token's role may not do this, or a write from a page of another origin",
    "404": "no such task (the live ticket: pushed progress not enabled here)",
    "405": "method not allowed",
    "409": "a job is running or paused (`data.task_id`, `data.status`), the job has ended "
           "(or, for a retry, has not ended, or has no failed day; for a fill, no gap found)",
    "413": "body over the size limit (MAX_BODY_BYTES, 16 KiB)",
    "415": "unsupported Content-Type",
    "429": "the token's write limit; `Retry-After` says when",
    "500": "unexpected; the answer carries a request id",
    "503": "the database, the queue or (for an audit) tushare is unavailable",
}

SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["status", "code", "message"], "properties": {
        "status": {"type": "string", "enum": ["error"]},
        "code": {"type": "string"}, "message": {"type": "string"},
        "data": {"type": "object"}}},
    "Success": {"type": "object", "required": ["status", "data"], "properties": {
        "status": {"type": "string", "enum": ["success"]}, "data": {}}},
    "BatchRequest": {"type": "object", "required": ["start_date", "end_date"], "properties": {
        "start_date": {"type": "string", "pattern": DATE_PATTERN, "example": "2025-10-01"},
        "end_date": {"type": "string", "pattern": DATE_PATTERN, "example": "2025-10-09"},
        "force": {"type": "boolean", "default": False},
        "datasets": {"type": "array", "items": {"type": "string", "enum": list(DATASETS)},
                     "minItems": 1, "default": list(DEFAULT_DATASETS),
                     "description": "the tushare datasets the job syncs (each day, each dataset)"}}},
    "FillRequest": {"type": "object", "required": ["start", "end"], "properties": {
        "start": {"type": "string", "pattern": DATE_PATTERN, "example": "2025-10-01"},
        "end": {"type": "string", "pattern": DATE_PATTERN, "example": "2025-10-31"},
        "datasets": {"type": "array", "items": {"type": "string", "enum": list(DATASETS)},
                     "minItems": 1, "default": list(DEFAULT_DATASETS)},
        "recheck": {"type": "boolean", "default": False}}},
}

JSON_BODY = {"required": True, "content": {
    media: {"schema": {"$ref": "#/components/schemas/BatchRequest"}}
    for media in ("application/json", "text/plain")}}
FILL_BODY = {"required": True, "content": {
    media: {"schema": {"$ref": "#/components/schemas/FillRequest"}}
    for media in ("application/json", "text/plain")}}
AUDIT_PARAMS = [
    {"name": "start", "in": "query", "required": True, "schema": {"type": "string", "pattern": DATE_PATTERN}},
    {"name": "end", "in": "query", "required": True, "schema": {"type": "string", "pattern": DATE_PATTERN}},
    {"name": "datasets", "in": "query", "required": False,
     "schema": {"type": "string", "example": "daily,adj_factor"},
     "description": "comma-separated dataset names (default daily)"},
    {"name": "recheck", "in": "query", "required": False, "schema": {"type": "boolean"},
     "description": "also ask tushare each day's count (spends quota, so it needs an operator token; "
                    "at most AUDIT_RECHECK_MAX pairs)"},
]

OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    (BATCH, "POST"): {"summary": "Start a batch sync of a date range (at most 90 days)",
                      "requestBody": JSON_BODY, "parameters": [LANG]},
    (BATCH + "/progress/{task_id}", "GET"): {"summary": "A job's progress", "parameters": [TASK_ID, LANG]},
    (BATCH + "/cancel/{task_id}", "POST"): {"summary": "Cancel a running or paused job",
                                           "parameters": [TASK_ID, LANG]},
    (BATCH + "/pause/{task_id}", "POST"): {
        "summary": "Pause a running job: no new day starts; days already running finish "
                   "(a paused job: unchanged)", "parameters": [TASK_ID, LANG]},
    (BATCH + "/resume/{task_id}", "POST"): {
        "summary": "Resume a paused job where it stopped (a running job: unchanged)",
        "parameters": [TASK_ID, LANG]},
    (BATCH + "/retry/{task_id}", "POST"): {
        "summary": "Re-open an ended job with only its failed days pending, with fresh attempts "
                   "(counted as a job start)", "parameters": [TASK_ID, LANG]},
    (BATCH + "/days/{task_id}", "GET"): {"summary": "Every day of a job", "parameters": [TASK_ID, LANG]},
    (BATCH + "/events/{task_id}", "GET"): {
        "summary": "A job's history: created, paused, resumed, cancelled, retried, completed",
        "parameters": [TASK_ID, LANG]},
    (BATCH + "/jobs", "GET"): {"summary": "Recent jobs, with who started and cancelled them",
                               "parameters": [LANG]},
    ("/api/v1/sync-status/dates", "GET"): {
        "summary": "Each date's state in a range (at most 400 days), for the page's calendar",
        "parameters": [{"name": name, "in": "query", "required": True,
                        "schema": {"type": "string", "pattern": DATE_PATTERN}} for name in ("start", "end")]
        + [LANG]},
    ("/api/v1/sync-status/audit", "GET"): {
        "summary": "Per trading day and dataset of a range (at most 400 days): what is stored "
                   "against what the listings say should be (missing, short, mismatch; with "
                   "recheck, against tushare's count too)", "parameters": AUDIT_PARAMS + [LANG]},
    ("/api/v1/sync-status/audit/fill", "POST"): {
        "summary": "Audit a range, then start one job that syncs exactly its faulty (day, "
                   "dataset) pairs (409 nothing_to_fill when there are none)",
        "requestBody": FILL_BODY, "parameters": [LANG]},
    ("/api/v1/sync-status/live/ticket", "POST"): {
        "summary": "A one-time ticket (valid 30 s) to open the WebSocket of pushed progress: "
                   "`{ticket, expires_in_s, url}`; connect to `url?ticket=...`. 404 "
                   "`live_unavailable` where no WebSocket API is deployed", "parameters": [LANG]},
    ("/api/v1/sync-status/whoami", "GET"): {
        "summary": "The caller: token name and role, and whether reads are public", "parameters": [LANG]},
    ("/api/v1/openapi.json", "GET"): {"summary": "This document"},
    ("/sync-status", "GET"): {"summary": "The sync page", "html": True},
    ("/sync-status/{name}", "GET"): {
        "summary": "The page's own files", "html": True,
        "parameters": [{"name": "name", "in": "path", "required": True,
                        "schema": {"type": "string", "maxLength": 64}}]},
}


def _responses(access: str | None, html: bool) -> dict[str, Any]:
    if html:
        return {"200": {"description": "the file", "content": {"text/html": {}}},
                "404": {"description": "no such file", "content": _json("Error")}}
    if access == PREFLIGHT:
        return {"204": {"description": "a listed origin: the CORS headers"},
                "403": {"description": "an origin not in CORS_ALLOW_ORIGINS", "content": _json("Error")}}
    responses = {"200": {"description": "`data` is the answer", "content": _json("Success")}}
    for status, text in ERROR_CODES.items():
        responses[status] = {"description": text, "content": _json("Error")}
    return responses


def _json(schema: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}


def _security(access: str | None) -> list[dict[str, list[str]]]:
    return [{"bearer": []}] if access in (OPERATOR, READER) else []


def describe(routes: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The document for Chalice's `app.routes` (path -> method -> RouteEntry)."""
    paths: dict[str, Any] = {}
    for path, methods in sorted(routes.items()):
        for method, entry in sorted(methods.items()):
            access = access_of(entry.view_function)
            info = OPERATIONS.get((path, method), {})
            if method == "OPTIONS":
                info = {"summary": "CORS preflight", "parameters": [
                    p for p in OPERATIONS.get((path, _other_method(methods)), {}).get("parameters", [])
                    if p["in"] == "path"]}
            operation: dict[str, Any] = {
                "operationId": f"{method.lower()}_{entry.view_name}",
                "summary": info.get("summary", "undocumented"),
                "parameters": list(info.get("parameters", [])),
                "responses": _responses(access, bool(info.get("html"))),
                "security": _security(access),
                "x-stocksync-access": access or "undeclared",
            }
            if "requestBody" in info:
                operation["requestBody"] = info["requestBody"]
            if access == READER:
                operation["description"] = "reader or operator token; none needed when PUBLIC_READ=true"
            elif access == OPERATOR:
                operation["description"] = "operator token; counted against its write limits"
            paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.0.3",
        "info": {"title": "stocksync", "version": "1",
                 "description": "Batch sync of China A-share daily bars; the seed's envelope "
                                "`{status, data | code + message}`."},
        "paths": paths,
        "components": {"schemas": SCHEMAS, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer",
                       "description": "a token of API_TOKENS (README: Security model)"}}},
    }


def _other_method(methods: Mapping[str, Any]) -> str:
    return next((m for m in sorted(methods) if m != "OPTIONS"), "GET")
