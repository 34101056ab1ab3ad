//! Secrets gate has sent, remembered for this process so that no server can make gate print,
//! log or store one: a server that echoes the request's `Authorization` header, a form field
//! or a token in an error body gets `****` in its place wherever gate writes that text (error
//! messages, notes, `--json`, the journal, panics).
//!
//! Every secret goes out through [`sent`], which remembers it (and its URL- and JSON-encoded
//! forms) and hands back the text to send. [`scrub`] is applied where text leaves gate.

use std::borrow::Cow;
use std::sync::Mutex;

use secrecy::{ExposeSecret as _, SecretString};
use zeroize::Zeroizing;

/// Shorter strings are not worth hiding and would mangle ordinary words.
const SHORTEST: usize = 8;

static SECRETS: Mutex<Vec<Zeroizing<String>>> = Mutex::new(Vec::new());

/// The secret's text, to put on the wire, remembered so that it is never printed back.
pub fn sent(secret: &SecretString) -> &str {
    let text = secret.expose_secret();
    remember(text);
    text
}

/// Remembers a secret (and the forms a server may echo it in) without sending it.
pub fn remember(text: &str) {
    if text.len() < SHORTEST {
        return;
    }
    let forms = [
        text.to_owned(),
        url::form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>(),
        serde_json::to_string(text)
            .map(|q| q.trim_matches('"').to_owned())
            .unwrap_or_default(),
    ];
    let mut secrets = SECRETS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for form in forms {
        if form.len() >= SHORTEST && !secrets.iter().any(|s| **s == form) {
            secrets.push(Zeroizing::new(form));
        }
    }
    // Longest first, so a secret that contains another is hidden whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// `text` with every remembered secret replaced by `****`.
pub fn scrub(text: &str) -> Cow<'_, str> {
    let secrets = SECRETS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if secrets.is_empty() || !secrets.iter().any(|s| text.contains(s.as_str())) {
        return Cow::Borrowed(text);
    }
    let mut out = text.to_owned();
    for s in secrets.iter() {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), "****");
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sent_secret_never_comes_back_in_any_form() {
        let token = SecretString::from("tok-3f9a/b+c=d&e\"q");
        assert_eq!(sent(&token), "tok-3f9a/b+c=d&e\"q");
        let echoed = "invalid: Bearer tok-3f9a/b+c=d&e\"q, form token=tok-3f9a%2Fb%2Bc%3Dd%26e%22q, json \"tok-3f9a/b+c=d&e\\\"q\"";
        let clean = scrub(echoed);
        assert!(!clean.contains("3f9a"), "{clean}");
        assert_eq!(scrub("nothing secret here"), "nothing secret here");
        remember("short");
        assert_eq!(scrub("a short word"), "a short word");
    }
}
