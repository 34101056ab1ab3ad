//! `gate post --due DIR...`: the sweep cron runs (SPEC §7). Every post file below the folders
//! whose window is open now goes through `gate post`'s own walk ([`Sender::walk`]: judged,
//! claimed, sent, recorded, the check at the moment of sending included), so each goes to each
//! of its accounts exactly once however many runs overlap; a file before its window is
//! `not-yet`, one past `not_after` is `expired` and is never sent. Every file is tried and
//! reported; the exit code is the first of 3, 7, 4, 6, 5, 8, 9, 1 among them, an invalid post
//! file (2) right after 3 as for `gate check`.

use std::path::{Path, PathBuf};

use anstyle::Style;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::{Sender, Stop, Walked, context_at, first_code};
use crate::cli::PostArgs;
use crate::commands::Ctx;
use crate::core::evaluate::{Engine, Evaluation, Rule, Severity, Verdict, overall};
use crate::core::policy::hex;
use crate::core::post::targets;
use crate::core::style::STYLES;
use crate::core::window::{Position, Window, instant};
use crate::error::{Code, Error};
use crate::store::{Access, State};

/// What happened to one post file on one account (SPEC §7 names these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Sent,
    AlreadySent,
    NotYet,
    Expired,
    Held,
    Refused,
    Frozen,
    Failed,
    /// `--dry-run`: it would be sent now.
    Due,
}

impl Status {
    fn name(self) -> &'static str {
        match self {
            Status::Sent => "sent",
            Status::AlreadySent => "already-sent",
            Status::NotYet => "not-yet",
            Status::Expired => "expired",
            Status::Held => "held",
            Status::Refused => "refused",
            Status::Frozen => "frozen",
            Status::Failed => "failed",
            Status::Due => "due",
        }
    }

    fn style(self) -> Style {
        match self {
            Status::Sent | Status::AlreadySent | Status::Due => STYLES.ok,
            Status::NotYet => STYLES.dim,
            Status::Expired => STYLES.warning,
            Status::Held => STYLES.hold,
            Status::Refused | Status::Frozen | Status::Failed => STYLES.error,
        }
    }
}

/// One account of one file.
struct Line {
    account: String,
    status: Status,
    code: Code,
    url: Option<String>,
    /// `not-yet`: when the window opens; `expired`: when it closed; `held`: until when.
    at: Option<DateTime<Utc>>,
    message: Option<String>,
    maybe_sent: bool,
}

impl Line {
    fn new(account: &str, status: Status) -> Line {
        Line {
            account: account.to_owned(),
            status,
            code: Code::Ok,
            url: None,
            at: None,
            message: None,
            maybe_sent: false,
        }
    }

    fn json(&self) -> Value {
        let mut v = json!({"account": self.account, "status": self.status.name()});
        if self.code != Code::Ok {
            v["code"] = self.code.as_u8().into();
        }
        if let Some(url) = &self.url {
            v["url"] = url.as_str().into();
        }
        if let Some(at) = self.at {
            let key = match self.status {
                Status::NotYet => "not_before",
                Status::Expired => "not_after",
                _ => "until",
            };
            v[key] = instant(at).into();
        }
        if let Some(m) = &self.message {
            v["message"] = m.as_str().into();
        }
        if self.maybe_sent {
            v["maybe_sent"] = true.into();
        }
        v
    }

    fn detail(&self) -> String {
        let at = self.at.map(instant);
        match (self.status, &self.url, at, &self.message) {
            (_, Some(url), _, _) => url.clone(),
            (Status::NotYet, _, Some(at), _) => format!("window opens at {at}"),
            (Status::Expired, _, Some(at), _) => format!("window closed at {at}; never sent"),
            (_, _, _, Some(m)) => m.clone(),
            _ => String::new(),
        }
    }
}

/// One post file's outcome.
struct Report {
    source: String,
    window: Window,
    lines: Vec<Line>,
    /// The post as judged (when its window was open).
    evaluations: Vec<Evaluation>,
    /// The file could not be read or is invalid: its errors.
    invalid: Option<Vec<Value>>,
}

impl Report {
    /// The file's status: the first failing account's by exit order, else `sent` if this run
    /// sent any, else `due`, `expired`, `not-yet`, `already-sent`.
    fn status(&self) -> (Status, Code) {
        if self.invalid.is_some() {
            return (Status::Failed, Code::Usage);
        }
        let code = first_code(self.lines.iter().map(|l| l.code));
        if code != Code::Ok
            && let Some(line) = self.lines.iter().find(|l| l.code == code)
        {
            return (line.status, code);
        }
        for status in [Status::Sent, Status::Due, Status::Expired, Status::NotYet] {
            if self.lines.iter().any(|l| l.status == status) {
                return (status, Code::Ok);
            }
        }
        (Status::AlreadySent, Code::Ok)
    }

