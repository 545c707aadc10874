"""Scan-line primitives over the polygons of one contour plane (Numba, no I/O).

A plane's polygons are given flat: vertices ``vx, vy`` (mm) and ``poly_start`` offsets so
that polygon ``q`` is ``vx[poly_start[q]:poly_start[q + 1]]`` (closed implicitly: the last
vertex joins the first). Inside-ness follows the even-odd rule over *all* polygons of the
plane, so holes and islands need no special handling.

Between two consecutive vertex ``y`` values every polygon edge is a straight line in ``y``,
so the chord length is linear there and the midpoint rule gives the exact area of
non-intersecting polygons (O'Rourke, *Computational Geometry in C*, 2nd ed., §7.4 on scan
conversion; the trapezoid argument is the same as for the shoelace formula). The crossings
use the half-open rule and an active-edge table swept upwards in ``y``.
"""

from __future__ import annotations

import numpy as np
from ._jit import kernel


@kernel(nogil=True)
def _plane_edges(vx, vy, poly_start, q_lo, q_hi):
    """Non-horizontal edges of polygons ``q_lo..q_hi-1`` as (x_at_ylo, ylo, x_at_yhi, yhi),
    sorted by ``ylo`` for an active-edge sweep."""
    n = poly_start[q_hi] - poly_start[q_lo]
    e = np.empty((n, 4))
    m = 0
    for q in range(q_lo, q_hi):
        s = poly_start[q]
        t = poly_start[q + 1]
        for v in range(s, t):
            w = v + 1 if v + 1 < t else s
            if vy[v] == vy[w]:
                continue
            if vy[v] < vy[w]:
                e[m, 0] = vx[v]
                e[m, 1] = vy[v]
                e[m, 2] = vx[w]
                e[m, 3] = vy[w]
            else:
                e[m, 0] = vx[w]
                e[m, 1] = vy[w]
                e[m, 2] = vx[v]
                e[m, 3] = vy[v]
            m += 1
    e = e[:m]
    order = np.argsort(e[:, 1])
    return e[order]


@kernel(nogil=True)
def _update_active(edges, active, n_active, next_edge, y):
    """Active-edge table step for a sweep line at ``y`` (ascending between calls).

    Adds edges whose ``ylo <= y`` and drops those with ``yhi <= y`` (half-open rule, so a
    vertex on the line counts once). Returns the new ``n_active`` and ``next_edge``.
    """
    while next_edge < edges.shape[0] and edges[next_edge, 1] <= y:
        active[n_active] = next_edge
        n_active += 1
        next_edge += 1
    k = 0
    for i in range(n_active):
        if edges[active[i], 3] > y:
            active[k] = active[i]
            k += 1
    return k, next_edge


@kernel(nogil=True)
def _active_crossings(edges, active, n_active, y, buf):
    """Sorted crossings of the line ``y`` with the active edges; returns their number."""
    n = 0
    for a in range(n_active):
        i = active[a]
        x = edges[i, 0] + (y - edges[i, 1]) * (edges[i, 2] - edges[i, 0]) / (edges[i, 3] - edges[i, 1])
        j = n
        while j > 0 and buf[j - 1] > x:
            buf[j] = buf[j - 1]
            j -= 1
        buf[j] = x
        n += 1
    return n


@kernel(nogil=True)
def _band_edges(vy, v_lo, v_hi, extra):
    """Sorted unique band edges: every vertex ``y`` of the plane plus ``extra`` inside range."""
    ymin = np.inf
    ymax = -np.inf
    for v in range(v_lo, v_hi):
        ymin = min(ymin, vy[v])
        ymax = max(ymax, vy[v])
    m = v_hi - v_lo
    edges = np.empty(m + extra.shape[0])
    for v in range(m):
        edges[v] = vy[v_lo + v]
    n = m
    for i in range(extra.shape[0]):
        if ymin < extra[i] < ymax:
            edges[n] = extra[i]
            n += 1
    edges = np.sort(edges[:n])
    out = np.empty(n)
    k = 0
    for i in range(n):
        if k == 0 or edges[i] - out[k - 1] > 1e-9:
            out[k] = edges[i]
            k += 1
    return out[:k]


@kernel(nogil=True)
def _z_pieces(z_lo, z_hi, breaks):
    """Split the slab ``[z_lo, z_hi]`` at every value of ``breaks`` strictly inside it."""
    out = np.empty(breaks.shape[0] + 2)
    out[0] = z_lo
    n = 1
    for i in range(breaks.shape[0]):
        if z_lo + 1e-9 < breaks[i] < z_hi - 1e-9:
            out[n] = breaks[i]
            n += 1
    out[n] = z_hi
    n += 1
    return np.sort(out[:n])
