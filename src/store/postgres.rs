//! The team state store: PostgreSQL, shared by every machine, cron host and CI runner of a
//! team (SPEC §6). One `Client` per command is one session (no pool: session locks must not
//! leak to another command).
//!
//! - A delivery is claimed in one transaction: the freeze row is read `FOR SHARE` (a freeze
//!   and a claim order themselves: whichever commits first, the other sees it), the ledger
//!   rows of the team (`*`) and of the account are locked `FOR UPDATE` (claims take turns for
//!   the few milliseconds of the count and the judgement), the ledger of the hour is counted
//!   with `pending` and `unknown` rows, and the row is written `pending` only when the judge
//!   allows it.
//! - While a process works on one delivery (lookup, claim, send, record) it holds that
//!   delivery's session-level advisory lock (the two-key form, namespaced to gate, so it never
//!   meets a bare numeric key of another application), the team-wide counterpart of the local
//!   lock file. The session ends with the process or its connection, and so does the lock: a
//!   process that lost its connection checks the lock again right before it sends, and sends
//!   nothing without it.
//! - The audit table is append-only in the database itself: a trigger refuses UPDATE, DELETE
//!   and TRUNCATE, and the role gate uses needs only SELECT and INSERT on it (`gate state
//!   migrate --print-sql` prints the grants). An entry is appended as the last seq + 1; two
//!   machines appending at once collide on the primary key and the loser tries again.
//! - Schema versions live in `gate_schema`; gate migrates on first use when its role may, and
//!   refuses a schema newer than it understands.

use std::cell::RefCell;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use postgres::error::SqlState;
use postgres::types::Type;
use postgres::{Client, Config, GenericClient, Row};
use secrecy::{ExposeSecret as _, SecretString};

use super::{Claim, Delivery, Ledger, LocalFreeze, Send, Sends, State, Verification};
use crate::audit::{self, Entry, Stored};
use crate::env::Env;
use crate::error::Error;

/// The schema version this gate writes and understands.
/// 1: the first; 2: the `item` column (one delivery per thread item, SPEC §8).
pub const VERSION: i32 = 2;

/// The advisory-lock namespace (the first key of the two-key form): `gate` in ASCII.
const LOCK_SPACE: i32 = 0x6761_7465;

