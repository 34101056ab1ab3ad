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
    if args.app_password {
        return login_app_password(ctx, account);
    }
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

/// `--app-password`: a Bluesky session from the account's handle and an app password.
fn login_app_password(ctx: &Ctx, account: &Account) -> Result<Code, Error> {
    use crate::platforms::bluesky::session;
    if account.platform != crate::policy::Platform::Bluesky {
        return Err(Error::usage(format!(
            "`--app-password` is for bluesky accounts; `{}` is a {} account",
            account.name,
            account.platform.name()
        ))
        .with_hint(format!(
            "use `gate auth login {} --with-token`",
            account.name
        )));
    }
    let keychain = Keychain::open(&ctx.env)?;
    let interactive = ctx.env.stdin_is_terminal && std::io::stdin().is_terminal();
    let identifier = match &account.handle {
        Some(h) => h.clone(),
        None if interactive => dialoguer::Input::<String>::new()
            .with_prompt(format!("Handle for `{}`", account.name))
            .interact_text()
            .map_err(|e| Error::usage(format!("cannot read the handle from the terminal: {e}")))?,
        None => {
            return Err(Error::usage(format!(
                "bluesky account `{}` has no `handle`",
                account.name
            ))
            .with_hint(format!(
                "add `handle = \"brand.bsky.social\"` to `[accounts.{}]` in the policy",
                account.name
            )));
        }
    };
    let password = read_secret(ctx, "app password", "--app-password", account)?;
    let credential = session::create_session(account, identifier.trim(), &password)?;
    drop(password);
    let user = credential::user(account);
    let replaced = keychain.get(&user)?.is_some();
    keychain.set(&user, &credential.to_secret())?;
    let handle = credential.identity.clone().unwrap_or_default();
    let did = session::did(&credential).unwrap_or_default().to_owned();
    if ctx.global.json {
        print_json(&json!({
            "account": account.name,
            "user": user,
            "stored_in": keychain.backend().id(),
            "replaced": replaced,
            "handle": handle,
            "did": did,
            "expires_at": credential.expires_at.map(rfc3339),
        }))?;
    } else {
        ctx.note(&format!(
            "signed in to {} as `{handle}` ({did}); stored the session for `{}` in {} (user `{user}`); the app password was not stored",
            credential::host(&account.server),
            account.name,
            keychain.backend().place()
        ));
    }
    Ok(Code::Ok)
}

/// The token from a hidden prompt on a terminal, else all of stdin (trimmed).
fn read_token(ctx: &Ctx, account: &Account) -> Result<SecretString, Error> {
    read_secret(ctx, "token", "--with-token", account)
}

/// A secret from a hidden prompt on a terminal, else all of stdin (trimmed): one run of
/// visible characters.
fn read_secret(
    ctx: &Ctx,
    what: &str,
    flag: &str,
    account: &Account,
) -> Result<SecretString, Error> {
    let token = if ctx.env.stdin_is_terminal && std::io::stdin().is_terminal() {
        let typed = dialoguer::Password::new()
            .with_prompt(format!(
                "{}{} for `{}` ({})",
                what[..1].to_uppercase(),
                &what[1..],
                account.name,
                credential::host(&account.server)
            ))
            .interact()
            .map_err(|e| Error::usage(format!("cannot read the {what} from the terminal: {e}")))?;
        SecretString::from(typed)
    } else {
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
        if buf.len() > MAX_SECRET {
            return Err(Error::usage(format!(
                "the {what} on stdin is longer than {} KiB",
                MAX_SECRET / 1024
            ))
            .with_hint(format!("pipe in only the {what}")));
        }
        let text = std::str::from_utf8(&buf)
            .map_err(|_| Error::usage(format!("the {what} on stdin is not UTF-8 text")))?;
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

/// One account's line in `gate auth status`.
struct Status<'p> {
    account: &'p Account,
    user: String,
    /// A secret is stored for the account (readable or not).
    present: bool,
    credential: Option<Credential>,
    problem: Option<String>,
    /// The server confirmed the session (Bluesky `getSession`).
    checked_online: bool,
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
        let mut row = Status {
            account,
            user,
            present,
            credential,
            problem,
            checked_online: false,
        };
        if !args.offline {
            check_bluesky_online(ctx, &mut row, args.account.is_some())?;
        }
        rows.push(row);
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
                    "checked_online": r.checked_online,
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
        if !args.offline
            && rows.iter().any(|r| !r.checked_online)
            && ctx.verbosity() != crate::output::Verbosity::Quiet
        {
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

/// A Bluesky app-password session is checked with `getSession` (refreshed first when it is
/// about to expire). For one named account a refusal is the command's error (exit 8).
fn check_bluesky_online(ctx: &Ctx, row: &mut Status<'_>, only: bool) -> Result<(), Error> {
    use crate::platforms::bluesky::session;
    let is_session = row.credential.as_ref().and_then(session::did).is_some();
    if row.account.platform != crate::policy::Platform::Bluesky || !is_session {
        return Ok(());
    }
    match session::check_online(&ctx.env, row.account) {
        Ok((credential, handle, _did)) => {
            let mut credential = credential;
            credential.identity = Some(handle);
            row.credential = Some(credential);
            row.problem = None;
            row.checked_online = true;
            Ok(())
        }
        Err(e) if only => Err(e),
        Err(e) => {
            row.problem = Some(
                anstream::adapter::strip_str(&e.render())
                    .to_string()
                    .trim()
                    .replace('\n', "; "),
            );
            Ok(())
        }
    }
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
    let revoked = end_bluesky_session(ctx, &keychain, account, &user)?;
    let removed = keychain.delete(&user)?;
    if ctx.global.json {
        print_json(&json!({
            "account": account.name,
            "user": user,
            "removed": removed,
            "keychain": keychain.backend().id(),
            "revoked": revoked,
        }))?;
    } else if removed {
        ctx.note(&format!(
            "removed the token for `{}` from {}",
            account.name,
            keychain.backend().place()
        ));
        if revoked {
            ctx.note("  the session was also ended at the server");
        } else {
            ctx.note("  note: the token was not revoked at the server (revocation arrives with OAuth sign-in); revoke it in the account's settings");
        }
    } else {
        ctx.note(&format!(
            "no token for `{}` was stored in {}",
            account.name,
            keychain.backend().place()
        ));
    }
    Ok(Code::Ok)
}

/// Bluesky app-password sessions end at the server (`deleteSession`) before the keychain
/// forgets them. A failure is reported and the local copy is removed anyway.
fn end_bluesky_session(
    ctx: &Ctx,
    keychain: &Keychain,
    account: &Account,
    user: &str,
) -> Result<bool, Error> {
    use crate::platforms::bluesky::session;
    if account.platform != crate::policy::Platform::Bluesky {
        return Ok(false);
    }
    let Some(secret) = keychain.get(user)? else {
        return Ok(false);
    };
    let Ok(credential) = Credential::from_secret(&secret) else {
        return Ok(false);
    };
    if session::did(&credential).is_none() || credential.refresh_token.is_none() {
        return Ok(false);
    }
    match session::delete_session(account, &credential) {
        Ok(()) => Ok(true),
        Err(e) => {
            ctx.note(&format!(
                "warning: the session could not be ended at the server: {}",
                anstream::adapter::strip_str(&e.render()).to_string().trim()
            ));
            Ok(false)
        }
    }
}
