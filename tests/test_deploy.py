"""The deployment files hold together, checked without a Docker engine.

Dockerfile, docker-compose.yaml, .env.example, deploy/hadoop/, airflow_settings.yaml and
scripts/apply_airflow_settings.py: the compose file against the Compose Specification's schema
(vendored in tests/schemas/), its Airflow configuration against the installed Airflow, the
Dockerfile with hadolint and against the lock and the ClickHouse provider, the settings file
against what the code uses, and the loader against a real Airflow metadata database.
"""

from __future__ import annotations

import ast
import copy
import importlib
import importlib.util
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from tests.conftest import PROJECT_ROOT

COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yaml"
ENV_EXAMPLE = PROJECT_ROOT / ".env.example"
DOCKERFILE = PROJECT_ROOT / "Dockerfile"
DOCKERIGNORE = PROJECT_ROOT / ".dockerignore"
LOCK = PROJECT_ROOT / "requirements.txt"
SETTINGS_FILE = PROJECT_ROOT / "airflow_settings.yaml"
LOADER = PROJECT_ROOT / "scripts" / "apply_airflow_settings.py"
COMPOSE_SCHEMA = PROJECT_ROOT / "tests" / "schemas" / "compose-spec.json"
SOURCE_DIRS = ("dags", "plugins", "include")
#: The ClickHouse provider distribution, installed in the image after the lock.
PROVIDER = PROJECT_ROOT / "providers" / "clickhouse"

#: `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?message}`, `${VAR?message}`; `$${...}`
#: is Compose's escape for a literal `$` (left to the container's shell) and not a reference.
VAR_REFERENCE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET|TOKEN|_KEY\b|KEY$")
#: Secrets Compose must refuse to start without.
REQUIRED_SECRETS = {
    "POSTGRES_PASSWORD",
    "AIRFLOW_FERNET_KEY",
    "AIRFLOW_JWT_SECRET",
    "AIRFLOW_API_SECRET_KEY",
    "AIRFLOW_ADMIN_PASSWORD",
    "CLICKHOUSE_PASSWORD",
}
HADOOP_FILES = ("core-site.xml", "hdfs-site.xml", "yarn-site.xml", "mapred-site.xml")


def resolve_defaults(text: str) -> str:
    """`text` with each `${VAR...}` replaced by its default (empty when it has none)."""
    return VAR_REFERENCE.sub(lambda m: m[3] if m[2] in (":-", "-") else "", text)


def import_string(path: str):
    """The object at a dotted path, as Airflow resolves classpath settings."""
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


@pytest.fixture(scope="module")
def compose_text() -> str:
    return COMPOSE_FILE.read_text()


@pytest.fixture(scope="module")
def compose(compose_text) -> dict:
    return yaml.safe_load(compose_text)


@pytest.fixture(scope="module")
def airflow_env(compose) -> dict[str, str]:
    return {k: str(v) for k, v in compose["x-airflow-common"]["environment"].items()}


@pytest.fixture(scope="module")
def airflow_mounts(compose) -> dict[str, str]:
    """Container path -> host source (defaults resolved) of the Airflow containers' volumes."""
    mounts = {}
    for volume in compose["x-airflow-common"]["volumes"]:
        source, target = resolve_defaults(volume).split(":")[:2]
        mounts[target] = source
    return mounts


def airflow_services(compose) -> dict[str, dict]:
    """The services built on x-airflow-common (they share its image)."""
    image = compose["x-airflow-common"]["image"]
    return {name: s for name, s in compose["services"].items() if s.get("image") == image}


