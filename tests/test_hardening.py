"""Input that cannot hurt: every shape of bad input is a 4xx in the envelope that writes
nothing, and anything unexpected is a 500 in the envelope with a request id, logged once."""
from __future__ import annotations

import json
import logging
import socket
from typing import Any

import pytest
import requests
from chalice.test import Client

from chalicelib.config import FIRST_TRADING_DAY
from chalicelib.errors import shorten
from tests.conftest import TokenHttp, snapshot

BATCH = "/api/v1/sync-status/sync/batch"
DATES = "/api/v1/sync-status/dates"


@pytest.fixture
def http(app_module: Any, db: Any, stack: Any):
    with Client(app_module.app) as client:
        yield TokenHttp(client.http, stack.api_token)


def post(http: Any, body: Any, raw: str | bytes | None = None, **headers: str) -> Any:
    payload = raw if raw is not None else json.dumps(body)
    return http.post(BATCH, body=payload, headers={"content-type": "application/json", **headers})


def refused(answer: Any, status: int, code: str, db: Any, stack: Any, before: dict) -> dict:
    assert answer.status_code == status, answer.body[:300]
    body = answer.json_body
    assert body["status"] == "error" and body["code"] == code, body
    assert snapshot(db, stack) == before
    return body


@pytest.mark.parametrize("start, end, code", [
    ("0001-01-01", "0001-03-31", "start_date_too_early"),  # the year-1 range
    ("1990-12-18", "1990-12-20", "start_date_too_early"),
    ("1990-01-01", "1990-03-01", "start_date_too_early"),
])
def test_dates_before_the_first_trading_day_are_a_400(http, db, stack, start, end, code):
    before = snapshot(db, stack)
    body = refused(post(http, {"start_date": start, "end_date": end}), 400, code, db, stack, before)
    assert str(FIRST_TRADING_DAY) in body["message"]
    english = post(http, {"start_date": start, "end_date": end}, **{"accept-language": "en"})
    assert "first A-share trading day" in english.json_body["message"]


def test_the_first_trading_day_itself_is_accepted(http, db):
    answer = post(http, {"start_date": "1990-12-19", "end_date": "1990-12-21"})
    assert answer.status_code == 200, answer.json_body


def test_the_calendar_refuses_dates_before_the_first_trading_day(http, db):
    answer = http.get(DATES + "?start=1899-01-01&end=1899-02-01")
    assert answer.status_code == 400 and answer.json_body["code"] == "start_too_early"


@pytest.mark.parametrize("value", [
    "２０２５-10-01",        # fullwidth digits: `\d` matched them
    "٢٠٢٥-١٠-٠١",           # Arabic-Indic digits
    "2025-10-01\n",          # `$` matched before a trailing newline
    "2025-10-01 ",
    " 2025-10-01",
    "2025-10-01T00:00",
    "+2025-10-01",
])
def test_dates_are_ascii_digits_matched_whole(http, db, stack, value):
    before = snapshot(db, stack)
    refused(post(http, {"start_date": value, "end_date": "2025-10-09"}), 400, "start_date_format",
            db, stack, before)
    answer = http.get(DATES + "?start=" + requests.utils.quote(value) + "&end=2025-10-09")
    assert answer.status_code == 400 and answer.json_body["code"] == "start_format"


def test_an_echoed_bad_value_is_cut_short(http, db, stack):
    before = snapshot(db, stack)
    body = refused(post(http, {"start_date": "9" * 5000, "end_date": "2025-10-09"}), 400,
                   "start_date_format", db, stack, before)
    assert len(body["message"]) < 200 and "…" in body["message"]
    body = refused(post(http, {"start_date": [[[["x"] * 50] * 50]], "end_date": "2025-10-09"}), 400,
                   "start_date_format", db, stack, before)
    assert len(body["message"]) < 200
    assert shorten("\x00\ud800abc") == "\ufffd\ufffdabc"  # nothing unprintable is echoed


@pytest.mark.parametrize("raw", [
    "[" * 100 + "]" * 100,              # fine: an array, not an object
    "[" * 5000,                          # deeper than the parser's stack
    '{"start_date": ' + "[" * 3000 + "1" + "]" * 3000 + "}",
    "{" * 8000,
])
def test_deeply_nested_json_is_a_400_not_a_500(http, db, stack, raw):
    before = snapshot(db, stack)
    answer = post(http, None, raw=raw)
    assert answer.status_code == 400, answer.body[:200]
    assert answer.json_body["code"] in ("body_not_json", "body_not_object", "start_date_format")
    assert snapshot(db, stack) == before


