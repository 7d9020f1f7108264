"""The audit and the fill job on the local stack: gaps planted in the database are found,
and a fill job syncs exactly them; adjusted prices against hand-computed values."""
from __future__ import annotations

import json

import pytest

from tests.conftest import READER_TOKEN, bearer, fetch_all, scalar

AUDIT = "/api/v1/sync-status/audit"
FILL = AUDIT + "/fill"


def start(api, body) -> str:
    response = api.start(body)
    assert response.status_code == 200, response.json_body
    return response.json_body["data"]["task_id"]


def audit(api, query: str):
    response = api._client.get(f"{AUDIT}?{query}")
    assert response.status_code == 200, response.json_body
    return response.json_body["data"]


def fill(api, body):
    return api._client.post(FILL, body=json.dumps(body), headers={"content-type": "application/json"})


def test_an_audit_finds_planted_gaps_and_a_fill_job_repairs_exactly_them(api, db, workers, stack):
    workers.run_until_settled(start(api, {"start_date": "2025-10-09", "end_date": "2025-10-10",
                                          "datasets": ["daily", "adj_factor"]}))
    before = {table: fetch_all(db, f"SELECT * FROM {table} ORDER BY trade_date, ts_code")
              for table in ("daily_bars", "adj_factor")}
    clean = audit(api, "start=2025-10-08&end=2025-10-10&datasets=daily,adj_factor")
    assert clean["faulty"] == [] and clean["counts"]["ok"] == 4
    assert [d["date"] for d in clean["days"]] == ["2025-10-09", "2025-10-10"]  # trading days only

    # Plant gaps: three bars of 10-09 and every factor of 10-10 deleted; 10-13 never synced.
    with db.transaction() as cur:
        cur.execute("DELETE FROM daily_bars WHERE trade_date = '2025-10-09' AND ts_code IN "
                    "(SELECT ts_code FROM daily_bars WHERE trade_date = '2025-10-09' ORDER BY ts_code LIMIT 3)")
        cur.execute("DELETE FROM adj_factor WHERE trade_date = '2025-10-10'")
    report = audit(api, "start=2025-10-09&end=2025-10-13&datasets=daily,adj_factor")
    faulty = {(f["date"], f["dataset"]): f for f in report["faulty"]}
    assert set(faulty) == {("2025-10-09", "daily"), ("2025-10-10", "adj_factor"),
                           ("2025-10-13", "daily"), ("2025-10-13", "adj_factor")}
    short = faulty[("2025-10-09", "daily")]
    assert short["state"] == "short" and short["stored"] == short["synced_rows"] - 3 == short["expected"] - 3
    assert faulty[("2025-10-10", "adj_factor")]["state"] == "missing"
    assert report["counts"] == {"ok": 2, "missing": 3, "short": 1, "mismatch": 0, "not_published": 0}

    # The fill job: one job, those pairs only, each forced.
    stack.tushare.reset_stats()
    answer = fill(api, {"start": "2025-10-09", "end": "2025-10-13", "datasets": ["daily", "adj_factor"]})
    assert answer.status_code == 200, answer.json_body
    data = answer.json_body["data"]
    assert data["pairs"] == 4 and data["total_days"] == 3
    final = workers.run_until_settled(data["task_id"])
    assert (final["status"], final["kind"], final["success"], final["failed"]) == ("completed", "fill", 3, 0)
    pairs = {(r["day"], r["dataset"]) for r in fetch_all(
        db, "SELECT day::text, dataset FROM sync_job_day_datasets WHERE task_id = %(t)s", {"t": data["task_id"]})}
    assert pairs == set(faulty)
    calls = stack.tushare.stats()["by_trade_date"]
    assert calls["daily"] == {"20251009": 1, "20251013": 1}  # nothing else fetched
    assert calls["adj_factor"] == {"20251010": 1, "20251013": 1}
    # Repaired: the rows are those of before, and the audit is clean.
    for table, rows in before.items():
        now = fetch_all(db, f"SELECT * FROM {table} WHERE trade_date <= '2025-10-10' ORDER BY trade_date, ts_code")
        assert now == rows
    assert audit(api, "start=2025-10-09&end=2025-10-13&datasets=daily,adj_factor")["faulty"] == []
    # Nothing left: a second fill is refused, in either language.
    again = fill(api, {"start": "2025-10-09", "end": "2025-10-13", "datasets": ["daily", "adj_factor"]})
    assert again.status_code == 409 and again.json_body["code"] == "nothing_to_fill"
    assert again.json_body["message"] == "审计未发现缺口，无需补全"


