"""MDT report of one evaluated patient: one HTML template, rendered to HTML or to PDF.

The PDF is made by WeasyPrint from the same HTML (CSS paged media, A4 landscape), so no
browser is involved. Figures are matplotlib PNGs embedded as ``data:`` URIs: the HTML file is
self-contained and names no external resource (no fonts, scripts, style sheets or images to
fetch), which matters in hospital networks.

Page 1 alone holds what the meeting decides on (issue 14): provenance, the verdict, which
regimens are shown (recommended, planned or chosen, with the other beside them), per lesion
the shown regimen, its BED10/EQD2, its own OARs' status and why, in words
(:mod:`rtplan_assist.evaluation.reasons`), the composite in words and its OAR table. Page 2:
one axial isodose image per lesion (scale bar, R/L/A/P) and the DVHs. The per-lesion
constraint tables follow, then the model statement, the composite caveats and the warnings.
No text is smaller than :data:`MIN_FONT_PT` (7 pt), figures included: they are drawn at the
size they are shown.

Every number comes from :class:`rtplan_assist.evaluation.EvaluationResult` and its
:class:`~rtplan_assist.evaluation.CaseEvaluator`; the report computes no dose metric itself
(the isodose image only displays the lesion's dose, scaled to the chosen regimen).
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import math
import os
from pathlib import Path
from string import Template

import numpy as np

from . import __version__
from .deidentify import WITHHELD, Identifiers, deidentify_result
from .escape import css_string, mathtext_literal
from .outputs import atomic_write_bytes, atomic_write_text
from .quality import quality_html
from .status import STATUS_STYLE

__all__ = ["render_report_html", "render_report_pdf", "write_report"]

# the one palette and vocabulary (rtplan_assist.status)
STATUS_COLOURS = {name: style.background for name, style in STATUS_STYLE.items()}
STATUS_TEXT = {name: style.text for name, style in STATUS_STYLE.items()}
DISCLAIMER = ("Decision support for the MDT, not a treatment planning system: every dose was "
              "computed by the clinical TPS; rtplan-assist only rescales and converts it. Check "
              "the plan in the TPS before acting on this page.")
ISODOSE_LEVELS = (1.1, 1.0, 0.8, 0.5, 0.25)  # fractions of the chosen prescription
ISODOSE_COLOURS = ("#ff00ff", "#ff2020", "#ffa500", "#ffff00", "#3cb4ff")
CROP_HALF_MM = 45.0

_E = html.escape


# =============================================================================================
# Figures
# =============================================================================================


def _literal(text: str) -> str:
    """A DICOM-derived label drawn by matplotlib as written: ``$`` escaped (no mathtext) and a
    leading ``_`` shielded (matplotlib leaves such labels out of the legend)."""
    text = mathtext_literal(text)
    return "\u200b" + text if text.startswith("_") else text


def _png_uri(fig, dpi: int = 150) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _plane_index(z_mm: np.ndarray, z: float) -> int:
    return int(np.argmin(np.abs(np.asarray(z_mm) - z)))


def _polygons_near(structure, z: float) -> list[np.ndarray]:
    if structure is None or structure.is_empty:
        return []
    k = _plane_index(structure.plane_z_mm, z)
    dz = (structure.slice_thickness_mm or 3.0) / 2 + 1e-3
    if abs(structure.plane_z_mm[k] - z) > dz:
        return []
    return structure.polygons[k]


def _centre_mm(structure) -> np.ndarray:
    bounds = structure.bounds_mm()
    return bounds.mean(axis=1)


#: Displayed sizes (mm) of the figures: each figure is drawn at exactly this size, so a font
#: of ``n`` pt in matplotlib is ``n`` pt on paper (the minimum, :data:`MIN_FONT_PT`, is tested).
THUMB_MM = 52.0
DVH_MM = (270.0, 98.0)
#: The smallest font anywhere in the report (pt): text, tables, legends, figure labels.
MIN_FONT_PT = 7.0
SCALE_BAR_MM = 20.0


def orientation_letters(row_cosines, column_cosines) -> tuple[str, str, str, str]:
    """Patient-direction letters at the (left, right, top, bottom) edges of an image whose
    columns run along ``row_cosines`` and rows along ``column_cosines`` (the two halves of
    ImageOrientationPatient, DICOM patient axes LPS: +x left, +y posterior, +z head).

    The dominant axis of each direction names the edge (PS3.3 C.7.6.1.1.1): an HFS axial
    image, ``(1, 0, 0), (0, 1, 0)``, reads R on the left, L on the right, A at the top, P at
    the bottom; FFS, ``(-1, 0, 0), (0, 1, 0)``, has L on the left."""
    positive, negative = ("L", "P", "H"), ("R", "A", "F")

    def letter(vector, sign: float) -> str:
        v = np.asarray(vector, dtype=float) * sign
        k = int(np.argmax(np.abs(v)))
        return positive[k] if v[k] > 0 else negative[k]

    return (letter(row_cosines, -1), letter(row_cosines, 1),
            letter(column_cosines, -1), letter(column_cosines, 1))


def isodose_figure(case, lesion, regimen, ct_hu: np.ndarray | None) -> str:
    """Axial image through the PTV centre (:func:`_isodose_fig`) as a PNG data URI."""
    return _png_uri(_isodose_fig(case, lesion, regimen, ct_hu), dpi=200)


def _isodose_fig(case, lesion, regimen, ct_hu: np.ndarray | None):
    """Axial image through the PTV centre: CT, isodose lines of the lesion's dose scaled to
    ``regimen``, PTV/GTV and nearby OAR contours, a 2 cm scale bar and the patient-direction
    letters of its edges. A matplotlib figure of :data:`THUMB_MM` mm.

    The dose is the lesion's own plan (not the composite), trilinearly sampled at the CT
    pixel centres; levels are fractions of the chosen prescription. The loader puts every
    axial grid (HFS, FFS, HFP, FFP) on ascending patient axes, and the image is drawn on them:
    +x (patient left) to the right, +y (posterior) down, whatever the CT's
    ImageOrientationPatient; the letters are those of these display axes
    (:func:`orientation_letters`).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.patheffects as effects
    import matplotlib.pyplot as plt
    from scipy.ndimage import map_coordinates

    centre = _centre_mm(lesion.target)
    dose = lesion.dose
    factor = regimen.total_dose_gy / lesion.planned.total_dose_gy
    size = THUMB_MM / 25.4
    fig, ax = plt.subplots(figsize=(size, size))
    fig.subplots_adjust(0.01, 0.01, 0.99, 0.9)
    x0, x1 = centre[0] - CROP_HALF_MM, centre[0] + CROP_HALF_MM
    y0, y1 = centre[1] - CROP_HALF_MM, centre[1] + CROP_HALF_MM
    if case.ct is not None and ct_hu is not None:
        grid = case.ct.grid
        z = float(grid.z_mm[_plane_index(grid.z_mm, centre[2])])
        xs, ys = grid.x_mm, grid.y_mm
        ix = np.flatnonzero((xs >= x0) & (xs <= x1))
        iy = np.flatnonzero((ys >= y0) & (ys <= y1))
        image = ct_hu[_plane_index(grid.z_mm, z)][np.ix_(iy, ix)]
        xs, ys = xs[ix], ys[iy]
        ax.imshow(image, cmap="gray", vmin=-1000, vmax=400, origin="upper",
                  extent=(xs[0], xs[-1], ys[-1], ys[0]), interpolation="nearest")
    else:
        z = float(centre[2])
        xs = np.arange(x0, x1, 1.0)
        ys = np.arange(y0, y1, 1.0)
        ax.set_facecolor("black")
    # dose sampled on the image pixel centres (index coordinates of the dose grid)
    g = dose.grid
    kz = np.interp(z, g.z_mm, np.arange(len(g.z_mm)), left=-1, right=-1)
    if kz >= 0:
        yy, xx = np.meshgrid(ys, xs, indexing="ij")
        coords = np.array([np.full(xx.shape, kz), (yy - g.origin[1]) / g.spacing[1],
                           (xx - g.origin[0]) / g.spacing[0]])
        plane = map_coordinates(dose.dose_gy, coords, order=1, mode="constant", cval=0.0)
        plane = plane * factor
        rx = regimen.total_dose_gy
        levels = [lvl * rx for lvl in sorted(ISODOSE_LEVELS)]
        colours = [c for _, c in sorted(zip(ISODOSE_LEVELS, ISODOSE_COLOURS))]
        if plane.max() > levels[0]:
            ax.contour(xs, ys, plane, levels=levels, colors=colours, linewidths=0.8)
    for s in case.structures:
        if s.is_empty or s.name in (lesion.target.name, getattr(lesion.gtv, "name", "")):
            continue
        if s.roi_type.upper() in ("EXTERNAL", "PTV", "GTV", "CTV"):
            continue
        colour = tuple(c / 255 for c in s.color) if s.color else (0.6, 0.9, 0.6)
        for poly in _polygons_near(s, z):
            closed = np.vstack([poly, poly[:1]])
            ax.plot(closed[:, 0], closed[:, 1], color=colour, lw=0.5, alpha=0.8)
    for s, colour, lw in ((lesion.target, "#00ffff", 1.3), (lesion.gtv, "#ffffff", 0.7)):
        for poly in _polygons_near(s, z):
            closed = np.vstack([poly, poly[:1]])
            ax.plot(closed[:, 0], closed[:, 1], color=colour, lw=lw)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y1, y0)  # +y posterior at the bottom: radiological axial view
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    outline = [effects.withStroke(linewidth=1.5, foreground="black")]
    font = {"fontsize": MIN_FONT_PT, "color": "white", "fontweight": "bold",
            "path_effects": outline}
    left, right, top, bottom = orientation_letters((1.0, 0.0, 0.0), (0.0, 1.0, 0.0))
    ax.text(0.02, 0.5, left, transform=ax.transAxes, ha="left", va="center", **font)
    ax.text(0.98, 0.5, right, transform=ax.transAxes, ha="right", va="center", **font)
    ax.text(0.5, 0.98, top, transform=ax.transAxes, ha="center", va="top", **font)
    ax.text(0.5, 0.02, bottom, transform=ax.transAxes, ha="center", va="bottom", **font)
    # scale bar: SCALE_BAR_MM in patient mm, bottom right
    bx1 = x1 - 0.06 * (x1 - x0)
    by = y1 - 0.07 * (y1 - y0)
    ax.plot([bx1 - SCALE_BAR_MM, bx1], [by, by], color="white", lw=2,
            path_effects=[effects.withStroke(linewidth=3, foreground="black")])
    ax.text(bx1 - SCALE_BAR_MM / 2, by - 2.5, f"{SCALE_BAR_MM / 10:g} cm", ha="center",
            va="bottom", **font)
    ax.set_title(f"{lesion.lesion_id} {regimen.label}, z = {z:.1f} mm", fontsize=MIN_FONT_PT,
                 pad=2)
    return fig


