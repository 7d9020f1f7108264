"""The sync page in a real browser: Debian's chromium driven by Playwright, against the
local stack (`chalice local`, moto's SQS, the sample tushare server, embedded PostgreSQL).

`make browser` (a prerequisite of `make test`) installs chromium and a CJK font; without
chromium these tests skip, saying why. Screenshots go to `PAGE_SCREENSHOTS` when set (else
pytest's tmp dir). Accessibility, keyboard and screen-size checks: tests/page_checks.py.
"""
from __future__ import annotations

import json
import os
import re
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import requests

from chalicelib.config import market_today
from chalicelib.webpage import CONTENT_TYPES, PAGE_DIR
from devstack.worker_loop import WorkerLoop
from tests.conftest import fetch_all, scalar
from tests.page_checks import (announcements, assert_fits_the_screen, assert_no_serious_axe,
                               axe_version, focused, record_announcements, tab_stops, tab_until)

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (make venv)")
expect = sync_api.expect

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
BATCH = "/api/v1/sync-status/sync/batch"
API_ROUTES = re.compile(r".*/api/v1/sync-status/.*")
# 09-29, 09-30, 10-09 and 10-10 trade; 10-01..10-08 are the National Day holiday and its weekend.
RANGE = ("2025-09-29", "2025-10-10")
SLOW = 60_000  # ms: the longest a test waits for a sync to finish
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no browser: {CHROMIUM} is missing (`make browser` installs Debian's chromium "
                    "with apt-get, which needs root or sudo)")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def operator_token(stack: Any) -> str:
    """The local stack's operator token, as `make serve` hands it to the page."""
    return stack.api_token


def auth_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class PageRun:
    """A browser tab on the page, with what it logged and requested."""

    def __init__(self, page: Any, base_url: str, token: str, shots: Path):
        self.page = page
        self.base_url = base_url
        self.token = token
        self.shots = shots
        self.errors: list[str] = []
        self.requests: list[tuple[float, str, str]] = []
        self.headers: list[tuple[str, dict[str, str]]] = []
        self.sent: list[Any] = []  # the requests themselves: their timing is the browser's
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("console", self._console)
        page.on("request", self._request)

    def _request(self, req: Any) -> None:
        self.requests.append((time.monotonic(), req.method, req.url))
        self.headers.append((req.url, req.headers))
        self.sent.append(req)

    def _console(self, message: Any) -> None:
        # The browser logs every 4xx it receives; the tests cause 400s, 401s and 409s on purpose.
        if message.type != "error" or message.text.startswith("Failed to load resource"):
            return
        self.errors.append(message.text)

    def open(self, query: str = "", token: str | None = "", path: str = "/sync-status") -> Any:
        """The page, handed the operator's token in the address as `make serve` prints it."""
        token = self.token if token == "" else token
        self.page.goto(self.base_url + path + query + (f"#token={token}" if token else ""))
        expect(self.page.locator("#calendar .day").first).to_be_visible()
        return self.page

    def set_range(self, start: str, end: str) -> None:
        self.page.fill("#start-date", start)
        self.page.fill("#end-date", end)

    def day(self, iso: str) -> Any:
        return self.page.locator(f'#calendar button.day[data-date="{iso}"]')

    def api_calls(self, fragment: str) -> list[tuple[float, str, str]]:
        return [r for r in self.requests if fragment in r[2]]

    def sent_at(self, fragment: str) -> list[float]:
        """When the browser sent each request (seconds): its own clock, not the test's, which
        hears of a request only when it next talks to the browser."""
        return [req.timing["startTime"] / 1000 for req in self.sent if fragment in req.url]

    def shot(self, name: str, full_page: bool = True) -> None:
        self.page.screenshot(path=str(self.shots / name), full_page=full_page)


