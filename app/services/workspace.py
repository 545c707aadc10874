"""The app's folders: a temporary work folder (uploads, PDF exports) and the cache folder."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

__all__ = ["Workspace"]


class Workspace:
    """Folders of one app instance.

    Attributes
    ----------
    workdir : Path
        A fresh temporary folder, removed by :meth:`close`; uploads and PDF exports live in it.
    cache_dir : Path
        Background-job results (``jobs/``) and prepared evaluators (``evaluators/``); the
        given folder (kept) or ``workdir/cache`` (removed with it).
    upload_root : Path
        ``workdir/uploads``: one sub-folder per stored upload.
    """

    def __init__(self, cache_dir=None):
        self.workdir = Path(tempfile.mkdtemp(prefix="rtplan-assist-app-"))
        self.cache_dir = Path(cache_dir) if cache_dir else self.workdir / "cache"
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.evaluators_dir = self.cache_dir / "evaluators"
        self.evaluators_dir.mkdir(exist_ok=True)
        self.jobs_dir = self.cache_dir / "jobs"
        self.upload_root = self.workdir / "uploads"
        self.upload_root.mkdir()

    def close(self) -> None:
        """Remove the work folder (uploads and exports); the cache folder stays if given."""
        shutil.rmtree(self.workdir, ignore_errors=True)
