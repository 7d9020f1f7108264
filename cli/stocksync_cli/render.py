"""What the command prints for a person: the progress bar, tables and summaries, in
Chinese (the API's default) or English. Scripts use `--json` instead."""
from __future__ import annotations

from datetime import datetime
from typing import Any

BAR_WIDTH = 30

WORDS: dict[str, dict[str, str]] = {
    "zh": {
        "running": "同步中", "paused": "已暂停", "completed": "已完成", "cancelled": "已取消",
        "success": "成功", "failed": "失败", "skipped": "跳过", "rows": "行",
        "eta": "剩余约 {t}", "eta_unknown": "剩余时间估算中", "syncing": "正在同步 {date}",
        "paused_line": "已暂停（stocksync resume {task} 继续）",
        "started": "{message}（任务 {task}）", "retried": "{message}（任务 {task}，第 {n} 次重试）",
        "summary": "{status}：成功 {success}，失败 {failed}，跳过 {skipped}；写入 {rows} 行，用时 {elapsed}",
        "skips": "跳过原因：{reasons}",
        "force_hint": "所选范围内的交易日都已同步过；如需重新获取，请加 --force 再开始。",
        "failed_hint": "{n} 天同步失败；用 stocksync retry {task} 重试这些日期。",
        "waiting_paused": "任务已暂停，等待恢复（stocksync resume {task}）…",
        "poll_error": "暂时无法获取进度（{error}），继续重试…",
        "timeout": "已等待 {t}，任务仍未结束（它仍在后台运行）。",
        "non_trading_day": "非交易日", "already_synced": "已同步过", "queue_unavailable": "消息队列不可用",
        "reason_cancelled": "任务已取消",
        "col_task": "任务", "col_status": "状态", "col_range": "日期范围", "col_outcome": "成功/失败/跳过",
        "col_created": "开始时间", "col_by": "发起人", "col_day": "日期", "col_detail": "说明",
        "col_attempts": "尝试", "col_rows": "行数", "history": "任务记录：", "earlier": "此前：",
        "no_jobs": "还没有同步任务。", "s": "{s} 秒", "ms": "{m} 分 {s} 秒", "hm": "{h} 小时 {m} 分",
        "ev_created": "创建", "ev_paused": "暂停", "ev_resumed": "恢复", "ev_cancelled": "取消",
        "ev_retried": "重试", "ev_completed": "完成", "ev_system": "系统",
        "day_pending": "排队中", "day_running": "同步中", "day_success": "成功", "day_failed": "失败",
        "day_skipped": "跳过", "sep": "，", "not_published_yet": "数据尚未发布",
        "datasets_line": "数据集 {name}：成功 {success}，失败 {failed}，跳过 {skipped}，{rows} 行",
    },
    "en": {
        "running": "running", "paused": "paused", "completed": "completed", "cancelled": "cancelled",
        "success": "ok", "failed": "failed", "skipped": "skipped", "rows": "rows",
        "eta": "~{t} left", "eta_unknown": "estimating time left", "syncing": "syncing {date}",
        "paused_line": "paused (stocksync resume {task} to go on)",
        "started": "Started {task}: {days} days", "retried": "Retrying {days} failed days of {task} (retry {n})",
        "summary": "{status}: {success} succeeded, {failed} failed, {skipped} skipped; {rows} rows in {elapsed}",
        "skips": "Skipped: {reasons}",
        "force_hint": "Every trading day of the range was already synced; to fetch them again, start with --force.",
        "failed_hint": "{n} days failed; `stocksync retry {task}` retries them.",
        "waiting_paused": "The job is paused; waiting for it to be resumed (stocksync resume {task})...",
        "poll_error": "Could not fetch the progress ({error}); retrying...",
        "timeout": "Waited {t}; the job has not ended (it keeps running in the background).",
        "non_trading_day": "not a trading day", "already_synced": "already synced",
        "queue_unavailable": "queue unavailable", "reason_cancelled": "job cancelled",
        "col_task": "task", "col_status": "status", "col_range": "range", "col_outcome": "ok/failed/skipped",
        "col_created": "started", "col_by": "by", "col_day": "day", "col_detail": "detail",
        "col_attempts": "attempts", "col_rows": "rows", "history": "History:", "earlier": "earlier: ",
        "no_jobs": "No sync jobs yet.", "s": "{s} s", "ms": "{m} min {s} s", "hm": "{h} h {m} min",
        "ev_created": "created", "ev_paused": "paused", "ev_resumed": "resumed", "ev_cancelled": "cancelled",
        "ev_retried": "retried", "ev_completed": "completed", "ev_system": "system",
        "day_pending": "queued", "day_running": "syncing", "day_success": "ok", "day_failed": "failed",
        "day_skipped": "skipped", "sep": ", ", "not_published_yet": "not published yet",
        "datasets_line": "dataset {name}: {success} ok, {failed} failed, {skipped} skipped, {rows} rows",
    },
}


