//! Where output goes: data on stdout, everything for people on stderr, colour only when the
//! stream is a terminal and `NO_COLOR` is unset (anstream strips the styles otherwise).

use anstyle::Style;

use crate::core::style::STYLES;

/// How loud the human output is (`-q` / `-v`); JSON is unaffected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

use std::fmt::Write as _;

use crate::core::diagnostic::locate;
use crate::core::evaluate::{Evaluation, Severity, Verdict};

fn verdict_style(verdict: Verdict) -> Style {
    match verdict {
        Verdict::Allow => STYLES.ok,
        Verdict::Hold => STYLES.hold,
        Verdict::Review | Verdict::Deny | Verdict::Frozen => STYLES.error,
    }
}

fn severity_style(severity: Severity) -> Style {
    match severity {
        Severity::Warn => STYLES.warning,
        other => verdict_style(other.verdict()),
    }
}

/// One evaluation for people: the verdict line, then each finding, with banned terms
/// underlined in the text (a thread's finding in its own item's text).
pub fn evaluation(
    post: &crate::core::post::Post,
    eval: &Evaluation,
    verbosity: Verbosity,
) -> String {
    let mut out = String::new();
    let vs = verdict_style(eval.verdict);
    let target = match &eval.account {
        Some(account) => format!("{} → {account}", eval.source),
        None => eval.source.clone(),
    };
    let _ = writeln!(
        out,
        "{vs}{:<6}{vs:#} {}{target}{:#}",
        eval.verdict.name(),
        STYLES.bold,
        STYLES.bold
    );
    if verbosity == Verbosity::Quiet {
        return out;
    }
    if !eval.options.is_empty() {
        let _ = writeln!(
            out,
            "  {}sent with:{:#} {}",
            STYLES.dim,
            STYLES.dim,
            eval.options.describe()
        );
    }
    if verbosity == Verbosity::Verbose {
        // What the banned terms were matched against, to explain a match or a miss.
        for (i, item) in post.items.iter().enumerate() {
            let normalized = crate::core::terms::normalize(&item.text);
            let which = if post.thread {
                format!(" (item {i})")
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "  {}normalised{which}:{:#} {}",
                STYLES.dim, STYLES.dim, normalized.text
            );
        }
    }
    if !eval.items.is_empty() {
        let n = eval.items.len();
        let _ = writeln!(
            out,
            "  thread of {n} item{}:",
            if n == 1 { "" } else { "s" }
        );
        for i in &eval.items {
            let style = if i.length > i.limit {
                STYLES.error
            } else {
                STYLES.dim
            };
            let media = match i.media {
                0 => String::new(),
                1 => ", 1 media".to_owned(),
                m => format!(", {m} media"),
            };
            let first = post.item(Some(i.item)).text.lines().next().unwrap_or("");
            let first: String = if first.chars().count() > 50 {
                format!("{}…", first.chars().take(49).collect::<String>())
            } else {
                first.to_owned()
            };
            let _ = writeln!(
                out,
                "    item {}: {style}{}/{} {}{style:#}{media}  {}{first}{:#}",
                i.item, i.length, i.limit, i.unit, STYLES.dim, STYLES.dim
            );
        }
    }
    for f in &eval.findings {
        let ss = severity_style(f.severity);
        let rule = serde_json::to_value(f.rule)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let which = f.item.map(|i| format!(" (item {i})")).unwrap_or_default();
        let _ = writeln!(
            out,
            "  {ss}{:<6}{ss:#} {rule}{which}: {}",
            f.severity.name(),
            f.message
        );
        if let (Some(start), Some(end)) = (f.start, f.end) {
            let at = locate(&post.item(f.item).text, start..end);
            let number = at.line.to_string();
            let pad = " ".repeat(number.len());
            let blue = STYLES.blue;
            let _ = writeln!(out, "         {blue}{number} |{blue:#} {}", at.text);
            let _ = writeln!(
                out,
                "         {pad} {blue}|{blue:#} {}{ss}{}{ss:#}",
                " ".repeat(at.pad),
                "^".repeat(at.width)
            );
        }
        for r in &f.rejected {
            let _ = writeln!(out, "         `{}`: {}", r.reviewer, r.reason);
        }
    }
    out
}

