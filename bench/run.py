"""`make bench`: every benchmark group on one local stack, a table, bench/results.json.

    python -m bench.run                      # all groups, default repeats
    python -m bench.run --scale 13e6         # also with 13 M rows of history (make bench SCALE=13e6)
    python -m bench.run --only write,fetch   # a subset (merged into results.json)
    python -m bench.run --repeats 3          # the same repeat count for every group
    python -m bench.run --quick              # tiny sizes: a smoke run in ~30 s
    python -m bench.run --table              # print the table of results.json, run nothing
    python -m bench.run --only quota --speedup 1   # the quota group in real time (~6 min)

Numbers are medians over repeated runs; contenders compared with each other run
in this one process, on one stack. The table also goes into bench/README.md
(between its results markers), so the README never disagrees with the JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Callable

from bench import common

GROUPS = ("write", "fetch", "e2e", "progress", "memory", "scale", "reads", "quota")
# Groups with a repeat count (`--repeats`); `reads` polls for a time instead, `quota` runs
# one job through several quota windows (its figures are over ~60 calls an interface).
REPEATABLE = ("write", "fetch", "e2e", "progress", "memory", "scale")
# The size the goals for reads at size are stated at.
GOAL_ROWS = 13e6
RESULTS = Path(__file__).resolve().parent / "results.json"
README = Path(__file__).resolve().parent / "README.md"
MARK_BEGIN, MARK_END = "<!-- results:begin -->", "<!-- results:end -->"

# The goals: (group, what, how it is judged).
GOALS: dict[str, tuple[str, Callable[[dict[str, Any]], tuple[Any, bool]]]] = {}


def _goal(name: str, text: str):
    def register(check: Callable[[dict[str, Any]], tuple[Any, bool]]):
        GOALS[name] = (text, check)
        return check
    return register


@_goal("write_vs_limit", "write: project path <= 2.5x raw COPY")
def _write_limit(r: dict[str, Any]) -> tuple[Any, bool]:
    w = r["write"]
    return f"{w['x_limit']}x", w["copy_upsert_ms"] <= 2.5 * w["raw_copy_ms"]


@_goal("write_vs_peers", "write: >= 3x faster than execute_values and to_sql")
def _write_peers(r: dict[str, Any]) -> tuple[Any, bool]:
    w = r["write"]
    worst = min(w["x_faster_than_execute_values"], w["x_faster_than_to_sql"])
    return f"{worst}x", worst >= 3


@_goal("e2e_under_10s", "e2e: 90 days in < 10 s")
def _e2e(r: dict[str, Any]) -> tuple[Any, bool]:
    runs = [run for run in r["e2e"] if run["days"] == 90]
    if not runs:
        raise ValueError("no 90-day run")
    worst = max(run["wall_s"] for run in runs)
    return f"{worst} s", worst < 10


@_goal("progress_p99", "progress: p99 < 50 ms under 50 pollers")
def _progress(r: dict[str, Any]) -> tuple[Any, bool]:
    p = r["progress"]
    if p["pollers"] != 50:
        raise ValueError("not 50 pollers")
    return f"{p['p99_ms']} ms", p["p99_ms"] < 50


@_goal("memory_peak", "memory: worker peak RSS < 200 MB")
def _memory(r: dict[str, Any]) -> tuple[Any, bool]:
    m = r["memory"]
    return f"{m['peak_rss_mb']} MB", m["peak_rss_mb"] < 200


def _worst(r: dict[str, Any], keys: tuple[str, ...]) -> tuple[Any, bool]:
    sizes = r["scale"]["sizes"]
    if len(sizes) < 2:
        raise ValueError("measured on an empty table only")
    worst = max((size[f"x_{key}"], key, size["rows"]) for size in sizes for key in keys)
    where = ", ".join(f"{size['rows']:,} rows" for size in sizes)
    return f"{worst[0]}x (worst of {where})", worst[0] <= 2.5


@_goal("scale_write", "scale: new day and re-sync <= 2.5x keyless COPY, empty and at size")
def _scale_write(r: dict[str, Any]) -> tuple[Any, bool]:
    return _worst(r, ("new", "resync"))


@_goal("scale_checkpoint", "scale: first write after a checkpoint <= 2.5x keyless COPY (after one)")
def _scale_checkpoint(r: dict[str, Any]) -> tuple[Any, bool]:
    return _worst(r, ("new_after_checkpoint",))


def _at_goal_size(r: dict[str, Any]) -> dict[str, Any]:
    largest = r["scale"]["sizes"][-1]
    if largest["rows"] < 0.95 * GOAL_ROWS:
        raise ValueError("no size as large as the goal's")
    return largest


@_goal("scale_series", "scale: one stock's whole series < 15 ms at 13 M rows (fetched, first read)")
def _scale_series(r: dict[str, Any]) -> tuple[Any, bool]:
    size = _at_goal_size(r)
    return (f"{size['series_ms']} ms ({size['series_rows']:,} days; read again {size['series_warm_ms']} ms; "
            f"in the database {size.get('series_db_ms')} ms)", size["series_ms"] < 15)


@_goal("scale_cross_section", "scale: one day's cross-section < 10 ms at 13 M rows (fetched)")
def _scale_cross_section(r: dict[str, Any]) -> tuple[Any, bool]:
    size = _at_goal_size(r)
    return (f"{size['cross_section_ms']} ms (in the database {size.get('cross_section_db_ms')} ms)",
            size["cross_section_ms"] < 10)


@_goal("reads_p99", "reads: every route p99 < 20 ms under 50 pollers, 10,000 jobs behind them")
def _reads(r: dict[str, Any]) -> tuple[Any, bool]:
    p = r["reads"]
    if p["pollers"] != 50 or p["jobs"] < 10_000:
        raise ValueError("not the goal's load")
    worst = max((route["p99_ms"], name) for name, route in p["routes"].items())
    return (f"{worst[0]} ms ({worst[1]}; {p['bars']:,} bars)",
            worst[0] < 20 and p["errors"] == 0)


@_goal("quota", "quota: 5 workers, 90 days x 3 datasets: 0 refusals, >= 90% of the allowed rate")
def _quota(r: dict[str, Any]) -> tuple[Any, bool]:
    q = r["quota"]
    if (q["workers"], q["days"], len(q["datasets"])) != (5, 90, 3):
        raise ValueError("not the goal's job")
    return (f"{q['refused']} refusals, {q['utilisation']:.1%} of {q['limit_per_min']}/min "
            f"({q['binding_api']}; clock x{q['speedup']:g})",
            q["refused"] == 0 and q["utilisation"] >= 0.9)


def options(quick: bool = False, repeats: int | None = None,
            scale: float = 0, speedup: float | None = None) -> dict[str, dict[str, Any]]:
    """Each group's keyword arguments: the defaults, `quick` (tiny sizes), or a repeat
    count; `scale` rows of history for the groups at size; `speedup`, how much faster
    than the real one the sample server's clock runs for the quota group."""
    if quick:
        short_end = date(2025, 10, 13)  # 7 days: 10-09, 10-10 and 10-13 trade
        opts: dict[str, dict[str, Any]] = {
            "write": {"repeats": 1, "prefill_days": 1},
            "fetch": {"repeats": 1, "sample": 5},
            "e2e": {"workers": (1,), "repeats": 1, "days": 7, "end": short_end},
            "progress": {"pollers": 3, "interval_s": 0.05, "repeats": 1, "days": 7,
                         "end": short_end, "saturate": False},
            "memory": {"repeats": 1},
            "scale": {"scale": scale or 5 * 5300, "repeats": 1, "reads": 2},
            "reads": {"scale": scale, "jobs": 40, "pollers": 4, "interval_s": 0.05, "seconds": 1.0},
            # 9 trading days at 4 calls a minute (not fewer: the listings take 4 calls in one
            # delivery): three windows of the server's minute, 3 s each.
            "quota": {"days": 21, "end": short_end, "limit": 4, "speedup": 20.0, "timeout_s": 120},
        }
    else:
        opts = {"write": {}, "fetch": {}, "e2e": {}, "progress": {}, "memory": {},
                "scale": {"scale": scale}, "reads": {"scale": scale}, "quota": {}}
    if repeats is not None:
        for group in REPEATABLE:
            opts[group]["repeats"] = repeats
    if speedup is not None:
        opts["quota"]["speedup"] = speedup
    return opts


