//! The local state store: SQLite at `$GATE_HOME/journal.sqlite3` (the deliveries and the
//! audit trail, one file) and the freeze file `$GATE_HOME/freeze.json`, for one machine.
//!
//! The claim is one transaction under SQLite's write lock (`BEGIN IMMEDIATE`): the freeze is
//! read, the ledger of the hour counted (`pending` and `unknown` included: they may have gone
//! out), the caller's judge asked, and the row marked `pending` only when it allows the send;
//! concurrent claims take turns, so N processes woken together cannot all pass one rate
//! limit. `sent` and its audit entry are written in one transaction too, and so are
//! `retracted` and its entry.
//!
//! The audit trail is an append-only, hash-chained `audit` table (src/audit.rs has the chain):
//! appending happens inside `BEGIN IMMEDIATE`, the last entry read and the next one inserted
//! under the write lock, so concurrent gate processes chain one after another. The table is
//! `AUTOINCREMENT`, so SQLite also remembers the highest seq ever used, which exposes a
//! removed last entry.
//!
//! Nothing is opened until a call needs it, and then once: a reader finds no journal and
//! reports nothing (it never creates one); a read-only store ([`Access::Read`], `gate check`)
//! never creates or migrates one.

use std::cell::OnceCell;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OptionalExtension as _, params};
use serde::{Deserialize, Serialize};

use super::{Access, Claim, Delivery, Ledger, LocalFreeze, Send, Sends, State, Verification};
use crate::audit::{self, Entry, Stored};
use crate::env::Env;
use crate::error::{Error, io_reason};

pub const FILE: &str = "journal.sqlite3";
/// 2: `retracted` deliveries (`gate retract`); 3: the `audit` table (src/audit.rs), which
/// every open creates if it is missing; 4: the `unknown` state (a try whose outcome is unknown);
/// 5: the `item` column (one delivery per thread item; every older row is item 0).
pub const VERSION: i64 = 5;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS deliveries (
    digest          TEXT NOT NULL,
    account         TEXT NOT NULL,
    platform        TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'unknown', 'sent', 'failed', 'retracted')),
    remote_id       TEXT,
    url             TEXT,
    error           TEXT,
    pid             INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 1,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    sent_at         TEXT,
    retracted_at    TEXT,
    item            INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (digest, account, item)
);
";

/// Version 1 → 2: `retracted` joins the states and `retracted_at` the columns. SQLite cannot
/// change a CHECK constraint in place, so the table is rebuilt (inside the migration's
/// transaction). A version-1 gate refuses the result, so it never mistakes a retracted post
/// for an unfinished one and sends it again. The table is restated here on purpose rather
/// than shared with [`SCHEMA`]: a migration is a frozen snapshot of version 2, and must not
/// change when a later version changes the table.
const TO_V2: &str = "
CREATE TABLE deliveries_v2 (
    digest          TEXT NOT NULL,
    account         TEXT NOT NULL,
    platform        TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'failed', 'retracted')),
    remote_id       TEXT,
    url             TEXT,
    error           TEXT,
    pid             INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 1,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    sent_at         TEXT,
    retracted_at    TEXT,
    PRIMARY KEY (digest, account)
);
INSERT INTO deliveries_v2 (digest, account, platform, idempotency_key, state, remote_id, url,
                           error, pid, attempts, created_at, updated_at, sent_at)
    SELECT digest, account, platform, idempotency_key, state, remote_id, url,
           error, pid, attempts, created_at, updated_at, sent_at FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_v2 RENAME TO deliveries;
UPDATE schema_version SET version = 2;
";

/// Version 3 → 4: `unknown` joins the states (the table is rebuilt for the CHECK, as in
/// [`TO_V2`]; a frozen snapshot of version 4). A version-3 gate refuses the result, so it never
/// reads an `unknown` row as something it may send again without looking.
const TO_V4: &str = "
CREATE TABLE deliveries_v4 (
    digest          TEXT NOT NULL,
    account         TEXT NOT NULL,
    platform        TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'unknown', 'sent', 'failed', 'retracted')),
    remote_id       TEXT,
    url             TEXT,
    error           TEXT,
    pid             INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 1,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    sent_at         TEXT,
    retracted_at    TEXT,
    PRIMARY KEY (digest, account)
);
INSERT INTO deliveries_v4 SELECT digest, account, platform, idempotency_key, state, remote_id,
    url, error, pid, attempts, created_at, updated_at, sent_at, retracted_at FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_v4 RENAME TO deliveries;
";

/// Version 4 → 5: `item` joins the key (a thread's items are one delivery each, SPEC §8); every
/// row already there is item 0, the first and only item of its post. Rebuilt for the primary
/// key, as in [`TO_V2`]; a frozen snapshot of version 5. A version-4 gate refuses the result,
/// so it never takes item 2 of a thread for the post itself.
const TO_V5: &str = "
CREATE TABLE deliveries_v5 (
    digest          TEXT NOT NULL,
    account         TEXT NOT NULL,
    platform        TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'unknown', 'sent', 'failed', 'retracted')),
    remote_id       TEXT,
    url             TEXT,
    error           TEXT,
    pid             INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 1,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    sent_at         TEXT,
    retracted_at    TEXT,
    item            INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (digest, account, item)
);
INSERT INTO deliveries_v5 SELECT digest, account, platform, idempotency_key, state, remote_id,
    url, error, pid, attempts, created_at, updated_at, sent_at, retracted_at, 0 FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_v5 RENAME TO deliveries;
";

/// The audit table, which every open creates if it is missing (schema version 3).
pub const AUDIT_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    time          TEXT NOT NULL,
    event         TEXT NOT NULL,
    user          TEXT NOT NULL,
    host          TEXT NOT NULL,
    account       TEXT,
    digest        TEXT,
    text          TEXT,
    verdict       TEXT,
    findings      TEXT,
    reviewers     TEXT,
    policy_sha256 TEXT,
    url           TEXT,
    prev          TEXT NOT NULL,
    hash          TEXT NOT NULL
);
";

const COLUMNS: &str = "digest, account, platform, idempotency_key, state, remote_id, url, error, pid, attempts, created_at, sent_at, retracted_at, item";
/// [`COLUMNS`] for a journal older than version 5, read without migrating (`gate check`):
/// every row is item 0.
const COLUMNS_V4: &str = "digest, account, platform, idempotency_key, state, remote_id, url, error, pid, attempts, created_at, sent_at, retracted_at, 0";

const AUDIT_COLUMNS: &str = "seq, time, event, user, host, account, digest, text, verdict, findings, reviewers, policy_sha256, url, prev, hash";

pub const FREEZE_FILE: &str = "freeze.json";

#[derive(Debug, Serialize, Deserialize)]
struct FreezeRecord {
    reason: String,
    since: DateTime<Utc>,
    by: Option<String>,
}

