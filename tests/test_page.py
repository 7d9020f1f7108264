"""The sync page in a real browser: Debian's chromium driven by Playwright, against the
local stack (`chalice local`, moto's SQS, the sample tushare server, embedded PostgreSQL).

`make browser` (a prerequisite of `make test`) installs chromium; without it these tests
skip, saying why. Screenshots go to `PAGE_SCREENSHOTS` when set (else pytest's tmp dir).
"""
from __future__ import annotations

import json
import os
import re
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests

from chalicelib.config import market_today
from devstack.worker_loop import WorkerLoop
from tests.conftest import fetch_all, scalar

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (make venv)")
expect = sync_api.expect

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
BATCH = "/api/v1/sync-status/sync/batch"
# 09-29, 09-30, 10-09 and 10-10 trade; 10-01..10-08 are the National Day holiday and its weekend.
RANGE = ("2025-09-29", "2025-10-10")
SLOW = 60_000  # ms: the longest a test waits for a sync to finish


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no browser: {CHROMIUM} is missing (`make browser` installs Debian's chromium "
                    "with apt-get, which needs root or sudo)")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class PageRun:
    """A browser tab on the page, with what it logged and requested."""

    def __init__(self, page: Any, base_url: str):
        self.page = page
        self.base_url = base_url
        self.errors: list[str] = []
        self.requests: list[tuple[float, str, str]] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("console", self._console)
        page.on("request", lambda req: self.requests.append((time.monotonic(), req.method, req.url)))

    def _console(self, message: Any) -> None:
        # The browser logs every 4xx it receives; the tests cause 400s and 409s on purpose.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.errors.append(message.text)

    def open(self, query: str = "") -> Any:
        self.page.goto(self.base_url + "/sync-status" + query)
        expect(self.page.locator("#calendar .day").first).to_be_visible()
        return self.page

    def set_range(self, start: str, end: str) -> None:
        self.page.fill("#start-date", start)
        self.page.fill("#end-date", end)

    def day(self, iso: str) -> Any:
        return self.page.locator(f'#calendar button.day[data-date="{iso}"]')

    def api_calls(self, fragment: str) -> list[tuple[float, str, str]]:
        return [r for r in self.requests if fragment in r[2]]


@pytest.fixture
def tab(browser: Any, stack: Any, db: Any, tmp_path: Path) -> Iterator[PageRun]:
    context = browser.new_context(viewport={"width": 1280, "height": 1100}, locale="zh-CN")
    # Signed in as the operator until the page sends its token itself (issue 14: `#token=`).
    context.set_extra_http_headers({"Authorization": f"Bearer {stack.api_token}"})
    run = PageRun(context.new_page(), stack.api_url)
    run.shots = Path(os.environ.get("PAGE_SCREENSHOTS") or tmp_path)  # type: ignore[attr-defined]
    run.shots.mkdir(parents=True, exist_ok=True)  # type: ignore[attr-defined]
    yield run
    context.close()
    assert run.errors == [], run.errors


@pytest.fixture
def workers(stack: Any, app_module: Any) -> Iterator[WorkerLoop]:
    """What Lambda's event source mapping does, while the page runs (the test stack has none)."""
    loop = WorkerLoop(stack.sqs_client(), stack.env["SQS_QUEUE_URL"], app_module.sync_day, workers=2)
    loop.start()
    yield loop
    loop.stop()


def start_job_over_http(stack: Any, start: str, end: str) -> str:
    answer = requests.post(stack.api_url + BATCH, timeout=10,
                           data=json.dumps({"start_date": start, "end_date": end}),
                           headers={"Authorization": f"Bearer {stack.api_token}"})
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]["task_id"]


