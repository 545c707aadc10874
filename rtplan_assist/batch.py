"""Batch evaluation of every patient folder under a root, resumable, on a pool or Dask.

One task per patient folder. A task gets *paths* (never arrays), loads the case, evaluates
every lesion at its planned regimen (plus the options of a regimen file), writes that
patient's report and returns plain dicts: tidy rows, a summary row, the result as JSON.
The driver collects the results as they complete, stores each patient's record atomically
in ``OUT/patients/``, and at the end writes the aggregate files atomically:

``metrics.csv``
    One row per patient, lesion, regimen, structure and metric (the engine's tidy columns,
    prefixed by ``folder``, then ``planned``/``recommended``/``chosen`` flags as in
    ``evaluate --format csv``; numbers to 6 significant digits). A patient that could not be evaluated has one row with
    ``status = error`` and the reason.
``summary.csv``
    One row per patient folder: status (``evaluated``/``error``), verdict, failing mandatory
    constraints, report file, whether the record was reused.
``results.json``
    Batch information and the full result of each patient (or its error).
``manifest.json``
    Folder → input fingerprint and record file, for humans and other tools.
``reports/<folder>.pdf``
    The MDT report of each evaluated patient (``--report-format html`` for HTML).

CSV cells that start with ``=``, ``+``, ``-``, ``@``, ``|``, ``%``, a tab or a line break and
are not a number (an ROI named ``=HYPERLINK(...)``) are written with a leading ``'`` so that a
spreadsheet shows them as text instead of running them (:func:`rtplan_assist.escape.csv_cell`).

Patient folders (:func:`patient_folders`): each direct sub-folder of ROOT is one patient
(split further only when it holds several patients in sub-folders of its own); a sub-folder
that cannot be read, or holds a dangling link, is an error row, never left out.

De-identified batches (``deidentify=True``, ``batch --deidentify``)
-------------------------------------------------------------------
Every output names a patient folder by its folder key (``f-`` + 12 hex digits,
:func:`rtplan_assist.deidentify.folder_key` of the path relative to the root: the ``folder``
column, record and report file names, the progress bar) and a patient by its key (``p-`` + 8
hex, the ``patient_id`` column); results, reports and error reasons are de-identified
(:func:`rtplan_assist.deidentify.deidentify_result`; an error names the file inside
``<patient folder>``) and ``results.json`` withholds the root. ``identity.json`` in the output
folder records which kind of batch it holds: a run of the other kind into the same folder is
refused, so identified and de-identified rows, records and reports are never mixed (the flag
is part of the fingerprint as well).

Resuming
--------
Each evaluated patient's record carries a fingerprint of its inputs: SHA-256 over the sorted list of
(relative path, size, mtime_ns) of every file under the patient folder, plus the batch
options (constraint tables, regimen file content, report format, de-identification,
rtplan-assist version). A
re-run reuses every record whose fingerprint is unchanged and recomputes the others (error
rows are always retried: they cost little and their cause may have been the environment), so an
interrupted batch resumes where it stopped, without duplicate or lost rows (records are
whole files renamed into place; aggregates are rebuilt from the records of the folders
present now). The fingerprint is the file *metadata*, not the content: it costs one ``stat``
per file, and a file rewritten in place with identical size within the filesystem's
timestamp resolution would be missed (copying or touching a file always changes mtime_ns).

Exit codes (:func:`exit_code`)
------------------------------
0  every patient was evaluated and no mandatory constraint failed (goals may be missed);
1  every patient was evaluated and at least one mandatory constraint failed;
2  at least one patient could not be evaluated: an error row (unreadable or incomplete
   data), or the verdict ``not evaluable`` (a mandatory constraint of a structure present in
   the case had no value). This wins over 1: an unevaluated patient may hide a failure, so
   the batch is not a complete answer. Also bad usage or input (no folder, --out in ROOT);
70 internal error; 130 interrupted (records finished so far are kept; re-run to resume).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import __version__
from .deidentify import WITHHELD, Identifiers, deidentify_result, folder_key
from .errors import DicomInputError, EvaluationError, RtplanAssistError
from .escape import csv_cell
from .outputs import atomic_write_text

__all__ = [
    "EXIT_ERRORS",
    "EXIT_FAIL",
    "EXIT_OK",
    "SUMMARY_COLUMNS",
    "BatchSummary",
    "evaluate_patient",
    "exit_code",
    "folder_fingerprint",
    "run_batch",
]

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_ERRORS = 2

RECORD_VERSION = 1
#: In the output folder: whether it holds an identified or a de-identified batch.
IDENTITY_FILE = "identity.json"

SUMMARY_COLUMNS = (
    "folder", "patient_id", "status", "verdict", "n_lesions", "failing_constraints",
    "goals_missed", "not_evaluable", "error", "report", "reused", "seconds",
)

#: Tidy columns used for error rows and when the engine is unavailable to say its own.
_FALLBACK_TIDY = (
    "patient_id", "lesion_id", "regimen", "structure", "organ", "role", "metric", "value",
    "unit", "kind", "model", "alpha_beta_gy", "comparator", "limit", "goal", "status",
    "reason", "source", "constraint_fractions", "converted_from_fractions", "priority",
)


#: metrics.csv's last columns: the row's regimen is the lesion's planned / recommended /
#: chosen one (``true``/``false``), as in ``evaluate --format csv``
#: (:data:`rtplan_assist.evaluation.CSV_FLAG_COLUMNS`).
FLAG_COLUMNS = ("planned", "recommended", "chosen")


def tidy_columns() -> tuple[str, ...]:
    """``folder`` followed by the engine's ``TIDY_COLUMNS``."""
    try:
        from .evaluation import TIDY_COLUMNS

        columns = tuple(TIDY_COLUMNS)
    except ImportError:  # pragma: no cover - engine absent from a partial build
        columns = _FALLBACK_TIDY
    return ("folder", *[c for c in columns if c != "folder"])


