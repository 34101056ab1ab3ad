//! `gate auth login/status/logout`: account tokens in the OS keychain, and nowhere else.
//!
//! `login` signs in with OAuth (Mastodon, X) or takes a token made elsewhere (`--with-token`,
//! from stdin or a hidden prompt, never argv or the environment). `status` refreshes and asks
//! the servers who the tokens belong to unless `--offline`; `logout` revokes, then deletes.

use std::io::{IsTerminal as _, Read as _};

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::json;
use zeroize::Zeroizing;

use crate::audit::{Entry, Event};
use crate::cli::{AuthLoginArgs, AuthLogoutArgs, AuthStatusArgs};
use crate::commands::{Ctx, print_json};
use crate::core::policy::{Account, Platform, Policy};
use crate::credential::{self, Credential, MAX_SECRET};
use crate::error::{Code, Error};
use crate::keychain::Keychain;
use crate::oauth::{self, App, Endpoints, WhoAmI};

fn account<'p>(policy: &'p Policy, name: &str) -> Result<&'p Account, Error> {
    super::named_account(policy, name, "")
}

/// Stores `credential` as the account's, replacing what was there, and audits the login:
/// the keychain user, and whether something was replaced.
fn keep(
    ctx: &Ctx,
    keychain: &Keychain,
    policy: &Policy,
    account: &Account,
    credential: &Credential,
) -> Result<(String, bool), Error> {
    let user = credential::user(account);
    let replaced = keychain.get(&user)?.is_some();
    keychain.set(&user, &credential.to_secret())?;
    audited(ctx, Event::Login, policy, account)?;
    Ok((user, replaced))
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

pub fn login(ctx: &Ctx, args: &AuthLoginArgs) -> Result<Code, Error> {
    let policy = ctx.load_policy(None)?;
    let account = account(&policy, &args.account)?;
    if args.app_password {
        return login_app_password(ctx, &policy, account);
    }
    if !args.with_token {
        if account.platform == Platform::Bluesky {
            return sign_in_bluesky(ctx, &policy, account, args);
        }
        return sign_in(ctx, &policy, account, args);
    }
    // A Bluesky token alone is no session gate can post with (`gate post` needs the session
    // `--app-password` or OAuth makes): refused before anything is read or stored.
    if account.platform == Platform::Bluesky {
        return Err(Error::usage(format!(
            "`--with-token` does not work for bluesky account `{}`: a Bluesky session is made by signing in",
            account.name
        ))
        .with_hint(format!(
            "run `gate auth login {0} --app-password` (with an app password) or `gate auth login {0}` (atproto OAuth in the browser)",
            account.name
        )));
    }
    // Open the keychain first: no point asking for a token that cannot be kept.
    let keychain = Keychain::open(&ctx.env)?;
    let token = read_token(ctx, account)?;
    let (user, replaced) = keep(
        ctx,
        &keychain,
        &policy,
        account,
        &Credential::from_token(token),
    )?;
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
fn login_app_password(ctx: &Ctx, policy: &Policy, account: &Account) -> Result<Code, Error> {
    use crate::platforms::bluesky::session;
    if account.platform != crate::core::policy::Platform::Bluesky {
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
    // The session's scope says what signed in: an app password gives `com.atproto.appPass`
    // (or `appPassPrivileged`), the account's main password `com.atproto.access`, full power
    // over the account. That one is refused: the session is ended and nothing is stored.
    if credential.scopes.iter().any(|s| s == "com.atproto.access") {
        let _ = session::delete_session(account, &credential);
        return Err(Error::credentials(format!(
            "`{}` signed in with the account's main password, not an app password; nothing was stored",
            identifier.trim()
        ))
        .with_hint(
            "make an app password (Bluesky: Settings → Privacy and security → App passwords) and sign in with it; never give gate the main password",
        ));
    }
    let (user, replaced) = keep(ctx, &keychain, policy, account, &credential)?;
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

/// The OAuth sign-in: the authorize URL (a browser opened on a terminal, the URL always
/// printed), the redirect on a loopback listener or pasted by hand, the code exchanged for
/// tokens, the identity checked with the server, then everything stored in the keychain.
fn sign_in(
    ctx: &Ctx,
    policy: &Policy,
    account: &Account,
    args: &AuthLoginArgs,
) -> Result<Code, Error> {
    let name = &account.name;
    let endpoints = Endpoints::for_account(account)?;
    if let Some(value) = &args.client_secret {
        if account.platform != Platform::X {
            return Err(Error::usage("`--client-secret` is only for X accounts")
                .with_hint("gate registers its own app on a Mastodon instance"));
        }
        if !value.is_empty() && value != "-" {
            return Err(Error::usage("a client secret is never taken from the command line")
                .with_hint(format!(
                    "pipe it in with `gate auth login {name} --client-secret - < secret.txt`, or give `--client-secret` alone on a terminal"
                )));
        }
    }
    let keychain = Keychain::open(&ctx.env)?;
    let listener = if args.no_browser {
        None
    } else {
        Some(crate::loopback::Listener::bind(endpoints.redirect_port)?)
    };
    let redirect = match (&listener, account.platform) {
        (Some(l), _) => oauth::loopback_redirect(l.port),
        (None, Platform::Mastodon) => oauth::OOB.to_owned(),
        (None, _) => oauth::loopback_redirect(endpoints.redirect_port),
    };
    // The client: Mastodon's app registered on the instance, or the team's X app.
    let (app, new_app) = match account.platform {
        Platform::Mastodon => {
            let wanted = if args.no_browser {
                oauth::OOB.to_owned()
            } else if endpoints.redirect_port == 0 {
                "http://127.0.0.1/callback".to_owned()
            } else {
                redirect.clone()
            };
            match oauth::stored_app(&keychain, account, None)?
                .filter(|a| a.redirect_uris.contains(&wanted) && a.scopes == endpoints.scopes)
            {
                Some(app) => (app, false),
                None => (oauth::register_mastodon_app(account, &endpoints)?, true),
            }
        }
        _ => {
            let client_id = endpoints.client_id.clone().ok_or_else(|| {
                Error::usage(format!("account `{name}` has no OAuth `client_id`"))
                    .with_hint(format!(
                        "add `client_id = \"...\"` (your team's app in the X developer portal) under `[accounts.{name}.oauth]` in the policy"
                    ))
            })?;
            match &args.client_secret {
                Some(value) => (
                    App {
                        client_id,
                        client_secret: Some(read_pasted(ctx, value == "-", "Client secret")?),
                        redirect_uris: Vec::new(),
                        scopes: Vec::new(),
                    },
                    true,
                ),
                None => match oauth::stored_app(&keychain, account, Some(&client_id))? {
                    Some(app) => (app, false),
                    None => (
                        App {
                            client_id,
                            client_secret: None,
                            redirect_uris: Vec::new(),
                            scopes: Vec::new(),
                        },
                        false,
                    ),
                },
            }
        }
    };
    if new_app && app.client_secret.is_some() {
        // Kept before the sign-in: a Mastodon registration must not be repeated on a retry.
        keychain.set(&oauth::app_user(account), &app.to_secret())?;
    }
    let auth = oauth::authorize(
        account,
        &endpoints,
        &app.client_id,
        app.client_secret.as_ref(),
        &redirect,
    )?;
    let paste = if account.platform == Platform::Mastodon {
        Paste::Code
    } else {
        Paste::RedirectAddress
    };
    let code = receive(
        ctx,
        name,
        &auth.url,
        &auth.state,
        listener.as_ref().map(|l| (l, redirect.as_str())),
        args.timeout,
        paste,
    )?
    .code;
    let mut credential = auth.exchange(account, &code)?;
    credential.identity = match oauth::whoami(account, &credential.access_token)? {
        WhoAmI::Identity(who) => Some(who),
        WhoAmI::Rejected => {
            return Err(Error::credentials(format!(
                "the server did not accept the token it just issued for `{name}`"
            ))
            .with_hint(
                "check `[accounts.NAME.oauth]` and `server` in the policy, then sign in again",
            ));
        }
    };
    if account.platform == Platform::X && new_app {
        keychain.set(&oauth::app_user(account), &app.to_secret())?;
    }
    let (user, _) = keep(ctx, &keychain, policy, account, &credential)?;
    let identity = credential.identity.clone().unwrap_or_default();
    if ctx.global.json {
        print_json(&json!({
            "account": name,
            "user": user,
            "stored_in": keychain.backend().id(),
            "identity": identity,
            "expires_at": credential.expires_at.map(rfc3339),
            "scopes": credential.scopes,
            "refresh_token": credential.refresh_token.is_some(),
        }))?;
    } else {
        ctx.note(&format!(
            "signed in to `{name}` as {identity}; the token is in {} (service `gate`, user `{user}`)",
            keychain.backend().place()
        ));
    }
    Ok(Code::Ok)
}

/// atproto OAuth for a Bluesky account: PAR, PKCE and DPoP against the authorization server
/// the PDS names; the redirect on a loopback listener (or pasted with `--no-browser`); the
/// session checked with an authenticated `getSession` and against the policy's `handle`,
/// then stored with its DPoP key.
fn sign_in_bluesky(
    ctx: &Ctx,
    policy: &Policy,
    account: &Account,
    args: &AuthLoginArgs,
) -> Result<Code, Error> {
    use crate::platforms::bluesky::{oauth as atproto, session};
    let name = &account.name;
    if args.client_secret.is_some() {
        return Err(
            Error::usage("`--client-secret` is only for X accounts").with_hint(
                "Bluesky's OAuth clients are public: gate binds its tokens to a DPoP key instead",
            ),
        );
    }
    let keychain = Keychain::open(&ctx.env)?;
    let http = crate::http::client()?;
    let client = atproto::ClientChoice::for_account(&http, account)?;
    let listener = if args.no_browser {
        None
    } else {
        Some(crate::loopback::Listener::bind(client.port)?)
    };
    let redirect = client.redirect_uri(listener.as_ref().map(|l| l.port));
    let login = atproto::start(http, account, &client, &redirect)?;
    let callback = receive(
        ctx,
        name,
        &login.url,
        &login.state,
        listener.as_ref().map(|l| (l, redirect.as_str())),
        args.timeout,
        Paste::RedirectAddress,
    )?;
    let issuer = login.server.issuer.clone();
    let mut credential = login.finish(account, &callback.code, callback.iss.as_deref())?;
    // An authenticated call with the new tokens: who the PDS says they belong to.
    let did = session::did(&credential).unwrap_or_default().to_owned();
    let xrpc = session::xrpc_for(account, &credential)?;
    let (handle, session_did) = session::whose(&xrpc, &credential).map_err(|e| match e {
        crate::platforms::bluesky::xrpc::CallError::Transport(e) => crate::http::unreachable(&e),
        crate::platforms::bluesky::xrpc::CallError::Xrpc(e) => Error::credentials(format!(
            "{} did not accept the tokens it just issued for `{name}`: {}",
            credential::host(&account.server),
            e.describe()
        ))
        .with_hint("check the account's `server` in the policy, then sign in again"),
    })?;
    if session_did != did {
        return Err(Error::credentials(format!(
            "{} says the new session of `{name}` belongs to {session_did}, but the sign-in was for {did}",
            credential::host(&account.server),
        ))
        .with_hint("nothing was stored; sign in again"));
    }
    if let Some(expected) = account.handle.as_deref().filter(|h| !h.contains('@'))
        && !expected.eq_ignore_ascii_case(&handle)
        && expected != did
    {
        return Err(Error::credentials(format!(
            "signed in as `{handle}` ({did}), but the policy says `{name}` is `{expected}`; nothing was stored"
        ))
        .with_hint(format!(
            "sign out of `{handle}` in the browser and run `gate auth login {name}` again, or fix `handle` under `[accounts.{name}]`"
        )));
    }
    credential.identity = Some(handle.clone());
    let (user, replaced) = keep(ctx, &keychain, policy, account, &credential)?;
    if ctx.global.json {
        print_json(&json!({
            "account": name,
            "user": user,
            "stored_in": keychain.backend().id(),
            "replaced": replaced,
            "handle": handle,
            "did": did,
            "issuer": issuer,
            "expires_at": credential.expires_at.map(rfc3339),
            "scopes": credential.scopes,
            "refresh_token": credential.refresh_token.is_some(),
        }))?;
    } else {
        ctx.note(&format!(
            "signed in to {} as `{handle}` ({did}) with OAuth; the session and its DPoP key are in {} (service `gate`, user `{user}`)",
            credential::host(&account.server),
            keychain.backend().place()
        ));
    }
    Ok(Code::Ok)
}

/// What a person pastes after signing in with `--no-browser`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Paste {
    /// The code the page shows (Mastodon's out-of-band redirect).
    Code,
    /// The address the browser was sent to (the page itself does not load).
    RedirectAddress,
}

/// Shows the sign-in address (and opens a browser on a terminal), then takes the redirect:
/// from the loopback listener, or pasted by hand without one (`--no-browser`).
fn receive(
    ctx: &Ctx,
    name: &str,
    url: &str,
    state: &SecretString,
    listener: Option<(&crate::loopback::Listener, &str)>,
    timeout: u64,
    paste: Paste,
) -> Result<crate::loopback::Callback, Error> {
    if let Some((listener, redirect)) = listener {
        // Printed even with `-q`: nobody can sign in without it.
        eprintln!(
            "open this address in a browser to sign in to `{name}` (waiting up to {timeout} s for the redirect to {redirect}):\n  {url}"
        );
        if ctx.env.stdin_is_terminal
            && ctx.env.stderr_is_terminal
            && ctx.env.var("GATE_NO_BROWSER").is_none()
            && let Err(e) = webbrowser::open(url)
        {
            ctx.note(&format!("(could not open a browser: {e})"));
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
    eprintln!("open this address in a browser to sign in to `{name}`, {what}:\n  {url}");
    let pasted = read_pasted(ctx, true, prompt)?;
    match paste {
        Paste::Code => Ok(crate::loopback::Callback {
            code: pasted,
            iss: None,
        }),
        Paste::RedirectAddress => crate::loopback::code_from(pasted.expose_secret(), state),
    }
}

/// A secret or a pasted answer typed at a hidden prompt on a terminal, else one line of stdin
/// (when `stdin`).
fn read_pasted(ctx: &Ctx, stdin: bool, prompt: &str) -> Result<SecretString, Error> {
    if ctx.env.stdin_is_terminal && std::io::stdin().is_terminal() {
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
    let mut rows = Vec::new();
    for account in accounts {
        let user = credential::user(account);
        let secret = keychain.get(&user)?;
        let present = secret.is_some();
        let (mut credential, mut problem) = match secret {
            None => (None, Some("no token stored".to_owned())),
            Some(secret) => match Credential::from_secret(&secret) {
                Ok(c) if c.is_expired(now) && (args.offline || c.refresh_token.is_none()) => {
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
        let checkable = credential.as_ref().is_some_and(|c| {
            account.platform != Platform::Bluesky
                || crate::platforms::bluesky::session::did(c).is_some()
        });
        if !args.offline && checkable && problem.is_none() {
            match online(&ctx.env, &keychain, account, now) {
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
        rows.push(Status {
            account,
            user,
            present,
            credential,
            problem,
            error,
            checked_online,
        });
    }
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
        print_json(&json!({
            "keychain": backend.id(),
            "accounts": accounts,
            "frozen": freeze.frozen(),
            "freeze": freeze.json(),
            "state_store": {"backend": store.backend(), "location": store.location()},
        }))?;
    } else {
        if store.backend() != "sqlite" {
            ctx.note(&format!("state: the team store `{}`", store.location()));
        }
        // Only a freeze in force is worth a line here; `gate log` also says "not frozen".
        if freeze.frozen() {
            ctx.note(&freeze.line());
        }
        let mut out = String::new();
        for r in &rows {
            out.push_str(&human(r, backend));
        }
        print!("{out}");
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
            .with_hint(if r.account.platform == Platform::Bluesky {
                format!("run `gate auth login {name}` (or with `--app-password`)")
            } else {
                format!("run `gate auth login {name}`")
            }),
        };
        if ctx.global.json {
            // stdout already holds the one JSON document; the error goes to stderr only.
            eprint!("{error}");
            return Ok(error.code());
        }
        return Err(error);
    }
    Ok(Code::Ok)
}

/// Refreshes the token if needed and asks the server who it belongs to; the identity is
/// recorded in the keychain when it changed. On failure: the problem for the row and the error.
fn online(
    env: &crate::env::Env,
    keychain: &Keychain,
    account: &Account,
    now: DateTime<Utc>,
) -> Result<Credential, (String, Error)> {
    let name = &account.name;
    if account.platform == Platform::Bluesky {
        // A session (app password or OAuth): refreshed if needed, then `getSession` says whose.
        let (mut c, handle, _did) = crate::platforms::bluesky::session::check_online(env, account)
            .map_err(|e| (reason(&e), e))?;
        c.identity = Some(handle);
        return Ok(c);
    }
    let mut c = oauth::usable_with(env, keychain, account, now).map_err(|e| (reason(&e), e))?;
    match oauth::whoami(account, &c.access_token).map_err(|e| (reason(&e), e))? {
        WhoAmI::Identity(who) => {
            if c.identity.as_deref() != Some(&who) {
                c = record_identity(env, keychain, account, who).map_err(|e| (reason(&e), e))?;
            }
            Ok(c)
        }
        WhoAmI::Rejected => {
            let problem = "revoked or expired (the server answered 401)".to_owned();
            let e = Error::credentials(format!("the token for `{name}` was {problem}"))
                .with_hint(format!("run `gate auth login {name}`"));
            Err((problem, e))
        }
    }
}

/// Writes the identity into the stored credential, under the account's refresh lock and
/// re-read, so a token another process has just refreshed is never overwritten.
fn record_identity(
    env: &crate::env::Env,
    keychain: &Keychain,
    account: &Account,
    who: String,
) -> Result<Credential, Error> {
    let user = credential::user(account);
    let _lock = credential::item_lock(env, &user)?;
    let secret = keychain.get(&user)?.ok_or_else(|| {
        Error::credentials(format!(
            "the token for `{}` was removed meanwhile",
            account.name
        ))
    })?;
    let mut c = Credential::from_secret(&secret)
        .map_err(|e| Error::credentials(format!("`{}` has no usable token: {e}", account.name)))?;
    c.identity = Some(who);
    keychain.set(&user, &c.to_secret())?;
    Ok(c)
}

/// An error's message without the `error: ` prefix and hint, for a status row.
fn reason(e: &Error) -> String {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or("");
    first.strip_prefix("error: ").unwrap_or(first).to_owned()
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

fn rfc3339(t: DateTime<Utc>) -> String {
    oauth::rfc3339(t)
}

pub fn logout(ctx: &Ctx, args: &AuthLogoutArgs) -> Result<Code, Error> {
    let policy = ctx.load_policy(None)?;
    let account = account(&policy, &args.account)?;
    let keychain = Keychain::open(&ctx.env)?;
    let user = credential::user(account);
    let stored = keychain.get(&user)?;
    let credential = stored
        .as_ref()
        .and_then(|s| Credential::from_secret(s).ok());
    // Revoke first, delete whatever happens: a token that cannot be revoked still leaves.
    // For a Bluesky session, revoking is ending it (`deleteSession`, or OAuth revocation).
    let revoked: Option<Result<(), Error>> = match &credential {
        _ if args.offline => None,
        Some(c) if account.platform == Platform::Bluesky => {
            crate::platforms::bluesky::session::did(c)
                .and(c.refresh_token.as_ref())
                .map(|_| crate::platforms::bluesky::session::delete_session(account, c))
        }
        Some(c) => Some(oauth::revoke(&keychain, account, c)),
        None => None,
    };
    let removed = keychain.delete(&user)?;
    audited(ctx, Event::Logout, &policy, account)?;
    let name = &account.name;
    let revoke_error = match &revoked {
        Some(Err(e)) => Some(reason(e)),
        _ => None,
    };
    if ctx.global.json {
        print_json(&json!({
            "account": name,
            "user": user,
            "removed": removed,
            "keychain": keychain.backend().id(),
            "revoked": matches!(revoked, Some(Ok(()))),
            "revoke_error": revoke_error,
        }))?;
    } else if removed {
        match &revoked {
            Some(Ok(())) => ctx.note(&format!(
                "revoked the token for `{name}` at {}",
                credential::host(&account.server)
            )),
            Some(Err(_)) => ctx.note(&format!(
                "could not revoke the token for `{name}` at the server: {}",
                revoke_error.as_deref().unwrap_or("")
            )),
            None => {}
        }
        ctx.note(&format!(
            "removed the token for `{name}` from {}",
            keychain.backend().place()
        ));
        if !matches!(revoked, Some(Ok(()))) {
            ctx.note("  note: the token was not revoked at the server; revoke it in the account's settings");
        }
    } else {
        ctx.note(&format!(
            "no token for `{name}` was stored in {}",
            keychain.backend().place()
        ));
    }
    Ok(Code::Ok)
}
