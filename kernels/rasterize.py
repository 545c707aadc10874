"""Fractional occupancy of grid voxels by a contour-defined solid (Numba).

Same solid and scan-line scheme as ``kernels/dvh.py`` (even-odd over all polygons of a
plane, half-spacing slabs with end caps), with band edges also at the voxel boundaries so
that each row, sub-slab and chord piece lies in one voxel. Chords are exact in x; rows and
sub-slabs are midpoint samples of height <= ``h``. Only the structure's bounding box is
visited and stored.
"""

from __future__ import annotations

import numpy as np
from ._jit import kernel

from .contours import _active_crossings, _band_edges, _plane_edges, _update_active, _z_pieces


@kernel()
def _voxel_index(u, n):
    """Voxel index of fractional position ``u`` (voxel i spans [i - 0.5, i + 0.5))."""
    i = int(np.floor(u + 0.5))
    if i < 0:
        return -1
    if i >= n:
        return n
    return i


@kernel()
def _rasterize(
    plane_z_lo, plane_z_hi, plane_poly, poly_start, vx, vy,
    gx0, gdx, nx, gy0, gdy, ny, z_bounds, box, h,
):
    k_lo, k_hi, j_lo, j_hi, i_lo, i_hi = box[0], box[1], box[2], box[3], box[4], box[5]
    occ = np.zeros((k_hi - k_lo, j_hi - j_lo, i_hi - i_lo))
    outside = 0.0
    nz = z_bounds.shape[0] - 1
    extra = np.empty(ny + 1)
    for j in range(ny + 1):
        extra[j] = gy0 + (j - 0.5) * gdy
    for p in range(plane_z_lo.shape[0]):
        q_lo = plane_poly[p]
        q_hi = plane_poly[p + 1]
        v_lo = poly_start[q_lo]
        v_hi = poly_start[q_hi]
        if v_hi - v_lo < 3:
            continue
        bands = _band_edges(vy, v_lo, v_hi, extra)
        zp = _z_pieces(plane_z_lo[p], plane_z_hi[p], z_bounds)
        edges = _plane_edges(vx, vy, poly_start, q_lo, q_hi)
        active = np.empty(edges.shape[0], dtype=np.int64)
        n_active = 0
        next_edge = 0
        buf = np.empty(edges.shape[0] + 2)
        for b in range(bands.shape[0] - 1):
            y_a = bands[b]
            y_b = bands[b + 1]
            n_active, next_edge = _update_active(edges, active, n_active, next_edge,
                                                 0.5 * (y_a + y_b))
            n_rows = max(1, int(np.ceil((y_b - y_a) / h - 1e-9)))
            hr = (y_b - y_a) / n_rows
            j = _voxel_index((0.5 * (y_a + y_b) - gy0) / gdy, ny)
            for r in range(n_rows):
                y = y_a + (r + 0.5) * hr
                n = _active_crossings(edges, active, n_active, y, buf)
                for m in range(zp.shape[0] - 1):
                    zm = 0.5 * (zp[m] + zp[m + 1])
                    t = zp[m + 1] - zp[m]
                    k = np.searchsorted(z_bounds, zm) - 1
                    for c in range(0, n - 1, 2):
                        xa = buf[c]
                        xb = buf[c + 1]
                        if j < 0 or j >= ny or k < 0 or k >= nz:
                            outside += (xb - xa) * hr * t
                            continue
                        x = xa
                        while x < xb:
                            i = _voxel_index((x - gx0) / gdx + 1e-12, nx)
                            if i < 0:
                                x_end = min(xb, gx0 - 0.5 * gdx)
                            elif i >= nx:
                                x_end = xb
                            else:
                                x_end = min(xb, gx0 + (i + 0.5) * gdx)
                            w = (x_end - x) * hr * t
                            if 0 <= i < nx:
                                occ[k - k_lo, j - j_lo, i - i_lo] += w
                            else:
                                outside += w
                            if x_end <= x:
                                break
                            x = x_end
    return occ, outside


def rasterize(
    plane_z_lo: np.ndarray,
    plane_z_hi: np.ndarray,
    plane_poly: np.ndarray,
    poly_start: np.ndarray,
    vx: np.ndarray,
    vy: np.ndarray,
    grid_origin: np.ndarray,
    grid_spacing: np.ndarray,
    grid_z: np.ndarray,
    grid_shape: tuple[int, int, int],
    h_mm: float,
) -> tuple[tuple[int, int, int], np.ndarray, float]:
    """Fractional occupancy of each voxel of a grid by a contour stack.

    Parameters
    ----------
    plane_z_lo, plane_z_hi, plane_poly, poly_start, vx, vy
        Flat contour arrays (see ``rtplan_assist.geometry.FlatContours``).
    grid_origin, grid_spacing : (3,) float64
        Voxel-centre origin and spacing (x, y, z) in mm.
    grid_z : (nz,) float64
        Plane z values (ascending, possibly non-uniform).
    grid_shape : (nz, ny, nx)
    h_mm : float
        Largest row / sub-slab height in mm.

    Returns
    -------
    offset : (k0, j0, i0)
        Index of the bounding box's first voxel.
    occupancy : (bz, by, bx) float64
        Fraction of each voxel's volume inside the structure, in [0, 1].
    outside_mm3 : float
        Structure volume outside the grid.
    """
    nz, ny, nx = grid_shape
    gz = np.asarray(grid_z, dtype=np.float64)
    if nz > 1:
        mids = 0.5 * (gz[1:] + gz[:-1])
        z_bounds = np.concatenate([[gz[0] - (mids[0] - gz[0])], mids,
                                   [gz[-1] + (gz[-1] - mids[-1])]])
    else:
        z_bounds = np.array([gz[0] - grid_spacing[2] / 2, gz[0] + grid_spacing[2] / 2])
    gx0, gy0 = float(grid_origin[0]), float(grid_origin[1])
    gdx, gdy = float(grid_spacing[0]), float(grid_spacing[1])
    i_lo = int(np.clip(np.floor((vx.min() - gx0) / gdx + 0.5), 0, nx - 1))
    i_hi = int(np.clip(np.floor((vx.max() - gx0) / gdx + 0.5), 0, nx - 1)) + 1
    j_lo = int(np.clip(np.floor((vy.min() - gy0) / gdy + 0.5), 0, ny - 1))
    j_hi = int(np.clip(np.floor((vy.max() - gy0) / gdy + 0.5), 0, ny - 1)) + 1
    k_lo = int(np.clip(np.searchsorted(z_bounds, plane_z_lo.min(), side="right") - 1, 0, nz - 1))
    k_hi = int(np.clip(np.searchsorted(z_bounds, plane_z_hi.max(), side="left") - 1, 0, nz - 1)) + 1
    box = np.array([k_lo, k_hi, j_lo, j_hi, i_lo, i_hi], dtype=np.int64)
    occ, outside = _rasterize(
        np.ascontiguousarray(plane_z_lo, dtype=np.float64),
        np.ascontiguousarray(plane_z_hi, dtype=np.float64),
        np.ascontiguousarray(plane_poly, dtype=np.int64),
        np.ascontiguousarray(poly_start, dtype=np.int64),
        np.ascontiguousarray(vx, dtype=np.float64),
        np.ascontiguousarray(vy, dtype=np.float64),
        gx0, gdx, nx, gy0, gdy, ny, z_bounds, box, float(h_mm),
    )
    voxel_mm3 = gdx * gdy * np.diff(z_bounds)[k_lo:k_hi]
    occ = np.clip(occ / voxel_mm3[:, None, None], 0.0, 1.0)
    return (k_lo, j_lo, i_lo), occ, float(outside)