/// How long connecting may take before the store counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Version 0 → 1, as run by `gate state migrate` (and printed by `--print-sql`). A frozen
/// snapshot: later versions add their own steps.
pub const TO_V1: &str = r#"
CREATE TABLE IF NOT EXISTS gate_schema (
    version     integer NOT NULL,
    migrated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE gate_deliveries (
    digest          text NOT NULL,
    account         text NOT NULL,
    platform        text NOT NULL,
    idempotency_key text NOT NULL,
    state           text NOT NULL CHECK (state IN ('pending', 'unknown', 'sent', 'failed', 'retracted')),
    remote_id       text,
    url             text,
    error           text,
    pid             integer NOT NULL,
    host            text NOT NULL,
    attempts        integer NOT NULL DEFAULT 1,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    sent_at         timestamptz,
    retracted_at    timestamptz,
    PRIMARY KEY (digest, account)
);
CREATE INDEX gate_deliveries_sent ON gate_deliveries (account, sent_at);
CREATE INDEX gate_deliveries_updated ON gate_deliveries (updated_at);
-- One row per account (and `*` for the team): a claim locks its rows FOR UPDATE.
CREATE TABLE gate_ledger (name text PRIMARY KEY);
-- Exactly one row; frozen while `reason` is set. A claim reads it FOR SHARE.
CREATE TABLE gate_freeze (
    one     boolean PRIMARY KEY DEFAULT true CHECK (one),
    reason  text,
    since   timestamptz,
    by_user text,
    host    text
);
INSERT INTO gate_freeze (one) VALUES (true);
CREATE TABLE gate_audit (
    seq           bigint PRIMARY KEY CHECK (seq > 0),
    time          text NOT NULL,
    event         text NOT NULL,
    "user"        text NOT NULL,
    host          text NOT NULL,
    account       text,
    digest        text,
    text          text,
    verdict       text,
    findings      text,
    reviewers     text,
    policy_sha256 text,
    url           text,
    prev          text NOT NULL,
    hash          text NOT NULL
);
CREATE FUNCTION gate_audit_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the gate audit trail is append-only: % refused', TG_OP;
END
$$;
CREATE TRIGGER gate_audit_append_only BEFORE UPDATE OR DELETE ON gate_audit
    FOR EACH ROW EXECUTE FUNCTION gate_audit_refuse();
CREATE TRIGGER gate_audit_no_truncate BEFORE TRUNCATE ON gate_audit
    FOR EACH STATEMENT EXECUTE FUNCTION gate_audit_refuse();
-- Local trails moved in with `gate state import`, by the hash of their last entry.
CREATE TABLE gate_imports (
    head        text PRIMARY KEY,
    entries     integer NOT NULL,
    deliveries  integer NOT NULL,
    host        text NOT NULL,
    imported_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO gate_schema (version) VALUES (1);
"#;

/// Version 1 → 2: `item` joins the deliveries' key; every row already there is item 0, the
/// first and only item of its post. A frozen snapshot, like [`TO_V1`].
pub const TO_V2: &str = r#"
ALTER TABLE gate_deliveries ADD COLUMN item integer NOT NULL DEFAULT 0;
ALTER TABLE gate_deliveries DROP CONSTRAINT gate_deliveries_pkey;
ALTER TABLE gate_deliveries ADD PRIMARY KEY (digest, account, item);
INSERT INTO gate_schema (version) VALUES (2);
"#;

/// The grants a DBA gives the role gate runs as, when another role owns the tables.
pub const GRANTS: &str = "
-- For the role gate connects as (here `gate`), when another role owns these tables:
-- GRANT SELECT ON gate_schema TO gate;
-- GRANT SELECT, INSERT, UPDATE ON gate_deliveries, gate_freeze TO gate;
-- GRANT SELECT, INSERT ON gate_ledger, gate_imports TO gate;
-- GRANT SELECT, INSERT ON gate_audit TO gate;   -- never UPDATE or DELETE
";

const COLUMNS: &str = "digest, account, platform, idempotency_key, state, remote_id, url, error, pid, attempts, created_at, sent_at, retracted_at, item";
/// [`COLUMNS`] for a version-1 schema read without migrating (`gate check`): all item 0.
const COLUMNS_V1: &str = "digest, account, platform, idempotency_key, state, remote_id, url, error, pid, attempts, created_at, sent_at, retracted_at, 0";

const AUDIT_COLUMNS: &str = r#"seq, time, event, "user", host, account, digest, text, verdict, findings, reviewers, policy_sha256, url, prev, hash"#;

/// Where the store is and how to reach it: the URL as given (it may hold a password) and
/// the same URL without its password, for every message.
pub struct Target {
    url: SecretString,
    pub shown: String,
    pub source: &'static str,
}

impl Target {
    /// `url` from `source` (`GATE_STATE_URL` or the policy's `[state] url`).
    pub fn new(url: &str, source: &'static str) -> Result<Target, Error> {
        let shown = redact(url).ok_or_else(|| {
            Error::other(format!("`{source}` is not a PostgreSQL URL"))
                .with_hint("write `postgres://USER@HOST:5432/DATABASE`")
        })?;
        Ok(Target {
            url: SecretString::from(url.to_owned()),
            shown,
            source,
        })
    }

    /// The keychain item that holds this store's password: `state:` and the URL without its
    /// password and query (`gate state password` writes it).
    pub fn keychain_item(&self) -> String {
        let base = self.shown.split('?').next().unwrap_or(&self.shown);
        format!("state:{base}")
    }
}

/// The URL without its password (and `None` for one that is not `postgres://`).
pub fn redact(url: &str) -> Option<String> {
    let mut parsed = url::Url::parse(url.trim()).ok()?;
    if !matches!(parsed.scheme(), "postgres" | "postgresql") {
        return None;
    }
    if parsed.password().is_some() {
        let _ = parsed.set_password(None);
    }
    Some(parsed.to_string())
}

/// The client's configuration for `url`: `sslmode` is read here (`disable`, `prefer`,
/// `require`, `verify-ca`, `verify-full`; with TLS the server's certificate is always verified
/// against the system's roots), the rest by the driver.
fn config(url: &str) -> Result<(Config, bool), String> {
    let mut parsed = url::Url::parse(url.trim()).map_err(|e| e.to_string())?;
    let mut tls = None;
    let rest: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(k, v)| {
            if k == "sslmode" {
                tls = Some(v.to_string());
                false
            } else {
                true
            }
        })
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if rest.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(rest);
    }
    let mut config: Config = parsed
        .as_str()
        .parse()
        .map_err(|e: postgres::Error| e.to_string())?;
    let use_tls = match tls.as_deref() {
        None | Some("prefer") => {
            config.ssl_mode(postgres::config::SslMode::Prefer);
            true
        }
        Some("disable") => {
            config.ssl_mode(postgres::config::SslMode::Disable);
            false
        }
        Some("require" | "verify-ca" | "verify-full") => {
            config.ssl_mode(postgres::config::SslMode::Require);
            true
        }
        Some(other) => return Err(format!("unknown sslmode `{other}`")),
    };
    config.connect_timeout(CONNECT_TIMEOUT);
    Ok((config, use_tls))
}

