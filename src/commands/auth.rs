//! `gate auth login/status/logout`: account tokens in the OS keychain, and nowhere else.
//!
//! Tokens are read from stdin or a hidden terminal prompt, never from argv or the
//! environment, and never printed. Sign-in with OAuth, online identity checks and revocation
//! arrive with the OAuth work; until then `login` takes a token made elsewhere.

use std::io::{IsTerminal as _, Read as _};

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::json;
use zeroize::Zeroizing;

use crate::cli::{AuthLoginArgs, AuthLogoutArgs, AuthStatusArgs};
use crate::commands::check::unknown_account_error;
use crate::commands::{Ctx, print_json};
use crate::credential::{self, Credential, MAX_SECRET};
use crate::error::{Code, Error};
use crate::keychain::Keychain;
use crate::policy::{Account, Policy};

fn account<'p>(policy: &'p Policy, name: &str) -> Result<&'p Account, Error> {
    policy
        .account(name)
        .ok_or_else(|| unknown_account_error(policy, name, ""))
}

pub fn login(ctx: &Ctx, args: &AuthLoginArgs) -> Result<Code, Error> {
    let policy = ctx.load_policy(None)?;
    let account = account(&policy, &args.account)?;
    if !args.with_token {
        return Err(Error::usage("signing in through the browser is not built yet").with_hint(format!(
            "store a token made elsewhere (e.g. on your instance's Development settings page) with \
             `gate auth login {} --with-token`; it reads the token from stdin",
            account.name
        )));
    }
    // Open the keychain first: no point asking for a token that cannot be kept.
    let keychain = Keychain::open(&ctx.env)?;
    let token = read_token(ctx, account)?;
    let user = credential::user(account);
    let replaced = keychain.get(&user)?.is_some();
    keychain.set(&user, &Credential::from_token(token).to_secret())?;
    if ctx.global.json {
        print_json(&json!({
            "account": account.name,
            "user": user,
            "stored_in": keychain.backend().id(),
            "replaced": replaced,
        }))?;
    } else {
        let verb = if replaced {
            "replaced the token"
        } else {
            "stored a token"
        };
        ctx.note(&format!(
            "{verb} for `{}` in {} (service `gate`, user `{user}`)",
            account.name,
            keychain.backend().place()
        ));
    }
    Ok(Code::Ok)
}

/// The token from a hidden prompt on a terminal, else all of stdin (trimmed).
fn read_token(ctx: &Ctx, account: &Account) -> Result<SecretString, Error> {
    let token = if ctx.env.stdin_is_terminal && std::io::stdin().is_terminal() {
        let typed = dialoguer::Password::new()
            .with_prompt(format!(
                "Token for `{}` ({})",
                account.name,
                credential::host(&account.server)
            ))
            .interact()
            .map_err(|e| Error::usage(format!("cannot read the token from the terminal: {e}")))?;
        SecretString::from(typed)
    } else {
        let mut buf = Zeroizing::new(Vec::with_capacity(MAX_SECRET + 1));
        std::io::stdin()
            .take(MAX_SECRET as u64 + 1)
            .read_to_end(&mut buf)
            .map_err(|e| {
                Error::other(format!(
                    "cannot read the token from stdin: {}",
                    crate::error::io_reason(&e)
                ))
            })?;
        if buf.len() > MAX_SECRET {
            return Err(Error::usage(format!(
                "the token on stdin is longer than {} KiB",
                MAX_SECRET / 1024
            ))
            .with_hint("pipe in only the token"));
        }
        let text = std::str::from_utf8(&buf)
            .map_err(|_| Error::usage("the token on stdin is not UTF-8 text"))?;
        SecretString::from(text.trim())
    };
    credential::check_token(token.expose_secret()).map_err(|e| {
        let what = match e {
            credential::CredentialError::Empty => "no token given".to_owned(),
            _ => "the token holds whitespace or control characters".to_owned(),
        };
        Error::usage(what).with_hint(format!(
            "pipe in only the token, e.g. `gate auth login {} --with-token < token.txt`",
            account.name
        ))
    })?;
    Ok(token)
}

/// One account's line in `gate auth status`.
struct Status<'p> {
    account: &'p Account,
    user: String,
    /// A secret is stored for the account (readable or not).
    present: bool,
    credential: Option<Credential>,
    problem: Option<String>,
}

impl Status<'_> {
    fn usable(&self) -> bool {
        self.credential.is_some() && self.problem.is_none()
    }
}

