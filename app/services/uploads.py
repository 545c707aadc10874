"""Uploaded patients: one per browser session, each in its own folder under the work folder.

The checks on the uploaded bytes are :mod:`rtplan_assist.app.upload`; this module keeps the
stored uploads and removes their folders when they are replaced or their session ends.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
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
        self._by_session: dict[str, PatientEntry] = {}

    def of(self, session: str | None) -> PatientEntry | None:
        """The session's upload, if any."""
        with self._lock:
            return self._by_session.get(session or "")

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
        folder = Path(tempfile.mkdtemp(prefix="upload-", dir=self.root))
        try:
            save_upload(contents, filenames, folder, self.limits)
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
            replaced = self._by_session.pop(session, None)
            self._by_session[session] = entry
        _remove(replaced)
        return entry, replaced

    def discard(self, session: str) -> PatientEntry | None:
        """Forget the session's upload and remove its folder; returns it (or None)."""
        with self._lock:
            up = self._by_session.pop(session, None)
        _remove(up)
        return up

    def clear(self) -> None:
        with self._lock:
            self._by_session.clear()


def _remove(entry: PatientEntry | None) -> None:
    if entry is not None and entry.upload_dir is not None:
        shutil.rmtree(entry.upload_dir, ignore_errors=True)
