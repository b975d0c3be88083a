"""`make eval`, second part: the whole push policy replayed over a real log, beside today's alternative.

The policies run through the job's own core (`LocalPipeline`) over the same events, in one run:
- journeys: the configured policy (sessions, quiet hours, caps, channels, every journey);
- no best hour: the same without send-time optimisation, to show what the best hour does;
- immediate: what the job did before journeys, and what a home-made consumer does: a push on
  every trigger, at once, with only the daily cap and the minimum gap between sends.

Taobao users have no time zone. Each is assigned one from a hash of the user id, so every run
assigns the same (`assigned_zone`): three in four get Asia/Shanghai (Taobao's shoppers are in
China and their activity follows its clock); the rest are spread over four zones with daylight
saving. Every user gets a directory record with that zone, locale zh-CN, push and inbox reachable
and consented to. Conversion is a cart or purchase of a notified item by that shopper within 24 h
after the send: attribution, not uplift (the shopper might have bought anyway).

Last line: sends_per_active_user_day=<a> in_session_marketing_share=<b> quiet_hours_share=<c>
cap_violations=<d> conversion_per_send=<e> conversion_per_send_immediate=<f>
"""
from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config import JobConfig, load_config  # noqa: E402
from evaluation.policy_metrics import Act, Caps, Log, PolicyReport, Send, report  # noqa: E402
from notify_engine import datasets  # noqa: E402
from operators.local_pipeline import DictStore, LocalPipeline, Outputs  # noqa: E402
from operators.privacy import pseudonym  # noqa: E402
from state_schemas.events import BehaviourEvent, UserRecord, encode  # noqa: E402

DEFAULT_DATASET = ROOT.parent / "shared" / "data" / "taobao_userbehavior_small.csv"
ZONES = ("Asia/Shanghai",) * 12 + ("Europe/Berlin", "America/New_York", "America/Los_Angeles", "Australia/Sydney")
UNCAPPED = 10 ** 6


def assigned_zone(user_id: str) -> str:
    return ZONES[int(hashlib.sha256(user_id.encode()).hexdigest()[:8], 16) % len(ZONES)]


def immediate(config: JobConfig) -> JobConfig:
    """Today's push-on-every-trigger policy: recommendations only, no session wait (1 ms), no quiet hours,
    no weekly or channel caps."""
    return config.with_overrides({"journeys": {"enabled": ["recommendation"], "night_deferred_statuses": [],
                                               "best_hour_journeys": []},
                                  "policy": {
        "session_gap_ms": 1, "recommendation_delay_ms": 0, "quiet_hours": ["00:00", "00:00"],
        "weekly_marketing_cap": UNCAPPED,
        "channel_caps": {channel: [UNCAPPED, UNCAPPED] for channel in config.policy.channel_caps}}})


def replay(events: list[BehaviourEvent], config: JobConfig) -> tuple[list[Send], Counter]:
    """The marketing sends of `config`'s policy over `events`, with each shopper's directory record first."""
    pipeline, out = LocalPipeline(config, DictStore()), Outputs()
    wall_clock = int(time.time() * 1000)
    users = sorted({event.user_id for event in events})
    first = min(event.ts for event in events)
    for user in users:
        record = UserRecord(user_id=user, ts=first - 1, time_zone=assigned_zone(user), locale="zh-CN",
                            channels=("push", "inbox"),
                            consent={"marketing": ("push", "inbox"), "transactional": ("push", "inbox")})
        pipeline.process_user_record(encode(record), wall_clock, out)
    for event in events:
        pipeline.process(encode(event), wall_clock, out)
    pipeline.finish(wall_clock, out)
    by_pseudonym = {pseudonym(user, config.privacy.pseudonym_key): user for user in users}
    marketing = [n for n in out.notifications if n.kind == "marketing"]
    return ([Send(by_pseudonym[n.user], n.scheduled_at, n.channel, n.item_ids) for n in marketing],
            Counter(n.journey for n in marketing))


def measure(events: list[BehaviourEvent], config: JobConfig) -> dict[str, PolicyReport]:
    log = Log([Act(e.user_id, e.ts, e.behavior, e.item_id) for e in events])
    users = {event.user_id for event in events}
    zones = {user: assigned_zone(user) for user in users}
    policy = config.policy
    caps = Caps(policy.daily_marketing_cap, policy.weekly_marketing_cap,
                {channel: tuple(limits) for channel, limits in policy.channel_caps.items()})
    windows = {user: tuple(policy.quiet_hours) for user in users}
    reports = {}
    no_best_hour = config.with_overrides({"journeys": {"best_hour_journeys": []}})
    for name, variant in (("journeys", config), ("no best hour", no_best_hour), ("immediate", immediate(config))):
        sends, by_journey = replay(events, variant)
        reports[name] = (report(sends, log, zones, policy.session_gap_ms, windows, caps), by_journey)
    return reports


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET,
                        help="Taobao UserBehavior or REES46 CSV (default: the shared Taobao sample, 9 days)")
    parser.add_argument("--limit", type=int, help="read at most this many events")
    parser.add_argument("--config", type=Path, help="job config whose policy is replayed")
    args = parser.parse_args(argv)

    events = datasets.sorted_by_time(datasets.read_events(args.dataset, limit=args.limit))
    reports = measure(events, load_config(args.config))
    print(f"\npolicy replay of {args.dataset.name}: {len(events)} events, "
          f"{len({e.user_id for e in events})} shoppers")
    print(f"{'policy':<14}{'sends':>8}{'per user-day':>14}{'in session':>12}{'quiet hours':>13}"
          f"{'cap viol.':>11}{'converted':>11}{'conv/send':>11}")
    for name, (r, _) in reports.items():
        print(f"{name:<14}{r.sends:>8}{r.sends_per_active_user_day:>14.3f}{r.in_session_share:>12.3f}"
              f"{r.quiet_hours_share:>13.3f}{r.cap_violations:>11}{r.converted:>11}{r.conversion_per_send:>11.4f}")
    print("journeys' sends by journey: " + ", ".join(f"{journey} {count}"
                                                     for journey, count in reports["journeys"][1].most_common()))
    mine, theirs = reports["journeys"][0], reports["immediate"][0]
    print(f"sends_per_active_user_day={mine.sends_per_active_user_day:.3f} "
          f"in_session_marketing_share={mine.in_session_share:.3f} quiet_hours_share={mine.quiet_hours_share:.3f} "
          f"cap_violations={mine.cap_violations} conversion_per_send={mine.conversion_per_send:.4f} "
          f"conversion_per_send_immediate={theirs.conversion_per_send:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
