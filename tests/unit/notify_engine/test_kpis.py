"""The KPI report's statistics against values worked out by hand, and `notify-engine report` over files."""
from __future__ import annotations

import csv

import pytest

from notify_engine import kpis, report
from operators.privacy import pseudonym
from state_schemas.events import BehaviourEvent, FeedbackEvent
from state_schemas.outputs import Exposure, Notification, Outcome

DAY = 86_400_000
T0 = 1_790_000_000_000
KEY = "k" * 16


def test_the_wilson_interval_matches_its_tables():
    half = kpis.wilson(50, 100)
    assert (half.value, round(half.low, 4), round(half.high, 4)) == (0.5, 0.4038, 0.5962)
    none = kpis.wilson(0, 10)  # the upper bound is z^2 / (n + z^2) = 3.8415 / 13.8415
    assert (none.low, round(none.high, 4)) == (0.0, 0.2775)


def test_the_difference_of_two_proportions_and_its_z_test():
    lift, p_value = kpis.difference(60, 100, 40, 100)
    # 0.2 +- 1.96 * sqrt(0.24/100 + 0.24/100); pooled 0.5: z = 0.2 / sqrt(0.25 * 0.02) = 2.828, p = 0.00468
    assert (round(lift.value, 6), round(lift.low, 4), round(lift.high, 4)) == (0.2, 0.0642, 0.3358)
    assert round(p_value, 5) == 0.00468


def sent(n: int, user: str, day: int, experiments=(("subject", "short"),), kind="marketing") -> Notification:
    return Notification(notification_id=f"n{n}", user=pseudonym(user, KEY), channel="push", kind=kind, title="t",
                        body="b", item_ids=("i1",), reason="r", created_at=T0, source_event_time=T0,
                        source_event_id=f"e{n}", journey="recommendation", scheduled_at=T0 + day * DAY,
                        experiments=experiments)


def bought(n: int, user: str, holdout=False, experiments=(("subject", "short"),)) -> Outcome:
    return Outcome(notification_id=f"n{n}", user=pseudonym(user, KEY), behavior="purchase", item_id="i1",
                   event_id=f"p{n}", ts=T0 + 3 * DAY, sent_at=T0, match="item", journey="recommendation",
                   channel="push", experiments=experiments, holdout=holdout)


def told(n: int, user: str, action: str) -> FeedbackEvent:
    return FeedbackEvent(event_id=f"f{n}-{action}", user_id=user, action=action, ts=T0 + DAY,
                         notification_id=None if action == "unsubscribe" else f"n{n}")


# Over four days: Ann gets 3 messages (opens one, buys after it), Bob 1 (delivered, then unsubscribes),
# a transactional message to Bob counts for nothing; Cy and Di are held out, Cy buys after her exposure.
RECORDS = [sent(1, "ann", 0), sent(2, "ann", 2), sent(3, "ann", 4), sent(4, "bob", 1, (("subject", "long"),)),
           sent(5, "bob", 1, kind="transactional"),
           Exposure(sent(6, "cy", 0, ())), Exposure(sent(7, "di", 3, ())),
           bought(1, "ann"), bought(6, "cy", holdout=True, experiments=()),
           told(1, "ann", "delivered"), told(1, "ann", "open"), told(2, "ann", "delivered"),
           told(4, "bob", "delivered"), told(4, "bob", "unsubscribe")]


def by_metric(rows, experiment, variant):
    return {row.metric: row for row in rows if (row.experiment, row.variant) == (experiment, variant)}


def test_each_arm_counts_its_own_shoppers_sends_feedback_and_purchases():
    rows = kpis.rows(kpis.tally(RECORDS, lambda user: pseudonym(user, KEY)))
    treated, held = by_metric(rows, *kpis.TREATED), by_metric(rows, *kpis.HOLDOUT)
    short, long_ = by_metric(rows, "subject", "short"), by_metric(rows, "subject", "long")
    assert treated["shoppers"].estimate.value == 2 and held["shoppers"].estimate.value == 2
    # The span is four days: Ann 3/4 a day, Bob 1/4
    assert treated["sends_per_user_per_day"].estimate.value == pytest.approx(0.5)
    assert treated["delivery_rate"].estimate.value == pytest.approx(3 / 4)
    assert short["open_rate"].estimate.value == pytest.approx(1 / 3) and long_["open_rate"].estimate.value == 0
    assert long_["unsubscribe_rate"].estimate.value == 1 and short["unsubscribe_rate"].estimate.value == 0
    assert treated["conversion_rate"].estimate.value == pytest.approx(1 / 4)
    assert treated["purchases_per_1000_users"].estimate.value == pytest.approx(500)
    assert held["purchases_per_1000_users"].estimate.value == pytest.approx(500)
    assert "open_rate" not in held  # nothing reached the holdout
    uplift = by_metric(rows, *kpis.TREATED)["uplift_purchases_per_1000_users"]
    assert uplift.estimate.value == pytest.approx(0) and uplift.estimate.test == "two-proportion z"
    assert uplift.p_value == pytest.approx(1.0)


def test_the_report_reads_files_and_writes_a_table_a_csv_and_a_plot(tmp_path, capsys):
    files = {"notifications": [r for r in RECORDS if isinstance(r, Notification)],
             "exposures": [r for r in RECORDS if isinstance(r, Exposure)],
             "outcomes": [r for r in RECORDS if isinstance(r, Outcome)],
             # feedback comes on the events topic, among the behaviour it follows
             "feedback": [r for r in RECORDS if isinstance(r, FeedbackEvent)]
             + [BehaviourEvent(event_id="v1", user_id="ann", behavior="view", ts=T0, item_id="i1")]}
    for name, records in files.items():
        (tmp_path / f"{name}.jsonl").write_bytes(b"\n".join(r.encode() for r in records) + b"\n")
    config = tmp_path / "job.yaml"
    config.write_text(f"privacy:\n  pseudonym_key: {KEY}\n")
    assert report.main(["--config", str(config), "--dir", str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    table = capsys.readouterr().out
    assert "uplift_purchases_per_1000_users" in table and "wilson" in table
    with (tmp_path / "out" / "kpis.csv").open() as lines:
        written = {(r["experiment"], r["variant"], r["metric"]): r for r in csv.DictReader(lines)}
    assert float(written[("subject", "long", "unsubscribe_rate")]["value"]) == 1.0
    assert float(written[("holdout", "held out", "purchases_per_1000_users")]["ci95_low"]) > 0
    assert (tmp_path / "out" / "kpis.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
