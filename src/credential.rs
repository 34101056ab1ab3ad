//! What gate keeps in the keychain for an account: tokens and what the server said about them,
//! and the one way every network's token is refreshed ([`usable`]).
//!
//! The keychain secret is a small JSON document (`{"v": 1, "access_token": …}`), built and
//! parsed only inside zeroizing buffers and `SecretString`s. A secret that is a bare token (for
//! example one stored with `secret-tool store`) reads as a credential with just that token.

use std::fmt;
use std::io::Write as _;
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::core::policy::Account;
use crate::env::Env;
use crate::error::Error;
use crate::keychain::{Keychain, SERVICE};

/// How long a process waits for another one's refresh of the same keychain item.
pub const REFRESH_LOCK_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a refresh gave no new tokens.
#[derive(Debug)]
pub enum RefreshFailure {
    /// The server refused the refresh token (`invalid_grant` and the like). Another process
    /// may have just rotated it, so the keychain is worth reading once more.
    Refused(Error),
    /// Anything else (unreachable, an odd reply, nothing to refresh with).
    Failed(Error),
}

impl RefreshFailure {
    fn into_error(self) -> Error {
        match self {
            RefreshFailure::Refused(e) | RefreshFailure::Failed(e) => e,
        }
    }
}

/// How one network keeps an account's token usable: read it, tell whether it must be
/// refreshed, refresh it (not stored yet). The three sign-in kinds (Mastodon/X OAuth,
/// Bluesky app-password sessions, atproto OAuth) differ only here.
pub trait Refresher {
    fn read(&self, keychain: &Keychain) -> Result<Credential, Error>;
    fn needs_refresh(&self, c: &Credential, now: DateTime<Utc>) -> bool;
    fn refresh(&self, c: &Credential) -> Result<Credential, RefreshFailure>;
}

/// The account's credential, ready to use: read from the keychain and, when `how` says so,
/// refreshed. Refresh tokens are single-use, so this is the only place one is spent:
///
/// - under the lock of the keychain item ([`crate::lock::acquire_item`]), which every process
///   of the user shares whatever its `GATE_HOME`;
/// - after reading the keychain again inside the lock (another process may have refreshed);
/// - with the new tokens stored before anything else, and a clear error when the server
///   rotated the token and the keychain would not take the new one;
/// - when the server refuses the refresh token, after reading the keychain once more: if
///   someone stored another token meanwhile, that one is used (refreshed if it must be).
pub fn usable(
    env: &Env,
    keychain: &Keychain,
    account: &Account,
    how: &dyn Refresher,
    now: DateTime<Utc>,
) -> Result<Credential, Error> {
    let current = how.read(keychain)?;
    if !how.needs_refresh(&current, now) {
        return Ok(current);
    }
    let item = user(account);
    let _lock = item_lock(env, &item)?;
    let current = how.read(keychain)?;
    if !how.needs_refresh(&current, Utc::now()) {
        return Ok(current);
    }
    debug_pause(env, "before-refresh");
    let refused = match how.refresh(&current) {
        Ok(fresh) => return store(env, keychain, account, &item, &current, fresh),
        Err(RefreshFailure::Failed(e)) => return Err(e),
        Err(RefreshFailure::Refused(e)) => e,
    };
    // Refused: unless the keychain changed meanwhile, the sign-in is over.
    let Ok(again) = how.read(keychain) else {
        return Err(refused);
    };
    if !changed(&current, &again) {
        return Err(refused);
    }
    if !how.needs_refresh(&again, Utc::now()) {
        return Ok(again);
    }
    if same_secret(current.refresh_token.as_ref(), again.refresh_token.as_ref()) {
        return Err(refused);
    }
    match how.refresh(&again) {
        Ok(fresh) => store(env, keychain, account, &item, &again, fresh),
        Err(e) => Err(e.into_error()),
    }
}

