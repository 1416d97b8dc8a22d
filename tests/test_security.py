"""Security checks, each able to fail: ruff's bandit rules over the tree; no credential in the
tree or anywhere in its git history; the compose stack published on loopback only, its image
non-root and its secrets refused while they are placeholders; every place SQL is built refusing
hostile names and dates or passing them as parameters, against a real ClickHouse server; and a
real DAG run against a password-protected ClickHouse that writes the password nowhere.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import io
import json
import os
import re
import secrets
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest
import yaml

from tests.conftest import PROJECT_ROOT, new_database, parse_dag, stand_in_env
from tests.helpers import DAY, NEXT_DAY, bhavcopy_frame, free_port

COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yaml"
DOCKERFILE = PROJECT_ROOT / "Dockerfile"
ENV_EXAMPLE = PROJECT_ROOT / ".env.example"
CHECK_SECRETS = PROJECT_ROOT / "scripts" / "check_secrets.py"
CLICKHOUSE_LOCAL = PROJECT_ROOT / "scripts" / "clickhouse-local.sh"
#: Where the image holds the check, and so where airflow-init runs it from.
CHECK_SECRETS_IN_IMAGE = "/opt/airflow/scripts/check_secrets.py"


def run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=PROJECT_ROOT, capture_output=True, text=True, **kwargs)


# ---- ruff's security rules -----------------------------------------------------------------
class TestRuffSecurityRules:
    """Ruff's flake8-bandit rules (`S`) are on for the whole tree, and the tree passes them."""

    PROBE = (
        "import subprocess\n\n\n"
        "def probe(table, command):\n"
        "    subprocess.run(command, shell=True)\n"
        '    return f"SELECT * FROM {table} WHERE day = 1"\n'
    )

    def test_configuration_selects_them_everywhere(self):
        """`S` is selected and no `S` rule is switched off for the whole tree."""
        lint = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["ruff"]["lint"]
        assert "S" in lint["select"]
        assert [rule for rule in lint.get("ignore", []) if rule.startswith("S")] == []

    def test_tree_passes(self):
        """`ruff check .` with the project's configuration reports nothing."""
        done = run(sys.executable, "-m", "ruff", "check", "--output-format", "concise", ".")
        assert done.returncode == 0, done.stdout + done.stderr

    @pytest.mark.parametrize(
        ("path", "expected"),
        [
            ("include/nse/probe.py", {"S602", "S608"}),
            ("dags/probe.py", {"S602", "S608"}),
            ("scripts/probe.py", {"S602", "S608"}),
            # Tests may build SQL for the databases they create, never run a shell.
            ("tests/probe.py", {"S602"}),
        ],
    )
    def test_configuration_catches_shells_and_sql_built_from_text(self, path, expected):
        """The same configuration fails a shell command and SQL built from a variable."""
        done = run(
            sys.executable,
            "-m",
            "ruff",
            "check",
            "--output-format",
            "concise",
            "--stdin-filename",
            path,
            "-",
            input=self.PROBE,
        )
        assert done.returncode == 1, done.stdout + done.stderr
        assert set(re.findall(r"\b(S\d{3})\b", done.stdout)) == expected, done.stdout


# ---- credentials in the tree and its history -----------------------------------------------
@dataclass(frozen=True)
class Line:
    """A line of a file: where it is (the working tree, or the commit that added it)."""

    path: str
    number: int
    text: str
    where: str


@dataclass(frozen=True)
class Finding:
    line: Line
    kind: str

    def __str__(self) -> str:
        return f"{self.line.path}:{self.line.number} ({self.line.where}): {self.kind}"


#: Strings detect-secrets takes for credentials that are not, where no `pragma: allowlist
#: secret` can stand beside them: the provider's sources are part of the virtualenv's key.
NOT_SECRETS = {"empty for no password": "the ClickHouse connection form's hint for its field"}
_HUNK = re.compile(r"@@ -\S+ \+(\d+)")


def _git(root: Path, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        ["git", "-c", "core.quotePath=false", *args],
        cwd=root,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=True,
        timeout=120,
    )
    return done.stdout.decode("utf-8", "replace")


def tree_files(root: Path) -> list[str]:
    """Files git tracks or would track (ignored ones left out), as they are on disk."""
    listed = _git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    return [path for path in listed.split("\0") if path and (root / path).is_file()]


def tree_lines(root: Path) -> Iterator[Line]:
    for path in tree_files(root):
        data = (root / path).read_bytes()
        if b"\0" in data:  # binary
            continue
        for number, text in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
            yield Line(path, number, text, "working tree")


def history_lines(root: Path) -> Iterator[Line]:
    """Every line any commit on any ref added (`git log -p`), with the commit that added it."""
    log = _git(
        root,
        "log",
        "--all",
        "-p",
        "-U0",
        "--no-color",
        "--no-renames",
        "--no-ext-diff",
        "--diff-merges=first-parent",
        "--format=%x00commit %H",
    )
    commit, path, number, in_hunk = "", None, 0, False
    for raw in log.split("\n"):
        if raw.startswith("\0commit "):
            commit, path, in_hunk = raw[len("\0commit ") :][:12], None, False
        elif raw.startswith("diff --git "):
            path, in_hunk = None, False
        elif not in_hunk and raw.startswith("+++ "):
            path = raw[len("+++ b/") :] if raw.startswith("+++ b/") else None
        elif raw.startswith("@@ "):
            number, in_hunk = int(_HUNK.match(raw)[1]), True
        elif in_hunk and path and raw.startswith("+"):
            yield Line(path, number, raw[1:], f"commit {commit}")
            number += 1