class TestComposeFile:
    """docker-compose.yaml is a valid Compose file whose services fit together."""

    def test_validates_against_the_compose_specification(self, compose):
        """The file validates against the vendored Compose Specification JSON schema."""
        from jsonschema import Draft7Validator

        schema = json.loads(COMPOSE_SCHEMA.read_text())
        Draft7Validator.check_schema(schema)
        errors = sorted(Draft7Validator(schema).iter_errors(compose), key=lambda e: e.path)
        assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)

    def test_schema_rejects_a_broken_file(self, compose):
        """The schema is strict enough to catch a misspelt key and a wrong type."""
        from jsonschema import Draft7Validator

        validator = Draft7Validator(json.loads(COMPOSE_SCHEMA.read_text()))
        misspelt = copy.deepcopy(compose)
        misspelt["services"]["postgres"]["healthchek"] = misspelt["services"]["postgres"].pop(
            "healthcheck"
        )
        assert not validator.is_valid(misspelt)
        wrong_type = copy.deepcopy(compose)
        wrong_type["services"]["redis"]["depends_on"] = {"postgres": {"condition": "healthy"}}
        assert not validator.is_valid(wrong_type)

    def test_depends_on_names_existing_services(self, compose):
        """Every service named in a depends_on is defined."""
        services = compose["services"]
        for name, service in services.items():
            for dependency in service.get("depends_on") or {}:
                assert dependency in services, f"{name} depends on undefined {dependency}"

    def test_healthy_conditions_have_healthchecks(self, compose):
        """A service waited on with service_healthy defines a healthcheck."""
        services = compose["services"]
        for name, service in services.items():
            for dependency, spec in (service.get("depends_on") or {}).items():
                if spec.get("condition") == "service_healthy":
                    assert "healthcheck" in services[dependency], f"{name} -> {dependency}"

    def test_default_services_do_not_need_optional_ones(self, compose):
        """Services without a profile never depend on a service that only runs in a profile."""
        services = compose["services"]
        for name, service in services.items():
            if service.get("profiles"):
                continue
            for dependency in service.get("depends_on") or {}:
                assert not services[dependency].get("profiles"), f"{name} -> {dependency}"

    def test_airflow_services_follow_the_official_layout(self, compose):
        """The Airflow 3 components run from x-airflow-common, gated on airflow-init."""
        services = airflow_services(compose)
        expected = {
            "airflow-apiserver": "api-server",
            "airflow-scheduler": "scheduler",
            "airflow-dag-processor": "dag-processor",
            "airflow-triggerer": "triggerer",
            "airflow-worker": "celery worker",
        }
        for name, command in expected.items():
            assert services[name]["command"] == command
            assert "healthcheck" in services[name], name
            assert services[name]["depends_on"]["airflow-init"] == {
                "condition": "service_completed_successfully"
            }
            assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
            assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
        assert "airflow-init" in services
        build = compose["x-airflow-common"]["build"]
        assert (PROJECT_ROOT / build["context"] / "Dockerfile").is_file()

    def test_third_party_images_are_pinned(self, compose):
        """Every image outside our build has an explicit tag with a version number."""
        ours = compose["x-airflow-common"]["image"]
        for name, service in compose["services"].items():
            image = service.get("image", "")
            if image == ours:
                continue
            assert re.fullmatch(r"[\w./-]+:[\w.-]*\d[\w.-]*", image), (name, image)
            assert not image.endswith(":latest"), (name, image)

    def test_variables_use_braces(self, compose_text):
        """Compose interpolates `$NAME` too: every reference is `${...}`, every shell `$` `$$`."""
        bare = [
            compose_text[m.start() : m.start() + 20]
            for m in re.finditer(r"\$\$|\$\{|\$", compose_text)
            if m[0] == "$"
        ]
        assert bare == []

    def test_clickhouse_and_mlflow_keep_their_data(self, compose):
        """ClickHouse and MLflow store data and artifacts in named volumes."""
        named = set(compose["volumes"])
        for name, path in (
            ("clickhouse", "/var/lib/clickhouse"),
            ("mlflow", "/mlflow/db"),
            ("mlflow", "/mlflow/artifacts"),
        ):
            volumes = dict(v.split(":")[1::-1] for v in compose["services"][name]["volumes"])
            assert volumes.get(path) in named, (name, path)


class TestEnvExample:
    """.env.example documents every variable the compose file reads, without real secrets."""

    @pytest.fixture(scope="class")
    def documented(self) -> dict[str, str]:
        values = {}
        for line in ENV_EXAMPLE.read_text().splitlines():
            if match := re.fullmatch(r"([A-Z_][A-Z0-9_]*)=(.*)", line):
                values[match[1]] = match[2]
        return values

    @pytest.fixture(scope="class")
    def references(self, compose_text) -> list[tuple[str, str | None, str]]:
        return [(m[1], m[2], m[3] or "") for m in VAR_REFERENCE.finditer(compose_text)]

    def test_every_variable_is_documented(self, documented, references):
        """Each `${VAR}` in docker-compose.yaml has a line in .env.example, and no line is stale."""
        used = {name for name, _, _ in references}
        assert used - set(documented) == set(), "missing from .env.example"
        assert set(documented) - used == set(), "documented but not used by the compose file"

    def test_every_variable_has_a_comment(self):
        """Each assignment in .env.example sits under a comment that explains it."""
        comment_seen = False
        for line in ENV_EXAMPLE.read_text().splitlines():
            if not line.strip():
                comment_seen = False
            elif line.startswith("#"):
                comment_seen = True
            else:
                assert comment_seen, f"no comment above: {line}"

    def test_secrets_have_no_usable_defaults(self, documented, references):
        """Secrets are required (`:?`) or empty by default, and placeholders in the example."""
        for name, op, default in references:
            if SECRET_NAME.search(name):
                assert op == ":?" or (op in (":-", "-") and default == ""), (name, op, default)
            if name in REQUIRED_SECRETS:
                assert op == ":?", f"{name} must be mandatory: ${{{name}:?...}}"
        for name, value in documented.items():
            if SECRET_NAME.search(name):
                assert value == "" or value.startswith("change-me"), name
        assert REQUIRED_SECRETS <= set(documented)

    def test_env_file_stays_out_of_git_and_the_image(self):
        """.env is ignored by git and by the Docker build context."""
        assert "/.env" in PROJECT_ROOT.joinpath(".gitignore").read_text().split()
        assert ".env" in DOCKERIGNORE.read_text().split()


