"""A reader always finds a complete week: export folders are versioned and flipped in by an atomic
symlink rename, a process killed between any two steps leaves the old week or the new one (never none),
and folders get ordinary permissions (the umask, 0755 under 022), not 0700 (issue 13)."""

from __future__ import annotations

import datetime as dt
import os
import stat
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from reporting import folder_swap, run_export

REPO = Path(__file__).resolve().parents[2]
PERIOD_END = dt.date(2026, 11, 22)


def write_version(out_dir: Path, marker: str, files: int = 5) -> Path:
    version = folder_swap.new_version_dir(out_dir)
    for i in range(files):
        (version / f"part{i}.txt").write_text(marker)
    (version / "manifest.json").write_text(marker)
    return version


def week_marker(out_dir: Path) -> str:
    """What a reader finds when it opens the week (resolving it once, as `cd` or a file manager does):
    every file carries the same marker and none is missing (a complete week)."""
    week = out_dir.resolve(strict=True)
    files = sorted(week.iterdir())
    markers = {p.read_text() for p in files}
    assert len(markers) == 1 and len(files) == 6, markers
    return markers.pop()


def crash_in_child(out_dir: Path, marker: str, at_step: str) -> subprocess.CompletedProcess:
    """Another process writes a new version and is killed (os._exit, no cleanup) at `at_step`."""
    script = textwrap.dedent(
        f"""
        import importlib.util, os, sys
        from pathlib import Path
        # Only the module under test (not the whole export package): a quick child process.
        spec = importlib.util.spec_from_file_location("folder_swap", {str(REPO / "reporting/folder_swap.py")!r})
        folder_swap = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(folder_swap)
        out_dir = Path({str(out_dir)!r})
        version = folder_swap.new_version_dir(out_dir)
        for i in range(5):
            (version / f"part{{i}}.txt").write_text({marker!r})
        if {at_step!r} == "written":
            os._exit(9)
        (version / "manifest.json").write_text({marker!r})

        def step(name):
            if name == {at_step!r}:
                os._exit(9)

        folder_swap.publish(version, out_dir, step=step)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, timeout=120, check=False
    )


@pytest.mark.parametrize(
    ("at_step", "expected"), [("written", "old"), ("link-made", "old"), ("flipped", "new")]
)
def test_a_crash_between_steps_leaves_a_complete_week(tmp_path, at_step, expected):
    out_dir = tmp_path / "exports" / "2026-W47"
    folder_swap.publish(write_version(out_dir, "old"), out_dir)
    assert week_marker(out_dir) == "old"

    done = crash_in_child(out_dir, "new", at_step)
    assert done.returncode == 9, done.stderr.decode()[-2000:]
    assert out_dir.is_dir() and week_marker(out_dir) == expected

    # The next export goes live and tidies what the dead process left (its temporary link).
    folder_swap.publish(write_version(out_dir, "next"), out_dir)
    assert week_marker(out_dir) == "next"
    names = sorted(p.name for p in out_dir.parent.iterdir())
    assert not [n for n in names if ".link-" in n], names
    assert [n for n in names if not n.startswith(".")] == ["2026-W47"]


def test_a_plain_folder_from_before_is_swapped_without_a_gap(tmp_path):
    out_dir = tmp_path / "exports" / "2026-W47"
    out_dir.mkdir(parents=True)
    for i in range(5):
        (out_dir / f"part{i}.txt").write_text("legacy")
    (out_dir / "manifest.json").write_text("legacy")

    done = crash_in_child(out_dir, "new", "link-made")
    assert done.returncode == 9
    assert not out_dir.is_symlink() and week_marker(out_dir) == "legacy"

    folder_swap.publish(write_version(out_dir, "new"), out_dir)
    assert out_dir.is_symlink() and week_marker(out_dir) == "new"
    assert not list(out_dir.parent.glob("*legacy*")) and not list(out_dir.parent.glob("*.link-*"))


def test_a_reader_never_finds_the_week_missing_or_partial(tmp_path):
    out_dir = tmp_path / "exports" / "2026-W47"
    folder_swap.publish(write_version(out_dir, "v0"), out_dir)
    problems: list[str] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                week_marker(out_dir)
            except (OSError, AssertionError) as exc:  # a version pruned under an old link counts too
                problems.append(repr(exc))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(1, 60):
            # Keep every version here: on this tight loop a flip can follow the reader's resolve by
            # less than one read, and this test is about the flip, not about pruning.
            folder_swap.publish(write_version(out_dir, f"v{i}"), out_dir, keep_previous=100)
    finally:
        stop.set()
        thread.join()
    assert problems == []
    assert week_marker(out_dir) == "v59"
    # By default the live version and its predecessor are kept; older ones are gone.
    folder_swap.publish(write_version(out_dir, "v60"), out_dir)
    assert len([p for p in out_dir.parent.iterdir() if p.name.startswith(".2026-W47.v")]) == 2


def test_export_folders_get_the_umask_permissions(fixture_marts, tmp_path):
    old = os.umask(0o022)
    try:
        result = run_export(fixture_marts, tmp_path / "exports", period_end=PERIOD_END, sandbox=True)
    finally:
        os.umask(old)
    live = result.out_dir.resolve()
    assert result.out_dir.is_symlink() and live.parent == result.out_dir.parent
    assert stat.S_IMODE(live.stat().st_mode) == 0o755
    assert stat.S_IMODE(result.out_dir.parent.stat().st_mode) == 0o755
    for path in result.files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path.name
    # The stable path is what deliveries name: the week, not its version folder.
    assert result.report_path == tmp_path / "exports" / "2026-W47" / "summary.html"


def test_a_crash_while_writing_the_export_keeps_the_previous_week(fixture_marts, tmp_path):
    out_root = tmp_path / "exports"
    first = run_export(fixture_marts, out_root, period_end=PERIOD_END, sandbox=True)
    before = sorted(p.name for p in first.out_dir.iterdir())
    script = textwrap.dedent(
        f"""
        import datetime as dt, os
        from reporting import folder_swap, run_export

        def die(*args, **kwargs):
            os._exit(9)  # killed after every file is written, before the flip

        folder_swap.publish = die
        run_export({str(fixture_marts)!r}, {str(out_root)!r}, period_end=dt.date(2026, 11, 22), sandbox=True)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, timeout=300, check=False
    )
    assert done.returncode == 9, done.stderr.decode()[-2000:]
    assert sorted(p.name for p in first.out_dir.iterdir()) == before
    assert os.readlink(first.out_dir) == os.readlink(out_root / "2026-W47")
