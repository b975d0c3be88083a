"""`notify-engine dashboard`: a live page on 127.0.0.1 for whoever runs the job.

    notify-engine dashboard --config my.yaml [--port 8090] [--metrics 127.0.0.1:9250-9299] [--job <id>]

It scrapes the job's Prometheus endpoints (flink-conf: one per JVM, on loopback), sums each counter over
subtasks and JVMs, and shows events in, sends and dead letters per second, suppressions by reason, sends
by journey and channel, event-to-decision latency percentiles, the newest committed notifications, and
one shopper's profile, top-N, purchase intent and inbox looked up by raw id, which is pseudonymised before any lookup.
Standard library only: a page and two JSON endpoints (`/api/summary`, `/api/shopper?id=`).
"""
from __future__ import annotations

import argparse
import collections
import json
import re
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from operators.metrics import LATENCY, LATENCY_BOUNDS_MS, quantile
from operators.privacy import pseudonym
from state_schemas.outputs import Notification
from state_schemas.redis_keys import RedisKeys

OPERATOR_METRIC = re.compile(r"^flink_taskmanager_job_task_operator_([A-Za-z0-9_]+)(\{[^}]*\})? (\S+)$")
RATES = ("events_admitted", "notifications_sent", "events_dead_lettered")
RECENT = 30
PAGE = Path(__file__).parent / "resources" / "dashboard.html"


def operator_counters(text: str, job_id: str | None = None) -> dict[str, float]:
    """Prometheus exposition text -> operator metrics by name, summed over subtasks and labels (of one job,
    with `job_id`, when the endpoints serve several)."""
    totals: dict[str, float] = collections.defaultdict(float)
    for line in text.splitlines():
        found = OPERATOR_METRIC.match(line)
        if found and (job_id is None or f'job_id="{job_id}"' in (found.group(2) or "")):
            try:
                value = float(found.group(3))
            except ValueError:
                continue
            totals[found.group(1)] += value
    return dict(totals)


def summarise(now: dict[str, float], before: dict[str, float] | None, seconds: float) -> dict:
    """What the page shows, from two scrapes `seconds` apart (rates need both)."""
    def rate(name: str) -> float | None:
        if before is None or seconds <= 0:
            return None
        return max(0.0, now.get(name, 0.0) - before.get(name, 0.0)) / seconds

    def named(prefix: str) -> dict[str, float]:
        return dict(sorted(((name.removeprefix(prefix), value) for name, value in now.items()
                            if name.startswith(prefix) and value), key=lambda kv: -kv[1]))

    buckets = {float(bound): now.get(f"{LATENCY}_le_{bound}", 0.0) for bound in LATENCY_BOUNDS_MS}
    buckets[float("inf")] = now.get(f"{LATENCY}_le_inf", 0.0)
    journeys = {k: v for k, v in named("sent_").items() if not k.startswith("channel_")
                and k not in ("marketing", "transactional")}
    return {
        "totals": {name: now.get(name, 0.0) for name in RATES},
        "rates": {name: rate(name) for name in RATES},
        "suppressed": named("suppressed_"),
        "dead_letters": named("dead_lettered_"),
        "journeys": journeys,
        "channels": named("sent_channel_"),
        "latency_ms": {f"p{round(q * 100)}": quantile(buckets, q) for q in (0.5, 0.95, 0.99)},
        "decisions_measured": buckets[float("inf")],
        "latency_top_bound_ms": LATENCY_BOUNDS_MS[-1],  # a percentile there is "at least" (a replay's old data)
    }


def endpoints(spec: str) -> list[str]:
    """`host:9250-9299` or `host:9250` -> metric URLs."""
    host, _, ports = spec.rpartition(":")
    low, _, high = ports.partition("-")
    return [f"http://{host}:{port}/metrics" for port in range(int(low), int(high or low) + 1)]


class Scraper:
    """Scrapes the endpoints that answer; remembers the last scrape for rates."""

    def __init__(self, urls: list[str], job_id: str | None = None):
        self.urls, self.job_id, self.last, self.lock = urls, job_id, None, threading.Lock()

    def scrape(self) -> dict:
        totals: dict[str, float] = collections.defaultdict(float)
        for url in self.urls:
            try:
                with urllib.request.urlopen(url, timeout=0.5) as response:
                    text = response.read().decode()
            except OSError:
                continue  # nothing there: ports of the range no JVM took
            for name, value in operator_counters(text, self.job_id).items():
                totals[name] += value
        with self.lock:
            at, before = time.monotonic(), self.last
            self.last = (at, dict(totals))
        return summarise(totals, before[1] if before else None, at - before[0] if before else 0.0)


