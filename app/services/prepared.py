"""Prepared evaluations: pickled on disk by a preparation job, unpickled once per patient.

Loading a patient and computing every regimen of every lesion runs in a *background callback*
(``DiskcacheManager``): a forked process, so whatever it computes is lost unless written down.
The job therefore has ``python -m rtplan_assist.app.prepare`` pickle the prepared
:class:`~rtplan_assist.evaluation.CaseEvaluator` into ``<cache_dir>/evaluators/<digest>.pkl``
(atomically), keyed by the code, the folder and the size and mtime of every file in it, and
relays its progress. A forked child of the threaded web server must not launch Numba parallel
kernels (see :mod:`rtplan_assist.app.prepare`), hence the fresh interpreter.

The web process unpickles each prepared patient once (an LRU of ``max_loaded`` patients:
:meth:`PreparedCache.template`); every browser session then works on a
:meth:`~rtplan_assist.evaluation.CaseEvaluator.session_copy` of it (:mod:`.sessions`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from rtplan_assist.errors import EvaluationError

from ..prepare import read_pickle
from .lru import OnceLRU
from .patients import PatientEntry
from .shared import PatientShared

__all__ = ["PlanOptionsNeeded", "Prepared", "PreparedCache"]


class PlanOptionsNeeded(EvaluationError):
    """The patient gives no lesion; ``form`` (:func:`rtplan_assist.app.prepare.plan_form`)
    lists its plans, why each is not a lesion, and the structures to pick targets from."""

    def __init__(self, message: str, form: dict):
        super().__init__(message)
        self.form = form


@dataclass
class Prepared:
    """One unpickled patient, shared by every session that opens it.

    ``shared`` holds what the sessions compute once for all (the CT in HU, dose grids of the
    dose view: :class:`~.shared.PatientShared`).
    """

    key: str  # the patient's key (PatientEntry.key)
    evaluator: object
    recommendation: object
    shared: PatientShared = field(default_factory=PatientShared, repr=False)


class PreparedCache:
    """Pickles of prepared patients in ``evaluators_dir`` and the ``max_loaded`` unpickled last.

    Parameters
    ----------
    evaluators_dir : Path
    max_loaded : int
        LRU bound on unpickled patients held in memory (each holds its dose grids).
    """

    def __init__(self, evaluators_dir: Path, max_loaded: int = 6,
                 scrub: Callable[[str], str] | None = None):
        self.evaluators_dir = Path(evaluators_dir)
        #: withholds identifiers from what is logged (``serve --deidentify``)
        self.scrub = scrub or (lambda text: text)
        self._templates = OnceLRU(max_loaded)  # pickle path -> Prepared

    @property
    def max_loaded(self) -> int:
        return self._templates.max_size

    @max_loaded.setter
    def max_loaded(self, value: int) -> None:
        self._templates.max_size = value

    def __len__(self) -> int:
        return len(self._templates)

    def pickle_path(self, entry: PatientEntry) -> Path:
        """Where the prepared evaluator of ``entry`` is cached (keyed by the folder content and
        the targets and prescriptions given by the user)."""
        digest = _folder_signature(entry.folder)
        options = getattr(entry, "plan_options", ())
        if options:
            digest = hashlib.sha256(repr((digest, sorted(options))).encode()).hexdigest()[:32]
        return self.evaluators_dir / f"{digest}.pkl"

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
        for option, value in getattr(entry, "plan_options", ()):
            cmd += [option, value]
        # stderr goes to a file, not a pipe: a job that writes more than a pipe holds (pydicom
        # warnings of a 700-slice CT) while we read stdout to its end would block both
        # processes, and the per-patient lock with them (every session opening the patient).
        with tempfile.TemporaryFile() as errfile:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errfile, text=True,
                                    bufsize=1)
            error = ""
            form = None
            assert proc.stdout is not None
            for line in proc.stdout:
                if line.startswith("PROGRESS ") and progress:
                    _, i, n, text = (line.rstrip("\n").split(" ", 3) + [""])[:4]
                    progress(int(i), int(n), text)
                elif line.startswith("PLANS "):
                    form = json.loads(line[6:])
                elif line.startswith("ERROR "):
                    error = line[6:].strip()
            code = proc.wait()
            errfile.seek(max(0, os.fstat(errfile.fileno()).st_size - 4096))
            stderr = errfile.read().decode("utf-8", "replace")
        if code != 0 or not path.is_file():
            if error and form:  # no lesion: the app asks for targets and prescriptions
                raise PlanOptionsNeeded(error, form)
            if error:  # the job's own one-line refusal (a typed error)
                raise EvaluationError(error)
            # a crash: its traceback goes to the server log (scrubbed of identifiers under
            # --deidentify), never into the page
            logging.getLogger("rtplan_assist.app").error(
                "preparing patient %s failed (exit %s); the end of its stderr:\n%s",
                entry.key, code, self.scrub(stderr.strip()))
            raise EvaluationError(
                f"preparing the patient failed (exit {code}): an internal error, the details "
                "are in the server log.")
        return path

    def template(self, entry: PatientEntry) -> Prepared:
        """The unpickled patient of ``entry``, read once for every session (each gets a
        :meth:`~rtplan_assist.evaluation.CaseEvaluator.session_copy` of it: a few dict copies
        instead of ~0.5 s and ~100 MB). Kept for the ``max_loaded`` patients used last;
        prepared first when its pickle is missing."""
        path = self.pickle_path(entry)

        def unpickle() -> Prepared:
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
            return Prepared(entry.key, evaluator, recommendation)

        return self._templates.get(path, unpickle)

    def forget(self, key: str) -> None:
        """Drop the unpickled patient ``key`` (an upload replaced or whose session ended)."""
        self._templates.discard(lambda _path, prepared: prepared.key != key)

    def clear(self) -> None:
        self._templates.clear()


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
