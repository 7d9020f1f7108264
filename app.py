"""stocksync's functions: the HTTP API, the SQS day worker.

Only wiring lives here. Each client (database pool, SQS, tushare) is made once
per container by a getter and handed to the chalicelib object that uses it, so
a warm Lambda reuses its connections.
"""
from __future__ import annotations

import gc
import os
import threading
from typing import Any

import boto3
from botocore.config import Config as BotoConfig
from chalice import Chalice, Rate, Response

from chalicelib import api, notices, openapi, secrecy
from chalicelib.audit import Audit, AuditPolicy, parse_audit_request
from chalicelib.auth import OPERATOR, READER, Authenticator, Principal, require
from chalicelib.completeness import CompletenessPolicy
from chalicelib.config import DAY_QUEUE_NAME, DEAD_LETTER_QUEUE_NAME, Settings, market_today
from chalicelib.cors import CorsPolicy
from chalicelib.dates import DateStates, parse_date_range
from chalicelib.db import Database
from chalicelib.errors import NotFound
from chalicelib.job_events import SETTLED, JobEvents, task_of_message
from chalicelib.jobs import JobService
from chalicelib.limits import WriteLimits
from chalicelib.live import LiveProgress, Pusher
from chalicelib.notices import NoticePolicy, NoticeSender, SnsTransport, WebhookTransport
from chalicelib.queue import DayQueue
from chalicelib.quota import QuotaPolicy, TushareQuota
from chalicelib.source import TushareSource, make_client
from chalicelib.sweeper import Sweeper, SweepPolicy
from chalicelib.trading_calendar import TradingCalendar
from chalicelib.validation import is_task_id, parse_json_body, validate_batch_request
from chalicelib.webpage import asset_response
from chalicelib.worker import DayWorker, RetryPolicy

app = Chalice(app_name="stocksync")
# Pushed progress: the WebSocket API's handlers (websocket_connect, _message, _disconnect).
app.experimental_feature_flags.update(["WEBSOCKETS"])

BATCH = "/api/v1/sync-status/sync/batch"
# The seed's frontend posts with fetch() and no Content-Type: browsers send text/plain.
BODY_TYPES = ["application/json", "text/plain", "application/x-www-form-urlencoded"]
# Each function's peak concurrency: the database's connection budget, not the traffic, sets it.
WORKER_MAX_CONCURRENCY = 5

_clients: dict[str, Any] = {}
_clients_lock = threading.RLock()  # getters nest: jobs needs db and queue


def _client(name: str, make: Any) -> Any:
    with _clients_lock:
        if name not in _clients:
            _clients[name] = make()
        return _clients[name]


def get_settings() -> Settings:
    def make() -> Settings:
        # Deployed, SECRETS_ARN names the Secrets Manager secrets to read, once per container.
        env = secrecy.environment_with_secrets(os.environ, lambda: boto3.client(
            "secretsmanager", region_name=os.environ.get("AWS_REGION") or None))
        settings = Settings.from_env(env)
        secrecy.register(*secrecy.dsn_secrets(settings.database_url), settings.tushare_token,
                         settings.notify_webhook_secret, *(w.url for w in settings.notify_webhooks))
        # The ending of a job writes its notices for these (chalicelib.jobs, .notices).
        notices.use_destinations(settings.notice_destinations())
        return settings
    return _client("settings", make)


def get_authenticator() -> Authenticator:
    return _client("auth", lambda: Authenticator(get_settings().api_tokens, get_settings().public_read))


def get_cors() -> CorsPolicy:
    return _client("cors", lambda: CorsPolicy(get_settings().cors_allow_origins))


def get_db() -> Database:
    settings = get_settings()

    def make() -> Database:
        db = Database(settings.database_url, settings.db_pool_size)
        # Once per container; a no-op after the first deploy, and lock-guarded.
        db.migrate()
        return db
    return _client("db", make)


def get_queue() -> DayQueue:
    settings = get_settings()

    def make() -> DayQueue:
        sqs = boto3.client("sqs", region_name=settings.aws_region,
                           endpoint_url=settings.sqs_endpoint_url)
        url = settings.sqs_queue_url or sqs.get_queue_url(QueueName=DAY_QUEUE_NAME)["QueueUrl"]
        return DayQueue(sqs, url)
    return _client("queue", make)


def get_jobs() -> JobService:
    return _client("jobs", lambda: JobService(get_db(), get_queue(),
                                              limits=WriteLimits.from_settings(get_settings())))


