//! The audit trail's model: its entries and their hash chain, whichever store keeps them
//! (src/store/). Every post, refusal, approval, freeze, unfreeze, retract, login and logout
//! appends one entry; `gate log --verify` recomputes the chain.
//!
//! Each entry's `hash` is SHA-256 over [`encode`]: the tag `gate-audit-v1\n`, then every
//! field in a fixed order (seq, time, event, user, host, account, digest, text, verdict,
//! findings, reviewers, policy_sha256, url, prev), each one written as `0x00` when absent or
//! `0x01`, the byte length as 8 bytes big-endian, and the UTF-8 bytes when present (seq as
//! its decimal digits). `prev` is the hash of the entry before, or 64 zeros for the first.
//! So editing any field (or the hash) breaks the entry's own hash, removing one leaves a gap
//! in `seq`, and swapping two makes an entry's hash match another `seq` than its own.
//!
//! The store appends under its write lock (the last entry read and the next one inserted in
//! one transaction), so concurrent gate processes chain one after another, and it remembers
//! the highest seq it ever handed out, which exposes a removed last entry. What the chain
//! cannot stop: someone who can write the store and recomputes every hash after their edit.
//! The anchor (src/anchor.rs) keeps the head elsewhere to catch that.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::env::Env;

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

/// What a command knows about an event; [`chained`] adds the time, user, host and chain.
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

/// The stored entry for `entry` as the `seq`th of the trail, chained to `prev` (the hash of
/// the entry before, or [`GENESIS`]): time, user and host filled in, its hash computed.
pub fn chained(env: &Env, entry: &Entry, seq: i64, prev: String, now: DateTime<Utc>) -> Stored {
    let findings = entry
        .findings
        .as_ref()
        .map(|f| serde_json::to_string(f).expect("JSON values serialise"));
    let reviewers = (!entry.reviewers.is_empty())
        .then(|| serde_json::to_string(&entry.reviewers).expect("strings serialise"));
    let mut stored = Stored {
        seq,
        time: now.to_rfc3339_opts(SecondsFormat::Millis, true),
        event: entry.event.name().to_owned(),
        user: os_user(env),
        host: host_name(env),
        account: entry.account.clone(),
        digest: entry.digest.clone(),
        text: entry.text.clone(),
        verdict: entry.verdict.clone(),
        findings,
        reviewers,
        policy_sha256: entry.policy_sha256.clone(),
        url: entry.url.clone(),
        prev,
        hash: String::new(),
    };
    stored.hash = hash(&stored);
    stored
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

/// Recomputes the chain of `rows` (in seq order) and names the first entry that was edited,
/// removed or reordered; `high` is the highest seq the store ever handed out.
///
/// Walking in seq order, for each entry: its hash must match its own fields (else: it was
/// moved, when the hash matches its fields under another entry's seq, or edited); its seq
/// must follow the previous one (else: an entry is missing); its `prev` must be the previous
/// entry's hash. At the end, the highest handed-out seq must be the last entry's.
pub fn check_chain(rows: &[Stored], high: i64) -> Verdict {
    let mut prev_seq = 0;
    let mut prev_hash = GENESIS.to_owned();
    for row in rows {
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
            return Verdict::Broken {
                seq: row.seq,
                problem,
            };
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
            return Verdict::Broken {
                seq: missing,
                problem,
            };
        }
        if row.prev != prev_hash {
            return Verdict::Broken {
                seq: row.seq,
                problem: format!("entry {} does not follow entry {prev_seq}", row.seq),
            };
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
        return Verdict::Broken {
            seq: missing,
            problem,
        };
    }
    Verdict::Intact {
        entries: rows.len(),
        last: prev_hash,
    }
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
        text: Some(post.all_text()),
        verdict: Some(evaluation.verdict.name().to_owned()),
        findings: Some(serde_json::to_value(&evaluation.findings).expect("findings serialise")),
        reviewers: counted_reviewers(policy, post, evaluation),
        policy_sha256: Some(policy.sha256.clone()),
        ..Entry::new(event)
    }
}

/// The `post` entry for a delivery `gate post` just confirmed, written by
/// [`crate::store::Store::mark_sent`] in the same transaction as the journal's `sent`. A
/// thread has one per item, each with that item's text and URL.
pub fn sent_entry(
    policy: &crate::core::policy::Policy,
    post: &crate::core::post::Post,
    digest: &str,
    (account, item): (&str, usize),
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
            text: None,
            policy_sha256: Some(policy.sha256.clone()),
            ..Entry::new(Event::Post)
        },
    };
    entry.text = Some(post.item(Some(item)).text.clone());
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
}
