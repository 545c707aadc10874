"""DVH accumulation over the solid a structure's contours define (Numba).

The solid is the stack of right prisms of each plane's polygons (even-odd), each plane
standing for a slab ``[z_lo, z_hi]`` of half the plane spacing on each side, with end caps
(Nelms et al., Med Phys 2015;42(8):4435-48, the convention behind their analytical values).

Integration, per plane:

* **y**: rows of height ``<= h`` between dose-grid rows (kinks of the bilinear dose).
  Each row carries the exact area of its strip: the chord length is linear in ``y``
  between polygon vertices, so the midpoint rule on each vertex-to-vertex piece is exact
  (see ``contours.py``); the dose is sampled on one line inside the strip;
* **z**: the slab is split at every dose plane and into sub-slabs of thickness ``<= h``;
  the prism is constant in ``z``, so the volume is exact;
* sample phases inside rows and sub-slabs vary from row to row (low-discrepancy
  sequences) so that the stair steps of midpoint sampling do not line up across planes
  and rows: the DVH's quantiles converge much faster than ``h / 2``; the volume stays
  exact and the mean unbiased;
* **x**: exact. Along a row the trilinear dose is piecewise linear between dose-grid
  columns, so each piece of a chord carries a *uniform* dose distribution between its end
  doses. Its contribution to the cumulative histogram is a ramp, accumulated exactly at
  fractional bin positions with two arrays (an offset and a slope per bin).

The result is the CDF (volume with dose below each bin edge) of the piecewise-linear dose
over the exact solid; the only approximation is the midpoint in ``y`` and ``z`` over
``h``. Dose outside the grid's voxel extent is not extrapolated: that volume is returned
separately. In the half voxel between the outermost voxel centres and the grid's edge the
dose is held constant (nearest).

**Extremes** (``_plane_extremes``) are exact for the trilinear field, whatever the
structure's size. A trilinear function is harmonic (each term is linear in each coordinate),
so on any region its extremes lie on the region's boundary (maximum principle); applied to
the solid cut by the dose cells and followed down the dimensions: in z the dose is linear
between dose planes, so the extremes lie on the slab faces or on a dose plane inside the slab
(the *levels*); on a level, the region is the plane's polygons, and the extremes lie on a
polygon edge or on a dose row/column line inside, where the dose is linear between nodes: so
at a grid node inside the polygon or at a chord end. Along a polygon edge inside one cell the
dose is a quadratic in the edge parameter (the x·y term), so its extremes are at the piece's
ends (vertices, crossings with grid lines) or at the quadratic's stationary point. The kernel
evaluates exactly these candidates: edge pieces (ends + stationary point) and row chords at
every dose row (ends + every node between), at every level.

**Dose-adaptive refinement.** Rows and sub-slabs are ``h`` apart (``h`` up to the dose
spacing for litre-sized organs), so a hot spot of one voxel inside a large structure would be
sampled by one or two rows. The extremes pass also histograms the node values inside the
solid; the dose cells whose corner maximum lies above the structure's top ``refine_q``
quantile of nodes (or whose minimum lies below the bottom one) are *hot*, and every chord
piece in a hot cell is sampled ``r × r`` times in (y, z) instead of once, with ``r`` from a
work budget for the hot volume (``refine_budget_mm`` of chord). x stays exact. The
D-metrics of the top and bottom of the DVH (D0.03cc, D2%, D98%) so get the sampling a small
structure gets.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from ._jit import kernel

from .contours import _active_crossings, _band_edges, _plane_edges, _update_active, _z_pieces

STAT_INSIDE_MM3 = 0
STAT_OUTSIDE_MM3 = 1
STAT_DOSE_MM3 = 2  # integral of dose over the inside volume (Gy mm³)
STAT_MIN = 3
STAT_MAX = 4
N_STATS = 5


@kernel(nogil=True)
def _locate(u, n):
    """Index of the lower node and the weight of the upper for fractional index ``u``."""
    if n == 1:
        return 0, 0, 0.0
    if u <= 0.0:
        return 0, 1, 0.0
    if u >= n - 1:
        return n - 2, n - 1, 1.0
    i0 = int(u)
    return i0, i0 + 1, u - i0


@kernel(nogil=True)
def _locate_z(z, gz):
    n = gz.shape[0]
    if n == 1 or z <= gz[0]:
        return 0, min(1, n - 1), 0.0
    if z >= gz[n - 1]:
        return n - 2, n - 1, 1.0
    k1 = np.searchsorted(gz, z, side="right")
    k0 = k1 - 1
    return k0, k1, (z - gz[k0]) / (gz[k1] - gz[k0])


@kernel(nogil=True)
def _node(dose, k0, k1, wz, j0, j1, wy, i):
    """Dose at grid column ``i`` interpolated bilinearly in (y, z)."""
    a = (1.0 - wy) * dose[k0, j0, i] + wy * dose[k0, j1, i]
    b = (1.0 - wy) * dose[k1, j0, i] + wy * dose[k1, j1, i]
    return (1.0 - wz) * a + wz * b


@kernel(nogil=True)
def _dose_at_x(dose, k0, k1, wz, j0, j1, wy, x, gx0, gdx, nx):
    i0, i1, t = _locate((x - gx0) / gdx, nx)
    return (1.0 - t) * _node(dose, k0, k1, wz, j0, j1, wy, i0) + t * _node(
        dose, k0, k1, wz, j0, j1, wy, i1
    )


@kernel(nogil=True)
def _span_edges(y0, y1, extra):
    """Sorted band edges: ``y0``, the values of ``extra`` strictly between, ``y1``."""
    inner = np.sort(extra)
    out = np.empty(extra.shape[0] + 2)
    out[0] = y0
    n = 1
    for v in inner:
        if y0 < v < y1 and v - out[n - 1] > 1e-9:
            out[n] = v
            n += 1
    if y1 - out[n - 1] > 1e-9 or n == 1:
        out[n] = y1
        n += 1
    return out[:n]


@kernel(nogil=True)
def _jitter(a, b):
    """A deterministic offset in [0, 1) from two coordinates (mm), via golden-ratio
    sequences (R2, Roberts 2018): neighbouring planes and rows sample different phases."""
    v = 0.5 + 0.7548776662466927 * np.floor(a * 1000.0 + 0.5) + 0.5698402909980532 * np.floor(
        b * 1000.0 + 0.5
    )
    return v - np.floor(v)


@kernel(nogil=True)
def _phase(u, i):
    """Sample position in [0, 1) inside the ``i``-th sub-slab of a row: a golden-ratio
    walk from the row's phase ``u``. The prism is constant in z, so any phase keeps the
    volume exact; varying it spreads the samples of all rows over the slab."""
    v = u + 0.6180339887498949 * i
    return v - np.floor(v)


@kernel(nogil=True)
def _row_dose(node, x, gx0, gdx, nx):
    """Dose at ``x`` on a row from its node values (linear between columns, held outside)."""
    i0, i1, t = _locate((x - gx0) / gdx, nx)
    return (1.0 - t) * node[i0] + t * node[i1]


@kernel(nogil=True)
def _dose_uv(dose, k0, k1, wz, u, v, nx, ny):
    """Trilinear dose at fractional column ``u`` and row ``v`` on level (k0, k1, wz)."""
    j0, j1, s = _locate(v, ny)
    return _replay_dose(dose, k0, k1, j0, j1, wz, s, u, nx)


@kernel(nogil=True)
def _corner_range(dose, k0, k1, j0, j1, i0, i1):
    """(lowest, highest) of the eight corner values of the dose cell (k0|k1, j0|j1, i0|i1):
    they bound the trilinear dose anywhere in the cell."""
    c_hi = -np.inf
    c_lo = np.inf
    for k in (k0, k1):
        for j in (j0, j1):
            for i in (i0, i1):
                c_hi = max(c_hi, dose[k, j, i])
                c_lo = min(c_lo, dose[k, j, i])
    return c_lo, c_hi


@kernel(nogil=True)
def _cannot_improve(c_lo, c_hi, d_min, d_max):
    """True when a piece whose dose lies between corner values ``c_lo`` and ``c_hi`` can
    change neither ``d_min`` nor ``d_max``. Interpolation may round a few ulps past its
    corners, hence the margins, except that non-negative corners give non-negative values
    exactly (so a zero-dose minimum, common outside the fields, needs no margin). The piece
    holding the overall extreme is therefore never skipped, in any visiting order."""
    can_raise = c_hi + 1e-12 * abs(c_hi) >= d_max
    can_lower = c_lo - 1e-12 * abs(c_lo) <= d_min and not (c_lo >= 0.0 and d_min <= 0.0)
    return not can_raise and not can_lower


EXT_EDGE = 0  # a polygon-edge piece inside one dose cell: ends + stationary point
EXT_ROW = 1  # a chord along a dose row: ends + every grid node between


@kernel(nogil=True)
def _extreme_piece(dose, k0, k1, wz, kind, u0, v0, u1, v1, nx, ny, hist, inv_delta,
                   d_min, d_max):
    """(min, max) of the trilinear dose over one extreme-candidate piece (module docstring),
    or (inf, -inf) for an edge piece whose cell's corner values cannot beat ``d_min`` and
    ``d_max`` (the piece then cannot hold the overall extreme, whatever the order in which
    pieces are visited: the kernel and the replay give the same Dmin/Dmax).

    ``hist`` (when it has room) counts the values of the grid nodes of a row chord, per bin
    of width ``1 / inv_delta``: the node distribution the refinement thresholds come from.
    """
    if kind == EXT_EDGE:
        i0, i1, _ = _locate(0.5 * (u0 + u1), nx)
        j0, j1, _ = _locate(0.5 * (v0 + v1), ny)
        c_lo, c_hi = _corner_range(dose, k0, k1, j0, j1, i0, i1)
        if _cannot_improve(c_lo, c_hi, d_min, d_max):
            return np.inf, -np.inf
    d0 = _dose_uv(dose, k0, k1, wz, u0, v0, nx, ny)
    d1 = _dose_uv(dose, k0, k1, wz, u1, v1, nx, ny)
    lo = min(d0, d1)
    hi = max(d0, d1)
    if kind == EXT_EDGE:
        dm = _dose_uv(dose, k0, k1, wz, 0.5 * (u0 + u1), 0.5 * (v0 + v1), nx, ny)
        a = 2.0 * (d1 - 2.0 * dm + d0)  # q(s) = d0 + b s + a s² through d0, dm, d1
        if a != 0.0:
            b = d1 - d0 - a
            st = -b / (2.0 * a)
            if 0.0 < st < 1.0:
                ds = _dose_uv(dose, k0, k1, wz, u0 + st * (u1 - u0), v0 + st * (v1 - v0), nx, ny)
                lo = min(lo, ds)
                hi = max(hi, ds)
    else:
        j = int(v0 + 0.5)
        i_a = max(int(np.floor(u0)) + 1, 0)
        i_b = min(int(np.ceil(u1)) - 1, nx - 1)
        n_bins = hist.shape[0]
        for i in range(i_a, i_b + 1):
            d = dose[k0, j, i] + wz * (dose[k1, j, i] - dose[k0, j, i])
            lo = min(lo, d)
            hi = max(hi, d)
            if n_bins > 1:
                b_i = min(max(int(d * inv_delta), 0), n_bins - 1)
                hist[b_i] += 1.0
    return lo, hi


@kernel(nogil=True)
def _deposit(acc, d_lo, d_hi, w, inv_delta, n_edges):
    """Add a uniform dose distribution on [d_lo, d_hi] of volume ``w`` to the CDF arrays.

    The CDF at bin edge ``k`` is ``sum_{b<k} acc[b, 0] + acc[b, 1] * (k - b)`` (offset
    and slope interleaved so that one deposit touches one cache line per end). A ramp of slope
    ``r`` (volume per bin) starting at fractional bin ``a`` contributes ``r (k - a)`` for
    ``k > a`` and is stopped at ``b`` by the opposite ramp.
    """
    a = d_lo * inv_delta
    b = d_hi * inv_delta
    ba = int(a)
    bb = int(b)
    if ba >= n_edges - 1:
        ba = n_edges - 2
    if bb >= n_edges - 1:
        bb = n_edges - 2
    if bb == ba or b - a < 1e-6:
        acc[ba, 0] += w
        return
    r = w / (b - a)
    acc[ba, 1] += r
    acc[ba, 0] -= r * (a - ba)
    acc[bb, 1] -= r
    acc[bb, 0] += r * (b - bb)


class _Recording(NamedTuple):
    """Samples of one run of the kernel, for replay on other dose arrays of the same grid.

    ``rows_i[r] = (k0, k1, j0, j1, first segment)`` and ``rows_f[r] = (wz, wy)``: the dose
    planes, rows and weights of one row × sub-slab; ``segs[s] = (u0, u1, volume mm³)``: a
    chord piece from fractional column ``u0`` to ``u1``; ``ext_i[e] = (k0, k1, kind)`` and
    ``ext_f[e] = (wz, u0, v0, u1, v1)`` the extreme-candidate pieces of Dmin/Dmax
    (``_extreme_piece``). ``counts`` (rows, segments, pieces) counts everything, also past
    the capacity of the arrays (nothing is written there).
    """

    record: bool
    rows_i: np.ndarray
    rows_f: np.ndarray
    segs: np.ndarray
    ext_i: np.ndarray
    ext_f: np.ndarray
    counts: np.ndarray


def _recording(n_rows: int, n_segs: int, n_ext: int, record: bool = True) -> _Recording:
    return _Recording(
        record,
        np.zeros((n_rows, 5), dtype=np.int32),
        np.zeros((n_rows, 2)),
        np.zeros((n_segs, 3)),
        np.zeros((n_ext, 3), dtype=np.int32),
        np.zeros((n_ext, 5)),
        np.zeros(3, dtype=np.int64),
    )


@kernel(nogil=True)
def _record_row(rec, k0, k1, j0, j1, wz, wy):
    r = rec.counts[0]
    if r < rec.rows_i.shape[0]:
        rec.rows_i[r, 0] = k0
        rec.rows_i[r, 1] = k1
        rec.rows_i[r, 2] = j0
        rec.rows_i[r, 3] = j1
        rec.rows_i[r, 4] = rec.counts[1]
        rec.rows_f[r, 0] = wz
        rec.rows_f[r, 1] = wy
    rec.counts[0] = r + 1


@kernel(nogil=True)
def _record_segment(rec, u0, u1, w):
    s = rec.counts[1]
    if s < rec.segs.shape[0]:
        rec.segs[s, 0] = u0
        rec.segs[s, 1] = u1
        rec.segs[s, 2] = w
    rec.counts[1] = s + 1


@kernel(nogil=True)
def _record_ext(rec, k0, k1, kind, wz, u0, v0, u1, v1):
    q = rec.counts[2]
    if q < rec.ext_i.shape[0]:
        rec.ext_i[q, 0] = k0
        rec.ext_i[q, 1] = k1
        rec.ext_i[q, 2] = kind
        rec.ext_f[q, 0] = wz
        rec.ext_f[q, 1] = u0
        rec.ext_f[q, 2] = v0
        rec.ext_f[q, 3] = u1
        rec.ext_f[q, 4] = v1
    rec.counts[2] = q + 1


@kernel(nogil=True)
def _slab_levels(p, plane_z_lo, plane_z_hi, gz, cov):
    """z pieces of plane ``p``'s slab: split at every dose plane and the coverage limits."""
    nz = gz.shape[0]
    zbreaks = np.empty(nz + 2)
    for k in range(nz):
        zbreaks[k] = gz[k]
    zbreaks[nz] = cov[2, 0]
    zbreaks[nz + 1] = cov[2, 1]
    return _z_pieces(plane_z_lo[p], plane_z_hi[p], zbreaks)