fn instant(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.to_utc())
}

fn delivery(r: &rusqlite::Row<'_>) -> rusqlite::Result<Delivery> {
    let state: String = r.get(4)?;
    let created: String = r.get(10)?;
    let sent: Option<String> = r.get(11)?;
    let retracted: Option<String> = r.get(12)?;
    Ok(Delivery {
        digest: r.get(0)?,
        account: r.get(1)?,
        platform: r.get(2)?,
        key: r.get(3)?,
        state: State::from_name(&state),
        remote_id: r.get(5)?,
        url: r.get(6)?,
        error: r.get(7)?,
        pid: r.get(8)?,
        attempts: r.get(9)?,
        created_at: instant(&created).unwrap_or(DateTime::UNIX_EPOCH),
        sent_at: sent.as_deref().and_then(instant),
        retracted_at: retracted.as_deref().and_then(instant),
        item: r.get(13)?,
    })
}

fn stored(r: &rusqlite::Row<'_>) -> rusqlite::Result<Stored> {
    Ok(Stored {
        seq: r.get(0)?,
        time: r.get(1)?,
        event: r.get(2)?,
        user: r.get(3)?,
        host: r.get(4)?,
        account: r.get(5)?,
        digest: r.get(6)?,
        text: r.get(7)?,
        verdict: r.get(8)?,
        findings: r.get(9)?,
        reviewers: r.get(10)?,
        policy_sha256: r.get(11)?,
        url: r.get(12)?,
        prev: r.get(13)?,
        hash: r.get(14)?,
    })
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// How long an opening waits out other gate processes holding the journal.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// SQLite's "the file is in use": worth waiting for, unlike every other error.
fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Up to `pause` more, so processes that collided do not collide again in step.
fn jitter(pause: Duration) -> Duration {
    let mut b = [0u8; 2];
    let _ = getrandom::fill(&mut b);
    pause.mul_f64(f64::from(u16::from_le_bytes(b)) / f64::from(u16::MAX))
}

fn db_error(path: &Path, e: &rusqlite::Error) -> Error {
    Error::other(format!("cannot use the journal `{}`: {e}", path.display()))
        .with_hint("check that the state folder is writable; `GATE_HOME` moves it")
}

fn audit_error(path: &Path, e: &rusqlite::Error) -> Error {
    Error::other(format!(
        "cannot write the audit trail in `{}`: {e}",
        path.display()
    ))
    .with_hint("check that the state folder is writable; `GATE_HOME` moves it")
}

/// One open connection to the journal file.
struct Db {
    conn: Connection,
    path: PathBuf,
    /// Whether the deliveries have the `item` column (version 5 on): a journal opened
    /// read-only is never migrated, so an older one is read as it is.
    items: bool,
}

impl Db {
    /// Opens the journal at `path`, creating and migrating it as needed. Many gate processes
    /// may open it at once (cron jobs, a team's terminals): SQLite can answer "busy" without
    /// waiting on its busy handler while another connection switches the file to WAL or
    /// checkpoints it on close, so the whole opening is tried again, briefly and with jitter,
    /// for up to [`BUSY_TIMEOUT`].
    fn open_at(path: &Path) -> Result<Db, Error> {
        let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
        let mut pause = Duration::from_millis(5);
        loop {
            match Db::try_open(path) {
                Ok((db, found)) => {
                    if let Some(v) = found
                        && v > VERSION
                    {
                        return Err(Error::other(format!(
                            "the journal `{}` has schema version {v}, newer than this gate understands ({VERSION})",
                            path.display()
                        ))
                        .with_hint("use the newer gate that wrote it"));
                    }
                    return Ok(db);
                }
                Err(e) if is_busy(&e) && std::time::Instant::now() < deadline => {
                    std::thread::sleep(pause + jitter(pause));
                    pause = (pause * 2).min(Duration::from_millis(100));
                }
                Err(e) => return Err(db_error(path, &e)),
            }
        }
    }

    fn try_open(path: &Path) -> rusqlite::Result<(Db, Option<i64>)> {
        // The journal and its WAL are the user's alone: created 0600 (SQLite gives the WAL and
        // shared-memory files the database's mode), and fixed when an older gate left them open.
        if !path.exists() {
            use std::os::unix::fs::OpenOptionsExt as _;
            let _ = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path);
        }
        for suffix in ["", "-wal", "-shm"] {
            let mut file = path.as_os_str().to_owned();
            file.push(suffix);
            let _ = crate::state::private_file(Path::new(&file));
        }
        let conn = Connection::open(path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            conn.pragma_update(None, "journal_mode", "WAL")?;
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        let db = Db {
            conn,
            path: path.to_path_buf(),
            items: true,
        };
        let found = db.migrate()?;
        Ok((db, found))
    }

    /// The journal opened read-only, for `gate check`: it never creates or migrates one. Its
    /// queries must work on every schema version up to this gate's.
    fn open_read_only(path: &Path) -> Result<Db, Error> {
        use rusqlite::OpenFlags;
        let err = |e: rusqlite::Error| db_error(path, &e);
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
        let items = conn.prepare("SELECT item FROM deliveries LIMIT 0").is_ok();
        Ok(Db {
            conn,
            path: path.to_path_buf(),
            items,
        })
    }

    /// Creates the tables if missing and brings an older schema up to [`VERSION`], in one
    /// transaction; the version found (`None` for a new file).
    fn migrate(&self) -> rusqlite::Result<Option<i64>> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let result = (|| {
            self.conn.execute_batch(SCHEMA)?;
            self.conn.execute_batch(AUDIT_SCHEMA)?;
            let version: Option<i64> =
                self.conn
                    .query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))?;
            match version {
                None => {
                    self.conn.execute(
                        "INSERT INTO schema_version (version) VALUES (?1)",
                        [VERSION],
                    )?;
                    Ok(None)
                }
                Some(v) if v < VERSION => {
                    if v < 2 {
                        self.conn.execute_batch(TO_V2)?;
                    }
                    if v < 4 {
                        self.conn.execute_batch(TO_V4)?;
                    }
                    if v < 5 {
                        self.conn.execute_batch(TO_V5)?;
                    }
                    self.conn
                        .execute("UPDATE schema_version SET version = ?1", [VERSION])?;
                    Ok(Some(VERSION))
                }
                Some(v) => Ok(Some(v)),
            }
        })();
        match result {
            Ok(found) => {
                self.conn.execute_batch("COMMIT")?;
                Ok(found)
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// Runs `work` inside `BEGIN IMMEDIATE` … `COMMIT`, rolled back whole on any error.
    fn atomically<T>(
        &self,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, Error> {
        let err = |e: rusqlite::Error| db_error(&self.path, &e);
        self.conn.execute_batch("BEGIN IMMEDIATE").map_err(err)?;
        match work(&self.conn) {
            Ok(value) => {
                self.conn.execute_batch("COMMIT").map_err(err)?;
                Ok(value)
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(err(e))
            }
        }
    }

    /// The delivery columns this journal has ([`COLUMNS`], or [`COLUMNS_V4`] before items).
    fn columns(&self) -> &'static str {
        if self.items { COLUMNS } else { COLUMNS_V4 }
    }

    /// The first row of `sql`, in which `{COLUMNS}` stands for [`Db::columns`].
    fn one(&self, sql: &str, args: impl rusqlite::Params) -> Result<Option<Delivery>, Error> {
        self.conn
            .query_row(&sql.replace("{COLUMNS}", self.columns()), args, delivery)
            .optional()
            .map_err(|e| db_error(&self.path, &e))
    }

    /// The rate ledger (see [`super::Store::ledger`]). There is no upper bound: a claim's `now`
    /// was read before the write lock was granted, and sends other processes committed while
    /// it waited are later than `now` but must count (the judge, reading the clock inside the
    /// lock, decides which fall in its window).
    fn ledger(&self, now: DateTime<Utc>) -> rusqlite::Result<Vec<Send>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT digest, account, coalesce(sent_at, updated_at) AS at FROM deliveries
                 WHERE ((sent_at IS NOT NULL AND sent_at > ?1)
                    OR (sent_at IS NULL AND state IN ('pending', 'unknown') AND updated_at > ?1)){}
                 ORDER BY at",
            // A thread counts once: by its first item (SPEC §8).
            if self.items { " AND item = 0" } else { "" }
        ))?;
        let rows = stmt.query_map(params![stamp(now - crate::core::limits::WINDOW)], |r| {
            let at: String = r.get(2)?;
            Ok(Send {
                digest: r.get(0)?,
                account: r.get(1)?,
                at: instant(&at).unwrap_or(DateTime::UNIX_EPOCH),
            })
        })?;
        rows.collect()
    }

    fn entries(&self) -> Result<Vec<Stored>, Error> {
        let err = |e: rusqlite::Error| audit_error(&self.path, &e);
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {AUDIT_COLUMNS} FROM audit ORDER BY seq"))
            .map_err(err)?;
        let rows = stmt.query_map([], stored).map_err(err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(err)
    }
}

