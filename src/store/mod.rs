//! The state store: the deliveries (with the claim, one named atomic operation), the freeze,
//! the rate ledger and the audit trail, behind one trait, opened once per command.
//!
//! SPEC §6 chooses it: `$GATE_STATE_URL`, then the policy's `[state] url`, else the local
//! SQLite store under the state folder ([`sqlite`]). The trait is shaped for a server
//! database too: the claim reads the freeze and the ledger and writes `pending` in one step,
//! and nothing in it names a driver type.
//!
//! A delivery is `pending` from the moment it is claimed (committed, with its idempotency key,
//! before any network call), `sent` once the network's id and URL are known, `unknown` once any
//! try ended without an answer that says whether the post went out (a dropped connection, a
//! timeout, a 5xx), and `failed` only when every try was definitely refused. An `unknown` row
//! never becomes `failed`: a later refusal does not undo an earlier try that may have gone out.
//! `gate retract` turns a `sent` row `retracted` once the network has deleted the post; the row
//! keeps its `sent_at`, so the post still counts in rate limits.

pub mod postgres;
pub mod sqlite;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::audit::{Entry, Stored, Verdict};
pub use crate::core::evaluate::LocalFreeze;
pub use crate::core::limits::{Send, Sends};
use crate::core::policy::{Freeze, Policy};
use crate::env::Env;
use crate::error::Error;

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
    pub fn name(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Unknown => "unknown",
            State::Sent => "sent",
            State::Failed => "failed",
            State::Retracted => "retracted",
        }
    }

    /// The state a stored name stands for (an unknown name reads as `pending`: it may have gone
    /// out, so it is looked for before anything is sent again).
    pub fn from_name(name: &str) -> State {
        match name {
            "sent" => State::Sent,
            "unknown" => State::Unknown,
            "failed" => State::Failed,
            "retracted" => State::Retracted,
            _ => State::Pending,
        }
    }
}

/// One delivery of one post to one account: of a thread, one item of it (SPEC §8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub digest: String,
    pub account: String,
    /// The thread item (0 for the first, and for every post that is not a thread).
    pub item: u32,
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

/// What a claim is for: one try of one delivery.
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    pub digest: &'a str,
    pub account: &'a str,
    pub item: u32,
    pub platform: &'a str,
    /// The idempotency key of a new row (an existing row keeps its own).
    pub key: &'a str,
    pub now: DateTime<Utc>,
}

/// What the claim hands its judge, read in the same step as the write: the freeze in force in
/// the store and the rate ledger of the hour.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    pub freeze: Option<LocalFreeze>,
    pub sends: Sends,
}

/// `gate log --verify`'s findings: the chain's verdict, and what the anchor kept outside the
/// store (the OS keychain) said about it.
#[derive(Debug, Clone)]
pub struct Verification {
    pub verdict: Verdict,
    /// The anchored entry that matched, when there was one.
    pub anchored: Option<i64>,
    /// Why no anchor could be compared, when no keychain answered.
    pub unanchored: Option<String>,
}

/// The state store. Every method that writes commits before it returns; `claim`,
/// `mark_sent` and `mark_retracted` are each one transaction.
pub trait Store {
    /// Which backend: `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    /// Where the state lives, for messages: the journal's path, or the database's URL without
    /// its password.
    fn location(&self) -> String;

