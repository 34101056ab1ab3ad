//! `gate auth login/status/logout`: account tokens in the OS keychain, and nowhere else.
//!
//! `login` signs in (OAuth in the browser, a Bluesky app password) or takes a token made
//! elsewhere (`--with-token`, from stdin or a hidden prompt, never argv or the environment).
//! `status` refreshes and asks the servers who the tokens belong to unless `--offline`;
//! `logout` revokes, then deletes. What differs between networks is the network's
//! ([`crate::platforms::signin::SignIn`]); what is here talks to the person and the keychain.

mod login;
mod logout;
mod status;

pub use login::login;
pub use logout::logout;
pub use status::status;

use std::io::{IsTerminal as _, Read as _};

use secrecy::{ExposeSecret as _, SecretString};
use zeroize::Zeroizing;

use crate::audit::{Entry, Event};
use crate::commands::Ctx;
use crate::core::policy::{Account, Policy};
use crate::credential::{self, MAX_SECRET};
use crate::error::Error;
use crate::loopback::{Callback, Listener};
use crate::platforms::signin::{Paste, Talk};

fn account<'p>(policy: &'p Policy, name: &str) -> Result<&'p Account, Error> {
    crate::commands::named_account(policy, name, "")
}

/// Appends a `login` or `logout` entry for `account` to the audit trail.
fn audited(ctx: &Ctx, event: Event, policy: &Policy, account: &Account) -> Result<(), Error> {
    let entry = Entry {
        account: Some(account.name.clone()),
        policy_sha256: Some(policy.sha256.clone()),
        ..Entry::new(event)
    };
    ctx.store(Some(policy), crate::store::Access::Write)?
        .record(&entry)
}

/// The terminal's side of a sign-in: the browser, the loopback listener, prompts and stdin.
struct Terminal<'a> {
    ctx: &'a Ctx,
    no_browser: bool,
    /// How long to wait for the browser's redirect.
    timeout: u64,
}

impl Terminal<'_> {
    fn interactive(&self) -> bool {
        self.ctx.env.stdin_is_terminal && std::io::stdin().is_terminal()
    }
}

impl Talk for Terminal<'_> {
    fn listen(&self, port: u16) -> Result<Option<Listener>, Error> {
        if self.no_browser {
            return Ok(None);
        }
        Listener::bind(port).map(Some)
    }

    fn receive(
        &self,
        account: &Account,
        url: &str,
        state: &SecretString,
        listener: Option<(&Listener, &str)>,
        paste: Paste,
    ) -> Result<Callback, Error> {
        let name = &account.name;
        let timeout = self.timeout;
        if let Some((listener, redirect)) = listener {
            // Printed even with `-q`: nobody can sign in without it.
            self.ctx.print.say(format_args!(
                "open this address in a browser to sign in to `{name}` (waiting up to {timeout} s for the redirect to {redirect}):\n  {url}\n"
            ));
            let env = &self.ctx.env;
            if env.stdin_is_terminal
                && env.stderr_is_terminal
                && env.var("GATE_NO_BROWSER").is_none()
                && let Err(e) = webbrowser::open(url)
            {
                self.ctx
                    .print
                    .note(&format!("(could not open a browser: {e})"));
            }
            return listener.wait(state, std::time::Duration::from_secs(timeout));
        }
        let (what, prompt) = match paste {
            Paste::Code => ("then paste the code the page shows", "Code"),
            Paste::RedirectAddress => (
                "then paste the address the browser was sent to (the page itself will not load)",
                "Redirect address",
            ),
        };
        self.ctx.print.say(format_args!(
            "open this address in a browser to sign in to `{name}`, {what}:\n  {url}\n"
        ));
        let pasted = self.pasted(true, prompt)?;
        match paste {
            Paste::Code => Ok(Callback {
                code: pasted,
                iss: None,
            }),
            Paste::RedirectAddress => crate::loopback::code_from(pasted.expose_secret(), state),
        }
    }

    fn pasted(&self, stdin: bool, prompt: &str) -> Result<SecretString, Error> {
        if self.interactive() {
            let typed = hidden_prompt(prompt, &prompt.to_lowercase())?;
            return Ok(SecretString::from(typed.expose_secret().trim()));
        }
        if !stdin {
            return Err(
                Error::usage("`--client-secret` needs a terminal to prompt on")
                    .with_hint("pipe the secret in with `--client-secret -`"),
            );
        }
        let text = stdin_secret(&prompt.to_lowercase())?;
        let line = text.lines().next().unwrap_or("").trim();
        if line.is_empty() || text.len() > MAX_SECRET {
            return Err(
                Error::usage(format!("no {} given on stdin", prompt.to_lowercase()))
                    .with_hint("pipe in one line"),
            );
        }
        Ok(SecretString::from(line))
    }

    fn secret(&self, what: &str, flag: &str, account: &Account) -> Result<SecretString, Error> {
        let token = if self.interactive() {
            hidden_prompt(
                &format!(
                    "{}{} for `{}` ({})",
                    what[..1].to_uppercase(),
                    &what[1..],
                    account.name,
                    credential::host(&account.server)
                ),
                what,
            )?
        } else {
            let text = stdin_secret(what)?;
            if text.len() > MAX_SECRET {
                return Err(Error::usage(format!(
                    "the {what} on stdin is longer than {} KiB",
                    MAX_SECRET / 1024
                ))
                .with_hint(format!("pipe in only the {what}")));
            }
            SecretString::from(text.trim())
        };
        credential::check_token(token.expose_secret()).map_err(|e| {
            let problem = match e {
                credential::CredentialError::Empty => format!("no {what} given"),
                _ => format!("the {what} holds whitespace or control characters"),
            };
            let file = what.replace(' ', "-");
            Error::usage(problem).with_hint(format!(
                "pipe in only the {what}, e.g. `gate auth login {} {flag} < {file}.txt`",
                account.name
            ))
        })?;
        Ok(token)
    }

    fn ask(&self, prompt: &str) -> Result<Option<String>, Error> {
        if !self.interactive() {
            return Ok(None);
        }
        let what = prompt
            .split_whitespace()
            .next()
            .unwrap_or("value")
            .to_lowercase();
        dialoguer::Input::<String>::new()
            .with_prompt(prompt)
            .interact_text()
            .map(Some)
            .map_err(|e| Error::usage(format!("cannot read the {what} from the terminal: {e}")))
    }
}

/// A secret typed at a hidden prompt on the terminal.
fn hidden_prompt(prompt: &str, what: &str) -> Result<SecretString, Error> {
    dialoguer::Password::new()
        .with_prompt(prompt)
        .interact()
        .map(SecretString::from)
        .map_err(|e| Error::usage(format!("cannot read the {what} from the terminal: {e}")))
}

/// Stdin as UTF-8 in a buffer wiped on drop; one byte more than [`MAX_SECRET`] at most, so
/// the caller can tell a secret that is too long.
fn stdin_secret(what: &str) -> Result<Zeroizing<String>, Error> {
    let mut buf = Zeroizing::new(Vec::with_capacity(MAX_SECRET + 1));
    std::io::stdin()
        .take(MAX_SECRET as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| {
            Error::other(format!(
                "cannot read the {what} from stdin: {}",
                crate::error::io_reason(&e)
            ))
        })?;
    let bytes = std::mem::take(&mut *buf);
    String::from_utf8(bytes).map(Zeroizing::new).map_err(|e| {
        // Wipe the bytes the error hands back.
        drop(Zeroizing::new(e.into_bytes()));
        Error::usage(format!("the {what} on stdin is not UTF-8 text"))
    })
}