pub fn status(ctx: &Ctx, args: &AuthStatusArgs) -> Result<Code, Error> {
    let policy = ctx.load_policy(None)?;
    let accounts: Vec<&Account> = match &args.account {
        Some(name) => vec![account(&policy, name)?],
        None => policy.accounts.values().collect(),
    };
    let keychain = Keychain::open(&ctx.env)?;
    let now = Utc::now();
    let mut rows = Vec::new();
    for account in accounts {
        let user = credential::user(account);
        let secret = keychain.get(&user)?;
        let present = secret.is_some();
        let (credential, problem) = match secret {
            None => (None, Some("no token stored".to_owned())),
            Some(secret) => match Credential::from_secret(&secret) {
                Ok(c) if c.is_expired(now) => {
                    let at = c.expires_at.map(rfc3339).unwrap_or_default();
                    (Some(c), Some(format!("expired at {at}")))
                }
                Ok(c) => (Some(c), None),
                Err(e) => (None, Some(e.to_string())),
            },
        };
        rows.push(Status {
            account,
            user,
            present,
            credential,
            problem,
        });
    }
    let backend = keychain.backend();
    if ctx.global.json {
        let accounts: Vec<_> = rows
            .iter()
            .map(|r| {
                let c = r.credential.as_ref();
                json!({
                    "account": r.account.name,
                    "platform": r.account.platform.name(),
                    "server": r.account.server,
                    "user": r.user,
                    "present": r.present,
                    "usable": r.usable(),
                    "problem": r.problem,
                    "stored_in": r.present.then_some(backend.id()),
                    "expires_at": c.and_then(|c| c.expires_at).map(rfc3339),
                    "scopes": c.map(|c| c.scopes.clone()).unwrap_or_default(),
                    "token_type": c.and_then(|c| c.token_type.clone()),
                    "identity": c.and_then(|c| c.identity.clone()),
                    "checked_online": false,
                })
            })
            .collect();
        print_json(&json!({"keychain": backend.id(), "accounts": accounts}))?;
    } else {
        let mut out = String::new();
        for r in &rows {
            out.push_str(&human(r, backend));
        }
        print!("{out}");
        if !args.offline && ctx.verbosity() != crate::output::Verbosity::Quiet {
            ctx.note("note: tokens were not checked with the servers; online checks arrive with OAuth sign-in");
        }
    }
    if args.account.is_some()
        && let Some(r) = rows.first().filter(|r| !r.usable())
    {
        let error = Error::credentials(format!(
            "`{}` has no usable token: {}",
            r.account.name,
            r.problem.as_deref().unwrap_or("unknown")
        ))
        .with_hint(format!(
            "store one with `gate auth login {} --with-token`",
            r.account.name
        ));
        if ctx.global.json {
            // stdout already holds the one JSON document; the error goes to stderr only.
            eprint!("{error}");
            return Ok(Code::Credentials);
        }
        return Err(error);
    }
    Ok(Code::Ok)
}

fn human(r: &Status<'_>, backend: crate::keychain::Backend) -> String {
    let head = format!(
        "{} ({}, user `{}`)",
        r.account.name,
        r.account.platform.name(),
        r.user
    );
    let problem = r.problem.as_deref().unwrap_or("unknown");
    let Some(c) = &r.credential else {
        return if r.present {
            format!("{head}: stored in {}, but {problem}\n", backend.place())
        } else {
            format!("{head}: {problem}\n")
        };
    };
    let state = match &r.problem {
        Some(p) => format!("stored in {}, but {p}", backend.place()),
        None => format!("stored in {}", backend.place()),
    };
    let expires = match c.expires_at {
        Some(t) => rfc3339(t),
        None => "never".to_owned(),
    };
    let scopes = if c.scopes.is_empty() {
        "not recorded".to_owned()
    } else {
        c.scopes.join(" ")
    };
    let identity = c
        .identity
        .clone()
        .unwrap_or_else(|| "not recorded".to_owned());
    format!("{head}: {state}\n  expires: {expires}\n  scopes: {scopes}\n  identity: {identity}\n")
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub fn logout(ctx: &Ctx, args: &AuthLogoutArgs) -> Result<Code, Error> {
    let policy = ctx.load_policy(None)?;
    let account = account(&policy, &args.account)?;
    let keychain = Keychain::open(&ctx.env)?;
    let user = credential::user(account);
    let removed = keychain.delete(&user)?;
    if ctx.global.json {
        print_json(&json!({
            "account": account.name,
            "user": user,
            "removed": removed,
            "keychain": keychain.backend().id(),
            "revoked": false,
        }))?;
    } else if removed {
        ctx.note(&format!(
            "removed the token for `{}` from {}",
            account.name,
            keychain.backend().place()
        ));
        ctx.note("  note: the token was not revoked at the server (revocation arrives with OAuth sign-in); revoke it in the account's settings");
    } else {
        ctx.note(&format!(
            "no token for `{}` was stored in {}",
            account.name,
            keychain.backend().place()
        ));
    }
    Ok(Code::Ok)
}