def get_dates() -> DateStates:
    return _client("dates", lambda: DateStates(get_db()))


def get_source() -> TushareSource:
    """tushare, every call through the quota all workers share (chalicelib.quota)."""
    settings = get_settings()

    def make() -> TushareSource:
        quota = TushareQuota(get_db(), settings.tushare_token, QuotaPolicy(
            per_minute=dict(settings.quota_per_minute), window_s=settings.quota_window_s,
            margin_s=settings.quota_margin_s, max_wait_s=settings.quota_max_wait_s))
        return TushareSource(make_client(settings.tushare_token, settings.tushare_api_url,
                                         settings.tushare_timeout_s), settings.tushare_token, quota)
    return _client("source", make)


def get_completeness() -> CompletenessPolicy:
    settings = get_settings()
    return CompletenessPolicy(tolerance=settings.completeness_tolerance,
                              listings_max_age_s=settings.listings_max_age_s,
                              listings_recheck_s=settings.listings_recheck_s)


def get_worker() -> DayWorker:
    settings = get_settings()

    def make() -> DayWorker:
        source = get_source()
        return DayWorker(get_db(), source, TradingCalendar(get_db(), source), get_queue(),
                         RetryPolicy.from_settings(settings), lease_s=settings.lease_s,
                         publish_time=settings.publish_time, completeness=get_completeness())
    return _client("worker", make)


def get_audit() -> Audit:
    settings = get_settings()

    def make() -> Audit:
        source = get_source()
        return Audit(get_db(), source, TradingCalendar(get_db(), source), AuditPolicy(
            publish_time=settings.publish_time, tolerance=settings.completeness_tolerance,
            recheck_max=settings.audit_recheck_max))
    return _client("audit", make)


def get_sweeper() -> Sweeper:
    settings = get_settings()

    def make() -> Sweeper:
        policy = SweepPolicy(stale_after_s=settings.stale_after_s,
                             unsent_after_s=settings.unsent_after_s,
                             lost_after_s=settings.lost_after_s,
                             max_attempts=settings.max_attempts, max_enqueues=settings.max_attempts,
                             retention_days=settings.job_retention_days)
        return Sweeper(get_db(), get_queue(), policy)
    return _client("sweeper", make)


def get_notice_sender() -> NoticeSender:
    settings = get_settings()

    def make() -> NoticeSender:
        transports: dict[str, Any] = {}
        if settings.notify_sns_topic_arn:
            sns = boto3.client("sns", region_name=settings.aws_region,
                               endpoint_url=settings.sns_endpoint_url,
                               config=BotoConfig(connect_timeout=settings.notify_timeout_s,
                                                 read_timeout=settings.notify_timeout_s,
                                                 retries={"max_attempts": 2}))
            transports["sns"] = SnsTransport(sns, settings.notify_sns_topic_arn)
        for hook in settings.notify_webhooks:
            transports[hook.destination] = WebhookTransport(
                hook.name, hook.url, settings.notify_webhook_secret, settings.notify_timeout_s)
        policy = NoticePolicy(max_attempts=settings.notify_max_attempts,
                              retry_base_s=settings.notify_retry_base_s,
                              retry_max_s=settings.notify_retry_max_s, lease_s=settings.notify_lease_s)
        return NoticeSender(get_db(), transports, policy)
    return _client("notices", make)


def get_live() -> LiveProgress:
    settings = get_settings()

    def make() -> LiveProgress:
        pusher = None
        if settings.live_management_url:
            # The same call deployed (API Gateway's management API) and locally
            # (devstack/live_server.py): only the endpoint differs.
            pusher = Pusher(boto3.client(
                "apigatewaymanagementapi", endpoint_url=settings.live_management_url,
                region_name=settings.aws_region,
                config=BotoConfig(connect_timeout=2, read_timeout=3, retries={"max_attempts": 2})))
        return LiveProgress(get_db(), lambda task_id: get_jobs().progress(task_id).as_json(),
                            pusher, settings.live_websocket_url, settings.live_ticket_ttl_s)
    return _client("live", make)


def get_job_events() -> JobEvents:
    return _client("job_events", lambda: JobEvents(get_live(), get_notice_sender()))


# Every API view declares, next to its route, the role a caller needs: `operator` for
# every write, `reader` for reads (PUBLIC_READ=true opens those). chalicelib.api
# checks it before the view runs; tests/test_auth.py tries every route of this table.
json_api = api.JsonApi(lambda: app.current_request, get_authenticator, get_cors,
                       lambda: get_settings().max_body_bytes)