def test_a_body_over_the_cap_is_a_413_in_the_envelope(http, db, stack, app_module):
    limit = app_module.get_settings().max_body_bytes
    assert limit == 16 * 1024
    before = snapshot(db, stack)
    body = {"start_date": "2025-10-01", "end_date": "2025-10-09", "padding": "x" * limit}
    answer = refused(post(http, body), 413, "body_too_large", db, stack, before)
    assert str(limit) in answer["message"]
    # Over real HTTP too, and to the cancel route.
    over = requests.post(stack.api_url + BATCH + "/cancel/2025-10-01_2025-10-09_1", data="x" * (limit + 1),
                         headers={"Authorization": f"Bearer {stack.api_token}"}, timeout=30)
    assert over.status_code == 413 and over.json()["code"] == "body_too_large"
    assert post(http, {"start_date": "2025-10-01", "end_date": "2025-10-09",
                       "padding": "x" * (limit - 100)}).status_code == 200


@pytest.mark.parametrize("task_id", [
    "2025-10-01_2025-10-09_1\x00",       # a NUL, as API Gateway hands over a decoded %00
    "2025-10-01_2025-10-09_1%00",
    "\ud800",
    "' OR 1=1 --",
    "x" * 3000,
    "２０２５-10-01_2025-10-09_1",
])
def test_task_ids_are_checked_before_any_sql(http, db, stack, task_id):
    before = snapshot(db, stack)
    for answer in (http.get(f"{BATCH}/progress/{task_id}"), http.get(f"{BATCH}/days/{task_id}"),
                   http.post(f"{BATCH}/cancel/{task_id}")):
        body = refused(answer, 404, "not_found", db, stack, before)
        assert len(body["message"]) < 120
        json.dumps(body).encode("utf-8")  # nothing that cannot be encoded


def test_a_nul_in_a_task_id_over_http_is_a_404(stack, db):
    answer = requests.get(f"{stack.api_url}{BATCH}/progress/2025-10-01_2025-10-09_1%00", timeout=10,
                          headers={"Authorization": f"Bearer {stack.api_token}"})
    assert answer.status_code == 404 and answer.json()["code"] == "not_found"


@pytest.mark.parametrize("query", ["?start=%ff%fe&end=2025-10-09", "?start=2025-10-01&end=2025-10-09&lang=%00",
                                   "?start=2025-10-01&start=2025-10-02&end=2025-10-09", "?%%%=&&&",
                                   "?start=" + "9" * 5000 + "&end=2025-10-09"])
def test_odd_query_strings_are_4xx_or_answered(stack, db, query):
    answer = requests.get(stack.api_url + DATES + query, timeout=10,
                          headers={"Authorization": f"Bearer {stack.api_token}"})
    assert answer.status_code < 500, answer.text[:300]
    assert answer.json()["status"] in ("success", "error")


def test_chalice_own_errors_come_in_the_envelope(http, stack, db):
    unsupported = http.post(BATCH, body=b"{}", headers={"content-type": "image/png"})
    assert unsupported.status_code == 415
    assert unsupported.json_body == {"status": "error", "code": "unsupported_media_type",
                                     "message": "不支持的请求体类型: image/png"}
    wrong_method = http.request("PUT", BATCH + "/jobs")
    assert wrong_method.status_code == 405 and wrong_method.json_body["code"] == "method_not_allowed"
    assert wrong_method.headers["Allow"] == "GET, OPTIONS"
    over_http = requests.delete(stack.api_url + BATCH, timeout=10)
    assert over_http.status_code == 405 and over_http.json()["status"] == "error"
    assert over_http.json()["message"] == "此地址不支持 DELETE 请求"


