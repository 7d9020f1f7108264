"""`stocksync audit` and `stocksync fill`: what is stored against what should be, and one
job that syncs exactly the gaps (README, "Audit and fill")."""
from __future__ import annotations

import argparse
from typing import Any

from stocksync_cli.commands import Context, Exit, command, watch
from stocksync_cli.render import table

WORDS: dict[str, dict[str, str]] = {
    "zh": {"ok": "完整", "missing": "缺失", "short": "行数不足", "mismatch": "与数据源不符",
           "not_published": "尚未发布", "col_dataset": "数据集", "col_state": "状态",
           "col_stored": "已存", "col_expected": "应有", "col_source": "数据源",
           "audit_clean": "{start} 至 {end}：{days} 个交易日 × {n} 个数据集全部完整。",
           "audit_gaps": "{start} 至 {end}：发现 {faulty} 处缺口（{counts}）。用 stocksync fill {start} {end}{opts} 补全。",
           "rechecked": "已与数据源核对 {n} 项（上限 {limit}）{stopped}。",
           "stopped": "，因 {why} 停止核对", "filled": "{message}（任务 {task}，{pairs} 项）"},
    "en": {"ok": "complete", "missing": "missing", "short": "short", "mismatch": "differs from source",
           "not_published": "not published yet", "col_dataset": "dataset", "col_state": "state",
           "col_stored": "stored", "col_expected": "expected", "col_source": "source",
           "audit_clean": "{start} to {end}: all {days} trading days x {n} datasets complete.",
           "audit_gaps": "{start} to {end}: {faulty} gaps ({counts}). `stocksync fill {start} {end}{opts}` fills them.",
           "rechecked": "Rechecked {n} against the source (at most {limit}){stopped}.",
           "stopped": "; stopped: {why}", "filled": "Started {task} filling {pairs} gaps over {days} days"},
}


def _configure(parser: argparse.ArgumentParser, watchable: bool) -> None:
    parser.add_argument("start", help="YYYY-MM-DD")
    parser.add_argument("end", help="YYYY-MM-DD (at most 400 days after start)")
    parser.add_argument("--datasets", metavar="A,B", default=None,
                        help="comma-separated: daily, adj_factor, daily_basic, suspend_d (default daily)")
    parser.add_argument("--recheck", action="store_true",
                        help="also ask tushare each day's count (spends quota; bounded by the API)")
    if watchable:
        parser.add_argument("--watch", action="store_true",
                            help="then watch the fill job until it ends (exit status as `watch`)")


def _words(ctx: Context) -> Any:
    words = WORDS[ctx.words.lang]
    return lambda key, **kw: words[key].format(**kw) if kw else words[key]


def _request(args: argparse.Namespace) -> dict[str, Any]:
    request: dict[str, Any] = {"start": args.start, "end": args.end}
    if args.datasets:
        request["datasets"] = [d.strip() for d in args.datasets.split(",") if d.strip()]
    if args.recheck:
        request["recheck"] = True
    return request


def _options(args: argparse.Namespace) -> str:
    opts = f" --datasets {args.datasets}" if args.datasets else ""
    return opts + (" --recheck" if args.recheck else "")


def audit_lines(report: dict[str, Any], args: argparse.Namespace, ctx: Context) -> list[str]:
    w = _words(ctx)
    faulty = report["faulty"]
    lines: list[str] = []
    if faulty:
        rows = [[ctx.words("col_day"), w("col_dataset"), w("col_state"), w("col_stored"),
                 w("col_expected"), w("col_source")]]
        for item in faulty:
            rows.append([item["date"], item["dataset"], w(item["state"]), f"{item['stored']:,}",
                         "—" if item["expected"] is None else f"{item['expected']:,}",
                         "—" if item["source_rows"] is None else f"{item['source_rows']:,}"])
        lines.append(table(rows))
        counts = ctx.words("sep").join(f"{w(state)} {n}" for state, n in report["counts"].items()
                                       if n and state != "ok")
        lines.append(w("audit_gaps", start=report["start"], end=report["end"], faulty=len(faulty),
                       counts=counts, opts=_options(args)))
    else:
        lines.append(w("audit_clean", start=report["start"], end=report["end"],
                       days=len(report["days"]), n=len(report["datasets"])))
    if report["recheck"]:
        stopped = w("stopped", why=report["recheck_stopped"]) if report["recheck_stopped"] else ""
        lines.append(w("rechecked", n=report["rechecked"], limit=report["recheck_limit"], stopped=stopped))
    return lines


@command("audit", "compare what is stored with what should be, per trading day and dataset "
                  "(exit 1 when gaps are found)", lambda p: _configure(p, False))
def audit(ctx: Context, args: argparse.Namespace) -> int:
    request = _request(args)
    params = {k: (",".join(v) if isinstance(v, list) else str(v).lower() if isinstance(v, bool) else v)
              for k, v in request.items()}
    report = ctx.api.audit(params)
    ctx.say(*audit_lines(report, args, ctx))
    ctx.emit(report)
    return Exit.FAILED_DAYS if report["faulty"] else Exit.OK


@command("fill", "audit a range, then start one job that syncs exactly its gaps",
         lambda p: _configure(p, True))
def fill(ctx: Context, args: argparse.Namespace) -> int:
    started = ctx.api.fill(_request(args))
    w = _words(ctx)
    ctx.say(w("filled", message=started.get("message", ""), task=started["task_id"],
              pairs=started.get("pairs"), days=started.get("total_days")))
    if args.watch:
        return watch(ctx, started["task_id"])
    ctx.emit(started)
    return Exit.OK

