"""Per-token limits on writes, counted in PostgreSQL from the jobs themselves.

A job row records the name of the token that started it (`created_by`), so the
jobs a token started in the last hour, and the forced ones in the last day, are a
query away. The query runs inside job creation, under its advisory lock: two
concurrent requests cannot both take the last unit. Refused requests (401, 403,
400, 409, 429) insert no job, so they never count.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.db import query
from chalicelib.errors import TooManyRequests


@dataclass(frozen=True)
class WriteLimits:
    job_starts_per_hour: int = 0  # 0: unlimited
    forced_syncs_per_day: int = 0

    @classmethod
    def from_settings(cls, settings: Any) -> "WriteLimits":
        return cls(settings.job_starts_per_hour, settings.forced_syncs_per_day)

    def check(self, cur: Any, name: str | None, force: bool) -> None:
        """Raise TooManyRequests (429, with Retry-After) when starting one more job is over a limit."""
        if name is None or not (self.job_starts_per_hour or (force and self.forced_syncs_per_day)):
            return
        cur.execute(query("write_budget"), {"name": name, "starts_limit": self.job_starts_per_hour,
                                            "forced_limit": self.forced_syncs_per_day})
        budget = cur.fetchone()
        if self.job_starts_per_hour and budget["starts"] >= self.job_starts_per_hour:
            raise TooManyRequests.limit("每小时启动任务数", "job starts per hour",
                                        self.job_starts_per_hour, int(budget["starts_retry_s"] or 1))
        if force and self.forced_syncs_per_day and budget["forced"] >= self.forced_syncs_per_day:
            raise TooManyRequests.limit("每天强制重新同步次数", "forced re-syncs per day",
                                        self.forced_syncs_per_day, int(budget["forced_retry_s"] or 1))