@kernel(nogil=True)
def _plane_extremes(
    p, plane_z_lo, plane_z_hi, plane_poly, poly_start, vx, vy,
    dose, gx0, gdx, gy0, gdy, gz, cov, stats, rec, hist, inv_delta,
):
    """Exact Dmin/Dmax of plane ``p``'s slab (module docstring): every candidate piece at
    every level, recorded for the replay; node values counted in ``hist``."""
    nz, ny, nx = dose.shape
    q_lo = plane_poly[p]
    q_hi = plane_poly[p + 1]
    v_lo = poly_start[q_lo]
    v_hi = poly_start[q_hi]
    if v_hi - v_lo < 3:
        return
    zp = _slab_levels(p, plane_z_lo, plane_z_hi, gz, cov)
    n_lev = 0
    lev_k0 = np.empty(zp.shape[0], dtype=np.int64)
    lev_k1 = np.empty(zp.shape[0], dtype=np.int64)
    lev_wz = np.empty(zp.shape[0])
    for m in range(zp.shape[0]):
        z = zp[m]
        if z < cov[2, 0] or z > cov[2, 1]:
            continue
        k0, k1, wz = _locate_z(z, gz)
        lev_k0[n_lev] = k0
        lev_k1[n_lev] = k1
        lev_wz[n_lev] = wz
        n_lev += 1
    if n_lev == 0:
        return
    # dose planes the levels interpolate between: bounds of every candidate of the slab
    k_lo = nz
    k_hi = 0
    for m in range(n_lev):
        k_lo = min(k_lo, lev_k0[m])
        k_hi = max(k_hi, lev_k1[m])
    z_lo = plane_z_lo[p]
    z_hi = plane_z_hi[p]
    skip_ok = not rec.record  # a recording keeps every piece (it serves any dose array)
    n_bins = hist.shape[0]
    d_min = stats[STAT_MIN]
    d_max = stats[STAT_MAX]
    # coverage box in fractional grid coordinates
    cu0 = (cov[0, 0] - gx0) / gdx
    cu1 = (cov[0, 1] - gx0) / gdx
    cv0 = (cov[1, 0] - gy0) / gdy
    cv1 = (cov[1, 1] - gy0) / gdy
    # chords along every dose row inside the plane's polygons (grid nodes inside); first,
    # so that the edge pieces below can often be skipped. Node values counted at one level.
    no_hist = np.zeros(1)
    edges = _plane_edges(vx, vy, poly_start, q_lo, q_hi)
    active = np.empty(edges.shape[0], dtype=np.int64)
    buf = np.empty(edges.shape[0] + 2)
    n_active = 0
    next_edge = 0
    y_min = np.inf
    y_max = -np.inf
    for v in range(v_lo, v_hi):
        y_min = min(y_min, vy[v])
        y_max = max(y_max, vy[v])
    j_first = max(int(np.ceil((y_min - gy0) / gdy)), 0)
    j_last = min(int(np.floor((y_max - gy0) / gdy)), ny - 1)
    for j in range(j_first, j_last + 1):
        y = gy0 + j * gdy
        n_active, next_edge = _update_active(edges, active, n_active, next_edge, y)
        n = _active_crossings(edges, active, n_active, y, buf)
        for c in range(0, n - 1, 2):
            ua = max((buf[c] - gx0) / gdx, cu0)
            ub = min((buf[c + 1] - gx0) / gdx, cu1)
            if ub < ua:
                continue
            # one scan of the row's nodes on the slab's dose planes: a bound for the whole
            # chord at every level, and the node values (planes inside the slab) for ``hist``
            c_hi = -np.inf
            c_lo = np.inf
            i_a = min(max(int(np.floor(ua)), 0), nx - 1)
            i_b = min(max(int(np.ceil(ub)), 0), nx - 1)
            for k in range(k_lo, k_hi + 1):
                count = n_bins > 1 and z_lo <= gz[k] < z_hi
                for i in range(i_a, i_b + 1):
                    d = dose[k, j, i]
                    c_hi = max(c_hi, d)
                    c_lo = min(c_lo, d)
                    if count and ua < i < ub:
                        hist[min(max(int(d * inv_delta), 0), n_bins - 1)] += 1.0
            if skip_ok and _cannot_improve(c_lo, c_hi, d_min, d_max):
                continue
            for m in range(n_lev):
                lo, hi = _extreme_piece(dose, lev_k0[m], lev_k1[m], lev_wz[m], EXT_ROW,
                                        ua, float(j), ub, float(j), nx, ny,
                                        no_hist, inv_delta, d_min, d_max)
                d_min = min(d_min, lo)
                d_max = max(d_max, hi)
                if rec.record:
                    _record_ext(rec, lev_k0[m], lev_k1[m], EXT_ROW, lev_wz[m], ua, float(j),
                                ub, float(j))
    ts = np.empty(nx + ny + 4)
    last_ic = -1
    last_jc = -1
    c_hi = -np.inf
    c_lo = np.inf
    # polygon edges, split at grid columns and rows (the dose is quadratic on each piece)
    for q in range(q_lo, q_hi):
        a_v = poly_start[q]
        b_v = poly_start[q + 1]
        for v in range(a_v, b_v):
            w_v = v + 1 if v + 1 < b_v else a_v
            pu = (vx[v] - gx0) / gdx
            pv = (vy[v] - gy0) / gdy
            qu = (vx[w_v] - gx0) / gdx
            qv = (vy[w_v] - gy0) / gdy
            du = qu - pu
            dv = qv - pv
            if (cu0 <= min(pu, qu) and max(pu, qu) <= cu1 and cv0 <= min(pv, qv)
                    and max(pv, qv) <= cv1 and np.floor(pu) == np.floor(qu)
                    and np.floor(pv) == np.floor(qv)):
                # the common case (vertices closer than the dose spacing): one piece
                ts[0] = 0.0
                ts[1] = 1.0
                n_t = 2
            else:
                # clip the edge to the coverage box (Liang-Barsky)
                t_in = 0.0
                t_out = 1.0
                ok = True
                for axis in range(2):
                    d = du if axis == 0 else dv
                    p0 = pu if axis == 0 else pv
                    lo_b = cu0 if axis == 0 else cv0
                    hi_b = cu1 if axis == 0 else cv1
                    if d == 0.0:
                        if p0 < lo_b or p0 > hi_b:
                            ok = False
                    else:
                        ta = (lo_b - p0) / d
                        tb = (hi_b - p0) / d
                        if ta > tb:
                            ta, tb = tb, ta
                        t_in = max(t_in, ta)
                        t_out = min(t_out, tb)
                if not ok or t_in > t_out:
                    continue
                ts[0] = t_in
                n_t = 1
                for axis in range(2):
                    d = du if axis == 0 else dv
                    p0 = pu if axis == 0 else pv
                    n_lines = nx if axis == 0 else ny
                    if d == 0.0:
                        continue
                    e_lo = min(p0 + t_in * d, p0 + t_out * d)
                    e_hi = max(p0 + t_in * d, p0 + t_out * d)
                    for i in range(max(int(np.ceil(e_lo)), 0),
                                   min(int(np.floor(e_hi)), n_lines - 1) + 1):
                        t = (i - p0) / d
                        if t_in < t < t_out:
                            # insertion keeps ts sorted (few crossings per edge)
                            k = n_t
                            while k > 0 and ts[k - 1] > t:
                                ts[k] = ts[k - 1]
                                k -= 1
                            ts[k] = t
                            n_t += 1
                ts[n_t] = t_out
                n_t += 1
            for c in range(n_t - 1):
                ua = pu + ts[c] * du
                va = pv + ts[c] * dv
                ub = pu + ts[c + 1] * du
                vb = pv + ts[c + 1] * dv
                if skip_ok:
                    # the piece's cell on the slab's dose planes bounds it at every level
                    # (the cell _locate picks; consecutive pieces often share it)
                    ic = min(max(int(np.floor(0.5 * (ua + ub))), 0), max(nx - 2, 0))
                    jc = min(max(int(np.floor(0.5 * (va + vb))), 0), max(ny - 2, 0))
                    if ic != last_ic or jc != last_jc:
                        last_ic = ic
                        last_jc = jc
                        c_hi = -np.inf
                        c_lo = np.inf
                        for k in range(k_lo, k_hi + 1):
                            for jj in range(jc, min(jc + 1, ny - 1) + 1):
                                for ii in range(ic, min(ic + 1, nx - 1) + 1):
                                    c_hi = max(c_hi, dose[k, jj, ii])
                                    c_lo = min(c_lo, dose[k, jj, ii])
                    if _cannot_improve(c_lo, c_hi, d_min, d_max):
                        continue
                for m in range(n_lev):
                    lo, hi = _extreme_piece(dose, lev_k0[m], lev_k1[m], lev_wz[m], EXT_EDGE,
                                            ua, va, ub, vb, nx, ny, no_hist, inv_delta,
                                            d_min, d_max)
                    d_min = min(d_min, lo)
                    d_max = max(d_max, hi)
                    if rec.record:
                        _record_ext(rec, lev_k0[m], lev_k1[m], EXT_EDGE, lev_wz[m], ua, va, ub, vb)
    stats[STAT_MIN] = d_min
    stats[STAT_MAX] = d_max


