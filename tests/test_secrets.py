"""Secrets stay secret: the database password and the tushare token reach no log line,
answer, progress message or `migrate` result, whatever the DSN's shape; deployed, they are
read at cold start from Secrets Manager (moto's, over its real protocol), once per container."""
from __future__ import annotations

import json
import logging
import traceback
from typing import Any

import boto3
import pytest
import requests
from chalice.test import Client

from chalicelib import secrecy
from chalicelib.db import Database
from chalicelib.errors import ConfigError, ServiceUnavailable
from tests.conftest import ChaliceLocal, TokenHttp, fetch_all

PASSWORD = "Pw-s3cret-Q7x"
TUSHARE_SECRET = "ts-S3cret-token-9f3a"
BATCH = "/api/v1/sync-status/sync/batch"
# Malformed (libpq cannot parse them) and wrong (parsed, but no server takes them).
DSNS = [
    f"postgresql//stocksync:{PASSWORD}@db.example:5432/stocksync",       # no colon after the scheme
    f"postgresql://stocksync:{PASSWORD}@db.example:99999/stocksync",     # port out of range
    f"postgresql://stocksync:{PASSWORD.replace('-', '%ZZ')}@127.0.0.1:1/x",  # bad percent-encoding
    f"postgresql://stocksync:{PASSWORD}@[::1/stocksync",                  # unclosed IPv6 bracket
    f"postgresql://stocksync:{PASSWORD}@127.0.0.1:1/x?sslmode=bogus",
    f"postgresql://stocksync:p@{PASSWORD}@127.0.0.1:1/x",                  # an unescaped @ in it
    f"host=127.0.0.1 port=abc user=u password={PASSWORD}",
    f"host=127.0.0.1 port=1 user=u password='{PASSWORD} x' dbname",
    f"postgresql://u@127.0.0.1:1/x?password={PASSWORD}&port=zz",
    PASSWORD,                                                             # the password pasted alone
    f"postgresql://stocksync:{PASSWORD}@127.0.0.1:1/stocksync",           # wrong: nothing listens
    f"postgresql://nobody:{PASSWORD}@/postgres?host=/nonexistent",       # wrong: no such socket
]


def secrets_in(text: str, dsn: str) -> list[str]:
    found = [s for s in (PASSWORD, PASSWORD.replace("-", "%ZZ"), dsn, TUSHARE_SECRET) if s in text]
    return found


def everything_about(exc: BaseException) -> str:
    return "\n".join([str(exc), repr(exc), "".join(traceback.format_exception(exc)),
                      str(exc.__cause__), repr(exc.__context__)])


@pytest.mark.parametrize("dsn", DSNS)
def test_a_connection_error_carries_nothing_of_the_dsn(dsn):
    with pytest.raises(ServiceUnavailable) as failed:
        Database(dsn, 1, connect_timeout_s=2).migrate()
    assert failed.value.__context__ is None  # psycopg2's own error is not chained
    assert secrets_in(everything_about(failed.value), dsn) == []
    assert failed.value.code == "database_unavailable"


@pytest.mark.parametrize("dsn", [DSNS[0], DSNS[5], DSNS[6], DSNS[10]])
def test_no_secret_in_answers_logs_or_migrate_with_a_bad_dsn(app_module, configure, stack, caplog, dsn):
    configure(database_url=dsn, tushare_token=TUSHARE_SECRET)
    for client_name in ("db", "queue"):
        app_module._clients.pop(client_name, None)
    seen: list[str] = []
    with caplog.at_level(logging.DEBUG), Client(app_module.app) as client:
        http = TokenHttp(client.http, stack.api_token)
        for answer in (http.get(f"{BATCH}/progress/2025-10-01_2025-10-09_1"), http.get(BATCH + "/jobs"),
                       http.post(BATCH, body='{"start_date": "2025-10-01", "end_date": "2025-10-09"}'),
                       http.get("/api/v1/sync-status/dates?start=2025-10-01&end=2025-10-09")):
            assert answer.status_code == 503 and answer.json_body["code"] == "database_unavailable"
            seen.append(answer.body.decode())
        for handler, event in ((app_module.migrate, {}), (app_module.sweep_stuck_days, {})):
            with pytest.raises(Exception) as failed:
                handler(event, None)
            seen.append(everything_about(failed.value))
    seen.append(caplog.text)
    seen += [r.getMessage() for r in caplog.records]
    assert "database_unavailable" in caplog.text  # the failures were logged ...
    assert secrets_in("\n".join(seen), dsn) == []  # ... with nothing secret


