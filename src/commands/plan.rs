//! `gate plan [DIR...]`: the calendar (SPEC §7). For each post file and account, sorted by
//! `not_before` (files without one first: they may go any time), the window and the one thing
//! it waits on. Read-only: no network, no keychain, and the state store is only read (a missing
//! local store is never created).

use std::path::PathBuf;

use anstyle::Style;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::cli::PlanArgs;
use crate::commands::{Ctx, parse_now};
use crate::core::evaluate::{Context, Engine, Evaluation, Rule, Severity, Verdict};
use crate::core::policy::{Policy, hex};
use crate::core::post::Post;
use crate::core::post::targets;
use crate::core::style::STYLES;
use crate::core::window::{Position, Window, instant};
use crate::error::{Code, Error};
use crate::store::{Access, State as Row, Store};

/// What one post file waits on for one account, the first that applies in this order.
#[derive(Debug, Clone)]
enum State {
    /// In the journal as sent (or sent, then retracted).
    Sent {
        url: String,
        retracted: bool,
    },
    Expired(DateTime<Utc>),
    Frozen(String),
    Denied(String),
    Reviews {
        missing: u32,
        may_sign: Vec<String>,
    },
    NotYet(DateTime<Utc>),
    Held {
        until: Option<DateTime<Utc>>,
        why: String,
    },
    /// `gate post --due` would send it now; `note` when an earlier try did not finish.
    Due {
        note: Option<&'static str>,
    },
}

impl State {
    fn name(&self) -> &'static str {
        match self {
            State::Sent { .. } => "sent",
            State::Expired(_) => "expired",
            State::Frozen(_) => "frozen",
            State::Denied(_) => "denied",
            State::Reviews { .. } => "needs-reviews",
            State::NotYet(_) => "not-yet",
            State::Held { .. } => "held",
            State::Due { .. } => "due",
        }
    }

    fn style(&self) -> Style {
        match self {
            State::Sent { .. } | State::Due { .. } => STYLES.ok,
            State::NotYet(_) => STYLES.dim,
            State::Expired(_) | State::Reviews { .. } => STYLES.warning,
            State::Held { .. } => STYLES.hold,
            State::Frozen(_) | State::Denied(_) => STYLES.error,
        }
    }

    /// The state in words: `held until 2026-12-01T08:00:00Z (quiet hours)`.
    fn words(&self) -> String {
        match self {
            State::Sent { url, retracted } => {
                format!("sent {url}{}", if *retracted { " (retracted)" } else { "" })
            }
            State::Expired(at) => format!("expired (window closed at {})", instant(*at)),
            State::Frozen(why) => format!("frozen: {why}"),
            State::Denied(why) => format!("denied: {why}"),
            State::Reviews { missing, may_sign } => {
                let noun = if *missing == 1 { "review" } else { "reviews" };
                let names: Vec<&str> = may_sign.iter().map(String::as_str).collect();
                match names.as_slice() {
                    [] => format!("needs {missing} more {noun}: no reviewer is left to sign"),
                    [one] => format!("needs {missing} more {noun}: `{one}` may sign"),
                    [rest @ .., last] => format!(
                        "needs {missing} more {noun}: {} or `{last}` may sign",
                        crate::core::spanned::list(rest)
                    ),
                }
            }
            State::NotYet(at) => format!("not-yet (opens at {})", instant(*at)),
            State::Held { until, why } => match until {
                Some(t) => format!("held until {} by {why}", instant(*t)),
                None => format!("held by {why}"),
            },
            State::Due { note: None } => "due".to_owned(),
            State::Due { note: Some(n) } => format!("due ({n})"),
        }
    }

    fn json(&self) -> Value {
        let mut v = json!({"state": self.name()});
        match self {
            State::Sent { url, retracted } => {
                v["url"] = url.as_str().into();
                if *retracted {
                    v["retracted"] = true.into();
                }
            }
            State::Expired(at) => v["not_after"] = instant(*at).into(),
            State::NotYet(at) => v["not_before"] = instant(*at).into(),
            State::Frozen(m) | State::Denied(m) => v["message"] = m.as_str().into(),
            State::Reviews { missing, may_sign } => {
                v["missing"] = (*missing).into();
                v["may_sign"] = may_sign.clone().into();
            }
            State::Held { until, why } => {
                if let Some(t) = until {
                    v["until"] = instant(*t).into();
                }
                v["message"] = why.as_str().into();
            }
            State::Due { note } => {
                if let Some(n) = note {
                    v["message"] = (*n).into();
                }
            }
        }
        v
    }
}

