"""The job's Prometheus metrics on 127.0.0.1 and `notify-engine dashboard` over them, in headless Chromium:
a running job (mini-cluster) with valid and bad events, the inbox writer beside it, the page rendered by
a real browser, and one shopper looked up by raw id. The screenshot is kept in test-artifacts/."""
from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from config import load_config
from jobs import notification_job
from notify_engine import dashboard, generator, producer, services
from operators.privacy import pseudonym
from tests.integration.conftest import InboxWriterBeside, job_config, make_topics

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"
BAD = [b"{not json", b'{"type": "behaviour", "event_id": "x"}', b"\xff\xfe"]


def _wait(condition, what: str, timeout: float = 120.0, seen=lambda: None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}; last seen: {seen()}")


def _get(url: str) -> dict:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:  # the dashboard's own account of what failed
        raise AssertionError(f"{url}: {error.code} {error.read().decode()}") from error


def test_metrics_and_the_dashboard_show_the_running_job(broker, redis_server, connector_jar, tmp_path):
    chromium = services.ensure_chromium()
    topics = make_topics(broker)
    config = job_config(broker, redis_server, topics, kafka={"bounded": False},
                        flink={"delivery_guarantee": "at-least-once"}, policy={"quiet_hours": ["00:00", "00:00"]},
                        journeys={"best_hour_journeys": []})
    shop = generator.GeneratorConfig(users=60, items=40, events=1500, seed=4,
                                     start_ms=int(time.time() * 1000) - 2 * 86_400_000)
    events = list(generator.generate_events(shop))
    job = notification_job.run(config, [connector_jar], job_name="dashboard-test", wait=False,
                               extra_flink={"restart-strategy.type": "none"})
    # Only this job's counters: other runs on the machine may expose theirs in the same port range.
    server = dashboard.make_server(config, 0, "127.0.0.1:9250-9299", job_id=str(job.get_job_id()))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    time.sleep(3)  # the page's notifications reader starts at the topic's end: before the events go in
    writer = InboxWriterBeside(config).start()
    try:
        producer.publish(events, broker.bootstrap, topics.events)
        producer.publish_raw(BAD, broker.bootstrap, topics.events)
        last = {}

        def complete():
            # Counters reach the reporter from the Python workers on their own schedule, so a loaded machine
            # may show the events counted before the decisions: all are waited for.
            last.update(_get(base + "/api/summary"))
            totals = last["totals"]
            return dict(last) if totals["events_admitted"] >= len(events) and \
                totals["events_dead_lettered"] >= len(BAD) and last["recent"] and last["journeys"] and \
                last["channels"] and last["decisions_measured"] > 0 and last["latency_ms"]["p50"] is not None \
                else None

        summary = _wait(complete, "the job's counters and first notifications on the dashboard",
                        seen=lambda: {k: last.get(k) for k in ("totals", "journeys", "channels", "decisions_measured",
                                                               "latency_ms", "recent")})
        # Every admitted event and every bad record is counted once; the reasons are broken down.
        assert summary["totals"]["events_admitted"] == len(events)
        assert summary["totals"]["events_dead_lettered"] == len(BAD) == sum(summary["dead_letters"].values())
        shopper_id = next(e.user_id for e in events if pseudonym(e.user_id, config.privacy.pseudonym_key)
                          == summary["recent"][-1]["user"])
        _wait(lambda: _get(base + f"/api/shopper?id={shopper_id}")["inbox"], "the shopper's inbox",
              seen=writer.state)

        ARTIFACTS.mkdir(exist_ok=True)
        screenshot = ARTIFACTS / "dashboard.png"
        page = f"{base}/?shopper={shopper_id}"
        browser = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                   f"--user-data-dir={tmp_path / 'chromium'}", "--window-size=1280,1100",
                   "--virtual-time-budget=6000"]
        subprocess.run(browser + [f"--screenshot={screenshot}", page], check=True, timeout=120,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        dom = subprocess.run(browser + ["--dump-dom", page], check=True, timeout=120, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True).stdout
    finally:
        job.cancel().result()
        writer.close()
        server.shutdown()
    print(f"dashboard screenshot: {screenshot}")
    assert screenshot.stat().st_size > 10_000
    assert f"{len(events)} in all" in dom  # the events counter as the browser rendered it
    assert "none yet" not in dom.split('id="recent"')[1].split("</table>")[0]  # notifications listed
    looked_up = dom.split('id="shopper-json"')[1].split("</pre>")[0]
    assert pseudonym(shopper_id, config.privacy.pseudonym_key) in looked_up and f'"{shopper_id}"' not in looked_up


def test_a_shopper_with_nothing_served_yet_is_looked_up_as_empty(redis_server):
    config = load_config(overrides={"redis": {"url": redis_server.url, "key_prefix": "test-dashboard-empty"}})
    found = dashboard.shopper("no-one-yet", config, redis_server.client())
    assert found == {"pseudonym": pseudonym("no-one-yet", config.privacy.pseudonym_key), "profile": None,
                     "intent": None, "top_n": [], "inbox": []}

