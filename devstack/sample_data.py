"""Deterministic sample market data behind the local tushare server: the SSE
trading calendar, a universe of ~5,400 A-share symbols and their daily bars.

Every number is a pure function of (symbol, trading day): nothing is carried
from one day to the next, so any day can be served first, by any process, and
still agree with its neighbours. pre_close is the previous trading day's close
recomputed, not remembered.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date
from typing import Any

import exchange_calendars
import numpy as np

SEED = 20251009
FIRST_SESSION = "1990-12-19"  # the SSE's first trading day
# exchange_calendars records XSHG holidays only a year or two ahead (to 2026 in
# 4.13); after that every weekday counts as open so future dates still work.
WEEKDAY_CALENDAR_END = np.datetime64("2099-12-31")

DAILY_FIELDS = ("ts_code", "trade_date", "open", "high", "low", "close", "pre_close",
                "change", "pct_chg", "vol", "amount")
STOCK_BASIC_FIELDS = ("ts_code", "symbol", "name", "area", "industry", "market", "list_date")
TRADE_CAL_FIELDS = ("exchange", "cal_date", "is_open", "pretrade_date")

Table = dict[str, np.ndarray]  # column name -> equally long column


def parse_day(value: Any) -> np.datetime64:
    """tushare dates are 'YYYYMMDD' (str or int); 'YYYY-MM-DD' is accepted too."""
    text = str(value).strip().replace("-", "")
    if len(text) != 8 or not text.isdigit():
        raise ValueError(f"not a YYYYMMDD date: {value!r}")
    try:
        date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError as exc:
        raise ValueError(f"not a date: {value!r}") from exc
    return np.datetime64(f"{text[:4]}-{text[4:6]}-{text[6:]}", "D")


def yyyymmdd(days: np.ndarray) -> np.ndarray:
    """datetime64[D] array -> array of 'YYYYMMDD' str objects."""
    return np.array([s.replace("-", "") for s in np.datetime_as_string(days, unit="D").tolist()],
                    dtype=object)


class Calendar:
    """SSE sessions as a sorted datetime64[D] array; a session's position in it is
    the 'trading-day index' that prices are keyed by."""

    def __init__(self) -> None:
        xshg = exchange_calendars.get_calendar("XSHG", start=FIRST_SESSION)
        recorded = xshg.sessions.values.astype("datetime64[D]")
        later = np.arange(recorded[-1] + 1, WEEKDAY_CALENDAR_END + 1, dtype="datetime64[D]")
        self.sessions = np.concatenate([recorded, later[np.is_busday(later)]])
        self.names = yyyymmdd(self.sessions)

    def index(self, day: np.datetime64) -> int | None:
        """The trading-day index of `day`, or None when the exchange is closed."""
        pos = int(np.searchsorted(self.sessions, day))
        return pos if pos < len(self.sessions) and self.sessions[pos] == day else None

    def session_indices(self, start: np.datetime64, end: np.datetime64) -> np.ndarray:
        """Indices of the sessions in [start, end], ascending."""
        lo = np.searchsorted(self.sessions, start, side="left")
        hi = np.searchsorted(self.sessions, end, side="right")
        return np.arange(lo, hi)

    def days(self, start: np.datetime64, end: np.datetime64) -> Table:
        """Every calendar day in [start, end]: cal_date, is_open, pretrade_date."""
        end = min(end, WEEKDAY_CALENDAR_END)
        days = np.arange(start, end + 1, dtype="datetime64[D]")
        pos = np.searchsorted(self.sessions, days)  # first session >= day
        found = np.minimum(pos, len(self.sessions) - 1)
        is_open = (pos < len(self.sessions)) & (self.sessions[found] == days)
        pretrade = np.where(pos > 0, self.names[np.maximum(pos - 1, 0)], None)
        return {"cal_date": yyyymmdd(days), "is_open": is_open.astype(np.int64),
                "pretrade_date": pretrade}


@dataclass(frozen=True)
class _Board:
    first_code: int
    last_code: int
    exchange: str
    market: str
    count: int
    listed_from: str
    listed_to: str


# Roughly the real market's shape in 2025. Windows end mid-2024; RECENT_LISTINGS
# are then spread over 2024-07..2026-12, so the count grows slowly near today.
BOARDS = (
    _Board(600000, 600999, "SH", "主板", 960, "1990-12-19", "2016-12-31"),
    _Board(601000, 601999, "SH", "主板", 190, "2006-06-01", "2024-06-30"),
    _Board(603000, 603999, "SH", "主板", 880, "2011-01-01", "2024-06-30"),
    _Board(688000, 688999, "SH", "科创板", 580, "2019-07-22", "2024-06-30"),
    _Board(1, 999, "SZ", "主板", 500, "1991-04-03", "2012-12-31"),
    _Board(2001, 2999, "SZ", "主板", 980, "2004-06-25", "2023-12-31"),
    _Board(300001, 300999, "SZ", "创业板", 990, "2009-10-30", "2024-06-30"),
    _Board(830000, 839999, "BJ", "北交所", 200, "2021-11-15", "2024-06-30"),
    _Board(870000, 873999, "BJ", "北交所", 60, "2021-11-15", "2024-06-30"),
    _Board(430000, 430999, "BJ", "北交所", 40, "2021-11-15", "2024-06-30"),
)
RECENT_LISTINGS = 160
RECENT_WINDOW = ("2024-07-01", "2026-12-31")

_NAME_HEADS = list(
    "华夏 东方 中科 长城 金山 天虹 海亮 瑞丰 永安 宏达 新华 国泰 恒信 博雅 鼎盛 汇通 远大 光明 "
    "银河 联创 三元 星辰 天润 富春 嘉禾 兴业 凯旋 精工 云海 万通 安信 龙腾 盛达 北辰 南洋 中原 "
    "西部 江南 泰山 黄河 昆仑 峨眉 珠江 闽东 苏美 浙商 湘潭 川能 渝开 鲁信 晋控 冀中 豫光 皖通 "
    "赣能 桂冠 滇池 黔源 陕鼓 甘化 青松 甬兴 厦工 深赛 沪光 京能 津滨 粤海 港湾 华锐 中金 航天 "
    "海特 新元 宝鼎 和邦 天马 飞亚 德赛 科华 创新 联合 信达 广汇 同方 中旗 春晖 秋实 华康".split())
_NAME_TAILS = list(
    "科技 股份 电子 医药 生物 能源 材料 化工 机械 电气 环保 传媒 信息 智能 精密 动力 通信 光电 "
    "新材 药业 食品 酒业 物流 地产 建设 钢铁 矿业 汽车 电力 控股 实业 集团 发展 软件 网络 农业 "
    "纺织 家居 照明 装备 重工 轻工 制造 航空 船舶 港务 交通 旅游 教育 健康 医疗 微电 芯片 数据 "
    "光伏 风电 储能 锂电 氢能 新能 光学 仪器 测控 检测 包装 纸业 印务 水务 燃气 高科".split())
_AREAS = list("广东 浙江 江苏 北京 上海 深圳 山东 福建 四川 湖北 湖南 安徽 河南 河北 辽宁 吉林 "
              "黑龙江 陕西 重庆 天津 江西 广西 云南 贵州 山西 内蒙 新疆 甘肃 海南 宁夏 青海 西藏".split())
_INDUSTRIES = list("银行 证券 保险 全国地产 区域地产 元器件 半导体 软件服务 通信设备 化学制药 中成药 "
                   "生物制药 医疗保健 汽车配件 汽车整车 电气设备 专用机械 机械基件 化工原料 塑料 小金属 "
                   "铝 钢加工 建筑工程 水泥 食品 白酒 饮料制造 家用电器 服饰 纺织 电器仪表 互联网 "
                   "IT设备 新型电力 火力发电 水力发电 煤炭开采 石油开采 航空 港口 物流".split())


class Universe:
    """The symbols (sorted by ts_code) and the per-symbol parameters of their prices."""

    def __init__(self, calendar: Calendar, seed: int = SEED) -> None:
        rng = np.random.default_rng(seed)
        codes, boards, list_days = [], [], []
        for board in BOARDS:
            # A board's first code (600000.SH, 000001.SZ, ...) is always there, listed first.
            rest = rng.choice(np.arange(board.first_code + 1, board.last_code + 1),
                              board.count - 1, replace=False)
            picked = np.concatenate([[board.first_code], np.sort(rest)])
            first, last = np.datetime64(board.listed_from), np.datetime64(board.listed_to)
            # Skewed early (u ** 1.3): most of today's symbols listed before 2015.
            span = (last - first).astype(int)
            offsets = np.floor(span * rng.random(board.count) ** 1.3).astype(np.int64)
            offsets[0] = 0
            codes += [f"{c:06d}.{board.exchange}" for c in picked]
            boards += [board] * board.count
            list_days.append(first + offsets.astype("timedelta64[D]"))
        days = np.concatenate(list_days)
        young = [i for i, b in enumerate(boards) if b.market != "主板" or b.first_code == 603000]
        recent = rng.choice(young, RECENT_LISTINGS, replace=False)
        lo, hi = (np.datetime64(d) for d in RECENT_WINDOW)
        spread = rng.integers(0, (hi - lo).astype(int) + 1, RECENT_LISTINGS)
        days[recent] = lo + spread.astype("timedelta64[D]")

        order = np.argsort(codes, kind="stable")
        n = len(codes)
        self.ts_code = np.array(codes, dtype=object)[order]
        self.symbol = np.array([c[:6] for c in self.ts_code], dtype=object)
        self.market = np.array([boards[i].market for i in order], dtype=object)
        # A listing happens on a session: snap to the first session on or after the day.
        self.list_index = np.searchsorted(calendar.sessions, days[order])
        self.list_date = calendar.names[self.list_index]
        names = rng.choice(len(_NAME_HEADS) * len(_NAME_TAILS), n, replace=False)
        self.name = np.array([_NAME_HEADS[k // len(_NAME_TAILS)] + _NAME_TAILS[k % len(_NAME_TAILS)]
                              for k in names], dtype=object)
        self.area = np.array(_AREAS, dtype=object)[rng.integers(0, len(_AREAS), n)]
        self.industry = np.array(_INDUSTRIES, dtype=object)[rng.integers(0, len(_INDUSTRIES), n)]

        # Price model: log close = log base + beta * market(t) + two symbol cycles
        # + iid daily noise. Bounded, so no symbol drifts to 0 or to the moon.
        self.base = np.clip(rng.lognormal(np.log(12.0), 0.75, n), 2.0, 400.0)
        self.sigma = rng.uniform(0.007, 0.018, n)
        self.beta = rng.uniform(0.5, 1.5, n)
        self.amp = rng.uniform([0.08, 0.02], [0.35, 0.10], (n, 2))
        self.period = rng.uniform([150.0, 15.0], [900.0, 60.0], (n, 2))
        self.phase = rng.uniform(0.0, 2 * np.pi, (n, 2))
        self.suspend_p = rng.uniform(0.004, 0.011, n)  # 0.5-1% suspended a day
        self.vol_base = rng.lognormal(np.log(60_000.0), 0.9, n)  # hands a day

    def __len__(self) -> int:
        return len(self.ts_code)


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: a bijective scramble of uint64s."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _uniform(sym: np.ndarray, day: np.ndarray, stream: int) -> np.ndarray:
    """A uniform in (0, 1) per (symbol, day, stream): a counter-based hash rather than
    a seeded generator, so any subset of (symbol, day) pairs costs only its size."""
    with np.errstate(over="ignore"):
        key = _mix(day.astype(np.uint64) * _GOLDEN + np.uint64(SEED * 64 + stream))
        bits = _mix(key ^ (sym.astype(np.uint64) * _GOLDEN))
    return ((bits >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0 ** -53


def _normal(sym: np.ndarray, day: np.ndarray, stream: int) -> np.ndarray:
    u1, u2 = _uniform(sym, day, stream), _uniform(sym, day, stream + 100)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def _round(values: np.ndarray, decimals: int = 2) -> np.ndarray:
    return np.round(values, decimals)


class SampleMarket:
    """The calendar, the universe and bar generation over them."""

    def __init__(self) -> None:
        self.calendar = Calendar()
        self.universe = Universe(self.calendar)
        self.day_table = functools.lru_cache(maxsize=128)(self._day_table)

    # -- prices: every function takes equally long 1-D arrays of symbol and day indices
    def _close(self, sym: np.ndarray, day: np.ndarray) -> np.ndarray:
        u, t = self.universe, day.astype(np.float64)
        market = (0.30 * np.sin(2 * np.pi * t / 1100 + 0.7) + 0.10 * np.sin(2 * np.pi * t / 260 + 2.1)
                  + 0.03 * np.sin(2 * np.pi * t / 47))
        cycles = (u.amp[sym] * np.sin(2 * np.pi * t[:, None] / u.period[sym] + u.phase[sym])).sum(1)
        log_move = u.beta[sym] * market + cycles + u.sigma[sym] * _normal(sym, day, 0)
        return np.maximum(_round(u.base[sym] * np.exp(log_move)), 0.01)

    def _suspended(self, sym: np.ndarray, day: np.ndarray) -> np.ndarray:
        return _uniform(sym, day, 1) < self.universe.suspend_p[sym]

    def _pre_close(self, sym: np.ndarray, day: np.ndarray) -> np.ndarray:
        """The close of the last earlier session the symbol traded, like tushare's."""
        pre = self._close(sym, day - 1)
        missing = np.flatnonzero(self._suspended(sym, day - 1))
        back = 2
        while missing.size and back < 60:  # 60 straight suspended days: odds ~1e-120
            s, d = sym[missing], day[missing] - back
            pre[missing] = self._close(s, d)
            missing = missing[self._suspended(s, d)]
            back += 1
        return pre

    def bars(self, sym: np.ndarray, day: np.ndarray) -> Table:
        """Daily bars for (symbol, day) pairs that traded (listed and not suspended),
        in the given order, as tushare `daily` columns."""
        u = self.universe
        traded = (u.list_index[sym] <= day) & ~self._suspended(sym, day)
        sym, day = sym[traded], day[traded]
        close, pre = self._close(sym, day), self._pre_close(sym, day)
        sigma = u.sigma[sym]
        open_ = np.maximum(_round(pre * np.exp(0.4 * sigma * _normal(sym, day, 2))), 0.01)
        top, bottom = np.maximum(open_, close), np.minimum(open_, close)
        high = np.maximum(_round(top * (1 + 0.6 * sigma * np.abs(_normal(sym, day, 3)))), top)
        low = np.minimum(_round(bottom * (1 - 0.6 * sigma * np.abs(_normal(sym, day, 4)))), bottom)
        change = _round(close - pre)
        # Volume swells on big moves, as it does in the real market.
        vol = _round(u.vol_base[sym] * np.exp(0.4 * _normal(sym, day, 5) + 8 * np.abs(change / pre)))
        amount = _round(vol * (open_ + high + low + close) / 4 * 0.1, 3)  # hands*100*yuan/1000
        return {"ts_code": u.ts_code[sym], "trade_date": self.calendar.names[day],
                "open": open_, "high": high, "low": low, "close": close, "pre_close": pre,
                "change": change, "pct_chg": _round(change / pre * 100, 4), "vol": vol,
                "amount": amount}

    def _day_table(self, day: int) -> Table:
        sym = np.arange(len(self.universe))
        return self.bars(sym, np.full(len(sym), day))

    def daily(self, sym: np.ndarray | None, days: np.ndarray, max_rows: int | None = None) -> Table:
        """Bars of the symbols (None: all) over session indices `days`, ordered like
        tushare: trade_date descending, then ts_code. For the whole market, days stop
        being generated once `max_rows` rows are in hand (a page never needs more)."""
        days = np.sort(days)[::-1]
        if sym is not None:
            sym = np.unique(sym)  # sorted, as the universe is sorted by ts_code
            return self.bars(np.tile(sym, len(days)), np.repeat(days, len(sym)))
        tables, rows = [], 0
        for day in days:
            if max_rows is not None and rows >= max_rows:
                break
            tables.append(self.day_table(int(day)))
            rows += len(tables[-1]["ts_code"])
        return {f: np.concatenate([t[f] for t in tables]) if tables else np.array([], dtype=object)
                for f in DAILY_FIELDS}

    def stock_basic(self, listed_by: np.datetime64) -> Table:
        u = self.universe
        listed = self.calendar.sessions[u.list_index] <= listed_by
        return {f: getattr(u, f)[listed] for f in STOCK_BASIC_FIELDS}

    def symbol_indices(self, ts_codes: list[str]) -> np.ndarray:
        """Positions of the known codes among `ts_codes`; unknown codes are dropped."""
        pos = np.searchsorted(self.universe.ts_code, np.array(ts_codes, dtype=object))
        pos = np.minimum(pos, len(self.universe) - 1)
        return pos[self.universe.ts_code[pos] == np.array(ts_codes, dtype=object)]


@functools.lru_cache(maxsize=1)
def default_market() -> SampleMarket:
    """One shared market per process: building it takes ~0.3 s."""
    return SampleMarket()
