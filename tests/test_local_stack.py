"""The seed's request over real HTTP against `chalice local`, with the local worker loop."""
from __future__ import annotations

import io

import requests

from devstack.progress_cli import start_job, watch
from devstack.worker_loop import WorkerLoop

BATCH = "/api/v1/sync-status/sync/batch"


def test_seed_request_runs_to_completed_over_http(stack, db, app_module):
    loop = WorkerLoop(stack.sqs_client(), stack.env["SQS_QUEUE_URL"], app_module.sync_day, workers=2)
    loop.start()
    try:
        # The seed frontend's request: no Content-Type header, so text/plain.
        answer = requests.post(stack.api_url + BATCH, timeout=10,
                               data='{"start_date": "2025-10-01", "end_date": "2025-10-09"}',
                               headers={"Content-Type": "text/plain;charset=UTF-8",
                                        "Authorization": f"Bearer {stack.api_token}"})
        assert answer.status_code == 200, answer.text
        task_id = answer.json()["data"]["task_id"]
        out = io.StringIO()
        final = watch(stack.api_url, task_id, interval_s=0.2, timeout_s=120, out=out,
                      token=stack.api_token)
    finally:
        loop.stop()
    assert final["status"] == "completed"
    # 10-01..10-08 are the holiday and its weekend; 10-09 trades.
    assert (final["total"], final["success"], final["failed"], final["skipped"]) == (9, 1, 0, 8)
    assert final["message"] == "批量同步完成: 成功1, 失败0, 跳过8"
    assert final["rows"] > 4000
    assert "100.0%" in out.getvalue()


def test_http_errors_keep_the_seed_envelope(stack, db):
    answer = start_job(stack.api_url, "2025-10-09", "2025-10-01", lang="en", token=stack.api_token)
    assert answer["http_status"] == 400
    assert answer["status"] == "error" and "must not be after" in answer["message"]
    missing = requests.get(stack.api_url + BATCH + "/progress/none", timeout=10,
                           headers={"Authorization": f"Bearer {stack.api_token}"})
    assert missing.status_code == 404 and missing.json()["status"] == "error"
    # CORS is closed by default: no `*`, and only listed origins get their name back.
    assert "Access-Control-Allow-Origin" not in missing.headers
    assert missing.headers["Vary"] == "Origin"