def dvh_figure(result, evaluator) -> str:
    """Targets and composite OAR DVHs (:func:`_dvh_fig`) as a PNG data URI."""
    return _png_uri(_dvh_fig(result, evaluator), dpi=150)


def _dvh_fig(result, evaluator):
    """Two panels: targets (physical, shown regimen) and composite OARs (EQD2); drawn at
    :data:`DVH_MM`, every text at least :data:`MIN_FONT_PT`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(DVH_MM[0] / 25.4, DVH_MM[1] / 25.4))
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.12, top=0.92, wspace=0.12)
    cmap = plt.get_cmap("tab10")
    for i, lesion in enumerate(result.lesions):
        regimen = result.choice[lesion.lesion_id]
        names = [lesion.target.name] + ([lesion.gtv.name] if lesion.gtv else [])
        dvhs = evaluator.lesion_dvhs(lesion.lesion_id, regimen, "physical", structures=names)
        for name, dvh in dvhs.items():
            if dvh.dvh_volume_cc <= 0:
                continue
            style = "-" if name == lesion.target.name else "--"
            left.plot(dvh.dose_gy, 100 * dvh.volume_cc_at_dose / dvh.dvh_volume_cc, style,
                      color=cmap(i % 10), lw=1, label=_literal(f"{lesion.lesion_id} {name}"))
    left.set_title("Targets, physical dose (shown regimen)", fontsize=8.5)
    left.set_xlabel("Dose (Gy)", fontsize=MIN_FONT_PT + 0.5)
    left.set_ylabel("Volume (%)", fontsize=MIN_FONT_PT + 0.5)
    left.legend(fontsize=MIN_FONT_PT, ncol=2, frameon=False, loc="lower left")
    composite = evaluator.composite_dvhs(result.choice)
    shown = [r.structure for r in result.composite_rows if r.structure and
             r.priority == "mandatory"]
    shown = list(dict.fromkeys(shown)) or list(composite)
    for i, name in enumerate(shown):
        dvh = composite.get(name)
        if dvh is None or dvh.dvh_volume_cc <= 0:
            continue
        right.plot(dvh.dose_gy, 100 * dvh.volume_cc_at_dose / dvh.dvh_volume_cc,
                   color=cmap(i % 10), ls=("-", "--", ":")[i // 10 % 3], lw=1,
                   label=_literal(f"{name} (α/β {dvh.model.split('=')[-1].strip()})"))
    right.set_title("Composite OARs, voxel-wise EQD2 sum", fontsize=8.5)
    right.set_xlabel("EQD2 (Gy)", fontsize=MIN_FONT_PT + 0.5)
    right.legend(fontsize=MIN_FONT_PT, ncol=2, frameon=False)
    for ax in (left, right):
        ax.tick_params(labelsize=MIN_FONT_PT)
        ax.set_ylim(0, 102)
        ax.set_xlim(left=0)
        ax.grid(alpha=0.3, lw=0.4)
    return fig


def figure_min_font_pt(fig) -> float:
    """The smallest visible, non-empty text of a matplotlib figure (pt on paper: the report
    shows every figure at its own size)."""
    from matplotlib.text import Text

    sizes = [t.get_fontsize() for t in fig.findobj(Text) if t.get_visible() and t.get_text()]
    return min(sizes) if sizes else math.inf


# =============================================================================================
# Content
# =============================================================================================


def _num(value, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    try:
        return f"{float(value):.{digits}f}"
    except (TypeError, ValueError):
        return str(value)


def _status_cell(status: str, robustness: str = "") -> str:
    colour = STATUS_COLOURS.get(status, "#ffffff")
    # issue 13: a verdict that flips within the α/β range or the borderline band says so
    fragile = "<br><b>fragile</b>" if robustness == "fragile" else ""
    return (f'<td class="status" style="background:{colour}">'
            f"{_E(STATUS_TEXT.get(status, status))}{fragile}</td>")


def _limit_text(row) -> str:
    if row.limit is None:
        return ""
    text = f"{row.comparator} {_num(row.limit, 2)}"
    if row.goal is not None:
        text += f" (goal {_num(row.goal, 2)})"
    return text


def _source_text(row) -> str:
    text = row.source
    if row.converted_from_fractions is not None:
        text += f"; converted from {row.converted_from_fractions} fx"
    return text


def _binding(result, lesion_id: str) -> tuple[str, str]:
    """The engine's binding constraint of a lesion (:attr:`Recommendation.binding`: what stopped
    the next-higher BED10 regimen), and the status of its row. The report computes none of its
    own: for a regimen other than the recommended one it says so."""
    rec = result.recommendation
    chosen, recommended = result.choice.get(lesion_id), rec.choice.get(lesion_id)
    if chosen != recommended:
        label = recommended.label if recommended is not None else "–"
        return f"– (shown regimen chosen by the user; the recommendation is {label})", "info"
    if lesion_id in rec.binding:
        row = rec.binding_rows.get(lesion_id)
        return rec.binding[lesion_id], (row.status if row is not None else "info")
    return "none: its highest-BED10 option passes every mandatory limit", "pass"


def _dicom_dates(result) -> dict:
    """Study date and plan dates/UIDs from the headers (read without pixel data)."""
    import pydicom

    out = {"study_date": "", "plans": []}
    for lesion in result.lesions:
        try:
            ds = pydicom.dcmread(lesion.plan.path, stop_before_pixels=True)
        except Exception:  # noqa: BLE001, S112 - provenance is best effort
            continue
        out["study_date"] = out["study_date"] or str(ds.get("StudyDate", ""))
        out["plans"].append((lesion.lesion_id, str(ds.get("RTPlanDate", "")),
                             lesion.plan.sop_instance_uid))
    return out


def _fmt_date(text: str) -> str:
    return f"{text[:4]}-{text[4:6]}-{text[6:8]}" if len(text) == 8 and text.isdigit() else text


def _table(head: list[str], rows: list[str], cls: str = "",
           widths: tuple[int, ...] | None = None) -> str:
    th = "".join(f"<th>{_E(h)}</th>" for h in head)
    cols = ""
    if widths:  # fixed layout: the same columns in every lesion's table
        cols = "<colgroup>" + "".join(f'<col style="width:{w}%">' for w in widths) + "</colgroup>"
    style = ' style="table-layout:fixed"' if widths else ""
    return (f'<table class="{cls}"{style}>{cols}<thead><tr>{th}</tr></thead><tbody>'
            + "".join(rows) + "</tbody></table>")


def _own_status(rows) -> tuple[str, int, int]:
    """(status, failed, mandatory) of a lesion's own mandatory OAR rows at one regimen."""
    mandatory = [r for r in rows if r.priority == "mandatory" and r.role == "oar"
                 and r.structure]
    fails = sum(r.status == "fail" for r in mandatory)
    status = "fail" if fails else ("not evaluable" if any(r.status == "not evaluable"
                                                           for r in mandatory) else "pass")
    if status == "pass" and not any(r.status in ("pass", "goal missed") for r in mandatory):
        status = "not evaluable"  # no mandatory OAR row could be evaluated (issue 12)
    return status, fails, len(mandatory)


