//! gate's errors, each knowing its exit code, printed in one place.

use std::fmt;

use crate::core::diagnostic::Diagnostic;

use crate::core::verdict::Verdict;

/// The exit codes of SPEC §2; scripts depend on these numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Code {
    Ok = 0,
    Failure = 1,
    Usage = 2,
    Policy = 3,
    Deny = 4,
    Hold = 5,
    Review = 6,
    Frozen = 7,
    Credentials = 8,
    Network = 9,
}

impl Code {
    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

/// A verdict's exit code (SPEC §2).
impl From<Verdict> for Code {
    fn from(verdict: Verdict) -> Code {
        match verdict {
            Verdict::Allow => Code::Ok,
            Verdict::Hold => Code::Hold,
            Verdict::Review => Code::Review,
            Verdict::Deny => Code::Deny,
            Verdict::Frozen => Code::Frozen,
        }
    }
}

/// Something that stops a command, with what the user can do about it.
#[derive(Debug)]
pub enum Error {
    /// Wrong flags or arguments, or refusing to act unattended (exit 2).
    Usage {
        message: String,
        hint: Option<String>,
    },
    /// The policy file is missing or invalid (exit 3); the diagnostics say where.
    Policy { diagnostics: Vec<Diagnostic> },
    /// An input file (a post file, a JSON Lines file) is invalid (exit 2).
    Input { diagnostics: Vec<Diagnostic> },
    /// Credentials missing or unusable, or no keychain reachable (exit 8).
    Credentials {
        message: String,
        hint: Option<String>,
    },
    /// The network refused or could not be reached; nothing was sent (exit 9).
    Network {
        message: String,
        hint: Option<String>,
    },
    /// Anything else (exit 1).
    Other {
        message: String,
        hint: Option<String>,
    },
    /// Whoever read stdout closed it (`gate check ... | head`): not a failure, nothing to say.
    Closed,
}

impl Error {
    pub fn usage(message: impl Into<String>) -> Error {
        Error::Usage {
            message: message.into(),
            hint: None,
        }
    }

    pub fn other(message: impl Into<String>) -> Error {
        Error::Other {
            message: message.into(),
            hint: None,
        }
    }

    /// A failed write to stdout: [`Error::Closed`] when the reader went away (a broken pipe),
    /// which exits 0 as `head` expects, otherwise a failure naming why.
    pub fn stdout(e: &std::io::Error) -> Error {
        match e.kind() {
            std::io::ErrorKind::BrokenPipe => Error::Closed,
            _ => Error::other(format!("cannot write to stdout: {}", io_reason(e))),
        }
    }

    /// A JSON document that could not be written: serde reports the pipe's own I/O error.
    pub fn json(e: serde_json::Error) -> Error {
        match e.io_error_kind() {
            Some(std::io::ErrorKind::BrokenPipe) => Error::Closed,
            _ => Error::other(format!("cannot write JSON: {e}")),
        }
    }

    pub fn network(message: impl Into<String>) -> Error {
        Error::Network {
            message: message.into(),
            hint: None,
        }
    }

    pub fn credentials(message: impl Into<String>) -> Error {
        Error::Credentials {
            message: message.into(),
            hint: None,
        }
    }

    #[must_use]
    pub fn with_hint(self, hint: impl Into<String>) -> Error {
        let hint = Some(hint.into());
        match self {
            Error::Usage { message, .. } => Error::Usage { message, hint },
            Error::Other { message, .. } => Error::Other { message, hint },
            Error::Credentials { message, .. } => Error::Credentials { message, hint },
            Error::Network { message, .. } => Error::Network { message, hint },
            other => other,
        }
    }

    /// The same error for a delivery that an earlier attempt may have sent. A lower layer that
    /// says "nothing was sent" speaks only of its own request; here that would be a lie, so the
    /// claim gives way to what is known, and a hint that says nothing of it is told.
    #[must_use]
    pub fn earlier_may_be_out(self) -> Error {
        const MAYBE: &str = "an earlier attempt may have gone out";
        let fix = |hint: Option<String>| {
            Some(match hint {
                Some(h) if h.contains("nothing was sent") => h
                    .replace("nothing was sent by this run", MAYBE)
                    .replace("nothing was sent", MAYBE),
                Some(h) if h.contains("may have") => h,
                Some(h) => format!("{h}; {MAYBE}"),
                None => format!(
                    "{MAYBE}; run the same `gate post` again: it looks before it sends and never posts twice"
                ),
            })
        };
        match self {
            Error::Usage { message, hint } => Error::Usage {
                message,
                hint: fix(hint),
            },
            Error::Other { message, hint } => Error::Other {
                message,
                hint: fix(hint),
            },
            Error::Credentials { message, hint } => Error::Credentials {
                message,
                hint: fix(hint),
            },
            Error::Network { message, hint } => Error::Network {
                message,
                hint: fix(hint),
            },
            other => other,
        }
    }

    pub fn code(&self) -> Code {
        match self {
            Error::Usage { .. } | Error::Input { .. } => Code::Usage,
            Error::Policy { .. } => Code::Policy,
            Error::Credentials { .. } => Code::Credentials,
            Error::Network { .. } => Code::Network,
            Error::Other { .. } => Code::Failure,
            Error::Closed => Code::Ok,
        }
    }

    /// What went wrong in one line, without `error: ` or the hint, every secret gate sent
    /// hidden: for a row of `gate auth status`, a note in the journal, a JSON field.
    pub fn message(&self) -> String {
        let text = match self {
            Error::Usage { message, .. }
            | Error::Other { message, .. }
            | Error::Credentials { message, .. }
            | Error::Network { message, .. } => message.clone(),
            Error::Policy { .. } | Error::Input { .. } | Error::Closed => {
                let rendered = anstream::adapter::strip_str(&self.render_raw()).to_string();
                rendered.trim_start_matches("error: ").to_owned()
            }
        };
        let first = text.lines().next().unwrap_or("");
        crate::redact::scrub(first).into_owned()
    }

    /// The human rendering for stderr, with every secret gate sent hidden (a server may have
    /// echoed one into the message).
    pub fn render(&self) -> String {
        crate::redact::scrub(&self.render_raw()).into_owned()
    }

    fn render_raw(&self) -> String {
        match self {
            Error::Usage { message, hint }
            | Error::Other { message, hint }
            | Error::Credentials { message, hint }
            | Error::Network { message, hint } => {
                let s = &crate::core::style::STYLES;
                let mut out = format!(
                    "{}error{:#}{}: {message}{:#}\n",
                    s.error, s.error, s.bold, s.bold
                );
                if let Some(hint) = hint {
                    out.push_str(&hint_line(hint));
                }
                out
            }
            Error::Policy { diagnostics } | Error::Input { diagnostics } => diagnostics
                .iter()
                .map(Diagnostic::render)
                .collect::<Vec<_>>()
                .join("\n"),
            Error::Closed => String::new(),
        }
    }
}

/// The one way a hint is drawn under an error, a warning or a note: `  hint: …`.
pub fn hint_line(hint: &str) -> String {
    let s = &crate::core::style::STYLES;
    format!("  {}hint{:#}: {hint}\n", s.blue, s.blue)
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&anstream::adapter::strip_str(&self.render()).to_string())
    }
}

impl std::error::Error for Error {}

/// An I/O error's reason in gate's style: lowercase, without the `(os error N)` tail.
pub fn io_reason(e: &std::io::Error) -> String {
    let text = match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => e.to_string(),
    };
    let text = match text.find(" (os error") {
        Some(i) => text[..i].to_owned(),
        None => text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}
