"""The one exception hierarchy that API answers are made from.

Each error carries its HTTP status, a stable machine-readable `code`, and its
message in Chinese (the seed's language, the default) and English.
"""
from __future__ import annotations

from typing import Any


class ConfigError(Exception):
    """A setting that cannot be used; its message never contains the setting's value."""


class StocksyncError(Exception):
    status_code = 500
    code = "internal_error"

    def __init__(self, zh: str, en: str, data: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(en)
        self.zh = zh
        self.en = en
        self.data = data
        self.headers = headers or {}

    def message(self, lang: str) -> str:
        return self.en if lang == "en" else self.zh


class ValidationError(StocksyncError):
    status_code = 400

    def __init__(self, code: str, zh: str, en: str):
        super().__init__(zh, en)
        self.code = code


def shorten(value: object, limit: int = 64) -> str:
    """A caller's value as an answer may echo it: printable, and cut short."""
    text = value if isinstance(value, str) else repr(value)
    text = "".join(c if c.isprintable() else "\ufffd" for c in text[:limit + 1])
    return text if len(text) <= limit else text[:limit] + "…"


class Unauthorized(StocksyncError):
    status_code = 401
    code = "unauthorized"

    @classmethod
    def missing(cls) -> "Unauthorized":
        return cls("需要登录：请在 Authorization 头中提供访问令牌（Bearer）",
                   "Sign-in required: send an access token as `Authorization: Bearer <token>`",
                   headers={"WWW-Authenticate": 'Bearer realm="stocksync"'})

    @classmethod
    def bad_token(cls) -> "Unauthorized":
        return cls("访问令牌无效或已失效，请重新登录",
                   "The access token is not valid (unknown, revoked or malformed); sign in again",
                   headers={"WWW-Authenticate": 'Bearer realm="stocksync", error="invalid_token"'})


class Forbidden(StocksyncError):
    status_code = 403
    code = "forbidden"

    @classmethod
    def role(cls, needed: str) -> "Forbidden":
        return cls(f"权限不足：此操作需要 {needed} 角色的令牌",
                   f"Not allowed: this needs a token with the {needed} role")

    @classmethod
    def origin(cls) -> "Forbidden":
        error = cls("不接受来自其他网站的写请求", "Writes from another site's pages are not accepted")
        error.code = "origin_not_allowed"
        return error

    @classmethod
    def origin_cors(cls) -> "Forbidden":
        error = cls("此来源不在跨域允许列表中（CORS_ALLOW_ORIGINS）",
                    "This origin is not in the API's CORS allow-list (CORS_ALLOW_ORIGINS)")
        error.code = "origin_not_allowed"
        return error


class NotFound(StocksyncError):
    status_code = 404
    code = "not_found"

    @classmethod
    def task(cls, task_id: str) -> "NotFound":
        shown = shorten(task_id)
        return cls(f"任务不存在: {shown}", f"No such task: {shown}")

    @classmethod
    def live_unavailable(cls) -> "NotFound":
        # No WebSocket API here: the page falls back to polling, as for any answer but a ticket.
        error = cls("此部署未启用实时推送，请改用轮询查看进度",
                    "Pushed progress is not enabled on this deployment; poll the progress instead")
        error.code = "live_unavailable"
        return error


class PayloadTooLarge(StocksyncError):
    status_code = 413
    code = "body_too_large"

    @classmethod
    def body(cls, size: int, limit: int) -> "PayloadTooLarge":
        return cls(f"请求体过大（{size} 字节，上限 {limit} 字节）",
                   f"The request body is too large ({size} bytes; the limit is {limit})")


class TooManyRequests(StocksyncError):
    status_code = 429
    code = "rate_limited"

    @classmethod
    def limit(cls, what_zh: str, what_en: str, limit: int, retry_after_s: int) -> "TooManyRequests":
        retry_after_s = max(1, retry_after_s)
        return cls(f"已达到{what_zh}上限（{limit}），请 {retry_after_s} 秒后再试",
                   f"Limit reached: {what_en} ({limit}); try again in {retry_after_s} s",
                   data={"limit": limit, "retry_after_s": retry_after_s},
                   headers={"Retry-After": str(retry_after_s)})


class Conflict(StocksyncError):
    status_code = 409
    code = "job_running"

    @classmethod
    def job_running(cls, task_id: str) -> "Conflict":
        # The seed's exact words: existing frontends show them as they are.
        return cls(
            "已有同步任务正在运行，请等待当前任务完成后再试",
            "A sync job is already running; wait for it to finish and try again",
            data={"task_id": task_id, "status": "running"},
        )

    @classmethod
    def job_paused(cls, task_id: str) -> "Conflict":
        error = cls("已有同步任务处于暂停状态，请先恢复或取消该任务后再试",
                    "A sync job is paused; resume or cancel it, then try again",
                    data={"task_id": task_id, "status": "paused"})
        error.code = "job_paused"
        return error

    @classmethod
    def job_active(cls, task_id: str, status: str) -> "Conflict":
        """The job that holds the one-job slot: running (the seed's words) or paused."""
        return cls.job_paused(task_id) if status == "paused" else cls.job_running(task_id)

    @classmethod
    def not_running(cls, task_id: str, status: str, action: str = "cancel") -> "Conflict":
        zh, en = _ACTIONS[action]
        error = cls(f"任务已结束（{status}），无法{zh}: {task_id}",
                    f"Task {task_id} has already ended ({status}) and cannot be {en}",
                    data={"task_id": task_id, "status": status})
        error.code = "job_not_running"
        return error

    @classmethod
    def not_ended(cls, task_id: str, status: str) -> "Conflict":
        error = cls(f"任务尚未结束（{status}），只能重试已结束的任务: {task_id}",
                    f"Task {task_id} has not ended ({status}); only an ended job can be retried",
                    data={"task_id": task_id, "status": status})
        error.code = "job_not_ended"
        return error

    @classmethod
    def nothing_to_fill(cls) -> "Conflict":
        error = cls("审计未发现缺口，无需补全", "The audit found no gaps: nothing to fill")
        error.code = "nothing_to_fill"
        return error

    @classmethod
    def nothing_to_retry(cls, task_id: str, status: str) -> "Conflict":
        error = cls(f"任务没有失败的日期，无需重试: {task_id}",
                    f"Task {task_id} has no failed days to retry",
                    data={"task_id": task_id, "status": status})
        error.code = "no_failed_days"
        return error


_ACTIONS = {"cancel": ("取消", "cancelled"), "pause": ("暂停", "paused"),
            "resume": ("恢复", "resumed")}


class InternalError(StocksyncError):
    """Anything unexpected: the answer names the request, the log has the rest."""

    @classmethod
    def unexpected(cls, request_id: str) -> "InternalError":
        return cls(f"服务器内部错误，请稍后重试（请求编号 {request_id}）",
                   f"Internal server error; try again later (request id {request_id})",
                   data={"request_id": request_id})


class ServiceUnavailable(StocksyncError):
    status_code = 503
    code = "unavailable"

    @classmethod
    def database(cls, cause: BaseException) -> "ServiceUnavailable":
        error = cls("数据库暂时不可用，请稍后重试", "The database is unavailable; try again shortly")
        error.code = "database_unavailable"
        error.__cause__ = cause
        return error

    @classmethod
    def queue_paused(cls, cause: BaseException) -> "ServiceUnavailable":
        """The queue refused a resumed or retried job's days: the job waits, paused."""
        error = cls("消息队列暂时不可用，任务已暂停，请稍后恢复",
                    "The job queue is unavailable; the job is paused, resume it shortly")
        error.code = "queue_unavailable"
        error.__cause__ = cause
        return error

    @classmethod
    def queue(cls, cause: BaseException) -> "ServiceUnavailable":
        error = cls("消息队列暂时不可用，任务未启动，请稍后重试",
                    "The job queue is unavailable; the job was not started, try again shortly")
        error.code = "queue_unavailable"
        error.__cause__ = cause
        return error

    @classmethod
    def source(cls, cause: BaseException) -> "ServiceUnavailable":
        """tushare could not answer what a read needs (the trading calendar of an audit)."""
        error = cls("数据源（tushare）暂时不可用，请稍后重试",
                    "The data source (tushare) is unavailable; try again shortly")
        error.code = "source_unavailable"
        error.__cause__ = cause
        return error
