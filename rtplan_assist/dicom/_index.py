"""Indexing: read every file's header once (no pixel data) and keep what linking needs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rtplan_assist.dicom import _raw
from rtplan_assist.dicom._common import display_name, ds_str, screen_file
from rtplan_assist.dicom.rtstruct import frame_of_reference_uid as structure_set_for_uid
from rtplan_assist.errors import DicomInputError

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

#: Modalities the loader uses.
RT_MODALITIES = ("RTSTRUCT", "RTPLAN", "RTDOSE")
IMAGE_MODALITIES = ("CT",)

#: Elements read by the light index (patient pickers, batch folder discovery).
LIGHT_TAGS = ["Modality", "PatientID", "PatientName", "SOPClassUID", "FrameOfReferenceUID"]


@dataclass
class IndexedFile:
    """One readable DICOM file."""

    path: Path
    modality: str
    patient_id: str
    patient_name: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    frame_of_reference_uid: str
    header: Dataset | _raw.RawDataset | None = None


@dataclass
class UnreadableFile:
    """A file with a DICOM preamble (or partly parsed header) that could not be indexed.

    ``modality`` and ``patient_id`` are filled when the first elements could still be read.
    """

    path: Path
    reason: str
    modality: str = ""
    patient_id: str | None = None


@dataclass
class Index:
    """Result of indexing a folder or a list of files."""

    root: Path | None
    files: list[IndexedFile] = field(default_factory=list)
    not_dicom: list[Path] = field(default_factory=list)
    unreadable: list[UnreadableFile] = field(default_factory=list)

    def name(self, path: Path | str) -> str:
        return display_name(path, self.root)

    def patients(self) -> dict[str, list[IndexedFile]]:
        out: dict[str, list[IndexedFile]] = {}
        for f in self.files:
            out.setdefault(f.patient_id, []).append(f)
        return out


def input_paths(path) -> tuple[Path | None, list[Path]]:
    """Files to index: every file under a folder (recursive, sorted) or the given list."""
    if isinstance(path, (list, tuple)):
        files: list[Path] = []
        for p in path:
            p = Path(p)
            if p.is_dir():
                files.extend(sorted(q for q in p.rglob("*") if q.is_file()))
            elif p.is_file():
                files.append(p)
            else:
                raise DicomInputError("no such file or folder.", path=p)
        if not files:
            raise DicomInputError("the list of input files is empty.")
        parents = {f.parent for f in files}
        root = parents.pop() if len(parents) == 1 else None
        return root, files
    root = Path(path)
    if root.is_file():
        return root.parent, [root]
    if not root.is_dir():
        raise DicomInputError("no such file or folder.", path=root)
    return root, sorted(q for q in root.rglob("*") if q.is_file())


def _has_preamble(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


FOLDER_MAP_NAME = "rtplan-assist-map.csv"  # rtplan_assist.names.FOLDER_MAP_FILE


def index_files(
    paths: Iterable[Path], root: Path | None, *, light: bool = False, fast: bool = False
) -> Index:
    """Read each file's header with ``dcmread(stop_before_pixels=True, force=True)``, after a
    bounded look at it (:func:`~rtplan_assist.dicom._common.screen_file`: first tag, and the
    inflated size of a deflate-compressed file).

    Files that do not parse to a dataset with a Modality or SOPClassUID are listed as
    ``not_dicom`` (no DICM preamble) or ``unreadable`` (DICM preamble but no usable header);
    nothing is raised here: whether a damaged file matters is decided when linking.

    With ``fast``, a plain file is read by :func:`rtplan_assist.dicom._raw.read_header`
    instead (its header is then a :class:`~rtplan_assist.dicom._raw.RawDataset`), any other
    file as above; :class:`~rtplan_assist.dicom._raw.NotClean` raised by a value read here
    propagates (the caller reads the case again without ``fast``). ``light`` (patient
    pickers, folder discovery: ``LIGHT_TAGS`` only, no header kept) always reads plain files
    that way, and a file whose values are not plain through pydicom, file by file.
    """
    index = Index(root=root)
    for path in paths:
        if path.name.upper() == "DICOMDIR" or path.name.lower() == FOLDER_MAP_NAME:
            continue
        if fast or light:
            try:
                header = _raw.read_header(path)
            except _raw.NotClean:  # the file is outside the subset: pydicom reads it
                header = None
            if header is not None:
                try:
                    _add_file(index, path, header, light)
                    continue
                except _raw.NotClean:  # a value is: the caller decides, or (light) pydicom
                    if not light:
                        raise
        kind, reason, modality = screen_file(path)
        if kind == "not_dicom":
            index.not_dicom.append(path)
            continue
        if kind == "unreadable":
            index.unreadable.append(UnreadableFile(path, reason, modality))
            continue
        try:
            import pydicom

            if light:
                ds = pydicom.dcmread(
                    str(path), stop_before_pixels=True, force=True, specific_tags=LIGHT_TAGS
                )
            else:
                ds = pydicom.dcmread(str(path), stop_before_pixels=True, force=True)
        except Exception as exc:  # noqa: BLE001 - damaged files raise many exception types
            _add_unparsed(index, path, exc)
            continue
        _add_file(index, path, ds, light)
    return index


def _add_unparsed(index: Index, path: Path, exc: Exception) -> None:
    if _has_preamble(path):
        index.unreadable.append(_identify(path, f"{type(exc).__name__}: {exc}"))
    else:
        index.not_dicom.append(path)


def _add_file(index: Index, path: Path, ds, light: bool) -> None:
    """File ``path``, read as ``ds``, into ``index``: indexed, unreadable or not DICOM.
    NotClean raised by a value of a RawDataset propagates before anything is added."""
    try:
        modality = ds_str(ds, "Modality").upper()
        sop_class = ds_str(ds, "SOPClassUID")
    except _raw.NotClean:
        raise
    except Exception as exc:  # noqa: BLE001 - damaged files raise many exception types
        _add_unparsed(index, path, exc)
        return
    if not modality and not sop_class:
        if _has_preamble(path):
            index.unreadable.append(
                UnreadableFile(path, "no Modality or SOPClassUID in the header")
            )
        else:
            index.not_dicom.append(path)
        return

    def text(keyword: str) -> str:  # a light read has only LIGHT_TAGS
        return "" if light and keyword not in LIGHT_TAGS else ds_str(ds, keyword)

    try:
        if modality == "RTSTRUCT" and not light:
            for_uid = structure_set_for_uid(ds)
        else:
            for_uid = ds_str(ds, "FrameOfReferenceUID")
        entry = IndexedFile(
            path=path,
            modality=modality,
            patient_id=text("PatientID"),
            patient_name=text("PatientName"),
            sop_instance_uid=text("SOPInstanceUID"),
            study_instance_uid=text("StudyInstanceUID"),
            series_instance_uid=text("SeriesInstanceUID"),
            frame_of_reference_uid=for_uid,
            header=None if light else ds,
        )
    except _raw.NotClean:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged header fails on first access
        index.unreadable.append(
            UnreadableFile(path, f"{type(exc).__name__}: {exc}", modality, None)
        )
        return
    index.files.append(entry)


def _identify(path: Path, reason: str) -> UnreadableFile:
    """Try to read just the first identifying elements of a damaged file."""
    import pydicom

    try:
        ds = pydicom.dcmread(
            str(path), stop_before_pixels=True, force=True, specific_tags=LIGHT_TAGS[:2]
        )
        modality = ds_str(ds, "Modality").upper()
        patient = ds_str(ds, "PatientID") if "PatientID" in ds else None
    except Exception:  # noqa: BLE001 - identification is best effort
        modality, patient = "", None
    return UnreadableFile(path, reason, modality, patient)
