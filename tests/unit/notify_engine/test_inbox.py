import pytest

from notify_engine.inbox import decode_record
from state_schemas.codec import SchemaError
from state_schemas.outputs import Notification, UserErased

NOTIFICATION = Notification(notification_id="n1", user="p1", channel="push", kind="marketing", title="t", body="b",
                            item_ids=("i",), reason="r", created_at=1, source_event_time=1, source_event_id="e",
                            score=0.5)


def test_a_record_with_a_value_is_a_notification():
    assert decode_record(b"p1", NOTIFICATION.encode()) == NOTIFICATION


def test_a_tombstone_names_the_erased_user_by_its_key():
    assert decode_record(b"p1", None) == UserErased("p1")


@pytest.mark.parametrize("key, value", [(None, None), (b"", None), (b"p1", b"{not json"), (b"p1", b'{"v": 1}')])
def test_anything_else_is_unreadable(key, value):
    with pytest.raises(SchemaError):
        decode_record(key, value)
