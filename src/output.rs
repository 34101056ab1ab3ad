//! Where output goes: data on stdout, everything for people on stderr, colour only when the
//! stream is a terminal and `NO_COLOR` is unset (anstream strips the styles otherwise).

use anstyle::{AnsiColor, Style};

/// The few styles gate uses, so every command colours the same things the same way.
pub struct Styles {
    pub error: Style,
    pub warning: Style,
    pub ok: Style,
    pub hold: Style,
    pub bold: Style,
    pub blue: Style,
    pub dim: Style,
}

pub const STYLES: Styles = Styles {
    error: AnsiColor::Red.on_default().bold(),
    warning: AnsiColor::Yellow.on_default().bold(),
    ok: AnsiColor::Green.on_default().bold(),
    hold: AnsiColor::Magenta.on_default().bold(),
    bold: Style::new().bold(),
    blue: AnsiColor::Blue.on_default().bold(),
    dim: Style::new().dimmed(),
};

/// How loud the human output is (`-q` / `-v`); JSON is unaffected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

use std::fmt::Write as _;

use crate::diagnostic::locate;
use crate::evaluate::{Evaluation, Severity, Verdict};

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
/// underlined in the text.
pub fn evaluation(text: &str, eval: &Evaluation, verbosity: Verbosity) -> String {
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
        let normalized = crate::terms::normalize(text);
        let _ = writeln!(
            out,
            "  {}normalised:{:#} {}",
            STYLES.dim, STYLES.dim, normalized.text
        );
    }
    for f in &eval.findings {
        let ss = severity_style(f.severity);
        let rule = serde_json::to_value(f.rule)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {ss}{:<6}{ss:#} {rule}: {}",
            f.severity.name(),
            f.message
        );
        if let (Some(start), Some(end)) = (f.start, f.end) {
            let at = locate(text, start..end);
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
