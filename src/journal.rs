//! The delivery journal: one SQLite row per (post, account) at `$GATE_HOME/journal.sqlite3`,
//! written before and after every send, so that a post goes out once however often
//! `gate post` is run, killed or raced.
//!
//! A row is `pending` from the moment it is claimed (committed, with its idempotency key,
//! before any network call), `sent` once the network's id and URL are known, `unknown` once any
//! try ended without an answer that says whether the post went out (a dropped connection, a
//! timeout, a 5xx), and `failed` only when every try was definitely refused. An `unknown` row
//! never becomes `failed`: a later refusal does not undo an earlier try that may have gone out.
//! A row that is not `sent` (a `pending` row belongs to a process that crashed mid-try) is looked
//! up with the platform's `find` before anything is sent again, and resent with the same key.
//!
//! The claim is one transaction ([`Journal::claim`]): it counts the sends of the last hour,
//! `pending` and `unknown` included (they may have gone out), lets the caller judge the post
//! with them, and marks the row `pending` only when the judgement allows it; SQLite's write
//! lock makes concurrent claims take turns, so N processes woken together cannot all pass one
//! rate limit. `sent` and its audit entry are written in one transaction too.
//! `gate retract` turns a `sent` row `retracted` (schema version 2) once the network has
//! deleted the post; the row keeps its `sent_at`, so the post still counts in rate limits.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OptionalExtension as _, params};

use crate::env::Env;
use crate::error::Error;

pub const FILE: &str = "journal.sqlite3";
/// 2: `retracted` deliveries (`gate retract`); 3: the `audit` table (src/audit.rs), which
/// every open creates if it is missing; 4: the `unknown` state (a try whose outcome is unknown).
const VERSION: i64 = 4;

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
    PRIMARY KEY (digest, account)
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

const COLUMNS: &str = "digest, account, platform, idempotency_key, state, remote_id, url, error, pid, attempts, created_at, sent_at, retracted_at";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Claimed: a try is under way, or its process died before it could say how it ended.
    Pending,
    /// A try ended without telling whether the post went out: it may have been sent.
    Unknown,
    Sent,
    Failed,
    /// Sent, then deleted from the network by `gate retract`.
    Retracted,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Unknown => "unknown",
            State::Sent => "sent",
            State::Failed => "failed",
            State::Retracted => "retracted",
        }
    }
}

/// One delivery of one post to one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub digest: String,
    pub account: String,
    pub platform: String,
    pub key: String,
    pub state: State,
    pub remote_id: Option<String>,
    pub url: Option<String>,
    pub error: Option<String>,
    pub pid: u32,
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub retracted_at: Option<DateTime<Utc>>,
}

pub use crate::core::limits::Send;
use crate::core::limits::{Sends, WINDOW};

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
        state: match state.as_str() {
            "sent" => State::Sent,
            "unknown" => State::Unknown,
            "failed" => State::Failed,
            "retracted" => State::Retracted,
            _ => State::Pending,
        },
        remote_id: r.get(5)?,
        url: r.get(6)?,
        error: r.get(7)?,
        pid: r.get(8)?,
        attempts: r.get(9)?,
        created_at: instant(&created).unwrap_or(DateTime::UNIX_EPOCH),
        sent_at: sent.as_deref().and_then(instant),
        retracted_at: retracted.as_deref().and_then(instant),
    })
}

pub struct Journal {
    conn: Connection,
    pub path: PathBuf,
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

impl Journal {
    /// Opens (creating if needed) the journal under the state folder.
    pub fn open(env: &Env) -> Result<Journal, Error> {
        let dir = crate::state::dir(env)?;
        crate::state::create_dir(&dir)?;
        Journal::open_at(&dir.join(FILE))
    }

