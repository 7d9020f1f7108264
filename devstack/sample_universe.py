"""The symbols of the sample market: ~5,400 listed today, plus ~120 that have
left (delisted, some after a paused listing), with each symbol's fixed traits.

Every array is in ts_code order; a symbol's position in it is its 'symbol
index'. `key` is the symbol's identity for the counter-based noise: it is the
position the symbol had before departed symbols were added, so adding them
changed no listed symbol's numbers.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from devstack.sample_calendar import Calendar
from devstack.sample_noise import SEED

NEVER = np.int64(10**9)  # a trading-day index no session reaches


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
EXCHANGES = {"SH": "SSE", "SZ": "SZSE", "BJ": "BSE"}

# Departed symbols (codes never reused, as on the real exchanges). DELISTED leave
# over 2001..mid-2026, more of them lately; a share of them first have their
# listing paused (暂停上市: no trading, a suspension every session) for a while.
# PAUSED_LATE are paused during 2026 and delisted only in 2027, so around late 2026
# they are the market's `P` (paused) listings.
DELISTED = 110
DELIST_WINDOW = ("2001-01-01", "2026-06-30")
PAUSE_SHARE = 0.35
PAUSE_SESSIONS = (60, 240)
PAUSED_LATE = 6
PAUSED_LATE_WINDOW = ("2026-01-05", "2026-09-30")
PAUSED_LATE_SESSIONS = (250, 300)
MIN_LIFE_DAYS = 3 * 365  # a departed symbol traded at least this long

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

# Per-symbol arrays that are drawn the same way for listed and departed symbols.
_TRAITS = ("base", "sigma", "beta", "amp", "period", "phase", "suspend_p", "vol_base",
           "area", "industry")


def _draw_traits(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """The price model's per-symbol parameters (see SampleMarket.close)."""
    return {
        "area": np.array(_AREAS, dtype=object)[rng.integers(0, len(_AREAS), n)],
        "industry": np.array(_INDUSTRIES, dtype=object)[rng.integers(0, len(_INDUSTRIES), n)],
        "base": np.clip(rng.lognormal(np.log(12.0), 0.75, n), 2.0, 400.0),
        "sigma": rng.uniform(0.007, 0.018, n),
        "beta": rng.uniform(0.5, 1.5, n),
        "amp": rng.uniform([0.08, 0.02], [0.35, 0.10], (n, 2)),
        "period": rng.uniform([150.0, 15.0], [900.0, 60.0], (n, 2)),
        "phase": rng.uniform(0.0, 2 * np.pi, (n, 2)),
        "suspend_p": rng.uniform(0.004, 0.011, n),  # 0.5-1% suspended a day
        "vol_base": rng.lognormal(np.log(60_000.0), 0.9, n),  # hands a day
    }


