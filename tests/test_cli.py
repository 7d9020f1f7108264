"""The `stocksync` command end to end: the installed entry point (.venv/bin/stocksync) as a
process, against the local stack's `chalice local` and workers; its exit statuses, its
--json documents, its bar on a terminal and its plain lines elsewhere."""
from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

import pytest

from devstack.services import free_port
from devstack.stack import ROOT
from devstack.worker_loop import WorkerLoop
from tests.conftest import READER_TOKEN, scalar

STOCKSYNC = Path(sys.executable).parent / "stocksync"
HOLIDAY = ["2025-09-29", "2025-10-10"]  # 4 trading days of 12


class Ran:
    def __init__(self, done: subprocess.CompletedProcess):
        self.code = done.returncode
        self.out = done.stdout
        self.err = done.stderr

    def json(self) -> Any:
        return json.loads(self.out)

    def __repr__(self) -> str:
        return f"exit {self.code}\nstdout: {self.out}\nstderr: {self.err}"


@pytest.fixture
def cli(stack: Any, db: Any, tmp_path: Path):
    """Run `stocksync ARGS` against the stack as its operator, from a directory of its own."""
    def run(*args: str, token: str | None = stack.api_token, cwd: Path = tmp_path,
            env: dict[str, str] | None = None) -> Ran:
        environment = {k: v for k, v in os.environ.items()
                       if k not in ("STOCKSYNC_API_TOKEN", "STOCKSYNC_DATA_DIR", "STOCKSYNC_LANG")}
        environment["STOCKSYNC_API_URL"] = stack.api_url
        if token:
            environment["STOCKSYNC_API_TOKEN"] = token
        environment.update(env or {})
        return Ran(subprocess.run([str(STOCKSYNC), *args], cwd=cwd, env=environment, text=True,
                                  capture_output=True, timeout=120))
    return run


@pytest.fixture
def workers(stack: Any, app_module: Any) -> Iterator[WorkerLoop]:
    loop = WorkerLoop(stack.sqs_client(), stack.env["SQS_QUEUE_URL"], app_module.sync_day, workers=2)
    loop.start()
    yield loop
    loop.stop()


