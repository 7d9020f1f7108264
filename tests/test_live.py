"""Pushed progress on the real local stack: the ticket route, the WebSocket handlers served
by the dev stack's WebSocket API (devstack/live_server.py), pushes through its management
API, disconnects and gone connections.
"""
from __future__ import annotations

import json
from datetime import date

import pytest
import requests
from chalice.test import Client
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from chalicelib.live import MAX_CONNECTION_AGE_S, ticket_hash
from chalicelib.validation import BatchRequest
from chalicelib.webpage import content_security_policy
from tests.conftest import READER_TOKEN, TokenHttp, fetch_all, scalar, wait_for

TICKET = "/api/v1/sync-status/live/ticket"
HOLIDAY = BatchRequest(date(2025, 9, 29), date(2025, 10, 10))  # 4 trading days of 12


def ticket(stack, token=READER_TOKEN) -> dict:
    answer = requests.post(stack.api_url + TICKET, timeout=10, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]


def open_socket(stack, token=READER_TOKEN):
    data = ticket(stack, token)
    return connect(f"{data['url']}?ticket={data['ticket']}", open_timeout=10)


def receive(socket, timeout=10.0) -> dict:
    return json.loads(socket.recv(timeout=timeout))


def connections(db) -> list[dict]:
    return fetch_all(db, "SELECT connection_id, token_name, task_id FROM live_connections ORDER BY connected_at")


def test_a_reader_gets_a_one_time_ticket_kept_only_as_its_hash(stack, db):
    data = ticket(stack)
    assert data["url"] == stack.env["LIVE_WEBSOCKET_URL"] and data["expires_in_s"] == 30
    assert data["ticket"].startswith("lt_") and len(data["ticket"]) >= 35
    rows = fetch_all(db, "SELECT ticket_sha256, token_name, role, expires_at > now() AS live FROM live_tickets")
    assert rows == [{"ticket_sha256": ticket_hash(data["ticket"]), "token_name": "test-reader",
                     "role": "reader", "live": True}]
    assert data["ticket"] not in json.dumps(fetch_all(db, "SELECT * FROM live_tickets"), default=str)


def test_a_ticket_opens_one_connection_once(stack, db):
    data = ticket(stack)
    with connect(f"{data['url']}?ticket={data['ticket']}", open_timeout=10):
        (row,) = wait_for(lambda: connections(db), timeout_s=10.0, what="the connection's row")
        assert row["token_name"] == "test-reader" and row["task_id"] is None
        assert fetch_all(db, "SELECT * FROM live_tickets") == []  # used up
        with pytest.raises(InvalidStatus) as again:
            connect(f"{data['url']}?ticket={data['ticket']}", open_timeout=10)
        assert again.value.response.status_code == 401
    wait_for(lambda: connections(db) == [], timeout_s=10.0, what="the disconnect to remove the connection")


@pytest.mark.parametrize("query", ["", "?ticket=", "?ticket=lt_short", "?ticket=sst_" + "x" * 43,
                                   "?ticket=lt_" + "A" * 43, "?token=" + READER_TOKEN])
def test_no_valid_ticket_no_connection(stack, db, query):
    with pytest.raises(InvalidStatus) as refused:
        connect(stack.env["LIVE_WEBSOCKET_URL"] + query, open_timeout=10)
    assert refused.value.response.status_code == 401
    assert connections(db) == []


def test_an_expired_ticket_is_refused(stack, db):
    data = ticket(stack)
    with db.transaction() as cur:
        cur.execute("UPDATE live_tickets SET expires_at = now() - interval '1 second'")
    with pytest.raises(InvalidStatus):
        connect(f"{data['url']}?ticket={data['ticket']}", open_timeout=10)


def test_subscribing_answers_the_progress_and_every_settled_day_pushes_it(app_module, stack, db, workers):
    task_id = app_module.get_jobs().create(HOLIDAY).task_id
    with open_socket(stack) as socket:
        socket.send(json.dumps({"action": "subscribe", "task_id": task_id}))
        first = receive(socket)
        assert first == {"type": "progress", "task_id": task_id,
                         "data": {**app_module.get_jobs().progress(task_id).as_json(),
                                  "elapsed_s": first["data"]["elapsed_s"]}}
        assert connections(db)[0]["task_id"] == task_id
        pushes_before = stack.live.pushes
        final = workers.run_until_settled(task_id)
        pushed = []
        while not pushed or pushed[-1]["data"]["status"] == "running":
            pushed.append(receive(socket))
    # One push per settled day, in the progress endpoint's own shape, the last one the end.
    assert len(pushed) == 12 and stack.live.pushes - pushes_before == 12
    assert all(p["type"] == "progress" and set(p["data"]) == set(final) for p in pushed)
    assert sorted(p["data"]["current"] for p in pushed) == list(range(1, 13))
    assert pushed[-1]["data"] == final