def test_a_sync_started_from_the_page_reaches_100_percent(tab, workers, db):
    page = tab.open()
    assert page.title() == "股票数据同步"
    tab.set_range(*RANGE)
    # Before: a trading day is a gap, and the calendar does not know the holiday yet.
    expect(tab.day("2025-09-30")).to_have_attribute("data-state", "not_synced")
    page.get_by_role("button", name="开始同步").click()

    expect(page.locator("#percent")).to_have_text("100%", timeout=SLOW)
    expect(page.locator("#summary")).to_have_text(re.compile(r"^批量同步完成: 成功4, 失败0, 跳过8 共写入 [\d,]+ 行，用时 [\d.]+ 秒。$"))
    expect(page.locator("#job-status")).to_have_text("已完成")
    rows = scalar(db, "SELECT sum(rows) FROM synced_dates")
    assert rows > 16000
    expect(page.locator("#stat-rows")).to_have_text(f"{rows:,}")
    expect(page.locator("#stat-success")).to_have_text("4")
    expect(page.locator("#stat-skipped")).to_have_text("8")
    expect(page.locator("#stat-done")).to_have_text("12 / 12")
    expect(page.locator("#progress-bar")).to_have_attribute("aria-valuenow", "100")
    expect(page.locator("#cancel-button")).to_be_hidden()
    task_id = page.locator("#task-id").inner_text()
    assert task_id.startswith("2025-09-29_2025-10-10_")

    # Polled every 2 seconds, and no more once the job completed.
    polls = [at for at, _, url in tab.api_calls("/batch/progress/")]
    assert all(b - a >= 1.9 for a, b in zip(polls, polls[1:])), polls
    time.sleep(2.5)
    assert len(tab.api_calls("/batch/progress/")) == len(polls)

    # The calendar updated: synced days with their row counts, the holiday as non-trading.
    synced = {r["trade_date"].isoformat(): r["rows"] for r in fetch_all(db, "SELECT * FROM synced_dates")}
    assert sorted(synced) == ["2025-09-29", "2025-09-30", "2025-10-09", "2025-10-10"]
    for day, count in synced.items():
        cell = tab.day(day)
        expect(cell).to_have_attribute("data-state", "synced")
        expect(cell).to_have_attribute("title", re.compile(f"已同步 · {count:,} 行"))
        expect(cell.locator(".mark")).to_have_text(re.compile(r"^\d"))
    expect(tab.day("2025-10-01")).to_have_attribute("data-state", "non_trading")
    expect(tab.day("2025-10-01")).to_have_attribute("title", re.compile("非交易日"))
    expect(tab.day("2025-10-11")).to_have_attribute("data-state", "non_trading")  # a Saturday, outside the range
    expect(page.locator("#calendar-summary")).to_contain_text("已同步 4 天")
    expect(page.locator("#calendar-summary")).to_contain_text("未同步的交易日 0 天")
    expect(page.locator("#legend")).to_contain_text("已同步")
    page.screenshot(path=str(tab.shots / "page-completed-zh.png"), full_page=True)

    # History: the job and its outcome; opening it lists its days.
    job = page.locator(f'tr.job-row[data-task-id="{task_id}"]')
    expect(job).to_contain_text("已完成")
    expect(job).to_contain_text("成功 4 · 失败 0 · 跳过 8")
    job.get_by_role("button", name="查看每日").click()
    days = page.locator("tr.days-row table.days tbody tr")
    expect(days).to_have_count(12)
    expect(days.nth(2)).to_contain_text("2025-10-01")
    expect(days.nth(2)).to_contain_text("非交易日")
    expect(job.get_by_role("button", name="收起")).to_have_attribute("aria-expanded", "true")

    # A date of the calendar explains itself when clicked, and can start a new range.
    tab.day("2025-09-30").click()
    expect(page.locator("#day-detail")).to_contain_text(task_id)
    page.locator("#day-detail").get_by_role("button", name="设为开始日期").click()
    expect(page.locator("#start-date")).to_have_value("2025-09-30")


def test_validation_errors_are_the_apis_words(tab, stack, db):
    page = tab.open()
    alert = page.locator("#form-error")
    tab.set_range("2025-10-09", "2025-10-01")
    api_answer = requests.post(stack.api_url + BATCH, timeout=10,
                               data=json.dumps({"start_date": "2025-10-09", "end_date": "2025-10-01"}),
                               headers={"Authorization": f"Bearer {stack.api_token}"})
    assert api_answer.status_code == 400
    expect(alert).to_have_text(api_answer.json()["message"])
    expect(alert).to_have_text("开始日期 2025-10-09 不能晚于结束日期 2025-10-01")
    expect(page.locator("#start-date")).to_have_attribute("aria-invalid", "true")
    page.get_by_role("button", name="开始同步").click()
    expect(alert).to_be_visible()
    assert tab.api_calls(BATCH + "?") == [] and scalar(db, "SELECT count(*) FROM sync_jobs") == 0

    tab.set_range("2025-01-01", "2025-06-30")
    expect(alert).to_have_text("日期范围不能超过90天（当前 181 天）")
    today = market_today()
    tomorrow = (today + timedelta(days=1)).isoformat()
    tab.set_range(today.isoformat(), tomorrow)
    expect(alert).to_have_text(f"结束日期 {tomorrow} 不能晚于今天 {today}（北京时间）")
    page.fill("#start-date", "")
    expect(alert).to_have_text("缺少参数 start_date（格式 YYYY-MM-DD）")

    # What the API refuses is shown as it says it: here a request altered on its way.
    def reverse(route: Any) -> None:
        route.continue_(post_data=json.dumps({"start_date": "2025-10-09", "end_date": "2025-10-01"}))
    page.route(re.compile(r".*/sync/batch\?.*"), reverse)
    tab.set_range("2025-10-01", "2025-10-09")
    expect(alert).to_be_hidden()
    page.get_by_role("button", name="开始同步").click()
    expect(alert).to_have_text("开始日期 2025-10-09 不能晚于结束日期 2025-10-01")
    assert scalar(db, "SELECT count(*) FROM sync_jobs") == 0