def test_the_command_is_its_own_installed_package_outside_what_deploys():
    assert STOCKSYNC.is_file() and os.access(STOCKSYNC, os.X_OK)
    (script,) = [e for e in metadata.entry_points(group="console_scripts") if e.name == "stocksync"]
    assert script.value == "stocksync_cli.main:run"
    import stocksync_cli
    assert Path(stocksync_cli.__file__).resolve().parent == ROOT / "cli" / "stocksync_cli"
    # Nothing the Lambdas load knows of it.
    shipped = [ROOT / "app.py", *(ROOT / "chalicelib").rglob("*.py")]
    assert not [p for p in shipped if "stocksync_cli" in p.read_text(encoding="utf-8")]
    version = subprocess.run([str(STOCKSYNC), "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("stocksync ")
    helped = subprocess.run([str(STOCKSYNC), "--help"], capture_output=True, text=True, timeout=60)
    for name in ("start", "watch", "pause", "resume", "retry", "cancel", "jobs", "days"):
        assert name in helped.stdout
    assert "exit status: 0 done" in helped.stdout


def test_start_and_watch_to_the_end_then_again_every_day_already_synced(cli, workers, db):
    done = cli("start", *HOLIDAY, "--watch", "--interval", "0.2")
    assert done.code == 0, done
    lines = done.out.splitlines()
    assert "\r" not in done.out  # not a terminal: one line per change, no bar redrawn in place
    assert lines[0].startswith("批量同步任务已启动，将同步 12 天的数据（任务 2025-09-29_2025-10-10_")
    assert any("100.0% 12/12" in line for line in lines)
    assert "已完成：成功 4，失败 0，跳过 8" in done.out
    assert "跳过原因：非交易日 8" in done.out

    again = cli("--json", "start", *HOLIDAY, "--watch", "--interval", "0.2")
    assert again.code == 0, again
    final = again.json()  # one document: the final progress
    assert (final["status"], final["success"], final["skipped"]) == ("completed", 0, 12)
    assert final["skipped_by_reason"] == {"non_trading_day": 8, "already_synced": 4, "cancelled": 0}
    english = cli("--lang", "en", "watch", final["task_id"])
    assert english.code == 0
    assert "Skipped: not a trading day 8, already synced 4" in english.out
    assert "start with --force" in english.out  # every trading day was synced already
    forced = cli("start", *HOLIDAY, "--force", "--json")
    assert forced.code == 0 and forced.json()["total_days"] == 12
    assert scalar(db, "SELECT force FROM sync_jobs WHERE task_id = %(t)s", {"t": forced.json()["task_id"]})


def test_a_job_with_failed_days_exits_1_and_retry_watch_exits_0(cli, workers, stack, db):
    stack.tushare.add_fault("http_500", api="daily", trade_date="20251009", times=None)
    failed = cli("start", *HOLIDAY, "--watch", "--interval", "0.2")
    assert failed.code == 1, failed
    assert "1 天同步失败；用 stocksync retry" in failed.out
    task_id = failed.out.split("任务 ")[1].split("）")[0]
    shown = cli("days", task_id)
    assert shown.code == 0 and "after 3 attempts" in shown.out and "任务记录：" in shown.out
    stack.tushare.clear_faults()
    retried = cli("retry", "--watch", "--interval", "0.2")  # the newest ended job with failed days
    assert retried.code == 0, retried
    assert f"（任务 {task_id}，第 1 次重试）" in retried.out
    days = cli("--json", "days", task_id).json()
    assert days["task_id"] == task_id
    assert [e["kind"] for e in days["events"]] == ["created", "completed", "retried", "completed"]
    (day,) = [d for d in days["days"] if d["day"] == "2025-10-09"]
    assert day["status"] == "success" and len(day["past_errors"]) == 1
    again = cli("--json", "retry", task_id)
    assert again.code == 3 and again.json()["code"] == "no_failed_days"


def test_pause_resume_cancel_and_what_their_exit_statuses_say(cli, stack, db):
    started = cli("--json", "start", *HOLIDAY)  # no workers: it waits
    assert started.code == 0
    task_id = started.json()["task_id"]
    conflict = cli("start", "2025-09-01", "2025-09-02")
    assert conflict.code == 3
    assert conflict.err.strip() == "stocksync: HTTP 409 job_running: 已有同步任务正在运行，请等待当前任务完成后再试"
    paused = cli("pause")  # the running job
    assert paused.code == 0 and "已暂停" in paused.out
    refused = cli("--json", "--lang", "en", "start", "2025-09-01", "2025-09-02")
    assert refused.code == 3
    assert refused.json() == {"status": "error", "code": "job_paused", "http_status": 409,
                              "message": "HTTP 409 job_paused: A sync job is paused; resume or cancel it, then try again",
                              "data": {"task_id": task_id, "status": "paused"}}
    listed = cli("--json", "jobs").json()
    assert [(j["task_id"], j["status"]) for j in listed] == [(task_id, "paused")]
    assert "paused" in cli("--lang", "en", "jobs").out
    timed_out = cli("watch", "--timeout", "0.3", "--interval", "0.1")
    assert timed_out.code == 5 and "仍在后台运行" in timed_out.err
    resumed = cli("--json", "resume", task_id)
    assert resumed.code == 0 and resumed.json()["status"] == "running"
    assert cli("pause", task_id, "--json", token=READER_TOKEN).code == 3  # a reader may not
    cancelled = cli("cancel")
    assert cancelled.code == 0 and "已取消：成功 0，失败 0，跳过 12" in cancelled.out
    assert cli("watch", task_id).code == 6
    nothing = cli("pause")
    assert nothing.code == 2 and "no running job" in nothing.err
    assert cli("resume", "2025-10-01_2025-10-09_1").code == 3  # no such task: 404


def test_usage_unreachable_and_unsigned_in_exit_2_4_and_3(cli, stack, tmp_path):
    assert cli("start", "2025-10-01").code == 2  # a date missing
    assert cli("frobnicate").code == 2
    down = cli("--api", f"http://127.0.0.1:{free_port()}", "jobs")
    assert down.code == 4 and "cannot reach the API" in down.err
    assert cli("--json", "--api", f"http://127.0.0.1:{free_port()}", "jobs").json()["status"] == "error"
    unsigned = cli("jobs", token=None)
    assert unsigned.code == 3 and "HTTP 401 unauthorized" in unsigned.err and "no API token" in unsigned.err


def test_the_token_is_found_in_the_local_stacks_file_above_the_working_directory(cli, stack, tmp_path):
    (tmp_path / ".stocksync").mkdir()
    (tmp_path / ".stocksync" / "api-token").write_text(stack.api_token + "\n")
    deeper = tmp_path / "a" / "b"
    deeper.mkdir(parents=True)
    assert cli("jobs", token=None, cwd=deeper).code == 0
    elsewhere = tmp_path / "file"
    elsewhere.write_text(READER_TOKEN)
    assert cli("jobs", token=None, cwd=deeper, env={"STOCKSYNC_DATA_DIR": str(tmp_path / "none")}).code == 0
    # --token-file names it exactly; the environment wins over both.
    assert cli("pause", "2025-10-01_2025-10-09_1", "--token-file", str(elsewhere), token=None).err.count("HTTP 403") == 1
    assert cli("pause", "2025-10-01_2025-10-09_1", "--token-file", str(elsewhere)).err.count("HTTP 404") == 1


def test_on_a_terminal_the_bar_is_redrawn_in_place(stack, db, app_module, workers):
    primary, replica = pty.openpty()
    env = {**os.environ, "STOCKSYNC_API_URL": stack.api_url, "STOCKSYNC_API_TOKEN": stack.api_token}
    process = subprocess.Popen([str(STOCKSYNC), "start", *HOLIDAY, "--watch", "--interval", "0.2"],
                               stdout=replica, stderr=replica, env=env)
    os.close(replica)
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        chunks.append(chunk)
    assert process.wait(timeout=120) == 0
    os.close(primary)
    shown = b"".join(chunks).decode("utf-8")
    assert "\r\x1b[K[" in shown and "100.0% 12/12" in shown
    assert shown.count("\n") <= 6  # the bar on one line, then the summary


def test_start_with_datasets_then_audit_finds_a_planted_gap_and_fill_watch_repairs_it(cli, workers, db):
    started = cli("start", "2025-10-09", "2025-10-10", "--datasets", "daily,adj_factor", "--watch", "--lang", "en")
    assert started.code == 0, started
    assert "dataset daily: 2 ok, 0 failed, 0 skipped" in started.out
    assert "dataset adj_factor: 2 ok" in started.out
    clean = cli("audit", "2025-10-09", "2025-10-10", "--datasets", "daily,adj_factor", "--lang", "en")
    assert clean.code == 0 and "complete" in clean.out, clean
    with db.transaction() as cur:
        cur.execute("DELETE FROM adj_factor WHERE trade_date = '2025-10-10'")
    gaps = cli("audit", "2025-10-09", "2025-10-10", "--datasets", "daily,adj_factor", "--json")
    assert gaps.code == 1, gaps  # gaps found
    assert [(f["date"], f["dataset"], f["state"]) for f in gaps.json()["faulty"]] == [
        ("2025-10-10", "adj_factor", "missing")]
    said = cli("audit", "2025-10-09", "2025-10-10", "--datasets", "daily,adj_factor")
    assert "缺失" in said.out and "stocksync fill 2025-10-09 2025-10-10 --datasets daily,adj_factor" in said.out
    filled = cli("fill", "2025-10-09", "2025-10-10", "--datasets", "daily,adj_factor", "--watch")
    assert filled.code == 0, filled
    assert scalar(db, "SELECT count(*) FROM adj_factor WHERE trade_date = '2025-10-10'") > 4000
    nothing = cli("fill", "2025-10-09", "2025-10-10", "--datasets", "daily,adj_factor", "--lang", "en")
    assert nothing.code == 3 and "nothing to fill" in nothing.err, nothing
    unknown = cli("start", "2025-10-09", "2025-10-10", "--datasets", "daily,nope", "--lang", "en")
    assert unknown.code == 3 and "Unknown dataset: nope" in unknown.err, unknown
