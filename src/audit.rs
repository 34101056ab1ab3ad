//! The audit trail: an append-only, hash-chained `audit` table in the journal database
//! (`$GATE_HOME/journal.sqlite3`). Every post, refusal, approval, freeze, unfreeze, retract,
//! login and logout appends one entry; `gate log --verify` recomputes the chain.
//!
//! Each entry's `hash` is SHA-256 over [`encode`]: the tag `gate-audit-v1\n`, then every
//! field in a fixed order (seq, time, event, user, host, account, digest, text, verdict,
//! findings, reviewers, policy_sha256, url, prev), each one written as `0x00` when absent or
//! `0x01`, the byte length as 8 bytes big-endian, and the UTF-8 bytes when present (seq as
//! its decimal digits). `prev` is the hash of the entry before, or 64 zeros for the first.
//! So editing any field (or the hash) breaks the entry's own hash, removing one leaves a gap
//! in `seq`, and swapping two makes an entry's hash match another `seq` than its own.
//!
//! Appending happens inside `BEGIN IMMEDIATE`: the last entry is read and the next one
//! inserted under SQLite's write lock, so concurrent gate processes chain one after another.
//! The table is `AUTOINCREMENT`, so SQLite also remembers the highest seq ever used, which
//! exposes a removed last entry. What the chain cannot stop: someone who can write the file
//! and recomputes every hash after their edit. Keep the last hash `gate log --verify` prints
//! somewhere else to catch that.

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OptionalExtension as _, params};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::env::Env;
use crate::error::Error;
use crate::journal::Journal;

/// Created by the journal's migration (schema version 2).
pub const SCHEMA: &str = "
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

/// The `prev` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    Post,
    Refused,
    Approve,
    Freeze,
    Unfreeze,
    Retract,
    Login,
    Logout,
}

impl Event {
    pub fn name(self) -> &'static str {
        match self {
            Event::Post => "post",
            Event::Refused => "refused",
            Event::Approve => "approve",
            Event::Freeze => "freeze",
            Event::Unfreeze => "unfreeze",
            Event::Retract => "retract",
            Event::Login => "login",
            Event::Logout => "logout",
        }
    }
}

/// What a command knows about an event; [`record`] adds the time, user, host and chain.
#[derive(Debug, Clone)]
pub struct Entry {
    pub event: Event,
    pub account: Option<String>,
    /// The post's digest (SHA-256 of its `gate-post-v1` message).
    pub digest: Option<String>,
    /// The post's text; for `freeze`, the reason.
    pub text: Option<String>,
    pub verdict: Option<String>,
    /// The findings as a JSON array.
    pub findings: Option<serde_json::Value>,
    /// The reviewers whose approvals counted.
    pub reviewers: Vec<String>,
    pub policy_sha256: Option<String>,
    pub url: Option<String>,
}

impl Entry {
    pub fn new(event: Event) -> Entry {
        Entry {
            event,
            account: None,
            digest: None,
            text: None,
            verdict: None,
            findings: None,
            reviewers: Vec::new(),
            policy_sha256: None,
            url: None,
        }
    }
}

/// One stored entry, as read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stored {
    pub seq: i64,
    pub time: String,
    pub event: String,
    pub user: String,
    pub host: String,
    pub account: Option<String>,
    pub digest: Option<String>,
    pub text: Option<String>,
    pub verdict: Option<String>,
    pub findings: Option<String>,
    pub reviewers: Option<String>,
    pub policy_sha256: Option<String>,
    pub url: Option<String>,
    pub prev: String,
    pub hash: String,
}

/// The canonical bytes an entry's hash covers (see the module documentation).
pub fn encode(s: &Stored) -> Vec<u8> {
    let seq = s.seq.to_string();
    let fields: [Option<&str>; 14] = [
        Some(&seq),
        Some(&s.time),
        Some(&s.event),
        Some(&s.user),
        Some(&s.host),
        s.account.as_deref(),
        s.digest.as_deref(),
        s.text.as_deref(),
        s.verdict.as_deref(),
        s.findings.as_deref(),
        s.reviewers.as_deref(),
        s.policy_sha256.as_deref(),
        s.url.as_deref(),
        Some(&s.prev),
    ];
    let mut out = b"gate-audit-v1\n".to_vec();
    for field in fields {
        match field {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                out.extend_from_slice(&(v.len() as u64).to_be_bytes());
                out.extend_from_slice(v.as_bytes());
            }
        }
    }
    out
}

pub fn hash(s: &Stored) -> String {
    crate::core::policy::hex(&Sha256::digest(encode(s)))
}

