"""Savepoints find each operator's state by its id. Flink hashes an operator without a uid from its position in the
whole graph, so adding a stage anywhere upstream of the SQL windows used to change their ids, and a savepoint taken
before could not be restored (their window counts had nowhere to go). `jobs.runtime.pin_operator_ids` names them by
their path to a named operator. Here: the job built with a stage less (purchase intent off) gives every operator
that keeps state the id it has in the full job; and built at parallelism 1 and 2 (a rescale), the same operators
with the same max parallelism (a map chained to the one-instance global ranking at 1 but not at 2 once took the
ranking's max parallelism, 1, and the rescale test's savepoint was refused)."""
from __future__ import annotations

import pytest

from config import load_config
from jobs import notification_job as job
from jobs.runtime import create_environment

pytestmark = pytest.mark.slow


def job_graph(connector_jar, **overrides):
    """The job graph Flink would run, built without running it."""
    config = load_config(overrides=overrides)
    env = create_environment(config, [connector_jar])
    sinks = job.JobSinks(*(job.kafka_sink(config, name, name, keyed=name != "dead-letters")
                           for name in ("notifications", "dead-letters", "exposures", "outcomes")))
    sources = job.JobSources(events=job.kafka_source(config, "events"), catalog=job.kafka_source(config, "catalog"),
                             users=job.kafka_source(config, "users"))
    job.build_pipeline(env, sources, sinks, config)
    return env._j_stream_execution_environment.getStreamGraph(False).getJobGraph()


def operator_ids(connector_jar, **overrides) -> dict[str, list[str]]:
    """The ids of each job vertex's operators, by vertex name."""
    found: dict[str, list[str]] = {}
    for vertex in job_graph(connector_jar, **overrides).getVerticesSortedTopologicallyFromSources():
        ids = [operator.getGeneratedOperatorID().toHexString() for operator in vertex.getOperatorIDs()]
        found.setdefault(vertex.getName(), []).extend(ids)
    return found


def stateful(ids: dict[str, list[str]]) -> set[str]:
    """The operators that keep state: the SQL windows and ranks, and the keyed stages (the heads of their chains)."""
    kept = set()
    for name, operators in ids.items():
        if "Window" in name:
            kept.update(operators)
        elif " in event-time order -> " in name:
            kept.update(operators[-2:])  # the ordering and its stage (a chain lists its operators tail first)
    return kept


def test_a_stage_added_upstream_leaves_every_stateful_operators_id_as_it_was(connector_jar):
    full, without_intent = operator_ids(connector_jar), operator_ids(connector_jar, intent={"enabled": False})
    windows = {op for name, ops in without_intent.items() if "Window" in name for op in ops}
    assert len(windows) >= 8  # HOP and TUMBLE aggregates and the window ranks
    assert stateful(without_intent) <= set(op for ops in full.values() for op in ops)
    assert len(stateful(full)) > len(stateful(without_intent))  # the intent model is one more


def test_a_rescale_finds_the_same_operators_with_the_same_max_parallelism(connector_jar):
    def max_parallelism(parallelism: int) -> dict[str, int]:
        graph = job_graph(connector_jar, flink={"parallelism": parallelism})
        return {operator.getGeneratedOperatorID().toHexString(): vertex.getMaxParallelism()
                for vertex in graph.getVerticesSortedTopologicallyFromSources() for operator in vertex.getOperatorIDs()}

    at_one, at_two = max_parallelism(1), max_parallelism(2)
    assert at_one == at_two and 1 in at_one.values()  # the global ranking runs as one instance at any parallelism