def raw_http(stack: Any, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """One request as bytes on its own connection, as a client that checks nothing would send."""
    host, port = stack.api_url.rsplit("//", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), headers, body


def test_an_unknown_path_is_a_404_in_the_envelope_that_never_quotes_the_token(stack, db):
    """chalice local's own answer to an unknown path sent with a token was a 403 quoting the
    Authorization header ("... Authorization=Bearer sst_..."); deployed, a gateway response
    answers 404 `not_found` without it."""
    before = snapshot(db, stack)
    for path in ("/api/v1/nothing", BATCH + "/progress/", BATCH + "/cancel/", "/"):
        for method in ("GET", "POST", "DELETE"):
            answer = requests.request(method, stack.api_url + path, timeout=10,
                                      headers={"Authorization": f"Bearer {stack.api_token}"})
            assert answer.status_code == 404, (method, path, answer.text[:200])
            assert stack.api_token not in answer.text and "Authorization" not in answer.text
            body = answer.json()
            assert (body["status"], body["code"], body["message"]) == ("error", "not_found", "地址不存在")
            assert body["data"]["request_id"] == answer.headers["X-Request-Id"]
    english = requests.get(stack.api_url + "/api/v1/nothing?lang=en", timeout=10)
    assert english.status_code == 404 and english.json()["message"] == "No such address"
    assert requests.get(stack.api_url + "/api/v1/nothing", timeout=10,
                        headers={"Accept-Language": "en-US"}).json()["message"] == "No such address"
    # A header that is not ASCII made chalice's quoting raise: the connection dropped, no answer.
    status, _, body = raw_http(stack, b"GET /api/v1/nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                      b"Authorization: Bearer \xe4\xb8\xad\r\n\r\n")
    assert status == 404 and json.loads(body)["code"] == "not_found"
    assert snapshot(db, stack) == before


def test_what_the_local_server_answers_itself_is_in_the_envelope(stack, db):
    """Any method reaches the app (405; http.server's own answer was an HTML 501), and a
    request http.server cannot parse is a 4xx in the envelope, not HTML or a dropped connection."""
    token = f"Authorization: Bearer {stack.api_token}\r\n".encode()
    for method in (b"TRACE", b"FOO"):
        status, headers, body = raw_http(stack, method + b" " + BATCH.encode() + b"/jobs HTTP/1.1\r\n"
                                         b"Host: x\r\nConnection: close\r\n" + token + b"\r\n")
        assert status == 405 and json.loads(body)["code"] == "method_not_allowed", body[:200]
        status, _, body = raw_http(stack, method + b" /api/v1/nothing HTTP/1.1\r\nHost: x\r\n"
                                          b"Connection: close\r\n\r\n")
        assert status == 404 and json.loads(body)["code"] == "not_found"
    status, _, body = raw_http(stack, b"POST " + BATCH.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                                      b"Content-Length: abc\r\nConnection: close\r\n" + token + b"\r\n")
    assert status == 400 and json.loads(body)["code"] == "bad_request"
    status, headers, body = raw_http(stack, b"GET /api/" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 414 and json.loads(body)["code"] == "uri_too_long"
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    many = b"".join(b"X-%d: y\r\n" % i for i in range(150))
    status, _, body = raw_http(stack, b"GET /api/v1/sync-status/whoami?lang=en HTTP/1.1\r\nHost: x\r\n"
                                      + many + b"\r\n")
    assert status == 431 and json.loads(body)["message"] == "The request's headers are too large"
    # Still serving.
    assert requests.get(stack.api_url + "/api/v1/sync-status/whoami", timeout=10,
                        headers={"Authorization": f"Bearer {stack.api_token}"}).status_code == 200


def test_an_unexpected_error_is_a_500_in_the_envelope_logged_once_with_its_request_id(
        http, app_module, stack, db, monkeypatch, caplog):
    jobs = app_module.get_jobs()

    def broken(task_id: str) -> Any:
        raise RuntimeError("something nobody expected")
    monkeypatch.setattr(jobs, "progress", broken)
    with caplog.at_level(logging.DEBUG):
        answer = http.get(f"{BATCH}/progress/2025-10-01_2025-10-09_1?lang=en")
    assert answer.status_code == 500
    body = answer.json_body
    request_id = body["data"]["request_id"]
    assert body["status"] == "error" and body["code"] == "internal_error"
    assert request_id in body["message"] and answer.headers["X-Request-Id"] == request_id
    assert "Traceback" not in answer.body.decode() and "nobody expected" not in answer.body.decode()
    logged = [r for r in caplog.records if request_id in r.getMessage()]
    assert len(logged) == 1 and logged[0].levelno == logging.ERROR
    assert "something nobody expected" in logged[0].getMessage()  # the log has the cause


def test_the_request_id_is_api_gateways_when_there_is_one(app_module, stack, db, monkeypatch):
    """Called as API Gateway calls the Lambda: its requestId is the one answered and logged."""
    monkeypatch.setattr(app_module.get_jobs(), "recent", lambda: 1 / 0)
    event = {
        "resource": BATCH + "/jobs", "path": BATCH + "/jobs", "httpMethod": "GET",
        "headers": {"Authorization": f"Bearer {stack.api_token}", "Host": "abc.execute-api.example"},
        "multiValueHeaders": {}, "queryStringParameters": None,
        "multiValueQueryStringParameters": None, "pathParameters": None, "stageVariables": None,
        "requestContext": {"resourcePath": BATCH + "/jobs", "httpMethod": "GET", "stage": "api",
                           "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"},
        "body": None, "isBase64Encoded": False}
    answer = app_module.app(event, None)
    assert answer["statusCode"] == 500
    assert answer["headers"]["X-Request-Id"] == "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
    assert json.loads(answer["body"])["data"]["request_id"] == "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