def _lesion_table(result) -> str:
    """Page 1: per lesion the shown regimen, its BED10/EQD2 and D95%, the planned and the
    recommended regimens beside it, its own OARs' status, and why, in words
    (:mod:`rtplan_assist.evaluation.reasons`)."""
    from .evaluation.reasons import lesion_reasons

    rows = []
    by_lesion: dict[str, list] = {}
    for row in result.chosen_rows():
        by_lesion.setdefault(row.lesion_id, []).append(row)
    rec = result.recommendation.choice
    for lesion in result.lesions:
        lid = lesion.lesion_id
        regimen = result.choice[lid]
        mine = by_lesion.get(lid, [])
        ptv_d95 = next((r.value for r in mine if r.role == "target" and r.metric == "D95%[Gy]"),
                       None)
        status, fails, n_mandatory = _own_status(mine)
        marks = []
        if regimen == rec.get(lid):
            marks.append("recommended")
        if regimen == lesion.planned:
            marks.append("planned")
        shown = (f"<b>{_E(regimen.label)}</b><br><span class=small>"
                 f"{_E(', '.join(marks) or 'chosen by the user')}</span>")
        other = []
        if regimen != lesion.planned:
            other.append(f"planned {lesion.planned.label}")
        if lid in rec and regimen != rec[lid]:
            other.append(f"recommended {rec[lid].label}")
        why = "".join(f"<li>{_E(r.text)}</li>" for r in lesion_reasons(result, lid))
        if other:
            shown += f"<br><span class=small>{_E('; '.join(other))}</span>"
        rows.append(
            f"<tr><td><b>{_E(lid)}</b></td><td>{_E(lesion.label)}<br><span class=small>"
            f"{_E(lesion.site)}, {_E(lesion.target.name)}</span></td><td>{shown}</td>"
            f"<td class=num>{regimen.bed10_gy():.1f}<br>{regimen.eqd2_10_gy():.1f}</td>"
            f"<td class=num>{_num(ptv_d95, 1)}</td>{_status_cell(status)}"
            f"<td class=num>{fails} of {n_mandatory}</td>"
            f'<td class="why"><ul>{why}</ul></td></tr>'
        )
    return _table(["Lesion", "Plan, site, target", "Shown regimen", "BED10 EQD2 (Gy)",
                   "PTV D95% (Gy)", "Own OARs", "Mandatory failed", "Why, in words"],
                  rows, "lesions", (4, 9, 10, 5, 5, 5, 6, 56))


