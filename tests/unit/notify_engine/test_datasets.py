"""Readers for Taobao UserBehavior and REES46 files: the real data (expected counts come from
the data folder's README) and small hand-written files, including malformed rows."""
from __future__ import annotations

import csv
import tempfile
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notify_engine.datasets import detect_format, read_events, read_events_with_stats, sorted_by_time
from state_schemas.events import decode_event, encode

TAOBAO_SMALL = "taobao_userbehavior_small.csv"
TAOBAO_STREAM = "taobao_userbehavior_stream.csv"
REES46_HEAD = "rees46_2019oct_head.csv"
REES46_HEADER = "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session"


def utc_ms(*parts: int) -> int:
    return int(datetime(*parts, tzinfo=timezone.utc).timestamp()) * 1000


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def repeated_ids(events) -> int:
    return sum(n - 1 for n in Counter(e.event_id for e in events).values())


@pytest.fixture(scope="module")
def rees46(dataset_dir):
    events, stats = read_events_with_stats(dataset_dir / REES46_HEAD)
    return list(events), stats


@pytest.fixture(scope="module")
def rees46_rows(dataset_dir) -> list[dict[str, str]]:
    with open(dataset_dir / REES46_HEAD, newline="") as handle:
        return list(csv.DictReader(handle))


# --- the real files --------------------------------------------------------------------------

def test_formats_of_the_real_files_are_detected(dataset_dir):
    assert detect_format(dataset_dir / TAOBAO_SMALL) == "taobao"
    assert detect_format(dataset_dir / TAOBAO_STREAM) == "taobao"
    assert detect_format(dataset_dir / REES46_HEAD) == "rees46"


def test_taobao_small_file_matches_its_description(dataset_dir):
    events, stats = read_events_with_stats(dataset_dir / TAOBAO_SMALL)
    events = list(events)
    assert (stats.rows, stats.events, stats.skipped_total) == (10_000, 10_000, 0)
    assert Counter(e.behavior for e in events) == {"view": 9_046, "cart": 536, "favourite": 212, "purchase": 206}
    assert len({e.user_id for e in events}) == 114
    assert len({e.item_id for e in events}) == 7_623
    assert len({e.category_id for e in events}) == 1_096
    assert all(utc_ms(2017, 11, 24) <= e.ts < utc_ms(2017, 12, 4) for e in events)
    assert repeated_ids(events) == 0


def test_taobao_small_file_becomes_time_ordered_when_sorted(dataset_dir):
    events = list(read_events(dataset_dir / TAOBAO_SMALL))
    assert any(a.ts > b.ts for a, b in zip(events, events[1:])), "the file is grouped by user"
    ordered = sorted_by_time(events)
    assert all(a.ts <= b.ts for a, b in zip(ordered, ordered[1:]))
    assert Counter(ordered) == Counter(events)
    # Stable: each user's events keep their file order.
    first_user = events[0].user_id
    assert [e for e in ordered if e.user_id == first_user] == sorted_by_time(
        e for e in events if e.user_id == first_user)


def test_taobao_stream_file_matches_its_description(dataset_dir):
    events, stats = read_events_with_stats(dataset_dir / TAOBAO_STREAM)
    events = list(events)
    assert (stats.rows, stats.events, stats.skipped_total) == (110_300, 110_300, 0)
    assert Counter(e.behavior for e in events) == {"view": 98_361, "cart": 6_063, "favourite": 3_383,
                                                   "purchase": 2_493}
    assert len({e.user_id for e in events}) == 66_454
    assert all(a.ts <= b.ts for a, b in zip(events, events[1:]))
    assert (events[0].ts, events[-1].ts) == (utc_ms(2017, 11, 26, 1), utc_ms(2017, 11, 26, 3, 10, 11))


