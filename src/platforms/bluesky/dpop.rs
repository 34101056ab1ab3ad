//! DPoP (RFC 9449): proof-of-possession JWTs that bind atproto OAuth tokens to a key only this
//! session holds.
//!
//! Each request carries a fresh proof: a compact JWS (ES256 over P-256, signed with the `p256`
//! crate) whose header holds the public key and whose claims name the method, the URL without
//! query or fragment, the time, a random `jti`, the server's latest nonce and, with an access
//! token, its SHA-256 (`ath`). The private key lives in the keychain beside the tokens it binds.

use std::sync::Mutex;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::error::Error;

/// A session's DPoP key and the last nonce each server sent. `Debug` never shows the key.
pub struct Dpop {
    key: SigningKey,
    nonce: Mutex<Option<String>>,
}

impl std::fmt::Debug for Dpop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dpop").field("key", &"****").finish()
    }
}

impl Dpop {
    /// A new P-256 key from the operating system's random source.
    pub fn generate() -> Result<Dpop, Error> {
        loop {
            let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
            getrandom::fill(&mut *bytes).map_err(|e| {
                Error::other(format!("cannot read the system's random source: {e}"))
            })?;
            // A scalar of zero or beyond the group order is refused: draw again
            // (about one chance in 2^32).
            if let Ok(key) = SigningKey::from_slice(&*bytes) {
                return Ok(Dpop::with_key(key));
            }
        }
    }

    fn with_key(key: SigningKey) -> Dpop {
        Dpop {
            key,
            nonce: Mutex::new(None),
        }
    }

    /// The key as a private JWK, for the keychain.
    pub fn to_jwk(&self) -> Value {
        let secret = p256::SecretKey::from(&self.key);
        serde_json::from_str(&secret.to_jwk_string()).expect("a JWK is JSON")
    }

    /// The key from the private JWK kept in the keychain.
    pub fn from_jwk(jwk: &Value) -> Option<Dpop> {
        let text = zeroize::Zeroizing::new(jwk.to_string());
        let secret = p256::SecretKey::from_jwk_str(&text).ok()?;
        Some(Dpop::with_key(SigningKey::from(secret)))
    }

    /// The public half, as every proof's header carries it.
    fn public_jwk(&self) -> Value {
        let public = self.key.verifying_key();
        let point = public.to_encoded_point(false);
        json!({
            "kty": "EC",
            "crv": "P-256",
            "x": B64.encode(point.x().expect("an uncompressed point has x")),
            "y": B64.encode(point.y().expect("an uncompressed point has y")),
        })
    }

    /// The nonce to send next (the last one a server gave).
    pub fn nonce(&self) -> Option<String> {
        self.nonce.lock().map(|n| n.clone()).unwrap_or_default()
    }

    /// Keeps the nonce a server sent in its `DPoP-Nonce` header.
    pub fn remember_nonce(&self, headers: &reqwest::header::HeaderMap) {
        if let Some(n) = headers.get("dpop-nonce").and_then(|v| v.to_str().ok())
            && let Ok(mut slot) = self.nonce.lock()
        {
            *slot = Some(n.to_owned());
        }
    }

    /// A proof for one request: `method` and `url` (query and fragment are dropped, as RFC 9449
    /// says `htu` is compared without them), bound to `access_token` when one is sent.
    pub fn proof(&self, method: &str, url: &str, access_token: Option<&SecretString>) -> String {
        let htu = url.split(['?', '#']).next().unwrap_or(url);
        let mut jti = [0u8; 16];
        // The jti only has to be unique; a failed random read still yields a unique time-based one.
        if getrandom::fill(&mut jti).is_err() {
            jti[..16].copy_from_slice(
                &std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos()
                    .to_le_bytes(),
            );
        }
        let mut claims = json!({
            "jti": B64.encode(jti),
            "htm": method,
            "htu": htu,
            "iat": chrono::Utc::now().timestamp(),
        });
        if let Some(nonce) = self.nonce() {
            claims["nonce"] = Value::String(nonce);
        }
        if let Some(token) = access_token {
            claims["ath"] = Value::String(B64.encode(Sha256::digest(token.expose_secret())));
        }
        let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.public_jwk()});
        let signing_input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let signature: Signature = self.key.sign(signing_input.as_bytes());
        format!("{signing_input}.{}", B64.encode(signature.to_bytes()))
    }
}

/// A reply read whole: its status, headers, and JSON body (`Null` when empty or not JSON).
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

