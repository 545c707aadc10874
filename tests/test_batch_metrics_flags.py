"""Issue 14: batch metrics.csv has the planned/recommended/chosen flags and the 6-significant-
digit numbers of ``evaluate --format csv``, also for records written by earlier runs (the
flags come from the record's result JSON). Constructed records: the expected flags follow
from the lesion maps written below; 149.60000000000002 to 6 significant digits is 149.6."""

from __future__ import annotations

import csv
import io

from rtplan_assist.batch import FLAG_COLUMNS, _write_aggregates, tidy_columns


def _record(folder, rows, result=None, status="evaluated"):
    return {"folder": folder, "rows": rows, "result": result, "fingerprint": "x",
            "summary": {"folder": folder, "status": status}}


def test_metrics_csv_flags_and_rounding(tmp_path):
    result = {
        "lesions": [{"lesion_id": "L1", "planned": "54 Gy/3"},
                    {"lesion_id": "L2", "planned": "60 Gy/8"}],
        "recommendation": {"choice": {"L1": "54 Gy/3", "L2": "60 Gy/12"}},
        "choice": {"L1": "54 Gy/3", "L2": "60 Gy/8"},  # the batch shows the planned ones
    }
    rows = [
        {"folder": "a", "lesion_id": "L1", "regimen": "54 Gy/3", "value": 149.60000000000002},
        {"folder": "a", "lesion_id": "L2", "regimen": "60 Gy/8", "value": 0.0123456789},
        {"folder": "a", "lesion_id": "L2", "regimen": "60 Gy/12", "value": 3.0},
        {"folder": "a", "lesion_id": "composite", "regimen": "composite", "value": None},
    ]
    error = _record("b", [{"folder": "b", "status": "error", "reason": "no RTSTRUCT"}],
                    status="error")
    _write_aggregates(tmp_path, tmp_path, [_record("a", rows, result), error], "serial")
    text = (tmp_path / "metrics.csv").read_text(encoding="utf-8")
    table = list(csv.DictReader(io.StringIO(text)))
    assert list(table[0]) == [*tidy_columns(), *FLAG_COLUMNS]
    flags = [tuple(r[k] for k in FLAG_COLUMNS) for r in table]
    assert flags == [
        ("true", "true", "true"),     # L1 54 Gy/3: planned = recommended = shown
        ("true", "false", "true"),    # L2 60 Gy/8: planned and shown, not recommended
        ("false", "true", "false"),   # L2 60 Gy/12: recommended only
        ("true", "false", "true"),    # composite of the shown (planned) combination
        ("", "", ""),                 # an error row has no regimen to flag
    ]
    assert [r["value"] for r in table] == ["149.6", "0.0123457", "3.0", "", ""]
    assert "149.60000000000002" not in text


def test_metrics_csv_can_drop_not_evaluable_rows(tmp_path):
    rows = [
        {"folder": "a", "lesion_id": "L1", "regimen": "54 Gy/3", "status": "pass"},
        {"folder": "a", "lesion_id": "L1", "regimen": "54 Gy/3", "status": "not evaluable"},
    ]
    error = _record("b", [{"folder": "b", "status": "error", "reason": "no RTSTRUCT"}],
                    status="error")
    result = {"lesions": [{"lesion_id": "L1", "planned": "54 Gy/3"}],
              "recommendation": {"choice": {"L1": "54 Gy/3"}}, "choice": {"L1": "54 Gy/3"}}
    records = [_record("a", rows, result), error]
    _write_aggregates(tmp_path, tmp_path, records, "serial", drop_not_evaluable=True)
    table = list(csv.DictReader(io.StringIO((tmp_path / "metrics.csv").read_text())))
    assert [r["status"] for r in table] == ["pass", "error"]  # error rows always kept
    _write_aggregates(tmp_path, tmp_path, records, "serial")
    table = list(csv.DictReader(io.StringIO((tmp_path / "metrics.csv").read_text())))
    assert [r["status"] for r in table] == ["pass", "not evaluable", "error"]
