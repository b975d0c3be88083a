"""IANA time zones, looked up once each. The `tzdata` package backs the system's zone files, so a
machine without them (a slim container) knows the same zones."""
from __future__ import annotations

from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    """Raises ValueError for a name that is not a known zone."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:  # ValueError: "../x" and other bad keys
        raise ValueError(f"unknown time zone {name!r}") from exc


def is_known_zone(name: str) -> bool:
    try:
        zone(name)
    except ValueError:
        return False
    return True