def test_the_fill_keeps_the_one_job_rule(api, db, workers):
    running = start(api, {"start_date": "2025-10-09", "end_date": "2025-10-10"})
    answer = fill(api, {"start": "2025-10-13", "end": "2025-10-14"})
    assert answer.status_code == 409 and answer.json_body["data"]["task_id"] == running
    assert scalar(db, "SELECT count(*) FROM sync_jobs") == 1


def test_recheck_compares_with_the_source_within_its_bound(api, db, workers, stack, configure):
    workers.run_until_settled(start(api, {"start_date": "2025-10-09", "end_date": "2025-10-10"}))
    # tushare now answers two rows fewer for 10-10 than were stored.
    codes = [r["ts_code"] for r in fetch_all(db, "SELECT ts_code FROM daily_bars WHERE trade_date = "
                                                 "'2025-10-10' ORDER BY ts_code LIMIT 2")]
    stack.tushare.add_fault("drop", api="daily", trade_date="20251010", times=None, codes=codes)
    assert audit(api, "start=2025-10-09&end=2025-10-10")["faulty"] == []  # counting alone: fine
    stack.tushare.reset_stats()
    report = audit(api, "start=2025-10-09&end=2025-10-10&recheck=true")
    entries = {d["date"]: d["datasets"]["daily"] for d in report["days"]}
    assert entries["2025-10-09"]["source_rows"] == entries["2025-10-09"]["stored"]
    assert entries["2025-10-10"]["state"] == "mismatch"
    assert entries["2025-10-10"]["source_rows"] == entries["2025-10-10"]["stored"] - 2
    assert report["rechecked"] == 2 and report["recheck_stopped"] is None
    # The bound: one pair a request.
    configure(audit_recheck_max=1)
    bounded = audit(api, "start=2025-10-09&end=2025-10-10&recheck=true")
    assert bounded["rechecked"] == 1 and bounded["recheck_stopped"] == "limit"


def test_a_recheck_spends_the_quota_so_it_needs_an_operator(api, db, workers, stack, configure):
    """Counting is a read; asking tushare again spends the owner's paid quota, as a sync does:
    a reader gets 403, nobody (PUBLIC_READ) 401, and tushare is not called."""
    workers.run_until_settled(start(api, {"start_date": "2025-10-09", "end_date": "2025-10-10"}))
    configure(public_read=True)
    stack.tushare.reset_stats()
    url = f"{AUDIT}?start=2025-10-09&end=2025-10-10&recheck=true"
    as_reader = api._client.get(url, headers=bearer(READER_TOKEN))
    assert as_reader.status_code == 403 and as_reader.json_body["code"] == "forbidden"
    assert as_reader.json_body["message"] == "权限不足：此操作需要 operator 角色的令牌"
    no_token = api._client._http  # the test client without the operator's token
    nobody = no_token.get(url + "&lang=en")
    assert nobody.status_code == 401 and nobody.json_body["code"] == "unauthorized"
    assert nobody.json_body["message"].startswith("Sign-in required")
    assert stack.tushare.stats()["calls"] == {}  # nothing asked of tushare
    # Without the re-check both may read; the operator may re-check.
    assert api._client.get(url.replace("&recheck=true", ""), headers=bearer(READER_TOKEN)).status_code == 200
    assert no_token.get(url.replace("&recheck=true", "")).status_code == 200
    assert audit(api, "start=2025-10-09&end=2025-10-10&recheck=true")["rechecked"] == 2


@pytest.mark.parametrize("query, code", [
    ("start=2025-10-09", "end_missing"), ("start=2025-10-09&end=2025-10-01", "range_reversed"),
    ("start=2025-10-09&end=2025-10-10&datasets=daily,bogus", "dataset_unknown"),
    ("start=2025-10-09&end=2025-10-10&recheck=maybe", "recheck_type"),
    ("start=2024-01-01&end=2025-10-10", "range_too_long"),
])
def test_a_bad_audit_request_is_a_clear_400_in_both_languages(api, db, query, code):
    zh = api._client.get(f"{AUDIT}?{query}")
    en = api._client.get(f"{AUDIT}?{query}&lang=en")
    assert zh.status_code == en.status_code == 400
    assert zh.json_body["code"] == en.json_body["code"] == code
    assert zh.json_body["message"] != en.json_body["message"]


