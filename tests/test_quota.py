"""The shared tushare quota under parallel workers (the speed itself is measured by
`make bench`, bench/quota.py; nothing here times anything)."""
from __future__ import annotations

import threading

import pytest

from chalicelib.quota import (DEFAULT_QUOTA_PER_MINUTE, QuotaExhausted, QuotaPolicy, TushareQuota, parse_quota,
                             token_fingerprint)
from devstack.sample_quota import Clock
from tests.conftest import fetch_all, scalar

SPEEDUP = 10.0  # the sample server's minute passes in 6 s


@pytest.fixture
def fast_clock(stack):
    """The sample server's clock running ten times faster than the real one, from now."""
    import time
    start = time.time()
    saved = stack.tushare.clock
    stack.tushare.clock = Clock(lambda: start + (time.time() - start) * SPEEDUP)
    yield
    stack.tushare.clock = saved


def start(api, body) -> str:
    response = api.start(body)
    assert response.status_code == 200, response.json_body
    return response.json_body["data"]["task_id"]


def test_five_parallel_workers_never_exceed_a_small_limit(api, db, workers, stack, configure, fast_clock,
                                                          app_module):
    limit = 4
    stack.tushare.configure(rate_limit_per_minute=limit)  # every interface, per token
    # Our window in real seconds is the server's minute at its speed.
    configure(quota_per_minute=(("*", limit),), quota_window_s=60 / SPEEDUP, quota_margin_s=0.3)
    task_id = start(api, {"start_date": "2025-09-22", "end_date": "2025-10-10",
                          "datasets": ["daily", "adj_factor", "daily_basic"]})
    final = workers.run_until_settled(task_id, timeout_s=240, threads=5)
    assert (final["status"], final["failed"]) == ("completed", 0)
    assert final["success"] == 9  # every trading day (09-22..26, 29, 30, 10-09, 10), all three datasets
    stats = stack.tushare.stats()
    assert stats["refused"] == {}, stats["refused"]  # not one call over tushare's limit
    assert stats["calls"]["daily"] == stats["calls"]["daily_basic"] == 9
    # The limit did bind: in some window of the server's minute a call had to wait its turn.
    times = sorted(call["at"] for call in stats["timeline"]["daily"])
    busiest = max(sum(1 for t in times if a <= t < a + 60) for a in times)
    assert busiest == limit
    # The token is never stored, only its fingerprint.
    assert {r["token_fp"] for r in fetch_all(db, "SELECT DISTINCT token_fp FROM tushare_quota")} == {
        token_fingerprint(stack.env["TUSHARE_TOKEN"])}


def test_a_day_the_quota_cannot_serve_is_handed_back_without_spending_an_attempt(
        api, db, workers, stack, configure, app_module):
    # One call of each day's interfaces per 2-second window (the listings' four, once), and
    # no waiting: the second trading day finds the quota in use, goes back to the queue as a
    # fresh delayed copy, and is tried again.
    configure(quota_per_minute=(("*", 1), ("stock_basic", 10)), quota_window_s=2.0,
              quota_margin_s=0.0, quota_max_wait_s=0.0)
    task_id = start(api, {"start_date": "2025-10-09", "end_date": "2025-10-10"})
    handed_back = workers.loop.failed
    final = workers.run_until_settled(task_id, timeout_s=60)
    assert (final["success"], final["failed"]) == (2, 0)
    assert workers.loop.failed > handed_back  # a delivery gave its day back to the queue
    attempts = scalar(db, "SELECT max(attempts) FROM sync_job_days WHERE task_id = %(t)s", {"t": task_id})
    assert attempts == 1  # quota waits spend no attempt
    assert stack.tushare.stats()["refused"] == {}


def test_concurrent_takers_share_a_window_exactly(db, stack):
    policy = QuotaPolicy(per_minute={"*": 7}, window_s=30.0, margin_s=0.0, max_wait_s=0.0)
    quota = TushareQuota(db, "some-token", policy)
    taken: list[bool] = []
    lock = threading.Lock()

    def take() -> None:
        for _ in range(5):
            try:
                quota.acquire("daily")
                ok = True
            except Exception:
                ok = False
            with lock:
                taken.append(ok)
    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert taken.count(True) == 7 and taken.count(False) == 13