    fn json(&self) -> Value {
        let (status, code) = self.status();
        let mut v = json!({
            "source": self.source,
            "status": status.name(),
            "accounts": self.lines.iter().map(Line::json).collect::<Vec<_>>(),
        });
        if code != Code::Ok {
            v["code"] = code.as_u8().into();
        }
        if let Some(t) = self.window.not_before_utc() {
            v["not_before"] = instant(t).into();
        }
        if let Some(t) = self.window.not_after_utc() {
            v["not_after"] = instant(t).into();
        }
        if let Some(errors) = &self.invalid {
            v["verdict"] = "invalid".into();
            v["errors"] = errors.clone().into();
        } else if !self.evaluations.is_empty() {
            v["verdict"] = serde_json::to_value(overall(&self.evaluations)).unwrap_or_default();
            v["posts"] = serde_json::to_value(&self.evaluations).unwrap_or_default();
        }
        v
    }
}

pub(super) fn run(ctx: &Ctx, args: &PostArgs) -> Result<Code, Error> {
    // The sweep never asks: unattended, so `--yes` says it may send (SPEC §1's refusal, made
    // before any file, the keychain or the network is read).
    if !args.yes && !args.dry_run {
        return Err(
            Error::usage("refusing to send without confirmation: `gate post --due` never asks")
                .with_hint(
                    "pass `--yes` to send every post whose window is open (as cron does); `--dry-run` shows what would be sent",
                ),
        );
    }
    let files = post_files(ctx, &args.due)?;
    let policy = ctx.load_policy(None)?;
    let client = crate::http::Prepared::start();
    let store = ctx.store(Some(&policy), Access::Write)?;
    let store: &dyn crate::store::Store = store.as_ref();
    let engine = Engine::new(&policy);
    let sender = Sender {
        ctx,
        policy: &policy,
        engine: &engine,
        store,
        client: &client,
        yes: true,
        dry_run: args.dry_run,
        force_resend: args.force_resend,
        each: false,
    };
    let mut reports = Vec::with_capacity(files.len());
    for file in &files {
        let report = sweep(&sender, file);
        if !ctx.global.json {
            // The sweep goes on for the files still due, whoever reads this.
            let _ = ctx.print.out(report_lines(&report));
        }
        reports.push(report);
    }
    // SPEC §7's order; an invalid post file (2) right after 3, as for `gate check`.
    let codes: Vec<Code> = reports.iter().map(|r| r.status().1).collect();
    let code = if codes.contains(&Code::Policy) {
        Code::Policy
    } else if codes.contains(&Code::Usage) {
        Code::Usage
    } else {
        first_code(codes)
    };
    if ctx.global.json {
        ctx.print.json(&json!({
            "dry_run": args.dry_run,
            "files": reports.iter().map(Report::json).collect::<Vec<_>>(),
        }))?;
    } else if ctx.verbosity() != crate::output::Verbosity::Quiet {
        ctx.print.line(summary(&reports))?;
    }
    Ok(code)
}

/// Every `*.post.toml` below the folders (a post file named directly counts too).
fn post_files(ctx: &Ctx, paths: &[PathBuf]) -> Result<Vec<PathBuf>, Error> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let found = crate::inputs::find_post_files(path).map_err(|e| {
                Error::other(format!("cannot read the folder `{}`: {e}", path.display()))
            })?;
            if found.is_empty() {
                ctx.print.note(&format!(
                    "note: no `*.post.toml` files under `{}`",
                    path.display()
                ));
            }
            files.extend(found);
        } else if path.is_file() {
            files.push(path.clone());
        } else {
            return Err(Error::usage(format!(
                "`{}` after `--due` is neither a folder nor a file",
                path.display()
            ))
            .with_hint(
                "give the folders that hold the post files, e.g. `gate post --due posts/ --yes`",
            ));
        }
    }
    Ok(files)
}

