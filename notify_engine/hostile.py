"""Hostile records for the events topic: what a broken producer, a fuzzer or an attacker might write.

Each is invalid for a reason the intake must name (none is a valid event in disguise), drawn from
seeded `random.Random`, so a seed always gives the same records. Tests mix them into a real replay
and check that every one is dead-lettered byte for byte and that the valid events decide as before.

Records that carry a plausible time carry one up to a day before `stamped_ms`: the job reads event time
per partition before admission (`jobs/ordering.py`), so a well-formed record stamped ahead of the valid
events around it moves event time as a valid one would. A broken producer writing live stamps the live
time; a replay of old data mixed with records stamped now is not that, so a test stamps them with its
replay's start. Absurd times are absurd against `now_ms`, the wall clock, as admission judges them.
"""
from __future__ import annotations

import random
from typing import Callable

import orjson

from config import IntakeConfig

# A valid behaviour event to spoil; ids are the hostile generator's own, so no real shopper is touched.
_BASE = {"v": 1, "type": "behaviour", "event_id": "hostile", "user_id": "hostile-shopper", "behavior": "view",
         "item_id": "hostile-item", "category_id": "c", "ts": 1_700_000_000_000}
_WRONG_TYPES = ([], {}, True, 1.5, "text", None, -1, [1, [2]], {"nested": {"x": 1}})
_CONTROL_IDS = ("\x00", "a\x1b[31mb", "x\x7f", "\x9b6n", "line\nbreak")
BROKER_MAX_RECORD_BYTES = 1_000_000  # under the broker's and the producer's 1 MiB defaults, with headroom


def _event(rng: random.Random, stamped_ms: int, **changes) -> dict:
    record = dict(_BASE, event_id=f"hostile-{rng.getrandbits(48):x}", ts=stamped_ms - rng.randrange(1, 86_400_000))
    record.update(changes)
    return record


def _json(record: dict) -> bytes:
    return orjson.dumps(record)


def _random_bytes(rng, now_ms, stamped_ms, limits):
    # Never a JSON object: the first byte is not "{" (nor whitespace before one).
    first = rng.choice([b for b in range(256) if b not in b"{ \t\r\n"])
    return bytes([first]) + rng.randbytes(rng.randrange(0, 200))


def _not_utf8(rng, now_ms, stamped_ms, limits):
    raw = _json(_event(rng, stamped_ms))
    at = raw.index(b"hostile-shopper") + rng.randrange(0, 15)
    return raw[:at] + rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xe9"]) + raw[at:]


def _nested(rng, now_ms, stamped_ms, limits):
    depth = rng.randrange(1_100, (limits.max_payload_bytes - 100) // 2)
    return b'{"type":"behaviour","extra":' + b"[" * depth + b"]" * depth + b"}"


def _deep_nested(rng, now_ms, stamped_ms, limits):
    # 10 000 deep is over the payload limit, so it is refused before any parser recurses into it.
    return b'{"type":"behaviour","event_id":"' + f"{rng.getrandbits(32):x}".encode() + b'","extra":' + \
        b"[" * 10_000 + b"]" * 10_000 + b"}"


def _oversized(rng, now_ms, stamped_ms, limits):
    # Mostly a few times the limit; one in 50 up to what the broker accepts in one record.
    top = BROKER_MAX_RECORD_BYTES if rng.random() < 0.02 else 4 * limits.max_payload_bytes
    size = rng.randrange(limits.max_payload_bytes + 1, top)
    return _json(_event(rng, stamped_ms, query="z" * size, behavior="search"))


def _bad_number(rng, now_ms, stamped_ms, limits):
    token = rng.choice([b"NaN", b"Infinity", b"-Infinity", b"1e400", b"1" + b"0" * 40, b"-" + b"9" * 30, b"0x10"])
    return _json(_event(rng, stamped_ms, ts="<ts>")).replace(b'"<ts>"', token)


def _wrong_type(rng, now_ms, stamped_ms, limits):
    field = rng.choice(["event_id", "user_id", "behavior", "item_id", "ts", "type", "v", "price"])
    value = rng.choice([v for v in _WRONG_TYPES if not (field == "price" and v is None)])  # no price is valid
    if field in ("event_id", "user_id", "item_id") and type(value) in (int, str):
        value = [value]  # an integer id or a string is a valid id
    if field == "price" and type(value) in (int, float) and value >= 0:
        value = -value - 1
    return _json(_event(rng, stamped_ms, **{field: value}))


def _missing_field(rng, now_ms, stamped_ms, limits):
    record = _event(rng, stamped_ms)
    del record[rng.choice(["event_id", "user_id", "behavior", "ts", "type", "item_id"])]
    return _json(record)


def _control_characters(rng, now_ms, stamped_ms, limits):
    return _json(_event(rng, stamped_ms, **{rng.choice(["user_id", "event_id", "item_id"]): rng.choice(_CONTROL_IDS)}))


def _absurd_time(rng, now_ms, stamped_ms, limits):
    ts = rng.choice([rng.randrange(0, limits.min_event_time_ms),
                     now_ms + limits.max_future_skew_ms + rng.randrange(1, 10 ** 12)])
    return _json(_event(rng, stamped_ms, ts=ts))


KINDS: dict[str, Callable[[random.Random, int, int, IntakeConfig], bytes]] = {
    "random_bytes": _random_bytes, "not_utf8": _not_utf8, "nested": _nested, "deep_nested": _deep_nested,
    "oversized": _oversized,
    "bad_number": _bad_number, "wrong_type": _wrong_type, "missing_field": _missing_field,
    "control_characters": _control_characters, "absurd_time": _absurd_time,
}


def hostile_records(count: int, seed: int, now_ms: int, limits: IntakeConfig,
                    stamped_ms: int | None = None) -> list[tuple[str, bytes]]:
    """`count` (kind, payload) pairs, the kinds in turn; plausible times up to a day before `stamped_ms`
    (default: `now_ms`)."""
    rng = random.Random(f"hostile-{seed}")
    kinds, stamp = sorted(KINDS), now_ms if stamped_ms is None else stamped_ms
    return [(kinds[n % len(kinds)], KINDS[kinds[n % len(kinds)]](rng, now_ms, stamp, limits)) for n in range(count)]
