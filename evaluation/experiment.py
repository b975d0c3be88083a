"""make experiment: the job's core (`LocalPipeline`, the steps the Flink job runs) on simulated shoppers who answer
what they receive, with a holdout, against the lift the notifications truly cause.

Three runs over the same shoppers, each shopper's browsing and each answer drawn from their own random stream:
everyone told, no one told (the job decides alike, the messages never arrive), and the experiment itself, half
held out. The true lift is the difference of the first two in shoppers with a purchase attributed to a message
(sent or would-be), per 1 000 shoppers the job decided a message for; the estimate is `notify-engine report`'s
uplift of the treated over the holdout in the third, with its 95% interval.
"""
from __future__ import annotations

import argparse
import heapq
import random
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config import load_config  # noqa: E402
from evaluation import simulated_shoppers as sim  # noqa: E402
from notify_engine import kpis  # noqa: E402
from operators.local_pipeline import DictStore, LocalPipeline, Outputs  # noqa: E402
from operators.privacy import pseudonym  # noqa: E402
from state_schemas.events import BehaviourEvent, FeedbackEvent  # noqa: E402

WEEK = 7 * sim.DAY
SETTLING_DAYS = 7  # the controller's first week: its threshold starts at zero and counts a week of decisions


@dataclass
class Run:
    out: Outputs  # what the job wrote
    feedback: list  # the shoppers' feedback events
    delivered: int = 0  # marketing messages that reached a shopper
    caused: int = 0  # purchases a message led to (the simulator knows: a click it answered with a purchase)
    settled_from: int = 0  # event time after the controller's first week
    delivered_settled: int = 0  # marketing messages that reached a shopper from then on
    active_settled: set = field(default_factory=set)  # shoppers with any behaviour from then on


def simulate(world: sim.World, config, reaches) -> Run:
    """The job's core over the shoppers' behaviour, each marketing message that `reaches(notification)` answered."""
    people = sim.shoppers(world)
    by_pseudonym = {pseudonym(s.user_id, config.privacy.pseudonym_key): s for s in people}
    queue = [(event.ts, n, event) for n, event in enumerate(e for s in people for e in sim.organic(world, s))]
    heapq.heapify(queue)
    run = Run(Outputs(), [], settled_from=world.start_ms + SETTLING_DAYS * sim.DAY)
    pipeline, received, seq = LocalPipeline(config, DictStore()), {}, len(queue)
    while queue:
        ts, _, event = heapq.heappop(queue)
        if isinstance(event, FeedbackEvent):
            run.feedback.append(event)
        elif ts >= run.settled_from:
            run.active_settled.add(event.user_id)
        seen = len(run.out.notifications)
        pipeline.process(event.encode(), ts, run.out)
        for notification in run.out.notifications[seen:]:
            if notification.kind != "marketing" or not reaches(notification):
                continue
            run.delivered += 1
            run.delivered_settled += notification.scheduled_at >= run.settled_from
            shopper = by_pseudonym[notification.user]
            times = received.setdefault(shopper.user_id, [])
            times.append(notification.scheduled_at)
            recent = sum(1 for at in times if notification.scheduled_at - WEEK < at < notification.scheduled_at)
            for answer in sim.answer(world, shopper, notification, recent):
                run.caused += isinstance(answer, BehaviourEvent)  # the purchase a click led to
                seq += 1  # an answer to a timer that fired late is read now, not in the past
                heapq.heappush(queue, (max(answer.ts, ts), seq, answer))
    pipeline.finish(world.start_ms + (world.days + 30) * sim.DAY, run.out)
    return run


def buyers(out: Outputs) -> tuple[set, set]:
    """(Shoppers the job decided marketing for, those of them with a purchase attributed to one)."""
    decided = {n.user for n in out.notifications if n.kind == "marketing"} | {e.notification.user
                                                                              for e in out.exposures}
    return decided, {o.user for o in out.outcomes if o.behavior == "purchase"}


def _config(share: float = 0.0, target: float = 0.0, salt: str = "holdout-1"):
    # No quiet hours: the simulated clock is UTC and each shopper has a best hour of their own.
    return load_config(overrides={"experiments": {"holdout_share": share, "holdout_salt": salt},
                                  "policy": {"quiet_hours": ["00:00", "00:00"], "volume_target_per_week": target}})


