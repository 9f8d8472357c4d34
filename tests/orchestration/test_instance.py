"""Two processes starting together on a fresh DAGSTER_HOME both succeed, and leave one schema version.

Without the first-start lock, Dagster's SQLite run storage can be stamped twice by two processes
(two `alembic_version` rows: every later Dagster process then fails with "more than one head"); it
happened in 1 to 2 of 6 tries on this machine. `orchestration.instance.open_instance` is what
`make demo` and `make ui` call first.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
TRIES = 6


def test_two_first_starts_on_a_fresh_home_both_succeed(stepwise_env: Any, tmp_path: Path) -> None:
    for attempt in range(TRIES):
        home = tmp_path / f"home{attempt}"  # fresh: not even created yet
        env = stepwise_env.subprocess_env(DAGSTER_HOME=str(home))
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "orchestration.instance"],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for _ in range(2)
        ]
        outputs = [p.communicate(timeout=300)[0] for p in procs]
        for proc, output in zip(procs, outputs, strict=True):
            assert proc.returncode == 0, f"try {attempt}: {output[-2000:]}"
            assert "ready" in output
        con = sqlite3.connect(home / "history" / "runs.db")
        try:
            (rows,) = con.execute("SELECT count(*) FROM alembic_version").fetchone()
        finally:
            con.close()
        assert rows == 1, f"try {attempt}: {rows} alembic_version rows"
        assert (home / "dagster.yaml").read_text() == (
            REPO / "orchestration" / "dagster_instance.yaml"
        ).read_text()
    # A later process opens the (last) home without complaint.
    later = subprocess.run(
        [sys.executable, "-m", "orchestration.instance"], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert later.returncode == 0, later.stdout + later.stderr