/// Writes the identity into the stored credential, under the account's refresh lock and
/// re-read, so a token another process has just refreshed is never overwritten.
pub fn record_identity(
    env: &Env,
    keychain: &Keychain,
    account: &Account,
    who: String,
) -> Result<Credential, Error> {
    let user = user(account);
    let _lock = item_lock(env, &user)?;
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

/// The lock of the keychain item `user` (service `gate`): held by whoever rewrites it, so
/// no refresh is lost under another write.
pub fn item_lock(env: &Env, user: &str) -> Result<crate::lock::Lock, Error> {
    crate::lock::acquire_item(env, SERVICE, user, REFRESH_LOCK_TIMEOUT)
}

/// Stores the refreshed credential; the caller uses it only once this succeeded.
fn store(
    env: &Env,
    keychain: &Keychain,
    account: &Account,
    item: &str,
    old: &Credential,
    fresh: Credential,
) -> Result<Credential, Error> {
    debug_pause(env, "before-store");
    let Err(e) = keychain.set(item, &fresh.to_secret()) else {
        return Ok(fresh);
    };
    let name = &account.name;
    let rotated = !same_secret(old.refresh_token.as_ref(), fresh.refresh_token.as_ref());
    let message = if rotated {
        format!(
            "the server rotated the token for `{name}` and it could not be stored: sign in again ({e})"
        )
    } else {
        format!("the refreshed token for `{name}` could not be stored ({e})")
    };
    let hint = if rotated {
        format!(
            "make the keychain writable again (unlock a locked keyring), then run `gate auth login {name}`"
        )
    } else {
        e.hint()
    };
    Err(Error::credentials(message).with_hint(hint))
}

/// Whether the keychain now holds other tokens than `before`.
fn changed(before: &Credential, now: &Credential) -> bool {
    before.access_token.expose_secret() != now.access_token.expose_secret()
        || !same_secret(before.refresh_token.as_ref(), now.refresh_token.as_ref())
}

fn same_secret(a: Option<&SecretString>, b: Option<&SecretString>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.expose_secret() == b.expose_secret(),
        (None, None) => true,
        _ => false,
    }
}

/// Debug builds only: `GATE_DEBUG_PAUSE=POINT:DIR` stops at `POINT` (`before-refresh`,
/// `before-store`), writes `DIR/POINT.reached` and waits (up to 30 s) for `DIR/POINT.go`, so
/// a test can act at that very moment (lock the keyring, store another token).
#[cfg(debug_assertions)]
fn debug_pause(env: &Env, point: &str) {
    let Some((at, dir)) = env.var("GATE_DEBUG_PAUSE").and_then(|v| v.split_once(':')) else {
        return;
    };
    if at != point {
        return;
    }
    let dir = std::path::Path::new(dir);
    let _ = std::fs::write(dir.join(format!("{point}.reached")), b"");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !dir.join(format!("{point}.go")).exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(not(debug_assertions))]
fn debug_pause(_env: &Env, _point: &str) {}

/// The longest secret gate accepts, in bytes: far more than any token, small enough to refuse
/// a file piped in by mistake.
pub const MAX_SECRET: usize = 64 * 1024;

/// An account's credential. `Debug` shows `****` for every secret.
pub struct Credential {
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    pub expires_at: Option<DateTime<Utc>>,
    pub scopes: Vec<String>,
    pub token_type: Option<String>,
    /// The handle, username or DID as the server reported it.
    pub identity: Option<String>,
    /// Platform specifics (e.g. a Bluesky session DID or DPoP key); treated as secret.
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Why a keychain secret is not a credential. Never holds any part of the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error(
        "the stored secret is not a gate credential (invalid JSON at line {line}, column {column})"
    )]
    Json { line: usize, column: usize },
    #[error(
        "the stored secret is a gate credential of version {0}, newer than this gate understands"
    )]
    Version(u64),
    #[error("the stored secret is empty")]
    Empty,
    #[error("the stored secret is not a token (it holds whitespace or control characters)")]
    NotAToken,
}

#[derive(Serialize)]
struct WireOut<'a> {
    v: u64,
    access_token: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    scopes: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    token_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    identity: Option<&'a str>,
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    extra: &'a serde_json::Map<String, serde_json::Value>,
}

#[derive(Deserialize)]
struct WireIn {
    v: u64,
    access_token: SecretString,
    #[serde(default)]
    refresh_token: Option<SecretString>,
    #[serde(default)]
    expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    identity: Option<String>,
    #[serde(default)]
    extra: serde_json::Map<String, serde_json::Value>,
}

const VERSION: u64 = 1;

