//! What the adapters share: reading a server's answer into a `SendError`, rate-limit headers,
//! keys and retry pauses.

use std::time::Duration;

use reqwest::blocking::Response;
use reqwest::header::HeaderMap;

use super::SendError;

/// How many times an idempotent request is tried in all, and the longest pause between tries.
pub const ATTEMPTS: u32 = 4;
const MAX_PAUSE: Duration = Duration::from_secs(8);

/// A random key: 128 bits as 32 hex digits.
pub fn random_key() -> String {
    let mut bytes = [0u8; 16];
    // The OS random source failing is not something gate can work around.
    getrandom::fill(&mut bytes).expect("the OS random source works");
    crate::core::policy::hex(&bytes)
}

/// A key derived from a delivery's stable name (the post's digest and the account): every
/// journal, on every machine, sends the same post to the same account with the same key, so a
/// network that honours keys answers a second journal's send with the first one's post.
pub fn derived_key(delivery: &str) -> String {
    use sha2::{Digest as _, Sha256};
    let mut h = Sha256::new();
    h.update(b"gate-idempotency-key-v1\0");
    h.update(delivery.as_bytes());
    crate::core::policy::hex(&h.finalize()[..16])
}

/// The pause before retry number `attempt` (1-based): exponential from 250 ms, capped,
/// with full jitter so that processes retrying together spread out.
pub fn backoff(attempt: u32) -> Duration {
    let ceiling = Duration::from_millis(250)
        .saturating_mul(1 << attempt.min(6))
        .min(MAX_PAUSE);
    let mut byte = [0u8; 2];
    let _ = getrandom::fill(&mut byte);
    let fraction = f64::from(u16::from_le_bytes(byte)) / f64::from(u16::MAX);
    ceiling.mul_f64(0.5 + fraction / 2.0)
}

/// A request that did not complete. A failure to connect means nothing went out; anything
/// later (a timeout, a dropped connection) may have reached the server.
pub fn transport(e: &reqwest::Error) -> SendError {
    let message = crate::http::describe(e);
    if e.is_connect() {
        SendError::Refused {
            status: super::NOT_CONNECTED,
            message,
        }
    } else {
        SendError::Unknown { message }
    }
}

/// The error a retried request ends with, given an earlier try whose outcome was unknown
/// (`earlier`): still unknown, whatever the last try said, because the earlier one may have
/// made the post.
pub fn after_unknown(last: SendError, earlier: Option<String>) -> SendError {
    let Some(earlier) = earlier else {
        return last;
    };
    SendError::Unknown {
        message: format!("{earlier}; then {}", last.message()),
    }
}

/// Turns a response into itself when it succeeded, else into the matching `SendError`.
pub fn check(response: Response, network: &str) -> Result<Response, SendError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let code = status.as_u16();
    let retry_after = retry_after(response.headers(), chrono::Utc::now());
    let body = crate::http::body(response)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let message = format!("{network} answered {code}: {}", server_message(&body));
    Err(match code {
        401 => SendError::Credentials { message },
        429 => SendError::RateLimited {
            retry_after,
            message,
        },
        500..=599 => SendError::Unknown { message },
        _ => SendError::Refused {
            status: code,
            message,
        },
    })
}

/// The human part of an error body (`error`, `detail`, `title`, `errors[0].message`),
/// shortened; the raw body when it is not JSON.
pub fn server_message(body: &str) -> String {
    let from_json = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            ["error", "detail", "title", "message"]
                .iter()
                .find_map(|k| v.get(k).and_then(|m| m.as_str()).map(str::to_owned))
                .or_else(|| {
                    v.pointer("/errors/0/message")
                        .and_then(|m| m.as_str())
                        .map(str::to_owned)
                })
        });
    let text = from_json.unwrap_or_else(|| body.trim().to_owned());
    // Hidden before it is cut, so a cut cannot leave half a secret.
    let text = crate::redact::scrub(&text);
    let text: String = text.chars().filter(|c| !c.is_control()).take(200).collect();
    if text.is_empty() {
        "no details".to_owned()
    } else {
        text
    }
}

/// How long a server asked us to wait: `Retry-After` (seconds or an HTTP date), else
/// `x-rate-limit-reset` (X: epoch seconds), else `RateLimit-Reset` / `X-RateLimit-Reset`
/// (seconds from now, epoch seconds, or an RFC 3339 time as Mastodon sends).
pub fn retry_after(headers: &HeaderMap, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let until = |t: chrono::DateTime<chrono::Utc>| (t - now).to_std().ok().or(Some(Duration::ZERO));
    if let Some(v) = get("retry-after") {
        if let Ok(secs) = v.parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        if let Ok(t) = chrono::DateTime::parse_from_rfc2822(v) {
            return until(t.to_utc());
        }
    }
    for name in ["x-rate-limit-reset", "ratelimit-reset", "x-ratelimit-reset"] {
        let Some(v) = get(name) else { continue };
        if let Ok(n) = v.parse::<i64>() {
            // Epoch seconds are large; a delta is small.
            return if n > 1_000_000_000 {
                chrono::DateTime::from_timestamp(n, 0).and_then(until)
            } else {
                Some(Duration::from_secs(n.max(0).unsigned_abs()))
            };
        }
        if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
            return until(t.to_utc());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn rate_limit_headers_in_every_form() {
        let now = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        type Case<'a> = (&'a [(&'a str, &'a str)], Option<u64>);
        let cases: &[Case<'_>] = &[
            (&[("Retry-After", "7")], Some(7)),
            (
                &[("Retry-After", "Fri, 15 Jan 2027 08:00:10 GMT")],
                Some(10),
            ),
            (&[("x-rate-limit-reset", "1800000030")], Some(30)),
            (&[("RateLimit-Reset", "12")], Some(12)),
            (&[("X-RateLimit-Reset", "2027-01-15T08:00:05Z")], Some(5)),
            (&[("x-rate-limit-reset", "1799999990")], Some(0)),
            (&[("Retry-After", "soon")], None),
            (&[], None),
        ];
        for (pairs, want) in cases {
            let got = retry_after(&headers(pairs), now).map(|d| d.as_secs());
            assert_eq!(got, *want, "{pairs:?}");
        }
    }

    #[test]
    fn server_messages_are_short_and_plain() {
        assert_eq!(
            server_message(r#"{"error":"Validation failed: Text can't be blank"}"#),
            "Validation failed: Text can't be blank"
        );
        assert_eq!(
            server_message(
                r#"{"detail":"You are not allowed to create a Tweet with duplicate content."}"#
            ),
            "You are not allowed to create a Tweet with duplicate content."
        );
        assert_eq!(server_message(r#"{"errors":[{"message":"bad"}]}"#), "bad");
        assert_eq!(server_message(""), "no details");
        assert_eq!(server_message(&"x\n".repeat(500)).chars().count(), 200);
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        for attempt in 1..10 {
            let d = backoff(attempt);
            let ceiling = Duration::from_millis(250)
                .saturating_mul(1 << attempt.min(6))
                .min(MAX_PAUSE);
            assert!(d >= ceiling / 2 && d <= ceiling, "{attempt}: {d:?}");
        }
        assert_ne!(random_key(), random_key());
        assert_eq!(random_key().len(), 32);
    }
}
