import pytest

from notify_engine.dashboard import endpoints, operator_counters, summarise

SCRAPE = """# HELP flink_taskmanager_job_task_operator_events_admitted events_admitted (scope: ...)
# TYPE flink_taskmanager_job_task_operator_events_admitted gauge
flink_taskmanager_job_task_operator_events_admitted{job_id="j",subtask_index="0",operator_name="admit"} 120.0
flink_taskmanager_job_task_operator_events_admitted{job_id="j",subtask_index="1",operator_name="admit"} 80.0
flink_taskmanager_job_task_operator_suppressed_daily_cap{job_id="j",subtask_index="0"} 3.0
flink_taskmanager_job_task_operator_sent_recommendation{job_id="j",subtask_index="0"} 7.0
flink_taskmanager_job_task_operator_sent_channel_push{job_id="j",subtask_index="0"} 6.0
flink_taskmanager_job_task_operator_sent_marketing{job_id="j",subtask_index="0"} 7.0
flink_taskmanager_job_task_operator_event_to_decision_ms_le_100{job_id="j"} 50.0
flink_taskmanager_job_task_operator_event_to_decision_ms_le_250{job_id="j"} 90.0
flink_taskmanager_job_task_operator_event_to_decision_ms_le_500{job_id="j"} 100.0
flink_taskmanager_job_task_operator_event_to_decision_ms_le_inf{job_id="j"} 100.0
flink_jobmanager_numRunningJobs 1.0
flink_taskmanager_job_task_operator_broken{job_id="j"} NaNish
"""


def test_operator_counters_are_summed_over_subtasks_and_nothing_else_is_read():
    counters = operator_counters(SCRAPE)
    assert counters["events_admitted"] == 200.0 and counters["suppressed_daily_cap"] == 3.0
    assert "numRunningJobs" not in counters and "broken" not in counters


def test_one_jobs_counters_can_be_read_apart_from_anothers():
    other = 'flink_taskmanager_job_task_operator_events_admitted{job_id="k",subtask_index="0"} 5.0\n'
    assert operator_counters(SCRAPE + other, job_id="k") == {"events_admitted": 5.0}
    assert operator_counters(SCRAPE + other)["events_admitted"] == 205.0


def test_the_summary_has_rates_between_scrapes_the_breakdowns_and_latency_percentiles():
    before = {"events_admitted": 100.0}
    summary = summarise(operator_counters(SCRAPE), before, seconds=4.0)
    assert summary["rates"]["events_admitted"] == 25.0
    assert summary["suppressed"] == {"daily_cap": 3.0}
    assert summary["journeys"] == {"recommendation": 7.0} and summary["channels"] == {"push": 6.0}
    assert summary["latency_ms"]["p50"] == 100.0  # half the decisions at or below 100 ms
    assert 250.0 < summary["latency_ms"]["p95"] <= 500.0
    assert summarise({}, None, 0.0)["rates"]["events_admitted"] is None and \
        summarise({}, None, 0.0)["latency_ms"]["p50"] is None


@pytest.mark.parametrize("spec, urls", [("127.0.0.1:9250-9252", ["http://127.0.0.1:9250/metrics",
                                                                 "http://127.0.0.1:9251/metrics",
                                                                 "http://127.0.0.1:9252/metrics"]),
                                        ("127.0.0.1:9300", ["http://127.0.0.1:9300/metrics"])])
def test_endpoints_cover_the_port_range(spec, urls):
    assert endpoints(spec) == urls
