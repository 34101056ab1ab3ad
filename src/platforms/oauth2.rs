//! OAuth for Mastodon and X: endpoints from the policy, the authorization-code flow with PKCE
//! (S256) and `state`, token exchange, refresh (through `credential::usable`), identity checks
//! and revocation. The `oauth2` crate builds the URLs and runs the token requests over
//! gate's one blocking reqwest client; tokens go straight into `Credential`s and the keychain.

use std::time::Duration;

use chrono::{DateTime, Utc};
use oauth2::basic::{BasicClient, BasicErrorResponseType, BasicTokenResponse};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError,
    RevocationUrl, Scope, TokenResponse as _, TokenUrl,
};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::core::policy::{Account, Platform};
use crate::credential::{self, Credential, RefreshFailure};
use crate::env::Env;
use crate::error::Error;
use crate::keychain::Keychain;
use crate::platforms::signin::{self, How, Paste, SignIn, SignedIn, Talk};

/// A token with less than this left is refreshed before use.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// How long a process waits for another one's refresh of the same account.
pub const REFRESH_LOCK_TIMEOUT: Duration = credential::REFRESH_LOCK_TIMEOUT;
/// X's redirect must match the registered one exactly, so its port is fixed.
pub const X_REDIRECT_PORT: u16 = 8765;
/// The out-of-band redirect: Mastodon shows the code on a page for the user to paste.
pub const OOB: &str = "urn:ietf:wg:oauth:2.0:oob";
pub const MASTODON_SCOPES: &[&str] = &["read:accounts", "write:statuses", "write:media"];
pub const X_SCOPES: &[&str] = &[
    "tweet.read",
    "tweet.write",
    "users.read",
    "offline.access",
    "media.write",
];

/// Where and how an account signs in: the policy's `[accounts.NAME.oauth]` over the
/// platform's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub authorize_url: String,
    pub token_url: String,
    pub revoke_url: String,
    pub scopes: Vec<String>,
    /// 0: any free port (Mastodon; loopback redirects match on any port).
    pub redirect_port: u16,
    /// X: the team's app from the policy. Mastodon: from the instance's app registration.
    pub client_id: Option<String>,
}

impl Endpoints {
    pub fn for_account(account: &Account) -> Result<Endpoints, Error> {
        let o = &account.oauth;
        let server = account.server.trim_end_matches('/');
        let (authorize, token, revoke, scopes, port) = match account.platform {
            Platform::Mastodon => (
                format!("{server}/oauth/authorize"),
                format!("{server}/oauth/token"),
                format!("{server}/oauth/revoke"),
                MASTODON_SCOPES,
                0,
            ),
            Platform::X => (
                "https://x.com/i/oauth2/authorize".to_owned(),
                "https://api.x.com/2/oauth2/token".to_owned(),
                "https://api.x.com/2/oauth2/revoke".to_owned(),
                X_SCOPES,
                X_REDIRECT_PORT,
            ),
            Platform::Bluesky => {
                // atproto OAuth finds its endpoints from the PDS (platforms::bluesky::oauth).
                return Err(Error::usage(format!(
                    "bluesky account `{}` does not use these OAuth endpoints",
                    account.name
                ))
                .with_hint(format!(
                    "sign in with `gate auth login {}` (atproto OAuth) or `--app-password`",
                    account.name
                )));
            }
        };
        Ok(Endpoints {
            authorize_url: o.authorize_url.clone().unwrap_or(authorize),
            token_url: o.token_url.clone().unwrap_or(token),
            revoke_url: o.revoke_url.clone().unwrap_or(revoke),
            scopes: o
                .scopes
                .clone()
                .unwrap_or_else(|| scopes.iter().map(|s| (*s).to_owned()).collect()),
            redirect_port: o.redirect_port.unwrap_or(port),
            client_id: o.client_id.clone(),
        })
    }
}

/// An OAuth client as kept in the keychain under `app@HOST`: Mastodon's per-instance app
/// registration, or the secret of the team's X app.
#[derive(Deserialize)]
pub struct App {
    pub client_id: String,
    #[serde(default)]
    pub client_secret: Option<SecretString>,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "****"),
            )
            .field("redirect_uris", &self.redirect_uris)
            .field("scopes", &self.scopes)
            .finish()
    }
}

