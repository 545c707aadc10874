"""Numba kernels: the hot loops only (rasterisation, DVH accumulation, voxel-wise EQD2,
interpolation). No pydicom, no classes, no I/O. Each public wrapper checks shapes and dtypes
and calls a private ``@njit(cache=True)`` function."""
