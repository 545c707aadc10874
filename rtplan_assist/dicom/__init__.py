"""DICOM RT loading: one small module per modality behind :func:`load_case`.

* :mod:`.rtstruct` — ROIs as closed planar polygons per axial plane;
* :mod:`.rtdose` — dose grids in Gy on ascending ``[z, y, x]`` grids;
* :mod:`.rtplan` — fractions, prescription, target;
* :mod:`.ct` — CT geometry, Hounsfield units on demand;
* :mod:`.case` — indexing (headers only) and linking into a :class:`~rtplan_assist.model.Case`.

Files are only ever opened for reading.
"""

from rtplan_assist.dicom.case import find_patient_folders, list_patients, load_case
from rtplan_assist.dicom.ct import load_ct_pixels

__all__ = ["find_patient_folders", "list_patients", "load_case", "load_ct_pixels"]
