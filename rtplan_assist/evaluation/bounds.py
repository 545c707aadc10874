"""Sound bounds on a composite metric from the single-lesion EQD2 DVHs.

They decide most composite limits of the recommendation's search without summing voxels.
"""

from __future__ import annotations

import math

from ..dvh import DVH
from .records import CompositeLimit


def bound(lim: CompositeLimit, parts: list[DVH]) -> str:
    """``pass``/``fail``/``unknown`` of a composite limit from single-lesion EQD2 DVHs.

    Sound because each voxel's composite EQD2 is the sum of the lesions' EQD2, all >= 0,
    sampled at the same points (same grid, same structure): for ``Dv`` (and ``Max``, v→0)
    ``max_q [Dv(f_q) + Σ_{p≠q} Dmin_p] <= Dv(Σ f) <= min(Σ_p D_{v/k}(f_p),
    min_q [Dv(f_q) + Σ_{p≠q} Dmax_p])``; the mean is the sum of the means; ``Vt`` and
    ``CVt`` follow from ``{f_q >= t - Σ_{p≠q} Dmax_p} ⊇ {Σ f >= t} ⊇ {f_q >= t - Σ_{p≠q}
    Dmin_p}``. A margin of 0.5 % of the limit (plus two histogram bins) covers the DVH's
    bin interpolation; inside it the voxels decide.
    """
    m = lim.metric
    k = len(parts)
    dmax = [p.dmax_gy for p in parts]
    dmin = [p.dmin_gy for p in parts]
    total_v = parts[0].dvh_volume_cc
    bins = sum(2.0 * (p.dose_gy[-1] / max(len(p.dose_gy), 1)) for p in parts)
    upper_limit = lim.comparator[0] == "<"
    if m.returns_dose:
        tol = 0.005 * abs(lim.limit) + bins
        if m.kind == "Mean":
            lower = upper = sum(p.dmean_gy for p in parts)
        elif m.kind in ("Max", "D"):
            if m.kind == "Max":
                v = 0.0
            else:
                v = m.value if m.query_unit == "cc" else m.value / 100.0 * total_v
            single = [p.dose_at(v) if v > 0 else p.dmax_gy for p in parts]
            if any(math.isnan(x) for x in single):
                return "unknown"
            lower = max(single[q] + sum(dmin) - dmin[q] for q in range(k))
            upper = min(single[q] + sum(dmax) - dmax[q] for q in range(k))
            if v > 0:
                split = [p.dose_at(v / k) for p in parts]
                if not any(math.isnan(x) for x in split):
                    upper = min(upper, sum(split))
            else:
                upper = min(upper, sum(dmax))
        else:
            return "unknown"
    elif m.kind in ("V", "CV") and m.query_unit == "Gy":
        t = m.value
        v_upper = min(
            parts[q].volume_at(t - (sum(dmax) - dmax[q]))
            if t - (sum(dmax) - dmax[q]) > 0
            else total_v
            for q in range(k)
        )
        v_lower = max(
            parts[q].volume_at(t - (sum(dmin) - dmin[q]))
            if t - (sum(dmin) - dmin[q]) > 0
            else total_v
            for q in range(k)
        )
        if m.kind == "CV":
            v_lower, v_upper = total_v - v_upper, total_v - v_lower
        scale = 1.0 if m.out_unit == "cc" else 100.0 / total_v
        lower, upper = v_lower * scale, v_upper * scale
        tol = 0.005 * abs(lim.limit) + 0.002 * (100.0 if m.out_unit == "%" else total_v)
    else:
        return "unknown"
    if upper_limit:
        if upper <= lim.limit - tol:
            return "pass"
        if lower > lim.limit + tol:
            return "fail"
    else:
        if lower >= lim.limit + tol:
            return "pass"
        if upper < lim.limit - tol:
            return "fail"
    return "unknown"