/// `3 posts checked: 1 allow, 2 deny`, counting each post-and-account pair.
/// `invalid` counts the files (or lines) that could not be judged, once each however many
/// errors they hold; they count among the checks.
pub fn summary(evaluations: impl IntoIterator<Item = Verdict>, invalid: usize) -> String {
    let mut counts = [0usize; 5];
    let mut total = 0;
    for v in evaluations {
        counts[v as usize] += 1;
        total += 1;
    }
    let order = [
        Verdict::Allow,
        Verdict::Hold,
        Verdict::Review,
        Verdict::Deny,
        Verdict::Frozen,
    ];
    let mut parts: Vec<String> = order
        .iter()
        .filter(|v| counts[**v as usize] > 0)
        .map(|v| format!("{} {}", counts[*v as usize], v.name()))
        .collect();
    if invalid > 0 {
        parts.push(format!("{invalid} invalid"));
        total += invalid;
    }
    let noun = if total == 1 { "check" } else { "checks" };
    if parts.is_empty() {
        format!("{total} {noun}")
    } else {
        format!("{total} {noun}: {}", parts.join(", "))
    }
}

/// The rule's name as SPEC §5 pins it (`banned_term`, `quiet_hours`, …).
fn rule_name(rule: crate::core::evaluate::Rule) -> String {
    serde_json::to_value(rule)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// `` (account `a`) `` or `` (accounts `a`, `b`) ``.
fn for_accounts(accounts: &[&str]) -> String {
    match accounts {
        [] => String::new(),
        [one] => format!(" (account `{one}`)"),
        many => format!(" (accounts {})", crate::core::spanned::list(many)),
    }
}

/// The reviewers who may still sign for a `review` finding: the policy's reviewers, less those
/// whose approvals counted and the post's author (who may not approve their own post).
pub fn may_still_sign(
    policy: &crate::core::policy::Policy,
    post: &crate::core::post::Post,
    finding: &crate::core::evaluate::Finding,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (name, _) in &policy.reviewer_keys {
        if finding.reviewers.contains(name)
            || post.author.as_deref() == Some(name.as_str())
            || out.contains(name)
        {
            continue;
        }
        out.push(name.clone());
    }
    out
}

/// What a `review` finding waits on, in words: `` 1 more approval: `carol` or `dave` may sign ``.
fn review_wait(
    policy: &crate::core::policy::Policy,
    post: &crate::core::post::Post,
    f: &crate::core::evaluate::Finding,
) -> String {
    let missing = f.required.unwrap_or(0).saturating_sub(f.valid.unwrap_or(0));
    let who = may_still_sign(policy, post, f);
    let names: Vec<&str> = who.iter().map(String::as_str).collect();
    let more = format!(
        "{missing} more approval{}",
        if missing == 1 { "" } else { "s" }
    );
    match names.as_slice() {
        [] => format!("{more}; no reviewer in the policy is left to sign"),
        [one] => format!("{more}: `{one}` may sign"),
        [rest @ .., last] => format!(
            "{more}: {} or `{last}` may sign",
            crate::core::spanned::list(rest)
        ),
    }
}

/// GitHub workflow commands for one post's evaluations (SPEC §9): one per finding, the same
/// finding on several accounts once, naming them. A banned term in a post file is annotated on
/// its own line and columns in the file.
pub fn github(
    policy: &crate::core::policy::Policy,
    post: &crate::core::post::Post,
    evals: &[&Evaluation],
) -> String {
    use crate::core::diagnostic::{escape_data, escape_property};
    use crate::core::post::Origin;
    // (command, properties, message) → accounts, in the order first seen.
    type Key = (String, String, String);
    let mut annotations: Vec<(Key, Vec<&str>)> = Vec::new();
    for e in evals {
        for f in &e.findings {
            let command = match f.severity {
                Severity::Deny => "error",
                Severity::Warn => "warning",
                Severity::Review | Severity::Hold | Severity::Frozen => "notice",
            };
            let mut props = Vec::new();
            match &post.origin {
                Origin::File(path) => {
                    props.push(format!(
                        "file={}",
                        escape_property(&path.display().to_string())
                    ));
                    let at = post.item(f.item).text_at.as_ref();
                    let span = f.start.zip(f.end);
                    match (at, span.and_then(|(s, e)| at?.locate(s..e))) {
                        // GitHub takes columns only for a span on one line.
                        (_, Some(((l, c), (el, ec)))) if l == el => {
                            props.push(format!("line={l},col={c},endLine={el},endColumn={ec}"))
                        }
                        (_, Some(((l, _), (el, _)))) => {
                            props.push(format!("line={l},endLine={el}"))
                        }
                        (Some(at), None) => {
                            props.push(format!("line={},col={}", at.value.0, at.value.1))
                        }
                        (None, None) => {}
                    }
                }
                Origin::Line(path, n) => {
                    props.push(format!(
                        "file={}",
                        escape_property(&path.display().to_string())
                    ));
                    props.push(format!("line={n}"));
                }
                Origin::Argument | Origin::Stdin => {}
            }
            props.push(format!(
                "title={}",
                escape_property(&format!("gate {} {}", f.severity.name(), rule_name(f.rule)))
            ));
            let mut message = f.message.clone();
            if f.severity == Severity::Review {
                message.push_str(&format!("; {}", review_wait(policy, post, f)));
            }
            let key = (command.to_owned(), props.join(","), message);
            let account = e.account.as_deref();
            match annotations.iter_mut().find(|(k, _)| *k == key) {
                Some((_, accounts)) => accounts.extend(account),
                None => annotations.push((key, account.into_iter().collect())),
            }
        }
    }
    let mut out = String::new();
    for ((command, props, message), accounts) in &annotations {
        let _ = writeln!(
            out,
            "::{command} {props}::{}",
            escape_data(&format!("{message}{}", for_accounts(accounts)))
        );
    }
    out
}

/// An invalid file's problem as a workflow command, titled like the findings.
pub fn github_diagnostic(d: &crate::core::diagnostic::Diagnostic) -> String {
    use crate::core::diagnostic::{Level, escape_data, escape_property};
    let (command, title) = match d.level {
        Level::Error => ("error", "gate invalid file"),
        Level::Warning => ("warning", "gate warning"),
    };
    let mut props = vec![format!("file={}", escape_property(&d.file))];
    if d.line > 0 {
        props.push(format!("line={},col={}", d.line, d.column));
    }
    props.push(format!("title={}", escape_property(title)));
    let mut message = d.message.clone();
    if let Some(hint) = &d.hint {
        message.push_str(&format!(" (hint: {hint})"));
    }
    format!(
        "::{command} {}::{}\n",
        props.join(","),
        escape_data(&message)
    )
}

/// The head of `--format markdown`'s one table.
pub const MARKDOWN_HEAD: &str =
    "| post | account | verdict | findings | waits on |\n| --- | --- | --- | --- | --- |\n";

/// Text for one Markdown table cell: no `|` or line break can end the cell early.
fn cell(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace("\r\n", "<br>")
        .replace(['\n', '\r'], "<br>")
}

/// One row per account the post was judged for (SPEC §9): the findings, and what the post
/// waits on: for `review` which reviewers may still sign, for `hold` until when.
pub fn markdown_rows(
    policy: &crate::core::policy::Policy,
    post: &crate::core::post::Post,
    evals: &[&Evaluation],
) -> String {
    let mut out = String::new();
    for e in evals {
        let findings: Vec<String> = e
            .findings
            .iter()
            .map(|f| {
                cell(&format!(
                    "{} `{}`: {}",
                    f.severity.name(),
                    rule_name(f.rule),
                    f.message
                ))
            })
            .collect();
        let mut waits: Vec<String> = Vec::new();
        for f in &e.findings {
            match f.severity {
                Severity::Review => waits.push(review_wait(policy, post, f)),
                Severity::Hold => {
                    if let Some(until) = f.until {
                        waits.push(format!(
                            "held until {}",
                            until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                        ));
                    }
                }
                Severity::Frozen => waits.push("the freeze to be lifted".into()),
                Severity::Warn | Severity::Deny => {}
            }
        }
        let verdict = match e.verdict {
            Verdict::Allow => "allow".to_owned(),
            other => format!("**{}**", other.name()),
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {verdict} | {} | {} |",
            cell(&e.source),
            e.account
                .as_deref()
                .map_or_else(String::new, |a| format!("`{}`", cell(a))),
            findings.join("<br>"),
            waits
                .iter()
                .map(|w| cell(w))
                .collect::<Vec<_>>()
                .join("<br>"),
        );
    }
    out
}

/// The row of a file that could not be judged: its errors, and verdict `invalid`.
pub fn markdown_invalid(
    file: &str,
    diagnostics: &[&crate::core::diagnostic::Diagnostic],
) -> String {
    let problems: Vec<String> = diagnostics
        .iter()
        .map(|d| cell(&format!("{}: {}", d.location(), d.message)))
        .collect();
    format!(
        "| `{}` |  | **invalid** | {} |  |\n",
        cell(file),
        problems.join("<br>")
    )
}
