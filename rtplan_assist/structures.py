"""Structure masks on voxel grids: fractional occupancy from the contour solid.

Used where a per-voxel answer is needed (which voxels of an OAR a lesion's dose reaches,
derived structures, display). DVHs do not go through masks: :mod:`rtplan_assist.dvh`
integrates over the contour solid directly, which is more accurate at the same cost.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .geometry import flatten
from .kernels.rasterize import rasterize
from .model import Grid, Structure


@dataclass(frozen=True)
class Mask:
    """Occupancy of a structure on a grid, stored on its bounding box.

    Attributes
    ----------
    offset : (k0, j0, i0)
        Index in the full grid of ``occupancy[0, 0, 0]``.
    occupancy : (bz, by, bx) float64
        Fraction of each voxel inside the structure, 0..1.
    outside_cc : float
        Structure volume outside the grid.
    grid : Grid
    """

    offset: tuple[int, int, int]
    occupancy: np.ndarray
    outside_cc: float
    grid: Grid

    def full(self) -> np.ndarray:
        """(nz, ny, nx) occupancy on the whole grid."""
        out = np.zeros(self.grid.shape)
        k, j, i = self.offset
        bz, by, bx = self.occupancy.shape
        out[k : k + bz, j : j + by, i : i + bx] = self.occupancy
        return out

    @property
    def volume_cc(self) -> float:
        """Volume inside the grid in cm³ (Σ occupancy × voxel volume)."""
        z = self.grid.z_mm
        k0 = self.offset[0]
        if len(z) > 1:
            b = np.concatenate([[z[0] - (z[1] - z[0]) / 2], (z[1:] + z[:-1]) / 2,
                                [z[-1] + (z[-1] - z[-2]) / 2]])
            dz = np.diff(b)[k0 : k0 + self.occupancy.shape[0]]
        else:
            dz = np.full(1, self.grid.spacing[2])
        area = self.grid.spacing[0] * self.grid.spacing[1]
        return float(np.sum(self.occupancy.sum(axis=(1, 2)) * dz) * area / 1000.0)


def occupancy(structure: Structure, grid: Grid, h_mm: float | None = None) -> Mask:
    """Fractional occupancy of ``structure`` on ``grid`` (see ``kernels/rasterize.py``).

    ``h_mm`` defaults to a quarter of the smaller in-plane spacing.
    """
    flat = flatten(structure, fallback_spacing_mm=float(grid.spacing[2]))
    h = h_mm or 0.25 * float(min(grid.spacing[0], grid.spacing[1]))
    offset, occ, outside_mm3 = rasterize(
        flat.z_lo, flat.z_hi, flat.plane_poly, flat.poly_start, flat.vx, flat.vy,
        grid.origin, grid.spacing, grid.z_mm, grid.shape, h,
    )
    return Mask(offset, occ, outside_mm3 / 1000.0, grid)