def test_a_conflict_shows_the_running_jobs_progress(tab, stack, app_module, db):
    page = tab.open()
    running = start_job_over_http(stack, "2025-10-01", "2025-10-09")  # no workers yet: it waits
    tab.set_range("2025-10-10", "2025-10-12")  # a range of its own, in the same month
    page.get_by_role("button", name="开始同步").click()

    notice = page.locator("#conflict-notice")
    expect(notice).to_contain_text("已有同步任务正在运行，请等待当前任务完成后再试")
    expect(page.locator("#form-error")).to_have_text("已有同步任务正在运行，请等待当前任务完成后再试")
    expect(page.locator("#task-id")).to_have_text(running)
    expect(page.locator("#task-range")).to_have_text("2025-10-01 → 2025-10-09")
    expect(page.locator("#job-status")).to_have_text("同步中")
    expect(page.locator("#stat-done")).to_have_text("0 / 9")
    expect(page.locator("#progress-line")).to_have_text("同步任务已启动，正在同步 9 天的数据...")
    expect(page.locator("#cancel-button")).to_be_visible()
    expect(tab.day("2025-10-09")).to_have_attribute("data-state", "pending")
    page.screenshot(path=str(tab.shots / "page-conflict-zh.png"), full_page=True)

    loop = WorkerLoop(stack.sqs_client(), stack.env["SQS_QUEUE_URL"], app_module.sync_day, workers=2)
    loop.start()
    try:
        expect(page.locator("#percent")).to_have_text("100%", timeout=SLOW)
    finally:
        loop.stop()
    expect(page.locator("#summary")).to_contain_text("批量同步完成: 成功1, 失败0, 跳过8")
    expect(tab.day("2025-10-09")).to_have_attribute("data-state", "synced")
    assert scalar(db, "SELECT count(*) FROM sync_jobs") == 1


def test_polling_stops_after_30_minutes_without_completion(tab, stack, db):
    page = tab.page
    page.clock.install()  # the page's timers and Date, under the test's control
    running = start_job_over_http(stack, "2025-10-01", "2025-10-03")  # no workers: it never ends
    tab.open()
    expect(page.locator("#task-id")).to_have_text(running)  # a running job is picked up on load
    expect(page.locator("#job-status")).to_have_text("同步中")
    page.clock.run_for("29:50")
    expect(page.locator("#poll-notice")).to_be_hidden()
    page.clock.run_for("01:00")
    expect(page.locator("#poll-notice")).to_have_text(
        "已停止自动刷新：30 分钟内任务未完成。任务仍在后台运行。")
    polls = len(tab.api_calls("/batch/progress/"))
    page.clock.run_for("05:00")
    page.wait_for_timeout(500)
    assert len(tab.api_calls("/batch/progress/")) == polls
    expect(page.locator("#resume-button")).to_be_visible()
    expect(page.locator("#cancel-button")).to_be_hidden()
    page.get_by_role("button", name="继续查看进度").click()
    expect(page.locator("#poll-notice")).to_be_hidden()
    assert len(tab.api_calls("/batch/progress/")) > polls


def test_english_and_back(tab, stack, db):
    page = tab.open()
    page.get_by_role("button", name="Switch to English").click()
    expect(page.locator("h1")).to_have_text("Stock data sync")
    assert page.evaluate("document.documentElement.lang") == "en"
    assert page.evaluate("localStorage.getItem('stocksync.lang')") == "en"
    tab.set_range("2025-10-09", "2025-10-01")
    expect(page.locator("#form-error")).to_have_text("start_date 2025-10-09 must not be after end_date 2025-10-01")
    expect(page.get_by_role("button", name="Start sync")).to_be_visible()
    expect(page.locator("#legend")).to_contain_text("Non-trading day")

    # Remembered across a reload; every API call asks for English.
    tab.requests.clear()
    page.reload()
    expect(page.locator("h1")).to_have_text("Stock data sync")
    expect(page.locator("#calendar figcaption").first).to_have_text(re.compile(r"^[A-Z][a-z]+ \d{4}$"))
    start_job_over_http(stack, "2025-10-01", "2025-10-02")
    page.fill("#start-date", "2025-09-01")
    page.fill("#end-date", "2025-09-02")
    page.get_by_role("button", name="Start sync").click()
    expect(page.locator("#conflict-notice")).to_contain_text(
        "A sync job is already running; wait for it to finish and try again")
    expect(page.locator("#job-status")).to_have_text("Running")
    api_calls = [url for _, _, url in tab.requests if "/api/v1/" in url]
    assert api_calls and all("lang=en" in url for url in api_calls)
    page.screenshot(path=str(tab.shots / "page-conflict-en.png"), full_page=True)

    page.get_by_role("button", name="切换到中文").click()
    expect(page.locator("h1")).to_have_text("股票数据同步")
    assert page.evaluate("localStorage.getItem('stocksync.lang')") == "zh"