/// One file: read, then the journal (what is out already stays so), then the window, then
/// the walk of `gate post` for an open one.
fn sweep(sender: &Sender<'_>, file: &Path) -> Report {
    let (ctx, policy, store) = (sender.ctx, sender.policy, sender.store);
    let source = file.display().to_string();
    let post = match crate::inputs::load_post(file, policy) {
        Ok(post) => post,
        Err(diagnostics) => {
            let errors: Vec<Value> = diagnostics
                .iter()
                .filter(|d| d.is_error())
                .map(crate::core::diagnostic::Diagnostic::json)
                .collect();
            if !ctx.global.json {
                ctx.print.error(&Error::Input { diagnostics });
            }
            return Report {
                source,
                window: Window::default(),
                lines: Vec::new(),
                evaluations: Vec::new(),
                invalid: Some(errors),
            };
        }
    };
    let accounts = targets(policy, &post, &[]);
    let mut report = Report {
        source,
        window: post.window,
        lines: Vec::new(),
        evaluations: Vec::new(),
        invalid: None,
    };
    let failed_all = |report: &mut Report, e: &Error| {
        if !ctx.global.json {
            ctx.print.error(e);
        }
        report.lines = accounts
            .iter()
            .map(|a| Line {
                code: e.code(),
                message: Some(e.message()),
                ..Line::new(&a.name, Status::Failed)
            })
            .collect();
    };

    // What is out already is reported as such, whatever the window or the policy say now.
    let names: Vec<String> = accounts.iter().map(|a| a.name.clone()).collect();
    let digest = hex(&Sha256::digest(post.digest_message(&names).as_bytes()));
    let mut out: Vec<(String, String)> = Vec::new();
    for a in &accounts {
        match store.whole(&digest, &a.name, post.items.len()) {
            Ok(Some(row)) if row.state == State::Sent => {
                out.push((a.name.clone(), row.url.unwrap_or_default()));
            }
            Ok(_) => {}
            Err(e) => {
                failed_all(&mut report, &e);
                return report;
            }
        }
    }
    let earlier = |name: &str| out.iter().find(|(a, _)| a == name).map(|(_, u)| u.clone());
    let already = |name: &str| {
        earlier(name).map(|url| Line {
            url: Some(url),
            ..Line::new(name, Status::AlreadySent)
        })
    };
    if out.len() == accounts.len() {
        report.lines = names.iter().filter_map(|n| already(n)).collect();
        return report;
    }

    let now = Utc::now();
    let outside = match post.window.position(now) {
        Position::Open => None,
        Position::NotYet(at) => Some((Status::NotYet, at)),
        Position::Expired(at) => Some((Status::Expired, at)),
    };
    if let Some((status, at)) = outside {
        report.lines = names
            .iter()
            .map(|n| {
                already(n).unwrap_or(Line {
                    at: Some(at),
                    ..Line::new(n, status)
                })
            })
            .collect();
        return report;
    }

    let walked = context_at(store, policy, now).and_then(|context| {
        let evaluations = sender.engine.evaluate(&post, &accounts, &context);
        sender.walk(&post, &accounts, evaluations, context)
    });
    match walked {
        Err(e) => failed_all(&mut report, &e),
        Ok(Walked::Refused {
            evaluations,
            verdict,
        }) => {
            report.lines = names
                .iter()
                .map(|n| {
                    already(n).unwrap_or_else(|| {
                        let e = evaluations
                            .iter()
                            .find(|e| e.account.as_deref() == Some(n.as_str()));
                        judged(n, e, verdict)
                    })
                })
                .collect();
            report.evaluations = evaluations;
        }
        Ok(Walked::NotConfirmed) => {
            failed_all(&mut report, &Error::other("the sweep was not confirmed"));
        }
        Ok(Walked::DryRun { evaluations, plan }) => {
            report.lines = names
                .iter()
                .map(|n| {
                    already(n).unwrap_or_else(|| {
                        let action = plan
                            .iter()
                            .find(|p| p["account"] == n.as_str())
                            .and_then(|p| p["action"].as_str())
                            .unwrap_or("would send");
                        Line {
                            message: Some(format!("dry run: {action}")),
                            ..Line::new(n, Status::Due)
                        }
                    })
                })
                .collect();
            report.evaluations = evaluations;
        }
        Ok(Walked::Delivered {
            evaluations,
            sent,
            failed,
        }) => {
            for n in &names {
                // A thread that stopped part-way is the item that stopped; one that went out
                // is `sent` when this run sent any of its items.
                let mine: Vec<_> = sent.iter().filter(|s| &s.account == n).collect();
                let stopped = failed.iter().find(|(a, _, _)| a == n);
                if let (Some(first), None) = (mine.first(), stopped) {
                    let status = if mine.iter().all(|s| s.earlier) {
                        Status::AlreadySent
                    } else {
                        Status::Sent
                    };
                    report.lines.push(Line {
                        url: Some(first.published.url.clone()),
                        ..Line::new(n, status)
                    });
                } else if let Some((_, _, stop)) = stopped {
                    let line = match stop {
                        Stop::Refused {
                            evaluation,
                            maybe_sent,
                        } => Line {
                            maybe_sent: *maybe_sent,
                            ..judged(n, Some(evaluation), evaluation.verdict)
                        },
                        Stop::Failed { error, maybe_sent } => {
                            if !ctx.global.json {
                                ctx.print.error(error);
                            }
                            Line {
                                code: error.code(),
                                message: Some(error.message()),
                                maybe_sent: *maybe_sent,
                                ..Line::new(n, Status::Failed)
                            }
                        }
                    };
                    report.lines.push(line);
                }
            }
            report.evaluations = evaluations;
        }
    }
    report
}