fn tls() -> tokio_postgres_rustls::MakeRustlsConnect {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("rustls's default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_postgres_rustls::MakeRustlsConnect::new(config)
}

/// The driver's "the server asked for a password and none was given".
fn password_missing(e: &postgres::Error) -> bool {
    reason(e).contains("password missing")
}

/// The PostgreSQL store of one command.
pub struct Postgres {
    env: Env,
    target: Target,
    client: RefCell<Client>,
    /// The schema version found when connecting (after any migration).
    pub version: i32,
}

/// What connecting found out about the schema, for `gate state status`.
pub enum Schema {
    Current,
    /// Older (or absent: 0), and this gate may not migrate it now.
    Older(i32),
    Newer(i32),
}

impl Postgres {
    /// Connects, then checks (and, when `migrate`, brings up to date) the schema.
    pub fn connect(env: &Env, target: Target, migrate: bool) -> Result<Postgres, Error> {
        let client = Postgres::session(env, &target)?;
        let mut store = Postgres {
            env: env.clone(),
            target,
            client: RefCell::new(client),
            version: 0,
        };
        store.version = store.found_version()?;
        if store.version > VERSION {
            return Err(store.newer(store.version));
        }
        if store.version < VERSION && migrate {
            store.migrate()?;
        }
        Ok(store)
    }

    /// One session: the password from the URL, else (when the server asks for one) from the
    /// keychain item [`Target::keychain_item`].
    fn session(env: &Env, target: &Target) -> Result<Client, Error> {
        let (mut config, use_tls) = config(target.url.expose_secret()).map_err(|why| {
            Error::other(format!(
                "the state store URL in `{}` is not valid: {why}",
                target.source
            ))
            .with_hint("write `postgres://USER@HOST:5432/DATABASE?sslmode=verify-full`")
        })?;
        config.application_name(&format!(
            "gate {} pid {}",
            audit::host_name(env),
            std::process::id()
        ));
        let connect = |config: &Config| {
            if use_tls {
                config.connect(tls())
            } else {
                config.connect(postgres::NoTls)
            }
        };
        match connect(&config) {
            Ok(client) => Ok(client),
            Err(e) if password_missing(&e) && config.get_password().is_none() => {
                let item = target.keychain_item();
                let password = crate::keychain::Keychain::open(env)
                    .ok()
                    .and_then(|k| k.get(&item).ok().flatten());
                let Some(password) = password else {
                    return Err(Error::other(format!(
                        "the team state store `{}` asks for a password, and none is stored",
                        target.shown
                    ))
                    .with_hint(format!(
                        "store it in the OS keychain with `gate state password` (item `{item}`), or give it in `GATE_STATE_URL`; nothing was sent"
                    )));
                };
                config.password(password.expose_secret());
                connect(&config).map_err(|e| unreachable(target, &e))
            }
            Err(e) => Err(unreachable(target, &e)),
        }
    }

    fn newer(&self, found: i32) -> Error {
        Error::other(format!(
            "the team state store `{}` has schema version {found}, newer than this gate understands ({VERSION})",
            self.target.shown
        ))
        .with_hint("use the newer gate that migrated it; nothing was sent")
    }

    fn err(&self, e: &postgres::Error) -> Error {
        failed(&self.target, e)
    }

    /// The schema version in the database (0 when gate's tables are not there).
    fn found_version(&self) -> Result<i32, Error> {
        let mut client = self.client.borrow_mut();
        match client.query_typed_one("SELECT coalesce(max(version), 0) FROM gate_schema", &[]) {
            Ok(row) => Ok(row.get(0)),
            Err(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => Ok(0),
            Err(e) => Err(self.err(&e)),
        }
    }

    /// Brings the schema up to [`VERSION`], in one transaction that concurrent migrators wait
    /// for (a transaction-level advisory lock); a role that may not create tables gets the fix.
    pub fn migrate(&mut self) -> Result<(), Error> {
        let result = (|| -> Result<i32, postgres::Error> {
            let mut client = self.client.borrow_mut();
            let mut tx = client.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock($1, 0)", &[&LOCK_SPACE])?;
            let exists: bool = tx
                .query_one("SELECT to_regclass('gate_schema') IS NOT NULL", &[])?
                .get(0);
            let found: i32 = if exists {
                tx.query_one("SELECT coalesce(max(version), 0) FROM gate_schema", &[])?
                    .get(0)
            } else {
                0
            };
            if found < 1 {
                tx.batch_execute(TO_V1)?;
            }
            if found < 2 {
                tx.batch_execute(TO_V2)?;
            }
            tx.commit()?;
            Ok(found.max(VERSION))
        })();
        match result {
            Ok(v) if v > VERSION => Err(self.newer(v)),
            Ok(v) => {
                self.version = v;
                Ok(())
            }
            Err(e) if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => {
                Err(Error::other(format!(
                    "the team state store `{}` has no gate schema (version {}), and this role may not create it: {}",
                    self.target.shown,
                    self.version,
                    reason(&e)
                ))
                .with_hint(
                    "run `gate state migrate` as the database's owner, or give a DBA the SQL `gate state migrate --print-sql` prints; nothing was sent",
                ))
            }
            Err(e) => Err(self.err(&e)),
        }
    }

    /// Where the store is, without the password.
    pub fn shown(&self) -> &str {
        &self.target.shown
    }

    /// Runs `work` in a transaction, again from the start when it lost a race the database
    /// reports (a unique key taken by another machine's audit entry, a serialization failure,
    /// a deadlock), up to a few times.
    fn transaction<T>(
        &self,
        mut work: impl FnMut(&mut postgres::Transaction<'_>) -> Result<T, postgres::Error>,
    ) -> Result<T, postgres::Error> {
        let mut client = self.client.borrow_mut();
        let mut tries = 0;
        loop {
            tries += 1;
            let mut tx = client.transaction()?;
            let result = work(&mut tx).and_then(|value| tx.commit().map(|()| value));
            match result {
                Err(e) if tries < 50 && retryable(&e) => {
                    std::thread::sleep(Duration::from_millis(2 * tries));
                }
                other => return other,
            }
        }
    }

    /// The delivery columns of this schema ([`COLUMNS`], or [`COLUMNS_V1`] before items).
    fn columns(&self) -> &'static str {
        if self.version >= 2 {
            COLUMNS
        } else {
            COLUMNS_V1
        }
    }

    /// The first row of `sql`, in which `{COLUMNS}` stands for [`Postgres::columns`].
    fn one(
        &self,
        sql: &str,
        params: &[(&(dyn postgres::types::ToSql + Sync), Type)],
    ) -> Result<Option<Delivery>, Error> {
        self.client
            .borrow_mut()
            .query_typed_opt(&sql.replace("{COLUMNS}", self.columns()), params)
            .map(|row| row.as_ref().map(delivery))
            .map_err(|e| self.err(&e))
    }

    /// Moves the anchor (in this machine's keychain) to an entry just committed.
    fn anchor(&self, entry: &Stored) {
        crate::anchor::advance_to(&self.env, &self.anchor_item(), entry);
    }

    fn anchor_item(&self) -> String {
        let base = self.target.shown.split('?').next().unwrap_or_default();
        format!("audit-head-{base}")
    }

    /// Every delivery and every audit entry of a local store, in one transaction: what is not
    /// there yet is added, nothing is overwritten. The local chain must be intact. Returns
    /// (deliveries added, entries added, entries already there).
    pub fn import(
        &self,
        deliveries: &[(Delivery, String)],
        entries: &[Stored],
        local_freeze: Option<&LocalFreeze>,
    ) -> Result<(usize, usize, bool), Error> {
        let host = audit::host_name(&self.env);
        let head = entries
            .last()
            .map_or_else(|| audit::GENESIS.to_owned(), |e| e.hash.clone());
        let env = &self.env;
        let result = self.transaction(|tx| {
            // One import at a time, and none twice.
            tx.execute("LOCK TABLE gate_imports IN EXCLUSIVE MODE", &[])?;
            let done = tx
                .query_opt("SELECT 1 FROM gate_imports WHERE head = $1", &[&head])?
                .is_some();
            if done {
                return Ok((0, 0, true));
            }
            let mut added = 0;
            for (d, updated) in deliveries {
                let updated = instant(updated).unwrap_or(d.created_at);
                let n = tx.execute(
                    "INSERT INTO gate_deliveries (digest, account, platform, idempotency_key, state, remote_id, url, error, pid, host, attempts, created_at, updated_at, sent_at, retracted_at, item)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
                     ON CONFLICT (digest, account, item) DO NOTHING",
                    &[
                        &d.digest,
                        &d.account,
                        &d.platform,
                        &d.key,
                        &d.state.name(),
                        &d.remote_id,
                        &d.url,
                        &d.error,
                        &i32::try_from(d.pid).unwrap_or(0),
                        &host,
                        &i32::try_from(d.attempts).unwrap_or(i32::MAX),
                        &d.created_at,
                        &updated,
                        &d.sent_at,
                        &d.retracted_at,
                        &i32::try_from(d.item).unwrap_or(i32::MAX),
                    ],
                )?;
                added += usize::try_from(n).unwrap_or(0);
            }
            // The team's trail: empty, the local entries go in as they are (their hashes
            // still verify); otherwise each is chained after the team's last entry, every
            // field kept.
            let last = last_entry(tx)?;
            let mut prev = last.clone();
            for e in entries {
                let stored = match &prev {
                    None if e.seq == 1 => e.clone(),
                    _ => {
                        let (seq, hash) = prev
                            .clone()
                            .unwrap_or((0, audit::GENESIS.to_owned()));
                        let mut s = Stored {
                            seq: seq + 1,
                            prev: hash,
                            hash: String::new(),
                            ..e.clone()
                        };
                        s.hash = audit::hash(&s);
                        s
                    }
                };
                insert_stored(tx, &stored)?;
                prev = Some((stored.seq, stored.hash.clone()));
            }
            if let Some(f) = local_freeze {
                tx.execute(
                    "UPDATE gate_freeze SET reason = $1, since = $2, by_user = $3, host = $4 WHERE one AND reason IS NULL",
                    &[&f.reason, &f.since.unwrap_or_else(Utc::now), &f.by, &host],
                )?;
            }
            tx.execute(
                "INSERT INTO gate_imports (head, entries, deliveries, host) VALUES ($1, $2, $3, $4)",
                &[
                    &head,
                    &i32::try_from(entries.len()).unwrap_or(i32::MAX),
                    &i32::try_from(deliveries.len()).unwrap_or(i32::MAX),
                    &audit::host_name(env),
                ],
            )?;
            Ok((added, entries.len(), false))
        });
        result.map_err(|e| self.err(&e))
    }
}

fn retryable(e: &postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::UNIQUE_VIOLATION
            || *c == SqlState::T_R_SERIALIZATION_FAILURE
            || *c == SqlState::T_R_DEADLOCK_DETECTED
    )
}

/// The driver's error as one line: the database's own message when it sent one.
fn reason(e: &postgres::Error) -> String {
    let text = match e.as_db_error() {
        Some(db) => db.message().to_owned(),
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                text = format!("{text}: {s}");
                source = s.source();
            }
            text
        }
    };
    crate::redact::scrub(&text).into_owned()
}

