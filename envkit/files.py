"""Writing a file whole or not at all."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import BadInput


def write_atomically(path: Path, text: str, mode: int = 0o644) -> Path:
    """Write `text` to `path` through an exclusive temporary file in the same folder and a
    rename: readers see the old file or the new one, never half of it, and a symlink at `path`
    is replaced rather than followed. BadInput when the folder cannot be written."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise BadInput(
            f"cannot write {path}: {exc.strerror or exc}", "pick a writable folder"
        ) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise BadInput(
                f"cannot write {path}: {exc.strerror or exc}", "pick a writable folder"
            ) from None
        raise
    return path
