"""Records the job writes: notifications and dead letters."""
from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from . import codec

CHANNELS = frozenset({"push", "email", "inbox"})
KINDS = frozenset({"transactional", "marketing"})


@dataclass(frozen=True, slots=True)
class Notification:
    VERSION = 1

    notification_id: str
    user: str  # pseudonym, never the raw user id
    channel: str
    kind: str
    title: str
    body: str
    item_ids: tuple[str, ...]
    reason: str
    created_at: int
    source_event_time: int
    source_event_id: str
    score: float = 0.0

    def to_dict(self) -> dict:
        return {"v": self.VERSION, "notification_id": self.notification_id, "user": self.user,
                "channel": self.channel, "kind": self.kind, "title": self.title, "body": self.body,
                "item_ids": list(self.item_ids), "reason": self.reason, "created_at": self.created_at,
                "source_event_time": self.source_event_time, "source_event_id": self.source_event_id,
                "score": round(self.score, 6)}

    def encode(self) -> bytes:
        return codec.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, obj: dict) -> "Notification":
        what = "notification"
        codec.require_version(obj, what, cls.VERSION)
        return cls(
            notification_id=codec.text(obj, "notification_id", what),
            user=codec.text(obj, "user", what),
            channel=codec.choice(obj, "channel", what, CHANNELS),
            kind=codec.choice(obj, "kind", what, KINDS),
            title=codec.text(obj, "title", what, max_len=200),
            body=codec.text(obj, "body", what, max_len=1000),
            item_ids=codec.text_list(obj, "item_ids", what),
            reason=codec.text(obj, "reason", what, max_len=500),
            created_at=codec.integer(obj, "created_at", what),
            source_event_time=codec.integer(obj, "source_event_time", what),
            source_event_id=codec.text(obj, "source_event_id", what),
            score=codec.number(obj, "score", what) or 0.0,
        )

    @classmethod
    def decode(cls, raw: bytes | str) -> "Notification":
        return cls.from_dict(codec.loads_object(raw, "notification"))


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A rejected input record: the reason plus the raw payload (a prefix and a hash if oversized)."""

    VERSION = 1

    reason: str
    stage: str
    raw: bytes
    rejected_at: int
    max_raw_bytes: int = 65536

    def to_dict(self) -> dict:
        kept = self.raw[: self.max_raw_bytes]
        out = {"v": self.VERSION, "reason": self.reason, "stage": self.stage, "rejected_at": self.rejected_at,
               "size": len(self.raw), "sha256": hashlib.sha256(self.raw).hexdigest(),
               "truncated": len(kept) < len(self.raw)}
        try:
            out["raw"] = kept.decode("utf-8")
        except UnicodeDecodeError:
            out["raw_base64"] = base64.b64encode(kept).decode()
        return out

    def encode(self) -> bytes:
        return codec.dumps(self.to_dict())

    @classmethod
    def decode(cls, raw: bytes | str) -> dict:
        """Dead letters are read by people and tools as plain dicts."""
        obj = codec.loads_object(raw, "dead letter")
        codec.require_version(obj, "dead letter", cls.VERSION)
        codec.text(obj, "reason", "dead letter", max_len=10_000)
        return obj


@dataclass(frozen=True, slots=True)
class ServingRecord:
    """What the scorer publishes for serving: a user's profile or top-N list, keyed by pseudonym.

    Each record replaces the previous one of its kind (idempotent on replay)."""

    VERSION = 1
    KINDS = frozenset({"profile", "topn", "erase"})  # erase: delete everything served about the user

    kind: str
    user: str  # pseudonym
    at: int  # event time it describes
    body: dict

    def encode(self) -> str:
        return codec.dumps_str({"v": self.VERSION, "kind": self.kind, "user": self.user, "at": self.at,
                                "body": self.body})

    @classmethod
    def decode(cls, raw: bytes | str) -> "ServingRecord":
        what = "serving record"
        obj = codec.loads_object(raw, what)
        codec.require_version(obj, what, cls.VERSION)
        body = obj.get("body")
        if not isinstance(body, dict):
            raise codec.SchemaError(f"{what}: field 'body' must be an object")
        return cls(kind=codec.choice(obj, "kind", what, cls.KINDS), user=codec.text(obj, "user", what),
                   at=codec.integer(obj, "at", what), body=body)
