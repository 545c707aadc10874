"""Uploaded patients: one per browser session, each in its own folder under the work folder.

The checks on the uploaded bytes are :mod:`rtplan_assist.app.upload`; this module keeps the
stored uploads and removes their folders when they are replaced or their session ends.

Which upload belongs to which session is written on disk (``session-<hash>.json`` in the
folder ``<root>-sessions`` beside the upload folders, written atomically), not kept in one
process's memory: the production server's worker processes (:mod:`rtplan_assist.app.server`)
all see a session's upload, whichever of them stored it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

from rtplan_assist.errors import UploadError

from ..upload import UploadLimits, save_upload
from .patients import PatientEntry

__all__ = ["Uploads"]


class Uploads:
    """The last upload of each session.

    Parameters
    ----------
    root : Path
        Folder holding one ``upload-*`` sub-folder per stored upload.
    limits : UploadLimits
    deidentify : bool
        Label an upload by its file count, not its file names (they may carry an ID or name).
    """

    def __init__(self, root: Path, limits: UploadLimits, *, deidentify: bool = False):
        self.root = Path(root)
        self.limits = limits
        self.deidentify = deidentify
        self._lock = threading.Lock()
        self.index_dir = self.root.parent / f"{self.root.name}-sessions"

    def _index(self, session: str) -> Path:
        return self.index_dir / f"session-{hashlib.sha256(session.encode()).hexdigest()[:32]}.json"

    def of(self, session: str | None) -> PatientEntry | None:
        """The session's upload, if any (read from disk: any worker process may have stored
        it)."""
        if not session:
            return None
        try:
            data = json.loads(self._index(session).read_text(encoding="utf-8"))
            entry = PatientEntry(data["key"], data["label"], Path(data["folder"]), session,
                                 Path(data["upload_dir"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return entry if entry.upload_dir.is_dir() else None

    def seen(self, session: str | None) -> None:
        """The session is active: its upload is not idle (see :meth:`discard`)."""
        if session:
            try:
                os.utime(self._index(session))
            except OSError:
                pass

    def _write_index(self, entry: PatientEntry) -> None:
        path = self._index(entry.owner_session)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps({"key": entry.key, "label": entry.label,
                                   "folder": str(entry.folder),
                                   "upload_dir": str(entry.upload_dir)}), encoding="utf-8")
        os.replace(tmp, path)

    def find(self, session: str | None, key: str) -> PatientEntry | None:
        """The session's upload if its key is ``key`` (uploads are private to their session)."""
        up = self.of(session)
        return up if up is not None and up.key == key else None

    def store(self, session: str, contents, filenames) -> tuple[PatientEntry, PatientEntry | None]:
        """Validate and store an upload in a fresh folder; it replaces the session's last one.

        Returns ``(entry, replaced)``: the new upload and the one it replaced (whose folder is
        removed), or None.

        Raises
        ------
        UploadError
            The upload is refused or holds no DICOM RT patient (its folder is removed again).
        """
        if not session:
            raise UploadError("the browser session is not ready yet; try again.")
        self._check_storage(session, None)  # before a byte is written
        folder = Path(tempfile.mkdtemp(prefix="upload-", dir=self.root))
        try:
            save_upload(contents, filenames, folder, self.limits)
            self._check_storage(session, folder)
            from rtplan_assist.dicom import find_patient_folders

            found = find_patient_folders(folder)
            if not found:
                raise UploadError(
                    "the upload holds no DICOM RT files (RTSTRUCT, RTPLAN, RTDOSE)."
                )
            if len(found) > 1:
                raise UploadError(
                    f"the upload holds {len(found)} patients; upload one patient at a time."
                )
        except Exception:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        names = filenames if isinstance(filenames, list | tuple) else [filenames]
        if self.deidentify:  # uploaded file names may carry the ID or the name
            label = f"Upload ({len(names)} file{'s' if len(names) != 1 else ''})"
        else:
            label = f"Upload: {names[0]}" + (
                f" (+{len(names) - 1} files)" if len(names) > 1 else "")
        entry = PatientEntry(f"u-{folder.name[len('upload-'):]}", label, found[0], session,
                             folder)
        with self._lock:
            replaced = self.of(session)
            self._write_index(entry)
        _remove(replaced)
        return entry, replaced

    def stored_bytes(self, *, excluding: tuple[Path, ...] = ()) -> int:
        """Bytes of every upload folder under :attr:`root` but ``excluding`` (read from disk:
        every worker process's uploads count)."""
        skip = {Path(p).resolve() for p in excluding}
        total = 0
        for folder in self.root.glob("upload-*"):
            if folder.is_dir() and folder.resolve() not in skip:
                total += _disk_use(folder)
        return total

    def _check_storage(self, session: str, new_folder: Path | None) -> None:
        """Refuse when the uploads held for other sessions plus the new one pass
        :attr:`UploadLimits.max_stored_bytes` (a global cap on the server's upload storage;
        a session's own previous upload does not count: the new one replaces it)."""
        cap = self.limits.max_stored_bytes
        own = self.of(session)
        excluding = tuple(p for p in (new_folder, own.upload_dir if own else None) if p)
        held = self.stored_bytes(excluding=excluding)
        new_bytes = _disk_use(new_folder) if new_folder is not None else 0
        if held + new_bytes > cap or (new_folder is None and held >= cap):
            raise UploadError(
                f"the server already holds {held / 2**20:.0f} MB of uploads from other "
                f"sessions (limit {cap / 2**20:.0f} MB for all); try again when some have "
                "ended, or ask the administrator to serve the patients from a folder.")

    def discard(self, session: str, idle_s: float | None = None) -> PatientEntry | None:
        """Forget the session's upload and remove its folder; returns it (or None).

        With ``idle_s``, only when no process has marked the session :meth:`seen` for that
        long (a worker that has not seen the session for a while must not remove an upload
        another worker is serving)."""
        with self._lock:
            up = self.of(session)
            if up is None:
                return None
            index = self._index(session)
            try:
                if idle_s is not None and time.time() - index.stat().st_mtime < idle_s:
                    return None
                index.unlink()
            except OSError:
                return None
        _remove(up)
        return up

    def clear(self) -> None:
        with self._lock:
            for index in self.index_dir.glob("session-*.json"):
                index.unlink(missing_ok=True)


def _disk_use(folder: Path) -> int:
    """Bytes of the files under ``folder``."""
    total = 0
    for path in Path(folder).rglob("*"):
        try:
            if path.is_file() and not path.is_symlink():
                total += path.stat().st_size
        except OSError:
            continue
    return total


def _remove(entry: PatientEntry | None) -> None:
    if entry is not None and entry.upload_dir is not None:
        shutil.rmtree(entry.upload_dir, ignore_errors=True)