@pytest.fixture
def new_tab(browser: Any, stack: Any, db: Any, operator_token: str, tmp_path: Path) -> Iterator[Callable[..., PageRun]]:
    contexts: list[Any] = []
    runs: list[PageRun] = []
    shots = Path(os.environ.get("PAGE_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)

    def make(viewport: dict[str, int] = DESKTOP, **options: Any) -> PageRun:
        context = browser.new_context(viewport=viewport, locale="zh-CN", **options)
        contexts.append(context)
        runs.append(PageRun(context.new_page(), stack.api_url, operator_token, shots))
        return runs[-1]
    yield make
    for context in contexts:
        context.close()
    for run in runs:
        assert run.errors == [], run.errors


@pytest.fixture
def tab(new_tab: Callable[..., PageRun]) -> PageRun:
    return new_tab({"width": 1280, "height": 1100})


@pytest.fixture
def workers(stack: Any, app_module: Any) -> Iterator[WorkerLoop]:
    """What Lambda's event source mapping does, while the page runs (the test stack has none)."""
    loop = WorkerLoop(stack.sqs_client(), stack.env["SQS_QUEUE_URL"], app_module.sync_day, workers=2)
    loop.start()
    yield loop
    loop.stop()


def start_job_over_http(stack: Any, start: str, end: str, token: str) -> str:
    answer = requests.post(stack.api_url + BATCH, timeout=10, headers=auth_headers(token),
                           data=json.dumps({"start_date": start, "end_date": end}))
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]["task_id"]


class SignInServer:
    """The server side of sign-in (the contract of issue 9), played by the browser's router:
    whoami answers for `token`, any other call without it is 401, and calls with it go on to
    the real API. The page cannot tell it from the API that implements it."""

    def __init__(self, page: Any, token: str, name: str = "local", role: str = "operator"):
        self.token, self.name, self.role = token, name, role
        self.whoami_calls = 0
        page.route(API_ROUTES, self._handle)

    def _handle(self, route: Any) -> None:
        signed = route.request.headers.get("authorization") == f"Bearer {self.token}"
        if "/whoami" in route.request.url:
            self.whoami_calls += 1
            if signed:
                return route.fulfill(status=200, content_type="application/json", body=json.dumps(
                    {"status": "success", "data": {"name": self.name, "role": self.role, "public_read": False}}))
        elif signed:
            return route.continue_()
        route.fulfill(status=401, content_type="application/json", headers={"WWW-Authenticate": "Bearer"},
                      body=json.dumps({"status": "error", "code": "unauthorized", "message": "缺少或无效的访问令牌"}))


def legend_counts(page: Any) -> dict[str, int]:
    return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('#legend li')]
        .map((li) => [li.dataset.state, Number(li.querySelector('.count').textContent.replace(/,/g, ''))]))""")


# --- what the page does ---------------------------------------------------------------

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
    rows = scalar(db, "SELECT sum(rows) FROM synced_dates WHERE dataset = 'daily'")
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
    polls = tab.sent_at("/batch/progress/")
    assert all(b - a >= 1.9 for a, b in zip(polls, polls[1:])), polls
    time.sleep(2.5)
    assert len(tab.api_calls("/batch/progress/")) == len(polls)

    # The calendar updated: synced days with their row counts, the holiday as non-trading;
    # each day's name says what its button shows (the number, the row count).
    synced = {r["trade_date"].isoformat(): r["rows"] for r in fetch_all(db, "SELECT * FROM synced_dates WHERE dataset = 'daily'")}
    assert sorted(synced) == ["2025-09-29", "2025-09-30", "2025-10-09", "2025-10-10"]
    for day, count in synced.items():
        cell = tab.day(day)
        expect(cell).to_have_attribute("data-state", "synced")
        expect(cell).to_have_attribute("title", re.compile(f"已同步 · {count:,} 行"))
        expect(cell.locator(".mark")).to_have_text(f"{count:,}")
        expect(cell).to_have_accessible_name(re.compile(f"^2025年\\d+月{int(day[8:])}日 星期. · 已同步 · {count:,} 行$"))
    expect(tab.day("2025-10-01")).to_have_attribute("data-state", "non_trading")
    expect(tab.day("2025-10-01")).to_have_attribute("title", re.compile("非交易日"))
    expect(tab.day("2025-10-11")).to_have_attribute("data-state", "non_trading")  # a Saturday, outside the range
    summary = page.locator("#calendar-summary")
    expect(summary).to_contain_text(f"已同步 4 天（{rows:,} 行）")
    expect(summary).to_contain_text("未同步 0 天")
    expect(summary).to_contain_text("非交易日 8 天")
    # The legend counts the same days as the line under it: the range's 12.
    assert legend_counts(page) == {"synced": 4, "not_synced": 0, "failed": 0, "skipped": 0,
                                   "non_trading": 8, "pending": 0, "running": 0}
    expect(page.locator("#legend")).to_have_attribute("aria-label", "图例（所选范围内的天数）")
    tab.shot("page-completed-zh.png")

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


def test_validation_errors_are_the_apis_rules_in_the_forms_words(tab, stack, db):
    page = tab.open()
    alert = page.locator("#form-error")
    tab.set_range("2025-10-09", "2025-10-01")
    api_answer = requests.post(stack.api_url + BATCH, timeout=10, headers=auth_headers(tab.token),
                               data=json.dumps({"start_date": "2025-10-09", "end_date": "2025-10-01"}))
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
    # The API says `缺少参数 start_date`; the page names the field by its label.
    page.fill("#start-date", "")
    expect(alert).to_have_text("缺少开始日期（格式 YYYY-MM-DD）")

    # What the API refuses is shown as it says it: here a request altered on its way.
    def reverse(route: Any) -> None:
        route.continue_(post_data=json.dumps({"start_date": "2025-10-09", "end_date": "2025-10-01"}))
    page.route(re.compile(r".*/sync/batch\?.*"), reverse)
    tab.set_range("2025-10-01", "2025-10-09")
    expect(alert).to_be_hidden()
    page.get_by_role("button", name="开始同步").click()
    expect(alert).to_have_text("开始日期 2025-10-09 不能晚于结束日期 2025-10-01")
    assert scalar(db, "SELECT count(*) FROM sync_jobs") == 0

    # In English too: the labels, never the API's field names.
    page.unroute(re.compile(r".*/sync/batch\?.*"))
    page.get_by_role("button", name="Switch to English").click()
    tab.set_range("2025-10-09", "2025-10-01")
    expect(alert).to_have_text("Start date 2025-10-09 must not be after End date 2025-10-01")
    page.fill("#end-date", "")
    expect(alert).to_have_text("End date is required (format YYYY-MM-DD)")

    def missing_start(route: Any) -> None:
        route.continue_(post_data=json.dumps({"end_date": "2025-10-01"}))
    page.route(re.compile(r".*/sync/batch\?.*"), missing_start)
    tab.set_range("2025-10-01", "2025-10-02")
    page.get_by_role("button", name="Start sync").click()
    expect(alert).to_have_text("Start date is required (format YYYY-MM-DD)")
    assert "start_date" not in page.locator("main").inner_text()


def test_a_conflict_shows_the_running_jobs_progress(tab, stack, app_module, db):
    page = tab.open()
    running = start_job_over_http(stack, "2025-10-01", "2025-10-09", tab.token)  # no workers yet: it waits
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
    tab.shot("page-conflict-zh.png")

    loop = WorkerLoop(stack.sqs_client(), stack.env["SQS_QUEUE_URL"], app_module.sync_day, workers=2)
    loop.start()
    try:
        expect(page.locator("#percent")).to_have_text("100%", timeout=SLOW)
    finally:
        loop.stop()
    expect(page.locator("#summary")).to_contain_text("批量同步完成: 成功1, 失败0, 跳过8")
    expect(tab.day("2025-10-09")).to_have_attribute("data-state", "synced")
    expect(notice).to_be_hidden()  # the job it pointed to has ended
    assert scalar(db, "SELECT count(*) FROM sync_jobs") == 1


def test_polling_stops_after_30_minutes_without_completion(tab, stack, db):
    page = tab.page
    page.clock.install()  # the page's timers and Date, under the test's control
    running = start_job_over_http(stack, "2025-10-01", "2025-10-03", tab.token)  # no workers: it never ends
    tab.open()
    expect(page.locator("#task-id")).to_have_text(running)  # a running job is picked up on load
    expect(page.locator("#job-status")).to_have_text("同步中")
    record_announcements(page)
    page.clock.run_for("29:50")
    expect(page.locator("#poll-notice")).to_be_hidden()
    assert announcements(page) == []  # polled, and nothing changed: nothing was said
    page.clock.run_for("01:00")
    expect(page.locator("#poll-notice")).to_have_text(
        "已停止自动刷新：30 分钟内任务未完成。任务仍在后台运行。")
    page.clock.run_for("00:01")
    assert [s["text"] for s in announcements(page)] == ["已停止自动刷新：30 分钟内任务未完成。任务仍在后台运行。"]
    # The last poll's request event may still be on its way from the browser's network
    # service under load: let events settle before the count, as after it.
    page.wait_for_timeout(500)
    polls = len(tab.api_calls("/batch/progress/"))
    page.clock.run_for("05:00")
    page.wait_for_timeout(500)
    assert len(tab.api_calls("/batch/progress/")) == polls
    expect(page.locator("#resume-button")).to_be_visible()
    expect(page.locator("#cancel-button")).to_be_hidden()
    page.get_by_role("button", name="继续查看进度").click()
    expect(page.locator("#poll-notice")).to_be_hidden()
    assert len(tab.api_calls("/batch/progress/")) > polls
    expect(page.locator("#cancel-button")).to_be_focused()  # the pressed button went; its partner has it


def test_english_and_back(tab, stack, db):
    page = tab.open()
    page.get_by_role("button", name="Switch to English").click()
    expect(page.locator("h1")).to_have_text("Stock data sync")
    assert page.evaluate("document.documentElement.lang") == "en"
    assert page.evaluate("localStorage.getItem('stocksync.lang')") == "en"
    tab.set_range("2025-10-09", "2025-10-01")
    expect(page.locator("#form-error")).to_have_text("Start date 2025-10-09 must not be after End date 2025-10-01")
    expect(page.get_by_role("button", name="Start sync")).to_be_visible()
    expect(page.locator("#legend")).to_contain_text("Non-trading day")

    # Remembered across a reload; every API call asks for English.
    tab.requests.clear()
    page.reload()
    expect(page.locator("h1")).to_have_text("Stock data sync")
    expect(page.locator("#calendar figcaption").first).to_have_text(re.compile(r"^[A-Z][a-z]+ \d{4}$"))
    start_job_over_http(stack, "2025-10-01", "2025-10-02", tab.token)
    page.fill("#start-date", "2025-09-01")
    page.fill("#end-date", "2025-09-02")
    page.get_by_role("button", name="Start sync").click()
    expect(page.locator("#conflict-notice")).to_contain_text(
        "A sync job is already running; wait for it to finish and try again")
    expect(page.locator("#job-status")).to_have_text("Running")
    api_calls = [url for _, _, url in tab.requests if "/api/v1/" in url]
    assert api_calls and all("lang=en" in url for url in api_calls)
    tab.shot("page-conflict-en.png")

    page.get_by_role("button", name="切换到中文").click()
    expect(page.locator("h1")).to_have_text("股票数据同步")
    assert page.evaluate("localStorage.getItem('stocksync.lang')") == "zh"
    # The 409's words follow the language too.
    expect(page.locator("#conflict-notice")).to_contain_text("已有同步任务正在运行，请等待当前任务完成后再试")
    expect(page.locator("#form-error")).to_have_text("已有同步任务正在运行，请等待当前任务完成后再试")


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


def test_a_reversed_range_keeps_the_calendar_on_its_months(tab, db):
    page = tab.open()
    tab.set_range(*RANGE)
    months = page.locator("#calendar figure.month figcaption")
    expect(months).to_have_text(["2025年9月", "2025年10月"])
    page.fill("#start-date", "2025-10-20")  # now after the end date
    expect(page.locator("#form-error")).to_have_text("开始日期 2025-10-20 不能晚于结束日期 2025-10-10")
    expect(months).to_have_text(["2025年10月"])  # both dates still in view, no jump to today
    page.fill("#start-date", "2024-01-02")  # too long a range to show: the months stay put
    expect(page.locator("#form-error")).to_contain_text("日期范围不能超过90天")
    expect(months).to_have_text(["2025年10月"])
    page.fill("#start-date", "")
    expect(months).to_have_text(["2025年10月"])


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
    tab.open(path="/api/sync-status")
    expect(page.locator("#history-empty")).to_be_visible()
    api_calls = [url for _, _, url in tab.requests if "/v1/" in url]
    assert api_calls and all(url.startswith(stack.api_url + "/api/api/v1/sync-status/") for url in api_calls)
    modules = [url for _, _, url in tab.requests if url.endswith(".js")]
    assert len(modules) == sum(name.endswith(".js") for name in CONTENT_TYPES), modules
    assert all(url.startswith(stack.api_url + "/api/sync-status/") for url in modules)

    # ?api=: the page from one origin (localhost), the API on another (127.0.0.1, which the
    # stack's PAGE_API_ORIGINS names): CORS.
    other = stack.api_url.replace("127.0.0.1", "localhost")
    page.goto(other + "/sync-status?api=" + stack.api_url + f"#token={tab.token}")
    expect(page.locator("#calendar .day").first).to_have_attribute("data-state", re.compile("^(?!loading)"))
    expect(page.locator("#api-base")).to_contain_text(stack.api_url + "/api/v1/sync-status/")
    expect(page.locator("#page-notice")).to_be_hidden()
    assert any(url.startswith(stack.api_url + "/api/v1/sync-status/dates") for _, _, url in tab.requests)


def test_api_in_the_address_only_names_configured_origins(tab, stack, db):
    page = tab.open("?api=https://elsewhere.example/api")
    notice = page.locator("#page-notice")
    expect(notice).to_contain_text("https://elsewhere.example")
    expect(notice).to_contain_text("PAGE_API_ORIGINS")
    expect(page.locator("#api-base")).to_contain_text(stack.api_url + "/api/v1/sync-status/")
    expect(tab.day(market_today().isoformat())).not_to_have_attribute("data-state", "loading")
    assert not [url for _, _, url in tab.requests if url.startswith("https://elsewhere.example")]
    assert tab.api_calls(stack.api_url + "/api/v1/sync-status/dates")


def test_the_page_and_its_modules_are_served_with_their_types_and_headers(stack, db):
    page = requests.get(stack.api_url + "/sync-status", timeout=10)
    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert '<script type="module" src="sync-status/main.js"></script>' in page.text
    origin = stack.api_url
    assert f'<meta name="stocksync-api-origins" content="{origin}">' in page.text

    # Every module the page imports is served, as JavaScript, and no file outside the list.
    served = {name for name in CONTENT_TYPES if name.endswith(".js")}
    on_disk = {p.name for p in PAGE_DIR.glob("*.js")}
    assert served == on_disk
    imported = set()
    for name in sorted(served):
        script = requests.get(f"{stack.api_url}/sync-status/{name}", timeout=10)
        assert script.status_code == 200, name
        assert script.headers["Content-Type"] == "text/javascript; charset=utf-8"
        imported |= set(re.findall(r"from '\./([\w-]+\.js)'", script.text))
        assert "'/api/v1" not in script.text  # never an absolute path: the stage prefix would be lost
        assert len(script.text.splitlines()) <= 300, f"{name} should read in one sitting"
    assert imported | {"main.js"} == served
    assert "api/v1/sync-status/" in (PAGE_DIR / "api.js").read_text()
    assert requests.get(stack.api_url + "/sync-status/page.css", timeout=10).headers[
        "Content-Type"] == "text/css; charset=utf-8"
    for missing in ("app.py", "page.js", "..%2Fwebpage.py"):
        answer = requests.get(stack.api_url + "/sync-status/" + missing, timeout=10)
        assert answer.status_code == 404 and answer.json()["code"] == "not_found", missing

    # Security headers: the page talks to itself and the configured API origins only.
    headers = page.headers
    csp = dict(part.strip().split(" ", 1) for part in headers["Content-Security-Policy"].split(";"))
    # ... and the WebSocket of pushed progress (LIVE_WEBSOCKET_URL), whose URL the page reads.
    live = stack.env["LIVE_WEBSOCKET_URL"]
    assert f'<meta name="stocksync-live-url" content="{live}">' in page.text
    assert csp["connect-src"] == f"'self' {origin} {live.rstrip('/')}"
    assert csp["script-src"] == "'self'" and csp["frame-ancestors"] == "'none'"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert "camera=()" in headers["Permissions-Policy"] and "geolocation=()" in headers["Permissions-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "Strict-Transport-Security" not in headers  # plain http here
    behind_https = requests.get(stack.api_url + "/sync-status/main.js", timeout=10,
                                headers={"X-Forwarded-Proto": "https"})
    assert behind_https.headers["Strict-Transport-Security"].startswith("max-age=31536000")


def test_page_api_origins_take_origins_only():
    """What PAGE_API_ORIGINS names goes into a CSP header: only scheme://host[:port] passes."""
    from chalicelib.config import Settings, parse_origins
    from chalicelib.errors import ConfigError
    assert parse_origins("") == ()
    assert parse_origins(" https://A.example.com/ ,http://127.0.0.1:8000,https://a.example.com") == (
        "https://a.example.com", "http://127.0.0.1:8000")
    for bad in ("*", "https://a.example.com/api", "https://a.example.com; script-src *",
                "javascript:alert(1)", "a.example.com", "https://a b.com"):
        with pytest.raises(ConfigError):
            parse_origins(bad, "PAGE_API_ORIGINS")
    assert Settings.from_env({"PAGE_API_ORIGINS": "https://x.example"}).page_api_origins == ("https://x.example",)
    assert Settings.from_env({}).page_api_origins == ()


