//! `gate policy check` (validate, for CI) and `gate policy test` (run the `[[tests]]` cases).

use std::fmt::Write as _;

use chrono::Utc;
use serde_json::json;

use crate::cli::{Format, PolicyCheckArgs, PolicyTestArgs};
use crate::commands::Ctx;
use crate::core::diagnostic::{Diagnostic, Level};
use crate::core::evaluate::{Context, Engine, overall};
use crate::core::policy::TestCase;
use crate::core::post::{Origin, Post};
use crate::core::style::STYLES;
use crate::error::{Code, Error};
use crate::output::Verbosity;

pub fn check(ctx: &Ctx, args: &PolicyCheckArgs) -> Result<Code, Error> {
    let format = if ctx.global.json {
        Format::Json
    } else {
        args.format
    };
    let flag = args.path.as_deref().or(ctx.global.policy.as_deref());
    let (diagnostics, path) = match crate::inputs::locate_policy(flag, &ctx.env) {
        Some((path, _)) => (crate::inputs::load_policy(&path).1, Some(path)),
        None => (vec![super::no_policy()], None),
    };
    let valid = !diagnostics.iter().any(Diagnostic::is_error);
    match format {
        Format::Json => {
            ctx.print.json(&json!({
                "valid": valid,
                "diagnostics": diagnostics.iter().map(Diagnostic::json).collect::<Vec<_>>(),
            }))?;
        }
        Format::Github => {
            let mut out = String::new();
            for d in &diagnostics {
                let _ = writeln!(out, "{}", d.github());
            }
            ctx.print.out(out)?;
        }
        Format::Markdown => {
            let mut out = String::new();
            let name = path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "| file | line | severity | problem |\n| --- | --- | --- | --- |"
            );
            for d in &diagnostics {
                let mut message = d.message.clone();
                if let Some(hint) = &d.hint {
                    message.push_str(&format!(" (hint: {hint})"));
                }
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} | {} |",
                    d.file,
                    if d.line > 0 {
                        d.line.to_string()
                    } else {
                        String::new()
                    },
                    match d.level {
                        Level::Error => "**error**",
                        Level::Warning => "warning",
                    },
                    message.replace('|', "\\|").replace('\n', "<br>")
                );
            }
            if diagnostics.is_empty() {
                let _ = writeln!(out, "| `{name}` |  | valid |  |");
            }
            ctx.print.out(out)?;
        }
        Format::Human => {
            let mut err = String::new();
            for d in &diagnostics {
                if d.level == Level::Warning && ctx.verbosity() == Verbosity::Quiet {
                    continue;
                }
                let _ = writeln!(err, "{}", d.render());
            }
            let errors = diagnostics.iter().filter(|d| d.is_error()).count();
            let warnings = diagnostics.len() - errors;
            if valid && ctx.verbosity() != Verbosity::Quiet {
                let name = path.map(|p| p.display().to_string()).unwrap_or_default();
                let extra = if warnings > 0 {
                    format!(" ({warnings} warning{})", plural(warnings))
                } else {
                    String::new()
                };
                let _ = writeln!(err, "{}valid{:#}: `{name}`{extra}", STYLES.ok, STYLES.ok);
            } else if !valid {
                let _ = writeln!(
                    err,
                    "{}invalid{:#}: {errors} error{}{}",
                    STYLES.error,
                    STYLES.error,
                    plural(errors),
                    if warnings > 0 {
                        format!(", {warnings} warning{}", plural(warnings))
                    } else {
                        String::new()
                    }
                );
            }
            ctx.print.say(err);
        }
    }
    Ok(if valid { Code::Ok } else { Code::Policy })
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The outcome of one `[[tests]]` case.
struct CaseResult<'a> {
    case: &'a TestCase,
    got: crate::core::evaluate::Verdict,
    findings: Vec<String>,
}

pub fn test(ctx: &Ctx, args: &PolicyTestArgs) -> Result<Code, Error> {
    let policy = ctx.load_policy(args.path.as_deref())?;
    let engine = Engine::new(&policy);
    let now = Utc::now();
    let results: Vec<CaseResult<'_>> = policy
        .tests
        .iter()
        .map(|case| {
            let post = Post::inline(Origin::Argument, case.text.clone());
            let accounts: Vec<_> = match &case.account {
                Some(name) => policy.account(name).into_iter().collect(),
                None if policy.accounts.len() == 1 => policy.accounts.values().collect(),
                None => Vec::new(),
            };
            // A case is about the policy alone: a freeze on this machine does not change it.
            let context = Context {
                now: case.now.unwrap_or(now),
                local_freeze: None,
                sends: crate::core::limits::Sends::default(),
                instances: std::collections::BTreeMap::new(),
            };
            let evaluations = engine.evaluate(&post, &accounts, &context);
            let findings = evaluations
                .iter()
                .flat_map(|e| {
                    e.findings
                        .iter()
                        .map(|f| format!("{}: {}", f.severity.name(), f.message))
                })
                .collect();
            CaseResult {
                case,
                got: overall(&evaluations),
                findings,
            }
        })
        .collect();
    let failed: Vec<&CaseResult<'_>> = results.iter().filter(|r| r.got != r.case.expect).collect();
    let passed = results.len() - failed.len();

    if ctx.global.json {
        ctx.print.json(&json!({
            "passed": passed,
            "failed": failed.len(),
            "cases": results.iter().map(|r| json!({
                "name": r.case.name,
                "line": r.case.line,
                "text": r.case.text,
                "account": r.case.account,
                "expect": r.case.expect,
                "got": r.got,
                "ok": r.got == r.case.expect,
                "findings": r.findings,
            })).collect::<Vec<_>>(),
        }))?;
    } else {
        let mut out = String::new();
        let file = policy.path.display();
        for r in &results {
            let ok = r.got == r.case.expect;
            if ok && ctx.verbosity() != Verbosity::Verbose {
                continue;
            }
            let (style, word) = if ok {
                (STYLES.ok, "ok")
            } else {
                (STYLES.error, "FAIL")
            };
            let label = r
                .case
                .name
                .clone()
                .unwrap_or_else(|| format!("{:?}", r.case.text));
            let _ = writeln!(out, "{style}{word}{style:#} {file}:{} {label}", r.case.line);
            if !ok {
                let _ = writeln!(out, "     expected: {}", r.case.expect);
                let _ = writeln!(out, "          got: {}", r.got);
                for f in &r.findings {
                    let _ = writeln!(out, "               {f}");
                }
            }
        }
        let _ = writeln!(out, "{passed} passed, {} failed", failed.len());
        ctx.print.out(out)?;
    }
    Ok(if failed.is_empty() {
        Code::Ok
    } else {
        Code::Failure
    })
}
