"""``jsontext.json_text`` is ``json.dumps(value, indent=..., ensure_ascii=...)`` character
for character: the expected texts come from the standard library's own encoder
(an independent implementation: its pure-Python indented encoder)."""

import json
import math
from enum import IntEnum

import numpy as np
import pytest

from rtplan_assist.evaluation.output import result_to_dict, result_to_json
from rtplan_assist.jsontext import Records, json_text


class _Level(IntEnum):
    LOW = 1


CASES = [
    {},
    [],
    {"a": {}, "b": [], "c": [{}], "d": [[]]},
    "plain",
    3,
    2.5,
    None,
    True,
    [1, 2.0, "x", None, False, True],
    {"nan": math.nan, "inf": math.inf, "-inf": -math.inf, "tiny": 5e-324, "big": 1e300},
    {"text": 'quote " backslash \\ newline \n tab \t control \x01 é α/β ≤ 💡 \u2028'},
    {1: "int key", 2.5: "float key", True: "bool key", None: "none key", "s": "str"},
    {"row": {"value": 149.60000000000002, "limit": 0.1 + 0.2, "n": 5, "none": None},
     "nested": [{"a": [1, [2, [3, {"b": ()}]]]}, (4, 5)]},
    {"numpy": np.float64(1.0) / 3, "np_nan": np.float64("nan"), "enum": _Level.LOW},
    [[{"x": 1}], [{"y": [1.5, "z"]}]],
    # rows: dicts of one set of keys (one C-encoder call per column, strings once each)
    [{"s": "a\x00b", "f": math.nan, "n": None, "i": 3, "b": True, "x": np.float64(0.1)},
     {"s": "a\x00b", "f": 1e300, "n": "é α/β", "i": -1, "b": False, "x": np.float64("inf")},
     {"s": "", "f": -math.inf, "n": 2.5, "i": 0, "b": None, "x": 7}],
    {"rows": [{"k": "v", "w": 1}, {"k": "v", "w": 2}], "more": [{"a": 1}, {"a": [1]}]},
    [{"a": 1, "b": 2}, {"b": 2, "a": 1}],  # same keys, another order: not rows
    [{"a": _Level.LOW}, {"a": 2}],  # an int subclass: written item by item
]


@pytest.mark.parametrize("value", CASES)
def test_json_text_is_json_dumps_indent_2(value):
    assert json_text(value) == json.dumps(value, indent=2, ensure_ascii=False)


@pytest.mark.parametrize("indent", [0, 1, 4])
@pytest.mark.parametrize("ensure_ascii", [True, False])
def test_json_text_other_indents_and_ascii(indent, ensure_ascii):
    for value in CASES:
        expected = json.dumps(value, indent=indent, ensure_ascii=ensure_ascii)
        assert json_text(value, indent=indent, ensure_ascii=ensure_ascii) == expected


def test_json_text_refuses_what_json_refuses():
    with pytest.raises(TypeError):
        json.dumps({"a": object()}, indent=2)
    with pytest.raises(TypeError):
        json_text({"a": object()})
    with pytest.raises(TypeError):
        json_text({"a": [1, {"b": {1, 2}}]})
    with pytest.raises(TypeError):
        json_text({(1, 2): "tuple key"})


def test_records_are_the_list_of_dicts_they_stand_for():
    rows = [("x", math.nan, np.float64("-inf"), None, 1), ("y\n\x00", 0.5, np.float64(2.0), True, 2)]
    keys = ("s", "f", "g", "n", "i")
    cleaned = [{k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in zip(keys, row)} for row in rows]
    for indent in (0, 2, 3):
        for ascii_only in (True, False):
            for nonfinite_null, dicts in ((True, cleaned), (False, [dict(zip(keys, r)) for r in rows])):
                value = {"rows": Records(keys, rows, nonfinite_null=nonfinite_null)}
                assert json_text(value, indent=indent, ensure_ascii=ascii_only) == json.dumps(
                    {"rows": dicts}, indent=indent, ensure_ascii=ascii_only)
    # a value that is not a JSON scalar: the fallback's dicts (as the caller cleans them)
    odd = Records(("a",), [(np.int64(1),), (2,)], fallback=lambda: [{"a": 1}, {"a": 2}])
    assert json_text([odd]) == json.dumps([[{"a": 1}, {"a": 2}]], indent=2)
    with pytest.raises(TypeError):
        json_text(Records(("a",), [(object(),)]))


def test_result_json_is_json_dumps_of_result_dict(demo_evaluation):
    _, result = demo_evaluation
    expected = json.dumps(result_to_dict(result), indent=2, ensure_ascii=False) + "\n"
    assert result_to_json(result) == expected