_PRIORITY_SHORT = {"mandatory": "mand.", "optimal": "opt.", "report": "report"}


def _row_cells(row) -> str:
    kind = "" if row.kind == "physical" else f" {row.kind}"
    ab = _ab(row)
    return (
        f"<tr><td>{_E(row.structure or row.organ)}</td><td>{_E(row.metric)}{_E(kind)}"
        f"</td><td class=num>{_num(row.value, 2)}</td><td class=num>{_E(_limit_text(row))}</td>"
        f"<td class=num>{_E(ab)}</td>{_status_cell(row.status, getattr(row, 'robustness', ''))}"
        f"<td>{_E(_PRIORITY_SHORT.get(row.priority, row.priority))}</td>"
        f"<td class=src>{_E(_source_text(row))}</td></tr>"
    )


_DETAIL_HEAD = ["Structure", "Metric", "Value", "Limit", "α/β", "Status", "Prio.", "Source"]
_DETAIL_WIDTHS = (9, 13, 6, 10, 3, 7, 5, 47)
_ORDER = {"fail": 0, "goal missed": 1, "not evaluable": 2, "pass": 3, "info": 4}


def _constraint_rows(rows) -> tuple[list, list[str]]:
    present = [r for r in rows if r.structure or r.role == "target"]
    missing = sorted({r.organ for r in rows if not r.structure and r.role != "target"
                      and r.organ})
    present.sort(key=lambda r: (r.role != "target", _ORDER.get(r.status, 5),
                                r.structure, r.metric))
    return present, missing


