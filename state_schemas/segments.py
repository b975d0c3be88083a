"""Records of the user segmenter: its global model and the messages to and from it.

Like every record, each is compact JSON with a version `v`, never a pickle. The model is the
one piece of global state, so `decode` checks its shape as well as its types: a damaged model
must fail loudly at restore, not poison every later assignment.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from . import codec
from .codec import SchemaError
from .state import DecayedScores


def _finite(value, what: str, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SchemaError(f"{what}: {name} must hold finite numbers, got {value!r}")
    return float(value)


def _list(value, what: str, name: str) -> list:
    if not isinstance(value, list):
        raise SchemaError(f"{what}: {name} must be a list, got {type(value).__name__}")
    return value


def _vector(value, what: str, name: str) -> tuple[float, ...]:
    return tuple(_finite(x, what, name) for x in _list(value, what, name))


def _trend(value, what: str) -> DecayedScores:
    if not isinstance(value, list) or len(value) != 2 or type(value[0]) is not int or not isinstance(value[1], dict):
        raise SchemaError(f"{what}: a trend must be [at, {{item: score}}], got {value!r}")
    return DecayedScores(at=value[0], scores={item: _finite(score, what, "trend scores")
                                              for item, score in value[1].items()})


def _pairs(value, what: str) -> tuple[tuple[str, float], ...]:
    out = []
    for pair in _list(value, what, "trend"):
        if not isinstance(pair, list) or len(pair) != 2 or not isinstance(pair[0], str) or not pair[0]:
            raise SchemaError(f"{what}: trend entries must be [item, score], got {pair!r}")
        out.append((pair[0], _finite(pair[1], what, "trend")))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class SegmentModel:
    """Streaming k-means over profile vectors: one centroid, decayed weight and item trend per segment."""

    VERSION = 1

    centroids: tuple[tuple[float, ...], ...] = ()  # empty until the first vectors seed it
    weights: tuple[float, ...] = ()  # decayed count of vectors behind each centroid
    trends: tuple[DecayedScores, ...] = ()  # what each segment's users interacted with lately
    updates: int = 0

    def encode(self) -> str:
        return codec.dumps_str({"v": self.VERSION, "c": [list(c) for c in self.centroids], "w": list(self.weights),
                                "t": [t.to_list() for t in self.trends], "n": self.updates})

    @classmethod
    def decode(cls, raw: str | None) -> "SegmentModel":
        if raw is None:
            return cls()
        obj = codec.loads_object(raw, "segment model state")
        codec.require_version(obj, "segment model state", cls.VERSION)
        damaged = "segment model state is damaged"
        try:
            centroids = tuple(_vector(c, damaged, "centroids") for c in _list(obj["c"], damaged, "centroids"))
            weights = _vector(obj["w"], damaged, "weights")
            trends = tuple(_trend(t, damaged) for t in _list(obj["t"], damaged, "trends"))
            updates = obj["n"]
        except KeyError as exc:
            raise SchemaError(f"{damaged}: missing field {exc}") from None
        # A model that does not hang together would mis-assign silently; better to refuse it at restore.
        problems = [
            (len({len(c) for c in centroids}) > 1, "centroids differ in dimension"),
            (any(not c for c in centroids), "a centroid is an empty vector"),
            (len(weights) != len(centroids) or len(trends) != len(centroids),
             f"{len(centroids)} centroids, {len(weights)} weights, {len(trends)} trends"),
            (any(w <= 0 for w in weights), "weights must be > 0"),
            (type(updates) is not int or updates < 0, f"updates must be an integer >= 0, got {updates!r}"),
        ]
        for broken, reason in problems:
            if broken:
                raise SchemaError(f"{damaged}: {reason}")
        return cls(centroids=centroids, weights=weights, trends=trends, updates=updates)


@dataclass(frozen=True, slots=True)
class SegmentUpdate:
    """User hop -> segmenter: the user's profile vector and recent items, at most once per update gap."""

    VERSION = 1

    user_id: str
    ts: int
    vector: tuple[float, ...]
    items: tuple[str, ...] = ()

    def encode(self) -> str:
        return codec.dumps_str({"v": self.VERSION, "u": self.user_id, "ts": self.ts, "x": list(self.vector),
                                "i": list(self.items)})

    @classmethod
    def decode(cls, raw: str) -> "SegmentUpdate":
        what = "segment update"
        obj = codec.loads_object(raw, what)
        codec.require_version(obj, what, cls.VERSION)
        return cls(user_id=codec.text(obj, "u", what), ts=codec.integer(obj, "ts", what),
                   vector=_vector(obj.get("x"), what, "vector"),
                   items=codec.text_list(obj, "i", what, max_items=10_000))


@dataclass(frozen=True, slots=True)
class SegmentAssignment:
    """Segmenter -> scorer: the user's segment and its trend, strongest item first and scored 1.0."""

    VERSION = 1

    user_id: str
    ts: int
    segment: int
    trend: tuple[tuple[str, float], ...] = ()

    def encode(self) -> str:
        return codec.dumps_str({"v": self.VERSION, "u": self.user_id, "ts": self.ts, "s": self.segment,
                                "t": [list(pair) for pair in self.trend]})

    @classmethod
    def decode(cls, raw: str) -> "SegmentAssignment":
        what = "segment assignment"
        obj = codec.loads_object(raw, what)
        codec.require_version(obj, what, cls.VERSION)
        segment = codec.integer(obj, "s", what)
        if segment < 0:
            raise SchemaError(f"{what}: field 's' must be >= 0, got {segment}")
        return cls(user_id=codec.text(obj, "u", what), ts=codec.integer(obj, "ts", what), segment=segment,
                   trend=_pairs(obj.get("t"), what))
