"""A record with no value (a tombstone on a compacted topic) never takes the job down: on the users topic
it deletes the shopper's record, anywhere else it is dead-lettered with the reason."""
from __future__ import annotations

import orjson
import pytest

from config import load_config
from operators import catalog_intake, directory, intake
from operators.intake import Rejected
from state_schemas.codec import TOMBSTONE, tombstone
from state_schemas.events import UserRecord
from state_schemas.state import UserDirectory

CONFIG = load_config()
T0 = 1_700_000_000_000
NOW = T0 + 1000


def marker(ts: int, key: str) -> bytes:
    """What TextOrMarkerDeserializationSchema.java hands on for a tombstone."""
    return b"\x00tombstone\x00" + str(ts).encode() + b"\x00" + key.encode()


def test_the_marker_reads_back_as_the_records_time_and_key_and_no_json_looks_like_it():
    assert TOMBSTONE == b"\x00tombstone\x00"
    assert tombstone(marker(T0, "u-1\x00odd")) == (T0, "u-1\x00odd")
    assert tombstone(b'{"type": "user"}') is None and tombstone(b"") is None
    assert tombstone(TOMBSTONE) is None and tombstone(TOMBSTONE + b"soon\x00k") is None  # left to the schema


def test_a_tombstone_on_the_users_topic_is_a_record_that_says_nothing_at_its_time():
    deleted = directory.admit_user_record(marker(T0 + 5, "u1"), NOW, CONFIG.intake)
    assert deleted.event == UserRecord(user_id="u1", ts=T0 + 5) and deleted.routing_key == "u1"
    kept = directory.apply_record(UserDirectory(opted_out_at=T0 - 9), UserRecord(
        user_id="u1", ts=T0, time_zone="Asia/Shanghai", channels=("push",), consent={"marketing": ("push",)}))
    after = directory.apply_record(kept, deleted.event)
    assert after == UserDirectory(listed_at=T0 + 5, opted_out_at=T0 - 9)  # the shopper's own opt-out stays
    assert directory.reach(after, CONFIG.directory).consented.get("marketing", ()) == ()
    older = orjson.loads(orjson.dumps({"type": "user", "user_id": "u1", "ts": T0, "consent": {"marketing": ["push"]}}))
    assert directory.apply_record(after, UserRecord.from_dict(older)) == after  # an older record read after it


def test_a_tombstone_without_a_key_or_from_the_far_future_is_rejected():
    with pytest.raises(Rejected, match="names no shopper"):
        directory.admit_user_record(marker(T0, ""), NOW, CONFIG.intake)
    with pytest.raises(Rejected, match="absurd timestamp"):
        directory.admit_user_record(marker(NOW + 10 * 86_400_000, "u1"), NOW, CONFIG.intake)


def test_a_tombstone_on_the_events_or_the_catalogue_topic_is_rejected_with_its_key():
    for admit in (lambda raw: intake.admit(raw, NOW, CONFIG.intake),
                  lambda raw: catalog_intake.admit_catalog(raw, NOW, CONFIG.catalog, CONFIG.intake)):
        with pytest.raises(Rejected) as rejection:
            admit(marker(T0, "item-9"))
        assert rejection.value.reason == ("a record with no value (a tombstone) for key 'item-9': only the users "
                                          "topic deletes records by tombstone")