def lift(world: sim.World, holdout: float, salt: str = "holdout-1"):
    """(The true lift, the report's rows for the experiment, the runs everyone told and the experiment's)."""
    everyone, no_one = simulate(world, _config(), lambda n: True), simulate(world, _config(), lambda n: False)
    decided_a, bought_a = buyers(everyone.out)
    decided_b, bought_b = buyers(no_one.out)
    eligible = decided_a | decided_b
    true_lift = 1000 * (len(bought_a & eligible) - len(bought_b & eligible)) / len(eligible)
    held = simulate(world, _config(share=holdout, salt=salt), lambda n: True)
    records = [*held.out.notifications, *held.out.exposures, *held.out.outcomes, *held.feedback]
    key = _config().privacy.pseudonym_key
    return true_lift, kpis.rows(kpis.tally(records, lambda user: pseudonym(user, key))), everyone, held


def _uplift(rows) -> kpis.Row:
    [uplift] = [row for row in rows if row.metric == "uplift_purchases_per_1000_users"]
    return uplift


def coverage(world: sim.World, holdout: float, seeds: int) -> int:
    """How often the 95% interval covers the true lift over `seeds` worlds (each its own shoppers and holdout)."""
    covered = 0
    for seed in range(seeds):
        true_lift, rows, _, _ = lift(replace(world, seed=seed), holdout, salt=f"holdout-{seed}")
        u = _uplift(rows).estimate
        covered += u.low <= true_lift <= u.high
        print(f"seed {seed}: true {true_lift:.1f} estimated {u.value:.1f} [{u.low:.1f}, {u.high:.1f}]", flush=True)
    print(f"coverage={covered}/{seeds}")
    return covered


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shoppers", type=int, default=800)
    parser.add_argument("--days", type=int, default=21, help="days simulated (the controller settles in the first 7)")
    parser.add_argument("--seed", type=int, default=sim.World.seed)
    parser.add_argument("--holdout", type=float, default=0.5, help="the experiment's holdout share")
    parser.add_argument("--volume-target", type=float, default=2.0, help="marketing per shopper per week")
    parser.add_argument("--coverage", type=int, metavar="SEEDS",
                        help="instead: how often the interval covers the true lift over this many worlds")
    args = parser.parse_args(argv)
    world = sim.World(shoppers=args.shoppers, days=args.days, seed=args.seed)
    if args.coverage:
        coverage(world, args.holdout, args.coverage)
        return 0

    true_lift, rows, everyone, held = lift(world, args.holdout)
    for row in rows:
        e = row.estimate
        print(f"{row.experiment:<8} {row.variant:<9} {row.metric:<32} {e.value:9.4g} [{e.low:.4g}, {e.high:.4g}]")
    # The controller against dropping messages at random to the volume it reached: purchases caused per message.
    controlled = simulate(world, _config(target=args.volume_target), lambda n: True)
    keep, coin = controlled.delivered / max(everyone.delivered, 1), random.Random(args.seed)
    dropped = simulate(world, _config(), lambda n: coin.random() < keep)
    weeks = (world.days - SETTLING_DAYS) / 7
    print(f"shoppers {world.shoppers} over {world.days} days: everyone told: {everyone.delivered} messages; "
          f"the experiment sent {held.delivered} and logged {len(held.out.exposures)} exposures; controlled "
          f"{controlled.delivered} messages, {controlled.caused} purchases caused; random drop {dropped.delivered}, "
          f"{dropped.caused}; after the first week, everyone told "
          f"{everyone.delivered_settled / len(everyone.active_settled) / weeks:.2f} a shopper a week")
    u = _uplift(rows).estimate
    print(f"true_lift={true_lift:.1f} estimated_lift={u.value:.1f} ci_low={u.low:.1f} ci_high={u.high:.1f} "
          f"volume_target={args.volume_target:g} "
          f"volume_realised={controlled.delivered_settled / len(controlled.active_settled) / weeks:.2f} "
          f"utility_per_send_controlled={controlled.caused / max(controlled.delivered, 1):.4f} "
          f"utility_per_send_random_drop={dropped.caused / max(dropped.delivered, 1):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