def test_quota_settings_parse_over_the_defaults():
    limits = parse_quota("daily:60, adj_factor:0")
    assert limits["daily"] == 60 and limits["adj_factor"] == 0
    assert limits["daily_basic"] == DEFAULT_QUOTA_PER_MINUTE["daily_basic"]
    assert QuotaPolicy(per_minute=limits).limit("no_such_api") == DEFAULT_QUOTA_PER_MINUTE["*"]
    with pytest.raises(Exception):
        parse_quota("daily=60")


def test_a_quota_refusal_asks_to_come_back_before_the_call_frees_up_with_half_a_budget_to_wait(db, stack):
    # A hand-back due when the call frees up (SQS rounds up to whole seconds) would arrive
    # late and leave the call unused; one due earlier waits the rest within its budget.
    quota = TushareQuota(db, "token-a", QuotaPolicy(per_minute={"*": 1}, window_s=30.0, margin_s=0.0,
                                                    max_wait_s=4.0))
    quota.acquire("daily")
    with pytest.raises(QuotaExhausted) as refused:
        quota.acquire("daily")
    assert 29 < refused.value.wait_s <= 30
    assert refused.value.retry_in_s == pytest.approx(refused.value.wait_s - 2.0)
    # No budget to wait at all: come back when it frees up.
    eager = TushareQuota(db, "token-a", QuotaPolicy(per_minute={"*": 1}, window_s=30.0, margin_s=0.0,
                                                    max_wait_s=0.0))
    with pytest.raises(QuotaExhausted) as refused:
        eager.acquire("daily")
    assert refused.value.retry_in_s == refused.value.wait_s


def test_listings_needing_more_calls_than_a_window_allows_still_complete(api, db, workers, stack, configure,
                                                                          fast_clock, app_module):
    # The listings take several stock_basic calls in one go (each status, paged). With fewer
    # allowed a window and a short wait budget, a delivery that gave up half-way started
    # over next time and never finished: their calls may wait a whole window.
    stack.tushare.configure(rate_limit_per_minute={"stock_basic": 2})
    # A lease long enough for a window's wait (half of it bounds every wait; the suite's is 8 s).
    configure(quota_per_minute=(("stock_basic", 2),), quota_window_s=60 / SPEEDUP, quota_margin_s=0.3,
              quota_max_wait_s=1.0, worker_timeout_s=20.0)
    task_id = start(api, {"start_date": "2025-10-09", "end_date": "2025-10-09"})
    final = workers.run_until_settled(task_id, timeout_s=60)
    assert (final["status"], final["success"], final["failed"]) == ("completed", 1, 0)
    stats = stack.tushare.stats()
    assert stats["refused"] == {} and stats["calls"]["stock_basic"] > 2


def test_a_taker_finding_an_unused_call_locked_by_another_is_told_to_wait_not_an_error(db, stack):
    # A never-used row's used_at is -infinity; while another taker holds it (SKIP LOCKED
    # passes it by), how long until a call frees up is the used rows' business alone.
    import psycopg2
    quota = TushareQuota(db, "token-b", QuotaPolicy(per_minute={"*": 2}, window_s=30.0, margin_s=0.0,
                                                    max_wait_s=0.0))
    quota.acquire("daily")
    other = psycopg2.connect(stack.env["DATABASE_URL"])
    try:
        with other.cursor() as cur:
            cur.execute("SELECT slot FROM tushare_quota WHERE token_fp = %s AND api = 'daily' "
                        "AND used_at = '-infinity' FOR UPDATE", (token_fingerprint("token-b"),))
            assert cur.rowcount == 1
            with pytest.raises(QuotaExhausted) as refused:
                quota.acquire("daily")
            assert 29 < refused.value.wait_s <= 30
    finally:
        other.rollback()
        other.close()
    quota.acquire("daily")  # the other taker let it go: it is free
