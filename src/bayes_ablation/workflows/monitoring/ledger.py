"""The monitoring ledger: an append-only SQLite record of every interim look.

One row per look: look number, cut date, data SHA-256, design SHA-256, the result (posterior
probabilities, PPoS and its MC standard error, the decision and the numbers behind it, as
canonical JSON plus the headline numbers as columns), software versions and a timestamp.

Append-only and tamper-evident:

* the database identifies itself: ``PRAGMA application_id`` = 0x42414C47 ("BALG") and
  ``PRAGMA user_version`` = schema version; a file that is not SQLite, or SQLite without our
  id, version or exact schema, is refused and **never written to**;
* triggers abort every UPDATE or DELETE on the ledger's tables;
* rows form a hash chain: ``row_hash = SHA-256(prev_hash ‖ canonical JSON of the row)`` with
  the first ``prev_hash`` derived from the ledger's header row, so an edited, removed or
  re-ordered row is detected on opening (this detects accidents and casual edits; someone who
  can rewrite the file can rewrite the whole chain — keep an off-site copy of the last
  ``row_hash``, printed with every look, to guard against that);
* a new ledger is created as a temporary file and linked into place only if nothing exists at
  the path (no race can overwrite a file that appeared meanwhile).

Re-recording a stored look (same cut date): with identical inputs (data and design hashes)
and an identical result it is a no-op, reported as such; anything else is refused with a
:class:`LedgerConflict` naming what differs. A new look must be later than every stored look
and use the same design.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bayes_ablation.errors import BayesAblationError

APPLICATION_ID = 0x42414C47  # "BALG"
SCHEMA_VERSION = 1
LEDGER_FORMAT = "bayes_ablation monitoring ledger"
SQLITE_MAGIC = b"SQLite format 3\x00"
LOCK_TIMEOUT_S = 60.0  # how long a look waits for another process's look to finish writing

logger = logging.getLogger(__name__)

_TABLES = {
    "ledger_info": """CREATE TABLE ledger_info (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
)""",
    "looks": """CREATE TABLE looks (
    look INTEGER PRIMARY KEY CHECK (look >= 1),
    cut_date TEXT NOT NULL UNIQUE,
    data_sha256 TEXT NOT NULL,
    design_sha256 TEXT NOT NULL,
    p_hr_lt_1 REAL NOT NULL,
    ppos REAL,
    ppos_mcse REAL,
    decision TEXT NOT NULL,
    result_json TEXT NOT NULL,
    versions_json TEXT NOT NULL,
    created_utc TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    row_hash TEXT NOT NULL UNIQUE
)""",
}
_TRIGGERS = {
    f"{table}_no_{op.lower()}": f"""CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table}
BEGIN SELECT RAISE(ABORT, 'the monitoring ledger is append-only'); END"""
    for table in _TABLES for op in ("UPDATE", "DELETE")
}
_COLUMNS = ("look", "cut_date", "data_sha256", "design_sha256", "p_hr_lt_1", "ppos",
            "ppos_mcse", "decision", "result_json", "versions_json", "created_utc", "prev_hash")


class LedgerError(BayesAblationError):
    """The ledger file is damaged, foreign or inconsistent; it was not modified."""

    exit_code = 2


class LedgerConflict(LedgerError):
    """A look would be recorded differently from (or out of order with) the stored looks."""


def canonical_json(value: Any) -> str:
    """Sorted, compact JSON; floats as their shortest repr (exact round trip)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=True)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class LookEntry:
    """What one look records (``result`` must be JSON-serialisable and deterministic)."""

    cut_date: str
    data_sha256: str
    design_sha256: str
    p_hr_lt_1: float
    ppos: float | None
    ppos_mcse: float | None
    decision: str
    result: dict[str, Any]
    versions: dict[str, str]

    @property
    def result_json(self) -> str:
        return canonical_json(self.result)


@dataclass(frozen=True)
class LookRecord:
    """A stored look."""

    look: int
    cut_date: str
    data_sha256: str
    design_sha256: str
    p_hr_lt_1: float
    ppos: float | None
    ppos_mcse: float | None
    decision: str
    result_json: str
    versions_json: str
    created_utc: str
    prev_hash: str
    row_hash: str

    @property
    def result(self) -> dict[str, Any]:
        return json.loads(self.result_json)

    @property
    def versions(self) -> dict[str, str]:
        return json.loads(self.versions_json)


@dataclass(frozen=True)
class RecordOutcome:
    status: str          # "appended" | "unchanged"
    look: int
    row_hash: str
    message: str


def _row_hash(prev_hash: str, values: dict[str, Any]) -> str:
    return _sha(prev_hash + canonical_json({k: values[k] for k in _COLUMNS}))


