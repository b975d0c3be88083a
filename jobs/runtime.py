"""Creates the Flink execution environment the same way for the mini-cluster, tests and a cluster."""
from __future__ import annotations

import os
import site
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
FLINK_CONF_DIR = PROJECT_ROOT / "flink-conf"


def prepare_python_environment() -> None:
    """Must run before the first PyFlink call starts the JVM, which inherits this environment.

    Thread mode embeds CPython in the JVM (pemja), which does not see a virtualenv's packages
    unless they are on PYTHONPATH; process mode starts `python` from PATH unless told otherwise.
    """
    paths = [str(PROJECT_ROOT), *site.getsitepackages()]
    existing = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths + existing))
    os.environ.setdefault("FLINK_CONF_DIR", str(FLINK_CONF_DIR))


def flink_conf_settings(prefix: str, conf_dir: Path = FLINK_CONF_DIR) -> dict[str, str]:
    """The keys of flink-conf/config.yaml under `prefix`, flattened (`metrics.reporter.prom.port`): a local
    mini-cluster's metric registry reads only the Configuration the job gives it, not that file."""
    import yaml

    def flatten(node, path: str):
        if isinstance(node, dict):
            for key, value in node.items():
                yield from flatten(value, f"{path}.{key}" if path else str(key))
        else:
            yield path, str(node)

    tree = yaml.safe_load((conf_dir / "config.yaml").read_text()) or {}
    return {key: value for key, value in flatten(tree, "") if key.startswith(prefix)}


def create_environment(config, jars: list[Path], extra: dict[str, str] | None = None):
    prepare_python_environment()
    from pyflink.common import Configuration
    from pyflink.datastream import CheckpointingMode, StreamExecutionEnvironment

    conf = Configuration()
    settings = {
        "python.execution-mode": config.flink.execution_mode,
        "python.executable": sys.executable,
        "python.client.executable": sys.executable,
        "python.fn-execution.bundle.size": str(config.flink.bundle_size),
        "python.fn-execution.bundle.time": str(config.flink.bundle_time_ms),
        "python.state.cache-size": "100000",
        "state.backend.type": "hashmap",
        "execution.checkpointing.dir": config.flink.checkpoint_dir,
        "pipeline.name": "notify-engine",
        **flink_conf_settings("metrics."),  # the Prometheus reporter, on a mini-cluster as on a cluster
    }
    if jars:  # under `flink run -j`, the client ships the connector itself
        settings["pipeline.jars"] = ";".join(jar.resolve().as_uri() for jar in jars)
    settings.update(extra or {})
    for key, value in settings.items():
        conf.set_string(key, value)
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_parallelism(config.flink.parallelism)
    env.set_max_parallelism(config.flink.max_parallelism)  # set, not derived, so a rescale keeps the key groups
    # Aligned (exactly-once) barriers block each channel until all inputs deliver theirs: a latency
    # cost only worth paying when the sink is transactional too.
    mode = (CheckpointingMode.EXACTLY_ONCE if config.flink.delivery_guarantee == "exactly-once"
            else CheckpointingMode.AT_LEAST_ONCE)
    env.enable_checkpointing(config.flink.checkpoint_interval_ms, mode)
    return env



def pin_operator_ids(env) -> int:
    """Gives every operator the job left without a uid (the SQL windows' operators, PyFlink's key_by maps) one
    named by its path to the nearest operator downstream that has one: `<uid>.in<k>` for its k-th input. Flink
    would hash such an operator from its position in the whole graph, so any stage added anywhere upstream would
    change its id and a savepoint's state for it (window counts) could not be restored. Returns how many it named."""
    from pyflink.java_gateway import get_gateway

    physical = get_gateway().jvm.org.apache.flink.streaming.api.transformations.PhysicalTransformation._java_lang_class
    pending = sorted(((t.getUid(), t) for t in env._j_stream_execution_environment.getTransformations()
                      if t.getUid() is not None), key=lambda pair: pair[0])
    named, seen = 0, set()
    while pending:
        below, transformation = pending.pop(0)
        for k, above in enumerate(transformation.getInputs()):
            if above.getId() in seen:
                continue
            seen.add(above.getId())
            uid = above.getUid()
            if uid is None:
                uid = f"{below}.in{k}"
                if physical.isInstance(above):  # a union, partitioning or side output has no operator to name
                    above.setUid(uid)
                    named += 1
            pending.append((uid, above))
    return named