@kernel(nogil=True)
def _plane(
    p, plane_z_lo, plane_z_hi, plane_poly, poly_start, vx, vy,
    dose, gx0, gdx, gy0, gdy, gz, cov, h, inv_delta, acc, stats, rec,
    t_hi, t_lo, r_ref,
):
    # ``rec.record``: also write every sample down (see ``_Recording``) so that the same
    # geometry can be replayed on other dose arrays of this grid (``_replay``; never with
    # refinement, ``r_ref == 1``). A chord piece in a dose cell whose corner maximum is above
    # ``t_hi`` or minimum below ``t_lo`` is sampled ``r_ref²`` times (``_refine_chord``).
    nz, ny, nx = dose.shape
    q_lo = plane_poly[p]
    q_hi = plane_poly[p + 1]
    v_lo = poly_start[q_lo]
    v_hi = poly_start[q_hi]
    if v_hi - v_lo < 3:
        return
    n_edges = acc.shape[0]
    z_lo = plane_z_lo[p]
    z_hi = plane_z_hi[p]

    # Rows are laid in bands between dose rows (kinks of the bilinear dose) and the grid
    # edges; the polygon vertices are kinks of the chord length, integrated exactly below.
    kinks = _band_edges(vy, v_lo, v_hi, np.empty(0))
    n_kinks = kinks.shape[0]
    extra = np.empty(ny + 2)
    for j in range(ny):
        extra[j] = gy0 + j * gdy
    extra[ny] = cov[1, 0]
    extra[ny + 1] = cov[1, 1]
    bands = _span_edges(kinks[0], kinks[n_kinks - 1], extra)

    zp = _slab_levels(p, plane_z_lo, plane_z_hi, gz, cov)
    n_zp = zp.shape[0] - 1
    # sub-slabs: start and thickness; the sample position inside each is set per row
    # (see _phase)
    n_sub = 0
    for m in range(n_zp):
        n_sub += max(1, int(np.ceil((zp[m + 1] - zp[m]) / h - 1e-9)))
    sub_start = np.empty(n_sub)
    sub_t = np.empty(n_sub)
    s = 0
    for m in range(n_zp):
        k = max(1, int(np.ceil((zp[m + 1] - zp[m]) / h - 1e-9)))
        t = (zp[m + 1] - zp[m]) / k
        for i in range(k):
            sub_start[s] = zp[m] + i * t
            sub_t[s] = t
            s += 1

    edges = _plane_edges(vx, vy, poly_start, q_lo, q_hi)
    active = np.empty(edges.shape[0], dtype=np.int64)
    n_active = 0
    next_edge = 0
    s_active = np.empty(edges.shape[0], dtype=np.int64)
    n_s_active = 0
    next_s_edge = 0
    buf = np.empty(edges.shape[0] + 2)
    buf_mid = np.empty(edges.shape[0] + 2)
    buf_best = np.empty(edges.shape[0] + 2)
    # scalar accumulators stay in registers (writes to ``stats`` would alias ``acc``)
    acc_in = 0.0
    acc_out = 0.0
    acc_dose = 0.0
    d_min = stats[STAT_MIN]
    d_max = stats[STAT_MAX]
    # node values along a row: plane k0 and k1 interpolated in y, then mixed in z. Zeroed:
    # a column outside the range filled below is only ever read with weight 0, and
    # 0 * (uninitialised memory) can be NaN (the intermittent NaN of issue 11)
    row_a = np.zeros(nx)
    row_b = np.zeros(nx)
    node = np.zeros(nx)
    kp = 1  # next vertex y above the integration point
    for b in range(bands.shape[0] - 1):
        y_a = bands[b]
        y_b = bands[b + 1]
        n_rows = max(1, int(np.ceil((y_b - y_a) / h - 1e-9)))
        hr = (y_b - y_a) / n_rows
        for r in range(n_rows):
            lo = y_a + r * hr
            hi = y_b if r == n_rows - 1 else lo + hr
            # Exact area of the strip [lo, hi]: the chord length is linear between vertex
            # y values, so the midpoint rule on each piece is exact (shoelace argument).
            strip = 0.0
            best = 0.0
            best_y = 0.5 * (lo + hi)
            n_best = 0
            t = lo
            while True:
                k_next = kinks[kp] if kp < n_kinks else np.inf
                end = min(k_next, hi)
                if end > t:
                    mid = 0.5 * (t + end)
                    n_active, next_edge = _update_active(edges, active, n_active, next_edge, mid)
                    n_mid = _active_crossings(edges, active, n_active, mid, buf_mid)
                    piece = 0.0
                    for c in range(0, n_mid - 1, 2):
                        piece += buf_mid[c + 1] - buf_mid[c]
                    piece *= end - t
                    strip += piece
                    if piece > best:
                        best = piece
                        best_y = mid
                        n_best = n_mid
                        for c in range(n_mid):
                            buf_best[c] = buf_mid[c]
                if k_next >= hi:
                    break
                t = k_next
                kp += 1
            if strip <= 0.0:
                continue
            y_lo_strip = lo
            y_hi_strip = hi
            # Sample the dose at a phase that varies from row to row (no aligned stair
            # steps across planes), weighted so that the row carries the exact strip area.
            y = lo + _jitter(lo, z_lo) * (hi - lo)
            n_s_active, next_s_edge = _update_active(edges, s_active, n_s_active, next_s_edge, y)
            n = _active_crossings(edges, s_active, n_s_active, y, buf)
            chord_s = 0.0
            for c in range(0, n - 1, 2):
                chord_s += buf[c + 1] - buf[c]
            if n < 2 or chord_s * (hi - lo) < 0.25 * strip:
                y = best_y
                n = n_best
                chord_s = 0.0
                for c in range(n):
                    buf[c] = buf_best[c]
                for c in range(0, n - 1, 2):
                    chord_s += buf[c + 1] - buf[c]
            row_h = strip / chord_s
            u_row = _jitter(y, z_hi)
            if y < cov[1, 0] or y > cov[1, 1]:
                acc_out += strip * (z_hi - z_lo)
                continue
            j0, j1, wy = _locate((y - gy0) / gdy, ny)
            if max(buf[0], cov[0, 0]) >= min(buf[n - 1], cov[0, 1]):
                acc_out += strip * (z_hi - z_lo)
                continue
            k_prev = -1
            for s in range(n_sub):
                z = sub_start[s] + _phase(u_row, s) * sub_t[s]
                area = row_h * sub_t[s]
                if z < cov[2, 0] or z > cov[2, 1]:
                    acc_out += chord_s * area
                    continue
                k0, k1, wz = _locate_z(z, gz)
                refresh = k0 != k_prev
                k_prev = k0
                if rec.record:
                    _record_row(rec, k0, k1, j0, j1, wz, wy)
                for c in range(0, n - 1, 2):
                    xa = buf[c]
                    xb = buf[c + 1]
                    xa_c = max(xa, cov[0, 0])
                    xb_c = min(xb, cov[0, 1])
                    if xb_c <= xa_c:
                        acc_out += (xb - xa) * area
                        continue
                    acc_out += ((xb - xa) - (xb_c - xa_c)) * area
                    # node values only on the columns this chord reads (multi-contour
                    # planes such as two lungs or a ring would otherwise pay for the gap):
                    # _locate reads columns floor(u) and floor(u) + 1, clamped to
                    # [0, nx - 2] and [1, nx - 1] (also at t = 0 or 1, e.g. a chord ending
                    # exactly on a column: the case that read an unwritten node)
                    i_first = max(min(int(np.floor((xa_c - gx0) / gdx)), nx - 2), 0)
                    i_last = min(max(int(np.floor((xb_c - gx0) / gdx)) + 1, i_first + 1),
                                 nx - 1)
                    if refresh:
                        for i in range(i_first, i_last + 1):
                            row_a[i] = (1.0 - wy) * dose[k0, j0, i] + wy * dose[k0, j1, i]
                            row_b[i] = (1.0 - wy) * dose[k1, j0, i] + wy * dose[k1, j1, i]
                    for i in range(i_first, i_last + 1):
                        node[i] = row_a[i] + wz * (row_b[i] - row_a[i])
                    x = xa_c
                    d0 = _row_dose(node, x, gx0, gdx, nx)
                    u0 = (x - gx0) / gdx
                    i_next = int(np.floor((x - gx0) / gdx)) + 1
                    i_next = max(i_next, 0)
                    while True:
                        if i_next < nx:
                            xn = gx0 + i_next * gdx
                        else:
                            xn = np.inf
                        if xn >= xb_c:
                            x1 = xb_c
                            d1 = _row_dose(node, x1, gx0, gdx, nx)
                            u1 = (x1 - gx0) / gdx
                        else:
                            x1 = xn
                            d1 = node[i_next]
                            u1 = float(i_next)
                        w = (x1 - x) * area
                        if w > 0.0:
                            if rec.record:
                                _record_segment(rec, u0, u1, w)
                            # written out (also in _replay): a helper returning (lo, hi)
                            # made this loop ~25 % slower (benches/bench_dvh.py)
                            if d0 <= d1:
                                _deposit(acc, d0, d1, w, inv_delta, n_edges)
                                lo = d0
                                hi = d1
                            else:
                                _deposit(acc, d1, d0, w, inv_delta, n_edges)
                                lo = d1
                                hi = d0
                            acc_in += w
                            acc_dose += 0.5 * (d0 + d1) * w
                            d_min = min(d_min, lo)
                            d_max = max(d_max, hi)
                        if x1 >= xb_c:
                            break
                        x = x1
                        d0 = d1
                        u0 = u1
                        i_next += 1
                    if r_ref > 1:
                        acc_dose += _refine_chord(
                            acc, dose, node, xa_c, xb_c, area, y_lo_strip, y_hi_strip,
                            sub_start[s], sub_t[s], k0, j0, r_ref, t_hi, t_lo,
                            gx0, gdx, gy0, gdy, gz, inv_delta, n_edges,
                        )

    stats[STAT_INSIDE_MM3] += acc_in
    stats[STAT_OUTSIDE_MM3] += acc_out
    stats[STAT_DOSE_MM3] += acc_dose
    stats[STAT_MIN] = d_min
    stats[STAT_MAX] = d_max


