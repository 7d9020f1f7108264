"""Per-token write limits, counted in PostgreSQL: job starts per hour, forced re-syncs per day;
429 with Retry-After in the envelope, and refused requests count against nothing."""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from chalice.test import Client

from chalicelib.auth import OPERATOR, entry_for, new_token, parse_tokens
from tests.conftest import READER_TOKEN, TokenHttp, fetch_all, scalar, snapshot

BATCH = "/api/v1/sync-status/sync/batch"


@pytest.fixture
def client(app_module: Any, db: Any):
    with Client(app_module.app) as chalice_client:
        yield chalice_client


def start(http: Any, start_date: str = "2025-10-01", force: bool = False, lang: str = "") -> Any:
    body = {"start_date": start_date, "end_date": start_date, "force": force}
    return http.post(BATCH + (f"?lang={lang}" if lang else ""), body=json.dumps(body),
                     headers={"content-type": "application/json"})


def start_and_cancel(http: Any, **kwargs: Any) -> Any:
    answer = start(http, **kwargs)
    if answer.status_code == 200:
        assert http.post(f"{BATCH}/cancel/{answer.json_body['data']['task_id']}").status_code == 200
    return answer


def test_job_starts_per_hour_then_429_with_retry_after(client, configure, db, stack):
    configure(job_starts_per_hour=3)
    operator = TokenHttp(client.http, stack.api_token)
    for _ in range(3):
        assert start_and_cancel(operator).status_code == 200
    before = snapshot(db, stack)
    refused = start(operator, lang="en")
    assert refused.status_code == 429
    body = refused.json_body
    assert body["status"] == "error" and body["code"] == "rate_limited"
    retry_after = int(refused.headers["Retry-After"])
    assert 3500 <= retry_after <= 3600 and body["data"] == {"limit": 3, "retry_after_s": retry_after}
    assert body["message"] == f"Limit reached: job starts per hour (3); try again in {retry_after} s"
    assert start(operator).json_body["message"].startswith("已达到每小时启动任务数上限（3）")
    assert snapshot(db, stack) == before  # the refusal wrote nothing
    # An hour later the window has moved on.
    with db.transaction() as cur:
        cur.execute("UPDATE sync_jobs SET created_at = created_at - interval '61 minutes'")
    assert start(operator).status_code == 200


def test_forced_resyncs_per_day(client, configure, db, stack):
    configure(forced_syncs_per_day=2, job_starts_per_hour=100)
    operator = TokenHttp(client.http, stack.api_token)
    for _ in range(2):
        assert start_and_cancel(operator, force=True).status_code == 200
    refused = start(operator, force=True)
    assert refused.status_code == 429 and refused.json_body["data"]["limit"] == 2
    assert 86_000 <= int(refused.headers["Retry-After"]) <= 86_400
    assert start_and_cancel(operator, force=False).status_code == 200  # unforced ones still go
    with db.transaction() as cur:
        cur.execute("UPDATE sync_jobs SET created_at = created_at - interval '25 hours' WHERE force")
    assert start(operator, force=True).status_code == 200


def test_each_token_has_its_own_budget(client, configure, db, stack, app_module):
    second = new_token()
    entries = parse_tokens(stack.env["API_TOKENS"]) + (entry_for("second-operator", OPERATOR, second),)
    configure(job_starts_per_hour=1, api_tokens=entries)
    first = TokenHttp(client.http, stack.api_token)
    assert start_and_cancel(first).status_code == 200
    assert start(first).status_code == 429
    other = TokenHttp(client.http, second)
    assert start_and_cancel(other).status_code == 200
    names = [row["created_by"] for row in fetch_all(db, "SELECT created_by FROM sync_jobs ORDER BY created_at")]
    assert names == ["local-operator", "second-operator"]


def test_refused_requests_count_against_nothing(client, configure, db, stack):
    configure(job_starts_per_hour=1)
    anonymous = TokenHttp(client.http, None)
    reader = TokenHttp(client.http, READER_TOKEN)
    operator = TokenHttp(client.http, stack.api_token)
    for _ in range(5):
        assert start(anonymous).status_code == 401
        assert start(reader).status_code == 403
        assert operator.post(BATCH, body="{not json").status_code == 400
        assert start(operator, start_date="2999-01-01").status_code == 400
    assert scalar(db, "SELECT count(*) FROM sync_jobs") == 0
    assert start(operator).status_code == 200
    assert start(operator, start_date="2025-10-02").status_code == 429  # counted once it started


def test_concurrent_starts_cannot_both_take_the_last_unit(app_module, db, stack):
    """The budget is read under the job-creation lock: ten racing starts, each cancelling
    its job at once, still make exactly the limit."""
    from chalicelib.errors import Conflict, TooManyRequests
    from chalicelib.jobs import JobService
    from chalicelib.limits import WriteLimits
    from chalicelib.validation import BatchRequest
    from datetime import date
    jobs = JobService(app_module.get_db(), app_module.get_queue(), limits=WriteLimits(3, 0))

    def race(i: int) -> str:
        try:
            created = jobs.create(BatchRequest(date(2025, 9, 10 + i), date(2025, 9, 10 + i)), "racer")
        except TooManyRequests:
            return "429"
        except Conflict:
            return "409"
        jobs.cancel(created.task_id)
        return "200"
    outcomes = []
    with ThreadPoolExecutor(max_workers=10) as pool:
        for _ in range(3):  # several rounds, so starts race with cancels too
            outcomes += pool.map(race, range(10))
    assert outcomes.count("200") == 3 and set(outcomes) <= {"200", "409", "429"}
    assert scalar(db, "SELECT count(*) FROM sync_jobs WHERE created_by = 'racer'") == 3
