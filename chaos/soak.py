"""A bounded soak: the job on a standalone cluster for `--minutes` at half of its peak throughput (measured
first in the same run), with shoppers who come, shop for a few minutes and never return, and state that
idles out after `--ttl-minutes` (windows, sessions, journeys' waits and intent's horizon are compressed to
it too). Every `--every` seconds it prints the TaskManagers' resident memory and the size of the latest
checkpoint; once TTL cleanup catches up, both should stay flat. It ends with each operator's state in the
first and last half, so growth points at the operator that holds it.

    .venv/bin/python chaos/soak.py [--minutes 20] [--ttl-minutes 3]

Ends with `soak_minutes= rate= rss_mb_first= rss_mb_last= state_kb_first= state_kb_last=
state_growth_last_half=` (the last half's state size over the first half's after warm-up, 1 = flat).
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from config import load_config, to_dict  # noqa: E402
from notify_engine import chaos, producer, services  # noqa: E402
from notify_engine.cluster import StandaloneCluster  # noqa: E402
from state_schemas.events import BehaviourEvent  # noqa: E402

BEHAVIOURS = ["view"] * 14 + ["cart", "favourite", "purchase"]


def shoppers(rate: float, visit_s: float, items: int, seed: int, now=lambda: int(time.time() * 1000)):
    """Endless events at `rate`/s, timestamped as sent: each shopper is active for about `visit_s` seconds
    and then replaced by a new one for good, so keyed state keeps meeting users it will never see again."""
    rng, n = random.Random(seed), 0
    active = max(1, int(rate * visit_s / 20))  # about 20 events per visit
    while True:
        generation = n // max(1, int(rate * visit_s))
        user = f"soak-{generation}-{rng.randrange(active)}"
        yield BehaviourEvent(event_id=f"s{n}", user_id=user, behavior=rng.choice(BEHAVIOURS), ts=now(),
                             item_id=f"item-{int(rng.paretovariate(1.2)) % items}",
                             category_id=f"c{rng.randrange(40)}", price=round(rng.uniform(1, 200), 2))
        n += 1


def job_config(broker, redis_server, topics, ttl_minutes: float, bounded: bool):
    # Every horizon is compressed to the TTL's scale, so 20 minutes pass through each many times: a window's
    # state lives until it closes and a timer until it fires, whatever the TTL (the first soaks with one-hour
    # windows and 30-minute sessions grew for the whole run). Quiet hours, bound to the clock, are off.
    horizon_ms = max(3, round(ttl_minutes * 60)) * 1000
    third_ms = horizon_ms // 3 // 1000 * 1000
    return load_config(overrides={
        "kafka": {"bootstrap_servers": broker.bootstrap, **topics.kafka(),
                  "bounded": bounded, "starting_offsets": "earliest", "group_id": f"soak-{topics.events}",
                  "transactional_id_prefix": f"soak-{topics.events}"},
        "redis": {"url": redis_server.url, "key_prefix": f"soak-{topics.events}"},
        "flink": {"parallelism": 2, "delivery_guarantee": "at-least-once", "state_ttl_hours": ttl_minutes / 60},
        "catalog": {"enabled": False}, "directory": {"enabled": False},
        "intake": {"dedup_window_ms": horizon_ms},
        "intent": {"horizon_hours": horizon_ms / 3_600_000},
        "trending": {"window_ms": horizon_ms, "slide_ms": third_ms, "counts_window_ms": horizon_ms},
        "policy": {"session_gap_ms": third_ms, "min_marketing_gap_ms": third_ms, "max_deferral_ms": horizon_ms,
                   "renotify_cooldown_ms": horizon_ms, "quiet_hours": ["00:00", "00:00"]},
        "journeys": {"cart_reminders_ms": [third_ms, horizon_ms], "watch_ms": horizon_ms,
                     "review_delay_ms": horizon_ms, "best_hour_max_wait_ms": horizon_ms},
    })


def rss_mb() -> float:
    total = 0
    for pid in chaos.java_processes(chaos.TASK_MANAGER_MAIN):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=20)
    parser.add_argument("--ttl-minutes", type=float, default=3)
    parser.add_argument("--visit-seconds", type=float, default=120)
    parser.add_argument("--every", type=float, default=30)
    parser.add_argument("--peak-events", type=int, default=30000)
    parser.add_argument("--samples-json", type=Path, help="write every sample, with each operator's state, here")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="notify-soak-") as tmp, services.local_services(Path(tmp)) as (
            broker, redis_server):
        cluster = StandaloneCluster()
        if cluster.running():
            raise SystemExit("a Flink cluster already answers on 127.0.0.1:8081; stop it first")
        cluster.start()
        try:
            # The peak: a preloaded topic drained as fast as the job goes.
            topics = broker.fresh_topics("soak-peak-", 2)
            source = shoppers(1000, args.visit_seconds, 5000, seed=1)
            producer.publish((next(source) for _ in range(args.peak_events)), broker.bootstrap, topics.events)
            path = Path(tmp) / "peak.yaml"
            path.write_text(yaml.safe_dump(to_dict(job_config(broker, redis_server, topics, args.ttl_minutes, True))))
            started = time.monotonic()
            peak_job = cluster.submit(path, parallelism=2)
            cluster.wait_for(peak_job, {"FINISHED", "FAILED", "CANCELED"}, timeout=3600)
            peak = args.peak_events / (time.monotonic() - started)  # startup included: a conservative peak
            rate = peak / 2
            print(f"peak {peak:.0f} events/s (drained {args.peak_events}); soaking at {rate:.0f} events/s "
                  f"for {args.minutes:g} min, state TTL {args.ttl_minutes:g} min", flush=True)

            topics = broker.fresh_topics("soak-", 2)
            path = Path(tmp) / "soak.yaml"
            path.write_text(yaml.safe_dump(to_dict(job_config(broker, redis_server, topics, args.ttl_minutes,
                                                              False))))
            job = cluster.submit(path, parallelism=2)
            deadline = time.monotonic() + args.minutes * 60
            events = shoppers(rate, args.visit_seconds, 5000, seed=2)
            feeder = threading.Thread(target=producer.publish, daemon=True,
                                      args=(_until(events, deadline), broker.bootstrap, topics.events),
                                      kwargs={"rate_per_s": rate})
            feeder.start()
            samples, by_operator, begun = [], [], time.monotonic()
            while time.monotonic() < deadline:
                time.sleep(args.every)
                latest = (cluster.rest(f"/jobs/{job}/checkpoints").get("latest") or {}).get("completed") or {}
                sample = (time.monotonic() - begun, rss_mb(), latest.get("state_size", 0) / 1024)
                samples.append(sample)
                by_operator.append(operator_state_kb(cluster, job, latest.get("id")))
                print(f"t={sample[0]:5.0f}s rss_mb={sample[1]:7.1f} state_kb={sample[2]:9.1f} "
                      f"job={cluster.job_state(job)}", flush=True)
            cluster.cancel(job)
        finally:
            cluster.stop()
            for pid in chaos.java_processes(chaos.TASK_MANAGER_MAIN):
                chaos.kill_hard(pid)

    if args.samples_json:
        args.samples_json.write_text(json.dumps([{"t": t, "rss_mb": rss, "state_kb": kb, "operators": operators}
                                                 for (t, rss, kb), operators in zip(samples, by_operator)]))
    warm_from = (args.ttl_minutes * 60 + args.visit_seconds) * 2
    print("state by operator (last half over first half after warm-up, mean KB):")
    print("\n".join(operator_growth([s[0] for s in samples], by_operator, warm_from)))
    warm = [s for s in samples if s[0] >= warm_from] or samples
    first, last = halves(warm)
    growth = (sum(s[2] for s in last) / len(last)) / max(sum(s[2] for s in first) / len(first), 1e-9)
    print(f"soak_minutes={args.minutes:g} rate={rate:.0f} rss_mb_first={warm[0][1]:.0f} rss_mb_last={warm[-1][1]:.0f} "
          f"state_kb_first={warm[0][2]:.0f} state_kb_last={warm[-1][2]:.0f} state_growth_last_half={growth:.2f}")
    return 0


def halves(warm: list) -> tuple[list, list]:
    """The samples after warm-up, split into a first and a last half (neither empty)."""
    half = len(warm) // 2 or 1
    return warm[:half], warm[half:] or warm[-1:]


def operator_state_kb(cluster: StandaloneCluster, job: str, checkpoint_id: int | None) -> dict[str, float]:
    """Each operator chain's state in a completed checkpoint, in KB, by its name."""
    if checkpoint_id is None:
        return {}
    names = {vertex["id"]: vertex["name"] for vertex in cluster.rest(f"/jobs/{job}")["vertices"]}
    tasks = cluster.rest(f"/jobs/{job}/checkpoints/details/{checkpoint_id}").get("tasks", {})
    return {names.get(vertex, vertex): task.get("state_size", 0) / 1024 for vertex, task in tasks.items()}


def operator_growth(times: list[float], by_operator: list[dict[str, float]], warm_from: float) -> list[str]:
    """Lines naming each operator with state: its mean KB in the first and last half after warm-up, largest first."""
    warm = [sizes for t, sizes in zip(times, by_operator) if t >= warm_from] or by_operator
    first, last = halves(warm)
    lines = []
    for name in sorted({n for sizes in warm for n in sizes}, key=lambda n: -max(s.get(n, 0) for s in warm)):
        before = sum(s.get(name, 0) for s in first) / len(first)
        after = sum(s.get(name, 0) for s in last) / len(last)
        if before or after:
            lines.append(f"  {after / max(before, 1e-9):5.2f}x {before:9.1f} -> {after:9.1f} KB  {name[:90]}")
    return lines


def _until(events, deadline: float):
    for event in events:
        if time.monotonic() >= deadline:
            return
        yield event


if __name__ == "__main__":
    sys.exit(main())
