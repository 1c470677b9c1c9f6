"""The append-only monitoring ledger."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest

from bayes_ablation.workflows.monitoring.ledger import Ledger, LedgerConflict, LedgerError, LookEntry


def entry(cut="2027-06-30", p=0.91, ppos=0.42, data="d" * 64, design="a" * 64, **extra):
    result = {"P(HR<1)": p, "PPoS": {"ppos": ppos, "mcse": 0.0156}, "n": 180, **extra}
    return LookEntry(cut_date=cut, data_sha256=data, design_sha256=design, p_hr_lt_1=p,
                     ppos=ppos, ppos_mcse=0.0156, decision="continue", result=result,
                     versions={"bayes_ablation": "0.1.0", "numpy": "2.5"})


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_append_reopen_and_identical_rerun_is_a_noop(tmp_path):
    path = tmp_path / "trial.db"
    with Ledger.open(path) as led:
        out1 = led.record(entry())
        out2 = led.record(entry("2027-12-31", p=0.95, ppos=None))
    assert (out1.status, out1.look, out2.look) == ("appended", 1, 2)
    before = digest(path)
    with Ledger.open(path) as led:
        looks = led.looks()
        assert [r.cut_date for r in looks] == ["2027-06-30", "2027-12-31"]
        assert looks[1].ppos is None and looks[0].result["P(HR<1)"] == 0.91
        again = led.record(entry())
        assert again.status == "unchanged" and again.look == 1
        assert "nothing written" in again.message
        newer_software = LookEntry(**{**entry().__dict__, "versions": {"bayes_ablation": "0.2"}})
        assert "versions differ" in led.record(newer_software).message
    assert digest(path) == before


def test_different_result_or_data_for_a_stored_look_is_refused(tmp_path):
    path = tmp_path / "trial.db"
    with Ledger.open(path) as led:
        led.record(entry())
        with pytest.raises(LedgerConflict, match=r"REFUSED: look 1 .*P\(HR<1\): 0.91 stored, 0.92 now"):
            led.record(entry(p=0.92))
        with pytest.raises(LedgerConflict, match="data SHA-256"):
            led.record(entry(data="e" * 64))
        with pytest.raises(LedgerConflict, match="before the latest stored look"):
            led.record(entry("2027-01-01"))
        with pytest.raises(LedgerConflict, match="design cannot change"):
            led.record(entry("2028-01-01", design="b" * 64))
        assert len(led.looks()) == 1


def test_update_and_delete_are_blocked(tmp_path):
    path = tmp_path / "trial.db"
    with Ledger.open(path) as led:
        led.record(entry())
    conn = sqlite3.connect(path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE looks SET p_hr_lt_1 = 0.999")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM looks")
    conn.close()
    Ledger.open(path).close()


def test_tampering_is_detected(tmp_path):
    path = tmp_path / "trial.db"
    with Ledger.open(path) as led:
        for k, cut in enumerate(["2027-06-30", "2027-12-31", "2028-06-30"]):
            led.record(entry(cut, p=0.9 + k / 100))
    conn = sqlite3.connect(path)
    conn.execute("DROP TRIGGER looks_no_update")
    conn.commit()
    with pytest.raises(LedgerError, match="schema was altered"):
        Ledger.open(path)
    conn.execute("UPDATE looks SET p_hr_lt_1 = 0.999, result_json = replace(result_json, "
                 "'0.91', '0.999') WHERE look = 2")
    conn.execute("CREATE TRIGGER looks_no_update BEFORE UPDATE ON looks\nBEGIN SELECT "
                 "RAISE(ABORT, 'the monitoring ledger is append-only'); END")
    conn.commit()
    conn.close()
    with pytest.raises(LedgerError, match=r"look 2 .* does not match its hash chain"):
        Ledger.open(path)


def test_removed_row_is_detected(tmp_path):
    path = tmp_path / "trial.db"
    with Ledger.open(path) as led:
        for cut in ["2027-06-30", "2027-12-31", "2028-06-30"]:
            led.record(entry(cut))
    conn = sqlite3.connect(path)
    conn.execute("DROP TRIGGER looks_no_delete")
    conn.execute("DELETE FROM looks WHERE look = 2")
    conn.execute("CREATE TRIGGER looks_no_delete BEFORE DELETE ON looks\nBEGIN SELECT "
                 "RAISE(ABORT, 'the monitoring ledger is append-only'); END")
    conn.commit()
    conn.close()
    with pytest.raises(LedgerError, match="not consecutive"):
        Ledger.open(path)


@pytest.mark.parametrize("kind", ["text", "empty", "foreign_sqlite", "truncated"])
def test_foreign_or_damaged_files_are_refused_and_left_untouched(tmp_path, kind):
    path = tmp_path / "trial.db"
    if kind == "text":
        path.write_text("look,cut\n1,2027-06-30\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "foreign_sqlite":
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE looks (x)")
        conn.commit()
        conn.close()
    else:
        with Ledger.open(path) as led:
            led.record(entry())
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2] + b"\x00" * 100)
    before = digest(path)
    with pytest.raises(LedgerError) as err:
        with Ledger.open(path) as led:
            led.record(entry())
    assert str(path) in str(err.value)
    assert digest(path) == before
    assert not any(p.name.startswith(".trial.db") for p in tmp_path.iterdir())
