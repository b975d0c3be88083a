from config import load_config
from operators.inbox import inbox_effects
from operators.steps import DeleteKeys, StoreInInbox
from state_schemas.outputs import Notification, UserErased
from state_schemas.redis_keys import RedisKeys

CONFIG = load_config(None, overrides={"redis": {"key_prefix": "t", "inbox_size": 7, "ttl_hours": 2}})


def notification(user="p1") -> Notification:
    return Notification(notification_id="n1", user=user, channel="push", kind="marketing", title="t", body="b",
                        item_ids=("i",), reason="r", created_at=1, source_event_time=1, source_event_id="e",
                        score=0.5)


def test_a_committed_notification_joins_its_users_inbox_with_the_configured_size_and_expiry():
    (effect,) = inbox_effects(notification(), CONFIG.redis)
    assert effect == StoreInInbox(index_key="t:inbox:p1", body_key="t:inbox:p1:body", notification=notification(),
                                  keep=7, ttl_s=7200)


def test_an_erasure_empties_the_users_inbox_and_touches_no_other_key():
    (effect,) = inbox_effects(UserErased("p1"), CONFIG.redis)
    keys = RedisKeys("t")
    assert effect == DeleteKeys((keys.inbox("p1"), keys.inbox_bodies("p1")), ())
