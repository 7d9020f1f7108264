"""Who may call what: the 401/403 matrix over every route of the app, in-process and over
HTTP (`chalice local`), and what a token's name leaves in the job history.

The matrix reads `app.app.routes`: a new route fails it until its view declares a role
(`@json_api(role=...)`) and answers as that role says.
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from typing import Any

import pytest
import requests
from chalice.test import Client

from chalicelib import api as api_module
from chalicelib.auth import (OPERATOR, PUBLIC, READER, Authenticator, hash_token,
                             new_token, parse_tokens)
from chalicelib.errors import ConfigError
from devstack.tokens import LOCAL_TOKEN_NAME, local_operator_token
from tests.conftest import READER_NAME, READER_TOKEN, ChaliceLocal, TokenHttp, fetch_all, snapshot

BATCH = "/api/v1/sync-status/sync/batch"
SEED_BODY = json.dumps({"start_date": "2025-10-01", "end_date": "2025-10-09"})
# A task id of the right shape that names no job.
NO_SUCH_TASK = "2025-10-01_2025-10-09_1"
BOGUS = "sst_" + "x" * 43
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def concrete(path: str) -> str:
    return path.replace("{task_id}", NO_SUCH_TASK).replace("{name}", "index.html")


def identities(operator: str) -> dict[str, dict[str, str]]:
    return {"none": {}, "bogus": {"Authorization": f"Bearer {BOGUS}"},
            "basic": {"Authorization": "Basic dXNlcjpwYXNz"},
            "empty_bearer": {"Authorization": "Bearer "},
            "reader": {"Authorization": f"Bearer {READER_TOKEN}"},
            "operator": {"Authorization": f"Bearer {operator}"}}


def expected(access: str, who: str, public_read: bool = False) -> set[int] | str:
    """The statuses a caller may get: a set, or 'allowed' (any answer but 401 and 403)."""
    if access == PUBLIC:
        return "allowed"
    if who in ("bogus", "basic", "empty_bearer"):
        return {401}
    if who == "none":
        return "allowed" if (access == READER and public_read) else {401}
    if access == OPERATOR and who == "reader":
        return {403}
    return "allowed"


class Caller:
    """One request, in-process (chalice.test.Client) or over HTTP: (status, headers, json)."""

    def __init__(self, http: Any = None, base_url: str | None = None):
        self._http = http
        self._base = base_url

    def __call__(self, method: str, path: str, headers: dict[str, str], body: str = "") -> tuple[int, Any, Any]:
        if self._http is not None:
            answer = self._http.request(method=method, path=path, headers=headers, body=body.encode())
            status, got, raw = answer.status_code, answer.headers, answer.body
        else:
            answer = requests.request(method, self._base + path, headers=headers, data=body.encode(),
                                      timeout=30)
            status, got, raw = answer.status_code, answer.headers, answer.content
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = None
        return status, got, payload


def run_matrix(call: Caller, db: Any, stack: Any, public_read: bool = False) -> int:
    import app
    checked = 0
    for path, views in sorted(app.app.routes.items()):
        for method in METHODS:
            entry = views.get(method)
            for who, headers in identities(stack.api_token).items():
                body = SEED_BODY if method == "POST" else ""
                sent = {**headers, "Content-Type": "application/json"}
                if entry is None:
                    if who not in ("none", "operator"):
                        continue
                    # No such method here: Chalice's 405, in the envelope, and nothing written.
                    before = snapshot(db, stack)
                    status, got, payload = call(method, concrete(path), sent, body)
                    assert status == 405, (method, path, who, status, payload)
                    assert payload["status"] == "error" and payload["code"] == "method_not_allowed"
                    assert snapshot(db, stack) == before
                    continue
                access = api_module.access_of(entry.view_function)
                assert access in (OPERATOR, READER, PUBLIC, api_module.PREFLIGHT), \
                    f"{method} {path} declares no role: add @json_api(role=...) and its tests"
                if method == "OPTIONS":
                    # A preflight carries no credentials: never 401, and without a listed
                    # origin no CORS header at all.
                    before = snapshot(db, stack)
                    status, got, payload = call(method, concrete(path), sent)
                    assert status == 403 and payload["code"] == "origin_not_allowed", (path, who)
                    assert "Access-Control-Allow-Origin" not in got
                    assert snapshot(db, stack) == before
                    continue
                want = expected(access, who, public_read)
                before = snapshot(db, stack)
                status, got, payload = call(method, concrete(path), sent, body)
                checked += 1
                where = (method, path, who, status, payload)
                if want == "allowed":
                    assert status not in (401, 403) and status < 500, where
                    continue
                assert status in want, where
                assert payload["status"] == "error", where
                assert payload["code"] == ("unauthorized" if status == 401 else "forbidden"), where
                if status == 401:
                    assert got["WWW-Authenticate"].startswith("Bearer"), where
                # A refused request writes nothing and counts against nothing.
                assert snapshot(db, stack) == before, where
    return checked


def test_every_route_and_method_in_process(app_module, db, stack):
    with Client(app_module.app) as client:
        checked = run_matrix(Caller(http=client.http), db, stack)
    assert checked >= 9 * 6


def test_every_route_and_method_over_http_under_chalice_local(stack, db):
    checked = run_matrix(Caller(base_url=stack.api_url), db, stack)
    assert checked >= 9 * 6


def test_the_matrix_and_the_fuzz_reach_pause_resume_retry_and_events(app_module, stack):
    """run_matrix walks app.routes and the fuzz walks the published document: both hold the
    new routes, with the roles they declare."""
    from chalicelib import openapi
    routes = app_module.app.routes
    declared = {(path, method): api_module.access_of(entry.view_function)
                for path, methods in routes.items() for method, entry in methods.items()}
    for action in ("pause", "resume", "retry", "cancel"):
        assert declared[(f"{BATCH}/{action}/{{task_id}}", "POST")] == OPERATOR
        assert declared[(f"{BATCH}/{action}/{{task_id}}", "OPTIONS")] == api_module.PREFLIGHT
    assert declared[(f"{BATCH}/events/{{task_id}}", "GET")] == READER
    paths = openapi.describe(routes)["paths"]
    for action in ("pause", "resume", "retry"):
        operation = paths[f"{BATCH}/{action}/{{task_id}}"]["post"]
        assert operation["security"] == [{"bearer": []}] and operation["x-stocksync-access"] == OPERATOR
        assert operation["summary"] != "undocumented"
    assert paths[f"{BATCH}/events/{{task_id}}"]["get"]["x-stocksync-access"] == READER


def test_public_read_opens_reads_only_in_process(app_module, db, stack, configure):
    configure(public_read=True)
    with Client(app_module.app) as client:
        run_matrix(Caller(http=client.http), db, stack, public_read=True)


def test_public_read_opens_reads_only_under_chalice_local(stack, db, tmp_path):
    with ChaliceLocal(stack, tmp_path / "api.log", PUBLIC_READ="true") as local:
        run_matrix(Caller(base_url=local.url), db, stack, public_read=True)
        anonymous = requests.get(local.url + "/api/v1/sync-status/whoami", timeout=10).json()
    assert anonymous == {"status": "success", "data": {"name": None, "role": None, "public_read": True}}


def test_whoami_names_the_caller_and_its_role(api, app_module, stack, configure):
    with Client(app_module.app) as client:
        def whoami(token: str | None) -> Any:
            return TokenHttp(client.http, token).get("/api/v1/sync-status/whoami")
        assert whoami(stack.api_token).json_body == {"status": "success", "data": {
            "name": LOCAL_TOKEN_NAME, "role": "operator", "public_read": False}}
        assert whoami(READER_TOKEN).json_body["data"] == {
            "name": READER_NAME, "role": "reader", "public_read": False}
        assert whoami(None).status_code == 401
        configure(public_read=True)
        assert whoami(None).json_body["data"] == {"name": None, "role": None, "public_read": True}
        assert whoami(BOGUS).status_code == 401  # a wrong token never passes as anonymous


def test_messages_are_chinese_by_default_and_english_on_request(app_module, db):
    with Client(app_module.app) as client:
        zh = client.http.get(BATCH + "/jobs").json_body
        en = client.http.get(BATCH + "/jobs?lang=en").json_body
        reader = TokenHttp(client.http, READER_TOKEN)
        forbidden = reader.post(BATCH + "?lang=en", body=SEED_BODY,
                                headers={"content-type": "application/json"}).json_body
    assert zh == {"status": "error", "code": "unauthorized",
                  "message": "需要登录：请在 Authorization 头中提供访问令牌（Bearer）"}
    assert en["message"].startswith("Sign-in required")
    assert forbidden == {"status": "error", "code": "forbidden",
                         "message": "Not allowed: this needs a token with the operator role"}


def test_jobs_record_who_started_and_cancelled_them_and_the_list_shows_it(api, app_module, db, stack):
    task_id = api.start({"start_date": "2025-10-01", "end_date": "2025-10-09"}).json_body["data"]["task_id"]
    with Client(app_module.app) as client:
        reader = TokenHttp(client.http, READER_TOKEN)
        assert reader.post(f"{BATCH}/cancel/{task_id}").status_code == 403
        listed = reader.get(BATCH + "/jobs").json_body["data"]
    assert (listed[0]["created_by"], listed[0]["cancelled_by"]) == (LOCAL_TOKEN_NAME, None)
    assert api.cancel(task_id).status_code == 200
    row = fetch_all(db, "SELECT created_by, cancelled_by FROM sync_jobs")[0]
    assert row == {"created_by": LOCAL_TOKEN_NAME, "cancelled_by": LOCAL_TOKEN_NAME}
    with Client(app_module.app) as client:
        listed = TokenHttp(client.http, READER_TOKEN).get(BATCH + "/jobs").json_body["data"]
    assert listed[0]["cancelled_by"] == LOCAL_TOKEN_NAME
    # The name, never the token or its hash.
    everything = json.dumps(fetch_all(db, "SELECT * FROM sync_jobs"), default=str)
    assert stack.api_token not in everything and hash_token(stack.api_token) not in everything


# --- tokens: configuration, minting, the local stack's token ---------------------------

def test_tokens_are_configured_as_hashes_and_compared_whole():
    token = new_token()
    entries = parse_tokens(f"ops:operator:{hash_token(token)}\n# a comment\n, view:reader:{'a' * 64}")
    assert [(e.name, e.role) for e in entries] == [("ops", "operator"), ("view", "reader")]
    auth = Authenticator(entries)
    assert auth.identify({"authorization": f"Bearer {token}"}).name == "ops"
    assert auth.identify({"authorization": f"bearer   {token}  "}).name == "ops"
    for wrong in (token[:-1], token + "x", token.upper(), hash_token(token), "", "Bearer"):
        assert auth.identify({"authorization": f"Bearer {wrong}"}) is None, wrong
    assert auth.identify({"authorization": "Bearer " + "y" * 10_000}) is None


@pytest.mark.parametrize("text", [
    "ops:operator",                      # no hash
    "ops:admin:" + "a" * 64,             # no such role
    "ops:operator:" + "a" * 63,          # not a SHA-256
    "ops:operator:sst_the-token-itself-pasted-by-mistake-0123456789abcdef",
    "o p s:operator:" + "a" * 64,        # a name with spaces
    "ops:operator:{0},ops2:reader:{0}".format("a" * 64),  # one token, two roles
])
def test_a_malformed_token_entry_is_refused_without_echoing_it(text):
    with pytest.raises(ConfigError) as refused:
        parse_tokens(text)
    assert "sst_" not in str(refused.value) and "a" * 10 not in str(refused.value)


def test_the_token_cli_mints_a_token_and_its_entry():
    from devstack.stack import ROOT
    done = subprocess.run([sys.executable, "-m", "devstack.tokens", "new", "ci-bot", "reader"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    token = done.stdout.split("it is not stored anywhere): ")[1].split()[0]
    entry = done.stdout.split("API_TOKENS entry: ")[1].strip()
    assert entry == f"ci-bot:reader:{hash_token(token)}"
    assert parse_tokens(entry)[0].role == "reader"


def test_the_local_stack_keeps_its_token_in_a_private_file(tmp_path, monkeypatch, stack):
    monkeypatch.delenv("STOCKSYNC_API_TOKEN", raising=False)
    first = local_operator_token(tmp_path)
    path = tmp_path / "api-token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert local_operator_token(tmp_path) == first  # kept across starts
    monkeypatch.setenv("STOCKSYNC_API_TOKEN", "sst_from-the-environment")
    assert local_operator_token(tmp_path) == "sst_from-the-environment"
    # The session's stack: its token is an operator's, and its page address hands it over.
    assert stack.page_url == f"{stack.api_url}/sync-status#token={stack.api_token}"
    assert Authenticator(parse_tokens(stack.env["API_TOKENS"])).identify(
        {"authorization": f"Bearer {stack.api_token}"}).role == "operator"


def test_make_serve_prints_the_page_address_with_the_token(tmp_path):
    """`make serve` (devstack.serve): up, prints the signed-in page address, stops on SIGTERM."""
    from devstack.services import free_port
    from devstack.stack import ROOT
    port = free_port()
    # The real services of its own (the session's stack set these for the test process).
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "SQS_QUEUE_URL", "SQS_ENDPOINT_URL", "TUSHARE_TOKEN",
                        "TUSHARE_API_URL", "API_TOKENS")}
    env.update(PORT=str(port), WORKERS="0", STOCKSYNC_DATA_DIR=str(tmp_path),
               STOCKSYNC_API_TOKEN="sst_serve-test")
    process = subprocess.Popen([sys.executable, "-m", "devstack.serve"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "open the page" in line:
                break
        assert any(f"http://127.0.0.1:{port}/sync-status#token=sst_serve-test" in line for line in lines), lines
        assert requests.get(f"http://127.0.0.1:{port}/api/v1/sync-status/whoami", timeout=10,
                            headers={"Authorization": "Bearer sst_serve-test"}).json()["data"]["role"] == "operator"
    finally:
        process.terminate()
        process.wait(timeout=120)


def test_the_cli_sends_the_token_from_the_environment_or_the_file(stack, db, tmp_path, monkeypatch, capsys):
    from devstack import progress_cli
    from devstack.tokens import read_token
    token_file = tmp_path / "api-token"
    token_file.write_text(stack.api_token + "\n")
    monkeypatch.delenv("STOCKSYNC_API_TOKEN", raising=False)
    assert read_token(token_file) == stack.api_token
    assert read_token(tmp_path / "missing") is None
    monkeypatch.setenv("STOCKSYNC_API_TOKEN", READER_TOKEN)
    assert read_token(token_file) == READER_TOKEN  # the environment wins
    # A reader token cannot start a job: the CLI says what the API said.
    assert progress_cli.main(["--api", stack.api_url, "2025-10-09", "2025-10-01", "--token-file",
                              str(token_file)]) == 1
    assert "HTTP 403" in capsys.readouterr().err
    monkeypatch.delenv("STOCKSYNC_API_TOKEN")
    answer = progress_cli.start_job(stack.api_url, "2025-10-09", "2025-10-01", lang="en",
                                    token=read_token(token_file))
    assert answer["http_status"] == 400  # signed in: the API's own check answers
    assert progress_cli.main(["--api", stack.api_url, "2025-10-09", "2025-10-09", "--token-file",
                              str(tmp_path / "missing")]) == 1
    assert "no API token" in capsys.readouterr().err
