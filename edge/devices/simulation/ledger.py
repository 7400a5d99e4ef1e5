"""The figures a simulated plug keeps besides its energy total (today, yesterday, per minute)."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta


@dataclass(frozen=True, slots=True)
class MeterLedger:
    """The figures a plug keeps besides its total: today, yesterday, per report, per minute."""

    total_start: datetime
    day: date
    day_start_kwh: float
    yesterday_kwh: float
    reported_kwh: float  # total at the previous report
    period_wh: float  # energy since the previous report
    minute: int  # unix minute now open
    minute_start_kwh: float
    by_minute_mwh: tuple[float, float, float]  # last three complete minutes, newest first


def new_ledger(total_kwh: float, wall: datetime, rng: random.Random) -> MeterLedger:
    """A meter installed some months ago, with a plausible yesterday."""
    start = (wall - timedelta(days=rng.randint(30, 400))).replace(microsecond=0)
    return MeterLedger(
        total_start=start,
        day=wall.date(),
        day_start_kwh=total_kwh,
        yesterday_kwh=round(rng.uniform(0.2, 6.0), 3),
        reported_kwh=total_kwh,
        period_wh=0.0,
        minute=int(wall.timestamp() // 60),
        minute_start_kwh=total_kwh,
        by_minute_mwh=(0.0, 0.0, 0.0),
    )


def advance_ledger(ledger: MeterLedger, total_kwh: float, wall: datetime) -> MeterLedger:
    """The ledger at a new report of `total_kwh` (call once per report)."""
    day_start, yesterday = ledger.day_start_kwh, ledger.yesterday_kwh
    if wall.date() != ledger.day:
        yesterday = ledger.reported_kwh - ledger.day_start_kwh
        day_start = ledger.reported_kwh
    minute, minute_start, by_minute = ledger.minute, ledger.minute_start_kwh, ledger.by_minute_mwh
    now_minute = int(wall.timestamp() // 60)
    if now_minute != minute:
        closed = (ledger.reported_kwh - minute_start) * 1e6
        skipped = min(3, max(0, now_minute - minute - 1))
        history = (closed, *(0.0 for _ in range(skipped)), *by_minute)
        by_minute = (history[0], history[1], history[2])
        minute, minute_start = now_minute, ledger.reported_kwh
    return replace(
        ledger,
        day=wall.date(),
        day_start_kwh=day_start,
        yesterday_kwh=yesterday,
        reported_kwh=total_kwh,
        period_wh=(total_kwh - ledger.reported_kwh) * 1000,
        minute=minute,
        minute_start_kwh=minute_start,
        by_minute_mwh=by_minute,
    )
