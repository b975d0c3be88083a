"""The user directory: what the shop's account system says of a shopper, their own opt-out, and what
both mean when a message is about to go out: the shopper's time zone, locale, and the channel to use.

A shopper the directory has no record of is reached as `directory.implied_consent` says; a record
is the shopper's word, so a purpose it gives no channels for gets none, and a record without
`consent` allows transactional messages only. An unsubscribe from the shopper withdraws marketing
on every channel until they resubscribe, whatever records arrive in between.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone

from msgspec.structs import replace

from config import DirectoryConfig, IntakeConfig
from state_schemas.codec import tombstone
from state_schemas.events import UserRecord, decode_user_record
from state_schemas.hops import DirectoryRecord
from state_schemas.state import UserDirectory
from state_schemas.time_zones import zone

from .intake import Rejected, admitted, check_time

_EPOCH_DAY = date(1970, 1, 1).toordinal()


def admit_user_record(raw: bytes, now_ms: int, limits: IntakeConfig) -> DirectoryRecord:
    """A record of the users topic, checked (unknown zones, bad locales, wrong types are rejected with the
    reason). A tombstone deletes the shopper's record: it reads as a record that says nothing, at the
    tombstone's time, so no consent survives it (transactional messages only, as for any record without
    consent) and an older record read after it changes nothing."""
    deleted = tombstone(raw)
    if deleted is None:
        return DirectoryRecord(event=admitted(raw, now_ms, limits, decode_user_record))
    ts, user_id = deleted
    if not user_id:
        raise Rejected("a tombstone without a key: it names no shopper")
    check_time(ts, now_ms, limits)
    return DirectoryRecord(event=UserRecord(user_id=user_id, ts=ts))


def apply_record(entry: UserDirectory, record: UserRecord) -> UserDirectory:
    """The entry after `record`; an older record than the one applied changes nothing (a compacted
    topic re-read, or a late producer)."""
    if entry.listed_at is not None and record.ts < entry.listed_at:
        return entry
    quiet = (record.quiet_hours.start, record.quiet_hours.end) if record.quiet_hours is not None else None
    return replace(entry, listed_at=record.ts, time_zone=record.time_zone, locale=record.locale,
                   channels=record.channels, consent=dict(record.consent) if record.consent is not None else None,
                   quiet_hours=quiet)


def unsubscribe(entry: UserDirectory, at: int) -> UserDirectory:
    return entry if entry.opted_out_at is not None else replace(entry, opted_out_at=at)


def resubscribe(entry: UserDirectory) -> UserDirectory:
    return entry if entry.opted_out_at is None else replace(entry, opted_out_at=None)


@dataclass(frozen=True, slots=True)
class Reach:
    """How a shopper can be reached, defaults filled in."""

    time_zone: str
    locale: str
    consented: dict  # purpose -> channels the shopper can be reached on and agreed to
    opted_out: bool  # of marketing, by the shopper's own unsubscribe
    quiet_hours: tuple[str, str] | None  # the shopper's own; None: the platform's


def reach(entry: UserDirectory, config: DirectoryConfig) -> Reach:
    if entry.listed_at is None:  # no record: the platform's defaults, the implied consent
        reachable, consent = config.default_channels, config.implied_consent
    else:
        reachable = entry.channels if entry.channels is not None else config.default_channels
        consent = entry.consent if entry.consent is not None else {"transactional": reachable}
    consented = {purpose: tuple(channel for channel in consent.get(purpose, ()) if channel in reachable)
                 for purpose in config.channel_preference}
    return Reach(time_zone=entry.time_zone or config.default_time_zone, locale=entry.locale or config.default_locale,
                 consented=consented, opted_out=entry.opted_out_at is not None, quiet_hours=entry.quiet_hours)


def channels_for(who: Reach, purpose: str, config: DirectoryConfig) -> tuple[str, ...]:
    """The channels of the purpose's preference order the shopper is reachable on and agreed to, in
    that order; none if they opted out of marketing."""
    if purpose == "marketing" and who.opted_out:
        return ()
    allowed = who.consented.get(purpose, ())
    return tuple(channel for channel in config.channel_preference[purpose] if channel in allowed)


def channel_for(who: Reach, purpose: str, config: DirectoryConfig) -> str | None:
    """The first of `channels_for`, or None."""
    return next(iter(channels_for(who, purpose, config)), None)


def local_day(ts: int, time_zone: str) -> int:
    """Days since 1970-01-01 of the calendar date at `ts` (epoch ms) in `time_zone`."""
    moment = datetime.fromtimestamp(ts / 1000, tz=timezone.utc).astimezone(zone(time_zone))
    return moment.date().toordinal() - _EPOCH_DAY


def day_start(day: int, time_zone: str) -> int:
    """The first instant (epoch ms) of local day `day` (days since 1970-01-01) in `time_zone`; a day
    that begins in a DST gap begins at the first wall-clock time that exists."""
    midnight = datetime.combine(date.fromordinal(day + _EPOCH_DAY), datetime.min.time(), tzinfo=zone(time_zone))
    start = int(midnight.timestamp() * 1000)
    return start if local_day(start, time_zone) == day else start + 3600 * 1000
