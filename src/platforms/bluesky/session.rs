//! Bluesky sessions: made with an app password (`createSession`) or by atproto OAuth
//! ([`super::oauth`]); kept usable by refreshing one process at a time, checked
//! (`getSession`) and ended (`deleteSession`, or revocation for OAuth).
//!
//! The keychain holds the access JWT, the refresh JWT as `refresh_token`, the access token's
//! expiry (its `exp` claim), its scope, the handle as `identity` and the DID in `extra.did`.
//! The app password itself is never stored. Refresh tokens rotate: sessions are refreshed by
//! [`credential::usable`], under the keychain item's lock, stored before use.

use base64::Engine as _;
use chrono::{DateTime, TimeDelta, Utc};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::core::policy::Account;
use crate::credential::{self, Credential, RefreshFailure};
use crate::env::Env;
use crate::error::Error;
use crate::keychain::Keychain;

pub use super::oauth::did;
use super::xrpc::{CallError, Xrpc};

/// Refresh when the access token has less than this left: a post with images takes a while.
pub const REFRESH_MARGIN: TimeDelta = TimeDelta::seconds(120);

fn login_hint(account: &Account) -> String {
    format!(
        "sign in again with `gate auth login {}` (or with `--app-password`, made under Settings → Privacy and security → App passwords)",
        account.name
    )
}

/// XRPC calls authorised by session `c`: DPoP-bound for an OAuth session, bearer otherwise.
pub fn xrpc_for(account: &Account, c: &Credential) -> Result<Xrpc, Error> {
    if !super::oauth::is_oauth(c) {
        return Xrpc::new(&account.server);
    }
    let dpop = super::oauth::dpop_of(c)
        .ok_or_else(|| no_session(account, "the stored OAuth session has no usable DPoP key"))?;
    Xrpc::with_dpop(&account.server, Some(dpop))
}

/// Signs in with a handle (or DID or email) and an app password.
pub fn create_session(
    account: &Account,
    identifier: &str,
    password: &SecretString,
) -> Result<Credential, Error> {
    let xrpc = Xrpc::new(&account.server)?;
    let body = json!({"identifier": identifier, "password": crate::redact::sent(password)});
    match xrpc.procedure("com.atproto.server.createSession", None, Some(&body)) {
        Ok(v) => session_credential(&v),
        Err(CallError::Transport(e)) => Err(crate::http::unreachable(&e)),
        Err(CallError::Xrpc(e)) if e.status == 401 || e.error == "AuthenticationRequired" => Err(Error::credentials(format!(
            "{} refused the sign-in of `{identifier}`: {}",
            credential::host(&account.server),
            e.describe()
        ))
        .with_hint("check the handle and the app password (an app password looks like `xxxx-xxxx-xxxx-xxxx`), and the account's `server`")),
        Err(CallError::Xrpc(e)) => Err(Error::credentials(format!(
            "{} refused the sign-in of `{identifier}`: {}",
            credential::host(&account.server),
            e.describe()
        ))
        .with_hint("check the handle and the account's `server` in the policy")),
    }
}

/// A credential from a `createSession` / `refreshSession` reply.
fn session_credential(v: &Value) -> Result<Credential, Error> {
    let field = |k: &str| v.get(k).and_then(Value::as_str);
    let (Some(access), Some(refresh), Some(did)) =
        (field("accessJwt"), field("refreshJwt"), field("did"))
    else {
        return Err(
            Error::other("the PDS answered the sign-in without a session")
                .with_hint("check that the account's `server` is a Bluesky PDS"),
        );
    };
    let claims = jwt_claims(access);
    let mut extra = serde_json::Map::new();
    extra.insert("did".into(), Value::String(did.to_owned()));
    extra.insert("auth".into(), Value::String("app-password".into()));
    Ok(Credential {
        access_token: SecretString::from(access),
        refresh_token: Some(SecretString::from(refresh)),
        expires_at: claims
            .as_ref()
            .and_then(|c| c.get("exp"))
            .and_then(Value::as_i64)
            .and_then(|t| DateTime::from_timestamp(t, 0)),
        scopes: claims
            .as_ref()
            .and_then(|c| c.get("scope"))
            .and_then(Value::as_str)
            .map(|s| s.split(' ').map(str::to_owned).collect())
            .unwrap_or_default(),
        token_type: Some("Bearer".into()),
        identity: field("handle").map(str::to_owned),
        extra,
    })
}

/// The claims of a JWT (not verified: only the server that issued it needs to trust it; gate
/// reads `exp` and `scope` to know when to refresh).
pub fn jwt_claims(jwt: &str) -> Option<Value> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn no_session(account: &Account, problem: &str) -> Error {
    Error::credentials(format!(
        "`{}` has no usable Bluesky session: {problem}",
        account.name
    ))
    .with_hint(login_hint(account))
}

fn read(keychain: &Keychain, account: &Account) -> Result<Credential, Error> {
    let user = credential::user(account);
    let secret = keychain
        .get(&user)?
        .ok_or_else(|| no_session(account, "nothing is stored"))?;
    let c = Credential::from_secret(&secret).map_err(|e| no_session(account, &e.to_string()))?;
    if c.refresh_token.is_none() || did(&c).is_none() {
        return Err(no_session(
            account,
            "the stored token is not a Bluesky session (made with `gate auth login` or `--app-password`)",
        ));
    }
    Ok(c)
}