def test_both_languages_have_every_message():
    keys = {lang: re.findall(r"^  (\w+):", (PAGE_DIR / f"messages-{lang}.js").read_text(), re.M)
            for lang in ("zh", "en")}
    assert len(keys["zh"]) > 100 and keys["zh"] == keys["en"]


# --- signing in (the page side of issue 9's contract) --------------------------------------

def test_the_token_in_the_address_is_kept_for_the_session_and_sent(tab, stack, db):
    page = tab.open()
    expect(page).to_have_url(stack.api_url + "/sync-status")  # the fragment is gone
    assert page.evaluate("sessionStorage.getItem('stocksync.token')") == tab.token
    api = [headers for url, headers in tab.headers if "/api/v1/" in url]
    assert api and all(h.get("authorization") == f"Bearer {tab.token}" for h in api)
    expect(page.locator("#session-status")).to_have_text(re.compile("^已登录："))
    # A reload keeps the session; a new tab would not (sessionStorage).
    page.reload()
    assert page.evaluate("sessionStorage.getItem('stocksync.token')") == tab.token


@pytest.mark.parametrize("path", ["/sync-status/", "/sync-status/index.html"])
def test_the_page_at_a_folder_address_sends_the_browser_to_its_own(tab, stack, db, path):
    """Both addresses reached the page, whose relative paths then named
    /sync-status/sync-status/page.css and .../main.js (403s): no styles, no scripts, a dead
    form. They now redirect to the page's address, keeping the query and the fragment."""
    answer = requests.get(stack.api_url + path + "?lang=en&x=1&x=2", timeout=10, allow_redirects=False)
    assert answer.status_code == 302
    assert answer.headers["Location"] == "../sync-status?lang=en&x=1&x=2"
    page = tab.open(query="?lang=en", path=path)
    expect(page).to_have_url(stack.api_url + "/sync-status?lang=en")  # the token's fragment is gone too
    expect(page.locator("#session-status")).to_have_text(re.compile("^Signed in"))
    assert page.evaluate("sessionStorage.getItem('stocksync.token')") == tab.token
    assert page.evaluate("getComputedStyle(document.querySelector('#start-button')).backgroundColor") \
        != "rgba(0, 0, 0, 0)"  # page.css applies


