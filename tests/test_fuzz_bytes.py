"""Fuzzing, part 2: byte-level mutations of real files (issue 6).

Truncation at random offsets, flipped bits (anywhere, or in the first 2 KiB where tags, VRs
and lengths live), bytes set to 0x00/0xFF/0x7F/0x80, zeroed, repeated or dropped ranges, of:

* the synthetic base case (the mutated file among its intact companions, evaluated);
* pydicom's ``rtstruct.dcm``, ``rtdose.dcm`` and ``rtplan.dcm`` (each alone);
* a demo patient's RTSTRUCT, one RTPLAN and its RTDOSE (loaded and DVHs computed);
* ``../shared/data`` (dicompyler-core, pymedphys, rt-utils and Nelms files; skipped when the
  folder is absent).

Same contract as the structured suite: a sane result or an ``RtplanAssistError`` subclass,
within the harness's time and memory bounds. Fixed seeds in CI; ``--fuzz-long`` for more.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path

import pytest
from fuzz import harness
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

MUTATIONS = sorted(harness.BYTE_MUTATIONS)


def fuzz_files(sources, examples: int, fuzz_scale: int, *, evaluate: bool) -> None:
    """Mutate one file of a source group per example and run the pipeline on the group.

    ``sources`` is a list of (file to mutate, companion files) pairs.
    """

    @settings(
        max_examples=examples * fuzz_scale,
        deadline=None,
        derandomize=fuzz_scale == 1,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        source=st.sampled_from(sources),
        name=st.sampled_from(MUTATIONS),
        seed=st.integers(0, 2**32 - 1),
    )
    def check(source, name, seed):
        target, companions = source
        with tempfile.TemporaryDirectory(prefix="rtpa-fuzz-") as tmp:
            folder = Path(tmp)
            for path in companions:
                shutil.copyfile(path, folder / path.name)
            data = harness.mutate_bytes(Path(target).read_bytes(), name, seed)
            (folder / Path(target).name).write_bytes(data)
            harness.run_pipeline(folder, evaluate=evaluate)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check()


@pytest.fixture(scope="module")
def base_files(tmp_path_factory) -> list[Path]:
    return harness.write_case(harness.base_datasets(), tmp_path_factory.mktemp("base"))


def test_base_case_bytes(base_files, fuzz_scale):
    sources = [(f, [g for g in base_files if g != f]) for f in base_files]
    fuzz_files(sources, 150, fuzz_scale, evaluate=True)


def test_pydicom_test_files(tmp_path, fuzz_scale):
    import pydicom

    plan = Path(get_testdata_file("rtplan.dcm"))
    # The plan is read only next to a structure set or dose of its patient: the base case's
    # files under the plan's PatientID (another frame of reference: read, then not loaded).
    patient = str(pydicom.dcmread(plan, stop_before_pixels=True).PatientID)
    datasets = harness.base_datasets(patient)
    del datasets["plan"]
    companions = harness.write_case(datasets, tmp_path)
    sources = [(Path(get_testdata_file("rtstruct.dcm")), []),
               (Path(get_testdata_file("rtdose.dcm")), []),
               (plan, companions)]
    fuzz_files(sources, 45, fuzz_scale, evaluate=False)


def test_demo_patient_files(leakcheck_patient, fuzz_scale):
    rs, rp, rd = (leakcheck_patient / n for n in ("RS.dcm", "RP.L1.dcm", "RD.L1.dcm"))
    sources = [(rs, [rp, rd]), (rp, [rs, rd]), (rd, [rs, rp])]
    fuzz_files(sources, 8, fuzz_scale, evaluate=False)


def test_shared_data_files(shared_data, fuzz_scale):
    dcp = shared_data / "dicompyler-core-example"
    nelms = shared_data / "nelms-dvh"
    sources = [
        (dcp / "rtss.dcm", [dcp / "rtplan.dcm"]),
        (dcp / "rtplan.dcm", [dcp / "rtss.dcm"]),
        (dcp / "rtdose.dcm", []),
        (dcp / "ct.0.dcm", [dcp / "rtss.dcm"]),
        (shared_data / "pymedphys-orientation" / "rtdose_non_square_pixels.dcm", []),
        (shared_data / "rt-utils-mock" / "mock_data" / "rt.dcm", []),
        (shared_data / "rt-utils-mock" / "empty" / "dummy_rt.dcm", []),
        (nelms / "structures" / "Sphere_20_0.dcm", [nelms / "dose" / "Linear_AntPost_3mm_Aligned.dcm"]),
        (nelms / "dose" / "Linear_AntPost_3mm_Aligned.dcm", [nelms / "structures" / "Cone_30_0.dcm"]),
    ]
    sources = [(f, c) for f, c in sources if f.is_file() and all(p.is_file() for p in c)]
    if not sources:
        pytest.skip("no shared data files of the expected names")
    fuzz_files(sources, 40, fuzz_scale, evaluate=False)