fn unreachable(target: &Target, e: &postgres::Error) -> Error {
    Error::other(format!(
        "cannot reach the team state store `{}` (from `{}`): {}",
        target.shown,
        target.source,
        reason(e)
    ))
    .with_hint(
        "check that the database is up and reachable from here; gate never falls back to this machine's state, so nothing was sent",
    )
}

fn failed(target: &Target, e: &postgres::Error) -> Error {
    if e.is_closed() || e.as_db_error().is_none() && e.code().is_none() {
        return Error::other(format!(
            "lost the connection to the team state store `{}`: {}",
            target.shown,
            reason(e)
        ))
        .with_hint("run the same command again once the database answers: it picks up where this one stopped");
    }
    Error::other(format!(
        "the team state store `{}` refused: {}",
        target.shown,
        reason(e)
    ))
    .with_hint("check the database and the role gate connects as (`gate state status`)")
}

fn instant(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.to_utc())
}

fn delivery(r: &Row) -> Delivery {
    let state: String = r.get(4);
    let pid: i32 = r.get(8);
    let attempts: i32 = r.get(9);
    Delivery {
        digest: r.get(0),
        account: r.get(1),
        platform: r.get(2),
        key: r.get(3),
        state: State::from_name(&state),
        remote_id: r.get(5),
        url: r.get(6),
        error: r.get(7),
        pid: u32::try_from(pid).unwrap_or(0),
        attempts: u32::try_from(attempts).unwrap_or(0),
        created_at: r.get(10),
        sent_at: r.get(11),
        retracted_at: r.get(12),
        item: u32::try_from(r.get::<_, i32>(13)).unwrap_or(0),
    }
}