R_MAX = 8  # most (y, z) dose samples per axis of a refined chord piece


@kernel(nogil=True)
def _refine_chord(acc, dose, node, xa, xb, area, y_lo, y_hi, z0, t_z, k0, j0, r_ref, t_hi,
                  t_lo, gx0, gdx, gy0, gdy, gz, inv_delta, n_edges):
    """Replace the single dose sample of every chord piece in a hot cell (module docstring)
    by ``r_ref²`` samples over the strip ``[y_lo, y_hi]`` × sub-slab ``[z0, z0 + t_z]``;
    returns the change of the dose integral. The piece's own deposit (``node`` values, as
    in ``_plane``) is taken back with the opposite weight, so the main loop stays as it was.
    The geometry stays the row's chord; only the dose is refined, and these points may lie
    outside the solid, so they give no Dmin/Dmax."""
    nz, ny, nx = dose.shape
    d_int = 0.0
    kc0 = min(k0, nz - 1)
    kc1 = min(k0 + 1, nz - 1)
    jc0 = min(j0, ny - 1)
    jc1 = min(j0 + 1, ny - 1)
    x = xa
    d0 = _row_dose(node, x, gx0, gdx, nx)
    i_next = max(int(np.floor((x - gx0) / gdx)) + 1, 0)
    while True:
        # the pieces and end doses of _plane's chord loop, in the same arithmetic
        xn = gx0 + i_next * gdx if i_next < nx else np.inf
        if xn >= xb:
            x1 = xb
            d1 = _row_dose(node, x1, gx0, gdx, nx)
        else:
            x1 = xn
            d1 = node[i_next]
        w = (x1 - x) * area
        hot = False
        if w > 0.0:
            # the piece's dose cell: its corner values bound the trilinear dose in it
            ic0 = min(max(i_next - 1, 0), nx - 1)
            ic1 = min(ic0 + 1, nx - 1)
            c_lo, c_hi = _corner_range(dose, kc0, kc1, jc0, jc1, ic0, ic1)
            hot = c_hi > t_hi or c_lo < t_lo
        if hot:
            if d0 <= d1:
                _deposit(acc, d0, d1, -w, inv_delta, n_edges)
            else:
                _deposit(acc, d1, d0, -w, inv_delta, n_edges)
            d_int -= 0.5 * (d0 + d1) * w
            wr = w / (r_ref * r_ref)
            for ry in range(r_ref):
                y_r = y_lo + (ry + 0.5) / r_ref * (y_hi - y_lo)
                j0r, j1r, wyr = _locate((y_r - gy0) / gdy, ny)
                for rz in range(r_ref):
                    z_r = z0 + (rz + 0.5) / r_ref * t_z
                    k0r, k1r, wzr = _locate_z(z_r, gz)
                    e0 = _dose_at_x(dose, k0r, k1r, wzr, j0r, j1r, wyr, x, gx0, gdx, nx)
                    e1 = _dose_at_x(dose, k0r, k1r, wzr, j0r, j1r, wyr, x1, gx0, gdx, nx)
                    if e0 <= e1:
                        _deposit(acc, e0, e1, wr, inv_delta, n_edges)
                    else:
                        _deposit(acc, e1, e0, wr, inv_delta, n_edges)
                    d_int += 0.5 * (e0 + e1) * wr
        if x1 >= xb:
            break
        x = x1
        d0 = d1
        i_next += 1
    return d_int


