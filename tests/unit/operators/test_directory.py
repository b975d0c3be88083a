"""The user directory: admission of its records, what they mean for reach and channels, durable consent."""
from __future__ import annotations

from datetime import date

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config import load_config
from operators import directory
from operators.intake import Rejected
from operators.local_pipeline import DictStore, LocalPipeline, Outputs
from operators.privacy import pseudonym
from state_schemas.events import BehaviourEvent, FeedbackEvent, OrderEvent, UserRecord, encode
from state_schemas.hops import PUSH_POLICY
from state_schemas.state import PushState, UserDirectory

CONFIG = load_config()
T0 = 1_700_000_000_000  # 2023-11-14 22:13:20 UTC
NOW = T0 + 1000


def record(**fields) -> bytes:
    return orjson.dumps({"type": "user", "user_id": "u1", "ts": T0, **fields})


def entry(**fields) -> UserDirectory:
    return directory.apply_record(UserDirectory(), UserRecord(user_id="u1", ts=T0, **fields))


# --- admission --------------------------------------------------------------------------------------

def test_a_full_record_is_admitted_as_the_push_policys_message():
    admitted = directory.admit_user_record(
        record(time_zone="Asia/Shanghai", locale="zh-CN", channels=["push", "sms"],
               consent={"marketing": ["push"], "transactional": ["push", "sms"]},
               quiet_hours={"start": "22:30", "end": "07:00"}), NOW, CONFIG.intake)
    assert admitted.routing_key == "u1" and admitted.event_time == T0 and admitted.DESTINATION == PUSH_POLICY
    assert admitted.event.time_zone == "Asia/Shanghai" and admitted.event.consent["marketing"] == ("push",)


@pytest.mark.parametrize("fields, reason", [
    ({"time_zone": "Mars/Olympus_Mons"}, "field 'time_zone' is 'Mars/Olympus_Mons', not an IANA time zone"),
    ({"time_zone": "../../etc/passwd"}, "not an IANA time zone"),
    ({"time_zone": 8}, "field 'time_zone' must be a string, got int"),
    ({"locale": "english"}, "field 'locale' must be a BCP 47 tag such as 'zh-CN' or 'en', got 'english'"),
    ({"locale": "zh_CN"}, "field 'locale' must be a BCP 47 tag"),
    ({"channels": ["push", "fax"]}, "field 'channels' has unknown value 'fax'"),
    ({"channels": "push"}, "field 'channels' must be a list, got str"),
    ({"consent": {"ads": ["push"]}}, "field 'consent' has unknown value 'ads'"),
    ({"consent": ["push"]}, "field 'consent' must be an object, got list"),
    ({"quiet_hours": {"start": "25:00", "end": "07:00"}}, "field 'quiet_hours.start' must be a 24-hour clock time"),
    ({"quiet_hours": {"start": "22:00"}}, "missing required field 'quiet_hours.end'"),
    ({"ts": "yesterday"}, "field 'ts' must be an integer, got str"),
])
def test_a_bad_record_is_rejected_with_its_reason(fields, reason):
    with pytest.raises(Rejected) as rejection:
        directory.admit_user_record(record(**fields), NOW, CONFIG.intake)
    assert rejection.value.reason.startswith("user record: ") and reason in rejection.value.reason


def test_a_record_without_a_user_or_from_the_far_future_is_rejected():
    with pytest.raises(Rejected, match="missing required field 'user_id'"):
        directory.admit_user_record(b'{"type": "user", "ts": 1700000000000}', NOW, CONFIG.intake)
    with pytest.raises(Rejected, match="absurd timestamp"):
        directory.admit_user_record(record(ts=NOW + 10 * 86_400_000), NOW, CONFIG.intake)


# --- what a record means -------------------------------------------------------------------------------

def test_a_shopper_without_a_record_gets_the_platform_defaults_and_the_implied_consent():
    reach = directory.reach(UserDirectory(), CONFIG.directory)
    assert (reach.time_zone, reach.locale, reach.opted_out) == ("UTC", "en", False)
    assert reach.consented == {"marketing": ("push", "inbox"), "transactional": ("push", "inbox")}


