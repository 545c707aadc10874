"""Decimal strings to float64: the numbers of a DICOM DS value (e.g. ContourData, hundreds of
thousands of coordinates in a structure set).

A value is parsed exactly (the float nearest to the decimal, as Python's ``float`` and
``np.fromstring`` give it) by Clinger's fast path: the digits as an integer ``m`` and a
decimal exponent ``e``; when ``m <= 2**53`` and ``|e| <= 22`` both ``m`` and ``10**|e|`` are
exact doubles, so the one multiplication or division IEEE 754 rounds correctly *is* the
nearest double (W. D. Clinger, "How to read floating point numbers accurately", PLDI 1990).
Anything outside it (more significant digits, larger exponents, ``inf``/``nan``, a character
that is not part of a plain decimal) is not guessed: the call returns ``None`` and the caller
parses the text the slow, general way.
"""

from __future__ import annotations

import numpy as np

from ._jit import kernel

#: 10**0 .. 10**22, every one an exact double
_POW10 = np.array([10.0**k for k in range(23)])
_MAX_EXACT = 2**53


@kernel(nogil=True)
def _parse(buf, out, pow10):
    """Parse ``buf`` (bytes of values separated by ``\\``, each with optional spaces around)
    into ``out``; returns the number of values, or -1 if any value is outside the fast path
    or there are more values than ``out`` holds."""
    n = buf.shape[0]
    k = 0
    i = 0
    while i <= n:
        # one value: [spaces] [sign] digits [. digits] [(e|E) [sign] digits] [spaces]
        while i < n and buf[i] == 32:
            i += 1
        negative = False
        if i < n and (buf[i] == 43 or buf[i] == 45):  # + -
            negative = buf[i] == 45
            i += 1
        m = 0
        digits = 0  # significant digits in m (leading zeros not counted)
        seen = 0  # digits seen at all
        scale = 0  # decimal exponent from the digits after the point
        point = False
        while i < n:  # digits, with at most one decimal point among them
            c = buf[i]
            if 48 <= c <= 57:
                d = c - 48
                if m > 0 or d > 0:
                    digits += 1
                if digits > 17:
                    return -1
                m = m * 10 + d
                if point:
                    scale -= 1
                seen += 1
            elif c == 46 and not point:  # .
                point = True
            else:
                break
            i += 1
        if seen == 0:
            return -1
        if i < n and (buf[i] == 101 or buf[i] == 69):  # e E
            i += 1
            exp_negative = False
            if i < n and (buf[i] == 43 or buf[i] == 45):
                exp_negative = buf[i] == 45
                i += 1
            e = 0
            e_digits = 0
            while i < n and 48 <= buf[i] <= 57:
                e = e * 10 + (buf[i] - 48)
                e_digits += 1
                if e > 1000:
                    return -1
                i += 1
            if e_digits == 0:
                return -1
            scale += -e if exp_negative else e
        while i < n and buf[i] == 32:
            i += 1
        if i < n and buf[i] != 92:  # anything but the separator
            return -1
        if m > _MAX_EXACT:
            return -1
        if m == 0:
            value = 0.0
        elif 0 <= scale <= 22:
            value = float(m) * pow10[scale]
        elif -22 <= scale < 0:
            value = float(m) / pow10[-scale]
        else:
            return -1
        if k >= out.shape[0]:
            return -1
        out[k] = -value if negative else value
        k += 1
        i += 1  # past the separator (or past the end)
    return k


def parse_decimals(text: bytes, n_values: int) -> np.ndarray | None:
    """``n_values`` backslash-separated decimals of ``text`` as float64, bit for bit what
    Python's ``float`` gives each; ``None`` if a value is outside the exact fast path (module
    docstring) or the count differs (the caller then parses the general way)."""
    if not text or n_values <= 0:
        return None
    out = np.empty(int(n_values))
    buf = np.frombuffer(text, dtype=np.uint8)
    got = _parse(buf, out, _POW10)
    return out if got == n_values else None