def test_rees46_head_matches_its_description(rees46, rees46_rows):
    events, stats = rees46
    removals = sum(row["event_type"] == "remove_from_cart" for row in rees46_rows)
    assert stats.rows == 17_434 == len(rees46_rows)
    assert stats.events == len(events) == 17_434 - removals
    assert stats.skipped_total == removals
    assert {e.behavior for e in events} <= {"view", "cart", "purchase"}
    assert len({e.user_id for e in events}) == 4_504
    assert len({e.item_id for e in events}) == 6_493
    assert events[0].ts == utc_ms(2019, 10, 1)
    assert all(utc_ms(2019, 10, 1) <= e.ts < utc_ms(2019, 10, 1, 3) for e in events)


def test_rees46_duplicate_rows_share_their_event_id(rees46, rees46_rows):
    events, _ = rees46
    assert repeated_ids(events) == 6  # the README's six duplicate rows
    # Only rows telling the same story (who, what, which product, when) share an id.
    story_by_id: dict[str, set] = {}
    for event, row in zip(events, rees46_rows):
        story = (row["user_id"], row["event_type"], row["product_id"], row["event_time"])
        story_by_id.setdefault(event.event_id, set()).add(story)
    assert all(len(stories) == 1 for stories in story_by_id.values())


def test_rees46_fields_are_carried_over(rees46, rees46_rows):
    events, _ = rees46
    assert len(events) == len(rees46_rows)  # no remove_from_cart in the head, so rows and events align
    for event, row in zip(events, rees46_rows):
        assert event.brand == (row["brand"] or None)
        assert event.price == float(row["price"])
        assert event.session_id == row["user_session"]
        assert event.category_id == (row["category_code"] or row["category_id"])
    assert all(decode_event(encode(e)) == e for e in events)


def test_limit_caps_the_events(dataset_dir):
    events, stats = read_events_with_stats(dataset_dir / REES46_HEAD, limit=25)
    assert len(list(events)) == 25 == stats.events


# --- user-supplied files ---------------------------------------------------------------------

def test_user_taobao_file_with_or_without_header(tmp_path):
    rows = "7,100,5,pv,1700000000\n7,100,5,cart,1700000005\n8,101,6,fav,1700000010\n8,101,6,buy,1700000020\n"
    for text in (rows, "user_id,item_id,category_id,behavior,timestamp\n" + rows):
        path = write(tmp_path / "mine.csv", text)
        assert detect_format(path) == "taobao"
        events = list(read_events(path))
        assert [(e.user_id, e.item_id, e.category_id, e.behavior, e.ts) for e in events] == [
            ("7", "100", "5", "view", 1_700_000_000_000), ("7", "100", "5", "cart", 1_700_000_005_000),
            ("8", "101", "6", "favourite", 1_700_000_010_000), ("8", "101", "6", "purchase", 1_700_000_020_000)]


def test_user_rees46_file_with_other_column_order_and_removals(tmp_path):
    path = write(tmp_path / "shop.csv", "\n".join([
        "user_id,event_type,event_time,product_id,price",
        "42,view,2020-01-02 03:04:05 UTC,900,19.5",
        "42,remove_from_cart,2020-01-02 03:04:06 UTC,900,19.5",
        "42,purchase,2020-01-02T04:04:05+01:00,900,",
    ]) + "\n")
    assert detect_format(path) == "rees46"
    events, stats = read_events_with_stats(path)
    events = list(events)
    assert [(e.user_id, e.behavior, e.item_id, e.ts, e.price) for e in events] == [
        ("42", "view", "900", utc_ms(2020, 1, 2, 3, 4, 5), 19.5),
        ("42", "purchase", "900", utc_ms(2020, 1, 2, 3, 4, 5), None)]
    assert all(e.category_id is None and e.brand is None and e.session_id is None for e in events)
    assert stats.skipped == {"event_type remove_from_cart is not modelled": 1}


