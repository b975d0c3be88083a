"""What a push policy did to shoppers, measured from its sends and the event log alone.

Nothing here asks the policy's own code: local times come from `zoneinfo`, sessions and caps are
recounted from the events and the sends, so a policy that misjudges them is caught.
"""
from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

DAY_MS = 24 * 3600 * 1000
CONVERTING = frozenset({"cart", "purchase"})


@dataclass(frozen=True, slots=True)
class Send:
    """A marketing message as it went out: to whom (the raw user id), when, where, which items."""

    user_id: str
    at: int
    channel: str
    item_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Act:
    """One behaviour event of the log."""

    user_id: str
    ts: int
    behavior: str
    item_id: str | None


@dataclass(frozen=True)
class Caps:
    daily: int
    weekly: int
    per_channel: dict  # channel -> (per local day, per 7 local days)


def local_day(ts: int, zone: str) -> int:
    local = datetime.fromtimestamp(ts / 1000, tz=timezone.utc).astimezone(ZoneInfo(zone))
    return local.date().toordinal()


def in_window(ts: int, zone: str, window: tuple[str, str]) -> bool:
    """Is the local clock time of `ts` in [start, end), a window that may run over midnight?"""
    local = datetime.fromtimestamp(ts / 1000, tz=timezone.utc).astimezone(ZoneInfo(zone))
    minute = local.hour * 60 + local.minute
    start, end = (int(clock[:2]) * 60 + int(clock[3:]) for clock in window)
    if start == end:
        return False
    return start <= minute < end if start < end else (minute >= start or minute < end)


class Log:
    """The events by shopper, in time order."""

    def __init__(self, acts: list[Act]):
        self.times: dict[str, list[int]] = defaultdict(list)
        self.acts: dict[str, list[Act]] = defaultdict(list)
        for act in sorted(acts, key=lambda a: a.ts):
            self.times[act.user_id].append(act.ts)
            self.acts[act.user_id].append(act)

    def active_user_days(self, zones: dict[str, str]) -> int:
        return sum(len({local_day(ts, zones[user]) for ts in times}) for user, times in self.times.items())

    def in_session(self, send: Send, gap_ms: int) -> bool:
        """Did the shopper do something in the `gap_ms` before the send (the send's own instant included)?"""
        times = self.times.get(send.user_id, [])
        last = bisect.bisect_right(times, send.at) - 1
        return last >= 0 and send.at - times[last] < gap_ms

    def converted(self, send: Send, within_ms: int = DAY_MS) -> bool:
        """A cart or purchase of a notified item by the shopper after the send, within `within_ms`."""
        times, acts = self.times.get(send.user_id, []), self.acts.get(send.user_id, [])
        first = bisect.bisect_right(times, send.at)
        for act in acts[first:]:
            if act.ts > send.at + within_ms:
                break
            if act.behavior in CONVERTING and act.item_id in send.item_ids:
                return True
        return False


def cap_violations(sends: list[Send], zones: dict[str, str], caps: Caps) -> int:
    """Windows over a cap: (user, local day) over the daily cap, (user, 7 local days ending on a day
    with a send) over the weekly cap, and the same per channel."""
    violations = 0
    by_user: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for send in sends:
        by_user[send.user_id].append((local_day(send.at, zones[send.user_id]), send.channel))
    for days in by_user.values():
        limits = [(None, caps.daily, caps.weekly)] + [(c, d, w) for c, (d, w) in caps.per_channel.items()]
        for channel, per_day, per_week in limits:
            counted = [day for day, sent_on in days if channel is None or sent_on == channel]
            for day in set(counted):
                violations += counted.count(day) > per_day
                violations += sum(day - 7 < other <= day for other in counted) > per_week
    return violations


@dataclass(frozen=True)
class PolicyReport:
    sends: int
    sends_per_active_user_day: float
    in_session_share: float
    quiet_hours_share: float
    cap_violations: int
    converted: int
    conversion_per_send: float


def report(sends: list[Send], log: Log, zones: dict[str, str], session_gap_ms: int, quiet_hours: dict,
           caps: Caps) -> PolicyReport:
    """`quiet_hours`: user -> their window. Conversion counts every send; a send too close to the log's
    end to see its 24 h is counted all the same, for both policies alike."""
    count = len(sends)
    converted = sum(log.converted(send) for send in sends)
    return PolicyReport(
        sends=count,
        sends_per_active_user_day=count / max(log.active_user_days(zones), 1),
        in_session_share=sum(log.in_session(send, session_gap_ms) for send in sends) / max(count, 1),
        quiet_hours_share=sum(in_window(s.at, zones[s.user_id], quiet_hours[s.user_id]) for s in sends) / max(count, 1),
        cap_violations=cap_violations(sends, zones, caps),
        converted=converted,
        conversion_per_send=converted / max(count, 1),
    )
