"""Numba kernels: the hot loops only (rasterisation, DVH accumulation, voxel-wise EQD2,
interpolation). No pydicom, no classes, no I/O. Each public wrapper checks shapes and dtypes
and calls a private kernel (``@kernel(...)``, Numba's ``njit`` options).

A kernel runs from the ahead-of-time build of these sources when it has the call's signature,
else on Numba's JIT (``_jit.py`` says how and when; importing the kernels does not import
Numba).
"""