/// Counts bytes without keeping them, to size the real buffer exactly.
struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Credential {
    /// A credential holding only an access token (e.g. one made on a Mastodon settings page).
    pub fn from_token(access_token: SecretString) -> Credential {
        Credential {
            access_token,
            refresh_token: None,
            expires_at: None,
            scopes: Vec::new(),
            token_type: None,
            identity: None,
            extra: serde_json::Map::new(),
        }
    }

    /// The keychain secret: the JSON document, written into an exactly sized buffer so no
    /// copy of the tokens is left behind by a growing one.
    pub fn to_secret(&self) -> SecretString {
        let wire = WireOut {
            v: VERSION,
            access_token: self.access_token.expose_secret(),
            refresh_token: self.refresh_token.as_ref().map(|s| s.expose_secret()),
            expires_at: self.expires_at,
            scopes: &self.scopes,
            token_type: self.token_type.as_deref(),
            identity: self.identity.as_deref(),
            extra: &self.extra,
        };
        let mut counter = Counter(0);
        serde_json::to_writer(&mut counter, &wire).expect("a credential always serialises");
        let mut buf = Zeroizing::new(Vec::with_capacity(counter.0));
        serde_json::to_writer(&mut *buf, &wire).expect("a credential always serialises");
        let _ = buf.flush();
        let text = String::from_utf8(std::mem::take(&mut *buf)).expect("JSON is UTF-8");
        SecretString::from(text)
    }

    /// Reads a keychain secret: gate's JSON document, or a bare token.
    pub fn from_secret(secret: &SecretString) -> Result<Credential, CredentialError> {
        let text = secret.expose_secret().trim();
        if text.is_empty() {
            return Err(CredentialError::Empty);
        }
        if text.starts_with('{') {
            // serde_json's messages can quote the input: keep only the position.
            let wire: WireIn = serde_json::from_str(text).map_err(|e| CredentialError::Json {
                line: e.line(),
                column: e.column(),
            })?;
            if wire.v > VERSION {
                return Err(CredentialError::Version(wire.v));
            }
            return Ok(Credential {
                access_token: wire.access_token,
                refresh_token: wire.refresh_token,
                expires_at: wire.expires_at,
                scopes: wire.scopes,
                token_type: wire.token_type,
                identity: wire.identity,
                extra: wire.extra,
            });
        }
        check_token(text)?;
        Ok(Credential::from_token(SecretString::from(text)))
    }

    /// Whether the access token has expired at `now` (no expiry: never).
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }
}

