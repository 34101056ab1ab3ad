//! atproto OAuth for Bluesky: the authorization server found from the PDS, a pushed
//! authorization request (PAR) with PKCE (S256) and `state`, every token request bound to a
//! fresh DPoP key with the server's nonces, refresh and revocation.
//!
//! The client is the atproto loopback development client (`http://localhost?redirect_uri=…`:
//! no registration, redirects to `127.0.0.1` on any port), or the team's own client whose
//! metadata document is at `[accounts.NAME.oauth] client_metadata_url`. The keychain keeps
//! the tokens with the DPoP private key they are bound to, the DID (`sub`), and the endpoints
//! and client id a refresh needs.

use chrono::{DateTime, Utc};
use oauth2::{CsrfToken, PkceCodeChallenge, PkceCodeVerifier};
use reqwest::blocking::Client;
use secrecy::SecretString;
use serde_json::{Value, json};
use url::Url;

use super::dpop::{self, Dpop};
use crate::core::policy::Account;
use crate::credential::{self, Credential, RefreshFailure};
use crate::error::Error;

/// What gate asks for unless the policy's `scopes` say otherwise: `atproto` (required) and
/// `transition:generic` (write records and blobs, as app passwords can).
pub const DEFAULT_SCOPES: &[&str] = &["atproto", "transition:generic"];
/// The redirect the loopback client registers; any port is accepted (RFC 8252 §7.3).
pub const LOOPBACK_REDIRECT: &str = "http://127.0.0.1/callback";

/// The authorization server of a PDS, from its metadata.
#[derive(Debug, Clone)]
pub struct Server {
    pub issuer: String,
    pub par: String,
    pub authorize: String,
    pub token: String,
    pub revoke: Option<String>,
}

/// The OAuth client gate signs in as.
#[derive(Debug, Clone)]
pub struct ClientChoice {
    pub id: String,
    /// The redirect as registered: port-less for loopback clients (any port is accepted).
    pub redirect: Url,
    /// The port to listen on: the registered one, the policy's `redirect_port`, else 0 (any).
    pub port: u16,
    pub scopes: Vec<String>,
}

impl ClientChoice {
    /// The client for `account`: its metadata document when the policy names one, else the
    /// loopback development client.
    pub fn for_account(http: &Client, account: &Account) -> Result<ClientChoice, Error> {
        let scopes = account
            .oauth
            .scopes
            .clone()
            .unwrap_or_else(|| DEFAULT_SCOPES.iter().map(|s| (*s).to_owned()).collect());
        let Some(metadata_url) = &account.oauth.client_metadata_url else {
            let redirect = Url::parse(LOOPBACK_REDIRECT).expect("a valid URL");
            let mut id = Url::parse("http://localhost").expect("a valid URL");
            id.query_pairs_mut()
                .append_pair("redirect_uri", redirect.as_str())
                .append_pair("scope", &scopes.join(" "));
            // `http://localhost/?…`: atproto's loopback client id has no path at all.
            let id = id
                .as_str()
                .replacen("http://localhost/?", "http://localhost?", 1);
            return Ok(ClientChoice {
                id,
                redirect,
                port: account.oauth.redirect_port.unwrap_or(0),
                scopes,
            });
        };
        let metadata = get_json(http, metadata_url, "the client metadata")?;
        from_metadata(account, metadata_url, &metadata, scopes)
    }

    /// The redirect sent with this sign-in: the registered one on the listener's port.
    pub fn redirect_uri(&self, port: Option<u16>) -> String {
        let mut url = self.redirect.clone();
        if let Some(port) = port.filter(|p| *p != 0) {
            let _ = url.set_port(Some(port));
        }
        url.to_string()
    }
}