#[derive(Serialize)]
struct AppOut<'a> {
    client_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    redirect_uris: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    scopes: &'a [String],
}

impl App {
    pub fn to_secret(&self) -> SecretString {
        let out = AppOut {
            client_id: &self.client_id,
            client_secret: self.client_secret.as_ref().map(|s| s.expose_secret()),
            redirect_uris: &self.redirect_uris,
            scopes: &self.scopes,
        };
        let text = Zeroizing::new(serde_json::to_string(&out).expect("an app always serialises"));
        SecretString::from(text.as_str())
    }

    pub fn from_secret(secret: &SecretString) -> Option<App> {
        serde_json::from_str(secret.expose_secret()).ok()
    }
}

/// The keychain user of an account's OAuth client: `app@HOST` of the account's server.
pub fn app_user(account: &Account) -> String {
    credential::app_user(&credential::host(&account.server))
}

/// The stored app for `account`, if it is for `client_id` (when one is given).
pub fn stored_app(
    keychain: &Keychain,
    account: &Account,
    client_id: Option<&str>,
) -> Result<Option<App>, Error> {
    let Some(secret) = keychain.get(&app_user(account))? else {
        return Ok(None);
    };
    Ok(App::from_secret(&secret).filter(|app| client_id.is_none_or(|id| app.client_id == id)))
}

type Client = BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointSet, EndpointSet>;

/// The `oauth2` client for one flow. Mastodon takes the secret in the form body (as its
/// documentation shows); X takes a confidential client's secret as HTTP Basic. A public
/// client (no secret) sends `client_id` in the body.
fn client(
    account: &Account,
    endpoints: &Endpoints,
    client_id: &str,
    secret: Option<&SecretString>,
    redirect: Option<&str>,
) -> Result<Client, Error> {
    let bad = |what: &str, url: &str| {
        Error::usage(format!("invalid {what} URL `{url}` for `{}`", account.name)).with_hint(
            format!("fix `[accounts.{}.oauth]` in the policy", account.name),
        )
    };
    let mut c = BasicClient::new(ClientId::new(client_id.to_owned()))
        .set_auth_uri(
            AuthUrl::new(endpoints.authorize_url.clone())
                .map_err(|_| bad("authorize", &endpoints.authorize_url))?,
        )
        .set_token_uri(
            TokenUrl::new(endpoints.token_url.clone())
                .map_err(|_| bad("token", &endpoints.token_url))?,
        )
        .set_revocation_url(
            RevocationUrl::new(endpoints.revoke_url.clone())
                .map_err(|_| bad("revoke", &endpoints.revoke_url))?,
        )
        .set_auth_type(match account.platform {
            Platform::Mastodon => AuthType::RequestBody,
            _ => AuthType::BasicAuth,
        });
    if let Some(secret) = secret {
        c = c.set_client_secret(ClientSecret::new(crate::redact::sent(secret).to_owned()));
    }
    if let Some(redirect) = redirect {
        c = c.set_redirect_uri(
            RedirectUrl::new(redirect.to_owned()).map_err(|_| bad("redirect", redirect))?,
        );
    }
    Ok(c)
}

/// One sign-in in progress: the URL to open, and what is needed to finish it.
pub struct Authorization {
    pub url: String,
    pub state: SecretString,
    verifier: PkceCodeVerifier,
    client: Client,
    scopes: Vec<String>,
    client_id: String,
}

impl std::fmt::Debug for Authorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorization")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// Starts a sign-in: a fresh PKCE verifier (S256) and `state`, and the authorize URL.
pub fn authorize(
    account: &Account,
    endpoints: &Endpoints,
    client_id: &str,
    secret: Option<&SecretString>,
    redirect: &str,
) -> Result<Authorization, Error> {
    let client = client(account, endpoints, client_id, secret, Some(redirect))?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state) = client
        .authorize_url(CsrfToken::new_random)
        .add_scopes(endpoints.scopes.iter().map(|s| Scope::new(s.clone())))
        .set_pkce_challenge(challenge)
        .url();
    Ok(Authorization {
        url: url.to_string(),
        state: SecretString::from(state.secret().as_str()),
        verifier,
        client,
        scopes: endpoints.scopes.clone(),
        client_id: client_id.to_owned(),
    })
}

