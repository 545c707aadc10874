"""What every session of one patient shares next to the evaluator: the CT, the dose grids
the dose view drew last and the plan quality indices."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable

import numpy as np

from .lru import OnceLRU

__all__ = ["PatientShared"]


class PatientShared:
    """The CT in HU, read once, and an LRU of 3-D dose grids, for every session of a patient.

    The dose view redraws on every slider move; the grid it slices (a lesion's dose scaled to a
    regimen, or the composite EQD2 of a choice at one α/β: ~0.25 s and ~10 MB on the demo
    patient) depends on neither the plane nor the position, so it is computed once per key and
    only sliced afterwards.

    Parameters
    ----------
    max_grids : int
        Dose grids kept (the last used); each is one float32/float64 grid of the case.
    """

    def __init__(self, max_grids: int = 3):
        self._ct_lock = threading.Lock()
        self._ct_hu: np.ndarray | None = None
        self._grids = OnceLRU(max_grids)
        self._quality = OnceLRU(1)

    def quality(self, compute: Callable[[], object]):
        """The plan quality indices of the patient's lesions (planned doses: the same for
        every session), ``compute()`` once per process (about 1 s a lesion)."""
        return self._quality.get("quality", compute)

    def ct_hu(self, case) -> np.ndarray | None:
        """CT of ``case`` in HU (float32, [z, y, x]), read on first use; None without CT."""
        if case.ct is None:
            return None
        with self._ct_lock:
            if self._ct_hu is None:
                from rtplan_assist.dicom import load_ct_pixels

                self._ct_hu = load_ct_pixels(case.ct)
        return self._ct_hu

    def dose_grid(self, key: Hashable, compute: Callable[[], object]):
        """The grid stored under ``key``, else ``compute()`` stored under it (read-only: the
        arrays are shared by sessions, so a slip raises instead of leaking)."""

        def make():
            value = compute()
            for array in value if isinstance(value, tuple) else (value,):
                if isinstance(array, np.ndarray):
                    array.flags.writeable = False
            return value

        return self._grids.get(key, make)
