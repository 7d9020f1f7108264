"""Bad input: HTTP 400, a message naming what is wrong, and nothing written or enqueued."""
from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib.config import market_today
from chalicelib.validation import is_task_id
from tests.conftest import scalar


def assert_rejected(db, stack, response, code: str, *words: str) -> None:
    assert response.status_code == 400, response.json_body
    body = response.json_body
    assert body["status"] == "error"
    assert body["code"] == code
    for word in words:
        assert word in body["message"], body["message"]
    assert scalar(db, "SELECT count(*) FROM sync_jobs") == 0
    assert scalar(db, "SELECT count(*) FROM sync_job_days") == 0
    attrs = stack.sqs_client().get_queue_attributes(
        QueueUrl=stack.env["SQS_QUEUE_URL"], AttributeNames=["ApproximateNumberOfMessages"])
    assert attrs["Attributes"]["ApproximateNumberOfMessages"] == "0"


@pytest.mark.parametrize("raw, code, word", [
    ("", "body_required", "请求体"),
    ("{not json", "body_not_json", "JSON"),
    ('["2025-10-01", "2025-10-09"]', "body_not_object", "JSON 对象"),
    ('"2025-10-01"', "body_not_object", "JSON 对象"),
])
def test_body_that_is_not_a_json_object_is_rejected(api, db, stack, raw, code, word):
    assert_rejected(db, stack, api.start(None, raw=raw), code, word)


@pytest.mark.parametrize("field", ["start_date", "end_date"])
def test_missing_date_field_is_named(api, db, stack, field):
    body = {"start_date": "2025-10-01", "end_date": "2025-10-09"}
    del body[field]
    assert_rejected(db, stack, api.start(body), f"{field}_missing", field)


@pytest.mark.parametrize("field", ["start_date", "end_date"])
@pytest.mark.parametrize("value", ["20251001", "2025/10/01", "yesterday", 20251001, None, "2025-10-1"])
def test_malformed_date_is_named(api, db, stack, field, value):
    body = {"start_date": "2025-10-01", "end_date": "2025-10-09", field: value}
    code = f"{field}_missing" if value is None else f"{field}_format"
    assert_rejected(db, stack, api.start(body), code, field)


@pytest.mark.parametrize("field", ["start_date", "end_date"])
def test_impossible_calendar_date_is_named(api, db, stack, field):
    body = {"start_date": "2025-02-01", "end_date": "2025-02-27", field: "2025-02-30"}
    assert_rejected(db, stack, api.start(body), f"{field}_invalid", field, "2025-02-30")


def test_start_after_end_is_rejected(api, db, stack):
    response = api.start({"start_date": "2025-10-09", "end_date": "2025-10-01"})
    assert_rejected(db, stack, response, "range_reversed", "开始日期", "2025-10-09", "2025-10-01")


def test_range_of_91_days_is_rejected_with_its_length(api, db, stack):
    response = api.start({"start_date": "2025-01-01", "end_date": "2025-04-01"})
    assert_rejected(db, stack, response, "range_too_long", "90", "91")


def test_range_of_exactly_90_days_is_accepted(api, db):
    response = api.start({"start_date": "2025-01-01", "end_date": "2025-03-31"})
    assert response.status_code == 200, response.json_body
    assert response.json_body["data"]["total_days"] == 90


def test_end_date_after_today_in_beijing_is_rejected(api, db, stack):
    tomorrow = market_today() + timedelta(days=1)
    body = {"start_date": (tomorrow - timedelta(days=3)).isoformat(), "end_date": tomorrow.isoformat()}
    assert_rejected(db, stack, api.start(body), "end_in_future", "今天", tomorrow.isoformat())


def test_today_is_an_allowed_end_date(api, db):
    today = market_today().isoformat()
    response = api.start({"start_date": today, "end_date": today})
    assert response.status_code == 200, response.json_body


@pytest.mark.parametrize("force", ["yes", 1, None])
def test_force_must_be_a_boolean(api, db, stack, force):
    body = {"start_date": "2025-10-01", "end_date": "2025-10-09", "force": force}
    assert_rejected(db, stack, api.start(body), "force_type", "force")


def test_english_message_on_query_parameter(api, db, stack):
    response = api.start({"start_date": "2025-10-09", "end_date": "2025-10-01"}, query="?lang=en")
    assert_rejected(db, stack, response, "range_reversed", "start_date 2025-10-09 must not be after")


def test_english_message_on_accept_language(api, db, stack):
    response = api.start({"start_date": "2025-10-01"}, headers={"accept-language": "en-US,en;q=0.9"})
    assert_rejected(db, stack, response, "end_date_missing", "end_date is required")


def test_seed_frontend_request_without_json_content_type_is_accepted(api, db):
    # The seed's fetch() sends no Content-Type, so browsers label it text/plain.
    response = api.start({"start_date": "2025-10-01", "end_date": "2025-10-09"},
                         headers={"content-type": "text/plain;charset=UTF-8"})
    assert response.status_code == 200, response.json_body


@pytest.mark.parametrize("value", ["2025-10-01_2025-10-09_1697587200", "2025-10-01_2025-10-01_1"])
def test_task_ids_of_the_seeds_shape_are_accepted(value):
    assert is_task_id(value)


@pytest.mark.parametrize("value", [
    None, 17, b"2025-10-01_2025-10-09_1697587200", "", "abc",
    "2025-10-01_2025-10-09_1697587200\n",       # `$` would accept the newline
    "2025-10-01_2025-10-09_1697587200\x00",      # a NUL reaches psycopg2 as an error
    "２０２５-10-01_2025-10-09_1697587200",      # fullwidth digits match `\d`
    "2025-10-01_2025-10-09_\ud800",              # a lone surrogate cannot be encoded
    "2025-10-01_2025-10-09_1697587200' OR '1'='1",
    "2025-10-01_2025-10-09_" + "9" * 13,
])
def test_anything_else_is_not_a_task_id(value):
    assert not is_task_id(value)
