"""The durable state store: SQLite in ``.keyframed/state.db``.

WAL with ``synchronous=FULL`` so a committed transaction survives a crash or power loss. One
connection guarded by a lock (as huey does), autocommit mode, and explicit
``BEGIN IMMEDIATE`` transactions for anything that must change several rows together.

The schema is versioned in ``PRAGMA user_version``; :data:`MIGRATIONS` holds one script per
version and opening an older database applies the missing ones in order.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keyframed.errors import SpaceError, StoreError
from keyframed.handlers.fingerprint import Components
from keyframed.handlers.verdict import Record

STATE_DIR = ".keyframed"
DB_NAME = "state.db"

MIGRATIONS: tuple[str, ...] = (
    # 1: the first schema.
    """
    CREATE TABLE artifacts (
        path TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, output_hash TEXT NOT NULL,
        components TEXT NOT NULL, take INTEGER NOT NULL DEFAULT 0, backend TEXT,
        built_at REAL NOT NULL);
    CREATE TABLE file_hashes (
        path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
        inode INTEGER NOT NULL, sha256 TEXT NOT NULL);
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT NOT NULL, fingerprint TEXT NOT NULL,
        take INTEGER NOT NULL, state TEXT NOT NULL, backend TEXT, prompt_id TEXT,
        attempts INTEGER NOT NULL DEFAULT 0, lost INTEGER NOT NULL DEFAULT 0, error TEXT,
        progress REAL NOT NULL DEFAULT 0, created_at REAL NOT NULL, updated_at REAL NOT NULL,
        not_before REAL NOT NULL DEFAULT 0, recipe TEXT NOT NULL DEFAULT '{}');
    CREATE UNIQUE INDEX jobs_one_live ON jobs(path)
        WHERE state IN ('ready', 'submitted', 'running');
    CREATE INDEX jobs_fp ON jobs(fingerprint);
    CREATE TABLE approvals (
        key TEXT PRIMARY KEY, marker_hash TEXT NOT NULL, snapshot TEXT NOT NULL,
        approved_at REAL NOT NULL);
    CREATE TABLE takes (path TEXT PRIMARY KEY, take INTEGER NOT NULL, note TEXT NOT NULL);
    CREATE TABLE consumed_markers (
        path TEXT NOT NULL, marker_hash TEXT NOT NULL, consumed_at REAL NOT NULL,
        PRIMARY KEY (path, marker_hash));
    CREATE TABLE uploads (
        backend TEXT NOT NULL, sha256 TEXT NOT NULL, name TEXT NOT NULL,
        PRIMARY KEY (backend, sha256));
    CREATE TABLE pending_writes (
        path TEXT PRIMARY KEY, expected_hash TEXT NOT NULL, fingerprint TEXT NOT NULL,
        components TEXT NOT NULL, take INTEGER NOT NULL, backend TEXT);
    """,
    # 2: progress (issue 12): when a job started running, where it is in its server's queue,
    # and the measured durations per template and backend that ETAs are drawn from.
    """
    ALTER TABLE jobs ADD COLUMN started_at REAL;
    ALTER TABLE jobs ADD COLUMN queue_position INTEGER;
    CREATE TABLE durations (
        template TEXT NOT NULL, backend TEXT NOT NULL, mean_s REAL NOT NULL,
        runs INTEGER NOT NULL, PRIMARY KEY (template, backend));
    """,
    # 3: the output cache (issue 13): every build kept, keyed by the fingerprint that made it.
    # A row is added only in the transaction that confirms the write, after its blob was
    # written and fsynced, so a crash never leaves a row whose blob is half-written.
    """
    CREATE TABLE cache (
        fingerprint TEXT PRIMARY KEY, path TEXT NOT NULL, take INTEGER NOT NULL,
        output_hash TEXT NOT NULL, size INTEGER NOT NULL, backend TEXT,
        built_at REAL NOT NULL, used_at REAL NOT NULL);
    CREATE INDEX cache_used ON cache(used_at);
    CREATE INDEX cache_hash ON cache(output_hash);
    ALTER TABLE takes ADD COLUMN first INTEGER;
    """,
    # 4: Comfy API v2 submissions (issue 15): a key is recorded before its job id is known.
    """
    CREATE TABLE v2_submissions (
        backend TEXT NOT NULL, idem_key TEXT NOT NULL, job_id TEXT,
        PRIMARY KEY (backend, idem_key));
    """,
)
# Each new duration moves the mean by this share (a server that got faster shows soon).
DURATION_WEIGHT = 0.3
SCHEMA_VERSION = len(MIGRATIONS)
LIVE_STATES = ("ready", "submitted", "running")
_RECORD_COLUMNS = "path, fingerprint, output_hash, components, take"
# The backend name a restore from the output cache is recorded under (jobs and artifacts).
CACHE_BACKEND = "cache"


@dataclass(frozen=True)
class CacheEntry:
    """One kept build: which artifact, which take, and the content hash of its bytes."""

    fingerprint: str
    path: str
    take: int
    output_hash: str
    size: int
    backend: str | None
    used_at: float


def _record(row: sqlite3.Row) -> Record:
    return Record(path=row[0], fingerprint=row[1], output_hash=row[2],
                  components=Components.model_validate_json(row[3]), take=row[4])


@dataclass(frozen=True)
class Job:
    """One row of the jobs table."""

    id: int
    path: str
    fingerprint: str
    take: int
    state: str
    backend: str | None
    prompt_id: str | None
    attempts: int
    lost: int
    error: str | None
    progress: float
    created_at: float
    updated_at: float
    not_before: float
    started_at: float | None = None
    queue_position: int | None = None


class Store:
    """The state database of one project."""

    def __init__(self, path: Path, *, clock: Any = time.time) -> None:
        _make_state_dir(path.parent)
        self.path = path
        self._clock = clock
        self._lock = threading.RLock()
        # Bumped by every committed transaction: a pass can tell nothing in the store changed.
        self.generation = 0
        # Decoded build records, kept across passes: decoding every row's components on every
        # pass cost 15 % of a pass. Paths written since are re-read (a rolled-back write too).
        self._records: dict[str, Record] | None = None
        self._stale_records: set[str] = set()
        self._approvals: dict[str, tuple[str, dict[str, str]]] | None = None
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                       timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=30000")
            self._check_sound()
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise open_error(path, exc) from exc
        self._identity = _identity(path)

    def vanished(self) -> bool:
        """True when the database file at :attr:`path` is gone or is another file now (someone
        removed ``.keyframed/``): this connection still reads the old, deleted file."""
        return _identity(self.path) != self._identity

    def restore(self) -> None:
        """Write this connection's database (the deleted file, still open) back to
        :attr:`path` and go on with it there, so every build record survives.

        Without this, the outputs keyframed made would all be taken for the user's files on
        the next start (no record vouches for them) and never be rebuilt again.
        """
        with self._lock:
            _make_state_dir(self.path.parent)
            tmp = self.path.with_name(self.path.name + ".restore")
            tmp.unlink(missing_ok=True)
            copy = sqlite3.connect(tmp, isolation_level=None)
            try:
                self._db.backup(copy)
            finally:
                copy.close()
            for suffix in ("-wal", "-shm"):  # of some other database, if any
                self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)
            os.replace(tmp, self.path)
            old, self._db = self._db, sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30)
            old.close()
            for pragma in ("journal_mode=WAL", "synchronous=FULL", "busy_timeout=30000"):
                self._db.execute(f"PRAGMA {pragma}")
            self._identity = _identity(self.path)
            self._records = self._approvals = None
            self.generation += 1

    def _check_sound(self) -> None:
        """``PRAGMA quick_check`` at open: pages damaged inside a file with a valid header are
        found here, with a clear message, instead of as a traceback in the middle of a pass
        (a few milliseconds for a state database of 1,000 scenes)."""
        verdict = str(self._db.execute("PRAGMA quick_check").fetchone()[0])
        if verdict != "ok":
            raise sqlite3.DatabaseError(f"database disk image is malformed ({verdict})")

    @classmethod
    def for_project(cls, root: Path, **kwargs: Any) -> Store:
        """Open (or create) ``<root>/.keyframed/state.db``.

        Raises:
            StoreError: ``.keyframed`` is a symlink leading out of the project, or the database
                is a symlink (a project folder from elsewhere could otherwise make keyframed
                write into any SQLite file, or create one anywhere).
        """
        state = root / STATE_DIR
        if state.is_symlink() and not state.resolve().is_relative_to(root.resolve()):
            raise StoreError(f"{state} is a symlink that leads outside the project; keyframed "
                             "keeps its state inside the project folder (remove the link)")
        if (state / DB_NAME).is_symlink():
            raise StoreError(f"{state / DB_NAME} is a symlink; keyframed opens only its own "
                             "database file there (remove the link)")
        return cls(state / DB_NAME, **kwargs)

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} was written by a newer keyframed (schema {version} > "
                f"{SCHEMA_VERSION}); upgrade keyframed"
            )
        for number in range(version, SCHEMA_VERSION):
            with self.transaction() as db:
                for statement in MIGRATIONS[number].split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version={number + 1}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run a block in one ``BEGIN IMMEDIATE`` transaction."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._rollback()
                    raise
                try:
                    self._db.execute("COMMIT")
                except sqlite3.Error:
                    self._rollback()
                    raise
            except sqlite3.OperationalError as exc:
                raise space_error(self.path, exc) or exc from exc
            self.generation += 1

    def _rollback(self) -> None:
        # A rollback may fail too (the disk that refused the commit); that must not hide the
        # first error. SQLite undoes an unfinished transaction itself when the file reopens.
        with suppress(sqlite3.Error):
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
        # The caches may hold what the undone write wrote: read them again.
        self._records = self._approvals = None

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                cur = self._db.execute(sql, args)
                return list(cur.fetchall())
            except sqlite3.DatabaseError as exc:
                if isinstance(exc, sqlite3.OperationalError):
                    # Locked, disk full, I/O: the caller's pass fails and is retried.
                    raise space_error(self.path, exc) or exc from exc
                raise StoreError(damaged(self.path, exc)) from exc

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            self._db.close()

    def integrity_check(self) -> str:
        """``PRAGMA integrity_check``: ``ok`` when the file is sound."""
        return str(self._query("PRAGMA integrity_check")[0][0])

    # -- artifacts -------------------------------------------------------------------------

    def records(self) -> dict[str, Record]:
        """Every artifact's last build record (a copy; the records themselves are shared)."""
        with self._lock:
            return dict(self._decoded())

    def _decoded(self) -> dict[str, Record]:
        with self._lock:
            if self._records is None:
                rows = self._query(f"SELECT {_RECORD_COLUMNS} FROM artifacts")
                self._records = {r[0]: _record(r) for r in rows}
                self._stale_records.clear()
            for path in sorted(self._stale_records):
                found = self._query(f"SELECT {_RECORD_COLUMNS} FROM artifacts WHERE path=?",
                                    (path,))
                if found:
                    self._records[path] = _record(found[0])
                else:
                    self._records.pop(path, None)
            self._stale_records.clear()
            return self._records

    def record(self, path: str) -> Record | None:
        """One artifact's last build record."""
        return self._decoded().get(path)

    def record_built(
        self, record: Record, backend: str | None, db: sqlite3.Connection | None = None
    ) -> None:
        """Record that an artifact was written with this fingerprint and content hash."""
        sql = (
            "INSERT OR REPLACE INTO artifacts (path, fingerprint, output_hash, components, take,"
            " backend, built_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
        )
        args = (record.path, record.fingerprint, record.output_hash,
                record.components.model_dump_json(), record.take, backend, self._clock())
        with self._lock:
            self._stale_records.add(record.path)
        if db is not None:
            db.execute(sql, args)
        else:
            with self.transaction() as tx:
                tx.execute(sql, args)

    def owned_paths(self) -> frozenset[str]:
        """Paths keyframed has written."""
        return frozenset(self.records())

    # -- write-ahead for outputs -------------------------------------------------------------

    def intend_write(self, record: Record, backend: str | None) -> None:
        """Note an output about to be renamed into place, so a crash in between is healed."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO pending_writes VALUES (?, ?, ?, ?, ?, ?)",
                (record.path, record.output_hash, record.fingerprint,
                 record.components.model_dump_json(), record.take, backend),
            )

    def pending_writes(self) -> list[tuple[Record, str | None]]:
        """Writes that were announced and not yet confirmed."""
        rows = self._query("SELECT * FROM pending_writes")
        return [
            (Record(path=r[0], output_hash=r[1], fingerprint=r[2],
                    components=Components.model_validate_json(r[3]), take=r[4]), r[5])
            for r in rows
        ]

    def finish_write(self, record: Record, backend: str | None, job_id: int | None,
                     *, size: int | None = None, restored: bool = False) -> None:
        """Confirm a written output: record it, drop the intent, close the job.

        With ``size`` the build is also kept in the output cache (its blob is already on
        disk). A ``restored`` write gets a finished job row under :data:`CACHE_BACKEND`, so
        status and history show it like a build, in the same transaction.
        """
        now = self._clock()
        with self.transaction() as db:
            self.record_built(record, backend, db)
            db.execute("DELETE FROM pending_writes WHERE path = ?", (record.path,))
            if job_id is not None:
                db.execute(
                    "UPDATE jobs SET state='done', progress=1, updated_at=? WHERE id=?",
                    (now, job_id),
                )
            if restored:
                db.execute(
                    "INSERT INTO jobs (path, fingerprint, take, state, backend, progress,"
                    " created_at, updated_at) VALUES (?, ?, ?, 'done', ?, 1, ?, ?)",
                    (record.path, record.fingerprint, record.take, CACHE_BACKEND, now, now))
                db.execute("UPDATE cache SET used_at=? WHERE fingerprint=?",
                           (now, record.fingerprint))
            elif size is not None:
                db.execute(
                    "INSERT OR REPLACE INTO cache VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (record.fingerprint, record.path, record.take, record.output_hash, size,
                     backend, now, now))

    # -- output cache --------------------------------------------------------------------------

    def cache_entries(self) -> dict[str, CacheEntry]:
        """Every kept build by fingerprint."""
        rows = self._query("SELECT fingerprint, path, take, output_hash, size, backend, used_at"
                           " FROM cache")
        return {r[0]: CacheEntry(*r) for r in rows}

    def cache_drop(self, fingerprints: list[str]) -> None:
        """Forget kept builds (damaged, or evicted)."""
        with self.transaction() as db:
            db.executemany("DELETE FROM cache WHERE fingerprint=?", [(f,) for f in fingerprints])

    def cache_hashes_in_use(self) -> set[str]:
        """Content hashes still named by a cache row."""
        return {str(r[0]) for r in self._query("SELECT DISTINCT output_hash FROM cache")}

    def drop_write(self, path: str) -> None:
        """Forget an announced write that never happened."""
        with self.transaction() as db:
            db.execute("DELETE FROM pending_writes WHERE path = ?", (path,))

    # -- file hash cache ---------------------------------------------------------------------

    def cached_hash(self, path: str, size: int, mtime_ns: int, inode: int) -> str | None:
        """The remembered hash of a file whose (size, mtime_ns, inode) are unchanged."""
        rows = self._query(
            "SELECT sha256 FROM file_hashes WHERE path=? AND size=? AND mtime_ns=? AND inode=?",
            (path, size, mtime_ns, inode),
        )
        return str(rows[0][0]) if rows else None

    def all_hashes(self) -> dict[str, tuple[tuple[int, int, int], str]]:
        """Every cached hash: path → ((size, mtime_ns, inode), sha256)."""
        rows = self._query("SELECT path, size, mtime_ns, inode, sha256 FROM file_hashes")
        return {r[0]: ((r[1], r[2], r[3]), r[4]) for r in rows}

    def remember_hashes(self, entries: list[tuple[str, int, int, int, str]]) -> None:
        """Store (path, size, mtime_ns, inode, sha256) rows."""
        if not entries:
            return
        with self.transaction() as db:
            db.executemany("INSERT OR REPLACE INTO file_hashes VALUES (?, ?, ?, ?, ?)", entries)

    # -- approvals, takes, markers -------------------------------------------------------------

    def approval(self, key: str) -> tuple[str, dict[str, str]] | None:
        """(marker hash, snapshot) of an approval, or None."""
        with self._lock:
            if self._approvals is None:
                # One query for all: a pass asks once per scene (1,000 queries at 1,000 scenes).
                rows = self._query("SELECT key, marker_hash, snapshot FROM approvals")
                self._approvals = {r[0]: (r[1], json.loads(r[2])) for r in rows}
            return self._approvals.get(key)

    def set_approval(self, key: str, marker_hash: str, snapshot: dict[str, str]) -> None:
        """Record an approval and the hashes it binds to."""
        self._approvals = None
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO approvals VALUES (?, ?, ?, ?)",
                (key, marker_hash, json.dumps(snapshot, sort_keys=True), self._clock()),
            )

    def drop_approval(self, key: str) -> None:
        """Forget an approval whose marker was removed."""
        self._approvals = None
        with self.transaction() as db:
            db.execute("DELETE FROM approvals WHERE key=?", (key,))

    def takes(self) -> tuple[dict[str, int], dict[str, str]]:
        """Current takes and retry notes by artifact path."""
        rows = self._query("SELECT path, take, note FROM takes")
        return {r[0]: r[1] for r in rows}, {r[0]: r[2] for r in rows if r[2]}

    def batches(self) -> dict[str, int]:
        """Per artifact path, the first take of its latest retry when that retry made several
        (candidates): takes ``first`` to the newest are all built."""
        rows = self._query("SELECT path, first FROM takes WHERE first IS NOT NULL"
                           " AND first < take")
        return {r[0]: r[1] for r in rows}

    def consume_retry(self, marker: str, marker_hash: str, artifact: str, note: str,
                      count: int = 1) -> bool:
        """Move an artifact ``count`` takes on (candidates), once per marker (path + hash).

        Returns False when this marker was already consumed (a restart after the take was
        recorded but before the marker file was removed).
        """
        with self.transaction() as db:
            seen = db.execute(
                "SELECT 1 FROM consumed_markers WHERE path=? AND marker_hash=?",
                (marker, marker_hash),
            ).fetchone()
            if seen:
                return False
            db.execute("INSERT INTO consumed_markers VALUES (?, ?, ?)",
                       (marker, marker_hash, self._clock()))
            db.execute(
                "INSERT INTO takes (path, take, note, first) VALUES (?, ?, ?, 1)"
                " ON CONFLICT(path) DO UPDATE SET first = take + 1,"
                " take = take + excluded.take, note = excluded.note",
                (artifact, count, note),
            )
        return True

    # -- uploads -------------------------------------------------------------------------------

    def uploads(self, backend: str) -> dict[str, str]:
        """sha256 → server-side name of every file uploaded to a backend."""
        rows = self._query("SELECT sha256, name FROM uploads WHERE backend=?", (backend,))
        return {r[0]: r[1] for r in rows}

    def add_upload(self, backend: str, sha256: str, name: str) -> None:
        """Remember an upload."""
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO uploads VALUES (?, ?, ?)", (backend, sha256, name))

    def forget_uploads(self, backend: str) -> None:
        """Forget a backend's uploads (it restarted with an empty input folder)."""
        with self.transaction() as db:
            db.execute("DELETE FROM uploads WHERE backend=?", (backend,))


    # -- Comfy API v2 submissions ------------------------------------------------------------

    def submission(self, backend: str, idem_key: str) -> tuple[bool, str | None]:
        """Whether an idempotency key was ever sent by this project, and its job id if known."""
        rows = self._query("SELECT job_id FROM v2_submissions WHERE backend=? AND idem_key=?",
                           (backend, idem_key))
        return (True, rows[0][0]) if rows else (False, None)

    def intend_submission(self, backend: str, idem_key: str) -> None:
        """Record a key before it is sent, so a crash before the answer is recorded is seen."""
        with self.transaction() as db:
            db.execute("INSERT OR IGNORE INTO v2_submissions VALUES (?, ?, NULL)",
                       (backend, idem_key))

    def note_submission(self, backend: str, idem_key: str, job_id: str) -> None:
        """Record the job id a submission under this key created."""
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO v2_submissions VALUES (?, ?, ?)",
                       (backend, idem_key, job_id))


