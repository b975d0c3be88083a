"""Static checks of docker/: what we can verify without a Docker engine.

The project's machines have no Docker engine, so docker/compose.yaml has never been brought up
here (see docker/README.md). These tests read the files instead. They check that every path the
Dockerfile copies and the compose file refers to exists, that the versions match the project's
pins (setup.py, notify_engine.services, the Kafka pom), that ports are published on 127.0.0.1
only, and that the job config loads. If a `docker` client with the compose plugin is installed,
they also run `docker compose config`, which validates the file against the Compose
specification and needs no engine.
"""
from __future__ import annotations

import ast
import base64
import hashlib
import json
import posixpath
import re
import shlex
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from config import load_config
from notify_engine import services

REPO = Path(__file__).resolve().parents[3]
DOCKER_DIR = REPO / "docker"
COMPOSE_FILE = DOCKER_DIR / "compose.yaml"
DOCKERFILE = DOCKER_DIR / "Dockerfile"
JOB_CONFIG = DOCKER_DIR / "job-config.yaml"
EXPECTED_SERVICES = {"kafka", "redis", "topics", "jobmanager", "taskmanager", "submit"}


# --- a small Dockerfile reader -------------------------------------------------------------

@dataclass
class Copy:
    sources: list[str]
    dest: str  # absolute path in the image
    from_stage: str | None
    line: str


@dataclass
class Stage:
    base: str
    name: str | None
    workdir: str = "/"
    copies: list[Copy] = field(default_factory=list)
    instructions: list[tuple[str, str]] = field(default_factory=list)


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comment lines
    removed, also inside a continuation, as Docker removes them."""
    result, buffer = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (buffer and not line):
            continue
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        buffer += line
        if buffer.strip():
            keyword, _, args = buffer.strip().partition(" ")
            result.append((keyword.upper(), args.strip()))
        buffer = ""
    assert not buffer.strip(), "the Dockerfile ends inside a continuation line"
    return result


def _split_flags(args: str) -> tuple[dict[str, str], list[str]]:
    if args.lstrip().startswith("["):  # exec (JSON) form
        flags_part, _, json_part = args.partition("[")
        tokens = json.loads("[" + json_part)
        flag_tokens = shlex.split(flags_part)
    else:
        all_tokens = shlex.split(args)
        flag_tokens = [t for t in all_tokens if t.startswith("--")]
        tokens = [t for t in all_tokens if not t.startswith("--")]
    flags = {}
    for token in flag_tokens:
        key, _, value = token[2:].partition("=")
        flags[key] = value
    return flags, tokens


def dockerfile_stages(text: str) -> list[Stage]:
    stages: list[Stage] = []
    for keyword, args in dockerfile_instructions(text):
        if keyword == "FROM":
            parts = args.split()
            flags = [p for p in parts if p.startswith("--")]
            rest = [p for p in parts if not p.startswith("--")]
            name = rest[2] if len(rest) >= 3 and rest[1].upper() == "AS" else None
            assert not flags or all(f.startswith("--platform") for f in flags), args
            stages.append(Stage(base=rest[0], name=name))
            continue
        assert stages, f"{keyword} before the first FROM"
        stage = stages[-1]
        stage.instructions.append((keyword, args))
        if keyword == "WORKDIR":
            stage.workdir = posixpath.normpath(posixpath.join(stage.workdir, args.strip()))
        elif keyword in ("COPY", "ADD"):
            flags, tokens = _split_flags(args)
            *sources, dest = tokens
            absolute = posixpath.normpath(posixpath.join(stage.workdir, dest))
            if dest.endswith(("/", "/.")) or dest == "." or len(sources) > 1:
                absolute = absolute.rstrip("/") + "/"
            stage.copies.append(Copy(sources, absolute, flags.get("from"), f"{keyword} {args}"))
    return stages


def resolve_in_image(stages: list[Stage], stage: Stage, path: str, depth: int = 0) -> Path | None:
    """The repository file that ends up at `path` in `stage`, following COPY --from."""
    assert depth < 10
    for copy in reversed(stage.copies):
        for source in copy.sources:
            if copy.dest.endswith("/"):
                target = copy.dest + posixpath.basename(source.rstrip("/"))
            else:
                target = copy.dest
            if path != target and not path.startswith(target.rstrip("/") + "/"):
                continue
            rest = path[len(target.rstrip("/")):].lstrip("/")
            if copy.from_stage is None:
                return REPO / source / rest if rest else REPO / source
            other = next(s for s in stages if s.name == copy.from_stage)
            return resolve_in_image(stages, other, posixpath.join(source, rest) if rest else source, depth + 1)
    return None


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return dockerfile_stages(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def final_stage(stages) -> Stage:
    return stages[-1]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def svc(compose) -> dict:
    return compose["services"]


def flatten(mapping: dict, prefix: str = "") -> dict:
    """Flink's nested YAML as dotted keys (jobmanager.rpc.address ...)."""
    out = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