impl Authorization {
    /// Exchanges the code the redirect brought for tokens.
    pub fn exchange(self, account: &Account, code: &SecretString) -> Result<Credential, Error> {
        let http = crate::http::client()?;
        let response = self
            .client
            .exchange_code(AuthorizationCode::new(crate::redact::sent(code).to_owned()))
            .set_pkce_verifier(self.verifier)
            .request(&Capped(&http))
            .map_err(|e| token_error(account, "exchange the sign-in code", e))?;
        Ok(credential_from(
            &response,
            &self.scopes,
            &self.client_id,
            None,
            Utc::now(),
        ))
    }
}

/// A token response as a credential; what the response leaves out keeps its old value.
fn credential_from(
    response: &BasicTokenResponse,
    requested: &[String],
    client_id: &str,
    old: Option<&Credential>,
    now: DateTime<Utc>,
) -> Credential {
    let scopes = match response.scopes() {
        Some(scopes) => scopes.iter().map(|s| s.to_string()).collect(),
        None => old.map_or_else(|| requested.to_vec(), |o| o.scopes.clone()),
    };
    let refresh_token = match response.refresh_token() {
        Some(t) => Some(SecretString::from(t.secret().as_str())),
        None => old.and_then(|o| o.refresh_token.clone()),
    };
    let mut extra = old.map(|o| o.extra.clone()).unwrap_or_default();
    extra.insert(
        "client_id".into(),
        serde_json::Value::String(client_id.to_owned()),
    );
    Credential {
        access_token: SecretString::from(response.access_token().secret().as_str()),
        refresh_token,
        expires_at: response
            .expires_in()
            .and_then(|d| chrono::Duration::from_std(d).ok())
            .map(|d| now + d),
        scopes,
        token_type: Some("bearer".to_owned()),
        identity: old.and_then(|o| o.identity.clone()),
        extra,
    }
}

/// gate's one blocking client for the `oauth2` crate's token requests, reading an answer of
/// at most [`crate::http::ANSWER_CAP`] bytes: the crate's own binding for reqwest reads a body
/// of any size, so a hostile token endpoint could fill the memory.
struct Capped<'a>(&'a reqwest::blocking::Client);

impl oauth2::SyncHttpClient for Capped<'_> {
    type Error = oauth2::HttpClientError<reqwest::Error>;

    fn call(&self, request: oauth2::HttpRequest) -> Result<oauth2::HttpResponse, Self::Error> {
        let response = self
            .0
            .execute(request.try_into().map_err(Box::new)?)
            .map_err(Box::new)?;
        let mut builder = oauth2::http::Response::builder()
            .status(response.status())
            .version(response.version());
        for (name, value) in response.headers() {
            builder = builder.header(name, value);
        }
        let body = crate::http::body(response)
            .map_err(|e| oauth2::HttpClientError::Other(e.to_string()))?;
        builder.body(body).map_err(oauth2::HttpClientError::Http)
    }
}

type TokenError = RequestTokenError<
    oauth2::HttpClientError<reqwest::Error>,
    oauth2::StandardErrorResponse<BasicErrorResponseType>,
>;

/// A failed token request, without any part of the request or reply (they carry secrets).
fn token_error(account: &Account, doing: &str, e: TokenError) -> Error {
    let name = &account.name;
    match e {
        RequestTokenError::ServerResponse(r) if *r.error() == BasicErrorResponseType::InvalidGrant => {
            Error::credentials(format!(
                "the server refused to {doing} for `{name}` (`invalid_grant`): the sign-in was revoked or has expired"
            ))
            .with_hint(format!("run `gate auth login {name}`"))
        }
        RequestTokenError::ServerResponse(r) => Error::credentials(format!(
            "the server refused to {doing} for `{name}` (`{}`)",
            r.error().as_ref()
        ))
        .with_hint(format!(
            "check `[accounts.{name}.oauth]` in the policy, then run `gate auth login {name}`"
        )),
        RequestTokenError::Request(oauth2::HttpClientError::Reqwest(e)) => {
            crate::http::unreachable(&e)
        }
        RequestTokenError::Request(oauth2::HttpClientError::Other(why)) => {
            Error::network(format!("could not {doing} for `{name}`: {why}"))
                .with_hint(format!("check `token_url` in `[accounts.{name}.oauth]`"))
        }
        RequestTokenError::Request(_) | RequestTokenError::Other(_) => {
            Error::network(format!("could not {doing} for `{name}`: the request failed"))
        }
        RequestTokenError::Parse(..) => Error::network(format!(
            "could not {doing} for `{name}`: the token endpoint sent a reply gate cannot read"
        ))
        .with_hint(format!("check `token_url` in `[accounts.{name}.oauth]`")),
    }
}

