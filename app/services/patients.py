"""The patients an app serves from disk: the demo patient, one folder or a data root."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rtplan_assist.deidentify import folder_key
from rtplan_assist.errors import DicomInputError

__all__ = ["PatientCatalogue", "PatientEntry", "user_mapping"]


@dataclass(frozen=True)
class PatientEntry:
    """A patient the app can open: an opaque key for the browser and a folder on the server."""

    key: str
    label: str
    folder: Path
    owner_session: str | None = None  # uploads belong to the session that uploaded them
    upload_dir: Path | None = None  # the per-upload temporary folder, removed with the session
    #: targets, prescriptions and structure mappings given by the user in the app (plan form,
    #: overview's mapping form), as ``evaluate``'s options: ``(("--target", "RP.L4.dcm=PTV_4"),
    #: ("--prescription", "RP.L1.dcm=54/3"), ("--map", "Coeur=Heart"))``; never written into
    #: the patient's files; part of the prepared-cache key
    plan_options: tuple[tuple[str, str], ...] = ()

    @property
    def user_mapping(self) -> dict[str, str]:
        """Structure name → TG-263 name given by the user (the ``--map`` options)."""
        return user_mapping(self.plan_options)


def user_mapping(options) -> dict[str, str]:
    """Structure name → TG-263 name of the ``("--map", "NAME=TG263")`` entries of ``options``
    (as ``evaluate --map``: :func:`rtplan_assist.names.parse_map_argument`)."""
    from rtplan_assist.names import parse_map_argument

    return dict(parse_map_argument(value) for option, value in options or () if option == "--map")


class PatientCatalogue:
    """The patients found at start-up (uploads are :class:`~.uploads.Uploads`).

    Parameters
    ----------
    data_path : path or None
        A patient folder (``mode == "folder"``), a data root with several patients
        (``"root"``: the user picks) or None for the demo patient (``"demo"``).
    deidentify : bool
        Label patients by the key of their folder name, not the name (often an ID or a name).

    Raises
    ------
    DicomInputError
        No such folder, or no DICOM RT files below it.
    """

    def __init__(self, data_path=None, *, deidentify: bool = False):
        self.mode, self.entries = _resolve(data_path, deidentify)

    def default_key(self) -> str | None:
        """The patient opened without asking (demo or single folder); None for a data root."""
        return self.entries[0].key if self.mode in ("demo", "folder") else None

    def find(self, key: str) -> PatientEntry | None:
        return next((e for e in self.entries if e.key == key), None)

    def options(self) -> list[dict]:
        """Patient-picker options (label/value) of these patients."""
        return [{"label": e.label, "value": e.key} for e in self.entries]


def _resolve(data_path, deidentify: bool) -> tuple[str, list[PatientEntry]]:
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
