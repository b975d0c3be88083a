"""Readers for shoppers' behaviour logs in the two public formats the project accepts.

* Taobao UserBehavior: no header (one is tolerated), columns
  `user_id,item_id,category_id,behavior,timestamp`, behavior pv/cart/fav/buy, epoch seconds.
* REES46 "eCommerce behavior data from multi category store": a header naming
  `event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session`
  (any order; category_id, category_code, brand, price and user_session may be absent),
  event_time like `2019-10-01 00:00:00 UTC` or ISO 8601 with an offset.

Mapping: pv -> view, fav -> favourite, buy -> purchase, cart -> cart; REES46 view/cart/purchase
map to themselves and `remove_from_cart` rows are skipped (the schema has no such behaviour;
they are counted under their own reason). REES46 uses `category_code` (e.g.
"electronics.smartphone") as the category when present, since it names the category; otherwise
the numeric `category_id`. Empty brand, price or session become absent.

Event ids are a digest of what identifies an event - user, behaviour, item and time - so a row
logged twice gets the same id and the job's dedup drops the copy. REES46 rows that differ only
in `user_session` count as the same event too: times are whole seconds, and one shopper
acting on one product twice within a second under two session ids is a logging artefact, not
two decisions worth two notifications.

Rows that cannot become a valid event yield nothing; `read_events_with_stats` returns, next to
the events, a `ReadStats` that counts them by reason. It fills in while the events are
consumed and is complete once they are exhausted (or `limit` is reached).
"""
from __future__ import annotations

import csv
import hashlib
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterable, Iterator, Literal

from state_schemas.codec import SchemaError
from state_schemas.events import BehaviourEvent

Format = Literal["taobao", "rees46"]

TAOBAO_COLUMNS = ("user_id", "item_id", "category_id", "behavior", "timestamp")
TAOBAO_BEHAVIOURS = {"pv": "view", "cart": "cart", "fav": "favourite", "buy": "purchase"}
REES46_REQUIRED_COLUMNS = ("event_time", "event_type", "product_id", "user_id")
REES46_OPTIONAL_COLUMNS = ("category_id", "category_code", "brand", "price", "user_session")
REES46_BEHAVIOURS = {"view": "view", "cart": "cart", "purchase": "purchase"}
REES46_UNMODELLED = frozenset({"remove_from_cart"})

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MILLISECOND = timedelta(milliseconds=1)


@dataclass
class ReadStats:
    rows: int = 0  # data rows read, header excluded
    events: int = 0
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> rows
    first_skipped_line: dict[str, int] = field(default_factory=dict)  # reason -> line number, to find an example

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def skip(self, reason: str, line: int) -> None:
        self.skipped[reason] += 1
        self.first_skipped_line.setdefault(reason, line)


class _Rejected(Exception):
    """A row that cannot become an event; the message is the reason counted in ReadStats."""


def detect_format(path: str | Path) -> Format:
    """Tell the format from the first line; raises ValueError saying what was expected."""
    with _open(path) as handle:
        first = next(csv.reader(handle), None)
    if first is None:
        raise ValueError(f"{path}: the file is empty")
    columns = [value.strip() for value in first]
    if set(REES46_REQUIRED_COLUMNS) <= set(columns):
        return "rees46"
    if tuple(columns) == TAOBAO_COLUMNS or (len(columns) == 5 and columns[3] in TAOBAO_BEHAVIOURS):
        return "taobao"
    raise ValueError(
        f"{path}: cannot tell the format from the first line {','.join(first)[:200]!r}. Expected either a "
        f"REES46 header with columns {','.join(REES46_REQUIRED_COLUMNS)} (plus optionally "
        f"{','.join(REES46_OPTIONAL_COLUMNS)}), or a Taobao UserBehavior row {','.join(TAOBAO_COLUMNS)} "
        f"with behavior one of {'/'.join(TAOBAO_BEHAVIOURS)} (a header is optional)")


def read_events(path: str | Path, fmt: Format | Literal["auto"] = "auto",
                limit: int | None = None) -> Iterator[BehaviourEvent]:
    """The file's events in file order; `limit` caps how many are yielded."""
    return read_events_with_stats(path, fmt, limit)[0]


def read_events_with_stats(path: str | Path, fmt: Format | Literal["auto"] = "auto",
                           limit: int | None = None) -> tuple[Iterator[BehaviourEvent], ReadStats]:
    """Like `read_events`, plus counts of rows read and skipped. The format is checked now, so
    a wrong file fails here rather than at the first event."""
    if fmt == "auto":
        fmt = detect_format(path)
    if fmt not in ("taobao", "rees46"):
        raise ValueError(f"unknown format {fmt!r}: expected 'auto', 'taobao' or 'rees46'")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    positions = _rees46_header(path) if fmt == "rees46" else {}
    stats = ReadStats()
    return _events(path, fmt, positions, limit, stats), stats


def sorted_by_time(events: Iterable[BehaviourEvent]) -> list[BehaviourEvent]:
    """Events by time; stable, so equal times keep file order (the Taobao small file is grouped
    by user, not sorted)."""
    return sorted(events, key=lambda event: event.ts)