def test_signed_in_signed_out_and_a_plain_401(tab, stack, db):
    page = tab.page
    server = SignInServer(page, tab.token, name="local")
    tab.open(token=None)  # no token in the address: every API call is refused
    banner = page.locator("#auth-notice")
    expect(banner.locator("#auth-notice-text")).to_have_text("需要登录：服务器拒绝了未登录的请求（401）。请点击“登录”，粘贴访问令牌。")
    expect(page.locator("#session-status")).to_have_text("未登录")
    expect(page.locator("#calendar-error")).to_have_text("需要登录（401）")
    expect(page.locator("#history-error")).to_have_text("需要登录（401）")
    tab.shot("page-needs-sign-in-zh.png")

    # A wrong token is refused in the dialog, which stays open.
    banner.get_by_role("button", name="登录").click()
    dialog = page.get_by_role("dialog", name="登录")
    expect(dialog).to_be_visible()
    page.get_by_label("访问令牌").fill("not-the-token")
    dialog.get_by_role("button", name="登录").click()
    expect(page.locator("#signin-error")).to_have_text("服务器没有接受这个令牌（401），请检查后重试")
    assert page.evaluate("sessionStorage.getItem('stocksync.token')") is None

    page.get_by_label("访问令牌").fill(tab.token)
    dialog.get_by_role("button", name="登录").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#session-status")).to_have_text("已登录：local（操作员）")
    expect(banner).to_be_hidden()
    expect(page.locator("#calendar-error")).to_be_hidden()
    expect(page.locator("#history-empty")).to_be_visible()  # reloaded with the token
    assert page.evaluate("sessionStorage.getItem('stocksync.token')") == tab.token
    expect(page.locator("#signout-button")).to_be_focused()

    page.get_by_role("button", name="退出登录").click()
    expect(page.locator("#session-status")).to_have_text("未登录")
    expect(banner).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('stocksync.token')") is None
    assert server.whoami_calls >= 3

    # A reader's token may look but not start: the 403 is said plainly.
    page.unroute(API_ROUTES)
    SignInServer(page, tab.token, name="viewer", role="reader")
    page.route(re.compile(r".*/sync/batch\?.*"), lambda route: route.fulfill(
        status=403, content_type="application/json",
        body=json.dumps({"status": "error", "code": "forbidden", "message": "forbidden"})))
    tab.open()
    expect(page.locator("#session-status")).to_have_text("已登录：viewer（只读）")
    tab.set_range(*RANGE)
    page.get_by_role("button", name="开始同步").click()
    expect(page.locator("#form-error")).to_have_text("当前令牌只能查看，不能开始、取消或强制同步（403）。请用操作员令牌登录。")


# --- accessibility: axe-core, the keyboard, what is announced, a phone's screen ------------

@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280x800", "390x844"])
def test_axe_core_finds_nothing_serious_in_any_state(new_tab, stack, app_module, db, viewport):
    """First load, signed out (banner, sign-in dialog), during a sync (a day failing; a second
    job refused), after it, with a day's detail and a job's days open, and in English."""
    tab = new_tab(viewport)
    page = tab.page
    size = f"{viewport['width']}x{viewport['height']}"
    SignInServer(page, tab.token)
    tab.open(token=None)
    expect(page.locator("#auth-notice")).to_be_visible()
    expect(page.locator("#history-error")).to_be_visible()
    assert_no_serious_axe(page, f"signed out, {size}")
    page.locator("#auth-notice").get_by_role("button", name="登录").click()
    page.get_by_label("访问令牌").fill("wrong")
    page.keyboard.press("Enter")
    expect(page.locator("#signin-error")).to_be_visible()
    assert_no_serious_axe(page, f"sign-in dialog, {size}")
    tab.shot(f"page-sign-in-{size}.png", full_page=False)
    page.get_by_label("访问令牌").fill(tab.token)
    page.keyboard.press("Enter")
    expect(page.locator("#session-status")).to_contain_text("已登录")
    assert_no_serious_axe(page, f"first load, signed in, {size}")

    stack.tushare.add_fault("http_500", api="daily", trade_date="20250930", times=None)
    tab.set_range(*RANGE)
    page.get_by_role("button", name="开始同步").click()
    expect(page.locator("#job-status")).to_have_text("同步中")
    expect(tab.day("2025-10-09")).to_have_attribute("data-state", "pending")
    assert_no_serious_axe(page, f"during a sync, {size}")
    tab.set_range("2025-10-13", "2025-10-14")
    page.get_by_role("button", name="开始同步").click()  # one job at a time: the 409's notices
    expect(page.locator("#conflict-notice")).to_be_visible()
    assert_no_serious_axe(page, f"a refused second job, {size}")
    tab.shot(f"page-running-{size}.png")
    tab.set_range(*RANGE)

    loop = WorkerLoop(stack.sqs_client(), stack.env["SQS_QUEUE_URL"], app_module.sync_day, workers=2)
    loop.start()
    try:
        expect(page.locator("#job-status")).to_have_text("已完成（有失败）", timeout=SLOW)
    finally:
        loop.stop()
    expect(tab.day("2025-09-30")).to_have_attribute("data-state", "failed")
    assert_no_serious_axe(page, f"after a sync, {size}")

    tab.day("2025-09-30").click()
    expect(page.locator("#day-detail")).to_be_visible()
    page.locator("tr.job-row").first.get_by_role("button", name="查看每日").click()
    expect(page.locator("tr.days-row table.days tbody tr")).to_have_count(12)
    assert_no_serious_axe(page, f"a day's detail and a job's days open, {size}")
    tab.shot(f"page-after-{size}.png")

    page.get_by_role("button", name="Switch to English").click()
    expect(page.locator("h1")).to_have_text("Stock data sync")
    assert_no_serious_axe(page, f"in English, {size}")
    page.get_by_role("button", name="Last 6 months").click()
    assert_no_serious_axe(page, f"the last six months, in English, {size}")
    tab.shot(f"page-english-{size}.png")
    print(f"axe-core {axe_version()}: 0 serious, 0 critical at {size} in 8 states")


def test_the_calendar_is_one_tab_stop_and_moves_like_a_date_picker(tab, db):
    page = tab.open()
    tab.set_range(*RANGE)
    expect(page.locator("#calendar button.day")).to_have_count(61)  # September and October
    stops = tab_stops(page)
    in_calendar = [s for s in stops if s["inCalendar"]]
    assert len(in_calendar) == 1, stops
    assert in_calendar[0]["date"] == "2025-09-29"  # the range's first day holds the stop

    tab_until(page, "el.matches('#calendar button.day')")
    keys = [("ArrowRight", "2025-09-30"), ("ArrowDown", "2025-10-07"), ("ArrowLeft", "2025-10-06"),
            ("ArrowUp", "2025-09-29"), ("End", "2025-10-05"), ("Home", "2025-09-29"),
            ("PageDown", "2025-10-29"), ("PageUp", "2025-09-29")]
    for key, date in keys:
        page.keyboard.press(key)
        expect(tab.day(date)).to_be_focused()
    # Past the months shown, the calendar follows the focus.
    page.keyboard.press("PageUp")
    expect(tab.day("2025-08-29")).to_be_focused()
    expect(page.locator("#calendar figure.month figcaption").first).to_have_text("2025年8月")
    page.keyboard.press("Shift+PageUp")
    expect(tab.day("2024-08-29")).to_be_focused()
    expect(page.locator("#calendar figure.month figcaption").first).to_have_text("2024年8月")
    page.keyboard.press("Escape")  # nothing open: nothing happens
    expect(tab.day("2024-08-29")).to_be_focused()
    # Still one stop, on the day the keys went to.
    assert [s["date"] for s in tab_stops(page) if s["inCalendar"]] == ["2024-08-29"]


