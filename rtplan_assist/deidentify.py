"""De-identification: one short key per patient, and de-identified copies of what we output.

One scheme everywhere (error messages, ``report``, ``evaluate``, ``batch``, the exports):

* the PatientID becomes its **patient key**, ``p-`` + the first 8 hex digits of the SHA-256
  of the ID (UTF-8): :func:`patient_key`. Messages always use it; outputs use it with
  ``--deidentify``. ``load_case(patient_id=...)`` and ``--patient`` accept it too;
* in a ``batch --deidentify``, a patient *folder* becomes its **folder key**, ``f-`` + 12 hex
  digits of the SHA-256 of its path relative to the batch root: :func:`folder_key` (folder
  names are often patient IDs or names);
* the patient name and the folder (path and name) are withheld: :data:`WITHHELD`.

This is **pseudonymisation, not anonymisation**: whoever holds a PatientID (or can list the
IDs of a clinic, which are short) can compute its key and match the output to the patient,
which is what a clinic wants when it shares results internally. DICOM UIDs, study dates,
structure names and plan labels are kept (they carry no name or ID unless a user typed one
into them, and then :meth:`Identifiers.scrub` withholds it).

The structured fields (``patient_id``, ``folder``, file paths) are replaced explicitly; every
other string is then *scrubbed*: each occurrence of the ID, the folder path or name, the full
name and each part of the name (as a whole word, any case) is replaced. A part of the name
that is also an ordinary word (a surname "Heart") is withheld wherever that word appears: in
de-identified output we prefer a gap to a leak.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

__all__ = [
    "FOLDER_PLACEHOLDER",
    "WITHHELD",
    "Identifiers",
    "deidentify_dataset",
    "deidentify_result",
    "folder_key",
    "patient_key",
    "redact_paths",
    "scrub_tree",
    "short_hash",
]

#: What replaces a withheld name or folder (structured fields and scrubbed text).
WITHHELD = "(withheld)"
#: What replaces a patient folder's path inside a message (``<patient folder>/RD.dcm``).
FOLDER_PLACEHOLDER = "<patient folder>"
#: Identifiers of at least this many characters are replaced wherever they occur (also inside
#: file names such as ``RD12345678.dcm``); shorter ones only as whole words, so that an ID
#: ``12`` does not eat the digits of ``V12Gy``.
SUBSTRING_MIN_CHARS = 5
#: DeidentificationMethod written into exported DICOM (LO, at most 64 characters).
DICOM_METHOD = "rtplan-assist: PatientID -> p- SHA-256 key; name, birth removed"

# Patient-module and study elements emptied (type 2: must stay present) or removed in a
# de-identified export. Dates of the study and every UID are kept (see the module docstring).
_DICOM_EMPTIED = (
    "PatientName", "PatientBirthDate", "PatientSex", "AccessionNumber", "StudyID",
    "ReferringPhysicianName", "InstitutionName",
)
_DICOM_REMOVED = (
    "OtherPatientIDs", "OtherPatientIDsSequence", "OtherPatientNames", "PatientBirthName",
    "PatientBirthTime", "PatientAge", "PatientSize", "PatientWeight", "PatientAddress",
    "PatientTelephoneNumbers", "PatientMotherBirthName", "MedicalRecordLocator",
    "IssuerOfPatientID", "PatientComments", "EthnicGroup", "Occupation",
    "AdditionalPatientHistory", "StudyDescription", "InstitutionAddress",
    "InstitutionalDepartmentName", "OperatorsName", "PerformingPhysicianName",
    "PhysiciansOfRecord", "RequestingPhysician", "NameOfPhysiciansReadingStudy",
    "ReferringPhysicianAddress", "ReferringPhysicianTelephoneNumbers", "StationName",
    "DeviceSerialNumber", "ReviewerName",
)
# Text value representations scrubbed in whatever elements remain.
_DICOM_TEXT_VRS = {"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"}


def short_hash(text: str, prefix: str = "p-", digits: int = 8) -> str:
    """``prefix`` + the first ``digits`` hex digits of the SHA-256 of ``text`` (UTF-8).

    The one hash behind every stand-in for an identifier (:func:`patient_key`,
    :func:`folder_key`). Stable across runs, machines and versions.
    """
    return prefix + hashlib.sha256(str(text).encode("utf-8")).hexdigest()[:digits]


def patient_key(patient_id: str) -> str:
    """Stand-in for a PatientID in messages and de-identified outputs: ``p-`` + 8 hex digits
    of its SHA-256, e.g. ``patient_key("RTPA-DEMO-0000") == "p-72ba927c"``."""
    return short_hash(patient_id, "p-", 8)


def folder_key(relative_path: str) -> str:
    """Stand-in for a patient folder in a de-identified batch: ``f-`` + 12 hex digits of the
    SHA-256 of its POSIX path relative to the batch root (``"SMITH_J/2024"``). Twelve digits
    because the key also names the patient's record and report files, which must not collide
    (collision probability ~2e-7 for 10 000 folders)."""
    return short_hash(relative_path, "f-", 12)


def _word(term: str) -> str:
    """Regex for ``term`` as a whole word: not touching a letter or digit (``_`` separates)."""
    return rf"(?<![^\W_]){re.escape(term)}(?![^\W_])"


def _name_forms(patient_name: str) -> tuple[list[str], list[str]]:
    """(full-name spellings, name parts) of a DICOM PN ``Family^Given^Middle^Prefix^Suffix``
    (each of its ``=``-separated groups)."""
    full, parts = [], []
    for group in str(patient_name or "").split("="):
        components = [c.strip() for c in group.split("^") if c.strip()]
        if not components:
            continue
        full += [group.strip(), " ".join(components), " ".join(reversed(components)),
                 ", ".join(components[:2])]
        for component in components:
            parts += [p for p in re.split(r"[\s,.]+", component) if len(p) >= 2]
    return [f for f in dict.fromkeys(full) if len(f) >= 2], list(dict.fromkeys(parts))


@dataclass(frozen=True)
class Identifiers:
    """What identifies one patient in our outputs, and how to withhold it.

    Attributes
    ----------
    patient_id : str
        PatientID (``""`` when unknown); replaced by :attr:`key`.
    patient_name : str
        DICOM PN (``Family^Given``); withheld, in full and part by part.
    folders : tuple of str
        Input folders of the patient (as given and resolved); their paths become
        :data:`FOLDER_PLACEHOLDER`, their names :data:`WITHHELD`.
    """

    patient_id: str = ""
    patient_name: str = ""
    folders: tuple[str, ...] = ()

    @classmethod
    def of(cls, patient_id: str | None, patient_name: str | None,
           *folders: str | os.PathLike | None) -> Identifiers:
        """From a PatientID, a PN and the patient's folders (each as given, absolute and
        resolved)."""
        return cls(str(patient_id or ""), str(patient_name or ""), _folder_forms(folders))

    @classmethod
    def of_case(cls, case, *folders: str | os.PathLike | None) -> Identifiers:
        """The identifiers of a loaded :class:`~rtplan_assist.model.Case`, plus ``folders``
        (e.g. the path the user gave)."""
        return cls.of(case.patient_id, case.patient_name, case.folder, *folders)

    @property
    def key(self) -> str:
        """:func:`patient_key` of the PatientID; ``""`` when there is none (nothing to hide)."""
        return patient_key(self.patient_id) if self.patient_id else ""

    @cached_property
    def _rules(self) -> list[tuple[re.Pattern, str]]:
        # each rule writes a private-use character (no letter, digit or word of any later
        # rule can match it); :meth:`scrub` swaps them for the replacements at the end
        rules: list[tuple[re.Pattern, str]] = []
        paths = sorted({f for f in self.folders if f and (os.sep in f or "/" in f)
                        and f not in (os.sep, "/")}, key=len, reverse=True)
        if paths:
            rules.append((re.compile("|".join(re.escape(p) for p in paths)), _PATH_MARK))
        pid = self.patient_id.strip()
        if pid:
            rules.append((_term(pid), _KEY_MARK))
        full, parts = _name_forms(self.patient_name)
        for term in sorted(full, key=len, reverse=True):
            rules.append((re.compile(re.escape(term), re.IGNORECASE), _WITHHELD_MARK))
        names = {Path(f).name for f in self.folders if f} - {"", ".", ".."}
        for term in sorted(names, key=len, reverse=True):
            rules.append((_term(term), _WITHHELD_MARK))
        if parts:
            alternatives = "|".join(_word(p) for p in sorted(parts, key=len, reverse=True))
            rules.append((re.compile(alternatives, re.IGNORECASE), _WITHHELD_MARK))
        return rules

    def scrub(self, text: str) -> str:
        """``text`` with every identifier replaced: folder paths → :data:`FOLDER_PLACEHOLDER`,
        the PatientID → :attr:`key`, the name (full, then each part as a whole word) and the
        folder names → :data:`WITHHELD`. Case-insensitive, except for folder paths."""
        if not text:
            return text
        for pattern, mark in self._rules:
            text = pattern.sub(mark, text)
        return (text.replace(_PATH_MARK, FOLDER_PLACEHOLDER).replace(_KEY_MARK, self.key)
                .replace(_WITHHELD_MARK, WITHHELD))


_PATH_MARK, _KEY_MARK, _WITHHELD_MARK = "\ue000", "\ue001", "\ue002"


#: A short identifier is not replaced where it is part of a number or a quantity: after or
#: before a decimal mark between digits (``22.5``, ``5,2``), after a sign (``-5``), or
#: followed by a unit (``5 Gy``, ``5 fx``): replacing it there would change a value.
_NUMBER_CONTEXT_BEFORE = r"(?<!\d[.,])(?<![-+])"
_NUMBER_CONTEXT_AFTER = (
    r"(?![.,]\d)(?!\s*(?:c?Gy|cc|cm³|cm3|mm|cm|%|fx|fractions?|x|×|Gy\b)(?![^\W_]))"
)


def _term(term: str) -> re.Pattern:
    """An ID or folder name: anywhere when long enough, else as a whole identifier (a whole
    word that is not part of a number or a quantity, see :data:`_NUMBER_CONTEXT_AFTER`);
    any case."""
    if len(term) >= SUBSTRING_MIN_CHARS:
        return re.compile(re.escape(term), re.IGNORECASE)
    return re.compile(
        _NUMBER_CONTEXT_BEFORE + _word(term) + _NUMBER_CONTEXT_AFTER, re.IGNORECASE
    )


def _folder_forms(folders: Iterable[str | os.PathLike | None]) -> tuple[str, ...]:
    out: list[str] = []
    for folder in folders:
        if not folder:
            continue
        for form in (str(folder), os.path.abspath(folder), str(Path(folder).resolve())):
            form = form.rstrip("/\\") or form  # "/data/SMITH/" is written "/data/SMITH"
            if form not in out:
                out.append(form)
    return tuple(out)


def redact_paths(text: str, paths: Iterable[str | os.PathLike | None]) -> str:
    """``text`` with each of ``paths`` (as given, absolute and resolved) replaced by
    :data:`FOLDER_PLACEHOLDER` and their last components withheld: for messages printed
    before the patient is known (``--deidentify`` errors)."""
    return Identifiers(folders=_folder_forms(paths)).scrub(text)


# =============================================================================================
# Results
# =============================================================================================


def scrub_tree(value, scrub: Callable[[str], str], *, keys: bool = True,
               other: Callable | None = None):
    """``value`` with every string of its nested lists, tuples and dicts (dict keys too when
    ``keys``) passed through ``scrub`` (e.g. :meth:`Identifiers.scrub`); a new structure.

    ``other(item, walk)``, when given, handles any other item (``walk`` scrubs a nested value
    the same way): the app uses it for Dash components. Other items are returned as they are.
    """
    def walk(item):
        return scrub_tree(item, scrub, keys=keys, other=other)

    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, list | tuple):
        return type(value)(walk(v) for v in value)
    if isinstance(value, dict):
        return {(scrub(k) if keys and isinstance(k, str) else k): walk(v)
                for k, v in value.items()}
    return other(value, walk) if other is not None else value


def deidentify_result(result, ids: Identifiers):
    """A de-identified copy of an :class:`~rtplan_assist.evaluation.EvaluationResult`.

    ``patient_id`` (of the result and of every row) becomes ``ids.key`` and ``folder``
    :data:`WITHHELD`; the lesions' plan and dose paths keep only their file names; the texts
    that can carry what a user typed or a TPS wrote (structure names, plan labels and names,
    file names, dose comments, reasons, warnings, explanations, the provenance's name
    mapping) are scrubbed with :meth:`Identifiers.scrub`. Controlled values (lesion ids,
    regimens, metrics, units, statuses, sources) and every number are kept, so the verdict
    and the formatting functions (``result_to_dict``, ``result_rows_tidy``,
    ``result_to_html``, ``result_to_text``) work on the copy as on ``result``, which is not
    modified. Idempotent for the same ``ids``.
    """
    scrub = ids.scrub

    def row(r):
        return replace(r, patient_id=ids.key if r.patient_id else r.patient_id,
                       structure=scrub(r.structure), reason=scrub(r.reason))

    def structure(s):
        return None if s is None else replace(s, name=scrub(s.name))

    def lesion(item):
        plan = replace(item.plan, path=scrub(Path(item.plan.path).name) if item.plan.path else "",
                       label=scrub(item.plan.label), name=scrub(item.plan.name))
        dose = replace(item.dose, path=scrub(Path(item.dose.path).name) if item.dose.path else "",
                       comment=scrub(item.dose.comment),
                       series_description=scrub(item.dose.series_description))
        return replace(item, label=scrub(item.label), plan=plan, dose=dose,
                       target=structure(item.target), gtv=structure(item.gtv),
                       dose_scale_note=scrub(item.dose_scale_note))

    rec = result.recommendation
    recommendation = replace(
        rec, binding={k: scrub(v) for k, v in rec.binding.items()},
        explanation=[scrub(t) for t in rec.explanation],
        binding_rows={k: row(v) for k, v in rec.binding_rows.items()},
        reasons={k: scrub(v) for k, v in rec.reasons.items()},
        robustness={k: scrub(v) for k, v in rec.robustness.items()},
    )
    provenance = {k: scrub_tree(v, ids.scrub) for k, v in result.provenance.items()}
    return replace(
        result, patient_id=ids.key if result.patient_id else result.patient_id,
        folder=WITHHELD, lesions=[lesion(x) for x in result.lesions],
        rows=[row(r) for r in result.rows], composite_rows=[row(r) for r in result.composite_rows],
        recommendation=recommendation, warnings=[scrub(w) for w in result.warnings],
        caveats=[scrub(c) for c in result.caveats], provenance=provenance,
    )


# =============================================================================================
# DICOM
# =============================================================================================


def deidentify_dataset(ds, ids: Identifiers) -> None:
    """De-identify a pydicom ``Dataset`` about to be exported, in place.

    PatientID becomes ``ids.key``; the patient's name, birth date, sex, accession number,
    study ID, referring physician and institution are emptied (type 2 elements stay present);
    other IDs, age, size, weight, addresses, the study description and staff names are
    removed; PatientIdentityRemoved is ``YES`` and DeidentificationMethod says what was done.
    Every remaining text element (sequences included) is scrubbed with
    :meth:`Identifiers.scrub`. UIDs, dates of the study and the RT content are kept, so the
    object still lines up with the planning CT, but it no longer matches the patient record
    of a treatment planning system.
    """
    for keyword in _DICOM_REMOVED:
        if keyword in ds:
            delattr(ds, keyword)
    for keyword in _DICOM_EMPTIED:
        setattr(ds, keyword, "")
    ds.PatientID = ids.key
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = DICOM_METHOD
    for dataset in _datasets(ds):
        for element in dataset:
            if element.VR in _DICOM_TEXT_VRS and element.value not in (None, ""):
                if element.keyword in ("PatientID", "DeidentificationMethod"):
                    continue
                value = element.value
                if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
                    element.value = [ids.scrub(str(v)) for v in value]
                else:
                    element.value = ids.scrub(str(value))


def _datasets(ds):
    yield ds
    for element in ds:
        if element.VR == "SQ":
            for item in element.value:
                yield from _datasets(item)