app.register_middleware(api.middleware(get_cors), "http")


def _task_id(value: str) -> str:
    # A path parameter reaches SQL only in the shape of a task id; any other names no task.
    if not is_task_id(value):
        raise NotFound.task(value)
    return value


@app.route(BATCH, methods=["POST"], content_types=BODY_TYPES)
@json_api(role=OPERATOR)
def start_batch_sync(principal: Principal) -> dict[str, Any]:
    body = parse_json_body(app.current_request.raw_body)
    request = validate_batch_request(body, market_today(), get_settings().max_range_days)
    created = get_jobs().create(request, created_by=principal.name)
    return {"task_id": created.task_id, "total_days": created.total_days,
            "message": created.message, "datasets": list(request.datasets)}


# Completeness: what is stored against what should be, and a job that fills the gaps.
@app.route("/api/v1/sync-status/audit", methods=["GET"])
@json_api(role=READER)
def audit_report(principal: Principal) -> dict[str, Any]:
    request = parse_audit_request(app.current_request.query_params, market_today())
    if request.recheck:
        require(principal, OPERATOR)  # asking tushare spends the owner's quota, as a sync does
    return get_audit().report(request).as_json()


@app.route("/api/v1/sync-status/audit/fill", methods=["POST"], content_types=BODY_TYPES)
@json_api(role=OPERATOR)
def audit_fill(principal: Principal) -> dict[str, Any]:
    body = parse_json_body(app.current_request.raw_body)
    request = parse_audit_request(body, market_today(), from_body=True)
    report = get_audit().report(request)
    pairs = report.faulty_pairs()
    created = get_jobs().fill(pairs, created_by=principal.name,
                              max_days=get_settings().max_range_days)
    return {"task_id": created.task_id, "total_days": created.total_days,
            "message": created.message, "pairs": len(pairs),
            "audit": report.counts}


@app.route(BATCH + "/progress/{task_id}", methods=["GET"])
@json_api(role=READER)
def batch_progress(task_id: str) -> dict[str, Any]:
    task_id = _task_id(task_id)
    return get_jobs().progress(task_id).as_json()


@app.route(BATCH + "/cancel/{task_id}", methods=["POST"], content_types=BODY_TYPES)
@json_api(role=OPERATOR)
def cancel_batch_sync(task_id: str, principal: Principal) -> dict[str, Any]:
    task_id = _task_id(task_id)
    cancelled = get_jobs().cancel(task_id, cancelled_by=principal.name).as_json()
    get_job_events().changed([task_id])  # push the end, send its notices
    return cancelled


@app.route(BATCH + "/pause/{task_id}", methods=["POST"], content_types=BODY_TYPES)
@json_api(role=OPERATOR)
def pause_batch_sync(task_id: str, principal: Principal) -> dict[str, Any]:
    task_id = _task_id(task_id)
    paused = get_jobs().pause(task_id, paused_by=principal.name).as_json()
    get_job_events().changed([task_id])  # push the pause (or the end, if its last day settled)
    return paused


@app.route(BATCH + "/resume/{task_id}", methods=["POST"], content_types=BODY_TYPES)
@json_api(role=OPERATOR)
def resume_batch_sync(task_id: str, principal: Principal) -> dict[str, Any]:
    task_id = _task_id(task_id)
    resumed = get_jobs().resume(task_id, resumed_by=principal.name).as_json()
    get_job_events().changed([task_id])
    return resumed


@app.route(BATCH + "/retry/{task_id}", methods=["POST"], content_types=BODY_TYPES)
@json_api(role=OPERATOR)
def retry_batch_sync(task_id: str, principal: Principal) -> dict[str, Any]:
    task_id = _task_id(task_id)
    retried = get_jobs().retry(task_id, retried_by=principal.name).as_json()
    get_job_events().changed([task_id])  # the re-opened job, to whoever follows it
    return retried


@app.route(BATCH + "/days/{task_id}", methods=["GET"])
@json_api(role=READER)
def batch_days(task_id: str) -> list[dict[str, Any]]:
    task_id = _task_id(task_id)
    return get_jobs().days(task_id)


@app.route(BATCH + "/events/{task_id}", methods=["GET"])
@json_api(role=READER)
def batch_events(task_id: str) -> list[dict[str, Any]]:
    task_id = _task_id(task_id)
    return get_jobs().events(task_id)


@app.route(BATCH + "/jobs", methods=["GET"])
@json_api(role=READER)
def recent_jobs() -> list[dict[str, Any]]:
    return get_jobs().recent()