    /// Takes the lock one delivery is sent under (a lookup, the claim, the send and the
    /// record happen while it is held), waiting up to `wait` for another process that holds
    /// it: a lock file on this machine, and with a team store a lock in the database too.
    fn lock_delivery(
        &self,
        digest: &str,
        account: &str,
        item: u32,
        wait: std::time::Duration,
    ) -> Result<Box<dyn Held + '_>, Error>;
    /// The delivery of item `item` of `digest` to `account`, if there is one.
    fn get(&self, digest: &str, account: &str, item: u32) -> Result<Option<Delivery>, Error>;
    /// Every delivery of `digest` to `account`, by item: a thread's items, or a plain post's
    /// one row.
    fn thread(&self, digest: &str, account: &str) -> Result<Vec<Delivery>, Error>;
    /// Claims the delivery for one try, in one atomic step: the freeze and the rate ledger of
    /// the hour before `claim.now` are read and handed to `judge`, and only when it says yes
    /// is the row made `pending` (a new row with `claim.key`, or an existing one with one more
    /// attempt; its key never changes, and an `unknown` row stays `unknown`). Concurrent
    /// claims take turns, so N processes woken together cannot all pass one rate limit.
    /// `Ok(false)`: judged and refused, nothing written. `judge` runs inside the store's
    /// transaction and must not call the store; a store that retries a claim it lost to a
    /// concurrent transaction calls it again. Most callers want
    /// [`judged_claim`](trait.Store.html#method.judged_claim).
    fn claim(
        &self,
        claim: &Claim<'_>,
        judge: &mut dyn FnMut(Ledger) -> bool,
    ) -> Result<bool, Error>;
    /// Records that the delivery went out, and its audit entry, in one transaction: the
    /// store never says `sent` without the audit trail saying `post`, even across a crash.
    fn mark_sent(
        &self,
        digest: &str,
        account: &str,
        item: u32,
        published: (&str, &str),
        entry: &Entry,
        now: DateTime<Utc>,
    ) -> Result<(), Error>;
    /// Records a try that ended without a post: `failed` when the network refused it,
    /// `unknown` (with the reason) when it cannot be told whether it went out. A delivery that
    /// is `unknown` stays `unknown` whatever a later try says: only finding the post resolves it.
    fn mark(
        &self,
        digest: &str,
        account: &str,
        item: u32,
        state: State,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<(), Error>;
    /// Records that the network deleted a sent post, and its audit entry, in one transaction.
    fn mark_retracted(
        &self,
        digest: &str,
        account: &str,
        item: u32,
        entry: &Entry,
        now: DateTime<Utc>,
    ) -> Result<(), Error>;
    /// The account's delivery whose remote id or URL is `id_or_url`, if gate sent it.
    fn find_sent(&self, account: &str, id_or_url: &str) -> Result<Option<Delivery>, Error>;
    /// The account's most recently sent delivery, retracted or not.
    fn last_sent(&self, account: &str) -> Result<Option<Delivery>, Error>;

    /// The rate ledger (a thread counts once, by its first item): the deliveries that may
    /// count at `now` or later: gone out since the
    /// hour before it (`sent`, `retracted`, at their `sent_at`), or claimed since then and not
    /// known to have failed (`pending`, `unknown`, at their last claim: they may have gone
    /// out). The claim counts with it, and so do `gate check` and `gate post --wait`.
    fn ledger(&self, now: DateTime<Utc>) -> Result<Sends, Error>;

    /// The freeze in force (`gate freeze`), if any. One gate cannot read counts as a freeze.
    fn freeze(&self) -> Result<Option<LocalFreeze>, Error>;
    /// Puts a freeze in force (replacing one in force).
    fn set_freeze(&self, freeze: &LocalFreeze) -> Result<(), Error>;
    /// Lifts the freeze; `false` when there was none.
    fn clear_freeze(&self) -> Result<bool, Error>;

    /// Appends an entry to the audit trail, chained to the last one.
    fn append(&self, entry: &Entry, now: DateTime<Utc>) -> Result<Stored, Error>;
    /// Every audit entry, in seq order.
    fn entries(&self) -> Result<Vec<Stored>, Error>;
    /// The text of the post sent to `account` with `digest` at `url`, as the audit trail
    /// recorded it (a thread's items each have their own URL).
    fn sent_text(&self, digest: &str, account: &str, url: &str) -> Option<String>;
    /// Recomputes the audit chain and compares its head with the anchor.
    fn verify(&self) -> Result<Verification, Error>;
}

/// A delivery's lock, released when dropped.
pub trait Held {
    /// Whether the lock is still this process's, right before a send: a team store's lock
    /// goes with the connection that took it.
    fn still_held(&self) -> Result<(), Error>;
}

/// The delivery's lock file on this machine (`deliver-DIGEST-ACCOUNT` in the lock folder,
/// `deliver-DIGEST-ACCOUNT-ITEM` for a thread's later items).
pub(crate) fn local_lock(
    env: &Env,
    digest: &str,
    account: &str,
    item: u32,
    wait: std::time::Duration,
) -> Result<crate::lock::Lock, Error> {
    let item = if item == 0 {
        String::new()
    } else {
        format!("-{item}")
    };
    crate::lock::acquire(
        env,
        &format!(
            "deliver-{}-{account}{item}",
            &digest[..32.min(digest.len())]
        ),
        wait,
    )
}

struct LocalHeld(#[allow(dead_code)] crate::lock::Lock);

impl Held for LocalHeld {
    fn still_held(&self) -> Result<(), Error> {
        Ok(())
    }
}

/// [`Store::lock_delivery`] for a store on this machine: the lock file alone.
pub(crate) fn local_held(
    env: &Env,
    digest: &str,
    account: &str,
    item: u32,
    wait: std::time::Duration,
) -> Result<Box<dyn Held>, Error> {
    Ok(Box::new(LocalHeld(local_lock(
        env, digest, account, item, wait,
    )?)))
}

impl dyn Store + '_ {
    /// [`Store::claim`] with a judge that gives its reason: `Ok(Err(reason))` when it refused
    /// (nothing written), `Ok(Ok(()))` when the row is `pending`. A store that retries a claim
    /// it lost to a concurrent transaction asks the judge again, with the ledger of then.
    pub fn judged_claim<R>(
        &self,
        claim: &Claim<'_>,
        mut judge: impl FnMut(Ledger) -> Result<(), R>,
    ) -> Result<Result<(), R>, Error> {
        let mut refused = None;
        let allowed = self.claim(claim, &mut |ledger| match judge(ledger) {
            Ok(()) => {
                refused = None;
                true
            }
            Err(why) => {
                refused = Some(why);
                false
            }
        })?;
        match (allowed, refused) {
            (true, _) => Ok(Ok(())),
            (false, Some(why)) => Ok(Err(why)),
            (false, None) => Err(Error::other(format!(
                "the claim of `{}` was not judged",
                claim.account
            ))),
        }
    }

    /// The delivery that stands for a whole post of `items` items (1 for a plain post): item
    /// 0's row once every item is `sent` (its URL is the thread's), else the row of the first
    /// item that is not (`None` when that item has none yet). `gate plan` and `gate post --due`
    /// read a thread's state with it.
    pub fn whole(
        &self,
        digest: &str,
        account: &str,
        items: usize,
    ) -> Result<Option<Delivery>, Error> {
        if items <= 1 {
            return self.get(digest, account, 0);
        }
        let rows = self.thread(digest, account)?;
        let first_unsent = (0..items).find(|&k| {
            !rows
                .iter()
                .any(|r| r.item as usize == k && r.state == State::Sent)
        });
        Ok(match first_unsent {
            None => rows.into_iter().find(|r| r.item == 0),
            Some(k) => rows.into_iter().find(|r| r.item as usize == k),
        })
    }

    /// Appends an entry stamped with the clock of now.
    pub fn record(&self, entry: &Entry) -> Result<(), Error> {
        self.append(entry, Utc::now()).map(|_| ())
    }
}

/// Whether the store may be written: `gate check` and other readers open it read-only, and
/// a read-only SQLite store is never created or migrated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// Opens the state store SPEC §6 names for this command (`$GATE_STATE_URL`, then the policy's
/// `[state] url`, else SQLite under the state folder). Nothing is read or created until the
/// first call that needs it.
/// A team store is connected to at once (an unreachable one is an error, never a fallback),
/// and its schema created or migrated when the role may.
pub fn open(env: &Env, policy: Option<&Policy>, access: Access) -> Result<Box<dyn Store>, Error> {
    match team_target(env, policy)? {
        Some(target) => Ok(Box::new(postgres::Postgres::connect(
            env,
            target,
            access == Access::Write,
        )?)),
        None => Ok(Box::new(sqlite::Sqlite::open(env, access))),
    }
}

/// The team store SPEC §6 names: `$GATE_STATE_URL`, then the policy's `[state] url`.
pub fn team_target(env: &Env, policy: Option<&Policy>) -> Result<Option<postgres::Target>, Error> {
    if let Some(url) = env.var("GATE_STATE_URL").filter(|u| !u.trim().is_empty()) {
        return postgres::Target::new(url, "GATE_STATE_URL").map(Some);
    }
    match policy.and_then(|p| p.state_url.as_deref()) {
        Some(url) => postgres::Target::new(url, "the policy's `[state] url`").map(Some),
        None => Ok(None),
    }
}

/// The freezes in force: the store's (`gate freeze`) and the policy's `[freeze]`.
pub struct FreezeState {
    pub local: Option<LocalFreeze>,
    pub policy: Option<Freeze>,
    /// Where the store's freeze was read, for the human line.
    pub place: String,
}

impl FreezeState {
    pub fn read(store: &dyn Store, policy: Option<&Policy>) -> Result<FreezeState, Error> {
        Ok(FreezeState {
            local: store.freeze()?,
            policy: policy.and_then(|p| p.freeze.clone()),
            place: if store.backend() == "sqlite" {
                "in this state folder".to_owned()
            } else {
                format!("in the team store `{}`", store.location())
            },
        })
    }

