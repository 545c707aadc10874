"""``jsontext.json_text`` is ``json.dumps(value, indent=..., ensure_ascii=...)`` character
for character: the expected texts come from the standard library's own encoder
(an independent implementation: its pure-Python indented encoder)."""

import json
import math
from enum import IntEnum

import numpy as np
import pytest

from rtplan_assist.evaluation.output import result_to_dict, result_to_json
from rtplan_assist.jsontext import json_text


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


def test_result_json_is_json_dumps_of_result_dict(demo_evaluation):
    _, result = demo_evaluation
    expected = json.dumps(result_to_dict(result), indent=2, ensure_ascii=False) + "\n"
    assert result_to_json(result) == expected
