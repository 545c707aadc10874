"""MDT decision records (issue 16): decide → list → verify, tampering, concurrency, migrations,
re-evaluation, on SQLite and on a real PostgreSQL server.

The PostgreSQL server is Debian's ``postgresql`` package: a throwaway cluster (``initdb``) on a
Unix socket in a temporary folder, started once per session and stopped at the end; as root
(CI) it runs as the unprivileged ``postgres`` user, since the server refuses to run as root.
Expected values come from the definitions, not from the code under test: file hashes are
recomputed here with ``hashlib``; a record is "broken" exactly when a stored byte changed.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import uuid
from pathlib import Path

import pytest

from rtplan_assist.cli import main

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- PostgreSQL, throwaway


def _pg_bindir() -> str | None:
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.isfile(f"{folder}/initdb") and os.path.isfile(f"{folder}/pg_ctl"):
            return folder
    initdb = shutil.which("initdb")
    return os.path.dirname(os.path.realpath(initdb)) if initdb else None


@pytest.fixture(scope="session")
def pg_server():
    """A PostgreSQL cluster on a Unix socket in a temporary folder; yields the socket folder."""
    bindir = _pg_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server not installed (Debian package 'postgresql'; "
                    "scripts/setup.sh test installs it)")
    root = tempfile.mkdtemp(prefix="rtplan-pg-")
    as_user = {}
    if os.geteuid() == 0:  # postgres refuses to run as root: use an unprivileged account
        import pwd

        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            account = pwd.getpwnam("nobody")
        os.chown(root, account.pw_uid, account.pw_gid)
        as_user = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
    data = f"{root}/data"
    run = dict(cwd=root, capture_output=True, text=True, **as_user)
    made = subprocess.run([f"{bindir}/initdb", "-D", data, "-U", "rtplan", "-A", "trust",
                           "-E", "UTF8", "--locale=C", "--no-sync"], check=False, **run)
    assert made.returncode == 0, made.stderr
    options = f"-k {root} -c listen_addresses='' -c fsync=off -c full_page_writes=off"
    started = subprocess.run([f"{bindir}/pg_ctl", "-D", data, "-l", f"{root}/log", "-w",
                              "-o", options, "start"], check=False, **run)
    assert started.returncode == 0, started.stderr + Path(f"{root}/log").read_text()
    try:
        yield root
    finally:
        subprocess.run([f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"],
                       check=False, **run)
        shutil.rmtree(root, ignore_errors=True)


def _new_pg_database(socket_dir: str) -> str:
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(host=socket_dir, user="rtplan", dbname="postgres",
                         autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"postgresql://rtplan@/{name}?host={socket_dir}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    """An empty database: a SQLite file, or a new database on the throwaway server."""
    if request.param == "sqlite":
        return str(tmp_path / "records.sqlite")
    return _new_pg_database(request.getfixturevalue("pg_server"))


# ---------------------------------------------------------------- one evaluated decision


@pytest.fixture(scope="session")
def demo_copy(tmp_path_factory) -> Path:
    """A private copy of the demo patient folder (tests may change its files)."""
    from rtplan_assist.demo import demo_case_folder

    target = tmp_path_factory.mktemp("records-demo") / "patient"
    shutil.copytree(demo_case_folder(), target)
    return target


@pytest.fixture(scope="session")
def evaluated(demo_copy):
    """``(evaluator, result, choice)``: the demo patient with L1 at 54 Gy/3, evaluated once."""
    from rtplan_assist.regimens import parse_regimen
    from rtplan_assist.workflow import evaluate_folder

    evaluator = evaluate_folder(demo_copy)
    choice = {"L1": parse_regimen("54/3")}
    return evaluator, evaluator.evaluate(choice), choice


def _content(evaluated, source, **options):
    from rtplan_assist.records import decision_content

    evaluator, result, choice = evaluated
    return decision_content(
        evaluator, result, recorded_by="Dr Ada Test", role="clinician",
        rationale="peripheral lesion; 54 Gy/3 as in SABR-COMET", dissent="one asked for 34/1",
        attendees=[{"name": "Dr B", "role": "physicist"}], mdt_choice=choice,
        source=str(source), **options)


@pytest.fixture(scope="session")
def decision(evaluated, demo_copy):
    """``(record, lesions)`` of :func:`evaluated`."""
    return _content(evaluated, demo_copy)


def test_deidentified_record(evaluated, demo_copy):
    record, lesions = _content(evaluated, demo_copy, deidentify=True)
    assert record["patient_id"] is None and record["source"] is None
    assert record["patient_key"] == "p-" + hashlib.sha256(b"RTPA-DEMO-0000").hexdigest()[:8]
    assert "RTPA-DEMO-0000" not in json.dumps([record, lesions], ensure_ascii=False)
    assert str(demo_copy) not in json.dumps([record, lesions], ensure_ascii=False)


def _verify(url: str, capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["verify-records", "--db", url])
    out = capsys.readouterr()
    return code, out.out + out.err


# ---------------------------------------------------------------- decide → list → verify


def test_list_verify_and_supersede(db_url, decision, capsys):
    from rtplan_assist.records import RecordError, open_store

    record, lesions = decision
    with open_store(db_url) as store:
        first = store.append(record, lesions)
        second = store.append({**record, "supersedes": first.record_id,
                               "rationale": "corrected: L1 34 Gy/1"}, lesions)
        with pytest.raises(RecordError, match="no such record"):
            store.append({**record, "supersedes": str(uuid.uuid4())}, lesions)
        with pytest.raises(RecordError, match="another patient"):
            store.append({**record, "patient_key": "p-00000000", "supersedes": first.record_id},
                         lesions)
    assert main(["records", "--db", db_url, "--format", "csv"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert len(rows) == 1 + 2 * len(lesions)  # header + one row per record × lesion
    assert main(["records", "--db", db_url]) == 0
    text = capsys.readouterr().out
    assert f"SUPERSEDED by {second.record_id}" in text and f"supersedes {first.record_id}" in text
    code, out = _verify(db_url, capsys)
    assert code == 0 and "2 record(s), chain intact" in out


# ---------------------------------------------------------------- tampering


def _tamper(url: str):
    """A raw connection that can bypass the append-only triggers (as a DBA could)."""
    from sqlalchemy import create_engine, text

    from rtplan_assist.records.store import resolve_url

    engine = create_engine(resolve_url(url))
    conn = engine.connect()
    if engine.dialect.name == "postgresql":
        conn.execute(text("SET session_replication_role = replica"))  # triggers off
    else:
        for table in ("decision_record", "decision_lesion"):
            for action in ("update", "delete"):
                conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_{action}"))
    conn.commit()
    return conn, engine


def _changed(value):
    if value is None:
        return "x"
    if isinstance(value, int):
        return -value
    if not value:
        return "x"
    return value[:-1] + ("0" if value[-1] != "0" else "1")  # same length: fits the column


def test_any_edited_byte_breaks_the_chain(db_url, decision, capsys):
    from sqlalchemy import text

    from rtplan_assist.records import open_store
    from rtplan_assist.records.models import LESION_FIELDS, RECORD_FIELDS

    record, lesions = decision
    with open_store(db_url) as store:
        ids = [store.append(record, lesions).record_id for _ in range(3)]
        # append-only in the database itself
        with pytest.raises(Exception, match="append-only"), store.engine.begin() as conn:
            conn.execute(text("UPDATE decision_record SET rationale = 'x'"))
        with pytest.raises(Exception, match="append-only"), store.engine.begin() as conn:
            conn.execute(text("DELETE FROM decision_lesion"))
    conn, engine = _tamper(db_url)
    try:
        def check(table, column, where, named):
            old = conn.execute(text(f"SELECT {column} FROM {table} WHERE {where}")).scalar_one()
            new = _changed(old)
            conn.execute(text(f"UPDATE {table} SET {column} = :v WHERE {where}"), {"v": new})
            conn.commit()
            code, out = _verify(db_url, capsys)
            named_now = new if column == "record_id" and table == "decision_record" else named
            assert code == 1 and "BROKEN at record" in out and named_now in out, (column, out)
            conn.execute(text(f"UPDATE {table} SET {column} = :v WHERE {column} = :n"),
                         {"v": old, "n": new})
            conn.commit()
            assert _verify(db_url, capsys)[0] == 0, column

        for column in (*RECORD_FIELDS, "record_hash"):
            check("decision_record", column, "seq = 2", ids[1])
        for column in LESION_FIELDS:
            check("decision_lesion", column, f"record_id = '{ids[1]}' AND lesion_id = 'L1'",
                  ids[1])

        # reordered rows: #2 and #3 swap places
        for a, b in ((2, -1), (3, 2), (-1, 3)):
            conn.execute(text("UPDATE decision_record SET seq = :b WHERE seq = :a"),
                         {"a": a, "b": b})
        conn.commit()
        code, out = _verify(db_url, capsys)
        assert code == 1 and ids[2] in out and "does not link" in out
        for a, b in ((3, -1), (2, 3), (-1, 2)):
            conn.execute(text("UPDATE decision_record SET seq = :b WHERE seq = :a"),
                         {"a": a, "b": b})
        conn.commit()
        assert _verify(db_url, capsys)[0] == 0

        # a deleted lesion row, then a deleted record
        conn.execute(text(f"DELETE FROM decision_lesion WHERE record_id = '{ids[2]}' "
                          "AND lesion_id = 'L5'"))
        conn.commit()
        code, out = _verify(db_url, capsys)
        assert code == 1 and ids[2] in out and "hash mismatch" in out
        conn.execute(text(f"DELETE FROM decision_lesion WHERE record_id = '{ids[1]}'"))
        conn.execute(text("DELETE FROM decision_record WHERE seq = 2"))
        conn.commit()
        code, out = _verify(db_url, capsys)
        assert code == 1 and ids[2] in out and "deleted" in out
    finally:
        conn.close()
        engine.dispose()


def test_verify_cannot_read(tmp_path, capsys):
    missing = tmp_path / "none.sqlite"
    code, out = _verify(str(missing), capsys)
    assert code == 2 and "no decision database" in out and not missing.exists()
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 100)
    code, out = _verify(str(junk), capsys)
    assert code == 2 and "cannot read the database" in out and "Traceback" not in out
    code, out = _verify("nosuchdialect://x/y", capsys)
    assert code == 2 and out.count("\n") == 1
    # a PostgreSQL server that is not there: one line, exit 2, the password not echoed
    code, out = _verify(f"postgresql://rtplan:s3cret-pw@/records?host={tmp_path}/nowhere", capsys)
    assert code == 2 and "cannot read the database" in out and "s3cret-pw" not in out
    assert out.count("\n") == 1


def test_decide_refuses_unknown_lesion(tmp_path, capsys):
    url = str(tmp_path / "r.sqlite")
    code = main(["decide", "--demo", "--choose", "L9=54/3", "--by", "A", "--rationale", "r",
                 "--db", url])
    err = capsys.readouterr().err
    assert code == 2 and "no lesion L9" in err and err.count("\n") == 1
    code = main(["decide", "--demo", "--choose", "L1=54/3", "--by", " ", "--rationale", "r",
                 "--db", url])
    assert code == 2 and "name of who records it" in capsys.readouterr().err
    assert main(["records", "--db", url]) == 0
    assert capsys.readouterr().out == "no decision recorded\n"


# ---------------------------------------------------------------- concurrency

APPEND = textwrap.dedent("""
    import json, sys
    from rtplan_assist.records import open_store
    record, lesions = json.load(open(sys.argv[2]))
    with open_store(sys.argv[1]) as store:
        for _ in range(int(sys.argv[3])):
            store.append(record, lesions)
