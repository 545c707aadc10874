"""Trilinear resampling of a dose grid onto another axis-aligned grid.

Both grids are axis-aligned and share a frame of reference, so the interpolation is separable:
for each target coordinate along an axis the wrapper finds the two bracketing source voxel
centres and the weight of the upper one (:func:`axis_weights`), and the private loop combines
the eight neighbours. No pydicom, no classes: arrays in, arrays out.

Edge behaviour (the same convention as the DVH engine's coverage, ``Grid.extent_mm``): a dose
grid defines dose over its voxel *extent*, half a voxel beyond the outermost centres. Target
points inside the extent but beyond the outermost centre take the outermost value (constant
extrapolation over that half voxel); points outside the extent get 0 Gy and are flagged in the
returned ``outside`` mask so that callers can say so instead of assuming 0 Gy.

Reference: trilinear interpolation as in any texture sampler (e.g. Press et al., Numerical
Recipes, 3rd ed., §3.6 "Interpolation on a grid in multidimensions").
"""

from __future__ import annotations

import numpy as np
from ._jit import kernel

__all__ = ["axis_weights", "resample_trilinear"]


def axis_weights(
    source_mm: np.ndarray, target_mm: np.ndarray, half_lo_mm: float, half_hi_mm: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bracketing indices and weights of target coordinates on a source axis.

    Parameters
    ----------
    source_mm : (S,) float array
        Source voxel-centre coordinates (mm), strictly ascending (uniform or not).
    target_mm : (T,) float array
        Target coordinates (mm).
    half_lo_mm, half_hi_mm : float
        Half voxel sizes (mm) below the first and above the last source centre: the source
        extent is ``[source[0] - half_lo, source[-1] + half_hi]``.

    Returns
    -------
    lo : (T,) int64
        Index of the lower source centre; -1 where the target lies outside the extent.
    weight : (T,) float64
        Weight of ``lo + 1`` (0 where ``lo`` is the last index or outside).
    inside : (T,) bool
    """
    source = np.ascontiguousarray(source_mm, dtype=np.float64)
    target = np.ascontiguousarray(target_mm, dtype=np.float64)
    inside = (target >= source[0] - half_lo_mm - 1e-9) & (target <= source[-1] + half_hi_mm + 1e-9)
    clamped = np.clip(target, source[0], source[-1])
    if len(source) == 1:
        lo = np.zeros(len(target), dtype=np.int64)
        weight = np.zeros(len(target))
    else:
        lo = np.clip(np.searchsorted(source, clamped, side="right") - 1, 0, len(source) - 2)
        weight = (clamped - source[lo]) / (source[lo + 1] - source[lo])
        weight = np.clip(weight, 0.0, 1.0)
    lo = np.where(inside, lo, -1).astype(np.int64)
    weight = np.where(inside, weight, 0.0)
    return lo, weight, inside


@kernel()
def _resample(values, z_lo, z_w, y_lo, y_w, x_lo, x_w, out, outside):
    nz, ny, nx = out.shape
    sz, sy, sx = values.shape
    for k in range(nz):
        k0 = z_lo[k]
        for j in range(ny):
            j0 = y_lo[j]
            for i in range(nx):
                i0 = x_lo[i]
                if k0 < 0 or j0 < 0 or i0 < 0:
                    out[k, j, i] = 0.0
                    outside[k, j, i] = True
                    continue
                k1 = min(k0 + 1, sz - 1)
                j1 = min(j0 + 1, sy - 1)
                i1 = min(i0 + 1, sx - 1)
                wz, wy, wx = z_w[k], y_w[j], x_w[i]
                c00 = values[k0, j0, i0] * (1.0 - wx) + values[k0, j0, i1] * wx
                c01 = values[k0, j1, i0] * (1.0 - wx) + values[k0, j1, i1] * wx
                c10 = values[k1, j0, i0] * (1.0 - wx) + values[k1, j0, i1] * wx
                c11 = values[k1, j1, i0] * (1.0 - wx) + values[k1, j1, i1] * wx
                c0 = c00 * (1.0 - wy) + c01 * wy
                c1 = c10 * (1.0 - wy) + c11 * wy
                out[k, j, i] = c0 * (1.0 - wz) + c1 * wz
                outside[k, j, i] = False


def resample_trilinear(
    values: np.ndarray,
    source_axes: tuple[np.ndarray, np.ndarray, np.ndarray],
    source_half: tuple[tuple[float, float], tuple[float, float], tuple[float, float]],
    target_axes: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Resample a ``[z, y, x]`` array onto the voxel centres of another axis-aligned grid.

    Parameters
    ----------
    values : (sz, sy, sx) float array
        Source values (e.g. dose in Gy); any real dtype, converted to float64.
    source_axes : (z_mm, y_mm, x_mm)
        Source voxel-centre coordinates per axis (mm), ascending, lengths sz, sy, sx.
    source_half : ((z_lo, z_hi), (y_lo, y_hi), (x_lo, x_hi))
        Half voxel sizes (mm) below the first and above the last centre on each axis.
    target_axes : (z_mm, y_mm, x_mm)
        Target voxel-centre coordinates per axis (mm), lengths tz, ty, tx.

    Returns
    -------
    out : (tz, ty, tx) float64
        Trilinearly interpolated values; 0 outside the source extent.
    outside : (tz, ty, tx) bool
        True where the target voxel centre lies outside the source extent.

    Raises
    ------
    ValueError
        Axis lengths that do not match ``values.shape``.
    """
    values = np.ascontiguousarray(values, dtype=np.float64)
    if values.ndim != 3:
        raise ValueError(f"values must be 3-D [z, y, x], got shape {values.shape}")
    for axis, (coords, size) in enumerate(zip(source_axes, values.shape)):
        if len(coords) != size:
            raise ValueError(f"source axis {axis} has {len(coords)} coordinates for {size} voxels")
    weights = [
        axis_weights(src, tgt, lo, hi)
        for src, tgt, (lo, hi) in zip(source_axes, target_axes, source_half)
    ]
    shape = tuple(len(t) for t in target_axes)
    out = np.empty(shape, dtype=np.float64)
    outside = np.empty(shape, dtype=np.bool_)
    (z_lo, z_w, _), (y_lo, y_w, _), (x_lo, x_w, _) = weights
    _resample(values, z_lo, z_w, y_lo, y_w, x_lo, x_w, out, outside)
    return out, outside