    pub fn frozen(&self) -> bool {
        self.local.is_some() || self.policy.is_some()
    }

    /// The human summary, one line (two when both freezes are in force).
    pub fn line(&self) -> String {
        let since = |t: Option<DateTime<Utc>>| {
            t.map(|t| format!(" since {}", t.to_rfc3339_opts(SecondsFormat::Secs, true)))
                .unwrap_or_default()
        };
        let mut lines = Vec::new();
        if let Some(f) = &self.local {
            lines.push(format!(
                "frozen {}{}{}: {} (lift it with `gate unfreeze`)",
                self.place,
                since(f.since),
                f.by.as_ref()
                    .map(|b| format!(" by {b}"))
                    .unwrap_or_default(),
                f.reason
            ));
        }
        if let Some(f) = &self.policy {
            lines.push(format!(
                "frozen by the policy's `[freeze]`{}: {}",
                since(f.since),
                f.reason
            ));
        }
        if lines.is_empty() {
            "not frozen".to_owned()
        } else {
            lines.join("\n")
        }
    }

    pub fn json(&self) -> Value {
        let stamp =
            |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true));
        json!({
            "frozen": self.frozen(),
            "local": self.local.as_ref().map(|f| json!({"reason": f.reason, "since": stamp(f.since), "by": f.by})),
            "policy": self.policy.as_ref().map(|f| json!({"reason": f.reason, "since": stamp(f.since)})),
        })
    }
}

