//! The one way out: every command's answer (stdout) and everything it says to people (stderr)
//! leaves through the [`Printer`] in its context. Colour only where it can be seen (anstream
//! strips it otherwise), every secret gate sent hidden, `-q` and `-v` honoured in one place,
//! hints drawn one way, and a reader that went away (`gate check … | head`) is
//! [`Error::Closed`]: exit 0, nothing more said.

use std::fmt::Display;
use std::io::Write as _;

use crate::core::diagnostic::{Diagnostic, Level};
use crate::core::style::STYLES;
use crate::error::{Error, hint_line};
use crate::output::Verbosity;
use crate::redact::scrub;

/// Where a command's output goes.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    verbosity: Verbosity,
}

impl Printer {
    pub fn new(verbosity: Verbosity) -> Printer {
        Printer { verbosity }
    }

    pub fn verbosity(&self) -> Verbosity {
        self.verbosity
    }

    /// The command's answer on stdout, as given (styles stripped off a pipe).
    pub fn out(&self, text: impl Display) -> Result<(), Error> {
        let text = text.to_string();
        let mut out = anstream::stdout().lock();
        out.write_all(scrub(&text).as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| Error::stdout(&e))
    }

    /// Bytes on stdout exactly as given (`gate digest`: what a reviewer signs), no style
    /// stripped, nothing rewritten.
    pub fn bytes(&self, bytes: &[u8]) -> Result<(), Error> {
        let mut out = std::io::stdout().lock();
        out.write_all(bytes)
            .and_then(|()| out.flush())
            .map_err(|e| Error::stdout(&e))
    }

    /// One line of the command's answer on stdout.
    pub fn line(&self, text: impl Display) -> Result<(), Error> {
        self.out(format_args!("{text}\n"))
    }

    /// A JSON document on stdout, followed by a newline.
    pub fn json<T: serde::Serialize>(&self, value: &T) -> Result<(), Error> {
        let text = serde_json::to_string_pretty(value).map_err(Error::json)?;
        self.line(text)
    }

    /// Stdout for a command that writes many lines of data (`check --jsonl`, `log`):
    /// buffered, no styles; the caller maps its write errors with [`Error::stdout`] (a
    /// broken pipe is then [`Error::Closed`]) and flushes.
    pub fn lines(&self) -> std::io::BufWriter<std::io::StdoutLock<'static>> {
        std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock())
    }

    /// Text for people on stderr, as given, whatever `-q` says (a verdict, a prompt's
    /// preamble): what a command must say.
    pub fn say(&self, text: impl Display) {
        let text = text.to_string();
        let _ = anstream::stderr().lock().write_all(scrub(&text).as_bytes());
    }

    /// An error on stderr, with its hint.
    pub fn error(&self, error: &Error) {
        let _ = anstream::stderr()
            .lock()
            .write_all(error.render().as_bytes());
    }

    /// `warning: …` on stderr with an optional hint, unless `-q`.
    pub fn warning(&self, message: &str, hint: Option<&str>) {
        if self.verbosity == Verbosity::Quiet {
            return;
        }
        let s = &STYLES;
        let mut text = format!("{}warning{:#}: {message}\n", s.warning, s.warning);
        if let Some(hint) = hint {
            text.push_str(&hint_line(hint));
        }
        self.say(text);
    }

    /// The warnings among a file's diagnostics, unless `-q`.
    pub fn warnings(&self, diagnostics: &[Diagnostic]) {
        if self.verbosity == Verbosity::Quiet {
            return;
        }
        let mut err = anstream::stderr().lock();
        for d in diagnostics.iter().filter(|d| d.level == Level::Warning) {
            let _ = writeln!(err, "{}", d.render());
        }
    }

    /// A note for people on stderr, unless `-q`.
    pub fn note(&self, text: &str) {
        if self.verbosity != Verbosity::Quiet {
            self.say(format_args!("{text}\n"));
        }
    }

    /// A note with a hint under it, unless `-q`.
    pub fn note_with_hint(&self, text: &str, hint: &str) {
        if self.verbosity != Verbosity::Quiet {
            self.say(format_args!("{text}\n{}", hint_line(hint)));
        }
    }

    /// A hint under what was just said, unless `-q`.
    pub fn hint(&self, hint: &str) {
        if self.verbosity != Verbosity::Quiet {
            self.say(hint_line(hint));
        }
    }

    /// What gate is doing, on stderr with `-v` only: the keychain lookup, the store's claim,
    /// the request.
    pub fn verbose(&self, text: &str) {
        if self.verbosity == Verbosity::Verbose {
            self.say(format_args!("{text}\n"));
        }
    }
}