def _short_source(row) -> str:
    """``tg101_2010, from 3 fx``: the source table and the conversion (full text on page 2)."""
    out = row.source.split(",")[0].strip()
    if row.converted_from_fractions is not None:
        out += f", from {row.converted_from_fractions} fx"
    return out


def _ab(row) -> str:
    return f"{row.alpha_beta_gy:g}" if row.alpha_beta_gy else ""


def _margin(row) -> float:
    """The row's fraction of its limit (:func:`~rtplan_assist.evaluation.reasons.percent_of_limit`
    / 100: > 1 fails); -1 without a value or a limit, so such a row is never the closest."""
    from .evaluation.reasons import percent_of_limit

    pct = percent_of_limit(row)
    return -1.0 if math.isnan(pct) else pct / 100.0


def _composite_summary(result) -> tuple[str, list[str]]:
    """Page 1's composite table: one row per organ with a mandatory composite limit (the
    verdict's organs), its worst mandatory status and the mandatory row closest to or over its
    limit, sorted by status then % of limit; organs with advisory limits only are one sentence
    under it (they do not decide the verdict: a FAIL there never sits beside a PASS banner).
    Returns (HTML, organs without a structure)."""
    from .evaluation.reasons import limit_words

    rows, missing = _constraint_rows(result.composite_rows)
    by_structure: dict[str, list] = {}
    for r in rows:
        by_structure.setdefault(r.structure, []).append(r)
    out, advisory = [], []
    for structure, items in by_structure.items():
        decisive = [r for r in items if r.priority == "mandatory"]
        if not decisive:
            closest = max(items, key=_margin)
            if _margin(closest) >= 0:
                text = f"{structure} {closest.metric} {100 * _margin(closest):.0f} %"
                advisory.append((-_margin(closest), text))
            continue
        worst_status = min((r.status for r in decisive), key=lambda st: _ORDER.get(st, 5))
        closest = max(decisive, key=_margin)
        n_fail = sum(r.status == "fail" for r in decisive)
        margin = _margin(closest)
        out.append((_ORDER.get(worst_status, 5), -margin, (
            f"<tr><td>{_E(structure)}</td>{_status_cell(worst_status)}"
            f"<td class=num>{n_fail} / {len(decisive)}</td><td>{_E(closest.metric)}</td>"
            f"<td class=num>{_num(closest.value, 1)}</td><td class=num>"
            f"{_E(_limit_text(closest))}</td><td class=num>"
            f"{'' if margin < 0 else f'{100 * margin:.0f} %'}</td>"
            f"<td class=num>{_ab(closest)}</td>"
            f"<td class=src>{_E(limit_words(closest))}</td></tr>")))
    out.sort(key=lambda t: (t[0], t[1]))
    table = _table(["OAR", "Status", "Mandatory failed", "Closest metric (EQD2)", "Value",
                    "Limit", "% of limit", "α/β", "Source of that limit"],
                   [t[2] for t in out], "composite", (12, 7, 8, 14, 7, 10, 7, 4, 31))
    if advisory:
        advisory.sort()
        table += (
            '<p class="small">Advisory composite limits only (report/optimal priority, not '
            "part of the verdict; every row in the composite table of the detail pages), "
            "highest % of limit: " + _E(", ".join(text for _, text in advisory)) + ".</p>")
    return table, missing


def _composite_detail(result) -> str:
    rows, _ = _constraint_rows(result.composite_rows)
    return _table(_DETAIL_HEAD, [_row_cells(r) for r in rows], "constraints", _DETAIL_WIDTHS)


def _lesion_constraint_tables(result) -> str:
    out = []
    chosen = result.chosen_rows()
    for lesion in result.lesions:
        lid = lesion.lesion_id
        rows, missing = _constraint_rows([r for r in chosen if r.lesion_id == lid])
        body = [_row_cells(r) for r in rows]
        note = (f'<p class="small">Not evaluable, no structure in the case: '
                f"{_E(', '.join(missing))}.</p>") if missing else ""
        out.append(
            f'<div class="lesion-block"><h3>{_E(lid)} {_E(lesion.label)}: '
            f"{_E(result.choice[lid].label)} ({_E(lesion.site)}, target {_E(lesion.target.name)})"
            f"</h3>" + _table(_DETAIL_HEAD, body, "constraints", _DETAIL_WIDTHS) + note
            + "</div>"
        )
    return "\n".join(out)