/// Inserts an audit entry chained to the last one, inside the caller's write transaction (so a
/// delivery's `sent` and its `post` entry commit together).
fn insert_audit(
    conn: &Connection,
    env: &Env,
    entry: &Entry,
    now: DateTime<Utc>,
) -> rusqlite::Result<Stored> {
    let last: Option<(i64, String)> = conn
        .query_row(
            "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let high = highest_seq(conn)?.unwrap_or(0);
    let (last_seq, prev) = last.unwrap_or((0, audit::GENESIS.to_owned()));
    let stored = audit::chained(env, entry, last_seq.max(high) + 1, prev, now);
    conn.execute(
        &format!(
            "INSERT INTO audit ({AUDIT_COLUMNS})
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
        ),
        params![
            stored.seq,
            stored.time,
            stored.event,
            stored.user,
            stored.host,
            stored.account,
            stored.digest,
            stored.text,
            stored.verdict,
            stored.findings,
            stored.reviewers,
            stored.policy_sha256,
            stored.url,
            stored.prev,
            stored.hash
        ],
    )?;
    Ok(stored)
}

/// The highest seq SQLite ever handed out for `audit` (kept in `sqlite_sequence`).
fn highest_seq(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    conn.query_row(
        "SELECT seq FROM sqlite_sequence WHERE name = 'audit'",
        [],
        |r| r.get(0),
    )
    .optional()
}

/// The SQLite store of one state folder.
pub struct Sqlite {
    env: Env,
    access: Access,
    /// The journal's path when it was given ([`Sqlite::open_at`]) rather than found from the
    /// environment.
    at: Option<PathBuf>,
    db: OnceCell<Db>,
}

impl Sqlite {
    /// The store of the state folder `env` names; nothing is touched yet.
    pub fn open(env: &Env, access: Access) -> Sqlite {
        Sqlite {
            env: env.clone(),
            access,
            at: None,
            db: OnceCell::new(),
        }
    }

    /// The store whose journal is the file at `path` (its freeze beside it), opened now,
    /// created and migrated as needed.
    pub fn open_at(path: &Path) -> Result<Sqlite, Error> {
        let store = Sqlite {
            env: Env::from_process(),
            access: Access::Write,
            at: Some(path.to_path_buf()),
            db: OnceCell::new(),
        };
        let db = Db::open_at(path)?;
        let _ = store.db.set(db);
        Ok(store)
    }

    /// The state folder, checked ([`crate::state::dir`]: it must be findable and local).
    fn dir(&self) -> Result<PathBuf, Error> {
        match &self.at {
            Some(path) => Ok(path
                .parent()
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf)),
            None => crate::state::dir(&self.env),
        }
    }

    /// The state folder as named, unchecked: where a freeze is looked for.
    fn named_dir(&self) -> Option<PathBuf> {
        match &self.at {
            Some(_) => self.dir().ok(),
            None => self.env.state_dir(),
        }
    }

    /// The journal's path.
    pub fn path(&self) -> Result<PathBuf, Error> {
        match &self.at {
            Some(path) => Ok(path.clone()),
            None => Ok(self.dir()?.join(FILE)),
        }
    }

    /// The journal when it exists (never created here), opened once.
    fn reader(&self) -> Result<Option<&Db>, Error> {
        if let Some(db) = self.db.get() {
            return Ok(Some(db));
        }
        let dir = self.dir()?;
        let path = dir.join(FILE);
        if !path.exists() {
            return Ok(None);
        }
        let db = match self.access {
            Access::Read => Db::open_read_only(&path)?,
            Access::Write => {
                crate::state::create_dir(&dir)?;
                Db::open_at(&path)?
            }
        };
        Ok(Some(self.db.get_or_init(|| db)))
    }

    /// The journal, created and migrated if needed, opened once.
    fn writer(&self) -> Result<&Db, Error> {
        if self.access == Access::Read {
            return Err(Error::other(
                "internal error: a read-only state store was asked to write",
            ));
        }
        if let Some(db) = self.db.get() {
            return Ok(db);
        }
        let dir = self.dir()?;
        crate::state::create_dir(&dir)?;
        let db = Db::open_at(&dir.join(FILE))?;
        Ok(self.db.get_or_init(|| db))
    }

    /// Moves the audit trail's anchor (in the keychain) to an entry just committed.
    fn anchor(&self, db: &Db, entry: &Stored) {
        crate::anchor::advance_to(&self.env, &crate::anchor::journal_item(&db.path), entry);
    }

    /// Every delivery that went out after `since` (`sent` or since `retracted`), oldest first:
    /// what was posted, for inspection. Rate limits count with [`super::Store::ledger`].
    pub fn sends_since(&self, since: DateTime<Utc>) -> Result<Vec<Send>, Error> {
        let Some(db) = self.reader()? else {
            return Ok(Vec::new());
        };
        let err = |e: rusqlite::Error| db_error(&db.path, &e);
        let mut stmt = db
            .conn
            .prepare(
                "SELECT digest, account, sent_at FROM deliveries
                 WHERE sent_at IS NOT NULL AND sent_at > ?1 ORDER BY sent_at",
            )
            .map_err(err)?;
        let rows = stmt
            .query_map([stamp(since)], |r| {
                let at: String = r.get(2)?;
                Ok(Send {
                    digest: r.get(0)?,
                    account: r.get(1)?,
                    at: instant(&at).unwrap_or(DateTime::UNIX_EPOCH),
                })
            })
            .map_err(err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(err)
    }

    /// The journal's schema version; `None` when there is no journal yet.
    pub fn schema_version(&self) -> Result<Option<i64>, Error> {
        let Some(db) = self.reader()? else {
            return Ok(None);
        };
        db.conn
            .query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))
            .map_err(|e| db_error(&db.path, &e))
    }

    /// Creates (or migrates) the journal now.
    pub fn create(&self) -> Result<(), Error> {
        self.writer().map(|_| ())
    }

    /// Every delivery, for `gate state import`.
    pub fn deliveries(&self) -> Result<Vec<(Delivery, String)>, Error> {
        let Some(db) = self.reader()? else {
            return Ok(Vec::new());
        };
        let err = |e: rusqlite::Error| db_error(&db.path, &e);
        let mut stmt = db
            .conn
            .prepare(&format!(
                "SELECT {}, updated_at FROM deliveries ORDER BY created_at, digest, account, {}",
                db.columns(),
                if db.items { "item" } else { "0" }
            ))
            .map_err(err)?;
        let rows = stmt
            .query_map([], |r| Ok((delivery(r)?, r.get::<_, String>(14)?)))
            .map_err(err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(err)
    }

    /// The connection, for the unit tests that damage the file on purpose.
    #[cfg(test)]
    fn conn(&self) -> &Connection {
        &self.db.get().expect("opened").conn
    }

    /// Records (committed, before any network call) that this process is about to send
    /// `digest` to `account` with `key`, without judging: a claim whose judge always allows.
    /// Only the tests claim without judging; `gate post` always judges.
    #[cfg(test)]
    pub fn begin(
        &self,
        digest: &str,
        account: &str,
        platform: &str,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let claim = Claim {
            digest,
            account,
            item: 0,
            platform,
            key,
            now,
        };
        super::Store::claim(self, &claim, &mut |_| true).map(|_| ())
    }
}