/// The person running gate: `USER`, `LOGNAME`, else the numeric uid.
pub fn os_user(env: &Env) -> String {
    env.var("USER")
        .or_else(|| env.var("LOGNAME"))
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .or_else(|| {
            let status = std::fs::read_to_string("/proc/self/status").ok()?;
            let uid = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
            Some(format!("uid {}", uid.split_whitespace().next()?))
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// This machine's name, from the kernel, `/etc/hostname` or `HOSTNAME`.
pub fn host_name(env: &Env) -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| {
            std::fs::read_to_string(p)
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        })
        .or_else(|| env.var("HOSTNAME").map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}

fn db_error(journal: &Journal, e: &rusqlite::Error) -> Error {
    Error::other(format!(
        "cannot write the audit trail in `{}`: {e}",
        journal.path.display()
    ))
    .with_hint("check that the state folder is writable; `GATE_HOME` moves it")
}

/// Appends an entry to the audit trail (creating the journal database if needed).
pub fn record(env: &Env, entry: &Entry) -> Result<(), Error> {
    let journal = Journal::open(env)?;
    append(&journal, env, entry, Utc::now()).map(|_| ())
}

/// Appends under `BEGIN IMMEDIATE`, chained to the last entry; returns the stored entry.
pub fn append(
    journal: &Journal,
    env: &Env,
    entry: &Entry,
    now: DateTime<Utc>,
) -> Result<Stored, Error> {
    let conn = journal.connection();
    let err = |e: rusqlite::Error| db_error(journal, &e);
    conn.execute_batch("BEGIN IMMEDIATE").map_err(err)?;
    match insert(conn, env, entry, now) {
        Ok(stored) => {
            conn.execute_batch("COMMIT").map_err(err)?;
            crate::anchor::advance_to(env, &journal.path, &stored);
            Ok(stored)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(err(e))
        }
    }
}

/// Inserts an entry chained to the last one, inside the caller's write transaction (so a
/// delivery's `sent` and its `post` entry commit together).
pub(crate) fn insert(
    conn: &Connection,
    env: &Env,
    entry: &Entry,
    now: DateTime<Utc>,
) -> rusqlite::Result<Stored> {
    let findings = entry
        .findings
        .as_ref()
        .map(|f| serde_json::to_string(f).expect("JSON values serialise"));
    let reviewers = (!entry.reviewers.is_empty())
        .then(|| serde_json::to_string(&entry.reviewers).expect("strings serialise"));
    let last: Option<(i64, String)> = conn
        .query_row(
            "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let high = highest_seq(conn)?.unwrap_or(0);
    let (last_seq, prev) = last.unwrap_or((0, GENESIS.to_owned()));
    let mut stored = Stored {
        seq: last_seq.max(high) + 1,
        time: now.to_rfc3339_opts(SecondsFormat::Millis, true),
        event: entry.event.name().to_owned(),
        user: os_user(env),
        host: host_name(env),
        account: entry.account.clone(),
        digest: entry.digest.clone(),
        text: entry.text.clone(),
        verdict: entry.verdict.clone(),
        findings: findings.clone(),
        reviewers: reviewers.clone(),
        policy_sha256: entry.policy_sha256.clone(),
        url: entry.url.clone(),
        prev,
        hash: String::new(),
    };
    stored.hash = hash(&stored);
    conn.execute(
        "INSERT INTO audit (seq, time, event, user, host, account, digest, text, verdict,
                            findings, reviewers, policy_sha256, url, prev, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
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

/// The text of the post sent to `account` with `digest`, as the audit trail recorded it
/// (the journal keeps only the digest): for showing what a retract would delete.
pub fn sent_text(journal: &Journal, digest: &str, account: &str) -> Option<String> {
    journal
        .connection()
        .query_row(
            "SELECT text FROM audit WHERE event = 'post' AND digest = ?1 AND account = ?2
             ORDER BY seq DESC LIMIT 1",
            params![digest, account],
            |r| r.get::<_, Option<String>>(0),
        )
        .optional()
        .ok()
        .flatten()
        .flatten()
}

/// Every entry, in seq order.
pub fn entries(journal: &Journal) -> Result<Vec<Stored>, Error> {
    let conn = journal.connection();
    let err = |e: rusqlite::Error| db_error(journal, &e);
    let mut stmt = conn
        .prepare(
            "SELECT seq, time, event, user, host, account, digest, text, verdict, findings,
                    reviewers, policy_sha256, url, prev, hash
             FROM audit ORDER BY seq",
        )
        .map_err(err)?;
    let rows = stmt
        .query_map([], |r| {
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
        })
        .map_err(err)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(err)
}

/// What `--verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Intact {
        entries: usize,
        last: String,
    },
    /// The first bad entry's seq and what is wrong with it.
    Broken {
        seq: i64,
        problem: String,
    },
}

/// Recomputes the chain and names the first entry that was edited, removed or reordered.
///
/// Walking in seq order, for each entry: its hash must match its own fields (else: it was
/// moved, when the hash matches its fields under another entry's seq, or edited); its seq
/// must follow the previous one (else: an entry is missing); its `prev` must be the previous
/// entry's hash. At the end, SQLite's highest handed-out seq must be the last entry's.
pub fn verify(journal: &Journal) -> Result<Verdict, Error> {
    let rows = entries(journal)?;
    let high = highest_seq(journal.connection())
        .map_err(|e| db_error(journal, &e))?
        .unwrap_or(0);
    let mut prev_seq = 0;
    let mut prev_hash = GENESIS.to_owned();
    for row in &rows {
        if hash(row) != row.hash {
            let moved_from = rows
                .iter()
                .map(|r| r.seq)
                .find(|&seq| seq != row.seq && hash(&Stored { seq, ..row.clone() }) == row.hash);
            let problem = match moved_from {
                Some(was) => format!(
                    "entries out of order at {}: it was written as entry {was}",
                    row.seq
                ),
                None => format!("entry {} was edited", row.seq),
            };
            return Ok(Verdict::Broken {
                seq: row.seq,
                problem,
            });
        }
        if row.seq != prev_seq + 1 {
            let missing = prev_seq + 1;
            let problem = if prev_seq == 0 {
                format!(
                    "entry {missing} is missing (the trail starts at {})",
                    row.seq
                )
            } else {
                format!(
                    "entry {missing} is missing ({prev_seq} is followed by {})",
                    row.seq
                )
            };
            return Ok(Verdict::Broken {
                seq: missing,
                problem,
            });
        }
        if row.prev != prev_hash {
            return Ok(Verdict::Broken {
                seq: row.seq,
                problem: format!("entry {} does not follow entry {prev_seq}", row.seq),
            });
        }
        prev_seq = row.seq;
        prev_hash = row.hash.clone();
    }
    if high > prev_seq {
        let missing = prev_seq + 1;
        let problem = if prev_seq == 0 {
            format!(
                "entry {missing} is missing (the trail is empty, but {high} entries were written)"
            )
        } else {
            format!(
                "entry {missing} is missing (the last entry is {prev_seq}, but {high} were written)"
            )
        };
        return Ok(Verdict::Broken {
            seq: missing,
            problem,
        });
    }
    Ok(Verdict::Intact {
        entries: rows.len(),
        last: prev_hash,
    })
}

/// The entry for one account's judged post: its verdict, findings, the reviewers whose
/// approvals counted and the policy's digest. `digest` is the post's digest over the
/// accounts it goes to.
pub fn for_post(
    event: Event,
    policy: &crate::core::policy::Policy,
    post: &crate::core::post::Post,
    digest: &str,
    evaluation: &crate::core::evaluate::Evaluation,
) -> Entry {
    Entry {
        account: evaluation.account.clone(),
        digest: Some(digest.to_owned()),
        text: Some(post.text.clone()),
        verdict: Some(evaluation.verdict.name().to_owned()),
        findings: Some(serde_json::to_value(&evaluation.findings).expect("findings serialise")),
        reviewers: counted_reviewers(policy, post, evaluation),
        policy_sha256: Some(policy.sha256.clone()),
        ..Entry::new(event)
    }
}

/// The `post` entry for a delivery `gate post` just confirmed, written by
/// [`Journal::mark_sent`] in the same transaction as the journal's `sent`.
pub fn sent_entry(
    policy: &crate::core::policy::Policy,
    post: &crate::core::post::Post,
    digest: &str,
    account: &str,
    evaluations: &[crate::core::evaluate::Evaluation],
    url: &str,
) -> Entry {
    let mut entry = match evaluations
        .iter()
        .find(|e| e.account.as_deref() == Some(account))
    {
        Some(e) => for_post(Event::Post, policy, post, digest, e),
        None => Entry {
            account: Some(account.to_owned()),
            digest: Some(digest.to_owned()),
            text: Some(post.text.clone()),
            policy_sha256: Some(policy.sha256.clone()),
            ..Entry::new(Event::Post)
        },
    };
    entry.url = Some(url.to_owned());
    entry
}

/// The reviewers whose approvals counted for one account: the valid signatures over the
/// post's digest message, checked as the policy engine checks them (a satisfied `reviewers`
/// finding is dropped from the evaluation, so it cannot be read from there).
pub fn counted_reviewers(
    policy: &crate::core::policy::Policy,
    post: &crate::core::post::Post,
    evaluation: &crate::core::evaluate::Evaluation,
) -> Vec<String> {
    if post.approvals.is_empty() {
        return Vec::new();
    }
    let names: Vec<String> = if post.accounts.is_empty() {
        evaluation.account.iter().cloned().collect()
    } else {
        post.accounts.clone()
    };
    crate::core::reviewers::verify_approvals(
        &policy.reviewer_keys,
        post.author.as_deref(),
        post.digest_message(&names).as_bytes(),
        &post.approvals,
    )
    .valid
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal(dir: &std::path::Path) -> (Journal, Env) {
        let env = Env::for_tests(dir);
        (Journal::open(&env).unwrap(), env)
    }

    fn freeze(j: &Journal, env: &Env, reason: &str) -> Stored {
        let mut e = Entry::new(Event::Freeze);
        e.text = Some(reason.to_owned());
        append(j, env, &e, Utc::now()).unwrap()
    }

    #[test]
    fn the_encoding_is_length_delimited_and_pinned() {
        let s = Stored {
            seq: 1,
            time: "t".into(),
            event: "freeze".into(),
            user: "u".into(),
            host: "h".into(),
            account: None,
            digest: None,
            text: Some("ab".into()),
            verdict: None,
            findings: None,
            reviewers: None,
            policy_sha256: None,
            url: None,
            prev: "p".into(),
            hash: String::new(),
        };
        let mut want = b"gate-audit-v1\n".to_vec();
        for v in ["1", "t", "freeze", "u", "h"] {
            want.push(1);
            want.extend_from_slice(&(v.len() as u64).to_be_bytes());
            want.extend_from_slice(v.as_bytes());
        }
        want.extend_from_slice(&[0, 0]);
        want.push(1);
        want.extend_from_slice(&2u64.to_be_bytes());
        want.extend_from_slice(b"ab");
        want.extend_from_slice(&[0, 0, 0, 0, 0]);
        want.push(1);
        want.extend_from_slice(&1u64.to_be_bytes());
        want.push(b'p');
        assert_eq!(encode(&s), want);
        // Moving a byte from one field to the next changes the encoding.
        let shifted = Stored {
            user: "uh".into(),
            host: String::new(),
            ..s.clone()
        };
        assert_ne!(encode(&shifted), encode(&s));
        // Absent and empty differ.
        let empty = Stored {
            account: Some(String::new()),
            ..s.clone()
        };
        assert_ne!(encode(&empty), encode(&s));
    }

    #[test]
    fn entries_chain_and_verify() {
        let dir = tempfile::tempdir().unwrap();
        let (j, env) = journal(dir.path());
        assert_eq!(
            verify(&j).unwrap(),
            Verdict::Intact {
                entries: 0,
                last: GENESIS.to_owned()
            }
        );
        let a = freeze(&j, &env, "one");
        let b = freeze(&j, &env, "two");
        assert_eq!((a.seq, b.seq), (1, 2));
        assert_eq!(a.prev, GENESIS);
        assert_eq!(b.prev, a.hash);
        assert_eq!(
            verify(&j).unwrap(),
            Verdict::Intact {
                entries: 2,
                last: b.hash
            }
        );
    }

    #[test]
    fn a_removed_last_entry_is_named_and_the_next_append_leaves_the_gap() {
        let dir = tempfile::tempdir().unwrap();
        let (j, env) = journal(dir.path());
        for r in ["a", "b", "c"] {
            freeze(&j, &env, r);
        }
        j.connection()
            .execute("DELETE FROM audit WHERE seq = 3", [])
            .unwrap();
        let broken = Verdict::Broken {
            seq: 3,
            problem: "entry 3 is missing (the last entry is 2, but 3 were written)".into(),
        };
        assert_eq!(verify(&j).unwrap(), broken);
        let d = freeze(&j, &env, "d");
        assert_eq!(d.seq, 4);
        assert_eq!(
            verify(&j).unwrap(),
            Verdict::Broken {
                seq: 3,
                problem: "entry 3 is missing (2 is followed by 4)".into()
            }
        );
    }

    #[test]
    fn a_relinked_entry_with_a_recomputed_hash_does_not_follow() {
        let dir = tempfile::tempdir().unwrap();
        let (j, env) = journal(dir.path());
        for r in ["a", "b", "c"] {
            freeze(&j, &env, r);
        }
        // Entry 3 rewritten to point at a made-up predecessor, its own hash recomputed.
        let mut third = entries(&j).unwrap().pop().unwrap();
        third.prev = "f".repeat(64);
        third.hash = hash(&third);
        j.connection()
            .execute(
                "UPDATE audit SET prev = ?1, hash = ?2 WHERE seq = 3",
                params![third.prev, third.hash],
            )
            .unwrap();
        assert_eq!(
            verify(&j).unwrap(),
            Verdict::Broken {
                seq: 3,
                problem: "entry 3 does not follow entry 2".into()
            }
        );
    }
}
