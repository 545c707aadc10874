"""``json.dumps`` with ``indent``, character for character, at the speed of json's C encoder.

With ``indent`` set, the standard library's ``json.dumps`` leaves its C encoder for a
pure-Python generator encoder: 0.11-0.15 s of ``evaluate --format json`` on the demo (7 MB,
6,280 flat rows). :func:`json_text` writes the nesting in Python and hands every container
whose items are all plain scalars to the C encoder, with the indented item separator.
"""

from __future__ import annotations

import json
from itertools import chain, cycle
from json.encoder import encode_basestring as _json_str
from json.encoder import encode_basestring_ascii as _json_str_ascii

_INFINITY = float("inf")


def _json_float(value: float) -> str:
    """``json``'s float text (``allow_nan``): ``repr``, ``NaN``, ``Infinity``, ``-Infinity``."""
    if value != value:
        return "NaN"
    if value == _INFINITY:
        return "Infinity"
    if value == -_INFINITY:
        return "-Infinity"
    return float.__repr__(value)


def _json_scalar(value, ensure_ascii: bool = False) -> str | None:
    """JSON text of a scalar in ``json.encoder``'s order of tests, or None for a container."""
    if isinstance(value, str):
        return _json_str_ascii(value) if ensure_ascii else _json_str(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        return _json_float(value)
    if isinstance(value, (list, tuple, dict)):
        return None
    raise TypeError(f"Object of type {value.__class__.__name__} is not JSON serializable")


def _json_key(key) -> str:
    """A dict key as json writes it: str as is; int, float, bool and None as their JSON text."""
    if isinstance(key, str):
        return key
    if isinstance(key, (int, float)) or key is None:  # bool is an int
        return _json_scalar(key)
    raise TypeError(f"keys must be str, int, float, bool or None, not {key.__class__.__name__}")


_FLAT = frozenset({str, int, float, bool, type(None)})
_FLAT_ENCODERS: dict[tuple[int, bool, int], json.JSONEncoder] = {}


def _flat_encoder(indent: int, ensure_ascii: bool, level: int) -> json.JSONEncoder:
    """json's C encoder (it runs only without ``indent``) with the item separator of an
    indented container's items at ``level`` + 1: a flat container then comes out as the
    indented text but for its opening and closing lines."""
    key = (indent, ensure_ascii, level)
    encoder = _FLAT_ENCODERS.get(key)
    if encoder is None:
        separator = "," + "\n" + " " * (indent * (level + 1))
        encoder = json.JSONEncoder(ensure_ascii=ensure_ascii, separators=(separator, ": "))
        _FLAT_ENCODERS[key] = encoder
    return encoder


class Records:
    """Rows that share one tuple of keys, written as the list of dicts
    ``[dict(zip(keys, row)) for row in rows]`` would be, with ``nonfinite_null`` NaN and ±inf
    written ``null`` (as if replaced by None first), without making the dicts: for
    :func:`rtplan_assist.evaluation.result_to_json`'s 6,000+ result rows. When a value is not
    a JSON scalar, the list of dicts is written instead: ``fallback()`` when given, else
    :meth:`dicts`."""

    __slots__ = ("keys", "rows", "nonfinite_null", "fallback")

    def __init__(self, keys: tuple[str, ...], rows: list[tuple], nonfinite_null: bool = False,
                 fallback=None):
        self.keys = tuple(keys)
        self.rows = rows
        self.nonfinite_null = nonfinite_null
        self.fallback = fallback

    def dicts(self) -> list[dict]:
        """The list of dicts these records stand for."""
        if self.fallback is not None:
            return self.fallback()
        if not self.nonfinite_null:
            return [dict(zip(self.keys, row)) for row in self.rows]
        return [
            {k: None if _nonfinite(v) else v for k, v in zip(self.keys, row)}
            for row in self.rows
        ]


def _nonfinite(value) -> bool:
    return isinstance(value, float) and (value != value or value in (_INFINITY, -_INFINITY))


_NONFINITE_NULL = {"NaN": "null", "Infinity": "null", "-Infinity": "null"}
#: item separator of the one C-encoder call over every value of a set of records: a control
#: character, which the encoder always escapes inside strings, so it only separates
_SPLIT = "\x00"
_SPLIT_ENCODERS: dict[bool, json.JSONEncoder] = {}


def _records_into(keys: tuple, rows: list, nonfinite_null: bool, indent: int,
                  ensure_ascii: bool, level: int, out: list) -> bool:
    """Append the JSON text of the records (:class:`Records`) at nesting ``level`` to ``out``
    and return True; False (nothing appended) when a value is not a JSON scalar (str, int,
    float or a float subclass, bool, None) or a row's length is not the keys'.

    Column by column: a column of strings is encoded once per distinct string (the demo's
    105,000 strings are 3,700 distinct ones), any other column in one C-encoder call."""
    width = len(keys)
    if not width or not rows or set(map(len, rows)) != {width}:
        return False
    encode = _json_str_ascii if ensure_ascii else _json_str
    encoder = _SPLIT_ENCODERS.get(ensure_ascii)
    if encoder is None:
        encoder = json.JSONEncoder(ensure_ascii=ensure_ascii, separators=(_SPLIT, ": "))
        _SPLIT_ENCODERS[ensure_ascii] = encoder
    columns = []
    for column in zip(*rows):
        kinds = set(map(type, column))
        if kinds == {str}:
            distinct = set(column)
            columns.append(map(dict(zip(distinct, map(encode, distinct))).__getitem__, column))
            continue
        if not all(kind in _FLAT or issubclass(kind, float) for kind in kinds):
            return False
        # float subclasses (numpy.float64) come out as float.__repr__, as json writes them
        tokens = encoder.encode(column)[1:-1].split(_SPLIT)
        if nonfinite_null and any(issubclass(kind, float) for kind in kinds):
            tokens = map(_NONFINITE_NULL.get, tokens, tokens)
        columns.append(tokens)
    row_indent = "\n" + " " * (indent * (level + 1))
    item_indent = "\n" + " " * (indent * (level + 2))
    names = [encode(_json_key(key)) + ": " for key in keys]
    opening = "{" + item_indent + names[0]
    # before each value: the item separator and its key, or (before a row's first value) the
    # end of the previous row and the start of this one
    prefixes = ["," + item_indent + name for name in names[1:]]
    prefixes.append(row_indent + "}," + row_indent + opening)
    values = chain.from_iterable(zip(*columns))
    out.append("[" + row_indent + opening + next(values))
    out.extend(chain.from_iterable(zip(cycle(prefixes), values)))
    out.append(row_indent + "}" + "\n" + " " * (indent * level) + "]")
    return True


def _same_keys(items: list) -> tuple | None:
    """The keys shared by a list of dicts (in the same order), or None."""
    if type(items[0]) is not dict:
        return None
    keys = tuple(items[0])
    for item in items:
        if type(item) is not dict or tuple(item) != keys:
            return None
    return keys


def _json_into(value, indent: int, ensure_ascii: bool, level: int, out: list) -> None:
    """Append the JSON text of ``value`` at nesting ``level`` to ``out`` (see
    :func:`json_text`): pieces, so that the only large string is the final join."""
    if type(value) is Records:
        if not _records_into(value.keys, value.rows, value.nonfinite_null, indent,
                             ensure_ascii, level, out):
            _json_into(value.dicts(), indent, ensure_ascii, level, out)
        return
    text = _json_scalar(value, ensure_ascii)
    if text is not None:
        out.append(text)
        return
    if not value:
        out.append("{}" if isinstance(value, dict) else "[]")
        return
    inner = "\n" + " " * (indent * (level + 1))
    close = "\n" + " " * (indent * level)
    if isinstance(value, dict):
        if _FLAT.issuperset(map(type, value.values())):  # every row: one C call
            flat = _flat_encoder(indent, ensure_ascii, level).encode(value)
            out.append("{" + inner + flat[1:-1] + close + "}")
            return
        encode = _json_str_ascii if ensure_ascii else _json_str
        first = True
        for key, item in value.items():
            out.append(("{" if first else ",") + inner + encode(_json_key(key)) + ": ")
            first = False
            _json_into(item, indent, ensure_ascii, level + 1, out)
        out.append(close + "}")
        return
    if _FLAT.issuperset(map(type, value)):
        flat = _flat_encoder(indent, ensure_ascii, level).encode(list(value))
        out.append("[" + inner + flat[1:-1] + close + "]")
        return
    if len(value) > 1:  # rows: dicts of one set of keys, every value a scalar
        keys = _same_keys(value)
        if keys is not None and _records_into(
            keys, [tuple(item.values()) for item in value], False, indent, ensure_ascii,
            level, out
        ):
            return
    first = True
    for item in value:
        out.append(("[" if first else ",") + inner)
        first = False
        _json_into(item, indent, ensure_ascii, level + 1, out)
    out.append(close + "]")


def json_text(value, indent: int = 2, ensure_ascii: bool = False) -> str:
    """``json.dumps(value, indent=indent, ensure_ascii=ensure_ascii)``, character for
    character (see the module). Same texts for strings (the C ``encode_basestring`` /
    ``encode_basestring_ascii``), floats (``repr``, ``NaN``/``Infinity``), ints, booleans,
    None and keys; a value json cannot encode raises TypeError as json does; dict order kept
    (no ``sort_keys``). A non-integer or negative ``indent`` goes to ``json.dumps``."""
    return "".join(json_pieces(value, indent, ensure_ascii))


def json_pieces(value, indent: int = 2, ensure_ascii: bool = False, end: str = "") -> list[str]:
    """The pieces of :func:`json_text` (then ``end``), to join or write one by one."""
    if type(indent) is not int or indent < 0:
        return [json.dumps(value, indent=indent, ensure_ascii=ensure_ascii), end]
    out: list[str] = []
    _json_into(value, indent, bool(ensure_ascii), 0, out)
    out.append(end)
    return out
