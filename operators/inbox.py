"""What a notification writes to Redis: a per-user inbox that a serving layer reads.

Idempotent by construction: the member is the deterministic notification id, so a replay
after a failure rewrites the same entries instead of adding new ones.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from state_schemas.outputs import Notification

if TYPE_CHECKING:
    from jobs.config import RedisConfig


@dataclass(frozen=True, slots=True)
class InboxWrite:
    index_key: str  # sorted set: notification id by creation time
    body_key: str  # hash: notification id -> JSON
    notification_id: str
    score: float
    body: bytes
    keep: int
    ttl_s: int


def inbox_key(user_pseudonym: str, prefix: str) -> str:
    return f"{prefix}:inbox:{user_pseudonym}"


def inbox_write(notification: Notification, config: "RedisConfig") -> InboxWrite:
    key = inbox_key(notification.user, config.key_prefix)
    return InboxWrite(index_key=key, body_key=key + ":body", notification_id=notification.notification_id,
                      score=float(notification.source_event_time), body=notification.encode(),
                      keep=config.inbox_size, ttl_s=int(config.ttl_hours * 3600))