fn stored(r: &Row) -> Stored {
    Stored {
        seq: r.get(0),
        time: r.get(1),
        event: r.get(2),
        user: r.get(3),
        host: r.get(4),
        account: r.get(5),
        digest: r.get(6),
        text: r.get(7),
        verdict: r.get(8),
        findings: r.get(9),
        reviewers: r.get(10),
        policy_sha256: r.get(11),
        url: r.get(12),
        prev: r.get(13),
        hash: r.get(14),
    }
}

fn last_entry(tx: &mut impl GenericClient) -> Result<Option<(i64, String)>, postgres::Error> {
    Ok(tx
        .query_typed_opt(
            "SELECT seq, hash FROM gate_audit ORDER BY seq DESC LIMIT 1",
            &[],
        )?
        .map(|r| (r.get(0), r.get(1))))
}

fn insert_stored(tx: &mut impl GenericClient, s: &Stored) -> Result<(), postgres::Error> {
    tx.execute_typed(
        &format!(
            "INSERT INTO gate_audit ({AUDIT_COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
        ),
        &[
            (&s.seq, Type::INT8),
            (&s.time, Type::TEXT),
            (&s.event, Type::TEXT),
            (&s.user, Type::TEXT),
            (&s.host, Type::TEXT),
            (&s.account, Type::TEXT),
            (&s.digest, Type::TEXT),
            (&s.text, Type::TEXT),
            (&s.verdict, Type::TEXT),
            (&s.findings, Type::TEXT),
            (&s.reviewers, Type::TEXT),
            (&s.policy_sha256, Type::TEXT),
            (&s.url, Type::TEXT),
            (&s.prev, Type::TEXT),
            (&s.hash, Type::TEXT),
        ],
    )
    .map(|_| ())
}

/// Appends an entry as the last seq + 1 inside the caller's transaction; a concurrent
/// appender that took the seq first makes the insert fail with a unique violation, and the
/// caller's transaction is tried again.
fn append_in(
    tx: &mut impl GenericClient,
    env: &Env,
    entry: &Entry,
    now: DateTime<Utc>,
) -> Result<Stored, postgres::Error> {
    let (seq, prev) = last_entry(tx)?.unwrap_or((0, audit::GENESIS.to_owned()));
    let stored = audit::chained(env, entry, seq + 1, prev, now);
    insert_stored(tx, &stored)?;
    Ok(stored)
}

/// A delivery's team-wide lock: its advisory lock in this session, and the local lock file.
struct Held<'a> {
    store: &'a Postgres,
    key: i32,
    _local: crate::lock::Lock,
}

impl super::Held for Held<'_> {
    fn still_held(&self) -> Result<(), Error> {
        let held = self
            .store
            .client
            .borrow_mut()
            .query_typed_one(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()
                   AND classid = $1::int4::oid AND objid = $2::int4::oid AND objsubid = 2 AND granted",
                &[(&LOCK_SPACE, Type::INT4), (&self.key, Type::INT4)],
            )
            .map(|r| r.get::<_, i64>(0) > 0);
        match held {
            Ok(true) => Ok(()),
            Ok(false) => Err(lock_lost(self.store)),
            Err(e) => Err(lock_lost(self.store).with_hint(format!(
                "{}; nothing was sent by this run: run it again, it looks before it sends",
                reason(&e)
            ))),
        }
    }
}

fn lock_lost(store: &Postgres) -> Error {
    Error::other(format!(
        "lost the team-wide lock on this delivery (the connection to `{}` dropped): not sending",
        store.target.shown
    ))
    .with_hint("nothing was sent by this run; run the same `gate post` again: it looks before it sends and never posts twice")
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if let Ok(mut client) = self.store.client.try_borrow_mut() {
            let _ = client.query_typed(
                "SELECT pg_advisory_unlock($1, $2)",
                &[(&LOCK_SPACE, Type::INT4), (&self.key, Type::INT4)],
            );
        }
    }
}

impl super::Store for Postgres {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn location(&self) -> String {
        self.target.shown.clone()
    }