impl super::Store for Sqlite {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn lock_delivery(
        &self,
        digest: &str,
        account: &str,
        item: u32,
        wait: Duration,
    ) -> Result<Box<dyn super::Held + '_>, Error> {
        super::local_held(&self.env, digest, account, item, wait)
    }

    fn location(&self) -> String {
        match (&self.at, self.env.state_dir()) {
            (Some(path), _) => path.display().to_string(),
            (None, Some(dir)) => dir.join(FILE).display().to_string(),
            (None, None) => "the state folder".to_owned(),
        }
    }

    fn get(&self, digest: &str, account: &str, item: u32) -> Result<Option<Delivery>, Error> {
        let Some(db) = self.reader()? else {
            return Ok(None);
        };
        if !db.items {
            if item > 0 {
                return Ok(None);
            }
            return db.one(
                "SELECT {COLUMNS} FROM deliveries WHERE digest = ?1 AND account = ?2",
                params![digest, account],
            );
        }
        db.one(
            "SELECT {COLUMNS} FROM deliveries WHERE digest = ?1 AND account = ?2 AND item = ?3",
            params![digest, account, item],
        )
    }

    fn thread(&self, digest: &str, account: &str) -> Result<Vec<Delivery>, Error> {
        let Some(db) = self.reader()? else {
            return Ok(Vec::new());
        };
        let err = |e: rusqlite::Error| db_error(&db.path, &e);
        let order = if db.items { "item" } else { "0" };
        let mut stmt = db
            .conn
            .prepare(&format!(
                "SELECT {} FROM deliveries WHERE digest = ?1 AND account = ?2 ORDER BY {order}",
                db.columns()
            ))
            .map_err(err)?;
        let rows = stmt
            .query_map(params![digest, account], delivery)
            .map_err(err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(err)
    }

    fn claim(
        &self,
        claim: &Claim<'_>,
        judge: &mut dyn FnMut(Ledger) -> bool,
    ) -> Result<bool, Error> {
        let db = self.writer()?;
        let err = |e: rusqlite::Error| db_error(&db.path, &e);
        db.conn.execute_batch("BEGIN IMMEDIATE").map_err(err)?;
        let result = (|| {
            let freeze = self.freeze()?;
            let sends = db.ledger(claim.now).map_err(err)?;
            if !judge(Ledger {
                freeze,
                sends: Sends(sends),
            }) {
                return Ok(false);
            }
            db.conn
                .execute(
                    "INSERT INTO deliveries (digest, account, platform, idempotency_key, state, pid, attempts, created_at, updated_at, item)
                     VALUES (?1, ?2, ?3, ?4, 'pending', ?5, 1, ?6, ?6, ?7)
                     ON CONFLICT (digest, account, item) DO UPDATE SET
                       state = CASE WHEN state = 'unknown' THEN 'unknown' ELSE 'pending' END,
                       error = CASE WHEN state = 'unknown' THEN error ELSE NULL END,
                       pid = excluded.pid, attempts = attempts + 1, updated_at = excluded.updated_at",
                    params![
                        claim.digest,
                        claim.account,
                        claim.platform,
                        claim.key,
                        std::process::id(),
                        stamp(claim.now),
                        claim.item
                    ],
                )
                .map_err(err)?;
            Ok(true)
        })();
        match result {
            Ok(true) => {
                db.conn.execute_batch("COMMIT").map_err(err)?;
                Ok(true)
            }
            other => {
                let _ = db.conn.execute_batch("ROLLBACK");
                other
            }
        }
    }

    fn mark_sent(
        &self,
        digest: &str,
        account: &str,
        item: u32,
        published: (&str, &str),
        entry: &Entry,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let (id, url) = published;
        let db = self.writer()?;
        let stored = db.atomically(|conn| {
            conn.execute(
                "UPDATE deliveries SET state = 'sent', remote_id = ?3, url = ?4, error = NULL, sent_at = ?5, updated_at = ?5
                 WHERE digest = ?1 AND account = ?2 AND item = ?6",
                params![digest, account, id, url, stamp(now), item],
            )?;
            insert_audit(conn, &self.env, entry, now)
        })?;
        self.anchor(db, &stored);
        Ok(())
    }

    fn mark(
        &self,
        digest: &str,
        account: &str,
        item: u32,
        state: State,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let db = self.writer()?;
        db.conn
            .execute(
                "UPDATE deliveries SET state = CASE WHEN state = 'unknown' THEN 'unknown' ELSE ?3 END,
                   error = ?4, updated_at = ?5
                 WHERE digest = ?1 AND account = ?2 AND item = ?6 AND state NOT IN ('sent', 'retracted')",
                params![digest, account, state.name(), crate::redact::scrub(error), stamp(now), item],
            )
            .map(|_| ())
            .map_err(|e| db_error(&db.path, &e))
    }

    fn mark_retracted(
        &self,
        digest: &str,
        account: &str,
        item: u32,
        entry: &Entry,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let db = self.writer()?;
        let stored = db.atomically(|conn| {
            conn.execute(
                "UPDATE deliveries SET state = 'retracted', retracted_at = ?3, updated_at = ?3
                 WHERE digest = ?1 AND account = ?2 AND item = ?4 AND state = 'sent'",
                params![digest, account, stamp(now), item],
            )?;
            insert_audit(conn, &self.env, entry, now)
        })?;
        self.anchor(db, &stored);
        Ok(())
    }

    fn find_sent(&self, account: &str, id_or_url: &str) -> Result<Option<Delivery>, Error> {
        let Some(db) = self.reader()? else {
            return Ok(None);
        };
        db.one(
            "SELECT {COLUMNS} FROM deliveries
             WHERE account = ?1 AND sent_at IS NOT NULL AND (remote_id = ?2 OR url = ?2)
             ORDER BY sent_at DESC LIMIT 1",
            params![account, id_or_url],
        )
    }

    fn last_sent(&self, account: &str) -> Result<Option<Delivery>, Error> {
        let Some(db) = self.reader()? else {
            return Ok(None);
        };
        db.one(
            "SELECT {COLUMNS} FROM deliveries
             WHERE account = ?1 AND sent_at IS NOT NULL ORDER BY sent_at DESC LIMIT 1",
            params![account],
        )
    }

    fn ledger(&self, now: DateTime<Utc>) -> Result<Sends, Error> {
        let Some(db) = self.reader()? else {
            return Ok(Sends::default());
        };
        db.ledger(now)
            .map(Sends)
            .map_err(|e| db_error(&db.path, &e))
    }

    /// The freeze file. A freeze file gate cannot read counts as a freeze: when in doubt, do
    /// not post.
    fn freeze(&self) -> Result<Option<LocalFreeze>, Error> {
        let Some(dir) = self.named_dir() else {
            return Ok(None);
        };
        let path = dir.join(FREEZE_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Ok(Some(LocalFreeze {
                    reason: format!(
                        "the freeze file `{}` cannot be read ({})",
                        path.display(),
                        io_reason(&e)
                    ),
                    since: None,
                    by: None,
                }));
            }
        };
        Ok(Some(match serde_json::from_str::<FreezeRecord>(&text) {
            Ok(record) => LocalFreeze {
                reason: record.reason,
                since: Some(record.since),
                by: record.by,
            },
            Err(_) => LocalFreeze {
                reason: format!("the freeze file `{}` is damaged", path.display()),
                since: None,
                by: None,
            },
        }))
    }

    /// Writes the freeze file atomically (a temporary file renamed into place).
    fn set_freeze(&self, freeze: &LocalFreeze) -> Result<(), Error> {
        let dir = self.dir()?;
        crate::state::create_dir(&dir)?;
        let record = FreezeRecord {
            reason: freeze.reason.clone(),
            since: freeze.since.unwrap_or_else(Utc::now),
            by: freeze.by.clone(),
        };
        let mut bytes = serde_json::to_vec_pretty(&record)
            .map_err(|e| Error::other(format!("cannot encode the freeze: {e}")))?;
        bytes.push(b'\n');
        crate::state::write_atomic(&dir.join(FREEZE_FILE), &bytes)
    }

    fn clear_freeze(&self) -> Result<bool, Error> {
        let path = self.dir()?.join(FREEZE_FILE);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::other(format!(
                "cannot remove `{}`: {}",
                path.display(),
                io_reason(&e)
            ))),
        }
    }

    /// Appends under `BEGIN IMMEDIATE`, chained to the last entry (creating the journal if
    /// needed).
    fn append(&self, entry: &Entry, now: DateTime<Utc>) -> Result<Stored, Error> {
        let db = self.writer()?;
        let err = |e: rusqlite::Error| audit_error(&db.path, &e);
        db.conn.execute_batch("BEGIN IMMEDIATE").map_err(err)?;
        match insert_audit(&db.conn, &self.env, entry, now) {
            Ok(stored) => {
                db.conn.execute_batch("COMMIT").map_err(err)?;
                self.anchor(db, &stored);
                Ok(stored)
            }
            Err(e) => {
                let _ = db.conn.execute_batch("ROLLBACK");
                Err(err(e))
            }
        }
    }

    fn entries(&self) -> Result<Vec<Stored>, Error> {
        match self.reader()? {
            Some(db) => db.entries(),
            None => Ok(Vec::new()),
        }
    }

    fn sent_text(&self, digest: &str, account: &str, url: &str) -> Option<String> {
        let db = self.reader().ok()??;
        db.conn
            .query_row(
                "SELECT text FROM audit WHERE event = 'post' AND digest = ?1 AND account = ?2
                   AND url = ?3
                 ORDER BY seq DESC LIMIT 1",
                params![digest, account, url],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()
            .ok()
            .flatten()
            .flatten()
    }

    /// The chain, its highest handed-out seq, and the anchor; a journal emptied to 0 bytes or
    /// deleted after entries were anchored is named as such.
    fn verify(&self) -> Result<Verification, Error> {
        let dir = self.dir()?;
        let path = dir.join(FILE);
        if dir.exists() && !dir.is_dir() {
            return Err(Error::other(format!(
                "the state folder `{}` is not a folder",
                dir.display()
            ))
            .with_hint(
                "`GATE_HOME` must name gate's state folder; the audit trail cannot be checked",
            ));
        }
        // Read before the journal is opened (opening creates what is missing).
        let anchor = crate::anchor::read(&self.env, &crate::anchor::journal_item(&path));
        let emptied = std::fs::metadata(&path).is_ok_and(|m| m.len() == 0);
        let db = if emptied { None } else { self.reader()? };
        let entries = match db {
            Some(db) => db.entries()?,
            None => Vec::new(),
        };
        let mut verdict = match db {
            Some(db) => {
                let high = highest_seq(&db.conn)
                    .map_err(|e| audit_error(&db.path, &e))?
                    .unwrap_or(0);
                audit::check_chain(&entries, high)
            }
            None => audit::Verdict::Intact {
                entries: 0,
                last: audit::GENESIS.to_owned(),
            },
        };
        if emptied {
            verdict = audit::Verdict::Broken {
                seq: 1,
                problem: format!(
                    "the journal `{}` is empty (0 bytes): it was emptied outside gate",
                    path.display()
                ),
            };
        }
        let (head, unanchored) = match anchor {
            crate::anchor::Found::Head(head) => (Some(head), None),
            crate::anchor::Found::None => (None, None),
            crate::anchor::Found::Unreachable(why) => (None, Some(why)),
        };
        let gone = db
            .is_none()
            .then(|| format!("the journal `{}` is gone", path.display()));
        let (verdict, anchored) = super::against_anchor(verdict, head.as_ref(), &entries, gone);
        Ok(Verification {
            verdict,
            anchored,
            unanchored,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn open(env: &Env) -> Sqlite {
        Sqlite::open(env, Access::Write)
    }

    #[test]
    fn a_row_goes_pending_then_sent_and_keeps_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let j = open(&Env::for_tests(dir.path()));
        let now = Utc::now();
        assert_eq!(j.get("d", "brand", 0).unwrap(), None);
        j.begin("d", "brand", "mastodon", "k1", now).unwrap();
        let row = j.get("d", "brand", 0).unwrap().unwrap();
        assert_eq!(
            (row.state, row.key.as_str(), row.attempts, row.pid),
            (State::Pending, "k1", 1, std::process::id())
        );
        j.mark("d", "brand", 0, State::Failed, "refused", now)
            .unwrap();
        assert_eq!(
            j.get("d", "brand", 0).unwrap().unwrap().error.as_deref(),
            Some("refused")
        );
        // A second attempt keeps the first key.
        j.begin("d", "brand", "mastodon", "k2", now).unwrap();
        let row = j.get("d", "brand", 0).unwrap().unwrap();
        assert_eq!(
            (row.state, row.key.as_str(), row.attempts, row.error),
            (State::Pending, "k1", 2, None)
        );
        let entry = crate::audit::Entry::new(crate::audit::Event::Post);
        j.mark_sent(
            "d",
            "brand",
            0,
            ("109", "https://m.example/@brand/109"),
            &entry,
            now,
        )
        .unwrap();
        let row = j.get("d", "brand", 0).unwrap().unwrap();
        assert_eq!(
            (row.state, row.remote_id.as_deref(), row.url.as_deref()),
            (
                State::Sent,
                Some("109"),
                Some("https://m.example/@brand/109")
            )
        );
        // Reopening sees the same row, in WAL mode, at the current schema version.
        drop(j);
        let j = open(&Env::for_tests(dir.path()));
        assert_eq!(j.get("d", "brand", 0).unwrap().unwrap().state, State::Sent);
        let mode: String = j
            .conn()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let v: i64 = j
            .conn()
            .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, VERSION);
    }

    #[test]
    fn a_newer_journal_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        drop(Sqlite::open_at(&path).unwrap());
        Connection::open(&path)
            .unwrap()
            .execute("UPDATE schema_version SET version = 99", [])
            .unwrap();
        let err = Sqlite::open_at(&path).err().unwrap();
        assert!(err.to_string().contains("schema version 99"), "{err}");
    }

    #[test]
    fn a_version_1_journal_is_migrated_and_keeps_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE schema_version (version INTEGER NOT NULL);
             INSERT INTO schema_version VALUES (1);
             CREATE TABLE deliveries (
                digest TEXT NOT NULL, account TEXT NOT NULL, platform TEXT NOT NULL,
                idempotency_key TEXT NOT NULL,
                state TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'failed')),
                remote_id TEXT, url TEXT, error TEXT, pid INTEGER NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 1, created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL, sent_at TEXT, PRIMARY KEY (digest, account));
             INSERT INTO deliveries VALUES ('d', 'brand', 'x', 'k', 'sent', '5', 'https://x/5',
                NULL, 1, 1, '2026-11-23T10:00:00.000Z', '2026-11-23T10:00:01.000Z',
                '2026-11-23T10:00:01.000Z');",
        )
        .unwrap();
        drop(conn);
        let j = Sqlite::open_at(&path).unwrap();
        let row = j.find_sent("brand", "https://x/5").unwrap().unwrap();
        assert_eq!(
            (
                row.state,
                row.key.as_str(),
                row.sent_at.map(|t| t.to_rfc3339())
            ),
            (
                State::Sent,
                "k",
                Some("2026-11-23T10:00:01+00:00".to_owned())
            )
        );
        let entry = crate::audit::Entry::new(crate::audit::Event::Retract);
        j.mark_retracted("d", "brand", 0, &entry, Utc::now())
            .unwrap();
        let row = j.get("d", "brand", 0).unwrap().unwrap();
        assert_eq!(row.state, State::Retracted);
        assert!(row.retracted_at.is_some());
        let v: i64 = j
            .conn()
            .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, VERSION);
    }

    #[test]
    fn a_version_1_journal_gains_the_audit_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        conn.execute("INSERT INTO schema_version (version) VALUES (1)", [])
            .unwrap();
        drop(conn);
        let j = Sqlite::open_at(&path).unwrap();
        let v: i64 = j
            .conn()
            .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, VERSION);
        let n: i64 = j
            .conn()
            .query_row("SELECT count(*) FROM audit", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
    }

    #[test]
    fn sends_count_retracted_posts_and_lookups_find_by_id_url_or_last() {
        let dir = tempfile::tempdir().unwrap();
        let env = Env::for_tests(dir.path());
        let reader = Sqlite::open(&env, Access::Read);
        assert_eq!(reader.get("a", "brand", 0).unwrap(), None);
        assert!(reader.ledger(Utc::now()).unwrap().0.is_empty());
        assert!(
            !dir.path().join(FILE).exists(),
            "a reader must not create the journal"
        );
        let j = open(&env);
        let t0 = "2026-11-23T10:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let minutes = |m| t0 + chrono::Duration::minutes(m);
        for (d, account, m) in [("a", "brand", 0), ("b", "brand", 20), ("c", "other", 30)] {
            j.begin(d, account, "x", d, minutes(m)).unwrap();
            let entry = crate::audit::Entry::new(crate::audit::Event::Post);
            j.mark_sent(
                d,
                account,
                0,
                (&format!("id-{d}"), &format!("https://x/{d}")),
                &entry,
                minutes(m),
            )
            .unwrap();
        }
        j.begin("p", "brand", "x", "p", minutes(40)).unwrap(); // pending: never went out
        let entry = crate::audit::Entry::new(crate::audit::Event::Retract);
        j.mark_retracted("b", "brand", 0, &entry, minutes(50))
            .unwrap();
        let r = Sqlite::open(&env, Access::Read);
        let sends = r.sends_since(minutes(-1)).unwrap();
        assert_eq!(
            sends
                .iter()
                .map(|s| (s.digest.as_str(), s.account.as_str(), s.at))
                .collect::<Vec<_>>(),
            vec![
                ("a", "brand", minutes(0)),
                ("b", "brand", minutes(20)),
                ("c", "other", minutes(30))
            ]
        );
        assert_eq!(
            r.sends_since(minutes(0)).unwrap().len(),
            2,
            "strictly after `since`"
        );
        assert_eq!(r.last_sent("brand").unwrap().unwrap().digest, "b");
        assert_eq!(r.find_sent("brand", "id-a").unwrap().unwrap().digest, "a");
        assert_eq!(
            r.find_sent("brand", "https://x/a").unwrap().unwrap().digest,
            "a"
        );
        assert_eq!(
            r.find_sent("brand", "id-c").unwrap(),
            None,
            "another account's post"
        );
        assert_eq!(r.find_sent("brand", "p").unwrap(), None);
    }

    #[test]
    fn an_unknown_delivery_never_becomes_failed_and_stays_unknown_when_claimed_again() {
        let dir = tempfile::tempdir().unwrap();
        let j = open(&Env::for_tests(dir.path()));
        let now = Utc::now();
        j.begin("d", "brand", "mastodon", "k", now).unwrap();
        j.mark(
            "d",
            "brand",
            0,
            State::Unknown,
            "502 after the request left",
            now,
        )
        .unwrap();
        // A later try is refused (a 429, a refused connection): the first may still have gone out.
        j.begin("d", "brand", "mastodon", "k", now).unwrap();
        let row = j.get("d", "brand", 0).unwrap().unwrap();
        assert_eq!(
            (row.state, row.error.as_deref()),
            (State::Unknown, Some("502 after the request left"))
        );
        j.mark("d", "brand", 0, State::Failed, "429", now).unwrap();
        assert_eq!(
            j.get("d", "brand", 0).unwrap().unwrap().state,
            State::Unknown
        );
        // A row that was only ever refused is `failed`, and a sent one is never touched.
        j.begin("e", "brand", "mastodon", "k", now).unwrap();
        j.mark("e", "brand", 0, State::Failed, "422", now).unwrap();
        assert_eq!(
            j.get("e", "brand", 0).unwrap().unwrap().state,
            State::Failed
        );
        let entry = crate::audit::Entry::new(crate::audit::Event::Post);
        j.mark_sent("d", "brand", 0, ("1", "https://m/1"), &entry, now)
            .unwrap();
        j.mark("d", "brand", 0, State::Failed, "late", now).unwrap();
        assert_eq!(j.get("d", "brand", 0).unwrap().unwrap().state, State::Sent);
    }

    #[test]
    fn a_claim_counts_pending_and_unknown_sends_and_a_refusal_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let env = Env::for_tests(dir.path());
        let store = open(&env);
        let j = &store;
        let t0 = "2026-11-23T10:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let minutes = |m| t0 + chrono::Duration::minutes(m);
        let claim = Claim {
            digest: "new",
            account: "brand",
            item: 0,
            platform: "x",
            key: "k",
            now: minutes(10),
        };
        let entry = crate::audit::Entry::new(crate::audit::Event::Post);
        j.begin("sent", "brand", "x", "k", minutes(0)).unwrap();
        j.mark_sent("sent", "brand", 0, ("1", "u1"), &entry, minutes(1))
            .unwrap();
        j.begin("pending", "brand", "x", "k", minutes(2)).unwrap();
        j.begin("unknown", "brand", "x", "k", minutes(3)).unwrap();
        j.mark("unknown", "brand", 0, State::Unknown, "timeout", minutes(3))
            .unwrap();
        j.begin("failed", "brand", "x", "k", minutes(4)).unwrap();
        j.mark("failed", "brand", 0, State::Failed, "422", minutes(4))
            .unwrap();
        j.begin("old", "brand", "x", "k", minutes(-120)).unwrap();
        let mut seen = Vec::new();
        let refused = (j as &dyn Store)
            .judged_claim(&claim, |ledger| {
                seen = ledger.sends.0.iter().map(|s| s.digest.clone()).collect();
                Err("held")
            })
            .unwrap();
        assert_eq!(refused, Err("held"));
        assert_eq!(seen, ["sent", "pending", "unknown"]);
        assert_eq!(
            j.get("new", "brand", 0).unwrap(),
            None,
            "a refused claim writes nothing"
        );
        assert_eq!(
            (j as &dyn Store)
                .judged_claim(&claim, |_| Ok::<(), ()>(()))
                .unwrap(),
            Ok(())
        );
        assert_eq!(
            j.get("new", "brand", 0).unwrap().unwrap().state,
            State::Pending
        );
    }

    #[test]
    fn sent_and_its_audit_entry_commit_together() {
        let dir = tempfile::tempdir().unwrap();
        let env = Env::for_tests(dir.path());
        let j = open(&env);
        let now = Utc::now();
        j.begin("d", "brand", "x", "k", now).unwrap();
        // An audit trail that cannot take the entry: the journal must not say `sent` either.
        j.conn()
            .execute_batch(
                "CREATE TRIGGER no_audit BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'full'); END;",
            )
            .unwrap();
        let entry = crate::audit::Entry::new(crate::audit::Event::Post);
        assert!(
            j.mark_sent("d", "brand", 0, ("1", "u"), &entry, now)
                .is_err()
        );
        assert_eq!(
            j.get("d", "brand", 0).unwrap().unwrap().state,
            State::Pending
        );
        j.conn().execute_batch("DROP TRIGGER no_audit").unwrap();
        j.mark_sent("d", "brand", 0, ("1", "u"), &entry, now)
            .unwrap();
        assert_eq!(j.get("d", "brand", 0).unwrap().unwrap().state, State::Sent);
        assert_eq!(j.entries().unwrap().len(), 1);
    }

    #[test]
    fn a_version_3_journal_gains_the_unknown_state_and_keeps_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(&SCHEMA.replace("'pending', 'unknown', ", "'pending', "))
            .unwrap();
        conn.execute_batch(AUDIT_SCHEMA).unwrap();
        conn.execute_batch(
            "INSERT INTO schema_version (version) VALUES (3);
             INSERT INTO deliveries (digest, account, platform, idempotency_key, state, pid, attempts, created_at, updated_at)
             VALUES ('d', 'brand', 'x', 'k', 'pending', 1, 1, '2026-11-23T10:00:00.000Z', '2026-11-23T10:00:00.000Z');",
        )
        .unwrap();
        drop(conn);
        let j = Sqlite::open_at(&path).unwrap();
        j.mark("d", "brand", 0, State::Unknown, "timeout", Utc::now())
            .unwrap();
        assert_eq!(
            j.get("d", "brand", 0).unwrap().unwrap().state,
            State::Unknown
        );
    }

    /// A version-4 journal (one row per post and account) as a version-4 gate left it.
    fn version_4_journal(path: &Path) {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch(
            &TO_V4
                .split("INSERT INTO")
                .next()
                .unwrap()
                .replace("deliveries_v4", "deliveries"),
        )
        .unwrap();
        conn.execute_batch(AUDIT_SCHEMA).unwrap();
        conn.execute_batch(
            "CREATE TABLE schema_version (version INTEGER NOT NULL);
             INSERT INTO schema_version (version) VALUES (4);
             INSERT INTO deliveries (digest, account, platform, idempotency_key, state, remote_id, url, pid, attempts, created_at, updated_at, sent_at)
             VALUES ('d', 'brand', 'x', 'k', 'sent', '1', 'https://x.com/i/status/1', 1, 1, '2026-11-23T10:00:00.000Z', '2026-11-23T10:00:00.000Z', '2026-11-23T10:00:00.000Z');",
        )
        .unwrap();
    }

    #[test]
    fn a_version_4_journal_is_read_as_it_is_then_its_rows_become_item_0() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        version_4_journal(&path);
        let sent_at = "2026-11-23T10:00:00Z".parse::<DateTime<Utc>>().unwrap();
        // `gate check` reads an old journal without migrating it.
        let env = Env::for_tests(dir.path());
        let reader = Sqlite::open(&env, Access::Read);
        let ledger = reader
            .ledger(sent_at - chrono::Duration::minutes(1))
            .unwrap();
        assert_eq!(ledger.0.len(), 1);
        let row = reader.get("d", "brand", 0).unwrap().unwrap();
        assert_eq!((row.item, row.state), (0, State::Sent));
        assert_eq!(reader.get("d", "brand", 1).unwrap(), None);
        drop(reader);
        let version = |p: &Path| -> i64 {
            Connection::open(p)
                .unwrap()
                .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(version(&path), 4, "a reader never migrates");
        // A writer migrates: the old row is item 0 of its post, and a thread's later items
        // are deliveries of their own beside it.
        let j = Sqlite::open_at(&path).unwrap();
        assert_eq!(version(&path), VERSION);
        let row = j.get("d", "brand", 0).unwrap().unwrap();
        assert_eq!(
            (row.item, row.state, row.url.as_deref()),
            (0, State::Sent, Some("https://x.com/i/status/1"))
        );
        let now = Utc::now();
        let claim = |item| Claim {
            digest: "t",
            account: "brand",
            item,
            platform: "x",
            key: "k",
            now,
        };
        let entry = crate::audit::Entry::new(crate::audit::Event::Post);
        for item in 0..3 {
            assert!(j.claim(&claim(item), &mut |_| true).unwrap());
            j.mark_sent(
                "t",
                "brand",
                item,
                (&format!("{item}"), &format!("u{item}")),
                &entry,
                now,
            )
            .unwrap();
        }
        let thread = j.thread("t", "brand").unwrap();
        assert_eq!(
            thread
                .iter()
                .map(|d| (d.item, d.remote_id.as_deref()))
                .collect::<Vec<_>>(),
            [(0, Some("0")), (1, Some("1")), (2, Some("2"))]
        );
        // A thread counts once in the rate ledger: by its first item.
        let ledger = j.ledger(now - chrono::Duration::minutes(1)).unwrap();
        let counted: Vec<&str> = ledger
            .0
            .iter()
            .map(|s| s.digest.as_str())
            .filter(|d| *d == "t")
            .collect();
        assert_eq!(counted, ["t"]);
        // Marking one item leaves the others alone.
        j.mark_retracted("t", "brand", 2, &entry, now).unwrap();
        let states: Vec<State> = j
            .thread("t", "brand")
            .unwrap()
            .iter()
            .map(|d| d.state)
            .collect();
        assert_eq!(states, [State::Sent, State::Sent, State::Retracted]);
    }

    fn freeze(j: &Sqlite, reason: &str) -> Stored {
        let mut e = Entry::new(crate::audit::Event::Freeze);
        e.text = Some(reason.to_owned());
        j.append(&e, Utc::now()).unwrap()
    }

    #[test]
    fn entries_chain_and_verify() {
        let dir = tempfile::tempdir().unwrap();
        let j = open(&Env::for_tests(dir.path()));
        assert_eq!(
            j.verify().unwrap().verdict,
            crate::audit::Verdict::Intact {
                entries: 0,
                last: crate::audit::GENESIS.to_owned()
            }
        );
        let a = freeze(&j, "one");
        let b = freeze(&j, "two");
        assert_eq!((a.seq, b.seq), (1, 2));
        assert_eq!(a.prev, crate::audit::GENESIS);
        assert_eq!(b.prev, a.hash);
        assert_eq!(
            j.verify().unwrap().verdict,
            crate::audit::Verdict::Intact {
                entries: 2,
                last: b.hash
            }
        );
    }

    #[test]
    fn a_removed_last_entry_is_named_and_the_next_append_leaves_the_gap() {
        let dir = tempfile::tempdir().unwrap();
        let j = open(&Env::for_tests(dir.path()));
        for r in ["a", "b", "c"] {
            freeze(&j, r);
        }
        j.conn()
            .execute("DELETE FROM audit WHERE seq = 3", [])
            .unwrap();
        let broken = crate::audit::Verdict::Broken {
            seq: 3,
            problem: "entry 3 is missing (the last entry is 2, but 3 were written)".into(),
        };
        assert_eq!(j.verify().unwrap().verdict, broken);
        let d = freeze(&j, "d");
        assert_eq!(d.seq, 4);
        assert_eq!(
            j.verify().unwrap().verdict,
            crate::audit::Verdict::Broken {
                seq: 3,
                problem: "entry 3 is missing (2 is followed by 4)".into()
            }
        );
    }

    #[test]
    fn a_relinked_entry_with_a_recomputed_hash_does_not_follow() {
        let dir = tempfile::tempdir().unwrap();
        let j = open(&Env::for_tests(dir.path()));
        for r in ["a", "b", "c"] {
            freeze(&j, r);
        }
        // Entry 3 rewritten to point at a made-up predecessor, its own hash recomputed.
        let mut third = j.entries().unwrap().pop().unwrap();
        third.prev = "f".repeat(64);
        third.hash = crate::audit::hash(&third);
        j.conn()
            .execute(
                "UPDATE audit SET prev = ?1, hash = ?2 WHERE seq = 3",
                params![third.prev, third.hash],
            )
            .unwrap();
        assert_eq!(
            j.verify().unwrap().verdict,
            crate::audit::Verdict::Broken {
                seq: 3,
                problem: "entry 3 does not follow entry 2".into()
            }
        );
    }
}