/// One line of the calendar.
struct Entry {
    source: String,
    account: String,
    window: Window,
    state: State,
}

pub fn run(ctx: &Ctx, args: &PlanArgs) -> Result<Code, Error> {
    let now = match &args.now {
        Some(text) => parse_now(text)?,
        None => Utc::now(),
    };
    let paths = if args.dirs.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        args.dirs.clone()
    };
    let mut files = Vec::new();
    for path in &paths {
        if path.is_dir() {
            files.extend(crate::inputs::find_post_files(path).map_err(|e| {
                Error::other(format!("cannot read the folder `{}`: {e}", path.display()))
            })?);
        } else if path.is_file() {
            files.push(path.clone());
        } else {
            return Err(Error::usage(format!(
                "`{}` is neither a folder nor a file",
                path.display()
            ))
            .with_hint("give the folders that hold the post files, e.g. `gate plan posts/`"));
        }
    }
    let policy = ctx.load_policy(None)?;
    // Read-only: `gate plan` never creates or migrates the store.
    let store = ctx.store(Some(&policy), Access::Read)?;
    let store: &dyn Store = store.as_ref();
    let context = Context {
        now,
        local_freeze: store.freeze()?,
        sends: if policy.limits.is_empty() {
            crate::core::limits::Sends::default()
        } else {
            store.ledger(now)?
        },
        instances: std::collections::BTreeMap::new(),
    };
    let engine = Engine::new(&policy);

    let mut entries = Vec::new();
    let mut invalid = Vec::new();
    let mut diagnostics = Vec::new();
    for file in &files {
        match crate::inputs::load_post(file, &policy) {
            Ok(post) => {
                let accounts = targets(&policy, &post, &[]);
                let names: Vec<String> = accounts.iter().map(|a| a.name.clone()).collect();
                let digest = hex(&Sha256::digest(post.digest_message(&names).as_bytes()));
                for e in engine.evaluate(&post, &accounts, &context) {
                    let account = e.account.clone().unwrap_or_default();
                    let row = store.whole(&digest, &account, post.items.len())?;
                    entries.push(Entry {
                        source: file.display().to_string(),
                        window: post.window,
                        state: state(&policy, &post, &e, row.as_ref(), now),
                        account,
                    });
                }
            }
            Err(d) => {
                if d.iter().any(crate::core::diagnostic::Diagnostic::is_error) {
                    invalid.push(file.display().to_string());
                }
                diagnostics.extend(d);
            }
        }
    }
    // Files without `not_before` first (they may go any time), then by when they open; the
    // sort is stable, so a file's accounts stay in its order.
    entries.sort_by(|a, b| {
        (a.window.not_before_utc(), &a.source).cmp(&(b.window.not_before_utc(), &b.source))
    });

    if ctx.global.json {
        let posts: Vec<Value> = entries
            .iter()
            .map(|e| {
                let mut v = json!({"source": e.source, "account": e.account});
                if let Some(t) = e.window.not_before_utc() {
                    v["not_before"] = instant(t).into();
                }
                if let Some(t) = e.window.not_after_utc() {
                    v["not_after"] = instant(t).into();
                }
                if let (Value::Object(v), Value::Object(s)) = (&mut v, e.state.json()) {
                    v.extend(s);
                }
                v
            })
            .collect();
        let mut doc = json!({"now": instant(now), "posts": posts});
        if !invalid.is_empty() {
            doc["invalid"] = invalid.clone().into();
            doc["errors"] = diagnostics
                .iter()
                .filter(|d| d.is_error())
                .map(crate::core::diagnostic::Diagnostic::json)
                .collect();
        }
        ctx.print.json(&doc)?;
    } else {
        ctx.print.out(table(&entries, &invalid))?;
        if entries.is_empty() && invalid.is_empty() {
            ctx.print.note("no post files found");
        }
    }
    if !diagnostics.is_empty() && !ctx.global.json {
        ctx.print.error(&Error::Input { diagnostics });
    }
    Ok(if invalid.is_empty() {
        Code::Ok
    } else {
        Code::Usage
    })
}