def test_the_keyboard_alone_signs_in_picks_dates_starts_watches_and_cancels(tab, stack, app_module, db):
    page = tab.page
    SignInServer(page, tab.token)
    tab.open(token=None)
    expect(page.locator("#auth-notice")).to_be_visible()

    # Sign in: the top bar's button, the dialog, back on the bar.
    tab_until(page, "el.id === 'signin-button'")
    page.keyboard.press("Enter")
    expect(page.locator("#token-input")).to_be_focused()
    page.keyboard.type(tab.token)
    page.keyboard.press("Enter")
    expect(page.locator("#session-status")).to_have_text("已登录：local（操作员）")
    expect(page.locator("#signout-button")).to_be_focused()

    # Pick the dates in the calendar: to 29 Sep 2025, use as start; to 10 Oct, use as end.
    today = market_today()
    months_back = (today.year - 2025) * 12 + today.month - 9
    tab_until(page, "el.matches('#calendar button.day')")
    for _ in range(months_back):
        page.keyboard.press("PageUp")
    assert focused(page)["date"].startswith("2025-09-")
    for _ in range(40):
        if focused(page)["date"] == "2025-09-29":
            break
        page.keyboard.press("ArrowRight" if focused(page)["date"] < "2025-09-29" else "ArrowLeft")
    page.keyboard.press("Enter")
    expect(page.locator("#day-detail")).to_contain_text("2025年9月29日")
    expect(tab.day("2025-09-29")).to_be_focused()  # the detail opened; the focus stayed
    page.keyboard.press("Tab")
    expect(page.locator('[data-focus-key="set-start"]')).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#start-date")).to_have_value("2025-09-29")
    expect(page.locator('[data-focus-key="set-start"]')).to_be_focused()
    page.keyboard.press("Shift+Tab")
    expect(tab.day("2025-09-29")).to_be_focused()
    for key in ["ArrowDown"] + ["ArrowRight"] * 4:  # a week on, into October, then to Friday
        page.keyboard.press(key)
    expect(tab.day("2025-10-10")).to_be_focused()
    page.keyboard.press("Space")
    expect(page.locator("#day-detail")).to_contain_text("2025年10月10日")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    expect(page.locator('[data-focus-key="set-end"]')).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#end-date")).to_have_value("2025-10-10")
    expect(page.locator("#form-error")).to_be_hidden()
    # Escape closes the detail from the calendar, keeping the focus on the day.
    expect(page.locator('[data-focus-key="set-end"]')).to_be_focused()
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    expect(tab.day("2025-10-10")).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.locator("#day-detail")).to_be_hidden()
    expect(tab.day("2025-10-10")).to_be_focused()

    # Start: the focus stays on the button while the job starts and runs.
    tab_until(page, "el.id === 'start-button'", back=True)
    page.keyboard.press("Enter")
    expect(page.locator("#job-status")).to_have_text("同步中")
    expect(page.locator("#start-button")).to_be_focused()
    loop = WorkerLoop(stack.sqs_client(), stack.env["SQS_QUEUE_URL"], app_module.sync_day, workers=2)
    loop.start()
    try:
        expect(page.locator("#percent")).to_have_text("100%", timeout=SLOW)
    finally:
        loop.stop()
    expect(page.locator("#start-button")).to_be_focused()

    # A job's days: the button keeps the focus as it turns into "收起".
    tab_until(page, "(el.getAttribute('aria-label') || '').startsWith('查看每日')")
    page.keyboard.press("Enter")
    expect(page.locator("tr.days-row table.days tbody tr")).to_have_count(12)
    here = focused(page)
    assert here["text"] == "收起" and here["key"].startswith("days:"), here

    # Watch a job started elsewhere: refresh the history, "查看进度", then cancel it.
    running = start_job_over_http(stack, "2025-10-13", "2025-10-14", tab.token)
    tab_until(page, "el.id === 'history-refresh'", back=True)
    page.keyboard.press("Enter")
    expect(page.locator(f'tr.job-row[data-task-id="{running}"]')).to_be_visible()
    tab_until(page, "(el.getAttribute('aria-label') || '').startsWith('查看进度')")
    page.keyboard.press("Enter")
    expect(page.locator("#task-id")).to_have_text(running)
    expect(page.locator("#progress-heading")).to_be_focused()  # the person goes where the progress is
    expect(page.locator("#cancel-button")).to_be_visible()
    tab_until(page, "el.id === 'cancel-button'")
    page.once("dialog", lambda dialog: dialog.accept())  # the browser's own confirm()
    page.keyboard.press("Enter")
    expect(page.locator("#job-status")).to_have_text("已取消")
    expect(page.locator("#summary")).to_be_focused()

    # Switch the language: the button keeps the focus, and says the other language.
    tab_until(page, "el.id === 'lang-toggle'", back=True)
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text("Stock data sync")
    expect(page.locator("#lang-toggle")).to_be_focused()
    expect(page.locator("#lang-toggle")).to_have_accessible_name("切换到中文")


def test_focus_stays_on_a_calendar_day_while_a_sync_redraws_it(tab, stack, app_module, db):
    """And the screen reader hears the sync start and end, not each step."""
    # Polled, as without pushes (the pushed twin: test_progress_is_pushed_and_the_page_...).
    no_live_ticket_route(tab.page)
    running = start_job_over_http(stack, *RANGE, tab.token)
    page = tab.open()
    expect(page.locator("#task-id")).to_have_text(running)
    tab.set_range(*RANGE)
    tab_until(page, "el.matches('#calendar button.day')")
    page.keyboard.press("ArrowRight")
    page.evaluate("document.activeElement.__mine = true")
    record_announcements(page)
    dates_before = len(tab.api_calls("/api/v1/sync-status/dates"))
    polls_before = len(tab.api_calls("/batch/progress/"))
    loop = WorkerLoop(stack.sqs_client(), stack.env["SQS_QUEUE_URL"], app_module.sync_day, workers=1)
    for _ in range(4):  # a day at a time, each seen by a poll and redrawn
        assert loop.poll_once(wait_s=5) == 1
        page.wait_for_timeout(2300)
    assert page.evaluate("document.activeElement.__mine === true")
    loop.start()
    try:
        expect(page.locator("#percent")).to_have_text("100%", timeout=SLOW)
    finally:
        loop.stop()
    expect(tab.day("2025-09-30")).to_have_attribute("data-state", "synced")
    assert len(tab.api_calls("/api/v1/sync-status/dates")) - dates_before >= 3  # redrawn along the way
    assert page.evaluate("document.activeElement.__mine === true && document.activeElement.dataset.date") == "2025-09-30"
    # The day's name changed with it; the element did not.
    expect(page.locator("#calendar button.day:focus")).to_have_accessible_name(re.compile("已同步 · [\\d,]+ 行$"))
    page.wait_for_timeout(300)
    said = [s["text"] for s in announcements(page)]
    assert len(tab.api_calls("/batch/progress/")) - polls_before >= 4
    assert len(said) == 1 and said[0].startswith("批量同步完成: 成功4, 失败0, 跳过8"), said


def test_announcements_are_state_changes_not_polls(tab, stack, workers, db):
    no_live_ticket_route(tab.page)  # polled, as without pushes (pushed: see the live tests below)
    page = tab.open()
    stack.tushare.add_fault("http_500", api="daily", trade_date="20250930", times=None)
    tab.set_range(*RANGE)
    record_announcements(page)
    page.get_by_role("button", name="开始同步").click()
    expect(page.locator("#job-status")).to_have_text("已完成（有失败）", timeout=SLOW)
    page.wait_for_timeout(500)
    said = announcements(page)
    polls = len(tab.api_calls("/batch/progress/"))
    texts = [s["text"] for s in said]
    assert all(s["region"] == "announcer" for s in said), said  # nothing else on the page speaks
    assert texts[0] == "同步已开始：2025-09-29 至 2025-10-10，共 12 天", texts
    assert any(re.search(r"2025-09-30 同步失败：\S", t) for t in texts), texts
    assert re.search(r"批量同步完成: 成功3, 失败1, 跳过8 共写入 [\d,]+ 行", texts[-1]), texts
    assert len(texts) <= 3 and polls >= 2, (texts, polls)


def test_a_phone_sized_screen_scrolls_only_vertically(new_tab, stack, db):
    tab = new_tab(PHONE, is_mobile=True, has_touch=True)
    page = tab.page
    start_job_over_http(stack, "2025-09-15", "2025-09-26", tab.token)
    tab.open()
    page.locator("tr.job-row").get_by_role("button", name="查看每日").tap()
    expect(page.locator("tr.days-row table.days tbody tr")).to_have_count(12)
    tab.set_range(*RANGE)
    expect(tab.day("2025-09-29")).not_to_have_attribute("data-state", "loading")
    assert_fits_the_screen(page)

    # The history fits, or says it scrolls: a visible cue and a focusable, labelled region.
    wrap = page.locator("#history-wrap")
    if page.evaluate("(el) => el.scrollWidth > el.clientWidth", wrap.element_handle()):
        expect(page.locator("#history-cue")).to_be_visible()
        expect(wrap).to_have_attribute("tabindex", "0")
        expect(wrap).to_have_accessible_name("任务历史表（可左右滚动）")

    # A tapped day's detail comes into view (it sits under both months).
    page.evaluate("window.scrollTo(0, 0)")
    tab.day("2025-09-29").scroll_into_view_if_needed()
    tab.day("2025-09-29").tap()
    expect(page.locator("#day-detail")).to_be_in_viewport()
    expect(page.locator("#day-detail")).to_contain_text("2025年9月29日")
    assert_fits_the_screen(page)
    tab.shot("page-phone-zh.png")