    fn lock_delivery(
        &self,
        digest: &str,
        account: &str,
        item: u32,
        wait: Duration,
    ) -> Result<Box<dyn super::Held + '_>, Error> {
        let local = super::local_lock(&self.env, digest, account, item, wait)?;
        let name = if item == 0 {
            format!("{digest}/{account}")
        } else {
            format!("{digest}/{account}/{item}")
        };
        let hash = <sha2::Sha256 as sha2::Digest>::digest(name);
        let key = i32::from_be_bytes([hash[0], hash[1], hash[2], hash[3]]);
        let deadline = std::time::Instant::now() + wait;
        loop {
            let got: bool = self
                .client
                .borrow_mut()
                .query_typed_one(
                    "SELECT pg_try_advisory_lock($1, $2)",
                    &[(&LOCK_SPACE, Type::INT4), (&key, Type::INT4)],
                )
                .map_err(|e| self.err(&e))?
                .get(0);
            if got {
                return Ok(Box::new(Held {
                    store: self,
                    key,
                    _local: local,
                }));
            }
            if std::time::Instant::now() >= deadline {
                let holder: Option<String> = self
                    .client
                    .borrow_mut()
                    .query_opt(
                        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                         WHERE l.locktype = 'advisory' AND l.classid = $1::int4::oid AND l.objid = $2::int4::oid
                           AND l.objsubid = 2 AND l.granted LIMIT 1",
                        &[&LOCK_SPACE, &key],
                    )
                    .ok()
                    .flatten()
                    .map(|r| r.get(0));
                return Err(Error::other(format!(
                    "another gate process ({}) has been sending this post to `{account}` for over {} s",
                    holder.unwrap_or_else(|| "on another machine".to_owned()),
                    wait.as_secs()
                ))
                .with_hint("that process may have sent it, this one did not; run it again once that one is done: it looks before it sends"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn get(&self, digest: &str, account: &str, item: u32) -> Result<Option<Delivery>, Error> {
        if self.version == 0 || (self.version < 2 && item > 0) {
            return Ok(None);
        }
        if self.version < 2 {
            return self.one(
                "SELECT {COLUMNS} FROM gate_deliveries WHERE digest = $1 AND account = $2",
                &[(&digest, Type::TEXT), (&account, Type::TEXT)],
            );
        }
        let item = i32::try_from(item).unwrap_or(i32::MAX);
        self.one(
            "SELECT {COLUMNS} FROM gate_deliveries WHERE digest = $1 AND account = $2 AND item = $3",
            &[
                (&digest, Type::TEXT),
                (&account, Type::TEXT),
                (&item, Type::INT4),
            ],
        )
    }

    fn thread(&self, digest: &str, account: &str) -> Result<Vec<Delivery>, Error> {
        if self.version == 0 {
            return Ok(Vec::new());
        }
        let order = if self.version >= 2 { "item" } else { "0" };
        let rows = self
            .client
            .borrow_mut()
            .query_typed(
                &format!(
                    "SELECT {} FROM gate_deliveries WHERE digest = $1 AND account = $2 ORDER BY {order}",
                    self.columns()
                ),
                &[(&digest, Type::TEXT), (&account, Type::TEXT)],
            )
            .map_err(|e| self.err(&e))?;
        Ok(rows.iter().map(delivery).collect())
    }

    fn claim(
        &self,
        claim: &Claim<'_>,
        judge: &mut dyn FnMut(Ledger) -> bool,
    ) -> Result<bool, Error> {
        let host = audit::host_name(&self.env);
        let pid = i32::try_from(std::process::id()).unwrap_or(0);
        let since = claim.now - crate::core::limits::WINDOW;
        let item = i32::try_from(claim.item).unwrap_or(i32::MAX);
        let result = self.transaction(|tx| {
            // The freeze, shared (a `gate freeze` waits for this claim, or this claim for it),
            // and the team's and the account's ledger rows, for update, in one statement; the
            // rows are made on an account's first claim.
            let lock = "WITH f AS (SELECT reason, since, by_user FROM gate_freeze WHERE one FOR SHARE),
                             l AS (SELECT name FROM gate_ledger WHERE name IN ('*', $1)
                                   ORDER BY name COLLATE \"C\" FOR UPDATE)
                        SELECT f.reason, f.since, f.by_user, (SELECT count(*) FROM l) FROM f";
            let account = [(&claim.account as &(dyn postgres::types::ToSql + Sync), Type::TEXT)];
            let mut row = tx.query_typed_one(lock, &account)?;
            if row.get::<_, i64>(3) < 2 {
                tx.execute_typed(
                    "INSERT INTO gate_ledger (name) VALUES ('*'), ($1) ON CONFLICT DO NOTHING",
                    &account,
                )?;
                row = tx.query_typed_one(lock, &account)?;
            }
            let freeze = row
                .get::<_, Option<String>>(0)
                .map(|reason| LocalFreeze {
                    reason,
                    since: row.get(1),
                    by: row.get(2),
                });
            // Counted after the locks were granted: a claim that committed meanwhile counts.
            // A thread counts once: by its first item (SPEC §8).
            let sends = tx
                .query_typed(
                    "SELECT digest, account, coalesce(sent_at, updated_at) AS at FROM gate_deliveries
                     WHERE ((sent_at IS NOT NULL AND sent_at > $1)
                        OR (sent_at IS NULL AND state IN ('pending', 'unknown') AND updated_at > $1))
                       AND item = 0
                     ORDER BY at",
                    &[(&since, Type::TIMESTAMPTZ)],
                )?
                .iter()
                .map(|r| Send {
                    digest: r.get(0),
                    account: r.get(1),
                    at: r.get(2),
                })
                .collect();
            if !judge(Ledger {
                freeze,
                sends: Sends(sends),
            }) {
                return Ok(false);
            }
            tx.execute_typed(
                "INSERT INTO gate_deliveries (digest, account, platform, idempotency_key, state, pid, host, attempts, created_at, updated_at, item)
                 VALUES ($1, $2, $3, $4, 'pending', $5, $6, 1, $7, $7, $8)
                 ON CONFLICT (digest, account, item) DO UPDATE SET
                   state = CASE WHEN gate_deliveries.state = 'unknown' THEN 'unknown' ELSE 'pending' END,
                   error = CASE WHEN gate_deliveries.state = 'unknown' THEN gate_deliveries.error ELSE NULL END,
                   pid = excluded.pid, host = excluded.host,
                   attempts = gate_deliveries.attempts + 1, updated_at = excluded.updated_at",
                &[
                    (&claim.digest, Type::TEXT),
                    (&claim.account, Type::TEXT),
                    (&claim.platform, Type::TEXT),
                    (&claim.key, Type::TEXT),
                    (&pid, Type::INT4),
                    (&host, Type::TEXT),
                    (&claim.now, Type::TIMESTAMPTZ),
                    (&item, Type::INT4),
                ],
            )?;
            Ok(true)
        });
        result.map_err(|e| self.err(&e))
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
        let item = i32::try_from(item).unwrap_or(i32::MAX);
        let stored = self
            .transaction(|tx| {
                tx.execute_typed(
                    "UPDATE gate_deliveries SET state = 'sent', remote_id = $3, url = $4, error = NULL, sent_at = $5, updated_at = $5
                     WHERE digest = $1 AND account = $2 AND item = $6",
                    &[
                        (&digest, Type::TEXT),
                        (&account, Type::TEXT),
                        (&id, Type::TEXT),
                        (&url, Type::TEXT),
                        (&now, Type::TIMESTAMPTZ),
                        (&item, Type::INT4),
                    ],
                )?;
                append_in(tx, &self.env, entry, now)
            })
            .map_err(|e| self.err(&e))?;
        self.anchor(&stored);
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
        let item = i32::try_from(item).unwrap_or(i32::MAX);
        self.client
            .borrow_mut()
            .execute(
                "UPDATE gate_deliveries SET state = CASE WHEN state = 'unknown' THEN 'unknown' ELSE $3 END,
                   error = $4, updated_at = $5
                 WHERE digest = $1 AND account = $2 AND item = $6 AND state NOT IN ('sent', 'retracted')",
                &[
                    &digest,
                    &account,
                    &state.name(),
                    &crate::redact::scrub(error),
                    &now,
                    &item,
                ],
            )
            .map(|_| ())
            .map_err(|e| self.err(&e))
    }

    fn mark_retracted(
        &self,
        digest: &str,
        account: &str,
        item: u32,
        entry: &Entry,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let item = i32::try_from(item).unwrap_or(i32::MAX);
        let stored = self
            .transaction(|tx| {
                tx.execute(
                    "UPDATE gate_deliveries SET state = 'retracted', retracted_at = $3, updated_at = $3
                     WHERE digest = $1 AND account = $2 AND item = $4 AND state = 'sent'",
                    &[&digest, &account, &now, &item],
                )?;
                append_in(tx, &self.env, entry, now)
            })
            .map_err(|e| self.err(&e))?;
        self.anchor(&stored);
        Ok(())
    }

    fn find_sent(&self, account: &str, id_or_url: &str) -> Result<Option<Delivery>, Error> {
        if self.version == 0 {
            return Ok(None);
        }
        self.one(
            "SELECT {COLUMNS} FROM gate_deliveries
             WHERE account = $1 AND sent_at IS NOT NULL AND (remote_id = $2 OR url = $2)
             ORDER BY sent_at DESC LIMIT 1",
            &[(&account, Type::TEXT), (&id_or_url, Type::TEXT)],
        )
    }

    fn last_sent(&self, account: &str) -> Result<Option<Delivery>, Error> {
        if self.version == 0 {
            return Ok(None);
        }
        self.one(
            "SELECT {COLUMNS} FROM gate_deliveries
             WHERE account = $1 AND sent_at IS NOT NULL ORDER BY sent_at DESC LIMIT 1",
            &[(&account, Type::TEXT)],
        )
    }

    fn ledger(&self, now: DateTime<Utc>) -> Result<Sends, Error> {
        if self.version == 0 {
            return Ok(Sends::default());
        }
        let since = now - crate::core::limits::WINDOW;
        let rows = self
            .client
            .borrow_mut()
            .query_typed(
                &format!(
                    "SELECT digest, account, coalesce(sent_at, updated_at) AS at FROM gate_deliveries
                     WHERE ((sent_at IS NOT NULL AND sent_at > $1)
                        OR (sent_at IS NULL AND state IN ('pending', 'unknown') AND updated_at > $1)){}
                     ORDER BY at",
                    // A thread counts once: by its first item (SPEC §8).
                    if self.version >= 2 { " AND item = 0" } else { "" }
                ),
                &[(&since, Type::TIMESTAMPTZ)],
            )
            .map_err(|e| self.err(&e))?;
        Ok(Sends(
            rows.iter()
                .map(|r| Send {
                    digest: r.get(0),
                    account: r.get(1),
                    at: r.get(2),
                })
                .collect(),
        ))
    }

    fn freeze(&self) -> Result<Option<LocalFreeze>, Error> {
        if self.version == 0 {
            return Ok(None);
        }
        let row = self
            .client
            .borrow_mut()
            .query_typed_opt(
                "SELECT reason, since, by_user FROM gate_freeze WHERE one",
                &[],
            )
            .map_err(|e| self.err(&e))?;
        Ok(row.and_then(|r| {
            r.get::<_, Option<String>>(0).map(|reason| LocalFreeze {
                reason,
                since: r.get(1),
                by: r.get(2),
            })
        }))
    }

    fn set_freeze(&self, freeze: &LocalFreeze) -> Result<(), Error> {
        let host = audit::host_name(&self.env);
        self.client
            .borrow_mut()
            .execute(
                "UPDATE gate_freeze SET reason = $1, since = $2, by_user = $3, host = $4 WHERE one",
                &[
                    &freeze.reason,
                    &freeze.since.unwrap_or_else(Utc::now),
                    &freeze.by,
                    &host,
                ],
            )
            .map(|_| ())
            .map_err(|e| self.err(&e))
    }

    fn clear_freeze(&self) -> Result<bool, Error> {
        self.client
            .borrow_mut()
            .execute(
                "UPDATE gate_freeze SET reason = NULL, since = NULL, by_user = NULL, host = NULL
                 WHERE one AND reason IS NOT NULL",
                &[],
            )
            .map(|n| n > 0)
            .map_err(|e| self.err(&e))
    }

    fn append(&self, entry: &Entry, now: DateTime<Utc>) -> Result<Stored, Error> {
        let stored = self
            .transaction(|tx| append_in(tx, &self.env, entry, now))
            .map_err(|e| self.err(&e))?;
        self.anchor(&stored);
        Ok(stored)
    }

    fn entries(&self) -> Result<Vec<Stored>, Error> {
        if self.version == 0 {
            return Ok(Vec::new());
        }
        let rows = self
            .client
            .borrow_mut()
            .query(
                &format!("SELECT {AUDIT_COLUMNS} FROM gate_audit ORDER BY seq"),
                &[],
            )
            .map_err(|e| self.err(&e))?;
        Ok(rows.iter().map(stored).collect())
    }

    fn sent_text(&self, digest: &str, account: &str, url: &str) -> Option<String> {
        if self.version == 0 {
            return None;
        }
        self.client
            .borrow_mut()
            .query_opt(
                "SELECT text FROM gate_audit WHERE event = 'post' AND digest = $1 AND account = $2
                   AND url = $3
                 ORDER BY seq DESC LIMIT 1",
                &[&digest, &account, &url],
            )
            .ok()
            .flatten()
            .and_then(|r| r.get::<_, Option<String>>(0))
    }

    fn verify(&self) -> Result<Verification, Error> {
        let entries = self.entries()?;
        let high = entries.last().map_or(0, |e| e.seq);
        let verdict = audit::check_chain(&entries, high);
        let (head, unanchored) = match crate::anchor::read(&self.env, &self.anchor_item()) {
            crate::anchor::Found::Head(head) => (Some(head), None),
            crate::anchor::Found::None => (None, None),
            crate::anchor::Found::Unreachable(why) => (None, Some(why)),
        };
        let (verdict, anchored) = super::against_anchor(verdict, head.as_ref(), &entries, None);
        Ok(Verification {
            verdict,
            anchored,
            unanchored,
        })
    }
}

/// Stamps as the audit trail writes them.
pub fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shown_url_never_holds_the_password() {
        assert_eq!(
            redact("postgres://gate:hunter2@db.example.com:5432/gate?sslmode=verify-full")
                .as_deref(),
            Some("postgres://gate@db.example.com:5432/gate?sslmode=verify-full")
        );
        assert_eq!(
            redact("postgresql://db.example.com/gate").as_deref(),
            Some("postgresql://db.example.com/gate")
        );
        assert_eq!(redact("mysql://gate@db/gate"), None);
        assert_eq!(redact("not a url"), None);
        let target = Target::new("postgres://gate:pw@db:5432/gate?sslmode=disable", "x").unwrap();
        assert_eq!(target.keychain_item(), "state:postgres://gate@db:5432/gate");
    }

    #[test]
    fn sslmode_is_read_by_gate_and_the_rest_by_the_driver() {
        for (mode, tls) in [
            ("", true),
            ("?sslmode=prefer", true),
            ("?sslmode=disable", false),
            ("?sslmode=require", true),
            ("?sslmode=verify-ca", true),
            ("?sslmode=verify-full&application_name=x", true),
        ] {
            let (config, use_tls) = config(&format!("postgres://gate@db:5432/gate{mode}"))
                .unwrap_or_else(|e| panic!("{mode}: {e}"));
            assert_eq!(use_tls, tls, "{mode}");
            assert_eq!(config.get_dbname(), Some("gate"));
            assert_eq!(config.get_user(), Some("gate"));
            assert_eq!(config.get_connect_timeout(), Some(&CONNECT_TIMEOUT));
        }
        assert!(
            config("postgres://gate@db/gate?sslmode=sometimes")
                .unwrap_err()
                .contains("unknown sslmode `sometimes`")
        );
    }
}
