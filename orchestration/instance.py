"""The Dagster instance directory (DAGSTER_HOME) the demo, the UI and the tests share.

The first start of a DAGSTER_HOME is serialised by a file lock: Dagster's SQLite storages create
their tables and stamp their schema version (`alembic_version`) without one, so two processes
starting together on a fresh home (two first `make demo`s, or `make ui` beside `make demo`) could
both stamp it, leaving two rows that make every later Dagster process fail ("more than one head").
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from orchestration.settings import PROJECT_ROOT, environ, set_environ

TEMPLATE = Path(__file__).resolve().parent / "dagster_instance.yaml"
LOCK_NAME = ".stepwise-first-start.lock"


@contextlib.contextmanager
def first_start_lock(home: Path) -> Iterator[None]:
    """Hold an exclusive lock on `home/.stepwise-first-start.lock` (released when the process dies)."""
    home.mkdir(parents=True, exist_ok=True)
    with open(home / LOCK_NAME, "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def ensure_dagster_home(default: Path | None = None) -> Path:
    """DAGSTER_HOME (default .dagster_home), created with Stepwise's dagster.yaml when it has none.

    `make clean` deletes .dagster_home; the template keeps telemetry off and the duckdb pool limit.
    """
    home = Path(environ().get("DAGSTER_HOME") or (default or PROJECT_ROOT / ".dagster_home")).resolve()
    with first_start_lock(home):
        config = home / "dagster.yaml"
        if not config.exists():
            # Renamed into place, so no process ever reads a half-copied dagster.yaml.
            partial = home / f".dagster.yaml.{os.getpid()}"
            shutil.copyfile(TEMPLATE, partial)
            os.replace(partial, config)
    set_environ("DAGSTER_HOME", str(home))
    return home


def open_instance(default: Path | None = None) -> Any:
    """The DagsterInstance of DAGSTER_HOME, its storages created (or migrated) under the first-start lock."""
    import dagster as dg

    home = ensure_dagster_home(default)
    with first_start_lock(home):
        # DagsterInstance.get() opens every SQLite storage (history/runs.db, history/runs/index.db,
        # schedules/schedules.db), creating and stamping each on a fresh home.
        return dg.DagsterInstance.get()


if __name__ == "__main__":
    # `python -m orchestration.instance`: create (or check) the instance, as `make ui` does first.
    instance = open_instance()
    print(f"DAGSTER_HOME={environ()['DAGSTER_HOME']} ready ({type(instance).__name__})")
    instance.dispose()
    sys.exit(0)