/// The status of an account the policy refused: its own verdict, or the post's when the
/// account alone would have passed (nothing goes out until every account may).
fn judged(account: &str, evaluation: Option<&Evaluation>, post_verdict: Verdict) -> Line {
    let verdict = evaluation
        .map(|e| e.verdict)
        .filter(|v| *v != Verdict::Allow)
        .unwrap_or(post_verdict);
    let findings: Vec<&crate::core::evaluate::Finding> = evaluation
        .map(|e| {
            e.findings
                .iter()
                .filter(|f| f.severity != Severity::Warn)
                .collect()
        })
        .unwrap_or_default();
    let expired = findings.iter().find(|f| f.rule == Rule::NotAfter);
    let blocking: Vec<&str> = findings
        .iter()
        .filter(|f| f.severity.verdict() == verdict)
        .map(|f| f.message.as_str())
        .collect();
    let message = (!blocking.is_empty()).then(|| blocking.join("; "));
    if let Some(f) = expired {
        // The window closed between the sweep's look and the send: expired, not a failure.
        return Line {
            message: Some(f.message.clone()),
            ..Line::new(account, Status::Expired)
        };
    }
    let status = match verdict {
        Verdict::Allow => Status::Failed,
        Verdict::Hold => Status::Held,
        Verdict::Review | Verdict::Deny => Status::Refused,
        Verdict::Frozen => Status::Frozen,
    };
    Line {
        code: if verdict == Verdict::Allow {
            Code::Failure
        } else {
            Code::from(verdict)
        },
        at: (verdict == Verdict::Hold)
            .then(|| findings.iter().filter_map(|f| f.until).max())
            .flatten(),
        message: message.or_else(|| {
            (verdict != Verdict::Allow)
                .then(|| format!("not sent: the post is `{}`", verdict.name()))
        }),
        ..Line::new(account, status)
    }
}

/// One line per account: `sent         posts/a.post.toml → brand  https://…`.
fn report_lines(report: &Report) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if report.invalid.is_some() {
        let s = Status::Failed.style();
        let _ = writeln!(
            out,
            "{s}{:<12}{s:#} {}  invalid post file (see the errors above)",
            Status::Failed.name(),
            report.source
        );
        return out;
    }
    for line in &report.lines {
        let s = line.status.style();
        let detail = line.detail();
        let _ = writeln!(
            out,
            "{s}{:<12}{s:#} {} → {}{}{}",
            line.status.name(),
            report.source,
            line.account,
            if detail.is_empty() { "" } else { "  " },
            detail
        );
    }
    out
}

/// `4 files: 1 sent, 1 not-yet, 2 expired`.
fn summary(reports: &[Report]) -> String {
    let order = [
        Status::Sent,
        Status::Due,
        Status::AlreadySent,
        Status::NotYet,
        Status::Expired,
        Status::Held,
        Status::Refused,
        Status::Frozen,
        Status::Failed,
    ];
    let statuses: Vec<Status> = reports.iter().map(|r| r.status().0).collect();
    let parts: Vec<String> = order
        .iter()
        .filter_map(|s| {
            let n = statuses.iter().filter(|t| *t == s).count();
            (n > 0).then(|| format!("{n} {}", s.name()))
        })
        .collect();
    let noun = if reports.len() == 1 { "file" } else { "files" };
    if parts.is_empty() {
        format!("{} {noun}", reports.len())
    } else {
        format!("{} {noun}: {}", reports.len(), parts.join(", "))
    }
}