_TEMPLATE = Template("""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>MDT report $patient_id</title>
<style>
@page { size: A4 landscape; margin: 8mm 9mm 10mm 9mm;
  @bottom-left { content: "$footer_left"; font-size: 7pt; color: #555;
    font-family: "DejaVu Sans", "Liberation Sans", Arial, sans-serif; }
  @bottom-right { content: "page " counter(page) " of " counter(pages); font-size: 7pt;
    color: #555; font-family: "DejaVu Sans", "Liberation Sans", Arial, sans-serif; } }
body { font-family: "DejaVu Sans", "Liberation Sans", Arial, sans-serif; font-size: 7.6pt;
  color: #111; margin: 0; }
h1 { font-size: 12pt; margin: 0 0 1mm 0; }
h2 { font-size: 9pt; margin: 2mm 0 1mm 0; border-bottom: 0.4pt solid #999; }
h3 { font-size: 8pt; margin: 1.5mm 0 0.8mm 0; }
table { border-collapse: collapse; width: 100%; }
th, td { border: 0.4pt solid #b5b5b5; padding: 0.5mm 1mm; vertical-align: top; text-align: left; }
th { background: #eef1f4; font-weight: bold; }
td.num { text-align: right; white-space: nowrap; }
td.status { font-weight: bold; white-space: nowrap; text-align: center; }
td.src, .small { font-size: 7pt; color: #333; }
td.why ul { margin: 0 0 0 3mm; }
table.constraints td, table.composite td { padding: 0.3mm 0.8mm; }
.header { display: flex; justify-content: space-between; align-items: flex-start; }
.prov { font-size: 7pt; color: #333; line-height: 1.25; }
.verdict { font-size: 11pt; font-weight: bold; padding: 1.5mm 4mm; border: 0.8pt solid #555;
  white-space: nowrap; }
.basis { font-size: 8.6pt; font-weight: bold; margin: 1mm 0 0 0; }
.composite-reason { font-size: 8pt; margin: 0.5mm 0 1mm 0; }
.isodoses { display: flex; flex-wrap: wrap; gap: 2mm; margin-top: 1.5mm; }
.isodoses figure { margin: 0; width: ${thumb_mm}mm; }
.isodoses img { width: ${thumb_mm}mm; height: ${thumb_mm}mm; }
.isodoses figcaption, .legend { font-size: 7pt; color: #333; }
.dvh img { width: ${dvh_w}mm; height: ${dvh_h}mm; }
.lesion-block { margin-bottom: 2mm; }
.lesion-block h3 { break-after: avoid; }
thead { display: table-header-group; }
tr { break-inside: avoid; }
.page-break { break-before: page; }
.disclaimer { font-weight: bold; font-size: 7pt; margin-top: 1mm; }
ul { margin: 0.5mm 0 0.5mm 4mm; padding: 0; }
li { margin: 0; }
</style></head>
<body>
<div class="header">
 <div><h1>MDT radiotherapy plan review: $patient_id$patient_name</h1>
  <div class="prov">$provenance</div></div>
 <div class="verdict" style="background:$verdict_colour">Composite verdict: $verdict</div>
</div>
<p class="basis">$basis</p>
<p class="disclaimer">$disclaimer</p>
<h2>Decision per lesion (BED10/EQD2 of the prescription, LQ, α/β 10 Gy)</h2>
$lesion_table
<h2>Composite OARs: sum of voxel EQD2 over all lesions (per OAR: worst mandatory status and the
 limit it is closest to)</h2>
<p class="composite-reason">$composite_reason</p>
$composite_table
<div class="page-break"></div>
<h2>Axial images through each PTV centre and dose-volume histograms (shown regimens)</h2>
<div class="isodoses">$isodoses</div>
<div class="legend">$isodose_legend</div>
<div class="dvh"><img alt="DVH" src="$dvh_uri"></div>
<div class="page-break"></div>
<h2>Per-lesion constraints at the shown regimen (physical dose), then every composite row</h2>
$lesion_tables
<div class="lesion-block"><h3>Composite (EQD2, each organ's α/β)</h3>$composite_detail
$composite_missing</div>
$prior
$quality
<h2>Model and α/β</h2>
<p>$model_statement</p>
<h2>Composite caveats</h2><ul>$caveats</ul>
$recommendation
<h2>Warnings</h2><ul>$warnings</ul>
<h2>Data provenance</h2><p class="prov">$provenance_full</p>
<p class="small">$closing</p>
</body></html>
""")


