from datetime import datetime
from zoneinfo import ZoneInfo

from evaluation.policy_metrics import Act, Caps, Log, Send, cap_violations, in_window, local_day, report

MIN = 60_000
HOUR = 60 * MIN


def at(text: str, zone: str = "Asia/Shanghai") -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp() * 1000)


def test_quiet_window_over_midnight_in_local_time():
    window = ("21:00", "08:00")
    assert in_window(at("2017-11-26 21:00"), "Asia/Shanghai", window)
    assert in_window(at("2017-11-27 07:59"), "Asia/Shanghai", window)
    assert not in_window(at("2017-11-27 08:00"), "Asia/Shanghai", window)
    # 22:00 in Shanghai is 15:00 in Berlin (UTC+1 in November): outside Berlin's window.
    assert not in_window(at("2017-11-26 22:00"), "Europe/Berlin", window) is in_window(
        at("2017-11-26 22:00"), "Asia/Shanghai", window)
    assert not in_window(at("2017-11-26 12:00"), "Asia/Shanghai", ("00:00", "00:00"))


def test_session_and_conversion_read_the_log_around_the_send():
    send_at = at("2017-11-26 12:00")
    log = Log([Act("u", send_at - 29 * MIN, "pv", "a"), Act("v", send_at - 31 * MIN, "pv", "a"),
               Act("u", send_at + 23 * HOUR, "cart", "b"), Act("v", send_at + 25 * HOUR, "buy", "b"),
               Act("v", send_at + 2 * HOUR, "purchase", "c")])
    assert log.in_session(Send("u", send_at, "push", ("b",)), 30 * MIN)
    assert not log.in_session(Send("v", send_at, "push", ("b",)), 30 * MIN)
    assert log.converted(Send("u", send_at, "push", ("b",)))
    assert not log.converted(Send("v", send_at, "push", ("b",)))  # 25 h later, and "buy" is not a behaviour here
    assert log.converted(Send("v", send_at, "push", ("b", "c")))
    assert not log.converted(Send("u", send_at + 23 * HOUR, "push", ("b",)))  # the cart at the send's instant


def test_caps_are_recounted_per_local_day_week_and_channel():
    zones = {"u": "Asia/Shanghai"}
    caps = Caps(daily=2, weekly=3, per_channel={"push": (1, 5)})
    day_one = [Send("u", at("2017-11-26 09:00"), "push", ()), Send("u", at("2017-11-26 10:00"), "inbox", ())]
    assert cap_violations(day_one, zones, caps) == 0
    # A third send, a second push, on the same local day: over the daily cap and over the push cap.
    assert cap_violations(day_one + [Send("u", at("2017-11-26 23:30"), "push", ())], zones, caps) == 2
    # 00:30 next day in Shanghai is another local day, though the same UTC day as 23:30 the day before.
    late = [Send("u", at("2017-11-27 00:30"), "inbox", ())]
    assert cap_violations(day_one + late, zones, caps) == 0
    # A fourth within 7 local days: over the weekly cap on the day of the fourth (and any later day with sends).
    fourth = [Send("u", at("2017-12-01 09:00"), "inbox", ())]
    assert cap_violations(day_one + late + fourth, zones, caps) == 1
    assert local_day(at("2017-11-27 00:30"), "Asia/Shanghai") - local_day(at("2017-11-26 23:30"), "Asia/Shanghai") == 1


def test_report_shares():
    zones = {"u": "Asia/Shanghai"}
    log = Log([Act("u", at("2017-11-26 09:00"), "pv", "a"), Act("u", at("2017-11-27 09:00"), "cart", "a")])
    sends = [Send("u", at("2017-11-26 09:10"), "push", ("a",)), Send("u", at("2017-11-26 22:00"), "inbox", ("z",))]
    result = report(sends, log, zones, 30 * MIN, {"u": ("21:00", "08:00")}, Caps(3, 10, {}))
    assert result.sends == 2
    assert result.sends_per_active_user_day == 1.0  # two active local days
    assert result.in_session_share == 0.5
    assert result.quiet_hours_share == 0.5
    assert result.converted == 1 and result.conversion_per_send == 0.5
    assert result.cap_violations == 0