def _name(k: int) -> str:
    return _NAME_HEADS[k // len(_NAME_TAILS)] + _NAME_TAILS[k % len(_NAME_TAILS)]


class Universe:
    """Every symbol (sorted by ts_code), its listing history and price traits."""

    ts_code: np.ndarray       # '600000.SH'
    symbol: np.ndarray        # '600000'
    name: np.ndarray
    name_code: np.ndarray     # which head x tail name: names are unique
    area: np.ndarray
    industry: np.ndarray
    market: np.ndarray        # 主板 / 创业板 / 科创板 / 北交所
    exchange: np.ndarray      # SSE / SZSE / BSE
    key: np.ndarray           # identity for the counter-based noise
    list_index: np.ndarray    # first session listed
    pause_index: np.ndarray   # first session of a paused listing (NEVER: none)
    delist_index: np.ndarray  # delist date's session: nothing from it on (NEVER: none)
    end_index: np.ndarray     # first session it cannot trade: min(pause, delist)
    list_date: np.ndarray
    delist_date: np.ndarray   # 'YYYYMMDD' or None
    # The price model's traits (SampleMarket._level, bars).
    base: np.ndarray
    sigma: np.ndarray
    beta: np.ndarray
    amp: np.ndarray
    period: np.ndarray
    phase: np.ndarray
    suspend_p: np.ndarray     # chance of a day's suspension
    vol_base: np.ndarray      # hands on a usual day, on REF's share basis

    def __init__(self, calendar: Calendar, seed: int = SEED) -> None:
        listed = self._listed_today(calendar, seed)
        departed = self._departed(calendar, seed, listed)
        order = np.argsort(np.concatenate([listed["ts_code"], departed["ts_code"]]), kind="stable")
        for name in listed:
            setattr(self, name, np.concatenate([listed[name], departed[name]])[order])
        self.symbol = np.array([c[:6] for c in self.ts_code], dtype=object)
        self.exchange = np.array([EXCHANGES[c[-2:]] for c in self.ts_code], dtype=object)
        self.list_date = calendar.names[self.list_index]
        ends = np.minimum(self.delist_index, len(calendar) - 1)
        self.delist_date = np.where(self.delist_index < NEVER, calendar.names[ends], None)
        # The first session a symbol cannot trade: its listing paused, or delisted.
        self.end_index = np.minimum(self.pause_index, self.delist_index)

    def __len__(self) -> int:
        return len(self.ts_code)

    @staticmethod
    def _listed_today(calendar: Calendar, seed: int) -> dict[str, np.ndarray]:
        """The symbols listed today (or soon), drawn exactly as before departures existed."""
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
        names = rng.choice(len(_NAME_HEADS) * len(_NAME_TAILS), n, replace=False)
        symbols = {
            "ts_code": np.array(codes, dtype=object)[order],
            "market": np.array([boards[i].market for i in order], dtype=object),
            # A listing happens on a session: the first session on or after the day.
            "list_index": calendar.first_on_or_after(days[order]),
            "name": np.array([_name(k) for k in names], dtype=object),
            "name_code": names,
            "key": np.arange(n, dtype=np.int64),
            "pause_index": np.full(n, NEVER),
            "delist_index": np.full(n, NEVER),
        }
        return {**symbols, **_draw_traits(rng, n)}

    @staticmethod
    def _departed(calendar: Calendar, seed: int, listed: dict[str, np.ndarray]
                  ) -> dict[str, np.ndarray]:
        """Symbols that left the market; a generator of their own keeps listed symbols as they were."""
        rng = np.random.default_rng(seed + 1)
        n = DELISTED + PAUSED_LATE
        lo, hi = (np.datetime64(d) for d in DELIST_WINDOW)
        # Skewed late (u ** 0.45): delistings became common after the 2020 reform.
        delist_days = lo + np.floor((hi - lo).astype(int) * rng.random(DELISTED) ** 0.45
                                    ).astype("timedelta64[D]")
        delist = calendar.first_on_or_after(delist_days)
        pause = np.full(n, NEVER)
        paused = np.flatnonzero(rng.random(DELISTED) < PAUSE_SHARE)
        pause[paused] = delist[paused] - rng.integers(*PAUSE_SESSIONS, paused.size)

        lo, hi = (np.datetime64(d) for d in PAUSED_LATE_WINDOW)
        late_pause = calendar.first_on_or_after(
            lo + rng.integers(0, (hi - lo).astype(int) + 1, PAUSED_LATE).astype("timedelta64[D]"))
        pause[DELISTED:] = late_pause
        delist = np.concatenate([delist, late_pause + rng.integers(*PAUSED_LATE_SESSIONS,
                                                                   PAUSED_LATE)])
        last_listing = calendar.sessions[np.minimum(pause, delist)] - np.timedelta64(
            MIN_LIFE_DAYS, "D")

        used = set(listed["ts_code"].tolist())
        free = {b: [c for c in range(b.first_code + 1, b.last_code + 1)
                    if f"{c:06d}.{b.exchange}" not in used] for b in BOARDS}
        codes, markets, list_days = [], [], []
        for latest in last_listing:
            # Mostly from the big old boards, never a code in use.
            boards = [b for b in BOARDS if np.datetime64(b.listed_from) <= latest and free[b]]
            weights = np.array([min(b.count, len(free[b])) for b in boards], dtype=float)
            board = boards[rng.choice(len(boards), p=weights / weights.sum())]
            code = free[board].pop(int(rng.integers(0, len(free[board]))))
            first = np.datetime64(board.listed_from)
            last = min(np.datetime64(board.listed_to), latest)
            codes.append(f"{code:06d}.{board.exchange}")
            markets.append(board.market)
            list_days.append(first + np.timedelta64(int(rng.integers(0, (last - first).astype(int) + 1)),
                                                    "D"))
        free_names = np.setdiff1d(np.arange(len(_NAME_HEADS) * len(_NAME_TAILS)),
                                  listed["name_code"])
        names = rng.choice(free_names, n, replace=False)
        symbols = {
            "ts_code": np.array(codes, dtype=object),
            "market": np.array(markets, dtype=object),
            "list_index": calendar.first_on_or_after(np.array(list_days, dtype="datetime64[D]")),
            "name": np.array([_name(k) for k in names], dtype=object),
            "name_code": names,
            "key": len(listed["ts_code"]) + np.arange(n, dtype=np.int64),
            "pause_index": pause,
            "delist_index": delist,
        }
        return {**symbols, **_draw_traits(rng, n)}

    def status(self, through: int) -> np.ndarray:
        """Each symbol's list_status once sessions [0, through) have happened:
        'L' listed, 'P' listing paused, 'D' delisted, '' not listed yet."""
        status = np.full(len(self), "", dtype=object)
        status[self.list_index < through] = "L"
        status[self.pause_index < through] = "P"
        status[self.delist_index < through] = "D"
        return status