def find_secrets(root: Path, lines: Iterator[Line], workdir: Path) -> list[Finding]:
    """What detect-secrets finds in `lines` (each distinct line of a path scanned once), less
    values a line of the working tree marks `pragma: allowlist secret` (its earlier versions in
    history are the same test value) and `NOT_SECRETS`.

    The lines of each path go into one file of the same name under `workdir`, so detect-secrets'
    judgement by file type holds.
    """
    from detect_secrets import SecretsCollection
    from detect_secrets.core.potential_secret import PotentialSecret
    from detect_secrets.core.scan import scan_for_allowlisted_secrets_in_file
    from detect_secrets.settings import default_settings

    by_path: dict[str, dict[str, Line]] = {}
    for line in lines:
        by_path.setdefault(line.path, {}).setdefault(line.text, line)
    for path, unique in by_path.items():
        copy = workdir / path
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_text("\n".join(unique) + "\n")
    with default_settings():
        found = SecretsCollection(root=str(workdir))
        # One file at a time, in this process: `scan_files` forks a worker pool, and a fork of
        # a process with threads running (a test session's) can deadlock on a lock one held.
        for path in by_path:
            found.scan_file(path)
    with default_settings():
        allowed = {
            secret.secret_hash
            for path in tree_files(root)
            if b"allowlist" in (root / path).read_bytes()
            for secret in scan_for_allowlisted_secrets_in_file(str(root / path))
        }
    allowed |= {PotentialSecret.hash_secret(value) for value in NOT_SECRETS}
    findings = []
    for path, secret in found:
        line = list(by_path[path].values())[secret.line_number - 1]
        if secret.secret_hash not in allowed:
            findings.append(Finding(line, secret.type))
    return sorted(findings, key=str)


class TestNoCredentials:
    """No credential-looking string in the tree or in any commit, found with detect-secrets."""

    @pytest.mark.slow
    def test_tree_and_history_are_clean(self, tmp_path):
        """Every file git tracks or would track, and every line any commit added, scan clean."""
        lines = [*tree_lines(PROJECT_ROOT), *history_lines(PROJECT_ROOT)]
        assert any(line.where.startswith("commit") for line in lines), "no history was read"
        findings = find_secrets(PROJECT_ROOT, iter(lines), tmp_path)
        assert findings == [], "\n".join(map(str, findings))

    def test_scan_names_file_line_and_commit(self, tmp_path):
        """A key committed and then deleted is found in history, naming its file, line and
        commit; one in the working tree, naming file and line; an allowlisted test value, and
        that value's earlier unmarked versions, are not reported."""
        repo = tmp_path / "repo"
        repo.mkdir()
        # The machine's git settings (signing, hooks, templates) stay out of this repository.
        env = os.environ | {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}

        def git(*args: str) -> str:
            return _git(
                repo, "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args, env=env
            )

        git("init", "-q")
        aws = "AKIAIOSFODNN7" + "EXAMPLE"  # AWS's documented example key id, split to stay unseen
        (repo / "settings.py").write_text(f'NAME = "nse"\nAWS_KEY = "{aws}"\n')
        (repo / "fixture.py").write_text('PASSWORD = "hunter2-fixture"\n')
        git("add", ".")
        git("commit", "-q", "-m", "one")
        added = git("rev-parse", "HEAD").strip()[:12]
        (repo / "settings.py").write_text('NAME = "nse"\n')
        (repo / "fixture.py").write_text(
            'PASSWORD = "hunter2-fixture"  # pragma: allowlist secret\n'
        )
        git("commit", "-q", "-am", "two")
        (repo / "new.yaml").write_text(f"name: nse\nkey: {aws}\n")

        lines = [*tree_lines(repo), *history_lines(repo)]
        found = sorted(str(f) for f in find_secrets(repo, iter(lines), tmp_path / "scan"))
        assert found == [
            "new.yaml:2 (working tree): AWS Access Key",
            f"settings.py:2 (commit {added}): AWS Access Key",
        ]


# ---- the compose stack and the image -------------------------------------------------------
#: `${VAR}` and its `:-`, `-`, `:?`, `?` forms; `$${...}` is left to the container's shell.
_REFERENCE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
_SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|FERNET|_KEY\b|KEY$")


def with_defaults(text: str) -> str:
    """`text` with each `${VAR...}` replaced by its default, or empty."""
    return _REFERENCE.sub(lambda m: m[3] if m[2] in (":-", "-") else "", text)


def exposure(compose: dict) -> list[str]:
    """Services reachable from beyond the machine: a port published without 127.0.0.1, or the
    host's network."""
    found = []
    for name, service in compose["services"].items():
        if service.get("network_mode") == "host":
            found.append(f"{name}: network_mode host")
        for port in service.get("ports") or []:
            if isinstance(port, dict):
                host = port.get("host_ip")
            else:
                parts = with_defaults(str(port)).split(":")
                host = parts[0] if len(parts) == 3 else None
            if host != "127.0.0.1":
                found.append(f"{name}: {port}")
    return found