def collect(stack: Any, groups: tuple[str, ...] = GROUPS,
            group_options: dict[str, dict[str, Any]] | None = None,
            log: Callable[[str], None] = lambda line: None) -> dict[str, Any]:
    """Run the groups on a started stack; returns {group: result}."""
    import importlib
    group_options = group_options or options()
    results: dict[str, Any] = {}
    for group in groups:
        module = importlib.import_module(f"bench.{group}")
        log(f"running {group} ...")
        began = time.monotonic()
        results[group] = module.run(stack, **group_options.get(group, {}))
        log(f"  {group} done in {time.monotonic() - began:.1f} s")
    return results


def evaluate(results: dict[str, Any]) -> dict[str, Any]:
    """The goals whose group is in `results`: {name: {goal, value, met}}."""
    judged = {}
    for name, (text, check) in GOALS.items():
        try:
            value, met = check(results)
        except (KeyError, TypeError, ValueError):
            continue
        judged[name] = {"goal": text, "value": value, "met": bool(met)}
    return judged


def _f(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        value = f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
    return f"{value}{unit}"


def table(results: dict[str, Any]) -> str:
    """The results as a Markdown table (it reads as plain text too)."""
    rows: list[tuple[str, str, str]] = []
    w = results.get("write")
    if w:
        n = f"{w['rows']:,} rows"
        rows += [
            ("write", f"stocksync: binary COPY (+ MERGE when the day exists), {n}",
             _f(w["copy_upsert_ms"], " ms")),
            ("write", "limit: plain COPY, ready input, UNLOGGED, no keys (binary; CSV)",
             f"{_f(w['raw_copy_binary_ms'], ' ms')}; {_f(w['raw_copy_csv_ms'], ' ms')}"),
            ("write", "floor of this table: plain binary COPY into daily_bars (its key)",
             _f(w["keyed_copy_ms"], " ms")),
            ("write", f"peer: psycopg2 execute_values upsert, page {w['execute_values_page_size']}",
             _f(w["execute_values_ms"], " ms")),
            ("write", "peer: pandas to_sql (append, no upsert)", _f(w["to_sql_ms"], " ms")),
            ("write", "before: pandas CSV + staging table + upsert", _f(w["csv_stage_upsert_ms"], " ms")),
            ("write", "stocksync re-sync of a stored day (MERGE branch)",
             _f(w["copy_upsert_resync_ms"], " ms")),
            ("write", "DataFrame -> binary COPY input (inside stocksync's figure)",
             _f(w["frame_to_copy_ms"], " ms")),
            ("write", "stocksync / limit (binary; CSV; floor)",
             f"{w['x_limit']}x; {round(w['copy_upsert_ms'] / w['raw_copy_csv_ms'], 2)}x; "
             f"{w['x_keyed_copy']}x"),
            ("write", "stocksync faster than execute_values; to_sql",
             f"{w['x_faster_than_execute_values']}x; {w['x_faster_than_to_sql']}x"),
        ]
    f = results.get("fetch")
    if f:
        rows += [
            ("fetch", f"per date: daily(trade_date=), {f['rows_per_day']:,} rows",
             f"{f['per_date_calls']} call, {_f(f['per_date_wall_ms'], ' ms')} / day"),
            ("fetch", f"per stock (seed): stock_basic + daily(ts_code=) per symbol; "
                      f"extrapolated from {f['per_stock_sampled']} symbols",
             f"{f['per_stock_calls']:,} calls, {_f(f['per_stock_wall_s'], ' s')} / day"),
            ("fetch", "per stock: one call; at tushare's 500 calls/min",
             f"{_f(f['per_stock_call_ms'], ' ms')}; >= {f['per_stock_quota_min']} min / day"),
            ("fetch", "per date faster than per stock (local server)", f"{f['x_faster']}x"),
        ]
    for run in results.get("e2e") or []:
        rows.append(("e2e", f"{run['days']} days ({run['trading_days']} trading, {run['rows']:,} rows), "
                            f"{run['workers']} worker{'s' if run['workers'] > 1 else ''}",
                     f"{_f(run['wall_s'], ' s')} ({_f(run['ms_per_trading_day'], ' ms')} / trading day)"))
    p = results.get("progress")
    if p:
        rows.append(("progress", f"{p['pollers']} pollers every {p['interval_s']} s, "
                                 f"{p['requests']:,} requests ({p['requests_per_s']}/s), "
                                 f"{p['errors']} errors: p50 \\| p99",
                     f"{_f(p['p50_ms'], ' ms')} \\| {_f(p['p99_ms'], ' ms')}"))
        s = p.get("saturated")
        if s:
            rows.append(("progress", f"{p['pollers']} pollers, no pause (saturation), "
                                     f"{s['requests_per_s']}/s: p50 \\| p99",
                         f"{_f(s['p50_ms'], ' ms')} \\| {_f(s['p99_ms'], ' ms')}"))
    m = results.get("memory")
    if m:
        rows.append(("memory", f"worker syncing one day ({m['rows']:,} rows): peak RSS "
                               f"(after imports: {_f(m['after_import_mb'], ' MB')})",
                     _f(m["peak_rss_mb"], " MB")))
    rows += _reads_rows(results.get("reads"))
    rows += _quota_rows(results.get("quota"))
    lines = ["| group | measure | median |", "| --- | --- | --- |"]
    lines += [f"| {g} | {what} | {value} |" for g, what, value in rows]
    at_size = scale_table(results.get("scale"))
    if at_size:
        lines += ["", at_size]
    goals = results.get("goals") or evaluate(results)
    if goals:
        lines += ["", "| goal | result | met |", "| --- | --- | --- |"]
        lines += [f"| {g['goal']} | {g['value']} | {'yes' if g['met'] else '**no**'} |"
                  for g in goals.values()]
    return "\n".join(lines)


def scale_table(s: dict[str, Any] | None) -> str:
    """The `scale` group: a column per size of daily_bars, each figure beside the limit."""
    if not s:
        return ""
    sizes = s["sizes"]

    def row(what: str, cell: Callable[[dict[str, Any]], str]) -> str:
        return f"| {what} | " + " | ".join(cell(z) for z in sizes) + " |"

    def timed(key: str, ratio: str | None = None) -> Callable[[dict[str, Any]], str]:
        def cell(z: dict[str, Any]) -> str:
            if key not in z:
                return "-"
            return _f(z[key], " ms") + (f" ({z[ratio]}x)" if ratio else "")
        return cell

    lines = ["| scale: daily_bars holding | " + " | ".join(f"{z['rows']:,} rows" for z in sizes) + " |",
             "| --- |" + " --- |" * len(sizes),
             row("new day: stocksync's write, DataFrame to commit (x limit)", timed("new_ms", "x_new")),
             row("new day, first write after a CHECKPOINT (x limit after a CHECKPOINT)",
                 timed("new_after_checkpoint_ms", "x_new_after_checkpoint")),
             row("re-sync of a stored day, same values (x limit)", timed("resync_ms", "x_resync")),
             row("re-sync of a stored day, every close changed (x limit)",
                 timed("resync_changed_ms", "x_resync_changed")),
             row("limit: binary COPY of ready input into an UNLOGGED keyless table holding the same "
                 "history; after a CHECKPOINT",
                 lambda z: f"{_f(z['limit_ms'], ' ms')}; {_f(z['limit_after_checkpoint_ms'], ' ms')}")]
    if any("series_ms" in z for z in sizes):
        lines += [
            row("one stock's whole series (`daily_bars_series`), fetched: first read of the stock; "
                "again; first read in the database",
                lambda z: "-" if "series_ms" not in z else
                f"{_f(z['series_ms'], ' ms')}; {_f(z['series_warm_ms'], ' ms')}; "
                f"{_f(z.get('series_db_ms'), ' ms')} ({z['series_rows']:,} days)"),
            row("one day's cross-section, fetched; in the database",
                lambda z: "-" if "cross_section_ms" not in z else
                f"{_f(z['cross_section_ms'], ' ms')}; {_f(z.get('cross_section_db_ms'), ' ms')} "
                f"({z['cross_section_rows']:,} rows)"),
        ]
    lines.append(row("sizes: table; primary key; the limit's keyless table",
                     lambda z: f"{z['table_mb']} MB; {z['key_mb']} MB; {z['raw_table_mb']} MB"))
    return "\n".join(lines)


def _reads_rows(p: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    if not p:
        return []
    running = ", a batch running" if p.get("live") else ""
    rows = [("reads", f"{p['pollers']} pollers every {p['interval_s']} s for {p['seconds']} s over "
                      f"{p['jobs']:,} ended jobs ({p['job_day_rows']:,} day rows) and {p['bars']:,} bars"
                      f"{running}; {p['requests_per_s']}/s, {p['errors']} errors: p50 \\| p99",
             f"{_f(p['all']['p50_ms'], ' ms')} \\| {_f(p['all']['p99_ms'], ' ms')}")]
    for name, q in (p.get("queries") or {}).items():
        rows.append(("reads", f"query {name} in the database: before issue 11 \\| now",
                     f"{_f(q['before_ms'], ' ms')} \\| {_f(q['now_ms'], ' ms')}"))
    for name, route in p["routes"].items():
        rows.append(("reads", f"{name}: p50 \\| p99 \\| max ({route['requests']:,} requests; "
                              f"without HTTP {_f(route['in_process_ms'], ' ms')})",
                     f"{_f(route['p50_ms'], ' ms')} \\| {_f(route['p99_ms'], ' ms')} \\| "
                     f"{_f(route['max_ms'], ' ms')}"))
    return rows


def _quota_rows(q: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    if not q:
        return []
    b = q["per_api"][q["binding_api"]]
    calls = ", ".join(f"{api} {n}" for api, n in sorted(q["calls"].items(), key=lambda c: -c[1]))
    job = (f"{q['workers']} workers, {q['days']} days ({q['trading_days']} trading) x "
           f"{', '.join(q['datasets'])}; {q['limit_per_min']} calls/min per interface, "
           f"server clock x{q['speedup']:g}")
    return [
        ("quota", f"{job}: calls refused by the server", f"{q['refused']}"),
        ("quota", "calls per interface", calls),
        ("quota", f"binding interface ({q['binding_api']}): achieved \\| allowed rate over its busy "
                  f"interval ({_f(b['busy_s'], ' s')} server time) and the minute after; busiest minute",
         f"{_f(b['rate_per_min'])} \\| {b['allowed_per_min']} /min = {q['utilisation']:.1%}; "
         f"{b['busiest_window']} calls"),
        ("quota", "wall time (server-clock minutes); deliveries handed back by a long quota wait; "
                  "most attempts a day spent",
         f"{_f(q['wall_s'], ' s')} ({q['server_minutes']} min); {q['handed_back']}; {q.get('max_attempts', '-')}"),
    ]


def machine_text(results: dict[str, Any]) -> str:
    m = results.get("machine") or {}
    return (f"{m.get('nproc')} CPUs ({m.get('cpu')}), {m.get('memory_gib')} GiB RAM, {m.get('os')}; "
            f"Python {m.get('python')}, PostgreSQL {m.get('postgres')} (pgserver, embedded); "
            f"run {results.get('meta', {}).get('finished', '?')} at commit "
            f"{results.get('meta', {}).get('commit', '?')}"
            + (f", load average {load[0]} before and {load[1]} after"
               if (load := results.get('meta', {}).get('load_average')) else ""))


def merge(path: Path, fresh: dict[str, Any]) -> dict[str, Any]:
    """Groups run now replace their entries; groups not run keep theirs."""
    old: dict[str, Any] = {}
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except ValueError:
            old = {}
    merged = {**old, **fresh}
    merged["goals"] = evaluate(merged)
    return merged


def write_json(path: Path, results: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    tmp.replace(path)


def update_readme(path: Path, results: dict[str, Any]) -> bool:
    """Replace the text between the results markers; False when there are none."""
    if not path.exists():
        return False
    text = path.read_text()
    if MARK_BEGIN not in text or MARK_END not in text:
        return False
    head, rest = text.split(MARK_BEGIN, 1)
    _, tail = rest.split(MARK_END, 1)
    body = f"\nMachine: {machine_text(results)}.\n\n{table(results)}\n"
    path.write_text(head + MARK_BEGIN + body + MARK_END + tail)
    return True


def _load() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(GROUPS),
                        help=f"comma-separated groups, of {','.join(GROUPS)}")
    parser.add_argument("--repeats", type=int, help="repeat count for every group")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat (a smoke run)")
    parser.add_argument("--scale", type=float, default=0,
                        help="rows of history for the groups at size (scale, reads), e.g. 13e6")
    parser.add_argument("--speedup", type=float,
                        help="quota group: the sample server's clock this many times the real one "
                             "(default 10; 1: real time)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results file (merged into)")
    parser.add_argument("--table", action="store_true", help="print the table of --out and exit")
    args = parser.parse_args(argv)

    if args.table:
        print(table(json.loads(args.out.read_text())))
        return 0
    groups = tuple(g.strip() for g in args.only.split(",") if g.strip())
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        parser.error(f"unknown group(s) {unknown}; known: {', '.join(GROUPS)}")

    common.quiet_logs()
    began = time.monotonic()
    load_before = _load()
    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    log("starting the local stack (PostgreSQL, SQS, sample tushare, chalice local) ...")
    with common.bench_stack() as stack:
        log(f"  up in {time.monotonic() - began:.1f} s")
        fresh = collect(stack, groups, options(args.quick, args.repeats, args.scale, args.speedup), log)
        fresh["machine"] = {**common.machine(), "postgres": common.postgres_version(stack)}
    fresh["meta"] = {"finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "commit": common.git_commit(),
                     "quick": args.quick, "groups": list(groups), "scale": args.scale,
                     "seconds": round(time.monotonic() - began, 1),
                     # The machine is shared: its 1-minute load average before and after the run.
                     "load_average": [load_before, _load()]}
    results = merge(args.out, fresh)
    write_json(args.out, results)
    print(f"\nMachine: {machine_text(results)}\n")
    print(table(results))
    if args.out.resolve() == RESULTS and not args.quick and update_readme(README, results):
        print(f"\n(table written to {README.relative_to(common.ROOT)})")
    print(f"\nresults: {args.out}  ({results['meta']['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
