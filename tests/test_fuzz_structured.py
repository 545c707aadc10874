"""Fuzzing, part 1: structured mutations of a small synthetic RT case (issue 6).

Each case is the base RTSTRUCT/RTDOSE/RTPLAN of ``fuzz/harness.py`` with one to three named
mutations (missing ContourData/PixelData/DoseGridScaling/GridFrameOffsetVector, wrong VRs and
types, NaN/inf/absurd values, zero or negative spacing, 10¹² voxel headers, huge or far-away
contours, duplicated or conflicting UIDs, zero fractions, ...), written to a temporary folder
and run through ``load_case`` → ``compute_dvhs`` → ``CaseEvaluator.evaluate``. The contract:
a sane result or an ``RtplanAssistError`` subclass; never another exception, never past the
harness's time (30 s) and resident-memory (512 MiB) bounds.

CI runs a fixed corpus (every mutation alone at 4 seeds, 150 derandomized combinations,
and the explicit edge cases below); ``--fuzz-long [FACTOR]`` multiplies the combinations and
draws them afresh.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from fuzz import harness
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtplan_assist.dicom import load_case
from rtplan_assist.dvh import MAX_DVH_SAMPLES, compute_dvh
from rtplan_assist.errors import (
    DicomInputError,
    EvaluationError,
    GeometryError,
    RtplanAssistError,
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

MUTATIONS = sorted(harness.STRUCTURED)


def run_case(names: list[str], seed: int, folder: Path) -> harness.Outcome | None:
    """Write the mutated case and run the guarded pipeline (None: pydicom cannot write it)."""
    try:
        harness.write_case(harness.mutated_case(names, seed), folder)
    except harness.Unwritable:
        return None
    return harness.run_pipeline(folder)


def test_base_case_is_evaluated(tmp_path):
    outcome = harness.run_pipeline(harness.write_case(harness.base_datasets(), tmp_path))
    assert outcome.kind == "ok", outcome


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("name", MUTATIONS)
def test_each_mutation_alone(tmp_path, name, seed):
    outcome = run_case([name], seed, tmp_path)
    if outcome is not None and outcome.kind == "typed":
        assert outcome.error.split(":")[0] in {
            c.__name__ for c in (DicomInputError, GeometryError, EvaluationError)
        } or outcome.error


def test_mutation_combinations(fuzz_scale):
    """Derandomized in CI (the same 150 cases every run); fresh draws with --fuzz-long."""

    @settings(
        max_examples=150 * fuzz_scale,
        deadline=None,
        derandomize=fuzz_scale == 1,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        names=st.lists(st.sampled_from(MUTATIONS), min_size=2, max_size=3),
        seed=st.integers(0, 2**32 - 1),
    )
    def check(names, seed):
        with tempfile.TemporaryDirectory(prefix="rtpa-fuzz-") as tmp:
            run_case(names, seed, Path(tmp))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check()


# ------------------------------------------------------------------------ explicit edge cases


def test_million_point_contour_is_refused_before_it_is_parsed(tmp_path):
    # 10^6 points = 3e6 DS values (~27 MB of text); parsed by pydicom that would be ~1.4 GB
    # of DSfloat objects. The count is checked on the raw bytes first.
    datasets = harness.base_datasets()
    contour = datasets["struct"].ROIContourSequence[0].ContourSequence[0]
    t = np.linspace(0, 2 * np.pi, 1_000_000, endpoint=False)
    text = "\\".join(f"{4 * np.cos(a):.2f}\\{4 * np.sin(a):.2f}\\34" for a in t)
    harness.set_raw(contour, "ContourData", text, vr="UN")
    contour.NumberOfContourPoints = len(t)
    harness.write_case(datasets, tmp_path)
    outcome = harness.run_pipeline(tmp_path, memory_bytes=256 * 2**20)
    assert outcome.kind == "typed" and "points" in outcome.error, outcome
    assert outcome.seconds < 10


@pytest.mark.parametrize(
    "rows, cols, frames",
    [(65535, 65535, 8), (10_000, 10_000, 10_000), (12, 10, 1_000_000_000_000)],
)
def test_header_claiming_huge_grid_is_refused_without_allocating(tmp_path, rows, cols, frames):
    datasets = harness.base_datasets()
    dose = datasets["dose"]
    dose.Rows, dose.Columns = rows, cols
    harness.set_raw(dose, "NumberOfFrames", str(frames))
    harness._delete(dose, "GridFrameOffsetVector")
    harness.write_case(datasets, tmp_path)
    outcome = harness.run_pipeline(tmp_path, memory_bytes=64 * 2**20)
    assert outcome.kind == "typed", outcome
    assert "DicomInputError" in outcome.error and "RTDOSE" in outcome.error


def test_pixel_data_shorter_than_the_header_says(tmp_path):
    datasets = harness.base_datasets()
    datasets["dose"].PixelData = bytes(datasets["dose"].PixelData)[:400]
    harness.write_case(datasets, tmp_path)
    with pytest.raises(DicomInputError, match="PixelData holds 400 bytes"):
        load_case(tmp_path)


@pytest.mark.parametrize("missing", ["PixelData", "DoseGridScaling", "GridFrameOffsetVector"])
def test_missing_required_dose_element(tmp_path, missing):
    datasets = harness.base_datasets()
    delattr(datasets["dose"], missing)
    harness.write_case(datasets, tmp_path)
    with pytest.raises(DicomInputError, match=missing):
        load_case(tmp_path)


def test_missing_contour_data_leaves_the_roi_empty_with_a_warning(tmp_path):
    datasets = harness.base_datasets()
    for contour in datasets["struct"].ROIContourSequence[2].ContourSequence:
        del contour.ContourData
    harness.write_case(datasets, tmp_path)
    case = load_case(tmp_path)
    assert case.structure("Esophagus").is_empty
    assert any("Esophagus" in w and "no volume" in w for w in case.warnings)


@pytest.mark.parametrize("spacing", ["0\\2", "-2\\2", "nan\\2", "2\\inf", "1e-300\\2"])
def test_bad_pixel_spacing(tmp_path, spacing):
    datasets = harness.base_datasets()
    harness.set_raw(datasets["dose"], "PixelSpacing", spacing)
    harness.write_case(datasets, tmp_path)
    with pytest.raises(DicomInputError, match="PixelSpacing"):
        load_case(tmp_path)


@pytest.mark.parametrize("value", ["abc", "2.5", ""])
def test_fractions_that_are_not_an_integer(tmp_path, value):
    datasets = harness.base_datasets()
    harness.set_raw(datasets["plan"].FractionGroupSequence[0], "NumberOfFractionsPlanned", value)
    harness.write_case(datasets, tmp_path)
    if value:
        with pytest.raises(DicomInputError, match="NumberOfFractionsPlanned"):
            load_case(tmp_path)
    else:
        assert load_case(tmp_path).plans[0].fractions is None


def test_plan_with_zero_fractions_is_not_a_lesion(tmp_path):
    datasets = harness.base_datasets()
    datasets["plan"].FractionGroupSequence[0].NumberOfFractionsPlanned = 0
    harness.write_case(datasets, tmp_path)
    outcome = harness.run_pipeline(tmp_path)
    assert outcome.kind == "typed" and "EvaluationError" in outcome.error, outcome
    case = load_case(tmp_path)
    assert case.plans[0].fractions is None
    assert any("NumberOfFractionsPlanned" in w for w in case.warnings)


def test_contours_outside_every_grid_are_reported_as_outside(tmp_path):
    datasets = harness.base_datasets()
    for contour in datasets["struct"].ROIContourSequence[2].ContourSequence:
        pts = np.asarray([float(v) for v in contour.ContourData]).reshape(-1, 3)
        pts[:, 0] += 500.0
        contour.ContourData = [float(v) for v in pts.ravel()]
    harness.write_case(datasets, tmp_path)
    case = load_case(tmp_path)
    dvh = compute_dvh(case.structure("Esophagus"), case.doses[0])
    # 4 mm square on 4 planes 2 mm apart: 16 mm² × 8 mm = 0.128 cm³, all of it outside
    assert dvh.outside_cc == pytest.approx(0.128, rel=1e-6)
    assert dvh.dvh_volume_cc == 0 and any("outside" in w for w in dvh.warnings)
    assert harness.run_pipeline(tmp_path).kind == "ok"


def test_contour_a_kilometre_away_is_refused(tmp_path):
    datasets = harness.base_datasets()
    contour = datasets["struct"].ROIContourSequence[1].ContourSequence[0]
    values = [float(v) for v in contour.ContourData]
    values[0] = 1.0e6
    contour.ContourData = values
    harness.write_case(datasets, tmp_path)
    with pytest.raises(DicomInputError, match="not a patient position"):
        load_case(tmp_path)


def test_dvh_sample_cap_refuses_absurd_work_before_the_kernel(tmp_path):
    harness.write_case(harness.base_datasets(), tmp_path)
    case = load_case(tmp_path)
    start = time.perf_counter()
    # 8 mm square at a 1 µm row pitch: (8e3 rows) × (2e3 sub-slabs) × 4 planes > cap
    with pytest.raises(GeometryError, match="samples"):
        compute_dvh(case.structure("PTV"), case.doses[0], h_mm=0.001)
    assert time.perf_counter() - start < 2
    assert MAX_DVH_SAMPLES >= 1e7


def test_single_frame_dose_with_one_offset_loads(tmp_path):
    # Found by fuzzing: GridFrameOffsetVector "0" (one value) raised TypeError (len of DSfloat)
    datasets = harness.base_datasets()
    dose = datasets["dose"]
    _, rows, cols = harness.DOSE_SHAPE
    dose.NumberOfFrames = 1
    dose.GridFrameOffsetVector = [0.0]
    dose.SliceThickness = 2.0
    dose.PixelData = bytes(dose.PixelData)[: rows * cols * 4]
    harness.write_case(datasets, tmp_path)
    case = load_case(tmp_path)
    assert case.doses[0].grid.shape == (1, rows, cols)


def test_contour_repeated_on_its_plane_has_no_negative_volume(tmp_path):
    # Found by fuzzing: two identical polygons on a plane gave volume -2 × area.
    datasets = harness.base_datasets()
    seq = datasets["struct"].ROIContourSequence[0].ContourSequence
    seq.append(harness.copy.deepcopy(seq[0]))
    harness.write_case(datasets, tmp_path)
    case = load_case(tmp_path)
    dvh = compute_dvh(case.structure("PTV"), case.doses[0])
    assert dvh.volume_cc > 0
    assert dvh.volume_cc == pytest.approx(dvh.dvh_volume_cc + dvh.outside_cc, rel=0.01)


@pytest.mark.parametrize("uids", ["plan=dose", "struct=plan", "two doses", "two plans"])
def test_duplicated_uids_end_typed_or_evaluated(tmp_path, uids):
    datasets = harness.base_datasets()
    if uids == "plan=dose":
        datasets["plan"].SOPInstanceUID = harness.DOSE_UID
        datasets["dose"].ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID = harness.DOSE_UID
    elif uids == "struct=plan":
        datasets["struct"].SOPInstanceUID = harness.PLAN_UID
    elif uids == "two doses":
        datasets["dose_copy"] = harness.copy.deepcopy(datasets["dose"])
    else:
        datasets["plan_copy"] = harness.copy.deepcopy(datasets["plan"])
    harness.write_case(datasets, tmp_path)
    try:
        outcome = harness.run_pipeline(tmp_path)
    except RtplanAssistError as exc:  # pragma: no cover - run_pipeline returns typed ones
        pytest.fail(f"escaped the harness: {exc}")
    assert outcome.kind in ("ok", "typed")