/// The account's session, refreshed first when its access token expires within
/// [`REFRESH_MARGIN`]. Errors are exit 8 with the way to sign in again.
pub fn usable_session(env: &Env, account: &Account) -> Result<Credential, Error> {
    let keychain = Keychain::open(env)?;
    credential::usable(env, &keychain, account, &Session { account }, Utc::now())
}

fn needs_refresh(c: &Credential, now: DateTime<Utc>) -> bool {
    c.expires_at.is_none_or(|t| t - now < REFRESH_MARGIN)
}

/// Both kinds of Bluesky session for [`credential::usable`].
struct Session<'a> {
    account: &'a Account,
}

impl credential::Refresher for Session<'_> {
    fn read(&self, keychain: &Keychain) -> Result<Credential, Error> {
        read(keychain, self.account)
    }

    fn needs_refresh(&self, c: &Credential, now: DateTime<Utc>) -> bool {
        needs_refresh(c, now)
    }

    fn refresh(&self, c: &Credential) -> Result<Credential, RefreshFailure> {
        if super::oauth::is_oauth(c) {
            return super::oauth::refresh(self.account, c);
        }
        refresh_session(self.account, c)
    }
}

/// `refreshSession` with an app-password session's refresh JWT (not yet stored).
fn refresh_session(account: &Account, c: &Credential) -> Result<Credential, RefreshFailure> {
    let xrpc = Xrpc::new(&account.server).map_err(RefreshFailure::Failed)?;
    let reply = match xrpc.procedure(
        "com.atproto.server.refreshSession",
        c.refresh_token.as_ref(),
        None,
    ) {
        Ok(v) => v,
        Err(CallError::Transport(e)) => {
            return Err(RefreshFailure::Failed(crate::http::unreachable(&e)));
        }
        Err(CallError::Xrpc(e)) if e.status == 400 || e.status == 401 => {
            return Err(RefreshFailure::Refused(
                Error::credentials(format!(
                    "{} refused to refresh the session of `{}`: {}",
                    credential::host(&account.server),
                    account.name,
                    e.describe()
                ))
                .with_hint(login_hint(account)),
            ));
        }
        Err(CallError::Xrpc(e)) => {
            return Err(RefreshFailure::Failed(
                Error::network(format!(
                    "{} could not refresh the session of `{}`: {}",
                    credential::host(&account.server),
                    account.name,
                    e.describe()
                ))
                .with_hint("try again later; the stored session was kept"),
            ));
        }
    };
    session_credential(&reply).map_err(RefreshFailure::Failed)
}

/// `getSession` with a usable session: the handle and DID the server says it belongs to.
pub fn check_online(env: &Env, account: &Account) -> Result<(Credential, String, String), Error> {
    let c = usable_session(env, account)?;
    let xrpc = xrpc_for(account, &c)?;
    match whose(&xrpc, &c) {
        Ok((handle, did)) => Ok((c, handle, did)),
        Err(CallError::Transport(e)) => Err(crate::http::unreachable(&e)),
        Err(CallError::Xrpc(e)) => Err(Error::credentials(format!(
            "{} refused the session of `{}`: {}",
            credential::host(&account.server),
            account.name,
            e.describe()
        ))
        .with_hint(login_hint(account))),
    }
}

/// `getSession`: the handle and DID the PDS says session `c` belongs to.
pub fn whose(xrpc: &Xrpc, c: &Credential) -> Result<(String, String), CallError> {
    let v = xrpc.query("com.atproto.server.getSession", Some(&c.access_token), &[])?;
    let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    Ok((field("handle"), field("did")))
}

/// Ends the session at the server: an OAuth session's grant is revoked, an app-password
/// session ended with `deleteSession` (which takes the refresh token).
pub fn delete_session(account: &Account, c: &Credential) -> Result<(), Error> {
    if super::oauth::is_oauth(c) {
        return super::oauth::revoke(account, c).map(drop);
    }
    let xrpc = Xrpc::new(&account.server)?;
    match xrpc.procedure(
        "com.atproto.server.deleteSession",
        c.refresh_token.as_ref(),
        None,
    ) {
        Ok(_) => Ok(()),
        Err(CallError::Transport(e)) => Err(crate::http::unreachable(&e)),
        Err(CallError::Xrpc(e)) => Err(Error::credentials(format!(
            "{} refused to end the session of `{}`: {}",
            credential::host(&account.server),
            account.name,
            e.describe()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_read_from_the_payload() {
        // {"alg":"HS256"} . {"exp":1700000000,"scope":"com.atproto.appPass"} . sig
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE3MDAwMDAwMDAsInNjb3BlIjoiY29tLmF0cHJvdG8uYXBwUGFzcyJ9.c2ln";
        let c = jwt_claims(jwt).unwrap();
        assert_eq!(c["exp"], 1_700_000_000);
        assert_eq!(c["scope"], "com.atproto.appPass");
        assert!(jwt_claims("not-a-jwt").is_none());
        assert!(jwt_claims("a.!!!.c").is_none());
    }

    #[test]
    fn a_session_refreshes_inside_the_margin() {
        let now = Utc::now();
        let mut c = Credential::from_token(SecretString::from("t"));
        assert!(needs_refresh(&c, now), "no known expiry: refresh");
        c.expires_at = Some(now + TimeDelta::seconds(3600));
        assert!(!needs_refresh(&c, now));
        c.expires_at = Some(now + TimeDelta::seconds(60));
        assert!(needs_refresh(&c, now));
        c.expires_at = Some(now - TimeDelta::seconds(1));
        assert!(needs_refresh(&c, now));
    }
}