def test_cancel_from_the_page(tab, stack, db):
    running = start_job_over_http(stack, "2025-10-09", "2025-10-10", tab.token)  # no workers: it waits
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


# --- pause, resume, retry, and why days were skipped (issue 13) -----------------------------

def start_paused_job_over_http(stack: Any, token: str, start: str = "2025-10-01", end: str = "2025-10-09") -> str:
    task_id = start_job_over_http(stack, start, end, token)
    answer = requests.post(f"{stack.api_url}{BATCH}/pause/{task_id}", timeout=10, headers=auth_headers(token))
    assert answer.status_code == 200, answer.text
    return task_id


def ended_with_a_failed_day(stack: Any, app_module: Any, token: str) -> str:
    """A job over RANGE that completed with 2025-09-30 failed."""
    stack.tushare.add_fault("http_500", api="daily", trade_date="20250930", times=None)
    task_id = start_job_over_http(stack, *RANGE, token)
    loop = WorkerLoop(stack.sqs_client(), stack.env["SQS_QUEUE_URL"], app_module.sync_day, workers=2)
    loop.start()
    try:
        deadline = time.monotonic() + 60
        while app_module.get_jobs().progress(task_id).status != "completed":
            assert time.monotonic() < deadline, "the job did not complete"
            time.sleep(0.1)
    finally:
        loop.stop()
    stack.tushare.clear_faults()
    return task_id


def test_the_keyboard_alone_pauses_resumes_and_retries(tab, stack, app_module, db):
    failed = ended_with_a_failed_day(stack, app_module, tab.token)
    running = start_job_over_http(stack, "2025-10-13", "2025-10-14", tab.token)  # no workers: it waits
    page = tab.open()
    expect(page.locator("#task-id")).to_have_text(running)  # picked up on load
    record_announcements(page)

    # Pause: the resume button takes the pressed button's place, and the focus.
    tab_until(page, "el.id === 'pause-button'")
    page.keyboard.press("Enter")
    expect(page.locator("#job-status")).to_have_text("已暂停")
    expect(page.locator("#resume-job-button")).to_be_focused()
    expect(page.locator("#pause-button")).to_be_hidden()
    expect(page.locator("#progress-line")).to_have_text("已暂停：已处理 0 / 2 天，恢复后从这里继续。")
    expect(page.locator("#stat-eta")).to_have_text("已暂停")
    expect(page.locator("#cancel-button")).to_be_visible()  # a paused job may be cancelled
    assert scalar(db, "SELECT status FROM sync_jobs WHERE task_id = %(t)s", {"t": running}) == "paused"
    # Polled while paused, and nothing more is said about it.
    page.wait_for_timeout(2500)
    expect(page.locator("#resume-job-button")).to_be_focused()

    page.keyboard.press("Enter")
    expect(page.locator("#job-status")).to_have_text("同步中")
    expect(page.locator("#pause-button")).to_be_focused()
    page.wait_for_timeout(300)
    said = [s["text"] for s in announcements(page)]
    assert said == ["任务已暂停：已开始的日期会完成，其余日期等待恢复", "任务已恢复"], said

    # Cancel the waiting job (a paused one could be too), then retry the failed one's day.
    page.once("dialog", lambda dialog: dialog.accept())
    tab_until(page, "el.id === 'cancel-button'")
    page.keyboard.press("Enter")
    expect(page.locator("#job-status")).to_have_text("已取消")
    tab_until(page, "el.id === 'history-refresh'")
    page.keyboard.press("Enter")
    row = page.locator(f'tr.job-row[data-task-id="{failed}"]')
    expect(row.get_by_role("button", name=re.compile("^重试失败日期"))).to_be_visible()
    expect(page.locator(f'tr.job-row[data-task-id="{running}"]').get_by_role(
        "button", name=re.compile("^重试失败日期"))).to_have_count(0)  # nothing failed there
    record_announcements(page)
    tab_until(page, "(el.getAttribute('aria-label') || '').startsWith('重试失败日期')")
    page.keyboard.press("Enter")
    expect(page.locator("#task-id")).to_have_text(failed)
    expect(page.locator("#progress-heading")).to_be_focused()  # where the retried job's progress is
    expect(page.locator("#job-status")).to_have_text("同步中")
    expect(page.locator("#stat-done")).to_have_text("11 / 12")
    loop = WorkerLoop(stack.sqs_client(), stack.env["SQS_QUEUE_URL"], app_module.sync_day, workers=2)
    loop.start()
    try:
        expect(page.locator("#job-status")).to_have_text("已完成", timeout=SLOW)
    finally:
        loop.stop()
    expect(page.locator("#summary")).to_contain_text("批量同步完成: 成功4, 失败0, 跳过8")
    said = [s["text"] for s in announcements(page)]
    assert any(text.startswith("正在重试 1 天失败的日期：2025-09-29 至 2025-10-10") for text in said), said
    assert not any("正在查看任务进度" in text for text in said), said  # said once, not twice
    expect(row.get_by_role("button", name=re.compile("^重试失败日期"))).to_have_count(0)

    # Its days say what the retried day failed with before, and its history the retry.
    row.get_by_role("button", name=re.compile("^查看每日")).click()
    days = page.locator("tr.days-row")
    expect(days.locator("table.days tbody tr").nth(1)).to_contain_text("此前：")
    expect(days.locator(".events li")).to_have_count(4)
    expect(days.locator(".events li").nth(2)).to_contain_text("重试 · local-operator · 1 天")


def test_retrying_the_watched_job_is_said_as_a_retry_not_as_a_resume(tab, stack, app_module, db):
    """The job the page watched ended with a failed day; its retry re-opens it (completed ->
    running), which the page also said as "任务已恢复" (resumed), a pause nobody made."""
    stack.tushare.add_fault("http_500", api="daily", trade_date="20250930", times=None)
    task_id = start_job_over_http(stack, *RANGE, tab.token)
    page = tab.open()
    expect(page.locator("#task-id")).to_have_text(task_id)  # watched from the start
    loop = WorkerLoop(stack.sqs_client(), stack.env["SQS_QUEUE_URL"], app_module.sync_day, workers=2)
    loop.start()
    try:
        expect(page.locator("#job-status")).to_have_text("已完成（有失败）", timeout=SLOW)
    finally:
        loop.stop()
    stack.tushare.clear_faults()
    expect(page.locator("#stat-failed")).to_have_text("1")
    record_announcements(page)
    row = page.locator(f'tr.job-row[data-task-id="{task_id}"]')
    row.get_by_role("button", name=re.compile("^重试失败日期")).click()
    expect(page.locator("#job-status")).to_have_text("同步中")
    page.wait_for_timeout(2500)  # a poll, or a push, of the re-opened job
    said = [s["text"] for s in announcements(page)]
    assert said == ["正在重试 1 天失败的日期：2025-09-29 至 2025-10-10"], said


def test_a_cancel_whose_push_comes_before_its_answer_is_said_once(tab, stack, db):
    """The cancel pushes the job's end before it answers; the page said the summary for the
    push and again for the answer."""
    running = start_job_over_http(stack, "2025-10-09", "2025-10-10", tab.token)  # no workers: it waits
    page = tab.open()
    expect(page.locator("#task-id")).to_have_text(running)
    pushes_up(page)
    record_announcements(page)

    def answer_late(route: Any) -> None:
        response = route.fetch()  # the cancel is done, and its push on its way
        time.sleep(1.0)
        route.fulfill(response=response)
    page.route(re.compile(r".*/sync/batch/cancel/.*"), answer_late)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="取消任务").click()
    expect(page.locator("#job-status")).to_have_text("已取消")
    page.wait_for_timeout(2000)
    expect(page.locator("#summary")).to_be_focused()
    said = [s["text"] for s in announcements(page)]
    assert len(said) == 1 and said[0].startswith("批量同步已取消: 成功0, 失败0, 跳过2"), said


