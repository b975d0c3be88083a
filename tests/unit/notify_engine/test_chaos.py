import os
import subprocess
import sys
import time

from notify_engine import chaos


def test_identical_runs_differ_in_nothing():
    assert chaos.compare_deliveries(["a", "b"], ["b", "a"]) == chaos.Delivery(0, 0, 0)


def test_lost_duplicated_and_extra_ids_are_counted_apart():
    delivery = chaos.compare_deliveries(["a", "b", "c"], ["a", "a", "a", "b", "z"])
    assert delivery == chaos.Delivery(lost=1, duplicated=2, extra=1)
    assert delivery.line() == "lost=1 duplicated=2 extra=1"


def _note(nid: str, channel: str = "push", at: int = 1, items: tuple = ("i",), made: int = 1):
    from state_schemas.outputs import Notification

    return Notification(notification_id=nid, user="u", channel=channel, kind="marketing", title="t", body="b",
                        item_ids=items, reason="r", created_at=made, source_event_time=1, source_event_id="e",
                        score=0.5, scheduled_at=at, intended_at=1)


def test_a_decision_differs_by_channel_or_send_time_not_by_when_it_was_made_or_its_items():
    clean = [_note("a"), _note("b"), _note("c"), _note("d")]
    other = [_note("a", channel="email"), _note("b", at=2), _note("c", items=("j",)), _note("d", made=9), _note("z")]
    assert chaos.decisions_changed(clean, other) == 2
    assert chaos.items_changed(clean, other) == 1
    assert chaos.decisions_changed(clean, clean) == chaos.items_changed(clean, clean) == 0


def test_a_jvm_is_found_by_its_main_class_and_killed_hard():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "Fake.Main"])
    try:
        deadline = time.monotonic() + 10
        while not chaos.java_processes("Fake.Main") and time.monotonic() < deadline:
            time.sleep(0.05)  # until the child has exec'd: before that its command line is the parent's
        assert chaos.java_processes("Fake.Main") == [child.pid]
        chaos.kill_hard(child.pid)
        assert child.wait(timeout=5) == -9
        assert chaos.java_processes("Fake.Main") == []
    finally:
        if child.poll() is None:
            os.kill(child.pid, 9)


def _sent(nid: str, user: str, at: int) -> tuple[bytes, bytes]:
    from state_schemas.outputs import Notification

    notification = Notification(notification_id=nid, user=user, channel="push", kind="marketing", title="t",
                                body="b", item_ids=("i",), reason="r", created_at=at, source_event_time=at,
                                source_event_id="e", score=0.5)
    return user.encode(), notification.encode()


def test_the_expected_inbox_is_the_newest_few_since_the_last_erasure():
    records = [_sent("a", "u", 5), _sent("b", "u", 1), (b"u", None), _sent("c", "u", 9), _sent("d", "u", 3),
               _sent("e", "u", 7), _sent("f", "v", 2)]
    expected = chaos.expected_inboxes(records, size=2)
    assert {user: sorted(ids) for user, ids in expected.items()} == {"u": ["c", "e"], "v": ["f"]}
    assert expected["u"]["c"] == records[3][1]


def test_an_inbox_differing_in_one_body_or_held_without_cause_is_a_mismatch():
    expected = {"u": {"a": b"1"}, "v": {"b": b"2"}}
    assert chaos.inbox_mismatches(expected, {"u": {"a": b"1"}, "v": {"b": b"2"}}) == 0
    assert chaos.inbox_mismatches(expected, {"u": {"a": b"X"}, "v": {"b": b"2"}, "w": {"c": b"3"}}) == 2


def test_changed_notifications_are_described_by_what_was_decided():
    clean, other = [_note("a"), _note("b")], [_note("b", channel="email"), _note("z")]
    lines = chaos.described_changes(clean, other)
    assert [line.split()[:2] for line in lines] == [["lost", "a"], ["extra", "z"], ["was", "b"], ["now", "b"]]
    assert "push" in lines[2] and "email" in lines[3]