@kernel(nogil=True)
def _dvh_accumulate(
    plane_z_lo, plane_z_hi, plane_poly, poly_start, vx, vy,
    dose, gx0, gdx, gy0, gdy, gz, cov, h, inv_delta, n_edges, rec,
    refine_q, refine_budget_mm, volume_mm3,
):
    # Serial and GIL-free: callers run several structures on threads (one per core),
    # which scales better on 2 cores than splitting one structure's planes.
    acc = np.zeros((n_edges, 2))
    stats = np.zeros(N_STATS)
    stats[STAT_MIN] = np.inf
    stats[STAT_MAX] = -np.inf
    # pass 1: exact extremes, and the distribution of node values inside the solid
    hist = np.zeros(n_edges if refine_q > 0.0 else 1)
    for p in range(plane_z_lo.shape[0]):
        _plane_extremes(
            p, plane_z_lo, plane_z_hi, plane_poly, poly_start, vx, vy,
            dose, gx0, gdx, gy0, gdy, gz, cov, stats, rec, hist, inv_delta,
        )
    # refinement thresholds: the top and bottom ``refine_q`` of the node values (bin edges
    # beyond them, so that a uniform dose has no hot cell), and ``r`` from the work budget
    t_hi = np.inf
    t_lo = -np.inf
    r_ref = 1
    n_nodes = hist.sum() if hist.shape[0] > 1 else 0.0
    if n_nodes > 0.0:
        need = refine_q * n_nodes
        cum = 0.0
        n_hot = 0.0
        for k in range(hist.shape[0] - 1, -1, -1):
            cum += hist[k]
            if cum >= need:
                t_hi = (k + 1) / inv_delta
                n_hot += cum - hist[k]
                break
        cum = 0.0
        for k in range(hist.shape[0]):
            cum += hist[k]
            if cum >= need:
                t_lo = k / inv_delta
                n_hot += cum - hist[k]
                break
        # hot volume: the hot nodes' share of the structure, doubled for the cells around
        v_hot = volume_mm3 * min(2.0 * max(n_hot, 1.0) / n_nodes, 1.0)
        h_hot = np.sqrt(v_hot / refine_budget_mm)
        r_ref = min(max(int(np.ceil(h / h_hot - 1e-9)), 1), R_MAX)
    for p in range(plane_z_lo.shape[0]):
        _plane(
            p, plane_z_lo, plane_z_hi, plane_poly, poly_start, vx, vy,
            dose, gx0, gdx, gy0, gdy, gz, cov, h, inv_delta, acc, stats, rec,
            t_hi, t_lo, r_ref,
        )
    return acc, stats