def user_problem(user: str) -> str | None:
    """Why a Dockerfile `USER` or compose `user` is not a numeric non-root uid, or None."""
    uid = with_defaults(user).split(":")[0]
    if not uid.isdigit():
        return f"{user}: not numeric, so a runtime cannot tell it is not root"
    if int(uid) == 0:
        return f"{user}: root"
    return None


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def our_services(compose) -> dict[str, dict]:
    image = compose["x-airflow-common"]["image"]
    return {name: s for name, s in compose["services"].items() if s.get("image") == image}


class TestExposure:
    """Published ports are on loopback and processes run as non-root."""

    def test_published_ports_are_bound_to_loopback(self, compose):
        """Every published port of every service names 127.0.0.1; none uses the host network."""
        assert exposure(compose) == []
        assert sum(len(s.get("ports") or []) for s in compose["services"].values()) >= 5

    def test_exposure_check_catches_open_ports(self):
        """Ports without a host address, on 0.0.0.0, in the long syntax without host_ip, a bare
        container port, and the host's network are each reported."""
        open_ = {
            "services": {
                "a": {"ports": ["8080:8080", "0.0.0.0:81:81", "${PORT:-82}:82", "5000"]},
                "b": {"ports": [{"target": 80, "published": 80}]},
                "c": {"network_mode": "host"},
                "d": {
                    "ports": ["127.0.0.1:${PORT:-83}:83", {"target": 84, "host_ip": "127.0.0.1"}]
                },
            }
        }
        assert exposure(open_) == [
            "a: 8080:8080",
            "a: 0.0.0.0:81:81",
            "a: ${PORT:-82}:82",
            "a: 5000",
            "b: {'target': 80, 'published': 80}",
            "c: network_mode host",
        ]

    def test_image_runs_as_a_numeric_non_root_user(self):
        """The Dockerfile's last USER is a numeric uid other than 0."""
        users = re.findall(r"^USER\s+(\S+)", DOCKERFILE.read_text(), re.MULTILINE)
        assert users, "the Dockerfile sets no USER"
        assert user_problem(users[-1]) is None, user_problem(users[-1])

    @pytest.mark.parametrize("user", ["root", "airflow", "0", "0:0", "${UID:-0}:0"])
    def test_user_check_refuses_root_and_names(self, user):
        """root, a name (unverifiable) and uid 0 in any spelling are refused."""
        assert user_problem(user) is not None

    def test_airflow_services_run_as_non_root(self, compose):
        """Services from our image run as the image's user or a non-root uid by default; only
        airflow-init, which exits after owning the volumes, runs as root."""
        for name, service in our_services(compose).items():
            if name == "airflow-init":
                assert service["user"] == "0:0"
            elif "user" in service:
                assert user_problem(service["user"]) is None, name
        assert with_defaults("${AIRFLOW_UID:-50000}") == "50000"
        example = dict(re.findall(r"^([A-Z_]+)=(.*)$", ENV_EXAMPLE.read_text(), re.MULTILINE))
        assert user_problem(example["AIRFLOW_UID"]) is None

    def test_no_secret_on_a_command_line(self, compose):
        """No healthcheck names a secret (it runs every few seconds, visible to `ps`), and no
        command, entrypoint or healthcheck gets one interpolated by Compose (it would be in the
        container's configuration, visible to `docker inspect`)."""
        for name, service in compose["services"].items():
            healthcheck = service.get("healthcheck", {}).get("test", [])
            healthcheck_text = (
                " ".join(healthcheck) if isinstance(healthcheck, list) else healthcheck
            )
            assert "--password" not in healthcheck_text, name
            for variable in re.findall(r"\$\{(\w+)", healthcheck_text):
                assert not _SECRET_NAME.search(variable), (name, variable)
            for key in ("command", "entrypoint"):
                value = service.get(key) or ""
                text = " ".join(value) if isinstance(value, list) else value
                for variable, _, _ in _REFERENCE.findall(text + " " + healthcheck_text):
                    assert not _SECRET_NAME.search(variable), (name, key, variable)


