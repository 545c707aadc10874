"""kernels/text.py: decimal strings (DICOM DS values) to float64.

Expected values: Python's ``float`` of each string (correctly rounded, David Gay's algorithm;
pydicom converts DS values with it), bit for bit. A string outside the kernel's exact fast path
must be refused (``None``: the caller parses it the general way), never approximated.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from rtplan_assist.kernels.text import parse_decimals


def _spellings(rng: random.Random, n: int) -> list[str]:
    out = []
    for _ in range(n):
        kind = rng.randrange(8)
        x = rng.uniform(-2000.0, 2000.0)
        if kind == 0:
            s = f"{x:.{rng.randint(0, 6)}f}"
        elif kind == 1:
            s = f"{x:.{rng.randint(1, 15)}g}"  # up to 15 significant digits
        elif kind == 2:
            s = f"{x:.{rng.randint(1, 9)}e}"
        elif kind == 3:
            s = f"{x:.{rng.randint(1, 9)}E}".replace("E+0", "E+").replace("E-0", "E-")
        elif kind == 4:
            s = f"{rng.randint(-99999, 99999)}"
        elif kind == 5:
            s = f"{abs(x):.3f}".lstrip("0") or "0"  # ".5"-style
            s = rng.choice(["", "+", "-"]) + s
        elif kind == 6:
            s = f"{x:.2f}".rstrip("0")  # "5."-style
        else:
            s = rng.choice(["0", "-0", "0.0", "-0.000", "+0", "1e-5", "123456789012.5"])
        pad = " " * rng.randint(0, 2)
        out.append(rng.choice([s, pad + s, s + pad]))
    return out


def test_plain_decimals_parse_to_pythons_float_bit_for_bit():
    rng = random.Random(15)
    values = _spellings(rng, 20000)
    got = parse_decimals("\\".join(values).encode(), len(values))
    assert got is not None
    want = np.array([float(v) for v in values])
    assert got.tobytes() == want.tobytes()  # also the sign of -0.0


def test_edges_of_the_fast_path_are_exact():
    # 2**53 itself and the largest exponents of 10 that are exact doubles; classic hard cases
    # of decimal conversion that a naive digit-by-digit m * 10**e would round wrongly
    inside = ["9007199254740992", "9007199254740992e22", "-9007199254740991e-22", "1e-22",
              "0.1", "0.2", "0.3", "8.98846567431158e-7", "2.2250738585072e-8",
              "1.7976931348623e2", "0.000000000000000000001"]
    got = parse_decimals("\\".join(inside).encode(), len(inside))
    want = np.array([float(v) for v in inside])
    assert got is not None and got.tobytes() == want.tobytes()


def test_seventeen_digits_are_exact_or_refused():
    # repr() of a random double needs up to 17 significant digits: each value is either in the
    # fast path (then bit-identical) or refused, never rounded differently
    rng = random.Random(17)
    accepted = 0
    for _ in range(5000):
        text = repr(rng.uniform(-1e4, 1e4) * 10.0 ** rng.randint(-12, 12))
        got = parse_decimals(text.encode(), 1)
        if got is not None:
            accepted += 1
            assert got.tobytes() == np.array([float(text)]).tobytes(), text
    assert accepted > 100  # the test is not vacuous


@pytest.mark.parametrize("text", [
    "123456789012345678",  # 18 significant digits: not exact by the fast path
    "9007199254740993",  # 2**53 + 1
    "1e23", "1e-23", "1e400", "nan", "inf", "-inf", "1,5", "1.5.5", "--1", "1e", "e5",
    ".", "+", "", " ", "1 2", "0x10", "1\\", "\\1", "1\\\\2", "1\x002",
])
def test_anything_else_is_refused_not_guessed(text):
    n = text.count("\\") + 1
    assert parse_decimals(text.encode("latin-1"), n) is None


def test_a_count_that_does_not_match_is_refused():
    assert parse_decimals(b"1\\2\\3", 2) is None
    assert parse_decimals(b"1\\2\\3", 4) is None
    assert parse_decimals(b"1\\2\\3", 3).tolist() == [1.0, 2.0, 3.0]


def test_the_demo_structure_set_parses_as_numpy_and_python_parse_it():
    # every ContourData of the demo RTSTRUCT: the kernel, np.fromstring (the general path)
    # and Python's float give the same bits
    from rtplan_assist.demo import demo_case_folder
    import pydicom

    ds = pydicom.dcmread(demo_case_folder() / "RS.dcm")
    texts = []
    for roi in ds.ROIContourSequence:
        for contour in roi.get("ContourSequence", []):
            value = contour.get_item(0x30060050).value  # the raw element's bytes
            texts.append(value.strip(b" \x00"))
    joined = b"\\".join(texts)
    n = joined.count(b"\\") + 1
    assert n > 100_000
    got = parse_decimals(joined, n)
    general = np.fromstring(joined.decode("latin-1"), sep="\\")
    assert got is not None and got.tobytes() == general.tobytes()
    sample = joined.split(b"\\")[::97]
    assert got[::97].tolist() == [float(v) for v in sample]
