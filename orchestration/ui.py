"""`python -m orchestration.ui` (what `make ui` runs): the Dagster UI on http://127.0.0.1:3000.

The process execs `dagster dev`, so its PID is dagster's and SIGTERM stops it. A shell that is not
interactive starts background jobs with SIGINT ignored, and `dagster dev` then ignores SIGTERM too
(it shuts down through its SIGINT path); the default handlers are restored before the exec.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from orchestration.instance import ensure_dagster_home, open_instance
from orchestration.settings import PROJECT_ROOT, load_settings


def command(host: str, port: int) -> list[str]:
    dagster = Path(sys.executable).with_name("dagster")
    exe = str(dagster) if dagster.exists() else "dagster"
    return [exe, "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"), "-h", host, "-p", str(port)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m orchestration.ui", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args(argv)
    if args.port is None:
        args.port = load_settings().ui_port
    home = ensure_dagster_home()
    # The instance's storages are created here, under the first-start lock, before `dagster dev`
    # starts its webserver and daemon processes on them.
    open_instance().dispose()
    cmd = command(args.host, args.port)
    print(
        f"Dagster UI: http://{args.host}:{args.port}  (DAGSTER_HOME={home}); stop with Ctrl-C or SIGTERM",
        flush=True,
    )
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.chdir(PROJECT_ROOT)
    os.execv(cmd[0], cmd) if os.path.isabs(cmd[0]) else os.execvp(cmd[0], cmd)


if __name__ == "__main__":
    main()
