"""The production deployment on one machine: PostgreSQL, the Dagster daemon and the webserver.

``make deploy-local`` (``python -m orchestration.deployment up``) does, in order:

1. a PostgreSQL cluster of its own in ``data/deploy/postgres`` (``initdb`` on first start, with a random
   password in ``data/deploy/postgres.password``, mode 0600), listening on 127.0.0.1 only, no Unix
   socket. PostgreSQL refuses to run as root: as root the cluster belongs to the ``postgres`` system user
   that Debian's ``postgresql`` package creates, and its commands run through ``runuser``;
2. the Dagster instance (``data/deploy/dagster_home/dagster.yaml``): the project's instance template
   (``orchestration/dagster_instance.yaml``: queued run coordinator, the ``duckdb`` pool of one, run
   monitoring) plus run, event-log and schedule storage on that PostgreSQL (``dagster-postgres``); the
   password is read from ``DAGSTER_PG_PASSWORD`` at run time, never written into the file;
3. ``dagster-daemon run`` (dequeues runs, schedules, sensors, backfills, run monitoring) and
   ``dagster-webserver`` on 127.0.0.1, both on ``workspace.yaml``.

Ctrl-C (or SIGTERM) stops the webserver, the daemon and PostgreSQL, each by the PID this module started.
Every run is a process of its own, and HubSpot requests of concurrent runs share one rate budget per
portal (``STEPWISE_RATE_BUDGET``, default ``data/deploy/rate-budget.sqlite``; connectors/rate_budget.py).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from orchestration.settings import child_environment

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = Path(__file__).resolve().parent / "dagster_instance.yaml"
DEFAULT_DIR = PROJECT_ROOT / "data" / "deploy"
PG_USER = "stepwise"
PG_DB = "dagster"
PASSWORD_ENV = "DAGSTER_PG_PASSWORD"
SYSTEM_USER = "postgres"  # created by Debian's postgresql package; owns the cluster when run as root


class DeploymentError(Exception):
    """The local deployment cannot start; the message says what to install or change."""


def pg_bin_dir() -> Path:
    """The directory of initdb/pg_ctl/postgres: PATH first, else Debian's /usr/lib/postgresql/<ver>/bin."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    if versions:
        return versions[-1].parent
    raise DeploymentError(
        "PostgreSQL's server programs (initdb, pg_ctl) are not installed: run `make system-deps` "
        "(installs Debian's postgresql package) or `apt-get install postgresql`"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


@dataclass
class PostgresCluster:
    """One PostgreSQL cluster in ``data_dir``, on 127.0.0.1:``port``, started and stopped by PID."""

    data_dir: Path
    port: int
    password_file: Path
    log_file: Path = field(init=False)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).resolve()
        self.password_file = Path(self.password_file).resolve()
        self.log_file = self.data_dir.with_name(self.data_dir.name + ".log")

    def _run(self, args: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        command = [str(pg_bin_dir() / args[0]), *args[1:]]
        if _as_root():
            command = ["runuser", "-u", SYSTEM_USER, "--", *command]
        return subprocess.run(command, check=True, capture_output=True, text=True, **kwargs)

    def _give_to_system_user(self, path: Path) -> None:
        if _as_root():
            shutil.chown(path, SYSTEM_USER, SYSTEM_USER)

    @property
    def password(self) -> str:
        return self.password_file.read_text().strip()

    def init(self) -> None:
        """initdb on first use: scram-sha-256 over TCP for ``stepwise``, a random password kept 0600."""
        if (self.data_dir / "PG_VERSION").exists():
            return
        if _as_root():
            try:
                import pwd

                pwd.getpwnam(SYSTEM_USER)
            except KeyError as exc:
                raise DeploymentError(
                    f"running as root, but there is no {SYSTEM_USER!r} system user to own the PostgreSQL "
                    "cluster (PostgreSQL refuses root): run `make system-deps` (Debian's postgresql "
                    "package creates it)"
                ) from exc
        self.password_file.parent.mkdir(parents=True, exist_ok=True)
        if not self.password_file.exists():
            self.password_file.touch(mode=0o600)
            self.password_file.write_text(secrets.token_urlsafe(24) + "\n")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        self._give_to_system_user(self.data_dir)
        self.log_file.touch()
        self._give_to_system_user(self.log_file)
        # initdb reads the password from a file the cluster's user can read; it is removed at once.
        pwfile = self.data_dir.with_name(f".{self.data_dir.name}.initpw")
        pwfile.touch(mode=0o600)
        pwfile.write_text(self.password + "\n")
        self._give_to_system_user(pwfile)
        try:
            self._run(
                [
                    "initdb",
                    "-D",
                    str(self.data_dir),
                    "-U",
                    PG_USER,
                    f"--pwfile={pwfile}",
                    "--auth-host=scram-sha-256",
                    "--auth-local=scram-sha-256",
                    "--encoding=UTF8",
                    "--no-instructions",
                ]
            )
        except subprocess.CalledProcessError as exc:
            raise DeploymentError(f"initdb failed in {self.data_dir}: {exc.stderr.strip()[-400:]}") from exc
        finally:
            pwfile.unlink(missing_ok=True)

    def start(self, timeout: float = 60.0) -> int:
        """Start the server on 127.0.0.1 only (no Unix socket); returns its PID."""
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories=''"
        try:
            self._run(
                ["pg_ctl", "start", "-D", str(self.data_dir), "-l", str(self.log_file), "-w",
                 "-t", str(int(timeout)), "-o", options]
            )  # fmt: skip
        except subprocess.CalledProcessError as exc:
            tail = self.log_file.read_text()[-600:] if self.log_file.exists() else ""
            raise DeploymentError(
                f"PostgreSQL did not start on 127.0.0.1:{self.port}: {exc.stderr.strip()} {tail}"
            ) from exc
        self.ensure_database()
        return self.pid

    @property
    def pid(self) -> int:
        return int((self.data_dir / "postmaster.pid").read_text().split()[0])

    def connect(self, dbname: str = "postgres") -> Any:
        import psycopg2

        return psycopg2.connect(
            host="127.0.0.1", port=self.port, user=PG_USER, password=self.password, dbname=dbname
        )

    def ensure_database(self) -> None:
        con = self.connect()
        try:
            con.autocommit = True
            with con.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (PG_DB,))
                if cur.fetchone() is None:
                    cur.execute(f"CREATE DATABASE {PG_DB}")  # a constant name, not user input
        finally:
            con.close()

    def stop(self, timeout: float = 60.0) -> None:
        """Fast shutdown of the server this cluster's postmaster.pid names (SIGINT to that PID)."""
        pid_file = self.data_dir / "postmaster.pid"
        if not pid_file.exists():
            return
        pid = self.pid
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)
        raise DeploymentError(f"PostgreSQL (PID {pid}) did not stop within {timeout:.0f} s")


