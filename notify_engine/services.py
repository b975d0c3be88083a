"""Local services on 127.0.0.1: a KRaft Kafka broker, Redis, and the Flink Kafka connector jar.

Everything is fetched from the registries this project may use (Maven Central via `mvn`,
Debian via `apt-get`) into a cache outside the git tree, and every step is idempotent:
`up` reuses a broker or Redis that already answers on the port.
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

RESOURCES = Path(__file__).resolve().parent / "resources"
KAFKA_POM = RESOURCES / "kafka-broker-pom.xml"
KAFKA_LOG4J = RESOURCES / "kafka-log4j2.properties"
JAVA_SOURCES = Path(__file__).resolve().parent.parent / "jobs" / "java"
CONNECTOR_ARTIFACT = "org.apache.flink:flink-sql-connector-kafka:5.0.0-2.2"
CONNECTOR_JAR_NAME = "flink-sql-connector-kafka-5.0.0-2.2.jar"
LOOPBACK = "127.0.0.1"


def cache_dir() -> Path:
    root = os.environ.get("NOTIFY_ENGINE_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "notify-engine"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _run(cmd: list[str], what: str) -> None:
    result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed ({' '.join(cmd[:3])} ...):\n{result.stdout[-4000:]}")


def ensure_kafka_jars() -> Path:
    """Kafka broker jars and their runtime dependencies, resolved by Maven."""
    libs = cache_dir() / "kafka-libs"
    marker = libs / ".complete"
    if marker.exists() and marker.read_text() == KAFKA_POM.read_text():
        return libs
    shutil.rmtree(libs, ignore_errors=True)
    _run(
        ["mvn", "-q", "-B", "-f", str(KAFKA_POM), "dependency:copy-dependencies",
         f"-DoutputDirectory={libs}", "-DincludeScope=runtime"],
        "fetching Kafka broker jars",
    )
    marker.write_text(KAFKA_POM.read_text())
    return libs


def ensure_connector_jar() -> Path:
    """The shaded Flink Kafka connector (no PyPI package carries it) with the project's few Java classes
    added (`jobs/java`: the serialiser that keys a record by one of its fields, the deserialiser that
    passes tombstones on, the event-time ordering of keyed stages' inputs), so a job ships one jar."""
    sources = sorted(path for package in ("kafka", "ordering")
                     for path in (JAVA_SOURCES / "notify_engine" / package).rglob("*.java"))
    digest = hashlib.sha256(b"".join(path.read_bytes() for path in sources)).hexdigest()[:12]
    target = cache_dir() / "flink-jars" / f"notify-engine-{CONNECTOR_JAR_NAME[:-4]}-{digest}.jar"
    if target.exists() and target.stat().st_size > 0:
        return target
    connector = cache_dir() / "flink-jars" / CONNECTOR_JAR_NAME
    if not connector.exists() or connector.stat().st_size == 0:
        connector.parent.mkdir(parents=True, exist_ok=True)
        _run(["mvn", "-q", "-B", "dependency:copy", f"-Dartifact={CONNECTOR_ARTIFACT}",
              f"-DoutputDirectory={connector.parent}"], "fetching the Flink Kafka connector")
    import pyflink

    flink_lib = Path(pyflink.__file__).resolve().parent / "lib"
    classes = target.parent / f".classes-{digest}"
    shutil.rmtree(classes, ignore_errors=True)
    classpath = [str(jar) for jar in sorted(flink_lib.glob("*.jar"))] + [str(connector)]
    _run(["javac", "--release", "17", "-cp", os.pathsep.join(classpath), "-d", str(classes)]
         + [str(path) for path in sources], "compiling jobs/java")
    partial = target.with_suffix(".partial")
    shutil.copyfile(connector, partial)
    _run(["jar", "uf", str(partial), "-C", str(classes), "."], "adding jobs/java to the connector jar")
    shutil.rmtree(classes)
    partial.replace(target)
    return target


METRICS_PLUGIN = "metrics-prometheus-loopback"


def ensure_metrics_plugin() -> Path:
    """A Flink plugins directory (FLINK_PLUGINS_DIR) with Flink's Prometheus reporter and the project's
    factory that binds it to 127.0.0.1 (`jobs/java/notify_engine/metrics`); flink-conf names the factory."""
    import pyflink

    flink = Path(pyflink.__file__).resolve().parent
    sources = sorted((JAVA_SOURCES / "notify_engine" / "metrics").rglob("*.java"))
    reporter = next((flink / "plugins" / "metrics-prometheus").glob("flink-metrics-prometheus-*.jar"))
    digest = hashlib.sha256(b"".join(path.read_bytes() for path in sources) + reporter.name.encode()).hexdigest()[:12]
    root = cache_dir() / f"flink-plugins-{digest}"
    plugin = root / METRICS_PLUGIN
    target = plugin / "notify-engine-metrics.jar"
    if target.exists() and target.stat().st_size > 0:
        return root
    plugin.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(reporter, plugin / reporter.name)
    classes = plugin / ".classes"
    shutil.rmtree(classes, ignore_errors=True)
    classpath = [str(jar) for jar in sorted((flink / "lib").glob("*.jar"))] + [str(reporter)]
    _run(["javac", "--release", "17", "-cp", os.pathsep.join(classpath), "-d", str(classes)]
         + [str(path) for path in sources], "compiling jobs/java/notify_engine/metrics")
    services = classes / "META-INF" / "services"
    services.mkdir(parents=True)
    (services / "org.apache.flink.metrics.reporter.MetricReporterFactory").write_text(
        "notify_engine.metrics.LoopbackPrometheusReporterFactory\n")
    partial = target.with_suffix(".partial")
    _run(["jar", "cf", str(partial), "-C", str(classes), "."], "packing the metrics plugin")
    shutil.rmtree(classes)
    partial.replace(target)
    return root


def use_metrics_plugin() -> Path:
    """Makes the local mini-cluster this process starts from now on expose Prometheus metrics on 127.0.0.1
    (flink-conf names the reporter). A mini-cluster loads no plugins, so the plugin's jars go on the local
    JVM's classpath, through the one variable PyFlink's gateway adds to it (HADOOP_CLASSPATH). A standalone
    cluster loads them as a plugin instead (`StandaloneCluster`, FLINK_PLUGINS_DIR)."""
    root = ensure_metrics_plugin()
    jars = [str(jar) for jar in sorted((root / METRICS_PLUGIN).glob("*.jar"))]
    kept = [entry for entry in os.environ.get("HADOOP_CLASSPATH", "").split(os.pathsep) if entry and entry not in jars]
    os.environ["HADOOP_CLASSPATH"] = os.pathsep.join(jars + kept)
    return root


def without_metrics_classpath(env: dict[str, str]) -> dict[str, str]:
    """`env` for a standalone cluster's scripts: the plugins directory, and not the jars `use_metrics_plugin`
    put on the classpath (the cluster's scripts add HADOOP_CLASSPATH too, and would load the reporter twice)."""
    root = ensure_metrics_plugin()
    jars = {str(jar) for jar in (root / METRICS_PLUGIN).glob("*.jar")}
    kept = [entry for entry in env.get("HADOOP_CLASSPATH", "").split(os.pathsep) if entry and entry not in jars]
    return dict(env, FLINK_PLUGINS_DIR=str(root), HADOOP_CLASSPATH=os.pathsep.join(kept))


def ensure_redis_server() -> str:
    return _debian_program("redis-server", "redis-server")


def ensure_chromium() -> str:
    """Headless Chromium from Debian, for the dashboard's browser test."""
    return _debian_program("chromium", "chromium")


def _debian_program(program: str, package: str) -> str:
    found = shutil.which(program)
    if found:
        return found
    apt = ["apt-get"] if os.geteuid() == 0 else ["sudo", "-n", "apt-get"]
    apt += ["-o", "DPkg::Lock::Timeout=300"]  # wait for another apt (unattended upgrades) rather than fail
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (apt + ["update", "-qq"], apt + ["install", "-y", "-qq", "--no-install-recommends", package]):
        result = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if result.returncode != 0:
            raise RuntimeError(
                f"{program} is missing and could not be installed with apt-get "
                f"(install the Debian package {package}):\n{result.stdout[-2000:]}"
            )
    found = shutil.which(program)
    if not found:
        raise RuntimeError(f"apt-get installed {package} but {program} is not on PATH")
    return found


def port_open(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((host, port)) == 0


@contextlib.contextmanager
def local_services(workdir: Path, kafka_heap: str = "1g"):
    """A broker and a Redis on free loopback ports with their data under `workdir`, stopped on exit."""
    port, controller_port = free_ports(2)
    broker = KafkaBroker(port=port, controller_port=controller_port, data_dir=workdir / "kafka",
                         heap=kafka_heap).start()
    try:
        redis_server = RedisServer(port=free_port(), data_dir=workdir / "redis").start()
        try:
            yield broker, redis_server
        finally:
            redis_server.stop()
    finally:
        broker.stop()


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports: each socket stays bound until all are picked (picked one after the other, the
    system once gave the broker and its controller the same port)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((LOOPBACK, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _pid_alive(pid: int) -> bool:
    try:  # our own child lingers as a zombie until reaped, and a zombie still answers kill(0)
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop_pid_file(pid_file: Path, timeout: float = 15.0) -> None:
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text().strip() or 0)
    if pid and _pid_alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)


@dataclass
class KafkaBroker:
    """A single-node KRaft broker (combined broker + controller) on loopback."""

    port: int
    controller_port: int
    data_dir: Path
    heap: str = "768m"

    @property
    def bootstrap(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    def _properties(self) -> str:
        return "\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.bootstrap.servers={LOOPBACK}:{self.controller_port}",
            f"listeners=PLAINTEXT://{LOOPBACK}:{self.port},CONTROLLER://{LOOPBACK}:{self.controller_port}",
            f"advertised.listeners=PLAINTEXT://{LOOPBACK}:{self.port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            f"log.dirs={self.data_dir / 'logs'}",
            "num.partitions=2",
            "auto.create.topics.enable=false",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=4",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "transaction.state.log.num.partitions=4",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            # Flink's exactly-once sink holds transactions open across a checkpoint.
            "transaction.max.timeout.ms=900000",
            "log.retention.hours=24",
            "",
        ])

    def start(self, timeout: float = 90.0) -> "KafkaBroker":
        if self.running():
            return self
        libs = ensure_kafka_jars()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        props = self.data_dir / "server.properties"
        props.write_text(self._properties())
        java = shutil.which("java") or "java"
        classpath = f"{libs}/*"
        jvm = [java, f"-Xmx{self.heap}", "-Xms128m", "-XX:+UseG1GC",
               f"-Dlog4j2.configurationFile={KAFKA_LOG4J}",
               f"-Dkafka.logs.dir={self.data_dir}", "-cp", classpath]
        if not (self.data_dir / "logs" / "meta.properties").exists():
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
            # `=`: a random id may begin with "-", which would otherwise read as an option.
            _run(jvm + ["kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "-c", str(props),
                        "--standalone"], "formatting Kafka storage")
        log = open(self.data_dir / "broker.out", "ab")
        proc = subprocess.Popen(jvm + ["kafka.Kafka", str(props)], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        self.pid_file.write_text(str(proc.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = (self.data_dir / "broker.out").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"Kafka broker exited with {proc.returncode}:\n{tail}")
            if self._answers():
                return self
            time.sleep(0.5)
        raise RuntimeError(f"Kafka broker did not answer on {self.bootstrap} within {timeout}s")

    def _answers(self) -> bool:
        if not port_open(self.port):
            return False
        from kafka import KafkaAdminClient

        try:
            admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=3000,
                                     client_id="notify-engine-probe")
            try:
                admin.list_topics()
            finally:
                admin.close()
            return True
        except Exception:  # the broker is still starting
            return False

    def running(self) -> bool:
        return self._answers()

    def stop(self) -> None:
        _stop_pid_file(self.pid_file)

    def create_topics(self, topics: dict[str, int], settings: dict[str, dict[str, str]] | None = None) -> None:
        """Create topics that do not exist yet (name -> partitions), each with its topic settings if given."""
        from .topics import create_topics

        create_topics(self.bootstrap, topics, settings)

    def fresh_topics(self, prefix: str, partitions: int = 2) -> "JobTopics":
        """A new set of the job's topics, named `<prefix><role>-<run>`, for one test or benchmark run."""
        run = uuid.uuid4().hex[:8]
        topics = JobTopics(events=f"{prefix}events-{run}", notifications=f"{prefix}notifications-{run}",
                           dead_letters=f"{prefix}dlq-{run}", catalog=f"{prefix}catalog-{run}",
                           users=f"{prefix}users-{run}", exposures=f"{prefix}exposures-{run}",
                           outcomes=f"{prefix}outcomes-{run}")
        from .topics import DEAD_LETTERS

        self.create_topics({topics.events: partitions, topics.notifications: partitions, topics.dead_letters: 1,
                            topics.catalog: 1, topics.users: 1, topics.exposures: partitions,
                            topics.outcomes: partitions},
                           {topics.dead_letters: DEAD_LETTERS})
        return topics

    def delete_topics(self, topics: list[str], timeout: float = 30.0) -> None:
        """Delete topics that exist and wait until the broker has forgotten them."""
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, client_id="notify-engine-admin")
        try:
            doomed = [t for t in topics if t in set(admin.list_topics())]
            if doomed:
                admin.delete_topics(doomed)
            deadline = time.monotonic() + timeout
            while doomed and time.monotonic() < deadline:
                doomed = [t for t in doomed if t in set(admin.list_topics())]
                time.sleep(0.2)
            if doomed:
                raise RuntimeError(f"topics {doomed} were not deleted within {timeout}s")
        finally:
            admin.close()


@dataclass
class RedisServer:
    port: int
    data_dir: Path

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "redis.pid"

    def client(self):
        import redis

        return redis.Redis.from_url(self.url, socket_timeout=5)

    def running(self) -> bool:
        if not port_open(self.port):
            return False
        try:
            return bool(self.client().ping())
        except Exception:  # still loading, or not Redis
            return False

    def start(self, timeout: float = 20.0) -> "RedisServer":
        if self.running():
            return self
        server = ensure_redis_server()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.data_dir / "redis.out", "ab")
        proc = subprocess.Popen(
            [server, "--port", str(self.port), "--bind", LOOPBACK, "--protected-mode", "yes",
             "--save", "", "--appendonly", "no", "--dir", str(self.data_dir), "--daemonize", "no"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        self.pid_file.write_text(str(proc.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {proc.returncode}; see {self.data_dir}/redis.out")
            if self.running():
                return self
            time.sleep(0.1)
        raise RuntimeError(f"Redis did not answer on port {self.port} within {timeout}s")

    def stop(self) -> None:
        _stop_pid_file(self.pid_file)


@dataclass(frozen=True)
class JobTopics:
    events: str
    notifications: str
    dead_letters: str
    catalog: str
    users: str  # the user directory
    exposures: str  # the holdout's would-be sends
    outcomes: str  # carts and purchases attributed to a message

    def kafka(self) -> dict:
        """The kafka config section's names of the job's own topics."""
        return {"events_topic": self.events, "notifications_topic": self.notifications,
                "dead_letter_topic": self.dead_letters, "exposures_topic": self.exposures,
                "outcomes_topic": self.outcomes}


def default_broker(port: int = 29092) -> KafkaBroker:
    return KafkaBroker(port=port, controller_port=port + 1, data_dir=cache_dir() / "run" / f"kafka-{port}")


def default_redis(port: int = 26379) -> RedisServer:
    return RedisServer(port=port, data_dir=cache_dir() / "run" / f"redis-{port}")


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="notify-engine services",
                                     description="Fetch, start, check and stop the local services.")
    parser.add_argument("action", choices=["fetch", "up", "down", "status"])
    parser.add_argument("--kafka-port", type=int, default=29092)
    parser.add_argument("--redis-port", type=int, default=26379)
    args = parser.parse_args(argv)
    broker, redis_server = default_broker(args.kafka_port), default_redis(args.redis_port)
    if args.action == "fetch":
        print(f"kafka jars: {ensure_kafka_jars()}")
        print(f"connector:  {ensure_connector_jar()}")
        print(f"redis:      {ensure_redis_server()}")
    elif args.action == "up":
        ensure_connector_jar()
        broker.start()
        redis_server.start()
        print(f"kafka {broker.bootstrap} and redis {redis_server.url} are up")
    elif args.action == "down":
        broker.stop()
        redis_server.stop()
        print("stopped")
    else:
        print(f"kafka {broker.bootstrap}: {'up' if broker.running() else 'down'}")
        print(f"redis {redis_server.url}: {'up' if redis_server.running() else 'down'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
