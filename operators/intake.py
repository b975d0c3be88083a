"""Checks a raw record must pass before it enters keyed state; a failure carries the reason."""
from __future__ import annotations

from typing import Any, Callable

from config import IntakeConfig
from state_schemas.codec import SchemaError, tombstone
from state_schemas.events import InputEvent, decode_event


class Rejected(Exception):
    """The record goes to the dead-letter topic with `reason`."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def check_size(raw: bytes, limits: IntakeConfig) -> None:
    if len(raw) > limits.max_payload_bytes:
        raise Rejected(f"oversized payload: {len(raw)} bytes > {limits.max_payload_bytes}")


def check_time(ts: int, now_ms: int, limits: IntakeConfig) -> None:
    if ts < limits.min_event_time_ms:
        raise Rejected(f"absurd timestamp: ts={ts} is before {limits.min_event_time_ms}")
    if ts > now_ms + limits.max_future_skew_ms:
        raise Rejected(f"absurd timestamp: ts={ts} is more than {limits.max_future_skew_ms} ms "
                       f"ahead of the clock ({now_ms})")


def admitted(raw: bytes, now_ms: int, limits: IntakeConfig, decode: Callable[[bytes], Any]):
    """What every source checks: the size, the schema (`decode` raises SchemaError), the time."""
    deleted = tombstone(raw)
    if deleted is not None:
        raise Rejected(f"a record with no value (a tombstone) for key {deleted[1]!r}: only the users topic "
                       "deletes records by tombstone")
    check_size(raw, limits)
    try:
        record = decode(raw)
    except SchemaError as exc:
        raise Rejected(str(exc)) from None
    check_time(record.ts, now_ms, limits)
    return record


def admit(raw: bytes, now_ms: int, limits: IntakeConfig) -> InputEvent:
    return admitted(raw, now_ms, limits, decode_event)
