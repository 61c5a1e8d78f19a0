"""Atomic file writing, for every file the app and the scripts write (images, GIFs, sessions,
checkpoints, the dataset cache): a new temporary file beside the target, then one rename, so a
failed or interrupted write leaves the previous file whole.

A target that is a symbolic link is written through the link (the link stays, its file is
replaced); a target that exists keeps its permission bits (a session saved 0600 stays 0600).
"""
from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import IO

import torch


_TMP_PREFIX_CHARS = 32  # of the target's name, in its temp name: 255-byte names still get a temp file


def _temp_name(path: Path) -> Path:
    """A short, unique, hidden name beside `path`; never longer than the file system allows.

    The pid and a random token make two writers to one file never collide; only the first few
    characters of the target's name are kept, so a 255-byte target name still has a temp name.
    """
    stem = path.name[:_TMP_PREFIX_CHARS]
    return path.with_name(f".{stem}.{os.getpid()}{secrets.token_hex(3)}.tmp")


def _write_failure(path: Path, exc: BaseException) -> OSError:
    """One sentence naming the target (never the hidden temp file) and the reason."""
    if isinstance(exc, OSError):
        err = OSError(f"cannot write {path}: {exc.strerror or str(exc) or type(exc).__name__}")
        err.errno = exc.errno
        return err
    return OSError(f"cannot write {path}: {exc}")


def _check_target(path: Path) -> None:
    if not str(path) or path.name in ("", ".", ".."):
        raise ValueError(f"output name {str(path)!r} is not a file name")
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {path}: it is a folder; give a file name")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(f"cannot write {path}: {parent} is a file, not a folder")
            break


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Call `write` on a new temporary file beside `path`, then move it over `path`.

    The temporary name is short and unique (see `_temp_name`); it is removed on any error,
    leaving an existing file at `path` untouched. A failure is an `OSError` naming `path`.
    Through a symbolic link the linked file is replaced; an existing file's mode is kept.
    """
    if isinstance(path, str) and not path:
        raise ValueError("output name '' is not a file name")
    path = Path(path)
    _check_target(path)
    target = Path(os.path.realpath(path)) if path.is_symlink() else path  # replace the link's file, keep the link
    tmp = _temp_name(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        mode = stat.S_IMODE(target.stat().st_mode) if target.is_file() else None
        with open(tmp, "xb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    except OSError as exc:
        raise _write_failure(path, exc) from None
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:  # e.g. the "folder" is a file: there is no temp file to remove
            pass
    return path


class _RecordingWriter:
    """A file's `write`/`flush` that remembers the first OSError: torch's zip writer replaces
    it with an unhelpful RuntimeError ("unexpected pos", "iostream error")."""

    def __init__(self, fh: IO[bytes]):
        self.fh, self.error = fh, None

    def write(self, data: bytes) -> int:
        try:
            return self.fh.write(data)
        except OSError as exc:
            self.error = self.error or exc
            raise

    def flush(self) -> None:
        self.fh.flush()


def save_tensor_atomic(obj: object, path: str | os.PathLike) -> Path:
    """`torch.save(obj)` through the atomic writer: a failed write keeps the previous file."""
    def write(fh: IO[bytes]) -> None:
        sink = _RecordingWriter(fh)
        try:
            torch.save(obj, sink)
        except RuntimeError:
            if sink.error is not None:
                raise sink.error from None
            raise

    return atomic_write(path, write)
