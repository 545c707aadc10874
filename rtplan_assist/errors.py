"""One exception hierarchy for everything rtplan-assist can refuse.

Every message names the file, element or structure concerned and, where there is one,
what the user can do about it. The CLI prints ``str(error)`` on one line and exits non-zero.
"""

from __future__ import annotations

from pathlib import Path


class RtplanAssistError(Exception):
    """Base class: a problem with the user's input or request, reported without a traceback."""

    exit_code = 2

    def __init__(self, message: str, *, path: str | Path | None = None):
        self.path = str(path) if path is not None else None
        super().__init__(f"{self.path}: {message}" if self.path else message)


class DicomInputError(RtplanAssistError):
    """A DICOM file is unreadable, incomplete or inconsistent with the rest of the case."""


class GeometryError(RtplanAssistError):
    """Geometry that cannot be evaluated honestly (oblique grids, non-axial contours, ...)."""


class MetricSyntaxError(RtplanAssistError):
    """A DVH metric string does not follow the TG-263 grammar."""


class ConstraintTableError(RtplanAssistError):
    """A constraint, alias, alpha/beta or regimen table is malformed (``file:line: message``)."""


class RadiobiologyError(RtplanAssistError):
    """Invalid radiobiological parameters (negative dose, zero fractions, alpha/beta <= 0, ...)."""


class EvaluationError(RtplanAssistError):
    """A case cannot be evaluated as asked (no lesion, unknown regimen, ambiguous mapping)."""


class UploadError(RtplanAssistError):
    """An uploaded file or archive is refused (too large, too many files, unsafe paths)."""


class StructureNotFoundError(RtplanAssistError, KeyError):
    """No structure of that name in the case; the message lists the names it has. A
    ``KeyError`` too, for callers that caught the bare ``KeyError`` of earlier releases."""

    def __init__(self, name: str, available: list[str], folder: str | None = None):
        self.name = name
        self.available = list(available)
        shown = ", ".join(repr(n) for n in self.available) or "none"
        super().__init__(f"no structure named {name!r}; the case has {shown}", path=folder or None)

    __str__ = Exception.__str__