/// Whether `credential` must be refreshed before use at `now`.
pub fn needs_refresh(credential: &Credential, now: DateTime<Utc>) -> bool {
    let margin = chrono::Duration::from_std(REFRESH_MARGIN).expect("a small duration");
    credential.expires_at.is_some_and(|t| t - now < margin)
}

/// The account's credential, ready to use: read from the keychain and, when it has expired
/// or has less than a minute left, refreshed first, the one way every token is
/// ([`credential::usable`]: under the keychain item's lock, re-read inside it, stored before
/// use). Errors: no token, no refresh token, or a refresh the server rejects (`invalid_grant`)
/// are exit 8 with `hint: run gate auth login ACCOUNT`; a server that cannot be reached is
/// exit 9.
pub fn usable_credential(env: &Env, account: &Account) -> Result<Credential, Error> {
    let keychain = Keychain::open(env)?;
    usable_with(env, &keychain, account, Utc::now())
}

/// `usable_credential` with an open keychain (for `gate auth status` over many accounts).
pub fn usable_with(
    env: &Env,
    keychain: &Keychain,
    account: &Account,
    now: DateTime<Utc>,
) -> Result<Credential, Error> {
    credential::usable(env, keychain, account, &OAuth { keychain, account }, now)
}

/// Mastodon and X tokens for [`credential::usable`].
struct OAuth<'a> {
    keychain: &'a Keychain,
    account: &'a Account,
}

impl credential::Refresher for OAuth<'_> {
    fn read(&self, keychain: &Keychain) -> Result<Credential, Error> {
        read(keychain, self.account, &credential::user(self.account))
    }

    fn needs_refresh(&self, c: &Credential, now: DateTime<Utc>) -> bool {
        needs_refresh(c, now)
    }

    fn refresh(&self, c: &Credential) -> Result<Credential, RefreshFailure> {
        if c.refresh_token.is_none() {
            return Err(RefreshFailure::Failed(expired_without_refresh(
                self.account,
                c,
            )));
        }
        refresh(self.keychain, self.account, c)
    }
}

fn read(keychain: &Keychain, account: &Account, user: &str) -> Result<Credential, Error> {
    let name = &account.name;
    let secret = keychain.get(user)?.ok_or_else(|| {
        Error::credentials(format!("`{name}` has no token stored (user `{user}`)"))
            .with_hint(format!("run `gate auth login {name}`"))
    })?;
    Credential::from_secret(&secret).map_err(|e| {
        Error::credentials(format!("`{name}` has no usable token: {e}"))
            .with_hint(format!("run `gate auth login {name}`"))
    })
}

fn expired_without_refresh(account: &Account, c: &Credential) -> Error {
    let at = c.expires_at.map(rfc3339).unwrap_or_default();
    Error::credentials(format!(
        "the token for `{}` expired at {at} and there is no refresh token",
        account.name
    ))
    .with_hint(format!("run `gate auth login {}`", account.name))
}

