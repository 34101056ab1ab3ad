//! `gate auth status [ACCOUNT]`: what the keychain holds for each account and, unless
//! `--offline`, whom the server says it belongs to.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::account;
use crate::cli::AuthStatusArgs;
use crate::commands::Ctx;
use crate::core::policy::Account;
use crate::credential::{self, Credential};
use crate::error::{Code, Error};
use crate::keychain::Keychain;
use crate::platforms::oauth2::rfc3339;

/// One account's line in `gate auth status`.
struct Status<'p> {
    account: &'p Account,
    user: String,
    /// A secret is stored for the account (readable or not).
    present: bool,
    credential: Option<Credential>,
    problem: Option<String>,
    /// The error behind `problem`, for a named account's exit code.
    error: Option<Error>,
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
    let rows: Vec<Status> = accounts
        .into_iter()
        .map(|account| row(ctx, &keychain, account, args.offline, now))
        .collect::<Result<_, _>>()?;
    let backend = keychain.backend();
    let store = ctx.store(Some(&policy), crate::store::Access::Read)?;
    let freeze = crate::store::FreezeState::read(store.as_ref(), Some(&policy))?;
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
        ctx.print.json(&json!({
            "keychain": backend.id(),
            "accounts": accounts,
            "frozen": freeze.frozen(),
            "freeze": freeze.json(),
            "state_store": {"backend": store.backend(), "location": store.location()},
        }))?;
    } else {
        if store.backend() != "sqlite" {
            ctx.print
                .note(&format!("state: the team store `{}`", store.location()));
        }
        // Only a freeze in force is worth a line here; `gate log` also says "not frozen".
        if freeze.frozen() {
            ctx.print.note(&freeze.line());
        }
        let mut out = String::new();
        for r in &rows {
            out.push_str(&human(r, backend));
        }
        ctx.print.out(out)?;
    }
    if args.account.is_some()
        && let Some(r) = rows.into_iter().next().filter(|r| !r.usable())
    {
        let name = &r.account.name;
        let error = match r.error {
            Some(e) => e,
            None => Error::credentials(format!(
                "`{name}` has no usable token: {}",
                r.problem.as_deref().unwrap_or("unknown")
            ))
            .with_hint(crate::platforms::sign_in_of(r.account.platform).login_hint(r.account)),
        };
        if ctx.global.json {
            // stdout already holds the one JSON document; the error goes to stderr only.
            ctx.print.error(&error);
            return Ok(error.code());
        }
        return Err(error);
    }
    Ok(Code::Ok)
}

/// One account: what is stored, and (unless `offline`) what its server says of it.
fn row<'p>(
    ctx: &Ctx,
    keychain: &Keychain,
    account: &'p Account,
    offline: bool,
    now: DateTime<Utc>,
) -> Result<Status<'p>, Error> {
    let network = crate::platforms::sign_in_of(account.platform);
    let user = credential::user(account);
    let secret = keychain.get(&user)?;
    let present = secret.is_some();
    let (mut credential, mut problem) = match secret {
        None => (None, Some("no token stored".to_owned())),
        Some(secret) => match Credential::from_secret(&secret) {
            Ok(c) if c.is_expired(now) && (offline || c.refresh_token.is_none()) => {
                let at = c.expires_at.map(rfc3339).unwrap_or_default();
                let p = if c.refresh_token.is_some() {
                    format!(
                        "expired at {at} (a refresh token is stored; not tried with `--offline`)"
                    )
                } else {
                    format!("expired at {at}")
                };
                (Some(c), Some(p))
            }
            Ok(c) => (Some(c), None),
            Err(e) => (None, Some(e.to_string())),
        },
    };
    let mut error = None;
    let mut checked_online = false;
    let checkable = credential.as_ref().is_some_and(|c| network.checkable(c));
    if !offline && checkable && problem.is_none() {
        match network.online(&ctx.env, keychain, account, now) {
            Ok(c) => {
                credential = Some(c);
                checked_online = true;
            }
            Err((p, e)) => {
                problem = Some(p);
                error = Some(e);
            }
        }
    }
    Ok(Status {
        account,
        user,
        present,
        credential,
        problem,
        error,
        checked_online,
    })
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
    let identity = match (&c.identity, r.checked_online) {
        (Some(who), true) => format!("{who} (confirmed by the server)"),
        (Some(who), false) => format!("{who} (not checked online)"),
        (None, _) => "not recorded".to_owned(),
    };
    format!("{head}: {state}\n  expires: {expires}\n  scopes: {scopes}\n  identity: {identity}\n")
}