def render_report_html(result, evaluator, *, deidentify: bool = False,
                       created: _dt.datetime | None = None,
                       attribution: list[str] | tuple[str, ...] = (),
                       quality: bool = False, prior=None) -> str:
    """The MDT report as one self-contained HTML page (no external URLs, no scripts).

    Parameters
    ----------
    result : EvaluationResult
        Its ``choice`` is the regimen shown per lesion; its composite rows are of that choice.
    evaluator : CaseEvaluator
        The evaluator that produced ``result`` (DVHs and the case for the images).
    deidentify : bool
        Replace the patient ID by its key (``p-`` + 8 hex digits of its SHA-256,
        :func:`rtplan_assist.deidentify.patient_key`), leave the patient name and the folder
        out, and scrub every text of the page
        (:func:`~rtplan_assist.deidentify.deidentify_result`). Study date and UIDs stay
        (provenance for the MDT). The figures are drawn from the original result: the same
        numbers, labelled with lesion ids, regimens and structure names only.
    created : datetime, optional
        Report time stamp (default now).
    attribution : list of str
        Lines printed under the provenance: the MDT decision record (id, hash, who, when)
        and who exported the report (the app's exports).
    quality : bool
        Add the per-lesion plan quality indices (:func:`rtplan_assist.quality.quality_html`;
        report-only, about 1 s per lesion once per evaluator).
    prior : PriorResult, optional
        Add the prior-course section (:func:`rtplan_assist.prior.prior_html`) and its verdict
        to the header.
    """
    from .dicom import load_ct_pixels
    from .evaluation.reasons import basis_line, composite_reason
    from .radiobiology import COMPOSITE_CAVEATS

    case = evaluator.case
    created = created or _dt.datetime.now()
    ct_hu = None
    if case.ct is not None:
        try:
            ct_hu = load_ct_pixels(case.ct)
        except Exception:  # noqa: BLE001 - the image falls back to dose only; warned below
            ct_hu = None
    verdict = result.verdict()
    dates = _dicom_dates(result)  # reads the plan files: before their paths are withheld
    figures_of = result  # figures look structures up by their real names
    if deidentify:
        # the patient ID replaced by its key, no name, no folder, every text scrubbed
        # (whoever holds the ID can still match the report to the patient)
        result = deidentify_result(result, Identifiers.of_case(case, result.folder))
    tables = ", ".join(result.provenance.get("tables", [])) or "shipped tables"
    plans = "; ".join(f"{lid} {_fmt_date(d) or 'no date'} {uid}" for lid, d, uid in
                      dates["plans"])
    name = "" if deidentify or not case.patient_name else (
        f" ({str(case.patient_name).replace('^', ' ').strip()})")
    pid = result.patient_id
    folder_name = WITHHELD if deidentify else Path(result.folder).name
    study_date = _fmt_date(dates["study_date"]) or "–"
    provenance = "<br>".join(_E(x) for x in (
        (f"Patient ID {pid}; study date {study_date}; folder "
         f"{folder_name}; report {created.strftime('%Y-%m-%d %H:%M')}; "
         f"rtplan-assist {__version__}"),
        f"Study UID {case.study_instance_uid}; frame of reference {case.frame_of_reference_uid}",
        *attribution,
    ))
    provenance_full = "<br>".join(_E(x) for x in (
        (f"Patient ID {pid}; study date {study_date}; study UID "
         f"{case.study_instance_uid}; frame of reference UID {case.frame_of_reference_uid}"),
        f"Structure set UID {case.structure_set_uid or '–'}",
        f"Plans (lesion, RTPlanDate, SOPInstanceUID): {plans}",
        f"Constraint tables: {tables}",
        (f"Software: rtplan-assist {__version__}; report created "
         f"{created.strftime('%Y-%m-%d %H:%M')}"),
    ))
    composite_table, composite_missing = _composite_summary(result)
    missing_note = (f'<p class="small">Composite not evaluable, no structure: '
                    f"{_E(', '.join(composite_missing))}.</p>") if composite_missing else ""
    isodoses = []
    for original, lesion in zip(figures_of.lesions, result.lesions):
        regimen = result.choice[lesion.lesion_id]
        uri = isodose_figure(case, original, regimen, ct_hu)
        isodoses.append(f'<figure><img alt="{_E(lesion.lesion_id)}" src="{uri}">'
                        f"<figcaption>{_E(lesion.label)}, {_E(lesion.site)}</figcaption>"
                        "</figure>")
    legend = ("Axial images through each PTV centre: the lesion's own plan scaled to the "
              f"shown regimen; R/L/A/P mark the patient's right, left, anterior and posterior "
              f"(radiological view); the bar is {SCALE_BAR_MM / 10:g} cm. Isodose lines (% of the chosen prescription): "
              + ", ".join(f'<span style="background:{c};border:0.3pt solid #333">'
                          f"&#160;&#160;&#160;</span>&#160;{int(lvl * 100)} %"
                          for lvl, c in zip(ISODOSE_LEVELS, ISODOSE_COLOURS))
              + "; PTV cyan, GTV white, OARs in their ROI colour. "
              + ("" if ct_hu is not None else "No CT available: dose on black. "))
    ab_rows = sorted({(r.structure or r.organ, r.alpha_beta_gy) for r in
                      result.composite_rows if r.alpha_beta_gy and r.structure})
    ab_text = ", ".join(f"{s} {ab:g} Gy" for s, ab in ab_rows)
    model_statement = _E(
        f"Targets: {result.provenance.get('tumour_model', 'LQ, α/β = 10 Gy')} for BED10/EQD2 "
        "of the prescription; the GTV mean BED10 is the mean of voxel BED, not the BED of the "
        "mean dose. Per-lesion OAR rows are physical dose at the regimen's fraction number, "
        "from the table at that number or converted from the nearest tabulated number (LQ, the "
        f"organ's α/β; marked in the source). {result.provenance.get('oar_model', '')}. "
        "Composite: each lesion's dose scaled to its regimen, converted voxel by voxel to EQD2 "
        "with its own fraction number and the organ's α/β (LQ, no time factor), summed on "
        f"one grid; α/β used: {ab_text or '–'}. Regimens other than the planned one scale "
        "the planned dose distribution by D/D0."
    )
    caveats = list(dict.fromkeys(list(COMPOSITE_CAVEATS) + list(result.caveats)))
    rec = result.recommendation
    rec_html = ""
    if rec.explanation:
        rec_html = ("<h2>Recommendation of the search, details (sources, CSV lines, "
                    "objective)</h2><ul>"
                    + "".join(f"<li>{_E(t)}</li>" for t in rec.explanation) + "</ul>")
    warnings = result.warnings or ["none"]
    verdict_text = STATUS_TEXT.get(verdict, verdict)
    if prior is not None:  # the composite's verdict, then the one with the prior course
        from .prior import combined_verdict

        verdict = combined_verdict(verdict, prior.verdict())
        verdict_text += f"; with the prior course: {STATUS_TEXT.get(verdict, verdict)}"
    verdict_colour = STATUS_COLOURS.get(verdict, "#ffffff")
    fields = {
        "patient_id": _E(pid), "patient_name": _E(name),
        "provenance": provenance, "provenance_full": provenance_full,
        "verdict": _E(verdict_text), "verdict_colour": verdict_colour,
        "disclaimer": _E(DISCLAIMER),
        "lesion_table": _lesion_table(result),
        "basis": _E(basis_line(result)),
        "composite_reason": _E(composite_reason(result).text),
        "thumb_mm": f"{THUMB_MM:g}", "dvh_w": f"{DVH_MM[0]:g}", "dvh_h": f"{DVH_MM[1]:g}",
        "composite_table": composite_table, "composite_missing": missing_note,
        "composite_detail": _composite_detail(result),
        "dvh_uri": dvh_figure(figures_of, evaluator),
        "isodoses": "".join(isodoses), "isodose_legend": legend,
        "lesion_tables": _lesion_constraint_tables(result),
        "quality": quality_html(evaluator, result) if quality else "",
        "prior": _prior_section(prior, case, result, deidentify),
        "model_statement": model_statement,
        "caveats": "".join(f"<li>{_E(c)}</li>" for c in caveats),
        "recommendation": rec_html,
        "warnings": "".join(f"<li>{_E(w)}</li>" for w in warnings),
        "closing": _E(f"{DISCLAIMER} Generated by rtplan-assist {__version__}."),
        "footer_left": _css_string(f"rtplan-assist {__version__} · {pid} · "
                                   "decision support, not a treatment planning system"),
    }
    return _TEMPLATE.substitute(fields)


