"""Records the job writes: notifications, erasures (on the notifications topic), exposures, outcomes and dead
letters."""
from __future__ import annotations

import base64
import hashlib
import typing
from dataclasses import dataclass
from typing import ClassVar, Literal

import msgspec
from msgspec.structs import force_setattr

from . import codec
from .codec import EpochMs, NonEmptyText, Record

Channel = Literal["push", "email", "sms", "inbox"]
Kind = Literal["transactional", "marketing"]
CHANNELS = frozenset(typing.get_args(Channel))
KINDS = frozenset(typing.get_args(Kind))


def _text(limit: int):
    return typing.Annotated[str, msgspec.Meta(min_length=1, max_length=limit)]


class Notification(Record, frozen=True):
    """v2 added what a consumer needs to attribute outcomes and render links: the journey that sent
    it, the template and locale of its copy, a link per item (or to the order), and when it was due;
    v3 when its journey first meant to send it, so lateness is measured against the intent; v4 the experiments
    its shopper is in, so that what follows it is told apart by variant."""

    VERSION: ClassVar[int] = 4
    WHAT: ClassVar[str] = "notification"

    notification_id: NonEmptyText
    user: NonEmptyText  # pseudonym, never the raw user id
    channel: Channel
    kind: Kind
    title: typing.Annotated[str, msgspec.Meta(max_length=200)]  # empty for channels without one (SMS)
    body: _text(1000)
    item_ids: tuple[NonEmptyText, ...]
    reason: _text(500)
    created_at: EpochMs
    source_event_time: EpochMs
    source_event_id: NonEmptyText
    score: float = 0.0
    journey: NonEmptyText | None = None  # "recommendation", "cart_abandonment", "digest", "order_status"...
    template: NonEmptyText | None = None
    locale: NonEmptyText | None = None
    links: tuple[NonEmptyText, ...] = ()
    # The event time it was sent for: a recommendation waits for the session to end and quiet hours to pass.
    scheduled_at: EpochMs | None = None
    intended_at: EpochMs | None = None  # deferred by the session, quiet hours or a cap: scheduled_at is later
    experiments: tuple[tuple[NonEmptyText, NonEmptyText], ...] = ()  # (experiment, variant) pairs
    v: int = 4

    def __post_init__(self):
        self._check_version()
        if self.score != round(self.score, 6):  # six decimals say all a score can; the wire carries no more
            force_setattr(self, "score", round(self.score, 6))


class Exposure(Record, frozen=True):
    """A marketing message decided for a shopper in the global holdout and logged instead of sent: the control
    group's would-be sends, which uplift is measured against. On the exposures topic, never delivered."""

    VERSION: ClassVar[int] = 1
    WHAT: ClassVar[str] = "exposure"

    notification: Notification
    experiment: NonEmptyText = "holdout"
    v: int = 1

    def __post_init__(self):
        self._check_version()


class Outcome(Record, frozen=True):
    """A cart or purchase attributed to the last marketing message before it, within the attribution window, that
    named the item (`match` "item") or, weaker, its category ("category"). `holdout`: the message was a holdout
    exposure, never sent, so that outcomes of the control are counted alike. On the outcomes topic."""

    VERSION: ClassVar[int] = 1
    WHAT: ClassVar[str] = "outcome"

    notification_id: NonEmptyText
    user: NonEmptyText  # pseudonym
    behavior: Literal["cart", "purchase"]
    item_id: NonEmptyText
    event_id: NonEmptyText
    ts: EpochMs  # of the cart or purchase
    sent_at: EpochMs  # the message's scheduled_at
    match: Literal["item", "category"]
    journey: NonEmptyText
    channel: Channel
    template: NonEmptyText | None = None
    experiments: tuple[tuple[NonEmptyText, NonEmptyText], ...] = ()  # the shopper's, as for notifications
    holdout: bool = False
    v: int = 1

    def __post_init__(self):
        self._check_version()


class UserErased(msgspec.Struct, frozen=True):
    """An erased shopper on the notifications topic: a tombstone, the pseudonym as its key and no value.
    It follows everything sent to them before the erasure in their partition, so a consumer that keeps
    copies (the inbox writer, any sink) deletes them at that point and keeps what comes after."""

    user: str


# A dead letter's largest encoding: 1 MiB of raw bytes as base64 plus its other fields.
DEAD_LETTER_MAX_BYTES = 1_500_000


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A rejected input record: the reason plus the raw payload, whole up to 1 MiB (the broker's default
    largest record), so everything a default broker delivers is kept byte for byte; beyond that a prefix
    and the hash. The dead-letter topic and its sink allow records that large (`DEAD_LETTER_MAX_BYTES`)."""

    VERSION = 1

    reason: str
    stage: str
    raw: bytes
    rejected_at: int
    max_raw_bytes: int = 1_048_576

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
        version = obj.get("v", 1)
        if type(version) is not int or not 1 <= version <= cls.VERSION:
            raise codec.SchemaError(f"dead letter: unsupported schema version {version!r}")
        reason = obj.get("reason")
        if not isinstance(reason, str) or not reason:
            raise codec.SchemaError("dead letter: missing required field 'reason'")
        return obj
