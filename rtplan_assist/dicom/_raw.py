"""A strict reader for the plain DICOM files the loader sees every day, without pydicom.

``import pydicom`` costs about 0.15 s (``pydicom.config`` imports its pixel decoders, and they
import ``PIL.ImageCms`` and ``pydicom.data``'s download machinery), and pydicom builds one
Dataset per contour of a structure set (1,244 for the demo thorax) before the loader sees a
point. This module reads the common case directly from the bytes:

* a Part 10 file (128-byte preamble, ``DICM``, an explicit VR little endian File Meta group)
  whose Transfer Syntax is Implicit or Explicit VR Little Endian;
* data elements in ascending tag order, sequences and items of defined or undefined length;
* values read only through :class:`RawDataset` (``get``, ``in``), converted exactly as pydicom
  converts them, for the elements listed in :data:`KEYWORDS`.

It is strict on purpose: anything it is not sure pydicom would read the same way (big endian,
deflate, encapsulated pixel data, a VR other than the dictionary's, an invalid VR, a truncated
element, a value with non-ASCII bytes, a number pydicom would have to validate, a character
set other than the default, ISO_IR 100 or ISO_IR 192, ...) raises :class:`NotClean`. The
loader then reads the whole case again through pydicom, the path that gives every error and
warning for damaged files, so the fast path never changes a result: it only decides sooner.
"""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path

import numpy as np


class NotClean(Exception):
    """The file (or a value in it) is not in the plain subset this reader accepts: read it
    with pydicom instead. Internal to the loader; never reaches a caller of ``load_case``."""


#: Keyword → (tag, dictionary VR) of every element the loader reads (tests check this table
#: against pydicom's dictionary).
KEYWORDS: dict[str, tuple[int, str]] = {
    "Modality": (0x00080060, "CS"),
    "PatientID": (0x00100020, "LO"),
    "PatientName": (0x00100010, "PN"),
    "SOPClassUID": (0x00080016, "UI"),
    "SOPInstanceUID": (0x00080018, "UI"),
    "StudyInstanceUID": (0x0020000D, "UI"),
    "SeriesInstanceUID": (0x0020000E, "UI"),
    "FrameOfReferenceUID": (0x00200052, "UI"),
    "SpecificCharacterSet": (0x00080005, "CS"),
    "ReferencedFrameOfReferenceSequence": (0x30060010, "SQ"),
    "RTReferencedStudySequence": (0x30060012, "SQ"),
    "RTReferencedSeriesSequence": (0x30060014, "SQ"),
    "StructureSetROISequence": (0x30060020, "SQ"),
    "ROIContourSequence": (0x30060039, "SQ"),
    "RTROIObservationsSequence": (0x30060080, "SQ"),
    "ROINumber": (0x30060022, "IS"),
    "ReferencedROINumber": (0x30060084, "IS"),
    "RTROIInterpretedType": (0x300600A4, "CS"),
    "ROIName": (0x30060026, "LO"),
    "ContourSequence": (0x30060040, "SQ"),
    "ContourGeometricType": (0x30060042, "CS"),
    "NumberOfContourPoints": (0x30060046, "IS"),
    "ContourData": (0x30060050, "DS"),
    "ROIDisplayColor": (0x3006002A, "IS"),
    "FractionGroupSequence": (0x300A0070, "SQ"),
    "NumberOfFractionsPlanned": (0x300A0078, "IS"),
    "DoseReferenceSequence": (0x300A0010, "SQ"),
    "DoseReferenceType": (0x300A0020, "CS"),
    "TargetPrescriptionDose": (0x300A0026, "DS"),
    "ReferencedStructureSetSequence": (0x300C0060, "SQ"),
    "ReferencedSOPInstanceUID": (0x00081155, "UI"),
    "RTPlanLabel": (0x300A0002, "SH"),
    "RTPlanName": (0x300A0003, "LO"),
    "Rows": (0x00280010, "US"),
    "Columns": (0x00280011, "US"),
    "PixelSpacing": (0x00280030, "DS"),
    "ImagePositionPatient": (0x00200032, "DS"),
    "ImageOrientationPatient": (0x00200037, "DS"),
    "NumberOfFrames": (0x00280008, "IS"),
    "GridFrameOffsetVector": (0x3004000C, "DS"),
    "SliceThickness": (0x00180050, "DS"),
    "DoseGridScaling": (0x3004000E, "DS"),
    "DoseUnits": (0x30040002, "CS"),
    "DoseSummationType": (0x3004000A, "CS"),
    "DoseType": (0x30040004, "CS"),
    "DoseComment": (0x30040006, "LO"),
    "SeriesDescription": (0x0008103E, "LO"),
    "ReferencedRTPlanSequence": (0x300C0002, "SQ"),
    "BitsAllocated": (0x00280100, "US"),
    "BitsStored": (0x00280101, "US"),
    "PixelRepresentation": (0x00280103, "US"),
    "SamplesPerPixel": (0x00280002, "US"),
    "PhotometricInterpretation": (0x00280004, "CS"),
    "RescaleIntercept": (0x00281052, "DS"),
    "RescaleSlope": (0x00281053, "DS"),
}