class Ledger:
    """An opened, verified ledger. Use :meth:`open`."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn

    # ---------------------------------------------------------------------------- opening
    @classmethod
    def open(cls, path: str | Path, *, create: bool = True) -> Ledger:
        """Open and verify a ledger; create it when missing (and ``create``)."""
        path = Path(path)
        if not path.exists():
            if not create:
                raise LedgerError(f"{path}: no ledger at this path")
            _create(path)
        elif path.is_dir():
            raise LedgerError(f"{path} is a folder, not a ledger file")
        with open(path, "rb") as fh:
            head = fh.read(len(SQLITE_MAGIC))
        if head != SQLITE_MAGIC:
            what = "an empty file" if not head else "not an SQLite database"
            raise LedgerError(f"{path} is {what}, so not a monitoring ledger; refusing to use "
                              "or overwrite it")
        try:
            conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, isolation_level=None,
                                   timeout=LOCK_TIMEOUT_S)
        except sqlite3.Error as exc:
            raise LedgerError(f"{path}: cannot open ({exc})") from exc
        ledger = cls(path, conn)
        try:
            ledger.verify()
        except BaseException:
            conn.close()
            raise
        return ledger

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------------- verification
    def verify(self) -> list[LookRecord]:
        """Check identity, schema, integrity and the hash chain; return the looks."""
        p = self.path
        try:
            app = self._conn.execute("PRAGMA application_id").fetchone()[0]
            if app != APPLICATION_ID:
                raise LedgerError(f"{p} is an SQLite database but not a bayes_ablation monitoring "
                                  f"ledger (application_id {app:#x}, expected "
                                  f"{APPLICATION_ID:#x}); refusing to use or overwrite it")
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            if version != SCHEMA_VERSION:
                raise LedgerError(f"{p}: ledger schema version {version}, this software reads "
                                  f"version {SCHEMA_VERSION}")
            check = self._conn.execute("PRAGMA integrity_check").fetchall()
            if check != [("ok",)]:
                raise LedgerError(f"{p} is damaged (SQLite integrity check: "
                                  f"{'; '.join(str(r[0]) for r in check[:5])})")
            objects = {(t, n): sql for t, n, sql in self._conn.execute(
                "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL")}
            expected = {("table", n): s for n, s in _TABLES.items()} | \
                {("trigger", n): s for n, s in _TRIGGERS.items()}
            if {k: _norm(v) for k, v in objects.items()} != \
                    {k: _norm(v) for k, v in expected.items()}:
                extra = sorted(set(objects) - set(expected))
                missing = sorted(set(expected) - set(objects))
                raise LedgerError(f"{p}: the ledger's schema was altered (missing {missing}, "
                                  f"unexpected {extra}, or changed definitions)")
            info = dict(self._conn.execute("SELECT key, value FROM ledger_info"))
            if info.get("format") != LEDGER_FORMAT or "created_utc" not in info:
                raise LedgerError(f"{p}: the ledger header row is missing or altered")
            records = self._records()
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"{p} is damaged or not a ledger ({exc})") from exc
        prev = _sha(canonical_json(info))
        for k, rec in enumerate(records, start=1):
            if rec.look != k:
                raise LedgerError(f"{p}: look numbers are not consecutive (found look "
                                  f"{rec.look} where look {k} was expected): rows were removed")
            values = rec.__dict__
            if rec.prev_hash != prev or _row_hash(prev, values) != rec.row_hash:
                raise LedgerError(f"{p}: look {rec.look} (cut {rec.cut_date}) does not match "
                                  "its hash chain: the ledger was modified outside "
                                  "bayes_ablation; refusing to use it")
            if k > 1 and rec.cut_date <= records[k - 2].cut_date:
                raise LedgerError(f"{p}: looks are not in calendar order at look {rec.look}")
            prev = rec.row_hash
        return records

    def _records(self) -> list[LookRecord]:
        cols = (*_COLUMNS, "row_hash")
        rows = self._conn.execute(f"SELECT {', '.join(cols)} FROM looks ORDER BY look").fetchall()
        return [LookRecord(**dict(zip(cols, r, strict=True))) for r in rows]

    def looks(self) -> list[LookRecord]:
        return self._records()

    # ------------------------------------------------------------------------- appending
    def plan(self, cut_date: str, design_sha256: str) -> tuple[int, LookRecord | None]:
        """Before computing a look: its number and the stored record for this cut date (if
        any). Raises :class:`LedgerConflict` for a cut before the latest look or a design
        different from the stored looks'."""
        records = self.looks()
        for rec in records:
            if rec.cut_date == cut_date:
                return rec.look, rec
        if records and records[0].design_sha256 != design_sha256:
            raise LedgerConflict(
                f"{self.path}: the stored looks used design {records[0].design_sha256[:16]}…, "
                f"this run uses design {design_sha256[:16]}…; a trial's design cannot change "
                "between looks (start a new ledger for a new design)")
        if records and cut_date < records[-1].cut_date:
            raise LedgerConflict(
                f"{self.path}: cut date {cut_date} is before the latest stored look "
                f"(look {records[-1].look}, cut {records[-1].cut_date}); looks are recorded in "
                "calendar order")
        return len(records) + 1, None

    def record(self, entry: LookEntry) -> RecordOutcome:
        """Append ``entry`` as the next look, or confirm an identical stored look (no-op)."""
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise LedgerError(f"{self.path}: cannot lock the ledger ({exc})") from exc
        try:
            records = self.verify()
            number, stored = self.plan(entry.cut_date, entry.design_sha256)
            if stored is not None:
                outcome = self._compare(stored, entry)
                conn.execute("ROLLBACK")
                return outcome
            info = dict(conn.execute("SELECT key, value FROM ledger_info"))
            prev = records[-1].row_hash if records else _sha(canonical_json(info))
            values = {
                "look": number, "cut_date": entry.cut_date, "data_sha256": entry.data_sha256,
                "design_sha256": entry.design_sha256, "p_hr_lt_1": float(entry.p_hr_lt_1),
                "ppos": None if entry.ppos is None else float(entry.ppos),
                "ppos_mcse": None if entry.ppos_mcse is None else float(entry.ppos_mcse),
                "decision": entry.decision, "result_json": entry.result_json,
                "versions_json": canonical_json(entry.versions),
                "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
                "prev_hash": prev,
            }
            values["row_hash"] = _row_hash(prev, values)
            conn.execute(f"INSERT INTO looks ({', '.join(values)}) VALUES "
                         f"({', '.join('?' for _ in values)})", tuple(values.values()))
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        return RecordOutcome("appended", number, values["row_hash"],
                             f"look {number} (cut {entry.cut_date}) recorded in {self.path}; "
                             f"chain head {values['row_hash'][:16]}…")

    def check_inputs(self, stored: LookRecord, data_sha256: str, design_sha256: str) -> None:
        """Refuse early (before computing) a stored look's cut date with other inputs."""
        probe = LookEntry(stored.cut_date, data_sha256, design_sha256, stored.p_hr_lt_1,
                          stored.ppos, stored.ppos_mcse, stored.decision, stored.result,
                          stored.versions)
        self._compare(stored, probe)

    def _compare(self, stored: LookRecord, entry: LookEntry) -> RecordOutcome:
        where = f"look {stored.look} (cut {stored.cut_date}, recorded {stored.created_utc})"
        problems = []
        if stored.data_sha256 != entry.data_sha256:
            problems.append(f"data SHA-256 {stored.data_sha256[:16]}… stored, "
                            f"{entry.data_sha256[:16]}… now")
        if stored.design_sha256 != entry.design_sha256:
            problems.append(f"design SHA-256 {stored.design_sha256[:16]}… stored, "
                            f"{entry.design_sha256[:16]}… now")
        if stored.result_json != entry.result_json:
            old, new = stored.result, entry.result
            diffs = _diff(old, new)
            shown = "; ".join(diffs[:6]) + (" …" if len(diffs) > 6 else "")
            problems.append(f"different result: {shown}")
            if stored.versions != entry.versions:
                changed = sorted(k for k in set(stored.versions) | set(entry.versions)
                                 if stored.versions.get(k) != entry.versions.get(k))
                problems.append(f"software versions differ ({', '.join(changed)})")
        if problems:
            raise LedgerConflict(f"REFUSED: {where} is already in {self.path} and this run "
                                 "differs from it — " + " | ".join(problems)
                                 + ". A recorded look is never replaced.")
        note = "" if stored.versions == entry.versions else \
            " (software versions differ, results identical)"
        return RecordOutcome("unchanged", stored.look, stored.row_hash,
                             f"{where} is already recorded with identical inputs and result; "
                             f"nothing written{note}")


def _diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new)):
            out += _diff(old.get(k), new.get(k), f"{prefix}{k}.")
        return out
    if old != new:
        return [f"{prefix.rstrip('.')}: {old!r} stored, {new!r} now"]
    return []


def _norm(sql: str) -> str:
    return " ".join(sql.split())


def _create(path: Path) -> None:
    """Create an initialised ledger at ``path`` without ever replacing an existing file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.new-{uuid.uuid4().hex[:8]}"
    try:
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("BEGIN")
            for sql in (*_TABLES.values(), *_TRIGGERS.values()):
                conn.execute(sql)
            conn.executemany("INSERT INTO ledger_info (key, value) VALUES (?, ?)", [
                ("format", LEDGER_FORMAT),
                ("created_utc", datetime.now(UTC).isoformat(timespec="seconds")),
                ("id", uuid.uuid4().hex),
            ])
            conn.execute("COMMIT")
        finally:
            conn.close()
        try:
            os.link(tmp, path)  # fails if anything appeared at ``path``
        except FileExistsError:
            # another process created it meanwhile: never replaced, and :meth:`Ledger.open`
            # verifies whatever is there before using it
            logger.info("%s was created by another process meanwhile; using it", path)
    finally:
        tmp.unlink(missing_ok=True)