@kernel(nogil=True)
def _cdf_from_ramps(acc):
    """CDF at bin edges: ``F[k] = sum_{b<k} acc[b, 0] + acc[b, 1] (k - b)`` by running sums."""
    n = acc.shape[0]
    f = np.zeros(n)
    slope = 0.0
    offset = 0.0
    lin = 0.0
    for k in range(1, n):
        slope += acc[k - 1, 1]
        lin += slope
        offset += acc[k - 1, 0]
        f[k] = offset + lin
    return f


def dvh_accumulate(
    plane_z_lo: np.ndarray,
    plane_z_hi: np.ndarray,
    plane_poly: np.ndarray,
    poly_start: np.ndarray,
    vx: np.ndarray,
    vy: np.ndarray,
    dose: np.ndarray,
    grid_origin: np.ndarray,
    grid_spacing: np.ndarray,
    grid_z: np.ndarray,
    coverage: np.ndarray,
    h_mm: float,
    bin_width_gy: float,
    n_edges: int,
    refine: Refinement | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative distribution of dose over a contour-defined solid.

    Parameters
    ----------
    plane_z_lo, plane_z_hi : (P,) float64
        Slab limits of each contour plane in mm.
    plane_poly : (P + 1,) int64
        Polygon offsets: plane ``p`` owns polygons ``plane_poly[p]:plane_poly[p + 1]``.
    poly_start : (Q + 1,) int64
        Vertex offsets: polygon ``q`` owns vertices ``poly_start[q]:poly_start[q + 1]``.
    vx, vy : (V,) float64
        Vertex coordinates in mm.
    dose : (nz, ny, nx) float32 or float64
        Dose in Gy (or any non-negative quantity) on an ascending axis-aligned grid.
    grid_origin, grid_spacing : (3,) float64
        Voxel-centre origin and spacing (x, y, z) in mm; ``grid_z`` (nz,) the plane z values.
    coverage : (3, 2) float64
        [min, max] in mm of the region where dose is defined (the voxel edges).
    h_mm : float
        Largest row / sub-slab spacing in mm.
    bin_width_gy : float
        Bin width; the CDF is exact at the bin edges ``k * bin_width_gy``.
    n_edges : int
        Number of bin edges; doses at or beyond the last edge are tallied in the last bin.
    refine : Refinement, optional
        Dose-adaptive refinement of the top and bottom of the DVH (module docstring);
        without it every chord piece is sampled once.

    Returns
    -------
    cdf_mm3 : (n_edges,) float64
        Volume (mm³) with dose strictly below each bin edge.
    stats : (5,) float64
        inside volume (mm³), outside volume (mm³), dose integral (Gy mm³), Dmin, Dmax
        (Dmin and Dmax exact for the trilinear dose over the solid).
    """
    acc, stats = _run(
        plane_z_lo, plane_z_hi, plane_poly, poly_start, vx, vy, dose, grid_origin,
        grid_spacing, grid_z, coverage, h_mm, bin_width_gy, n_edges, _NO_RECORDING, refine,
    )
    return _cdf_from_ramps(acc), stats


class Refinement(NamedTuple):
    """Dose-adaptive refinement settings (module docstring).

    ``quantile``: the share of node values at the top and at the bottom whose cells are
    refined; ``budget_mm``: chord length the refined samples may add; ``volume_mm3``: the
    structure's volume (for the hot share of it).
    """

    quantile: float
    budget_mm: float
    volume_mm3: float


def _run(plane_z_lo, plane_z_hi, plane_poly, poly_start, vx, vy, dose, grid_origin,
         grid_spacing, grid_z, coverage, h_mm, bin_width_gy, n_edges, rec, refine=None):
    """Check and convert the public arguments, then run the kernel (recording into ``rec``)."""
    dose = np.ascontiguousarray(dose)
    if dose.ndim != 3 or dose.dtype not in (np.float32, np.float64):
        raise ValueError("dose must be a 3-D float32 or float64 array")
    if h_mm <= 0 or bin_width_gy <= 0 or n_edges < 3:
        raise ValueError("h_mm and bin_width_gy must be positive and n_edges >= 3")
    if refine is None or refine.quantile <= 0:
        q, budget, volume = 0.0, 1.0, 0.0
    else:
        q, budget, volume = float(refine.quantile), float(refine.budget_mm), float(refine.volume_mm3)
        if not budget > 0:
            raise ValueError("the refinement budget must be positive")
    return _dvh_accumulate(
        np.ascontiguousarray(plane_z_lo, dtype=np.float64),
        np.ascontiguousarray(plane_z_hi, dtype=np.float64),
        np.ascontiguousarray(plane_poly, dtype=np.int64),
        np.ascontiguousarray(poly_start, dtype=np.int64),
        np.ascontiguousarray(vx, dtype=np.float64),
        np.ascontiguousarray(vy, dtype=np.float64),
        dose,
        float(grid_origin[0]), float(grid_spacing[0]),
        float(grid_origin[1]), float(grid_spacing[1]),
        np.ascontiguousarray(grid_z, dtype=np.float64),
        np.ascontiguousarray(coverage, dtype=np.float64),
        float(h_mm), 1.0 / float(bin_width_gy), int(n_edges), rec,
        q, budget, volume,
    )


_NO_RECORDING = _recording(0, 0, 0, record=False)


class DVHSamples(NamedTuple):
    """The samples of one structure on one grid (from :func:`dvh_accumulate_recorded`).

    ``rows_i`` (R, 5) int32, ``rows_f`` (R, 2), ``segs`` (S, 3), ``ext_i`` (E, 3) int32,
    ``ext_f`` (E, 5): see ``_Recording``; ``inside_mm3``/``outside_mm3`` the volumes the
    geometry alone fixes; ``shape`` the grid's (nz, ny, nx). About 24 bytes per chord piece
    and 52 per extreme-candidate piece.
    """

    rows_i: np.ndarray
    rows_f: np.ndarray
    segs: np.ndarray
    ext_i: np.ndarray
    ext_f: np.ndarray
    inside_mm3: float
    outside_mm3: float
    shape: tuple

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.rows_i, self.rows_f, self.segs, self.ext_i, self.ext_f))


def dvh_accumulate_recorded(
    plane_z_lo, plane_z_hi, plane_poly, poly_start, vx, vy,
    dose, grid_origin, grid_spacing, grid_z, coverage, h_mm, bin_width_gy, n_edges,
    capacity: tuple[int, int, int],
) -> tuple[np.ndarray, np.ndarray, DVHSamples | None, tuple[int, int, int]]:
    """:func:`dvh_accumulate` (without refinement) that also records its samples for
    :func:`dvh_replay`.

    Parameters
    ----------
    (as :func:`dvh_accumulate`)
    capacity : (rows, segments, extreme pieces)
        Room for the recording; a larger need is counted, not written.

    Returns
    -------
    cdf_mm3, stats : as :func:`dvh_accumulate` (always complete).
    samples : DVHSamples or None
        None when the capacity was too small: call again with ``counts``.
    counts : (rows, segments, extreme pieces) needed.
    """
    rec = _recording(*(max(int(c), 0) for c in capacity))
    acc, stats = _run(
        plane_z_lo, plane_z_hi, plane_poly, poly_start, vx, vy, dose, grid_origin,
        grid_spacing, grid_z, coverage, h_mm, bin_width_gy, n_edges, rec,
    )
    counts = tuple(int(c) for c in rec.counts)
    samples = None
    if all(c <= cap for c, cap in zip(counts, (rec.rows_i.shape[0], rec.segs.shape[0],
                                               rec.ext_i.shape[0]))):
        n_rows, n_segs, n_ext = counts
        samples = DVHSamples(
            rec.rows_i[:n_rows].copy(), rec.rows_f[:n_rows].copy(), rec.segs[:n_segs].copy(),
            rec.ext_i[:n_ext].copy(), rec.ext_f[:n_ext].copy(),
            float(stats[STAT_INSIDE_MM3]), float(stats[STAT_OUTSIDE_MM3]), tuple(np.shape(dose)),
        )
    return _cdf_from_ramps(acc), stats, samples, counts


@kernel(nogil=True)
def _replay_dose(values, k0, k1, j0, j1, wz, wy, u, nx):
    # the arithmetic of _plane's row_a/row_b/node and _row_dose, in the same order
    i0, i1, t = _locate(u, nx)
    a0 = (1.0 - wy) * values[k0, j0, i0] + wy * values[k0, j1, i0]
    b0 = (1.0 - wy) * values[k1, j0, i0] + wy * values[k1, j1, i0]
    a1 = (1.0 - wy) * values[k0, j0, i1] + wy * values[k0, j1, i1]
    b1 = (1.0 - wy) * values[k1, j0, i1] + wy * values[k1, j1, i1]
    return (1.0 - t) * (a0 + wz * (b0 - a0)) + t * (a1 + wz * (b1 - a1))


@kernel(nogil=True)
def _replay(rows_i, rows_f, segs, ext_i, ext_f, values, inv_delta, n_edges):
    ny = values.shape[1]
    nx = values.shape[2]
    acc = np.zeros((n_edges, 2))
    stats = np.zeros(N_STATS)
    dose_mm3 = 0.0
    d_min = np.inf
    d_max = -np.inf
    n_rows = rows_i.shape[0]
    for r in range(n_rows):
        k0 = rows_i[r, 0]
        k1 = rows_i[r, 1]
        j0 = rows_i[r, 2]
        j1 = rows_i[r, 3]
        wz = rows_f[r, 0]
        wy = rows_f[r, 1]
        s_end = rows_i[r + 1, 4] if r + 1 < n_rows else segs.shape[0]
        u_last = np.nan
        d1 = 0.0
        for s in range(rows_i[r, 4], s_end):
            # consecutive pieces of a chord share an end (u0 == the previous u1, exactly)
            if segs[s, 0] == u_last:
                d0 = d1
            else:
                d0 = _replay_dose(values, k0, k1, j0, j1, wz, wy, segs[s, 0], nx)
            u_last = segs[s, 1]
            d1 = _replay_dose(values, k0, k1, j0, j1, wz, wy, u_last, nx)
            w = segs[s, 2]
            if d0 <= d1:  # as in _plane (inline on purpose)
                _deposit(acc, d0, d1, w, inv_delta, n_edges)
                lo = d0
                hi = d1
            else:
                _deposit(acc, d1, d0, w, inv_delta, n_edges)
                lo = d1
                hi = d0
            dose_mm3 += 0.5 * (d0 + d1) * w
            d_min = min(d_min, lo)
            d_max = max(d_max, hi)
    no_hist = np.zeros(1)
    for q in range(ext_i.shape[0]):
        lo, hi = _extreme_piece(values, ext_i[q, 0], ext_i[q, 1], ext_f[q, 0], ext_i[q, 2],
                                ext_f[q, 1], ext_f[q, 2], ext_f[q, 3], ext_f[q, 4], nx, ny,
                                no_hist, inv_delta, d_min, d_max)
        d_min = min(d_min, lo)
        d_max = max(d_max, hi)
    stats[STAT_DOSE_MM3] = dose_mm3
    stats[STAT_MIN] = d_min
    stats[STAT_MAX] = d_max
    return acc, stats


@kernel(nogil=True)
def _mark_column(mask, k0, k1, j0, j1, i):
    mask[k0, j0, i] = True
    mask[k0, j1, i] = True
    mask[k1, j0, i] = True
    mask[k1, j1, i] = True


@kernel(nogil=True)
def _mark_cell(mask, k0, k1, u, v):
    nx = mask.shape[2]
    ny = mask.shape[1]
    i0, i1, _ = _locate(u, nx)
    j0, j1, _ = _locate(v, ny)
    _mark_column(mask, k0, k1, j0, j1, i0)
    _mark_column(mask, k0, k1, j0, j1, i1)


@kernel(nogil=True)
def _support(rows_i, segs, ext_i, ext_f, mask):
    nx = mask.shape[2]
    n_rows = rows_i.shape[0]
    for r in range(n_rows):
        s_end = rows_i[r + 1, 4] if r + 1 < n_rows else segs.shape[0]
        for s in range(rows_i[r, 4], s_end):
            for e in range(2):
                i0, i1, _ = _locate(segs[s, e], nx)
                _mark_column(mask, rows_i[r, 0], rows_i[r, 1], rows_i[r, 2], rows_i[r, 3], i0)
                _mark_column(mask, rows_i[r, 0], rows_i[r, 1], rows_i[r, 2], rows_i[r, 3], i1)
    for q in range(ext_i.shape[0]):
        k0 = ext_i[q, 0]
        k1 = ext_i[q, 1]
        u0 = ext_f[q, 1]
        v0 = ext_f[q, 2]
        u1 = ext_f[q, 3]
        v1 = ext_f[q, 4]
        # an edge piece lies in one cell (its ends may sit on the cell's far faces); a row
        # chord reads every column from its start to its end
        _mark_cell(mask, k0, k1, u0, v0)
        _mark_cell(mask, k0, k1, u1, v1)
        _mark_cell(mask, k0, k1, 0.5 * (u0 + u1), 0.5 * (v0 + v1))
        if ext_i[q, 2] == EXT_ROW:
            for i in range(max(int(np.floor(u0)), 0), min(int(np.ceil(u1)), nx - 1) + 1):
                _mark_cell(mask, k0, k1, float(i), v0)


def dvh_support(samples: DVHSamples) -> np.ndarray:
    """Flat (C-order) indices of the voxels :func:`dvh_replay` reads, ascending, int64.

    Values elsewhere in the grid do not change the replayed DVH (only its bin width, which
    follows the array's maximum: give zeros there).
    """
    mask = np.zeros(samples.shape, dtype=np.bool_)
    _support(samples.rows_i, samples.segs, samples.ext_i, samples.ext_f, mask)
    return np.flatnonzero(mask).astype(np.int64)


def dvh_replay(
    samples: DVHSamples, values: np.ndarray, bin_width_gy: float, n_edges: int
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`dvh_accumulate`'s result for ``values`` from recorded samples.

    Parameters
    ----------
    samples : DVHSamples
        From :func:`dvh_accumulate_recorded` on a grid of ``values.shape``.
    values : (nz, ny, nx) float32 or float64
        Dose (Gy, or any non-negative quantity such as EQD2) on that grid.

    Returns
    -------
    cdf_mm3, stats : as :func:`dvh_accumulate`.
    """
    values = np.ascontiguousarray(values)
    if values.shape != samples.shape or values.dtype not in (np.float32, np.float64):
        raise ValueError(f"values must be a float array of shape {samples.shape}")
    if bin_width_gy <= 0 or n_edges < 3:
        raise ValueError("bin_width_gy must be positive and n_edges >= 3")
    acc, stats = _replay(samples.rows_i, samples.rows_f, samples.segs, samples.ext_i,
                         samples.ext_f, values, 1.0 / float(bin_width_gy), int(n_edges))
    stats[STAT_INSIDE_MM3] = samples.inside_mm3
    stats[STAT_OUTSIDE_MM3] = samples.outside_mm3
    return _cdf_from_ramps(acc), stats
