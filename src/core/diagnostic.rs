//! Diagnostics that point into a file: `path:line:column`, the source line and a caret.

use std::fmt::Write as _;
use std::ops::Range;

use serde::Serialize;
use serde_json::json;

/// How bad a diagnostic is; only errors make a file invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Error,
    Warning,
}

/// A file's text kept beside its display name, so every message can quote it.
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub text: String,
}

impl Source {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Source {
        Source {
            name: name.into(),
            text: text.into(),
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let offset = floor_char_boundary(&self.text, offset.min(self.text.len()));
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        (line, column)
    }
}

/// Where a byte span sits in a text, ready to be quoted with a caret under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// 1-based line and column (in characters).
    pub line: usize,
    pub column: usize,
    /// The line's text, tabs shown as spaces, without its line ending.
    pub text: String,
    /// Display columns before the caret, and the caret's width (at least 1).
    pub pad: usize,
    pub width: usize,
}

/// Finds the line holding `span.start`; a span running past the line is cut at its end.
pub fn locate(text: &str, span: Range<usize>) -> Located {
    use unicode_width::UnicodeWidthStr;
    let start = floor_char_boundary(text, span.start.min(text.len()));
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let end = floor_char_boundary(text, span.end.clamp(start, line_end));
    let line = text[..start].matches('\n').count() + 1;
    let column = text[line_start..start].chars().count() + 1;
    let shown = |s: &str| s.replace('\t', " ");
    Located {
        line,
        column,
        text: shown(text[line_start..line_end].trim_end_matches('\r')),
        pad: shown(&text[line_start..start]).width(),
        width: shown(&text[start..end]).width().max(1),
    }
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// One problem found in a file, with where it is and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub level: Level,
    pub message: String,
    pub file: String,
    /// 1-based; 0 when the problem concerns the whole file.
    pub line: usize,
    pub column: usize,
    /// The quoted source line and the caret under the offending span.
    pub snippet: Option<(String, usize, usize)>,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn at(
        level: Level,
        source: &Source,
        span: Range<usize>,
        message: impl Into<String>,
    ) -> Self {
        let located = locate(&source.text, span);
        Diagnostic {
            level,
            message: message.into(),
            file: source.name.clone(),
            line: located.line,
            column: located.column,
            snippet: Some((located.text, located.pad, located.width)),
            hint: None,
        }
    }

    /// A problem with the file as a whole (it cannot be read, say).
    pub fn whole_file(level: Level, file: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            level,
            message: message.into(),
            file: file.into(),
            line: 0,
            column: 0,
            snippet: None,
            hint: None,
        }
    }

    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.level == Level::Error
    }

    /// `file:line:column`, or just the file when there is no position.
    pub fn location(&self) -> String {
        if self.line == 0 {
            self.file.clone()
        } else {
            format!("{}:{}:{}", self.file, self.line, self.column)
        }
    }

    /// The human rendering: `error: …`, ` --> file:3:7`, the line and a caret, then the hint.
    pub fn render(&self) -> String {
        let styles = &crate::core::style::STYLES;
        let mut out = String::new();
        let (label, style) = match self.level {
            Level::Error => ("error", styles.error),
            Level::Warning => ("warning", styles.warning),
        };
        let _ = writeln!(
            out,
            "{style}{label}{style:#}{bold}: {}{bold:#}",
            self.message,
            bold = styles.bold
        );
        let Some((text, start, width)) = &self.snippet else {
            // A diagnostic about no file at all (no policy found) points at none.
            if !self.file.is_empty() {
                let _ = writeln!(out, "  {blue}-->{blue:#} {}", self.file, blue = styles.blue);
            }
            if let Some(hint) = &self.hint {
                let _ = writeln!(out, "  {blue}={blue:#} hint: {hint}", blue = styles.blue);
            }
            return out;
        };
        let gutter = self.line.to_string().len();
        let pad = " ".repeat(gutter);
        let blue = styles.blue;
        let _ = writeln!(out, "{pad}{blue}-->{blue:#} {}", self.location());
        let _ = writeln!(out, "{pad} {blue}|{blue:#}");
        let _ = writeln!(out, "{blue}{}{blue:#} {blue}|{blue:#} {text}", self.line);
        let caret_pad = " ".repeat(*start);
        let _ = writeln!(
            out,
            "{pad} {blue}|{blue:#} {caret_pad}{style}{}{style:#}",
            "^".repeat(*width)
        );
        if let Some(hint) = &self.hint {
            let _ = writeln!(out, "{pad} {blue}={blue:#} hint: {hint}");
        }
        out
    }

    /// One GitHub Actions workflow command, e.g. `::error file=gate.toml,line=3,col=7::…`.
    pub fn github(&self) -> String {
        let kind = match self.level {
            Level::Error => "error",
            Level::Warning => "warning",
        };
        let mut message = self.message.clone();
        if let Some(hint) = &self.hint {
            message.push_str(" (hint: ");
            message.push_str(hint);
            message.push(')');
        }
        let file = escape_property(&self.file);
        if self.file.is_empty() {
            format!("::{kind}::{}", escape_data(&message))
        } else if self.line == 0 {
            format!("::{kind} file={file}::{}", escape_data(&message))
        } else {
            format!(
                "::{kind} file={file},line={},col={}::{}",
                self.line,
                self.column,
                escape_data(&message)
            )
        }
    }
}

pub fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

pub fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// The closest candidate to a misspelt name, when one is close enough to suggest.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(name, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

impl Diagnostic {
    /// This diagnostic as SPEC §5 pins it: `severity`, `message`, `line`, `column` (and the file).
    pub fn json(&self) -> serde_json::Value {
        let mut v = json!({
            "severity": self.level,
            "message": self.message,
            "file": self.file,
            "line": self.line,
            "column": self.column,
        });
        if let Some(hint) = &self.hint {
            v["hint"] = json!(hint);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_characters_not_bytes() {
        let source = Source::new("p.toml", "a = 1\nbé = \"x\"\n");
        assert_eq!(source.position(0), (1, 1));
        assert_eq!(source.position(6), (2, 1));
        // after "bé " (4 bytes, 3 chars)
        assert_eq!(source.position(10), (2, 4));
    }

    #[test]
    fn renders_caret_under_span() {
        let source = Source::new("gate.toml", "version = 1\ntimezon = \"UTC\"\n");
        let d = Diagnostic::at(Level::Error, &source, 12..19, "unknown key `timezon`")
            .with_hint("did you mean `timezone`?");
        assert_eq!(
            anstream::adapter::strip_str(&d.render()).to_string(),
            "error: unknown key `timezon`\n --> gate.toml:2:1\n  |\n2 | timezon = \"UTC\"\n  | ^^^^^^^\n  = hint: did you mean `timezone`?\n"
        );
        assert_eq!(
            d.github(),
            "::error file=gate.toml,line=2,col=1::unknown key `timezon` (hint: did you mean `timezone`?)"
        );
    }

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(
            did_you_mean("timezon", ["version", "timezone"]),
            Some("timezone")
        );
        assert_eq!(did_you_mean("zzz", ["version", "timezone"]), None);
    }
}