def test_an_opt_in_shop_sends_no_marketing_to_shoppers_it_has_no_record_of():
    opt_in = load_config(overrides={"directory": {"implied_consent": {"marketing": []}}}).directory
    reach = directory.reach(UserDirectory(), opt_in)
    assert directory.channel_for(reach, "marketing", opt_in) is None
    assert directory.channel_for(reach, "transactional", opt_in) == "push"


def test_a_record_without_consent_allows_transactional_on_its_channels_and_no_marketing():
    reach = directory.reach(entry(channels=("sms", "email")), CONFIG.directory)
    assert reach.consented == {"marketing": (), "transactional": ("sms", "email")}
    assert directory.channel_for(reach, "marketing", CONFIG.directory) is None
    assert directory.channel_for(reach, "transactional", CONFIG.directory) == "sms"  # sms before email


def test_consent_counts_only_on_reachable_channels_and_the_preference_falls_back():
    shopper = entry(channels=("email", "inbox"), consent={"marketing": ("push", "email")})
    reach = directory.reach(shopper, CONFIG.directory)
    assert reach.consented["marketing"] == ("email",)  # push agreed to, but the shop has no token
    assert directory.channel_for(reach, "marketing", CONFIG.directory) == "email"
    assert directory.channel_for(reach, "transactional", CONFIG.directory) is None  # consent gave none


def test_an_older_record_never_replaces_a_newer_one():
    newer = entry(locale="zh-CN")
    older = UserRecord(user_id="u1", ts=T0 - 1, locale="en")
    assert directory.apply_record(newer, older) is newer
    same_time = UserRecord(user_id="u1", ts=T0, locale="fr")
    assert directory.apply_record(newer, same_time).locale == "fr"  # the topic's order decides a tie


def test_an_unsubscribe_holds_through_later_records_until_a_resubscribe():
    out = directory.unsubscribe(entry(consent={"marketing": ("push",)}), T0 + 1)
    later = directory.apply_record(out, UserRecord(user_id="u1", ts=T0 + 2, consent={"marketing": ("push",)}))
    reach = directory.reach(later, CONFIG.directory)
    assert reach.opted_out and directory.channel_for(reach, "marketing", CONFIG.directory) is None
    back = directory.reach(directory.resubscribe(later), CONFIG.directory)
    assert directory.channel_for(back, "marketing", CONFIG.directory) == "push"


def days(year, month, day) -> int:
    return date(year, month, day).toordinal() - date(1970, 1, 1).toordinal()


@pytest.mark.parametrize("ts, zone, expected", [
    (1_710_045_000_000, "America/New_York", days(2024, 3, 9)),   # 2024-03-10 04:30 UTC: 23:30 EST on the 9th
    (1_710_055_800_000, "America/New_York", days(2024, 3, 10)),  # 07:30 UTC: 03:30 EDT, clocks went forward
    (1_730_606_340_000, "America/New_York", days(2024, 11, 2)),  # 2024-11-03 03:59 UTC: 23:59 EDT on the 2nd
    (1_730_608_200_000, "America/New_York", days(2024, 11, 3)),  # 04:30 UTC: 00:30 EDT, an hour before they go back
    (1_711_841_400_000, "Europe/Berlin", days(2024, 3, 31)),     # 2024-03-30 23:30 UTC: 00:30 CET on the 31st
    (1_711_841_400_000, "Europe/London", days(2024, 3, 30)),     # the same instant: 23:30 GMT on the 30th
    (1_700_000_000_000, "Asia/Shanghai", days(2023, 11, 15)),    # 2023-11-14 22:13 UTC: 06:13 the next day
    (1_700_000_000_000, "Pacific/Honolulu", days(2023, 11, 14)),
])
def test_the_local_day_is_the_calendar_day_in_the_zone(ts, zone, expected):
    assert directory.local_day(ts, zone) == expected


# --- durable: consent outlives the expiry of the rest of the push state --------------------------------

def behaviour(n, ts, behavior="cart"):
    return encode(BehaviourEvent(event_id=f"e{n}", user_id="u1", behavior=behavior, ts=ts, item_id=f"i{n % 3}",
                                 category_id="c1"))


def shipped(ts):
    return encode(OrderEvent(event_id=f"o-{ts}", user_id="u1", order_id="o1", status="shipped", ts=ts))