/// Exchanges the refresh token for new tokens (not yet stored). Any OAuth error the server
/// answers is a refusal of the token (oidc-provider and Mastodon say `invalid_grant`; X has
/// been seen to answer a spent one with `invalid_request`).
fn refresh(
    keychain: &Keychain,
    account: &Account,
    old: &Credential,
) -> Result<Credential, RefreshFailure> {
    let endpoints = Endpoints::for_account(account).map_err(RefreshFailure::Failed)?;
    let (client_id, secret) =
        client_for(keychain, account, &endpoints, old).map_err(RefreshFailure::Failed)?;
    let c = client(account, &endpoints, &client_id, secret.as_ref(), None)
        .map_err(RefreshFailure::Failed)?;
    let refresh = old.refresh_token.as_ref().expect("checked by the caller");
    let http = crate::http::client().map_err(RefreshFailure::Failed)?;
    let response = c
        .exchange_refresh_token(&RefreshToken::new(crate::redact::sent(refresh).to_owned()))
        .request(&Capped(&http))
        .map_err(|e| match e {
            RequestTokenError::ServerResponse(_) => {
                RefreshFailure::Refused(token_error(account, "refresh the token", e))
            }
            e => RefreshFailure::Failed(token_error(account, "refresh the token", e)),
        })?;
    Ok(credential_from(
        &response,
        &endpoints.scopes,
        &client_id,
        Some(old),
        Utc::now(),
    ))
}

/// The client a credential was issued to, and its secret if gate keeps one.
fn client_for(
    keychain: &Keychain,
    account: &Account,
    endpoints: &Endpoints,
    credential: &Credential,
) -> Result<(String, Option<SecretString>), Error> {
    let recorded = credential
        .extra
        .get("client_id")
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    let client_id = recorded.or_else(|| endpoints.client_id.clone());
    let app = stored_app(keychain, account, client_id.as_deref())?;
    let client_id = match (client_id, &app) {
        (Some(id), _) => id,
        (None, Some(app)) => app.client_id.clone(),
        (None, None) => {
            return Err(Error::credentials(format!(
                "gate does not know which OAuth client issued the token for `{}`",
                account.name
            ))
            .with_hint(format!("run `gate auth login {}`", account.name)));
        }
    };
    Ok((client_id, app.and_then(|a| a.client_secret)))
}

/// Who the server says a token belongs to.
#[derive(Debug)]
pub enum WhoAmI {
    Identity(String),
    /// 401: the token was revoked or has expired.
    Rejected,
}

/// Asks the server who the token belongs to, through the network's own adapter (Mastodon
/// `verify_credentials`, X `users/me`: the calls its lookups make), in the form `gate auth`
/// shows: `@user@instance` on Mastodon, `@user` on X.
pub fn whoami(account: &Account, token: &SecretString) -> Result<WhoAmI, Error> {
    if account.platform == Platform::Bluesky {
        return Err(Error::usage(
            "identity checks for bluesky accounts go through its session",
        ));
    }
    let publisher = super::connect(
        account,
        Credential::from_token(token.clone()),
        crate::http::client()?,
    )?;
    let host = credential::host(&account.server);
    match publisher.whoami() {
        Ok(name) => Ok(WhoAmI::Identity(match account.platform {
            Platform::Mastodon if name.contains('@') => format!("@{name}"),
            Platform::Mastodon => format!("@{name}@{host}"),
            _ => format!("@{name}"),
        })),
        Err(super::SendError::Credentials { .. }) => Ok(WhoAmI::Rejected),
        Err(e) => Err(Error::network(format!(
            "{host}: the identity check for `{}` failed: {}",
            account.name,
            e.message()
        ))
        .with_hint("try again later; if it persists, check the account's `server` in the policy")),
    }
}

