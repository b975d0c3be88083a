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
    """User-keyed state of the first hop: dedup window, recent items, the decayed behaviour profile."""

    VERSION = 2

    seen: dict[str, int] = field(default_factory=dict)  # event id -> event time
    history: tuple[HistoryEntry, ...] = ()
    category_affinity: DecayedScores = field(default_factory=DecayedScores)
    purchased: tuple[str, ...] = ()
    last_trigger_ts: int | None = None
    brand_affinity: DecayedScores = field(default_factory=DecayedScores)
    price_affinity: DecayedScores = field(default_factory=DecayedScores)  # by price band
    active_hours: DecayedScores = field(default_factory=DecayedScores)  # "0".."23", UTC hour of day
    last_purchase: dict[str, list] = field(default_factory=dict)  # category -> [item, event time]
    last_segment_ts: int | None = None

    def encode(self) -> str:
        return codec.dumps_str({
            "v": self.VERSION,
            "seen": self.seen,
            "h": [[e.item_id, e.category_id, e.behavior, e.ts] for e in self.history],
            "aff": self.category_affinity.to_list(),
            "bought": list(self.purchased),
            "trig": self.last_trigger_ts,
            "brand": self.brand_affinity.to_list(),
            "price": self.price_affinity.to_list(),
            "hours": self.active_hours.to_list(),
            "lastbuy": self.last_purchase,
            "seg": self.last_segment_ts,
        })

    @classmethod
    def decode(cls, raw: str | None) -> "UserContext":
        if raw is None:
            return cls()
        obj = codec.loads_object(raw, "user context state")
        _check(obj, "user context state", cls.VERSION)
        empty = [0, {}]
        try:
            # v1 had no brand, price, hour or last-purchase profile: they start empty.
            return cls(
                seen=obj["seen"],
                history=tuple(HistoryEntry(*entry) for entry in obj["h"]),
                category_affinity=DecayedScores.from_list(obj["aff"]),
                purchased=tuple(obj["bought"]),
                last_trigger_ts=obj["trig"],
                brand_affinity=DecayedScores.from_list(obj.get("brand", empty)),
                price_affinity=DecayedScores.from_list(obj.get("price", empty)),
                active_hours=DecayedScores.from_list(obj.get("hours", empty)),
                last_purchase=dict(obj.get("lastbuy", {})),
                last_segment_ts=obj.get("seg"),
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise SchemaError(f"user context state is damaged: {exc!r}") from None


def _pairs(raw) -> tuple[tuple[str, float], ...]:
    return tuple((str(key), float(value)) for key, value in raw)


@dataclass(frozen=True, slots=True)
class Neighbour:
    item_id: str
    category_id: str | None
    similarity: float


@dataclass(frozen=True, slots=True)
class ItemCard:
    """What other keys may know of an item: published by its item hop, read through a cache.

    Counts are absolute values, so rewriting a card after a replay is idempotent."""

    VERSION = 1

    interactions: int = 0
    popularity: float = 0.0
    popularity_at: int = 0
    category_id: str | None = None
    title: str | None = None
    in_stock: bool = True  # an item without a catalogue record is assumed available
    vector: tuple[tuple[str, float], ...] = ()  # TF-IDF terms, unit length
    listed_at: int | None = None  # catalogue time; None: known only from events

    def to_dict(self) -> dict:
        return {"v": self.VERSION, "n": self.interactions, "pop": [self.popularity, self.popularity_at],
                "cat": self.category_id, "t": self.title, "s": self.in_stock,
                "vec": [list(p) for p in self.vector], "l": self.listed_at}

    def encode(self) -> str:
        return codec.dumps_str(self.to_dict())

    @classmethod
    def decode(cls, raw: str | bytes) -> "ItemCard":
        return cls.from_dict(codec.loads_object(raw, "item card"))

    @classmethod
    def from_dict(cls, obj: dict) -> "ItemCard":
        if not isinstance(obj, dict):
            raise SchemaError("item card must be a JSON object")
        _check(obj, "item card", cls.VERSION)
        try:
            return cls(interactions=int(obj["n"]), popularity=float(obj["pop"][0]), popularity_at=int(obj["pop"][1]),
                       category_id=obj["cat"], title=obj["t"], in_stock=bool(obj["s"]), vector=_pairs(obj["vec"]),
                       listed_at=obj["l"])
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise SchemaError(f"item card is damaged: {exc!r}") from None


@dataclass(frozen=True, slots=True)
class ItemModel:
    """Item-keyed state: catalogue join, decayed popularity, co-occurrence row, top-K neighbours."""

    VERSION = 2

    category_id: str | None = None
    price: float | None = None
    interactions: int = 0
    popularity: float = 0.0
    popularity_at: int = 0
    row: dict[str, list] = field(default_factory=dict)  # other item -> [co-count, category]
    title: str | None = None
    brand: str | None = None
    stock: int | None = None
    listed_at: int | None = None  # time of the catalogue record joined, None if none arrived yet
    vector: tuple[tuple[str, float], ...] = ()
    neighbours: tuple[Neighbour, ...] = ()  # top-K as of the last refresh

    def card(self) -> ItemCard:
        return ItemCard(interactions=self.interactions, popularity=self.popularity, popularity_at=self.popularity_at,
                        category_id=self.category_id, title=self.title, in_stock=self.stock != 0, vector=self.vector,
                        listed_at=self.listed_at)

    def encode(self) -> str:
        return codec.dumps_str({"v": self.VERSION, "cat": self.category_id, "price": self.price,
                                "n": self.interactions, "pop": [self.popularity, self.popularity_at],
                                "row": self.row, "t": self.title, "b": self.brand, "s": self.stock,
                                "l": self.listed_at, "vec": [list(p) for p in self.vector],
                                "nb": [[n.item_id, n.category_id, n.similarity] for n in self.neighbours]})

    @classmethod
    def decode(cls, raw: str | None) -> "ItemModel":
        if raw is None:
            return cls()
        obj = codec.loads_object(raw, "item model state")
        _check(obj, "item model state", cls.VERSION)
        try:
            # v1 had no catalogue facts and no neighbour list: both fill in as events and records arrive.
            return cls(category_id=obj["cat"], price=obj["price"], interactions=int(obj["n"]),
                       popularity=float(obj["pop"][0]), popularity_at=int(obj["pop"][1]), row=obj["row"],
                       title=obj.get("t"), brand=obj.get("b"), stock=obj.get("s"), listed_at=obj.get("l"),
                       vector=_pairs(obj.get("vec", ())),
                       neighbours=tuple(Neighbour(i, c, float(s)) for i, c, s in obj.get("nb", ())))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise SchemaError(f"item model state is damaged: {exc!r}") from None


@dataclass(frozen=True, slots=True)
class PushState:
    """User-keyed state of the scorer and push policy: content vector, segment, caps, recent sends, opt-out."""

    VERSION = 2

    # Each kind counts its own local day: orders reach this hop by a shorter path than marketing
    # candidates, so a shared day would make the caps depend on how the two paths interleave.
    marketing_day: int = -1  # days since epoch in the policy's time zone
    marketing_today: int = 0
    transactional_day: int = -1
    transactional_today: int = 0
    last_marketing_ts: int | None = None
    recent_items: dict[str, list] = field(default_factory=dict)  # item -> [time notified, category]
    transactional_keys: dict[str, int] = field(default_factory=dict)  # order:status -> time sent
    opted_out: bool = False
    content: DecayedScores = field(default_factory=DecayedScores)  # decayed sum of item TF-IDF vectors
    segment: int | None = None
    segment_trend: tuple[tuple[str, float], ...] = ()

    def encode(self) -> str:
        return codec.dumps_str({"v": self.VERSION, "mday": self.marketing_day, "mk": self.marketing_today,
                                "tday": self.transactional_day, "tx": self.transactional_today,
                                "last": self.last_marketing_ts, "recent": self.recent_items,
                                "txk": self.transactional_keys, "out": self.opted_out,
                                "content": self.content.to_list(), "seg": self.segment,
                                "segtrend": [list(p) for p in self.segment_trend]})

    @classmethod
    def decode(cls, raw: str | None) -> "PushState":
        if raw is None:
            return cls()
        obj = codec.loads_object(raw, "push state")
        version = codec.require_version(obj, "push state", cls.VERSION)
        try:
            recent = obj["recent"]
            if version == 1:  # v1 kept only the time an item was notified
                recent = {item: [ts, None] for item, ts in recent.items()}
            return cls(marketing_day=int(obj["mday"]), marketing_today=int(obj["mk"]),
                       transactional_day=int(obj["tday"]), transactional_today=int(obj["tx"]),
                       last_marketing_ts=obj["last"], recent_items=recent,
                       transactional_keys=obj["txk"], opted_out=bool(obj["out"]),
                       content=DecayedScores.from_list(obj.get("content", [0, {}])), segment=obj.get("seg"),
                       segment_trend=_pairs(obj.get("segtrend", ())))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SchemaError(f"push state is damaged: {exc!r}") from None


@dataclass(frozen=True, slots=True)
class UserSummary:
    """The first user hop's profile, sent along with a trigger: what scoring and serving need of it."""

    categories: tuple[tuple[str, float], ...] = ()  # normalised so the strongest is 1.0
    brands: tuple[tuple[str, float], ...] = ()
    price_bands: tuple[tuple[str, float], ...] = ()
    active_hours: tuple[tuple[str, float], ...] = ()
    purchased: tuple[str, ...] = ()
    recent: tuple[str, ...] = ()  # recent distinct items, newest last
    last_purchase: dict[str, list] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"c": [list(p) for p in self.categories], "b": [list(p) for p in self.brands],
                "p": [list(p) for p in self.price_bands], "h": [list(p) for p in self.active_hours],
                "x": list(self.purchased), "r": list(self.recent), "lb": self.last_purchase}

    @classmethod
    def from_dict(cls, obj: dict) -> "UserSummary":
        return cls(categories=_pairs(obj["c"]), brands=_pairs(obj["b"]), price_bands=_pairs(obj["p"]),
                   active_hours=_pairs(obj["h"]), purchased=tuple(obj["x"]), recent=tuple(obj["r"]),
                   last_purchase=dict(obj["lb"]))


