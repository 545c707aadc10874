"""Numba kernels: the hot loops only (rasterisation, DVH accumulation, voxel-wise EQD2,
interpolation). No pydicom, no classes, no I/O. Each public wrapper checks shapes and dtypes
and calls a private ``@njit(cache=True)`` function.

Start-up: Numba's first compile *or cache load* in a process imports ``numba.np.arraymath``,
whose import-time probe for BLAS (used only by Numba's ``np.correlate``/``np.convolve``)
imports ``scipy.linalg`` (0.2 s on the 2-core machine, a sixth of a whole ``dvh`` run).
No kernel uses BLAS, so the probe is answered "no BLAS" here before Numba asks
(:func:`_skip_numba_blas_probe`); Numba's ``np.dot`` and ``np.linalg`` (which check BLAS
when they compile) are unaffected. tests/test_startup.py checks that a DVH run leaves
``scipy.linalg`` unimported.
"""

from __future__ import annotations

import sys


def _skip_numba_blas_probe() -> None:
    """Import ``numba.np.arraymath`` with its module-level BLAS probe answered "no"."""
    if "numba.np.arraymath" in sys.modules:
        return
    try:
        import numba.np.linalg as nb_linalg
    except ImportError:  # pragma: no cover - numba without its numpy support
        return
    real = getattr(nb_linalg, "ensure_blas", None)
    if real is None:  # pragma: no cover - another numba: leave it alone
        return

    def _no_blas() -> None:
        raise ImportError("rtplan-assist kernels use no BLAS")

    nb_linalg.ensure_blas = _no_blas
    try:
        import numba.np.arraymath as nb_arraymath
    finally:
        nb_linalg.ensure_blas = real
    if getattr(nb_arraymath, "ensure_blas", None) is _no_blas:
        nb_arraymath.ensure_blas = real


_skip_numba_blas_probe()