def test_malformed_taobao_rows_are_counted_not_fatal(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(b"\n".join([
        b"1,10,100,pv,1511658000",
        b"1,10,100,pv",  # too few columns
        b"1,10,100,look,1511658001",  # unknown behaviour
        b"1,10,100,buy,yesterday",  # not epoch seconds
        b",10,100,pv,1511658002",  # no user
        b"1,\xff\xfe,100,pv,1511658003",  # not UTF-8
        b'1,"10,100,pv',  # a stray quote, which must not swallow the rows after it
        b"2,11,100,cart,1511658005",
        b"",  # a blank line is no row at all
    ]) + b"\n")
    events, stats = read_events_with_stats(path)
    assert [(e.user_id, e.behavior) for e in events] == [("1", "view"), ("2", "cart")]
    assert (stats.rows, stats.events, stats.skipped_total) == (8, 2, 6)
    # The two short rows share a reason; every other fault has its own.
    assert sorted(stats.skipped.values()) == [1, 1, 1, 1, 2]
    assert sorted(stats.first_skipped_line.values()) == [2, 3, 4, 5, 6]  # line 7 repeats a reason


def test_malformed_rees46_rows_are_counted_not_fatal(tmp_path):
    good = "2019-10-01 00:00:00 UTC,view,1,2,,acme,1.0,3,s"
    path = write(tmp_path / "bad.csv", "\n".join([
        REES46_HEADER,
        good,
        "2019-10-01 00:00:00 UTC,view,1,2,,acme,1.0,3",  # a column short
        "yesterday,view,1,2,,acme,1.0,3,s",
        "2019-10-01 00:00:00,view,1,2,,acme,1.0,3,s",  # no time zone
        "2019-10-01 00:00:00 UTC,view,1,2,,acme,cheap,3,s",
        "2019-10-01 00:00:00 UTC,view,1,2,,acme,-1.0,3,s",
        "2019-10-01 00:00:00 UTC,view,1,2,,acme,nan,3,s",
        "2019-10-01 00:00:00 UTC,view,,2,,acme,1.0,3,s",  # no product
        "2019-10-01 00:00:00 UTC,wishlist,1,2,,acme,1.0,3,s",
        good,
    ]) + "\n")
    events, stats = read_events_with_stats(path)
    events = list(events)
    assert len(events) == 2 and repeated_ids(events) == 1
    assert (stats.rows, stats.skipped_total, len(stats.skipped)) == (10, 8, 8)


def test_unrecognised_files_are_refused_with_a_reason(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        detect_format(write(tmp_path / "empty.csv", ""))
    with pytest.raises(ValueError, match="Taobao UserBehavior"):
        detect_format(write(tmp_path / "other.csv", "name,age\nann,3\n"))
    with pytest.raises(ValueError, match="event_time"):
        read_events(write(tmp_path / "taobao.csv", "1,2,3,pv,4\n"), fmt="rees46")
    with pytest.raises(ValueError, match="unknown format"):
        read_events(tmp_path / "taobao.csv", fmt="parquet")


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 10**9), st.integers(1, 10**9), st.integers(1, 10**6),
                          st.sampled_from(["pv", "cart", "fav", "buy"]), st.integers(0, 2 * 10**9)),
                min_size=1, max_size=30))
def test_any_valid_taobao_rows_are_read_back(rows):
    mapping = {"pv": "view", "cart": "cart", "fav": "favourite", "buy": "purchase"}
    with tempfile.TemporaryDirectory() as folder:
        path = write(Path(folder) / "rows.csv", "".join(",".join(map(str, row)) + "\n" for row in rows))
        events = list(read_events(path))
    assert [(e.user_id, e.item_id, e.category_id, e.behavior, e.ts) for e in events] == [
        (str(u), str(i), str(c), mapping[b], s * 1000) for u, i, c, b, s in rows]
    # Rows with the same user, item, behaviour and time, and only they, share an id.
    assert len({e.event_id for e in events}) == len({(u, i, b, s) for u, i, _, b, s in rows})