@dataclass(frozen=True, slots=True)
class ItemUpdate:
    """User hop -> item hop: one record per accepted behaviour event with an item."""

    VERSION = 2

    event: dict  # BehaviourEvent.to_dict()
    history: tuple[tuple[str, str | None], ...]  # the user's recent distinct (item, category) before this
    trigger: bool  # may this event lead to a marketing notification?
    summary: UserSummary | None = None  # only on triggers
    repeat: bool = False  # the item is already among the user's recent items: no new co-occurrence

    def encode(self) -> str:
        return codec.dumps_str({"v": self.VERSION, "e": self.event, "h": [list(p) for p in self.history],
                                "t": self.trigger, "s": self.summary.to_dict() if self.summary else None,
                                "r": self.repeat})

    @classmethod
    def decode(cls, raw: str) -> "ItemUpdate":
        obj = codec.loads_object(raw, "item update")
        _check(obj, "item update", cls.VERSION)
        try:
            summary = obj.get("s")
            return cls(event=obj["e"], history=tuple((i, c) for i, c in obj["h"]), trigger=obj["t"],
                       summary=UserSummary.from_dict(summary) if summary else None, repeat=bool(obj["r"]))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SchemaError(f"item update is damaged: {exc!r}") from None


@dataclass(frozen=True, slots=True)
class ItemSignal:
    """Item hop -> scorer: the event with the item's card, and on triggers its neighbours and the profile."""

    VERSION = 1

    event: dict
    card: ItemCard
    trigger: bool
    neighbours: tuple[Neighbour, ...] = ()
    summary: UserSummary | None = None

    def encode(self) -> str:
        return codec.dumps_str({"v": self.VERSION, "e": self.event, "card": self.card.to_dict(), "t": self.trigger,
                                "nb": [[n.item_id, n.category_id, n.similarity] for n in self.neighbours],
                                "s": self.summary.to_dict() if self.summary else None})

    @classmethod
    def decode(cls, raw: str) -> "ItemSignal":
        obj = codec.loads_object(raw, "item signal")
        _check(obj, "item signal", cls.VERSION)
        try:
            summary = obj.get("s")
            return cls(event=obj["e"], card=ItemCard.from_dict(obj["card"]), trigger=bool(obj["t"]),
                       neighbours=tuple(Neighbour(i, c, float(s)) for i, c, s in obj["nb"]),
                       summary=UserSummary.from_dict(summary) if summary else None)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SchemaError(f"item signal is damaged: {exc!r}") from None


@dataclass(frozen=True, slots=True)
class ListedItem:
    """Catalogue weigher -> item hop: a catalogue record with its TF-IDF vector."""

    VERSION = 1

    item: dict  # CatalogItem.to_dict()
    vector: tuple[tuple[str, float], ...]

    def encode(self) -> str:
        return codec.dumps_str({"v": self.VERSION, "i": self.item, "vec": [list(p) for p in self.vector]})

    @classmethod
    def decode(cls, raw: str) -> "ListedItem":
        obj = codec.loads_object(raw, "listed item")
        _check(obj, "listed item", cls.VERSION)
        try:
            return cls(item=obj["i"], vector=_pairs(obj["vec"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise SchemaError(f"listed item is damaged: {exc!r}") from None