def test_an_unsubscribe_is_kept_apart_and_survives_the_push_state_expiring():
    store, out = DictStore(), Outputs()
    pipeline = LocalPipeline(CONFIG, store)
    pipeline.process(encode(FeedbackEvent(event_id="f1", user_id="u1", action="unsubscribe", ts=T0)), NOW, out)
    assert orjson.loads(store["user-directory:u1"]) == {"out": T0}
    assert orjson.loads(store["push-policy:u1"])["dir"] == {}  # the expiring copy holds none of it
    del store["push-policy:u1"]  # what the state TTL does to an idle shopper
    assert pipeline.state(PUSH_POLICY, "u1").directory.opted_out_at == T0
    for n in range(12):  # enough carts of co-visited items for marketing candidates
        pipeline.process(behaviour(n, T0 + n * 3_600_000), NOW, out)
    pipeline.finish(NOW, out)  # the end of input: every recommendation still waiting falls due
    assert pipeline.counters["suppressed_opted_out"] > 0
    assert not [n for n in out.notifications if n.kind == "marketing"]


def test_a_v2_opt_out_is_moved_into_the_durable_state_on_the_first_write():
    store, out = DictStore(), Outputs()
    store["push-policy:u1"] = orjson.dumps({"v": 2, "out": True, "mday": -1}).decode()
    pipeline = LocalPipeline(CONFIG, store)
    pipeline.process(shipped(T0), NOW, out)
    assert [n.kind for n in out.notifications] == ["transactional"]
    assert orjson.loads(store["user-directory:u1"]) == {"out": 0}
    del store["push-policy:u1"]
    assert pipeline.state(PUSH_POLICY, "u1").directory.opted_out_at == 0


def test_a_directory_record_picks_the_channel_and_an_erasure_removes_it_with_the_rest():
    store, out = DictStore(), Outputs()
    pipeline = LocalPipeline(CONFIG, store)
    pipeline.process_user_record(record(channels=["sms"], time_zone="Asia/Shanghai"), NOW, out)
    pipeline.process_user_record(record(time_zone="Nowhere/Else"), NOW, out)
    assert [d.reason for d in out.dead_letters] == ["user record: field 'time_zone' is 'Nowhere/Else', not an IANA "
                                                    "time zone"]
    assert out.dead_letters[0].stage == "admit-users"
    pipeline.process(shipped(T0), NOW, out)
    assert [(n.kind, n.channel, n.user) for n in out.notifications] == \
        [("transactional", "sms", pseudonym("u1", CONFIG.privacy.pseudonym_key))]
    assert orjson.loads(store["user-directory:u1"])["tz"] == "Asia/Shanghai"
    pipeline.process(encode_erasure(), NOW, out)
    assert "user-directory:u1" not in store
    # the push state keeps the erasure's time and nothing else, so signals from before it are dropped
    assert PushState.decode(store["push-policy:u1"]) == PushState(erased_at=T0 + 5)


def encode_erasure():
    return orjson.dumps({"type": "erase", "event_id": "x1", "user_id": "u1", "ts": T0 + 5})


@settings(max_examples=100, deadline=None)
@given(steps=st.lists(st.sampled_from(["unsubscribe", "resubscribe", "record", "expire"]), max_size=12))
def test_the_last_unsubscribe_or_resubscribe_decides_whatever_expires_or_arrives_between(steps):
    store, out = DictStore(), Outputs()
    pipeline = LocalPipeline(CONFIG, store)
    opted_out = False
    for n, action in enumerate(steps):
        ts = T0 + n
        if action == "expire":
            store.pop("push-policy:u1", None)
        elif action == "record":
            pipeline.process_user_record(record(ts=ts, consent={"marketing": ["push"]}), NOW, out)
        else:
            pipeline.process(encode(FeedbackEvent(event_id=f"f{n}", user_id="u1", action=action, ts=ts)), NOW, out)
            opted_out = action == "unsubscribe"
    assert pipeline.state(PUSH_POLICY, "u1").directory.opted_out_at is not None if opted_out else \
        pipeline.state(PUSH_POLICY, "u1").directory.opted_out_at is None
    assert isinstance(pipeline.state(PUSH_POLICY, "u1"), PushState)
