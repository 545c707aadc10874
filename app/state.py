"""Server-side state of one app instance: patient sources, evaluator cache, uploads, sessions.

One :class:`AppState` is created by :func:`rtplan_assist.app.create_app` and captured by the
callbacks' closures; nothing here lives at module level, so two apps in one process (tests)
never share patients, sessions or uploads.

Caching, and why it looks like this
-----------------------------------
Loading a patient and computing every regimen of every lesion runs in a *background callback*
(``DiskcacheManager``): a forked process, so whatever it computes is lost unless written down.
The job therefore pickles the prepared :class:`~rtplan_assist.evaluation.CaseEvaluator` into
``<cache_dir>/evaluators/<digest>.pkl`` (atomically), keyed by the folder and the size and
mtime of every file in it. The web process unpickles it once per patient (an LRU of
``max_loaded`` patients) and gives each browser session a
:meth:`~rtplan_assist.evaluation.CaseEvaluator.session_copy` of it (shared doses and cached
results, own containers: a few dict copies, not ~0.5 s and ~100 MB of unpickling) in an LRU of
``(session id, patient key) -> LoadedPatient`` (``max_sessions``; measured on the demo
patient: ``benches/bench_app.py``, ``benches/bench_load.py``), so switching screens never
reloads DICOM. Regimens a user adds and the results they bring stay in that session's copy.

The job itself only starts ``python -m rtplan_assist.app.prepare`` and relays its progress:
a forked child of the threaded web server must not launch Numba parallel kernels (see
:mod:`rtplan_assist.app.prepare`). An evaluator is not thread-safe (its caches are plain
dicts), so every use goes through :attr:`LoadedPatient.lock`.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rtplan_assist.deidentify import Identifiers, folder_key, scrub_tree
from rtplan_assist.errors import DicomInputError, EvaluationError, UploadError

from .prepare import read_pickle
from .upload import UploadLimits, save_upload

__all__ = ["AppState", "LoadedPatient", "PatientEntry", "regimen_key"]

def regimen_key(regimen) -> str:
    """The string a regimen is stored under in the browser (its label, ``"50 Gy/5"``)."""
    return regimen.label


@dataclass(frozen=True)
class PatientEntry:
    """A patient the app can open: an opaque key for the browser and a folder on the server."""

    key: str
    label: str
    folder: Path
    owner_session: str | None = None  # uploads belong to the session that uploaded them
    upload_dir: Path | None = None  # the per-upload temporary folder, removed with the session


@dataclass
class LoadedPatient:
    """A prepared evaluator and what the screens need next to it."""

    entry: PatientEntry
    evaluator: object
    recommendation: object
    #: what every session of this patient shares (the CT in HU, read once: ``AppState.ct_hu``)
    shared: dict = field(default_factory=dict, repr=False)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def __post_init__(self) -> None:
        # The recommendation over the catalogue was computed in the preparation job; one
        # over the regimens this session added is computed on demand (recommendation_for).
        # ``evaluate`` asks the evaluator for a recommendation: answer with the one of the
        # prefs of the current call (set by ``choice``, under ``lock``).
        self._by_added: dict[tuple, object] = {(): self.recommendation}
        self._active = self.recommendation
        self.evaluator.recommend = lambda **_: self._active

    @property
    def case(self):
        return self.evaluator.case

    @staticmethod
    def _added(prefs: dict | None) -> tuple:
        added = (prefs or {}).get("added") or {}
        return tuple(sorted((lid, label) for lid, labels in added.items() for label in labels))

    def recommendation_for(self, prefs: dict | None):
        """The joint recommendation over the catalogue *and* the regimens this session added
        (``prefs["added"]``): an added regimen competes like any other. Cached per set of
        added regimens; call under :attr:`lock`."""
        from rtplan_assist.regimens import parse_regimen

        key = self._added(prefs)
        if key not in self._by_added:
            ids = {les.lesion_id for les in self.evaluator.lesions}
            for lid, label in key:
                if lid in ids:
                    self.evaluator.add_regimen(lid, parse_regimen(label))
            self._by_added[key] = type(self.evaluator).recommend(self.evaluator)
        return self._by_added[key]

    def choice(self, prefs: dict | None) -> dict:
        """Lesion id -> Regimen: the recommendation, overridden by the user's choices.

        ``prefs`` is this patient's entry of the browser's ``choices`` store:
        ``{"choice": {lesion_id: label}, "added": {lesion_id: [label, ...]}}``. Added regimens
        are (re-)added to the evaluator, so an evicted and reloaded evaluator knows them, and
        take part in the recommendation (:meth:`recommendation_for`). The evaluator's
        ``recommend`` answers with that recommendation until the next call (hold :attr:`lock`
        across this call and ``evaluate`` for a consistent pair).
        """
        from rtplan_assist.regimens import parse_regimen

        prefs = prefs or {}
        ids = {les.lesion_id for les in self.evaluator.lesions}
        with self.lock:
            self._active = self.recommendation_for(prefs)
            choice = dict(self._active.choice)
            for lid, label in (prefs.get("choice") or {}).items():
                if lid in ids:
                    regimen = parse_regimen(label)
                    self.evaluator.add_regimen(lid, regimen)
                    choice[lid] = regimen
        return choice


def _code_signature() -> str:
    """Digest of the evaluation code and tables (name, size, mtime of every source file).

    Part of the cache key, so an upgraded engine never reads an evaluator pickled by an old one.
    """
    import rtplan_assist
    from rtplan_assist import constraint_tables, kernels

    h = hashlib.sha256(rtplan_assist.__version__.encode())
    for package in (rtplan_assist, kernels, constraint_tables):
        root = Path(package.__file__).parent
        for p in sorted(root.rglob("*")):
            if p.suffix in (".py", ".csv", ".yaml") and "__pycache__" not in p.parts:
                st = p.stat()
                h.update(f"{p.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _folder_signature(folder: Path) -> str:
    """Digest of the code signature, the folder path and the name, size and mtime of every file
    below it."""
    h = hashlib.sha256(_code_signature().encode())
    h.update(str(folder.resolve()).encode())
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            p = Path(root) / name
            try:
                st = p.stat()
            except OSError:
                continue
            h.update(f"{p.relative_to(folder)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:32]


class AppState:
    """Per-app state; see the module docstring.

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
        LRU bound on (session, patient) copies; a copy shares the patient's data, so it costs
        only the results that session added.
    session_ttl_s : float
        A session unseen for this long loses its evaluators and its upload folder.
    limits : UploadLimits
    deidentify : bool
        Show and export patients by their key (``p-`` + 8 hex digits of the SHA-256 of the
        PatientID) and withhold names and folders (:meth:`scrub`; ``serve --deidentify``).
    """

    deidentify = False

    def __init__(self, data_path=None, *, cache_dir=None, max_loaded: int = 6,
                 max_sessions: int = 64, session_ttl_s: float = 4 * 3600.0,
                 limits: UploadLimits | None = None, deidentify: bool = False):
        self.workdir = Path(tempfile.mkdtemp(prefix="rtplan-assist-app-"))
        self.cache_dir = Path(cache_dir) if cache_dir else self.workdir / "cache"
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        (self.cache_dir / "evaluators").mkdir(exist_ok=True)
        self.upload_root = self.workdir / "uploads"
        self.upload_root.mkdir()
        self.max_loaded = max_loaded
        self.max_sessions = max_sessions
        self.session_ttl_s = session_ttl_s
        self.limits = limits or UploadLimits()
        self._lock = threading.RLock()
        self._loaded: OrderedDict[tuple[str, str], LoadedPatient] = OrderedDict()
        self._loading: dict[tuple[str, str], threading.Lock] = {}
        # one unpickled evaluator per prepared patient, copied for each session (_template)
        self._templates: OrderedDict[Path, tuple] = OrderedDict()
        self._template_locks: dict[Path, threading.Lock] = {}
        self._template_keys: dict[Path, str] = {}
        self._uploads: dict[str, PatientEntry] = {}
        self._seen: dict[str, float] = {}
        self._closed = False
        self.deidentify = deidentify
        self.mode, self.entries = self._resolve(data_path, deidentify)
        # what scrub() withholds: every patient folder now, each patient's ID and name once
        # loaded (Identifiers by patient key)
        self._identifiers: dict[str, Identifiers] = {
            e.key: Identifiers.of(None, None, e.folder) for e in self.entries}
        atexit.register(self.close)

    # -- patient sources ------------------------------------------------------------------
    @staticmethod
    def _resolve(data_path, deidentify: bool = False) -> tuple[str, list[PatientEntry]]:
        if data_path is None:
            from rtplan_assist.demo import demo_case_folder

            folder = demo_case_folder()
            return "demo", [PatientEntry("demo", "Demo patient (synthetic)", folder)]
        from rtplan_assist.dicom import find_patient_folders

        root = Path(data_path).expanduser()
        if not root.is_dir():
            raise DicomInputError("no such folder.", path=root)
        folders = find_patient_folders(root)
        if not folders:
            raise DicomInputError(
                "no DICOM RT files (RTSTRUCT, RTPLAN, RTDOSE) found below this folder.",
                path=root,
            )
        def label(f: Path) -> str:
            rel = f.relative_to(root).as_posix() if f != root else f.name
            # folder names are often patient IDs or names
            return f"Patient folder {folder_key(rel)}" if deidentify else (rel or str(f))

        if len(folders) == 1:
            return "folder", [PatientEntry("p0", label(folders[0]), folders[0])]
        return "root", [PatientEntry(f"p{i}", label(f), f) for i, f in enumerate(folders)]

    def default_key(self) -> str | None:
        """The patient opened without asking (demo or single folder); None for a data root."""
        return self.entries[0].key if self.mode in ("demo", "folder") else None

    def entry(self, key: str, session: str | None) -> PatientEntry:
        """The patient behind ``key``; uploads are visible to their own session only."""
        for e in self.entries:
            if e.key == key:
                return e
        with self._lock:
            up = self._uploads.get(session or "")
        if up is not None and up.key == key:
            return up
        raise EvaluationError(f"unknown patient '{key}' (expired upload or old link).")

    def picker_options(self, session: str | None) -> list[dict]:
        """Options for the patient picker (label/value)."""
        opts = [{"label": e.label, "value": e.key} for e in self.entries]
        with self._lock:
            up = self._uploads.get(session or "")
        if up is not None:
            opts.append({"label": up.label, "value": up.key})
        return opts

    # -- sessions and uploads ---------------------------------------------------------------
    def touch(self, session: str | None) -> None:
        """Mark a session as active and drop sessions unseen for ``session_ttl_s``."""
        now = time.monotonic()
        with self._lock:
            if session:
                self._seen[session] = now
            expired = [s for s, t in self._seen.items() if now - t > self.session_ttl_s]
            for s in expired:
                self._forget(s)

    def _forget(self, session: str) -> None:
        self._seen.pop(session, None)
        for k in [k for k in self._loaded if k[0] == session]:
            del self._loaded[k]
        up = self._uploads.pop(session, None)
        if up is not None:
            self._drop_templates(up.key)
            if up.upload_dir is not None:
                shutil.rmtree(up.upload_dir, ignore_errors=True)

    def _drop_templates(self, key: str) -> None:
        """Forget the unpickled evaluators of patient ``key`` (an upload whose session ended)."""
        with self._lock:
            for path in [p for p, k in self._template_keys.items() if k == key]:
                self._templates.pop(path, None)
                self._template_keys.pop(path, None)

    def store_upload(self, session: str, contents, filenames) -> PatientEntry:
        """Validate and store an upload in a fresh folder; replaces the session's last upload.

        Raises :class:`UploadError` (the folder is removed again) when the upload is refused
        or holds no DICOM RT patient.
        """
        if not session:
            raise UploadError("the browser session is not ready yet; try again.")
        folder = Path(tempfile.mkdtemp(prefix="upload-", dir=self.upload_root))
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
            old = self._uploads.pop(session, None)
            self._uploads[session] = entry
            if old is not None:
                for k in [k for k in self._loaded if k == (session, old.key)]:
                    del self._loaded[k]
        if old is not None:
            self._drop_templates(old.key)
            if old.upload_dir is not None:
                shutil.rmtree(old.upload_dir, ignore_errors=True)
        return entry

    # -- evaluators -----------------------------------------------------------------------
    def pickle_path(self, entry: PatientEntry) -> Path:
        """Where the prepared evaluator of ``entry`` is cached (keyed by the folder content)."""
        return self.cache_dir / "evaluators" / f"{_folder_signature(entry.folder)}.pkl"

    def prepare(self, entry: PatientEntry,
                progress: Callable[[int, int, str], None] | None = None) -> Path:
        """Make sure the pickle of ``entry`` exists; compute it in a fresh interpreter if not.

        Called from the background callback (a forked process). Progress lines of
        :mod:`rtplan_assist.app.prepare` are passed on to ``progress(i, n, text)``.

        Raises
        ------
        EvaluationError
            The preparation refused the patient (its message) or crashed (the last lines).
        """
        path = self.pickle_path(entry)
        # One preparation per patient at a time, across threads and the background jobs'
        # processes: 20 sessions opening a patient whose cache is gone (new code, cleared
        # cache) must not start 20 interpreters; the others wait and reuse its pickle.
        with _file_lock(path.with_name(path.name + ".lock")):
            return self._prepare_locked(entry, path, progress)

    def _prepare_locked(self, entry: PatientEntry, path: Path, progress) -> Path:
        if path.is_file():
            if progress:
                progress(1, 1, "prepared earlier: reusing the cached evaluation")
            return path
        cmd = [sys.executable, "-m", "rtplan_assist.app.prepare", str(entry.folder), str(path)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                bufsize=1)
        error = ""
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("PROGRESS ") and progress:
                _, i, n, text = (line.rstrip("\n").split(" ", 3) + [""])[:4]
                progress(int(i), int(n), text)
            elif line.startswith("ERROR "):
                error = line[6:].strip()
        stderr = proc.stderr.read() if proc.stderr else ""
        code = proc.wait()
        if code != 0 or not path.is_file():
            tail = " ".join(stderr.strip().splitlines()[-3:])
            raise EvaluationError(error or f"preparing the patient failed (exit {code}): {tail}")
        return path

    def patient(self, session: str, key: str) -> LoadedPatient:
        """The session's prepared patient: LRU hit, else the pickle, else prepared now."""
        entry = self.entry(key, session)
        cache_key = (session, key)
        with self._lock:
            hit = self._loaded.get(cache_key)
            if hit is not None:
                self._loaded.move_to_end(cache_key)
                return hit
            load_lock = self._loading.setdefault(cache_key, threading.Lock())
        with load_lock:
            with self._lock:  # another thread may have loaded it while this one waited
                hit = self._loaded.get(cache_key)
                if hit is not None:
                    return hit
            template, recommendation, shared = self._template(entry)
            loaded = LoadedPatient(entry, template.session_copy(), recommendation, shared)
            with self._lock:
                self._loaded[cache_key] = loaded
                self._loading.pop(cache_key, None)
                while len(self._loaded) > self.max_sessions:
                    self._loaded.popitem(last=False)
        return loaded

    def _template(self, entry: PatientEntry):
        """``(evaluator, recommendation, shared)`` of a patient, unpickled once for every session
        (each gets :meth:`~rtplan_assist.evaluation.CaseEvaluator.session_copy` of it: a few
        dict copies instead of ~0.5 s and ~100 MB). Kept for the ``max_loaded`` patients used
        last; prepared first when its pickle is missing."""
        path = self.pickle_path(entry)
        with self._lock:
            hit = self._templates.get(path)
            if hit is not None:
                self._templates.move_to_end(path)
                return hit
            lock = self._template_locks.setdefault(path, threading.Lock())
        with lock:
            with self._lock:
                hit = self._templates.get(path)
            if hit is not None:
                return hit
            prepared = read_pickle(path) if path.is_file() else None
            if prepared is None:
                self.prepare(entry)
                prepared = read_pickle(path)
                if prepared is None:
                    raise EvaluationError(f"the prepared evaluation {path.name} is unreadable")
            evaluator, recommendation = prepared
            # Rebuild the lesion doses on the composite grid now (dropped from the pickle to
            # keep it small): every session copy shares them, and the first regimen change
            # does not pay for it.
            evaluator.composite_eqd2(recommendation.choice)
            with self._lock:
                self._identifiers[entry.key] = Identifiers.of_case(evaluator.case, entry.folder)
                self._templates[path] = (evaluator, recommendation, {})
                self._template_keys[path] = entry.key
                while len(self._templates) > self.max_loaded:
                    gone, _ = self._templates.popitem(last=False)
                    self._template_keys.pop(gone, None)
                return self._templates[path]

    def ct_hu(self, loaded: LoadedPatient) -> np.ndarray | None:
        """CT in HU (float32, [z, y, x]) of a loaded patient, read once; None without CT."""
        case = loaded.case
        if case.ct is None:
            return None
        shared = loaded.shared
        with self._lock:
            lock = shared.setdefault("ct_lock", threading.Lock())
        with lock:
            if shared.get("ct_hu") is None:
                from rtplan_assist.dicom import load_ct_pixels

                shared["ct_hu"] = load_ct_pixels(case.ct)
        return shared["ct_hu"]

    # -- shutdown ---------------------------------------------------------------------------
    def scrub(self, value):
        """``value`` with every patient identifier this app knows withheld, when the app
        de-identifies (else ``value`` unchanged): IDs → their key, names and folder names →
        ``(withheld)``, folder paths → ``<patient folder>`` (:mod:`rtplan_assist.deidentify`).

        Walks strings, lists, tuples, dicts (values) and Dash components (every property but
        ``id``, in place); numbers, arrays and ``no_update`` pass. Applied to every answer of
        the app's callbacks, so a screen added later is covered too.
        """
        if not self.deidentify:
            return value
        with self._lock:
            rules = list(self._identifiers.values())
        return _scrub_output(value, rules)

    def close(self) -> None:
        """Remove uploads and the temporary work folder (registered with atexit)."""
        if self._closed:
            return
        self._closed = True
        with self._lock:
            self._loaded.clear()
            self._templates.clear()
            self._uploads.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)



def _scrub_output(value, rules: list[Identifiers]):
    from dash.development.base_component import Component

    def scrub(text: str) -> str:
        for ids in rules:
            text = ids.scrub(text)
        return text

    def component(item, walk):
        # a Dash component: every property but its id, in place (unset ones stay unset)
        if isinstance(item, Component):
            for prop in item._prop_names:
                current = getattr(item, prop, None)
                if prop != "id" and isinstance(current, str | list | tuple | dict | Component):
                    setattr(item, prop, walk(current))
        return item

    return scrub_tree(value, scrub, keys=False, other=component)


@contextmanager
def _file_lock(path: Path):
    """An exclusive advisory lock on ``path`` (created) for the ``with`` body (POSIX ``flock``;
    without ``fcntl`` no lock is taken)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