/// The one state of a post file on one account, the first that holds: sent, expired, frozen,
/// denied, needs reviews, not-yet, held, due (SPEC §2's order for the policy's verdicts, after
/// what the journal and the window settle for good).
fn state(
    policy: &Policy,
    post: &Post,
    e: &Evaluation,
    row: Option<&crate::store::Delivery>,
    now: DateTime<Utc>,
) -> State {
    if let Some(row) = row
        && matches!(row.state, Row::Sent | Row::Retracted)
    {
        return State::Sent {
            url: row.url.clone().unwrap_or_default(),
            retracted: row.state == Row::Retracted,
        };
    }
    match post.window.position(now) {
        Position::Expired(at) => return State::Expired(at),
        Position::NotYet(_) | Position::Open => {}
    }
    let first = |severity: Severity| {
        e.findings
            .iter()
            .find(|f| f.severity == severity && f.rule != Rule::NotBefore)
    };
    if let Some(f) = first(Severity::Frozen) {
        return State::Frozen(f.reason.clone().unwrap_or_else(|| f.message.clone()));
    }
    if let Some(f) = first(Severity::Deny) {
        return State::Denied(f.message.clone());
    }
    if let Some(f) = first(Severity::Review) {
        return State::Reviews {
            missing: f.required.unwrap_or(0).saturating_sub(f.valid.unwrap_or(0)),
            may_sign: crate::output::may_still_sign(policy, post, f),
        };
    }
    if let Position::NotYet(at) = post.window.position(now) {
        return State::NotYet(at);
    }
    if e.verdict == Verdict::Hold {
        let holds: Vec<_> = e
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Hold)
            .collect();
        return State::Held {
            until: holds.iter().filter_map(|f| f.until).max(),
            why: holds
                .iter()
                .map(|f| {
                    let rule = serde_json::to_value(f.rule)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default();
                    match &f.reason {
                        Some(r) => format!("{rule} ({r})"),
                        None => rule,
                    }
                })
                .collect::<Vec<_>>()
                .join(", "),
        };
    }
    State::Due {
        note: row
            .filter(|r| matches!(r.state, Row::Pending | Row::Unknown))
            .map(|_| "an earlier attempt did not finish; `--due` looks for it before sending"),
    }
}

/// The calendar as a terminal shows it: one aligned line per post file and account.
fn table(entries: &[Entry], invalid: &[String]) -> String {
    use std::fmt::Write as _;
    let windows: Vec<String> = entries.iter().map(|e| e.window.describe()).collect();
    let targets: Vec<String> = entries
        .iter()
        .map(|e| format!("{} → {}", e.source, e.account))
        .collect();
    let width = |v: &[String]| v.iter().map(|s| s.chars().count()).max().unwrap_or(0);
    let (ww, tw) = (width(&windows), width(&targets));
    let mut out = String::new();
    for ((e, window), target) in entries.iter().zip(&windows).zip(&targets) {
        let s = e.state.style();
        let pad = |text: &str, to: usize| " ".repeat(to.saturating_sub(text.chars().count()));
        let _ = writeln!(
            out,
            "{window}{}  {target}{}  {s}{}{s:#}",
            pad(window, ww),
            pad(target, tw),
            e.state.words()
        );
    }
    for file in invalid {
        let s = STYLES.error;
        let _ = writeln!(out, "{file}  {s}invalid{s:#} (see the errors below)");
    }
    out
}
