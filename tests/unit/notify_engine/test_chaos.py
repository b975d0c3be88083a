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


def test_a_faulted_run_within_the_clean_runs_disagreement_passes():
    noise = chaos.Delivery(lost=20, duplicated=0, extra=25)  # 45 changed between two clean runs
    assert chaos.within_clean_noise(chaos.Delivery(lost=40, duplicated=0, extra=50), noise, clean_count=600)
    assert chaos.within_clean_noise(chaos.Delivery(lost=60, duplicated=0, extra=60), noise, clean_count=600)


def test_a_lost_share_of_output_or_any_duplicate_fails():
    noise = chaos.Delivery(lost=20, duplicated=0, extra=25)
    assert not chaos.within_clean_noise(chaos.Delivery(lost=100, duplicated=0, extra=21), noise, clean_count=600)
    assert not chaos.within_clean_noise(chaos.Delivery(lost=0, duplicated=1, extra=0), noise, clean_count=600)
    assert not chaos.within_clean_noise(chaos.Delivery(lost=1, duplicated=0, extra=0), chaos.Delivery(0, 0, 0), 10)


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