/// Sends the request `build` makes, keeping any nonce the server sends. With a DPoP key,
/// a refusal that asks for the nonce it just sent is answered by building and sending the
/// request once more (`build` signs a fresh proof, which carries the new nonce); a second
/// such refusal is returned as it is.
pub fn send(
    dpop: Option<&Dpop>,
    build: &dyn Fn() -> reqwest::blocking::RequestBuilder,
) -> Result<Answer, reqwest::Error> {
    let mut asked = false;
    loop {
        let resp = build().send()?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        if let Some(dpop) = dpop {
            dpop.remember_nonce(&headers);
        }
        let bytes = crate::http::body(resp).unwrap_or_default();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        if dpop.is_some()
            && !asked
            && !(200..300).contains(&status)
            && wants_nonce(status, &headers, &body)
        {
            asked = true;
            continue;
        }
        return Ok(Answer {
            status,
            headers,
            body,
        });
    }
}

/// Whether a refusal asks for the request again with the nonce it sent: an authorization
/// server answers 400 `{"error":"use_dpop_nonce"}`, a resource server 401 with
/// `WWW-Authenticate: DPoP error="use_dpop_nonce"`.
pub fn wants_nonce(status: u16, headers: &reqwest::header::HeaderMap, body: &Value) -> bool {
    if !headers.contains_key("dpop-nonce") {
        return false;
    }
    let in_header = headers
        .get_all(reqwest::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("use_dpop_nonce"));
    (status == 401 && in_header)
        || (status == 400 && body.get("error").and_then(Value::as_str) == Some("use_dpop_nonce"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::VerifyingKey;
    use p256::ecdsa::signature::Verifier as _;

    fn part(jwt: &str, i: usize) -> Value {
        serde_json::from_slice(&B64.decode(jwt.split('.').nth(i).unwrap()).unwrap()).unwrap()
    }

    #[test]
    fn a_proof_verifies_with_the_key_in_its_header() {
        let dpop = Dpop::generate().unwrap();
        let token = SecretString::from("at-123");
        let jwt = dpop.proof("POST", "https://pds.example/xrpc/x.y?z=1#f", Some(&token));
        let header = part(&jwt, 0);
        let claims = part(&jwt, 1);
        assert_eq!(header["typ"], "dpop+jwt");
        assert_eq!(header["alg"], "ES256");
        assert!(header["jwk"].get("d").is_none(), "the private key leaked");
        assert_eq!(claims["htm"], "POST");
        assert_eq!(claims["htu"], "https://pds.example/xrpc/x.y");
        assert_eq!(
            claims["ath"],
            B64.encode(Sha256::digest(b"at-123")),
            "ath is the token's SHA-256"
        );
        assert!(claims.get("nonce").is_none());

        let jwk = serde_json::to_string(&header["jwk"]).unwrap();
        let public = p256::PublicKey::from_jwk_str(&jwk).unwrap();
        let (input, sig) = jwt.rsplit_once('.').unwrap();
        let sig = Signature::from_slice(&B64.decode(sig).unwrap()).unwrap();
        VerifyingKey::from(public)
            .verify(input.as_bytes(), &sig)
            .expect("the signature verifies");
    }

    #[test]
    fn the_key_survives_the_keychain_and_nonces_are_sent() {
        let dpop = Dpop::generate().unwrap();
        let again = Dpop::from_jwk(&dpop.to_jwk()).unwrap();
        assert_eq!(dpop.public_jwk(), again.public_jwk());
        assert!(format!("{again:?}").contains("****"));
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("dpop-nonce", "n-1".parse().unwrap());
        again.remember_nonce(&headers);
        let claims = part(&again.proof("GET", "https://a.example/b", None), 1);
        assert_eq!(claims["nonce"], "n-1");
        assert!(claims.get("ath").is_none());
        assert!(Dpop::from_jwk(&json!({"kty": "EC"})).is_none());
    }

    #[test]
    fn nonce_requests_are_recognised() {
        let mut headers = reqwest::header::HeaderMap::new();
        let body = json!({"error": "use_dpop_nonce"});
        assert!(!wants_nonce(400, &headers, &body), "no nonce to use");
        headers.insert("dpop-nonce", "n".parse().unwrap());
        assert!(wants_nonce(400, &headers, &body));
        assert!(!wants_nonce(
            400,
            &headers,
            &json!({"error": "invalid_grant"})
        ));
        assert!(!wants_nonce(401, &headers, &Value::Null));
        headers.insert(
            reqwest::header::WWW_AUTHENTICATE,
            "DPoP error=\"use_dpop_nonce\"".parse().unwrap(),
        );
        assert!(wants_nonce(401, &headers, &Value::Null));
    }
}