@app.route("/api/v1/sync-status/live/ticket", methods=["POST"], content_types=BODY_TYPES)
@json_api(role=READER)
def live_ticket(principal: Principal) -> dict[str, Any]:
    """A one-time ticket for the WebSocket of pushed progress: whoever may read progress."""
    return get_live().issue_ticket(principal)


@app.route("/api/v1/sync-status/whoami", methods=["GET"])
@json_api(role=READER)
def whoami(principal: Principal) -> dict[str, Any]:
    return {"name": principal.name, "role": principal.role,
            "public_read": get_authenticator().public_read}


@app.route("/api/v1/openapi.json", methods=["GET"])
@json_api(role=READER)
def openapi_document() -> dict[str, Any]:
    return openapi.describe(app.routes)


# The sync page (chalicelib/page/): its calendar's endpoint, the page and its files.
@app.route("/api/v1/sync-status/dates", methods=["GET"])
@json_api(role=READER)
def date_states() -> dict[str, Any]:
    dates = parse_date_range(app.current_request.query_params)
    return get_dates().report(dates, market_today(), get_settings().max_range_days).as_json()


@app.route("/sync-status", methods=["GET"])
@api.public
def sync_status_page() -> Response:
    settings = get_settings()
    return asset_response("index.html", app.current_request, settings.page_api_origins,
                          settings.live_websocket_url)


@app.route("/sync-status/{name}", methods=["GET"])
@api.public
def sync_status_file(name: str) -> Response:
    settings = get_settings()
    return asset_response(name, app.current_request, settings.page_api_origins,
                          settings.live_websocket_url)


# CORS preflight for every path, answered by the app (closed unless CORS_ALLOW_ORIGINS).
for _number, (_path, _methods) in enumerate(sorted(app.routes.items())):
    app.route(_path, methods=["OPTIONS"], name=f"preflight_{_number}")(
        json_api.preflight(sorted(_methods)))


@app.on_sqs_message(queue=DAY_QUEUE_NAME, batch_size=1, maximum_concurrency=WORKER_MAX_CONCURRENCY)
def sync_day(event: Any) -> None:
    worker = get_worker()
    for record in event:
        result = worker.handle_message(record.body, record.receipt_handle)
        if result.outcome in SETTLED:
            get_job_events().changed([task_of_message(record.body)])


@app.on_sqs_message(queue=DEAD_LETTER_QUEUE_NAME, batch_size=1, maximum_concurrency=2)
def dead_letter_day(event: Any) -> None:
    worker = get_worker()
    for record in event:
        receives = (record.to_dict().get("attributes") or {}).get("ApproximateReceiveCount")
        result = worker.handle_dead_letter(record.body, receives)
        if result.outcome in SETTLED:
            get_job_events().changed([task_of_message(record.body)])


@app.schedule(Rate(1, unit=Rate.MINUTES))
def sweep_stuck_days(event: Any) -> None:
    report = get_sweeper().sweep()
    events = get_job_events()
    events.changed(task_id for task_id, _ in report.settled + report.failed)
    events.sweep()  # notices still due (retries, a sender that died), stale tickets


@app.on_ws_connect()
def websocket_connect(event: Any) -> dict[str, Any]:
    params = event.to_dict().get("queryStringParameters") or {}
    return {"statusCode": get_live().connect(event.connection_id, params)}


@app.on_ws_message()
def websocket_message(event: Any) -> dict[str, Any]:
    get_live().message(event.connection_id, event.to_dict().get("body"))
    return {"statusCode": 200}


@app.on_ws_disconnect()
def websocket_disconnect(event: Any) -> dict[str, Any]:
    get_live().disconnect(event.connection_id)
    return {"statusCode": 200}


@app.lambda_function(name="migrate")
def migrate(event: Any, context: Any) -> dict[str, Any]:
    """Apply pending SQL migrations: `aws lambda invoke --function-name stocksync-<stage>-migrate`."""
    # Not get_db(): it migrates on first use and would leave nothing to report. A failure
    # raises ServiceUnavailable, whose text and cause hold nothing of the DSN.
    db = Database(get_settings().database_url, 1)
    try:
        return {"applied": db.migrate()}
    finally:
        db.close()


# The imports above leave tens of thousands of objects (pandas, numpy, boto3, tushare) that
# live as long as the container. Frozen, they are out of the cyclic collector's walk: a
# full collection then takes a few ms instead of ~60 ms that every request in flight
# would wait out (bench/README.md, the `reads` group).
gc.freeze()