def instance_config(pg_port: int, max_concurrent_runs: int = 4) -> dict[str, Any]:
    """The project's instance template with its storage on PostgreSQL."""
    config = yaml.safe_load(TEMPLATE.read_text())
    config["storage"] = {
        "postgres": {
            "postgres_db": {
                "username": PG_USER,
                "password": {"env": PASSWORD_ENV},
                "hostname": "127.0.0.1",
                "db_name": PG_DB,
                "port": pg_port,
                # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3; dagster-postgres brings psycopg2.
                "scheme": "postgresql+psycopg2",
            }
        }
    }
    concurrency = config.setdefault("concurrency", {})
    concurrency.setdefault("runs", {})["max_concurrent_runs"] = max_concurrent_runs
    # The "duckdb" pool is claimed per run, not per step: two runs whose steps took turns on the working
    # file saw each other's half-loaded partitions (a run's blocking check sessions_reconcile_with_total
    # failed on its 5 days while the other run's raw tables were part-written). Whole runs take turns;
    # the queue holds the others, and runs that touch no pool (exports) still run beside them.
    concurrency.setdefault("pools", {})["granularity"] = "run"
    # The pool's run-level check let two runs dequeued in the same tick start together (both then met
    # DuckDB's file lock); the template's queue tag limit (stepwise/writes, one at a time) does not.
    if not concurrency["runs"].get("tag_concurrency_limits"):
        raise RuntimeError(
            f"{TEMPLATE}: concurrency.runs.tag_concurrency_limits (stepwise/writes) is missing"
        )
    return config


def write_instance(home: Path, pg_port: int, max_concurrent_runs: int = 4) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    path = home / "dagster.yaml"
    header = (
        "# Written by `python -m orchestration.deployment` (make deploy-local): the project's instance\n"
        "# template (orchestration/dagster_instance.yaml) with its storage on PostgreSQL.\n"
        f"# The password comes from ${PASSWORD_ENV} when the instance loads; it is not in this file.\n"
    )
    path.write_text(header + yaml.safe_dump(instance_config(pg_port, max_concurrent_runs), sort_keys=False))
    return path