def test_a_start_with_unknown_or_malformed_datasets_is_a_clear_400(api, db):
    for datasets, code in ((["daily", "nope"], "dataset_unknown"), ("daily", None), ([], "datasets_empty"),
                           ([1], "datasets_type"), ({"a": 1}, "datasets_type")):
        response = api.start({"start_date": "2025-10-09", "end_date": "2025-10-10", "datasets": datasets},
                             query="?lang=en")
        if code is None:  # a comma-separated string is accepted too
            assert response.status_code == 200, response.json_body
            api.cancel(response.json_body["data"]["task_id"])
            continue
        assert response.status_code == 400 and response.json_body["code"] == code
        assert "daily, adj_factor, daily_basic, suspend_d" in response.json_body["message"]
    assert scalar(db, "SELECT count(*) FROM sync_jobs WHERE status = 'running'") == 0


def test_adjusted_prices_match_hand_computed_values_across_the_10_for_10_split(api, db, workers):
    # 002615.SZ's ex-date 2025-06-10 (tests/test_sample_tushare.py): the factor steps from 1.000
    # to 2.071; the close goes 17.14 -> 8.37, pre_close on the ex-date is 8.28.
    workers.run_until_settled(start(api, {"start_date": "2025-06-06", "end_date": "2025-06-11",
                                          "datasets": ["daily", "adj_factor"]}))
    hfq = {str(r["trade_date"]): r for r in fetch_all(
        db, "SELECT * FROM daily_bars_hfq('002615.SZ', '2025-06-06', '2025-06-11')")}
    assert hfq["2025-06-09"]["close"] == pytest.approx(17.14 * 1.0)
    assert hfq["2025-06-10"]["close"] == pytest.approx(8.37 * 2.071)  # 17.3343: +1.1%, not -51%
    assert hfq["2025-06-10"]["pre_close"] == pytest.approx(8.28 * 2.071)
    assert hfq["2025-06-10"]["adj_factor"] == 2.071
    # qfq: divided by the latest factor of the range (2.071), so the newest prices are as traded.
    qfq = {str(r["trade_date"]): r for r in fetch_all(
        db, "SELECT * FROM daily_bars_qfq('002615.SZ', '2025-06-06', '2025-06-11')")}
    assert qfq["2025-06-10"]["close"] == pytest.approx(8.37)
    assert qfq["2025-06-09"]["close"] == pytest.approx(17.14 / 2.071)  # 8.2762
    assert round(qfq["2025-06-09"]["close"], 2) == 8.28 == round(qfq["2025-06-10"]["pre_close"], 2)
    assert qfq["2025-06-09"]["ref_factor"] == 2.071
    # qfq as of a date before the split: the reference is that date's factor (1.000).
    as_of = {str(r["trade_date"]): r for r in fetch_all(
        db, "SELECT * FROM daily_bars_qfq('002615.SZ', '2025-06-06', '2025-06-11', '2025-06-09')")}
    assert as_of["2025-06-09"]["close"] == pytest.approx(17.14)
    assert as_of["2025-06-10"]["close"] == pytest.approx(8.37 * 2.071)
    # Unadjusted columns stay: pct_chg, vol and amount are the bars' own.
    bar = fetch_all(db, "SELECT pct_chg, vol FROM daily_bars WHERE ts_code = '002615.SZ' "
                        "AND trade_date = '2025-06-10'")[0]
    assert (hfq["2025-06-10"]["pct_chg"], hfq["2025-06-10"]["vol"]) == (bar["pct_chg"], bar["vol"])


def test_the_matrix_and_the_fuzz_reach_the_audit_routes_with_their_roles(app_module, db, stack):
    import requests

    from chalicelib import openapi
    from chalicelib.api import access_of
    from chalicelib.auth import OPERATOR, READER
    from tests.conftest import READER_TOKEN, bearer
    routes = app_module.app.routes
    assert access_of(routes[AUDIT]["GET"].view_function) == READER
    assert access_of(routes[FILL]["POST"].view_function) == OPERATOR
    paths = openapi.describe(routes)["paths"]
    assert paths[AUDIT]["get"]["x-stocksync-access"] == READER
    assert paths[FILL]["post"]["x-stocksync-access"] == OPERATOR
    assert "undocumented" not in (paths[AUDIT]["get"]["summary"], paths[FILL]["post"]["summary"])
    # On the running API: no token 401, a reader may audit but not fill (403), nothing written.
    url = stack.api_url
    assert requests.get(f"{url}{AUDIT}?start=2025-10-09&end=2025-10-10", timeout=30).status_code == 401
    assert requests.get(f"{url}{AUDIT}?start=2025-10-09&end=2025-10-10", timeout=30,
                        headers=bearer(READER_TOKEN)).status_code == 200
    refused = requests.post(f"{url}{FILL}", json={"start": "2025-10-09", "end": "2025-10-10"},
                            headers=bearer(READER_TOKEN), timeout=30)
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    assert scalar(db, "SELECT count(*) FROM sync_jobs") == 0