def test_no_secret_in_chalice_locals_log(stack, tmp_path):
    """`chalice local` started with a malformed and with a wrong DSN: its whole log file."""
    for number, dsn in enumerate((DSNS[0], DSNS[10])):
        log = tmp_path / f"api-{number}.log"
        with ChaliceLocal(stack, log, DATABASE_URL=dsn, TUSHARE_TOKEN=TUSHARE_SECRET) as local:
            auth = {"Authorization": f"Bearer {stack.api_token}"}
            bodies = [requests.get(local.url + BATCH + "/jobs", headers=auth, timeout=30),
                      requests.post(local.url + BATCH, headers=auth, timeout=30,
                                    data='{"start_date": "2025-10-01", "end_date": "2025-10-09"}')]
            assert [b.status_code for b in bodies] == [503, 503]
        text = log.read_text(encoding="utf-8", errors="replace")
        assert "database_unavailable" in text
        assert secrets_in(text + "".join(b.text for b in bodies), dsn) == [], text[-2000:]


def test_the_tushare_token_never_reaches_a_days_error_a_progress_message_or_a_log(
        app_module, configure, api, db, workers, caplog, monkeypatch):
    """A source that echoes the token in its errors (a proxy, a future tushare): redacted."""
    configure(tushare_token=TUSHARE_SECRET)
    worker = app_module.get_worker()
    client = worker._datasets._source._client

    def echoing(api_name: str, **params: Any) -> Any:
        raise Exception(f"您的token不对，请确认: {TUSHARE_SECRET}")
    monkeypatch.setattr(client, "query", echoing)
    task_id = api.start({"start_date": "2025-10-09", "end_date": "2025-10-09"}).json_body["data"]["task_id"]
    with caplog.at_level(logging.DEBUG):
        final = workers.run_until_settled(task_id)
    days = api.days(task_id).json_body["data"]
    assert final["failed"] == 1 and "token不对" in days[0]["error"]
    stored = json.dumps(fetch_all(db, "SELECT * FROM sync_job_days"), default=str) + \
        json.dumps(fetch_all(db, "SELECT * FROM sync_jobs"), default=str)
    assert TUSHARE_SECRET not in stored + json.dumps(final) + json.dumps(days) + caplog.text


def test_secrets_are_read_from_secrets_manager_once_per_container(app_module, stack, monkeypatch, configure):
    endpoint = stack.env["SQS_ENDPOINT_URL"]  # moto's server speaks every AWS protocol
    manager = boto3.client("secretsmanager", endpoint_url=endpoint, region_name="ap-east-1")
    database = manager.create_secret(Name=f"stocksync/test/database-{id(manager)}", SecretString=json.dumps(
        {"DATABASE_URL": stack.env["DATABASE_URL"]}))["ARN"]
    tushare = manager.create_secret(Name=f"stocksync/test/tushare-{id(manager)}", SecretString=json.dumps(
        {"TUSHARE_TOKEN": TUSHARE_SECRET}))["ARN"]
    calls: list[str] = []
    real_client = boto3.client

    def counting_client(service: str, **kwargs: Any) -> Any:
        made = real_client(service, **kwargs)
        if service == "secretsmanager":
            made.meta.events.register("provide-client-params.secrets-manager.GetSecretValue",
                                      lambda params, **_: calls.append(params["SecretId"]))
        return made
    monkeypatch.setattr(app_module.boto3, "client", counting_client)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", endpoint)
    monkeypatch.setenv("SECRETS_ARN", f"{database},{tushare}")
    monkeypatch.setenv("DATABASE_URL", "postgresql://not-this-one")
    monkeypatch.delenv("TUSHARE_TOKEN")
    app_module._clients.clear()  # a cold container (`configure` puts the warm one back after)
    first = app_module.get_settings()
    again = app_module.get_settings()
    assert first is again
    assert (first.database_url, first.tushare_token) == (stack.env["DATABASE_URL"], TUSHARE_SECRET)
    assert calls == [database, tushare]  # once each, at the first use
    assert secrecy.redact(f"token {TUSHARE_SECRET}") == "token ***"  # registered for redaction


def test_a_secret_that_is_not_json_is_refused_without_its_text():
    class Stub:
        def get_secret_value(self, SecretId: str) -> dict[str, str]:
            return {"SecretString": f"DATABASE_URL=postgresql://u:{PASSWORD}@h/db"}
    with pytest.raises(ConfigError) as refused:
        secrecy.environment_with_secrets({"SECRETS_ARN": "arn:aws:secretsmanager:x:1:secret:s"}, Stub)
    assert PASSWORD not in everything_about(refused.value)


def test_dsn_secrets_finds_the_password_in_every_spelling():
    for dsn in DSNS:
        if dsn == PASSWORD:
            continue  # no password field to find: connection_error_text masks quoted values instead
        password = PASSWORD.replace("-", "%ZZ") if "%ZZ" in dsn else PASSWORD
        text = secrecy.redact(f"error near {dsn} and {password}", secrecy.dsn_secrets(dsn))
        assert password not in text, dsn
    assert {"p%40ss-word", "p@ss-word"} <= set(secrecy.dsn_secrets("postgresql://u:p%40ss-word@h/db"))