@dataclass
class Deployment:
    """PostgreSQL + instance + daemon (+ webserver), every process started here and stopped by PID."""

    base_dir: Path = DEFAULT_DIR
    pg_port: int = 55432
    ui_port: int | None = 3000
    max_concurrent_runs: int = 4
    env: dict[str, str] = field(default_factory=dict)
    postgres_dir: Path | None = None  # default base_dir/postgres (must be reachable by the postgres user)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.base_dir = Path(self.base_dir).resolve()
        self.home = self.base_dir / "dagster_home"
        self.cluster = PostgresCluster(
            self.postgres_dir or self.base_dir / "postgres", self.pg_port, self.base_dir / "postgres.password"
        )

    def process_env(self) -> dict[str, str]:
        env = child_environment(self.env)
        env["DAGSTER_HOME"] = str(self.home)
        env[PASSWORD_ENV] = self.cluster.password
        env.setdefault("STEPWISE_RATE_BUDGET", str(self.base_dir / "rate-budget.sqlite"))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
        return env

    def start(self) -> None:
        self.cluster.init()
        self.cluster.start()
        write_instance(self.home, self.pg_port, self.max_concurrent_runs)
        bin_dir = Path(sys.executable).parent
        logs = self.base_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        commands = {"daemon": [str(bin_dir / "dagster-daemon"), "run", "-w", "workspace.yaml"]}
        if self.ui_port:
            commands["webserver"] = [
                str(bin_dir / "dagster-webserver"),
                "-w",
                "workspace.yaml",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.ui_port),
            ]
        for name, command in commands.items():
            with open(logs / f"{name}.log", "ab") as log_file:
                self.processes[name] = subprocess.Popen(
                    command,
                    cwd=PROJECT_ROOT,
                    env=self.process_env(),
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its code servers and runs go into its own group
                )

    def wait_for_webserver(self, timeout: float = 180.0) -> None:
        import urllib.request

        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.ui_port}/server_info"
        while time.monotonic() < deadline:
            proc = self.processes.get("webserver")
            if proc is not None and proc.poll() is not None:
                raise DeploymentError(
                    f"dagster-webserver exited ({proc.returncode}); see {self.base_dir}/logs"
                )
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
            time.sleep(1.0)
        raise DeploymentError(f"dagster-webserver did not answer on {url} within {timeout:.0f} s")

    def stop(self) -> None:
        """Webserver and daemon first (each with the process group it started, and every process they
        started, such as code servers in groups of their own), then PostgreSQL."""
        import psutil

        descendants: list[psutil.Process] = []
        for proc in self.processes.values():
            with contextlib.suppress(psutil.Error):
                descendants += psutil.Process(proc.pid).children(recursive=True)
        for _name, proc in reversed(list(self.processes.items())):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGINT)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        self.processes.clear()
        for child in descendants:
            with contextlib.suppress(psutil.Error):
                child.terminate()
        _gone, alive = psutil.wait_procs(descendants, timeout=20)
        for child in alive:
            with contextlib.suppress(psutil.Error):
                child.kill()
        self.cluster.stop()

    @contextlib.contextmanager
    def running(self) -> Iterator[Deployment]:
        try:
            self.start()
            yield self
        finally:
            self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orchestration.deployment", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "command", choices=["up", "instance"], help="up: start everything; instance: write the yaml"
    )
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="state directory (default data/deploy)")
    parser.add_argument("--pg-port", type=int, default=55432)
    parser.add_argument("--ui-port", type=int, default=3000)
    parser.add_argument("--max-concurrent-runs", type=int, default=4)
    args = parser.parse_args(argv)
    deployment = Deployment(args.dir, args.pg_port, args.ui_port, args.max_concurrent_runs)
    if args.command == "instance":
        print(write_instance(deployment.home, args.pg_port, args.max_concurrent_runs))
        return 0
    stop = {"now": False}

    def on_signal(signum: int, _frame: Any) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with deployment.running():
        deployment.wait_for_webserver()
        print(
            f"Stepwise deployment up: Dagster UI http://127.0.0.1:{args.ui_port} (daemon running, runs queued "
            f"on PostgreSQL 127.0.0.1:{args.pg_port}, DAGSTER_HOME={deployment.home}). Ctrl-C stops it.",
            flush=True,
        )
        while not stop["now"]:
            for name, proc in deployment.processes.items():
                if proc.poll() is not None:
                    print(f"{name} exited ({proc.returncode}); stopping", file=sys.stderr)
                    stop["now"] = True
            time.sleep(1.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