class RecentNotifications:
    """The newest committed notifications, from a read_committed consumer at the topic's end."""

    def __init__(self, bootstrap: str, topic: str):
        self.bootstrap, self.topic = bootstrap, topic
        self.items: collections.deque = collections.deque(maxlen=RECENT)
        threading.Thread(target=self._run, name="dashboard-notifications", daemon=True).start()

    def _run(self) -> None:
        from kafka import KafkaConsumer

        while True:
            try:
                consumer = KafkaConsumer(self.topic, bootstrap_servers=self.bootstrap, auto_offset_reset="latest",
                                         isolation_level="read_committed", enable_auto_commit=False,
                                         client_id="notify-engine-dashboard")
                for record in consumer:
                    if record.value is not None:
                        self.items.appendleft(Notification.decode(record.value).to_dict())
            except Exception as error:  # the broker away, an unreadable record: keep the page up, try again
                print(f"dashboard: notifications reader: {error!r}", file=sys.stderr)
                time.sleep(2)


def shopper(raw_id: str, config, client) -> dict:
    """The served profile, top-N, purchase intent and inbox of one shopper, found under their pseudonym."""
    user = pseudonym(raw_id, config.privacy.pseudonym_key)
    keys = RedisKeys(config.redis.key_prefix)
    profile = client.get(keys.profile(user))
    top = client.zrevrange(keys.top_n(user), 0, -1, withscores=True)
    reasons = client.hgetall(keys.top_n_reasons(user))
    ids = client.zrevrange(keys.inbox(user), 0, -1)
    bodies = client.hmget(keys.inbox_bodies(user), ids) if ids else []  # HMGET refuses an empty field list
    inbox = [Notification.decode(body).to_dict() for body in bodies if body is not None]
    intent = client.get(keys.intent(user))
    return {"pseudonym": user, "profile": json.loads(profile) if profile else None,
            "intent": json.loads(intent) if intent else None,
            "top_n": [{"item": item.decode(), "score": score, "reason": reasons.get(item, b"").decode()}
                      for item, score in top], "inbox": inbox}


def make_server(config, port: int, metrics_spec: str, job_id: str | None = None) -> ThreadingHTTPServer:
    import redis

    scraper = Scraper(endpoints(metrics_spec), job_id)
    client = redis.Redis.from_url(config.redis.url, socket_timeout=5)
    recent = RecentNotifications(config.kafka.bootstrap_servers, config.kafka.notifications_topic)
    page = PAGE.read_bytes()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            try:
                return self._get()
            except Exception as error:  # a lookup that fails says why, instead of dropping the connection
                sys.stderr.write(f"dashboard: {self.path}: {error!r}\n")
                return self._send(500, "application/json", json.dumps({"error": repr(error)}).encode())

        def _get(self):
            url = urlparse(self.path)
            if url.path == "/":
                return self._send(200, "text/html; charset=utf-8", page)
            if url.path == "/api/summary":
                body = dict(scraper.scrape(), recent=list(recent.items))
                return self._send(200, "application/json", json.dumps(body).encode())
            if url.path == "/api/shopper":
                raw_id = parse_qs(url.query).get("id", [""])[0]
                if not raw_id:
                    return self._send(400, "application/json", b'{"error": "give ?id=<raw shopper id>"}')
                return self._send(200, "application/json", json.dumps(shopper(raw_id, config, client)).encode())
            return self._send(404, "text/plain", b"not found")

        def _send(self, status: int, kind: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:  # quiet: the page polls every two seconds
            pass

    return ThreadingHTTPServer(("127.0.0.1", port), Handler)


def main(argv: list[str] | None = None) -> int:
    from config import load_config

    parser = argparse.ArgumentParser(prog="notify-engine dashboard", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="job config: the broker, notifications topic, Redis, pseudonym key")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--metrics", default="127.0.0.1:9250-9299", help="the job's Prometheus endpoints")
    parser.add_argument("--job", help="a job id: show only this job's counters (default: every job's)")
    args = parser.parse_args(argv)
    server = make_server(load_config(args.config), args.port, args.metrics, args.job)
    print(f"dashboard on http://127.0.0.1:{server.server_port}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
