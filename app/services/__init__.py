"""Server-side services of one app instance, and :class:`AppServices` that wires them.

=================  =========================================================================
service            concern
=================  =========================================================================
``workspace``      :class:`~.workspace.Workspace`: the temporary work folder and the cache
``patients``       :class:`~.patients.PatientCatalogue`: demo, one folder or a data root
``uploads``        :class:`~.uploads.Uploads`: one stored upload per browser session
``prepared``       :class:`~.prepared.PreparedCache`: preparation jobs, pickles, unpickled LRU
``sessions``       :class:`~.sessions.Sessions`: last-seen times, each session's patient copy
``scrubber``       :class:`~.scrubber.Scrubber`: de-identified answers
=================  =========================================================================

One :class:`AppServices` is created by :func:`rtplan_assist.app.main.create_app` and handed to
every page's ``register(app, services)``; nothing lives at module level, so two apps in one
process (tests) never share patients, sessions or uploads. Its methods are the operations that
span services (a patient key is a catalogue patient or the session's upload; a session that
ends takes its upload and that upload's evaluator with it).
"""

from __future__ import annotations

import atexit
import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

from rtplan_assist.errors import EvaluationError

from ..upload import UploadLimits
from .patients import PatientCatalogue, PatientEntry
from .prepared import PreparedCache
from .scrubber import Scrubber
from .sessions import LoadedPatient, Sessions
from .uploads import Uploads
from .workspace import Workspace

__all__ = ["AppServices", "LoadedPatient", "PatientEntry"]


class AppServices:
    """The services of one app; see the module docstring.

    Parameters
    ----------
    data_path : path or None
        A patient folder, a data root with several patients, or None for the demo patient.
    cache_dir : path or None
        Where background jobs and prepared evaluators are kept; a temporary folder (removed
        at exit) when None.
    max_loaded : int
        LRU bound on prepared patients held in memory (each holds its dose grids).
    max_sessions : int
        LRU bound on (session, patient) copies.
    session_ttl_s : float
        A session unseen for this long loses its evaluators and its upload folder.
    limits : UploadLimits
    deidentify : bool
        Show and export patients by their key (``p-`` + 8 hex digits of the SHA-256 of the
        PatientID) and withhold names and folders (:meth:`scrub`; ``serve --deidentify``).
    """

    def __init__(self, data_path=None, *, cache_dir=None, max_loaded: int = 6,
                 max_sessions: int = 64, session_ttl_s: float = 4 * 3600.0,
                 limits: UploadLimits | None = None, deidentify: bool = False):
        self.deidentify = deidentify
        self.limits = limits or UploadLimits()
        self.workspace = Workspace(cache_dir)
        self.patients = PatientCatalogue(data_path, deidentify=deidentify)
        self.uploads = Uploads(self.workspace.upload_root, self.limits, deidentify=deidentify)
        self.prepared = PreparedCache(self.workspace.evaluators_dir, max_loaded,
                                      scrub=lambda text: self.scrub(text))
        self.sessions = Sessions(session_ttl_s, max_sessions)
        self.scrubber = Scrubber(deidentify, {e.key: e.folder for e in self.patients.entries})
        self._closed = False
        self._owner_pid = os.getpid()  # see close()
        atexit.register(self.close)

    # shorthands read by create_app, the tests and the benches
    @property
    def mode(self) -> str:
        return self.patients.mode

    @property
    def entries(self) -> list[PatientEntry]:
        return self.patients.entries

    @property
    def workdir(self) -> Path:
        return self.workspace.workdir

    @property
    def upload_root(self) -> Path:
        return self.workspace.upload_root

    def default_key(self) -> str | None:
        return self.patients.default_key()

    def scrub(self, value):
        return self.scrubber.scrub(value)

    # -- operations across services ---------------------------------------------------------
    def entry(self, key: str, session: str | None, plan_options=()) -> PatientEntry:
        """The patient behind ``key``, with the user's targets and prescriptions
        ``plan_options`` (:attr:`PatientEntry.plan_options`); uploads are visible to their own
        session only."""
        found = self.patients.find(key) or self.uploads.find(session, key)
        if found is None:
            raise EvaluationError(f"unknown patient '{key}' (expired upload or old link).")
        options = tuple((str(o), str(v)) for o, v in (plan_options or ()))
        return dataclasses.replace(found, plan_options=options) if options else found

    def picker_options(self, session: str | None) -> list[dict]:
        """Options for the patient picker (label/value): the catalogue and the session's
        upload."""
        up = self.uploads.of(session)
        extra = [{"label": up.label, "value": up.key}] if up is not None else []
        return self.patients.options() + extra

    def touch(self, session: str | None) -> None:
        """Mark a session as active; a session unseen for ``session_ttl_s`` loses its
        patient copies, its upload (folder removed) and that upload's evaluator."""
        self.uploads.seen(session)
        for gone in self.sessions.touch(session):
            up = self.uploads.discard(gone, idle_s=self.sessions.ttl_s)
            if up is not None:
                self.prepared.forget(up.key)

    def store_upload(self, session: str, contents, filenames) -> PatientEntry:
        """Validate and store an upload (:meth:`Uploads.store`); the session's previous
        upload goes, with its session copy and its evaluator."""
        entry, replaced = self.uploads.store(session, contents, filenames)
        if replaced is not None:
            self.sessions.close_patient(session, replaced.key)
            self.prepared.forget(replaced.key)
        return entry

    def prepare(self, entry: PatientEntry,
                progress: Callable[[int, int, str], None] | None = None) -> Path:
        """Make sure ``entry`` is prepared on disk (:meth:`PreparedCache.prepare`)."""
        return self.prepared.prepare(entry, progress)

    def patient(self, session: str, key: str, plan_options=()) -> LoadedPatient:
        """The session's prepared patient (with the user's ``plan_options``): LRU hit, else a
        session copy of the unpickled patient, else prepared now."""
        entry = self.entry(key, session, plan_options)

        def open_patient() -> LoadedPatient:
            template = self.prepared.template(entry)
            self.scrubber.learn(entry.key, template.evaluator.case, entry.folder)
            return LoadedPatient(entry, template.evaluator.copy(), template.shared)

        copy_key = f"{key}#{entry.plan_options!r}" if entry.plan_options else key
        return self.sessions.patient(session, copy_key, open_patient)

    def close(self) -> None:
        """Forget every patient and upload and remove the work folder (registered with
        atexit)."""
        if self._closed or os.getpid() != self._owner_pid:
            # a forked server worker (serve's gunicorn workers) exits through atexit too: the
            # work folder, uploads and caches belong to the process that made them
            return
        self._closed = True
        self.sessions.clear()
        self.prepared.clear()
        self.uploads.clear()
        self.workspace.close()
