"""Atomic output files: write to a temporary file in the target folder, then rename.

A reader (or a crash) never sees a half-written report, CSV or RTDOSE; an existing file is
replaced in one step. Input files are never opened for writing anywhere in rtplan-assist.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


@contextmanager
def atomic_open(path: str | Path, mode: str = "w", **kwargs) -> Iterator[IO]:
    """Open ``path`` for writing through a temporary sibling that is renamed on success.

    Parameters
    ----------
    path : destination file
    mode : ``"w"`` (text) or ``"wb"`` (binary)
    kwargs : passed to ``open`` (e.g. ``encoding``, ``newline``)
    """
    if mode not in ("w", "wb"):
        raise ValueError("atomic_open writes only ('w' or 'wb')")
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _cannot_write(path, exc) from None
    try:
        if "b" not in mode:
            kwargs.setdefault("encoding", "utf-8")
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs follow the umask
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            raise _cannot_write(path, exc) from None
        raise


def _cannot_write(path: Path, exc: OSError):
    """An unwritable folder, a full disk, a read-only file system: the user's situation, one
    typed error (exit 2), not an internal error."""
    from .errors import RtplanAssistError

    return RtplanAssistError(
        f"cannot write the output ({exc.strerror or type(exc).__name__}); choose another "
        "folder or free space.", path=path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_open(path, "w", newline="") as fh:
        fh.write(text)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)