# =============================================================================================
# Inputs
# =============================================================================================


def _is_within(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents


def patient_folders(root: Path) -> list[Path]:
    """Patient folders under ``root``, grouped by folder first, then by identity inside it.

    Each direct sub-folder of ``root`` is one patient unless it holds several patients' RT
    files in sub-folders of its own, which :func:`find_patient_folders` then splits. Two
    sibling folders with the same PatientID stay two rows (a damaged copy cannot block the
    good one), and a sub-folder with files but no identifiable patient, or one that cannot be
    read, is returned as well so that it becomes an error row instead of disappearing. When
    ``root`` itself holds RT files, :func:`find_patient_folders` decides for the whole root
    (a root that is one patient's folder).
    """
    from .dicom import find_patient_folders

    children, direct_files = [], False
    for entry in _scandir(root):
        if entry.name.startswith("."):
            continue
        if _entry_is_dir(entry):
            children.append(Path(entry.path))
        else:
            direct_files = True
    if direct_files and _holds_rt_files(root):
        found = [Path(p) for p in find_patient_folders(root)]
        return sorted(set(found) | {c for c in children if not _covered(c, found)
                                    and _has_files_or_unreadable(c)})
    folders: set[Path] = set()
    for child in sorted(children):
        try:
            found = [Path(p) for p in find_patient_folders(child)]
        except (OSError, RtplanAssistError):
            found = []
        if len(found) == 1 or not found:
            if found or _has_files_or_unreadable(child):
                folders.add(child)  # one patient (or an error row for the whole folder)
            continue
        folders.update(found)  # several patients inside: split by identity
        for sub in (p for p in child.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if not _covered(sub, found) and _has_files_or_unreadable(sub):
                folders.add(sub)
    return sorted(folders)


def _scandir(folder: Path) -> list:
    try:
        with os.scandir(folder) as entries:
            return list(entries)
    except OSError as exc:
        raise RtplanAssistError(f"cannot list ROOT: {exc.strerror or exc}.", path=folder) from exc


def _entry_is_dir(entry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _covered(folder: Path, found: list[Path]) -> bool:
    return any(_is_within(f, folder) or _is_within(folder, f) for f in found)


def _holds_rt_files(folder: Path) -> bool:
    from .dicom._index import RT_MODALITIES, index_files

    files = [Path(e.path) for e in _scandir(folder) if not _entry_is_dir(e)]
    index = index_files(files, folder, light=True)
    return any(f.modality in RT_MODALITIES for f in index.files)


def _has_files_or_unreadable(folder: Path) -> bool:
    """True when anything under ``folder`` is a file (a dangling link counts) or when a part
    of it cannot be listed."""
    failed = []
    for _, _, filenames in os.walk(folder, onerror=failed.append):
        if filenames:
            return True
    return bool(failed)


def unreadable_parts(folder: Path) -> list[str]:
    """One line per sub-folder or file under ``folder`` that cannot be listed, read or
    followed (permission denied, dangling link), relative to ``folder``."""
    problems: list[str] = []

    def note(exc: OSError) -> None:
        where = Path(exc.filename or folder)
        rel = where.relative_to(folder).as_posix() if _is_within(where, folder) else where.name
        problems.append(f"{rel or '.'}: {exc.strerror or type(exc).__name__}")

    for dirpath, _, filenames in os.walk(folder, onerror=note):
        for name in filenames:
            path = Path(dirpath) / name
            try:
                if not os.access(path, os.R_OK) or not path.exists():
                    raise OSError(13 if path.exists() else 2,
                                  "not readable" if path.exists() else "dangling link",
                                  str(path))
            except OSError as exc:
                note(exc)
    return problems


def _files_under(folder: Path, skip: Iterable[Path] = ()) -> list[Path]:
    skip = {Path(s) for s in skip}
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if here / d not in skip)
        out.extend(here / f for f in sorted(filenames))
    return out


def folder_fingerprint(folder: Path, *, skip: Iterable[Path] = (), extra: str = "") -> str:
    """SHA-256 of (relative path, size, mtime_ns) of every file under ``folder``.

    ``skip`` lists sub-folders that are other patients (a patient folder can contain another
    patient's folder when the root itself holds one patient's files). ``extra`` mixes in the
    batch options.
    """
    h = hashlib.sha256()
    h.update(extra.encode())
    for path in _files_under(folder, skip):
        try:
            st = path.stat()
        except OSError:  # a dangling link or an unreadable entry: its own state counts
            try:
                st = path.lstat()
            except OSError:
                h.update(f"{path.relative_to(folder).as_posix()}\0?\n".encode())
                continue
        h.update(f"{path.relative_to(folder).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _file_digest(path: str | os.PathLike | None) -> str:
    if path is None:
        return "-"
    path = Path(path)
    if path.is_dir():
        return folder_fingerprint(path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _record_name(rel: str) -> str:
    """File-system-safe, collision-free name for a patient folder's record and report."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", rel).strip("._") or "root"
    return f"{stem[:80]}-{hashlib.sha256(rel.encode()).hexdigest()[:8]}"


# =============================================================================================
# Per-patient task (runs in a worker process; only plain data in and out)
# =============================================================================================


def _limit_numba_threads() -> None:
    """One Numba thread per worker: several patients run in parallel, not one patient's loops.

    Only the calling thread's setting changes: the environment is left alone, because
    changing NUMBA_NUM_THREADS after Numba has started its pool makes the next compilation
    in this process fail (a serial batch runs in the caller's process).
    """
    if "numba" in sys.modules:
        try:
            sys.modules["numba"].set_num_threads(1)
        except (ValueError, AttributeError):  # pragma: no cover - numba without threading layer
            pass


def _worker_init(parent_pid: int | None = None) -> None:
    os.environ["NUMBA_NUM_THREADS"] = "1"
    _limit_numba_threads()
    if parent_pid is not None:
        _die_with_parent(parent_pid)


def _die_with_parent(parent_pid: int) -> None:
    """End this worker when the batch process that started it is gone (SIGTERM, SIGKILL,
    a crash): Linux's PR_SET_PDEATHSIG where available, and a watchdog thread that checks
    the parent once a second everywhere (a worker must never outlive its batch)."""
    import signal
    import threading

    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # pragma: no cover - no libc prctl
            pass
    if os.getppid() != parent_pid:  # the parent died before the hook was set
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="rtplan-assist parent watchdog", daemon=True).start()


def _json_safe(value):
    """NaN/inf → None, numpy scalars → Python numbers, for JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        return _json_safe(value.item())
    return value


def _verdict_parts(result) -> tuple[str, list[str], int, int]:
    """(verdict, failing mandatory constraints, goals missed, not evaluable) of the choice."""
    failing, goals, not_evaluable = [], 0, 0
    for row in list(result.chosen_rows()) + list(result.composite_rows):
        if row.status == "fail" and row.priority == "mandatory":
            where = "composite EQD2" if row.lesion_id == "composite" else row.lesion_id
            op = {"<=": ">", "<": ">=", ">=": "<", ">": "<="}.get(row.comparator, "vs")
            failing.append(f"{where} {row.structure} {row.metric} {row.value:.2f} {op} "
                           f"{row.limit:.2f} {row.unit}")
        elif row.status == "goal missed":
            goals += 1
        elif row.status == "not evaluable" and row.structure:
            not_evaluable += 1
    return str(result.verdict()), list(dict.fromkeys(failing)), goals, not_evaluable


def evaluate_patient(task: dict) -> dict:
    """Evaluate one patient folder; the default task of :func:`run_batch`.

    Parameters
    ----------
    task : dict
        ``folder`` (absolute path), ``rel`` (path relative to the root), ``tables``
        (folder or None), ``regimens_file`` (path or None), ``report_path`` (path or None),
        ``report_format`` (``pdf``/``html``); optional ``deidentify`` (bool), ``quality``
        (bool: plan quality indices as tidy rows of role ``quality``, in the result JSON and
        the report; :mod:`rtplan_assist.quality`, report-only) and ``label``
        (what the outputs call the folder; default ``rel``, the folder key when
        de-identified).

    Returns
    -------
    dict
        ``status`` ``evaluated`` with ``summary`` (a row of :data:`SUMMARY_COLUMNS`), ``rows``
        (tidy dicts) and ``result`` (JSON-ready dict); or ``status`` ``error`` with ``error``
        (one line). Never raises for a patient's data problem. With ``deidentify``, every
        part is de-identified (patient key, folder label, scrubbed texts, report).
    """
    _limit_numba_threads()
    start = time.perf_counter()
    deidentify = bool(task.get("deidentify"))
    label = task.get("label") or task["rel"]
    case = None
    try:
        from .dicom import load_case
        from .evaluation import result_rows_tidy, result_to_dict
        from .workflow import evaluate_folder

        problems = unreadable_parts(Path(task["folder"]))
        if problems:
            raise DicomInputError(
                f"{len(problems)} part(s) of this folder cannot be read ("
                + "; ".join(problems[:3]) + (" ..." if len(problems) > 3 else "")
                + "): a file of the patient may be missing. Fix the permissions or links.",
                path=task["folder"],
            )
        case = load_case(task["folder"])
        if case.structure_set_path is None:
            raise EvaluationError(
                "no RTSTRUCT (structure set) in this folder: targets and organs at risk are "
                "needed to evaluate the plans; add the structure set the plans were made on.",
                path=task["folder"],
            )
        # planned regimens only unless a regimen file is given: no catalogue search in a
        # batch without options (the evaluation adds each lesion's planned regimen)
        evaluator = evaluate_folder(
            case,
            tables_folder=task.get("tables") or None,
            regimens=None if task.get("regimens_file") else "planned",
            regimens_file=task.get("regimens_file") or None,
            end_caps=task.get("end_caps") or "half",
        )
        result = evaluator.result("planned")
        report = ""
        if task.get("report_path"):
            from .report import write_report

            write_report(result, evaluator, task["report_path"],
                         fmt=task.get("report_format", "pdf"), deidentify=deidentify,
                         quality=bool(task.get("quality")))
            report = task["report_rel"]
        if deidentify:
            result = deidentify_result(result, Identifiers.of_case(case, task["folder"]))
        rows = [dict(r) for r in result_rows_tidy(result)]
        result_json = result_to_dict(result)
        if task.get("quality"):
            from .quality import QUALITY_NOTE, lesion_quality, quality_rows

            qualities = lesion_quality(evaluator)
            names = {les.lesion_id: les.target.name for les in result.lesions}
            rows += [dict(r) for r in result_rows_tidy(
                replace(result, rows=quality_rows(qualities, result), composite_rows=[]))]
            result_json["quality_note"] = QUALITY_NOTE
            result_json["quality"] = [dict(q.to_dict(), target=names.get(q.lesion_id, q.target))
                                      for q in qualities]
        verdict, failing, goals, not_evaluable = _verdict_parts(result)
        summary = {
            "folder": label, "patient_id": result.patient_id, "status": "evaluated",
            "verdict": verdict, "n_lesions": len(evaluator.lesions),
            "failing_constraints": "; ".join(failing), "goals_missed": goals,
            "not_evaluable": not_evaluable, "error": "", "report": report,
        }
        return {
            "status": "evaluated", "folder": label, "summary": summary,
            "rows": [_json_safe({"folder": label, **r}) for r in rows],
            "result": _json_safe(result_json),
            "seconds": round(time.perf_counter() - start, 3),
        }
    except RtplanAssistError as exc:
        reason = " ".join(str(exc).split())
    except MemoryError:
        reason = "out of memory while evaluating this patient"
    except Exception as exc:  # noqa: BLE001 - one patient's bug must not stop the batch
        reason = f"internal error {type(exc).__name__}: {' '.join(str(exc).split())}"
    patient_id, patient_name = _patient_guess(task["folder"])
    if case is not None:
        patient_id, patient_name = case.patient_id, case.patient_name
    if deidentify:
        ids = Identifiers.of(patient_id, patient_name, task["folder"])
        reason, patient_id = ids.scrub(reason), ids.key
    return _error_record(label, reason, time.perf_counter() - start, patient_id=patient_id)


def _patient_guess(folder: str) -> tuple[str, str]:
    """(PatientID, PatientName) of the folder's readable RT files when they are one patient's
    (for error rows), else ``("", "")``."""
    try:
        from .dicom import list_patients

        patients = list_patients(folder)
    except Exception:  # noqa: BLE001 - best effort for an error row
        return "", ""
    if len(patients) != 1:
        return "", ""
    return patients[0]["patient_id"], patients[0]["patient_name"]


def _error_record(rel: str, reason: str, seconds: float, *, patient_id: str = "") -> dict:
    summary = {c: "" for c in SUMMARY_COLUMNS}
    summary.update(folder=rel, patient_id=patient_id, status="error", error=reason)
    row = {c: "" for c in tidy_columns()}
    row.update(folder=rel, patient_id=patient_id, status="error", reason=reason)
    return {"status": "error", "folder": rel, "summary": summary, "rows": [row],
            "result": None, "error": reason, "seconds": round(seconds, 3)}


# =============================================================================================
# Executors
# =============================================================================================


class SerialExecutor(Executor):
    """Runs each task in the calling process when submitted (``workers=0``: debugging, tests)."""

    def submit(self, fn, /, *args, **kwargs):
        from concurrent.futures import Future

        future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - delivered through the future
            future.set_exception(exc)
        return future


def _make_executor(workers: int | None, scheduler: str | None):
    """(executor, closer, description)."""
    n = workers if workers is not None else (os.cpu_count() or 1)
    if scheduler is None:
        if n == 0:
            return SerialExecutor(), (lambda interrupted=False: None), "serial (in process)"
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn: no fork of a process that already runs Numba/tqdm threads
        pool = ProcessPoolExecutor(max_workers=max(n, 1), initializer=_worker_init,
                                   initargs=(os.getpid(),),
                                   mp_context=multiprocessing.get_context("spawn"))

        def close(interrupted: bool = False) -> None:
            if interrupted:  # Ctrl+C, SIGTERM: end the workers now, not after their patient
                for process in list((getattr(pool, "_processes", None) or {}).values()):
                    process.terminate()
            pool.shutdown(wait=True, cancel_futures=True)

        return pool, close, f"process pool, {max(n, 1)} workers"
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise RtplanAssistError(
            "--scheduler needs Dask distributed: pip install 'rtplan-assist[dask]'"
        ) from exc
    if scheduler == "local":
        cluster = LocalCluster(n_workers=max(n, 1), threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=None,
                               env={"NUMBA_NUM_THREADS": "1"})
        client = Client(cluster)

        def close(interrupted: bool = False):
            client.close()
            cluster.close()

        return client.get_executor(), close, f"Dask LocalCluster, {max(n, 1)} workers"
    try:
        client = Client(scheduler, timeout="20s")
    except OSError as exc:
        raise RtplanAssistError(f"cannot reach the Dask scheduler {scheduler}: {exc}") from exc
    return client.get_executor(), (lambda interrupted=False: client.close()), (
        f"Dask scheduler {scheduler}")


# =============================================================================================
# Driver
# =============================================================================================


@dataclass
class BatchSummary:
    """Outcome of :func:`run_batch`.

    Attributes
    ----------
    out_dir : Path
    n_patients, n_evaluated, n_failed, n_errors, n_reused : int
        Folders found; evaluated; evaluated with a failed mandatory constraint; not
        evaluable (error rows); records reused from a previous run.
    exit_code : int
        See the module docstring.
    seconds : float
    executor : str
    records : list of dict
        Summary rows, in folder order.
    """

    out_dir: Path
    n_patients: int = 0
    n_evaluated: int = 0
    n_failed: int = 0
    n_errors: int = 0
    n_reused: int = 0
    exit_code: int = EXIT_OK
    seconds: float = 0.0
    executor: str = ""
    records: list[dict] = field(default_factory=list)

    def line(self) -> str:
        return (f"{self.n_patients} patients: {self.n_evaluated} evaluated "
                f"({self.n_failed} with a failed constraint), {self.n_errors} not evaluable, "
                f"{self.n_reused} unchanged and reused; {self.seconds:.1f} s on {self.executor}; "
                f"exit {self.exit_code}")


def exit_code(records: Iterable[dict]) -> int:
    """2 if any patient is an error or has the verdict ``not evaluable``, else 1 if any
    verdict is ``fail``, else 0."""
    records = list(records)
    if any(r["summary"]["status"] == "error" or r["summary"].get("verdict") == "not evaluable"
           for r in records):
        return EXIT_ERRORS
    if any(_has_fail(r["summary"]) for r in records):
        return EXIT_FAIL
    return EXIT_OK


def _has_fail(summary: dict) -> bool:
    return summary.get("verdict") == "fail" or bool(summary.get("failing_constraints"))


def _check_out_dir(root: Path, out_dir: Path) -> None:
    if _is_within(out_dir, root):
        raise RtplanAssistError(
            f"--out {out_dir} is inside ROOT {root}; rtplan-assist never writes into the input "
            "tree: choose an output folder outside it."
        )


def _options_key(tables, regimens_file, report_format, deidentify: bool = False,
                 quality: bool = False, end_caps: str = "half") -> str:
    options = {
        "version": __version__, "record": RECORD_VERSION,
        "tables": _file_digest(tables), "regimens": _file_digest(regimens_file),
        "report": report_format,
    }
    if deidentify:  # absent otherwise: identified records of earlier versions stay valid
        options["deidentified"] = True
    if quality:  # likewise: records without quality indices stay valid without it
        options["quality"] = True
    if end_caps != "half":  # likewise: records of the default convention stay valid
        options["end_caps"] = end_caps
    return json.dumps(options, sort_keys=True)


def _check_identity(out_dir: Path, deidentify: bool) -> None:
    """Refuse to mix identified and de-identified results in one output folder; record the
    kind of a new one in :data:`IDENTITY_FILE`.

    An output folder without that file but with patient records comes from an identified
    batch (earlier versions had no ``--deidentify``).
    """
    marker = out_dir / IDENTITY_FILE
    try:
        holds = bool(json.loads(marker.read_text(encoding="utf-8"))["deidentified"])
    except FileNotFoundError:
        holds = False if any((out_dir / "patients").glob("*.json")) else None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RtplanAssistError(f"unreadable ({exc}); it says whether this output folder holds "
                                "a de-identified batch: restore it or use another --out.",
                                path=marker) from exc
    if holds is None:
        atomic_write_text(marker, json.dumps({"deidentified": deidentify}) + "\n")
    elif holds != deidentify:
        held, asked = ("with", "without") if holds else ("without", "with")
        raise RtplanAssistError(
            f"--out {out_dir} holds a batch run {held} --deidentify; a run {asked} it would "
            "mix identified and de-identified rows, records and reports in one folder. "
            "Choose another --out (or empty this one)."
        )


def _load_record(path: Path, fingerprint: str) -> dict | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if record.get("fingerprint") != fingerprint or record.get("record_version") != RECORD_VERSION:
        return None
    if record.get("status") != "evaluated":
        return None  # errors are retried: cheap, and the cause may be the environment
    return record


def run_batch(
    root: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    tables: str | os.PathLike | None = None,
    regimens_file: str | os.PathLike | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool = True,
    report_format: str | None = "pdf",
    deidentify: bool = False,
    task: Callable[[dict], dict] = evaluate_patient,
    quality: bool = False,
    end_caps: str = "half",
    drop_not_evaluable: bool = False,
) -> BatchSummary:
    """Evaluate every patient folder under ``root`` and write the batch outputs to ``out_dir``.

    Parameters
    ----------
    root : folder of patient folders (read only).
    out_dir : output folder; refused when inside ``root``.
    tables : constraint table folder, default the shipped tables.
    regimens_file : CSV of fractionation options (``lesion,total_dose_gy,fractions``).
    workers : int, optional
        Worker processes (default: CPU count); ``0`` runs serially in this process.
    scheduler : {None, "local", "tcp://host:port"}
        ``None``: a local process pool; ``"local"``: a Dask LocalCluster on 127.0.0.1;
        an address: an existing Dask scheduler (workers must see the same paths).
    progress : show a tqdm bar on stderr.
    quality : bool
        Add the per-lesion plan quality indices (``evaluate --quality``; report-only).
    end_caps : {"half", "none"}
        How the first and last contour planes are closed (``evaluate --end-caps``).
    report_format : ``"pdf"``, ``"html"`` or ``None`` (no reports).
    deidentify : bool
        Folder keys and patient keys instead of folder names and PatientIDs, de-identified
        results, reports and error reasons (see the module docstring). Refused
        (:class:`~rtplan_assist.errors.RtplanAssistError`) when ``out_dir`` holds a batch of
        the other kind.
    task : the per-patient function (picklable; default :func:`evaluate_patient`).
    drop_not_evaluable : bool
        metrics.csv leaves out evaluated rows of status ``not evaluable`` (as ``evaluate
        --drop-not-evaluable``; error rows, verdicts, summary and records keep everything).

    Returns
    -------
    BatchSummary
    """
    from tqdm import tqdm

    start = time.perf_counter()
    root = Path(root).resolve()
    out_dir = Path(out_dir).resolve()
    if not root.is_dir():
        raise RtplanAssistError(f"{root}: no such folder.")
    _check_out_dir(root, out_dir)
    if report_format not in (None, "pdf", "html"):
        raise RtplanAssistError(f"report format {report_format!r}: use pdf or html")
    if end_caps not in ("half", "none"):
        raise RtplanAssistError(f"end caps must be 'half' or 'none', got {end_caps!r}")
    options = _options_key(tables, regimens_file, report_format, deidentify, quality, end_caps)
    folders = patient_folders(root)
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_identity(out_dir, deidentify)
    (out_dir / "patients").mkdir(parents=True, exist_ok=True)

    records: dict[str, dict] = {}
    todo: list[dict] = []
    names: set[str] = set()
    for folder in folders:
        rel = folder.relative_to(root).as_posix() if folder != root else "."
        nested = [f for f in folders if f != folder and folder in f.parents]
        fingerprint = folder_fingerprint(folder, skip=nested, extra=options)
        # de-identified: the folder key names the folder in every output and file name
        label = folder_key(rel) if deidentify else rel
        name = label if deidentify else _record_name(rel)
        if name in names:  # pragma: no cover - 48-bit keys: ~2e-7 for 10 000 folders
            raise RtplanAssistError(f"two patient folders have the same key {name}; run "
                                    "them in separate batches.")
        names.add(name)
        record_path = out_dir / "patients" / f"{name}.json"
        previous = _load_record(record_path, fingerprint)
        if previous is not None:
            previous["reused"] = True
            records[rel] = previous
            continue
        report_rel = f"reports/{name}.{report_format}" if report_format else ""
        todo.append({
            "folder": str(folder), "rel": rel, "label": label, "deidentify": deidentify,
            "quality": quality, "end_caps": end_caps,
            "fingerprint": fingerprint, "record_path": str(record_path),
            "record": f"patients/{name}.json",
            "tables": str(tables) if tables else None,
            "regimens_file": str(regimens_file) if regimens_file else None,
            "report_path": str(out_dir / report_rel) if report_format else None,
            "report_rel": report_rel, "report_format": report_format,
        })

    summary = BatchSummary(out_dir=out_dir, n_patients=len(folders), n_reused=len(records))
    bar = tqdm(total=len(folders), initial=len(records), unit="patient", file=sys.stderr,
               disable=not progress, dynamic_ncols=True, desc="rtplan-assist batch")
    executor, close, summary.executor = (None, lambda interrupted=False: None,
                                         "none (all reused)")
    interrupted = True
    try:
        if todo:
            executor, close, summary.executor = _make_executor(workers, scheduler)
            futures = {executor.submit(task, {k: v for k, v in t.items() if k not in (
                "fingerprint", "record_path", "record")}): t for t in todo}
            for future in as_completed(futures):
                t = futures[future]
                try:
                    record = future.result()
                except Exception as exc:  # noqa: BLE001 - a dead worker is one patient's error
                    reason = f"worker failed: {type(exc).__name__}: {' '.join(str(exc).split())}"
                    if deidentify:
                        reason = Identifiers.of("", "", t["folder"]).scrub(reason)
                    record = _error_record(t["label"], reason, 0.0)
                record.update(fingerprint=t["fingerprint"], record_version=RECORD_VERSION,
                              record=t["record"], reused=False)
                atomic_write_text(t["record_path"], json.dumps(record, allow_nan=False))
                records[t["rel"]] = record
                bar.update(1)
                bar.set_postfix_str(t["label"][-30:], refresh=False)
        interrupted = False
    finally:
        bar.close()
        close(interrupted)

    ordered = [records[f.relative_to(root).as_posix() if f != root else "."] for f in folders]
    _write_aggregates(out_dir, root, ordered, summary.executor, deidentify=deidentify,
                      drop_not_evaluable=drop_not_evaluable)
    summary.records = [dict(r["summary"], reused=r.get("reused", False),
                            seconds=r.get("seconds", "")) for r in ordered]
    summary.n_errors = sum(r["summary"]["status"] == "error" for r in ordered)
    summary.n_evaluated = len(ordered) - summary.n_errors
    summary.n_failed = sum(r["summary"]["status"] == "evaluated" and _has_fail(r["summary"])
                           for r in ordered)
    summary.exit_code = exit_code(ordered)
    summary.seconds = time.perf_counter() - start
    return summary


def _csv_text(columns, rows) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else csv_cell(v)) for k, v in row.items()})
    return buffer.getvalue()


def _flagged_rows(record: dict):
    """A record's tidy rows for metrics.csv: numbers to 6 significant digits and the
    planned/recommended/chosen flags of ``evaluate --format csv`` (from the record's result
    JSON, so records of earlier runs get them too); an error row has no flags."""
    from .evaluation.output import csv_number, regimen_flags

    result = record.get("result") or {}
    maps = None
    if result.get("lesions") is not None:
        maps = ({les["lesion_id"]: les["planned"] for les in result["lesions"]},
                dict((result.get("recommendation") or {}).get("choice") or {}),
                dict(result.get("choice") or {}))
    for row in record["rows"]:
        out = {k: csv_number(v) for k, v in row.items()}
        if maps is not None and row.get("lesion_id") is not None:
            flags = regimen_flags(*maps, row["lesion_id"], row.get("regimen"))
            out.update({k: "true" if f else "false" for k, f in zip(FLAG_COLUMNS, flags)})
        yield out


def _write_aggregates(out_dir: Path, root: Path, records: list[dict], executor: str, *,
                      deidentify: bool = False, drop_not_evaluable: bool = False) -> None:
    columns = (*tidy_columns(), *FLAG_COLUMNS)
    atomic_write_text(out_dir / "metrics.csv", _csv_text(columns, (
        row for r in records for row in _flagged_rows(r)
        if not (drop_not_evaluable and row.get("status") == "not evaluable"))))
    atomic_write_text(out_dir / "summary.csv", _csv_text(SUMMARY_COLUMNS, (
        dict(r["summary"], reused="yes" if r.get("reused") else "no",
             seconds=r.get("seconds", "")) for r in records)))
    info = {
        "software": f"rtplan-assist {__version__}",
        "root": WITHHELD if deidentify else str(root), "deidentified": deidentify,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "executor": executor,
        "exit_code": exit_code(records),
    }
    atomic_write_text(out_dir / "results.json", json.dumps({
        "batch": info,
        "patients": [{"folder": r["folder"], "status": r["summary"]["status"],
                      "error": r.get("error"), "result": r.get("result")} for r in records],
    }, indent=1, allow_nan=False))
    atomic_write_text(out_dir / "manifest.json", json.dumps({
        "batch": info, "fingerprint": "sha256 of (relative path, size, mtime_ns) per file + "
        "options; see rtplan_assist.batch",
        "patients": {r["folder"]: {"fingerprint": r["fingerprint"],
                                   "record": r.get("record")
                                   or f"patients/{_record_name(r['folder'])}.json",
                                   "status": r["summary"]["status"]} for r in records},
    }, indent=1))