# ---- deploy secrets ------------------------------------------------------------------------
def _load_check_secrets():
    spec = importlib.util.spec_from_file_location("check_secrets", CHECK_SECRETS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def good_secrets() -> dict[str, str]:
    from cryptography.fernet import Fernet

    return {
        "POSTGRES_PASSWORD": secrets.token_hex(8),
        "AIRFLOW_FERNET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW_JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW_API_SECRET_KEY": secrets.token_hex(32),
        "AIRFLOW_ADMIN_PASSWORD": secrets.token_urlsafe(12),
        "CLICKHOUSE_PASSWORD": secrets.token_hex(8),
    }


def check_secrets(env: dict[str, str]) -> subprocess.CompletedProcess:
    """scripts/check_secrets.py run as airflow-init runs it, with `env` and a PATH only."""
    return subprocess.run(
        [sys.executable, str(CHECK_SECRETS)],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
    )


class TestDeploySecrets:
    """airflow-init refuses to start the stack on placeholder, short or malformed secrets."""

    def test_example_values_are_placeholders_and_refused(self):
        """Every secret in .env.example is a change-me placeholder, and the check refuses each,
        naming it."""
        example = dict(re.findall(r"^([A-Z_]+)=(.*)$", ENV_EXAMPLE.read_text(), re.MULTILINE))
        names = _load_check_secrets().SECRETS
        for name, value in example.items():
            if _SECRET_NAME.search(name) and not name.endswith("_FILE"):
                assert value == "" or value.startswith("change-me-"), name
        done = check_secrets({name: example[name] for name in names})
        assert done.returncode == 1
        refused = [line for line in done.stderr.splitlines() if line.startswith("refusing")]
        assert len(refused) == len(names), done.stderr
        for name, line in zip(names, refused, strict=True):
            assert line.startswith(f"refusing to start: {name} ") and "placeholder" in line

    def test_good_secrets_pass_without_being_printed(self):
        """Generated values pass (a Fernet key list being rotated too), and none is printed."""
        env = good_secrets()
        done = check_secrets(env)
        assert done.returncode == 0, done.stderr
        assert f"{len(env)} checked" in done.stdout
        from cryptography.fernet import Fernet

        env["AIRFLOW_FERNET_KEY"] = f"{Fernet.generate_key().decode()},{env['AIRFLOW_FERNET_KEY']}"
        rotating = check_secrets(env)
        assert rotating.returncode == 0, rotating.stderr
        for value in env.values():
            assert value not in done.stdout + done.stderr + rotating.stdout + rotating.stderr

    @pytest.mark.parametrize(
        ("name", "value", "reason"),
        [
            ("AIRFLOW_JWT_SECRET", "x" * 31, "is shorter than 32 bytes"),
            ("AIRFLOW_JWT_SECRET", "change-me-jwt-secret-" + "0" * 40, "placeholder"),
            ("AIRFLOW_API_SECRET_KEY", secrets.token_hex(15), "is shorter than 32 bytes"),
            ("AIRFLOW_FERNET_KEY", "not-a-fernet-key-" * 3, "is not a Fernet key"),
            ("AIRFLOW_FERNET_KEY", "{fernet},short", "(key 2) is not a Fernet key"),
            ("POSTGRES_PASSWORD", "p@ss/word:has#url-chars", "characters other than"),
            ("POSTGRES_PASSWORD", "short-pw", "is shorter than 16 characters"),
            ("AIRFLOW_ADMIN_PASSWORD", "Change-Me-admin-password-please", "placeholder"),
            ("CLICKHOUSE_PASSWORD", "", "is not set"),
            ("CLICKHOUSE_PASSWORD", "{POSTGRES_PASSWORD}", "is the same as POSTGRES_PASSWORD"),
        ],
    )
    def test_each_bad_secret_is_refused_by_name(self, name, value, reason):
        """One bad secret among good ones: exit 1 and one line naming it and the reason, without
        its value."""
        env = good_secrets()
        env[name] = value.format(fernet=env["AIRFLOW_FERNET_KEY"], **env)
        done = check_secrets(env)
        assert done.returncode == 1
        refused = [line for line in done.stderr.splitlines() if line.startswith("refusing")]
        assert len(refused) == 1, done.stderr
        assert refused[0].startswith(f"refusing to start: {name} ") and reason in refused[0]
        if env[name]:
            assert env[name] not in done.stderr + done.stdout

    def test_airflow_init_runs_the_check_first(self, compose):
        """airflow-init runs the check from the image before anything else, with each secret it
        checks in its environment from .env, and Compose requires each."""
        init = compose["services"]["airflow-init"]
        script = init["command"][-1]
        steps = [s.strip() for s in script.splitlines() if s.strip() and not s.startswith("#")]
        assert steps[:2] == ["set -euo pipefail", f"python {CHECK_SECRETS_IN_IMAGE}"]
        environment = {k: str(v) for k, v in init["environment"].items()}
        for name in _load_check_secrets().SECRETS:
            assert re.fullmatch(rf"\$\{{{name}:\?[^}}]+\}}", environment.get(name, "")), name
        copies = re.findall(r"^COPY\s+(?:--\S+\s+)*(\S+)\s+(\S+)$", DOCKERFILE.read_text(), re.M)
        assert ("scripts/check_secrets.py", CHECK_SECRETS_IN_IMAGE) in copies
        dependants = [
            name
            for name, service in our_services(compose).items()
            if "airflow-init" in (service.get("depends_on") or {})
        ]
        assert {"airflow-apiserver", "airflow-scheduler", "airflow-worker"} <= set(dependants)
        for name in dependants:
            condition = our_services(compose)[name]["depends_on"]["airflow-init"]["condition"]
            assert condition == "service_completed_successfully", name


# ---- SQL built from hostile input ----------------------------------------------------------
#: Hostile spellings of a plain name (`{name}`); `{db}.x` is the table the payloads aim at.
HOSTILE_NAMES = [
    "{name}; DROP TABLE {db}.x",
    "{name}`; DROP TABLE {db}.x; --",
    '{name}"; DROP TABLE {db}.x; --',
    "{name}' OR '1'='1",
    "{name} -- ",
    "{name}\nDROP TABLE {db}.x",
    "`{name}`",
    "{name}/**/",
    "{name}.x",
    "",
]
#: Hostile spellings of `database.table`.
HOSTILE_TABLES = [
    "{db}.cm_bhavcopy; DROP TABLE {db}.x",
    "{db}.cm_bhavcopy`; DROP TABLE x; --",
    "{db}.`cm_bhavcopy`",
    '{db}."cm_bhavcopy"',
    "{db}.cm_bhavcopy.x",
    "{db}.cm_bhavcopy -- ",
    "{db}.cm_bhavcopy\nDROP TABLE x",
    "{db}; DROP TABLE {db}.x; --.cm_bhavcopy",
]
HOSTILE_DATES = [
    "2024-07-05'); DROP TABLE x; --",
    "2024-07-05' OR '1'='1",
    "2024-07-05\\'); DROP TABLE x; --",
    "2024-07-05; DROP TABLE x",
    "20240705",
    "2024-W27-5",
]
KEY = ["trade_date", "symbol", "series"]


def cm():
    from include.nse import sources

    return sources.get("cm_bhavcopy")


def frame(day: dt.date = DAY) -> pl.DataFrame:
    return bhavcopy_frame(day, ["AAA", "BBB"])


def warehouse_state(client, db: str) -> dict:
    """The database's tables, each with its row count (every table here is a MergeTree)."""
    tables = client.execute("SELECT name FROM system.tables WHERE database = %(db)s", {"db": db})
    rows = client.execute(
        "SELECT table, sum(rows) FROM system.parts WHERE database = %(db)s AND active "
        "GROUP BY table",
        {"db": db},
    )
    return {name: dict(rows).get(name, 0) for (name,) in sorted(tables)}


@pytest.fixture(scope="module")
def target(clickhouse_server, tmp_path_factory):
    """A migrated database holding a day of cm_bhavcopy, an index list, and `x`, the table the
    payloads try to drop; a client whose default database it is."""
    from clickhouse_driver import Client

    from include.nse.warehouse import insert_columns, load, migrate

    with new_database(clickhouse_server) as db:
        client = Client(**clickhouse_server, database=db)
        migrate(client, db)
        load(client, cm(), DAY, frame(), db)
        client.execute(f"CREATE TABLE {db}.x (n UInt8) ENGINE = MergeTree ORDER BY n")
        client.execute(f"INSERT INTO {db}.x (n) VALUES", [{"n": 1}, {"n": 2}])
        insert_columns(
            client,
            f"{db}.index_constituents",
            {
                "trade_date": [DAY, DAY],
                "index_name": ["NIFTY 50", "NIFTY 50"],
                "symbol": ["AAA", "BBB"],
                "company_name": ["A Ltd", "B Ltd"],
                "source_format": ["csv", "csv"],
            },
        )
        yield {"client": client, "db": db, "lake": tmp_path_factory.mktemp("lake")}
        client.disconnect()


@contextmanager
def unchanged(target) -> Iterator[None]:
    """The block leaves every table of the target database and its row count as they were."""
    client, db = target["client"], target["db"]
    before = warehouse_state(client, db)
    assert before["x"] == 2 and before["cm_bhavcopy"] >= 2
    yield
    assert warehouse_state(client, db) == before


def _database_sites() -> dict[str, Callable]:
    """Each function taking a database name, as `call(client, target, name)`."""
    from include.nse import history, index_membership, quality
    from include.nse.calendar_refresh import load_trading_calendar
    from include.nse.lake import Lake
    from include.nse.warehouse import (
        Warehouse,
        applied_migrations,
        insert_new,
        load,
        load_days,
        migrate,
        table_columns,
    )

    outcome = history.Outcome("cm_bhavcopy", DAY, "loaded", rows=2)
    return {
        "Warehouse": lambda c, t, name: Warehouse(lambda: nullcontext(c), name),
        "migrate": lambda c, t, name: migrate(c, name),
        "applied_migrations": lambda c, t, name: applied_migrations(c, name),
        "table_columns": lambda c, t, name: table_columns(c, name, "cm_bhavcopy"),
        "load": lambda c, t, name: load(c, cm(), DAY, frame(), name),
        "load_days": lambda c, t, name: load_days(c, cm(), {DAY: frame()}, name),
        "insert_new": lambda c, t, name: insert_new(c, "cm_bhavcopy", frame(), KEY, name),
        "history.loaded_before": lambda c, t, name: history.loaded_before(c, name, cm(), [DAY]),
        "history.record": lambda c, t, name: history.record(c, name, [outcome], "run"),
        "members_on": lambda c, t, name: index_membership.members_on(c, "NIFTY 50", DAY, name),
        "changes_on": lambda c, t, name: index_membership.changes_on(c, DAY, name),
        "load_trading_calendar": lambda c, t, name: load_trading_calendar(c, Lake(t["lake"]), name),
        "quality.record": lambda c, t, name: quality.record(c, [], name),
    }


def _table_sites() -> dict[str, Callable]:
    """Each function taking `database.table`, as `call(client, target, name)`."""
    from include.nse import native
    from include.nse.warehouse import (
        drop_stale_stages,
        insert_columns,
        replace_partition,
        replace_partitions,
    )

    return {
        "insert_columns": lambda c, t, name: insert_columns(c, name, frame()),
        "native.insert": lambda c, t, name: native.insert(c, name, frame()),
        "replace_partition": lambda c, t, name: replace_partition(c, name, DAY, frame()),
        "replace_partitions": lambda c, t, name: replace_partitions(c, name, {DAY: frame()}),
        "drop_stale_stages": lambda c, t, name: drop_stale_stages(c, name),
    }


def _name_sites() -> dict[str, tuple[str, Callable]]:
    """Each function taking a table or column name alone: (the name it is given a hostile
    spelling of, `call(client, target, name)`)."""
    from include.nse import native
    from include.nse.warehouse import insert_columns, insert_new, table_columns

    def renamed(name: str) -> pl.DataFrame:
        return frame().rename({"volume": name})

    return {
        "table_columns (table)": (
            "cm_bhavcopy",
            lambda c, t, name: table_columns(c, t["db"], name),
        ),
        "insert_new (table)": (
            "cm_bhavcopy",
            lambda c, t, name: insert_new(c, name, frame(), KEY, t["db"]),
        ),
        "insert_new (key)": (
            "symbol",
            lambda c, t, name: insert_new(c, "cm_bhavcopy", frame(), ["trade_date", name], t["db"]),
        ),
        "insert_columns (frame column)": (
            "volume",
            lambda c, t, name: insert_columns(c, f"{t['db']}.cm_bhavcopy", renamed(name)),
        ),
        "insert_columns (mapping key)": (
            "n",
            lambda c, t, name: insert_columns(c, f"{t['db']}.x", {name: [3]}),
        ),
        "native.insert (column)": (
            "volume",
            lambda c, t, name: native.insert(c, f"{t['db']}.cm_bhavcopy", renamed(name)),
        ),
    }


@pytest.mark.clickhouse
class TestSqlInjection:
    """Names reach SQL only as plain identifiers, values only as query parameters: each hostile
    input below is refused before any SQL is sent, and the database is left as it was."""

    @pytest.mark.parametrize("site", sorted(_database_sites()))
    def test_hostile_database_names_are_refused(self, target, site):
        """Every function taking a database name refuses each hostile spelling of one."""
        call = _database_sites()[site]
        with unchanged(target):
            for hostile in HOSTILE_NAMES:
                name = hostile.format(name=target["db"], db=target["db"])
                with pytest.raises(ValueError, match="not a plain identifier"):
                    call(target["client"], target, name)

    @pytest.mark.parametrize("site", sorted(_table_sites()))
    def test_hostile_qualified_table_names_are_refused(self, target, site):
        """Every function taking `database.table` refuses each hostile spelling of one."""
        call = _table_sites()[site]
        with unchanged(target):
            for hostile in HOSTILE_TABLES:
                name = hostile.format(db=target["db"])
                with pytest.raises(ValueError, match="not a plain identifier"):
                    call(target["client"], target, name)

    @pytest.mark.parametrize("site", sorted(_name_sites()))
    def test_hostile_table_and_column_names_are_refused(self, target, site):
        """Every function taking a table or column name refuses each hostile spelling of one."""
        plain, call = _name_sites()[site]
        with unchanged(target):
            for hostile in HOSTILE_NAMES:
                name = hostile.format(name=plain, db=target["db"])
                with pytest.raises(ValueError, match="not a plain identifier"):
                    call(target["client"], target, name)

    @pytest.mark.parametrize("hostile", HOSTILE_DATES)
    def test_hostile_trade_dates_are_refused(self, target, hostile):
        """A date that is not YYYY-MM-DD is refused wherever one enters, naming what it is for:
        a load, a load of days, a partition, a run's param, the command line."""
        from click.testing import CliRunner

        from include.nse.cli import cli
        from include.nse.dates import trade_date_of
        from include.nse.warehouse import load, load_days, replace_partition

        client, db = target["client"], target["db"]
        expected = "trade_date: expected a date like 2024-07-05"
        with unchanged(target):
            with pytest.raises(ValueError, match=expected):
                load(client, cm(), hostile, frame(), db)
            with pytest.raises(ValueError, match=expected):
                load_days(client, cm(), {hostile: frame()}, db)
            with pytest.raises(ValueError, match="a partition is a trade date or a year"):
                replace_partition(client, f"{db}.cm_bhavcopy", hostile, frame())
            with pytest.raises(ValueError, match=expected):
                trade_date_of(hostile, dt.datetime(2024, 7, 5, 13, tzinfo=dt.UTC))
            done = CliRunner().invoke(cli, ["members", "NIFTY 50", "--date", hostile])
            assert done.exit_code == 2 and "is not a date like 2024-07-05" in done.output

    def test_hostile_values_are_data(self, target):
        """Values that look like SQL are stored and matched as text: symbols holding payloads
        land as themselves, and an index name holding one matches no index."""
        from include.nse.index_membership import members_on
        from include.nse.warehouse import load, query_polars

        client, db = target["client"], target["db"]
        payloads = sorted({h.format(name="X", db=db) for h in HOSTILE_NAMES} - {""})
        payloads += HOSTILE_DATES
        before = warehouse_state(client, db)
        load(client, cm(), NEXT_DAY, bhavcopy_frame(NEXT_DAY, payloads), db)
        stored = query_polars(
            client,
            f"SELECT symbol FROM {db}.cm_bhavcopy WHERE trade_date = %(day)s",
            {"day": NEXT_DAY},
        )
        assert sorted(stored["symbol"].to_list()) == sorted(payloads)
        assert members_on(client, "NIFTY 50", DAY, db) == ["AAA", "BBB"]
        for payload in ("NIFTY 50' OR '1'='1", "NIFTY 50' --", "NIFTY 50\\' OR 1 --"):
            assert members_on(client, payload, DAY, db) == []
        after = warehouse_state(client, db)
        assert after == {**before, "cm_bhavcopy": before["cm_bhavcopy"] + len(payloads)}

    def test_hostile_database_from_the_environment_or_option(self, target, monkeypatch):
        """The command line refuses a hostile CLICKHOUSE_DATABASE or --database, naming which."""
        from click.testing import CliRunner

        from include.nse.cli import cli

        hostile = f"{target['db']}; DROP TABLE {target['db']}.x"
        with unchanged(target):
            done = CliRunner().invoke(cli, ["warehouse", "migrate", "--database", hostile])
            assert done.exit_code == 2 and "--database: not a plain identifier" in done.output
            monkeypatch.setenv("CLICKHOUSE_DATABASE", hostile)
            done = CliRunner().invoke(cli, ["members", "NIFTY 50", "--date", "2024-07-05"])
            assert done.exit_code == 2
            assert "CLICKHOUSE_DATABASE: not a plain identifier" in done.output


# ---- DAG runs: hostile params, and the password nowhere ------------------------------------
LEAK_DAY = dt.date(2024, 7, 5)


def _run_at(day: dt.date) -> dt.datetime:
    """The scheduled run of nse_cm_bhavcopy for a trade date: 18:30 in Mumbai."""
    return dt.datetime.combine(day, dt.time(13, 0), dt.UTC)


@pytest.fixture(scope="module")
def nse_root(tmp_path_factory):
    from include.nse_standin.generate import generate

    root = tmp_path_factory.mktemp("nse")
    generate(LEAK_DAY, LEAK_DAY, root, symbols=40, datasets=["cm_bhavcopy", "cm_delivery"])
    return root


@pytest.mark.airflow
@pytest.mark.clickhouse
@pytest.mark.slow
@pytest.mark.parametrize(
    ("dag_id", "conf"),
    [
        ("nse_cm_bhavcopy", {"trade_date": HOSTILE_DATES[0]}),
        ("nse_cm_bhavcopy", {"trade_date": HOSTILE_DATES[4]}),
        ("nse_history_backfill", {"start": HOSTILE_DATES[1], "end": "2024-07-05"}),
    ],
)
def test_hostile_dag_params_are_refused(dag_id, conf, dag_env, ch_client):
    """A run whose date params are not dates is refused before any task runs: no request to
    NSE, nothing in the warehouse, no lake."""
    from airflow.sdk.exceptions import ParamValidationError

    dag = parse_dag(dag_id)
    with pytest.raises(ParamValidationError, match="is not a 'date'"):
        dag.test(logical_date=_run_at(LEAK_DAY), run_conf=conf)
    assert dag_env["standin"].request_log == []
    assert ch_client.execute(
        "SELECT count() FROM system.tables WHERE database = %(db)s", {"db": dag_env["database"]}
    ) == [(0,)]
    assert not dag_env["lake"].exists()


def occurrences(needle: str, root: Path) -> list[str]:
    """Files under `root` holding `needle`: raw bytes, ZIP members inflated, and Parquet values
    and metadata read back (compression would hide them from a byte search)."""
    import pyarrow.parquet as pq

    wanted = needle.encode()
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        hit = wanted in data
        if not hit and data[:2] == b"PK":
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                hit = any(wanted in archive.read(name) for name in archive.namelist())
        if not hit and data[:4] == b"PAR1":
            table = pq.read_table(path)
            metadata = json.dumps(
                {str(k): str(v) for k, v in (table.schema.metadata or {}).items()}
            )
            hit = needle in metadata or needle in json.dumps(table.to_pylist(), default=str)
        if hit:
            found.append(str(path))
    return found


@pytest.fixture(scope="module")
def private_clickhouse(tmp_path_factory):
    """A ClickHouse server of its own whose only user needs a password: the shared test
    server's `default` user has none, and 18.16 cannot add users with SQL."""
    folder = tmp_path_factory.mktemp("clickhouse")
    server = {
        "host": "127.0.0.1",
        "port": free_port(),
        "user": "nse_secured",
        "password": f"pw-{secrets.token_hex(12)}",
    }
    env = {
        "PATH": "/usr/sbin:/usr/bin:/bin",
        "CH_DIR": str(folder),
        "CH_TCP_PORT": str(server["port"]),
        "CH_HTTP_PORT": str(free_port()),
        "CH_USER": server["user"],
        "CH_PASSWORD": server["password"],
    }
    started = run(str(CLICKHOUSE_LOCAL), "start", env=env)
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        yield {**server, "folder": folder}
    finally:
        run(str(CLICKHOUSE_LOCAL), "stop", env=env)


#: `dag.test()` runs tasks through an in-process stand-in for Airflow's supervisor that logs,
#: at DEBUG, each request a task sends it: among them the connection password the task asks
#: Airflow to mask. Workers use the real supervisor, which leaves request bodies out of its log.
HARNESS_ECHO = re.compile(r"\] Sending request +loc=supervisor\.py:\d+ msg=MaskSecret\(value=")
#: One DAG run under `dag.test()` in a process of its own, so that its whole output is what a
#: run prints, at the log level it is given (the tests' own process logs warnings only).
RUN_DAG = """
import datetime as dt, sys
from airflow.dag_processing.dagbag import DagBag

bag = DagBag(dag_folder=sys.argv[1])
assert not bag.import_errors, bag.import_errors
dag = bag.dags[sys.argv[2]]
# dag.test() cannot end a run of a DAG with a deadline (it looks the alert up by the id the
# scheduler's serialized copy would have); the deadline plays no part in what is checked here.
dag.deadline = None
run = dag.test(logical_date=dt.datetime.fromisoformat(sys.argv[3]))
print("run", run.run_id, "ended", run.state)
"""


@pytest.mark.airflow
@pytest.mark.slow
def test_password_is_written_nowhere(
    private_clickhouse, nse_root, tmp_path, monkeypatch, airflow_db
):
    """A day of nse_cm_bhavcopy loaded, logging at DEBUG, into a ClickHouse whose user has a
    password: the password is in nothing the run printed, no task log file, no lake file
    (bronze, manifests, silver, quality results: what MLflow would be given), no row of the
    metadata database, and no query or log of ClickHouse's."""
    from clickhouse_driver import Client

    from tests.conftest import AIRFLOW_TEST_HOME

    server = {k: private_clickhouse[k] for k in ("host", "port", "user", "password")}
    password = server["password"]
    dag_file = PROJECT_ROOT / "dags" / "nse_cm_bhavcopy.py"
    with (
        new_database(server) as database,
        stand_in_env(nse_root, tmp_path / "lake", server, database, monkeypatch) as env,
    ):
        monkeypatch.setenv("AIRFLOW__LOGGING__LOGGING_LEVEL", "DEBUG")
        monkeypatch.setenv("PYTHONPATH", f"{PROJECT_ROOT}:{PROJECT_ROOT / 'plugins'}")
        done = run(
            sys.executable,
            "-c",
            RUN_DAG,
            str(dag_file),
            "nse_cm_bhavcopy",
            _run_at(LEAK_DAY).isoformat(),
            timeout=900,
        )
        client = Client(**server)
        try:
            rows = client.execute(f"SELECT count() FROM {database}.cm_bhavcopy")[0][0]
            client.execute("SYSTEM FLUSH LOGS")
            queries = client.execute(
                "SELECT count(), countIf(position(query, %(pw)s) > 0) FROM system.query_log",
                {"pw": password},
            )[0]
        finally:
            client.disconnect()
        lake = env["lake"]

    printed = done.stdout + done.stderr
    # What is searched holds what the run did: it succeeded and loaded rows, its output has
    # the hook's DEBUG and INFO lines naming the user, every layer of the lake has files, and
    # ClickHouse logged its queries.
    assert done.returncode == 0 and "ended success" in done.stdout, printed[-3000:]
    assert rows > 0
    assert f"as user {server['user']}" in printed
    assert "[debug" in printed
    assert {p.name for p in lake.iterdir()} >= {"bronze", "silver", "quality"}
    assert queries[0] > 0

    leaked = [
        line for line in printed.splitlines() if password in line and not HARNESS_ECHO.search(line)
    ]
    assert leaked == []
    assert queries[1] == 0
    assert occurrences(password, lake) == []
    task_logs = AIRFLOW_TEST_HOME / "logs"
    if task_logs.exists():
        assert occurrences(password, task_logs) == []
    metadata = [p for p in AIRFLOW_TEST_HOME.glob("airflow.db*") if p.is_file()]
    assert metadata and all(password.encode() not in p.read_bytes() for p in metadata)
    assert occurrences(password, private_clickhouse["folder"] / "log") == []


def test_leak_search_reads_inside_zip_and_parquet(tmp_path):
    """The search finds a value in plain files, inside ZIP members and in Parquet columns and
    metadata, and nothing where it is absent."""
    value = f"pw-{secrets.token_hex(8)}"
    (tmp_path / "plain.log").write_text(f"connected with {value}\n")
    with zipfile.ZipFile(tmp_path / "day.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("day.csv", f"a,b\n1,{value}\n" * 50)
    pl.DataFrame({"a": [value] * 100}).write_parquet(tmp_path / "column.parquet")
    table = pl.DataFrame({"a": [1]}).to_arrow().replace_schema_metadata({"note": value})
    import pyarrow.parquet as pq

    pq.write_table(table, tmp_path / "metadata.parquet")
    pl.DataFrame({"a": ["clean"]}).write_parquet(tmp_path / "clean.parquet")
    found = [Path(p).name for p in occurrences(value, tmp_path)]
    assert found == ["column.parquet", "day.zip", "metadata.parquet", "plain.log"]
