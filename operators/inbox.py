"""The user's inbox in Redis, written from what the notifications topic committed (`notify_engine.inbox`
reads it with read_committed), so the inbox never shows a notification a failure rolled back.

A notification joins its user's inbox, which keeps the newest `redis.inbox_size`; an erasure (the
topic's tombstone for the user, after what was sent before it) empties it. Both are idempotent, and
records of one user come in topic order, so reading the topic again from any earlier offset ends in
the same inbox.
"""
from __future__ import annotations

from config import RedisConfig
from state_schemas.outputs import Notification, UserErased
from state_schemas.redis_keys import RedisKeys

from .steps import DeleteKeys, StoreInInbox


def inbox_effects(record: Notification | UserErased, redis: RedisConfig) -> tuple:
    keys = RedisKeys(redis.key_prefix)
    if isinstance(record, UserErased):
        return (DeleteKeys((keys.inbox(record.user), keys.inbox_bodies(record.user)), ()),)
    return (StoreInInbox(index_key=keys.inbox(record.user), body_key=keys.inbox_bodies(record.user),
                         notification=record, keep=redis.inbox_size, ttl_s=int(redis.ttl_hours * 3600)),)