def test_the_summary_says_why_days_were_skipped_and_points_to_force(tab, workers, db):
    page = tab.open()
    tab.set_range(*RANGE)
    page.get_by_role("button", name="开始同步").click()
    expect(page.locator("#percent")).to_have_text("100%", timeout=SLOW)
    expect(page.locator("#skip-reasons")).to_have_text("跳过原因：非交易日 8 天。")
    expect(page.locator("#use-force")).to_be_hidden()
    page.get_by_role("button", name="开始同步").click()  # the same range again: all synced
    expect(page.locator("#skip-reasons")).to_have_text("跳过原因：非交易日 8 天，已同步过 4 天。", timeout=SLOW)
    expect(page.locator("#force-hint")).to_contain_text("请勾选“强制重新同步”后再开始同步")
    expect(page.locator("#force")).not_to_be_checked()
    page.get_by_role("button", name="勾选“强制重新同步”").click()
    expect(page.locator("#force")).to_be_checked()
    expect(page.locator("#force")).to_be_focused()
    page.get_by_role("button", name="Switch to English").click()
    expect(page.locator("#skip-reasons")).to_have_text("Skipped: not a trading day: 8, already synced: 4.")
    expect(page.get_by_role("button", name="Tick “Force re-sync”")).to_be_visible()


def test_a_pause_elsewhere_is_shown_and_said_and_a_paused_job_refuses_a_second(tab, stack, db):
    running = start_job_over_http(stack, "2025-10-13", "2025-10-14", tab.token)
    page = tab.open()
    expect(page.locator("#job-status")).to_have_text("同步中")
    record_announcements(page)
    requests.post(f"{stack.api_url}{BATCH}/pause/{running}", timeout=10, headers=auth_headers(tab.token))
    expect(page.locator("#job-status")).to_have_text("已暂停", timeout=10_000)
    expect(page.locator("#resume-job-button")).to_be_visible()
    page.wait_for_timeout(300)
    assert [s["text"] for s in announcements(page)] == ["任务已暂停：已开始的日期会完成，其余日期等待恢复"]
    tab.set_range("2025-09-01", "2025-09-02")
    page.get_by_role("button", name="开始同步").click()
    expect(page.locator("#form-error")).to_have_text("已有同步任务处于暂停状态，请先恢复或取消该任务后再试")
    expect(page.locator("#conflict-notice")).to_contain_text("下面是已暂停的任务的进度。")
    page.get_by_role("button", name="Switch to English").click()
    expect(page.locator("#form-error")).to_have_text("A sync job is paused; resume or cancel it, then try again")


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280x800", "390x844"])
def test_axe_core_finds_nothing_serious_with_the_job_controls(new_tab, stack, app_module, db, viewport):
    """Pause shown (running), resume shown (paused), retry shown (an ended job with a failed
    day), its days and history open, the skip reasons with the force hint, in both languages."""
    tab = new_tab(viewport)
    page = tab.page
    size = f"{viewport['width']}x{viewport['height']}"
    failed = ended_with_a_failed_day(stack, app_module, tab.token)
    running = start_job_over_http(stack, "2025-10-13", "2025-10-14", tab.token)
    tab.open()
    expect(page.locator("#pause-button")).to_be_visible()
    assert_no_serious_axe(page, f"pause shown, {size}")
    page.locator("#pause-button").click()
    expect(page.locator("#resume-job-button")).to_be_visible()
    assert_no_serious_axe(page, f"paused, resume shown, {size}")
    tab.shot(f"page-paused-{size}.png")
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#cancel-button").click()
    expect(page.locator("#job-status")).to_have_text("已取消")
    row = page.locator(f'tr.job-row[data-task-id="{failed}"]')
    expect(row.get_by_role("button", name=re.compile("^重试失败日期"))).to_be_visible()
    row.get_by_role("button", name=re.compile("^查看每日")).click()
    expect(page.locator("tr.days-row .events li")).to_have_count(2)
    assert_no_serious_axe(page, f"retry shown, days and history open, {size}")
    assert_fits_the_screen(page)
    # A range whose trading days are all synced already: the skip reasons, the force hint and
    # its button.
    tab.set_range("2025-10-09", "2025-10-12")
    loop = WorkerLoop(stack.sqs_client(), stack.env["SQS_QUEUE_URL"], app_module.sync_day, workers=2)
    loop.start()
    try:
        page.get_by_role("button", name="开始同步").click()
        expect(page.locator("#use-force")).to_be_visible(timeout=SLOW)
    finally:
        loop.stop()
    expect(page.locator("#skip-reasons")).to_have_text("跳过原因：非交易日 2 天，已同步过 2 天。")
    assert_no_serious_axe(page, f"skip reasons and the force hint, {size}")
    tab.shot(f"page-all-synced-{size}.png")
    page.get_by_role("button", name="Switch to English").click()
    expect(page.get_by_role("button", name="Tick “Force re-sync”")).to_be_visible()
    assert_no_serious_axe(page, f"the job controls in English, {size}")
    assert running
    print(f"axe-core {axe_version()}: 0 serious, 0 critical with the job controls at {size}")


# --- pushed progress (live.js) and its fallback to polling ------------------------------------

def no_live_ticket_route(page: Any) -> None:
    """An API without the ticket route (an older deploy, or one without the WebSocket API)."""
    page.route(re.compile(r".*/api/v1/sync-status/live/ticket.*"),
               lambda route: route.fulfill(status=404, content_type="text/plain", body="Not Found"))


def settle_days_slowly(stack: Any, app_module: Any, count: int, pause_s: float = 0.35) -> int:
    """Workers that take their time: the job advances over several of the page's poll intervals."""
    loop = WorkerLoop(stack.sqs_client(), stack.env["SQS_QUEUE_URL"], app_module.sync_day, workers=1, wait_s=1)
    handled = 0
    for _ in range(count * 3):
        if handled == count:
            break
        if loop.poll_once(wait_s=1):
            handled += 1
            time.sleep(pause_s)
    return handled


def pushes_up(page: Any) -> None:
    expect(page.locator("#footer-text")).to_have_text("数据来源 tushare · 进度实时推送")


def test_progress_is_pushed_and_the_page_polls_nothing_while_the_job_advances(tab, stack, app_module, db):
    frames: list[str] = []
    sockets: list[str] = []

    def on_socket(socket: Any) -> None:
        sockets.append(socket.url)
        socket.on("framereceived", lambda payload: frames.append(payload))
    tab.page.on("websocket", on_socket)
    running = start_job_over_http(stack, *RANGE, tab.token)
    page = tab.open()
    expect(page.locator("#task-id")).to_have_text(running)
    pushes_up(page)
    tab.set_range(*RANGE)
    tab_until(page, "el.matches('#calendar button.day')")
    page.keyboard.press("ArrowRight")
    page.evaluate("document.activeElement.__mine = true")
    record_announcements(page)
    polls = len(tab.api_calls("/batch/progress/"))
    assert settle_days_slowly(stack, app_module, 12) == 12  # about 4 s: two poll intervals
    expect(page.locator("#percent")).to_have_text("100%")
    # Pushes redraw the calendar as polls did, and the focus stays on the day it was on.
    expect(tab.day("2025-09-30")).to_have_attribute("data-state", "synced")
    assert page.evaluate("document.activeElement.__mine === true && document.activeElement.dataset.date") == "2025-09-30"
    expect(page.locator("#summary")).to_contain_text("批量同步完成: 成功4, 失败0, 跳过8")
    expect(page.locator("#job-status")).to_have_text("已完成")
    page.wait_for_timeout(300)
    # Every settled day arrived as a push, and not one progress request was made meanwhile.
    assert len(tab.api_calls("/batch/progress/")) - polls == 0
    progress = [json.loads(f) for f in frames if '"type":"progress"' in f]
    assert [p["data"]["current"] for p in progress][-12:] == list(range(1, 13))
    assert progress[-1]["data"] == requests.get(f"{stack.api_url}{BATCH}/progress/{running}", timeout=10,
                                                headers=auth_headers(tab.token)).json()["data"]
    # The ticket travelled in the URL; the token never did.
    assert len(sockets) == 1 and "ticket=lt_" in sockets[0] and tab.token not in sockets[0]
    said = [s["text"] for s in announcements(page)]
    assert len(said) == 1 and said[0].startswith("批量同步完成: 成功4, 失败0, 跳过8"), said
    assert_no_serious_axe(page, "after a pushed sync")
    tab.shot("page-pushed.png")