""")


def test_concurrent_appends_keep_one_chain(db_url, decision, tmp_path, capsys):
    """Two processes appending 6 records each at once while this one verifies the chain."""
    content = tmp_path / "decision.json"
    content.write_text(json.dumps(decision))
    from rtplan_assist.records import open_store

    with open_store(db_url):  # the schema first, so that this process can read meanwhile
        pass
    procs = [subprocess.Popen([sys.executable, "-c", APPEND, db_url, str(content), "6"],
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    # verifying while they append sees an intact chain every time (one read snapshot)
    checks = 0
    with open_store(db_url, create=False) as store:
        while any(p.poll() is None for p in procs):
            report = store.verify()
            assert report.intact, report.problem
            checks += 1
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read()
    assert checks > 0
    code, out = _verify(db_url, capsys)
    assert code == 0 and "12 record(s), chain intact" in out


def test_concurrent_decide_postgresql(pg_server, capsys):
    """Two ``rtplan-assist decide`` processes at once on one PostgreSQL database, then list and
    verify."""
    url = _new_pg_database(pg_server)
    argv = [sys.executable, "-m", "rtplan_assist.cli", "decide", "--demo", "--db", url,
            "--rationale", "MDT consensus", "--format", "json"]
    procs = [subprocess.Popen(argv + ["--by", who, "--choose", choose], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for who, choose in (("Dr One", "L1=54/3"), ("Dr Two", "L1=34/1"))]
    outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1] for o in outs]
    printed = sorted(json.loads(o[0])["seq"] for o in outs)
    assert printed == [1, 2]
    assert main(["records", "--db", url, "--format", "json"]) == 0
    recs = json.loads(capsys.readouterr().out)
    assert {r["recorded_by"] for r in recs} == {"Dr One", "Dr Two"}
    assert recs[1]["prev_hash"] == recs[0]["record_hash"]
    code, out = _verify(url, capsys)
    assert code == 0 and "2 record(s), chain intact" in out


# ---------------------------------------------------------------- migrations


def test_migrations_from_empty_and_from_previous_schema(db_url, decision, tmp_path, capsys):
    from alembic.config import main as alembic  # the `alembic` command, in this process
    from sqlalchemy import inspect

    from rtplan_assist.records import open_store
    from rtplan_assist.records.store import MIGRATIONS, RecordStore, resolve_url

    # `alembic upgrade 0001`, records in that schema, then `alembic upgrade head`
    ini = tmp_path / "alembic.ini"
    ini.write_text(f"[alembic]\nscript_location = {MIGRATIONS}\n")
    url = resolve_url(db_url)
    if url.startswith("sqlite"):
        Path(url.split(":///", 1)[1]).touch()
    alembic(argv=["-c", str(ini), "-x", f"url={url}", "upgrade", "0001"])
    store = RecordStore(url, create=False)  # the 0001 schema: records but no logins
    assert store.revision() == "0001"
    assert not inspect(store.engine).has_table("app_user")
    stored = store.append(*decision)
    store.close()
    alembic(argv=["-c", str(ini), "-x", f"url={url}", "upgrade", "head"])
    with open_store(db_url) as store:
        assert store.revision() == "0002"
        assert inspect(store.engine).has_table("app_user")
        assert store.records()[0]["record_hash"] == stored.record_hash
    code, out = _verify(db_url, capsys)
    assert code == 0 and "1 record(s), chain intact" in out


# ---------------------------------------------------------------- re-evaluation


def test_reevaluate_from_record(decision, demo_copy, tmp_path, capsys):
    from rtplan_assist.records import open_store

    url = str(tmp_path / "r.sqlite")
    with open_store(url) as store:
        rid = store.append(*decision).record_id
    # change one byte of a CT slice's pixel data (the file still loads): its hash differs, and
    # the recomputed verdicts are the recorded ones (no other difference is reported)
    changed = tmp_path / "changed"
    shutil.copytree(demo_copy, changed)
    ct = changed / "CT.50.dcm"
    data = bytearray(ct.read_bytes())
    data[-2] ^= 0x01
    ct.write_bytes(bytes(data))
    code = main(["verify-records", "--db", url, "--record", rid[:8], "--path", str(changed)])
    out = capsys.readouterr()
    assert code == 1 and f"record {rid} differs" in out.err
    differences = [line for line in out.out.splitlines() if "DIFFERS" in line]
    assert differences == ["  DIFFERS: input CT.50.dcm: SHA-256 differs"]


# ---------------------------------------------------------------- FHIR (optional export)


def test_fhir_bundle(decision, tmp_path, capsys):
    """CodeX RT dose-prescribed-to-volume per lesion; parsed by fhir.resources (R4B)."""
    pytest.importorskip("fhir.resources", reason="optional extra rtplan-assist[fhir]")
    from rtplan_assist.records import RecordError, open_store
    from rtplan_assist.records.fhir import DOSE_TO_VOLUME, validate_bundle

    record, lesions = decision
    url = str(tmp_path / "r.sqlite")
    with open_store(url) as store:
        first = store.append(record, lesions)
        second = store.append({**record, "supersedes": first.record_id}, lesions)
    assert main(["records", "--db", url, "--format", "fhir"]) == 0
    bundle = json.loads(capsys.readouterr().out)
    requests = [e["resource"] for e in bundle["entry"]
                if e["resource"]["resourceType"] == "ServiceRequest"]
    assert [r["identifier"][0]["value"] for r in requests] == [first.record_id,
                                                               second.record_id]
    assert [r["status"] for r in requests] == ["revoked", "active"]
    assert requests[1]["replaces"][0]["identifier"]["value"] == first.record_id
    assert requests[0]["code"]["coding"][0]["code"] == "1217123003"
    doses = [ext for ext in requests[1]["extension"] if ext["url"] == DOSE_TO_VOLUME]
    assert len(doses) == len(lesions)
    l1 = {e["url"]: e for e in doses[0]["extension"]}
    # 54 Gy in 3 fractions = 5400 cGy total, 1800 cGy per fraction
    assert l1["totalDose"]["valueQuantity"] == {"value": 5400.0, "unit": "cGy",
                                                "system": "http://unitsofmeasure.org",
                                                "code": "cGy"}
    assert l1["fractionDose"]["valueQuantity"]["value"] == 1800.0
    assert l1["fractions"]["valuePositiveInt"] == 3
    volume = l1["volume"]["valueReference"]["reference"]
    assert any(e["fullUrl"] == volume and e["resource"]["resourceType"] == "BodyStructure"
               for e in bundle["entry"])
    del requests[1]["intent"]  # a required element: the validator must refuse the bundle
    with pytest.raises(RecordError, match="does not validate"):
        validate_bundle(bundle)


def test_evidence_lists_the_folder_mapping_file(tmp_path):
    """A folder's structure-mapping file changes the evaluation: its hash is evidence."""
    from types import SimpleNamespace

    from rtplan_assist.names import FOLDER_MAP_FILE
    from rtplan_assist.records.snapshot import case_files

    (tmp_path / "RS.dcm").write_bytes(b"x")
    mapping = tmp_path / FOLDER_MAP_FILE
    mapping.write_text("structure,tg263\nCORD,SpinalCord\n")
    case = SimpleNamespace(folder=str(tmp_path), ct=None, structure_set_path=str(tmp_path / "RS.dcm"),
                           plans=[], doses=[])
    assert case_files(case) == [tmp_path / "RS.dcm", mapping]


