//! Signing an account in, keeping its token usable, saying whose it is and ending the sign-in:
//! what `gate auth login/status/logout` and `gate post` need of a network, behind one trait
//! with one implementation per network (`mastodon::signin`, `x::signin`, `bluesky::signin`).
//!
//! The command does the talking (the browser, the loopback listener, prompts and stdin: the
//! [`Talk`] it hands in) and keeps what a sign-in returns in the keychain; the network does
//! the protocol. No command chooses between networks.

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde_json::{Map, Value};

use crate::core::policy::Account;
use crate::credential::Credential;
use crate::env::Env;
use crate::error::Error;
use crate::keychain::Keychain;
use crate::loopback::{Callback, Listener};

/// How `gate auth login` was asked to sign in.
#[derive(Debug, Clone, Copy)]
pub enum How<'a> {
    /// `--with-token`: a token made elsewhere, from stdin or a hidden prompt.
    Token,
    /// `--app-password`: a Bluesky session from the handle and an app password.
    AppPassword,
    /// In the browser; `client_secret` is `--client-secret`'s value (`-` or empty: read it).
    Browser { client_secret: Option<&'a str> },
}

/// What a person pastes after signing in with `--no-browser`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paste {
    /// The code the page shows (Mastodon's out-of-band redirect).
    Code,
    /// The address the browser was sent to (the page itself does not load).
    RedirectAddress,
}

/// The command's side of a sign-in: everything that talks to the person or the terminal.
pub trait Talk {
    /// A loopback listener on 127.0.0.1 (`port` 0: any free one), or none when the person
    /// signs in by pasting (`--no-browser`).
    fn listen(&self, port: u16) -> Result<Option<Listener>, Error>;
    /// Shows the sign-in address (opening a browser on a terminal) and takes the redirect
    /// from `listener`, or pasted by hand without one.
    fn receive(
        &self,
        account: &Account,
        url: &str,
        state: &SecretString,
        listener: Option<(&Listener, &str)>,
        paste: Paste,
    ) -> Result<Callback, Error>;
    /// One line typed at a hidden prompt on a terminal, else from stdin when `stdin`.
    fn pasted(&self, stdin: bool, prompt: &str) -> Result<SecretString, Error>;
    /// A secret (`what`: "token", "app password") from a hidden prompt on a terminal, else
    /// all of stdin, checked to be one run of visible characters; `flag` names it in hints.
    fn secret(&self, what: &str, flag: &str, account: &Account) -> Result<SecretString, Error>;
    /// A value asked for on a terminal (`None` when nobody can be asked).
    fn ask(&self, prompt: &str) -> Result<Option<String>, Error>;
}

/// What a sign-in made, for the command to keep and report.
pub struct SignedIn {
    pub credential: Credential,
    /// The keys `gate auth login --json` prints beside `account`, `user`, `stored_in` and
    /// `replaced`.
    pub json: Map<String, Value>,
    /// The human line; `{place}` and `{user}` stand for where the keychain keeps it.
    pub said: String,
}

/// One network's sign-in.
pub trait SignIn: Sync {
    /// Refuses, before anything is read or stored, a way of signing in this network does not
    /// take (or flags that do not fit it).
    fn check(&self, account: &Account, how: How<'_>) -> Result<(), Error>;
    /// Signs in (`check` has passed and the keychain is open).
    fn sign_in(
        &self,
        talk: &dyn Talk,
        keychain: &Keychain,
        account: &Account,
        how: How<'_>,
    ) -> Result<SignedIn, Error>;
    /// The account's credential, refreshed first when it is about to expire (under the
    /// keychain item's lock: [`crate::credential::usable`]).
    fn usable(&self, env: &Env, account: &Account) -> Result<Credential, Error>;
    /// Whether a stored credential is one the server can be asked about.
    fn checkable(&self, _credential: &Credential) -> bool {
        true
    }
    /// Refreshes if needed, then asks the server whose the token is: the credential with
    /// its identity. On failure, the problem for `gate auth status`'s row and the error.
    fn online(
        &self,
        env: &Env,
        keychain: &Keychain,
        account: &Account,
        now: DateTime<Utc>,
    ) -> Result<Credential, (String, Error)>;
    /// Ends the sign-in at the server; `None` when there is nothing to end there.
    fn revoke(
        &self,
        keychain: &Keychain,
        account: &Account,
        credential: &Credential,
    ) -> Option<Result<(), Error>>;
    /// What to run to sign in again, for hints.
    fn login_hint(&self, account: &Account) -> String {
        format!("run `gate auth login {}`", account.name)
    }
}

/// `--with-token` where a token made elsewhere is a credential (Mastodon, X).
pub fn token(talk: &dyn Talk, account: &Account) -> Result<SignedIn, Error> {
    let token = talk.secret("token", "--with-token", account)?;
    Ok(SignedIn {
        credential: Credential::from_token(token),
        json: Map::new(),
        said: format!(
            "{{verb}} for `{}` in {{place}} (service `gate`, user `{{user}}`)",
            account.name
        ),
    })
}

/// `--app-password` on a network that has no app passwords.
pub fn no_app_password(account: &Account) -> Error {
    Error::usage(format!(
        "`--app-password` is for bluesky accounts; `{}` is a {} account",
        account.name,
        account.platform.name()
    ))
    .with_hint(format!(
        "use `gate auth login {} --with-token`",
        account.name
    ))
}
