"""The Dagster instance directory (DAGSTER_HOME) the demo, the UI and the tests share."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from orchestration.resources import PROJECT_ROOT

TEMPLATE = Path(__file__).resolve().parent / "dagster_instance.yaml"


def ensure_dagster_home(default: Path | None = None) -> Path:
    """DAGSTER_HOME (default .dagster_home), created with Stepwise's dagster.yaml when it has none.

    `make clean` deletes .dagster_home; the template keeps telemetry off and the duckdb pool limit.
    """
    home = Path(os.environ.get("DAGSTER_HOME") or (default or PROJECT_ROOT / ".dagster_home")).resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        shutil.copyfile(TEMPLATE, config)
    os.environ["DAGSTER_HOME"] = str(home)
    return home