def test_decide_list_verify_reevaluate_sqlite(tmp_path, capsys):
    """decide → records → verify-records (and --record) through the CLI, on a demo patient
    whose plans give no prescription: decide takes --prescription like evaluate and keeps it
    in the evidence for the re-evaluation."""
    from rtplan_assist.constraints import shipped_folder

    assert main(["demo", "--out", str(tmp_path), "--variant", "no-prescription"]) == 0
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    url = str(tmp_path / "records.sqlite")
    # the demo's planned regimens (demo.py): 54/3, 60/8, 50/5, 50/5, 27/3
    given = ["L1 RUL=54/3", "L2 LUL central=60/8", "L3 subcarinal=50/5", "L4 liver=50/5",
             "L5 T8 vertebra=27/3"]
    argv = ["decide", str(folder), "--choose", "L1=54/3", "--by", "Dr Ada Test",
            "--rationale", "peripheral; SABR-COMET", "--attendee", "Dr B:physicist",
            "--db", url, "--format", "json"]
    for item in given:
        argv += ["--prescription", item]
    capsys.readouterr()
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["seq"] == 1 and len(printed["record_hash"]) == 64

    assert main(["records", "--db", url, "--format", "json"]) == 0
    (rec,) = json.loads(capsys.readouterr().out)
    assert rec["record_id"] == printed["record_id"]
    assert rec["record_hash"] == printed["record_hash"]
    assert rec["recorded_by"] == "Dr Ada Test" and rec["role"] == "clinician"
    assert rec["attendees"] == [{"name": "Dr B", "role": "physicist"}]
    assert rec["patient_id"] == "RTPA-DEMO-0000" and rec["source"] == str(folder.resolve())
    # the patient key is p- + 8 hex digits of the SHA-256 of the PatientID (deidentify.py)
    assert rec["patient_key"] == "p-" + hashlib.sha256(b"RTPA-DEMO-0000").hexdigest()[:8]
    lesions = {x["lesion_id"]: x for x in rec["lesions"]}
    assert [x["planned"] for x in rec["lesions"]] == ["54 Gy/3", "60 Gy/8", "50 Gy/5",
                                                      "50 Gy/5", "27 Gy/3"]
    assert lesions["L1"]["chosen"] == "54 Gy/3" and lesions["L1"]["chosen_from"] == "mdt"
    assert all(x["chosen"] == x["recommended"] for k, x in lesions.items() if k != "L1")
    assert all(x["chosen_from"] == "recommendation" for k, x in lesions.items() if k != "L1")
    evidence = rec["evidence"]
    assert evidence["case_options"]["prescriptions"] == given
    # SHA-256 of every file of the patient folder (DICOM and the structure-mapping file),
    # recomputed here
    expected = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                for p in folder.iterdir() if p.is_file()}
    assert "rtplan-assist-map.csv" in expected
    assert {i["file"]: i["sha256"] for i in evidence["inputs"]} == expected
    tables = {t["file"]: t["sha256"] for t in evidence["tables"]}
    for name in ("alpha_beta.csv", "sources.yaml", "tg101_2010_3fx.csv"):
        assert tables[name] == hashlib.sha256((shipped_folder() / name).read_bytes()).hexdigest()
    assert evidence["software"]["rtplan_assist"] and evidence["models"]["tumour"]

    assert main(["records", "--db", url, "--patient", "RTPA-DEMO-0000"]) == 0
    text = capsys.readouterr().out
    assert printed["record_id"] in text and "chosen 54 Gy/3 (MDT)" in text
    assert main(["records", "--db", url, "--patient", "p-00000000"]) == 0
    assert capsys.readouterr().out == "no decision recorded\n"
    code, out = _verify(url, capsys)
    assert code == 0 and "1 record(s), chain intact" in out and printed["record_hash"] in out
    assert main(["verify-records", "--db", url, "--record", printed["record_id"]]) == 0
    assert "same input files, tables and verdicts" in capsys.readouterr().out