def test_lang_in_the_address_wins(tab, db):
    page = tab.open("?lang=en")
    expect(page.locator("h1")).to_have_text("Stock data sync")
    expect(page.locator("#view-recent")).to_have_text("Last 6 months")


def test_recent_months_view(tab, db):
    page = tab.open()
    page.get_by_role("button", name="最近 6 个月").click()
    expect(page.locator("#view-recent")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#calendar figure.month")).to_have_count(6)
    today = market_today().isoformat()
    expect(tab.day(today)).to_have_class(re.compile(r"\btoday\b"))
    expect(page.locator("#cal-next")).to_be_disabled()
    page.locator("#cal-prev").click()
    expect(tab.day(today)).to_have_count(0)
    expect(page.locator("#cal-next")).to_be_enabled()


def test_behind_a_stage_prefix_and_from_another_origin(tab, stack, db):
    """As deployed: API Gateway serves everything under /api (its stage); the page must
    call the API relative to its own address. Here the browser adds the prefix and a
    route strips it, as API Gateway does."""
    page = tab.page
    prefixed = re.compile(re.escape(stack.api_url) + r"/api/(sync-status.*|api/v1/.*)$")

    def strip_stage(route: Any) -> None:
        url = route.request.url.replace(stack.api_url + "/api/", stack.api_url + "/", 1)
        route.fulfill(response=route.fetch(url=url))
    page.route(prefixed, strip_stage)
    page.goto(stack.api_url + "/api/sync-status")
    expect(page.locator("#calendar .day").first).to_be_visible()
    expect(page.locator("#history-empty")).to_be_visible()
    api_calls = [url for _, _, url in tab.requests if "/v1/" in url]
    assert api_calls and all(url.startswith(stack.api_url + "/api/api/v1/sync-status/") for url in api_calls)

    # ?api=: the page from one origin (localhost), the API on another (127.0.0.1): CORS.
    other = stack.api_url.replace("127.0.0.1", "localhost")
    page.goto(other + "/sync-status?api=" + stack.api_url)
    expect(page.locator("#calendar .day").first).to_be_visible()
    expect(page.locator("#api-base")).to_contain_text(stack.api_url + "/api/v1/sync-status/")
    assert any(url.startswith(stack.api_url + "/api/v1/sync-status/dates") for _, _, url in tab.requests)


def test_the_page_and_its_files_are_served_with_their_types(stack, db):
    page = requests.get(stack.api_url + "/sync-status", timeout=10)
    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert 'src="sync-status/page.js"' in page.text
    script = requests.get(stack.api_url + "/sync-status/page.js", timeout=10)
    assert script.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert "api/v1/sync-status/" in script.text
    assert "'/api/v1" not in script.text  # never an absolute path: the stage prefix would be lost
    assert requests.get(stack.api_url + "/sync-status/page.css", timeout=10).headers[
        "Content-Type"] == "text/css; charset=utf-8"
    missing = requests.get(stack.api_url + "/sync-status/app.py", timeout=10)
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"



def test_a_phone_sized_screen_scrolls_only_vertically(tab, stack, db):
    page = tab.page
    page.set_viewport_size({"width": 390, "height": 844})
    start_job_over_http(stack, "2025-09-15", "2025-09-26")
    tab.open()
    page.locator("tr.job-row").get_by_role("button", name="查看每日").click()
    expect(page.locator("tr.days-row table.days tbody tr")).to_have_count(12)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(tab.shots / "page-phone-zh.png"), full_page=True)


def test_cancel_from_the_page(tab, stack, db):
    running = start_job_over_http(stack, "2025-10-09", "2025-10-10")  # no workers: it waits
    page = tab.open()
    expect(page.locator("#task-id")).to_have_text(running)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="取消任务").click()
    expect(page.locator("#summary")).to_contain_text("批量同步已取消: 成功0, 失败0, 跳过2")
    expect(page.locator("#job-status")).to_have_text("已取消")
    assert scalar(db, "SELECT status FROM sync_jobs WHERE task_id = %(t)s", {"t": running}) == "cancelled"
    tab.set_range("2025-10-09", "2025-10-10")
    expect(tab.day("2025-10-09")).to_have_attribute("data-state", "skipped")
    expect(tab.day("2025-10-09")).to_have_attribute("title", re.compile("原因：任务已取消"))
