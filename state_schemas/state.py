"""Keyed state records and the records passed between keyed hops.

Each is stored or sent as compact JSON with a version `v`, never as a pickle, so a savepoint
written by one release restores under the next. `decode` rejects unknown versions loudly
rather than guessing.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from . import codec
from .codec import SchemaError


def _check(obj: dict, what: str, version: int) -> None:
    codec.require_version(obj, what, version)


@dataclass(frozen=True, slots=True)
class DecayedScores:
    """Scores that all decay from one shared timestamp `at` (epoch ms)."""

    at: int = 0
    scores: dict[str, float] = field(default_factory=dict)

    def to_list(self) -> list:
        return [self.at, self.scores]

    @classmethod
    def from_list(cls, raw: list) -> "DecayedScores":
        return cls(at=int(raw[0]), scores=dict(raw[1]))


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    item_id: str
    category_id: str | None
    behavior: str
    ts: int


@dataclass(frozen=True, slots=True)
class UserContext:
    """User-keyed state of the first hop: dedup window, recent items, decayed affinities."""

    VERSION = 1

    seen: dict[str, int] = field(default_factory=dict)  # event id -> event time
    history: tuple[HistoryEntry, ...] = ()
    category_affinity: DecayedScores = field(default_factory=DecayedScores)
    purchased: tuple[str, ...] = ()
    last_trigger_ts: int | None = None

    def encode(self) -> str:
        return codec.dumps_str({
            "v": self.VERSION,
            "seen": self.seen,
            "h": [[e.item_id, e.category_id, e.behavior, e.ts] for e in self.history],
            "aff": self.category_affinity.to_list(),
            "bought": list(self.purchased),
            "trig": self.last_trigger_ts,
        })

    @classmethod
    def decode(cls, raw: str | None) -> "UserContext":
        if raw is None:
            return cls()
        obj = codec.loads_object(raw, "user context state")
        _check(obj, "user context state", cls.VERSION)
        try:
            return cls(
                seen=obj["seen"],
                history=tuple(HistoryEntry(*entry) for entry in obj["h"]),
                category_affinity=DecayedScores.from_list(obj["aff"]),
                purchased=tuple(obj["bought"]),
                last_trigger_ts=obj["trig"],
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise SchemaError(f"user context state is damaged: {exc!r}") from None


@dataclass(frozen=True, slots=True)
class Neighbour:
    item_id: str
    category_id: str | None
    co_count: float


@dataclass(frozen=True, slots=True)
class ItemModel:
    """Item-keyed state: catalogue facts seen in events, decayed popularity, co-occurrence row."""

    VERSION = 1

    category_id: str | None = None
    price: float | None = None
    interactions: int = 0
    popularity: float = 0.0
    popularity_at: int = 0
    row: dict[str, list] = field(default_factory=dict)  # other item -> [co-count, category]

    def encode(self) -> str:
        return codec.dumps_str({"v": self.VERSION, "cat": self.category_id, "price": self.price,
                                "n": self.interactions, "pop": [self.popularity, self.popularity_at],
                                "row": self.row})

    @classmethod
    def decode(cls, raw: str | None) -> "ItemModel":
        if raw is None:
            return cls()
        obj = codec.loads_object(raw, "item model state")
        _check(obj, "item model state", cls.VERSION)
        try:
            return cls(category_id=obj["cat"], price=obj["price"], interactions=int(obj["n"]),
                       popularity=float(obj["pop"][0]), popularity_at=int(obj["pop"][1]), row=obj["row"])
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise SchemaError(f"item model state is damaged: {exc!r}") from None


@dataclass(frozen=True, slots=True)
class PushState:
    """User-keyed state of the push policy: caps per local day, recent sends, opt-out."""

    VERSION = 1

    # Each kind counts its own local day: orders reach this hop by a shorter path than marketing
    # candidates, so a shared day would make the caps depend on how the two paths interleave.
    marketing_day: int = -1  # days since epoch in the policy's time zone
    marketing_today: int = 0
    transactional_day: int = -1
    transactional_today: int = 0
    last_marketing_ts: int | None = None
    recent_items: dict[str, int] = field(default_factory=dict)  # item -> time it was notified
    transactional_keys: dict[str, int] = field(default_factory=dict)  # order:status -> time sent
    opted_out: bool = False

    def encode(self) -> str:
        return codec.dumps_str({"v": self.VERSION, "mday": self.marketing_day, "mk": self.marketing_today,
                                "tday": self.transactional_day, "tx": self.transactional_today, "last": self.last_marketing_ts,
                                "recent": self.recent_items, "txk": self.transactional_keys,
                                "out": self.opted_out})

    @classmethod
    def decode(cls, raw: str | None) -> "PushState":
        if raw is None:
            return cls()
        obj = codec.loads_object(raw, "push state")
        _check(obj, "push state", cls.VERSION)
        try:
            return cls(marketing_day=int(obj["mday"]), marketing_today=int(obj["mk"]),
                       transactional_day=int(obj["tday"]), transactional_today=int(obj["tx"]),
                       last_marketing_ts=obj["last"], recent_items=obj["recent"],
                       transactional_keys=obj["txk"], opted_out=bool(obj["out"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise SchemaError(f"push state is damaged: {exc!r}") from None


@dataclass(frozen=True, slots=True)
class ItemUpdate:
    """User hop -> item hop: one record per accepted behaviour event with an item."""

    VERSION = 1

    event: dict  # BehaviourEvent.to_dict()
    history: tuple[tuple[str, str | None], ...]  # the user's recent distinct (item, category) before this
    trigger: bool  # may this event lead to a marketing notification?
    affinity: tuple[tuple[str, float], ...] = ()  # top categories, only on triggers
    exclude: tuple[str, ...] = ()  # items the user already bought, only on triggers

    def encode(self) -> str:
        return codec.dumps_str({"v": self.VERSION, "e": self.event, "h": [list(p) for p in self.history],
                                "t": self.trigger,
                                "a": [list(pair) for pair in self.affinity], "x": list(self.exclude)})

    @classmethod
    def decode(cls, raw: str) -> "ItemUpdate":
        obj = codec.loads_object(raw, "item update")
        _check(obj, "item update", cls.VERSION)
        try:
            return cls(event=obj["e"], history=tuple((i, c) for i, c in obj["h"]), trigger=obj["t"],
                       affinity=tuple((c, s) for c, s in obj["a"]), exclude=tuple(obj["x"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise SchemaError(f"item update is damaged: {exc!r}") from None


@dataclass(frozen=True, slots=True)
class CandidateSet:
    """Item hop -> push hop: candidates related to the trigger item, with what scoring needs."""

    VERSION = 1

    event: dict
    trigger_category: str | None
    candidates: tuple[Neighbour, ...]
    affinity: tuple[tuple[str, float], ...]
    exclude: tuple[str, ...]

    def encode(self) -> str:
        return codec.dumps_str({"v": self.VERSION, "e": self.event, "tc": self.trigger_category,
                                "c": [[n.item_id, n.category_id, n.co_count] for n in self.candidates],
                                "a": [list(pair) for pair in self.affinity], "x": list(self.exclude)})

    @classmethod
    def decode(cls, raw: str) -> "CandidateSet":
        obj = codec.loads_object(raw, "candidate set")
        _check(obj, "candidate set", cls.VERSION)
        try:
            return cls(event=obj["e"], trigger_category=obj["tc"],
                       candidates=tuple(Neighbour(*c) for c in obj["c"]),
                       affinity=tuple((c, s) for c, s in obj["a"]), exclude=tuple(obj["x"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise SchemaError(f"candidate set is damaged: {exc!r}") from None