def _open(path: str | Path):
    # utf-8-sig drops a byte-order mark; undecodable bytes become U+FFFD and their row is skipped.
    return open(path, newline="", encoding="utf-8-sig", errors="replace")


def _events(path: str | Path, fmt: Format, rees46_positions: dict[str, int], limit: int | None,
            stats: ReadStats) -> Iterator[BehaviourEvent]:
    if limit == 0:
        return
    with _open(path) as handle:
        # Taobao fields never hold quotes; reading them literally keeps a stray quote from
        # swallowing the following rows.
        reader = csv.reader(handle, quoting=csv.QUOTE_NONE) if fmt == "taobao" else csv.reader(handle)
        if fmt == "rees46":
            next(reader)  # the header, read by _rees46_header
        to_event = _taobao_parser() if fmt == "taobao" else _rees46_parser(rees46_positions)
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                stats.rows += 1
                stats.skip(f"unreadable CSV: {exc}", reader.line_num)
                continue
            if not row:
                continue  # a blank line is no row
            if fmt == "taobao" and stats.rows == 0 and tuple(v.strip() for v in row) == TAOBAO_COLUMNS:
                continue  # an optional header
            stats.rows += 1
            try:
                if any("\ufffd" in value for value in row):
                    raise _Rejected("not valid UTF-8")
                event = to_event(row)
            except (_Rejected, SchemaError) as exc:
                stats.skip(str(exc), reader.line_num)
                continue
            stats.events += 1
            yield event
            if stats.events == limit:
                return


def _rees46_header(path: str | Path) -> dict[str, int]:
    """Column name -> position."""
    with _open(path) as handle:
        header = next(csv.reader(handle), None) or []
    positions = {name.strip(): index for index, name in enumerate(header)}
    missing = [name for name in REES46_REQUIRED_COLUMNS if name not in positions]
    if missing:
        raise ValueError(f"{path}: REES46 header lacks column(s) {', '.join(missing)}")
    return positions


def _event_id(prefix: str, *identity: str) -> str:
    return prefix + hashlib.sha1("\x1f".join(identity).encode()).hexdigest()[:16]


def _taobao_parser() -> Callable[[list[str]], BehaviourEvent]:
    def parse(row: list[str]) -> BehaviourEvent:
        if len(row) != len(TAOBAO_COLUMNS):
            raise _Rejected(f"expected {len(TAOBAO_COLUMNS)} columns")
        user, item, category, behaviour, seconds = (value.strip() for value in row)
        if behaviour not in TAOBAO_BEHAVIOURS:
            raise _Rejected("unknown behavior (expected pv, cart, fav or buy)")
        if not (seconds.isascii() and seconds.isdigit()):
            raise _Rejected("timestamp is not epoch seconds")
        return BehaviourEvent.from_dict({
            "event_id": _event_id("tb-", user, behaviour, item, seconds),
            "user_id": user,
            "behavior": TAOBAO_BEHAVIOURS[behaviour],
            "ts": int(seconds) * 1000,
            "item_id": item,
            "category_id": category or None,
        })
    return parse


def _rees46_parser(positions: dict[str, int]) -> Callable[[list[str]], BehaviourEvent]:
    width = len(positions)

    def parse(row: list[str]) -> BehaviourEvent:
        if len(row) != width:
            raise _Rejected(f"expected {width} columns as in the header")

        def value(name: str) -> str | None:
            index = positions.get(name)
            text = row[index].strip() if index is not None else ""
            return text or None

        event_type = value("event_type") or ""
        if event_type in REES46_UNMODELLED:
            raise _Rejected(f"event_type {event_type} is not modelled")
        if event_type not in REES46_BEHAVIOURS:
            raise _Rejected("unknown event_type (expected view, cart or purchase)")
        event_time = value("event_time") or ""
        user, product = value("user_id") or "", value("product_id") or ""
        return BehaviourEvent.from_dict({
            "event_id": _event_id("rr-", user, event_type, product, event_time),
            "user_id": user,
            "behavior": REES46_BEHAVIOURS[event_type],
            "ts": _epoch_ms(event_time),
            "item_id": product,
            "category_id": value("category_code") or value("category_id"),
            "brand": value("brand"),
            "price": _price(value("price")),
            "session_id": value("user_session"),
        })
    return parse


def _epoch_ms(text: str) -> int:
    try:
        moment = datetime.fromisoformat(text.removesuffix(" UTC") + "+00:00" if text.endswith(" UTC") else text)
    except ValueError:
        raise _Rejected("event_time is not a time like 2019-10-01 00:00:00 UTC") from None
    if moment.tzinfo is None:
        raise _Rejected("event_time has no time zone")
    return (moment - _EPOCH) // _MILLISECOND


def _price(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        price = float(text)
    except ValueError:
        raise _Rejected("price is not a number") from None
    if not math.isfinite(price):
        raise _Rejected("price is not a finite number")
    return price