/// A team's client from its metadata document: a native public client bound to DPoP, with
/// a loopback redirect gate can listen on.
fn from_metadata(
    account: &Account,
    metadata_url: &str,
    metadata: &Value,
    scopes: Vec<String>,
) -> Result<ClientChoice, Error> {
    let bad = |why: &str| {
        Error::usage(format!(
            "the client metadata at {metadata_url} (account `{}`) {why}",
            account.name
        ))
        .with_hint(
            "serve a document with `client_id` equal to its URL, `application_type = \"native\"`, \
             `token_endpoint_auth_method = \"none\"`, `dpop_bound_access_tokens = true` and a \
             redirect to `http://127.0.0.1/…`, or remove `client_metadata_url` to use the loopback client",
        )
    };
    let text = |k: &str| metadata.get(k).and_then(Value::as_str);
    if text("client_id") != Some(metadata_url) {
        return Err(bad("does not name itself as `client_id`"));
    }
    if text("token_endpoint_auth_method").is_some_and(|m| m != "none") {
        return Err(bad(
            "is for a confidential client; gate is a public one (`none`)",
        ));
    }
    if metadata.get("dpop_bound_access_tokens") != Some(&Value::Bool(true)) {
        return Err(bad("does not set `dpop_bound_access_tokens = true`"));
    }
    let redirect = metadata
        .get("redirect_uris")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(|u| Url::parse(u).ok())
        .find(|u| u.scheme() == "http" && matches!(u.host_str(), Some("127.0.0.1") | Some("[::1]")))
        .ok_or_else(|| bad("lists no redirect to `http://127.0.0.1`, which gate listens on"))?;
    let port = redirect.port().or(account.oauth.redirect_port).unwrap_or(0);
    Ok(ClientChoice {
        id: metadata_url.to_owned(),
        redirect,
        port,
        scopes,
    })
}

fn get_json(http: &Client, url: &str, what: &str) -> Result<Value, Error> {
    let resp = http
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .map_err(|e| crate::http::unreachable(&e))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(Error::network(format!(
            "{}: {what} is not there (HTTP {})",
            credential::host(url),
            status.as_u16()
        ))
        .with_hint("check the account's `server` (and `client_metadata_url`) in the policy"));
    }
    crate::http::json(resp).map_err(|_| {
        Error::network(format!(
            "{}: {what} is not a JSON document",
            credential::host(url)
        ))
        .with_hint("check the account's `server` in the policy: it must be a Bluesky PDS")
    })
}

/// The PDS's authorization server (`/.well-known/oauth-protected-resource`, then that
/// server's `/.well-known/oauth-authorization-server`), checked to be what atproto needs.
pub fn discover(http: &Client, pds: &str) -> Result<Server, Error> {
    let pds = pds.trim_end_matches('/');
    let resource = get_json(
        http,
        &format!("{pds}/.well-known/oauth-protected-resource"),
        "the OAuth resource metadata",
    )?;
    let issuer = resource
        .get("authorization_servers")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(Value::as_str)
        .ok_or_else(|| {
            Error::network(format!(
                "{} names no OAuth authorization server",
                credential::host(pds)
            ))
            .with_hint(
                "sign in with an app password instead: `gate auth login NAME --app-password`",
            )
        })?
        .trim_end_matches('/')
        .to_owned();
    let meta = get_json(
        http,
        &format!("{issuer}/.well-known/oauth-authorization-server"),
        "the OAuth server metadata",
    )?;
    let text = |k: &str| meta.get(k).and_then(Value::as_str).map(str::to_owned);
    let wrong = |why: String| {
        Error::network(format!(
            "the OAuth server of {} {why}",
            credential::host(pds)
        ))
        .with_hint("sign in with an app password instead: `gate auth login NAME --app-password`")
    };
    if text("issuer").as_deref().map(|i| i.trim_end_matches('/')) != Some(issuer.as_str()) {
        return Err(wrong(format!(
            "does not call itself `{issuer}` in its metadata"
        )));
    }
    let supports = |k: &str, v: &str| {
        meta.get(k)
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(v)))
    };
    if !supports("dpop_signing_alg_values_supported", "ES256") {
        return Err(wrong("does not take ES256 DPoP proofs".into()));
    }
    if !supports("code_challenge_methods_supported", "S256") {
        return Err(wrong("does not take PKCE S256".into()));
    }
    let endpoint = |k: &str| text(k).ok_or_else(|| wrong(format!("has no `{k}`")));
    Ok(Server {
        par: endpoint("pushed_authorization_request_endpoint")?,
        authorize: endpoint("authorization_endpoint")?,
        token: endpoint("token_endpoint")?,
        revoke: text("revocation_endpoint"),
        issuer,
    })
}

/// Why a token-endpoint request failed. Never holds any part of the request.
enum Refusal {
    Transport(reqwest::Error),
    Server {
        status: u16,
        error: String,
        description: String,
    },
}

/// A form POST to an authorization-server endpoint with a DPoP proof, sent again once with
/// the nonce the server asks for.
fn post_form(
    http: &Client,
    dpop: &Dpop,
    url: &str,
    form: &[(&str, &str)],
) -> Result<Value, Refusal> {
    let answer = dpop::send(Some(dpop), &|| {
        http.post(url)
            .header("DPoP", dpop.proof("POST", url, None))
            .form(form)
    })
    .map_err(Refusal::Transport)?;
    if (200..300).contains(&answer.status) {
        return Ok(answer.body);
    }
    let text = |k: &str| {
        answer
            .body
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect::<String>()
    };
    Err(Refusal::Server {
        status: answer.status,
        error: text("error"),
        description: text("error_description"),
    })
}

