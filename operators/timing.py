"""When a marketing message may go out: not inside the shopper's quiet hours, in their local time.

Quiet hours are a window of local clock times, "21:00"-"08:00" running over midnight; equal ends
mean none. Local times come from the IANA zone, so the window follows daylight saving: a window
ending at 08:00 ends at 08:00 on the wall clock whatever the offset that day.
"""
from __future__ import annotations

from datetime import datetime, time, timedelta, timezone

from state_schemas.time_zones import zone


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def _local(ts: int, time_zone: str) -> datetime:
    return datetime.fromtimestamp(ts / 1000, tz=timezone.utc).astimezone(zone(time_zone))


def local_hour(ts: int, time_zone: str) -> int:
    return _local(ts, time_zone).hour


def in_quiet_hours(ts: int, time_zone: str, window: tuple[str, str]) -> bool:
    start, end = _minutes(window[0]), _minutes(window[1])
    local = _local(ts, time_zone)
    minute = local.hour * 60 + local.minute
    if start == end:
        return False
    return start <= minute < end if start < end else (minute >= start or minute < end)


def quiet_hours_end(ts: int, time_zone: str, window: tuple[str, str]) -> int:
    """`ts` if it is outside the window, else the instant (epoch ms) the window ends on the local clock."""
    if not in_quiet_hours(ts, time_zone, window):
        return ts
    start, end = _minutes(window[0]), _minutes(window[1])
    local = _local(ts, time_zone)
    minute = local.hour * 60 + local.minute
    day = local.date() + timedelta(days=1) if start > end and minute >= start else local.date()
    ends = datetime.combine(day, time(end // 60, end % 60), tzinfo=zone(time_zone))
    # A wall-clock time a spring-forward skips reads with the earlier offset, just after the gap; one a
    # fall-back repeats happens twice, and the window ends at the first of them still ahead.
    return min(at for at in (int(ends.replace(fold=fold).timestamp() * 1000) for fold in (0, 1)) if at > ts)


def next_hour_start(ts: int, hour: int, time_zone: str) -> int:
    """`ts` if its local hour is `hour`, else the next instant the local clock reads `hour`:00 (a
    day whose `hour` a spring-forward skips has it just after the gap)."""
    local = _local(ts, time_zone)
    if local.hour == hour:
        return ts
    day = local.date() if local.hour < hour else local.date() + timedelta(days=1)
    start = datetime.combine(day, time(hour, 0), tzinfo=zone(time_zone))
    return min(at for at in (int(start.replace(fold=fold).timestamp() * 1000) for fold in (0, 1)) if at > ts)
