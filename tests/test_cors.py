"""CORS closed by default: only CORS_ALLOW_ORIGINS get their origin back, never `*`; a page
of another site cannot start a job, not even through a visitor's browser (chromium)."""
from __future__ import annotations

import http.server
import json
import os
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests

from chalicelib.config import parse_origins
from chalicelib.errors import ConfigError
from devstack.services import free_port
from tests.conftest import snapshot

BATCH = "/api/v1/sync-status/sync/batch"
SEED = json.dumps({"start_date": "2025-10-01", "end_date": "2025-10-09"})


def listed(stack: Any) -> str:
    return f"http://localhost:{stack.options.port}"


def test_no_origin_no_cors_headers_but_vary(stack, db):
    answer = requests.get(stack.api_url + BATCH + "/jobs", timeout=10,
                          headers={"Authorization": f"Bearer {stack.api_token}"})
    assert answer.status_code == 200
    assert "Access-Control-Allow-Origin" not in answer.headers and answer.headers["Vary"] == "Origin"


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://localhost:1",
                                    "http://127.0.0.1.evil.example"])
def test_an_unlisted_origin_gets_no_cors_headers(stack, db, origin):
    for answer in (
        requests.get(stack.api_url + BATCH + "/jobs", timeout=10,
                     headers={"Origin": origin, "Authorization": f"Bearer {stack.api_token}"}),
        requests.options(stack.api_url + BATCH, timeout=10, headers={
            "Origin": origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type"}),
    ):
        assert "Access-Control-Allow-Origin" not in answer.headers, answer.headers
    assert answer.status_code == 403 and answer.json()["code"] == "origin_not_allowed"


def test_a_listed_origin_gets_itself_back_and_a_preflight(stack, db):
    origin = listed(stack)
    preflight = requests.options(stack.api_url + BATCH, timeout=10, headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type"})
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == origin
    assert preflight.headers["Access-Control-Allow-Methods"] == "OPTIONS, POST"
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Credentials" not in preflight.headers
    read = requests.get(stack.api_url + BATCH + "/jobs", timeout=10,
                        headers={"Origin": origin, "Authorization": f"Bearer {stack.api_token}"})
    assert read.headers["Access-Control-Allow-Origin"] == origin and read.headers["Vary"] == "Origin"
    assert "X-Request-Id" in read.headers["Access-Control-Expose-Headers"]
    write = requests.post(stack.api_url + BATCH, data=SEED, timeout=10,
                          headers={"Origin": origin, "Authorization": f"Bearer {stack.api_token}"})
    assert write.status_code == 200 and write.headers["Access-Control-Allow-Origin"] == origin


def test_no_answer_ever_says_star(stack, db):
    for origin in (None, "https://evil.example", listed(stack)):
        headers = {"Origin": origin} if origin else {}
        for method, path in (("GET", BATCH + "/jobs"), ("POST", BATCH), ("OPTIONS", BATCH),
                             ("GET", "/sync-status")):
            answer = requests.request(method, stack.api_url + path, headers=headers, timeout=10)
            assert answer.headers.get("Access-Control-Allow-Origin") != "*", (method, path)


def test_star_and_malformed_origins_are_refused_in_configuration():
    for text in ("*", "https://a.example/path", "a.example", "https://a.example, *"):
        with pytest.raises(ConfigError):
            parse_origins(text)
    assert parse_origins(" https://A.example/ ,http://b.example:8080") == (
        "https://a.example", "http://b.example:8080")


def test_a_cross_site_simple_request_starts_nothing(stack, db):
    """What a page on another site can make a browser send without a preflight:
    a text/plain POST with its Origin. No token: 401. Even with one: 403."""
    before = snapshot(db, stack)
    simple = {"Origin": "https://evil.example", "Content-Type": "text/plain"}
    answer = requests.post(stack.api_url + BATCH, data=SEED, headers=simple, timeout=10)
    assert answer.status_code == 401 and "Access-Control-Allow-Origin" not in answer.headers
    answer = requests.post(stack.api_url + BATCH, data=SEED, timeout=10,
                           headers={**simple, "Authorization": f"Bearer {stack.api_token}"})
    assert answer.status_code == 403 and answer.json()["code"] == "origin_not_allowed"
    assert snapshot(db, stack) == before
    # Same origin (the page the API serves) is a write like any other.
    same = requests.post(stack.api_url + BATCH, data=SEED, timeout=10, headers={
        "Origin": stack.api_url, "Authorization": f"Bearer {stack.api_token}"})
    assert same.status_code == 200


# --- in a browser -----------------------------------------------------------------------

ATTACK_PAGE = """<!doctype html><meta charset="utf-8"><title>another site</title>
<script>
const api = new URLSearchParams(location.search).get("api") + "/api/v1/sync-status/sync/batch";
const token = new URLSearchParams(location.search).get("stolen");
const body = JSON.stringify({start_date: "2025-10-01", end_date: "2025-10-09"});
async function attempt(name, init) {
  try { const r = await fetch(api, init); return name + ":" + r.status + ":" + r.type; }
  catch (e) { return name + ":blocked"; }
}
window.results = Promise.all([
  attempt("simple", {method: "POST", body, headers: {"Content-Type": "text/plain"}}),
  attempt("no-cors", {method: "POST", mode: "no-cors", body}),
  attempt("stolen-token", {method: "POST", body,
          headers: {"Authorization": "Bearer " + token, "Content-Type": "application/json"}}),
]);
</script>
<form id="form" method="post" enctype="text/plain" target="sink"><input name='{"start_date":"2025-10-01","end_date":"2025-10-09","x":"' value='"}'></form>
<iframe name="sink"></iframe>
"""


@pytest.fixture
def other_site(tmp_path: Path) -> Iterator[str]:
    """A tiny web server on another port: another origin, as another site would be."""
    (tmp_path / "attack.html").write_text(ATTACK_PAGE, encoding="utf-8")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any):
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, *args: Any) -> None:
            pass
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_page_on_another_origin_cannot_start_a_job_in_a_browser(stack, db, other_site):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    chromium = Path("/usr/bin/chromium")
    if not os.access(chromium, os.X_OK):
        pytest.skip("no browser: /usr/bin/chromium is missing (`make browser` installs it)")
    before = snapshot(db, stack)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium),
                                             args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            sent: list[tuple[str, str]] = []
            page.on("request", lambda r: sent.append((r.method, r.url)))
            # The worst case: the other site even holds the operator's token.
            page.goto(f"{other_site}/attack.html?api={stack.api_url}&stolen={stack.api_token}")
            results = page.evaluate("window.results")
            page.evaluate(f"document.getElementById('form').action = {json.dumps(stack.api_url + BATCH)};"
                          "document.getElementById('form').submit()")
            page.wait_for_timeout(1000)
        finally:
            browser.close()
    # The simple request reaches the API (401) but the page may not read it; the one with
    # the token needs a preflight, which the API refuses, so it is never sent.
    assert results == ["simple:blocked", "no-cors:0:opaque", "stolen-token:blocked"], results
    assert ("POST", stack.api_url + BATCH) in sent
    assert snapshot(db, stack) == before
