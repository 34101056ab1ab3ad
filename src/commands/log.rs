//! `gate log`: the audit trail, a line per entry (or JSON Lines with `--json`), and
//! `gate log --verify`, which recomputes its hash chain.
//!
//! In human mode the freeze state (this machine's and the policy's `[freeze]`, when a policy
//! is found) comes first, on stderr; stdout holds only entries, so `--json` output is pure
//! JSON Lines, one entry per line.

use std::io::Write as _;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::audit::{self, Stored, Verdict};
use crate::cli::LogArgs;
use crate::commands::{Ctx, print_json};
use crate::core::evaluate::LocalFreeze;
use crate::core::policy::{Freeze, Policy};
use crate::error::{Code, Error};
use crate::journal::Journal;
use crate::state;

pub fn run(ctx: &Ctx, args: &LogArgs) -> Result<Code, Error> {
    let since = args.since.as_deref().map(parse_since).transpose()?;
    if args.verify {
        return verify(ctx);
    }
    let journal = Journal::open_existing(&ctx.env)?;
    if !ctx.global.json {
        let policy = locate_policy(ctx);
        let freeze = FreezeState::read(ctx, policy.as_ref())?;
        ctx.note(&freeze.line());
    }
    let entries = match &journal {
        Some(j) => audit::entries(j)?,
        None => Vec::new(),
    };
    let mut out = std::io::stdout().lock();
    for e in entries.iter().filter(|e| {
        args.account
            .as_deref()
            .is_none_or(|a| e.account.as_deref() == Some(a))
            && since.is_none_or(|s| {
                DateTime::parse_from_rfc3339(&e.time).is_ok_and(|t| t.to_utc() >= s)
            })
    }) {
        let line = if ctx.global.json {
            serde_json::to_string(&entry_json(e))
                .map_err(|e| Error::other(format!("cannot write JSON: {e}")))?
        } else {
            human(e)
        };
        writeln!(out, "{line}").map_err(|e| Error::stdout(&e))?;
    }
    Ok(Code::Ok)
}

fn verify(ctx: &Ctx) -> Result<Code, Error> {
    let dir = state::dir(&ctx.env)?;
    let path = dir.join(crate::journal::FILE);
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
    let anchor = crate::anchor::read(&ctx.env, &path);
    let emptied = std::fs::metadata(&path).is_ok_and(|m| m.len() == 0);
    let journal = if emptied {
        None
    } else {
        Journal::open_existing(&ctx.env)?
    };
    let mut verdict = match &journal {
        Some(j) => audit::verify(j)?,
        None => Verdict::Intact {
            entries: 0,
            last: audit::GENESIS.to_owned(),
        },
    };
    if emptied {
        verdict = Verdict::Broken {
            seq: 1,
            problem: format!(
                "the journal `{}` is empty (0 bytes): it was emptied outside gate",
                path.display()
            ),
        };
    }
    let anchored = match (&verdict, &anchor) {
        (Verdict::Intact { .. }, crate::anchor::Found::Head(head)) => {
            let found = match &journal {
                Some(j) => audit::entries(j)?,
                None => Vec::new(),
            };
            let last = found.last().map_or(0, |e| e.seq);
            match found.iter().find(|e| e.seq == head.seq) {
                Some(e) if e.hash == head.hash => {}
                Some(_) => {
                    verdict = Verdict::Broken {
                        seq: head.seq,
                        problem: format!(
                            "entry {} is not the one the keychain anchored: the trail was rewritten",
                            head.seq
                        ),
                    };
                }
                None if journal.is_none() => {
                    verdict = Verdict::Broken {
                        seq: 1,
                        problem: format!(
                            "the journal `{}` is gone, but its audit trail had reached entry {}",
                            path.display(),
                            head.seq
                        ),
                    };
                }
                None if last == 0 => {
                    verdict = Verdict::Broken {
                        seq: 1,
                        problem: format!(
                            "the audit trail is empty, but it had reached entry {}: its entries were removed",
                            head.seq
                        ),
                    };
                }
                None => {
                    verdict = Verdict::Broken {
                        seq: last + 1,
                        problem: format!(
                            "entries after {last} were removed: the trail had reached entry {}",
                            head.seq
                        ),
                    };
                }
            }
            Some(head.seq)
        }
        _ => None,
    };
    match verdict {
        Verdict::Intact { entries, last } => {
            if ctx.global.json {
                print_json(
                    &json!({"intact": true, "entries": entries, "last_hash": last, "anchored": anchored}),
                )?;
            } else {
                println!("{entries} entries, chain intact");
                match (&anchor, anchored) {
                    (_, Some(seq)) => ctx.note(&format!(
                        "the keychain's anchor (entry {seq}) matches; the last entry's hash is {last}"
                    )),
                    (crate::anchor::Found::Unreachable(why), _) => ctx.note(&format!(
                        "not anchored ({why}): only the chain itself was checked; the last entry's hash is {last}: keep it elsewhere to detect a rewritten trail"
                    )),
                    _ => ctx.note(&format!("the last entry's hash is {last}")),
                }
            }
            Ok(Code::Ok)
        }
        Verdict::Broken { seq, problem } => {
            let error = Error::other(problem.clone()).with_hint(format!(
                "the audit trail in `{}` was changed outside gate; compare it with a backup",
                path.display()
            ));
            if ctx.global.json {
                print_json(&json!({"intact": false, "seq": seq, "problem": problem}))?;
                let _ = write!(anstream::stderr(), "{}", error.render());
                return Ok(Code::Failure);
            }
            Err(error)
        }
    }
}

