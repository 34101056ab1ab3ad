//! `gate log`: the audit trail, a line per entry (or JSON Lines with `--json`), and
//! `gate log --verify`, which recomputes its hash chain.
//!
//! In human mode the freeze state (this machine's and the policy's `[freeze]`, when a policy
//! is found) comes first, on stderr; stdout holds only entries, so `--json` output is pure
//! JSON Lines, one entry per line.

use std::io::Write as _;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Value, json};

use crate::audit::{Stored, Verdict};
use crate::cli::LogArgs;
use crate::commands::Ctx;
use crate::core::policy::Policy;
use crate::error::{Code, Error};
use crate::store::{Access, FreezeState, Store, Verification};

pub fn run(ctx: &Ctx, args: &LogArgs) -> Result<Code, Error> {
    let since = args.since.as_deref().map(parse_since).transpose()?;
    let policy = locate_policy(ctx);
    let store = ctx.store(policy.as_ref(), Access::Write)?;
    let store: &dyn Store = store.as_ref();
    if args.verify {
        return verify(ctx, store);
    }
    if !ctx.global.json {
        if store.backend() == "sqlite" {
            ctx.print
                .verbose(&format!("the audit trail in `{}`", store.location()));
        } else {
            ctx.print.note(&format!(
                "the audit trail of the team store `{}`",
                store.location()
            ));
        }
        let freeze = FreezeState::read(store, policy.as_ref())?;
        ctx.print.note(&freeze.line());
    }
    let entries = store.entries()?;
    let mut out = ctx.print.lines();
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
    out.flush().map_err(|e| Error::stdout(&e))?;
    Ok(Code::Ok)
}

fn verify(ctx: &Ctx, store: &dyn Store) -> Result<Code, Error> {
    let Verification {
        verdict,
        anchored,
        unanchored,
    } = store.verify()?;
    match verdict {
        Verdict::Intact { entries, last } => {
            if ctx.global.json {
                ctx.print.json(
                    &json!({"intact": true, "entries": entries, "last_hash": last, "anchored": anchored}),
                )?;
            } else {
                ctx.print
                    .line(format_args!("{entries} entries, chain intact"))?;
                match (anchored, unanchored) {
                    (Some(seq), _) => ctx.print.note(&format!(
                        "the keychain's anchor (entry {seq}) matches; the last entry's hash is {last}"
                    )),
                    (None, Some(why)) => ctx.print.note(&format!(
                        "not anchored ({why}): only the chain itself was checked; the last entry's hash is {last}: keep it elsewhere to detect a rewritten trail"
                    )),
                    (None, None) => ctx.print.note(&format!("the last entry's hash is {last}")),
                }
            }
            Ok(Code::Ok)
        }
        Verdict::Broken { seq, problem } => {
            let error = Error::other(problem.clone()).with_hint(format!(
                "the audit trail in `{}` was changed outside gate; compare it with a backup",
                store.location()
            ));
            if ctx.global.json {
                ctx.print
                    .json(&json!({"intact": false, "seq": seq, "problem": problem}))?;
                ctx.print.error(&error);
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