def test_cli_report_is_attributed(decision, demo_copy, tmp_path, capsys):
    """A command-line report cites the decision record of exactly the choice it shows (id and
    hash) and names the OS user who exported it; without a database it says the choice was
    not recorded and creates no database (issue 16: every export attributed)."""
    import getpass

    from rtplan_assist.cli import main
    from rtplan_assist.records import open_store

    url = f"sqlite:///{tmp_path / 'dec.sqlite'}"
    record, lesions = decision
    with open_store(url) as store:
        appended = store.append(record, lesions)
    chosen = [f"{x['lesion_id']}={x['chosen'].replace(' Gy', '')}" for x in lesions]
    argv = ["report", str(demo_copy), "--out", str(tmp_path / "r.html"), "--db", url]
    for item in chosen:
        argv += ["--choose", item]
    assert main(argv) in (0, 1, 2)
    html = (tmp_path / "r.html").read_text()
    assert appended.record_id in html and appended.record_hash in html
    assert "the command line (OS user" in html and getpass.getuser() in html
    missing = tmp_path / "none.sqlite"
    argv[argv.index(url)] = f"sqlite:///{missing}"
    argv[argv.index(str(tmp_path / "r.html"))] = str(tmp_path / "r2.html")
    main(argv)
    assert "the choice shown has not been recorded" in (tmp_path / "r2.html").read_text()
    assert not missing.exists()
    capsys.readouterr()