class JobStore:
    """The jobs table: one live job per artifact path at most (a unique partial index)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _rows(self, where: str, args: tuple[Any, ...] = ()) -> list[Job]:
        rows = self.store._query(
            "SELECT id, path, fingerprint, take, state, backend, prompt_id, attempts, lost, error,"
            " progress, created_at, updated_at, not_before, started_at, queue_position"
            f" FROM jobs WHERE {where} ORDER BY id",
            args,
        )
        return [Job(*r) for r in rows]

    def live(self) -> list[Job]:
        """Jobs that are ready, submitted or running."""
        return self._rows("state IN ('ready', 'submitted', 'running')")

    def latest(self) -> dict[str, Job]:
        """The newest job of each path."""
        rows = self._rows("id IN (SELECT MAX(id) FROM jobs GROUP BY path)")
        return {j.path: j for j in rows}

    def get(self, job_id: int) -> Job | None:
        """One job by id."""
        rows = self._rows("id = ?", (job_id,))
        return rows[0] if rows else None

    def create(self, path: str, fingerprint: str, take: int, recipe_json: str) -> Job:
        """Add a ready job (the caller has superseded any live one for the path)."""
        now = self.store._clock()
        with self.store.transaction() as db:
            cur = db.execute(
                "INSERT INTO jobs (path, fingerprint, take, state, created_at, updated_at, recipe)"
                " VALUES (?, ?, ?, 'ready', ?, ?, ?)",
                (path, fingerprint, take, now, now, recipe_json),
            )
            job_id = cur.lastrowid
        job = self.get(int(job_id or 0))
        assert job is not None
        return job

    def set_state(self, job_id: int, state: str, **fields: Any) -> None:
        """Move a job to a state, updating any of backend, prompt_id, attempts, lost, error,
        progress, not_before, started_at, queue_position."""
        allowed = {"backend", "prompt_id", "attempts", "lost", "error", "progress", "not_before",
                   "started_at", "queue_position"}
        assert set(fields) <= allowed, fields
        sets = ", ".join(f"{k} = ?" for k in fields)
        sql = f"UPDATE jobs SET state = ?, updated_at = ?{', ' + sets if sets else ''} WHERE id = ?"
        with self.store.transaction() as db:
            db.execute(sql, (state, self.store._clock(), *fields.values(), job_id))

    def note_prompt(self, job_id: int, prompt_id: str) -> None:
        """Record the server's id for a job (its state is left as it is)."""
        with self.store.transaction() as db:
            db.execute("UPDATE jobs SET prompt_id = ? WHERE id = ?", (prompt_id, job_id))

    def progress(self, job_id: int, value: float) -> None:
        """Record progress (a hint; not worth a fsync per tick, but cheap enough here)."""
        with self.store.transaction() as db:
            db.execute("UPDATE jobs SET progress = ? WHERE id = ?", (value, job_id))

    def queue_position(self, job_id: int, position: int | None) -> None:
        """Record where the job is in its server's queue (0: running there)."""
        with self.store.transaction() as db:
            db.execute("UPDATE jobs SET queue_position = ? WHERE id = ?", (position, job_id))

    def record_duration(self, template: str, backend: str, seconds: float) -> None:
        """Fold one finished job's duration into the mean of its template on its backend."""
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO durations (template, backend, mean_s, runs) VALUES (?, ?, ?, 1)"
                " ON CONFLICT (template, backend) DO UPDATE SET"
                " mean_s = mean_s + ? * (excluded.mean_s - mean_s), runs = runs + 1",
                (template, backend, seconds, DURATION_WEIGHT),
            )

    def durations(self) -> dict[tuple[str, str], float]:
        """(template, backend) → mean seconds a job took there, as measured."""
        rows = self.store._query("SELECT template, backend, mean_s FROM durations")
        return {(r[0], r[1]): float(r[2]) for r in rows}

    def count_submissions(self, path: str, fingerprint: str) -> int:
        """How many jobs were ever made for this exact recipe."""
        rows = self.store._query(
            "SELECT COUNT(*) FROM jobs WHERE path = ? AND fingerprint = ?", (path, fingerprint)
        )
        return int(rows[0][0])

    def prune(self, keep_per_path: int = 5) -> None:
        """Drop old finished jobs so the table stays small over weeks."""
        with self.store.transaction() as db:
            db.execute(
                "DELETE FROM jobs WHERE state NOT IN ('ready', 'submitted', 'running')"
                " AND id NOT IN"
                " (SELECT id FROM jobs j WHERE (SELECT COUNT(*) FROM jobs k WHERE k.path = j.path"
                " AND k.id >= j.id) <= ?)",
                (keep_per_path,),
            )


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _make_state_dir(state: Path) -> None:
    """Create ``.keyframed/``, or say in words why the project folder does not allow it."""
    try:
        state.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"{state}: cannot create keyframed's state folder ({exc.strerror or exc}); "
            f"keyframed writes its state and outputs inside the project, so the folder "
            f"{state.parent} must be writable (chmod u+w, or mount it read-write)") from exc