/// Revokes the credential at the server (RFC 7009; the refresh token when there is one: that
/// ends the whole grant). Mastodon `POST /oauth/revoke` with the app's id and secret in the
/// form, X `POST /2/oauth2/revoke` (HTTP Basic for a confidential client). Written by hand:
/// `oauth2`'s revocation refuses any URL that is not `https`, so it cannot reach a loopback
/// test server.
pub fn revoke(
    keychain: &Keychain,
    account: &Account,
    credential: &Credential,
) -> Result<(), Error> {
    let endpoints = Endpoints::for_account(account)?;
    let (client_id, secret) = client_for(keychain, account, &endpoints, credential)?;
    let (token, hint) = match &credential.refresh_token {
        Some(r) => (r, "refresh_token"),
        None => (&credential.access_token, "access_token"),
    };
    let mut form: Vec<(&str, &str)> = vec![
        ("token", crate::redact::sent(token)),
        ("token_type_hint", hint),
        ("client_id", &client_id),
    ];
    let mut request = crate::http::client()?.post(&endpoints.revoke_url);
    match (&secret, account.platform) {
        (Some(secret), Platform::Mastodon) => {
            form.push(("client_secret", crate::redact::sent(secret)))
        }
        (Some(secret), _) => {
            form.retain(|(k, _)| *k != "client_id");
            request = request.basic_auth(&client_id, Some(crate::redact::sent(secret)));
        }
        (None, _) => {}
    }
    let response = request
        .form(&form)
        .send()
        .map_err(|e| crate::http::unreachable(&e))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let code = crate::http::json::<serde_json::Value>(response)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .filter(|e| e.len() <= 64 && e.chars().all(|c| c.is_ascii_graphic()));
    Err(Error::network(match code {
        Some(code) => format!(
            "the server refused the revocation ({}, `{code}`)",
            status.as_u16()
        ),
        None => format!("the server refused the revocation ({})", status.as_u16()),
    }))
}

/// Registers gate as an app on a Mastodon instance (`POST /api/v1/apps`).
pub fn register_mastodon_app(account: &Account, endpoints: &Endpoints) -> Result<App, Error> {
    let server = account.server.trim_end_matches('/');
    let mut redirects = vec!["http://127.0.0.1/callback".to_owned(), OOB.to_owned()];
    if endpoints.redirect_port != 0 {
        redirects[0] = loopback_redirect(endpoints.redirect_port);
    }
    let form = [
        ("client_name", "gate".to_owned()),
        ("redirect_uris", redirects.join("\n")),
        ("scopes", endpoints.scopes.join(" ")),
    ];
    let response = crate::http::client()?
        .post(format!("{server}/api/v1/apps"))
        .form(&form)
        .send()
        .map_err(|e| crate::http::unreachable(&e))?;
    let status = response.status();
    if !status.is_success() {
        return Err(Error::network(format!(
            "{} refused to register gate as an app ({})",
            credential::host(&account.server),
            status.as_u16()
        ))
        .with_hint(
            "check the account's `server` in the policy, or whether the instance allows new apps",
        ));
    }
    #[derive(Deserialize)]
    struct Registered {
        client_id: String,
        client_secret: Option<SecretString>,
    }
    let r: Registered = crate::http::json(response).map_err(|e| {
        Error::network(format!("{}: {e}", credential::host(server)))
            .with_hint("check the account's `server` in the policy: it must be a Mastodon instance")
    })?;
    Ok(App {
        client_id: r.client_id,
        client_secret: r.client_secret,
        redirect_uris: redirects,
        scopes: endpoints.scopes.clone(),
    })
}

/// The redirect gate's loopback listener answers.
pub fn loopback_redirect(port: u16) -> String {
    format!("http://127.0.0.1:{port}/callback")
}

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// What sets one OAuth 2.0 network's sign-in apart from another's: the client it signs in
/// with in the browser, and whether `--client-secret` has a place there.
pub trait SignInClient: Sync {
    /// Refuses a `--client-secret` this network does not take in that form.
    fn check_secret(&self, account: &Account, client_secret: Option<&str>) -> Result<(), Error>;
    /// Signs in in the browser with this network's client ([`browser_sign_in`]).
    fn browser(
        &self,
        talk: &dyn Talk,
        keychain: &Keychain,
        account: &Account,
        client_secret: Option<&str>,
    ) -> Result<SignedIn, Error>;
}

/// The sign-in of a network on OAuth 2.0 (Mastodon, X): a token made elsewhere or the browser
/// with the network's [`SignInClient`]; refreshed, asked whose it is and revoked the same way.
pub struct OAuth2SignIn<C>(pub C);

impl<C: SignInClient> SignIn for OAuth2SignIn<C> {
    fn check(&self, account: &Account, how: How<'_>) -> Result<(), Error> {
        match how {
            How::AppPassword => Err(signin::no_app_password(account)),
            How::Token => Ok(()),
            How::Browser { client_secret } => {
                Endpoints::for_account(account)?;
                self.0.check_secret(account, client_secret)
            }
        }
    }