/// Who puts a freeze in force: `$USER`, `$LOGNAME`, else the name `/etc/passwd` gives the uid.
pub fn freezer(env: &Env) -> Option<String> {
    env.var("USER")
        .or_else(|| env.var("LOGNAME"))
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .or_else(crate::state::user_name)
}

/// Compares a chain found intact with the anchored head. `gone`: the store itself is missing
/// (its message), as opposed to empty.
pub(crate) fn against_anchor(
    verdict: Verdict,
    head: Option<&crate::anchor::Head>,
    entries: &[Stored],
    gone: Option<String>,
) -> (Verdict, Option<i64>) {
    let (Verdict::Intact { .. }, Some(head)) = (&verdict, head) else {
        return (verdict, None);
    };
    let last = entries.last().map_or(0, |e| e.seq);
    let broken = |seq, problem| Verdict::Broken { seq, problem };
    let verdict = match entries.iter().find(|e| e.seq == head.seq) {
        Some(e) if e.hash == head.hash => verdict,
        Some(_) => broken(
            head.seq,
            format!(
                "entry {} is not the one the keychain anchored: the trail was rewritten",
                head.seq
            ),
        ),
        None => match gone {
            Some(what) => broken(
                1,
                format!("{what}, but its audit trail had reached entry {}", head.seq),
            ),
            None if last == 0 => broken(
                1,
                format!(
                    "the audit trail is empty, but it had reached entry {}: its entries were removed",
                    head.seq
                ),
            ),
            None => broken(
                last + 1,
                format!(
                    "entries after {last} were removed: the trail had reached entry {}",
                    head.seq
                ),
            ),
        },
    };
    (verdict, Some(head.seq))
}