fn refused(account: &Account, doing: &str, r: Refusal) -> Error {
    let name = &account.name;
    let host = credential::host(&account.server);
    match r {
        Refusal::Transport(e) => crate::http::unreachable(&e),
        Refusal::Server { error, description, .. } if error == "invalid_grant" => {
            Error::credentials(format!(
                "{host} refused to {doing} for `{name}` (`invalid_grant`{}): the sign-in was revoked, has expired, or its refresh token was already used",
                if description.is_empty() { String::new() } else { format!(": {description}") }
            ))
            .with_hint(format!("run `gate auth login {name}`"))
        }
        Refusal::Server { status, error, description } => Error::credentials(format!(
            "{host} refused to {doing} for `{name}` (HTTP {status}{}{})",
            if error.is_empty() { String::new() } else { format!(", `{error}`") },
            if description.is_empty() { String::new() } else { format!(": {description}") },
        ))
        .with_hint(format!("run `gate auth login {name}`, and check the account's `[accounts.{name}.oauth]`")),
    }
}

/// One sign-in in progress: the URL to open, and what finishing it needs.
pub struct Login {
    pub url: String,
    pub state: SecretString,
    pub server: Server,
    verifier: PkceCodeVerifier,
    dpop: Dpop,
    client_id: String,
    redirect: String,
    http: Client,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("issuer", &self.server.issuer)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// Starts a sign-in: discovery, a new DPoP key, PKCE and `state`, and the pushed request
/// whose `request_uri` the authorize URL carries.
pub fn start(
    http: Client,
    account: &Account,
    client: &ClientChoice,
    redirect: &str,
) -> Result<Login, Error> {
    let server = discover(&http, &account.server)?;
    let dpop = Dpop::generate()?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let state = CsrfToken::new_random();
    let scope = client.scopes.join(" ");
    let mut form = vec![
        ("client_id", client.id.as_str()),
        ("response_type", "code"),
        ("redirect_uri", redirect),
        ("scope", scope.as_str()),
        ("state", state.secret().as_str()),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    if let Some(hint) = account.handle.as_deref().filter(|h| !h.contains('@')) {
        form.push(("login_hint", hint));
    }
    let reply = post_form(&http, &dpop, &server.par, &form)
        .map_err(|r| refused(account, "accept the sign-in request", r))?;
    let request_uri = reply
        .get("request_uri")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            Error::network(format!(
                "{} answered the sign-in request without a `request_uri`",
                credential::host(&server.par)
            ))
        })?;
    let mut url = Url::parse(&server.authorize).map_err(|_| {
        Error::network(format!(
            "the OAuth server of {} has an invalid `authorization_endpoint`",
            credential::host(&account.server)
        ))
    })?;
    url.query_pairs_mut()
        .append_pair("client_id", &client.id)
        .append_pair("request_uri", request_uri);
    Ok(Login {
        url: url.to_string(),
        state: SecretString::from(state.secret().as_str()),
        server,
        verifier,
        dpop,
        client_id: client.id.clone(),
        redirect: redirect.to_owned(),
        http,
    })
}

impl Login {
    /// Exchanges the code for DPoP-bound tokens. `iss` is the redirect's issuer (RFC 9207):
    /// a code from another server is refused before it is sent anywhere.
    pub fn finish(
        self,
        account: &Account,
        code: &SecretString,
        iss: Option<&str>,
    ) -> Result<Credential, Error> {
        if let Some(iss) = iss
            && iss.trim_end_matches('/') != self.server.issuer
        {
            return Err(Error::credentials(format!(
                "the sign-in redirect came from `{}`, not from {}; it was ignored",
                iss.chars()
                    .filter(|c| c.is_ascii_graphic())
                    .take(100)
                    .collect::<String>(),
                self.server.issuer
            ))
            .with_hint("run the command again, and open only the newest sign-in link"));
        }
        let form = [
            ("grant_type", "authorization_code"),
            ("code", crate::redact::sent(code)),
            ("redirect_uri", self.redirect.as_str()),
            ("code_verifier", self.verifier.secret().as_str()),
            ("client_id", self.client_id.as_str()),
        ];
        let reply = post_form(&self.http, &self.dpop, &self.server.token, &form)
            .map_err(|r| refused(account, "exchange the sign-in code", r))?;
        let mut extra = serde_json::Map::new();
        extra.insert("auth".into(), json!("oauth"));
        extra.insert("dpop_key".into(), self.dpop.to_jwk());
        extra.insert("issuer".into(), json!(self.server.issuer));
        extra.insert("token_endpoint".into(), json!(self.server.token));
        if let Some(revoke) = &self.server.revoke {
            extra.insert("revocation_endpoint".into(), json!(revoke));
        }
        extra.insert("client_id".into(), json!(self.client_id));
        credential_from(account, &reply, extra, None, Utc::now())
    }
}