@pytest.fixture(scope="module")
def flink_conf(stages, final_stage) -> dict:
    path = resolve_in_image(stages, final_stage, "/opt/flink/conf/config.yaml")
    assert path is not None, "the Dockerfile copies no /opt/flink/conf/config.yaml"
    return flatten(yaml.safe_load(path.read_text()))


def setup_py_packages() -> list[str]:
    tree = ast.parse((REPO / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setup":
            for keyword in node.keywords:
                if keyword.arg == "packages":
                    return [ast.literal_eval(element) for element in keyword.value.elts]
    raise AssertionError("setup.py has no packages=[...]")


def flink_pin() -> str:
    found = re.search(r"""["']apache-flink==([0-9][0-9.]*)["']""", (REPO / "setup.py").read_text())
    assert found, "setup.py does not pin apache-flink=="
    return found.group(1)


def pom_kafka_version() -> str:
    root = ET.parse(services.KAFKA_POM).getroot()
    namespace = {"m": "http://maven.apache.org/POM/4.0.0"}
    element = root.find("m:properties/m:kafka.version", namespace)
    assert element is not None and element.text
    return element.text.strip()


def host_publications(service: dict) -> list[tuple[str, str, str]]:
    """(host_ip, published, target) of each published port, short or long syntax."""
    out = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            out.append((str(port.get("host_ip", "")), str(port.get("published", "")), str(port["target"])))
            continue
        text = str(port).split("/")[0]
        if text.startswith("["):  # [::1]:8081:8081
            host, _, rest = text[1:].partition("]:")
            published, _, target = rest.partition(":")
        else:
            parts = text.split(":")
            if len(parts) == 3:
                host, published, target = parts
            elif len(parts) == 2:
                host, (published, target) = "", parts
            else:
                host, published, target = "", "", parts[0]
        out.append((host, published, target))
    return out


def command_text(service: dict) -> str:
    command = service.get("command", "")
    return command if isinstance(command, str) else "\n".join(map(str, command))


def flink_run_argv(svc: dict) -> list[str]:
    script = command_text(svc["submit"]).replace("\\\n", " ")
    lines = [line.strip() for line in script.splitlines() if "flink run" in line]
    assert len(lines) == 1, "the submit service should run `flink run` exactly once"
    argv = shlex.split(lines[0])
    return argv[argv.index("run") + 1:]


def option(argv: list[str], name: str) -> str:
    assert name in argv, f"`flink run` has no {name}"
    return argv[argv.index(name) + 1]


# --- compose structure -----------------------------------------------------------------------

def test_compose_has_the_expected_services(svc):
    assert set(svc) == EXPECTED_SERVICES


def test_build_context_and_dockerfile_exist(svc):
    built = {name: s["build"] for name, s in svc.items() if "build" in s}
    assert built, "no service builds the image"
    for name, build in built.items():
        context = (COMPOSE_FILE.parent / build["context"]).resolve()
        assert context.is_dir(), f"{name}: build context {context} is missing"
        dockerfile = (context / build.get("dockerfile", "Dockerfile")).resolve()
        assert dockerfile.is_file(), f"{name}: {dockerfile} is missing"
        assert dockerfile == DOCKERFILE.resolve()


def test_every_image_is_built_here_or_pinned_to_a_version(svc):
    built_images = {s["image"] for s in svc.values() if "build" in s and "image" in s}
    for name, service in svc.items():
        image = service.get("image")
        assert image or "build" in service, f"{name} has neither image nor build"
        if image and "build" not in service and image not in built_images:
            repository, _, tag = image.rpartition(":")
            assert repository and tag and tag != "latest", f"{name}: image {image} has no version tag"


def test_depends_on_names_existing_services_with_sound_conditions(svc):
    graph = {}
    for name, service in svc.items():
        depends = service.get("depends_on", {})
        if isinstance(depends, list):
            depends = {d: {"condition": "service_started"} for d in depends}
        graph[name] = set(depends)
        for target, spec in depends.items():
            assert target in svc, f"{name} depends on unknown service {target}"
            condition = spec.get("condition", "service_started")
            assert condition in {"service_started", "service_healthy", "service_completed_successfully"}
            if condition == "service_healthy":
                assert "healthcheck" in svc[target], f"{name} waits for {target} to be healthy; it has no healthcheck"
            if condition == "service_completed_successfully":
                assert str(svc[target].get("restart", "no")) == "no", f"{target} is waited for as a one-shot"

    visiting, done = set(), set()

    def visit(node):
        assert node not in visiting, f"depends_on cycle through {node}"
        if node in done:
            return
        visiting.add(node)
        for nxt in graph[node]:
            visit(nxt)
        visiting.discard(node)
        done.add(node)

    for node in graph:
        visit(node)


def test_long_running_services_have_healthchecks(svc):
    for name in ("kafka", "redis", "jobmanager", "taskmanager"):
        assert "test" in svc[name].get("healthcheck", {}), f"{name} has no healthcheck"


def test_host_ports_are_published_on_loopback_only(svc):
    published = [(name, p) for name, s in svc.items() for p in host_publications(s)]
    assert published, "nothing is published to the host"
    for name, (host, _, _) in published:
        assert host == "127.0.0.1", f"{name} publishes a port on {host or 'all interfaces'}"


# --- versions agree with the project's pins --------------------------------------------------

def test_flink_base_image_matches_the_apache_flink_pin(stages, svc):
    version = flink_pin()
    for stage in stages:
        assert stage.base == f"flink:{version}-scala_2.12-java17", stage.base
    for name, service in svc.items():
        if service.get("image", "").startswith("notify-engine-flink:"):
            assert service["image"] == f"notify-engine-flink:{version}", name


def test_connector_version_matches_services(stages, svc):
    build = stages[0]
    _, _, version = services.CONNECTOR_ARTIFACT.split(":")
    args = {}
    for keyword, text in build.instructions:
        if keyword == "ARG":
            key, _, value = text.partition("=")
            args[key.strip()] = value.strip()
    assert args.get("CONNECTOR_VERSION") == version
    assert services.CONNECTOR_JAR_NAME == f"flink-sql-connector-kafka-{version}.jar"
    run = " ".join(text for keyword, text in build.instructions if keyword == "RUN")
    assert "org/apache/flink/flink-sql-connector-kafka/${CONNECTOR_VERSION}/" in run
    jar = "/opt/notify-engine-jars/notify-engine-flink-sql-connector-kafka-${CONNECTOR_VERSION}.jar"
    assert jar in run and 'jar uf "$jar" -C /tmp/classes .' in run  # with the project's Java classes
    assert ("COPY", "jobs/java /opt/notify-engine-java") in build.instructions
    assert option(flink_run_argv(svc), "-j") == f"/opt/flink/connectors/notify-engine-{services.CONNECTOR_JAR_NAME}"
    assert re.fullmatch(r"[0-9a-f]{64}", args.get("CONNECTOR_SHA256", "")), "the connector's sha256 is not pinned"


def test_pinned_connector_checksum_matches_the_jar_from_maven_when_cached(stages):
    jar = services.cache_dir() / "flink-jars" / services.CONNECTOR_JAR_NAME
    if not jar.is_file():
        pytest.skip(f"{jar} is not cached (`notify-engine services fetch` downloads it)")
    pinned = next(text.partition("=")[2] for keyword, text in stages[0].instructions
                  if keyword == "ARG" and text.startswith("CONNECTOR_SHA256="))
    assert hashlib.sha256(jar.read_bytes()).hexdigest() == pinned


def test_kafka_image_matches_the_pom(svc):
    version = pom_kafka_version()
    kafka_images = [s["image"] for s in svc.values() if s.get("image", "").startswith("apache/kafka:")]
    assert set(kafka_images) == {f"apache/kafka:{version}"}
    assert svc["kafka"]["image"] == f"apache/kafka:{version}"


# --- Kafka, topics and the job config fit together ----------------------------------------

def test_kafka_is_a_single_kraft_node(svc):
    env = {k: str(v) for k, v in svc["kafka"]["environment"].items()}
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    node_id, _, voter = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].partition("@")
    assert node_id == env["KAFKA_NODE_ID"]
    listeners = dict(item.split("://") for item in env["KAFKA_LISTENERS"].split(","))
    advertised = dict(item.split("://") for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    protocols = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert voter == f"kafka:{listeners[controller].rpartition(':')[2]}"
    assert controller not in advertised
    assert set(listeners) <= set(protocols)
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in advertised
    # the other containers reach kafka:9092; the host reaches the published loopback port
    assert advertised["PLAINTEXT"] == "kafka:9092"
    host_ports = {(published, target) for _, published, target in host_publications(svc["kafka"])}
    host_side = [a for a in advertised.values() if a.startswith("127.0.0.1:")]
    assert host_side and all((a.rpartition(":")[2], a.rpartition(":")[2]) in host_ports for a in host_side)
    assert len(base64.urlsafe_b64decode(env["CLUSTER_ID"] + "==")) == 16, "CLUSTER_ID must encode a 16-byte uuid"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_job_config_loads_and_points_at_compose_services(svc):
    config = load_config(JOB_CONFIG)  # validates, and rejects keys the config package does not know
    kafka_env = svc["kafka"]["environment"]
    advertised = [a.split("://")[1] for a in kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")]
    for server in config.kafka.bootstrap_servers.split(","):
        host = server.rpartition(":")[0]
        assert host in svc and server in advertised, f"{server} is not a listener the kafka service advertises"
    assert config.redis.enabled
    assert config.redis.url.startswith("redis://redis:6379/")
    assert config.kafka.transaction_timeout_ms <= int(kafka_env["KAFKA_TRANSACTION_MAX_TIMEOUT_MS"])


def test_topics_service_creates_every_topic_the_job_uses(svc):
    config = load_config(JOB_CONFIG)
    script = command_text(svc["topics"])
    assert "kafka-topics.sh" in script and "--if-not-exists" in script
    assert "--bootstrap-server kafka:9092" in script
    for topic in (config.kafka.events_topic, config.kafka.notifications_topic, config.kafka.dead_letter_topic,
                  config.kafka.exposures_topic, config.kafka.outcomes_topic,
                  config.catalog.topic, config.directory.topic):
        assert re.search(rf"(?<![\w.-]){re.escape(topic)}(?![\w.-])", script), f"topic {topic} is not created"


# --- the Dockerfile --------------------------------------------------------------------------

def test_dockerfile_copy_sources_exist(stages):
    names = {s.name for s in stages if s.name}
    copies = [c for s in stages for c in s.copies]
    assert copies
    for copy in copies:
        if copy.from_stage is not None:
            assert copy.from_stage in names, f"{copy.line}: no stage named {copy.from_stage}"
            continue
        for source in copy.sources:
            assert not source.startswith(("http://", "https://")), f"{copy.line}: fetch with a checked download instead"
            assert (REPO / source).exists(), f"{copy.line}: {source} is not in the repository"


def test_image_contains_what_pip_install_needs(stages):
    build = next(s for s in stages if any("pip install" in a for k, a in s.instructions if k == "RUN"))
    run = " ".join(a for k, a in build.instructions if k == "RUN")
    target = re.search(r"pip install [^;&]*?(/\S+)\s*;", run).group(1)
    assert resolve_in_image(stages, build, f"{target}/setup.py") == REPO / "setup.py"
    for package in setup_py_packages():
        found = resolve_in_image(stages, build, f"{target}/{package}/__init__.py")
        assert found == REPO / package / "__init__.py", f"package {package} is not copied into the image"
    assert resolve_in_image(stages, build, f"{target}/notify_engine/resources/kafka-broker-pom.xml") is not None


def test_submit_runs_files_that_the_image_contains(stages, final_stage, svc):
    argv = flink_run_argv(svc)
    assert option(argv, "-m") == "jobmanager:8081"
    assert "-d" in argv, "submit must detach, or the one-shot service never completes"
    script = resolve_in_image(stages, final_stage, option(argv, "-py"))
    assert script is not None and script.is_file(), "the -py script is not copied into the image"
    assert script == REPO / "jobs" / "notification_job.py"
    program_args = argv[argv.index("--") + 1:] if "--" in argv else argv
    config = resolve_in_image(stages, final_stage, option(program_args, "--config"))
    assert config is not None and config.is_file(), "the --config file is not copied into the image"
    assert config == JOB_CONFIG
    assert option(argv, "-pyexec") == option(argv, "-pyclientexec") == "/opt/venv/bin/python"


def test_flink_config_fits_the_compose_network(flink_conf, svc, final_stage):
    assert flink_conf["jobmanager.rpc.address"] == "jobmanager" == flink_conf["rest.address"]
    for key in ("jobmanager.bind-host", "taskmanager.bind-host", "rest.bind-address"):
        assert flink_conf[key] == "0.0.0.0", key
    assert "taskmanager.host" not in flink_conf
    for name in ("jobmanager", "taskmanager", "submit"):
        assert svc[name]["environment"]["JOB_MANAGER_RPC_ADDRESS"] == "jobmanager"
    rest_targets = {target for _, _, target in host_publications(svc["jobmanager"])}
    assert str(flink_conf["rest.port"]) in rest_targets
    assert f"/dev/tcp/127.0.0.1/{flink_conf['taskmanager.rpc.port']}" in command_text(
        {"command": svc["taskmanager"]["healthcheck"]["test"]})
    # checkpoints on a volume that both the JobManager and the TaskManager mount
    checkpoint_dir = flink_conf["execution.checkpointing.dir"].removeprefix("file://")
    mounts = [set(svc[name].get("volumes", [])) for name in ("jobmanager", "taskmanager")]
    shared = [m for m in mounts[0] & mounts[1] if checkpoint_dir.startswith(m.split(":")[1].rstrip("/") + "/")]
    assert shared, f"{checkpoint_dir} is not on a volume shared by the jobmanager and the taskmanager"


def test_python_settings_point_at_the_image_venv(flink_conf, final_stage, stages):
    assert flink_conf["python.execution-mode"] == load_config(JOB_CONFIG).flink.execution_mode
    assert flink_conf["python.executable"] == flink_conf["python.client.executable"] == "/opt/venv/bin/python"
    env = {}
    for keyword, text in final_stage.instructions:
        if keyword == "ENV":
            env.update(token.split("=", 1) for token in shlex.split(text))
    assert env["PATH"].startswith("/opt/venv/bin:")
    # thread mode: the embedded interpreter finds the venv's packages through PYTHONPATH only
    assert "/opt/venv/site-packages" in env["PYTHONPATH"].split(":")
    build_runs = " ".join(a for s in stages for k, a in s.instructions if k == "RUN")
    assert "python3 -m venv /opt/venv" in build_runs and "/opt/venv/site-packages" in build_runs
    assert any(c.from_stage and "/opt/venv" in c.sources for c in final_stage.copies)
    assert "cp /opt/flink/opt/flink-python-" in build_runs  # see notify_engine/cluster.py


def test_container_flink_config_keeps_the_jvm_options_of_the_local_one(flink_conf):
    local = flatten(yaml.safe_load((REPO / "flink-conf" / "config.yaml").read_text()))
    assert flink_conf["env.java.opts.all"] == local["env.java.opts.all"]


# --- docker compose itself, where a client is installed -----------------------------------

def _compose_command() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=30)
        if probe.returncode == 0:
            return ["docker", "compose"]
    standalone = shutil.which("docker-compose")
    if standalone:
        probe = subprocess.run([standalone, "version"], capture_output=True, text=True, timeout=30)
        if probe.returncode == 0 and re.search(r"v2\.\d+", probe.stdout):
            return [standalone]
    return None


def test_docker_compose_config_accepts_the_file():
    command = _compose_command()
    if command is None:
        reason = ("the docker client has no compose plugin" if shutil.which("docker")
                  else "no docker client is installed")
        pytest.skip(f"{reason}; `docker compose config` validates docker/compose.yaml without an engine")
    result = subprocess.run(command + ["-f", str(COMPOSE_FILE), "config", "--quiet"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