    /// The journal when it exists, for readers that must not create one (`--dry-run`).
    pub fn open_existing(env: &Env) -> Result<Option<Journal>, Error> {
        let path = crate::state::dir(env)?.join(FILE);
        if path.exists() {
            Journal::open_at(&path).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Opens the journal at `path`, creating and migrating it as needed. Many gate processes
    /// may open it at once (cron jobs, a team's terminals): SQLite can answer "busy" without
    /// waiting on its busy handler while another connection switches the file to WAL or
    /// checkpoints it on close, so the whole opening is tried again, briefly and with jitter,
    /// for up to [`BUSY_TIMEOUT`].
    pub fn open_at(path: &Path) -> Result<Journal, Error> {
        let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
        let mut pause = Duration::from_millis(5);
        loop {
            match Journal::try_open(path) {
                Ok((journal, found)) => {
                    if let Some(v) = found
                        && v > VERSION
                    {
                        return Err(Error::other(format!(
                            "the journal `{}` has schema version {v}, newer than this gate understands ({VERSION})",
                            path.display()
                        ))
                        .with_hint("use the newer gate that wrote it"));
                    }
                    return Ok(journal);
                }
                Err(e) if is_busy(&e) && std::time::Instant::now() < deadline => {
                    std::thread::sleep(pause + jitter(pause));
                    pause = (pause * 2).min(Duration::from_millis(100));
                }
                Err(e) => return Err(db_error(path, &e)),
            }
        }
    }

    fn try_open(path: &Path) -> rusqlite::Result<(Journal, Option<i64>)> {
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
        let journal = Journal {
            conn,
            path: path.to_path_buf(),
        };
        let found = journal.migrate()?;
        Ok((journal, found))
    }

    /// Creates the tables if missing and brings an older schema up to [`VERSION`], in one
    /// transaction; the version found (`None` for a new file).
    fn migrate(&self) -> rusqlite::Result<Option<i64>> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let result = (|| {
            self.conn.execute_batch(SCHEMA)?;
            self.conn.execute_batch(crate::audit::SCHEMA)?;
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

    /// The database connection, for the audit trail that shares the file.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    pub fn get(&self, digest: &str, account: &str) -> Result<Option<Delivery>, Error> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM deliveries WHERE digest = ?1 AND account = ?2"),
                params![digest, account],
                delivery,
            )
            .optional()
            .map_err(|e| db_error(&self.path, &e))
    }

    /// Claims the delivery for one try, in one transaction: the sends of the hour before `now`
    /// that may count against a rate limit (`sent` and `retracted` ones at their `sent_at`,
    /// `pending` and `unknown` ones at their last claim: they may have gone out) go to `judge`,
    /// and only when it allows the send is the row made `pending` (a new row with `key`, or an
    /// existing one with one more attempt; its key never changes, and an `unknown` row stays
    /// `unknown`). SQLite's write lock, held from the count to the commit, makes every other
    /// claim wait its turn. `judge`'s refusal is returned as it is, with nothing written.
    #[allow(clippy::too_many_arguments)]
    pub fn claim<R>(
        &self,
        digest: &str,
        account: &str,
        platform: &str,
        key: &str,
        now: DateTime<Utc>,
        judge: impl FnOnce(Sends) -> Result<(), R>,
    ) -> Result<Result<(), R>, Error> {
        let err = |e: rusqlite::Error| db_error(&self.path, &e);
        self.conn.execute_batch("BEGIN IMMEDIATE").map_err(err)?;
        let counted = self.ledger(now);
        let result = counted.map(|sends| judge(Sends(sends)));
        let result = match result {
            Ok(Ok(())) => self
                .conn
                .execute(
                    "INSERT INTO deliveries (digest, account, platform, idempotency_key, state, pid, attempts, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, 'pending', ?5, 1, ?6, ?6)
                     ON CONFLICT (digest, account) DO UPDATE SET
                       state = CASE WHEN state = 'unknown' THEN 'unknown' ELSE 'pending' END,
                       error = CASE WHEN state = 'unknown' THEN error ELSE NULL END,
                       pid = excluded.pid, attempts = attempts + 1, updated_at = excluded.updated_at",
                    params![digest, account, platform, key, std::process::id(), stamp(now)],
                )
                .map(|_| Ok(())),
            other => other,
        };
        match result {
            Ok(Ok(())) => {
                self.conn.execute_batch("COMMIT").map_err(err)?;
                Ok(Ok(()))
            }
            Ok(Err(refused)) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Ok(Err(refused))
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(err(e))
            }
        }
    }

    /// The deliveries that may count at `now` or later: gone out since the hour before it, or
    /// claimed since then and not known to have failed. There is no upper bound: `now` was
    /// read before the write lock was granted, and sends other processes committed while this
    /// one waited for it are later than `now` but must count (the judge, reading the clock
    /// inside the lock, decides which fall in its window).
    fn ledger(&self, now: DateTime<Utc>) -> rusqlite::Result<Vec<Send>> {
        let mut stmt = self.conn.prepare(
            "SELECT digest, account, coalesce(sent_at, updated_at) AS at FROM deliveries
             WHERE (sent_at IS NOT NULL AND sent_at > ?1)
                OR (sent_at IS NULL AND state IN ('pending', 'unknown') AND updated_at > ?1)
             ORDER BY at",
        )?;
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

    /// Records (committed, before any network call) that this process is about to send
    /// `digest` to `account` with `key`, without judging: [`Journal::claim`] with a judge that
    /// always allows. Only the tests claim without judging; `gate post` always judges.
    #[cfg(test)]
    pub fn begin(
        &self,
        digest: &str,
        account: &str,
        platform: &str,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        self.claim(digest, account, platform, key, now, |_| Ok::<(), ()>(()))
            .map(|_| ())
    }

    /// Records that the delivery went out, and its audit entry, in one transaction: the
    /// journal never says `sent` without the audit trail saying `post`, even across a crash.
    pub fn mark_sent(
        &self,
        env: &Env,
        digest: &str,
        account: &str,
        published: (&str, &str),
        entry: &crate::audit::Entry,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let (id, url) = published;
        self.atomically(|conn| {
            conn.execute(
                "UPDATE deliveries SET state = 'sent', remote_id = ?3, url = ?4, error = NULL, sent_at = ?5, updated_at = ?5
                 WHERE digest = ?1 AND account = ?2",
                params![digest, account, id, url, stamp(now)],
            )?;
            crate::audit::insert(conn, env, entry, now)
        })
        .map(|stored| crate::anchor::advance_to(env, &self.path, &stored))
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

    /// Records a try that ended without a post: `failed` when the network refused it,
    /// `unknown` (with the reason) when it cannot be told whether it went out. A delivery that
    /// is `unknown` stays `unknown` whatever a later try says: only finding the post resolves it.
    pub fn mark(
        &self,
        digest: &str,
        account: &str,
        state: State,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        self.conn
            .execute(
                "UPDATE deliveries SET state = CASE WHEN state = 'unknown' THEN 'unknown' ELSE ?3 END,
                   error = ?4, updated_at = ?5
                 WHERE digest = ?1 AND account = ?2 AND state NOT IN ('sent', 'retracted')",
                params![digest, account, state.name(), crate::redact::scrub(error), stamp(now)],
            )
            .map(|_| ())
            .map_err(|e| db_error(&self.path, &e))
    }
}

impl Journal {
    /// The journal opened read-only when it exists, for `gate check`: it never creates or
    /// migrates one. Its queries must work on every schema version up to this gate's.
    pub fn open_read_only(env: &Env) -> Result<Option<Journal>, Error> {
        use rusqlite::OpenFlags;
        let path = crate::state::dir(env)?.join(FILE);
        if !path.exists() {
            return Ok(None);
        }
        let err = |e: rusqlite::Error| db_error(&path, &e);
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
        Ok(Some(Journal { conn, path }))
    }

    /// Every delivery that went out after `since` (`sent` or since `retracted`: it went out),
    /// oldest first.
    pub fn sends_since(&self, since: DateTime<Utc>) -> Result<Vec<Send>, Error> {
        let err = |e: rusqlite::Error| db_error(&self.path, &e);
        let mut stmt = self
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

    /// The account's delivery whose remote id or URL is `id_or_url`, if gate sent it.
    pub fn find_sent(&self, account: &str, id_or_url: &str) -> Result<Option<Delivery>, Error> {
        self.conn
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM deliveries
                     WHERE account = ?1 AND sent_at IS NOT NULL AND (remote_id = ?2 OR url = ?2)
                     ORDER BY sent_at DESC LIMIT 1"
                ),
                params![account, id_or_url],
                delivery,
            )
            .optional()
            .map_err(|e| db_error(&self.path, &e))
    }

    /// The account's most recently sent delivery, retracted or not.
    pub fn last_sent(&self, account: &str) -> Result<Option<Delivery>, Error> {
        self.conn
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM deliveries
                     WHERE account = ?1 AND sent_at IS NOT NULL ORDER BY sent_at DESC LIMIT 1"
                ),
                params![account],
                delivery,
            )
            .optional()
            .map_err(|e| db_error(&self.path, &e))
    }