def space_error(path: Path, exc: sqlite3.OperationalError) -> SpaceError | None:
    """A :class:`SpaceError` when SQLite says the disk is full, else None."""
    if "full" not in str(exc).lower():
        return None
    return SpaceError(f"{path.parent.parent}: the disk is full ({exc}); free some space there: "
                      "keyframed goes on by itself once it can write again")


def damaged(path: Path, exc: BaseException) -> str:
    """The message for a state database whose content is damaged."""
    return (f"{path}: the state database is damaged ({exc}); stop keyframed, move the file "
            f"aside (for example `mv {path} {path}.damaged`) and start again: keyframed then "
            "rebuilds its records, and outputs it cannot vouch for are kept as your files")


def open_error(path: Path, exc: sqlite3.DatabaseError) -> StoreError:
    """A clear error for a database that does not open: read-only place, or damaged file."""
    text = str(exc).lower()
    writable = os.access(path.parent, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))
    if "readonly" in text or "read-only" in text or "unable to open" in text or not writable:
        return StoreError(
            f"{path}: cannot write the state database ({exc}); the project folder and its "
            f".keyframed/ must be writable (chmod u+w, or mount it read-write); the database "
            "itself is fine, keep it")
    if "locked" in text or "busy" in text:
        return StoreError(f"{path}: the state database is in use ({exc}); is another keyframed "
                          "running on this project?")
    return StoreError(damaged(path, exc))
