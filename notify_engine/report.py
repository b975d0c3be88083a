"""notify-engine report: the KPIs of each experiment and variant, and the uplift over the holdout.

Reads the notifications, exposures and outcomes topics and the feedback on the events topic that a config names
(or, with --dir, the files notifications.jsonl, exposures.jsonl, outcomes.jsonl and feedback.jsonl: one record per
line, as on the topics), prints a table with a 95% interval and the test of each figure, and writes it as
kpis.csv and kpis.png in --out.
"""
from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

from config import load_config
from operators.privacy import pseudonym
from state_schemas.codec import SchemaError
from state_schemas.events import FeedbackEvent, decode_event
from state_schemas.outputs import Exposure, Notification, Outcome

from . import kpis

def _feedback_only(raw: bytes):
    try:
        event = decode_event(raw)
    except (SchemaError, ValueError):
        return None  # the job dead-letters these; they are no one's feedback
    return event if isinstance(event, FeedbackEvent) else None


def _from_kafka(config, idle_timeout_s: float):
    from . import consumer

    kafka = config.kafka
    for topic, decode in ((kafka.notifications_topic, Notification.decode), (kafka.exposures_topic, Exposure.decode),
                          (kafka.outcomes_topic, Outcome.decode), (kafka.events_topic, _feedback_only)):
        for value in consumer.read_values(kafka.bootstrap_servers, topic, idle_timeout_s=idle_timeout_s):
            if value is not None and (record := decode(value)) is not None:  # not a tombstone, not other events
                yield record


FILES = {"notifications": Notification.decode, "exposures": Exposure.decode, "outcomes": Outcome.decode,
         "feedback": _feedback_only}


def _from_files(directory: Path):
    for name, decode in FILES.items():
        path = directory / f"{name}.jsonl"
        if path.exists():
            with path.open("rb") as lines:
                yield from (record for line in lines if line.strip() and (record := decode(line)) is not None)


def _cell(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.4g}"


def write_csv(rows: list[kpis.Row], path: Path) -> None:
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["experiment", "variant", "metric", "value", "ci95_low", "ci95_high", "test", "p_value"])
        for row in rows:
            e = row.estimate
            writer.writerow([row.experiment, row.variant, row.metric, e.value, e.low, e.high, e.test,
                             "" if row.p_value is None else row.p_value])


def write_png(rows: list[kpis.Row], path: Path) -> None:
    """Purchases per 1 000 shoppers and the conversion rate of each arm, with their intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = ("purchases_per_1000_users", "conversion_rate", "sends_per_user_per_day")
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4))
    for axis, metric in zip(axes, panels):
        chosen = [row for row in rows if row.metric == metric and not math.isnan(row.estimate.value)]
        labels = [f"{row.experiment}\n{row.variant}" for row in chosen]
        values = [row.estimate.value for row in chosen]
        errors = [[v - row.estimate.low for v, row in zip(values, chosen)],
                  [row.estimate.high - v for v, row in zip(values, chosen)]]
        axis.bar(range(len(chosen)), values, yerr=errors, capsize=4, color="#4c72b0")
        axis.set_xticks(range(len(chosen)), labels, fontsize=8)
        axis.set_title(f"{metric} (95% CI)", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="notify-engine report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, help="the job's config: its topics and pseudonym key")
    parser.add_argument("--dir", type=Path, help="read the four .jsonl files here instead of Kafka")
    parser.add_argument("--out", type=Path, default=Path("."), help="where kpis.csv and kpis.png go")
    parser.add_argument("--idle-timeout", type=float, default=5.0, help="seconds without records ending a topic")
    args = parser.parse_args(argv)
    from tqdm import tqdm

    config = load_config(args.config)
    key = config.privacy.pseudonym_key
    records = _from_files(args.dir) if args.dir else _from_kafka(config, args.idle_timeout)
    counted = kpis.tally(tqdm(records, desc="records read", unit="rec", mininterval=0.5, file=sys.stderr),
                         lambda user: pseudonym(user, key))
    rows = kpis.rows(counted)
    if not rows:
        print("no marketing messages or exposures to report on", file=sys.stderr)
        return 1
    print(f"{'experiment':<16} {'variant':<12} {'metric':<34} {'value':>10} {'95% CI':>24}  test")
    for row in rows:
        e = row.estimate
        p = "" if row.p_value is None else f", p={row.p_value:.3g}"
        print(f"{row.experiment:<16} {row.variant:<12} {row.metric:<34} {_cell(e.value):>10} "
              f"{'[' + _cell(e.low) + ', ' + _cell(e.high) + ']':>24}  {e.test}{p}")
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, args.out / "kpis.csv")
    write_png(rows, args.out / "kpis.png")
    print(f"wrote {args.out / 'kpis.csv'} and {args.out / 'kpis.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
