"""RTDOSE and CT pixel data in JPEG-LS and JPEG 2000 (issue 11: real exports use them).

pydicom decodes them through its optional plugins (pydicom 3 plugin table): ``pyjpegls``
(CharLS, BSD) for JPEG-LS, ``pylibjpeg`` + ``pylibjpeg-openjpeg`` (OpenJPEG, MIT/BSD) for
JPEG 2000; both also encode, which is how the files here are written. Truth: the stored
values we compressed ourselves, lossless, so the decoded dose/HU must equal them exactly.
"""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.uid import JPEG2000, JPEG2000Lossless, JPEGLSLossless, JPEGLSNearLossless

from rtplan_assist.dicom import load_ct_pixels
from rtplan_assist.dicom.ct import ct_series_from_headers
from rtplan_assist.dicom.rtdose import read_dose
from test_dicom_synthetic import write_ct, write_dose

LOSSLESS = [JPEGLSLossless, JPEG2000Lossless]


def _dose_16bit(path, frames):
    """A 16-bit RTDOSE (JPEG-LS stores at most 16 bits, as real compressed doses do)."""
    write_dose(path, frames.astype(np.uint32), pixel_spacing=(2.5, 2.5))
    ds = pydicom.dcmread(path)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelData = np.ascontiguousarray(frames, dtype="<u2").tobytes()
    ds.save_as(path)
    return path


@pytest.mark.parametrize("syntax", LOSSLESS, ids=lambda u: u.name)
def test_compressed_rtdose_decodes_to_the_stored_values(tmp_path, syntax):
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 60000, size=(3, 32, 40)).astype(np.uint16)
    plain = _dose_16bit(tmp_path / "rd.dcm", frames)
    ds = pydicom.dcmread(plain)
    ds.compress(syntax)
    packed = tmp_path / "rd_packed.dcm"
    ds.save_as(packed)
    assert pydicom.dcmread(packed).file_meta.TransferSyntaxUID == syntax
    dose = read_dose(packed)
    expected = read_dose(plain).dose_gy
    assert np.array_equal(dose.dose_gy, expected)
    # and the stored values × DoseGridScaling (0.001) by hand, frame 0 row 0
    assert np.allclose(dose.dose_gy[0, 0], frames[0, 0] * 0.001, rtol=1e-6)


@pytest.mark.parametrize("syntax", [JPEGLSNearLossless, JPEG2000], ids=lambda u: u.name)
def test_lossy_compressed_rtdose_decodes_within_its_error_bound(tmp_path, syntax):
    frames = (np.arange(3 * 32 * 40).reshape(3, 32, 40) * 15).astype(np.uint16)
    plain = _dose_16bit(tmp_path / "rd.dcm", frames)
    ds = pydicom.dcmread(plain)
    kwargs = {"jls_error": 2} if syntax == JPEGLSNearLossless else {"j2k_psnr": [80]}
    ds.compress(syntax, **kwargs)
    packed = tmp_path / "rd_packed.dcm"
    ds.save_as(packed)
    dose = read_dose(packed).dose_gy
    # near-lossless: |error| <= 2 stored units by definition; JPEG 2000 at 80 dB PSNR:
    # RMS error ~ 65535 / 10^4 = 6.6 units
    bound = 2 if syntax == JPEGLSNearLossless else 40
    assert np.max(np.abs(dose / 0.001 - frames.astype(np.float64))) <= bound + 0.01  # + float32 rounding of the dose


@pytest.mark.parametrize("syntax", LOSSLESS, ids=lambda u: u.name)
def test_compressed_ct_decodes_to_hounsfield_units(tmp_path, syntax):
    folder = tmp_path / "ct"
    paths = write_ct(folder, [0.0, 3.0, 6.0], rows=32, cols=40)
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.compress(syntax)
        ds.save_as(p)
    headers = [(str(p), pydicom.dcmread(p, stop_before_pixels=True)) for p in paths]
    hu = load_ct_pixels(ct_series_from_headers(headers))
    # write_ct: stored value of (row i, col j) on slice s is 100 s + 10 i + j; HU = 2 v - 1024
    s, i, j = np.mgrid[0:3, 0:32, 0:40]
    assert np.array_equal(hu, (2.0 * (100 * s + 10 * i + j) - 1024.0).astype(np.float32))
