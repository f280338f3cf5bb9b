"""The one way envkit writes a file on the host: whole or not at all, never through a link.

A temporary file is created exclusively (O_EXCL, O_NOFOLLOW) beside the target under a fresh
name, written, flushed to disk, then renamed over the target. A link planted at the target is
refused; one planted at a temporary name is never opened; any failure (a full disk, Ctrl-C)
removes the temporary file and leaves the target as it was.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from pathlib import Path

from .errors import BadInput, EnvkitError

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
_USER_FIXABLE = (
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.ENOENT,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.ENAMETOOLONG,
)


def refuse_link(path: Path) -> None:
    """BadInput when `path` is a symbolic link, dangling or not: envkit never writes through one."""
    if os.path.islink(path):
        raise BadInput(
            f"{path} is a symbolic link (to {os.readlink(path)}); envkit does not write through it",
            "remove the link, or write somewhere else",
        )
    if os.path.isdir(path):
        raise BadInput(f"{path} is a folder", "pass a file name")


def write_error(exc: OSError, path: Path, fix: str) -> EnvkitError:
    """The error for a failed write of `path`: no space (exit 1) names the folder to clear; what
    the user can change (permissions, a missing folder) is bad input (exit 2)."""
    if exc.errno in _NO_SPACE:
        folder = Path(os.path.abspath(path)).parent
        return EnvkitError(
            f"no space left on {folder} (writing {Path(path).name})",
            "free some space there, or write somewhere else",
        )
    reason = exc.strerror or str(exc)
    if exc.errno in _USER_FIXABLE:
        return BadInput(f"cannot write {path}: {reason}", fix)
    return EnvkitError(f"cannot write {path}: {reason}", fix)


class Writer:
    """The open temporary file: text (UTF-8) or bytes, written through to it unbuffered."""

    def __init__(self, fd: int, path: Path, fix: str):
        self._fd, self._path, self._fix = fd, path, fix

    def write(self, data: str | bytes) -> None:
        """Write all of `data`, or raise the EnvkitError for why not."""
        view = memoryview(data.encode("utf-8") if isinstance(data, str) else data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            raise write_error(exc, self._path, self._fix) from None


def _create_temporary(path: Path, mode: int, fix: str, made: list[Path]) -> int:
    """Open a new temporary file beside `path`. Its name goes into `made` before the file can
    exist, so that an interrupt at any moment after leaves the caller a name to clean up."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(100):
        made.append(path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp"))
        try:
            return os.open(made[-1], flags, mode)
        except FileExistsError:  # someone else's temporary file, or a planted link: not ours
            made.pop()
            continue
        except OSError as exc:
            made.pop()
            raise write_error(exc, path, fix) from None
    raise EnvkitError(f"cannot write {path}: no free temporary name beside it", fix)


@contextlib.contextmanager
def atomic_write(path: str | Path, *, mode: int = 0o644, fix: str = "write somewhere else"):
    """A Writer whose content replaces `path` when the block ends without an error. `mode` is
    the new file's permissions (less the umask); `fix` is the advice when it cannot be written."""
    path = Path(path)
    refuse_link(path)
    made: list[Path] = []  # the temporary file's name, from before it exists
    fd = -1
    try:
        fd = _create_temporary(path, mode, fix, made)
        yield Writer(fd, path, fix)
        try:
            os.fsync(fd)
            closing, fd = fd, -1
            os.close(closing)
            # a link planted at `path` meanwhile is replaced, not followed
            os.replace(made[-1], path)
        except OSError as exc:
            raise write_error(exc, path, fix) from None
    finally:
        if fd >= 0:
            os.close(fd)
        for temporary in made:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)  # gone already after the rename
    _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    # The rename is durable once the folder is flushed; a folder that cannot be opened is fine.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_file(
    path: str | Path, data: str | bytes, *, mode: int = 0o644, fix: str = "write somewhere else"
) -> Path:
    """Replace `path` with `data`, whole or not at all (see atomic_write)."""
    with atomic_write(path, mode=mode, fix=fix) as out:
        out.write(data)
    return Path(path)


def private_folder(folder: Path, option: str) -> Path:
    """Make `folder` (and its parents) with the new one readable by its owner alone (0700)."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        if exc.errno in _NO_SPACE:
            raise EnvkitError(
                f"no space left on {folder.parent} (making {folder.name})",
                "free some space there, or write somewhere else",
            ) from None
        raise BadInput(
            f"cannot make folder {folder}: {exc.strerror or exc}", f"pick another {option}"
        ) from None
    return folder
