"""File-system safety for everything hposweep writes: symlinks are never followed, JSON is
replaced atomically, trees are removed without following a link."""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

STAGING_PREFIX = ".tmp-"


def first_link(path: Path, root: Path) -> Path | None:
    """The first component of ``path`` below ``root`` (``path`` included) that is a
    symlink, checked with ``lstat``; None when there is none (missing ones end the walk)."""
    current = root
    for name in path.relative_to(root).parts:
        current = current / name
        try:
            if stat.S_ISLNK(os.lstat(current).st_mode):
                return current
        except FileNotFoundError:
            return None
    return None


def is_real_dir(path: Path, root: Path) -> bool:
    """Whether ``path`` is a dir with no symlink from ``root`` down, itself included."""
    return first_link(path, root) is None and path.is_dir()


def remove_tree(path: Path, root: Path, warn: Callable[[str], None]) -> None:
    """Delete the dir ``path`` below ``root`` without ever following a link.

    Refused, with a warning and nothing deleted, unless ``path`` is lexically inside
    ``root`` and every component from ``root`` down, ``path`` included, is a real dir.
    The walk down holds each dir open with ``O_NOFOLLOW``, and the last one is handed to
    ``shutil.rmtree(dir_fd=...)``: where ``rmtree.avoids_symlink_attacks`` (Linux;
    CPython 3.11's ``_rmtree_safe_fd``) it deletes by fd, checking each subdir with
    lstat/fstat and unlinking links instead of entering them, so a dir swapped for a
    link after the check cannot redirect it. Gone already is fine; what cannot be
    deleted (permissions) stays, as with ``ignore_errors``.
    """
    parts = path.relative_to(root).parts if path.is_relative_to(root) else ()
    if not parts or ".." in parts:
        warn(f"not deleting {path}: not inside {root}")
        return
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return
    try:
        for name in parts[:-1]:
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = child
        if not stat.S_ISDIR(os.lstat(parts[-1], dir_fd=fd).st_mode):
            raise OSError(errno.ENOTDIR, "not a directory")
        if shutil.rmtree.avoids_symlink_attacks:
            shutil.rmtree(parts[-1], ignore_errors=True, dir_fd=fd)
        else:  # no fd-based rmtree (macOS): by path, after the same checks
            shutil.rmtree(path, ignore_errors=True)
    except FileNotFoundError:
        pass
    except OSError as exc:  # ELOOP: a link on the way (O_NOFOLLOW); ENOTDIR: a link or a file
        warn(f"not deleting {path}: it or a dir above it is a symlink or not a dir "
             f"({exc.strerror}); a link is never followed")
    finally:
        os.close(fd)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write to a temp file in the same dir, fsync, then replace: readers see old or new.
    A failed write (a full disk) removes the temp file and leaves ``path`` as it was."""
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        with tmp.open("w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=True, default=str)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
