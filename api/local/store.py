"""SQLite storage of the local back end, with group commit.

Every write goes through one writer thread that owns its own connection: writes that arrive while a
commit is in flight are committed together in the next transaction, so a burst of submissions costs one
fsync per batch instead of one each, and a 202 is still only sent after its row is on disk (WAL with
synchronous=FULL). Reads use a second connection on the event loop's thread; they are index lookups
that take microseconds and WAL lets them run beside the writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from monaco.core.models import CallbackState, Limits, Outcome, RunSpec, Status, SubmissionView, Verdict, parse_time

_SCHEMA = """
CREATE TABLE IF NOT EXISTS submissions (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    language        TEXT NOT NULL,
    code            TEXT NOT NULL,
    input           TEXT NOT NULL,
    timeout_seconds REAL NOT NULL,
    memory_mb       INTEGER NOT NULL,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    queued_at       TEXT NOT NULL,
    started_at      TEXT,
    completed_at    TEXT,
    outcome         TEXT,
    message         TEXT NOT NULL DEFAULT '',
    spec            TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS submissions_status ON submissions(status, seq);
CREATE INDEX IF NOT EXISTS submissions_completed ON submissions(completed_at);
"""
# Added with callbacks; ALTER TABLE brings a database of an earlier release up to date.
_CALLBACK_COLUMNS = {
    "callback_url": "TEXT",
    "callback_state": "TEXT",  # pending | delivered | failed; NULL without a callback
    "callback_attempts": "INTEGER NOT NULL DEFAULT 0",
    "callback_error": "TEXT",
    "callback_next": "TEXT",  # ISO time of the next attempt
    "callback_format": "TEXT",  # core/callback.py's FORMATS; NULL (rows from before formats): monaco
}
_CALLBACK_INDEX = "CREATE INDEX IF NOT EXISTS submissions_callback ON submissions(callback_state)"
_VIEW_COLUMNS = (
    "id, language, status, queued_at, started_at, completed_at, outcome, message,"
    " callback_state, callback_attempts, callback_error"
)

Op = Callable[[sqlite3.Connection], Any]


@dataclass(frozen=True)
class StoredSubmission:
    view: SubmissionView
    code: str
    input: str
    limits: Limits
    attempts: int
    spec: RunSpec


@dataclass(frozen=True)
class PendingCallback:
    id: str
    url: str
    format: str | None
    attempts: int
    due: datetime | None


def _callback(row: sqlite3.Row) -> CallbackState | None:
    if not row["callback_state"]:
        return None
    return CallbackState(state=row["callback_state"], attempts=row["callback_attempts"],
                         last_error=row["callback_error"])


def _row_to_view(row: sqlite3.Row) -> SubmissionView:
    outcome = Outcome.model_validate_json(row["outcome"]) if row["outcome"] else None
    queued = parse_time(row["queued_at"])
    assert queued is not None
    return SubmissionView(
        id=row["id"],
        language=row["language"],
        status=Status(row["status"]),
        queued_at=queued,
        started_at=parse_time(row["started_at"]),
        completed_at=parse_time(row["completed_at"]),
        outcome=outcome,
        message=row["message"],
        callback=_callback(row),
    )


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._ops: queue.Queue[tuple[Op, asyncio.Future[Any], asyncio.AbstractEventLoop] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._reader: sqlite3.Connection | None = None
        self.failure: str | None = None

    # ---- lifecycle
    def open(self) -> None:
        # The sandboxes run as other uids on this machine: nothing of the store is theirs to read. SQLite
        # gives its -wal and -shm files the mode of the database file, so creating that 0600 covers all.
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
        writer = self._connect()
        writer.executescript(_SCHEMA)
        have = {row["name"] for row in writer.execute("PRAGMA table_info(submissions)")}
        if "spec" not in have:  # a store from before the judge's fields: every old row asked for none
            writer.execute("ALTER TABLE submissions ADD COLUMN spec TEXT NOT NULL DEFAULT '{}'")
        for column, kind in _CALLBACK_COLUMNS.items():
            if column not in have:
                writer.execute(f"ALTER TABLE submissions ADD COLUMN {column} {kind}")
        writer.execute(_CALLBACK_INDEX)
        writer.commit()
        self._reader = self._connect()
        self._thread = threading.Thread(target=self._write_loop, args=(writer,), name="monaco-store", daemon=True)
        self._thread.start()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    def close(self) -> None:
        if self._thread is not None:
            self._ops.put(None)
            self._thread.join(timeout=30)
            self._thread = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    @property
    def healthy(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self.failure is None

    # ---- the writer
    def _write_loop(self, conn: sqlite3.Connection) -> None:
        try:
            while True:
                first = self._ops.get()
                if first is None:
                    return
                batch = [first]
                while True:
                    try:
                        nxt = self._ops.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        self._ops.put(None)
                        break
                    batch.append(nxt)
                self._commit(conn, batch)
        finally:
            conn.close()

    def _commit(
        self, conn: sqlite3.Connection, batch: list[tuple[Op, asyncio.Future[Any], asyncio.AbstractEventLoop]]
    ) -> None:
        results: list[tuple[Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for op, _fut, _loop in batch:
                conn.execute("SAVEPOINT op")
                try:
                    results.append((op(conn), None))
                    conn.execute("RELEASE op")
                except sqlite3.IntegrityError as exc:  # this op's fault only: the others still commit
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    results.append((None, exc))
            conn.execute("COMMIT")
            self.failure = None
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            self.failure = f"SQLite at {self.path}: {exc}"
            results = [(None, exc)] * len(batch)
        for (_op, fut, loop), (value, error) in zip(batch, results, strict=True):
            loop.call_soon_threadsafe(_settle, fut, value, error)

    async def write(self, op: Op) -> Any:
        if not self.healthy and self._thread is None:
            raise sqlite3.OperationalError("the store is closed")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._ops.put((op, fut, loop))
        return await fut

    # ---- operations
    async def insert(self, view: SubmissionView, code: str, stdin: str, limits: Limits,
                     spec: RunSpec | None = None, callback_url: str | None = None,
                     callback_format: str = "monaco") -> None:
        spec_json = (spec or RunSpec()).model_dump_json(by_alias=True, exclude_defaults=True)

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO submissions (id, language, code, input, timeout_seconds, memory_mb, status, queued_at,"
                " spec, callback_url, callback_state, callback_format) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    view.id,
                    view.language,
                    code,
                    stdin,
                    limits.timeout_seconds,
                    limits.memory_mb,
                    view.status.value,
                    view.queued_at.isoformat(),
                    spec_json,
                    callback_url,
                    "pending" if callback_url else None,
                    callback_format if callback_url else None,
                ),
            )

        await self.write(op)

    async def record_callback(self, submission_id: str, state: CallbackState, due: datetime | None) -> None:
        """The delivery's progress after an attempt (`due`: when the next one is, if any)."""

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE submissions SET callback_state = ?, callback_attempts = ?, callback_error = ?,"
                " callback_next = ? WHERE id = ?",
                (state.state, state.attempts, state.last_error, due.isoformat() if due else None, submission_id),
            )

        await self.write(op)

    def pending_callbacks(self) -> list[PendingCallback]:
        """Finished submissions whose callback is still to be delivered: after a restart, these resume."""
        rows = self.reader.execute(
            "SELECT id, callback_url, callback_format, callback_attempts, callback_next FROM submissions"
            " WHERE callback_state = 'pending' AND status IN ('completed', 'failed') ORDER BY seq"
        ).fetchall()
        return [PendingCallback(r["id"], r["callback_url"], r["callback_format"], r["callback_attempts"],
                                parse_time(r["callback_next"])) for r in rows]  # fmt: skip

    def callback_target(self, submission_id: str) -> tuple[str, str | None] | None:
        """The callback's URL and format, if the submission has a callback."""
        row = self.reader.execute(
            "SELECT callback_url, callback_format FROM submissions WHERE id = ?", (submission_id,)
        ).fetchone()
        return (row["callback_url"], row["callback_format"]) if row and row["callback_url"] else None

    async def mark_running(self, submission_id: str, started_at: datetime) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE submissions SET status = ?, started_at = ?, attempts = attempts + 1"
                " WHERE id = ? AND status IN ('pending', 'queued')",
                (Status.RUNNING.value, started_at.isoformat(), submission_id),
            )

        await self.write(op)

    async def finish(self, view: SubmissionView) -> bool:
        """Record the end of a submission, once: a second finish of the same id changes nothing."""
        assert view.outcome is not None and view.completed_at is not None
        completed, outcome = view.completed_at.isoformat(), view.outcome.model_dump_json()

        def op(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE submissions SET status = ?, completed_at = ?, outcome = ?, message = ?, started_at = ?"
                " WHERE id = ? AND status NOT IN ('completed', 'failed')",
                (
                    view.status.value,
                    completed,
                    outcome,
                    view.message,
                    view.started_at.isoformat() if view.started_at else None,
                    view.id,
                ),
            )
            return cur.rowcount == 1

        return bool(await self.write(op))

    async def recover(self, max_attempts: int) -> tuple[list[StoredSubmission], int]:
        """After a restart: runs that were interrupted are queued again, or fail after `max_attempts`.

        Returns the submissions to queue, oldest first, and how many were given up on.
        """

        def op(conn: sqlite3.Connection) -> int:
            outcome = Outcome(
                verdict=Verdict.SYSTEM_ERROR,
                message=f"the server stopped while this submission ran, {max_attempts} times; not retried again",
            )
            now = datetime.now().astimezone().isoformat()
            cur = conn.execute(
                "UPDATE submissions SET status = 'failed', completed_at = ?, outcome = ?, message = ?"
                " WHERE status = 'running' AND attempts >= ?",
                (now, outcome.model_dump_json(), outcome.message, max_attempts),
            )
            conn.execute("UPDATE submissions SET status = 'queued' WHERE status IN ('running', 'pending')")
            return cur.rowcount

        given_up = int(await self.write(op))
        rows = self.reader.execute("SELECT * FROM submissions WHERE status = 'queued' ORDER BY seq").fetchall()
        return [self._stored(row) for row in rows], given_up

    async def prune(self, before: datetime) -> int:
        def op(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "DELETE FROM submissions WHERE completed_at IS NOT NULL AND completed_at < ?", (before.isoformat(),)
            )
            return cur.rowcount

        return int(await self.write(op))

    @property
    def reader(self) -> sqlite3.Connection:
        if self._reader is None:
            raise sqlite3.OperationalError("the store is closed")
        return self._reader

    def _stored(self, row: sqlite3.Row) -> StoredSubmission:
        return StoredSubmission(
            view=_row_to_view(row),
            code=row["code"],
            input=row["input"],
            limits=Limits(timeout_seconds=row["timeout_seconds"], memory_mb=row["memory_mb"]),
            attempts=row["attempts"],
            spec=RunSpec.model_validate_json(row["spec"]),
        )

    def get(self, submission_id: str) -> SubmissionView | None:
        row = self.reader.execute(
            f"SELECT {_VIEW_COLUMNS} FROM submissions WHERE id = ?",
            (submission_id,),
        ).fetchone()
        return _row_to_view(row) if row else None

    def count(self) -> int:
        return int(self.reader.execute("SELECT COUNT(*) FROM submissions").fetchone()[0])


def _settle(fut: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if fut.done():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(value)