def _prior_section(prior, case, result, deidentify: bool) -> str:
    """The prior-course section (:mod:`rtplan_assist.prior`), scrubbed when de-identified."""
    if prior is None:
        return ""
    from .prior import prior_html

    section = prior_html(prior)
    if deidentify:
        section = Identifiers.of_case(case, case.folder, prior.prior.folder).scrub(section)
    return section


def _css_string(text: str) -> str:
    """Text for a CSS ``content: "..."`` string inside the HTML style element: quotes,
    backslashes, ``<`` and every control character (``\\r``, ``\\f`` and ``\\n`` end a CSS
    string) as CSS escapes (:func:`rtplan_assist.escape.css_string`)."""
    return css_string(" ".join(text.split()))


def render_report_pdf(result, evaluator, path: str | os.PathLike, *,
                      deidentify: bool = False, attribution: list[str] | tuple[str, ...] = (),
                      quality: bool = False, prior=None) -> Path:
    """Render the report HTML to PDF with WeasyPrint (no browser) and write it atomically."""
    text = render_report_html(result, evaluator, deidentify=deidentify, attribution=attribution,
                              quality=quality, prior=prior)
    atomic_write_bytes(path, html_to_pdf(text))
    return Path(path)


def html_to_pdf(text: str) -> bytes:
    """PDF bytes of a self-contained HTML page (WeasyPrint; needs Pango >= 1.44)."""
    from .errors import RtplanAssistError

    try:
        import weasyprint
    except (ImportError, OSError) as exc:
        raise RtplanAssistError(
            f"PDF output needs WeasyPrint and the Pango library ({exc}); install "
            "'weasyprint' (pip) and 'libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core' "
            "(Debian), or write --out report.html"
        ) from exc
    return weasyprint.HTML(string=text, base_url=None).write_pdf()


def write_report(result, evaluator, path: str | os.PathLike, *, fmt: str | None = None,
                 deidentify: bool = False, quality: bool = False,
                 attribution: list[str] | tuple[str, ...] = (), prior=None) -> Path:
    """Write the report as HTML or PDF (``fmt`` or the suffix of ``path``), atomically;
    ``quality`` adds the plan quality indices, ``attribution`` the lines that say which
    decision record the shown choice matches and who exported it."""
    path = Path(path)
    fmt = (fmt or path.suffix.lstrip(".") or "pdf").lower()
    from .errors import RtplanAssistError

    if fmt not in ("html", "pdf"):
        raise RtplanAssistError(f"report format {fmt!r}: use .pdf or .html")
    if fmt == "html":
        atomic_write_text(path, render_report_html(result, evaluator, deidentify=deidentify,
                                                   quality=quality, attribution=attribution,
                                                   prior=prior))
        return path
    return render_report_pdf(result, evaluator, path, deidentify=deidentify, quality=quality,
                             attribution=attribution, prior=prior)
