"""Export folders that a reader always finds complete: versioned folders behind an atomic symlink flip.

`<out_root>/<week>` is a symlink to a sibling folder `.<week>.v<UTC time>-<pid>` holding one complete
export. A new export is written into a new version folder, then a fresh symlink is renamed over
`<week>` (`rename(2)` replaces it atomically): a web server, a mail job or a person listing the
folder sees the previous week's files or the new ones, never a missing or half-written folder, even
if the process dies between any two steps. The version before the current one is kept (a reader
that resolved the old link a moment ago can finish); older ones are removed by the next export.

A `<week>` that is still a plain folder (written before this layout) is swapped for the symlink with
Linux's `renameat2(RENAME_EXCHANGE)`, also atomic; where that call does not exist it is moved aside
first, the one moment in the folder's life when it is briefly absent.

Folders are created with `0o777` masked by the process umask (normally `0755`), files likewise
(`0644`), so a web server running as another user can serve them.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import datetime as dt
import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

# How long a version folder newer than the live one may sit unused before it counts as a crash's
# leftover (a concurrent export of the same week is still writing it until then).
STALE_SECONDS = 24 * 3600

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _version_pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"^\.{re.escape(name)}\.v(\d{{8}}T\d{{6}}\.\d{{6}}Z)-\d+$")


def new_version_dir(out_dir: Path) -> Path:
    """Create (umask permissions) and return an empty version folder beside `out_dir`."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    while True:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        path = out_dir.with_name(f".{out_dir.name}.v{stamp}-{os.getpid()}")
        try:
            path.mkdir(mode=0o777)  # the umask applies: 0755 under the usual 022
            return path
        except FileExistsError:
            time.sleep(0.000_01)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if result != 0:
        errno = ctypes.get_errno()
        if errno in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: this filesystem/kernel cannot
            return False
        raise OSError(errno, os.strerror(errno), str(b))
    return True


def publish(
    version: Path,
    out_dir: Path,
    *,
    step: Callable[[str], None] | None = None,
    keep_previous: int = 1,
) -> Path:
    """Make the complete folder `version` the one `out_dir` shows; return `out_dir`.

    `step(name)` is called between the steps ("link-made", "flipped") so a test can crash there.
    `keep_previous` versions before the live one stay (a reader that resolved the link just before the
    flip finishes reading there).
    """
    step = step or (lambda _name: None)
    link_tmp = out_dir.with_name(f".{out_dir.name}.link-{os.getpid()}")
    legacy: Path | None = None
    try:
        _remove(link_tmp)
        # Relative target: the export root can be moved or served from elsewhere as a whole.
        os.symlink(version.name, link_tmp)
        step("link-made")
        if out_dir.is_dir() and not out_dir.is_symlink():
            legacy = out_dir.with_name(version.name.replace(".v", ".legacy.v", 1))
            if _exchange(link_tmp, out_dir):
                os.replace(link_tmp, legacy)  # link_tmp now names the old folder
            else:
                os.replace(out_dir, legacy)
                os.replace(link_tmp, out_dir)
        else:
            os.replace(link_tmp, out_dir)  # atomic: readers see the old link's target or the new one
    except BaseException:
        if os.path.realpath(out_dir) != os.path.realpath(version):
            discard(version)
            _remove(link_tmp)
        raise
    step("flipped")
    if legacy is not None:
        shutil.rmtree(legacy, ignore_errors=True)
    with contextlib.suppress(OSError):  # tidying is best effort: the new week is already live
        prune(out_dir, keep_previous=keep_previous)
    return out_dir


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def prune(out_dir: Path, *, keep_previous: int = 1, now: float | None = None) -> list[Path]:
    """Remove version folders older than the live one except its predecessor, leftover links of dead
    runs, and newer versions that sat unused for a day (a crashed export's folder)."""
    if not out_dir.is_symlink():
        return []
    live = os.readlink(out_dir)
    pattern = _version_pattern(out_dir.name)
    live_match = pattern.match(live)
    if live_match is None:
        return []
    now = time.time() if now is None else now
    versions = sorted(
        (m.group(1), p)
        for p in out_dir.parent.iterdir()
        if (m := pattern.match(p.name)) is not None and p.name != live
    )
    older = [p for stamp, p in versions if stamp < live_match.group(1)]
    newer = [p for stamp, p in versions if stamp > live_match.group(1)]
    removed = older[: max(len(older) - keep_previous, 0)]
    removed += [p for p in newer if now - p.lstat().st_mtime > STALE_SECONDS]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    # A dead run's temporary link (or, after a crash inside the legacy swap, the old plain folder).
    for leftover in out_dir.parent.glob(f".{out_dir.name}.link-*"):
        pid = leftover.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            _remove(leftover)
            removed.append(leftover)
    for legacy in out_dir.parent.glob(f".{out_dir.name}.legacy.v*"):
        _remove(legacy)
        removed.append(legacy)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def discard(version: Path) -> None:
    """Remove a version folder that never went live (the export failed before publishing it)."""
    shutil.rmtree(version, ignore_errors=True)


__all__ = ["STALE_SECONDS", "discard", "new_version_dir", "prune", "publish"]