def test_the_page_protocol_answers_every_message_and_keeps_the_connection(app_module, stack, db):
    task_id = app_module.get_jobs().create(HOLIDAY).task_id
    with open_socket(stack) as socket:
        for message, answer in [
                ('{"action": "ping"}', {"type": "pong"}),
                ("not json", {"type": "error", "code": "bad_request"}),
                ('["subscribe"]', {"type": "error", "code": "bad_request"}),
                ('{"action": "shout"}', {"type": "error", "code": "bad_request"}),
                ('{"action": "subscribe", "task_id": "1; DROP TABLE sync_jobs"}',
                 {"type": "error", "code": "not_found", "task_id": None}),
                ('{"action": "subscribe", "task_id": "2025-10-01_2025-10-09_1"}',
                 {"type": "error", "code": "not_found", "task_id": "2025-10-01_2025-10-09_1"}),
                ("x" * 5000, {"type": "error", "code": "bad_request"})]:
            socket.send(message)
            assert receive(socket) == answer, message
        socket.send(json.dumps({"action": "subscribe", "task_id": task_id}))
        assert receive(socket)["type"] == "progress"
        socket.send('{"action": "unsubscribe"}')
        wait_for(lambda: connections(db)[0]["task_id"] is None, timeout_s=10.0, what="the unsubscribe")
        assert app_module.get_live().publish(task_id) == 0


def test_a_cancel_over_http_pushes_the_end_from_the_api_process(app_module, stack, db, operator_headers):
    task_id = app_module.get_jobs().create(HOLIDAY).task_id
    with open_socket(stack) as socket:
        socket.send(json.dumps({"action": "subscribe", "task_id": task_id}))
        assert receive(socket)["data"]["status"] == "running"
        answer = requests.post(f"{stack.api_url}/api/v1/sync-status/sync/batch/cancel/{task_id}",
                               headers=operator_headers, timeout=30)
        assert answer.status_code == 200
        pushed = receive(socket)
    assert pushed["data"]["status"] == "cancelled"
    assert pushed["data"] == answer.json()["data"] | {"elapsed_s": pushed["data"]["elapsed_s"]}


def test_gone_connections_are_dropped_when_a_push_finds_them(app_module, stack, db):
    task_id = app_module.get_jobs().create(HOLIDAY).task_id
    live = app_module.get_live()
    with open_socket(stack) as socket:
        socket.send(json.dumps({"action": "subscribe", "task_id": task_id}))
        receive(socket)
        # Two connections whose disconnect never reached us (API Gateway does not promise it).
        with db.transaction() as cur:
            for gone in ("GoneConnAAA=", "GoneConnBBB="):
                cur.execute("INSERT INTO live_connections (connection_id, task_id) VALUES (%s, %s)",
                            (gone, task_id))
        gone_before = stack.live.gone
        assert live.publish(task_id) == 1
        assert receive(socket)["type"] == "progress"
        assert stack.live.gone - gone_before == 2
        assert [c["task_id"] for c in connections(db)] == [task_id]
        assert live.publish(task_id) == 1 and stack.live.gone - gone_before == 2


def test_a_closed_connection_is_forgotten_and_old_rows_and_tickets_are_pruned(app_module, stack, db):
    task_id = app_module.get_jobs().create(HOLIDAY).task_id
    with open_socket(stack) as socket:
        socket.send(json.dumps({"action": "subscribe", "task_id": task_id}))
        receive(socket)
    wait_for(lambda: connections(db) == [], timeout_s=10.0, what="the disconnect handler")
    ticket(stack)
    with db.transaction() as cur:
        cur.execute("UPDATE live_tickets SET expires_at = now() - interval '1 second'")
        cur.execute("INSERT INTO live_connections (connection_id, task_id, connected_at) "
                    "VALUES ('Old=', %s, now() - make_interval(secs => %s))", (task_id, MAX_CONNECTION_AGE_S + 1))
    assert app_module.get_live().prune() == {"tickets": 1, "connections": 1}
    assert scalar(db, "SELECT count(*) FROM live_connections") == 0


def test_the_ticket_route_says_when_pushes_are_not_deployed(app_module, db, configure):
    configure(live_websocket_url=None, live_management_url=None)
    with Client(app_module.app) as client:
        answer = TokenHttp(client.http, READER_TOKEN).post(TICKET + "?lang=en")
    assert answer.status_code == 404
    assert answer.json_body["code"] == "live_unavailable"
    assert answer.json_body["message"].startswith("Pushed progress is not enabled")
    assert scalar(db, "SELECT count(*) FROM live_tickets") == 0


def test_the_page_learns_the_websocket_url_and_may_connect_to_it(stack, db):
    page = requests.get(stack.api_url + "/sync-status", timeout=10)
    url = stack.env["LIVE_WEBSOCKET_URL"]
    assert f'<meta name="stocksync-live-url" content="{url}">' in page.text
    origin = url.rstrip("/")
    assert f"connect-src 'self' http://127.0.0.1:{stack.options.port} {origin};" in \
        page.headers["Content-Security-Policy"]
    assert "wss://abc.execute-api.ap-east-1.amazonaws.com;" in content_security_policy(
        (), "wss://abc.execute-api.ap-east-1.amazonaws.com/api")


def test_the_ticket_route_is_a_read_in_the_role_table_and_the_published_document(app_module, stack, db):
    """The 401/403 matrix and the fuzz walk app.app.routes and the OpenAPI document: the
    ticket route is in both, as a reader's route with bearer security."""
    from chalicelib.api import access_of
    assert access_of(app_module.app.routes[TICKET]["POST"].view_function) == "reader"
    document = requests.get(stack.api_url + "/api/v1/openapi.json", timeout=10,
                            headers={"Authorization": f"Bearer {READER_TOKEN}"}).json()["data"]
    operation = document["paths"][TICKET]["post"]
    assert operation["security"] == [{"bearer": []}] and operation["x-stocksync-access"] == "reader"
    assert requests.post(stack.api_url + TICKET, timeout=10).status_code == 401