def test_without_the_ticket_route_the_page_polls_every_2_seconds(tab, stack, app_module, db):
    no_live_ticket_route(tab.page)
    sockets: list[str] = []
    tab.page.on("websocket", lambda socket: sockets.append(socket.url))
    running = start_job_over_http(stack, *RANGE, tab.token)
    page = tab.open()
    expect(page.locator("#task-id")).to_have_text(running)
    assert settle_days_slowly(stack, app_module, 12) == 12
    expect(page.locator("#percent")).to_have_text("100%", timeout=SLOW)
    expect(page.locator("#footer-text")).to_have_text("数据来源 tushare · 进度每 2 秒刷新")
    sent = tab.sent_at("/batch/progress/")
    assert len(sent) >= 3, sent
    gaps = [later - earlier for earlier, later in zip(sent, sent[1:])]
    assert all(1.9 <= gap < 3.5 for gap in gaps[1:]), gaps  # the seed's 2 s, by the browser's clock
    assert sockets == [] and tab.api_calls("/live/ticket")
    assert_no_serious_axe(page, "polling without pushes")


def test_when_the_websocket_closes_the_page_polls_until_pushes_come_back(tab, stack, app_module, db):
    running = start_job_over_http(stack, *RANGE, tab.token)
    page = tab.open()
    expect(page.locator("#task-id")).to_have_text(running)
    pushes_up(page)
    assert settle_days_slowly(stack, app_module, 3) == 3
    expect(page.locator("#stat-done")).to_have_text("3 / 12")
    polls = len(tab.api_calls("/batch/progress/"))
    assert stack.live.drop_all() == 1  # API Gateway closes it (idle, 2 hours, a deploy)
    expect(page.locator("#footer-text")).to_have_text("数据来源 tushare · 进度每 2 秒刷新")
    for _ in range(50):  # polling takes over at once (the test hears of requests as it waits)
        if len(tab.api_calls("/batch/progress/")) > polls:
            break
        page.wait_for_timeout(100)
    assert len(tab.api_calls("/batch/progress/")) > polls
    assert settle_days_slowly(stack, app_module, 3) == 3
    expect(page.locator("#stat-done")).to_have_text("6 / 12")  # polled
    pushes_up(page)  # a new ticket, a new connection, a few seconds later
    polls = len(tab.api_calls("/batch/progress/"))
    assert settle_days_slowly(stack, app_module, 6) == 6
    expect(page.locator("#percent")).to_have_text("100%")
    page.wait_for_timeout(300)
    assert len(tab.api_calls("/batch/progress/")) == polls
    assert len(tab.api_calls("/live/ticket")) == 2
    assert_no_serious_axe(page, "pushes back after a fallback")


# --- datasets, short days and filling gaps (issue 12) ----------------------------------------

@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280x800", "390x844"])
def test_the_keyboard_alone_picks_datasets_sees_a_short_day_and_fills_the_gaps(
        new_tab, stack, app_module, db, viewport):
    """Datasets chosen with the keyboard, a short day marked on the calendar with each dataset
    in its details, the fill started from the keyboard and said once; axe-core at each step."""
    tab = new_tab(viewport)
    page = tab.open()
    size = f"{viewport['width']}x{viewport['height']}"
    from chalicelib.source import make_client
    served = make_client(stack.env["TUSHARE_TOKEN"], stack.env["TUSHARE_API_URL"], 10).query(
        "daily", trade_date="20251010")
    codes = sorted(served["ts_code"])[:2]  # two stocks that traded that day
    stack.tushare.add_fault("drop", api="daily", trade_date="20251010", times=None, codes=codes)
    tab.set_range("2025-10-09", "2025-10-10")
    expect(page.locator("#ds-daily")).to_be_checked()  # the seed's dataset by default
    tab_until(page, "el.id === 'ds-adj_factor'")
    page.keyboard.press("Space")
    expect(page.locator("#ds-adj_factor")).to_be_checked()
    tab_until(page, "el.id === 'start-button'")
    loop = WorkerLoop(stack.sqs_client(), stack.env["SQS_QUEUE_URL"], app_module.sync_day, workers=2)
    loop.start()
    try:
        page.keyboard.press("Enter")
        expect(page.locator("#job-status")).to_have_text("已完成（有失败）", timeout=SLOW)
        body = next(json.loads(r.post_data) for r in tab.sent
                    if r.method == "POST" and re.search(r"/sync/batch(\?|$)", r.url))
        assert body["datasets"] == ["daily", "adj_factor"]
        # 10-10's daily came back two rows short every time: failed, and marked short.
        short = tab.day("2025-10-10")
        expect(short).to_have_class(re.compile(r"\bshort\b"))
        expect(short).to_have_attribute("aria-label", re.compile("行数不足：daily"))
        short.focus()
        page.keyboard.press("Enter")
        details = page.locator("#day-detail .detail-datasets li")
        expect(details).to_have_count(3)  # and the suspensions the count was checked with
        expect(details.filter(has_text="daily")).to_contain_text(re.compile(r"行数不足 · [\d,]+ / [\d,]+ 行"))
        expect(details.filter(has_text="adj_factor")).to_contain_text("已同步")
        expect(details.filter(has_text="suspend_d")).to_contain_text("已同步")
        expect(page.locator("#calendar-summary")).to_contain_text("行数不足 1 天")
        assert_no_serious_axe(page, f"a short day and its datasets, {size}")
        tab.shot(f"page-short-day-{size}.png")

        stack.tushare.clear_faults()
        record_announcements(page)
        tab_until(page, "el.id === 'fill-gaps'")
        page.keyboard.press("Enter")
        expect(page.locator("#fill-result")).to_have_text(
            "补全任务已启动：2025-10-09 至 2025-10-10 的 1 天中共 1 处缺口")
        expect(page.locator("#job-status")).to_have_text("已完成", timeout=SLOW)
    finally:
        loop.stop()
    expect(tab.day("2025-10-10")).not_to_have_class(re.compile(r"\bshort\b"))
    expect(tab.day("2025-10-10")).to_have_attribute("data-state", "synced")
    assert focused(page)["id"] == "fill-gaps"  # the focus stayed where the keyboard left it
    said = [s["text"] for s in announcements(page)]
    assert said.count("补全任务已启动：2025-10-09 至 2025-10-10 的 1 天中共 1 处缺口") == 1, said
    assert_no_serious_axe(page, f"after the fill, {size}")
    page.keyboard.press("Enter")  # nothing left to fill: said so
    expect(page.locator("#fill-result")).to_have_text("2025-10-09 至 2025-10-10 未发现缺口，无需补全")
    assert_fits_the_screen(page)
    page.get_by_role("button", name="Switch to English").click()
    expect(page.get_by_role("button", name="Fill gaps")).to_be_visible()
    expect(page.get_by_role("group", name="Datasets")).to_be_visible()
    assert_no_serious_axe(page, f"datasets and fill in English, {size}")


def test_no_dataset_chosen_is_refused_in_the_forms_words(tab, db):
    page = tab.open()
    tab.set_range("2025-10-09", "2025-10-10")
    page.locator("#ds-daily").uncheck()
    page.get_by_role("button", name="开始同步").click()
    expect(page.locator("#form-error")).to_have_text("请至少选择一个数据集")
    expect(page.locator("#ds-daily")).to_be_focused()
    assert scalar(db, "SELECT count(*) FROM sync_jobs") == 0