/// A token response as a credential. The DID comes from `sub`; a response that is not a
/// DPoP-bound atproto grant is refused.
fn credential_from(
    account: &Account,
    reply: &Value,
    mut extra: serde_json::Map<String, Value>,
    old: Option<&Credential>,
    now: DateTime<Utc>,
) -> Result<Credential, Error> {
    let text = |k: &str| reply.get(k).and_then(Value::as_str);
    let broken = |why: &str| {
        Error::credentials(format!(
            "{} answered with tokens gate cannot use for `{}`: {why}",
            credential::host(&account.server),
            account.name
        ))
        .with_hint(format!("run `gate auth login {}`", account.name))
    };
    let access = text("access_token").ok_or_else(|| broken("no access token"))?;
    if !text("token_type").is_some_and(|t| t.eq_ignore_ascii_case("DPoP")) {
        return Err(broken("the token is not bound to gate's DPoP key"));
    }
    let sub = text("sub")
        .filter(|s| s.starts_with("did:"))
        .ok_or_else(|| broken("no account DID (`sub`)"))?;
    if let Some(old_did) = old.and_then(did)
        && old_did != sub
    {
        return Err(broken("the refreshed tokens belong to another account"));
    }
    let scopes: Vec<String> = match text("scope") {
        Some(s) => s
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        None => old.map(|o| o.scopes.clone()).unwrap_or_default(),
    };
    if !scopes.iter().any(|s| s == "atproto") {
        return Err(broken("the grant lacks the `atproto` scope"));
    }
    extra.insert("did".into(), json!(sub));
    Ok(Credential {
        access_token: SecretString::from(access),
        refresh_token: text("refresh_token")
            .map(SecretString::from)
            .or_else(|| old.and_then(|o| o.refresh_token.clone())),
        expires_at: reply
            .get("expires_in")
            .and_then(Value::as_i64)
            .map(|s| now + chrono::TimeDelta::seconds(s)),
        scopes,
        token_type: Some("DPoP".into()),
        identity: old.and_then(|o| o.identity.clone()),
        extra,
    })
}

/// Whether a stored credential is an atproto OAuth session.
pub fn is_oauth(c: &Credential) -> bool {
    c.extra.get("auth").and_then(Value::as_str) == Some("oauth")
}

/// The DPoP key a stored OAuth session is bound to.
pub fn dpop_of(c: &Credential) -> Option<Dpop> {
    Dpop::from_jwk(c.extra.get("dpop_key")?)
}

fn stored<'c>(c: &'c Credential, key: &str) -> Option<&'c str> {
    c.extra.get(key).and_then(Value::as_str)
}

/// Refreshes an OAuth session (for [`crate::credential::usable`], which holds the item's
/// lock and stores the result before anything else: the refresh token is single-use).
pub fn refresh(account: &Account, c: &Credential) -> Result<Credential, RefreshFailure> {
    let (Some(dpop), Some(token_endpoint), Some(client_id), Some(refresh)) = (
        dpop_of(c),
        stored(c, "token_endpoint"),
        stored(c, "client_id"),
        c.refresh_token.as_ref(),
    ) else {
        return Err(RefreshFailure::Failed(
            Error::credentials(format!(
                "the stored Bluesky OAuth session of `{}` is incomplete",
                account.name
            ))
            .with_hint(format!("run `gate auth login {}`", account.name)),
        ));
    };
    let http = crate::http::client().map_err(RefreshFailure::Failed)?;
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", crate::redact::sent(refresh)),
        ("client_id", client_id),
    ];
    let reply = post_form(&http, &dpop, token_endpoint, &form).map_err(|r| {
        let server = matches!(r, Refusal::Server { status, .. } if (400..500).contains(&status));
        let e = refused(account, "refresh the sign-in", r);
        if server {
            RefreshFailure::Refused(e)
        } else {
            RefreshFailure::Failed(e)
        }
    })?;
    credential_from(account, &reply, c.extra.clone(), Some(c), Utc::now())
        .map_err(RefreshFailure::Failed)
}