    fn sign_in(
        &self,
        talk: &dyn Talk,
        keychain: &Keychain,
        account: &Account,
        how: How<'_>,
    ) -> Result<SignedIn, Error> {
        match how {
            How::Token => signin::token(talk, account),
            How::AppPassword => Err(signin::no_app_password(account)),
            How::Browser { client_secret } => {
                self.0.browser(talk, keychain, account, client_secret)
            }
        }
    }

    fn usable(&self, env: &Env, account: &Account) -> Result<Credential, Error> {
        usable_credential(env, account)
    }

    fn online(
        &self,
        env: &Env,
        keychain: &Keychain,
        account: &Account,
        now: DateTime<Utc>,
    ) -> Result<Credential, (String, Error)> {
        online(env, keychain, account, now)
    }

    fn revoke(
        &self,
        keychain: &Keychain,
        account: &Account,
        credential: &Credential,
    ) -> Option<Result<(), Error>> {
        Some(revoke(keychain, account, credential))
    }
}

/// Picks the client for a sign-in from the endpoints, the redirect and whether a loopback
/// listener takes it: the app, and whether it is new (not kept in the keychain yet).
pub type ChooseClient<'a> = dyn Fn(&Endpoints, &str, bool) -> Result<(App, bool), Error> + 'a;

/// The OAuth sign-in Mastodon and X share: the authorize URL (a browser opened on a terminal,
/// the URL always printed), the redirect on a loopback listener or pasted by hand, the code
/// exchanged for tokens, then the identity checked with the server. `choose` picks the
/// client once the redirect is known (`listening`: on a loopback listener); an app that is
/// new and has a secret is kept before the sign-in (a Mastodon registration must not be
/// repeated on a retry), and once more after it when `keep_app_after` (X's team app).
/// Without a listener, a `Paste::Code` network redirects out of band.
pub fn browser_sign_in(
    talk: &dyn Talk,
    keychain: &Keychain,
    account: &Account,
    choose: &ChooseClient<'_>,
    paste: Paste,
    keep_app_after: bool,
) -> Result<SignedIn, Error> {
    let name = &account.name;
    let endpoints = Endpoints::for_account(account)?;
    let listener = talk.listen(endpoints.redirect_port)?;
    let redirect = match (&listener, paste) {
        (Some(l), _) => loopback_redirect(l.port),
        (None, Paste::Code) => OOB.to_owned(),
        (None, Paste::RedirectAddress) => loopback_redirect(endpoints.redirect_port),
    };
    let (app, new_app) = choose(&endpoints, &redirect, listener.is_some())?;
    if new_app && app.client_secret.is_some() {
        keychain.set(&app_user(account), &app.to_secret())?;
    }
    let auth = authorize(
        account,
        &endpoints,
        &app.client_id,
        app.client_secret.as_ref(),
        &redirect,
    )?;
    let code = talk
        .receive(
            account,
            &auth.url,
            &auth.state,
            listener.as_ref().map(|l| (l, redirect.as_str())),
            paste,
        )?
        .code;
    let mut credential = auth.exchange(account, &code)?;
    credential.identity = match whoami(account, &credential.access_token)? {
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
    if keep_app_after && new_app {
        keychain.set(&app_user(account), &app.to_secret())?;
    }
    let identity = credential.identity.clone().unwrap_or_default();
    let mut json = serde_json::Map::new();
    json.insert("identity".into(), identity.clone().into());
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
        credential,
        json,
        said: format!(
            "signed in to `{name}` as {identity}; the token is in {{place}} (service `gate`, user `{{user}}`)"
        ),
    })
}

