import pytest

from notify_engine import chaos
from notify_engine.cluster import StandaloneCluster


@pytest.fixture(scope="module")
def cluster():
    """A standalone cluster from pyflink/bin for one test module, and nothing of it left after."""
    node = StandaloneCluster()
    if node.running():
        pytest.fail("a Flink cluster already answers on 127.0.0.1:8081; stop it first (notify-engine cluster down)")
    node.start()
    yield node
    node.stop()
    for pid in chaos.java_processes(chaos.TASK_MANAGER_MAIN):  # TaskManagers a test started as replacements
        chaos.kill_hard(pid)
