//! Signing a Bluesky account in: a session from the handle and an app password
//! (`--app-password`; the account's main password is refused), or atproto OAuth in the
//! browser (PAR, PKCE and DPoP against the authorization server the PDS names). A token
//! alone is no session gate can post with, so `--with-token` is refused.

use chrono::{DateTime, Utc};
use serde_json::Map;

use super::oauth as atproto;
use super::session;
use super::xrpc::CallError;
use crate::core::policy::Account;
use crate::credential::{self, Credential};
use crate::env::Env;
use crate::error::Error;
use crate::keychain::Keychain;
use crate::platforms::oauth2::rfc3339;
use crate::platforms::signin::{How, Paste, SignIn, SignedIn, Talk};

pub struct BlueskySignIn;

impl SignIn for BlueskySignIn {
    fn check(&self, account: &Account, how: How<'_>) -> Result<(), Error> {
        match how {
            How::AppPassword => Ok(()),
            // Refused before anything is read or stored.
            How::Token => Err(Error::usage(format!(
                "`--with-token` does not work for bluesky account `{}`: a Bluesky session is made by signing in",
                account.name
            ))
            .with_hint(format!(
                "run `gate auth login {0} --app-password` (with an app password) or `gate auth login {0}` (atproto OAuth in the browser)",
                account.name
            ))),
            How::Browser {
                client_secret: Some(_),
            } => Err(
                Error::usage("`--client-secret` is only for X accounts").with_hint(
                    "Bluesky's OAuth clients are public: gate binds its tokens to a DPoP key instead",
                ),
            ),
            How::Browser { client_secret: None } => Ok(()),
        }
    }

    fn sign_in(
        &self,
        talk: &dyn Talk,
        _keychain: &Keychain,
        account: &Account,
        how: How<'_>,
    ) -> Result<SignedIn, Error> {
        match how {
            How::AppPassword => app_password(talk, account),
            How::Browser { .. } => browser(talk, account),
            How::Token => Err(self.check(account, how).err().unwrap_or_else(|| {
                Error::usage("`--with-token` does not work for bluesky accounts")
            })),
        }
    }

    fn usable(&self, env: &Env, account: &Account) -> Result<Credential, Error> {
        session::usable_session(env, account)
    }

    /// Only a session (with its DID) can be asked about.
    fn checkable(&self, credential: &Credential) -> bool {
        session::did(credential).is_some()
    }

    /// A session (app password or OAuth): refreshed if needed, then `getSession` says whose.
    fn online(
        &self,
        env: &Env,
        _keychain: &Keychain,
        account: &Account,
        _now: DateTime<Utc>,
    ) -> Result<Credential, (String, Error)> {
        let (mut c, handle, _did) =
            session::check_online(env, account).map_err(|e| (e.message(), e))?;
        c.identity = Some(handle);
        Ok(c)
    }

    /// Ending the session is revoking it (`deleteSession`, or OAuth revocation).
    fn revoke(
        &self,
        _keychain: &Keychain,
        account: &Account,
        credential: &Credential,
    ) -> Option<Result<(), Error>> {
        session::did(credential)
            .and(credential.refresh_token.as_ref())
            .map(|_| session::delete_session(account, credential))
    }

    fn login_hint(&self, account: &Account) -> String {
        format!(
            "run `gate auth login {}` (or with `--app-password`)",
            account.name
        )
    }
}

/// `--app-password`: a session from the account's handle and an app password.
fn app_password(talk: &dyn Talk, account: &Account) -> Result<SignedIn, Error> {
    let identifier = match &account.handle {
        Some(h) => h.clone(),
        None => match talk.ask(&format!("Handle for `{}`", account.name))? {
            Some(typed) => typed,
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
        },
    };
    let password = talk.secret("app password", "--app-password", account)?;
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
    let handle = credential.identity.clone().unwrap_or_default();
    let did = session::did(&credential).unwrap_or_default().to_owned();
    let mut json = Map::new();
    json.insert("handle".into(), handle.clone().into());
    json.insert("did".into(), did.clone().into());
    json.insert(
        "expires_at".into(),
        credential.expires_at.map(rfc3339).into(),
    );
    Ok(SignedIn {
        said: format!(
            "signed in to {} as `{handle}` ({did}); stored the session for `{}` in {{place}} (user `{{user}}`); the app password was not stored",
            credential::host(&account.server),
            account.name,
        ),
        credential,
        json,
    })
}

/// atproto OAuth: the redirect on a loopback listener (or pasted with `--no-browser`); the
/// session checked with an authenticated `getSession` and against the policy's `handle`,
/// then kept with its DPoP key.
fn browser(talk: &dyn Talk, account: &Account) -> Result<SignedIn, Error> {
    let name = &account.name;
    let http = crate::http::client()?;
    let client = atproto::ClientChoice::for_account(&http, account)?;
    let listener = talk.listen(client.port)?;
    let redirect = client.redirect_uri(listener.as_ref().map(|l| l.port));
    let login = atproto::start(http, account, &client, &redirect)?;
    let callback = talk.receive(
        account,
        &login.url,
        &login.state,
        listener.as_ref().map(|l| (l, redirect.as_str())),
        Paste::RedirectAddress,
    )?;
    let issuer = login.server.issuer.clone();
    let mut credential = login.finish(account, &callback.code, callback.iss.as_deref())?;
    // An authenticated call with the new tokens: who the PDS says they belong to.
    let did = session::did(&credential).unwrap_or_default().to_owned();
    let xrpc = session::xrpc_for(account, &credential)?;
    let (handle, session_did) = session::whose(&xrpc, &credential).map_err(|e| match e {
        CallError::Transport(e) => crate::http::unreachable(&e),
        CallError::Xrpc(e) => Error::credentials(format!(
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
    let mut json = Map::new();
    json.insert("handle".into(), handle.clone().into());
    json.insert("did".into(), did.clone().into());
    json.insert("issuer".into(), issuer.into());
    json.insert(
        "expires_at".into(),
        credential.expires_at.map(rfc3339).into(),
    );
    json.insert("scopes".into(), credential.scopes.clone().into());
    json.insert(
        "refresh_token".into(),
        credential.refresh_token.is_some().into(),
    );
    Ok(SignedIn {
        said: format!(
            "signed in to {} as `{handle}` ({did}) with OAuth; the session and its DPoP key are in {{place}} (service `gate`, user `{{user}}`)",
            credential::host(&account.server),
        ),
        credential,
        json,
    })
}