/// `--since`: RFC 3339, or a date meaning its midnight UTC.
fn parse_since(text: &str) -> Result<DateTime<Utc>, Error> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.to_utc())
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
        })
        .ok_or_else(|| {
            Error::usage(format!("invalid value `{text}` for `--since`")).with_hint(
                "write an RFC 3339 time like `2026-11-23T10:00:00Z` or a date like `2026-11-23`",
            )
        })
}

/// One entry as a JSON object; `findings` and `reviewers` as JSON, not strings.
pub fn entry_json(e: &Stored) -> Value {
    let parse = |s: &Option<String>| {
        s.as_deref()
            .map(|s| serde_json::from_str::<Value>(s).unwrap_or_else(|_| Value::String(s.into())))
    };
    json!({
        "seq": e.seq,
        "time": e.time,
        "event": e.event,
        "user": e.user,
        "host": e.host,
        "account": e.account,
        "digest": e.digest,
        "text": e.text,
        "verdict": e.verdict,
        "findings": parse(&e.findings),
        "reviewers": parse(&e.reviewers).unwrap_or_else(|| json!([])),
        "policy_sha256": e.policy_sha256,
        "url": e.url,
        "prev": e.prev,
        "hash": e.hash,
    })
}

/// `seq time event account verdict URL-or-text`, with `-` for what an entry lacks.
fn human(e: &Stored) -> String {
    let detail = match (&e.url, &e.text) {
        // Control characters from a server's answer never reach the terminal as such.
        (Some(url), _) => url.escape_debug().to_string(),
        (None, Some(text)) => excerpt(text),
        (None, None) => String::new(),
    };
    format!(
        "{:>5}  {}  {:<8}  {:<12}  {:<7}  {}",
        e.seq,
        e.time,
        e.event,
        e.account.as_deref().unwrap_or("-"),
        e.verdict.as_deref().unwrap_or("-"),
        detail
    )
    .trim_end()
    .to_owned()
}

/// The first 60 characters of a text on one line, quoted.
fn excerpt(text: &str) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut short: String = flat.chars().take(60).collect();
    if short.len() < flat.len() {
        short.push('…');
    }
    format!("{short:?}")
}

/// The policy if one is found and valid; `gate log` works without one.
fn locate_policy(ctx: &Ctx) -> Option<Policy> {
    let (path, _) = crate::inputs::locate_policy(ctx.global.policy.as_deref(), &ctx.env)?;
    crate::inputs::load_policy(&path).0
}

/// The freezes in force: this machine's (`gate freeze`) and the policy's `[freeze]`.
pub struct FreezeState {
    pub local: Option<LocalFreeze>,
    pub policy: Option<Freeze>,
}

impl FreezeState {
    pub fn read(ctx: &Ctx, policy: Option<&Policy>) -> Result<FreezeState, Error> {
        Ok(FreezeState {
            local: state::read_freeze(&ctx.env)?,
            policy: policy.and_then(|p| p.freeze.clone()),
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
                "frozen in this state folder{}{}: {} (lift it with `gate unfreeze`)",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_times_and_dates() {
        assert_eq!(
            parse_since("2026-11-23").unwrap().to_rfc3339(),
            "2026-11-23T00:00:00+00:00"
        );
        assert_eq!(
            parse_since("2026-11-23T10:00:00+01:00")
                .unwrap()
                .to_rfc3339(),
            "2026-11-23T09:00:00+00:00"
        );
        assert!(parse_since("yesterday").is_err());
    }

    #[test]
    fn excerpts_are_one_short_line() {
        assert_eq!(excerpt("a\nb"), "\"a b\"");
        let long = "x".repeat(100);
        assert_eq!(excerpt(&long), format!("\"{}…\"", "x".repeat(60)));
    }
}