    /// Records that the network deleted a sent post, and its audit entry, in one transaction.
    pub fn mark_retracted(
        &self,
        env: &Env,
        digest: &str,
        account: &str,
        entry: &crate::audit::Entry,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        self.atomically(|conn| {
            conn.execute(
                "UPDATE deliveries SET state = 'retracted', retracted_at = ?3, updated_at = ?3
                 WHERE digest = ?1 AND account = ?2 AND state = 'sent'",
                params![digest, account, stamp(now)],
            )?;
            crate::audit::insert(conn, env, entry, now)
        })
        .map(|stored| crate::anchor::advance_to(env, &self.path, &stored))
    }
}

/// The sends of the hour before `now`, from the journal if there is one. The journal is
/// opened read-only and never created (`gate check` must leave no state behind).
pub fn recent_sends(env: &Env, now: DateTime<Utc>) -> Result<Sends, Error> {
    let Some(journal) = Journal::open_read_only(env)? else {
        return Ok(Sends::default());
    };
    let mut sends = journal.sends_since(now - WINDOW)?;
    sends.retain(|s| s.at <= now);
    Ok(Sends(sends))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_goes_pending_then_sent_and_keeps_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&Env::for_tests(dir.path())).unwrap();
        let now = Utc::now();
        assert_eq!(j.get("d", "brand").unwrap(), None);
        j.begin("d", "brand", "mastodon", "k1", now).unwrap();
        let row = j.get("d", "brand").unwrap().unwrap();
        assert_eq!(
            (row.state, row.key.as_str(), row.attempts, row.pid),
            (State::Pending, "k1", 1, std::process::id())
        );
        j.mark("d", "brand", State::Failed, "refused", now).unwrap();
        assert_eq!(
            j.get("d", "brand").unwrap().unwrap().error.as_deref(),
            Some("refused")
        );
        // A second attempt keeps the first key.
        j.begin("d", "brand", "mastodon", "k2", now).unwrap();
        let row = j.get("d", "brand").unwrap().unwrap();
        assert_eq!(
            (row.state, row.key.as_str(), row.attempts, row.error),
            (State::Pending, "k1", 2, None)
        );
        let env = Env::for_tests(dir.path());
        let entry = crate::audit::Entry::new(crate::audit::Event::Post);
        j.mark_sent(
            &env,
            "d",
            "brand",
            ("109", "https://m.example/@brand/109"),
            &entry,
            now,
        )
        .unwrap();
        let row = j.get("d", "brand").unwrap().unwrap();
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
        let j = Journal::open(&Env::for_tests(dir.path())).unwrap();
        assert_eq!(j.get("d", "brand").unwrap().unwrap().state, State::Sent);
        let mode: String = j
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let v: i64 = j
            .conn
            .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, VERSION);
    }

    #[test]
    fn a_newer_journal_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        drop(Journal::open_at(&path).unwrap());
        Connection::open(&path)
            .unwrap()
            .execute("UPDATE schema_version SET version = 99", [])
            .unwrap();
        let err = Journal::open_at(&path).err().unwrap();
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
        let j = Journal::open_at(&path).unwrap();
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
        j.mark_retracted(
            &Env::for_tests(dir.path()),
            "d",
            "brand",
            &entry,
            Utc::now(),
        )
        .unwrap();
        let row = j.get("d", "brand").unwrap().unwrap();
        assert_eq!(row.state, State::Retracted);
        assert!(row.retracted_at.is_some());
        let v: i64 = j
            .conn
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
        let j = Journal::open_at(&path).unwrap();
        let v: i64 = j
            .conn
            .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, VERSION);
        let n: i64 = j
            .conn
            .query_row("SELECT count(*) FROM audit", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
    }

    #[test]
    fn sends_count_retracted_posts_and_lookups_find_by_id_url_or_last() {
        let dir = tempfile::tempdir().unwrap();
        let env = Env::for_tests(dir.path());
        assert!(Journal::open_read_only(&env).unwrap().is_none());
        assert!(
            !dir.path().join(FILE).exists(),
            "a reader must not create the journal"
        );
        let j = Journal::open(&env).unwrap();
        let t0 = "2026-11-23T10:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let minutes = |m| t0 + chrono::Duration::minutes(m);
        for (d, account, m) in [("a", "brand", 0), ("b", "brand", 20), ("c", "other", 30)] {
            j.begin(d, account, "x", d, minutes(m)).unwrap();
            let entry = crate::audit::Entry::new(crate::audit::Event::Post);
            j.mark_sent(
                &env,
                d,
                account,
                (&format!("id-{d}"), &format!("https://x/{d}")),
                &entry,
                minutes(m),
            )
            .unwrap();
        }
        j.begin("p", "brand", "x", "p", minutes(40)).unwrap(); // pending: never went out
        let entry = crate::audit::Entry::new(crate::audit::Event::Retract);
        j.mark_retracted(&env, "b", "brand", &entry, minutes(50))
            .unwrap();
        let r = Journal::open_read_only(&env).unwrap().unwrap();
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
        let j = Journal::open(&Env::for_tests(dir.path())).unwrap();
        let now = Utc::now();
        j.begin("d", "brand", "mastodon", "k", now).unwrap();
        j.mark(
            "d",
            "brand",
            State::Unknown,
            "502 after the request left",
            now,
        )
        .unwrap();
        // A later try is refused (a 429, a refused connection): the first may still have gone out.
        j.begin("d", "brand", "mastodon", "k", now).unwrap();
        let row = j.get("d", "brand").unwrap().unwrap();
        assert_eq!(
            (row.state, row.error.as_deref()),
            (State::Unknown, Some("502 after the request left"))
        );
        j.mark("d", "brand", State::Failed, "429", now).unwrap();
        assert_eq!(j.get("d", "brand").unwrap().unwrap().state, State::Unknown);
        // A row that was only ever refused is `failed`, and a sent one is never touched.
        j.begin("e", "brand", "mastodon", "k", now).unwrap();
        j.mark("e", "brand", State::Failed, "422", now).unwrap();
        assert_eq!(j.get("e", "brand").unwrap().unwrap().state, State::Failed);
        let env = Env::for_tests(dir.path());
        let entry = crate::audit::Entry::new(crate::audit::Event::Post);
        j.mark_sent(&env, "d", "brand", ("1", "https://m/1"), &entry, now)
            .unwrap();
        j.mark("d", "brand", State::Failed, "late", now).unwrap();
        assert_eq!(j.get("d", "brand").unwrap().unwrap().state, State::Sent);
    }

    #[test]
    fn a_claim_counts_pending_and_unknown_sends_and_a_refusal_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let env = Env::for_tests(dir.path());
        let j = Journal::open(&env).unwrap();
        let t0 = "2026-11-23T10:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let minutes = |m| t0 + chrono::Duration::minutes(m);
        let entry = crate::audit::Entry::new(crate::audit::Event::Post);
        j.begin("sent", "brand", "x", "k", minutes(0)).unwrap();
        j.mark_sent(&env, "sent", "brand", ("1", "u1"), &entry, minutes(1))
            .unwrap();
        j.begin("pending", "brand", "x", "k", minutes(2)).unwrap();
        j.begin("unknown", "brand", "x", "k", minutes(3)).unwrap();
        j.mark("unknown", "brand", State::Unknown, "timeout", minutes(3))
            .unwrap();
        j.begin("failed", "brand", "x", "k", minutes(4)).unwrap();
        j.mark("failed", "brand", State::Failed, "422", minutes(4))
            .unwrap();
        j.begin("old", "brand", "x", "k", minutes(-120)).unwrap();
        let mut seen = Vec::new();
        let refused = j
            .claim("new", "brand", "x", "k", minutes(10), |sends| {
                seen = sends.0.iter().map(|s| s.digest.clone()).collect();
                Err("held")
            })
            .unwrap();
        assert_eq!(refused, Err("held"));
        assert_eq!(seen, ["sent", "pending", "unknown"]);
        assert_eq!(
            j.get("new", "brand").unwrap(),
            None,
            "a refused claim writes nothing"
        );
        assert_eq!(
            j.claim("new", "brand", "x", "k", minutes(10), |_| Ok::<(), ()>(()))
                .unwrap(),
            Ok(())
        );
        assert_eq!(
            j.get("new", "brand").unwrap().unwrap().state,
            State::Pending
        );
    }

    #[test]
    fn sent_and_its_audit_entry_commit_together() {
        let dir = tempfile::tempdir().unwrap();
        let env = Env::for_tests(dir.path());
        let j = Journal::open(&env).unwrap();
        let now = Utc::now();
        j.begin("d", "brand", "x", "k", now).unwrap();
        // An audit trail that cannot take the entry: the journal must not say `sent` either.
        j.conn
            .execute_batch(
                "CREATE TRIGGER no_audit BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'full'); END;",
            )
            .unwrap();
        let entry = crate::audit::Entry::new(crate::audit::Event::Post);
        assert!(
            j.mark_sent(&env, "d", "brand", ("1", "u"), &entry, now)
                .is_err()
        );
        assert_eq!(j.get("d", "brand").unwrap().unwrap().state, State::Pending);
        j.conn.execute_batch("DROP TRIGGER no_audit").unwrap();
        j.mark_sent(&env, "d", "brand", ("1", "u"), &entry, now)
            .unwrap();
        assert_eq!(j.get("d", "brand").unwrap().unwrap().state, State::Sent);
        assert_eq!(crate::audit::entries(&j).unwrap().len(), 1);
    }

    #[test]
    fn a_version_3_journal_gains_the_unknown_state_and_keeps_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(&SCHEMA.replace("'pending', 'unknown', ", "'pending', "))
            .unwrap();
        conn.execute_batch(crate::audit::SCHEMA).unwrap();
        conn.execute_batch(
            "INSERT INTO schema_version (version) VALUES (3);
             INSERT INTO deliveries (digest, account, platform, idempotency_key, state, pid, attempts, created_at, updated_at)
             VALUES ('d', 'brand', 'x', 'k', 'pending', 1, 1, '2026-11-23T10:00:00.000Z', '2026-11-23T10:00:00.000Z');",
        )
        .unwrap();
        drop(conn);
        let j = Journal::open_at(&path).unwrap();
        j.mark("d", "brand", State::Unknown, "timeout", Utc::now())
            .unwrap();
        assert_eq!(j.get("d", "brand").unwrap().unwrap().state, State::Unknown);
    }
}