/// A token is one run of visible characters: no whitespace, no control characters.
pub fn check_token(text: &str) -> Result<(), CredentialError> {
    if text.is_empty() {
        return Err(CredentialError::Empty);
    }
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(CredentialError::NotAToken);
    }
    Ok(())
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("access_token", &format_args!("****"))
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| format_args!("****")),
            )
            .field("expires_at", &self.expires_at)
            .field("scopes", &self.scopes)
            .field("token_type", &self.token_type)
            .field("identity", &self.identity)
            .field(
                "extra",
                &self
                    .extra
                    .keys()
                    .map(|k| (k.as_str(), "****"))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// The keychain user for an account: `{account}@{host of its server}`, e.g.
/// `brand@mastodon.social`. A port, when the server names one, is part of the host.
pub fn user(account: &Account) -> String {
    format!("{}@{}", account.name, host(&account.server))
}

/// The keychain user for a per-instance app registration (Mastodon): `app@{host}`.
pub fn app_user(host: &str) -> String {
    format!("app@{host}")
}

/// The host (and port, if given) of a server URL, lower-cased.
pub fn host(server: &str) -> String {
    let rest = server.split_once("://").map_or(server, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let authority = authority
        .strip_suffix(":443")
        .filter(|_| server.starts_with("https://"))
        .unwrap_or(authority);
    authority.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::policy::{Platform, TermLists};

    fn full() -> Credential {
        let mut extra = serde_json::Map::new();
        extra.insert("dpop_key".into(), serde_json::json!("dpop-secret-xyz"));
        extra.insert("did".into(), serde_json::json!("did:plc:abc"));
        Credential {
            access_token: SecretString::from("access-secret-123"),
            refresh_token: Some(SecretString::from("refresh-secret-456")),
            expires_at: Some("2026-11-23T10:00:00Z".parse().unwrap()),
            scopes: vec!["read".into(), "write:statuses".into()],
            token_type: Some("Bearer".into()),
            identity: Some("@brand@mastodon.social".into()),
            extra,
        }
    }

    #[test]
    fn round_trip_keeps_every_field() {
        let c = full();
        let back = Credential::from_secret(&c.to_secret()).unwrap();
        assert_eq!(back.access_token.expose_secret(), "access-secret-123");
        assert_eq!(
            back.refresh_token.as_ref().unwrap().expose_secret(),
            "refresh-secret-456"
        );
        assert_eq!(back.expires_at, c.expires_at);
        assert_eq!(back.scopes, c.scopes);
        assert_eq!(back.token_type, c.token_type);
        assert_eq!(back.identity, c.identity);
        assert_eq!(back.extra, c.extra);
    }

    #[test]
    fn minimal_round_trip_and_format() {
        let c = Credential::from_token(SecretString::from("tok"));
        let secret = c.to_secret();
        assert_eq!(secret.expose_secret(), r#"{"v":1,"access_token":"tok"}"#);
        let back = Credential::from_secret(&secret).unwrap();
        assert_eq!(back.access_token.expose_secret(), "tok");
        assert!(
            back.refresh_token.is_none() && back.expires_at.is_none() && back.scopes.is_empty()
        );
    }

    #[test]
    fn debug_redacts_every_secret() {
        let text = format!("{:?}", full());
        for secret in [
            "access-secret-123",
            "refresh-secret-456",
            "dpop-secret-xyz",
            "did:plc:abc",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(text.contains("****"));
        assert!(text.contains("write:statuses"), "{text}");
    }

    #[test]
    fn a_bare_token_is_a_credential() {
        let c = Credential::from_secret(&SecretString::from("  bare-token-789\n")).unwrap();
        assert_eq!(c.access_token.expose_secret(), "bare-token-789");
        assert!(c.expires_at.is_none());
    }

    #[test]
    fn bad_secrets_are_refused_without_quoting_them() {
        for (input, want) in [
            ("", CredentialError::Empty),
            ("two words", CredentialError::NotAToken),
            (
                r#"{"v":1,"access_token":"leak-me-1","scopes":"leak-me-2"}"#,
                CredentialError::Json { line: 1, column: 0 },
            ),
        ] {
            let err = Credential::from_secret(&SecretString::from(input)).unwrap_err();
            match (&err, &want) {
                (CredentialError::Json { .. }, CredentialError::Json { .. }) => {}
                _ => assert_eq!(err, want),
            }
            assert!(!err.to_string().contains("leak-me"), "{err}");
        }
        let newer = Credential::from_secret(&SecretString::from(r#"{"v":2,"access_token":"t"}"#))
            .unwrap_err();
        assert_eq!(newer, CredentialError::Version(2));
    }

    #[test]
    fn expiry() {
        let c = full();
        assert!(!c.is_expired("2026-11-23T09:59:59Z".parse().unwrap()));
        assert!(c.is_expired("2026-11-23T10:00:00Z".parse().unwrap()));
        assert!(!Credential::from_token(SecretString::from("t")).is_expired(Utc::now()));
    }

    fn account(name: &str, server: &str) -> Account {
        Account {
            name: name.into(),
            platform: Platform::Mastodon,
            server: server.into(),
            handle: None,
            reviewers_required: None,
            max_chars: None,
            banned_terms: TermLists::default(),
            oauth: Default::default(),
        }
    }

    #[test]
    fn keychain_users_name_the_account_and_host() {
        assert_eq!(
            user(&account("brand", "https://mastodon.social")),
            "brand@mastodon.social"
        );
        assert_eq!(
            user(&account("brand", "https://Mastodon.Social/")),
            "brand@mastodon.social"
        );
        assert_eq!(
            user(&account("b", "https://mastodon.social:443/path")),
            "b@mastodon.social"
        );
        assert_eq!(
            user(&account("b", "http://127.0.0.1:8080")),
            "b@127.0.0.1:8080"
        );
        assert_eq!(app_user("mastodon.social"), "app@mastodon.social");
        assert_eq!(host("https://bsky.social"), "bsky.social");
    }
}