/// `gate auth status` online for Mastodon and X: refreshed if needed, then `whoami`; the
/// identity is recorded in the keychain when it changed.
pub fn online(
    env: &Env,
    keychain: &Keychain,
    account: &Account,
    now: DateTime<Utc>,
) -> Result<Credential, (String, Error)> {
    let name = &account.name;
    let reason = |e: Error| (e.message(), e);
    let mut c = usable_with(env, keychain, account, now).map_err(reason)?;
    match whoami(account, &c.access_token).map_err(reason)? {
        WhoAmI::Identity(who) => {
            if c.identity.as_deref() != Some(&who) {
                c = credential::record_identity(env, keychain, account, who).map_err(reason)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::policy::{OAuthSettings, TermLists};

    fn account(platform: Platform, server: &str, oauth: OAuthSettings) -> Account {
        Account {
            name: "brand".into(),
            platform,
            server: server.into(),
            reviewers_required: None,
            max_chars: None,
            banned_terms: TermLists::default(),
            handle: None,
            oauth,
        }
    }

    #[test]
    fn endpoints_default_per_platform_and_follow_the_policy() {
        let m = Endpoints::for_account(&account(
            Platform::Mastodon,
            "https://m.example/",
            OAuthSettings::default(),
        ))
        .unwrap();
        assert_eq!(m.authorize_url, "https://m.example/oauth/authorize");
        assert_eq!(m.token_url, "https://m.example/oauth/token");
        assert_eq!(m.revoke_url, "https://m.example/oauth/revoke");
        assert_eq!(m.scopes, ["read:accounts", "write:statuses", "write:media"]);
        assert_eq!(m.redirect_port, 0);
        let x = Endpoints::for_account(&account(
            Platform::X,
            "https://api.x.com",
            OAuthSettings::default(),
        ))
        .unwrap();
        assert_eq!(x.authorize_url, "https://x.com/i/oauth2/authorize");
        assert_eq!(x.token_url, "https://api.x.com/2/oauth2/token");
        assert_eq!(x.revoke_url, "https://api.x.com/2/oauth2/revoke");
        assert_eq!(
            x.scopes.join(" "),
            "tweet.read tweet.write users.read offline.access media.write"
        );
        assert_eq!(x.redirect_port, 8765);
        let o = OAuthSettings {
            client_id: Some("team".into()),
            redirect_port: Some(9000),
            scopes: Some(vec!["a".into()]),
            token_url: Some("http://127.0.0.1:1/t".into()),
            ..OAuthSettings::default()
        };
        let x = Endpoints::for_account(&account(Platform::X, "https://api.x.com", o)).unwrap();
        assert_eq!(
            (x.redirect_port, x.scopes.clone(), x.token_url.as_str()),
            (9000, vec!["a".to_owned()], "http://127.0.0.1:1/t")
        );
        assert_eq!(x.client_id.as_deref(), Some("team"));
    }

    #[test]
    fn refresh_a_minute_before_expiry() {
        let now: DateTime<Utc> = "2026-11-23T10:00:00Z".parse().unwrap();
        let mut c = Credential::from_token(SecretString::from("t"));
        assert!(!needs_refresh(&c, now));
        c.expires_at = Some(now + chrono::Duration::seconds(61));
        assert!(!needs_refresh(&c, now));
        c.expires_at = Some(now + chrono::Duration::seconds(59));
        assert!(needs_refresh(&c, now));
        c.expires_at = Some(now - chrono::Duration::seconds(1));
        assert!(needs_refresh(&c, now));
    }

    #[test]
    fn authorize_url_carries_pkce_and_state() {
        let a = account(Platform::X, "https://api.x.com", OAuthSettings::default());
        let e = Endpoints::for_account(&a).unwrap();
        let auth = authorize(&a, &e, "team-app", None, "http://127.0.0.1:8765/callback").unwrap();
        let url = url::Url::parse(&auth.url).unwrap();
        let q: std::collections::BTreeMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], "team-app");
        assert_eq!(q["redirect_uri"], "http://127.0.0.1:8765/callback");
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["code_challenge"].len(), 43);
        assert_eq!(q["state"], auth.state.expose_secret());
        assert_eq!(
            q["scope"],
            "tweet.read tweet.write users.read offline.access media.write"
        );
    }

    #[test]
    fn app_debug_is_redacted_and_round_trips() {
        let app = App {
            client_id: "id".into(),
            client_secret: Some(SecretString::from("app-secret-1")),
            redirect_uris: vec![OOB.into()],
            scopes: vec![],
        };
        assert!(!format!("{app:?}").contains("app-secret-1"));
        let back = App::from_secret(&app.to_secret()).unwrap();
        assert_eq!(back.client_secret.unwrap().expose_secret(), "app-secret-1");
        assert_eq!(back.redirect_uris, [OOB]);
    }
}
