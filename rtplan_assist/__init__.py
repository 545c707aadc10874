"""rtplan-assist: radiotherapy planning assistant for multi-lesion consolidation radiotherapy.

Decision support for experts, not a treatment planning system. The public entry points are
:func:`rtplan_assist.dicom.load_case`, :func:`rtplan_assist.dvh.compute_dvh` and the
``rtplan-assist`` command line.
"""

__version__ = "0.1.0"
