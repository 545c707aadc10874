"""kernels/scale.py: stored RTDOSE values x DoseGridScaling into float32.

Expected values: NumPy's own conversion, ``np.multiply(stored, factor, out=float32,
dtype=float64, casting="unsafe")`` (exact to float64, one IEEE multiplication, one
round-to-nearest to float32; what the reader did before the kernel), bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest

from rtplan_assist.kernels.scale import scale_to_float32


@pytest.mark.parametrize("kind", [np.uint16, np.uint32, np.int16, np.int32, np.float32])
def test_the_kernel_gives_numpys_bits(kind):
    rng = np.random.default_rng(5)
    info = np.iinfo(kind) if np.issubdtype(kind, np.integer) else None
    if info is not None:
        stored = rng.integers(info.min, info.max, size=(7, 11, 13), endpoint=True, dtype=kind)
        stored.flat[:2] = (info.min, info.max)  # the extremes of the type
    else:
        stored = (rng.standard_normal((7, 11, 13)) * 1e4).astype(kind)
    for factor in (1.0, 2.5e-5, 3.0517578125e-05, 1.0 / 3.0, 7.3e-7 * 100):
        want = np.empty(stored.shape, dtype=np.float32)
        np.multiply(stored, factor, out=want, dtype=np.float64, casting="unsafe")
        got = scale_to_float32(stored, factor)
        assert got.dtype == np.float32 and got.shape == stored.shape
        assert got.tobytes() == want.tobytes()


def test_a_view_in_another_order_is_scaled_in_its_own_order():
    stored = np.arange(24, dtype=np.uint32).reshape(2, 3, 4)[:, ::-1, ::-1]
    assert scale_to_float32(stored, 0.5).tolist() == (stored * 0.5).tolist()