class Words:
    def __init__(self, lang: str):
        self.lang = "en" if lang == "en" else "zh"

    def __call__(self, key: str, **params: Any) -> str:
        text = WORDS[self.lang].get(key, key)
        return text.format(**params) if params else text

    def reason(self, reason: str) -> str:
        return self("reason_cancelled" if reason == "cancelled" else reason)

    def duration(self, seconds: float | None) -> str:
        if seconds is None:
            return "—"
        s = max(0.0, float(seconds))
        if s < 60:
            return self("s", s=f"{s:.1f}" if s < 10 else f"{s:.0f}")
        total = round(s)
        if total >= 3600:
            return self("hm", h=total // 3600, m=total % 3600 // 60)
        return self("ms", m=total // 60, s=f"{total % 60:02d}")


def bar(percent: float, width: int = BAR_WIDTH) -> str:
    filled = max(0, min(width, int(width * percent / 100)))
    return "[" + "#" * filled + "." * (width - filled) + "]"


def progress_line(p: dict[str, Any], w: Words) -> str:
    """One line: the bar, the counts, the time left and what is happening."""
    parts = [f"{bar(p['percent'])} {p['percent']:5.1f}% {p['current']}/{p['total']}",
             f"{w('success')} {p['success']} {w('failed')} {p['failed']} {w('skipped')} {p['skipped']}",
             f"{w('rows')} {p['rows']:,}"]
    if p["status"] == "paused":
        parts.append(w("paused_line", task=p["task_id"]))
    elif p["status"] == "running":
        eta = p.get("eta_s")
        parts.append(w("eta", t=w.duration(eta)) if eta is not None else w("eta_unknown"))
        if p.get("current_date"):
            parts.append(w("syncing", date=p["current_date"]))
    else:
        parts.append(w(p["status"]))
    return "  ".join(parts)


def summary_lines(p: dict[str, Any], w: Words) -> list[str]:
    """What an ended job did, why days were skipped, and what to do next."""
    lines = [w("summary", status=w(p["status"]).capitalize(), success=p["success"], failed=p["failed"],
               skipped=p["skipped"], rows=f"{p['rows']:,}", elapsed=w.duration(p.get("elapsed_s")))]
    reasons = {k: v for k, v in (p.get("skipped_by_reason") or {}).items() if v}
    if reasons:
        lines.append(w("skips", reasons=w("sep").join(f"{w.reason(k)} {v}" for k, v in reasons.items())))
    datasets = p.get("datasets") or {}
    if len(datasets) > 1 or any(c.get("failed") for c in datasets.values()):
        for name, c in datasets.items():
            lines.append(w("datasets_line", name=name, success=c["success"], failed=c["failed"],
                           skipped=c["skipped"], rows=f"{c['rows']:,}"))
    if all_already_synced(p):
        lines.append(w("force_hint"))
    if p["failed"]:
        lines.append(w("failed_hint", n=p["failed"], task=p["task_id"]))
    return lines


def all_already_synced(p: dict[str, Any]) -> bool:
    """Nothing fetched because every trading day was stored already: --force would fetch them."""
    reasons = p.get("skipped_by_reason") or {}
    return (p["status"] == "completed" and not p["success"] and not p["failed"]
            and reasons.get("already_synced", 0) > 0
            and reasons.get("already_synced", 0) + reasons.get("non_trading_day", 0) == p["skipped"])


def local_time(stamp: str | None) -> str:
    """An API time (ISO 8601 with its offset) in this machine's time zone, to the second."""
    if not stamp:
        return "—"
    try:
        return datetime.fromisoformat(stamp).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:  # Python < 3.11 reads only 3 or 6 fractional digits
        return stamp[:19].replace("T", " ")


def table(rows: list[list[str]]) -> str:
    """Columns padded to their widest cell (a CJK character counts as two)."""
    widths = [max(_width(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell + " " * (widths[i] - _width(cell)) for i, cell in enumerate(row)).rstrip()
                     for row in rows)


def _width(text: str) -> int:
    return sum(2 if "\u2e80" <= ch <= "\uffef" else 1 for ch in text)


def jobs_table(jobs: list[dict[str, Any]], w: Words) -> str:
    if not jobs:
        return w("no_jobs")
    rows = [[w("col_task"), w("col_status"), w("col_range"), w("col_outcome"), w("col_rows"),
             w("col_created"), w("col_by")]]
    for job in jobs:
        rows.append([job["task_id"], w(job["status"]), f"{job['start_date']}..{job['end_date']}",
                     f"{job['success']}/{job['failed']}/{job['skipped']}", f"{job['rows']:,}",
                     local_time(job.get("created_at")), job.get("created_by") or "—"])
    return table(rows)


def days_table(days: list[dict[str, Any]], w: Words) -> str:
    rows = [[w("col_day"), w("col_status"), w("col_attempts"), w("col_rows"), w("col_detail")]]
    for d in days:
        detail = [w.reason(d["skip_reason"]) if d.get("skip_reason") else "", d.get("error") or ""]
        if d.get("past_errors"):
            detail.append(w("earlier") + " | ".join(d["past_errors"]))
        sets = d.get("datasets") or []
        if len(sets) > 1 or any(x["status"] == "failed" for x in sets):
            detail.append(" ".join(f"{x['dataset']}:{w('day_' + x['status'])}"
                                   + (f"({x['rows_written']:,})" if x.get("rows_written") else "")
                                   for x in sets))
        rows.append([d["day"], w("day_" + d["status"]), str(d["attempts"]),
                     f"{d['rows_written']:,}" if d.get("rows_written") else "—",
                     " · ".join(x for x in detail if x)])
    return table(rows)


def events_lines(events: list[dict[str, Any]], w: Words) -> list[str]:
    lines = [w("history")]
    for e in events:
        detail = e.get("detail") or {}
        extra = f" ({', '.join(f'{k}={v}' for k, v in detail.items())})" if detail else ""
        lines.append(f"  {local_time(e.get('at'))}  {w('ev_' + e['kind'])}"
                     f"  {e.get('actor') or w('ev_system')}{extra}")
    return lines
