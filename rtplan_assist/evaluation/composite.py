"""The composite's geometry: the common grid of the lesion doses, a lesion's dose on it, and
the box of the grid that holds an organ.

Pure functions of the lesions and structures; the session caches what they return.
"""

from __future__ import annotations

import numpy as np

from ..model import Grid, Structure
from .records import Lesion

#: Largest common grid (voxels); a finer one is coarsened by 1.25× steps until it fits.
MAX_COMMON_VOXELS = 30_000_000


def common_grid(lesions: list[Lesion]) -> tuple[Grid, bool, str]:
    """The grid of the composite, whether every lesion dose already lies on it, and a warning.

    Same-geometry lesion grids are used as they are (warning ``""``); otherwise a uniform grid
    covering the union of the lesion grids at the finest spacing (coarsened if it would exceed
    :data:`MAX_COMMON_VOXELS`), onto which each lesion's physical dose is resampled trilinearly
    (:func:`dose_on_grid`).
    """
    grids = [lesion.dose.grid for lesion in lesions]
    if all(g.same_geometry(grids[0]) for g in grids[1:]):
        return grids[0], True, ""
    extents = np.array([g.extent_mm() for g in grids])
    lo = extents[:, :, 0].min(axis=0)
    hi = extents[:, :, 1].max(axis=0)
    spacing = np.array([min(float(g.spacing[a]) for g in grids) for a in range(3)])
    while True:
        counts = np.maximum(np.floor((hi - lo) / spacing + 1e-6).astype(int), 1)
        if int(np.prod(counts)) <= MAX_COMMON_VOXELS:
            break
        spacing = spacing * 1.25
    origin = lo + spacing / 2
    grid = Grid.uniform(origin, spacing, (counts[2], counts[1], counts[0]))
    warning = (
        "lesion dose grids differ: the composite is computed on a common "
        f"{grid.shape[2]}×{grid.shape[1]}×{grid.shape[0]} grid of "
        f"{spacing[0]:.2f}×{spacing[1]:.2f}×{spacing[2]:.2f} mm (trilinear resampling)"
    )
    return grid, False, warning


def dose_on_grid(lesion: Lesion, grid: Grid, same: bool) -> np.ndarray:
    """The lesion's physical dose (Gy, ``(nz, ny, nx)``) on the common ``grid``: its own array
    when ``same``, else resampled trilinearly (``kernels/resample.py``; 0 Gy outside the
    lesion's grid)."""
    if same:
        return lesion.dose.dose_gy
    from ..kernels.resample import resample_trilinear

    src = lesion.dose.grid
    ext = src.extent_mm()
    half = (
        (src.z_mm[0] - ext[2, 0], ext[2, 1] - src.z_mm[-1]),
        (src.spacing[1] / 2, src.spacing[1] / 2),
        (src.spacing[0] / 2, src.spacing[0] / 2),
    )
    values, _ = resample_trilinear(
        lesion.dose.dose_gy,
        (src.z_mm, src.y_mm, src.x_mm),
        half,
        (grid.z_mm, grid.y_mm, grid.x_mm),
    )
    return values


def box(structure: Structure, grid: Grid) -> tuple[tuple[slice, slice, slice], Grid]:
    """``((z, y, x) slices, sub-grid)`` of ``grid`` that holds ``structure`` with a margin of
    two voxels in x and y and a slab (at least 5 mm) plus two voxels in z."""
    bounds = structure.bounds_mm()
    slab = max(structure.slice_thickness_mm or 0.0, 5.0)
    margin = np.array([2 * grid.spacing[0], 2 * grid.spacing[1], slab + 2 * grid.spacing[2]])
    lo = bounds[:, 0] - margin
    hi = bounds[:, 1] + margin
    axes = (grid.x_mm, grid.y_mm, grid.z_mm)
    cuts = []
    for axis in range(3):
        coords = axes[axis]
        start = max(int(np.searchsorted(coords, lo[axis], side="left")) - 1, 0)
        stop = min(int(np.searchsorted(coords, hi[axis], side="right")) + 1, len(coords))
        cuts.append(slice(start, max(stop, start + 1)))
    sx, sy, sz = cuts
    z = grid.z_mm[sz]
    origin = np.array([grid.x_mm[sx][0], grid.y_mm[sy][0], z[0]])
    sub = Grid(
        origin, grid.spacing.copy(), (len(z), sy.stop - sy.start, sx.stop - sx.start), z.copy()
    )
    return (sz, sy, sx), sub