/// Revokes the session's refresh token (which ends the grant) where the server has a
/// revocation endpoint; `Ok(false)` when it has none.
pub fn revoke(account: &Account, c: &Credential) -> Result<bool, Error> {
    let (Some(endpoint), Some(client_id), Some(dpop)) = (
        stored(c, "revocation_endpoint"),
        stored(c, "client_id"),
        dpop_of(c),
    ) else {
        return Ok(false);
    };
    let http = crate::http::client()?;
    let token = c.refresh_token.as_ref().unwrap_or(&c.access_token);
    let form = [
        ("token", crate::redact::sent(token)),
        ("client_id", client_id),
    ];
    post_form(&http, &dpop, endpoint, &form)
        .map_err(|r| refused(account, "revoke the sign-in", r))?;
    Ok(true)
}

/// The DID a stored session belongs to.
pub fn did(c: &Credential) -> Option<&str> {
    c.extra.get("did").and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> Account {
        Account {
            name: "bsky".into(),
            platform: crate::core::policy::Platform::Bluesky,
            server: "https://pds.example".into(),
            handle: Some("brand.example".into()),
            reviewers_required: None,
            max_chars: None,
            banned_terms: Default::default(),
            oauth: Default::default(),
        }
    }

    #[test]
    fn the_loopback_client_id_is_atprotos() {
        let http = Client::new();
        let c = ClientChoice::for_account(&http, &account()).unwrap();
        assert_eq!(
            c.id,
            "http://localhost?redirect_uri=http%3A%2F%2F127.0.0.1%2Fcallback&scope=atproto+transition%3Ageneric"
        );
        assert_eq!(c.port, 0);
        assert_eq!(c.redirect_uri(Some(4567)), "http://127.0.0.1:4567/callback");
        assert_eq!(c.redirect_uri(None), "http://127.0.0.1/callback");
    }

    #[test]
    fn a_team_client_needs_a_native_dpop_loopback_document() {
        let url = "https://brand.example/client-metadata.json";
        let good = json!({
            "client_id": url,
            "application_type": "native",
            "token_endpoint_auth_method": "none",
            "dpop_bound_access_tokens": true,
            "redirect_uris": ["https://brand.example/cb", "http://127.0.0.1:8766/callback"],
        });
        let c = from_metadata(&account(), url, &good, vec!["atproto".into()]).unwrap();
        assert_eq!(c.id, url);
        assert_eq!(c.port, 8766);
        assert_eq!(c.redirect_uri(Some(8766)), "http://127.0.0.1:8766/callback");
        for (key, value, why) in [
            (
                "client_id",
                json!("https://other.example/x.json"),
                "does not name itself",
            ),
            (
                "dpop_bound_access_tokens",
                json!(false),
                "dpop_bound_access_tokens",
            ),
            (
                "token_endpoint_auth_method",
                json!("private_key_jwt"),
                "confidential",
            ),
            (
                "redirect_uris",
                json!(["https://brand.example/cb"]),
                "no redirect to",
            ),
        ] {
            let mut doc = good.clone();
            doc[key] = value;
            let err = from_metadata(&account(), url, &doc, vec![]).unwrap_err();
            assert!(err.to_string().contains(why), "{key}: {err}");
        }
    }

    #[test]
    fn token_replies_must_be_dpop_atproto_grants() {
        let now = Utc::now();
        let ok = json!({
            "access_token": "at", "refresh_token": "rt", "token_type": "DPoP",
            "expires_in": 3600, "scope": "atproto transition:generic", "sub": "did:plc:abc",
        });
        let c = credential_from(&account(), &ok, Default::default(), None, now).unwrap();
        assert_eq!(c.extra["did"], "did:plc:abc");
        assert_eq!(c.expires_at, Some(now + chrono::TimeDelta::seconds(3600)));
        assert_eq!(c.scopes, ["atproto", "transition:generic"]);
        for (key, value) in [
            ("token_type", json!("Bearer")),
            ("sub", json!("alice")),
            ("scope", json!("transition:generic")),
        ] {
            let mut r = ok.clone();
            r[key] = value;
            assert!(
                credential_from(&account(), &r, Default::default(), None, now).is_err(),
                "{key}"
            );
        }
        let mut other = ok.clone();
        other["sub"] = json!("did:plc:zzz");
        assert!(credential_from(&account(), &other, Default::default(), Some(&c), now).is_err());
    }
}