PIXEL_DATA_TAG = 0x7FE00010
#: Float and double float pixel data, and anything else in group 7FE0: not in the subset.
_PIXEL_GROUP = 0x7FE0

_VR_BY_TAG: dict[int, bytes] = {tag: vr.encode() for tag, vr in KEYWORDS.values()}

_LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)
_SHORT_VRS = frozenset(
    {b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT",
     b"PN", b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US"}
)
_TEXT_VRS = frozenset({b"CS", b"LO", b"PN", b"SH", b"UI"})
#: Text VRs pydicom decodes with the SpecificCharacterSet (CS and UI: always ISO 646/8859-1).
_CHARSET_VRS = frozenset({b"LO", b"PN", b"SH"})

IMPLICIT_VR_LE = "1.2.840.10008.1.2"
EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
#: Character sets read here, with the Python codec pydicom decodes their LO/SH/PN text with
#: (no character set: pydicom's default, ISO 8859-1); other ones (ISO 2022 code extensions,
#: Japanese, Greek, ...) go to pydicom.
_CODECS = {"": "latin-1", "ISO_IR 6": "latin-1", "ISO_IR 100": "latin-1", "ISO_IR 192": "utf-8"}

_CHARSET_TAG = 0x00080005
_ITEM = 0xFFFEE000
_ITEM_DELIMITER = 0xFFFEE00D
_SEQUENCE_DELIMITER = 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF

_TAG = struct.Struct("<HH").unpack_from
_U16 = struct.Struct("<H").unpack_from
_U32 = struct.Struct("<I").unpack_from

# A DS or IS value pydicom converts without a validation warning and Python's float/int read
# identically (no NaN/inf, no empty value, no embedded spaces).
_DS_VALUE = re.compile(rb" *[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)? *\Z")
_IS_VALUE = re.compile(rb" *[+-]?[0-9]+ *\Z")

#: Bytes read first: the header of a CT slice or a dose grid is a few kB; the rest (pixels)
#: is read only when the header runs past this.
HEAD_BYTES = 1 << 16


class MultiValue(list):
    """Several values of one element. Only what the readers do with pydicom's MultiValue is
    offered (``len``, iteration, ``float`` of each); its text form differs from pydicom's, so
    asking for it (an error message quoting the value) sends the case to pydicom."""

    def __str__(self) -> str:
        raise NotClean("text of a multi-valued element")

    __repr__ = __str__

    def __format__(self, spec: str) -> str:
        raise NotClean("text of a multi-valued element")


class _Context:
    """What every data set of one file shares: its VR encoding and, once the top level is
    read, the Python codec of its SpecificCharacterSet (``None``: text must be ASCII)."""

    __slots__ = ("implicit", "encoding")

    def __init__(self, implicit: bool) -> None:
        self.implicit = implicit
        self.encoding: str | None = None


class RawDataset:
    """Elements of one data set (file or sequence item), values converted on access."""

    __slots__ = ("_buf", "_ctx", "_elems", "_bounds", "pixel_span", "file_stat")

    def __init__(self, buf, ctx: _Context, elems: dict | None, bounds=None) -> None:
        self._buf = buf
        self._ctx = ctx
        self._elems = elems
        self._bounds = bounds
        #: (offset, length) of PixelData in the file, for a top-level data set.
        self.pixel_span: tuple[int, int] | None = None
        #: (size, mtime_ns) of the file when it was read.
        self.file_stat: tuple[int, int] | None = None

    def _elements(self) -> dict:
        if self._elems is None:
            start, end = self._bounds
            try:
                self._elems, _ = _parse_dataset(self._buf, start, end, self._ctx, False, True)
            except RecursionError:  # sequences nested thousands deep: pydicom's to judge
                raise NotClean("sequences nested too deep") from None
        return self._elems

    def __contains__(self, key) -> bool:
        return _tag(key) in self._elements()

    def get(self, key, default=None):
        """The value of ``key`` (a keyword of :data:`KEYWORDS` or its tag) as pydicom gives
        it, ``default`` when absent."""
        tag = _tag(key)
        entry = self._elements().get(tag)
        if entry is None:
            return default
        return self._convert(tag, entry)

    def raw(self, tag: int) -> bytes | None:
        """The value bytes of an element (``None`` when absent or a sequence)."""
        entry = self._elements().get(tag)
        if entry is None or entry[3] is not None or entry[1] is None:
            return None
        return bytes(self._buf[entry[1]:entry[2]])

    def _convert(self, tag: int, entry):
        vr = _VR_BY_TAG.get(tag)
        _, start, end, items = entry
        if vr == b"SQ":
            if items is None:
                try:
                    items, _ = _parse_items(self._buf, start, end, self._ctx, False)
                except RecursionError:  # items nested thousands deep: pydicom's to judge
                    raise NotClean("sequences nested too deep") from None
                self._elems[tag] = (entry[0], start, end, items)
            return items
        raw = bytes(self._buf[start:end])
        if vr in _TEXT_VRS:
            return _text(raw, self._ctx.encoding if vr in _CHARSET_VRS else None)
        if vr == b"DS":
            return _numbers(raw, _DS_VALUE, float)
        if vr == b"IS":
            return _numbers(raw, _IS_VALUE, int)
        if vr == b"US":
            if len(raw) != 2:
                raise NotClean("US value of another length than 2")
            return _U16(raw, 0)[0]
        raise NotClean(f"value of {tag:08X}")  # PixelData: see pixel_frames


def _tag(key) -> int:
    if isinstance(key, int):
        if key not in _VR_BY_TAG and key != PIXEL_DATA_TAG:
            raise NotClean(f"tag {key:08X} is not read by the fast path")
        return key
    if key == "PixelData":  # asked for presence only; the pixels are read by pixel_frames
        return PIXEL_DATA_TAG
    try:
        return KEYWORDS[key][0]
    except KeyError:
        raise NotClean(f"{key} is not read by the fast path") from None


def _text(raw: bytes, encoding: str | None) -> str:
    """A text value as pydicom gives it: decoded with ``encoding`` (ASCII only when
    ``None``), trailing spaces and NULs removed (pydicom's ``rstrip('\\0 ')``); ``''`` when
    empty."""
    if raw.isascii():
        text = raw.decode("ascii")
    elif encoding is None:
        raise NotClean("non-ASCII text in a VR pydicom reads as ISO 8859-1")
    else:
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:  # pydicom warns and replaces: its path decides
            raise NotClean("text not in its character set") from None
    text = text.rstrip("\0 ")
    if not text.isprintable():
        raise NotClean("control characters in text")
    if "\\" in text:
        return MultiValue(text.split("\\"))
    return text


def _numbers(raw: bytes, pattern: re.Pattern, kind):
    """A DS or IS value (``None`` when empty, as pydicom): one number or a
    :class:`MultiValue` of them."""
    if not raw:
        return None
    parts = raw.rstrip(b" \x00").split(b"\\")
    if not all(pattern.match(part) for part in parts):
        raise NotClean("a number pydicom would validate")
    if len(parts) == 1:
        return kind(parts[0])
    return MultiValue(kind(part) for part in parts)


def _element_header(buf, pos: int, implicit: bool) -> tuple[int, bytes | None, int, int]:
    """(tag, explicit VR or None, value length, value offset) of the element at ``pos``."""
    group, element = _TAG(buf, pos)
    tag = group << 16 | element
    if implicit or group == 0xFFFE:
        return tag, None, _U32(buf, pos + 4)[0], pos + 8
    vr = bytes(buf[pos + 4:pos + 6])
    if vr in _SHORT_VRS:
        return tag, vr, _U16(buf, pos + 6)[0], pos + 8
    if vr in _LONG_VRS:
        if pos + 12 > len(buf):
            raise NotClean("truncated element header")
        return tag, vr, _U32(buf, pos + 8)[0], pos + 12
    raise NotClean("invalid VR")


def _parse_dataset(buf, pos: int, end: int, ctx: _Context, undefined: bool, nested: bool):
    """Elements from ``pos`` to ``end`` (defined length) or to an item delimiter (undefined):
    ``({tag: (vr, start, end, items)}, position after)``. Stops before PixelData at the top
    level (the caller records where it is)."""
    elems: dict = {}
    last = -1
    while True:
        if pos == end and not undefined:
            return elems, pos
        if pos + 8 > end:
            raise NotClean("truncated data set")
        tag, vr, length, value = _element_header(buf, pos, ctx.implicit)
        if tag == _ITEM_DELIMITER and undefined:
            if length != 0:
                raise NotClean("item delimiter with a length")
            return elems, value
        if tag <= last or tag >> 16 in (0xFFFE, 0x0000, 0x0002) or tag >> 16 < 0x0002:
            raise NotClean("tags out of order or misplaced")
        if nested and tag == _CHARSET_TAG:
            raise NotClean("a character set of its own in a sequence item")
        if not nested and tag >> 16 == _PIXEL_GROUP:
            if tag != PIXEL_DATA_TAG or length == _UNDEFINED:
                raise NotClean("float, double or encapsulated pixel data")
            elems[tag] = (vr, value, value + length, None)
            return elems, pos
        known = _VR_BY_TAG.get(tag)
        if known is not None and vr is not None and vr != known:
            raise NotClean("VR differs from the dictionary")
        is_sequence = vr == b"SQ" if vr is not None else known == b"SQ"
        if length == _UNDEFINED:
            if vr is None and known is None:
                is_sequence = True  # implicit VR, unknown tag: pydicom reads a sequence too
            if not is_sequence:
                raise NotClean("undefined length outside a sequence")
            items, pos = _parse_items(buf, value, end, ctx, True)
            elems[tag] = (vr, None, None, items)
        else:
            if value + length > end:
                raise NotClean("element runs past the end of its data set")
            # a defined-length sequence is split into items when it is first read
            elems[tag] = (vr, value, value + length, None)
            pos = value + length
        last = tag


def _parse_items(buf, pos: int, end: int, ctx: _Context, undefined: bool):
    """Items of a sequence value: ``([RawDataset], position after)``. Items of defined length
    are parsed when first read; items of undefined length now (their end is not known)."""
    items: list = []
    while True:
        if pos == end and not undefined:
            return items, pos
        if pos + 8 > end:
            raise NotClean("truncated sequence")
        group, element = _TAG(buf, pos)
        tag = group << 16 | element
        length = _U32(buf, pos + 4)[0]
        pos += 8
        if tag == _SEQUENCE_DELIMITER and undefined:
            if length != 0:
                raise NotClean("sequence delimiter with a length")
            return items, pos
        if tag != _ITEM:
            raise NotClean("not an item in a sequence")
        if length == _UNDEFINED:
            _check_item_encoding(buf, pos, end, ctx.implicit)
            elems, pos = _parse_dataset(buf, pos, end, ctx, True, True)
            items.append(RawDataset(buf, ctx, elems))
        else:
            if pos + length > end:
                raise NotClean("item runs past the end of its sequence")
            if length:
                _check_item_encoding(buf, pos, pos + length, ctx.implicit)
            items.append(RawDataset(buf, ctx, None, (pos, pos + length)))
            pos += length


def _check_item_encoding(buf, pos: int, end: int, implicit: bool) -> None:
    """pydicom reads a sequence item of an explicit VR file as implicit VR when its first
    element has no valid VR (PS3.5 6.2.2 allows it): such items are left to pydicom."""
    if not implicit and pos + 6 <= end and _TAG(buf, pos)[0] != 0xFFFE:
        vr = buf[pos + 4:pos + 6]
        if not (0x40 < vr[0] < 0x5B and 0x40 < vr[1] < 0x5B):
            raise NotClean("implicit VR item in an explicit VR file")


def _file_meta(buf) -> tuple[str, str, int]:
    """(TransferSyntaxUID, MediaStorageSOPClassUID, offset of the data set) of a Part 10 file."""
    if len(buf) < 132 or buf[128:132] != b"DICM":
        raise NotClean("no DICM prefix")
    pos = 132
    values: dict[int, bytes] = {}
    while pos + 8 <= len(buf) and _U16(buf, pos)[0] == 0x0002:
        tag, vr, length, value = _element_header(buf, pos, False)
        if length == _UNDEFINED or value + length > len(buf):
            raise NotClean("damaged File Meta group")
        values[tag] = bytes(buf[value:value + length])
        pos = value + length
    syntax = values.get(0x00020010, b"").decode("latin-1").rstrip("\0 ")
    sop_class = values.get(0x00020002, b"").decode("latin-1").rstrip("\0 ")
    return syntax, sop_class, pos


def read_header(path: str | Path) -> RawDataset:
    """The data set of a plain Part 10 file up to its PixelData (see the module docstring).

    Returns
    -------
    RawDataset
        With ``pixel_span`` (offset and length of PixelData in the file, or ``None``) and
        ``file_stat``. Only the bytes before PixelData are kept.

    Raises
    ------
    NotClean
        The file is not in the subset (or cannot be opened): read it with pydicom.
    """
    try:
        with open(path, "rb") as fh:
            stat = os.fstat(fh.fileno())
            buf = fh.read(HEAD_BYTES)
            try:
                return _read_header(buf, stat)
            except _NeedMore:
                buf += fh.read()
                return _read_header(buf, stat)
    except OSError as exc:
        raise NotClean(f"cannot be read ({exc})") from None
    except RecursionError:  # sequences nested thousands deep: pydicom's to judge
        raise NotClean("sequences nested too deep") from None


class _NeedMore(Exception):
    pass


def _read_header(buf: bytes, stat: os.stat_result) -> RawDataset:
    size = stat.st_size
    syntax, _, start = _file_meta(buf)
    if syntax not in (IMPLICIT_VR_LE, EXPLICIT_VR_LE):
        raise NotClean(f"transfer syntax {syntax!r}")
    implicit = syntax == IMPLICIT_VR_LE
    if start + 8 > len(buf):
        if len(buf) < size:
            raise _NeedMore
        raise NotClean("no data set after the File Meta group")
    group = _U16(buf, start)[0]
    if group % 2 or not 0x0002 < group <= 0x7FE0:
        raise NotClean("implausible first tag")  # screen_file calls such a file unreadable
    vr = buf[start + 4:start + 6]
    if implicit and 0x40 < vr[0] < 0x5B and 0x40 < vr[1] < 0x5B:
        raise NotClean("implicit VR syntax with explicit VR elements")  # pydicom switches
    view = memoryview(buf)
    ctx = _Context(implicit)
    try:
        elems, _ = _parse_dataset(view, start, len(buf), ctx, False, False)
    except NotClean:
        if len(buf) < size:
            raise _NeedMore from None
        raise
    pixel = elems.get(PIXEL_DATA_TAG)
    if pixel is None and len(buf) < size:
        raise _NeedMore
    ds_end = len(buf)
    span = None
    if pixel is not None:
        _, offset, end, _ = pixel
        if end != size:  # anything after the pixels is for pydicom to judge
            raise NotClean("PixelData does not end the file")
        span = (offset, end - offset)
        ds_end = offset
    if ds_end < len(buf):
        # keep the header only (a copy, the offsets unchanged); items of undefined length
        # already hold the whole buffer: those are parsed again from the copy
        buf = bytes(view[:ds_end])
        view = memoryview(buf)
        if any(entry[3] is not None for entry in elems.values()):
            elems, _ = _parse_dataset(view, start, len(buf), ctx, False, False)
    ds = RawDataset(view, ctx, elems)
    charset = ds.get("SpecificCharacterSet", "")
    if isinstance(charset, MultiValue) or charset not in _CODECS:
        raise NotClean("character set")
    ctx.encoding = _CODECS[charset]
    ds.pixel_span = span
    ds.file_stat = (stat.st_size, stat.st_mtime_ns)
    if span is not None:
        ds._elems[PIXEL_DATA_TAG] = (None, None, None, None)  # present; see pixel_frames
    return ds


def pixel_frames(ds: RawDataset, path, rows: int, cols: int, frames: int, samples: int,
                 bits: int) -> np.ndarray:
    """Stored pixel values ``(frames, rows, cols)`` of native little endian MONOCHROME2 data
    whose every allocated bit is stored (what pydicom's ``pixel_array`` returns for it: the
    same dtype and values), read from the file at the PixelData offset found when indexing.

    Raises
    ------
    NotClean
        Any other pixel format, a length other than the header's, or a file changed since.
    """
    if ds.pixel_span is None or samples != 1 or bits not in (8, 16, 32):
        raise NotClean("pixel format")
    if ds.get("BitsStored") != bits or ds.get("PhotometricInterpretation") != "MONOCHROME2":
        raise NotClean("pixel format")
    signed = ds.get("PixelRepresentation")
    if signed not in (0, 1):
        raise NotClean("pixel representation")
    offset, length = ds.pixel_span
    if length != frames * rows * cols * bits // 8:
        raise NotClean("pixel data length")
    try:
        with open(path, "rb") as fh:
            stat = os.fstat(fh.fileno())
            if (stat.st_size, stat.st_mtime_ns) != ds.file_stat:
                raise NotClean("the file changed since it was indexed")
            fh.seek(offset)
            data = fh.read(length)
    except OSError as exc:
        raise NotClean(f"cannot be read ({exc})") from None
    if len(data) != length:
        raise NotClean("short read")
    dtype = np.dtype(f"<{'i' if signed else 'u'}{bits // 8}")
    return np.frombuffer(data, dtype=dtype).reshape(frames, rows, cols)
