"""The one exception hierarchy that API answers are made from.

Each error carries its HTTP status, a stable machine-readable `code`, and its
message in Chinese (the seed's language, the default) and English.
"""
from __future__ import annotations

from typing import Any


class StocksyncError(Exception):
    status_code = 500
    code = "internal_error"

    def __init__(self, zh: str, en: str, data: dict[str, Any] | None = None):
        super().__init__(en)
        self.zh = zh
        self.en = en
        self.data = data

    def message(self, lang: str) -> str:
        return self.en if lang == "en" else self.zh


class ValidationError(StocksyncError):
    status_code = 400

    def __init__(self, code: str, zh: str, en: str):
        super().__init__(zh, en)
        self.code = code


class NotFound(StocksyncError):
    status_code = 404
    code = "not_found"

    @classmethod
    def task(cls, task_id: str) -> "NotFound":
        return cls(f"任务不存在: {task_id}", f"No such task: {task_id}")


class Conflict(StocksyncError):
    status_code = 409
    code = "job_running"

    @classmethod
    def job_running(cls, task_id: str) -> "Conflict":
        # The seed's exact words: existing frontends show them as they are.
        return cls(
            "已有同步任务正在运行，请等待当前任务完成后再试",
            "A sync job is already running; wait for it to finish and try again",
            data={"task_id": task_id},
        )

    @classmethod
    def not_running(cls, task_id: str, status: str) -> "Conflict":
        error = cls(f"任务已结束（{status}），无法取消: {task_id}",
                    f"Task {task_id} has already ended ({status}) and cannot be cancelled",
                    data={"task_id": task_id})
        error.code = "job_not_running"
        return error


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
    def queue(cls, cause: BaseException) -> "ServiceUnavailable":
        error = cls("消息队列暂时不可用，任务未启动，请稍后重试",
                    "The job queue is unavailable; the job was not started, try again shortly")
        error.code = "queue_unavailable"
        error.__cause__ = cause
        return error