class TestAirflowConfiguration:
    """The Airflow settings in x-airflow-common are consistent with each other and Airflow."""

    def test_celery_executor_has_broker_and_result_backend(self, compose, airflow_env):
        """CeleryExecutor with Redis as broker and Postgres as result backend and metadata DB."""
        services = compose["services"]
        assert airflow_env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        broker = urlsplit(airflow_env["AIRFLOW__CELERY__BROKER_URL"])
        assert broker.scheme == "redis" and broker.hostname in services
        for key in ("AIRFLOW__CELERY__RESULT_BACKEND", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"):
            url = urlsplit(VAR_REFERENCE.sub("secret", airflow_env[key]))
            assert url.scheme.startswith(("db+postgresql", "postgresql")), key
            assert url.hostname == "postgres" and "postgres" in services, key
            assert url.path == "/" + services["postgres"]["environment"]["POSTGRES_DB"], key

    def test_auth_manager_is_fab_with_an_admin_from_env(self, compose, airflow_env):
        """The FAB auth manager (users in the metadata database), importable here, and
        airflow-init creating the admin from AIRFLOW_ADMIN_USER/AIRFLOW_ADMIN_PASSWORD."""
        from airflow.api_fastapi.auth.managers.base_auth_manager import BaseAuthManager
        from airflow.providers.fab.auth_manager.fab_auth_manager import FabAuthManager

        cls = import_string(airflow_env["AIRFLOW__CORE__AUTH_MANAGER"])
        assert issubclass(cls, BaseAuthManager) and cls is FabAuthManager
        assert not [k for k in airflow_env if k.startswith("AIRFLOW__CORE__SIMPLE_AUTH")]
        init = compose["services"]["airflow-init"]
        script = "\n".join(init["command"])
        assert "airflow users create --role Admin" in script
        assert "airflow users reset-password" in script
        for name in ("AIRFLOW_ADMIN_USER", "AIRFLOW_ADMIN_PASSWORD"):
            assert name in init["environment"], name
            assert f"$${{{name}}}" in script, name

    def test_execution_api_points_at_the_apiserver(self, compose, airflow_env):
        """The Execution API URL names the api-server service, its container port and path."""
        url = urlsplit(airflow_env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
        assert url.hostname == "airflow-apiserver" and url.hostname in compose["services"]
        apiserver = compose["services"]["airflow-apiserver"]
        container_ports = {int(p.rsplit(":", 1)[1]) for p in apiserver["ports"]}
        assert url.port in container_ports
        assert url.port == int(airflow_env.get("AIRFLOW__API__PORT", 8080))
        assert url.path == "/execution/"
        healthcheck = " ".join(apiserver["healthcheck"]["test"])
        assert f"localhost:{url.port}/" in healthcheck

    def test_dag_bundle_is_a_mounted_local_folder(self, airflow_env, airflow_mounts):
        """The DAG bundle config is JSON naming an importable bundle on a mounted folder."""
        from airflow.dag_processing.bundles.base import BaseDagBundle

        bundles = json.loads(airflow_env["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"])
        assert isinstance(bundles, list) and bundles
        for bundle in bundles:
            assert set(bundle) == {"name", "classpath", "kwargs"}
            cls = import_string(bundle["classpath"])
            assert issubclass(cls, BaseDagBundle)
            instance = cls(name=bundle["name"], **bundle["kwargs"])  # kwargs are accepted
            path = str(instance.path)
            assert path in airflow_mounts, f"{path} is not a mounted volume"
            source = PROJECT_ROOT / airflow_mounts[path]
            assert source.is_dir() and any(source.glob("*.py")), source

    def test_lake_and_logs_are_volumes(self, compose, airflow_env, airflow_mounts):
        """NSE_LAKE_ROOT is a named volume shared by the workers; logs are mounted."""
        assert airflow_mounts[airflow_env["NSE_LAKE_ROOT"]] in compose["volumes"]
        assert "/opt/airflow/logs" in airflow_mounts
        for folder in SOURCE_DIRS:
            assert airflow_mounts[f"/opt/airflow/{folder}"] == f"./{folder}"

    def test_hadoop_configuration_is_mounted_for_spark(self, compose, airflow_env, airflow_mounts):
        """HADOOP_CONF_DIR and YARN_CONF_DIR hold the YARN profile's cluster addresses."""
        conf_dir = airflow_env["HADOOP_CONF_DIR"]
        assert airflow_env["YARN_CONF_DIR"] == conf_dir and conf_dir in airflow_mounts
        source = PROJECT_ROOT / airflow_mounts[conf_dir]
        properties = {}
        for name in HADOOP_FILES:
            root = ElementTree.parse(source / name).getroot()  # noqa: S314 — the project's own files
            assert root.tag == "configuration", name
            for prop in root.iter("property"):
                properties[prop.findtext("name")] = prop.findtext("value")
        yarn_services = {
            name for name, s in compose["services"].items() if "yarn" in s.get("profiles", [])
        }
        assert urlsplit(properties["fs.defaultFS"]).hostname in yarn_services
        assert properties["yarn.resourcemanager.hostname"] in yarn_services
        namenode = compose["services"]["namenode"]
        assert (
            namenode["environment"]["ENSURE_NAMENODE_DIR"]
            == urlsplit(properties["dfs.namenode.name.dir"]).path
        )
        mounted = {v.split(":")[0] for v in compose["x-hadoop-common"]["volumes"]}
        assert mounted == {f"./deploy/hadoop/{name}" for name in HADOOP_FILES}

    def test_init_migrates_and_applies_the_settings(self, compose, airflow_mounts):
        """airflow-init migrates the database and runs the loader on the mounted settings file."""
        init = compose["services"]["airflow-init"]
        assert init["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"
        script = init["command"][-1]
        match = re.search(r"python (\S+apply_airflow_settings\.py) (\S+)", script)
        assert match, script
        assert match[1] == "/opt/airflow/scripts/apply_airflow_settings.py"
        assert airflow_mounts[match[2]] == "./airflow_settings.yaml"
        dockerfile = DOCKERFILE.read_text()
        assert f"scripts/apply_airflow_settings.py {match[1]}" in dockerfile


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    instructions, current = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        current += " " + stripped.removesuffix("\\")
        if not stripped.endswith("\\"):
            keyword, _, args = current.strip().partition(" ")
            instructions.append((keyword.upper(), " ".join(args.split())))
            current = ""
    return instructions


def locked_version(package: str) -> str:
    match = re.search(rf"^{re.escape(package)}==(\S+)$", LOCK.read_text(), re.MULTILINE)
    assert match, f"{package} is not in {LOCK.name}"
    return match[1]


class TestDockerfile:
    """The Dockerfile lints clean and installs exactly the lock on the matching base image."""

    @pytest.fixture(scope="class")
    def hadolint(self) -> Path:
        binary = Path(sys.executable).parent / "hadolint"
        assert binary.is_file(), "hadolint is in the lock: rebuild the virtualenv (make venv)"
        return binary

    @pytest.fixture(scope="class")
    def instructions(self) -> list[tuple[str, str]]:
        return dockerfile_instructions(DOCKERFILE.read_text())

    def test_hadolint_passes(self, hadolint):
        """hadolint reports nothing, at any level, for the Dockerfile."""
        done = subprocess.run(
            [str(hadolint), "--no-color", str(DOCKERFILE)], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout + done.stderr

    def test_hadolint_catches_problems(self, hadolint, tmp_path):
        """The same hadolint fails a Dockerfile with an untagged base and a cache-keeping pip."""
        bad = tmp_path / "Dockerfile"
        bad.write_text("FROM python\nRUN pip install -r requirements.txt\n")
        done = subprocess.run(
            [str(hadolint), "--no-color", str(bad)], capture_output=True, text=True
        )
        assert done.returncode != 0
        assert "DL3006" in done.stdout and "DL3042" in done.stdout

    def test_base_image_matches_the_lock(self, instructions):
        """FROM apache/airflow:<locked apache-airflow>-python<the lock's Python>."""
        froms = [args for keyword, args in instructions if keyword == "FROM"]
        assert len(froms) == 1
        match = re.fullmatch(r"apache/airflow:(\d+\.\d+\.\d+)-python(\d+\.\d+)", froms[0])
        assert match, froms[0]
        assert match[1] == locked_version("apache-airflow")
        lock_python = re.search(
            r"pip compile .*-p (\d+\.\d+)", (PROJECT_ROOT / "Makefile").read_text()
        )
        assert lock_python and match[2] == lock_python[1]

    def test_installs_exactly_the_lock_and_the_provider(self, instructions):
        """The lock, then the provider with --no-deps, are pip-installed, uncached, before code."""
        copies = [args.split() for keyword, args in instructions if keyword == "COPY"]
        lock_copy = [c for c in copies if c[-2] == "requirements.txt"]
        assert len(lock_copy) == 1
        provider_source = str(PROVIDER.relative_to(PROJECT_ROOT))
        provider_copy = [c for c in copies if c[-2].rstrip("/") == provider_source]
        assert len(provider_copy) == 1, f"{provider_source} is not copied into the image"
        installs = [args for keyword, args in instructions if keyword == "RUN" and "pip" in args]
        assert installs == [
            f"pip install --no-cache-dir -r {lock_copy[0][-1]}",
            f"pip install --no-cache-dir --no-deps {provider_copy[0][-1].rstrip('/')}",
        ]
        lock_at, provider_at = (instructions.index(("RUN", args)) for args in installs)
        assert instructions.index(("COPY", " ".join(provider_copy[0]))) > lock_at
        for position, (keyword, args) in enumerate(instructions):
            source = args.split()[-2] if keyword == "COPY" else ""
            if source.rstrip("/") in SOURCE_DIRS:
                assert position > provider_at, f"{source} is copied before the dependencies"
        for folder in SOURCE_DIRS:
            assert [folder + "/", f"/opt/airflow/{folder}/"] in [c[-2:] for c in copies]

    def test_provider_needs_nothing_beyond_the_lock(self):
        """The lock holds each provider dependency at a version it accepts; its build is pinned."""
        import tomllib

        from packaging.requirements import Requirement

        pyproject = tomllib.loads((PROVIDER / "pyproject.toml").read_text())
        dependencies = [Requirement(spec) for spec in pyproject["project"]["dependencies"]]
        assert {r.name for r in dependencies} == {"apache-airflow", "clickhouse-driver"}
        for requirement in dependencies:
            locked = locked_version(requirement.name)
            assert requirement.specifier.contains(locked), (str(requirement), locked)
        for spec in pyproject["build-system"]["requires"]:
            assert re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][A-Za-z0-9.]*", spec), spec

    def test_pyspark_and_its_client_share_a_release(self):
        """pyspark and pyspark-client overlap on disk, so the lock pins them to one version."""
        assert locked_version("pyspark") == locked_version("pyspark-client")

    def test_runtime_environment(self, instructions):
        """Java home, PYTHONPATH for include.nse and OCI labels (the user: test_security.py)."""
        env = " ".join(args for keyword, args in instructions if keyword == "ENV")
        assert re.search(r"JAVA_HOME=/usr/lib/jvm/\S+", env)
        assert re.search(r"PYTHONPATH=(\S*:)?/opt/airflow(:|\s|$)", env)
        labels = " ".join(args for keyword, args in instructions if keyword == "LABEL")
        for label in ("title", "description", "version", "revision", "base.name"):
            assert f"org.opencontainers.image.{label}=" in labels, label
        run = " ".join(args for keyword, args in instructions if keyword == "RUN")
        assert "openjdk-17-jre-headless" in run and "rm -rf /var/lib/apt/lists/*" in run

    def test_build_context_leaves_out_local_state(self):
        """.dockerignore keeps the virtualenv, local state, caches and git history out."""
        ignored = DOCKERIGNORE.read_text().split()
        for entry in (".venv", ".local", ".git", ".pytest_cache", "**/__pycache__"):
            assert entry in ignored, entry


def referenced_ids(files) -> tuple[set[str], set[str]]:
    """Connection ids and pool names the given Python sources refer to with string literals.

    Reads `*conn_id="..."` keyword arguments and parameter defaults, `default_conn_name = "..."`
    and `*_CONN_ID = "..."` assignments, `get_connection("...")` calls, and `pool="..."` /
    `*_POOL = "..."` / `{"pool": "..."}` (default_args).
    """
    conns: set[str] = set()
    pools: set[str] = set()

    def literal(node) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        return None

    def classify(name: str, value: str | None) -> None:
        if value is None:
            return
        lowered = name.lower()
        if lowered == "default_conn_name" or lowered.endswith("conn_id"):
            conns.add(value)
        elif lowered == "pool" or lowered.endswith("_pool"):
            pools.add(value)

    for path in files:
        for node in ast.walk(ast.parse(Path(path).read_text(), filename=str(path))):
            if isinstance(node, ast.keyword) and node.arg:
                classify(node.arg, literal(node.value))
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    name = getattr(target, "id", None) or getattr(target, "attr", None)
                    if name:
                        classify(name, literal(node.value))
            elif isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values, strict=True):
                    if key is not None and literal(key):
                        classify(literal(key), literal(value))
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args
                positional = args.posonlyargs + args.args
                for arg, default in zip(positional[::-1], args.defaults[::-1], strict=False):
                    classify(arg.arg, literal(default))
                for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
                    if default is not None:
                        classify(arg.arg, literal(default))
            elif isinstance(node, ast.Call):
                func = node.func
                name = getattr(func, "attr", None) or getattr(func, "id", None)
                if name in ("get_connection", "get_connection_from_secrets") and node.args:
                    if value := literal(node.args[0]):
                        conns.add(value)
    return conns, pools


class TestSettingsCoverConnectionsAndPools:
    """Every connection and pool the code refers to is defined in airflow_settings.yaml."""

    @pytest.fixture(scope="class")
    def settings(self) -> dict:
        return yaml.safe_load(SETTINGS_FILE.read_text())["airflow"]

    @pytest.fixture(scope="class")
    def referenced(self) -> tuple[set[str], set[str]]:
        files = [p for d in SOURCE_DIRS for p in sorted((PROJECT_ROOT / d).rglob("*.py"))]
        return referenced_ids(files + sorted(PROVIDER.rglob("*.py")))

    def test_scanner_reads_every_form(self, tmp_path):
        """The scanner finds ids in each way code names them."""
        source = tmp_path / "sample.py"
        source.write_text(
            textwrap.dedent(
                """
                ARCHIVE_CONN_ID = "a_conn"
                NSE_POOL = "a_pool"
                class Hook:
                    default_conn_name = "b_conn"
                def make(x_conn_id: str = "c_conn", *, pool="b_pool"):
                    BaseHook.get_connection("d_conn")
                    Operator(task_id="t", spark_conn_id="e_conn", pool="c_pool")
                    return {"pool": "d_pool", "http_conn_id": "f_conn", "owner": "x"}
                """
            )
        )
        conns, pools = referenced_ids([source])
        assert conns == {"a_conn", "b_conn", "c_conn", "d_conn", "e_conn", "f_conn"}
        assert pools == {"a_pool", "b_pool", "c_pool", "d_pool"}

    def test_scanner_finds_the_known_connections(self, referenced):
        """The project's own connections are found (the scan is not silently empty)."""
        conns, _ = referenced
        assert {"clickhouse_default", "nse_archives", "nse_api"} <= conns

    def test_every_referenced_connection_is_defined(self, settings, referenced):
        """Each connection id used in dags/, plugins/, include/ or the provider is in the file."""
        defined = {c["conn_id"] for c in settings["connections"]}
        assert referenced[0] - defined == set()

    def test_every_referenced_pool_is_defined(self, settings, referenced):
        """Each pool used in dags/, plugins/ or include/ is in the settings file."""
        defined = {p["pool_name"] for p in settings["pools"]}
        assert referenced[1] - defined == set()

    def test_file_uses_astronomers_format(self, settings):
        """Only Astronomer's keys, and the connections and pools this deployment relies on."""
        allowed = {
            "connections": {
                "conn_id",
                "conn_type",
                "conn_host",
                "conn_schema",
                "conn_login",
                "conn_password",
                "conn_port",
                "conn_extra",
            },
            "pools": {"pool_name", "pool_slot", "pool_description"},
            "variables": {"variable_name", "variable_value"},
        }
        assert set(settings) == set(allowed)
        for section, keys in allowed.items():
            for item in settings[section]:
                assert set(item) <= keys, item
        types = {c["conn_id"]: c["conn_type"] for c in settings["connections"]}
        assert types["clickhouse_default"] == "clickhouse"
        assert types["spark_default"] == "spark"
        assert types["slack_alerts"] == "slackwebhook"
        assert types["nse_archives"] == types["nse_api"] == "http"
        assert {"nse_api", "nse_archives"} <= {p["pool_name"] for p in settings["pools"]}
        assert "mlflow_tracking_uri" in {v["variable_name"] for v in settings["variables"]}


@pytest.fixture()
def settings_db(airflow_db, tmp_path) -> tuple[Path, dict[str, str]]:
    """A copy of the test metadata database and an environment that points Airflow at it.

    The copy keeps what the loader writes away from the database other tests share; the
    environment drops anything that could leak in from the machine (CLICKHOUSE_* of an existing
    server, AIRFLOW_CONN_*) and sets a Fernet key, to read back what was encrypted.
    """
    from cryptography.fernet import Fernet

    database = tmp_path / "airflow.db"
    shutil.copyfile(airflow_db, database)
    with sqlite3.connect(database) as db:  # start from no connections, pools or variables
        db.execute("DELETE FROM connection")
        db.execute("DELETE FROM variable")
        db.execute("DELETE FROM slot_pool WHERE pool != 'default_pool'")
    leaks = ("CLICKHOUSE_", "NSE_", "MLFLOW_", "SLACK_", "SPARK_", "AIRFLOW_CONN_", "AIRFLOW_VAR_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(leaks)}
    env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{database}"
    env["AIRFLOW__CORE__FERNET_KEY"] = Fernet.generate_key().decode()
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    return database, env


def run_loader(env: dict[str, str], *args: str, **extra_env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(LOADER), *args],
        capture_output=True,
        text=True,
        env={**env, **extra_env},
        cwd=PROJECT_ROOT,
        timeout=300,
    )


def read_back(database: Path, fernet_key: str) -> dict:
    """Connections, pools and variables as stored, decrypted with the Fernet key."""
    from cryptography.fernet import Fernet

    fernet = Fernet(fernet_key.encode())

    def clear(value, encrypted):
        return fernet.decrypt(value.encode()).decode() if value and encrypted else value

    with sqlite3.connect(database) as db:
        connections = {
            row[0]: {
                "conn_type": row[1],
                "host": row[2],
                "schema": row[3],
                "login": row[4],
                "password": clear(row[5], row[8]),
                "port": row[6],
                "extra": json.loads(clear(row[7], row[9]) or "null"),
                "stored_password": row[5],
            }
            for row in db.execute(
                "SELECT conn_id, conn_type, host, schema, login, password, port, extra,"
                " is_encrypted, is_extra_encrypted FROM connection"
            )
        }
        pools = {
            row[0]: {"slots": row[1], "description": row[2]}
            for row in db.execute("SELECT pool, slots, description FROM slot_pool")
        }
        variables = {
            row[0]: clear(row[1], row[2])
            for row in db.execute("SELECT key, val, is_encrypted FROM variable")
        }
    return {"connections": connections, "pools": pools, "variables": variables}


@pytest.mark.airflow
class TestSettingsLoader:
    """scripts/apply_airflow_settings.py writes the settings file into a real metadata DB."""

    PASSWORD = "ch-test-password-7f3a"  # pragma: allowlist secret (a test database's)
    ENV = {
        "CLICKHOUSE_HOST": "clickhouse.example.internal",
        "CLICKHOUSE_PASSWORD": PASSWORD,
        "CLICKHOUSE_USER": "nse",
        "NSE_ARCHIVE_BASE_URL": "http://nse-standin:8765",
        "MLFLOW_TRACKING_URI": "http://mlflow:5000",
    }

    def test_expansion_follows_compose_rules(self, monkeypatch):
        """${VAR}, ${VAR:-d}, ${VAR-d}, ${VAR:?m} and $$ expand as in Docker Compose."""
        spec = importlib.util.spec_from_file_location("apply_airflow_settings", LOADER)
        loader = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, spec.name, loader)
        spec.loader.exec_module(loader)
        env = {"SET": "value", "EMPTY": ""}
        missing: list[str] = []
        expanded = loader.expand(
            {
                "plain": "${SET}",
                "default": ["${UNSET:-d}", "${EMPTY:-d}", "${EMPTY-d}", "${UNSET-d}"],
                "nested": {"url": "http://${SET}:${PORT:-80}/x", "cost": "$$5 and pa$s"},
                "number": 4,
            },
            env,
            "item",
            missing,
        )
        assert expanded == {
            "plain": "value",
            "default": ["d", "d", "", "d"],
            "nested": {"url": "http://value:80/x", "cost": "$5 and pa$s"},
            "number": 4,
        }
        assert missing == []
        loader.expand(["${UNSET}", "${EMPTY:?say why}", "${EMPTY?fine}"], env, "item", missing)
        assert len(missing) == 2
        assert "UNSET" in missing[0] and "say why" in missing[1]

    def test_dry_run_changes_nothing(self, settings_db):
        """--dry-run lists what it would create and leaves the database as it was."""
        database, env = settings_db
        before = read_back(database, env["AIRFLOW__CORE__FERNET_KEY"])
        done = run_loader(env, str(SETTINGS_FILE), "--dry-run", **self.ENV)
        assert done.returncode == 0, done.stderr
        assert "connection clickhouse_default: would be created" in done.stdout
        assert "(dry run, nothing changed)" in done.stdout
        assert read_back(database, env["AIRFLOW__CORE__FERNET_KEY"]) == before

    def test_apply_creates_everything_with_the_environment_expanded(self, settings_db):
        """Connections, pools and variables read back with env values and yaml defaults."""
        from include.nse.config import API_BASE_URL

        database, env = settings_db
        done = run_loader(env, str(SETTINGS_FILE), **self.ENV)
        assert done.returncode == 0, done.stderr
        assert self.PASSWORD not in done.stdout + done.stderr
        stored = read_back(database, env["AIRFLOW__CORE__FERNET_KEY"])

        settings = yaml.safe_load(SETTINGS_FILE.read_text())["airflow"]
        assert set(stored["connections"]) >= {c["conn_id"] for c in settings["connections"]}
        clickhouse = stored["connections"]["clickhouse_default"]
        assert clickhouse["conn_type"] == "clickhouse"
        assert clickhouse["host"] == "clickhouse.example.internal"
        assert (clickhouse["port"], clickhouse["schema"], clickhouse["login"]) == (
            9000,
            "nse",
            "nse",
        )
        assert clickhouse["password"] == self.PASSWORD
        assert clickhouse["stored_password"] != self.PASSWORD  # encrypted at rest
        assert clickhouse["extra"] == {"secure": "false"}
        assert stored["connections"]["nse_archives"]["host"] == "http://nse-standin:8765"
        assert stored["connections"]["nse_api"]["host"] == API_BASE_URL  # the yaml default
        spark = stored["connections"]["spark_default"]
        assert (spark["conn_type"], spark["host"]) == ("spark", "yarn")
        assert spark["extra"]["deploy-mode"] == "client"
        assert stored["connections"]["slack_alerts"]["password"] is None
        assert stored["pools"]["nse_api"]["slots"] == 4
        assert stored["pools"]["nse_archives"]["slots"] == 8
        assert stored["variables"]["mlflow_tracking_uri"] == "http://mlflow:5000"

    def test_reapplying_updates_what_changed_and_is_idempotent(self, settings_db):
        """A changed or cleared value updates only its item; the same again changes nothing."""
        database, env = settings_db
        assert run_loader(env, str(SETTINGS_FILE), **self.ENV).returncode == 0
        changed = {**self.ENV, "CLICKHOUSE_PORT": "9440", "CLICKHOUSE_SECURE": "true"}
        # pragma: allowlist nextline secret (a test database's)
        changed |= {"CLICKHOUSE_PASSWORD": "rotated-password-91c2", "NSE_API_POOL_SLOTS": "2"}
        done = run_loader(env, str(SETTINGS_FILE), **changed)
        assert done.returncode == 0, done.stderr
        updated = sorted(
            line.split(":")[0] for line in done.stdout.splitlines() if ": updated" in line
        )
        assert updated == ["connection clickhouse_default", "pool nse_api"], done.stdout
        assert "password changed" in done.stdout and "rotated-password" not in done.stdout
        stored = read_back(database, env["AIRFLOW__CORE__FERNET_KEY"])
        clickhouse = stored["connections"]["clickhouse_default"]
        assert (clickhouse["port"], clickhouse["password"]) == (9440, "rotated-password-91c2")
        assert clickhouse["extra"] == {"secure": "true"}
        assert stored["pools"]["nse_api"]["slots"] == 2

        cleared = {**changed, "CLICKHOUSE_PASSWORD": ""}
        done = run_loader(env, str(SETTINGS_FILE), **cleared)
        assert done.returncode == 0, done.stderr
        assert "connection clickhouse_default: updated: password changed" in done.stdout
        stored = read_back(database, env["AIRFLOW__CORE__FERNET_KEY"])
        assert stored["connections"]["clickhouse_default"]["password"] is None

        again = run_loader(env, str(SETTINGS_FILE), **cleared)
        assert again.returncode == 0, again.stderr
        assert "0 created, 0 updated" in again.stdout, again.stdout
        assert read_back(database, env["AIRFLOW__CORE__FERNET_KEY"]) == stored

    def test_missing_variable_or_unknown_key_fails_before_writing(self, settings_db, tmp_path):
        """A required variable that is unset, or a misspelt key, exits 2 and writes nothing."""
        database, env = settings_db
        before = read_back(database, env["AIRFLOW__CORE__FERNET_KEY"])
        unset = tmp_path / "unset.yaml"
        unset.write_text(
            "airflow:\n  connections:\n    - conn_id: x\n      conn_type: http\n"
            "      conn_host: ${NSE_TEST_UNSET_HOST}\n"
            "      conn_password: ${NSE_TEST_UNSET_SECRET:?set it}\n"
        )
        done = run_loader(env, str(unset))
        assert done.returncode == 2
        assert "NSE_TEST_UNSET_HOST" in done.stderr and "NSE_TEST_UNSET_SECRET" in done.stderr
        misspelt = tmp_path / "misspelt.yaml"
        misspelt.write_text("airflow:\n  pools:\n    - pool_name: p\n      pool_slots: 3\n")
        done = run_loader(env, str(misspelt))
        assert done.returncode == 2 and "pool_slots" in done.stderr
        assert read_back(database, env["AIRFLOW__CORE__FERNET_KEY"]) == before
